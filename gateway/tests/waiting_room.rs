//! The waiting room through the real server: admission up to the unclaimed units, the pass on
//! reservations, sell-out seen by every waiting ticket, and a restart (SIGTERM, same data dir)
//! that keeps every ticket's status and position and every spent pass spent.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{now_rfc3339_minus, poll_until, reserve_with, ticket, Api, Server, ADMIN, SHOP};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_passes_sell_out_and_a_restart_keep_their_promises() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), &[], true);
    let api = Api::new(&server);
    api.put_sku(
        "drop-tee",
        json!({"name": "Drop tee", "price_cents": 2500, "stock": 3}),
    )
    .await;
    let queue = json!({
        "skus": ["drop-tee"], "starts_at": now_rfc3339_minus(1), "admit_per_s": 50,
        "pass_ttl_s": 600, "method": "fifo"
    });
    let r = api
        .send("PUT", "/v1/queues/drop", Some(ADMIN), Some(queue))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut tickets = Vec::new();
    for i in 0..8 {
        let r = api
            .send(
                "POST",
                "/v1/queues/drop/join",
                Some(SHOP),
                Some(json!({"buyer": format!("b{i}")})),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        tickets.push(r.body["ticket"].as_str().unwrap().to_owned());
    }
    // 3 units: exactly 3 passes, in join order; the others wait with positions 1..5.
    let seen = poll_until(&api, &tickets, |all| {
        all.iter().filter(|t| t["status"] == "admitted").count() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen_later: Vec<Value> = {
        let mut v = Vec::new();
        for t in &tickets {
            v.push(ticket(&api, t).await);
        }
        v
    };
    assert_eq!(
        seen_later
            .iter()
            .filter(|t| t["status"] == "admitted")
            .count(),
        3,
        "never more passes than units"
    );
    for (i, t) in seen.iter().enumerate() {
        if i < 3 {
            assert_eq!(t["status"], "admitted", "{t}");
        } else {
            assert_eq!(t["position"], (i - 2) as u64, "{t}");
        }
    }
    let pass = |i: usize| seen[i]["pass"].as_str().unwrap().to_owned();

    // No pass, someone else's pass, then the right one; confirm spends it.
    let r = reserve_with(&api, "b0", None).await;
    assert_eq!((r.status, r.problem()), (403, "pass-required"));
    let r = reserve_with(&api, "b0", Some(&pass(1))).await;
    assert_eq!((r.status, r.problem()), (403, "pass-invalid"));
    let r = reserve_with(&api, "b0", Some(&pass(0))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/confirm"),
            Some(SHOP),
            Some(json!({"payment_ref": "p1"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = reserve_with(&api, "b0", Some(&pass(0))).await;
    assert_eq!(r.body["reason"], "spent", "{}", r.body);

    // A restart keeps every ticket as it was.
    let before: Vec<Value> = poll_until(&api, &tickets, |all| all[0]["status"] == "spent").await;
    assert_eq!(server.stop().code(), Some(0));
    let server = Server::start_in(tmp.path(), &[], true);
    let api = Api::new(&server);
    let after = poll_until(&api, &tickets, |_| true).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (&b["status"], &b["position"], &b["pass"]),
            (&a["status"], &a["position"], &a["pass"]),
            "ticket changed across the restart"
        );
    }
    let r = reserve_with(&api, "b0", Some(&pass(0))).await;
    assert_eq!(r.body["reason"], "spent", "{}", r.body);

    // The last two units are held: every waiting ticket learns the sell-out at once.
    for i in 1..3 {
        let r = reserve_with(&api, &format!("b{i}"), Some(&pass(i))).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let out = poll_until(&api, &tickets[3..], |all| {
        all.iter().all(|t| t["status"] == "sold_out")
    })
    .await;
    assert!(
        out.iter()
            .all(|t| t["poll_after_ms"].as_u64() == Some(5_000)),
        "{out:?}"
    );
    let r = api.get("/v1/queues/drop", ADMIN).await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["spent"].as_u64()),
        (Some("sold_out"), Some(1))
    );
    server.stop();
}
