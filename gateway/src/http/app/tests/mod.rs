//! Handler tests against an in-memory fake of the engine (no shards, no log).

mod access;
mod cluster;
mod dashboard;
mod fake;
mod idempotency;
mod internal;
mod limits;
mod objects;
mod queues;
mod reservations;
mod skus;
mod values;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, CONTENT_TYPE};
use hyper::Request;
use serde_json::{json, Value};

use super::{ApiConfig, App};
use crate::auth::{Role, Tokens};
use crate::http::jwt::{sign_hs256, Claims, JwtVerifier};
use fake::Fake;

/// The HS256 secret of the test buyer JWTs.
const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

/// An API over a fresh fake with tokens `adm`, `shop`, `partner`, buyer JWTs, and `config`.
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

/// An API over a fresh fake with the default configuration.
fn app() -> App<Fake> {
    app_with(|_| {})
}

/// An answer, its body parsed as JSON (or kept as a string).
struct Reply {
    /// Status code.
    status: u16,
    /// Headers.
    headers: HeaderMap,
    /// Body.
    body: Value,
}

/// `method path` with `token` and `body`.
async fn call(app: &App<Fake>, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
    call_with(app, method, path, token, body, &[]).await
}

/// `method path` with `token`, `body` and extra `headers`.
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
    let body = if headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.to_str().unwrap().contains("json"))
    {
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

/// The problem `type` suffix of an answer.
fn problem_type(r: &Reply) -> &str {
    r.body["type"].as_str().unwrap().rsplit('/').next().unwrap()
}

/// Creates SKU `sku` (1500 cents) with `stock` units; panics unless 201.
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

/// A buyer JWT for `sub` expiring at `exp` (Unix s).
fn buyer_token(sub: &str, exp: u64) -> String {
    sign_hs256(
        SECRET,
        &Claims {
            sub: Some(sub.into()),
            exp: Some(exp),
            nbf: None,
        },
    )
    .unwrap()
}
