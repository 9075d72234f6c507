//! The waiting room over HTTP: queue configuration (admin, 422 naming the field), joins
//! (idempotent, unknown and closed queues), polls (own tickets only), and the pass check on
//! reservations of queued SKUs (403 `pass-required`, `pass-invalid` with a reason each), and a
//! restart after the journal was compacted.

use std::sync::Arc;

use flashsale_engine::ManualClock;
use flashsale_waiting_room::PassKey;
use serde_json::{json, Value};

use super::fake::Fake;
use super::{app, buyer_token, call, call_with, problem_type, seed, Reply};
use crate::http::App;
use crate::waiting_room::QueueService;

/// 2030-01-01T00:00:00Z in Unix ms.
const T0: u64 = 1_893_456_000_000;

/// An API over a fake with a waiting room on a manual clock at `T0`.
fn queued_app() -> (App<Fake>, Arc<QueueService>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let service = Arc::new(
        QueueService::new(PassKey::new([5; 32]), 1, clock.clone(), None, Vec::new()).unwrap(),
    );
    (app().with_queues(service.clone()), service, clock)
}

fn queue_body() -> Value {
    json!({
        "skus": ["tee"],
        "prequeue_opens_at": "2030-01-01T00:00:00Z",
        "starts_at": "2030-01-01T00:01:00Z",
        "admit_per_s": 10,
        "max_active": 100,
        "pass_ttl_s": 60,
        "method": "fifo"
    })
}

async fn put_queue(app: &App<Fake>, body: &Value) -> Reply {
    call(
        app,
        "PUT",
        "/v1/queues/drop",
        Some("adm"),
        &body.to_string(),
    )
    .await
}

async fn join(app: &App<Fake>, buyer: &str) -> Reply {
    let body = json!({ "buyer": buyer }).to_string();
    call(app, "POST", "/v1/queues/drop/join", Some("shop"), &body).await
}

async fn reserve(app: &App<Fake>, buyer: &str, sku: &str, pass: Option<&str>) -> Reply {
    reserve_with(app, buyer, sku, pass, None).await
}

/// One unit of `sku` for `buyer`, with a pass and an `Idempotency-Key` if given.
async fn reserve_with(
    app: &App<Fake>,
    buyer: &str,
    sku: &str,
    pass: Option<&str>,
    key: Option<&str>,
) -> Reply {
    let body = json!({"buyer": buyer, "lines": [{"sku": sku, "qty": 1}]}).to_string();
    let headers: Vec<(&str, &str)> = [("flashsale-pass", pass), ("idempotency-key", key)]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| (name, v)))
        .collect();
    call_with(
        app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        &body,
        &headers,
    )
    .await
}

/// Creates the queue and the SKU, joins `buyers` in the pre-queue, starts and admits.
async fn admitted_app(buyers: &[&str]) -> (App<Fake>, Arc<QueueService>, Arc<ManualClock>) {
    let (app, service, clock) = queued_app();
    seed(&app, "tee", 10).await;
    seed(&app, "free", 10).await;
    assert_eq!(put_queue(&app, &queue_body()).await.status, 201);
    for b in buyers {
        assert_eq!(join(&app, b).await.status, 202);
    }
    clock.set(T0 + 60_000);
    service.tick(app.inventory()).await.unwrap();
    clock.set(T0 + 61_000);
    service.tick(app.inventory()).await.unwrap();
    (app, service, clock)
}

