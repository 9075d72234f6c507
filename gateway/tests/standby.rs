//! A live standby (issue 14, ADR 0026): it tails the leader's log and applies each committed
//! record to its own state, answers reads from it marked `Flashsale-Role: standby` and
//! `Flashsale-Lag-Records`, still refuses writes with `503 not-leader`, reports its real lag
//! in `/v1/cluster`, and at a takeover replays only the records it had not applied yet.
//! Real processes on a Postgres schema of the test's own.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Api, PgSchema, Reply, Server, ADMIN, SHOP};

/// Polls `GET /v1/cluster` on `api` until `done` holds (bounded by `limit`).
async fn wait_view(api: &Api, what: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let r = api.get("/v1/cluster", ADMIN).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if done(&r.body) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "not {what} within {limit:?}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A header's value as text.
fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `GET path` on the standby until it answers 200 from its followed state with the leader's
/// body (bounded by `limit`); returns the standby's reply.
async fn read_like_leader(leader: &Api, standby: &Api, path: &str, limit: Duration) -> Reply {
    let want = leader.get(path, SHOP).await;
    assert_eq!(want.status, 200, "{path} on the leader: {}", want.body);
    assert_eq!(
        header(&want, "flashsale-role"),
        None,
        "a leader's read is unmarked"
    );
    let deadline = Instant::now() + limit;
    loop {
        let r = standby.get(path, SHOP).await;
        if r.status == 200 && r.body == want.body {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{path} on the standby never matched the leader's {}: {} {}",
            want.body,
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_standby_serves_reads_with_its_lag_and_takes_over_from_its_position() {
    let schema = PgSchema::new("standby_live");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = node(da.path(), schema.name(), "a");
    let api_a = Api::new(&a);
    wait_view(&api_a, "leader", Duration::from_secs(20), |v| {
        v["role"] == "leader"
    })
    .await;
    let b = node(db.path(), schema.name(), "b");
    let api_b = Api::new(&b);
    wait_view(&api_b, "a standby naming a", Duration::from_secs(10), |v| {
        v["role"] == "standby" && v["leader_url"] == format!("http://{}", a.addr)
    })
    .await;

    // Records committed by the leader after the standby joined: a SKU, 12 reservations
    // (two buyers), one confirmed, one cancelled.
    api_a
        .put_sku(
            "live-tee",
            json!({"name": "Live tee", "price_cents": 1500, "stock": 40, "reservation_ttl_s": 3600}),
        )
        .await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let buyer = if i % 2 == 0 { "kim" } else { "lee" };
        let r = api_a.reserve(buyer, "live-tee", 1).await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let confirmed = api_a
        .send(
            "POST",
            &format!("/v1/reservations/{}/confirm", ids[0]),
            Some(SHOP),
            Some(json!({"payment_ref": "pay-1"})),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let order = confirmed.body["order_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no order id in {}", confirmed.body))
        .to_owned();
    let cancelled = api_a
        .send(
            "POST",
            &format!("/v1/reservations/{}/cancel", ids[1]),
            Some(SHOP),
            None,
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);

    // The standby's reads catch up with the leader's and are marked with its role and lag.
    let limit = Duration::from_secs(10);
    let sku = read_like_leader(&api_a, &api_b, "/v1/skus/live-tee", limit).await;
    assert_eq!(header(&sku, "flashsale-role"), Some("standby"));
    let lag: u64 = header(&sku, "flashsale-lag-records")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no lag header: {:?}", sku.headers));
    assert!(lag <= 20, "lag {lag}");
    assert_eq!(
        (
            &sku.body["available"],
            &sku.body["reserved"],
            &sku.body["sold"]
        ),
        (&json!(29), &json!(10), &json!(1))
    );
    read_like_leader(&api_a, &api_b, "/v1/skus", limit).await;
    for id in [&ids[0], &ids[1], &ids[5]] {
        read_like_leader(&api_a, &api_b, &format!("/v1/reservations/{id}"), limit).await;
    }
    read_like_leader(&api_a, &api_b, &format!("/v1/orders/{order}"), limit).await;
    let list = read_like_leader(&api_a, &api_b, "/v1/reservations?buyer=kim", limit).await;
    assert_eq!(
        list.body["items"].as_array().map(Vec::len),
        Some(6),
        "{}",
        list.body
    );
    read_like_leader(&api_a, &api_b, "/v1/orders?buyer=kim", limit).await;
    let unknown = api_b.get("/v1/skus/no-such-sku", SHOP).await;
    assert_eq!(
        (unknown.status, header(&unknown, "flashsale-role")),
        (404, Some("standby"))
    );
    // Writes and /ready still refuse, naming the leader.
    let refused = api_b.reserve("kim", "live-tee", 1).await;
    assert_eq!((refused.status, refused.problem()), (503, "not-leader"));
    assert_eq!(refused.body["leader_url"], format!("http://{}", a.addr));
    assert_eq!(api_b.send("GET", "/ready", None, None).await.status, 503);
    // Its lag in /v1/cluster: the records it has not applied (0 once idle), at the log's
    // position: 15 records (the SKU, 12 reservations, a confirmation, a cancellation).
    let b_view = wait_view(&api_b, "caught up", limit, |v| {
        v["lag"] == 0 && v["log_position"] == 15
    })
    .await;
    let position = b_view["log_position"].as_u64().unwrap();
    wait_view(&api_a, "at the same position", limit, |v| {
        v["log_position"] == 15
    })
    .await;

    // The leader dies; the standby takes over from its followed position (replaying nothing
    // it already applied) and serves the same state.
    a.kill();
    wait_view(&api_b, "leader", Duration::from_secs(5), |v| {
        v["role"] == "leader"
    })
    .await;
    let log = std::fs::read_to_string(db.path().join("stderr.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("leading") && l.contains("followed_records="))
        .unwrap_or_else(|| panic!("no takeover line in {log}"));
    let followed: u64 = line
        .split("followed_records=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(
        followed, position,
        "the takeover started from the followed state: {line}"
    );
    assert_eq!(api_b.counts("live-tee").await, (29, 10, 1));
    let after = api_b.get("/v1/skus/live-tee", SHOP).await;
    assert_eq!(
        header(&after, "flashsale-role"),
        None,
        "the leader's reads are unmarked"
    );
    let r = api_b.reserve("kim", "live-tee", 1).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let again = api_b
        .get(&format!("/v1/reservations/{}", ids[2]), SHOP)
        .await;
    assert_eq!((again.status, &again.body["status"]), (200, &json!("held")));
    b.stop();
}

/// `n` reservations of one unit (distinct buyers) on `api`, 32 at a time.
async fn fill(api: &Api, sku: &str, n: usize) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..32)
        .map(|w| {
            let (api, next, sku) = (api.clone(), next.clone(), sku.to_owned());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let r = api.reserve(&format!("f{w}-{i}"), &sku, 1).await;
                    assert_eq!(r.status, 201, "{}", r.body);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}

/// Takeover times (SIGKILL of the leader → first reservation acknowledged by the survivor)
/// over `cycles` kills on a log of `records` reservations, standbys following the log or not.
async fn takeovers(follow: bool, records: usize, cycles: usize) -> Vec<Duration> {
    let schema = PgSchema::new(if follow {
        "standby_t_on"
    } else {
        "standby_t_off"
    });
    let dirs: Vec<_> = (0..=cycles + 1)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut leader = node_following(dirs[0].path(), schema.name(), "t0", follow);
    wait_view(&Api::new(&leader), "leader", Duration::from_secs(20), |v| {
        v["role"] == "leader"
    })
    .await;
    let sku =
        json!({"name": "T", "price_cents": 100, "stock": 10_000_000, "reservation_ttl_s": 3600});
    Api::new(&leader).put_sku("t-tee", sku).await;
    fill(&Api::new(&leader), "t-tee", records).await;
    let ready = |s: &Server| {
        let api = Api::new(s);
        async move {
            wait_view(&api, "a caught-up standby", Duration::from_secs(120), |v| {
                v["role"] == "standby" && v["leader_url"].is_string() && (!follow || v["lag"] == 0)
            })
            .await
        }
    };
    let mut standby = node_following(dirs[1].path(), schema.name(), "t1", follow);
    ready(&standby).await;
    let mut out = Vec::new();
    for cycle in 0..cycles {
        leader.kill();
        let killed_at = Instant::now();
        let api = Api::new(&standby);
        let deadline = killed_at + Duration::from_secs(60);
        loop {
            let r = api.reserve(&format!("k{cycle}"), "t-tee", 1).await;
            if r.status == 201 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: no takeover: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        out.push(killed_at.elapsed());
        println!(
            "follow={follow} cycle {cycle}: takeover {} ms",
            out[cycle].as_millis()
        );
        let next = node_following(
            dirs[cycle + 2].path(),
            schema.name(),
            &format!("t{}", cycle + 2),
            follow,
        );
        leader = std::mem::replace(&mut standby, next);
        ready(&standby).await;
    }
    standby.stop();
    leader.stop();
    out
}

/// The takeover time with and without a live standby, in one run (docs/benchmarks.md):
/// `STANDBY_BENCH_RECORDS` reservations in the log (default 20 000, fewer than a snapshot's
/// period, so a standby without a copy replays them all), `STANDBY_BENCH_CYCLES` kills each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: cargo test -p flashsale-gateway --test standby -- --ignored --nocapture"]
async fn takeover_time_with_and_without_a_live_standby() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (records, cycles) = (
        env("STANDBY_BENCH_RECORDS", 20_000),
        env("STANDBY_BENCH_CYCLES", 5),
    );
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let off = median(takeovers(false, records, cycles).await);
    let on = median(takeovers(true, records, cycles).await);
    println!(
        "log of {records} reservations, {cycles} kills each: median takeover without a live \
         standby {} ms, with one {} ms ({:.1}x)",
        off.as_millis(),
        on.as_millis(),
        off.as_secs_f64() / on.as_secs_f64().max(1e-6)
    );
    assert!(on < Duration::from_secs(5) && off < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_live_copy_a_standby_refuses_reads_and_still_takes_over() {
    let schema = PgSchema::new("standby_off");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = node_following(da.path(), schema.name(), "a", false);
    let api_a = Api::new(&a);
    wait_view(&api_a, "leader", Duration::from_secs(20), |v| {
        v["role"] == "leader"
    })
    .await;
    let b = node_following(db.path(), schema.name(), "b", false);
    let api_b = Api::new(&b);
    wait_view(&api_b, "a standby naming a", Duration::from_secs(10), |v| {
        v["role"] == "standby" && v["leader_url"].is_string()
    })
    .await;
    api_a
        .put_sku(
            "off-tee",
            json!({"name": "Off tee", "price_cents": 100, "stock": 10, "reservation_ttl_s": 3600}),
        )
        .await;
    assert_eq!(api_a.reserve("kim", "off-tee", 2).await.status, 201);
    // Its reads are refused like writes, naming the leader; /v1/cluster's lag is what a
    // takeover would replay (the whole log here: no snapshot yet).
    let r = api_b.get("/v1/skus/off-tee", SHOP).await;
    assert_eq!((r.status, r.problem()), (503, "not-leader"));
    assert_eq!(r.body["leader_url"], format!("http://{}", a.addr));
    assert_eq!(header(&r, "flashsale-role"), None);
    wait_view(
        &api_b,
        "lagging by the whole log",
        Duration::from_secs(10),
        |v| v["log_position"] == 2 && v["lag"] == 2,
    )
    .await;
    a.kill();
    wait_view(&api_b, "leader", Duration::from_secs(5), |v| {
        v["role"] == "leader"
    })
    .await;
    assert_eq!(api_b.counts("off-tee").await, (8, 2, 0));
    b.stop();
}

/// A node of the group logging at info level to `<dir>/stderr.log`.
fn node(dir: &Path, schema: &str, node_id: &str) -> Server {
    let log = dir.join("stderr.log");
    support::ha_node(dir, schema, node_id, &["--log-level", "info"], Some(&log))
}

/// Starts node `node_id` with `--ha-follow follow` (info log in `dir/stderr.log`).
fn node_following(dir: &Path, schema: &str, node_id: &str, follow: bool) -> Server {
    let log = dir.join("stderr.log");
    let follow = if follow { "true" } else { "false" };
    support::ha_node(dir, schema, node_id, &["--ha-follow", follow], Some(&log))
}
