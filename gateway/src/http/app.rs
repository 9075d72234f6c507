//! The API itself: one request in, one response out. Routing, credentials, rate limits, body
//! limits, JSON, engine calls and the problem mapping all happen here; sockets do not.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use flashsale_engine::ReserveRequest;
use flashsale_protocol::{
    BuyerId, IdempotencyKey, KeyOwner, OrderId, ReservationId, ScopedKey, SkuId,
};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION,
};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use super::inventory::Inventory;
use super::jwt::JwtVerifier;
use super::metrics::Metrics;
use super::problem::{Problem, ProblemKind};
use super::rate_limit::{retry_after_s, Rate, RateLimiter};
use super::routes::{self, Miss, RouteId};
use super::wire::{
    parse_json, CancelBody, ConfirmBody, OrderJson, PutSkuBody, ReservationJson, ReserveBody,
    RestockBody, SkuJson, SkuPage,
};
use crate::auth::{Role, Tokens};

/// Default page size of `GET /v1/skus`.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// Largest page size of `GET /v1/skus`.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// The response body type of every answer.
pub type ResBody = Full<Bytes>;

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
        }
    }
}

/// A stable fingerprint of a credential (the first 8 bytes of the token's SHA-256): the scope
/// of that caller's idempotency keys, the same across restarts and token list orderings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialId(pub u64);

impl CredentialId {
    /// The fingerprint of `token`.
    pub fn of(token: &str) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(token.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        CredentialId(u64::from_le_bytes(first))
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An admin token.
    Admin(CredentialId),
    /// A storefront token.
    Storefront(CredentialId),
    /// A partner token (read-only stock).
    Partner,
    /// A buyer JWT; the buyer is its `sub`.
    Buyer(BuyerId),
}

/// The API: the engine plus everything needed to answer requests.
#[derive(Debug)]
pub struct App<E> {
    inventory: E,
    config: ApiConfig,
    ip_limiter: Option<RateLimiter<IpAddr>>,
    buyer_limiter: Option<RateLimiter<BuyerId>>,
    metrics: Metrics,
    /// Appends metrics of other parts of the process (the stock stream) to `/metrics`.
    extra_metrics: Option<ExtraMetrics>,
}

/// Renders more Prometheus text into `/metrics`.
pub struct ExtraMetrics(pub Box<dyn Fn(&mut String) + Send + Sync>);

impl std::fmt::Debug for ExtraMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraMetrics(..)")
    }
}

type Answer = Result<Response<ResBody>, Problem>;

