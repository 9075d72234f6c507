//! Handler tests against an in-memory fake of the engine (no shards, no log).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use flashsale_engine::{
    CommandError, OrderView, ReservationStatus, ReservationView, SkuView, StatsSnapshot,
};
use flashsale_protocol::{Line, ScopedKey, SkuSpec};
use serde_json::{json, Value};

use super::*;
use crate::http::jwt::{sign_hs256, Claims};

#[derive(Default)]
struct State {
    skus: BTreeMap<SkuId, SkuView>,
    reservations: HashMap<ReservationId, ReservationView>,
    orders: HashMap<OrderId, OrderView>,
    keys: HashMap<ScopedKey, (Vec<(SkuId, u32)>, ReservationId)>,
    next: u64,
}

#[derive(Default)]
struct Fake {
    state: Mutex<State>,
    not_ready: AtomicBool,
}

impl Inventory for Fake {
    async fn upsert_sku(&self, spec: SkuSpec) -> Result<(SkuView, bool), CommandError> {
        let mut s = self.state.lock().unwrap();
        let created = !s.skus.contains_key(&spec.sku);
        let v = SkuView {
            sku: spec.sku.clone(),
            name: spec.name,
            price_cents: spec.price_cents,
            total: spec.stock,
            available: spec.stock,
            reserved: 0,
            sold: 0,
            per_buyer_limit: spec.per_buyer_limit,
            sale_starts_at_ms: spec.sale_starts_at_ms,
            sale_ends_at_ms: spec.sale_ends_at_ms,
            reservation_ttl_ms: spec.reservation_ttl_ms,
        };
        s.skus.insert(spec.sku, v.clone());
        Ok((v, created))
    }
    async fn restock(&self, sku: SkuId, qty: u64) -> Result<SkuView, CommandError> {
        let mut s = self.state.lock().unwrap();
        let v = s.skus.get_mut(&sku).ok_or(CommandError::SkuNotFound(sku))?;
        v.total += qty;
        v.available += qty;
        Ok(v.clone())
    }
    async fn sku(&self, sku: SkuId) -> Result<SkuView, CommandError> {
        let s = self.state.lock().unwrap();
        s.skus
            .get(&sku)
            .cloned()
            .ok_or(CommandError::SkuNotFound(sku))
    }
    async fn list_skus(
        &self,
        after: Option<SkuId>,
        limit: usize,
    ) -> Result<Vec<SkuView>, CommandError> {
        let s = self.state.lock().unwrap();
        Ok(s.skus
            .values()
            .filter(|v| after.as_ref().is_none_or(|a| &v.sku > a))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn reserve(&self, r: ReserveRequest) -> Result<ReservationView, CommandError> {
        let mut s = self.state.lock().unwrap();
        if let Some(k) = &r.idempotency_key {
            if let Some((lines, id)) = s.keys.get(k) {
                return if *lines == r.lines {
                    Ok(s.reservations[id].clone())
                } else {
                    Err(CommandError::IdempotencyMismatch)
                };
            }
        }
        let mut out = Vec::new();
        for (sku, qty) in &r.lines {
            let v = s
                .skus
                .get(sku)
                .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))?;
            if v.available < u64::from(*qty) {
                return Err(CommandError::SoldOut {
                    sku: sku.clone(),
                    available: v.available,
                });
            }
            out.push(Line {
                sku: sku.clone(),
                qty: *qty,
                unit_price_cents: v.price_cents,
            });
        }
        for (sku, qty) in &r.lines {
            let v = s.skus.get_mut(sku).unwrap();
            v.available -= u64::from(*qty);
            v.reserved += u64::from(*qty);
        }
        s.next += 1;
        let id = ReservationId::compose(0, s.next);
        let view = ReservationView {
            id,
            status: ReservationStatus::Held,
            buyer: r.buyer,
            lines: out,
            created_at_ms: 1_795_255_200_000,
            expires_at_ms: 1_795_255_800_000,
            order: None,
            release_reason: None,
        };
        s.reservations.insert(id, view.clone());
        if let Some(k) = r.idempotency_key {
            s.keys.insert(k, (r.lines, id));
        }
        Ok(view)
    }
    async fn reservation(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        let s = self.state.lock().unwrap();
        s.reservations
            .get(&id)
            .cloned()
            .ok_or(CommandError::ReservationNotFound(id))
    }
    async fn confirm(
        &self,
        id: ReservationId,
        payment_ref: String,
    ) -> Result<ReservationView, CommandError> {
        let mut s = self.state.lock().unwrap();
        let order = OrderId::compose(0, id.counter());
        let v = s
            .reservations
            .get_mut(&id)
            .ok_or(CommandError::ReservationNotFound(id))?;
        if v.status != ReservationStatus::Held {
            return Err(CommandError::InvalidState {
                id,
                status: v.status,
            });
        }
        v.status = ReservationStatus::Confirmed;
        v.order = Some(order);
        let v = v.clone();
        s.orders.insert(
            order,
            OrderView {
                id: order,
                reservation: id,
                buyer: v.buyer.clone(),
                lines: v.lines.clone(),
                total_cents: v
                    .lines
                    .iter()
                    .map(|l| u64::from(l.qty) * l.unit_price_cents)
                    .sum(),
                payment_ref,
                created_at_ms: 1_795_255_300_000,
            },
        );
        Ok(v)
    }
    async fn cancel(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        let mut s = self.state.lock().unwrap();
        let v = s
            .reservations
            .get_mut(&id)
            .ok_or(CommandError::ReservationNotFound(id))?;
        if v.status != ReservationStatus::Held {
            return Err(CommandError::InvalidState {
                id,
                status: v.status,
            });
        }
        v.status = ReservationStatus::Released;
        v.release_reason = Some(flashsale_protocol::ReleaseReason::Cancelled);
        Ok(v.clone())
    }
    async fn order(&self, id: OrderId) -> Result<OrderView, CommandError> {
        let s = self.state.lock().unwrap();
        s.orders
            .get(&id)
            .cloned()
            .ok_or(CommandError::OrderNotFound(id.to_string()))
    }
    fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::Relaxed)
    }
    fn stats(&self) -> Option<StatsSnapshot> {
        Some(StatsSnapshot {
            reservations_held: 1,
            ..Default::default()
        })
    }
}

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

