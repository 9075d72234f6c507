//! Control of the hold over HTTP on the real server, with the embedded log and with Postgres:
//! `ttl_s` on a reservation (the cart rule), `POST /v1/reservations/{id}/extend` within the
//! SKUs' `max_hold_s` and `max_extensions`, on every part of a cross-shard reservation, durable
//! across a restart, and the expiry timer following the new deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Api, PgSchema, Server, DATABASE_URL, PARTNER, SHOP};

/// Reserves `lines` for `buyer` with an optional `ttl_s`.
async fn reserve(api: &Api, lines: &[&str], ttl_s: Option<u64>) -> support::Reply {
    let lines: Vec<Value> = lines.iter().map(|s| json!({"sku": s, "qty": 1})).collect();
    let mut body = json!({"buyer": "ann", "lines": lines});
    if let Some(t) = ttl_s {
        body["ttl_s"] = json!(t);
    }
    api.send("POST", "/v1/reservations", Some(SHOP), Some(body))
        .await
}

/// `POST /v1/reservations/{id}/extend {ttl_s}`.
async fn extend(api: &Api, id: &str, ttl_s: u64) -> support::Reply {
    api.send(
        "POST",
        &format!("/v1/reservations/{id}/extend"),
        Some(SHOP),
        Some(json!({"ttl_s": ttl_s})),
    )
    .await
}

/// Seconds between two RFC 3339 times of the API.
fn secs_between(from: &Value, to: &Value) -> i64 {
    let t = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp()
    };
    t(to) - t(from)
}

