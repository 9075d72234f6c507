//! Stream recovery across a server restart on the same data dir and port: the certificate
//! fingerprint stays the same, a crashed server's clients get a stateless reset as soon as it is
//! back, and a `watch` (its client settings, pinned with `--fingerprint`) shows a post-restart
//! change within 1 s of the server answering again. Loopback only, bounded in time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use flashsale_gateway::watch::WatchArgs;
use flashsale_stream_client::{ClientError, StreamEvent, Subscriber};
use serde_json::json;
use support::{free_udp_port, Api, Launch, Server, ADMIN, PARTNER};
use tokio::sync::mpsc;

/// The bound: a change made once the server answers shows within this.
const SHOWN_WITHIN: Duration = Duration::from_secs(1);

/// `flashsale watch`'s flags, parsed as the binary parses them.
#[derive(Debug, Parser)]
struct Watch {
    #[command(flatten)]
    watch: WatchArgs,
}

/// `tee`'s available count in `event`, if the event carries it.
fn tee_available(event: &StreamEvent) -> Option<u64> {
    match event {
        StreamEvent::Snapshot { levels, .. } => levels
            .iter()
            .find(|l| l.sku.as_str() == "tee")
            .map(|l| l.available),
        StreamEvent::Update(u) if u.sku.as_str() == "tee" => Some(u.available),
        _ => None,
    }
}

/// Polls the subscriber without pause (as `flashsale watch` does) and forwards every event
/// with the time it arrived.
fn spawn_watch(mut sub: Subscriber) -> mpsc::UnboundedReceiver<(Instant, StreamEvent)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match sub.next_event().await {
                Ok(event) => {
                    if tx.send((Instant::now(), event)).is_err() {
                        return;
                    }
                }
                Err(e) => panic!("watch gave up: {e}"),
            }
        }
    });
    rx
}

/// Waits (≤ `limit`) for `tee` to show `available`; returns when it arrived and every event
/// seen on the way.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<(Instant, StreamEvent)>,
    available: u64,
    limit: Duration,
) -> (Instant, Vec<StreamEvent>) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, rx.recv()).await;
        let (at, event) = next
            .unwrap_or_else(|_| panic!("tee never showed {available}; saw {seen:?}"))
            .expect("watch task alive");
        let hit = tee_available(&event) == Some(available);
        seen.push(event);
        if hit {
            return (at, seen);
        }
    }
}

/// Starts a server in `dir` with the stream on `quic` (off the async threads: it blocks).
async fn start(dir: std::path::PathBuf, quic: String) -> Server {
    tokio::task::spawn_blocking(move || {
        Server::launch(
            &dir,
            Launch {
                quic: &quic,
                ..Launch::default()
            },
        )
    })
    .await
    .unwrap()
}

/// Watch, stop (`crash`: SIGKILL, else SIGTERM), restart, change, and time the change.
async fn restart_shows_changes_quickly(crash: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let quic = format!("127.0.0.1:{}", free_udp_port());
    let server = start(tmp.path().to_path_buf(), quic.clone()).await;
    let api = Api::new(&server);
    api.put_sku(
        "tee",
        json!({"name": "Tee", "price_cents": 100, "stock": 10}),
    )
    .await;
    let (addr, fingerprint) = server.quic();
    let addr = addr.to_string();
    let watch = Watch::try_parse_from([
        "watch",
        "--server",
        &addr,
        "--token",
        PARTNER,
        "--fingerprint",
        &fingerprint,
        "--sku",
        "tee",
    ])
    .unwrap();
    let sub = Subscriber::connect(watch.watch.client_options().unwrap()).unwrap();
    let mut rx = spawn_watch(sub);
    wait_for(&mut rx, 10, Duration::from_secs(10)).await;

    let mut server = server;
    if crash {
        server.kill();
    } else {
        assert!(server.stop().success());
    }
    // Down for a moment, as a real restart is.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = start(tmp.path().to_path_buf(), quic).await;
    let answering = Instant::now();
    assert_eq!(
        server.quic().1,
        fingerprint,
        "same certificate after restart"
    );
    let api = Api::new(&server);
    let r = api
        .send(
            "POST",
            "/v1/skus/tee/restock",
            Some(ADMIN),
            Some(json!({"qty": 5})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (shown, seen) = wait_for(&mut rx, 15, Duration::from_secs(10)).await;
    let after = shown.saturating_duration_since(answering);
    eprintln!(
        "{}: change shown {:.0} ms after the server answered again",
        if crash { "crash" } else { "graceful stop" },
        after.as_secs_f64() * 1000.0
    );
    assert!(
        after < SHOWN_WITHIN,
        "shown {after:?} after the server answered; events: {seen:?}"
    );
    if crash {
        assert!(
            seen.iter().any(|e| matches!(
                e,
                StreamEvent::Disconnected {
                    error: ClientError::Reset,
                    ..
                }
            )),
            "a crashed server's clients learn of the restart by a stateless reset: {seen:?}"
        );
    }
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_watch_reconnects_at_once() {
    restart_shows_changes_quickly(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_graceful_restart_watch_reconnects_at_once() {
    restart_shows_changes_quickly(false).await;
}
