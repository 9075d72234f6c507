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
use serde_json::Value;

/// Largest answer body read, in bytes (a page of 1 000 SKUs is far below).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Problem types are `https://flashsale.dev/problems/<suffix>`; errors show the suffix.
const PROBLEM_TYPE_BASE: &str = "https://flashsale.dev/problems/";

/// Why an API call failed; each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The flags cannot make a request (bad URL, token with spaces...).
    #[error("{0}")]
    Usage(String),
    /// Nothing answered at the server address.
    #[error("cannot reach {server}: {reason} (is `flashsale serve` running there?)")]
    Unreachable {
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
    #[error("{status} {kind}: {detail}{}", retry_after.as_ref().map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    Problem {
        /// HTTP status code.
        status: u16,
        /// The problem type's suffix (`not-found`, `forbidden`...).
        kind: String,
        /// The server's explanation.
        detail: String,
        /// `Retry-After`, if sent.
        retry_after: Option<String>,
    },
    /// The answer was not what the API sends.
    #[error("unexpected answer from {server}: {reason}")]
    BadAnswer {
        /// The `--server` URL.
        server: String,
        /// What was wrong.
        reason: String,
    },
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

/// A client of one flashsale HTTP API with one bearer token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
    auth: HeaderValue,
    timeout: Duration,
}

impl ApiClient {
    /// A client for the API at `server` (`http://host:port`), authenticating with `token`.
    pub fn new(server: &str, token: &str, timeout: Duration) -> Result<ApiClient, ApiError> {
        let base = server.trim_end_matches('/').to_string();
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
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::Usage(
                "--token must be printable ASCII without spaces".into(),
            ));
        }
        let auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ApiError::Usage("--token cannot be sent in a header".into()))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(ApiClient {
            http,
            base,
            auth,
            timeout,
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer, ApiError> {
        self.call(Method::GET, path, None).await
    }

    /// `method path` with a JSON `body`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        self.call(method, path, body).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(AUTHORIZATION, self.auth.clone());
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
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason = s.to_string();
                    source = s.source();
                }
                ApiError::Unreachable {
                    server: self.base.clone(),
                    reason,
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
                .map_err(|e| self.bad(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ApiError>((status, retry_after, raw))
        };
        let (status, retry_after, raw) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ApiError::Timeout {
                server: self.base.clone(),
                timeout: self.timeout,
            })??;
        let json: Option<Value> = serde_json::from_slice(&raw).ok();
        if status.is_success() {
            let json = json.ok_or_else(|| {
                self.bad(format!(
                    "{status} with a body that is not JSON: {}",
                    snippet(&raw)
                ))
            })?;
            return Ok(Answer {
                status: status.as_u16(),
                raw,
                json,
            });
        }
        Err(problem(status, json.as_ref(), &raw, retry_after))
    }

    fn bad(&self, reason: String) -> ApiError {
        ApiError::BadAnswer {
            server: self.base.clone(),
            reason,
        }
    }
}

/// The error for a non-2xx answer: its problem type and detail, or the status and the start of
/// the body if it is not a problem.
fn problem(
    status: StatusCode,
    json: Option<&Value>,
    raw: &[u8],
    retry_after: Option<String>,
) -> ApiError {
    let field = |k: &str| json.and_then(|j| j.get(k)).and_then(Value::as_str);
    let kind = field("type")
        .map(|t| t.strip_prefix(PROBLEM_TYPE_BASE).unwrap_or(t).to_string())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_lowercase()
                .replace(' ', "-")
        });
    let detail = field("detail")
        .or_else(|| field("title"))
        .map(str::to_owned)
        .unwrap_or_else(|| snippet(raw));
    ApiError::Problem {
        status: status.as_u16(),
        kind,
        detail,
        retry_after,
    }
}

/// The first line of a body, at most 200 characters, for error messages.
fn snippet(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return "(empty body)".into();
    }
    line.chars().take(200).collect()
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
        let e = problem(StatusCode::NOT_FOUND, Some(&body), b"", None);
        assert_eq!(e.to_string(), "404 not-found: no SKU \"nosuch\"");
        let e = problem(
            StatusCode::TOO_MANY_REQUESTS,
            Some(
                &serde_json::json!({"type": "https://flashsale.dev/problems/rate-limited", "detail": "slow down"}),
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