static SECURITY_HEADERS: &[(HeaderName, &str)] = &[
    (hyper::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (hyper::header::CACHE_CONTROL, "no-store"),
    (hyper::header::X_FRAME_OPTIONS, "DENY"),
    (
        hyper::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (hyper::header::REFERRER_POLICY, "no-referrer"),
];

/// Adds the security headers every response carries.
pub fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name.clone(), HeaderValue::from_static(value));
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<ResBody> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut res = Response::new(Full::new(Bytes::from(body)));
            *res.status_mut() = status;
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        }
        Err(e) => Problem::new(
            ProblemKind::Internal,
            format!("cannot encode response: {e}"),
        )
        .into_response(),
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<E: Inventory> App<E> {
    /// The API over `inventory` with `config`.
    pub fn new(inventory: E, config: ApiConfig) -> Self {
        let max_keys = config.rate_limit_max_keys;
        App {
            ip_limiter: config.ip_rate.map(|r| RateLimiter::new(r, max_keys)),
            buyer_limiter: config.buyer_rate.map(|r| RateLimiter::new(r, max_keys)),
            inventory,
            config,
            metrics: Metrics::new(),
            extra_metrics: None,
        }
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
    pub async fn handle<B>(&self, req: Request<B>, peer: IpAddr) -> Response<ResBody>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let (route, answer) = match routes::resolve(&parts.method, parts.uri.path()) {
            Ok(m) => (
                Some(m.route),
                self.dispatch(m.route, m.param, &parts, body, peer).await,
            ),
            Err(Miss::NotFound) => (
                None,
                Err(Problem::not_found(format!(
                    "no route for {}",
                    parts.uri.path()
                ))),
            ),
            Err(Miss::MethodNotAllowed(allowed)) => {
                let allow = allowed.join(", ");
                let mut p = Problem::new(
                    ProblemKind::MethodNotAllowed,
                    format!("{} is not allowed here; allowed: {allow}", parts.method),
                );
                p.allow = Some(allow);
                (None, Err(p))
            }
        };
        let mut res = match answer {
            Ok(res) => res,
            Err(p) => {
                match p.kind {
                    ProblemKind::Internal => {
                        tracing::error!(method = %parts.method, path = %parts.uri.path(), detail = %p.detail, "internal error")
                    }
                    ProblemKind::Unavailable => {
                        tracing::warn!(method = %parts.method, path = %parts.uri.path(), detail = %p.detail, "unavailable")
                    }
                    _ => {}
                }
                p.into_response()
            }
        };
        add_security_headers(res.headers_mut());
        let latency = start.elapsed();
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
        res
    }

    async fn dispatch<B>(
        &self,
        route: RouteId,
        param: Option<&str>,
        parts: &Parts,
        body: B,
        peer: IpAddr,
    ) -> Answer
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        match route {
            RouteId::Health => {
                return Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
            }
            RouteId::Ready => return self.ready(),
            RouteId::Metrics => return Ok(self.render_metrics()),
            _ => {}
        }
        if let Some(limiter) = &self.ip_limiter {
            if let Err(wait) = limiter.check(&peer, Instant::now()) {
                self.metrics.rate_limited_ip.fetch_add(1, Ordering::Relaxed);
                return Err(Problem::rate_limited("client address", retry_after_s(wait)));
            }
        }
        let caller = self.authenticate(&parts.headers)?;
        let param = param.unwrap_or_default();
        match route {
            RouteId::PutSku => {
                require(&caller, &[Role::Admin])?;
                let sku =
                    SkuId::new(param).map_err(|e| Problem::invalid(format!("sku in path: {e}")))?;
                let body = self.read_body(&parts.headers, body).await?;
                let spec = parse_json::<PutSkuBody>(&body)?.into_spec(sku)?;
                let (view, created) = self.inventory.upsert_sku(spec).await?;
                let status = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let mut res = json(status, &SkuJson::from(&view));
                if created {
                    set_location(&mut res, &format!("/v1/skus/{}", view.sku));
                }
                Ok(res)
            }
            RouteId::Restock => {
                require(&caller, &[Role::Admin])?;
                let sku = path_sku(param)?;
                let body = self.read_body(&parts.headers, body).await?;
                let qty = parse_json::<RestockBody>(&body)?.qty()?;
                let view = self.inventory.restock(sku, qty).await?;
                Ok(json(StatusCode::OK, &SkuJson::from(&view)))
            }
            RouteId::GetSku => {
                let view = self.inventory.sku(path_sku(param)?).await?;
                Ok(json(StatusCode::OK, &SkuJson::from(&view)))
            }
            RouteId::ListSkus => {
                let (after, limit) = parse_list_query(parts.uri.query())?;
                let views = self.inventory.list_skus(after, limit).await?;
                let next_cursor = if views.len() == limit {
                    views.last().map(|v| encode_cursor(&v.sku))
                } else {
                    None
                };
                let page = SkuPage {
                    items: views.iter().map(SkuJson::from).collect(),
                    next_cursor,
                };
                Ok(json(StatusCode::OK, &page))
            }
            RouteId::Reserve => self.reserve(&caller, &parts.headers, body).await,
            RouteId::GetReservation => {
                let id = path_reservation(param)?;
                forbid_partner(&caller)?;
                let view = self.inventory.reservation(id).await?;
                check_owner(&caller, &view.buyer, || format!("unknown reservation {id}"))?;
                Ok(json(StatusCode::OK, &ReservationJson::from(&view)))
            }
            RouteId::Confirm => {
                if matches!(caller, Caller::Buyer(_)) {
                    return Err(Problem::new(
                        ProblemKind::Forbidden,
                        "buyer tokens cannot confirm: the storefront confirms after payment",
                    ));
                }
                require(&caller, &[Role::Admin, Role::Storefront])?;
                let id = path_reservation(param)?;
                let body = self.read_body(&parts.headers, body).await?;
                let payment_ref = parse_json::<ConfirmBody>(&body)?.payment_ref()?;
                let view = self.inventory.confirm(id, payment_ref).await?;
                Ok(json(StatusCode::OK, &ReservationJson::from(&view)))
            }
            RouteId::Cancel => {
                forbid_partner(&caller)?;
                let id = path_reservation(param)?;
                let body = self.read_body(&parts.headers, body).await?;
                if !body.iter().all(u8::is_ascii_whitespace) {
                    parse_json::<CancelBody>(&body)?;
                }
                if let Caller::Buyer(_) = &caller {
                    let view = self.inventory.reservation(id).await?;
                    check_owner(&caller, &view.buyer, || format!("unknown reservation {id}"))?;
                }
                let view = self.inventory.cancel(id).await?;
                Ok(json(StatusCode::OK, &ReservationJson::from(&view)))
            }
            RouteId::GetOrder => {
                forbid_partner(&caller)?;
                let id = OrderId::parse(param)
                    .map_err(|_| Problem::not_found(format!("unknown order {param}")))?;
                let view = self.inventory.order(id).await?;
                check_owner(&caller, &view.buyer, || format!("unknown order {id}"))?;
                Ok(json(StatusCode::OK, &OrderJson::from(&view)))
            }
            RouteId::Health | RouteId::Ready | RouteId::Metrics => Err(Problem::new(
                ProblemKind::Internal,
                "unreachable route dispatch",
            )),
        }
    }

    async fn reserve<B>(&self, caller: &Caller, headers: &HeaderMap, body: B) -> Answer
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        forbid_partner(caller)?;
        let idempotency_key = match headers.get("idempotency-key") {
            None => None,
            Some(v) => {
                let s = v
                    .to_str()
                    .map_err(|_| Problem::invalid("Idempotency-Key must be printable ASCII"))?;
                Some(IdempotencyKey::new(s).map_err(|e| Problem::invalid(e.to_string()))?)
            }
        };
        let raw = self.read_body(headers, body).await?;
        let req: ReserveBody = parse_json(&raw)?;
        let lines = req.validated_lines()?;
        let body_buyer = req.buyer()?;
        let buyer = match (caller, body_buyer) {
            (Caller::Buyer(sub), None) => sub.clone(),
            (Caller::Buyer(sub), Some(b)) if &b == sub => b,
            (Caller::Buyer(_), Some(_)) => {
                return Err(Problem::new(
                    ProblemKind::Forbidden,
                    "buyer in the body differs from the token's sub",
                ))
            }
            (_, Some(b)) => b,
            (_, None) => {
                return Err(Problem::invalid(
                    "buyer is required with a storefront token",
                ))
            }
        };
        if let Some(limiter) = &self.buyer_limiter {
            if let Err(wait) = limiter.check(&buyer, Instant::now()) {
                self.metrics
                    .rate_limited_buyer
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Problem::rate_limited("buyer", retry_after_s(wait)));
            }
        }
        let owner = match caller {
            Caller::Admin(c) | Caller::Storefront(c) => KeyOwner::Credential(c.0),
            Caller::Buyer(b) => KeyOwner::Buyer(b.clone()),
            Caller::Partner => {
                return Err(Problem::new(
                    ProblemKind::Internal,
                    "partner reached reserve",
                ))
            }
        };
        let idempotency_key = idempotency_key.map(|key| ScopedKey::new(owner, key));
        let view = self
            .inventory
            .reserve(ReserveRequest {
                buyer,
                lines,
                idempotency_key,
            })
            .await?;
        let mut res = json(StatusCode::CREATED, &ReservationJson::from(&view));
        set_location(&mut res, &format!("/v1/reservations/{}", view.id));
        Ok(res)
    }

    fn ready(&self) -> Answer {
        if self.inventory.ready() {
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"status": "ready"}),
            ))
        } else {
            let mut p = Problem::new(
                ProblemKind::Unavailable,
                "the write-ahead log is not writable; checkouts are refused",
            );
            p.retry_after_s = Some(1);
            Err(p)
        }
    }

    fn render_metrics(&self) -> Response<ResBody> {
        let stats = self.inventory.stats();
        let mut text = self.metrics.render(stats.as_ref());
        if let Some(extra) = &self.extra_metrics {
            (extra.0)(&mut text);
        }
        let mut res = Response::new(Full::new(Bytes::from(text)));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        res
    }

    /// Who presents `Authorization: Bearer …`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        let unauth = |d: &str| Problem::new(ProblemKind::Unauthenticated, d);
        let value = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauth("missing Authorization: Bearer <token> header"))?;
        let value = value
            .to_str()
            .map_err(|_| unauth("the Authorization header is not ASCII"))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(unauth("the Authorization header must be `Bearer <token>`")),
        };
        if let Some(role) = self.config.tokens.role_of(token) {
            return Ok(match role {
                Role::Admin => Caller::Admin(CredentialId::of(token)),
                Role::Storefront => Caller::Storefront(CredentialId::of(token)),
                Role::Partner => Caller::Partner,
            });
        }
        match &self.config.jwt {
            Some(v) if JwtVerifier::looks_like_jwt(token) => v
                .verify(token, now_s())
                .map(Caller::Buyer)
                .map_err(|e| unauth(&format!("invalid buyer token: {e}"))),
            _ => Err(unauth("invalid token")),
        }
    }

    /// Reads the whole body within the size and time limits.
    async fn read_body<B>(&self, headers: &HeaderMap, body: B) -> Result<Bytes, Problem>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let limit = self.config.body_limit_bytes;
        let too_large = || {
            let mut p = Problem::new(
                ProblemKind::TooLarge,
                format!("the request body is larger than {limit} bytes"),
            )
            .with("limit_bytes", limit as u64);
            p.close = true;
            p
        };
        if let Some(len) = headers.get(CONTENT_LENGTH) {
            let len: u64 = len
                .to_str()
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Problem::malformed("Content-Length is not a number"))?;
            if len > limit as u64 {
                return Err(too_large());
            }
        }
        match tokio::time::timeout(
            self.config.body_timeout,
            Limited::new(body, limit).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
            Ok(Err(e)) => {
                let mut p = Problem::malformed(format!("cannot read the request body: {e}"));
                p.close = true;
                Err(p)
            }
            Err(_) => {
                let mut p = Problem::new(
                    ProblemKind::Timeout,
                    format!(
                        "the request body did not arrive within {} ms",
                        self.config.body_timeout.as_millis()
                    ),
                );
                p.close = true;
                Err(p)
            }
        }
    }
}