async fn scenario(dir: &std::path::Path, extra: &[&str]) {
    let server = Server::start_in(dir, extra, true);
    let api = Api::new(&server);
    // Six SKUs over the two shards; `short` has the shortest TTL, `tight` the tightest bounds.
    for s in ["a", "b", "c", "d"] {
        api.put_sku(
            s,
            json!({"name": s, "price_cents": 100, "stock": 50, "reservation_ttl_s": 600}),
        )
        .await;
    }
    let r = api
        .put_sku(
            "short",
            json!({"name": "short", "price_cents": 100, "stock": 50, "reservation_ttl_s": 300,
                   "max_hold_s": 900, "max_extensions": 2}),
        )
        .await;
    assert_eq!(
        (
            r.body["max_hold_s"].as_u64(),
            r.body["max_extensions"].as_u64()
        ),
        (Some(900), Some(2))
    );
    let r = api.get("/v1/skus/a", SHOP).await;
    assert_eq!(
        (
            r.body["max_hold_s"].as_u64(),
            r.body["max_extensions"].as_u64()
        ),
        (Some(3600), Some(3)),
        "defaults"
    );
    let r = api
        .put_sku(
            "flash",
            json!({"name": "flash", "price_cents": 100, "stock": 5, "reservation_ttl_s": 1,
                   "max_hold_s": 60}),
        )
        .await;
    assert_eq!(r.status, 201);

    // The cart rule: without ttl_s the shortest TTL of the lines; ttl_s up to it.
    let cart = ["a", "b", "c", "d", "short"];
    let r = reserve(&api, &cart, None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        secs_between(&r.body["created_at"], &r.body["expires_at"]),
        300
    );
    let r = reserve(&api, &cart, Some(301)).await;
    assert_eq!((r.status, r.problem()), (422, "invalid"), "{}", r.body);
    assert_eq!(r.body["sku"], "short");
    assert_eq!(r.body["limit"], 300);
    assert_eq!(r.body["limit_name"], "reservation_ttl_s");
    let r = reserve(&api, &["a"], Some(0)).await;
    assert_eq!((r.status, r.problem()), (422, "invalid"));
    let held = reserve(&api, &cart, Some(120)).await;
    assert_eq!(held.status, 201, "{}", held.body);
    assert_eq!(
        secs_between(&held.body["created_at"], &held.body["expires_at"]),
        120
    );
    let id = held.body["id"].as_str().unwrap().to_owned();

    // Extend the cross-shard cart: all its parts follow, within `short`'s bounds.
    let r = extend(&api, &id, 600).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["extensions"], 1);
    assert_eq!(r.body["lines"].as_array().unwrap().len(), cart.len());
    let after_first = secs_between(&held.body["created_at"], &r.body["expires_at"]);
    assert!((599..=602).contains(&after_first), "{after_first}");
    let r = extend(&api, &id, 901).await;
    assert_eq!((r.status, r.problem()), (422, "invalid"), "{}", r.body);
    assert_eq!(
        (r.body["limit_name"].as_str(), r.body["limit"].as_u64()),
        (Some("max_hold_s"), Some(900))
    );
    assert_eq!((r.body["sku"].as_str()), Some("short"));
    let r = extend(&api, &id, 10).await;
    assert_eq!(r.status, 200, "never shortens: {}", r.body);
    assert_eq!(r.body["extensions"], 2);
    assert_eq!(
        secs_between(&held.body["created_at"], &r.body["expires_at"]),
        after_first
    );
    let r = extend(&api, &id, 60).await;
    assert_eq!((r.status, r.problem()), (422, "invalid"), "{}", r.body);
    assert_eq!(
        (r.body["limit_name"].as_str(), r.body["limit"].as_u64()),
        (Some("max_extensions"), Some(2))
    );
    let before_restart = api.get(&format!("/v1/reservations/{id}"), SHOP).await.body;
    assert_eq!(before_restart["extensions"], 2);

    // Bad input and states.
    let r = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/extend"),
            Some(SHOP),
            Some(json!({"ttl_s": 5, "extra": 1})),
        )
        .await;
    assert_eq!((r.status, r.problem()), (400, "malformed"));
    let r = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/extend"),
            Some(PARTNER),
            Some(json!({"ttl_s": 5})),
        )
        .await;
    assert_eq!((r.status, r.problem()), (403, "forbidden"));
    let r = extend(&api, "res_00000000000000ff", 5).await;
    assert_eq!((r.status, r.problem()), (404, "not-found"));
    let done = reserve(&api, &["a"], None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = api
        .send(
            "POST",
            &format!("/v1/reservations/{done}/cancel"),
            Some(SHOP),
            None,
        )
        .await;
    assert_eq!(c.status, 200);
    let r = extend(&api, &done, 5).await;
    assert_eq!(
        (r.status, r.problem()),
        (409, "invalid-state"),
        "{}",
        r.body
    );
    assert_eq!(r.body["reservation_status"], "released");

    // The expiry timer follows the new deadline: a 1 s hold extended to 3 s outlives 1 s.
    let flash = reserve(&api, &["flash"], None).await;
    let fid = flash.body["id"].as_str().unwrap().to_owned();
    let r = extend(&api, &fid, 3).await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let r = api.get(&format!("/v1/reservations/{fid}"), SHOP).await;
    assert_eq!(r.body["status"], "held", "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = api.get(&format!("/v1/reservations/{fid}"), SHOP).await;
        if r.body["status"] == "expired" {
            break;
        }
        assert!(Instant::now() < deadline, "never expired: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = extend(&api, &fid, 3).await;
    assert_eq!((r.status, r.problem()), (409, "invalid-state"));

    // Durable: the same extension after a restart (replay of the log).
    assert!(server.stop().success());
    let server = Server::start_in(dir, extra, true);
    let api = Api::new(&server);
    let r = api.get(&format!("/v1/reservations/{id}"), SHOP).await;
    assert_eq!(r.body, before_restart);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_on_the_embedded_log() {
    let tmp = tempfile::tempdir().unwrap();
    scenario(tmp.path(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_on_the_postgres_log() {
    // A schema of its own, dropped afterwards; the test fails if Postgres is unreachable.
    let schema = PgSchema::new("holds");
    let tmp = tempfile::tempdir().unwrap();
    scenario(
        tmp.path(),
        &[
            "--database-url",
            DATABASE_URL,
            "--database-schema",
            schema.name(),
        ],
    )
    .await;
}
