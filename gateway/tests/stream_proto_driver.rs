//! The experimental quinn-proto loop (`--stream-driver proto`, ADR 0046) against the real
//! stream client: auth accepted and refused, snapshot, updates in order (fed directly and by
//! reservations in the real engine), resume without gaps, heartbeats, the connection limit,
//! protocol errors and server stop. The whole loopback/abuse/engine suites also run against it
//! with `FLASHSALE_STREAM_DRIVER=proto cargo test -p flashsale-gateway --test stream_loopback`
//! (and `--test stream_abuse`, `--test stream_engine`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod stream_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flashsale_engine::log::memory::MemoryBackend;
use flashsale_engine::{Engine, EngineConfig, ReserveRequest, SystemClock};
use flashsale_gateway::stream::{StockHub, StreamConfig, StreamDriver};
use flashsale_protocol::stream::{encode_frame, ClientFrame, PROTOCOL_VERSION};
use flashsale_protocol::{BuyerId, SkuSpec};
use flashsale_stream_client::{
    ClientError, Connector, ErrorCode, StreamEvent, Subscriber, Subscription, Trust,
};
use stream_support::*;

/// Test servers of this file run the quinn-proto loop.
fn proto(c: &mut StreamConfig) {
    c.driver = StreamDriver::Proto;
}

async fn start(hub: &Arc<StockHub>, tweak: impl FnOnce(&mut StreamConfig)) -> TestServer {
    TestServer::start(hub.clone(), |c| {
        proto(c);
        tweak(c);
    })
    .await
}