fn set_location(res: &mut Response<ResBody>, path: &str) {
    if let Ok(v) = HeaderValue::from_str(path) {
        res.headers_mut().insert(LOCATION, v);
    }
}

fn require(caller: &Caller, roles: &[Role]) -> Result<(), Problem> {
    let role = match caller {
        Caller::Admin(_) => Some(Role::Admin),
        Caller::Storefront(_) => Some(Role::Storefront),
        Caller::Partner => Some(Role::Partner),
        Caller::Buyer(_) => None,
    };
    if role.is_some_and(|r| roles.contains(&r)) {
        Ok(())
    } else {
        let names: Vec<&str> = roles
            .iter()
            .map(|r| match r {
                Role::Admin => "admin",
                Role::Storefront => "storefront",
                Role::Partner => "partner",
            })
            .collect();
        Err(Problem::new(
            ProblemKind::Forbidden,
            format!("this endpoint needs a {} token", names.join(" or ")),
        ))
    }
}

fn forbid_partner(caller: &Caller) -> Result<(), Problem> {
    if *caller == Caller::Partner {
        Err(Problem::new(
            ProblemKind::Forbidden,
            "partner tokens may only read stock",
        ))
    } else {
        Ok(())
    }
}

/// A buyer token sees only its own reservations and orders; others look unknown (404).
fn check_owner(
    caller: &Caller,
    owner: &BuyerId,
    not_found: impl FnOnce() -> String,
) -> Result<(), Problem> {
    match caller {
        Caller::Buyer(b) if b != owner => Err(Problem::not_found(not_found())),
        _ => Ok(()),
    }
}

