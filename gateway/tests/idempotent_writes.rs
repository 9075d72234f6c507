//! `Idempotency-Key` on `POST /v1/reservations/{id}/extend` and `POST /v1/skus/{sku}/restock`
//! on the real server (ADR 0015, addendum): a retry after a successful extension returns the
//! same expiry and does not count a second extension, a retried restock adds no stock, also
//! after a restart (the keys are in the log); the same key with another body is
//! `idempotency-mismatch`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::{Api, Reply, Server, ADMIN, SHOP};

/// `POST /v1/reservations/{id}/extend {ttl_s}` with `key`.
async fn extend(api: &Api, id: &str, ttl_s: u64, key: &str) -> Reply {
    api.raw(
        "POST",
        &format!("/v1/reservations/{id}/extend"),
        Some(SHOP),
        Some(json!({ "ttl_s": ttl_s }).to_string()),
        &[
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ],
    )
    .await
}

/// The fields an extension changes.
fn hold(r: &Value) -> (Value, Value) {
    (r["expires_at"].clone(), r["extensions"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_extension_is_made_once_even_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), &[], true);
    let api = Api::new(&server);
    api.put_sku(
        "tee",
        json!({"name": "tee", "price_cents": 100, "stock": 5, "reservation_ttl_s": 300,
               "max_hold_s": 3600, "max_extensions": 3}),
    )
    .await;
    let r = api
        .send(
            "POST",
            "/v1/reservations",
            Some(SHOP),
            Some(json!({"buyer": "ann", "lines": [{"sku": "tee", "qty": 1}]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();

    let first = extend(&api, &id, 900, "ext-1").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["extensions"], 1);
    // The retry (a second later: a redone extension would move the expiry) is the same answer.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let again = extend(&api, &id, 900, "ext-1").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(hold(&again.body), hold(&first.body));
    // The same key with another body.
    let other = extend(&api, &id, 1_200, "ext-1").await;
    assert_eq!(
        (other.status, other.problem()),
        (409, "idempotency-mismatch"),
        "{}",
        other.body
    );
    // Another key is another extension.
    let second = extend(&api, &id, 1_200, "ext-2").await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["extensions"], 2);

    // Durable: after a restart, both retries still answer without extending.
    assert!(server.stop().success());
    let server = Server::start_in(tmp.path(), &[], true);
    let api = Api::new(&server);
    for (ttl_s, key) in [(900, "ext-1"), (1_200, "ext-2")] {
        let r = extend(&api, &id, ttl_s, key).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(hold(&r.body), hold(&second.body));
    }
    let r = api.get(&format!("/v1/reservations/{id}"), SHOP).await;
    assert_eq!(r.body["extensions"], 2);
    assert!(server.stop().success());
}

/// `POST /v1/skus/{sku}/restock {qty}` with `key`.
async fn restock(api: &Api, sku: &str, qty: u64, key: &str) -> Reply {
    api.raw(
        "POST",
        &format!("/v1/skus/{sku}/restock"),
        Some(ADMIN),
        Some(json!({ "qty": qty }).to_string()),
        &[
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_restock_adds_stock_once_even_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), &[], true);
    let api = Api::new(&server);
    api.put_sku(
        "cap",
        json!({"name": "cap", "price_cents": 100, "stock": 5, "reservation_ttl_s": 300}),
    )
    .await;
    let r = restock(&api, "cap", 10, "po-1").await;
    assert_eq!(
        (r.status, r.body["total"].as_u64()),
        (200, Some(15)),
        "{}",
        r.body
    );
    let r = restock(&api, "cap", 10, "po-1").await;
    assert_eq!(
        (r.status, r.body["total"].as_u64()),
        (200, Some(15)),
        "{}",
        r.body
    );
    let r = restock(&api, "cap", 7, "po-1").await;
    assert_eq!(
        (r.status, r.problem()),
        (409, "idempotency-mismatch"),
        "{}",
        r.body
    );
    let r = restock(&api, "cap", 7, "po-2").await;
    assert_eq!(
        (r.status, r.body["total"].as_u64()),
        (200, Some(22)),
        "{}",
        r.body
    );

    assert!(server.stop().success());
    let server = Server::start_in(tmp.path(), &[], true);
    let api = Api::new(&server);
    for (qty, key) in [(10, "po-1"), (7, "po-2")] {
        let r = restock(&api, "cap", qty, key).await;
        assert_eq!(
            (r.status, r.body["total"].as_u64()),
            (200, Some(22)),
            "{}",
            r.body
        );
    }
    let r = api.get("/v1/skus/cap", SHOP).await;
    assert_eq!(r.body["total"].as_u64(), Some(22), "{}", r.body);
    assert!(server.stop().success());
}