async fn pass_of(app: &App<Fake>, ticket: &str) -> String {
    let r = call(
        app,
        "GET",
        &format!("/v1/queues/drop/tickets/{ticket}"),
        Some("shop"),
        "",
    )
    .await;
    assert_eq!(r.body["status"], "admitted", "{}", r.body);
    r.body["pass"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn queues_are_configured_by_admins_and_bad_fields_are_named() {
    let (app, _, _) = queued_app();
    let r = put_queue(&app, &queue_body()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers["location"], "/v1/queues/drop");
    assert_eq!(r.body["status"], "scheduled");
    assert_eq!(r.body["waiting"], 0);
    assert_eq!(r.body["overbooking_pct"], 100, "default");
    assert_eq!(put_queue(&app, &queue_body()).await.status, 200);
    let r = call(
        &app,
        "PUT",
        "/v1/queues/drop",
        Some("shop"),
        &queue_body().to_string(),
    )
    .await;
    assert_eq!(r.status, 403);
    let cases = [
        ("admit_per_s", json!(0)),
        ("admit_per_s", json!(-1)),
        ("max_active", json!(0)),
        ("pass_ttl_s", json!(100_000)),
        ("method", json!("lifo")),
        ("starts_at", json!("tomorrow")),
        ("prequeue_opens_at", json!("2030-01-01T00:02:00Z")),
        ("skus", json!([])),
        ("skus", json!(["bad sku"])),
        ("overbooking_pct", json!(50)),
    ];
    for (field, value) in cases {
        let mut body = queue_body();
        body[field] = value.clone();
        let r = put_queue(&app, &body).await;
        assert_eq!(r.status, 422, "{field}={value}: {}", r.body);
        assert_eq!(r.body["field"], field, "{field}={value}: {}", r.body);
    }
    let r = call(
        &app,
        "PUT",
        "/v1/queues/bad%20name",
        Some("adm"),
        &queue_body().to_string(),
    )
    .await;
    assert_eq!(r.status, 422);
    let mut body = queue_body();
    body["colour"] = json!("red");
    assert_eq!(
        put_queue(&app, &body).await.status,
        400,
        "unknown fields are refused"
    );
}

#[tokio::test]
async fn joins_are_idempotent_and_unknown_or_closed_queues_are_clear() {
    let (app, _, clock) = queued_app();
    let r = join(&app, "alice").await;
    assert_eq!((r.status, problem_type(&r)), (404, "not-found"));
    let mut body = queue_body();
    body["prequeue_opens_at"] = json!("2030-01-01T00:00:30Z");
    put_queue(&app, &body).await;
    let r = join(&app, "alice").await;
    assert_eq!((r.status, problem_type(&r)), (409, "queue-closed"));
    assert_eq!(r.body["opens_at"], "2030-01-01T00:00:30.000Z");
    clock.set(T0 + 30_000);
    let first = join(&app, "alice").await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(first.body["ticket"], "tkt_1");
    assert_eq!(first.body["status"], "waiting");
    assert!(first.body["poll_after_ms"].as_u64().unwrap() >= 1_000);
    assert_eq!(first.body["eta_s"], 30, "until the start");
    let again = join(&app, "alice").await;
    assert_eq!(again.body["ticket"], "tkt_1");
    // A buyer JWT joins for itself; a partner cannot join.
    let jwt = buyer_token("bob", T0 / 1_000 + 3_600);
    let r = call(&app, "POST", "/v1/queues/drop/join", Some(&jwt), "").await;
    assert_eq!((r.status, r.body["ticket"].as_str()), (202, Some("tkt_2")));
    let r = call(&app, "POST", "/v1/queues/drop/join", Some("partner"), "{}").await;
    assert_eq!(r.status, 403);
    // Polls: own tickets only for buyer JWTs; unknown tickets are 404.
    let r = call(&app, "GET", "/v1/queues/drop/tickets/tkt_2", Some(&jwt), "").await;
    assert_eq!((r.status, r.body["buyer"].as_str()), (200, Some("bob")));
    let r = call(&app, "GET", "/v1/queues/drop/tickets/tkt_1", Some(&jwt), "").await;
    assert_eq!(r.status, 404);
    for t in ["tkt_9", "9", "tkt_", "tkt_x"] {
        let r = call(
            &app,
            "GET",
            &format!("/v1/queues/drop/tickets/{t}"),
            Some("shop"),
            "",
        )
        .await;
        assert_eq!(r.status, 404, "{t}");
    }
}

#[tokio::test]
async fn reservations_of_queued_skus_need_the_buyers_live_pass() {
    let (app, service, clock) = admitted_app(&["alice", "bob"]).await;
    // No pass, a forged one, another buyer's.
    let r = reserve(&app, "alice", "tee", None).await;
    assert_eq!((r.status, problem_type(&r)), (403, "pass-required"));
    assert_eq!(r.body["queue"], "drop");
    let r = reserve(&app, "alice", "tee", Some("forged.pass")).await;
    assert_eq!(
        (r.status, problem_type(&r), r.body["reason"].as_str()),
        (403, "pass-invalid", Some("forged"))
    );
    let alice = pass_of(&app, "tkt_1").await;
    let bob = pass_of(&app, "tkt_2").await;
    let r = reserve(&app, "alice", "tee", Some(&bob)).await;
    assert_eq!(r.body["reason"], "other-buyer");
    // Unqueued SKUs need nothing.
    assert_eq!(reserve(&app, "carol", "free", None).await.status, 201);
    // One hold per pass; a cancel gives it back; a confirm spends it.
    let r = reserve(&app, "alice", "tee", Some(&alice)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = reserve(&app, "alice", "tee", Some(&alice)).await;
    assert_eq!(r.body["reason"], "in-use");
    let r = call(
        &app,
        "POST",
        &format!("/v1/reservations/{id}/cancel"),
        Some("shop"),
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = reserve(&app, "alice", "tee", Some(&alice)).await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let body = json!({"payment_ref": "pay_1"}).to_string();
    let r = call(
        &app,
        "POST",
        &format!("/v1/reservations/{id}/confirm"),
        Some("shop"),
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = reserve(&app, "alice", "tee", Some(&alice)).await;
    assert_eq!(r.body["reason"], "spent");
    let r = call(
        &app,
        "GET",
        "/v1/queues/drop/tickets/tkt_1",
        Some("shop"),
        "",
    )
    .await;
    assert_eq!(r.body["status"], "spent");
    // Bob's pass expires after 60 s.
    clock.set(T0 + 61_000 + 60_000);
    service.tick(app.inventory()).await.unwrap();
    let r = reserve(&app, "bob", "tee", Some(&bob)).await;
    assert_eq!(r.body["reason"], "expired");
    let r = call(&app, "GET", "/v1/queues/drop", Some("adm"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["spent"].as_u64(), r.body["expired"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r.body["status"], "open");
    let r = call(&app, "GET", "/v1/queues/nope", Some("adm"), "").await;
    assert_eq!(r.status, 404);
    let r = call(&app, "GET", "/v1/queues/drop", Some("partner"), "").await;
    assert_eq!(r.status, 403);
}

/// A keyed reservation of one tee with a pass.
async fn reserve_keyed(app: &App<Fake>, buyer: &str, pass: &str, key: &str) -> Reply {
    reserve_with(app, buyer, "tee", Some(pass), Some(key)).await
}

#[tokio::test]
async fn a_keyed_retry_gets_its_original_whatever_the_pass_says_now() {
    let (app, service, clock) = admitted_app(&["alice", "bob"]).await;
    let alice = pass_of(&app, "tkt_1").await;
    let bob = pass_of(&app, "tkt_2").await;
    let first = reserve_keyed(&app, "alice", &alice, "k-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.body["id"].as_str().unwrap().to_owned();
    // The pass is taken by that very reservation: the retry is answered with it.
    let retry = reserve_keyed(&app, "alice", &alice, "k-1").await;
    assert_eq!(
        (retry.status, retry.body["id"].as_str()),
        (201, Some(id.as_str()))
    );
    // Another key is another reservation: the pass still refuses it, and nothing is held.
    let other = reserve_keyed(&app, "alice", &alice, "k-2").await;
    assert_eq!(
        (other.status, other.body["reason"].as_str()),
        (403, Some("in-use"))
    );
    let r = call(&app, "GET", "/v1/skus/tee", Some("shop"), "").await;
    assert_eq!(r.body["reserved"], 1, "{}", r.body);
    // The same key with other lines is a mismatch, not the original.
    let body = json!({"buyer": "alice", "lines": [{"sku": "tee", "qty": 2}]}).to_string();
    let headers = [
        ("flashsale-pass", alice.as_str()),
        ("idempotency-key", "k-1"),
    ];
    let r = call_with(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        &body,
        &headers,
    )
    .await;
    assert_eq!((r.status, problem_type(&r)), (409, "idempotency-mismatch"));
    // Spent by the confirm: the retry still gets the original, now confirmed.
    let body = json!({"payment_ref": "pay_1"}).to_string();
    let path = format!("/v1/reservations/{id}/confirm");
    assert_eq!(
        call(&app, "POST", &path, Some("shop"), &body).await.status,
        200
    );
    let retry = reserve_keyed(&app, "alice", &alice, "k-1").await;
    assert_eq!(
        (
            retry.status,
            retry.body["id"].as_str(),
            retry.body["status"].as_str()
        ),
        (201, Some(id.as_str()), Some("confirmed"))
    );
    let r = reserve_keyed(&app, "alice", &alice, "k-3").await;
    assert_eq!(r.body["reason"], "spent");
    // An expired pass with a key it never used is still refused.
    clock.set(T0 + 61_000 + 60_000);
    service.tick(app.inventory()).await.unwrap();
    let r = reserve_keyed(&app, "bob", &bob, "k-4").await;
    assert_eq!(r.body["reason"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_journal_keeps_every_ticket_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = |clock: Arc<ManualClock>| {
        let backend = crate::waiting_room::journal_backend(None, dir.path()).unwrap();
        crate::waiting_room::open(backend, PassKey::new([5; 32]), clock).unwrap()
    };
    let clock = Arc::new(ManualClock::new(T0));
    let service = open(clock.clone());
    service.set_compaction_after(40);
    let app = app().with_queues(service.clone());
    seed(&app, "tee", 10).await;
    assert_eq!(put_queue(&app, &queue_body()).await.status, 201);
    for i in 0..100 {
        assert_eq!(join(&app, &format!("b{i}")).await.status, 202);
    }
    clock.set(T0 + 60_000);
    service.tick(app.inventory()).await.unwrap();
    clock.set(T0 + 61_000);
    service.tick(app.inventory()).await.unwrap();
    // The shuffled pre-queue: someone was admitted first.
    let first = all_tickets(&app, 100)
        .await
        .into_iter()
        .find(|t| t["admission"] == 1)
        .unwrap();
    let pass = first["pass"].as_str().unwrap().to_owned();
    let buyer = first["buyer"].as_str().unwrap().to_owned();
    let r = reserve(&app, &buyer, "tee", Some(&pass)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    for i in 100..110 {
        assert_eq!(join(&app, &format!("b{i}")).await.status, 202);
    }
    assert!(service.compactions() >= 2, "{}", service.compactions());
    let before = all_tickets(&app, 110).await;
    drop(app);
    assert!(before.iter().filter(|t| t["status"] == "admitted").count() >= 10);
    drop(service);
    // The journal's thread ends once every submitted batch and snapshot is written.
    let service = open(clock.clone());
    let app = super::app().with_queues(service.clone());
    let after = all_tickets(&app, 110).await;
    assert_eq!(
        before, after,
        "every position, pass and admission as before"
    );
    // The pass still holds its reservation: refused `in-use`.
    let r = reserve(&app, &buyer, "tee", Some(&pass)).await;
    assert_eq!((r.status, r.body["reason"].as_str()), (403, Some("in-use")));
}

async fn all_tickets(app: &App<Fake>, n: u64) -> Vec<Value> {
    let mut all = Vec::new();
    for t in 1..=n {
        let path = format!("/v1/queues/drop/tickets/tkt_{t}");
        let r = call(app, "GET", &path, Some("shop"), "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        all.push(r.body);
    }
    all
}
