//! Helpers shared by the stream tests: a server on loopback fed directly through the hub.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flashsale_engine::observer::{StockLevel, StockObserver};
use flashsale_gateway::auth::{Role, Tokens};
use flashsale_gateway::stream::{
    ServerStats, ServerStatsSnapshot, StockHub, StreamConfig, StreamDriver, StreamServer,
};
use flashsale_protocol::stream::{encode_frame, ClientFrame, MAX_FRAME_LEN, PROTOCOL_VERSION};
use flashsale_protocol::SkuId;
use flashsale_stream_client::{ClientOptions, StreamEvent, Subscriber, Subscription, Trust};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TOKEN: &str = "partner-secret";

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub hub: Arc<StockHub>,
    pub stats: Arc<ServerStats>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server on an ephemeral loopback port, run by `driver`, with `tweak` applied to its
    /// test configuration.
    pub async fn start(
        driver: StreamDriver,
        hub: Arc<StockHub>,
        tweak: impl FnOnce(&mut StreamConfig),
    ) -> TestServer {
        let mut config = StreamConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.driver = driver;
        config.heartbeat = Duration::from_millis(200);
        // Publish every change at once: these tests count updates exactly (pacing is tested
        // in the hub's unit tests).
        config.publish_interval = Duration::ZERO;
        config.max_sends_per_s = 0;
        tweak(&mut config);
        // A just-stopped server on the same port may hold its socket while connections drain.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let server = loop {
            match StreamServer::bind(config.clone()) {
                Ok(server) => break server,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("bind: {e}"),
            }
        };
        let addr = server.local_addr();
        let fingerprint = server.fingerprint();
        let stats = server.stats();
        let tokens = tokens();
        let (stop, stopped) = oneshot::channel::<()>();
        let hub2 = Arc::clone(&hub);
        let task = tokio::spawn(async move {
            server
                .run(hub2, tokens, async {
                    let _ = stopped.await;
                })
                .await
                .expect("server run");
        });
        TestServer {
            addr,
            fingerprint,
            hub,
            stats,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn options(&self) -> ClientOptions {
        client_options(self.addr, &self.fingerprint)
    }

    pub fn subscriber(&self, subscription: Subscription) -> Subscriber {
        let mut o = self.options();
        o.subscription = subscription;
        Subscriber::connect(o).expect("subscriber")
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops in time")
                .expect("server task");
        }
    }
}

/// Runs each named `async fn name(driver: StreamDriver)` of a stream suite as two tests, one per
/// driver (ADR 0046): `name::quinn` and `name::proto`. Every stream scenario so holds for both;
/// a scenario left out of the list is an unused function, which the lint refuses.
#[allow(unused_macros)] // not every stream suite is for both drivers (stream_proto_batching)
macro_rules! on_both_drivers {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn quinn() {
                    super::$name(flashsale_gateway::stream::StreamDriver::Quinn).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn proto() {
                    super::$name(flashsale_gateway::stream::StreamDriver::Proto).await
                }
            }
        )+
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_drivers;

/// The server's counters once `done` holds for them (within 5 s): counters a driver bumps just
/// after a frame leaves can trail the client's view by a moment.
pub async fn stats_once(
    server: &TestServer,
    done: impl Fn(&ServerStatsSnapshot) -> bool,
) -> ServerStatsSnapshot {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stats = server.stats.snapshot();
        if done(&stats) || tokio::time::Instant::now() >= deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The tokens every test server accepts: [`TOKEN`] (partner) and `shop-token` (storefront).
pub fn tokens() -> Tokens {
    let mut tokens = Tokens::new();
    tokens.add(TOKEN, Role::Partner);
    tokens.add("shop-token", Role::Storefront);
    tokens
}

/// Client options for a server at `addr` with certificate `fingerprint`, retrying quickly.
pub fn client_options(addr: SocketAddr, fingerprint: &str) -> ClientOptions {
    let trust = Trust::from_fingerprint_hex(fingerprint).expect("fingerprint");
    let mut o = ClientOptions::new(addr.to_string(), TOKEN, trust);
    o.backoff_min = Duration::from_millis(10);
    o.backoff_max = Duration::from_millis(100);
    o
}

pub fn sku(s: &str) -> SkuId {
    SkuId::new(s).expect("sku")
}

/// A level of SKU `s`, at the next position of a test-wide log (so that, as from a real
/// engine, each SKU's `log_seq` increases with every change).
pub fn level(s: &str, available: u64, sold: u64) -> StockLevel {
    static LOG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    StockLevel {
        sku: sku(s),
        available,
        reserved: 0,
        sold,
        log_seq: LOG.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
    }
}

/// Feeds a change the way the engine does, and waits until the hub has numbered it. Returns
/// the head sequence number after it.
pub async fn feed(hub: &StockHub, level: StockLevel) -> u64 {
    let start = hub.head_seq();
    let mut head = hub.subscribe_head();
    hub.stock_changed(&level);
    // The pump task runs concurrently; wait for it to publish.
    tokio::time::timeout(Duration::from_secs(5), async {
        while *head.borrow_and_update() <= start {
            if head.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .expect("hub publishes");
    hub.head_seq()
}

/// The next event that is not a heartbeat, within 5 s.
pub async fn next_non_heartbeat(sub: &mut Subscriber) -> StreamEvent {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), sub.next_event())
            .await
            .expect("event in time")
            .expect("no fatal error");
        if !matches!(ev, StreamEvent::Heartbeat { .. }) {
            return ev;
        }
    }
}

/// The sequence number and `sku → (available, sold)` of a snapshot event.
pub fn expect_snapshot(ev: StreamEvent) -> (u64, BTreeMap<String, (u64, u64)>) {
    match ev {
        StreamEvent::Snapshot { seq, levels } => (
            seq,
            levels
                .into_iter()
                .map(|l| (l.sku.as_str().to_string(), (l.available, l.sold)))
                .collect(),
        ),
        other => panic!("expected Snapshot, got {other:?}"),
    }
}

/// `(seq, sku, available, sold)` of an update event.
pub fn expect_update(ev: StreamEvent) -> (u64, String, u64, u64) {
    match ev {
        StreamEvent::Update(u) => (u.seq, u.sku.as_str().to_string(), u.available, u.sold),
        other => panic!("expected Update, got {other:?}"),
    }
}

/// `frames` encoded back to back, as a client writes them on its stream.
pub fn encode(frames: &[ClientFrame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        encode_frame(f, MAX_FRAME_LEN, &mut out).expect("encode");
    }
    out
}

/// A `Hello` of the current version with `token`, not resuming.
pub fn hello(token: &str) -> ClientFrame {
    ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        token: token.into(),
        resume_from: None,
    }
}

/// A `Subscribe` to every SKU.
pub fn subscribe_all() -> ClientFrame {
    ClientFrame::Subscribe {
        subscription: Subscription::All,
    }
}
