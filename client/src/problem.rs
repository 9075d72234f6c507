//! Error answers (RFC 9457 problem details, schema `Problem` of `docs/openapi.yaml`) as a typed
//! [`Problem`]: its [`ProblemKind`] from the `type`, and the documented extension members.

use serde_json::Value;

/// Problem types are `https://flashsale.dev/problems/<suffix>`.
pub use flashsale_protocol::problem::PROBLEM_TYPE_BASE;
/// The documented problem types (schema `Problem.type`; the list is shared with the server, in
/// `protocol`), and `Other` for anything else (its text is [`Problem::type_name`]).
pub use flashsale_protocol::ProblemKind;

/// An error answer: status, kind, the server's explanation and the documented extension
/// members (absent ones are `None`; the whole body stays in [`Problem::body`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// HTTP status code.
    pub status: u16,
    /// What kind of problem (from `type`).
    pub kind: ProblemKind,
    /// The `type`'s suffix (`sold-out`), or for [`ProblemKind::Other`] the whole `type`, or
    /// the status reason when the body is not a problem.
    pub type_name: String,
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
        let (kind, type_name) = match body.get("type").and_then(Value::as_str) {
            Some(t) => match ProblemKind::from_type(t) {
                ProblemKind::Other => (ProblemKind::Other, t.to_string()),
                known => (known, known.suffix().to_string()),
            },
            None => (
                ProblemKind::Other,
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
            type_name,
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
        write!(f, "{} {}: {}", self.status, self.type_name, self.detail)?;
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
            assert_ne!(k, ProblemKind::Other, "{name}");
            assert_eq!(k.suffix(), name);
        }
        let body = serde_json::json!({"type": "urn:x", "title": "X", "status": 418});
        let p = Problem::from_answer(StatusCode::IM_A_TEAPOT, Some(body), b"", None);
        assert_eq!(
            (p.kind, p.type_name.as_str()),
            (ProblemKind::Other, "urn:x")
        );
        let p = Problem::from_answer(StatusCode::BAD_GATEWAY, None, b"<html>", None);
        assert_eq!(
            (p.kind, p.type_name.as_str()),
            (ProblemKind::Other, "bad-gateway")
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
