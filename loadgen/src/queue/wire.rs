//! The waiting room's HTTP calls as the contract states them ("Waiting room"): request
//! builders and the ticket a join or a poll answers.

use hyper::header::HeaderValue;
use hyper::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::request::{bearer, encode, HttpRequest, Requests, Reserve, ReserveLine};

pub use crate::request::PASS_HEADER;

/// Why a request could not be built (see [`crate::request`]).
pub use crate::request::RequestError as WireError;

/// Builds the queue scenario's requests (through [`crate::request::Requests`], the one
/// request builder).
#[derive(Debug, Clone)]
pub struct QueueApi {
    requests: Requests,
    storefront: HeaderValue,
    admin: HeaderValue,
    queue_path: String,
}

impl QueueApi {
    /// Requests to `authority` about `queue`, with the storefront and admin tokens.
    pub fn new(authority: &str, token: &str, admin: &str, queue: &str) -> Result<Self, WireError> {
        Ok(QueueApi {
            requests: Requests::new(authority)?,
            storefront: bearer(token, "--token")?,
            admin: bearer(admin, "--admin-token")?,
            queue_path: format!("/v1/queues/{}", encode(queue)),
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        admin: bool,
        body: Option<Value>,
    ) -> Result<HttpRequest, WireError> {
        let auth = if admin { &self.admin } else { &self.storefront };
        self.requests.build(method, path, Some(auth), body.as_ref())
    }

    /// `PUT /v1/skus/{sku}` (admin).
    pub fn put_sku(
        &self,
        sku: &str,
        stock: u64,
        price_cents: u64,
        reservation_ttl_s: u64,
    ) -> Result<HttpRequest, WireError> {
        let body = json!({
            "name": "loadgen queue",
            "price_cents": price_cents,
            "stock": stock,
            "reservation_ttl_s": reservation_ttl_s,
        });
        let path = format!("/v1/skus/{}", encode(sku));
        self.request(Method::PUT, &path, true, Some(body))
    }

    /// `GET /v1/skus/{sku}`.
    pub fn get_sku(&self, sku: &str) -> Result<HttpRequest, WireError> {
        let path = format!("/v1/skus/{}", encode(sku));
        self.request(Method::GET, &path, false, None)
    }

    /// `PUT /v1/queues/{queue}` (admin) with the queue's settings.
    pub fn put_queue(&self, settings: Value) -> Result<HttpRequest, WireError> {
        self.request(Method::PUT, &self.queue_path, true, Some(settings))
    }

    /// `GET /v1/queues/{queue}` (admin): the configuration and counts.
    pub fn get_queue(&self) -> Result<HttpRequest, WireError> {
        self.request(Method::GET, &self.queue_path, true, None)
    }

    /// `POST /v1/queues/{queue}/join {buyer}`.
    pub fn join(&self, buyer: &str) -> Result<HttpRequest, WireError> {
        let path = format!("{}/join", self.queue_path);
        self.request(Method::POST, &path, false, Some(json!({ "buyer": buyer })))
    }

    /// `GET /v1/queues/{queue}/tickets/{ticket}` (a poll).
    pub fn poll(&self, ticket: &str) -> Result<HttpRequest, WireError> {
        let path = format!("{}/tickets/{}", self.queue_path, encode(ticket));
        self.request(Method::GET, &path, false, None)
    }

    /// `POST /v1/reservations` of `qty` units of `sku` with `pass` in `Flashsale-Pass` (none:
    /// no header) and `idempotency_key` (none: no header; a buyer that may send it again to a
    /// new leader gives one).
    pub fn reserve(
        &self,
        buyer: &str,
        sku: &str,
        qty: u64,
        pass: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<HttpRequest, WireError> {
        let lines = [ReserveLine { sku, qty }];
        let reserve = Reserve {
            buyer,
            lines: &lines,
            idempotency_key,
            pass,
        };
        self.requests.reserve(&self.storefront, &reserve)
    }

    /// `POST /v1/reservations/{id}/confirm`.
    pub fn confirm(&self, id: &str, payment_ref: &str) -> Result<HttpRequest, WireError> {
        self.requests.confirm(&self.storefront, id, payment_ref)
    }

    /// `POST /v1/reservations/{id}/cancel`.
    pub fn cancel(&self, id: &str) -> Result<HttpRequest, WireError> {
        self.requests.cancel(&self.storefront, id)
    }
}

/// A ticket's status as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for admission (or the start).
    Waiting,
    /// Admitted: the pass may reserve.
    Admitted,
    /// Waiting, but nothing is unclaimed now.
    SoldOut,
    /// The pass bought.
    Spent,
    /// The pass expired.
    Expired,
}

/// A ticket as a join or a poll returns it (fields the scenario uses).
#[derive(Debug, Clone, Deserialize)]
pub struct TicketAnswer {
    /// `tkt_<n>`.
    pub ticket: String,
    /// Its status.
    pub status: Status,
    /// When to poll again, ms.
    #[serde(default)]
    pub poll_after_ms: Option<u64>,
    /// The pass (admitted).
    #[serde(default)]
    pub pass: Option<String>,
    /// When the ticket was admitted (RFC 3339).
    #[serde(default)]
    pub admitted_at: Option<String>,
    /// Place in the admission order, 1 = first.
    #[serde(default)]
    pub admission: Option<u64>,
}

impl TicketAnswer {
    /// Parses a join's or a poll's body.
    pub fn parse(body: &[u8]) -> Option<TicketAnswer> {
        serde_json::from_slice(body).ok()
    }

    /// The ticket number (join order on the server, from 1).
    pub fn number(&self) -> Option<u64> {
        self.ticket.strip_prefix("tkt_")?.parse().ok()
    }

    /// `admitted_at` in Unix ms.
    pub fn admitted_at_ms(&self) -> Option<u64> {
        parse_rfc3339_ms(self.admitted_at.as_deref()?)
    }
}

/// Unix ms of an RFC 3339 time.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// RFC 3339 (UTC, ms) of Unix ms.
pub fn format_rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The queue view's fields the monitor uses.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct QueueCounts {
    /// Tickets ever issued.
    pub joined: u64,
    /// Tickets waiting.
    pub waiting: u64,
    /// Live passes.
    pub admitted: u64,
    /// Of those, passes holding a reservation.
    pub holding: u64,
    /// Passes spent by a confirm.
    pub spent: u64,
    /// Passes expired.
    pub expired: u64,
}

/// `GET /v1/queues/{queue}` as the monitor reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueAnswer {
    /// `scheduled`, `open` or `sold_out`.
    pub status: String,
    /// The counts.
    #[serde(flatten)]
    pub counts: QueueCounts,
}

