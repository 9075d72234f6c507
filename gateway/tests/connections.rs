//! Connection hygiene of the real `flashsale serve` binary on loopback: idle HTTP/2 (h2c)
//! connections are closed like idle HTTP/1.1 ones, so holding idle connections cannot lock
//! everyone out at the connection cap; and one client address cannot hold more than
//! `--per-ip-max-connections` at once.

// Test helpers panic on any failure: that is how a test reports it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use support::{Server, SHOP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Longest a test waits for the server to close a connection it should close.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// The sending half of an h2c client connection.
type H2Sender = hyper::client::conn::http2::SendRequest<BoxBody<Bytes, Infallible>>;

/// An h2c (prior knowledge) client connection whose client side pings every 100 ms even while
/// idle, as a keep-alive-happy client would: traffic, but no request.
async fn h2c(addr: &str) -> (H2Sender, tokio::task::JoinHandle<Result<(), hyper::Error>>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    (send, tokio::spawn(conn))
}

/// `GET /health` over `send`; the status.
async fn health(send: &mut H2Sender, addr: &str) -> u16 {
    let req = hyper::Request::get(format!("http://{addr}/health"))
        .body(Empty::new().boxed())
        .unwrap();
    send.send_request(req).await.unwrap().status().as_u16()
}

/// `GET /metrics` over `send` (a connection already admitted: no new slot is taken); the
/// value of the metric `name`, if the page has it.
async fn metric_over(send: &mut H2Sender, addr: &str, name: &str) -> Option<u64> {
    let req = hyper::Request::get(format!("http://{addr}/metrics"))
        .body(Empty::new().boxed())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.parse().ok())
}

/// Waits (bounded) for the client side of a connection to end; how long it took.
async fn closed_within(conn: tokio::task::JoinHandle<Result<(), hyper::Error>>) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(CLOSE_WITHIN, conn)
        .await
        .expect("the server kept an idle h2c connection open")
        .unwrap()
        .ok();
    started.elapsed()
}

/// Reads what the server answers on `s` until it closes (bounded).
async fn answer(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(CLOSE_WITHIN, s.read_to_end(&mut buf))
        .await
        .expect("no answer")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A plain HTTP/1.1 `GET /health` on a fresh connection from `from`; the status line.
async fn health_from(from: &str, addr: &str) -> std::io::Result<String> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse::<SocketAddr>().unwrap())?;
    let mut s = socket.connect(addr.parse().unwrap()).await?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let text = answer(&mut s).await;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2c_connections_are_closed_after_the_idle_timeout() {
    let server = Server::start(&[
        "--header-timeout-ms",
        "600",
        "--body-timeout-ms",
        "5000",
        "--max-connections",
        "2",
    ]);
    let addr = server.addr.clone();
    // Two h2c connections take the whole cap: one served a request, one never asked anything.
    let (mut used, used_conn) = h2c(&addr).await;
    assert_eq!(health(&mut used, &addr).await, 200);
    let (_idle, idle_conn) = h2c(&addr).await;
    // The client's handshake can return before the server has admitted the connection (each
    // shard accepts on its own listener): wait until both are counted, or the third
    // connection could take the second's slot. Asked over `used`, which holds a slot already.
    let admitted_by = Instant::now() + CLOSE_WITHIN;
    while metric_over(&mut used, &addr, "flashsale_http_connections_open").await != Some(2) {
        assert!(
            Instant::now() < admitted_by,
            "the server never admitted the second connection"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(answer(&mut third).await.starts_with("HTTP/1.1 503"));
    // Both are closed (GOAWAY, then EOF) after the idle timeout, pings or not.
    let (a, b) = tokio::join!(closed_within(used_conn), closed_within(idle_conn));
    // Not at once: only after (about) the 600 ms idle timeout.
    let early = Duration::from_millis(300);
    assert!(a >= early && b >= early, "closed too early: {a:?}, {b:?}");
    assert!(used.is_closed());
    // The slots are free again.
    let (mut fresh, _fresh_conn) = h2c(&addr).await;
    assert_eq!(health(&mut fresh, &addr).await, 200);
    // A connection that never sends a byte (not even the HTTP/2 preface) is closed too.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(CLOSE_WITHIN, silent.read(&mut byte))
        .await
        .expect("the server kept a silent connection open");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The two h2c connections and the silent one (and `fresh`, if it has idled out already).
    let closed_idle: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("flashsale_http_connections_closed_idle_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no idle-close counter in {metrics}"));
    assert!((3..=4).contains(&closed_idle), "{closed_idle}");
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_keeps_its_h2c_connection_open() {
    let server = Server::start(&["--header-timeout-ms", "400", "--body-timeout-ms", "5000"]);
    let addr = server.addr.clone();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let req = hyper::Request::post(format!("http://{addr}/v1/reservations"))
        .header("authorization", format!("Bearer {SHOP}"))
        .header("content-type", "application/json")
        .body(StreamBody::new(rx))
        .unwrap();
    // A second handle keeps the client side open: only the server may end the connection.
    let keep_open = send.clone();
    let pending = tokio::spawn(async move { send.send_request(req).await });
    use futures::SinkExt as _;
    tx.send(Ok(Frame::data(Bytes::from_static(b"{\"buyer\":\"slow\","))))
        .await
        .unwrap();
    // Three idle timeouts with the request still arriving: the connection stays.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!conn.is_finished(), "closed with a request in flight");
    tx.send(Ok(Frame::data(Bytes::from_static(
        b"\"lines\":[{\"sku\":\"none\",\"qty\":1}]}",
    ))))
    .await
    .unwrap();
    drop(tx);
    let res = pending.await.unwrap().unwrap();
    assert_eq!(res.status(), 404, "the request completed on its connection");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("not-found"));
    // Then, idle, it is closed.
    closed_within(conn).await;
    assert!(keep_open.is_closed());
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let server = Server::start(&[
        "--per-ip-max-connections",
        "2",
        "--per-ip-limit-loopback",
        "--header-timeout-ms",
        "30000",
    ]);
    let addr = server.addr.clone();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The third from 127.0.0.1 is told why and closed.
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text = answer(&mut extra).await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("problems/rate-limited"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    // Another address is not affected (127.0.0.2 is loopback too, if the host lets us bind it).
    match health_from("127.0.0.2", &addr).await {
        Ok(status) => assert_eq!(status, "HTTP/1.1 200 OK"),
        Err(e) => eprintln!("cannot bind 127.0.0.2 ({e}); second-address check skipped"),
    }
    // Once one of the two is closed, the address may connect again.
    drop(held.pop());
    let deadline = Instant::now() + CLOSE_WITHIN;
    loop {
        let status = health_from("127.0.0.1", &addr).await.unwrap();
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server may not have given back the slot of the connection the loop used (it closes
    // it after answering): a refusal of this one is retried too.
    let metrics = loop {
        match reqwest::get(server.url("/metrics")).await {
            Ok(res) if res.status() == reqwest::StatusCode::OK => break res.text().await.unwrap(),
            other => {
                assert!(Instant::now() < deadline, "metrics refused: {other:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(
        !metrics.contains("flashsale_http_connections_refused_per_ip_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flashsale_http_connections_refused_per_ip_total"),
        "{metrics}"
    );
    drop(held);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_peers_are_not_capped_per_address_by_default() {
    let server = Server::start(&["--per-ip-max-connections", "1"]);
    let addr = server.addr.clone();
    let _held = TcpStream::connect(&addr).await.unwrap();
    let _held2 = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(
        health_from("127.0.0.1", &addr).await.unwrap(),
        "HTTP/1.1 200 OK"
    );
    assert!(server.stop().success());
}
