//! Internal errors are `500 internal` with a generic detail: the cause goes to the log only,
//! and never becomes a 4xx.

use flashsale_engine::CommandError;

use super::{app, call, problem_type, seed};
use crate::http::problem::INTERNAL_DETAIL;

#[tokio::test]
async fn an_engine_bug_is_500_with_no_internals_in_the_body() {
    let app = app();
    seed(&app, "tee", 5).await;
    let secret = "res_00000000000000ff missing after apply (shard 3)";
    *app.inventory().fail_with.lock().unwrap() = Some(CommandError::Internal(secret.into()));
    let requests = [
        (
            "POST",
            "/v1/reservations",
            r#"{"buyer":"b1","lines":[{"sku":"tee","qty":1}]}"#,
        ),
        ("GET", "/v1/skus/tee", ""),
        ("GET", "/v1/skus", ""),
        ("POST", "/v1/skus/tee/restock", r#"{"qty":1}"#),
        ("GET", "/v1/reservations/res_00000000000000ff", ""),
        ("POST", "/v1/reservations/res_00000000000000ff/cancel", ""),
        ("GET", "/v1/orders/ord_00000000000000ff", ""),
    ];
    for (method, path, body) in requests {
        let token = if path.contains("restock") {
            "adm"
        } else {
            "shop"
        };
        let r = call(&app, method, path, Some(token), body).await;
        assert_eq!(
            (r.status, problem_type(&r)),
            (500, "internal"),
            "{method} {path}: {}",
            r.body
        );
        assert_eq!(r.body["detail"], INTERNAL_DETAIL);
        assert_eq!(r.headers["content-type"], "application/problem+json");
        let text = r.body.to_string();
        for leak in ["missing", "apply", "shard", "res_00000000000000ff"] {
            assert!(
                !text.contains(leak),
                "{method} {path} leaks {leak:?}: {text}"
            );
        }
    }
    let metrics = call(&app, "GET", "/metrics", None, "").await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("flashsale_http_requests_total{route=\"reserve\",status=\"500\"} 1"),
        "{text}"
    );
}

#[test]
fn internal_problems_keep_their_cause_for_the_log_only() {
    let p = crate::http::problem::Problem::from(CommandError::Internal("the cause".into()));
    assert_eq!(p.log_detail.as_deref(), Some("the cause"));
    assert_eq!(p.detail, INTERNAL_DETAIL);
    assert!(!p.body().to_string().contains("the cause"));
}
