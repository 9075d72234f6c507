//! Heap allocations per reservation on the durable hot path (issue 17, ADR 0051 addendum).
//!
//! The HTTP app layer (`App::handle`: routing, credentials, body, JSON in and out, the
//! answer's headers) over the real engine and the embedded log in a temporary directory,
//! called in-process: no sockets, so hyper's own connection work is not counted. A counting
//! global allocator counts every allocation while one request is handled, on the calling
//! thread (the HTTP worker's share, deterministic) and process-wide (the shard's share
//! too: the command, the log record, the reply). Each figure is the median over many
//! requests after a warm-up; the test prints them and fails if one rises above its bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/alloc_count.rs"]
mod alloc_count;

use std::net::IpAddr;
use std::sync::Arc;

use alloc_count::{CountingAlloc, Counts};
use bytes::Bytes;
use flashsale_engine::{Engine, EngineConfig, SystemClock};
use flashsale_gateway::auth::{Role, Tokens};
use flashsale_gateway::http::{ApiConfig, App};
use flashsale_persistence::EmbeddedBackend;
use http_body_util::{BodyExt, Full};
use hyper::Request;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The storefront token of these tests.
const SHOP: &str = "alloc-shop";

/// Requests measured per figure (after as many for the warm-up).
const ROUNDS: usize = 300;

/// The most allocations one warm hot-item reservation (201) may make on the HTTP worker's
/// thread (exact: 38 before ADR 0051's addendum, 15 after), and process-wide (the shard and
/// the log included; their share moves by ±10 from run to run, so this bound is loose).
const RESERVE_BOUND: Counts = Counts {
    thread: 15,
    process: 110,
};

/// The same for a sold-out answer (409; refused at the SKU's gate, no shard hop: 22 before,
/// 15 after).
const SOLD_OUT_BOUND: Counts = Counts {
    thread: 15,
    process: 24,
};

/// `POST /v1/reservations` of one unit of `sku` for buyer `b{n}`, as `hot_item.lua` sends it.
fn reserve_request(sku: &str, n: usize) -> Request<Full<Bytes>> {
    let body = format!(r#"{{"buyer":"b{n}","lines":[{{"sku":"{sku}","qty":1}}]}}"#);
    Request::builder()
        .method("POST")
        .uri("/v1/reservations")
        .header("authorization", format!("Bearer {SHOP}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Creates `sku` with `stock` units (1500 cents each).
async fn put_sku(app: &App<Engine>, sku: &str, stock: u64) {
    let body = format!(r#"{{"name":"Tee","price_cents":1500,"stock":{stock}}}"#);
    let req = Request::builder()
        .method("PUT")
        .uri(format!("/v1/skus/{sku}"))
        .header("authorization", "Bearer adm")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = app.handle(req, peer()).await;
    assert_eq!(res.status(), 201);
}

/// The client address of every request.
fn peer() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Sends `ROUNDS` warm-up then `ROUNDS` counted reservations of `sku`, each expected to
/// answer `status`; returns the median allocations per request (thread, process), and the
/// last answer's body.
async fn median_allocations(
    app: &App<Engine>,
    sku: &str,
    status: u16,
    first_buyer: usize,
) -> (Counts, Bytes) {
    let mut threads = Vec::with_capacity(ROUNDS);
    let mut processes = Vec::with_capacity(ROUNDS);
    let mut last = Bytes::new();
    for i in 0..2 * ROUNDS {
        let req = reserve_request(sku, first_buyer + i);
        let before = Counts::now();
        let res = app.handle(req, peer()).await;
        let used = Counts::now().since(before);
        assert_eq!(res.status(), status, "request {i} of {sku}");
        if i >= ROUNDS {
            threads.push(used.thread);
            processes.push(used.process);
        }
        last = res.into_body().collect().await.unwrap().to_bytes();
    }
    threads.sort_unstable();
    processes.sort_unstable();
    let median = Counts {
        thread: threads[ROUNDS / 2],
        process: processes[ROUNDS / 2],
    };
    (median, last)
}

#[test]
fn a_hot_item_reservation_allocates_at_most_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(
        Arc::new(EmbeddedBackend::open(dir.path()).unwrap()),
        Arc::new(SystemClock),
    );
    cfg.shards = 1;
    cfg.pin_cores = false;
    // No expiry sweep while counting (the reservations hold for a minute).
    cfg.expiry_tick_ms = 60_000;
    let engine = Engine::start(cfg).unwrap();
    let mut tokens = Tokens::new();
    tokens.add("adm", Role::Admin);
    tokens.add(SHOP, Role::Storefront);
    let app = App::new(
        engine.clone(),
        ApiConfig {
            tokens,
            ..ApiConfig::default()
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        put_sku(&app, "hot", 1_000_000).await;
        put_sku(&app, "gone", 0).await;
        let (reserve, body) = median_allocations(&app, "hot", 201, 0).await;
        let shown: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(shown["status"], "held");
        assert_eq!(shown["buyer"], format!("b{}", 2 * ROUNDS - 1));
        let (sold_out, body) = median_allocations(&app, "gone", 409, 2 * ROUNDS).await;
        let shown: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(shown["type"].as_str().unwrap().ends_with("sold-out"));
        println!(
            "allocations per request (median of {ROUNDS}): hot-item reserve 201: \
             {} on the HTTP thread, {} process-wide; sold out 409: {} on the HTTP thread, \
             {} process-wide",
            reserve.thread, reserve.process, sold_out.thread, sold_out.process
        );
        assert!(
            reserve.thread <= RESERVE_BOUND.thread && reserve.process <= RESERVE_BOUND.process,
            "reserve: {reserve:?} above {RESERVE_BOUND:?}"
        );
        assert!(
            sold_out.thread <= SOLD_OUT_BOUND.thread && sold_out.process <= SOLD_OUT_BOUND.process,
            "sold out: {sold_out:?} above {SOLD_OUT_BOUND:?}"
        );
    });
    engine.shutdown();
}
