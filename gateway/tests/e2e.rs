//! End-to-end: the real `flashsale serve` binary on a loopback port, driven over HTTP.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Api, Server, ADMIN, PARTNER, SHOP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Asserts `v` is an RFC 3339 UTC time with exactly three fraction digits
/// (`2026-11-21T10:00:00.250Z`): every response time has milliseconds.
fn assert_millis(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let b = s.as_bytes();
    assert_eq!(b.len(), 24, "{s}");
    assert_eq!((b[10], b[19], b[23]), (b'T', b'.', b'Z'), "{s}");
    assert!(b[20..23].iter().all(u8::is_ascii_digit), "{s}");
}

fn sku_body(stock: u64, ttl_s: u64) -> Value {
    json!({"name": "Tee", "price_cents": 1500, "stock": stock, "reservation_ttl_s": ttl_s})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_then_confirm_cancel_or_expire() {
    let server = Server::start(&["--rate-limit-buyer-rps", "0"]);
    let api = Api::new(&server);
    let r = api.put_sku("tee", sku_body(10, 1)).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.headers["location"], "/v1/skus/tee");

    // reserve → confirm → order
    let r = api.reserve("alice", "tee", 2).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "held");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_millis(&r.body["expires_at"]);
    assert_eq!(api.counts("tee").await, (8, 2, 0));
    let r = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/confirm"),
            Some(SHOP),
            Some(json!({"payment_ref": "pay-1"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "confirmed");
    let order = r.body["order_id"].as_str().unwrap().to_owned();
    assert!(order.starts_with("ord_"));
    let r = api.get(&format!("/v1/orders/{order}"), SHOP).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["buyer"], "alice");
    assert_eq!(r.body["payment_ref"], "pay-1");
    assert_eq!(r.body["total_cents"], 3000);
    assert_eq!(r.body["lines"][0]["unit_price_cents"], 1500);
    assert_millis(&r.body["created_at"]);
    assert_eq!(api.counts("tee").await, (8, 0, 2));
    // cancel after confirm
    let r = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(SHOP),
            None,
        )
        .await;
    assert_eq!((r.status, r.problem()), (409, "invalid-state"));

    // reserve → cancel
    let r = api.reserve("bob", "tee", 3).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(SHOP),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("released")),
        "{}",
        r.body
    );
    assert_eq!(api.counts("tee").await, (8, 0, 2));
    let r = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/confirm"),
            Some(SHOP),
            Some(json!({"payment_ref": "p"})),
        )
        .await;
    assert_eq!((r.status, r.problem()), (409, "invalid-state"));
    let r = api.get(&format!("/v1/reservations/{id}"), SHOP).await;
    assert_eq!(r.body["status"], "released");

    // reserve → expire (TTL 1 s)
    let r = api.reserve("carol", "tee", 4).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(api.counts("tee").await, (4, 4, 2));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = api.get(&format!("/v1/reservations/{id}"), SHOP).await;
        if r.body["status"] == "expired" {
            assert_eq!(r.body["release_reason"], "expired");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reservation never expired: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api.counts("tee").await, (8, 0, 2));
    let r = api
        .send(
            "POST",
            &format!("/v1/reservations/{id}/confirm"),
            Some(SHOP),
            Some(json!({"payment_ref": "late"})),
        )
        .await;
    assert_eq!((r.status, r.problem()), (409, "invalid-state"));

    let text = api.raw("GET", "/metrics", None, None, &[]).await.body;
    let text = text.as_str().unwrap();
    for needle in [
        "flashsale_reservations_total{outcome=\"confirmed\"} 1",
        "flashsale_reservations_total{outcome=\"released\"} 1",
        "flashsale_reservations_total{outcome=\"expired\"} 1",
        "flashsale_http_requests_total{route=\"reserve\",status=\"201\"} 3",
        "flashsale_log_commit_latency_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_of_the_contract() {
    let server = Server::start(&[
        "--body-limit-bytes",
        "2048",
        "--rate-limit-buyer-rps",
        "0.5",
        "--rate-limit-buyer-burst",
        "2",
    ]);
    let api = Api::new(&server);
    api.put_sku(
        "tee",
        json!({"name": "Tee", "price_cents": 100, "stock": 5, "per_buyer_limit": 2}),
    )
    .await;
    api.put_sku(
        "later",
        json!({"name": "Later", "price_cents": 100, "stock": 5, "sale_starts_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    let reserve = |buyer: &str, lines: Value| json!({"buyer": buyer, "lines": lines});

    // 400 malformed: unknown field, says where
    let r = api
        .send(
            "POST",
            "/v1/reservations",
            Some(SHOP),
            Some(json!({"buyer": "b0", "lines": [], "coupon": 1})),
        )
        .await;
    assert_eq!((r.status, r.problem()), (400, "malformed"));
    assert!(r.body["detail"].as_str().unwrap().contains("coupon"));
    assert_eq!(r.headers["content-type"], "application/problem+json");
    let r = api
        .raw(
            "POST",
            "/v1/reservations",
            Some(SHOP),
            Some("{\"buyer\":".into()),
            &[],
        )
        .await;
    assert_eq!((r.status, r.problem()), (400, "malformed"));
    // 401 / 403
    let r = api.send("GET", "/v1/skus/tee", None, None).await;
    assert_eq!((r.status, r.problem()), (401, "unauthenticated"));
    let r = api.get("/v1/skus/tee", "nope").await;
    assert_eq!((r.status, r.problem()), (401, "unauthenticated"));
    let r = api
        .send("PUT", "/v1/skus/x", Some(SHOP), Some(sku_body(1, 1)))
        .await;
    assert_eq!((r.status, r.problem()), (403, "forbidden"));
    let r = api
        .send(
            "POST",
            "/v1/reservations",
            Some(PARTNER),
            Some(reserve("b0", json!([{"sku": "tee", "qty": 1}]))),
        )
        .await;
    assert_eq!((r.status, r.problem()), (403, "forbidden"));
    assert_eq!(api.get("/v1/skus/tee", PARTNER).await.status, 200);
    // 403 sale-not-open
    let r = api.reserve("b1", "later", 1).await;
    assert_eq!(
        (r.status, r.problem()),
        (403, "sale-not-open"),
        "{}",
        r.body
    );
    assert_eq!(r.body["sku"], "later");
    // 404 not-found
    for path in [
        "/v1/skus/nope",
        "/v1/reservations/res_00000000000000ff",
        "/v1/orders/ord_00000000000000ff",
        "/v1/nothing",
    ] {
        let r = api.get(path, SHOP).await;
        assert_eq!((r.status, r.problem()), (404, "not-found"), "{path}");
    }
    let r = api.reserve("b2", "nope", 1).await;
    assert_eq!((r.status, r.problem()), (404, "not-found"));
    // 409 sold-out names sku and available
    let r = api.reserve("b3", "tee", 6).await;
    assert_eq!((r.status, r.problem()), (409, "sold-out"), "{}", r.body);
    assert_eq!(r.body["sku"], "tee");
    assert_eq!(r.body["available"], 5);
    // 409 idempotency-mismatch
    let key = [("idempotency-key", "key-1")];
    let one = reserve("b4", json!([{"sku": "tee", "qty": 1}])).to_string();
    let two = reserve("b4", json!([{"sku": "tee", "qty": 2}])).to_string();
    assert_eq!(
        api.raw("POST", "/v1/reservations", Some(SHOP), Some(one), &key)
            .await
            .status,
        201
    );
    let r = api
        .raw("POST", "/v1/reservations", Some(SHOP), Some(two), &key)
        .await;
    assert_eq!(
        (r.status, r.problem()),
        (409, "idempotency-mismatch"),
        "{}",
        r.body
    );
    // 413 too-large
    let big = reserve(&"x".repeat(3000), json!([])).to_string();
    let r = api
        .raw("POST", "/v1/reservations", Some(SHOP), Some(big), &[])
        .await;
    assert_eq!((r.status, r.problem()), (413, "too-large"));
    // 422 invalid
    let many: Vec<Value> = (0..33)
        .map(|i| json!({"sku": format!("s{i}"), "qty": 1}))
        .collect();
    for lines in [
        json!([]),
        json!([{"sku": "tee", "qty": 0}]),
        json!([{"sku": "tee", "qty": -2}]),
        json!([{"sku": "tee", "qty": 1}, {"sku": "tee", "qty": 1}]),
        Value::Array(many),
    ] {
        let r = api
            .send(
                "POST",
                "/v1/reservations",
                Some(SHOP),
                Some(reserve("b5", lines.clone())),
            )
            .await;
        assert_eq!((r.status, r.problem()), (422, "invalid"), "{lines}");
    }
    for starts in ["soon", "1969-12-31T23:59:59Z", "2026-11-21T11:00:00+01:00"] {
        let r = api
            .send(
                "PUT",
                "/v1/skus/bad",
                Some(ADMIN),
                Some(json!({"name": "x", "price_cents": 1, "stock": 1, "sale_starts_at": starts})),
            )
            .await;
        assert_eq!((r.status, r.problem()), (422, "invalid"), "{starts}");
    }
    // 429 buyer-limit (limit 2: b6 holds 2, asks 1 more)
    assert_eq!(api.reserve("b6", "tee", 2).await.status, 201);
    let r = api.reserve("b6", "tee", 1).await;
    assert_eq!((r.status, r.problem()), (429, "buyer-limit"), "{}", r.body);
    assert_eq!(r.body["limit"], 2);
    assert_eq!(r.body["already"], 2);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("would exceed the buyer limit of 2") && !detail.contains("reached"),
        "{detail}"
    );
    // 409 invalid-state: a valid PUT that the SKU's state refuses (3 units of tee are held)
    let r = api
        .send(
            "PUT",
            "/v1/skus/tee",
            Some(ADMIN),
            Some(json!({"name": "Tee", "price_cents": 100, "stock": 2, "per_buyer_limit": 2})),
        )
        .await;
    assert_eq!(
        (r.status, r.problem()),
        (409, "invalid-state"),
        "{}",
        r.body
    );
    assert_eq!(r.body["sku"], "tee");
    assert_eq!(api.get("/v1/skus/tee", SHOP).await.body["total"], 5);
    // 429 rate-limited (buyer bucket: 0.5/s, burst 2)
    assert_eq!(api.reserve("b7", "tee", 1).await.status, 201);
    assert_eq!(api.reserve("b7", "tee", 1).await.status, 201);
    let r = api.reserve("b7", "tee", 1).await;
    assert_eq!((r.status, r.problem()), (429, "rate-limited"));
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // 405
    let r = api.send("DELETE", "/v1/skus/tee", Some(ADMIN), None).await;
    assert_eq!((r.status, r.problem()), (405, "method-not-allowed"));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_returns_the_original_whatever_happened() {
    let server = Server::start(&[]);
    let api = Api::new(&server);
    api.put_sku("tee", sku_body(5, 60)).await;
    let body = json!({"buyer": "alice", "lines": [{"sku": "tee", "qty": 2}]}).to_string();
    let key = [("idempotency-key", "order-42")];
    let a = api
        .raw(
            "POST",
            "/v1/reservations",
            Some(SHOP),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let b = api
        .raw(
            "POST",
            "/v1/reservations",
            Some(SHOP),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(b.body["id"], a.body["id"], "{}", b.body);
    assert_eq!(
        api.counts("tee").await,
        (3, 2, 0),
        "a retry must not hold twice"
    );
    let id = a.body["id"].as_str().unwrap();
    api.send(
        "POST",
        &format!("/v1/reservations/{id}/cancel"),
        Some(SHOP),
        None,
    )
    .await;
    let c = api
        .raw("POST", "/v1/reservations", Some(SHOP), Some(body), &key)
        .await;
    assert_eq!(c.body["id"], a.body["id"], "{}", c.body);
    assert_eq!(api.counts("tee").await, (5, 0, 0));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_buyer_limit_holds_under_concurrent_requests() {
    let server = Server::start(&["--rate-limit-buyer-rps", "0"]);
    let api = Api::new(&server);
    api.put_sku(
        "hot",
        json!({"name": "Hot", "price_cents": 100, "stock": 100, "per_buyer_limit": 3}),
    )
    .await;
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.reserve("greedy", "hot", 1).await })
        })
        .collect();
    let mut held = 0;
    let mut limited = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => held += 1,
            429 => {
                assert_eq!(r.problem(), "buyer-limit");
                limited += 1;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    assert_eq!((held, limited), (3, 21));
    assert_eq!(api.counts("hot").await, (97, 3, 0));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_oversized_and_excess_connections_are_refused() {
    let server = Server::start(&[
        "--header-timeout-ms",
        "500",
        "--body-timeout-ms",
        "500",
        "--max-connections",
        "3",
        "--body-limit-bytes",
        "1024",
    ]);
    // Slow-loris: half a request head is cut off after the header timeout.
    let mut slow = TcpStream::connect(&server.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("server kept a slow-loris connection")
        .unwrap_or(0);
    let _ = n;
    assert!(started.elapsed() < Duration::from_secs(5));

    // Slow body: the head arrives, the body never completes → 408 and close.
    let mut s = TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "POST /v1/reservations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SHOP}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"buyer\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("no answer to a slow body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("problems/timeout"));

    // Oversized body with Content-Length: refused before reading it.
    let mut s = TcpStream::connect(&server.addr).await.unwrap();
    let head = format!("POST /v1/reservations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SHOP}\r\nContent-Length: 1000000\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    drop(s);
    // Garbage instead of HTTP: answered 400 by hyper and closed, never a crash.
    let mut g = TcpStream::connect(&server.addr).await.unwrap();
    g.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), g.read_to_end(&mut sink))
        .await
        .expect("garbage connection kept open");

    // Connection cap: hold 3 idle connections; the 4th is told why and closed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(&server.addr).await.unwrap();
    extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("connection limit"), "{answer}");
    drop(held);
    // Once they are gone (closed by the client), service resumes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let api = Api::new(&server);
    let r = api.raw("GET", "/health", None, None, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["cache-control"], "no-store");
    let metrics = api.raw("GET", "/metrics", None, None, &[]).await.body;
    assert!(metrics
        .as_str()
        .unwrap()
        .contains("flashsale_http_connections_refused_total 1"));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_buyer_jwt_probes_and_metrics() {
    let secret = "an-hs256-secret-of-at-least-32-bytes!!";
    let server = Server::start(&["--jwt-secret", secret]);
    let api = Api::new(&server);
    api.put_sku("tee", sku_body(5, 60)).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let token = flashsale_gateway::http::jwt::sign_hs256(
        secret.as_bytes(),
        &flashsale_gateway::http::jwt::Claims {
            sub: Some("jwt-buyer".into()),
            exp: Some(exp),
            nbf: None,
        },
    )
    .unwrap();
    let r = api
        .send(
            "POST",
            "/v1/reservations",
            Some(&token),
            Some(json!({"lines": [{"sku": "tee", "qty": 1}]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["buyer"], "jwt-buyer");
    let expired = flashsale_gateway::http::jwt::sign_hs256(
        secret.as_bytes(),
        &flashsale_gateway::http::jwt::Claims {
            sub: Some("jwt-buyer".into()),
            exp: Some(1),
            nbf: None,
        },
    )
    .unwrap();
    assert_eq!(api.get("/v1/skus/tee", &expired).await.status, 401);

    // HTTP/2 with prior knowledge (h2c) on the same port.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2
        .get(server.url("/v1/skus/tee"))
        .bearer_auth(SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);

    assert_eq!(api.raw("GET", "/health", None, None, &[]).await.status, 200);
    assert_eq!(api.raw("GET", "/ready", None, None, &[]).await.status, 200);
    let m = api.raw("GET", "/metrics", None, None, &[]).await;
    let text = m.body.as_str().unwrap();
    assert!(
        text.contains("flashsale_reservations_total{outcome=\"held\"} 1"),
        "{text}"
    );
    assert!(text.contains("flashsale_http_request_duration_seconds_bucket{route=\"reserve\""));
    assert!(text.contains("flashsale_log_batch_size_records_bucket"));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_restart_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), &[], true);
    let api = Api::new(&server);
    api.put_sku("tee", sku_body(5, 600)).await;
    // Start a request, signal shutdown before its body is complete, then complete it.
    let mut s = TcpStream::connect(&server.addr).await.unwrap();
    let body = json!({"buyer": "late", "lines": [{"sku": "tee", "qty": 1}]}).to_string();
    let head = format!(
        "POST /v1/reservations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SHOP}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body.as_bytes()[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let mut server = server;
    assert!(server.wait(Duration::from_secs(30)).success());

    // Restart on the same data dir: the SKU and the reservation are still there.
    let server = Server::start_in(tmp.path(), &[], true);
    let api = Api::new(&server);
    assert_eq!(api.counts("tee").await, (4, 1, 0));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_generates_tokens_and_help_lists_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), &[], false);
    let token = |role: &str| {
        let prefix = format!("generated {role} token: ");
        server
            .banner
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {role} token in {:?}", server.banner))
            .to_owned()
    };
    let (admin, shop) = (token("admin"), token("storefront"));
    assert_eq!(admin.len(), 64);
    assert_ne!(admin, shop);
    let api = Api::new(&server);
    let r = api
        .send("PUT", "/v1/skus/tee", Some(&admin), Some(sku_body(1, 60)))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(api.get("/v1/skus/tee", &shop).await.status, 200);
    assert_eq!(api.get("/v1/skus/tee", ADMIN).await.status, 401);
    assert!(server.stop().success());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flashsale"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--http",
        "--quic",
        "--data-dir",
        "--database-url",
        "--shards",
        "--admin-token",
        "--storefront-token",
        "--partner-token",
        "--jwt-secret",
        "--tls-cert",
        "--tls-key",
        "--max-connections",
        "--per-ip-max-connections",
        "--per-ip-limit-loopback",
        "--body-limit-bytes",
        "--header-timeout-ms",
        "--body-timeout-ms",
        "--rate-limit-ip-rps",
        "--rate-limit-buyer-rps",
        "--stream-heartbeat-ms",
        "FLASHSALE_ADMIN_TOKEN",
        "--log-level",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_objects_and_stock_and_money_have_one_limit() {
    use flashsale_protocol::limits::{MAX_MONEY_CENTS, MAX_STOCK};
    let server = Server::start(&["--rate-limit-buyer-rps", "0"]);
    let api = Api::new(&server);
    api.put_sku("az", sku_body(5, 60)).await;

    // serde's positional form is not a body: 400, and nothing is held.
    for (method, path, token, body) in [
        ("POST", "/v1/reservations", SHOP, r#"["zed",[["az",1]]]"#),
        (
            "POST",
            "/v1/reservations",
            SHOP,
            r#"{"buyer":"zed","lines":[["az",1]]}"#,
        ),
        ("PUT", "/v1/skus/az", ADMIN, r#"["Tee",1500,10]"#),
        ("POST", "/v1/skus/az/restock", ADMIN, "[1]"),
    ] {
        let r = api
            .raw(method, path, Some(token), Some(body.into()), &[])
            .await;
        assert_eq!(
            (r.status, r.problem()),
            (400, "malformed"),
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(api.counts("az").await, (5, 0, 0));
    let r = api.reserve("zed", "az", 1).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    for (path, body) in [("confirm", r#"["pay"]"#), ("cancel", "[]")] {
        let r = api
            .raw(
                "POST",
                &format!("/v1/reservations/{id}/{path}"),
                Some(SHOP),
                Some(body.into()),
                &[],
            )
            .await;
        assert_eq!(
            (r.status, r.problem()),
            (400, "malformed"),
            "{path}: {}",
            r.body
        );
    }

    // An integer may be written as any JSON number without a fraction (JSON Schema's
    // `integer`); a fraction is refused.
    let body = r#"{"buyer":"yan","lines":[{"sku":"az","qty":1.0e0}]}"#;
    let r = api
        .raw(
            "POST",
            "/v1/reservations",
            Some(SHOP),
            Some(body.into()),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, &r.body["lines"][0]["qty"]),
        (201, &json!(1)),
        "{}",
        r.body
    );
    let body = r#"{"buyer":"yan","lines":[{"sku":"az","qty":1.5}]}"#;
    let r = api
        .raw(
            "POST",
            "/v1/reservations",
            Some(SHOP),
            Some(body.into()),
            &[],
        )
        .await;
    assert_eq!((r.status, r.problem()), (400, "malformed"), "{}", r.body);

    // Money: the largest price is exact in every answer; one cent more is refused.
    let r = api
        .send(
            "PUT",
            "/v1/skus/dear",
            Some(ADMIN),
            Some(json!({"name": "Dear", "price_cents": MAX_MONEY_CENTS + 1, "stock": 1})),
        )
        .await;
    assert_eq!((r.status, r.problem()), (422, "invalid"), "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("price_cents"));
    let r = api
        .put_sku(
            "dear",
            json!({"name": "Dear", "price_cents": MAX_MONEY_CENTS, "stock": 1}),
        )
        .await;
    assert_eq!(r.body["price_cents"], MAX_MONEY_CENTS);
    let r = api.reserve("rich", "dear", 1).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["total_cents"], MAX_MONEY_CENTS);

    // Stock: restock up to the maximum, then the SKU can be re-PUT at its own total; past the
    // maximum is refused by both.
    api.put_sku(
        "big",
        json!({"name": "Big", "price_cents": 1, "stock": MAX_STOCK - 5}),
    )
    .await;
    let restock = |qty: u64| {
        api.send(
            "POST",
            "/v1/skus/big/restock",
            Some(ADMIN),
            Some(json!({ "qty": qty })),
        )
    };
    let r = restock(6).await;
    assert_eq!(
        (r.status, r.problem()),
        (409, "invalid-state"),
        "{}",
        r.body
    );
    assert_eq!(r.body["sku"], "big", "{}", r.body);
    let r = restock(5).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total"], MAX_STOCK);
    let r = api
        .put_sku(
            "big",
            json!({"name": "Big", "price_cents": 1, "stock": MAX_STOCK}),
        )
        .await;
    assert_eq!((r.status, &r.body["total"]), (200, &json!(MAX_STOCK)));
    let r = api
        .send(
            "PUT",
            "/v1/skus/big",
            Some(ADMIN),
            Some(json!({"name": "Big", "price_cents": 1, "stock": MAX_STOCK + 1})),
        )
        .await;
    assert_eq!((r.status, r.problem()), (422, "invalid"), "{}", r.body);
    assert!(server.stop().success());
}
