//! The Rust client against a real HA group (two `flashsale serve --ha` on one Postgres schema):
//! given both nodes, standby first, it follows `503 not-leader` to the leader, and after the
//! leader is killed it moves to the node that took over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use flashsale_client::{ApiClient, NewReservation, ProblemKind, Role, SkuSettings};
use flashsale_protocol::{BuyerId, SkuId};
use support::{PgSchema, Server, ADMIN, SHOP};

/// Waits (bounded) until the node at `url` says it is `role` and names a leader.
async fn wait_role(url: &str, role: Role, limit: Duration) {
    let c = ApiClient::new(url, ADMIN, Duration::from_secs(5)).unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(v) = c.cluster().await {
            if v.role == role && v.leader_url.is_some() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} not {role:?} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_the_leader_of_a_real_group() {
    let schema = PgSchema::new("ha_client");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = node(da.path(), schema.name(), "a");
    let url_a = a.url("");
    wait_role(&url_a, Role::Leader, Duration::from_secs(20)).await;
    let b = node(db.path(), schema.name(), "b");
    let url_b = b.url("");
    wait_role(&url_b, Role::Standby, Duration::from_secs(20)).await;

    // Standby first: the typed cluster view, then every call lands on the leader.
    let admin = ApiClient::with_servers(&[&url_b, &url_a], ADMIN, Duration::from_secs(10)).unwrap();
    let shop = admin.with_token(SHOP).unwrap();
    let settings = SkuSettings {
        name: "HA tee".into(),
        price_cents: 100,
        stock: 10,
        ..SkuSettings::default()
    };
    let tee = SkuId::new("ha-tee").unwrap();
    let created = admin.put_sku(&tee, &settings).await.unwrap();
    assert_eq!(created.status, 201);
    assert_eq!(admin.server(), url_a, "the standby named the leader");
    let view = admin.cluster().await.unwrap();
    assert_eq!((view.role, view.node_id.as_str()), (Role::Leader, "a"));
    let held = shop
        .reserve(&NewReservation::new(
            BuyerId::new("ann").unwrap(),
            vec![(tee.clone(), 2)],
        ))
        .await
        .unwrap();
    // An unkeyed write sent to the standby is refused, typed, and not sent again.
    let standby_only = ApiClient::new(&url_b, ADMIN, Duration::from_secs(5)).unwrap();
    let body = serde_json::json!({ "qty": 1 });
    let e = standby_only
        .send(
            hyper::Method::POST,
            &format!("/v1/skus/{tee}/restock"),
            Some(&body),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Some(&ProblemKind::NotLeader), "{e}");
    assert_eq!(
        e.problem().unwrap().leader_url.as_deref(),
        Some(url_a.as_str())
    );

    // The leader dies; once b has taken over, the same client finds it (a refuses connections).
    a.kill();
    wait_role(&url_b, Role::Leader, Duration::from_secs(30)).await;
    let got = shop.reservation(held.id).await.unwrap();
    assert_eq!(
        got.value, held.value,
        "the acknowledged reservation survived"
    );
    assert_eq!(shop.server(), url_b);
    let counts = shop.sku(&tee).await.unwrap();
    assert_eq!((counts.total, counts.reserved), (10, 2));
    // A keyed restock (the client's) follows the new leader.
    let restocked = admin.restock(&tee, 1).await.unwrap();
    assert_eq!(restocked.value.total, 11, "{:?}", restocked.value);
    assert!(b.stop().success());
}

/// A node of the group.
fn node(dir: &std::path::Path, schema: &str, node_id: &str) -> Server {
    support::ha_node(dir, schema, node_id, &[], None)
}
