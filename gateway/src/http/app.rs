//! The API itself: one request in, one response out. Routing, credentials, rate limits, body
//! limits, JSON, engine calls and the problem mapping all happen here; sockets do not.
//!
//! One concept per file:
//! - this file: [`App`], its configuration, and [`App::handle`] (route → handler → response);
//! - `access.rs`: who is calling ([`Caller`], [`CredentialId`]) and what each role may do;
//! - `body.rs`: reading a request body within its size and time limits;
//! - `pagination.rs`: `limit` and the opaque `cursor` of list endpoints;
//! - `response.rs`: JSON answers, `Location`, and the security headers of every response;
//! - `skus.rs`, `reservations.rs`, `orders.rs`: the handlers of each resource;
//! - `webhooks.rs`: the admin endpoints of webhook delivery (`/v1/webhooks…`);
//! - `probes.rs`: `/health`, `/ready` and `/metrics`;
//! - `cluster.rs`: `GET /v1/cluster` and the standby's `503 not-leader` (high availability);
//! - `dashboard.rs`: the operator dashboard's page, assets, session and event stream;
//! - `queues.rs`: the waiting room's endpoints (queues, joins, tickets).

mod access;
mod body;
mod cluster;
mod dashboard;
mod lists;
mod orders;
mod pagination;
mod probes;
mod queues;
mod reservations;
mod response;
mod skus;
mod webhooks;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashsale_protocol::BuyerId;
use hyper::http::request::Parts;
use hyper::{Request, Response};

use super::inventory::Inventory;
use super::jwt::JwtVerifier;
use super::metrics::Metrics;
use super::problem::{Problem, ProblemKind};
use super::rate_limit::{retry_after_s, Rate, RateLimiter};
use super::recent::RecentProblems;
use super::routes::{self, Miss, RouteId};
use super::stock_metrics::StockRenderCache;
use crate::auth::{Role, Tokens};
use crate::dashboard::session::SessionKey;
use crate::dashboard::DashboardFeed;
use crate::ha::ClusterState;
use crate::ha::Slot;
use crate::waiting_room::QueueService;

pub use access::{Caller, CredentialId};
pub use body::RequestBody;
pub use pagination::{
    decode_cursor, encode_cursor, parse_list_query, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT,
};
pub use probes::ExtraMetrics;
pub use response::{add_security_headers, full, ResBody};

/// What a handler returns: a response, or a problem to report.
type Answer = Result<Response<ResBody>, Problem>;

/// How the API behaves: credentials and limits.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Admin, storefront and partner tokens.
    pub tokens: Tokens,
    /// Verifier of buyer JWTs, if buyer tokens are enabled.
    pub jwt: Option<JwtVerifier>,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Longest time to receive a request body.
    pub body_timeout: Duration,
    /// Per-client-IP rate on `/v1` routes, if limited.
    pub ip_rate: Option<Rate>,
    /// Per-buyer rate on `POST /v1/reservations`, if limited.
    pub buyer_rate: Option<Rate>,
    /// Most keys each rate limiter tracks (bounds its memory).
    pub rate_limit_max_keys: usize,
    /// SKUs with their own stock series in `/metrics` (the busiest; the rest are summed).
    pub metrics_top_skus: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            tokens: Tokens::new(),
            jwt: None,
            body_limit_bytes: 16 * 1024,
            body_timeout: Duration::from_secs(10),
            ip_rate: None,
            buyer_rate: None,
            rate_limit_max_keys: 100_000,
            metrics_top_skus: super::stock_metrics::DEFAULT_TOP_SKUS,
        }
    }
}

/// The API: the engine plus everything needed to answer requests.
#[derive(Debug)]
pub struct App<E> {
    /// The engine (or a fake in tests).
    inventory: E,
    /// Credentials and limits.
    config: ApiConfig,
    /// Per-client-IP token buckets on `/v1` routes, if limited.
    ip_limiter: Option<RateLimiter<IpAddr>>,
    /// Per-buyer token buckets on `POST /v1/reservations`, if limited.
    buyer_limiter: Option<RateLimiter<BuyerId>>,
    /// Request counters and latencies.
    metrics: Metrics,
    /// Appends metrics of other parts of the process (the stock stream) to `/metrics`.
    extra_metrics: Option<ExtraMetrics>,
    /// The node's high-availability group, with `serve --ha`: a standby refuses `/ready`
    /// and `/v1` requests with `503 not-leader`.
    cluster: Option<Arc<ClusterState>>,
    /// The latest problems answered, for the dashboard.
    recent: RecentProblems,
    /// The stock series of `/metrics`, reused for a second.
    stock_render: StockRenderCache,
    /// The dashboard's event feed, if the dashboard is served.
    dashboard: Option<Arc<DashboardFeed>>,
    /// Signs and checks the dashboard's session cookies (derived from the admin tokens).
    session_key: SessionKey,
    /// The waiting room, if enabled: its endpoints and the pass check of reservations. On a
    /// high-availability node the slot is filled while the node leads (ADR 0027).
    queues: Option<Slot<Arc<QueueService>>>,
    /// Event delivery (webhooks, AMQP), if the server runs it (filled while leading, on a
    /// high-availability node).
    events: Option<Slot<flashsale_events::EventService>>,
}

