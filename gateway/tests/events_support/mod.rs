//! Test doubles for event delivery: a webhook receiver that verifies Standard Webhooks
//! signatures (and can fail or redirect on purpose), and a TCP proxy that can be cut, to take
//! the shared RabbitMQ broker away from one server without stopping it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use flashsale_events::Secret;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// How the receiver answers.
pub const MODE_OK: u8 = 0;
/// Every other request gets 500.
pub const MODE_FAIL_HALF: u8 = 1;
/// Every request gets a 302 redirect.
pub const MODE_REDIRECT: u8 = 2;

/// One verified delivery.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// The parsed body.
    pub body: Value,
    /// The raw body.
    pub raw: Vec<u8>,
}

/// What the receiver saw.
#[derive(Default)]
pub struct Inbox {
    /// Verified deliveries answered 2xx, in arrival order (duplicates included).
    pub ok: Vec<Received>,
    /// Requests whose signature, timestamp or headers were wrong.
    pub bad_signatures: u64,
}

/// A local webhook receiver on 127.0.0.1.
#[derive(Clone)]
pub struct Receiver {
    /// Its address.
    pub addr: SocketAddr,
    /// The secret it verifies with (set once the endpoint is created).
    pub secret: Arc<Mutex<Option<Secret>>>,
    /// What it saw.
    pub inbox: Arc<Mutex<Inbox>>,
    /// Answering mode.
    pub mode: Arc<AtomicU8>,
    /// Requests seen (for MODE_FAIL_HALF).
    pub requests: Arc<AtomicU64>,
    /// Requests that followed one of its redirects (MODE_REDIRECT); must stay 0.
    pub redirected: Arc<AtomicU64>,
}

impl Receiver {
    /// Starts a receiver on a free port (in the current tokio runtime).
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            secret: Arc::new(Mutex::new(None)),
            inbox: Arc::new(Mutex::new(Inbox::default())),
            mode: Arc::new(AtomicU8::new(MODE_OK)),
            requests: Arc::new(AtomicU64::new(0)),
            redirected: Arc::new(AtomicU64::new(0)),
        };
        let this = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let this = this.clone();
                        async move { Ok::<_, hyper::Error>(this.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        r
    }

    /// The URL to register.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let redirected = req.uri().path() == "/redirected";
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (id, ts, sig) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        );
        let raw = req.into_body().collect().await.unwrap().to_bytes().to_vec();
        let status = |code: u16| {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
            res
        };
        let verified = (|| {
            let (id, ts, sig) = (id?, ts?, sig?);
            let ts: u64 = ts.parse().ok()?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs();
            // Standard Webhooks: refuse timestamps more than 5 minutes away (replays).
            if now.abs_diff(ts) > 300 {
                return None;
            }
            let secret = self.secret.lock().unwrap().clone()?;
            secret.verify(&id, ts, &raw, &sig).then_some(id)
        })();
        let Some(id) = verified else {
            self.inbox.lock().unwrap().bad_signatures += 1;
            return status(400);
        };
        match self.mode.load(Ordering::Relaxed) {
            MODE_FAIL_HALF if n & 1 == 0 => return status(500),
            MODE_REDIRECT if !redirected => {
                // To this receiver, where a followed redirect would be acknowledged (and
                // counted): a client that follows redirects would turn this into a success.
                let mut res = status(302);
                let location = format!("http://{}/redirected", self.addr);
                res.headers_mut()
                    .insert("location", location.parse().unwrap());
                return res;
            }
            MODE_REDIRECT => {
                self.redirected.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let body: Value = serde_json::from_slice(&raw).unwrap();
        self.inbox
            .lock()
            .unwrap()
            .ok
            .push(Received { id, body, raw });
        status(204)
    }

    /// Distinct event ids received so far, with the first body of each.
    pub fn distinct(&self) -> BTreeMap<String, Value> {
        let inbox = self.inbox.lock().unwrap();
        let mut out = BTreeMap::new();
        for r in &inbox.ok {
            out.entry(r.id.clone()).or_insert_with(|| r.body.clone());
        }
        out
    }
}

/// A TCP proxy on 127.0.0.1 to `upstream` that can be cut (open connections closed, new ones
/// refused) and restored.
#[derive(Clone)]
pub struct Proxy {
    /// Its address.
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    /// Starts a proxy to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Proxy {
            addr: listener.local_addr().unwrap(),
            cut: Arc::new(AtomicBool::new(false)),
            generation: Arc::new(AtomicU64::new(0)),
        };
        let this = p.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    return;
                };
                if this.cut.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let this = this.clone();
                tokio::spawn(async move {
                    let gen = this.generation.load(Ordering::SeqCst);
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut down, &mut up);
                    let watch = async {
                        while this.generation.load(Ordering::SeqCst) == gen {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        _ = watch => {}
                    }
                });
            }
        });
        p
    }

    /// Closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// A name unique to this process and moment, for schemas, exchanges and queues.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// Declares a durable topic exchange and a queue bound to it with `pattern` (RabbitMQ).
pub async fn bind_topic_queue(ch: &lapin::Channel, exchange: &str, queue: &str, pattern: &str) {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    ch.exchange_declare(
        exchange,
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(queue, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        queue,
        exchange,
        pattern,
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

/// Reserves and confirms one unit per buyer on `api` until a request fails (the node was
/// killed) or `max` are done; pushes each confirmed reservation id to `out`.
pub async fn buy(
    api: crate::support::Api,
    sku: &'static str,
    tag: usize,
    max: usize,
    out: Arc<Mutex<Vec<String>>>,
) {
    use serde_json::json;
    for i in 0..max {
        let body = json!({"buyer": format!("b{tag}-{i}"), "lines": [{"sku": sku, "qty": 1}]});
        let Ok(res) = api
            .http
            .post(format!("{}/v1/reservations", api.base_url()))
            .bearer_auth(crate::support::SHOP)
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        if res.status().as_u16() != 201 {
            return;
        }
        let Ok(v) = res.json::<Value>().await else {
            return;
        };
        let id = v["id"].as_str().unwrap().to_owned();
        let Ok(res) = api
            .http
            .post(format!("{}/v1/reservations/{id}/confirm", api.base_url()))
            .bearer_auth(crate::support::SHOP)
            .json(&json!({"payment_ref": format!("pay-{tag}-{i}")}))
            .send()
            .await
        else {
            return;
        };
        if res.status().as_u16() == 200 {
            out.lock().unwrap().push(id);
        }
    }
}

/// Waits until `done` holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    done()
}
