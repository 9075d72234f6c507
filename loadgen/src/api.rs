//! The measured hot path of the load: pre-built `reserve`, `confirm` and `cancel` requests for
//! a buyer's own keep-alive connection ([`crate::conn::Conn`]), and the classification of their
//! answers.
//!
//! Why hand-rolled rather than `flashsale-client` (which set-up, counts and checks use): each
//! buyer owns exactly one HTTP/1.1 connection bound to its source address (10K+ of them, see
//! `source_addrs`), opened during ramp-up and never pooled, so a latency is one exchange on
//! one known socket; answers are classified from the raw body without deserializing a whole
//! reservation; and a reserve is never sent again by a library (a retry would hide the
//! server's refusals and skew the oversell ledger). The one resend is the buyer's own, after
//! a move to a new HA leader, with the same Idempotency-Key ([`crate::follow`]).

pub use crate::request::encode;

use hyper::header::HeaderValue;
use hyper::StatusCode;
use serde::Deserialize;

use crate::request::{bearer, HttpRequest, Requests, Reserve, ReserveLine};

/// Why a request could not be built (see [`crate::request`]).
pub use crate::request::RequestError as ApiError;

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

/// Builds the hot path's contract requests with the storefront token (through
/// [`crate::request::Requests`], the one request builder).
#[derive(Debug, Clone)]
pub struct Api {
    requests: Requests,
    storefront: HeaderValue,
}

impl Api {
    /// Request builders for `authority` with the storefront token.
    pub fn new(authority: &str, token: &str) -> Result<Api, ApiError> {
        Ok(Api {
            requests: Requests::new(authority)?,
            storefront: bearer(token, "--token")?,
        })
    }

    /// `POST /v1/reservations` for one line.
    pub fn reserve(
        &self,
        buyer: &str,
        sku: &str,
        qty: u64,
        idempotency_key: Option<&str>,
    ) -> Result<HttpRequest, ApiError> {
        let lines = [ReserveLine { sku, qty }];
        let reserve = Reserve {
            buyer,
            lines: &lines,
            idempotency_key,
            pass: None,
        };
        self.requests.reserve(&self.storefront, &reserve)
    }

    /// `POST /v1/reservations/{id}/confirm`.
    pub fn confirm(&self, id: &str, payment_ref: &str) -> Result<HttpRequest, ApiError> {
        self.requests.confirm(&self.storefront, id, payment_ref)
    }

    /// `POST /v1/reservations/{id}/cancel`.
    pub fn cancel(&self, id: &str) -> Result<HttpRequest, ApiError> {
        self.requests.cancel(&self.storefront, id)
    }
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
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn requests_carry_tokens() {
        use hyper::header::{AUTHORIZATION, HOST};
        let api = Api::new("127.0.0.1:1", "s").unwrap();
        let r = api.reserve("b1", "sku", 1, Some("k1")).unwrap();
        assert_eq!(r.headers()[AUTHORIZATION], "Bearer s");
        assert_eq!(r.headers()[HOST], "127.0.0.1:1");
        assert_eq!(r.headers()["idempotency-key"], "k1");
        let r = api.cancel("res_1/x").unwrap();
        assert_eq!(r.uri().path(), "/v1/reservations/res_1%2Fx/cancel");
        assert!(Api::new("h", "a b\n").is_err());
    }
}