fn app_with(config: impl FnOnce(&mut ApiConfig)) -> App<Fake> {
    let mut tokens = Tokens::new();
    tokens.add("adm", Role::Admin);
    tokens.add("shop", Role::Storefront);
    tokens.add("partner", Role::Partner);
    let mut c = ApiConfig {
        tokens,
        jwt: Some(JwtVerifier::new(SECRET).unwrap()),
        ..ApiConfig::default()
    };
    config(&mut c);
    App::new(Fake::default(), c)
}

fn app() -> App<Fake> {
    app_with(|_| {})
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn call(app: &App<Fake>, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
    call_with(app, method, path, token, body, &[]).await
}

async fn call_with(
    app: &App<Fake>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let res = app.handle(req, "127.0.0.1".parse().unwrap()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = if headers[CONTENT_TYPE].to_str().unwrap().contains("json") {
        serde_json::from_slice(&bytes).unwrap()
    } else {
        Value::String(String::from_utf8(bytes.to_vec()).unwrap())
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn problem_type(r: &Reply) -> &str {
    r.body["type"].as_str().unwrap().rsplit('/').next().unwrap()
}

async fn seed(app: &App<Fake>, sku: &str, stock: u64) {
    let r = call(
        app,
        "PUT",
        &format!("/v1/skus/{sku}"),
        Some("adm"),
        &json!({"name": "Tee", "price_cents": 1500, "stock": stock}).to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn sku_lifecycle_and_views() {
    let app = app();
    let r = call(&app, "PUT", "/v1/skus/tee", Some("adm"),
        r#"{"name":"Tee","price_cents":1500,"stock":10,"per_buyer_limit":2,"sale_starts_at":"2026-11-21T10:00:00Z"}"#).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.headers[LOCATION], "/v1/skus/tee");
    assert_eq!(r.body["sale_starts_at"], "2026-11-21T10:00:00Z");
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
    assert_eq!(r.body["expires_at"], "2026-11-21T10:10:00Z");
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
    let token = |sub: &str, exp: u64| {
        sign_hs256(
            SECRET,
            &Claims {
                sub: Some(sub.into()),
                exp: Some(exp),
                nbf: None,
            },
        )
        .unwrap()
    };
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
