//! What a high-availability leader runs besides its engine, across a SIGKILL of the leader
//! (ADR 0027): event delivery (signed webhooks to a local receiver and the real RabbitMQ)
//! resumes on the new leader from the positions in Postgres, and the waiting room keeps every
//! ticket's status, position and pass, with passes signed by the old leader valid on the new.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod events_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use events_support::{buy, eventually, unique, Receiver, MODE_FAIL_HALF};
use flashsale_events::Secret;
use serde_json::{json, Value};
use support::{
    now_rfc3339_minus, poll_until, reserve_with, wait_role, Api, PgSchema, Server, ADMIN, SHOP,
};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Sends until the answer is not `503 unavailable` (a new leader starts event delivery just
/// after it starts serving; meanwhile the webhook endpoints say so), within 10 s.
async fn send_started(api: &Api, method: &str, path: &str, body: Option<Value>) -> support::Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = api.send(method, path, Some(ADMIN), body.clone()).await;
        if r.status != 503 || r.problem() != "unavailable" || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of confirmed reservations among `(type, body)` pairs.
fn confirmed_ids<'a>(events: impl Iterator<Item = &'a Value>) -> BTreeSet<String> {
    events
        .filter(|b| b["type"] == "reservation.confirmed")
        .map(|b| b["data"]["reservation_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_on_the_new_leader_after_a_sigkill() {
    use futures::StreamExt as _;
    use lapin::options::*;
    use lapin::types::FieldTable;

    let schema = PgSchema::new("ha_events");
    let exchange = unique("flashsale.ha");
    let queue = unique("flashsale-ha-q");
    // The real broker: a queue of our own bound to the exchange the nodes publish to.
    let props = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let conn = lapin::Connection::connect(AMQP_URL, props)
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (guest/guest) is required");
    let ch = conn.create_channel().await.unwrap();
    events_support::bind_topic_queue(&ch, &exchange, &queue, "reservation.*").await;
    let published: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let mut consumer = ch
        .basic_consume(
            &queue,
            "ha-test",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let sink = published.clone();
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let id = d
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&d.data).unwrap();
            sink.lock().unwrap().push((id, body));
        }
    });

    // A receiver failing every other request: delivery lags behind the load (each event is
    // retried once), so the SIGKILL lands mid-delivery.
    let receiver = Receiver::start().await;
    receiver.mode.store(MODE_FAIL_HALF, Ordering::Relaxed);
    let flags = [
        "--webhook-allow-private",
        "--webhook-retry-base-ms",
        "10",
        "--amqp-url",
        AMQP_URL,
        "--amqp-exchange",
        &exchange,
    ];
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = node(da.path(), schema.name(), "a", &flags);
    wait_role(&a, "leader", Duration::from_secs(20)).await;
    let b = node(db.path(), schema.name(), "b", &flags);
    wait_role(&b, "standby", Duration::from_secs(20)).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));

    // Endpoints are managed on the leader; a standby refuses with 503 not-leader.
    let hook = json!({"url": receiver.url(), "events": ["*"]});
    let r = api_b
        .send("POST", "/v1/webhooks", Some(ADMIN), Some(hook.clone()))
        .await;
    assert_eq!((r.status, r.problem()), (503, "not-leader"), "{}", r.body);
    let r = send_started(&api_a, "POST", "/v1/webhooks", Some(hook)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let endpoint = r.body["id"].as_str().unwrap().to_owned();
    *receiver.secret.lock().unwrap() =
        Some(Secret::parse(r.body["secret"].as_str().unwrap()).unwrap());
    api_a
        .put_sku(
            "ha-evt",
            json!({"name": "Tee", "price_cents": 1000, "stock": 100000, "reservation_ttl_s": 600}),
        )
        .await;
    // The standby delivers nothing: no destination in its metrics.
    let standby_metrics = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !standby_metrics.contains(&format!("destination=\"{endpoint}\"")),
        "a standby runs event delivery"
    );

    // Load, then SIGKILL the leader while deliveries are under way.
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..4)
        .map(|n| tokio::spawn(buy(api_a.clone(), "ha-evt", n, 300, confirmed.clone())))
        .collect();
    let started = eventually(Duration::from_secs(30), || {
        confirmed.lock().unwrap().len() >= 100 && !receiver.inbox.lock().unwrap().ok.is_empty()
    })
    .await;
    assert!(started, "load too small before the kill");
    let delivered_at_kill = confirmed_ids(receiver.distinct().values()).len();
    a.kill();
    for t in tasks {
        t.await.unwrap();
    }
    let before_kill = confirmed.lock().unwrap().len();
    eprintln!(
        "at the kill: {before_kill} confirmed, {delivered_at_kill} confirmations delivered by webhook"
    );
    assert!(
        delivered_at_kill < before_kill,
        "the kill did not land mid-delivery ({delivered_at_kill} of {before_kill} delivered)"
    );
    wait_role(&b, "leader", Duration::from_secs(10)).await;
    // The new leader knows the endpoint (the registry is in Postgres) and delivers new
    // confirmations too.
    let r = send_started(&api_b, "GET", &format!("/v1/webhooks/{endpoint}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    buy(api_b.clone(), "ha-evt", 99, 20, confirmed.clone()).await;
    assert_eq!(confirmed.lock().unwrap().len(), before_kill + 20);

    let wanted: BTreeSet<String> = confirmed.lock().unwrap().iter().cloned().collect();
    let by_webhook = || confirmed_ids(receiver.distinct().values());
    let by_amqp = || {
        let got = published.lock().unwrap();
        confirmed_ids(got.iter().map(|(_, b)| b))
    };
    let all = eventually(Duration::from_secs(60), || {
        wanted.is_subset(&by_webhook()) && wanted.is_subset(&by_amqp())
    })
    .await;
    assert!(
        all,
        "confirmed reservations not delivered after the takeover: {} by webhook, {} by AMQP, of {}",
        wanted.difference(&by_webhook()).count(),
        wanted.difference(&by_amqp()).count(),
        wanted.len()
    );
    // Stable ids: a duplicate (the batch in flight at the kill) carries the same id and the
    // very same body, by webhook and by AMQP alike.
    let mut first: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    {
        let inbox = receiver.inbox.lock().unwrap();
        assert_eq!(inbox.bad_signatures, 0, "deliveries with a bad signature");
        for r in &inbox.ok {
            assert_eq!(r.body["id"], r.id.as_str());
            let seen = first.entry(r.id.clone()).or_insert_with(|| r.raw.clone());
            assert_eq!(seen, &r.raw, "event {} changed between deliveries", r.id);
        }
    }
    let total = receiver.inbox.lock().unwrap().ok.len();
    eprintln!(
        "webhook deliveries: {total}, distinct events: {}, AMQP messages: {}",
        first.len(),
        published.lock().unwrap().len()
    );
    let webhook_bodies = receiver.distinct();
    for (id, body) in published.lock().unwrap().iter() {
        assert_eq!(body["id"], id.as_str(), "message_id is the event id");
        if let Some(w) = webhook_bodies.get(id) {
            assert_eq!(w, body, "event {id} differs between the sinks");
        }
    }
    ch.queue_delete(&queue, QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = ch
        .exchange_delete(&exchange, ExchangeDeleteOptions::default())
        .await;
    let _ = conn.close(0, "done").await;
    assert_eq!(b.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_survives_a_takeover() {
    let schema = PgSchema::new("ha_queue");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = node(da.path(), schema.name(), "a", &[]);
    wait_role(&a, "leader", Duration::from_secs(20)).await;
    let b = node(db.path(), schema.name(), "b", &[]);
    wait_role(&b, "standby", Duration::from_secs(20)).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    api_a
        .put_sku(
            "drop-tee",
            json!({"name": "Drop tee", "price_cents": 2500, "stock": 3, "reservation_ttl_s": 600}),
        )
        .await;
    let queue = json!({
        "skus": ["drop-tee"], "starts_at": now_rfc3339_minus(1), "admit_per_s": 50,
        "pass_ttl_s": 600, "method": "fifo"
    });
    // Queue writes go to the leader only.
    let r = api_b
        .send("PUT", "/v1/queues/drop", Some(ADMIN), Some(queue.clone()))
        .await;
    assert_eq!((r.status, r.problem()), (503, "not-leader"), "{}", r.body);
    let r = api_a
        .send("PUT", "/v1/queues/drop", Some(ADMIN), Some(queue))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let join = |api: &Api, buyer: String| {
        let api = api.clone();
        async move {
            api.send(
                "POST",
                "/v1/queues/drop/join",
                Some(SHOP),
                Some(json!({ "buyer": buyer })),
            )
            .await
        }
    };
    let r = join(&api_b, "b0".into()).await;
    assert_eq!((r.status, r.problem()), (503, "not-leader"), "{}", r.body);
    let mut tickets = Vec::new();
    for i in 0..8 {
        let r = join(&api_a, format!("b{i}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        tickets.push(r.body["ticket"].as_str().unwrap().to_owned());
    }
    // 3 units: 3 passes in join order, the others waiting at positions 1..5.
    let seen = poll_until(&api_a, &tickets, |all| {
        all.iter().filter(|t| t["status"] == "admitted").count() == 3
    })
    .await;
    let pass = |i: usize| seen[i]["pass"].as_str().unwrap().to_owned();
    // b0 buys (its pass is spent); b1 holds a reservation with its pass.
    let r = reserve_with(&api_a, "b0", Some(&pass(0))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = api_a
        .send(
            "POST",
            &format!("/v1/reservations/{id}/confirm"),
            Some(SHOP),
            Some(json!({"payment_ref": "p0"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = reserve_with(&api_a, "b1", Some(&pass(1))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let before = poll_until(&api_a, &tickets, |all| all[0]["status"] == "spent").await;

    a.kill();
    wait_role(&b, "leader", Duration::from_secs(10)).await;
    // Every ticket as it was: status, position and pass.
    let after = poll_until(&api_b, &tickets, |_| true).await;
    for (x, y) in before.iter().zip(&after) {
        assert_eq!(
            (&x["status"], &x["position"], &x["pass"]),
            (&y["status"], &y["position"], &y["pass"]),
            "ticket changed across the takeover"
        );
    }
    for (i, t) in after.iter().enumerate().skip(3) {
        assert_eq!(t["position"], (i - 2) as u64, "{t}");
    }
    // Joining again returns the same ticket.
    let r = join(&api_b, "b5".into()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["ticket"], tickets[5].as_str());
    // The old leader's passes hold on the new one: spent stays spent, in use stays in use,
    // and the unused one reserves.
    let r = reserve_with(&api_b, "b0", Some(&pass(0))).await;
    assert_eq!((r.status, r.body["reason"].as_str()), (403, Some("spent")));
    let r = reserve_with(&api_b, "b1", Some(&pass(1))).await;
    assert_eq!((r.status, r.problem()), (403, "pass-invalid"), "{}", r.body);
    let r = reserve_with(&api_b, "b2", None).await;
    assert_eq!((r.status, r.problem()), (403, "pass-required"));
    let r = reserve_with(&api_b, "b2", Some(&pass(2))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Every unit is now claimed: the waiting tickets learn the sell-out from the new leader.
    poll_until(&api_b, &tickets[3..], |all| {
        all.iter().all(|t| t["status"] == "sold_out")
    })
    .await;
    assert_eq!(b.stop().code(), Some(0));
}

/// A node of the group, with the buyer rate limit off and `more` flags.
fn node(dir: &Path, schema: &str, node_id: &str, more: &[&str]) -> Server {
    let mut extra = vec!["--rate-limit-buyer-rps", "0"];
    extra.extend_from_slice(more);
    support::ha_node(dir, schema, node_id, &extra, None)
}
