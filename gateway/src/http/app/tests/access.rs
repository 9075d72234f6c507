//! Credentials and roles: tokens, buyer JWTs and what each may see or do.

use super::{app, buyer_token, call, call_with, problem_type, seed};
use crate::http::app::access::now_s;

#[tokio::test]
async fn credentials_and_roles_are_enforced() {
    let app = app();
    let put = r#"{"name":"Tee","price_cents":1,"stock":1}"#;
    let r = call(&app, "PUT", "/v1/skus/tee", None, put).await;
    assert_eq!((r.status, problem_type(&r)), (401, "unauthenticated"));
    assert!(r.headers.contains_key("www-authenticate"));
    let r = call(&app, "PUT", "/v1/skus/tee", Some("wrong"), put).await;
    assert_eq!(r.status, 401);
    let r = call_with(
        &app,
        "PUT",
        "/v1/skus/tee",
        None,
        put,
        &[("authorization", "Basic YWJj")],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = call(&app, "PUT", "/v1/skus/tee", Some("shop"), put).await;
    assert_eq!((r.status, problem_type(&r)), (403, "forbidden"));
    assert_eq!(
        r.body["detail"], "this endpoint needs an admin token",
        "the article fits the role"
    );
    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some("partner"),
        r#"{"buyer":"b","lines":[{"sku":"tee","qty":1}]}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        r#"{"lines":[{"sku":"tee","qty":1}]}"#,
    )
    .await;
    assert_eq!((r.status, problem_type(&r)), (422, "invalid"));
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            call(&app, "GET", path, None, "").await.status,
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn buyer_jwts_act_for_their_sub_only() {
    let app = app();
    seed(&app, "tee", 5).await;
    let token = buyer_token;
    let alice = token("alice", now_s() + 600);
    let bob = token("bob", now_s() + 600);
    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some(&alice),
        r#"{"lines":[{"sku":"tee","qty":1}]}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["buyer"], "alice");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some(&alice),
        r#"{"buyer":"bob","lines":[{"sku":"tee","qty":1}]}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/v1/reservations/{id}"),
            Some(&alice),
            ""
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/v1/reservations/{id}"),
            Some(&bob),
            ""
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(&bob),
            ""
        )
        .await
        .status,
        404
    );
    let r = call(
        &app,
        "POST",
        &format!("/v1/reservations/{id}/confirm"),
        Some(&alice),
        r#"{"payment_ref":"p"}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        call(&app, "GET", "/v1/skus/tee", Some(&alice), "")
            .await
            .status,
        200
    );
    let expired = token("alice", now_s() - 1);
    let r = call(&app, "GET", "/v1/skus/tee", Some(&expired), "").await;
    assert_eq!(r.status, 401);
    assert!(r.body["detail"].as_str().unwrap().contains("expired"));
    let r = call(
        &app,
        "PUT",
        "/v1/skus/x",
        Some(&alice),
        r#"{"name":"x","price_cents":1,"stock":1}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(&alice),
            ""
        )
        .await
        .status,
        200
    );
}
