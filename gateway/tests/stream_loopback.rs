//! The QUIC stock stream over real quinn connections on loopback: snapshot, ordered updates,
//! resume without gaps or duplicates, snapshot when the resume point aged out, heartbeats,
//! certificate trust and shutdown. Every scenario runs against both stream drivers.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod stream_support;

use std::collections::BTreeMap;
use std::time::Duration;

use flashsale_gateway::stream::{StockHub, StreamDriver, TlsIdentity};
use flashsale_stream_client::{
    ClientError, ClientOptions, ErrorCode, StreamEvent, Subscriber, Subscription, Trust,
};
use stream_support::*;

fn expect_connected(ev: StreamEvent, resumed: bool) -> u64 {
    match ev {
        StreamEvent::Connected { epoch, resumed: r } => {
            assert_eq!(r, resumed, "resumed flag");
            epoch
        }
        other => panic!("expected Connected, got {other:?}"),
    }
}

async fn snapshot_then_updates_in_order(driver: StreamDriver) {
    let hub = StockHub::new(1024);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    feed(&hub, level("tee", 10, 0)).await;
    feed(&hub, level("mug", 5, 0)).await;
    feed(&hub, level("tee", 9, 1)).await;

    let mut sub = server.subscriber(Subscription::All);
    expect_connected(next_non_heartbeat(&mut sub).await, false);
    let (seq, levels) = expect_snapshot(next_non_heartbeat(&mut sub).await);
    assert_eq!(seq, 3);
    let want: BTreeMap<String, (u64, u64)> =
        [("mug".to_string(), (5, 0)), ("tee".to_string(), (9, 1))].into();
    assert_eq!(levels, want);

    let mut fed = Vec::new();
    for i in 0..50u64 {
        let name = if i % 3 == 0 { "mug" } else { "tee" };
        let seq = feed(&hub, level(name, 100 - i, i)).await;
        fed.push((seq, name.to_string(), 100 - i, i));
    }
    let mut got = Vec::new();
    while got.len() < fed.len() {
        got.push(expect_update(next_non_heartbeat(&mut sub).await));
    }
    assert_eq!(got, fed);
    assert_eq!(sub.resume_point().map(|p| p.seq), Some(53));
    let stats = stats_once(&server, |s| s.updates_sent == 50).await;
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.active, 1);
    assert_eq!(stats.snapshots_sent, 1);
    assert_eq!(stats.updates_sent, 50);
    server.shutdown().await;
}

async fn filtered_subscription_sees_only_its_skus(driver: StreamDriver) {
    let hub = StockHub::new(1024);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    feed(&hub, level("a", 1, 0)).await;
    feed(&hub, level("b", 2, 0)).await;
    let mut sub = server.subscriber(Subscription::Skus(vec![sku("b"), sku("later")]));
    expect_connected(next_non_heartbeat(&mut sub).await, false);
    let (_, levels) = expect_snapshot(next_non_heartbeat(&mut sub).await);
    assert_eq!(levels.keys().collect::<Vec<_>>(), vec!["b"]);
    for i in 0..20 {
        feed(&hub, level(["a", "b", "later"][i % 3], i as u64, 0)).await;
    }
    let mut got = Vec::new();
    for _ in 0..13 {
        got.push(expect_update(next_non_heartbeat(&mut sub).await));
    }
    assert!(got.iter().all(|(_, s, _, _)| s == "b" || s == "later"));
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    // Nothing else is pending: the next event is a heartbeat.
    let ev = tokio::time::timeout(Duration::from_secs(5), sub.next_event())
        .await
        .expect("heartbeat in time")
        .expect("event");
    assert!(
        matches!(ev, StreamEvent::Heartbeat { seq: 22, .. }),
        "{ev:?}"
    );
    server.shutdown().await;
}

