//! Error answers (RFC 9457 problem details, schema `Problem` of `docs/openapi.yaml`) as a typed
//! [`Problem`]: its [`ProblemKind`] from the `type`, and the documented extension members.

use serde_json::Value;

/// Problem types are `https://flashsale.dev/problems/<suffix>`.
pub const PROBLEM_TYPE_BASE: &str = "https://flashsale.dev/problems/";

/// The documented problem types (schema `Problem.type`), and `Other` for anything else (an
/// unknown type, or a non-problem error body from a proxy).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// 400: the body or query is not valid JSON for the endpoint.
    Malformed,
    /// 401: no or unknown credentials.
    Unauthenticated,
    /// 403: the credentials may not do this.
    Forbidden,
    /// 403: outside the SKU's sale window.
    SaleNotOpen,
    /// 404: no such SKU, reservation, order or queue.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 408 / 504: the server gave up waiting.
    Timeout,
    /// 409: not enough units.
    SoldOut,
    /// 409: the reservation (or SKU) is not in a state that allows this.
    InvalidState,
    /// 409/422: an `Idempotency-Key` reused with another request.
    IdempotencyMismatch,
    /// 409: the first request with this key is still running.
    IdempotencyInProgress,
    /// 413.
    TooLarge,
    /// 422: a value out of range (`limit` / `limit_name` name which).
    Invalid,
    /// 409/422: the buyer's per-SKU limit.
    BuyerLimit,
    /// 429.
    RateLimited,
    /// 500.
    Internal,
    /// 503: overloaded or shutting down.
    Unavailable,
    /// 503: this node is a standby; `leader_url` names the leader.
    NotLeader,
    /// 403: the SKU sells through a waiting room and no pass was sent.
    PassRequired,
    /// 403: the waiting-room pass was refused (`reason`).
    PassInvalid,
    /// 409: the queue is not open for joins.
    QueueClosed,
    /// Any other `type` (its suffix or URI), or the status reason for a non-problem body.
    Other(String),
}

impl ProblemKind {
    /// The kind of a `type` URI (or bare suffix).
    pub fn from_type(uri: &str) -> ProblemKind {
        let suffix = uri.strip_prefix(PROBLEM_TYPE_BASE).unwrap_or(uri);
        match suffix {
            "malformed" => ProblemKind::Malformed,
            "unauthenticated" => ProblemKind::Unauthenticated,
            "forbidden" => ProblemKind::Forbidden,
            "sale-not-open" => ProblemKind::SaleNotOpen,
            "not-found" => ProblemKind::NotFound,
            "method-not-allowed" => ProblemKind::MethodNotAllowed,
            "timeout" => ProblemKind::Timeout,
            "sold-out" => ProblemKind::SoldOut,
            "invalid-state" => ProblemKind::InvalidState,
            "idempotency-mismatch" => ProblemKind::IdempotencyMismatch,
            "idempotency-in-progress" => ProblemKind::IdempotencyInProgress,
            "too-large" => ProblemKind::TooLarge,
            "invalid" => ProblemKind::Invalid,
            "buyer-limit" => ProblemKind::BuyerLimit,
            "rate-limited" => ProblemKind::RateLimited,
            "internal" => ProblemKind::Internal,
            "unavailable" => ProblemKind::Unavailable,
            "not-leader" => ProblemKind::NotLeader,
            "pass-required" => ProblemKind::PassRequired,
            "pass-invalid" => ProblemKind::PassInvalid,
            "queue-closed" => ProblemKind::QueueClosed,
            other => ProblemKind::Other(other.to_string()),
        }
    }

