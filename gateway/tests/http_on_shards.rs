//! `serve --http-runtime shards` (the default since ADR 0047; built in ADR 0045): the HTTP
//! API served on the shard executors, one SO_REUSEPORT listener each. The real binary over
//! real HTTP: reserve → confirm → GET for a SKU of each shard, a reservation across both
//! shards, many connections at once (spread over both listeners) selling exactly the stock,
//! h2c (prior knowledge) with concurrent streams, a second server on the same address
//! refused, `--http-runtime tokio` still serving, and a graceful stop; with `--ha`, a
//! leader's new connections served on its shards, a standby's on tokio, and a takeover that
//! moves them.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use flashsale_protocol::SkuId;
use serde_json::{json, Value};
use support::{flashsale, ha_node, wait_role, Api, PgSchema, Server, SHOP};

/// Shards the test server runs (support's `--shards 2`).
const SHARDS: usize = 2;

fn sku_body(stock: u64) -> Value {
    json!({"name": "Tee", "price_cents": 1500, "stock": stock, "reservation_ttl_s": 600})
}

/// The first SKU name `{prefix}-{i}` that lives on `shard`.
fn sku_on(prefix: &str, shard: usize) -> String {
    (0..200)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| {
            let id = SkuId::new(n).expect("valid sku");
            usize::from(flashsale_engine::shard::shard_of(&id, SHARDS)) == shard
        })
        .expect("a SKU on the shard")
}

async fn confirm(api: &Api, id: &str, pay: &str) -> Value {
    let r = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/confirm"),
            Some(SHOP),
            Some(json!({ "payment_ref": pay })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "confirmed");
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_reservations_on_the_shard_executors() {
    // The default runtime: no flag.
    let server = Server::start(&["--rate-limit-buyer-rps", "0"]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("http served on 2 shard executors")),
        "{:?}",
        server.banner
    );
    let api = Api::new(&server);
    let skus: Vec<String> = (0..SHARDS).map(|s| sku_on("tee", s)).collect();
    for sku in &skus {
        assert_eq!(api.put_sku(sku, sku_body(10)).await.status, 201);
    }
    // reserve → confirm → GET, a SKU of each shard.
    for (s, sku) in skus.iter().enumerate() {
        let r = api.reserve(&format!("buyer-{s}"), sku, 2).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["status"], "held");
        let id = r.body["id"].as_str().unwrap().to_owned();
        assert_eq!(api.counts(sku).await, (8, 2, 0));
        let body = confirm(&api, &id, &format!("pay-{s}")).await;
        let order = body["order_id"].as_str().unwrap().to_owned();
        let r = api.get(&format!("/v1/orders/{order}"), SHOP).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["buyer"], format!("buyer-{s}"));
        assert_eq!(r.body["total_cents"], 3000);
        let r = api.get(&format!("/v1/reservations/{id}"), SHOP).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["status"], "confirmed");
        assert_eq!(api.counts(sku).await, (8, 0, 2));
    }
    // One reservation across both shards, all or nothing, then confirmed.
    let body = json!({"buyer": "carol", "lines": [
        {"sku": skus[0], "qty": 1}, {"sku": skus[1], "qty": 1}]});
    let r = api
        .send("POST", "/v1/reservations", Some(SHOP), Some(body))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    confirm(&api, &id, "pay-carol").await;
    for sku in &skus {
        assert_eq!(api.counts(sku).await, (7, 0, 3));
    }
    // An idempotent retry answers with the same reservation.
    let body = json!({"buyer": "dave", "lines": [{"sku": skus[1], "qty": 1}]});
    let headers = [("idempotency-key", "retry-1")];
    let send = || {
        api.raw(
            "POST",
            "/v1/reservations",
            Some(SHOP),
            Some(body.to_string()),
            &headers,
        )
    };
    let first = send().await;
    let again = send().await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["id"], again.body["id"], "{}", again.body);
    assert_eq!(api.counts(&skus[1]).await, (6, 1, 3));

    // 24 clients, 12 per SKU, each on its own connection (spread over both listeners by the
    // kernel), race for the 7 + 6 units left: exactly 13 are held, the rest are sold out.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let sku = skus[i % SHARDS].clone();
        let base = api.base_url();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            let body = json!({"buyer": format!("crowd-{i}"), "lines": [{"sku": sku, "qty": 1}]});
            client
                .post(format!("{base}/v1/reservations"))
                .bearer_auth(SHOP)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut held = 0;
    let mut sold_out = 0;
    for t in tasks {
        match t.await.unwrap() {
            201 => held += 1,
            409 => sold_out += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((held, sold_out), (13, 11));
    assert_eq!(api.counts(&skus[0]).await, (0, 7, 3));
    assert_eq!(api.counts(&skus[1]).await, (0, 7, 3));
    let status = server.stop();
    assert!(status.success(), "{status:?}");
}

/// HTTP/2 with prior knowledge (h2c), as on the tokio server: several connections (spread over
/// both listeners by the kernel), each carrying concurrent reservations as streams that run on
/// the accepting executor; every unit is held exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_h2c_on_the_shard_executors() {
    const CONNECTIONS: usize = 8;
    const STREAMS: usize = 5;
    let server = Server::start(&["--http-runtime", "shards", "--rate-limit-buyer-rps", "0"]);
    let api = Api::new(&server);
    let skus: Vec<String> = (0..SHARDS).map(|s| sku_on("h2", s)).collect();
    // Each SKU gets exactly the units its half of the streams asks for.
    let per_sku = (CONNECTIONS * STREAMS / SHARDS) as u64;
    for sku in &skus {
        assert_eq!(api.put_sku(sku, sku_body(per_sku)).await.status, 201);
    }
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        // One client per connection: reqwest keeps one h2 connection per client and host.
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        for s in 0..STREAMS {
            let client = client.clone();
            let url = server.url("/v1/reservations");
            let sku = skus[(c * STREAMS + s) % SHARDS].clone();
            tasks.push(tokio::spawn(async move {
                let body =
                    json!({"buyer": format!("h2-{c}-{s}"), "lines": [{"sku": sku, "qty": 1}]});
                let res = client
                    .post(url)
                    .bearer_auth(SHOP)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (res.version(), res.status().as_u16())
            }));
        }
    }
    for t in tasks {
        let (version, status) = t.await.unwrap();
        assert_eq!(version, reqwest::Version::HTTP_2);
        assert_eq!(status, 201);
    }
    for sku in &skus {
        assert_eq!(api.counts(sku).await, (0, per_sku, 0));
    }
    let status = server.stop();
    assert!(status.success(), "{status:?}");
}

