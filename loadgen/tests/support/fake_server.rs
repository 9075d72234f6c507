//! A tiny in-process server following the flashsale HTTP contract (SKUs, reservations with TTL,
//! confirm, cancel), to test the load generator's client logic. `oversell` makes it lie: it
//! holds stock it does not have, which the load generator must report.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

#[derive(Debug)]
struct Sku {
    total: i64,
    reserved: i64,
    sold: i64,
    ttl: Duration,
}

#[derive(Debug)]
struct Hold {
    sku: String,
    qty: i64,
    status: &'static str,
    expires: Instant,
}

#[derive(Debug, Default)]
struct State {
    skus: HashMap<String, Sku>,
    holds: HashMap<String, Hold>,
    next_id: u64,
}

impl State {
    fn expire(&mut self) {
        let now = Instant::now();
        for h in self.holds.values_mut() {
            if h.status == "held" && h.expires <= now {
                h.status = "expired";
                if let Some(s) = self.skus.get_mut(&h.sku) {
                    s.reserved -= h.qty;
                }
            }
        }
    }
}

/// A running fake server.
pub struct FakeServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeServer {
    /// Starts a server with the given tokens; `oversell` ignores stock limits.
    pub async fn start(admin: &str, storefront: &str, oversell: bool) -> FakeServer {
        FakeServer::start_slow(admin, storefront, oversell, Duration::ZERO).await
    }

    /// Like [`FakeServer::start`], but every reservation takes at least `delay`.
    pub async fn start_slow(
        admin: &str,
        storefront: &str,
        oversell: bool,
        delay: Duration,
    ) -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let auth = Arc::new(Auth::new(admin, storefront));
        let shared = state.clone();
        serve(listener, move |req| {
            let (state, auth) = (shared.clone(), auth.clone());
            async move {
                if req.uri().path() == "/v1/reservations" && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                handle(&state, &auth, oversell, req).await
            }
        });
        FakeServer { addr, state }
    }

    /// `(total, available, reserved, sold)` of a SKU, after expiring due holds.
    pub fn counts(&self, sku: &str) -> (i64, i64, i64, i64) {
        let mut st = self.state.lock().unwrap();
        st.expire();
        let s = &st.skus[sku];
        (s.total, s.total - s.reserved - s.sold, s.reserved, s.sold)
    }
}

/// Two nodes of a fake HA group sharing one state: the node whose index is in `leader` serves,
/// the other answers every request `503 not-leader` naming the leader's URL (nothing done).
pub struct FakePair {
    /// The nodes' addresses.
    pub addrs: [SocketAddr; 2],
    /// Index of the leading node; store the other index to hand over.
    pub leader: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests refused with `not-leader`, both nodes together.
    pub refused: Arc<std::sync::atomic::AtomicU64>,
    state: Arc<Mutex<State>>,
}

impl FakePair {
    /// Starts both nodes; node 0 leads.
    pub async fn start(admin: &str, storefront: &str) -> FakePair {
        use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
        let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = [a.local_addr().unwrap(), b.local_addr().unwrap()];
        let state = Arc::new(Mutex::new(State::default()));
        let leader = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let auth = Arc::new(Auth::new(admin, storefront));
        for (me, listener) in [a, b].into_iter().enumerate() {
            let (state, auth) = (state.clone(), auth.clone());
            let (leader, refused) = (leader.clone(), refused.clone());
            serve(listener, move |req| {
                let (state, auth) = (state.clone(), auth.clone());
                let (leader, refused) = (leader.clone(), refused.clone());
                async move {
                    let lead = leader.load(Ordering::SeqCst);
                    if lead != me {
                        refused.fetch_add(1, Ordering::Relaxed);
                        return not_leader(&format!("http://{}", addrs[lead]));
                    }
                    handle(&state, &auth, false, req).await
                }
            });
        }
        FakePair {
            addrs,
            leader,
            refused,
            state,
        }
    }

    /// `(total, available, reserved, sold)` of a SKU in the shared state.
    pub fn counts(&self, sku: &str) -> (i64, i64, i64, i64) {
        let mut st = self.state.lock().unwrap();
        st.expire();
        let s = &st.skus[sku];
        (s.total, s.total - s.reserved - s.sold, s.reserved, s.sold)
    }
}

/// A standby of an HA group: every request is `503 not-leader` naming `leader_url`; counts the
/// requests it refused.
pub struct FakeStandby {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests refused so far.
    pub refused: Arc<std::sync::atomic::AtomicU64>,
}

impl FakeStandby {
    /// Starts a standby that names `leader_url` (`http://…`) as the leader.
    pub async fn start(leader_url: String) -> FakeStandby {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = refused.clone();
        serve(listener, move |_req| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let answer = not_leader(&leader_url);
            async move { answer }
        });
        FakeStandby { addr, refused }
    }
}

/// The tokens a fake node accepts, as `authorization` header values.
struct Auth {
    /// `Bearer <admin token>`.
    admin: String,
    /// `Bearer <storefront token>`.
    storefront: String,
}

impl Auth {
    /// The header values of these tokens.
    fn new(admin: &str, storefront: &str) -> Auth {
        Auth {
            admin: format!("Bearer {admin}"),
            storefront: format!("Bearer {storefront}"),
        }
    }
}

