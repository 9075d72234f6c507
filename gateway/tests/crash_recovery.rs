//! Crash tests: SIGKILL a real `flashsale serve` in the middle of a load of reservations and
//! confirmations, restart it on the same log, and check that every acknowledged reservation
//! and confirmation is there and that no SKU is oversold. Once per log backend.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{psql, PgSchema, Server, ADMIN, DATABASE_URL, SHOP};

const SKU: &str = "crash-tee";
const STOCK: u64 = 400;
const BUYERS: usize = 24;
/// Upper bound on requests per buyer task (the kill usually comes first).
const MAX_PER_BUYER: usize = 400;

#[derive(Default)]
struct Acked {
    held: Vec<String>,
    confirmed: Vec<String>,
}

async fn put_sku(http: &reqwest::Client, base: &str) {
    let res = http
        .put(format!("{base}/v1/skus/{SKU}"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Crash tee", "price_cents": 1500, "stock": STOCK, "reservation_ttl_s": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap());
}

/// One buyer: reserve one unit, confirm every other reservation; records only what the server
/// acknowledged. Stops at the first transport error (the server was killed).
async fn buyer(
    http: reqwest::Client,
    base: String,
    n: usize,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
) {
    for i in 0..MAX_PER_BUYER {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let res = http
            .post(format!("{base}/v1/reservations"))
            .bearer_auth(SHOP)
            .json(&json!({"buyer": format!("b{n}-{i}"), "lines": [{"sku": SKU, "qty": 1}]}))
            .send()
            .await;
        let Ok(res) = res else { return };
        let status = res.status().as_u16();
        let Ok(body) = res.json::<Value>().await else {
            return;
        };
        match status {
            201 => {
                let id = body["id"].as_str().unwrap().to_owned();
                acked.lock().unwrap().held.push(id.clone());
                if i % 2 == 0 {
                    let res = http
                        .post(format!("{base}/v1/reservations/{id}/confirm"))
                        .bearer_auth(SHOP)
                        .json(&json!({"payment_ref": format!("pay-{n}-{i}")}))
                        .send()
                        .await;
                    let Ok(res) = res else { return };
                    if res.status().as_u16() == 200 {
                        acked.lock().unwrap().confirmed.push(id);
                    }
                }
            }
            409 => assert_eq!(
                body["type"], "https://flashsale.dev/problems/sold-out",
                "{body}"
            ),
            // 503 while the log is not writable is allowed: nothing was acknowledged.
            503 => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
}

/// What `crash_and_recover` saw acknowledged, for backend-specific checks afterwards.
struct Outcome {
    confirmed: usize,
    /// The restarted server, still running.
    server: Server,
}

fn crash_and_recover(extra: &[&str]) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut server = Server::start_in(tmp.path(), extra, true);
    let base = server.url("");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        put_sku(&http, &base).await;
        let tasks: Vec<_> = (0..BUYERS)
            .map(|n| {
                tokio::spawn(buyer(
                    http.clone(),
                    base.clone(),
                    n,
                    acked.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        // Let the load run until a good number of acknowledgements, then kill mid-flight.
        let start = Instant::now();
        while acked.lock().unwrap().held.len() < 150 && start.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    });
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.held.len() >= 150,
        "load too small: {} holds acknowledged",
        acked.held.len()
    );

    let server = Server::start_in(tmp.path(), extra, true);
    let base = server.url("");
    rt.block_on(async {
        for id in &acked.held {
            let res = http
                .get(format!("{base}/v1/reservations/{id}"))
                .bearer_auth(SHOP)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status().as_u16(),
                200,
                "acknowledged reservation {id} lost"
            );
            let body: Value = res.json().await.unwrap();
            let status = body["status"].as_str().unwrap();
            assert!(
                status == "held" || status == "confirmed",
                "{id} is {status} after restart"
            );
        }
        for id in &acked.confirmed {
            let body: Value = http
                .get(format!("{base}/v1/reservations/{id}"))
                .bearer_auth(SHOP)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                body["status"], "confirmed",
                "acknowledged confirmation of {id} lost"
            );
            assert!(body["order_id"].is_string(), "{body}");
        }
        let sku: Value = http
            .get(format!("{base}/v1/skus/{SKU}"))
            .bearer_auth(SHOP)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let n = |k: &str| sku[k].as_u64().unwrap();
        assert_eq!(n("total"), STOCK, "{sku}");
        assert_eq!(
            n("available") + n("reserved") + n("sold"),
            STOCK,
            "invariant broken: {sku}"
        );
        assert!(
            n("sold") >= acked.confirmed.len() as u64,
            "confirmed units lost: {sku}"
        );
        assert!(
            n("reserved") + n("sold") >= acked.held.len() as u64,
            "held units lost: {sku} vs {} acknowledged",
            acked.held.len()
        );
    });
    Outcome {
        confirmed: acked.confirmed.len(),
        server,
    }
}

#[test]
fn embedded_log_survives_sigkill() {
    let outcome = crash_and_recover(&[]);
    assert!(
        outcome.confirmed > 0,
        "no confirmation was acknowledged before the kill"
    );
}

#[test]
fn postgres_log_survives_sigkill() {
    // A schema of its own, dropped afterwards; the test fails if Postgres is unreachable.
    let schema = PgSchema::new("crash");
    let outcome = crash_and_recover(&[
        "--database-url",
        DATABASE_URL,
        "--database-schema",
        schema.name(),
    ]);
    // The read model catches up from the log after the restart: every acknowledged
    // confirmation becomes an order row.
    let deadline = Instant::now() + Duration::from_secs(30);
    let orders = loop {
        let n: usize = psql(&format!("SELECT count(*) FROM {}.orders", schema.name()))
            .parse()
            .unwrap();
        if n >= outcome.confirmed || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(outcome.server);
    drop(schema);
    assert!(
        orders >= outcome.confirmed,
        "read model has {orders} orders, {} confirmed",
        outcome.confirmed
    );
}
