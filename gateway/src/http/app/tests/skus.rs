//! SKU endpoints: create, replace, restock, read, list with a cursor.

use hyper::header::LOCATION;
use serde_json::Value;

use super::{app, call, problem_type, seed};

#[tokio::test]
async fn sku_lifecycle_and_views() {
    let app = app();
    let r = call(&app, "PUT", "/v1/skus/tee", Some("adm"),
        r#"{"name":"Tee","price_cents":1500,"stock":10,"per_buyer_limit":2,"sale_starts_at":"2026-11-21T10:00:00Z"}"#).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.headers[LOCATION], "/v1/skus/tee");
    assert_eq!(r.body["sale_starts_at"], "2026-11-21T10:00:00.000Z");
    assert_eq!(r.body["sale_ends_at"], Value::Null);
    assert_eq!(r.body["available"], 10);
    let r = call(
        &app,
        "PUT",
        "/v1/skus/tee",
        Some("adm"),
        r#"{"name":"Tee","price_cents":1500,"stock":12}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(
        &app,
        "POST",
        "/v1/skus/tee/restock",
        Some("adm"),
        r#"{"qty":3}"#,
    )
    .await;
    assert_eq!((r.status, r.body["total"].as_u64()), (200, Some(15)));
    for token in ["adm", "shop", "partner"] {
        let r = call(&app, "GET", "/v1/skus/tee", Some(token), "").await;
        assert_eq!(r.status, 200, "{token}");
        for field in [
            "sku",
            "name",
            "price_cents",
            "total",
            "available",
            "reserved",
            "sold",
            "per_buyer_limit",
            "sale_starts_at",
            "sale_ends_at",
        ] {
            assert!(r.body.get(field).is_some(), "{field}");
        }
    }
    let r = call(&app, "GET", "/v1/skus/nope", Some("shop"), "").await;
    assert_eq!((r.status, problem_type(&r)), (404, "not-found"));
}

#[tokio::test]
async fn skus_paginate_with_a_cursor() {
    let app = app();
    for s in ["a", "b", "c", "d", "e"] {
        seed(&app, s, 1).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/skus?limit=2".to_owned();
    loop {
        let r = call(&app, "GET", &path, Some("shop"), "").await;
        assert_eq!(r.status, 200);
        for item in r.body["items"].as_array().unwrap() {
            seen.push(item["sku"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/skus?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    let r = call(&app, "GET", "/v1/skus?limit=0", Some("shop"), "").await;
    assert_eq!(problem_type(&r), "invalid");
    let r = call(&app, "GET", "/v1/skus?limit=x", Some("shop"), "").await;
    assert_eq!(problem_type(&r), "malformed");
    let r = call(&app, "GET", "/v1/skus?cursor=%%%", Some("shop"), "").await;
    assert_eq!(problem_type(&r), "malformed");
    let r = call(&app, "GET", "/v1/skus?page=2", Some("shop"), "").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn list_asks_the_engine_for_a_bounded_page_after_a_valid_cursor_only() {
    let app = app();
    for s in ["a", "b"] {
        seed(&app, s, 1).await;
    }
    for (query, want) in [
        ("", 100),
        ("?limit=1000", 1000),
        ("?limit=1", 1),
        ("?cursor=", 100),
    ] {
        let r = call(
            &app,
            "GET",
            &format!("/v1/skus{query}"),
            Some("partner"),
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        assert_eq!(
            app.inventory().list_limits.lock().unwrap().pop(),
            Some(want),
            "{query}"
        );
    }
    for query in [
        "limit=1001".to_owned(),
        "limit=-1".to_owned(),
        "limit=1.0".to_owned(),
        "limit=1&limit=100000".to_owned(),
        "cursor=%%%".to_owned(),
        "cursor=a/b".to_owned(),
        "cursor=%FF%FE".to_owned(),
        format!("cursor={}", "x".repeat(65)),
        "cursor=YQ==".to_owned(),
        "after=a".to_owned(),
    ] {
        let r = call(&app, "GET", &format!("/v1/skus?{query}"), Some("shop"), "").await;
        assert!(
            matches!(
                (r.status, problem_type(&r)),
                (400, "malformed") | (422, "invalid")
            ),
            "{query}: {} {}",
            r.status,
            r.body
        );
        assert!(
            app.inventory().list_limits.lock().unwrap().is_empty(),
            "{query}: the engine was asked"
        );
    }
    let r = call(&app, "GET", "/v1/skus?cursor=%%%", Some("shop"), "").await;
    assert_eq!((r.status, problem_type(&r)), (400, "malformed"));
    // A cursor is a SKU id: the page starts after it, whether or not that SKU exists.
    for (cursor, first) in [("a", "b"), ("aa", "b"), ("-", "a")] {
        let path = format!("/v1/skus?cursor={cursor}");
        let r = call(&app, "GET", &path, Some("shop"), "").await;
        assert_eq!(r.body["items"][0]["sku"], first, "{cursor}: {}", r.body);
    }
}
