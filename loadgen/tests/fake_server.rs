//! The load generator against an in-process fake server that follows the HTTP contract: counts
//! in the report must equal the server's, and a server that oversells must be caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use clap::Parser;
use flashsale_loadgen::cli::{Args, Config};
use flashsale_loadgen::report::Report;
use support::fake_server::{FakePair, FakeServer, FakeStandby};

async fn run(server: &FakeServer, extra: &[&str]) -> Report {
    let target = format!("http://{}", server.addr);
    let mut argv = vec![
        "flashsale-loadgen",
        "--target",
        &target,
        "--token",
        "store",
        "--admin-token",
        "admin",
        "--quiet",
        "--timeout-ms",
        "3000",
    ];
    argv.extend_from_slice(extra);
    let cfg = Config::from_args(Args::try_parse_from(argv).unwrap(), 42).unwrap();
    flashsale_loadgen::run::run(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_item_counts_match_the_server() {
    let server = FakeServer::start("admin", "store", false).await;
    let r = run(
        &server,
        &[
            "--scenario",
            "hot-item",
            "--connections",
            "200",
            "--duration",
            "2",
            "--stock",
            "500",
            "--sku",
            "hot",
        ],
    )
    .await;
    let (total, available, reserved, sold) = server.counts("hot");
    assert_eq!(
        (total, available, reserved, sold),
        (500, 0, 500, 0),
        "stock sold out"
    );
    assert_eq!(r.ok, 500, "one 201 per unit of stock");
    assert_eq!(r.requests, r.ok + r.sold_out + r.errors_total);
    assert!(r.sold_out > 0);
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert_eq!(r.oversold, Some(0));
    assert_eq!(r.counts_match, Some(true));
    let c = r.check.as_ref().unwrap();
    assert!(c.exact);
    assert_eq!(c.told.held, 500);
    assert_eq!(c.server_held_plus_sold_delta, 500);
    assert_eq!(r.connections.open_at_start, 200);
    assert!(!r.timeline.is_empty());
    assert!(r.latency_us.p50 > 0 && r.latency_us.p50 <= r.latency_us.max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_skus_are_checked_by_deltas() {
    let server = FakeServer::start("admin", "store", false).await;
    let first = [
        "--connections",
        "10",
        "--duration",
        "1",
        "--stock",
        "50",
        "--sku",
        "old",
    ];
    let r = run(&server, &first).await;
    assert_eq!(r.ok, 50);
    let again = [
        "--connections",
        "10",
        "--duration",
        "1",
        "--sku",
        "old",
        "--use-existing",
    ];
    let r = run(&server, &again).await;
    assert!(r.setup.is_none(), "no admin calls");
    assert_eq!((r.ok, r.errors_total), (0, 0));
    assert!(r.sold_out > 0);
    let c = r.check.as_ref().unwrap();
    assert!(c.expiry_possible, "TTL of existing SKUs is unknown");
    assert_eq!(c.client_oversold, None);
    assert_eq!(c.server_held_plus_sold_delta, 0);
    assert!(c.counts_match);
    assert_eq!(r.oversold, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overselling_server_is_caught() {
    let server = FakeServer::start("admin", "store", true).await;
    let r = run(
        &server,
        &[
            "--connections",
            "20",
            "--duration",
            "1",
            "--stock",
            "10",
            "--sku",
            "liar",
        ],
    )
    .await;
    let (_, available, _, _) = server.counts("liar");
    assert!(available < 0);
    assert_eq!(
        r.oversold,
        Some(r.ok.saturating_sub(10) * 2),
        "server and client both see it"
    );
    assert!(r.oversold.unwrap() > 0);
    assert!(r.failed_check());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_catalog_keeps_its_rate() {
    let server = FakeServer::start("admin", "store", false).await;
    let r = run(
        &server,
        &[
            "--scenario",
            "catalog",
            "--skus",
            "20",
            "--connections",
            "50",
            "--duration",
            "2",
            "--rate",
            "400",
            "--stock",
            "1000",
            "--sku",
            "cat",
        ],
    )
    .await;
    // 400/s for 2 s = 800 arrivals, all answered.
    assert_eq!(r.requests, 800, "{:?}", r.errors);
    assert_eq!(r.ok, 800);
    assert_eq!(r.counts_match, Some(true));
    let held: i64 = (0..20).map(|i| server.counts(&format!("cat-{i}")).2).sum();
    assert_eq!(held, 800);
    let head = server.counts("cat-0").2;
    let tail = server.counts("cat-19").2;
    assert!(head > tail, "Zipf head {head} vs tail {tail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_overload_counts_every_due_arrival() {
    // 2 connections to a server taking 50 ms per reservation: at most ~40/s get through, but
    // 200/s are due. Every due arrival must be in the report, the unsent ones as errors with
    // their waiting time, so the percentiles show the overload.
    let slow = std::time::Duration::from_millis(50);
    let server = FakeServer::start_slow("admin", "store", false, slow).await;
    let r = run(
        &server,
        &[
            "--connections",
            "2",
            "--duration",
            "2",
            "--rate",
            "200",
            "--stock",
            "100000",
            "--sku",
            "slow",
        ],
    )
    .await;
    assert_eq!(r.requests, 400, "{:?}", r.errors);
    let not_sent = r.errors.get("not_sent").copied().unwrap_or(0);
    assert!(not_sent > 200, "not_sent {not_sent}");
    assert_eq!(r.ok + not_sent, 400);
    assert_eq!(r.not_sent, not_sent);
    assert!(
        r.throughput_rps < 60.0,
        "throughput counts answers only: {}",
        r.throughput_rps
    );
    assert!(
        r.latency_us.p90 > 500_000,
        "queueing shows: {:?}",
        r.latency_us
    );
    assert_eq!(r.counts_match, Some(true));
    let (_, _, reserved, _) = server.counts("slow");
    assert_eq!(reserved as u64, r.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_confirms_cancels_and_abandons() {
    let server = FakeServer::start("admin", "store", false).await;
    let r = run(
        &server,
        &[
            "--scenario",
            "checkout",
            "--skus",
            "3",
            "--connections",
            "20",
            "--duration",
            "2",
            "--stock",
            "100000",
            "--sku",
            "co",
            "--confirm-share",
            "0.5",
            "--cancel-share",
            "0.25",
            "--reservation-ttl-s",
            "1",
            "--settle-s",
            "2",
        ],
    )
    .await;
    let c = r.check.as_ref().unwrap();
    assert!(c.expiry_possible);
    assert!(c.counts_match, "{c:?}");
    assert_eq!(r.oversold, Some(0));
    let sold: i64 = (0..3).map(|i| server.counts(&format!("co-{i}")).3).sum();
    let reserved: i64 = (0..3).map(|i| server.counts(&format!("co-{i}")).2).sum();
    assert_eq!(
        sold as u64, c.told.confirmed,
        "every acknowledged confirm is a sale"
    );
    assert_eq!(reserved, 0, "abandoned holds expired");
    assert!(r.per_kind.contains_key("confirm") && r.per_kind.contains_key("cancel"));
    assert!(
        c.told.held > c.told.confirmed + c.told.cancelled,
        "some holds were abandoned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_an_error_with_context() {
    let server = FakeServer::start("admin", "store", false).await;
    let target = format!("http://{}", server.addr);
    let argv = [
        "x",
        "--target",
        &target,
        "--token",
        "store",
        "--admin-token",
        "nope",
        "--quiet",
        "--connections",
        "2",
        "--duration",
        "1",
    ];
    let cfg = Config::from_args(Args::try_parse_from(argv).unwrap(), 1).unwrap();
    let err = flashsale_loadgen::run::run(cfg).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("creating SKUs") && msg.contains("401"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_targets_set_up_on_and_load_the_leader() {
    let leader = FakeServer::start("admin", "store", false).await;
    let standby = FakeStandby::start(format!("http://{}", leader.addr)).await;
    // A dead first target (nothing listens), then the standby; the leader is not listed.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let targets = format!("http://{dead},http://{}", standby.addr);
    let argv = vec![
        "flashsale-loadgen",
        "--target",
        &targets,
        "--token",
        "store",
        "--admin-token",
        "admin",
        "--quiet",
        "--timeout-ms",
        "3000",
        "--scenario",
        "hot-item",
        "--connections",
        "20",
        "--duration",
        "1",
        "--stock",
        "50",
        "--sku",
        "ha-hot",
    ];
    let cfg = Config::from_args(Args::try_parse_from(argv).unwrap(), 42).unwrap();
    assert_eq!(cfg.target_urls.len(), 2);
    let r = flashsale_loadgen::run::run(cfg).await.unwrap();
    assert_eq!(r.config.target_url, format!("http://{}", leader.addr));
    let (total, _, reserved, sold) = leader.counts("ha-hot");
    assert_eq!(total, 50, "the SKU was created on the leader");
    assert_eq!(r.ok, 50);
    assert_eq!(reserved + sold, 50);
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert_eq!(r.counts_match, Some(true));
    // The standby saw set-up's first request only: every later one went to the leader.
    assert_eq!(
        standby.refused.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_follow_a_handover_named_by_not_leader() {
    let pair = FakePair::start("admin", "store").await;
    let targets = format!("http://{},http://{}", pair.addrs[0], pair.addrs[1]);
    let argv = vec![
        "flashsale-loadgen",
        "--target",
        &targets,
        "--token",
        "store",
        "--admin-token",
        "admin",
        "--quiet",
        "--timeout-ms",
        "3000",
        "--scenario",
        "checkout",
        "--connections",
        "20",
        "--duration",
        "2",
        "--stock",
        "1000000",
        "--sku",
        "ha-move",
        "--reservation-ttl-s",
        "3600",
    ];
    let cfg = Config::from_args(Args::try_parse_from(argv).unwrap(), 42).unwrap();
    assert!(
        cfg.idempotency_keys,
        "several targets: every reservation has a key"
    );
    // Hand over to node 1 a second into the load.
    let leader = pair.leader.clone();
    let handover = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        leader.store(1, std::sync::atomic::Ordering::SeqCst);
    });
    let r = flashsale_loadgen::run::run(cfg).await.unwrap();
    handover.await.unwrap();
    assert_eq!(r.leader_changes, 1, "{:?}", r.follow);
    let change = &r.follow.changes[0];
    assert_eq!(change.to, format!("http://{}", pair.addrs[1]));
    assert!(change.gap_s.is_some(), "{change:?}");
    assert_eq!(r.follow.leader_at_end, format!("http://{}", pair.addrs[1]));
    assert!(
        pair.refused.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "a not-leader answer led the move"
    );
    assert!(r.follow.retried_requests >= 1, "{:?}", r.follow);
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert_eq!(r.oversold, Some(0));
    assert_eq!(r.counts_match, Some(true));
    let (reserved, sold) = r.config.skus.iter().fold((0, 0), |(r0, s0), sku| {
        let (_, _, r, s) = pair.counts(sku);
        (r0 + r, s0 + s)
    });
    let told = r.check.as_ref().unwrap().told;
    assert_eq!(
        u64::try_from(reserved + sold).unwrap(),
        told.held - told.cancelled,
        "every acknowledged hold (less the cancelled ones) is on the new leader"
    );
}