/// `SO_REUSEPORT` would let a second server join the first one's listeners and take half of
/// its connections (a second engine selling the same stock): the address is probed first, so
/// the second start is refused as a taken port is on the tokio runtime, before it prints a
/// token; the first server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_address_is_refused() {
    let server = Server::start(&["--rate-limit-buyer-rps", "0"]);
    let other = tempfile::tempdir().unwrap();
    let data = other.path().join("data");
    for runtime in ["shards", "tokio"] {
        let (code, out, err) = flashsale(
            &[
                "serve",
                "--http",
                &server.addr,
                "--quic",
                "127.0.0.1:0",
                "--data-dir",
                data.to_str().unwrap(),
                "--http-runtime",
                runtime,
            ],
            &[],
        );
        assert_eq!(code, 1, "{runtime}: refused: {out} {err}");
        assert!(err.contains("cannot listen on --http"), "{runtime}: {err}");
        assert!(!out.contains("token"), "{runtime}: no token printed: {out}");
    }
    let api = Api::new(&server);
    assert_eq!(api.put_sku("solo-tee", sku_body(3)).await.status, 201);
    assert_eq!(
        reserve_fresh(&server, "solo-tee", 4).await,
        [201, 201, 201, 409]
    );
    assert_eq!(api.counts("solo-tee").await, (0, 3, 0));
    let status = server.stop();
    assert!(status.success(), "{status:?}");
}

