//! The flashsale HTTP contract as seen by a client: request builders and answer classification.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// Why a request could not be built (a token or id that is not a valid header / path).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A token or authority is not a valid header value.
    #[error("{what} is not a valid HTTP header value")]
    Header {
        /// Which value.
        what: &'static str,
    },
    /// The request could not be assembled.
    #[error("building request: {0}")]
    Build(#[from] hyper::http::Error),
    /// The admin token is needed but was not given.
    #[error("this call needs --admin-token")]
    NoAdminToken,
}

/// How one answer counts in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// 409 `sold-out`: a correct refusal, not an error.
    SoldOut,
    /// Any other answer; the string is the error kind (`http_<status>[_<problem type>]`).
    Error(String),
}

/// A SKU as the server reports it (`GET /v1/skus/{sku}`); other fields are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SkuCounts {
    /// Total stock.
    pub total: i64,
    /// Units neither held nor sold.
    pub available: i64,
    /// Units held by open reservations.
    pub reserved: i64,
    /// Units sold (confirmed).
    pub sold: i64,
}

/// What the admin sets on each created SKU.
#[derive(Debug, Clone)]
pub struct SkuSpec {
    /// Display name.
    pub name: String,
    /// Price per unit in cents.
    pub price_cents: u64,
    /// Total stock.
    pub stock: u64,
    /// Reservation TTL in seconds.
    pub reservation_ttl_s: u64,
}

/// Builds contract requests with the right headers.
#[derive(Debug, Clone)]
pub struct Api {
    host: HeaderValue,
    storefront: HeaderValue,
    admin: Option<HeaderValue>,
}