/// A request's answer and when it was ready (the end of its latency, [`App::handle_timed`]).
#[derive(Debug)]
pub struct Answered {
    /// The response.
    pub response: Response<ResBody>,
    /// When it was ready.
    pub at: Instant,
}

impl<E: Inventory> App<E> {
    /// The API over `inventory` with `config`.
    pub fn new(inventory: E, config: ApiConfig) -> Self {
        let max_keys = config.rate_limit_max_keys;
        let session_key = SessionKey::from_admin_tokens(config.tokens.of_role(Role::Admin));
        App {
            ip_limiter: config.ip_rate.map(|r| RateLimiter::new(r, max_keys)),
            buyer_limiter: config.buyer_rate.map(|r| RateLimiter::new(r, max_keys)),
            inventory,
            config,
            metrics: Metrics::new(),
            extra_metrics: None,
            cluster: None,
            recent: RecentProblems::new(),
            stock_render: StockRenderCache::new(),
            dashboard: None,
            session_key,
            queues: None,
            events: None,
        }
    }

    /// Serves the dashboard's event stream from `feed` (without it, `/dashboard/events`
    /// answers 503).
    pub fn with_dashboard(mut self, feed: Arc<DashboardFeed>) -> Self {
        self.dashboard = Some(feed);
        self
    }

    /// The latest problems answered.
    pub fn recent_problems(&self) -> &RecentProblems {
        &self.recent
    }