impl QueueAnswer {
    /// Parses the queue view.
    pub fn parse(body: &[u8]) -> Option<QueueAnswer> {
        serde_json::from_slice(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_and_times_parse() {
        use hyper::header::AUTHORIZATION;
        let t = TicketAnswer::parse(
            br#"{"ticket":"tkt_12","queue":"q","buyer":"b","status":"admitted","pass":"p.s",
                "pass_expires_at":"2026-11-21T10:00:10.250Z","admitted_at":"2026-11-21T10:00:00.250Z",
                "admission":3}"#,
        )
        .unwrap();
        assert_eq!(
            (t.number(), t.status, t.admission),
            (Some(12), Status::Admitted, Some(3))
        );
        let ms = t.admitted_at_ms().unwrap();
        assert_eq!(ms % 1_000, 250);
        assert_eq!(format_rfc3339_ms(ms), "2026-11-21T10:00:00.25Z");
        assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Some(ms));
        let w =
            TicketAnswer::parse(br#"{"ticket":"tkt_1","status":"sold_out","poll_after_ms":5000}"#)
                .unwrap();
        assert_eq!((w.status, w.poll_after_ms), (Status::SoldOut, Some(5_000)));
        let api = QueueApi::new("127.0.0.1:1", "s", "a", "drop").unwrap();
        let r = api.reserve("b", "sku", 1, Some("p.s"), None).unwrap();
        assert_eq!(r.headers()[PASS_HEADER], "p.s");
        assert_eq!(r.headers()[AUTHORIZATION], "Bearer s");
        assert_eq!(
            api.get_queue().unwrap().headers()[AUTHORIZATION],
            "Bearer a"
        );
        assert_eq!(
            api.poll("tkt_3").unwrap().uri().path(),
            "/v1/queues/drop/tickets/tkt_3"
        );
    }
}
