//! The HTTP transport of the client: one request, a JSON answer or a problem turned into one
//! clear line.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::{Arc, Mutex};

use crate::problem::{snippet, Problem, ProblemKind};

/// Largest answer body read, in bytes (a page of 1 000 SKUs is far below).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Most servers one client knows (its targets plus leaders named by `not-leader` answers).
pub const MAX_SERVERS: usize = 16;

/// Most extra attempts of one call after `503 not-leader` or a failed connect.
pub const MAX_REDIRECTS: u32 = 6;

/// Pause before retrying when no node names a leader (an election is under way), times the
/// attempt number.
pub const NO_LEADER_BACKOFF: Duration = Duration::from_millis(200);

/// Why an API call failed; each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The flags cannot make a request (bad URL, token with spaces...).
    #[error("{0}")]
    Usage(String),
    /// Nothing answered at the server address (the request was not sent).
    #[error("cannot reach {server}: {reason} (is `flashsale serve` running there?)")]
    Unreachable {
        /// The `--server` URL.
        server: String,
        /// The cause.
        reason: String,
    },
    /// The connection broke after the request was sent: it may or may not have been applied.
    #[error("the connection to {server} broke: {reason} (the request may have been applied)")]
    Broken {
        /// The `--server` URL.
        server: String,
        /// The cause.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("{server} did not answer within {} s", timeout.as_secs_f64())]
    Timeout {
        /// The `--server` URL.
        server: String,
        /// The limit.
        timeout: Duration,
    },
    /// The server answered with a problem (RFC 9457).
    #[error("{0}")]
    Problem(Box<Problem>),
    /// The answer was not what the API sends.
    #[error("unexpected answer from {server}: {reason}")]
    BadAnswer {
        /// The `--server` URL.
        server: String,
        /// What was wrong.
        reason: String,
    },
}

impl ApiError {
    /// The problem, if the server answered with one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ApiError::Problem(p) => Some(p),
            _ => None,
        }
    }

    /// The problem's kind, if the server answered with one.
    pub fn kind(&self) -> Option<&ProblemKind> {
        self.problem().map(|p| &p.kind)
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code (200, 201...).
    pub status: u16,
    /// The body as sent (the API's JSON, for `--json`).
    pub raw: Bytes,
    /// The body parsed.
    pub json: Value,
}

/// A successful answer deserialized as `T` (derefs to it); `raw` keeps the API's JSON.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    /// Status code (200, 201...).
    pub status: u16,
    /// The body as sent.
    pub raw: Bytes,
    /// The body as `T`.
    pub value: T,
}

impl<T> Reply<T> {
    /// The typed value.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for Reply<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Whether a call may be sent again to another node after `503 not-leader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// A read, a write with an `Idempotency-Key` (the server answers a repeat with the first
    /// answer), or a write the API defines as idempotent (confirm with the same
    /// `payment_ref`): yes.
    Allowed,
    /// Any other write: never (the caller sees the `not-leader` problem).
    Never,
}

impl Replay {
    /// The rule for `method` with or without an `Idempotency-Key`.
    pub(crate) fn of(method: &Method, key: Option<&str>) -> Replay {
        if method == Method::GET || method == Method::HEAD || key.is_some() {
            Replay::Allowed
        } else {
            Replay::Never
        }
    }
}

/// A client of one flashsale HTTP API (one server or the nodes of an HA group) with one bearer
/// token.
///
/// With several servers, calls go to the preferred one (the first, then the last leader seen).
/// A `503 not-leader` answer moves the preference to the `leader_url` it names (or to the next
/// server when it names none) and the call is sent again, at most [`MAX_REDIRECTS`] times —
/// reads always, writes only when they carry an `Idempotency-Key`. A server that refuses the
/// connection (nothing was sent) is skipped the same way.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: Client<HttpConnector, Full<Bytes>>,
    servers: Arc<Mutex<Servers>>,
    auth: HeaderValue,
    timeout: Duration,
}

/// The known servers and which one calls go to.
#[derive(Debug)]
struct Servers {
    /// Base URLs, the configured ones first.
    urls: Vec<String>,
    /// Index of the preferred one.
    preferred: usize,
}

/// Checks a `--server` URL and returns it without a trailing `/`.
fn base_url(server: &str) -> Result<String, ApiError> {
    let base = server.trim().trim_end_matches('/').to_string();
    let uri: Uri = base
        .parse()
        .map_err(|e| ApiError::Usage(format!("--server {server:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(ApiError::Usage(format!(
                "--server {server}: https is not supported by this client; use the \
                 server's http:// address (flashsale serve speaks plain HTTP behind a TLS \
                 proxy)"
            )))
        }
        _ => {
            return Err(ApiError::Usage(format!(
                "--server {server:?} must be an http:// URL, e.g. http://127.0.0.1:8080"
            )))
        }
    }
    if uri.host().is_none() || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(ApiError::Usage(format!(
            "--server {server:?} must be a base URL without a path, e.g. http://127.0.0.1:8080"
        )));
    }
    Ok(base)
}

