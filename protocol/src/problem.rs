//! The problem types of the HTTP API (RFC 9457 `type` URIs, schema `Problem` of
//! `docs/openapi.yaml`): one list for the server that answers them and the clients that read
//! them. Each known kind has a fixed status, `type` suffix and title.

/// Prefix of every problem `type` URI.
pub const PROBLEM_TYPE_BASE: &str = "https://flashsale.dev/problems/";

/// The kinds of problem the API reports, and [`ProblemKind::Other`] for what a client cannot
/// place (an unknown `type`, or an error body that is not a problem, e.g. from a proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// 400: the body (or query) is not valid for the endpoint.
    Malformed,
    /// 401: missing or invalid credentials.
    Unauthenticated,
    /// 403: valid credentials, wrong role.
    Forbidden,
    /// 403: outside the SKU's sale window.
    SaleNotOpen,
    /// 404: unknown route, SKU, reservation, order or queue.
    NotFound,
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 408: the body did not arrive in time.
    Timeout,
    /// 409: not enough stock.
    SoldOut,
    /// 409: the reservation's (or SKU's) state forbids this.
    InvalidState,
    /// 409: an Idempotency-Key reused with another body.
    IdempotencyMismatch,
    /// 409: the first request with this Idempotency-Key is still in progress.
    IdempotencyInProgress,
    /// 413: body above the limit.
    TooLarge,
    /// 422: well-formed but invalid (`limit` / `limit_name` name a limit passed).
    Invalid,
    /// 429: per-buyer limit of the SKU reached.
    BuyerLimit,
    /// 429: request rate limit.
    RateLimited,
    /// 500: a bug; details are logged, not shown.
    Internal,
    /// 503: the log cannot be made durable right now, or the engine is saturated.
    Unavailable,
    /// 503: this node is a standby of a high-availability group (`leader_url` names the
    /// leader, when known).
    NotLeader,
    /// 403: a reservation of a queued SKU came without a waiting-room pass.
    PassRequired,
    /// 403: the waiting-room pass is forged, expired, spent, another buyer's or in use.
    PassInvalid,
    /// 409: the queue does not take joins (not open yet, or full).
    QueueClosed,
    /// Not a kind the server sends: what a client makes of an unknown `type` or a body that is
    /// not a problem (it keeps the text itself).
    Other,
}

impl ProblemKind {
    /// Every kind the server answers (all but [`ProblemKind::Other`]), for documentation checks.
    pub const KNOWN: &'static [ProblemKind] = &[
        ProblemKind::Malformed,
        ProblemKind::Unauthenticated,
        ProblemKind::Forbidden,
        ProblemKind::SaleNotOpen,
        ProblemKind::NotFound,
        ProblemKind::MethodNotAllowed,
        ProblemKind::Timeout,
        ProblemKind::SoldOut,
        ProblemKind::InvalidState,
        ProblemKind::IdempotencyMismatch,
        ProblemKind::IdempotencyInProgress,
        ProblemKind::TooLarge,
        ProblemKind::Invalid,
        ProblemKind::BuyerLimit,
        ProblemKind::RateLimited,
        ProblemKind::Internal,
        ProblemKind::Unavailable,
        ProblemKind::NotLeader,
        ProblemKind::PassRequired,
        ProblemKind::PassInvalid,
        ProblemKind::QueueClosed,
    ];

    /// The HTTP status code (`Other`: 500, a server never sends it).
    pub fn status_code(self) -> u16 {
        match self {
            ProblemKind::Malformed => 400,
            ProblemKind::Unauthenticated => 401,
            ProblemKind::Forbidden
            | ProblemKind::SaleNotOpen
            | ProblemKind::PassRequired
            | ProblemKind::PassInvalid => 403,
            ProblemKind::NotFound => 404,
            ProblemKind::MethodNotAllowed => 405,
            ProblemKind::Timeout => 408,
            ProblemKind::SoldOut
            | ProblemKind::InvalidState
            | ProblemKind::IdempotencyMismatch
            | ProblemKind::IdempotencyInProgress
            | ProblemKind::QueueClosed => 409,
            ProblemKind::TooLarge => 413,
            ProblemKind::Invalid => 422,
            ProblemKind::BuyerLimit | ProblemKind::RateLimited => 429,
            ProblemKind::Internal | ProblemKind::Other => 500,
            ProblemKind::Unavailable | ProblemKind::NotLeader => 503,
        }
    }

    /// The stable suffix of the `type` URI (`sold-out`); `other` for [`ProblemKind::Other`].
    pub fn suffix(self) -> &'static str {
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
            ProblemKind::Other => "other",
        }
    }

    /// A short human title, the same for every occurrence.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::Malformed => "Malformed request",
            ProblemKind::Unauthenticated => "Authentication required",
            ProblemKind::Forbidden => "Forbidden",
            ProblemKind::SaleNotOpen => "Sale not open",
            ProblemKind::NotFound => "Not found",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::Timeout => "Request timeout",
            ProblemKind::SoldOut => "Sold out",
            ProblemKind::InvalidState => "Invalid state",
            ProblemKind::IdempotencyMismatch => "Idempotency key mismatch",
            ProblemKind::IdempotencyInProgress => "Idempotency key in progress",
            ProblemKind::TooLarge => "Request body too large",
            ProblemKind::Invalid => "Invalid request",
            ProblemKind::BuyerLimit => "Buyer limit exceeded",
            ProblemKind::RateLimited => "Rate limited",
            ProblemKind::Internal => "Internal error",
            ProblemKind::Unavailable => "Service unavailable",
            ProblemKind::NotLeader => "Not the leader",
            ProblemKind::PassRequired => "Waiting-room pass required",
            ProblemKind::PassInvalid => "Waiting-room pass invalid",
            ProblemKind::QueueClosed => "Queue closed",
            ProblemKind::Other => "Other error",
        }
    }

    /// The full `type` URI.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_TYPE_BASE}{}", self.suffix())
    }

    /// The kind of a `type` URI or bare suffix; [`ProblemKind::Other`] when it names none.
    pub fn from_type(uri: &str) -> ProblemKind {
        let suffix = uri.strip_prefix(PROBLEM_TYPE_BASE).unwrap_or(uri);
        ProblemKind::KNOWN
            .iter()
            .copied()
            .find(|k| k.suffix() == suffix)
            .unwrap_or(ProblemKind::Other)
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_kind_round_trips_through_its_type_uri() {
        for &k in ProblemKind::KNOWN {
            assert_eq!(ProblemKind::from_type(&k.type_uri()), k);
            assert_eq!(ProblemKind::from_type(k.suffix()), k);
            assert!((400..600).contains(&k.status_code()), "{k}");
        }
        assert_eq!(ProblemKind::from_type("urn:x"), ProblemKind::Other);
        assert_eq!(
            ProblemKind::from_type(&ProblemKind::Other.type_uri()),
            ProblemKind::Other
        );
    }
}
