//! Reservation and order endpoints: reserve, confirm, cancel, read; engine refusals; idempotency keys.

use hyper::header::{CONTENT_TYPE, LOCATION};

use super::{app, call, call_with, problem_type, seed};

#[tokio::test]
async fn reserve_confirm_and_read_the_order() {
    let app = app();
    seed(&app, "tee", 5).await;
    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        r#"{"buyer":"b1","lines":[{"sku":"tee","qty":2}]}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "held");
    assert_eq!(r.body["buyer"], "b1");
    assert_eq!(r.body["lines"][0]["qty"], 2);
    assert_eq!(r.body["expires_at"], "2026-11-21T10:10:00.000Z");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("res_"));
    assert_eq!(
        r.headers[LOCATION].to_str().unwrap(),
        format!("/v1/reservations/{id}")
    );

    let r = call(
        &app,
        "POST",
        &format!("/v1/reservations/{id}/confirm"),
        Some("shop"),
        r#"{"payment_ref":"pay_1"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "confirmed");
    let order = r.body["order_id"].as_str().unwrap().to_owned();
    let r = call(
        &app,
        "POST",
        &format!("/v1/reservations/{id}/cancel"),
        Some("shop"),
        "",
    )
    .await;
    assert_eq!((r.status, problem_type(&r)), (409, "invalid-state"));
    assert_eq!(r.body["reservation_status"], "confirmed");
    let r = call(
        &app,
        "GET",
        &format!("/v1/orders/{order}"),
        Some("shop"),
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["payment_ref"], "pay_1");
    assert_eq!(r.body["total_cents"], 3000);
    assert_eq!(r.body["reservation_id"], id.as_str());
    let r = call(&app, "GET", "/v1/orders/ord_zzz", Some("shop"), "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn cancel_accepts_empty_or_empty_object() {
    let app = app();
    seed(&app, "tee", 5).await;
    for body in ["", "{}"] {
        let r = call(
            &app,
            "POST",
            "/v1/reservations",
            Some("shop"),
            r#"{"buyer":"b1","lines":[{"sku":"tee","qty":1}]}"#,
        )
        .await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        let r = call(
            &app,
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some("shop"),
            body,
        )
        .await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (200, Some("released"))
        );
        assert_eq!(r.body["release_reason"], "cancelled");
    }
    let r = call(
        &app,
        "POST",
        "/v1/reservations/res_0000000000000001/cancel",
        Some("shop"),
        r#"{"x":1}"#,
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn engine_refusals_become_problems() {
    let app = app();
    seed(&app, "tee", 1).await;
    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        r#"{"buyer":"b1","lines":[{"sku":"tee","qty":2}]}"#,
    )
    .await;
    assert_eq!((r.status, problem_type(&r)), (409, "sold-out"));
    assert_eq!(r.body["sku"], "tee");
    assert_eq!(r.body["available"], 1);
    assert_eq!(r.headers[CONTENT_TYPE], "application/problem+json");
    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        r#"{"buyer":"b1","lines":[{"sku":"nope","qty":1}]}"#,
    )
    .await;
    assert_eq!((r.status, problem_type(&r)), (404, "not-found"));
    let r = call(
        &app,
        "POST",
        "/v1/reservations/res_00000000000000ff/confirm",
        Some("shop"),
        r#"{"payment_ref":"p"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(&app, "GET", "/v1/reservations/garbage", Some("shop"), "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn idempotency_key_is_passed_through() {
    let app = app();
    seed(&app, "tee", 5).await;
    let body = r#"{"buyer":"b1","lines":[{"sku":"tee","qty":1}]}"#;
    let key = [("idempotency-key", "k-1")];
    let a = call_with(&app, "POST", "/v1/reservations", Some("shop"), body, &key).await;
    let b = call_with(&app, "POST", "/v1/reservations", Some("shop"), body, &key).await;
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(a.body["id"], b.body["id"]);
    let c = call_with(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        r#"{"buyer":"b1","lines":[{"sku":"tee","qty":2}]}"#,
        &key,
    )
    .await;
    assert_eq!((c.status, problem_type(&c)), (409, "idempotency-mismatch"));
    let d = call_with(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        body,
        &[("idempotency-key", "has space")],
    )
    .await;
    assert_eq!(d.status, 422);
}
