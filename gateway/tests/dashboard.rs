//! The dashboard against the real `flashsale serve`: sign in for the session cookie, then the
//! event stream over a real socket: its samples agree with GET /v1/skus, it outlives the idle
//! timeout of connections (a stream in progress is a request in flight), and SIGTERM ends it
//! at once instead of holding up the drain. (The page itself is driven in headless Chromium by
//! scripts/dashboard-browser.sh.)

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Api, Server, ADMIN};

/// Reads `res` until `n` events arrived or `limit` passed; returns the events' JSON and
/// whether the stream ended.
async fn events(res: &mut reqwest::Response, n: usize, limit: Duration) -> (Vec<Value>, bool) {
    let deadline = Instant::now() + limit;
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, res.chunk()).await {
            Err(_) => break,
            Ok(Ok(Some(bytes))) => buf.push_str(std::str::from_utf8(&bytes).unwrap()),
            Ok(Ok(None)) | Ok(Err(_)) => return (out, true),
        }
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.strip_prefix("data: ") {
                out.push(serde_json::from_str(data.trim_end()).unwrap());
            }
        }
    }
    (out, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_agrees_with_the_api_outlives_idle_timeouts_and_ends_on_sigterm() {
    let server = Server::start(&["--header-timeout-ms", "700"]);
    let api = Api::new(&server);
    api.put_sku(
        "tee",
        json!({"name": "Tee", "price_cents": 1500, "stock": 50}),
    )
    .await;
    for buyer in ["a", "b", "c"] {
        assert_eq!(api.reserve(buyer, "tee", 2).await.status, 201);
    }

    let http = reqwest::Client::new();
    let signed_in = http
        .post(server.url("/dashboard/session"))
        .json(&json!({ "token": ADMIN }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 204);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(server.url("/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("/dashboard/assets/dashboard.js"));

    let mut stream = http
        .get(server.url("/dashboard/events"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // Four samples take about 3 s: four times the idle timeout of connections.
    let (samples, ended) = events(&mut stream, 4, Duration::from_secs(10)).await;
    assert!(!ended && samples.len() == 4, "{ended} {samples:?}");
    let last = samples.last().unwrap();
    let row = &last["skus"]["shown"][0];
    let (available, reserved, sold) = api.counts("tee").await;
    assert_eq!(row["sku"], "tee");
    assert_eq!(
        (
            row["available"].as_u64(),
            row["reserved"].as_u64(),
            row["sold"].as_u64()
        ),
        (Some(available), Some(reserved), Some(sold))
    );
    assert_eq!(row["total"], 50);
    assert_eq!(last["dashboard_streams"], 1);
    assert!(last["reservations_per_s"].is_number(), "{last}");

    // SIGTERM: the stream ends at once and the server exits well within its 10 s grace.
    let stopping = Instant::now();
    server.sigterm();
    let (_, ended) = events(&mut stream, 100, Duration::from_secs(5)).await;
    assert!(ended, "the stream did not end on SIGTERM");
    let mut server = server;
    let status = server.wait(Duration::from_secs(8));
    assert!(status.success(), "{status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
}