/// The `Authorization` header for `token`.
fn bearer(token: &str) -> Result<HeaderValue, ApiError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::Usage(
            "--token must be printable ASCII without spaces".into(),
        ));
    }
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ApiError::Usage("--token cannot be sent in a header".into()))
}

/// Splits `--server` values: each may be a comma-separated list; empty items are ignored.
pub fn split_servers<S: AsRef<str>>(values: &[S]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.as_ref().split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ApiClient {
    /// A client for the API at `server` (`http://host:port`, or a comma-separated list of the
    /// nodes of an HA group), authenticating with `token`.
    pub fn new(server: &str, token: &str, timeout: Duration) -> Result<ApiClient, ApiError> {
        ApiClient::with_servers(&split_servers(&[server]), token, timeout)
    }

    /// A client for the nodes at `servers` (tried in order; see the type's doc).
    pub fn with_servers<S: AsRef<str>>(
        servers: &[S],
        token: &str,
        timeout: Duration,
    ) -> Result<ApiClient, ApiError> {
        if servers.is_empty() {
            return Err(ApiError::Usage("--server: no URL given".into()));
        }
        if servers.len() > MAX_SERVERS {
            return Err(ApiError::Usage(format!(
                "--server: at most {MAX_SERVERS} URLs"
            )));
        }
        let mut urls = Vec::with_capacity(servers.len());
        for s in servers {
            let url = base_url(s.as_ref())?;
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        let auth = bearer(token)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(ApiClient {
            http,
            servers: Arc::new(Mutex::new(Servers { urls, preferred: 0 })),
            auth,
            timeout,
        })
    }

    /// A client of the same servers with another bearer `token`, sharing this one's connection
    /// pool and its knowledge of the leader.
    pub fn with_token(&self, token: &str) -> Result<ApiClient, ApiError> {
        Ok(ApiClient {
            auth: bearer(token)?,
            ..self.clone()
        })
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, Servers> {
        // A panic elsewhere cannot leave `Servers` inconsistent (two plain fields).
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The base URL calls go to now (the first server, or the last leader seen).
    pub fn server(&self) -> String {
        let s = self.servers();
        s.urls[s.preferred].clone()
    }

    /// Every server known: the configured ones, then leaders learnt from `not-leader` answers.
    pub fn known_servers(&self) -> Vec<String> {
        self.servers().urls.clone()
    }

    /// After `not-leader` from `from`: prefer `leader` if it is a usable URL, else the server
    /// after `from`.
    fn follow(&self, from: &str, leader: Option<&str>) {
        let mut s = self.servers();
        if let Some(url) = leader.and_then(|l| base_url(l).ok()) {
            if let Some(i) = s.urls.iter().position(|u| *u == url) {
                s.preferred = i;
                return;
            }
            if s.urls.len() < MAX_SERVERS {
                s.urls.push(url);
                s.preferred = s.urls.len() - 1;
                return;
            }
        }
        let i = s.urls.iter().position(|u| u == from).unwrap_or(s.preferred);
        s.preferred = (i + 1) % s.urls.len();
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer, ApiError> {
        self.call(Method::GET, path, None, None, Replay::Allowed)
            .await
    }

    /// `method path` with a JSON `body` (no `Idempotency-Key`: a write is not sent again
    /// to another node).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        let replay = Replay::of(&method, None);
        self.call(method, path, body, None, replay).await
    }

    /// `method path` with a JSON `body` and an `Idempotency-Key` (sent again to the leader
    /// after `not-leader`).
    pub async fn send_keyed(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: &str,
    ) -> Result<Answer, ApiError> {
        self.call(method, path, body, Some(key), Replay::Allowed)
            .await
    }

    /// The answer of [`ApiClient::call`] deserialized as `T`.
    pub(crate) async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
        replay: Replay,
    ) -> Result<Reply<T>, ApiError> {
        let a = self.call(method, path, body, key, replay).await?;
        let value = serde_json::from_value(a.json).map_err(|e| ApiError::BadAnswer {
            server: self.server(),
            reason: format!("{path}: {e}: {}", snippet(&a.raw)),
        })?;
        Ok(Reply {
            status: a.status,
            raw: a.raw,
            value,
        })
    }

    /// One call, following the leader (see the type's doc).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
        replay: Replay,
    ) -> Result<Answer, ApiError> {
        let mut redirects = 0;
        loop {
            let base = self.server();
            let result = self.call_once(&base, &method, path, body, key).await;
            let several = self.servers().urls.len() > 1;
            match &result {
                Err(ApiError::Problem(p)) if p.kind == ProblemKind::NotLeader => {
                    let leader = p
                        .leader_url
                        .as_deref()
                        .filter(|l| base_url(l).ok().as_deref() != Some(base.as_str()));
                    // Later calls start at the leader, whether or not this one is sent again.
                    self.follow(&base, leader);
                    if replay == Replay::Never || redirects >= MAX_REDIRECTS {
                        return result;
                    }
                    redirects += 1;
                    if leader.is_none() {
                        tokio::time::sleep(NO_LEADER_BACKOFF * redirects).await;
                    }
                }
                Err(ApiError::Unreachable { .. }) if several && redirects < MAX_REDIRECTS => {
                    // Nothing was sent: any call may go to the next server. Once every server
                    // was tried, pause: a takeover may be under way.
                    redirects += 1;
                    if redirects as usize >= self.servers().urls.len() {
                        tokio::time::sleep(NO_LEADER_BACKOFF * redirects).await;
                    }
                    self.follow(&base, None);
                }
                _ => return result,
            }
        }
    }

    async fn call_once(
        &self,
        base: &str,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Answer, ApiError> {
        let url = format!("{base}{path}");
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(k) = key {
            let v = HeaderValue::from_str(k).map_err(|_| {
                ApiError::Usage(format!("Idempotency-Key {k:?} cannot be sent in a header"))
            })?;
            req = req.header("idempotency-key", v);
        }
        let payload = match body {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|e| ApiError::Usage(format!("cannot build a request for {url}: {e}")))?;
        let exchange = async {
            let res = self.http.request(req).await.map_err(|e| {
                let connect = e.is_connect();
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason = s.to_string();
                    source = s.source();
                }
                let server = base.to_string();
                if connect {
                    ApiError::Unreachable { server, reason }
                } else {
                    ApiError::Broken { server, reason }
                }
            })?;
            let status = res.status();
            let retry_after = res
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let limited = http_body_util::Limited::new(res.into_body(), MAX_ANSWER_BYTES);
            let raw = limited
                .collect()
                .await
                .map_err(|e| bad(base, format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ApiError>((status, retry_after, raw))
        };
        let (status, retry_after, raw) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ApiError::Timeout {
                server: base.to_string(),
                timeout: self.timeout,
            })??;
        let json: Option<Value> = serde_json::from_slice(&raw).ok();
        if status.is_success() {
            let json = json.ok_or_else(|| {
                bad(
                    base,
                    format!("{status} with a body that is not JSON: {}", snippet(&raw)),
                )
            })?;
            return Ok(Answer {
                status: status.as_u16(),
                raw,
                json,
            });
        }
        Err(problem(status, json, &raw, retry_after))
    }
}

fn bad(server: &str, reason: String) -> ApiError {
    ApiError::BadAnswer {
        server: server.to_string(),
        reason,
    }
}

/// The error for a non-2xx answer: its problem type and detail, or the status and the start of
/// the body if it is not a problem.
fn problem(
    status: StatusCode,
    json: Option<Value>,
    raw: &[u8],
    retry_after: Option<String>,
) -> ApiError {
    ApiError::Problem(Box::new(Problem::from_answer(
        status,
        json,
        raw,
        retry_after,
    )))
}

/// `s` percent-encoded for use as one path segment or query value (RFC 3986 unreserved
/// characters kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_must_be_plain_http_base_urls() {
        let t = Duration::from_secs(1);
        assert!(ApiClient::new("http://127.0.0.1:8080", "t", t).is_ok());
        assert!(ApiClient::new("http://127.0.0.1:8080/", "t", t).is_ok());
        for bad in ["https://x:1", "127.0.0.1:8080", "http://x:1/v1", "ftp://x"] {
            let e = ApiClient::new(bad, "t", t).unwrap_err();
            assert!(matches!(e, ApiError::Usage(_)), "{bad}: {e}");
        }
        assert!(ApiClient::new("http://x:1", "a b", t).is_err());
    }

    #[test]
    fn problems_read_as_one_line() {
        let body = serde_json::json!({
            "type": "https://flashsale.dev/problems/not-found",
            "title": "Not found",
            "status": 404,
            "detail": "no SKU \"nosuch\"",
        });
        let e = problem(StatusCode::NOT_FOUND, Some(body), b"", None);
        assert_eq!(e.to_string(), "404 not-found: no SKU \"nosuch\"");
        let e = problem(
            StatusCode::TOO_MANY_REQUESTS,
            Some(
                serde_json::json!({"type": "https://flashsale.dev/problems/rate-limited", "detail": "slow down"}),
            ),
            b"",
            Some("2".into()),
        );
        assert_eq!(
            e.to_string(),
            "429 rate-limited: slow down (retry after 2 s)"
        );
        let e = problem(StatusCode::BAD_GATEWAY, None, b"<html>\nproxy error", None);
        assert_eq!(e.to_string(), "502 bad-gateway: <html>");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn ids_are_encoded_as_one_segment() {
        assert_eq!(encode("res_01H-x.y~z"), "res_01H-x.y~z");
        assert_eq!(encode("a/b c?"), "a%2Fb%20c%3F");
    }
}
