//! High availability in the API: a standby's `503 not-leader`, and `GET /v1/cluster`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{app, call, problem_type, seed};
use crate::ha::{ClusterState, NodeRole};

#[tokio::test]
async fn a_standby_refuses_ready_and_v1_with_the_leaders_url() {
    let state = Arc::new(ClusterState::new("n2"));
    state.update(|v| {
        v.leader_url = Some("http://10.0.0.1:8080".into());
        v.epoch = 4;
        v.log_position = 120;
        v.lag = 20;
    });
    let app = app().with_cluster(state.clone());
    let r = call(&app, "GET", "/ready", None, "").await;
    assert_eq!((r.status, problem_type(&r)), (503, "not-leader"));
    assert_eq!(r.body["leader_url"], "http://10.0.0.1:8080");
    assert_eq!(r.headers["retry-after"], "1");
    for (method, path) in [("POST", "/v1/reservations"), ("GET", "/v1/skus/tee")] {
        let r = call(&app, method, path, Some("shop"), "{}").await;
        assert_eq!((r.status, problem_type(&r)), (503, "not-leader"), "{path}");
    }
    // Credentials still come first: no token, no hint about the group.
    let r = call(&app, "POST", "/v1/reservations", None, "{}").await;
    assert_eq!(r.status, 401);
    let r = call(&app, "GET", "/v1/cluster", Some("adm"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["role"], "standby");
    assert_eq!(
        (r.body["epoch"].as_u64(), r.body["lag"].as_u64()),
        (Some(4), Some(20))
    );
    let r = call(&app, "GET", "/v1/cluster", Some("shop"), "").await;
    assert_eq!((r.status, problem_type(&r)), (403, "forbidden"));
    // No leader known: leader_url is null.
    state.update(|v| v.leader_url = None);
    let r = call(&app, "GET", "/ready", None, "").await;
    assert!(r.body["leader_url"].is_null(), "{}", r.body);
}

#[tokio::test]
async fn a_leader_serves_until_its_lease_lapses_by_its_own_clock() {
    let state = Arc::new(ClusterState::new("n1"));
    state.set_lease_deadline(Instant::now() + Duration::from_secs(60));
    state.update(|v| v.role = NodeRole::Leader);
    let app = app().with_cluster(state.clone());
    seed(&app, "tee", 5).await;
    assert_eq!(call(&app, "GET", "/ready", None, "").await.status, 200);
    // Paused past its lease: refused at once, before the controller notices.
    state.set_lease_deadline(Instant::now());
    let r = call(&app, "GET", "/v1/skus/tee", Some("shop"), "").await;
    assert_eq!((r.status, problem_type(&r)), (503, "not-leader"));
}

#[tokio::test]
async fn a_caught_up_standby_answers_reads_marked_with_its_lag_and_refuses_writes() {
    let state = Arc::new(ClusterState::new("n2"));
    state.set_lease_deadline(Instant::now() + Duration::from_secs(60));
    state.update(|v| v.role = NodeRole::Leader);
    let app = app().with_cluster(state.clone());
    seed(&app, "tee", 5).await;
    let r = call(&app, "GET", "/v1/skus/tee", Some("shop"), "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers.get("flashsale-role").is_none(),
        "a leader's read is unmarked"
    );
    state.update(|v| {
        v.role = NodeRole::Standby;
        v.leader_url = Some("http://10.0.0.1:8080".into());
        v.lag = 7;
    });
    // Not caught up yet: refused like a write.
    let r = call(&app, "GET", "/v1/skus/tee", Some("shop"), "").await;
    assert_eq!((r.status, problem_type(&r)), (503, "not-leader"));
    app.inventory().standby_reads.store(true, Ordering::Relaxed);
    for path in ["/v1/skus/tee", "/v1/skus", "/v1/skus/nope"] {
        let r = call(&app, "GET", path, Some("shop"), "").await;
        assert_eq!(r.headers["flashsale-role"], "standby", "{path}");
        assert_eq!(r.headers["flashsale-lag-records"], "7", "{path}");
    }
    assert_eq!(
        call(&app, "GET", "/v1/skus/tee", Some("shop"), "")
            .await
            .body["available"],
        5
    );
    // Writes, /ready and unauthenticated reads are refused as before.
    let r = call(&app, "POST", "/v1/reservations", Some("shop"), "{}").await;
    assert_eq!((r.status, problem_type(&r)), (503, "not-leader"));
    assert!(r.headers.get("flashsale-role").is_none());
    let r = call(&app, "GET", "/ready", None, "").await;
    assert_eq!((r.status, problem_type(&r)), (503, "not-leader"));
    assert_eq!(
        call(&app, "GET", "/v1/skus/tee", None, "").await.status,
        401
    );
}

#[tokio::test]
async fn without_ha_the_cluster_endpoint_is_not_found() {
    let r = call(&app(), "GET", "/v1/cluster", Some("adm"), "").await;
    assert_eq!((r.status, problem_type(&r)), (404, "not-found"));
}
