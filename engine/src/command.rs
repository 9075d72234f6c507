//! What callers ask of the engine, and why it can refuse.

use flashsale_protocol::{BuyerId, ReservationId, ScopedKey, SkuId};

use crate::view::ReservationStatus;

/// A request to hold stock for a buyer: one or more lines, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    /// Who is buying.
    pub buyer: BuyerId,
    /// `(sku, qty)` lines; at most [`flashsale_protocol::MAX_LINES`], no SKU twice, qty ≥ 1.
    pub lines: Vec<(SkuId, u32)>,
    /// Makes retries return the original reservation; scoped to its caller.
    pub idempotency_key: Option<ScopedKey>,
    /// How long to hold, in ms; `None` = the shortest `reservation_ttl_ms` of the lines' SKUs
    /// (the cart rule), which is also the most it may be.
    pub ttl_ms: Option<u64>,
}

/// Which per-SKU bound of a hold a request went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldLimit {
    /// `reservation_ttl_ms`: the most a new reservation may hold (ms).
    ReservationTtl,
    /// `max_hold_ms`: the longest hold from creation, extensions included (ms).
    MaxHold,
    /// `max_extensions`: the most extensions of one reservation (a count).
    MaxExtensions,
}

impl HoldLimit {
    /// The API's name of the SKU field.
    pub fn field(self) -> &'static str {
        match self {
            HoldLimit::ReservationTtl => "reservation_ttl_s",
            HoldLimit::MaxHold => "max_hold_s",
            HoldLimit::MaxExtensions => "max_extensions",
        }
    }
}

/// Why the engine refused a command. Maps one-to-one onto the HTTP contract's problem types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Unknown SKU.
    #[error("unknown SKU {0}")]
    SkuNotFound(SkuId),
    /// Unknown reservation.
    #[error("unknown reservation {0}")]
    ReservationNotFound(ReservationId),
    /// Unknown order.
    #[error("unknown order {0}")]
    OrderNotFound(String),
    /// Not enough stock for a line.
    #[error("SKU {sku} is sold out ({available} available)")]
    SoldOut {
        /// The SKU that ran out.
        sku: SkuId,
        /// Units available when refused.
        available: u64,
    },
    /// Outside the SKU's sale window.
    #[error("the sale of {sku} is not open")]
    SaleNotOpen {
        /// The SKU.
        sku: SkuId,
        /// Window start, Unix ms.
        starts_at_ms: Option<u64>,
        /// Window end, Unix ms.
        ends_at_ms: Option<u64>,
    },
    /// The buyer would exceed the SKU's per-buyer limit (held + bought + requested).
    #[error("buyer limit of {limit} for {sku} reached ({already} held or bought)")]
    BuyerLimit {
        /// The SKU.
        sku: SkuId,
        /// The limit.
        limit: u32,
        /// Units the buyer already holds or bought.
        already: u64,
    },
    /// The reservation is not in a state that allows this (e.g. confirm after expiry).
    #[error("reservation {id} is {}", status.as_str())]
    InvalidState {
        /// The reservation.
        id: ReservationId,
        /// Its status.
        status: ReservationStatus,
    },
    /// The idempotency key was used before with a different request.
    #[error("Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    /// A request with the same idempotency key is still in progress; retry after the hint.
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress {
        /// When to retry, in ms.
        retry_after_ms: u64,
    },
    /// A valid change the SKU's current stock does not allow: a total below the units already
    /// reserved or sold, or a restock beyond the maximum stock.
    #[error("{detail}")]
    StockConflict {
        /// The SKU.
        sku: SkuId,
        /// What conflicts, with the numbers.
        detail: String,
    },
    /// A hold past a SKU's bound: a `ttl_ms` above a line's reservation TTL, or an extension
    /// past the maximum hold or number of extensions. Nothing changed.
    #[error("{detail}")]
    HoldLimit {
        /// The SKU whose bound it is (the strictest of the reservation's lines).
        sku: SkuId,
        /// Which bound.
        limit: HoldLimit,
        /// Its value: ms for the hold bounds, a count for extensions.
        value: u64,
        /// What was refused, with the numbers.
        detail: String,
    },
    /// Well-formed but invalid input (qty 0, duplicate lines, a value beyond its limit…).
    #[error("{0}")]
    Invalid(String),
    /// The log cannot be made durable right now; nothing was acknowledged.
    #[error("log unavailable: {0}")]
    Unavailable(String),
    /// An internal bug: the detail is for the log, never for the client.
    #[error("internal error: {0}")]
    Internal(String),
    /// The engine is shutting down or a shard queue is full.
    #[error("engine busy: {0}")]
    Busy(String),
}
