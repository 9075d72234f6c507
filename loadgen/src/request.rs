//! The one builder of the load generator's HTTP requests (the measured buyers, the queue
//! scenario and the chaos workload all send theirs through it): a target's `Host`, a bearer
//! credential, a JSON body, and the contract's reservation calls with their headers
//! (`Idempotency-Key`, `Flashsale-Pass`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use serde_json::{json, Value};

pub use flashsale_client::encode;

/// The header carrying a waiting-room pass on reservations.
pub const PASS_HEADER: &str = "flashsale-pass";

/// The header carrying an idempotency key on reservations.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// A request as the load generator sends it.
pub type HttpRequest = Request<Full<Bytes>>;

/// Why a request could not be built (a token, authority, key or pass that is not a valid
/// header value).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A value is not a valid header value.
    #[error("{what} is not a valid HTTP header value")]
    Header {
        /// Which value.
        what: &'static str,
    },
    /// The request could not be assembled.
    #[error("building request: {0}")]
    Build(#[from] hyper::http::Error),
}

/// `Bearer <token>` as an `Authorization` value; `what` names the token in the error.
pub fn bearer(token: &str, what: &'static str) -> Result<HeaderValue, RequestError> {
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| RequestError::Header { what })
}

/// One line of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveLine<'a> {
    /// The SKU.
    pub sku: &'a str,
    /// Units.
    pub qty: u64,
}

/// A `POST /v1/reservations` as the contract states it.
#[derive(Debug, Clone, Copy)]
pub struct Reserve<'a> {
    /// The buyer the storefront acts for.
    pub buyer: &'a str,
    /// The lines.
    pub lines: &'a [ReserveLine<'a>],
    /// `Idempotency-Key` (none: no header).
    pub idempotency_key: Option<&'a str>,
    /// `Flashsale-Pass` (none: no header).
    pub pass: Option<&'a str>,
}

/// Builds requests to one target (its `Host`).
#[derive(Debug, Clone)]
pub struct Requests {
    host: HeaderValue,
}

impl Requests {
    /// Requests to `authority` (`host[:port]`).
    pub fn new(authority: &str) -> Result<Requests, RequestError> {
        Ok(Requests {
            host: HeaderValue::from_str(authority).map_err(|_| RequestError::Header {
                what: "the target authority",
            })?,
        })
    }

    /// `method path` with `auth` (none: no `Authorization`) and `body` as JSON.
    pub fn build(
        &self,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
        body: Option<&Value>,
    ) -> Result<HttpRequest, RequestError> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if let Some(auth) = auth {
            b = b.header(AUTHORIZATION, auth.clone());
        }
        let body = match body {
            Some(v) => {
                b = b.header(CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        Ok(b.body(Full::new(body))?)
    }

    /// `POST /v1/reservations` with `auth`.
    pub fn reserve(
        &self,
        auth: &HeaderValue,
        reserve: &Reserve<'_>,
    ) -> Result<HttpRequest, RequestError> {
        let lines: Vec<Value> = reserve
            .lines
            .iter()
            .map(|l| json!({"sku": l.sku, "qty": l.qty}))
            .collect();
        let body = json!({"buyer": reserve.buyer, "lines": lines});
        let mut req = self.build(Method::POST, "/v1/reservations", Some(auth), Some(&body))?;
        for (name, value, what) in [
            (
                IDEMPOTENCY_KEY_HEADER,
                reserve.idempotency_key,
                "Idempotency-Key",
            ),
            (PASS_HEADER, reserve.pass, "the pass"),
        ] {
            if let Some(v) = value {
                let v = HeaderValue::from_str(v).map_err(|_| RequestError::Header { what })?;
                req.headers_mut().insert(name, v);
            }
        }
        Ok(req)
    }

    /// `POST /v1/reservations/{id}/confirm` with `payment_ref`.
    pub fn confirm(
        &self,
        auth: &HeaderValue,
        id: &str,
        payment_ref: &str,
    ) -> Result<HttpRequest, RequestError> {
        let path = format!("/v1/reservations/{}/confirm", encode(id));
        let body = json!({ "payment_ref": payment_ref });
        self.build(Method::POST, &path, Some(auth), Some(&body))
    }

    /// `POST /v1/reservations/{id}/cancel`.
    pub fn cancel(&self, auth: &HeaderValue, id: &str) -> Result<HttpRequest, RequestError> {
        let path = format!("/v1/reservations/{}/cancel", encode(id));
        self.build(Method::POST, &path, Some(auth), None)
    }

    /// `GET /ready` (no credential).
    pub fn ready(&self) -> Result<HttpRequest, RequestError> {
        self.build(Method::GET, "/ready", None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_carry_their_headers_and_lines() {
        let r = Requests::new("127.0.0.1:1").unwrap();
        let auth = bearer("s", "--token").unwrap();
        let lines = [
            ReserveLine { sku: "a", qty: 1 },
            ReserveLine { sku: "b", qty: 2 },
        ];
        let req = r
            .reserve(
                &auth,
                &Reserve {
                    buyer: "b1",
                    lines: &lines,
                    idempotency_key: Some("k1"),
                    pass: Some("p.s"),
                },
            )
            .unwrap();
        assert_eq!(req.headers()[HOST], "127.0.0.1:1");
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer s");
        assert_eq!(req.headers()[IDEMPOTENCY_KEY_HEADER], "k1");
        assert_eq!(req.headers()[PASS_HEADER], "p.s");
        assert_eq!(req.headers()[CONTENT_TYPE], "application/json");
        let plain = Reserve {
            pass: None,
            idempotency_key: None,
            lines: &lines[..1],
            buyer: "b1",
        };
        let req = r.reserve(&auth, &plain).unwrap();
        assert!(req.headers().get(PASS_HEADER).is_none());
        assert!(req.headers().get(IDEMPOTENCY_KEY_HEADER).is_none());
        let bad_key = Reserve {
            idempotency_key: Some("a\nb"),
            ..plain
        };
        assert!(matches!(
            r.reserve(&auth, &bad_key),
            Err(RequestError::Header {
                what: "Idempotency-Key"
            })
        ));
        let ready = r.ready().unwrap();
        assert!(ready.headers().get(AUTHORIZATION).is_none());
        assert_eq!(ready.uri().path(), "/ready");
        assert_eq!(
            r.cancel(&auth, "res_1/x").unwrap().uri().path(),
            "/v1/reservations/res_1%2Fx/cancel"
        );
        assert!(bearer("a b\n", "--token").is_err());
        assert!(Requests::new("bad host\n").is_err());
    }
}