    /// The short name shown in messages: the `type`'s suffix (`sold-out`).
    pub fn as_str(&self) -> &str {
        match self {
            ProblemKind::Malformed => "malformed",
            ProblemKind::Unauthenticated => "unauthenticated",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::SaleNotOpen => "sale-not-open",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::Timeout => "timeout",
            ProblemKind::SoldOut => "sold-out",
            ProblemKind::InvalidState => "invalid-state",
            ProblemKind::IdempotencyMismatch => "idempotency-mismatch",
            ProblemKind::IdempotencyInProgress => "idempotency-in-progress",
            ProblemKind::TooLarge => "too-large",
            ProblemKind::Invalid => "invalid",
            ProblemKind::BuyerLimit => "buyer-limit",
            ProblemKind::RateLimited => "rate-limited",
            ProblemKind::Internal => "internal",
            ProblemKind::Unavailable => "unavailable",
            ProblemKind::NotLeader => "not-leader",
            ProblemKind::PassRequired => "pass-required",
            ProblemKind::PassInvalid => "pass-invalid",
            ProblemKind::QueueClosed => "queue-closed",
            ProblemKind::Other(s) => s,
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: status, kind, the server's explanation and the documented extension
/// members (absent ones are `None`; the whole body stays in [`Problem::body`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// HTTP status code.
    pub status: u16,
    /// What kind of problem (from `type`).
    pub kind: ProblemKind,
    /// The server's explanation (`detail`, else `title`, else the start of the body).
    pub detail: String,
    /// The `Retry-After` header, if sent.
    pub retry_after: Option<String>,
    /// sold-out, buyer-limit, sale-not-open, not-found, invalid: the SKU at fault.
    pub sku: Option<String>,
    /// sold-out: units available when refused.
    pub available: Option<u64>,
    /// buyer-limit: the per-buyer limit; invalid: the limit a `ttl_s` or extension passed.
    pub limit: Option<u64>,
    /// invalid: which limit (`reservation_ttl_s`, `max_hold_s`, `max_extensions`).
    pub limit_name: Option<String>,
    /// not-leader: where the leader serves (`None` while nobody holds the lease).
    pub leader_url: Option<String>,
    /// invalid-state: the reservation's status now.
    pub reservation_status: Option<String>,
    /// The whole body (`Value::Null` if it was not JSON).
    pub body: Value,
}

impl Problem {
    /// The problem for a non-2xx answer with this `status`, parsed `json` body (if any), raw
    /// body and `Retry-After`.
    pub fn from_answer(
        status: hyper::StatusCode,
        json: Option<Value>,
        raw: &[u8],
        retry_after: Option<String>,
    ) -> Problem {
        let body = json.unwrap_or(Value::Null);
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let num = |k: &str| body.get(k).and_then(Value::as_u64);
        let kind = match body.get("type").and_then(Value::as_str) {
            Some(t) => ProblemKind::from_type(t),
            None => ProblemKind::Other(
                status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_lowercase()
                    .replace(' ', "-"),
            ),
        };
        let detail = text("detail")
            .or_else(|| text("title"))
            .unwrap_or_else(|| snippet(raw));
        Problem {
            status: status.as_u16(),
            kind,
            detail,
            retry_after,
            sku: text("sku"),
            available: num("available"),
            limit: num("limit"),
            limit_name: text("limit_name"),
            leader_url: text("leader_url"),
            reservation_status: text("reservation_status"),
            body,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind, self.detail)?;
        if let Some(s) = &self.retry_after {
            write!(f, " (retry after {s} s)")?;
        }
        Ok(())
    }
}

/// The first line of a body, at most 200 characters, for error messages.
pub(crate) fn snippet(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return "(empty body)".into();
    }
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for name in [
            "malformed",
            "sold-out",
            "invalid-state",
            "not-leader",
            "idempotency-mismatch",
            "queue-closed",
        ] {
            let k = ProblemKind::from_type(&format!("{PROBLEM_TYPE_BASE}{name}"));
            assert!(!matches!(k, ProblemKind::Other(_)), "{name}");
            assert_eq!(k.as_str(), name);
        }
        assert_eq!(
            ProblemKind::from_type("urn:x"),
            ProblemKind::Other("urn:x".into())
        );
    }

    #[test]
    fn extension_members_are_typed() {
        let body = serde_json::json!({
            "type": "https://flashsale.dev/problems/invalid", "title": "Invalid", "status": 422,
            "detail": "past max_hold_s", "sku": "tee", "limit": 3600, "limit_name": "max_hold_s"
        });
        let p = Problem::from_answer(StatusCode::UNPROCESSABLE_ENTITY, Some(body), b"", None);
        assert_eq!(p.kind, ProblemKind::Invalid);
        assert_eq!(p.limit, Some(3600));
        assert_eq!(p.limit_name.as_deref(), Some("max_hold_s"));
        assert_eq!(p.sku.as_deref(), Some("tee"));
        assert_eq!(p.to_string(), "422 invalid: past max_hold_s");
    }
}