async fn resume_after_a_dropped_connection_has_no_gap_or_duplicate(driver: StreamDriver) {
    let hub = StockHub::new(1024);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    for i in 0..5 {
        feed(&hub, level("tee", 100 - i, i)).await;
    }
    let mut sub = server.subscriber(Subscription::All);
    let epoch = expect_connected(next_non_heartbeat(&mut sub).await, false);
    let (seq, _) = expect_snapshot(next_non_heartbeat(&mut sub).await);
    assert_eq!(seq, 5);
    for i in 5..10 {
        feed(&hub, level("tee", 100 - i, i)).await;
    }
    let mut seqs = Vec::new();
    for _ in 5..10 {
        seqs.push(expect_update(next_non_heartbeat(&mut sub).await).0);
    }

    sub.disconnect();
    // Changes while the client is away.
    for i in 10..60 {
        feed(
            &hub,
            level(if i % 2 == 0 { "tee" } else { "mug" }, 100 - i, i),
        )
        .await;
    }
    assert_eq!(
        sub.resume_point().map(|p| (p.epoch, p.seq)),
        Some((epoch, 10))
    );
    expect_connected(next_non_heartbeat(&mut sub).await, true);
    for _ in 10..60 {
        seqs.push(expect_update(next_non_heartbeat(&mut sub).await).0);
    }
    // Every sequence number from 6 to 60 exactly once, in order.
    assert_eq!(seqs, (6..=60).collect::<Vec<u64>>());
    // And live updates continue after the replay.
    let s = feed(&hub, level("tee", 1, 99)).await;
    assert_eq!(expect_update(next_non_heartbeat(&mut sub).await).0, s);
    assert_eq!(server.stats.snapshot().resumes, 1);
    server.shutdown().await;
}

async fn resume_of_a_filtered_subscription_replays_only_its_skus(driver: StreamDriver) {
    let hub = StockHub::new(1024);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    feed(&hub, level("a", 1, 0)).await;
    let mut sub = server.subscriber(Subscription::Skus(vec![sku("a")]));
    expect_connected(next_non_heartbeat(&mut sub).await, false);
    expect_snapshot(next_non_heartbeat(&mut sub).await);
    sub.disconnect();
    let mut want = Vec::new();
    for i in 0..30u64 {
        let name = if i % 3 == 0 { "a" } else { "b" };
        let seq = feed(&hub, level(name, i, 0)).await;
        if name == "a" {
            want.push((seq, "a".to_string(), i, 0));
        }
    }
    expect_connected(next_non_heartbeat(&mut sub).await, true);
    let mut got = Vec::new();
    while got.len() < want.len() {
        got.push(expect_update(next_non_heartbeat(&mut sub).await));
    }
    assert_eq!(got, want);
    server.shutdown().await;
}

async fn resume_from_a_point_older_than_the_history_gets_a_snapshot(driver: StreamDriver) {
    let hub = StockHub::new(8);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    feed(&hub, level("tee", 100, 0)).await;
    let mut sub = server.subscriber(Subscription::All);
    expect_connected(next_non_heartbeat(&mut sub).await, false);
    expect_snapshot(next_non_heartbeat(&mut sub).await);
    sub.disconnect();
    for i in 1..=40u64 {
        feed(
            &hub,
            level(["tee", "mug", "cap"][(i % 3) as usize], 100 - i, i),
        )
        .await;
    }
    expect_connected(next_non_heartbeat(&mut sub).await, false);
    let (seq, levels) = expect_snapshot(next_non_heartbeat(&mut sub).await);
    assert_eq!(seq, 41);
    let want: BTreeMap<String, (u64, u64)> = [
        ("cap".to_string(), (62, 38)),
        ("mug".to_string(), (60, 40)),
        ("tee".to_string(), (61, 39)),
    ]
    .into();
    assert_eq!(levels, want);
    assert_eq!(server.stats.snapshot().resumes, 0);
    server.shutdown().await;
}