fn connected(ev: StreamEvent) -> (u64, bool) {
    match ev {
        StreamEvent::Connected { epoch, resumed } => (epoch, resumed),
        other => panic!("expected Connected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_driver_sends_a_snapshot_then_every_update_in_order() {
    let hub = StockHub::new(1024);
    let server = start(&hub, |_| {}).await;
    feed(&hub, level("tee", 10, 0)).await;
    feed(&hub, level("mug", 5, 0)).await;
    feed(&hub, level("tee", 9, 1)).await;

    let mut sub = server.subscriber(Subscription::All);
    assert!(
        !connected(next_non_heartbeat(&mut sub).await).1,
        "a new session is not resumed"
    );
    let (seq, levels) = expect_snapshot(next_non_heartbeat(&mut sub).await);
    assert_eq!(seq, 3);
    let want: BTreeMap<String, (u64, u64)> =
        [("mug".to_string(), (5, 0)), ("tee".to_string(), (9, 1))].into();
    assert_eq!(levels, want);

    let mut fed = Vec::new();
    for i in 0..200u64 {
        let name = if i % 3 == 0 { "mug" } else { "tee" };
        let seq = feed(&hub, level(name, 1_000 - i, i)).await;
        fed.push((seq, name.to_string(), 1_000 - i, i));
    }
    let mut got = Vec::new();
    while got.len() < fed.len() {
        got.push(expect_update(next_non_heartbeat(&mut sub).await));
    }
    assert_eq!(got, fed);
    let stats = server.stats.snapshot();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.active, 1);
    assert_eq!(stats.snapshots_sent, 1);
    assert_eq!(stats.updates_sent, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_driver_fans_out_to_many_subscribers_and_filters() {
    let hub = StockHub::new(1024);
    let server = start(&hub, |_| {}).await;
    feed(&hub, level("a", 1, 0)).await;
    let mut all: Vec<Subscriber> = (0..20)
        .map(|_| server.subscriber(Subscription::All))
        .collect();
    let mut only_b = server.subscriber(Subscription::Skus(vec![sku("b")]));
    for sub in all.iter_mut().chain(std::iter::once(&mut only_b)) {
        connected(next_non_heartbeat(sub).await);
        expect_snapshot(next_non_heartbeat(sub).await);
    }
    let mut fed = Vec::new();
    for i in 0..30u64 {
        let name = if i % 2 == 0 { "a" } else { "b" };
        fed.push(feed(&hub, level(name, 100 - i, i)).await);
    }
    for sub in &mut all {
        let mut seqs = Vec::new();
        while seqs.len() < fed.len() {
            seqs.push(expect_update(next_non_heartbeat(sub).await).0);
        }
        assert_eq!(seqs, fed);
    }
    for _ in 0..15 {
        assert_eq!(expect_update(next_non_heartbeat(&mut only_b).await).1, "b");
    }
    assert_eq!(server.stats.snapshot().active, 21);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_driver_resumes_without_gap_or_duplicate() {
    let hub = StockHub::new(1024);
    let server = start(&hub, |_| {}).await;
    for i in 0..5 {
        feed(&hub, level("tee", 100 - i, i)).await;
    }
    let mut sub = server.subscriber(Subscription::All);
    let (epoch, _) = connected(next_non_heartbeat(&mut sub).await);
    assert_eq!(expect_snapshot(next_non_heartbeat(&mut sub).await).0, 5);
    for i in 5..10 {
        feed(&hub, level("tee", 100 - i, i)).await;
    }
    let mut seqs = Vec::new();
    for _ in 5..10 {
        seqs.push(expect_update(next_non_heartbeat(&mut sub).await).0);
    }
    sub.disconnect();
    for i in 10..60 {
        feed(&hub, level("mug", 100 - i, i)).await;
    }
    assert_eq!(
        sub.resume_point().map(|p| (p.epoch, p.seq)),
        Some((epoch, 10))
    );
    assert_eq!(connected(next_non_heartbeat(&mut sub).await), (epoch, true));
    for _ in 10..60 {
        seqs.push(expect_update(next_non_heartbeat(&mut sub).await).0);
    }
    assert_eq!(seqs, (6..=60).collect::<Vec<u64>>());
    let s = feed(&hub, level("tee", 1, 99)).await;
    assert_eq!(expect_update(next_non_heartbeat(&mut sub).await).0, s);
    assert_eq!(server.stats.snapshot().resumes, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_driver_sends_heartbeats_with_the_position() {
    let hub = StockHub::new(16);
    let server = start(&hub, |c| c.heartbeat = Duration::from_millis(50)).await;
    feed(&hub, level("tee", 1, 0)).await;
    let mut sub = server.subscriber(Subscription::All);
    connected(next_non_heartbeat(&mut sub).await);
    expect_snapshot(next_non_heartbeat(&mut sub).await);
    let mut beats = 0;
    while beats < 3 {
        match tokio::time::timeout(Duration::from_secs(5), sub.next_event())
            .await
            .expect("heartbeat in time")
            .expect("event")
        {
            StreamEvent::Heartbeat {
                seq,
                server_time_us,
            } => {
                assert_eq!(seq, 1);
                assert!(server_time_us > 0);
                beats += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(server.stats.snapshot().heartbeats_sent >= 3);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_driver_refuses_bad_tokens_and_accepts_every_role() {
    let hub = StockHub::new(16);
    let server = start(&hub, |_| {}).await;
    let mut options = server.options();
    options.token = "wrong".into();
    let mut sub = Subscriber::connect(options).expect("subscriber");
    let err = tokio::time::timeout(Duration::from_secs(5), sub.next_event())
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(err.is_fatal(), "{err}");
    assert!(
        matches!(
            err,
            ClientError::Closed {
                code: Some(ErrorCode::Unauthorized),
                ..
            }
        ),
        "{err}"
    );
    let mut options = server.options();
    options.token = "shop-token".into();
    let mut sub = Subscriber::connect(options).expect("subscriber");
    connected(next_non_heartbeat(&mut sub).await);
    expect_snapshot(next_non_heartbeat(&mut sub).await);
    let stats = server.stats.snapshot();
    assert_eq!(stats.unauthorized, 1);
    assert_eq!(stats.active, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_driver_closes_on_protocol_errors_and_handshake_timeouts() {
    let hub = StockHub::new(16);
    let server = start(&hub, |c| c.handshake_timeout = Duration::from_millis(300)).await;
    let connector = Connector::new(&Trust::Insecure, None).expect("connector");

    // Subscribe before Hello: a protocol violation, closed with its code.
    let conn = connector
        .connect(server.addr, "localhost")
        .await
        .expect("connect");
    let (mut send, _recv) = conn.open_bi().await.expect("stream");
    let mut bytes = Vec::new();
    encode_frame(
        &ClientFrame::Subscribe {
            subscription: Subscription::All,
        },
        1 << 20,
        &mut bytes,
    )
    .expect("encode");
    send.write_all(&bytes).await.expect("write");
    let closed: ClientError = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed in time")
        .into();
    assert!(
        matches!(
            closed,
            ClientError::Closed {
                code: Some(ErrorCode::ProtocolViolation),
                ..
            }
        ),
        "{closed}"
    );

    // Hello but no Subscribe: closed at the handshake timeout.
    let conn = connector
        .connect(server.addr, "localhost")
        .await
        .expect("connect");
    let (mut send, _recv) = conn.open_bi().await.expect("stream");
    let mut bytes = Vec::new();
    encode_frame(
        &ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            token: TOKEN.into(),
            resume_from: None,
        },
        1 << 20,
        &mut bytes,
    )
    .expect("encode");
    send.write_all(&bytes).await.expect("write");
    let closed: ClientError = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed in time")
        .into();
    assert!(
        matches!(
            closed,
            ClientError::Closed {
                code: Some(ErrorCode::HandshakeTimeout),
                ..
            }
        ),
        "{closed}"
    );
    let stats = server.stats.snapshot();
    assert_eq!(stats.protocol_errors, 1);
    assert_eq!(stats.active, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_driver_refuses_connections_over_the_limit() {
    let hub = StockHub::new(16);
    let server = start(&hub, |c| c.max_connections = 1).await;
    let mut first = server.subscriber(Subscription::All);
    connected(next_non_heartbeat(&mut first).await);
    let mut second = server.subscriber(Subscription::All);
    match next_non_heartbeat(&mut second).await {
        StreamEvent::Disconnected { error, .. } => assert!(!error.is_fatal(), "{error}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(server.stats.snapshot().refused_busy >= 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_driver_stop_tells_clients_to_come_back() {
    let hub = StockHub::new(16);
    let server = start(&hub, |_| {}).await;
    let mut sub = server.subscriber(Subscription::All);
    connected(next_non_heartbeat(&mut sub).await);
    expect_snapshot(next_non_heartbeat(&mut sub).await);
    let stop = tokio::spawn(server.shutdown());
    match next_non_heartbeat(&mut sub).await {
        StreamEvent::Disconnected { error, .. } => match error {
            ClientError::Closed { code, .. } => assert_eq!(code, Some(ErrorCode::ServerShutdown)),
            other => panic!("unexpected error {other}"),
        },
        other => panic!("expected Disconnected, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("stops in time")
        .expect("shutdown");
}

const STOCK: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_driver_streams_the_engines_reservations() {
    let hub = StockHub::new(4096);
    let mut cfg = EngineConfig::new(Arc::new(MemoryBackend::new()), Arc::new(SystemClock));
    cfg.shards = 2;
    cfg.pin_cores = false;
    cfg.observer = Some(hub.clone());
    let engine = tokio::task::spawn_blocking(move || Engine::start(cfg))
        .await
        .expect("start task")
        .expect("engine starts");
    engine
        .upsert_sku(SkuSpec {
            sku: sku("tee"),
            name: "tee".into(),
            price_cents: 1_000,
            stock: STOCK,
            per_buyer_limit: None,
            sale_starts_at_ms: None,
            sale_ends_at_ms: None,
            reservation_ttl_ms: 60_000,
            max_hold_ms: flashsale_protocol::default_max_hold_ms(60_000),
            max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
        })
        .await
        .expect("upsert");
    hub.seed(&engine.stock_levels().await);
    let server = start(&hub, |_| {}).await;
    let mut sub = server.subscriber(Subscription::All);
    connected(next_non_heartbeat(&mut sub).await);
    let (_, levels) = expect_snapshot(next_non_heartbeat(&mut sub).await);
    assert_eq!(levels.get("tee"), Some(&(STOCK, 0)));

    for i in 0..10u32 {
        let r = engine
            .reserve(ReserveRequest {
                buyer: BuyerId::new(format!("buyer-{i}")).unwrap(),
                lines: vec![(sku("tee"), 1)],
                idempotency_key: None,
                ttl_ms: None,
            })
            .await
            .expect("reserve");
        engine
            .confirm(r.id, format!("pay-{i}"))
            .await
            .expect("confirm");
    }
    // The subscriber converges on 10 sold; every update is a consistent level.
    let mut sold = 0;
    while sold < 10 {
        match next_non_heartbeat(&mut sub).await {
            StreamEvent::Update(u) => {
                assert_eq!(u.available + u.reserved + u.sold, STOCK, "{u:?}");
                sold = u.sold;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sold, 10);
    server.shutdown().await;
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .expect("engine shutdown");
}