fn path_sku(param: &str) -> Result<SkuId, Problem> {
    SkuId::new(param).map_err(|_| Problem::not_found(format!("unknown SKU {param}")))
}

fn path_reservation(param: &str) -> Result<ReservationId, Problem> {
    ReservationId::parse(param)
        .map_err(|_| Problem::not_found(format!("unknown reservation {param}")))
}

/// The opaque cursor for "after this SKU".
pub fn encode_cursor(sku: &SkuId) -> String {
    URL_SAFE_NO_PAD.encode(sku.as_str())
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<SkuId, Problem> {
    let bad = || Problem::malformed("cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    SkuId::new(s).map_err(|_| bad())
}

/// Parses `limit` and `cursor` of `GET /v1/skus`; other parameters are refused (400).
pub fn parse_list_query(query: Option<&str>) -> Result<(Option<SkuId>, usize), Problem> {
    let mut after = None;
    let mut limit = DEFAULT_PAGE_LIMIT;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "limit" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| Problem::malformed(format!("limit: {v:?} is not a number")))?;
                if !(1..=MAX_PAGE_LIMIT).contains(&n) {
                    return Err(Problem::invalid(format!(
                        "limit must be 1..={MAX_PAGE_LIMIT}"
                    )));
                }
                limit = n;
            }
            "cursor" => {
                if !v.is_empty() {
                    after = Some(decode_cursor(v)?);
                }
            }
            other => {
                return Err(Problem::malformed(format!(
                    "unknown query parameter {other:?}; expected limit, cursor"
                )))
            }
        }
    }
    Ok((after, limit))
}

#[cfg(test)]
mod tests;