async fn a_restarted_server_answers_an_old_epoch_with_a_snapshot(driver: StreamDriver) {
    let hub = StockHub::new(1024);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    feed(&hub, level("tee", 7, 0)).await;
    let addr = server.addr;
    let mut sub = server.subscriber(Subscription::All);
    let old_epoch = expect_connected(next_non_heartbeat(&mut sub).await, false);
    expect_snapshot(next_non_heartbeat(&mut sub).await);
    server.shutdown().await;

    // Same address, new process state: sequence numbers restart, the epoch differs.
    let hub2 = StockHub::new(1024);
    let server2 = TestServer::start(driver, hub2.clone(), |c| c.addr = addr).await;
    feed(&hub2, level("tee", 3, 4)).await;
    // The old certificate is pinned: the new self-signed one is refused (fatal).
    let mut events = Vec::new();
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(10), sub.next_event()).await {
            Ok(Ok(ev)) => events.push(ev),
            Ok(Err(e)) => break e,
            Err(_) => panic!("no fatal error in time: {events:?}"),
        }
    };
    assert!(matches!(err, ClientError::Tls(_)), "{err}");
    assert!(err.to_string().contains("fingerprint"), "{err}");

    // A client pinning the new certificate but carrying the old epoch gets a snapshot, even
    // though its sequence number exists in the new numbering.
    let options = server2.options();
    let connector =
        flashsale_stream_client::Connector::new(&options.trust, None).expect("connector");
    let stale = flashsale_stream_client::ResumePoint {
        epoch: old_epoch,
        seq: 1,
    };
    let (session, start) =
        flashsale_stream_client::Session::open(&connector, &options, Some(stale))
            .await
            .expect("open");
    assert_ne!(session.epoch(), old_epoch);
    match start {
        flashsale_stream_client::SessionStart::Snapshot { seq, levels } => {
            assert_eq!(seq, 1);
            assert_eq!(levels.len(), 1);
            assert_eq!((levels[0].available, levels[0].sold), (3, 4));
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    // The same point in the new epoch resumes.
    let current = flashsale_stream_client::ResumePoint {
        epoch: session.epoch(),
        seq: 1,
    };
    let (_session, start) =
        flashsale_stream_client::Session::open(&connector, &options, Some(current))
            .await
            .expect("open");
    assert_eq!(
        start,
        flashsale_stream_client::SessionStart::Resumed { seq: 1 }
    );
    server2.shutdown().await;
}

async fn idle_connections_get_heartbeats_with_their_position(driver: StreamDriver) {
    let hub = StockHub::new(16);
    let server = TestServer::start(driver, hub.clone(), |c| {
        c.heartbeat = Duration::from_millis(50)
    })
    .await;
    feed(&hub, level("tee", 1, 0)).await;
    let mut sub = server.subscriber(Subscription::All);
    expect_connected(next_non_heartbeat(&mut sub).await, false);
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

async fn ca_file_trust_and_certificate_files(driver: StreamDriver) {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).expect("write key");

    let hub = StockHub::new(16);
    let (c2, k2) = (cert_path.clone(), key_path.clone());
    let server = TestServer::start(driver, hub.clone(), move |c| {
        c.tls_cert = Some(c2);
        c.tls_key = Some(k2);
    })
    .await;
    let loaded = TlsIdentity::from_pem_files(&cert_path, &key_path).expect("load");
    assert_eq!(server.fingerprint, loaded.fingerprint());
    feed(&hub, level("tee", 5, 0)).await;

    let mut options = ClientOptions::new(server.addr.to_string(), TOKEN, Trust::CaFile(cert_path));
    options.server_name = Some("localhost".into());
    let mut sub = Subscriber::connect(options.clone()).expect("subscriber");
    expect_connected(next_non_heartbeat(&mut sub).await, false);
    let (_, levels) = expect_snapshot(next_non_heartbeat(&mut sub).await);
    assert_eq!(levels.get("tee"), Some(&(5, 0)));

    // The right CA but the wrong name is refused, and that is fatal.
    options.server_name = Some("example.com".into());
    let mut wrong = Subscriber::connect(options).expect("subscriber");
    let err = tokio::time::timeout(Duration::from_secs(5), wrong.next_event())
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(matches!(err, ClientError::Tls(_)), "{err}");
    server.shutdown().await;
}

async fn shutdown_tells_clients_to_come_back(driver: StreamDriver) {
    let hub = StockHub::new(16);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    let mut sub = server.subscriber(Subscription::All);
    expect_connected(next_non_heartbeat(&mut sub).await, false);
    expect_snapshot(next_non_heartbeat(&mut sub).await);
    let stop = tokio::spawn(server.shutdown());
    match next_non_heartbeat(&mut sub).await {
        StreamEvent::Disconnected { error, .. } => match error {
            ClientError::Closed { code, .. } => assert_eq!(code, Some(ErrorCode::ServerShutdown)),
            other => panic!("unexpected error {other}"),
        },
        other => panic!("expected Disconnected, got {other:?}"),
    }
    stop.await.expect("shutdown");
}

async fn watch_command_runs_until_its_update_count(driver: StreamDriver) {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        watch: flashsale_gateway::watch::WatchArgs,
    }
    let hub = StockHub::new(64);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    feed(&hub, level("tee", 9, 0)).await;
    let addr = server.addr.to_string();
    let cli = Cli::try_parse_from([
        "watch",
        "--server",
        addr.as_str(),
        "--token",
        TOKEN,
        "--sku",
        "tee",
        "--fingerprint",
        server.fingerprint.as_str(),
        "--count",
        "3",
    ])
    .expect("flags");
    let watch = tokio::spawn(flashsale_gateway::watch::run(cli.watch));
    // Feed until the watcher has printed three updates and exits.
    let mut available = 1000;
    while !watch.is_finished() {
        available -= 1;
        assert!(available > 900, "watch did not exit after 3 updates");
        feed(&hub, level("tee", available, 1000 - available)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.await.expect("watch task").expect("watch ran");
    server.shutdown().await;
}

/// More subscribers than one of the loop's `sendmmsg` batches carries (64, ADR 0046 addendum),
/// so every publication crosses a batch boundary.
const SUBSCRIBERS: usize = 100;

async fn many_subscribers_each_get_every_update_in_order(driver: StreamDriver) {
    let hub = StockHub::new(1024);
    let server = TestServer::start(driver, hub.clone(), |c| {
        c.max_connections = SUBSCRIBERS + 10;
    })
    .await;
    feed(&hub, level("a", 1, 0)).await;
    let mut all: Vec<Subscriber> = (0..SUBSCRIBERS)
        .map(|_| server.subscriber(Subscription::All))
        .collect();
    let mut only_b = server.subscriber(Subscription::Skus(vec![sku("b")]));
    for sub in all.iter_mut().chain(std::iter::once(&mut only_b)) {
        expect_connected(next_non_heartbeat(sub).await, false);
        expect_snapshot(next_non_heartbeat(sub).await);
    }
    assert_eq!(server.stats.snapshot().active, SUBSCRIBERS as u64 + 1);
    let mut fed = Vec::new();
    for i in 0..30u64 {
        let name = if i % 2 == 0 { "a" } else { "b" };
        let seq = feed(&hub, level(name, 100 - i, i)).await;
        fed.push((seq, name.to_string(), 100 - i, i));
    }
    for sub in &mut all {
        let mut got = Vec::new();
        while got.len() < fed.len() {
            got.push(expect_update(next_non_heartbeat(sub).await));
        }
        assert_eq!(got, fed, "every update once, in order");
    }
    let want_b: Vec<_> = fed.iter().filter(|u| u.1 == "b").cloned().collect();
    let mut got_b = Vec::new();
    while got_b.len() < want_b.len() {
        got_b.push(expect_update(next_non_heartbeat(&mut only_b).await));
    }
    assert_eq!(got_b, want_b);
    let sent = (SUBSCRIBERS * fed.len() + want_b.len()) as u64;
    let stats = stats_once(&server, |s| s.updates_sent == sent).await;
    assert_eq!(stats.snapshots_sent, SUBSCRIBERS as u64 + 1);
    assert_eq!(stats.updates_sent, sent);
    server.shutdown().await;
}

/// Several stream threads are quinn's (the loop runs on one thread, and asking it for more is
/// refused rather than quietly served by one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_several_threads_delivers_every_update_in_order_to_every_subscriber() {
    use flashsale_gateway::stream::{StreamConfig, StreamError, StreamThread};

    let hub = StockHub::new(1024);
    let mut config = StreamConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    config.publish_interval = Duration::ZERO;
    config.max_sends_per_s = 0;
    config.threads = 3;
    config.driver = StreamDriver::Proto;
    let refused = StreamThread::bind(config.clone()).map(|_| ());
    assert!(
        matches!(&refused, Err(StreamError::Config(m)) if m.contains("one thread, not 3")),
        "{refused:?}"
    );
    config.driver = StreamDriver::Quinn;
    let mut stream = StreamThread::bind(config).expect("bind");
    stream.start(hub.clone(), tokens());
    let first = feed(&hub, level("tee", 50, 0)).await;
    let mut subs = Vec::new();
    for _ in 0..12 {
        let mut o = client_options(stream.local_addr(), stream.fingerprint());
        o.subscription = Subscription::All;
        let mut sub = Subscriber::connect(o).expect("subscriber");
        expect_connected(next_non_heartbeat(&mut sub).await, false);
        let (seq, levels) = expect_snapshot(next_non_heartbeat(&mut sub).await);
        assert_eq!(seq, first);
        assert_eq!(levels.get("tee"), Some(&(50, 0)));
        subs.push(sub);
    }
    assert_eq!(stream.stats().snapshot().active, 12);

    let mut fed = Vec::new();
    for i in 1..=40u64 {
        let seq = feed(&hub, level("tee", 50 - i, i)).await;
        fed.push((seq, "tee".to_string(), 50 - i, i));
    }
    for sub in &mut subs {
        let mut got = Vec::new();
        while got.len() < fed.len() {
            got.push(expect_update(next_non_heartbeat(sub).await));
        }
        assert_eq!(got, fed, "every update once, in order");
    }
    tokio::time::timeout(Duration::from_secs(10), stream.stop())
        .await
        .expect("stops in time")
        .expect("stops cleanly");
    for sub in &mut subs {
        match next_non_heartbeat(sub).await {
            StreamEvent::Disconnected {
                error: ClientError::Closed { code, .. },
                ..
            } => assert_eq!(code, Some(ErrorCode::ServerShutdown)),
            other => panic!("expected a shutdown, got {other:?}"),
        }
    }
}

/// A subscriber its program does not read for longer than the client's silence limit (three
/// heartbeats plus 2 s: a busy process, a consumer working through many subscribers) gets the
/// updates that arrived meanwhile: the client reads what is waiting before it calls the
/// server silent. Before this, the late read was a `Timeout` and a reconnect.
async fn a_subscriber_read_late_gets_what_arrived_meanwhile(driver: StreamDriver) {
    let hub = StockHub::new(1024);
    let server = TestServer::start(driver, hub.clone(), |_| {}).await;
    feed(&hub, level("tee", 10, 0)).await;
    let mut sub = server.subscriber(Subscription::All);
    expect_connected(next_non_heartbeat(&mut sub).await, false);
    expect_snapshot(next_non_heartbeat(&mut sub).await);
    let mut fed = Vec::new();
    for i in 1..=3u64 {
        let seq = feed(&hub, level("tee", 10 - i, i)).await;
        fed.push((seq, "tee".to_string(), 10 - i, i));
    }
    // The test server's heartbeat is 200 ms, so the silence limit is 2.6 s.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let mut got = Vec::new();
    while got.len() < fed.len() {
        got.push(expect_update(next_non_heartbeat(&mut sub).await));
    }
    assert_eq!(
        got, fed,
        "the waiting updates, without a reconnect in between"
    );
    let stats = stats_once(&server, |s| s.updates_sent == 3).await;
    assert_eq!(
        stats.accepted, 1,
        "one connection: the client did not reconnect"
    );
    server.shutdown().await;
}

on_both_drivers!(
    snapshot_then_updates_in_order,
    filtered_subscription_sees_only_its_skus,
    resume_after_a_dropped_connection_has_no_gap_or_duplicate,
    resume_of_a_filtered_subscription_replays_only_its_skus,
    resume_from_a_point_older_than_the_history_gets_a_snapshot,
    a_restarted_server_answers_an_old_epoch_with_a_snapshot,
    idle_connections_get_heartbeats_with_their_position,
    ca_file_trust_and_certificate_files,
    shutdown_tells_clients_to_come_back,
    watch_command_runs_until_its_update_count,
    many_subscribers_each_get_every_update_in_order,
    a_subscriber_read_late_gets_what_arrived_meanwhile,
);
