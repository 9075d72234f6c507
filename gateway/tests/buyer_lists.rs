//! A buyer's lists over HTTP (`GET /v1/reservations?buyer=`, `GET /v1/orders?buyer=`) on the
//! real server, with the embedded log and with Postgres: newest first, cross-shard
//! reservations once and whole, filters, paging with cursors, who may ask, bad cursors, and
//! the same answers after a restart (the index is rebuilt by recovery).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::{Api, PgSchema, Server, ADMIN, DATABASE_URL, PARTNER, SHOP};

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!!";
const SKUS: [&str; 6] = ["s0", "s1", "s2", "s3", "s4", "s5"];

/// A buyer JWT for `sub`, valid for five minutes.
fn buyer_token(sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    flashsale_gateway::http::jwt::sign_hs256(
        SECRET.as_bytes(),
        &flashsale_gateway::http::jwt::Claims {
            sub: Some(sub.into()),
            exp: Some(exp),
            nbf: None,
        },
    )
    .unwrap()
}

/// Reserves `lines` for `buyer` (storefront); returns the reservation id.
async fn reserve(api: &Api, buyer: &str, lines: &[&str]) -> String {
    let lines: Vec<Value> = lines.iter().map(|s| json!({"sku": s, "qty": 1})).collect();
    let r = api
        .send(
            "POST",
            "/v1/reservations",
            Some(SHOP),
            Some(json!({"buyer": buyer, "lines": lines})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// The ids of a page's items.
fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect()
}

/// Every item of a list, page by page (at most 50 pages), and the number of pages.
async fn walk(api: &Api, path: &str, token: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor = String::new();
    for pages in 1..=50 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = api.get(&format!("{path}{sep}cursor={cursor}"), token).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        items.extend(r.body["items"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return (items, pages),
        }
    }
    panic!("{path}: more than 50 pages");
}

/// The answers of the scenario's reads, compared across a restart.
async fn reads(api: &Api) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/v1/reservations?buyer=ann",
        "/v1/reservations?buyer=ann&status=confirmed",
        "/v1/reservations?buyer=ann&status=released",
        "/v1/reservations?buyer=ann&sku=s5",
        "/v1/reservations?buyer=bob",
        "/v1/orders?buyer=ann",
    ] {
        let r = api.get(path, SHOP).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        out.push(r.body);
    }
    out
}

/// Runs the scenario on a server started with `extra` flags in `dir`; restarts it once.
async fn scenario(dir: &std::path::Path, extra: &[&str]) {
    let mut flags = vec!["--jwt-secret", SECRET];
    flags.extend_from_slice(extra);
    let server = Server::start_in(dir, &flags, true);
    let api = Api::new(&server);
    for s in SKUS {
        api.put_sku(
            s,
            json!({"name": s, "price_cents": 100, "stock": 50, "reservation_ttl_s": 600}),
        )
        .await;
    }
    // Lines on both shards of the two-shard server: one reservation spanning them.
    let whole = reserve(&api, "ann", &SKUS).await;
    let r2 = reserve(&api, "ann", &["s0"]).await;
    let r3 = reserve(&api, "ann", &["s1"]).await;
    let bobs = reserve(&api, "bob", &["s2"]).await;
    let c = api
        .send(
            "POST",
            &format!("/v1/reservations/{whole}/confirm"),
            Some(SHOP),
            Some(json!({"payment_ref": "pay-1"})),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.body);
    let order_id = c.body["order_id"].as_str().unwrap().to_owned();
    let c = api
        .send(
            "POST",
            &format!("/v1/reservations/{r2}/cancel"),
            Some(SHOP),
            None,
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.body);

    let before = reads(&api).await;
    let all = &before[0];
    assert_eq!(ids(all), [r3.as_str(), &r2, &whole], "newest first: {all}");
    assert_eq!(all["next_cursor"], Value::Null);
    let one = api.get(&format!("/v1/reservations/{whole}"), SHOP).await;
    assert_eq!(all["items"][2], one.body, "listed as GET shows it");
    assert_eq!(one.body["lines"].as_array().unwrap().len(), SKUS.len());
    assert_eq!(ids(&before[1]), [whole.as_str()]);
    assert_eq!(ids(&before[2]), [r2.as_str()]);
    assert_eq!(
        ids(&before[3]),
        [whole.as_str()],
        "SKU of another shard's part"
    );
    assert_eq!(ids(&before[4]), [bobs.as_str()]);
    let orders = &before[5];
    assert_eq!(orders["items"].as_array().unwrap().len(), 1, "{orders}");
    let order = api.get(&format!("/v1/orders/{order_id}"), SHOP).await;
    assert_eq!(orders["items"][0], order.body);
    assert_eq!(order.body["lines"].as_array().unwrap().len(), SKUS.len());

    // Pages of one: every reservation once, in order.
    let (items, pages) = walk(&api, "/v1/reservations?buyer=ann&limit=1", SHOP).await;
    let walked: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(walked, [&r3, &r2, &whole]);
    assert!(pages >= 3, "{pages} pages");

    // Who may ask, and bad input.
    let ann = buyer_token("ann");
    let mine = api.get("/v1/reservations", &ann).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(ids(&mine.body), ids(all));
    assert_eq!(api.get("/v1/orders?buyer=ann", &ann).await.status, 200);
    for path in ["/v1/reservations?buyer=bob", "/v1/orders?buyer=bob"] {
        let r = api.get(path, &ann).await;
        assert_eq!((r.status, r.problem()), (403, "forbidden"), "{path}");
    }
    let r = api.get("/v1/reservations?buyer=ann", PARTNER).await;
    assert_eq!((r.status, r.problem()), (403, "forbidden"));
    let r = api.get("/v1/orders", SHOP).await;
    assert_eq!((r.status, r.problem()), (422, "invalid"));
    let first = api.get("/v1/reservations?buyer=ann&limit=1", ADMIN).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    for path in [
        format!("/v1/reservations?buyer=bob&cursor={cursor}"),
        format!("/v1/reservations?buyer=ann&status=held&cursor={cursor}"),
        format!("/v1/orders?buyer=ann&cursor={cursor}"),
        "/v1/reservations?buyer=ann&cursor=s0".to_owned(),
    ] {
        let r = api.get(&path, SHOP).await;
        assert_eq!((r.status, r.problem()), (400, "malformed"), "{path}");
    }
    let r = api.get("/v1/reservations?buyer=ann&limit=101", SHOP).await;
    assert_eq!((r.status, r.problem()), (422, "invalid"));

    // Recovery rebuilds the index: the same answers after a restart.
    assert!(server.stop().success());
    let server = Server::start_in(dir, &flags, true);
    let api = Api::new(&server);
    assert_eq!(reads(&api).await, before);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_on_the_embedded_log() {
    let tmp = tempfile::tempdir().unwrap();
    scenario(tmp.path(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_on_the_postgres_log() {
    // A schema of its own, dropped afterwards; the test fails if Postgres is unreachable.
    let schema = PgSchema::new("lists");
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
