//! Events out of the committed log, end to end against the real binary: the webhook admin API
//! and its 422s, signed at-least-once delivery through a receiver failing half its requests
//! and a SIGKILL of the server, dead letters and their replay (Postgres log), and the
//! RabbitMQ sink through a broker outage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod events_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use events_support::{
    buy, eventually, unique, Proxy, Receiver, MODE_FAIL_HALF, MODE_OK, MODE_REDIRECT,
};
use flashsale_events::Secret;
use serde_json::{json, Value};
use support::{Api, PgSchema, Server, ADMIN, DATABASE_URL, SHOP};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Registers `url` for every event type and gives the receiver its secret.
async fn register(api: &Api, receiver: &Receiver) -> String {
    let r = api
        .send(
            "POST",
            "/v1/webhooks",
            Some(ADMIN),
            Some(json!({"url": receiver.url(), "events": ["*"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{}", r.body);
    *receiver.secret.lock().unwrap() = Some(Secret::parse(secret).unwrap());
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/v1/webhooks/{id}")
    );
    id
}

#[test]
fn webhook_targets_and_types_are_checked() {
    let server = Server::start(&[]);
    let rt = runtime();
    rt.block_on(async {
        let api = Api::new(&server);
        for (body, field) in [
            (
                json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
                "url",
            ),
            (
                json!({"url": "http://10.0.0.8/hook", "events": ["*"]}),
                "url",
            ),
            (
                json!({"url": "ftp://example.com/hook", "events": ["*"]}),
                "url",
            ),
            (
                json!({"url": "https://192.0.2.10/hook", "events": ["order.paid"]}),
                "events",
            ),
            (
                json!({"url": "https://192.0.2.10/hook", "events": []}),
                "events",
            ),
        ] {
            let r = api
                .send("POST", "/v1/webhooks", Some(ADMIN), Some(body.clone()))
                .await;
            assert_eq!(r.status, 422, "{body} → {}", r.body);
            assert_eq!(r.problem(), "invalid", "{}", r.body);
            assert_eq!(r.body["field"], field, "{}", r.body);
        }
        let r = api
            .send(
                "POST",
                "/v1/webhooks",
                Some(SHOP),
                Some(json!({"url": "https://192.0.2.10/hook", "events": ["*"]})),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        // A public target is accepted (TEST-NET-1: never routed, and no event follows).
        let r = api
            .send(
                "POST",
                "/v1/webhooks",
                Some(ADMIN),
                Some(
                    json!({"url": "https://192.0.2.10/hook", "events": ["reservation.confirmed"]}),
                ),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let list = api.get("/v1/webhooks", ADMIN).await;
        assert_eq!(list.body["items"][0]["id"], id.as_str(), "{}", list.body);
        assert!(
            list.body["items"][0].get("secret").is_none(),
            "{}",
            list.body
        );
        assert_eq!(
            api.get(&format!("/v1/webhooks/{id}/deliveries"), ADMIN)
                .await
                .status,
            200
        );
        let r = api
            .send("DELETE", &format!("/v1/webhooks/{id}"), Some(ADMIN), None)
            .await;
        assert_eq!(r.status, 204);
        let r = api
            .send("DELETE", &format!("/v1/webhooks/{id}"), Some(ADMIN), None)
            .await;
        assert_eq!(r.status, 404);
    });
}

#[test]
fn signed_webhooks_survive_a_failing_receiver_and_a_sigkill() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let flags = [
        "--webhook-allow-private",
        "--webhook-retry-base-ms",
        "10",
        "--rate-limit-buyer-rps",
        "0",
    ];
    let receiver = rt.block_on(Receiver::start());
    receiver.mode.store(MODE_FAIL_HALF, Ordering::Relaxed);
    let mut server = Server::start_in(tmp.path(), &flags, true);
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let endpoint = rt.block_on(async {
        let api = Api::new(&server);
        let endpoint = register(&api, &receiver).await;
        api.put_sku(
            "evt-tee",
            json!({"name": "Tee", "price_cents": 1000, "stock": 100000, "reservation_ttl_s": 600}),
        )
        .await;
        let tasks: Vec<_> = (0..8)
            .map(|n| tokio::spawn(buy(api.clone(), "evt-tee", n, 200, confirmed.clone())))
            .collect();
        // Kill -9 while deliveries are under way (and failing half the time).
        let ok = eventually(Duration::from_secs(30), || {
            confirmed.lock().unwrap().len() >= 150 && !receiver.inbox.lock().unwrap().ok.is_empty()
        })
        .await;
        assert!(ok, "load too small before the kill");
        server.kill();
        for t in tasks {
            t.await.unwrap();
        }
        endpoint
    });
    let confirmed = std::mem::take(&mut *confirmed.lock().unwrap());
    let server = Server::start_in(tmp.path(), &flags, true);
    rt.block_on(async {
        let api = Api::new(&server);
        let wanted: BTreeSet<String> = confirmed.iter().cloned().collect();
        let delivered_confirms = || -> BTreeSet<String> {
            receiver
                .distinct()
                .values()
                .filter(|b| b["type"] == "reservation.confirmed")
                .map(|b| b["data"]["reservation_id"].as_str().unwrap().to_owned())
                .collect()
        };
        let all = eventually(Duration::from_secs(60), || {
            wanted.is_subset(&delivered_confirms())
        })
        .await;
        let missing: Vec<_> = wanted.difference(&delivered_confirms()).cloned().collect();
        assert!(
            all,
            "{} confirmed reservations never delivered: {missing:?}",
            missing.len()
        );

        {
            let inbox = receiver.inbox.lock().unwrap();
            assert_eq!(inbox.bad_signatures, 0, "deliveries with a bad signature");
            // Stable ids: a duplicate carries the same id and the very same body; ids are the
            // log position.
            let mut first: BTreeMap<&str, &[u8]> = BTreeMap::new();
            for r in &inbox.ok {
                assert!(r.id.starts_with("evt_"), "{}", r.id);
                assert_eq!(r.body["id"], r.id.as_str());
                let seen = first.entry(&r.id).or_insert(&r.raw);
                assert_eq!(
                    *seen,
                    &r.raw[..],
                    "event {} changed between deliveries",
                    r.id
                );
            }
            // One reservation's events arrive in order: held before confirmed.
            let mut held_at = BTreeMap::new();
            for (i, r) in inbox.ok.iter().enumerate() {
                let rid = r.body["data"]["reservation_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                match r.body["type"].as_str().unwrap() {
                    "reservation.held" => {
                        held_at.entry(rid).or_insert(i);
                    }
                    "reservation.confirmed" if wanted.contains(&rid) => {
                        assert!(held_at.contains_key(&rid), "{rid} confirmed before held");
                    }
                    _ => {}
                }
            }
        }
        // Half the requests failed: the delivery log and the metrics show it.
        let d = api
            .get(&format!("/v1/webhooks/{endpoint}/deliveries"), ADMIN)
            .await;
        assert_eq!(d.status, 200);
        let items = d.body["items"].as_array().unwrap();
        assert!(items.iter().any(|i| i["outcome"] == "failed"), "{}", d.body);
        assert!(
            items.iter().any(|i| i["outcome"] == "delivered"),
            "{}",
            d.body
        );
        let metrics = api.raw("GET", "/metrics", None, None, &[]).await;
        let text = metrics.body.as_str().unwrap().to_owned();
        assert!(
            text.contains(&format!(
                "flashsale_events_failures_total{{kind=\"webhook\",destination=\"{endpoint}\"}}"
            )),
            "{text}"
        );
    });
}

#[test]
fn dead_letters_are_replayed_with_the_postgres_log() {
    let schema = PgSchema::new("events");
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    // Redirects are failures, never followed: everything is dead-lettered after 1 s.
    receiver.mode.store(MODE_REDIRECT, Ordering::Relaxed);
    let server = Server::start(&[
        "--webhook-allow-private",
        "--webhook-retry-period-s",
        "1",
        "--webhook-retry-base-ms",
        "50",
        "--database-url",
        DATABASE_URL,
        "--database-schema",
        schema.name(),
    ]);
    rt.block_on(async {
        let api = Api::new(&server);
        let endpoint = register(&api, &receiver).await;
        api.put_sku(
            "dl-tee",
            json!({"name": "Tee", "price_cents": 700, "stock": 10, "reservation_ttl_s": 600}),
        )
        .await;
        let r = api.reserve("dl-buyer", "dl-tee", 2).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let ok = eventually(Duration::from_secs(30), || {
            // Both events (sku.updated, reservation.held) given up on.
            receiver.requests.load(Ordering::Relaxed) >= 2
        })
        .await;
        assert!(ok);
        let view = loop {
            let v = api.get(&format!("/v1/webhooks/{endpoint}"), ADMIN).await;
            if v.body["dead_letters"].as_u64() == Some(2) {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(receiver.inbox.lock().unwrap().ok.is_empty(), "{}", view.body);
        // The redirect (to a URL of the receiver that would acknowledge) was never followed,
        // and the delivery log shows the 302 as a failure.
        assert_eq!(receiver.redirected.load(Ordering::Relaxed), 0);
        let d = api
            .get(&format!("/v1/webhooks/{endpoint}/deliveries"), ADMIN)
            .await;
        let items = d.body["items"].as_array().unwrap();
        assert!(
            items
                .iter()
                .all(|i| i["status"] == 302 && i["outcome"] != "delivered"),
            "{}",
            d.body
        );
        assert!(
            items
                .iter()
                .any(|i| i["error"] == "redirect (not followed)"),
            "{}",
            d.body
        );
        receiver.mode.store(MODE_OK, Ordering::Relaxed);
        let r = api
            .send("POST", &format!("/v1/webhooks/{endpoint}/replay"), Some(ADMIN), None)
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["replaying"], 2);
        let ok = eventually(Duration::from_secs(20), || receiver.distinct().len() == 2).await;
        assert!(ok, "replayed dead letters not delivered");
        let types: BTreeSet<String> = receiver
            .distinct()
            .values()
            .map(|b| b["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            types,
            BTreeSet::from(["reservation.held".to_owned(), "sku.updated".to_owned()])
        );
        let metrics = api.raw("GET", "/metrics", None, None, &[]).await;
        assert!(
            metrics.body.as_str().unwrap().contains(&format!(
                "flashsale_events_dead_letters_total{{kind=\"webhook\",destination=\"{endpoint}\"}} 2"
            )),
            "{}",
            metrics.body
        );
    });
    drop(server);
    drop(schema);
}

/// POSTs `path` as the storefront and returns the answer's status and body.
async fn shop_post(api: &Api, path: &str, body: Option<Value>) -> (u16, Value) {
    let r = api.send("POST", path, Some(SHOP), body).await;
    (r.status, r.body)
}

#[test]
fn sold_out_and_orders_with_lines_survive_a_restart() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let flags = ["--webhook-allow-private", "--rate-limit-buyer-rps", "0"];
    let receiver = rt.block_on(Receiver::start());
    let mut server = Server::start_in(tmp.path(), &flags, true);
    let sku = "so-tee";
    rt.block_on(async {
        let api = Api::new(&server);
        register(&api, &receiver).await;
        api.put_sku(
            sku,
            json!({"name": "Tee", "price_cents": 1500, "stock": 3, "reservation_ttl_s": 600}),
        )
        .await;
        // a: 2 units, confirmed (an order with its line).
        let a = api.reserve("buyer-a", sku, 2).await;
        assert_eq!(a.status, 201, "{}", a.body);
        let a = a.body["id"].as_str().unwrap().to_owned();
        let (st, body) = shop_post(
            &api,
            &format!("/v1/reservations/{a}/confirm"),
            Some(json!({"payment_ref": "pay-a"})),
        )
        .await;
        assert_eq!(st, 200, "{body}");
        // b takes the last unit: sold out (1).
        let b = api.reserve("buyer-b", sku, 1).await;
        assert_eq!(b.status, 201, "{}", b.body);
        let b = b.body["id"].as_str().unwrap().to_owned();
        // Cancelled: one unit back; c takes it: sold out again (2).
        let (st, body) = shop_post(&api, &format!("/v1/reservations/{b}/cancel"), None).await;
        assert_eq!(st, 200, "{body}");
        let c = api.reserve("buyer-c", sku, 1).await;
        assert_eq!(c.status, 201, "{}", c.body);
        let ok = eventually(Duration::from_secs(30), || {
            receiver
                .distinct()
                .values()
                .filter(|e| e["type"] == "sku.sold_out")
                .count()
                == 2
        })
        .await;
        assert!(ok, "two sell-outs not delivered: {:?}", receiver.distinct());
    });
    // Killed: the ledger is rebuilt from its stored start and the log.
    server.kill();
    let server = Server::start_in(tmp.path(), &flags, true);
    rt.block_on(async {
        let api = Api::new(&server);
        let r = api
            .send(
                "POST",
                &format!("/v1/skus/{sku}/restock"),
                Some(ADMIN),
                Some(json!({"qty": 2})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let d = api.reserve("buyer-d", sku, 2).await;
        assert_eq!(d.status, 201, "{}", d.body);
        let ok = eventually(Duration::from_secs(30), || {
            receiver
                .distinct()
                .values()
                .filter(|e| e["type"] == "sku.sold_out")
                .count()
                >= 3
        })
        .await;
        assert!(ok, "the sell-out after the restart not delivered");
        let events = receiver.distinct();
        let sold_out: Vec<&Value> = events
            .values()
            .filter(|e| e["type"] == "sku.sold_out")
            .collect();
        assert_eq!(sold_out.len(), 3, "{sold_out:?}");
        let mut units: Vec<(u64, u64, u64)> = sold_out
            .iter()
            .map(|e| {
                assert_eq!(e["data"]["sku"], sku, "{e}");
                let id = e["id"].as_str().unwrap();
                assert!(id.starts_with("evt_") && id.ends_with("_1"), "{id}");
                (
                    e["data"]["stock"].as_u64().unwrap(),
                    e["data"]["reserved"].as_u64().unwrap(),
                    e["data"]["sold"].as_u64().unwrap(),
                )
            })
            .collect();
        units.sort();
        assert_eq!(units, vec![(3, 1, 2), (3, 1, 2), (5, 3, 2)]);
        // Each sell-out follows the hold that caused it: same log position.
        for e in &sold_out {
            let id = e["id"].as_str().unwrap();
            let held_id = id.strip_suffix("_1").unwrap();
            assert_eq!(events[held_id]["type"], "reservation.held", "{id}");
        }
        // The order with its lines.
        let confirmed: Vec<&Value> = events
            .values()
            .filter(|e| e["type"] == "reservation.confirmed")
            .collect();
        assert_eq!(confirmed.len(), 1, "{confirmed:?}");
        let data = &confirmed[0]["data"];
        assert_eq!(data["buyer"], "buyer-a", "{data}");
        assert_eq!(data["payment_ref"], "pay-a", "{data}");
        assert_eq!(
            data["lines"],
            json!([{"sku": sku, "qty": 2, "unit_price_cents": 1500}]),
            "{data}"
        );
        assert_eq!(data["total_cents"], 3000, "{data}");
        assert_eq!(data["partial"], false, "{data}");
        assert_eq!(receiver.inbox.lock().unwrap().bad_signatures, 0);
    });
}

/// Runs `flashsale serve` with `extra` flags that must make it refuse to start; returns its
/// exit code and stderr (killed and failed after 30 s).
fn serve_refused(dir: &std::path::Path, extra: &[&str]) -> (i32, String) {
    use std::io::Read as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flashsale"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("FLASHSALE_AMQP_URL")
        .env_remove("FLASHSALE_AMQP_CA_FILE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {extra:?} did not refuse to start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), err)
}

#[test]
fn amqp_urls_and_ca_files_are_checked_at_startup() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let junk = junk.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--amqp-url", "https://guest:s3cret@127.0.0.1:5672/%2f"],
            "amqp:// or amqps://",
        ),
        (
            &["--amqp-url", "amqp://guest:s3cret@127.0.0.1:notaport/%2f"],
            "invalid AMQP URL",
        ),
        (
            &[
                "--amqp-url",
                "amqp://guest:s3cret@127.0.0.1:5672/%2f",
                "--amqp-ca-file",
                junk,
            ],
            "needs an amqps:// URL",
        ),
        (
            &[
                "--amqp-url",
                "amqps://guest:s3cret@127.0.0.1:5671/%2f",
                "--amqp-ca-file",
                junk,
            ],
            "no PEM certificate",
        ),
    ];
    for (i, (extra, want)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("d{i}"));
        let (code, err) = serve_refused(&dir, extra);
        assert_ne!(code, 0, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(
            !err.contains("s3cret"),
            "{extra:?} leaked the password: {err}"
        );
    }
}

/// Opens a channel to the real broker (fails the test if it is unreachable).
async fn broker() -> (lapin::Connection, lapin::Channel) {
    let props = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let conn = lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", props)
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (guest/guest) is required");
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

#[test]
fn amqp_sink_catches_up_after_a_broker_outage() {
    use futures::StreamExt as _;
    use lapin::options::*;
    use lapin::types::FieldTable;

    let rt = runtime();
    let exchange = unique("flashsale.test");
    let queue = unique("flashsale-test-q");
    let (conn, ch, proxy) = rt.block_on(async {
        let (conn, ch) = broker().await;
        events_support::bind_topic_queue(&ch, &exchange, &queue, "reservation.*").await;
        let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
        (conn, ch, proxy)
    });
    let amqp_url = format!("amqp://guest:guest@{}/%2f", proxy.addr);
    let server = Server::start(&[
        "--amqp-url",
        &amqp_url,
        "--amqp-exchange",
        &exchange,
        "--rate-limit-buyer-rps",
        "0",
    ]);
    rt.block_on(async {
        let api = Api::new(&server);
        api.put_sku(
            "mq-tee",
            json!({"name": "Tee", "price_cents": 900, "stock": 100000, "reservation_ttl_s": 600}),
        )
        .await;
        // Consume everything the queue gets.
        let got: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
        let mut consumer = ch
            .basic_consume(
                &queue,
                "test",
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let sink = got.clone();
        let persistent = Arc::new(AtomicBool::new(true));
        let persistent_w = persistent.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let id = d
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                if d.properties.delivery_mode() != &Some(2) {
                    persistent_w.store(false, Ordering::Relaxed);
                }
                let body: Value = serde_json::from_slice(&d.data).unwrap();
                sink.lock()
                    .unwrap()
                    .push((id, d.routing_key.to_string(), body));
            }
        });
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let phase_counts: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        let phase = Arc::new(AtomicU64::new(0));
        let loader = {
            let (api, confirmed, stop, counts, phase) = (
                api.clone(),
                confirmed.clone(),
                stop.clone(),
                phase_counts.clone(),
                phase.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n < 20_000 {
                    let before = confirmed.lock().unwrap().len();
                    buy(api.clone(), "mq-tee", n, 1, confirmed.clone()).await;
                    if confirmed.lock().unwrap().len() > before {
                        counts[phase.load(Ordering::Relaxed) as usize]
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.cut();
        phase.store(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(10)).await;
        proxy.restore();
        phase.store(2, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        loader.await.unwrap();
        let before = phase_counts[0].load(Ordering::Relaxed) as f64 / 2.0;
        let during = phase_counts[1].load(Ordering::Relaxed) as f64 / 10.0;
        assert!(
            before > 0.0 && during > 0.0,
            "no reservations: {before}/s before, {during}/s during"
        );
        // Reservations never wait for the broker: the rate during the outage stays close.
        assert!(
            during >= before * 0.5,
            "rate fell from {before}/s to {during}/s during the outage"
        );

        let wanted: BTreeSet<String> = confirmed.lock().unwrap().iter().cloned().collect();
        let confirmed_in_queue = || -> BTreeSet<String> {
            got.lock()
                .unwrap()
                .iter()
                .filter(|(_, key, _)| key == "reservation.confirmed")
                .map(|(_, _, b)| b["data"]["reservation_id"].as_str().unwrap().to_owned())
                .collect()
        };
        let ok = eventually(Duration::from_secs(60), || {
            wanted.is_subset(&confirmed_in_queue())
        })
        .await;
        let missing = wanted.difference(&confirmed_in_queue()).count();
        assert!(
            ok,
            "{missing} of {} confirmations never published",
            wanted.len()
        );
        for (id, key, body) in got.lock().unwrap().iter() {
            assert_eq!(body["id"], id.as_str(), "message_id is the event id");
            assert_eq!(body["type"], key.as_str(), "routing key is the type");
        }
        assert!(
            persistent.load(Ordering::Relaxed),
            "a message was not persistent"
        );
        ch.queue_delete(&queue, QueueDeleteOptions::default())
            .await
            .unwrap();
        ch.exchange_delete(&exchange, ExchangeDeleteOptions::default())
            .await
            .unwrap();
        let _ = conn.close(0, "done").await;
    });
}
