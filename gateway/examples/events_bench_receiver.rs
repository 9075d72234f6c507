//! A fast webhook receiver for the events benchmark (docs/benchmarks.md, "Events";
//! `scripts/events_bench.sh`): one thread, plain HTTP/1.1 keep-alive (pipelining too), answers
//! 204 to every request and records per event the delivery lag = arrival − the event's
//! `timestamp`. Every [`VERIFY_EVERY`]th request's Standard Webhooks signature is checked with
//! the endpoint's secret (a bad one is counted, and still answered 204 so the run goes on). On
//! SIGINT/SIGTERM it prints one JSON line: deliveries, distinct ids, lag percentiles, signature
//! checks and failures.
//!
//! Usage: `cargo build --release -p flashsale-gateway --example events_bench_receiver`, then
//! `target/release/examples/events_bench_receiver PORT [whsec_…]` (listens on 127.0.0.1 only).
//!
//! It exists because the Python receiver (`scripts/events_bench_receiver.py`) used a large
//! part of one of the machine's two cores at the benchmark's rate, so it measured the receiver.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use flashsale_events::Secret;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// One request in this many has its signature checked.
const VERIFY_EVERY: u64 = 16;
/// Largest request head or body accepted (the connection is closed beyond).
const MAX_REQUEST: usize = 1 << 20;
/// Most lags kept (beyond that, the run is far longer than a benchmark's).
const MAX_SAMPLES: usize = 20_000_000;

/// What the receiver saw.
#[derive(Default)]
struct Tally {
    /// Lag of every delivery, ms.
    lags_ms: Vec<f64>,
    /// Event ids seen.
    ids: HashSet<String>,
    /// Signatures checked.
    checked: u64,
    /// Signatures that did not verify (or were missing).
    bad_signatures: u64,
    /// Requests whose body had no readable `timestamp`.
    unreadable: u64,
    /// Requests seen.
    requests: u64,
}

/// One parsed request: what the tally needs.
struct Request<'a> {
    /// `webhook-id`.
    id: &'a str,
    /// `webhook-timestamp`.
    timestamp: &'a str,
    /// `webhook-signature`.
    signature: &'a str,
    /// The body.
    body: &'a [u8],
}

/// Now as Unix ms (fractional).
fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The event's `timestamp` field (RFC 3339) as Unix ms, if the body has one.
fn event_ms(body: &[u8]) -> Option<f64> {
    const KEY: &[u8] = b"\"timestamp\":\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let end = body[at..].iter().position(|&b| b == b'"')? + at;
    let text = std::str::from_utf8(&body[at..end]).ok()?;
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e6)
}

/// Records one request.
fn record(tally: &Mutex<Tally>, secret: Option<&Secret>, req: &Request<'_>, arrived_ms: f64) {
    let lag = event_ms(req.body).map(|at| arrived_ms - at);
    let mut t = match tally.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    t.requests += 1;
    if let Some(secret) = secret {
        if t.requests % VERIFY_EVERY == 1 {
            t.checked += 1;
            let ts = req.timestamp.parse::<u64>().unwrap_or(0);
            if !secret.verify(req.id, ts, req.body, req.signature) {
                t.bad_signatures += 1;
            }
        }
    }
    match lag {
        Some(l) if t.lags_ms.len() < MAX_SAMPLES => t.lags_ms.push(l),
        Some(_) => {}
        None => t.unreadable += 1,
    }
    if !t.ids.contains(req.id) {
        t.ids.insert(req.id.to_string());
    }
}

/// Parses one complete request at the start of `buf`: the request and its length, or `None`
/// if more bytes are needed; `Err` if it cannot be a request.
fn parse(buf: &[u8]) -> Result<Option<(Request<'_>, usize)>, &'static str> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_REQUEST {
            Err("head too large")
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "head not UTF-8")?;
    let (mut len, mut id, mut timestamp, mut signature) = (0usize, "", "", "");
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            len = value.parse().map_err(|_| "bad content-length")?;
        } else if name.eq_ignore_ascii_case("webhook-id") {
            id = value;
        } else if name.eq_ignore_ascii_case("webhook-timestamp") {
            timestamp = value;
        } else if name.eq_ignore_ascii_case("webhook-signature") {
            signature = value;
        }
    }
    if len > MAX_REQUEST {
        return Err("body too large");
    }
    let total = head_end + 4 + len;
    if buf.len() < total {
        return Ok(None);
    }
    let req = Request {
        id,
        timestamp,
        signature,
        body: &buf[head_end + 4..total],
    };
    Ok(Some((req, total)))
}

/// Serves one connection until it closes.
async fn serve(mut sock: TcpStream, tally: Arc<Mutex<Tally>>, secret: Option<Arc<Secret>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out: Vec<u8> = Vec::new();
    loop {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let arrived = now_ms();
        let mut used = 0;
        loop {
            match parse(&buf[used..]) {
                Ok(Some((req, len))) => {
                    record(&tally, secret.as_deref(), &req, arrived);
                    used += len;
                    out.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
                }
                Ok(None) => break,
                Err(why) => {
                    eprintln!("events_bench_receiver: closing a connection: {why}");
                    return;
                }
            }
        }
        buf.drain(..used);
        if !out.is_empty() {
            if sock.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// The `p`-quantile of sorted `v`, rounded to 0.1 ms.
fn pct(v: &[f64], p: f64) -> Option<f64> {
    let last = v.len().checked_sub(1)?;
    let i = ((v.len() as f64 * p) as usize).min(last);
    Some((v[i] * 10.0).round() / 10.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: events_bench_receiver PORT [whsec_…]")?
        .parse()?;
    let secret = match args.next() {
        Some(s) => Some(Arc::new(Secret::parse(&s)?)),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                acc = listener.accept() => {
                    if let Ok((sock, _)) = acc {
                        let _ = sock.set_nodelay(true);
                        tokio::spawn(serve(sock, tally.clone(), secret.clone()));
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        Ok::<(), std::io::Error>(())
    })?;
    let mut t = match tally.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let mut lags = std::mem::take(&mut t.lags_ms);
    lags.sort_by(f64::total_cmp);
    let report = serde_json::json!({
        "deliveries": t.requests,
        "distinct": t.ids.len(),
        "lag_ms_p50": pct(&lags, 0.50),
        "lag_ms_p99": pct(&lags, 0.99),
        "lag_ms_max": pct(&lags, 1.0),
        "signatures_checked": t.checked,
        "bad_signatures": t.bad_signatures,
        "unreadable": t.unreadable,
    });
    println!("{report}");
    Ok(())
}
