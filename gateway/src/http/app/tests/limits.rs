//! Limits and protections: malformed, oversized and slow bodies; rate limits; security headers; probes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::Request;

use super::{app, app_with, call, problem_type, seed};
use crate::http::rate_limit::Rate;

#[tokio::test]
async fn malformed_invalid_and_oversized_bodies() {
    let app = app_with(|c| c.body_limit_bytes = 256);
    seed(&app, "tee", 5).await;
    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        r#"{"buyer":"b1","lines":[{"sku":"tee","qty":1}],"extra":1}"#,
    )
    .await;
    assert_eq!((r.status, problem_type(&r)), (400, "malformed"));
    assert!(r.body["detail"].as_str().unwrap().contains("extra"));
    let r = call(&app, "POST", "/v1/reservations", Some("shop"), "not json").await;
    assert_eq!(r.status, 400);
    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        r#"{"buyer":"b1","lines":[{"sku":"tee","qty":0}]}"#,
    )
    .await;
    assert_eq!((r.status, problem_type(&r)), (422, "invalid"));
    let big = format!(r#"{{"buyer":"{}","lines":[]}}"#, "b".repeat(400));
    let r = call(&app, "POST", "/v1/reservations", Some("shop"), &big).await;
    assert_eq!((r.status, problem_type(&r)), (413, "too-large"));
    assert_eq!(r.headers["connection"], "close");
}

#[tokio::test]
async fn slow_bodies_time_out() {
    let app = app_with(|c| c.body_timeout = Duration::from_millis(50));
    let body = http_body_util::StreamBody::new(futures::stream::pending::<
        Result<hyper::body::Frame<Bytes>, std::convert::Infallible>,
    >());
    let req = Request::builder()
        .method("POST")
        .uri("/v1/reservations")
        .header("authorization", "Bearer shop")
        .body(body)
        .unwrap();
    let res = app.handle(req, "127.0.0.1".parse().unwrap()).await;
    assert_eq!(res.status(), 408);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let app = app_with(|c| {
        c.ip_rate = Some(Rate {
            per_s: 0.5,
            burst: 2.0,
        });
    });
    assert_eq!(
        call(&app, "GET", "/v1/skus", Some("shop"), "").await.status,
        200
    );
    assert_eq!(
        call(&app, "GET", "/v1/skus", Some("shop"), "").await.status,
        200
    );
    let r = call(&app, "GET", "/v1/skus", Some("shop"), "").await;
    assert_eq!((r.status, problem_type(&r)), (429, "rate-limited"));
    assert_eq!(r.headers["retry-after"], "2");
    // Probes are never limited.
    assert_eq!(call(&app, "GET", "/health", None, "").await.status, 200);

    let app = app_with(|c| {
        c.buyer_rate = Some(Rate {
            per_s: 1.0,
            burst: 1.0,
        })
    });
    seed(&app, "tee", 5).await;
    let body = |b: &str| format!(r#"{{"buyer":"{b}","lines":[{{"sku":"tee","qty":1}}]}}"#);
    assert_eq!(
        call(&app, "POST", "/v1/reservations", Some("shop"), &body("b1"))
            .await
            .status,
        201
    );
    let r = call(&app, "POST", "/v1/reservations", Some("shop"), &body("b1")).await;
    assert_eq!((r.status, problem_type(&r)), (429, "rate-limited"));
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(
        call(&app, "POST", "/v1/reservations", Some("shop"), &body("b2"))
            .await
            .status,
        201
    );
    assert_eq!(app.metrics().rate_limited_buyer.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn every_response_has_security_headers() {
    let app = app();
    for (m, p, t) in [
        ("GET", "/health", None),
        ("GET", "/nope", None),
        ("GET", "/v1/skus/x", Some("shop")),
        ("DELETE", "/v1/skus/x", None),
    ] {
        let r = call(&app, m, p, t, "").await;
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{p}");
        assert_eq!(r.headers["cache-control"], "no-store", "{p}");
        assert!(r.headers.contains_key("content-security-policy"));
    }
    let r = call(&app, "DELETE", "/v1/skus/x", None, "").await;
    assert_eq!((r.status, problem_type(&r)), (405, "method-not-allowed"));
    assert_eq!(r.headers["allow"], "PUT, GET");
}

#[tokio::test]
async fn ready_follows_the_engine_and_metrics_render() {
    let app = app();
    assert_eq!(call(&app, "GET", "/ready", None, "").await.status, 200);
    app.inventory().not_ready.store(true, Ordering::Relaxed);
    let r = call(&app, "GET", "/ready", None, "").await;
    assert_eq!((r.status, problem_type(&r)), (503, "unavailable"));
    let r = call(&app, "GET", "/metrics", None, "").await;
    let text = r.body.as_str().unwrap();
    assert!(
        text.contains("flashsale_http_requests_total{route=\"ready\",status=\"503\"} 1"),
        "{text}"
    );
    assert!(text.contains("flashsale_reservations_total{outcome=\"held\"} 1"));
    assert!(r.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}