impl Api {
    /// An API client for `authority` with the storefront and (optional) admin tokens.
    pub fn new(authority: &str, token: &str, admin_token: Option<&str>) -> Result<Api, ApiError> {
        let bearer = |t: &str, what| {
            HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| ApiError::Header { what })
        };
        Ok(Api {
            host: HeaderValue::from_str(authority).map_err(|_| ApiError::Header {
                what: "target authority",
            })?,
            storefront: bearer(token, "--token")?,
            admin: admin_token
                .map(|t| bearer(t, "--admin-token"))
                .transpose()?,
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        auth: &HeaderValue,
        body: Option<serde_json::Value>,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, auth.clone());
        let body = match body {
            Some(v) => {
                b = b.header(CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        Ok(b.body(Full::new(body))?)
    }

    /// `PUT /v1/skus/{sku}` (admin).
    pub fn put_sku(&self, sku: &str, spec: &SkuSpec) -> Result<Request<Full<Bytes>>, ApiError> {
        let admin = self.admin.as_ref().ok_or(ApiError::NoAdminToken)?;
        let body = json!({
            "name": spec.name,
            "price_cents": spec.price_cents,
            "stock": spec.stock,
            "reservation_ttl_s": spec.reservation_ttl_s,
        });
        self.request(
            Method::PUT,
            &format!("/v1/skus/{}", encode(sku)),
            admin,
            Some(body),
        )
    }

    /// `GET /v1/skus/{sku}` (storefront token).
    pub fn get_sku(&self, sku: &str) -> Result<Request<Full<Bytes>>, ApiError> {
        let path = format!("/v1/skus/{}", encode(sku));
        self.request(Method::GET, &path, &self.storefront, None)
    }

    /// `POST /v1/reservations` for one line.
    pub fn reserve(
        &self,
        buyer: &str,
        sku: &str,
        qty: u64,
        idempotency_key: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let body = json!({"buyer": buyer, "lines": [{"sku": sku, "qty": qty}]});
        let mut req = self.request(
            Method::POST,
            "/v1/reservations",
            &self.storefront,
            Some(body),
        )?;
        if let Some(key) = idempotency_key {
            let v = HeaderValue::from_str(key).map_err(|_| ApiError::Header {
                what: "Idempotency-Key",
            })?;
            req.headers_mut().insert("idempotency-key", v);
        }
        Ok(req)
    }

    /// `POST /v1/reservations/{id}/confirm`.
    pub fn confirm(&self, id: &str, payment_ref: &str) -> Result<Request<Full<Bytes>>, ApiError> {
        let path = format!("/v1/reservations/{}/confirm", encode(id));
        let body = json!({ "payment_ref": payment_ref });
        self.request(Method::POST, &path, &self.storefront, Some(body))
    }

    /// `POST /v1/reservations/{id}/cancel`.
    pub fn cancel(&self, id: &str) -> Result<Request<Full<Bytes>>, ApiError> {
        let path = format!("/v1/reservations/{}/cancel", encode(id));
        self.request(Method::POST, &path, &self.storefront, None)
    }
}

/// Percent-encodes everything outside RFC 3986 unreserved characters (ids are opaque).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The problem `type` suffix (after the last `/`), restricted to `[a-z0-9-]{1,40}`.
fn problem_suffix(body: &[u8]) -> Option<String> {
    let p: Problem = serde_json::from_slice(body).ok()?;
    let t = p.kind?;
    let suffix = t.rsplit('/').next().unwrap_or(&t).to_ascii_lowercase();
    let ok = !suffix.is_empty()
        && suffix.len() <= 40
        && suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(suffix)
}

/// Classifies an answer: 2xx is ok, 409 `sold-out` is a sold-out, anything else an error kind
/// `http_<status>` with the problem type appended when the body names one.
pub fn classify(status: StatusCode, body: &[u8]) -> Outcome {
    if status.is_success() {
        return Outcome::Ok;
    }
    let suffix = problem_suffix(body);
    if status == StatusCode::CONFLICT && suffix.as_deref() == Some("sold-out") {
        return Outcome::SoldOut;
    }
    match suffix {
        Some(s) => Outcome::Error(format!("http_{}_{s}", status.as_u16())),
        None => Outcome::Error(format!("http_{}", status.as_u16())),
    }
}

/// The reservation `id` from a 201 answer.
pub fn reservation_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Held {
        id: serde_json::Value,
    }
    let held: Held = serde_json::from_slice(body).ok()?;
    match held.id {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The counts from a SKU view.
pub fn sku_counts(body: &[u8]) -> Option<SkuCounts> {
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(StatusCode::CREATED, b"{}"), Outcome::Ok);
        let sold = br#"{"type":"https://flashsale.dev/problems/sold-out","status":409}"#;
        assert_eq!(classify(StatusCode::CONFLICT, sold), Outcome::SoldOut);
        let state = br#"{"type":"/problems/invalid-state"}"#;
        assert_eq!(
            classify(StatusCode::CONFLICT, state),
            Outcome::Error("http_409_invalid-state".into())
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b"oops"),
            Outcome::Error("http_503".into())
        );
        let weird = br#"{"type":"x/<script>"}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, weird),
            Outcome::Error("http_400".into())
        );
    }

    #[test]
    fn bodies_are_parsed() {
        assert_eq!(
            reservation_id(br#"{"id":"r-1","status":"held"}"#).as_deref(),
            Some("r-1")
        );
        assert_eq!(reservation_id(br#"{"id":""}"#), None);
        let v = br#"{"sku":"a","total":10,"available":7,"reserved":2,"sold":1,"name":"x"}"#;
        assert_eq!(
            sku_counts(v),
            Some(SkuCounts {
                total: 10,
                available: 7,
                reserved: 2,
                sold: 1
            })
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn requests_carry_tokens() {
        let api = Api::new("127.0.0.1:1", "s", Some("a")).unwrap();
        let r = api.reserve("b1", "sku", 1, Some("k1")).unwrap();
        assert_eq!(r.headers()[AUTHORIZATION], "Bearer s");
        assert_eq!(r.headers()["idempotency-key"], "k1");
        let r = api
            .put_sku(
                "sku",
                &SkuSpec {
                    name: "n".into(),
                    price_cents: 1,
                    stock: 2,
                    reservation_ttl_s: 3,
                },
            )
            .unwrap();
        assert_eq!(r.headers()[AUTHORIZATION], "Bearer a");
        let no_admin = Api::new("h", "s", None).unwrap();
        let spec = SkuSpec {
            name: "n".into(),
            price_cents: 1,
            stock: 2,
            reservation_ttl_s: 3,
        };
        assert!(no_admin.put_sku("x", &spec).is_err());
    }
}