/// `--http-runtime tokio` keeps the server of before ADR 0047: no connection is served on a
/// shard executor, and every request still reaches its shard. The old flag and the tokio
/// runtime together are refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokio_runtime_still_serves() {
    let server = Server::start(&["--http-runtime", "tokio", "--rate-limit-buyer-rps", "0"]);
    assert!(
        !server.banner.iter().any(|l| l.contains("shard executors")),
        "{:?}",
        server.banner
    );
    let api = Api::new(&server);
    let skus: Vec<String> = (0..SHARDS).map(|s| sku_on("tokio", s)).collect();
    for sku in &skus {
        assert_eq!(api.put_sku(sku, sku_body(2)).await.status, 201);
        assert_eq!(reserve_fresh(&server, sku, 3).await, [201, 201, 409]);
        assert_eq!(api.counts(sku).await, (0, 2, 0));
    }
    let (accepted, on_shards) = connection_counts(&server).await;
    assert!(accepted >= 7, "{accepted}");
    assert_eq!(on_shards, 0, "nothing served on the shards");
    let status = server.stop();
    assert!(status.success(), "{status:?}");

    let (code, _, err) = flashsale(
        &[
            "serve",
            "--http-on-shards",
            "--http-runtime",
            "tokio",
            "--data-dir",
            "/nonexistent",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--http-runtime"), "{err}");
}

/// `(accepted, served on the shards)` connection counters of `server`, read over a fresh
/// connection (counted in both when the shards serve it).
async fn connection_counts(server: &Server) -> (u64, u64) {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    (
        value("flashsale_http_connections_accepted_total "),
        value("flashsale_http_connections_on_shards_total "),
    )
}

/// Sends `n` reservations of one unit of `sku`, each over a fresh connection; their statuses.
async fn reserve_fresh(server: &Server, sku: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for i in 0..n {
        let r = Api::new(server)
            .reserve(&format!("fresh-{i}"), sku, 1)
            .await;
        statuses.push(r.status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_leader_serves_on_its_shards_and_hands_them_over_at_a_takeover() {
    let schema = PgSchema::new("ha_shards");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The earlier experimental flag still selects the (now default) shard runtime.
    let flags = ["--http-on-shards", "--rate-limit-buyer-rps", "0"];
    let mut a = ha_node(da.path(), schema.name(), "a", &flags, None);
    assert!(
        a.banner
            .iter()
            .any(|l| l.contains("http served on the shard executors while leading")),
        "{:?}",
        a.banner
    );
    wait_role(&a, "leader", Duration::from_secs(20)).await;
    let api_a = Api::new(&a);
    assert_eq!(
        api_a.put_sku("ha-shard-tee", sku_body(100)).await.status,
        201
    );

    // The leader: every new connection is served on a shard executor.
    let before = connection_counts(&a).await;
    assert_eq!(reserve_fresh(&a, "ha-shard-tee", 6).await, vec![201; 6]);
    let after = connection_counts(&a).await;
    assert_eq!(
        after.0 - before.0,
        7,
        "six reservations and one metrics read"
    );
    assert_eq!(
        after.1 - before.1,
        7,
        "all on the shards: {before:?} → {after:?}"
    );

    // The standby: no engine, so its connections stay on tokio (503 not-leader).
    let b = ha_node(db.path(), schema.name(), "b", &flags, None);
    wait_role(&b, "standby", Duration::from_secs(20)).await;
    let api_b = Api::new(&b);
    let refused = api_b.reserve("kept", "ha-shard-tee", 1).await;
    assert_eq!((refused.status, refused.problem()), (503, "not-leader"));
    let standby = connection_counts(&b).await;
    assert_eq!(standby.1, 0, "a standby serves on tokio: {standby:?}");

    // Takeover: the new leader's new connections go to its shards; the connection `api_b`
    // opened while it stood by stays on tokio and is served by the new engine too.
    a.kill();
    wait_role(&b, "leader", Duration::from_secs(30)).await;
    let before = connection_counts(&b).await;
    assert_eq!(reserve_fresh(&b, "ha-shard-tee", 4).await, vec![201; 4]);
    let after = connection_counts(&b).await;
    assert_eq!(after.0 - before.0, 5);
    assert_eq!(
        after.1 - before.1,
        5,
        "all on the shards: {before:?} → {after:?}"
    );
    let kept = api_b.reserve("kept", "ha-shard-tee", 1).await;
    assert_eq!(kept.status, 201, "{}", kept.body);
    // Six on the old leader, four and one here: nothing lost, nothing sold twice.
    assert_eq!(api_b.counts("ha-shard-tee").await, (89, 11, 0));
    // A graceful stop while leading drains the term's connections too.
    assert!(b.stop().success());
}