/// Serves HTTP/1.1 on `listener` with `handler`, one task per connection, until the runtime ends.
fn serve<F, Fut>(listener: tokio::net::TcpListener, handler: F)
where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let answer = handler(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

/// `503 not-leader` naming `leader_url`, as a standby answers.
fn not_leader(leader_url: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "type": "https://flashsale.dev/problems/not-leader",
        "title": "Not the leader", "status": 503,
        "detail": "this node is a standby", "leader_url": leader_url,
    });
    reply(StatusCode::SERVICE_UNAVAILABLE, body)
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let ct = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    Response::builder()
        .status(status)
        .header("content-type", ct)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// The contract's SKU view (schema `Sku`) of `s`.
fn sku_view(sku: &str, s: &Sku) -> Value {
    json!({"sku": sku, "name": "n", "price_cents": 1, "total": s.total,
           "available": s.total - s.reserved - s.sold, "reserved": s.reserved,
           "sold": s.sold, "per_buyer_limit": null, "sale_starts_at": null,
           "sale_ends_at": null, "reservation_ttl_s": s.ttl.as_secs(),
           "max_hold_s": s.ttl.as_secs().max(3600), "max_extensions": 3})
}

fn problem(status: StatusCode, kind: &str, extra: Value) -> Response<Full<Bytes>> {
    let mut v = json!({"type": format!("https://flashsale.invalid/problems/{kind}"), "title": kind, "status": status.as_u16()});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    reply(status, v)
}

async fn handle(
    state: &Mutex<State>,
    auth: &Auth,
    oversell: bool,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let sent = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let is_admin = sent == auth.admin;
    let is_store = sent == auth.storefront;
    if !is_admin && !is_store {
        return problem(StatusCode::UNAUTHORIZED, "unauthenticated", json!({}));
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut st = state.lock().unwrap();
    st.expire();
    match (method, parts.as_slice()) {
        (Method::PUT, ["v1", "skus", sku]) => {
            if !is_admin {
                return problem(StatusCode::FORBIDDEN, "forbidden", json!({}));
            }
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return problem(StatusCode::BAD_REQUEST, "malformed", json!({}));
            };
            let stock = v["stock"].as_i64().unwrap_or(0);
            let ttl = Duration::from_secs(v["reservation_ttl_s"].as_u64().unwrap_or(600));
            let existed = st.skus.contains_key(*sku);
            let s = st.skus.entry(sku.to_string()).or_insert(Sku {
                total: 0,
                reserved: 0,
                sold: 0,
                ttl,
            });
            s.total = stock;
            s.ttl = ttl;
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            reply(status, sku_view(sku, s))
        }
        (Method::GET, ["v1", "skus", sku]) => match st.skus.get(*sku) {
            Some(s) => reply(StatusCode::OK, sku_view(sku, s)),
            None => problem(StatusCode::NOT_FOUND, "not-found", json!({})),
        },
        (Method::POST, ["v1", "reservations"]) => {
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return problem(StatusCode::BAD_REQUEST, "malformed", json!({}));
            };
            let sku = v["lines"][0]["sku"].as_str().unwrap_or("").to_string();
            let qty = v["lines"][0]["qty"].as_i64().unwrap_or(0);
            let Some(s) = st.skus.get_mut(&sku) else {
                return problem(StatusCode::NOT_FOUND, "not-found", json!({}));
            };
            let available = s.total - s.reserved - s.sold;
            if available < qty && !oversell {
                return problem(
                    StatusCode::CONFLICT,
                    "sold-out",
                    json!({"sku": sku, "available": available}),
                );
            }
            s.reserved += qty;
            let expires = Instant::now() + s.ttl;
            st.next_id += 1;
            let id = format!("res_{}", st.next_id);
            st.holds.insert(
                id.clone(),
                Hold {
                    sku: sku.clone(),
                    qty,
                    status: "held",
                    expires,
                },
            );
            reply(
                StatusCode::CREATED,
                json!({"id": id, "status": "held", "buyer": v["buyer"], "lines": v["lines"], "expires_at": "2026-01-01T00:00:00Z"}),
            )
        }
        (Method::POST, ["v1", "reservations", id, action]) => {
            let Some(h) = st.holds.get(*id) else {
                return problem(StatusCode::NOT_FOUND, "not-found", json!({}));
            };
            if h.status != "held" {
                return problem(StatusCode::CONFLICT, "invalid-state", json!({}));
            }
            let (sku, qty) = (h.sku.clone(), h.qty);
            let new_status = match *action {
                "confirm" => "confirmed",
                "cancel" => "released",
                _ => return problem(StatusCode::NOT_FOUND, "not-found", json!({})),
            };
            if let Some(h) = st.holds.get_mut(*id) {
                h.status = new_status;
            }
            if let Some(s) = st.skus.get_mut(&sku) {
                s.reserved -= qty;
                if new_status == "confirmed" {
                    s.sold += qty;
                }
            }
            reply(StatusCode::OK, json!({"id": id, "status": new_status}))
        }
        _ => problem(StatusCode::NOT_FOUND, "not-found", json!({})),
    }
}
