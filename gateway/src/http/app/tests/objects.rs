//! Every request body is a JSON object: serde's positional form (a struct as an array of its
//! fields) is refused on every endpoint with a body, at the top level and inside `lines`.

use super::{app, call, problem_type, seed};

/// Asserts `body` on `method path` is 400 malformed, saying an object was expected.
async fn assert_refused(app: &super::App<super::Fake>, method: &str, path: &str, body: &str) {
    let token = if path.starts_with("/v1/skus") {
        "adm"
    } else {
        "shop"
    };
    let r = call(app, method, path, Some(token), body).await;
    assert_eq!(
        (r.status, problem_type(&r)),
        (400, "malformed"),
        "{method} {path} {body}: {}",
        r.body
    );
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("expected a JSON object"), "{detail}");
}

#[tokio::test]
async fn positional_arrays_are_refused_on_every_body_endpoint() {
    let app = app();
    seed(&app, "az", 5).await;
    assert_refused(&app, "PUT", "/v1/skus/tee", r#"["Tee",1500,10]"#).await;
    assert_refused(&app, "POST", "/v1/skus/az/restock", "[3]").await;
    assert_refused(&app, "POST", "/v1/reservations", r#"["zed",[["az",1]]]"#).await;
    assert_refused(
        &app,
        "POST",
        "/v1/reservations",
        r#"["zed",[{"sku":"az","qty":1}]]"#,
    )
    .await;
    assert_refused(
        &app,
        "POST",
        "/v1/reservations",
        r#"{"buyer":"zed","lines":[["az",1]]}"#,
    )
    .await;
    // Nothing was held by any of them.
    let r = call(&app, "GET", "/v1/skus/az", Some("shop"), "").await;
    assert_eq!(r.body["available"], 5, "{}", r.body);
    assert!(app
        .inventory()
        .state
        .lock()
        .unwrap()
        .reservations
        .is_empty());

    let r = call(
        &app,
        "POST",
        "/v1/reservations",
        Some("shop"),
        r#"{"buyer":"zed","lines":[{"sku":"az","qty":1}]}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_refused(
        &app,
        "POST",
        &format!("/v1/reservations/{id}/confirm"),
        r#"["pay_1"]"#,
    )
    .await;
    assert_refused(&app, "POST", &format!("/v1/reservations/{id}/cancel"), "[]").await;
    for body in ["null", "\"x\"", "7"] {
        assert_refused(&app, "POST", &format!("/v1/reservations/{id}/cancel"), body).await;
    }
    let r = call(
        &app,
        "GET",
        &format!("/v1/reservations/{id}"),
        Some("shop"),
        "",
    )
    .await;
    assert_eq!(r.body["status"], "held", "{}", r.body);
}
