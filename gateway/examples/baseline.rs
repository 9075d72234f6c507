//! A do-nothing hyper server: the benchmark baseline for the gateway.
//!
//! It serves the same socket setup as `flashsale serve` (hyper-util auto builder, HTTP/1.1
//! keep-alive + h2c, same header timeout) and answers `POST /v1/reservations` with a fixed
//! 409 sold-out body and any other request with a fixed 201 body, without reading or parsing
//! anything. The gateway's cost per request is measured as a ratio against this server in the
//! same run (docs/benchmarks/gateway.md).
//!
//! Run: `cargo run --release -p flashsale-gateway --example baseline -- 127.0.0.1:9090`

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

const SOLD_OUT: &[u8] = br#"{"type":"https://flashsale.dev/problems/sold-out","title":"Sold out","status":409,"detail":"SKU hot is sold out (0 available)","sku":"hot","available":0}"#;
const HELD: &[u8] = br#"{"id":"res_0000000000000001","status":"held","buyer":"b","lines":[{"sku":"hot","qty":1,"unit_price_cents":100}],"total_cents":100,"created_at":"2026-11-21T10:00:00Z","expires_at":"2026-11-21T10:10:00Z","order_id":null,"release_reason":null}"#;

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) =
        if req.uri().path() == "/v1/reservations" && std::env::var_os("BASELINE_HELD").is_none() {
            (StatusCode::CONFLICT, SOLD_OUT)
        } else {
            (StatusCode::CREATED, HELD)
        };
    let mut res = Response::new(Full::new(Bytes::from_static(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".into());
    let listener = flashsale_gateway::serve::bind_http(addr.parse()?)?;
    println!("baseline listening on {}", listener.local_addr()?);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(15))
        .keep_alive(true);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let conn = builder
            .serve_connection(TokioIo::new(stream), service_fn(answer))
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
