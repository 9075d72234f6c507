//! The dashboard's endpoints: sign-in with the admin token for a session cookie, the pages and
//! assets, the event stream's credentials and bound, and the recent-problems ring.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde_json::json;

use super::{app, call, call_with, Reply};
use crate::dashboard::feed::MAX_STREAMS;
use crate::dashboard::sample::{Sampler, DASHBOARD_TOP_SKUS};
use crate::dashboard::sampler::{read_inputs, SubscriberCount};
use crate::dashboard::DashboardFeed;
use crate::http::app::tests::fake::Fake;
use crate::http::app::{App, ResBody};

/// Signs in with `token`.
async fn sign_in(app: &App<Fake>, token: &str) -> Reply {
    let body = json!({ "token": token }).to_string();
    call_with(
        app,
        "POST",
        "/dashboard/session",
        None,
        &body,
        &[("content-type", "application/json")],
    )
    .await
}

/// The `name=value` part of a sign-in answer's Set-Cookie.
fn cookie_of(r: &Reply) -> String {
    let set = r.headers["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// `GET path` with `headers`; the raw response.
async fn get_raw(
    app: &App<Fake>,
    path: &str,
    headers: &[(&str, &str)],
) -> hyper::Response<ResBody> {
    let mut b = Request::builder().method("GET").uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::new())).unwrap();
    app.handle(req, "127.0.0.1".parse().unwrap()).await
}

#[tokio::test]
async fn the_admin_token_buys_a_session_cookie_for_the_dashboard_only() {
    let app = app();
    let login = call(&app, "GET", "/dashboard", None, "").await;
    assert_eq!(login.status, 200);
    assert!(login.body.as_str().unwrap().contains("id=\"login\""));
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    assert_eq!(sign_in(&app, "nope").await.status, 401);
    let r = sign_in(&app, "shop").await;
    assert_eq!(
        (r.status, r.body["detail"].as_str()),
        (403, Some("the dashboard needs an admin token"))
    );
    let r = call_with(
        &app,
        "POST",
        "/dashboard/session",
        None,
        r#"{"token":"adm","x":1}"#,
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(r.status, 400, "unknown fields are refused");

    let r = sign_in(&app, "adm").await;
    assert_eq!(r.status, 204);
    let set = r.headers["set-cookie"].to_str().unwrap();
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = cookie_of(&r);
    let page = call_with(&app, "GET", "/dashboard", None, "", &[("cookie", &cookie)]).await;
    assert!(
        page.body.as_str().unwrap().contains("id=\"skus\""),
        "the dashboard itself"
    );
    let tampered = format!("{}0", cookie);
    let page = call_with(
        &app,
        "GET",
        "/dashboard",
        None,
        "",
        &[("cookie", &tampered)],
    )
    .await;
    assert!(page.body.as_str().unwrap().contains("id=\"login\""));

    // The cookie is no credential for the API.
    let r = call_with(&app, "GET", "/v1/skus", None, "", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 401);

    let r = call(&app, "DELETE", "/dashboard/session", None, "").await;
    assert_eq!(r.status, 204);
    assert!(r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
}

#[tokio::test]
async fn assets_are_embedded() {
    let app = app();
    let r = call(&app, "GET", "/dashboard/assets/dashboard.js", None, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/javascript; charset=utf-8");
    assert!(r
        .body
        .as_str()
        .unwrap()
        .contains("new EventSource(\"/dashboard/events\")"));
    let r = call(&app, "GET", "/dashboard/assets/dashboard.css", None, "").await;
    assert_eq!(r.headers["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        call(&app, "GET", "/dashboard/assets/nope.js", None, "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_event_stream_needs_a_session_and_is_bounded() {
    let feed = Arc::new(DashboardFeed::new());
    let app = app().with_dashboard(feed.clone());
    assert_eq!(get_raw(&app, "/dashboard/events", &[]).await.status(), 401);
    // A bearer token, even an admin's, is no credential for the stream.
    for token in ["Bearer shop", "Bearer adm"] {
        let auth = [("authorization", token)];
        let status = get_raw(&app, "/dashboard/events", &auth).await.status();
        assert_eq!(status, 401, "{token}");
    }

    // A sample of the app itself, published as the sampler does.
    call(&app, "GET", "/v1/skus/nosuch", Some("adm"), "").await;
    let subscribers: SubscriberCount = Box::new(|| 7);
    let inputs = read_inputs(&app, &feed, &subscribers, true).await;
    feed.publish(&Sampler::new().sample(inputs, DASHBOARD_TOP_SKUS));

    let cookie = cookie_of(&sign_in(&app, "adm").await);
    let res = get_raw(&app, "/dashboard/events", &[("cookie", &cookie)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let text = String::from_utf8(first.to_vec()).unwrap();
    let data = text
        .strip_prefix("retry: 2000\n\ndata: ")
        .unwrap()
        .trim_end();
    let sample: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(sample["stream_subscribers"], 7);
    assert_eq!(sample["errors"][0]["type"], "not-found");
    assert_eq!(sample["errors"][0]["path"], "/v1/skus/nosuch");
    assert!(sample["errors_total"].as_u64().unwrap() >= 1);

    // Beyond MAX_STREAMS, 429.
    let adm = [("cookie", cookie.as_str())];
    let mut open = vec![body];
    while open.len() < MAX_STREAMS {
        let res = get_raw(&app, "/dashboard/events", &adm).await;
        assert_eq!(res.status(), 200);
        open.push(res.into_body());
    }
    let res = get_raw(&app, "/dashboard/events", &adm).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "5");
    drop(open);
    assert_eq!(get_raw(&app, "/dashboard/events", &adm).await.status(), 200);
}

#[tokio::test]
async fn without_a_feed_the_stream_is_unavailable() {
    let app = app();
    let cookie = cookie_of(&sign_in(&app, "adm").await);
    let res = get_raw(&app, "/dashboard/events", &[("cookie", &cookie)]).await;
    assert_eq!(res.status(), 503);
}