    /// Makes this the API of a node of a high-availability group described by `cluster`.
    pub fn with_cluster(mut self, cluster: Arc<ClusterState>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Enables the waiting room: its endpoints, and a pass on reservations of queued SKUs.
    pub fn with_queues(self, queues: Arc<QueueService>) -> Self {
        self.with_queue_slot(Slot::filled(queues))
    }

    /// Enables the waiting room of whoever fills `slot` (a high-availability leader's term);
    /// while it is empty, its endpoints and reservations answer `503 unavailable`.
    pub fn with_queue_slot(mut self, slot: Slot<Arc<QueueService>>) -> Self {
        self.queues = Some(slot);
        self
    }

    /// Serves the webhook endpoints from `events` (without it they answer 404).
    pub fn with_events(self, events: flashsale_events::EventService) -> Self {
        self.with_events_slot(Slot::filled(events))
    }

    /// Serves the webhook endpoints from the service in `slot` (a high-availability leader's
    /// term); while it is empty they answer `503 unavailable`.
    pub fn with_events_slot(mut self, slot: Slot<flashsale_events::EventService>) -> Self {
        self.events = Some(slot);
        self
    }

    /// Adds `render`'s output to every `/metrics` answer (e.g. the stock stream's counters).
    pub fn with_extra_metrics(mut self, render: ExtraMetrics) -> Self {
        self.extra_metrics = Some(render);
        self
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The engine (or fake) behind the API.
    pub fn inventory(&self) -> &E {
        &self.inventory
    }

    /// Answers one request from `peer`. Never fails: every error becomes a problem response.
    pub async fn handle<B: RequestBody>(&self, req: Request<B>, peer: IpAddr) -> Response<ResBody> {
        self.handle_timed(req, peer).await.response
    }

    /// [`App::handle`], also returning when the answer was ready (the end of its latency):
    /// the connection stamps its idle start with it instead of reading the clock again
    /// (ADR 0061).
    pub async fn handle_timed<B: RequestBody>(&self, req: Request<B>, peer: IpAddr) -> Answered {
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let mut standby_lag = None;
        let (route, answer) = match routes::resolve(&parts.method, parts.uri.path()) {
            Ok(m) => {
                standby_lag = self.standby_read(m.route);
                let answer = self
                    .dispatch(
                        m.route,
                        (m.param, m.param2),
                        &parts,
                        body,
                        peer,
                        standby_lag,
                    )
                    .await;
                (Some(m.route), answer)
            }
            Err(miss) => (None, Err(miss_problem(&parts, miss))),
        };
        let mut res = match answer {
            Ok(res) => res,
            Err(p) => {
                log_problem(&parts, &p);
                // Sold-out is not listed: no clock read for it (ADR 0043).
                if super::recent::is_listed(p.kind) {
                    self.recent
                        .record(parts.method.as_str(), parts.uri.path(), &p, now_ms());
                }
                p.into_response()
            }
        };
        add_security_headers(res.headers_mut());
        if let Some(lag) = standby_lag {
            cluster::mark_standby(res.headers_mut(), lag);
        }
        let end = Instant::now();
        let latency = end.saturating_duration_since(start);
        let status = res.status().as_u16();
        self.metrics.record(route, status, latency);
        tracing::debug!(
            method = %parts.method,
            path = %parts.uri.path(),
            route = route.map_or("unmatched", RouteId::name),
            status,
            latency_us = latency.as_micros() as u64,
            %peer,
            "request"
        );
        Answered {
            response: res,
            at: end,
        }
    }

    /// Runs the handler of `route`: probes first (no credentials, no limits), then the per-IP
    /// rate limit and the caller's credentials, then the endpoint itself. A standby refuses
    /// with `503 not-leader` unless it answers this read from its followed state
    /// (`standby_lag` is set).
    async fn dispatch<B: RequestBody>(
        &self,
        route: RouteId,
        (param, param2): (Option<&str>, Option<&str>),
        parts: &Parts,
        body: B,
        peer: IpAddr,
        standby_lag: Option<u64>,
    ) -> Answer {
        match route {
            RouteId::Health => return probes::health(),
            RouteId::Ready => {
                self.check_leader()?;
                return self.ready();
            }
            RouteId::Metrics => return Ok(self.render_metrics().await),
            RouteId::DashboardPage => return self.dashboard_page(&parts.headers),
            RouteId::DashboardAsset => return dashboard::asset(param.unwrap_or_default()),
            RouteId::DashboardSignOut => return dashboard::sign_out(),
            RouteId::DashboardEvents => return self.dashboard_events(&parts.headers),
            RouteId::DashboardSignIn => {
                self.check_ip_rate(peer)?;
                return self.dashboard_sign_in(&parts.headers, body).await;
            }
            _ => {}
        }
        self.check_ip_rate(peer)?;
        let caller = self.authenticate(&parts.headers)?;
        if route == RouteId::Cluster {
            return self.cluster_view(&caller);
        }
        if standby_lag.is_none() {
            self.check_leader()?;
        }
        let param = param.unwrap_or_default();
        let headers = &parts.headers;
        match route {
            RouteId::PutSku => self.put_sku(&caller, param, headers, body).await,
            RouteId::Restock => self.restock(&caller, param, headers, body).await,
            RouteId::GetSku => self.get_sku(param).await,
            RouteId::ListSkus => self.list_skus(parts.uri.query()).await,
            RouteId::Reserve => self.reserve(&caller, headers, body).await,
            RouteId::GetReservation => self.get_reservation(&caller, param).await,
            RouteId::Confirm => self.confirm(&caller, param, headers, body).await,
            RouteId::Cancel => self.cancel(&caller, param, headers, body).await,
            RouteId::Extend => self.extend(&caller, param, headers, body).await,
            RouteId::GetOrder => self.get_order(&caller, param).await,
            RouteId::PutQueue => self.put_queue(&caller, param, headers, body).await,
            RouteId::GetQueue => self.get_queue(&caller, param),
            RouteId::JoinQueue => self.join_queue(&caller, param, headers, body).await,
            RouteId::GetTicket => self.get_ticket(&caller, param, param2.unwrap_or_default()),
            RouteId::ListReservations => self.list_reservations(&caller, parts.uri.query()).await,
            RouteId::ListOrders => self.list_orders(&caller, parts.uri.query()).await,
            RouteId::CreateWebhook => self.create_webhook(&caller, headers, body).await,
            RouteId::ListWebhooks => self.list_webhooks(&caller),
            RouteId::GetWebhook => self.get_webhook(&caller, param),
            RouteId::DeleteWebhook => self.delete_webhook(&caller, param).await,
            RouteId::WebhookDeliveries => self.webhook_deliveries(&caller, param),
            RouteId::ReplayWebhook => self.replay_webhook(&caller, param),
            RouteId::Health
            | RouteId::Ready
            | RouteId::Metrics
            | RouteId::Cluster
            | RouteId::DashboardPage
            | RouteId::DashboardAsset
            | RouteId::DashboardSignIn
            | RouteId::DashboardSignOut
            | RouteId::DashboardEvents => Err(Problem::internal("unreachable route dispatch")),
        }
    }

    /// Takes a token from `peer`'s bucket, or answers 429 when it is empty.
    fn check_ip_rate(&self, peer: IpAddr) -> Result<(), Problem> {
        if let Some(limiter) = &self.ip_limiter {
            if let Err(wait) = limiter.check(&peer, Instant::now()) {
                self.metrics.rate_limited_ip.fetch_add(1, Ordering::Relaxed);
                return Err(Problem::rate_limited("client address", retry_after_s(wait)));
            }
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The problem of a request that matches no route: 404, or 405 with the allowed methods.
fn miss_problem(parts: &Parts, miss: Miss) -> Problem {
    match miss {
        Miss::NotFound => Problem::not_found(format!("no route for {}", parts.uri.path())),
        Miss::MethodNotAllowed(allowed) => {
            let allow = allowed.join(", ");
            let mut p = Problem::new(
                ProblemKind::MethodNotAllowed,
                format!("{} is not allowed here; allowed: {allow}", parts.method),
            );
            p.allow = Some(allow);
            p
        }
    }
}

/// Logs the problems operators must see: internal errors (with their cause, which the client
/// never sees) and unavailability.
fn log_problem(parts: &Parts, p: &Problem) {
    let detail = p.log_detail.as_deref().unwrap_or(&p.detail);
    match p.kind {
        ProblemKind::Internal => {
            tracing::error!(method = %parts.method, path = %parts.uri.path(), detail, "internal error")
        }
        ProblemKind::Unavailable => {
            tracing::warn!(method = %parts.method, path = %parts.uri.path(), detail, "unavailable")
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
