//! The engine's events: the facts a shard logs and replays. State is a fold over these.

use crate::ids::{BuyerId, OrderId, ReservationId, ScopedKey, ShardId, SkuId};
use crate::payment_ref::PaymentRef;

pub(crate) mod direct;

/// Everything an admin sets on a SKU. `stock` is the total units ever sellable
/// (available + reserved + sold).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct SkuSpec {
    /// The SKU.
    pub sku: SkuId,
    /// Display name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: u64,
    /// Total stock (available + reserved + sold).
    pub stock: u64,
    /// Most units one buyer may hold and buy together; `None` = no limit.
    pub per_buyer_limit: Option<u32>,
    /// Sale opens at this Unix time in ms; `None` = open now.
    pub sale_starts_at_ms: Option<u64>,
    /// Sale closes at this Unix time in ms; `None` = never.
    pub sale_ends_at_ms: Option<u64>,
    /// How long a reservation holds stock before it expires, in ms.
    pub reservation_ttl_ms: u64,
    /// Longest a reservation with a line of this SKU may be held, from its creation,
    /// extensions included, in ms (at least `reservation_ttl_ms`).
    pub max_hold_ms: u64,
    /// Most times a reservation with a line of this SKU may be extended.
    pub max_extensions: u32,
}

/// Default longest hold of a SKU whose spec does not set one: the larger of its reservation
/// TTL and this (one hour).
pub const DEFAULT_MAX_HOLD_MS: u64 = 3_600_000;

/// Default number of extensions of a SKU whose spec does not set one.
pub const DEFAULT_MAX_EXTENSIONS: u32 = 3;

/// The default longest hold for a SKU with this reservation TTL.
pub fn default_max_hold_ms(reservation_ttl_ms: u64) -> u64 {
    reservation_ttl_ms.max(DEFAULT_MAX_HOLD_MS)
}

/// One line of a reservation as logged: the SKU, the units and the unit price at reservation.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct Line {
    /// The SKU.
    pub sku: SkuId,
    /// Units held.
    pub qty: u32,
    /// Unit price in cents when the reservation was made.
    pub unit_price_cents: u64,
}

/// Why held stock went back to `available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum ReleaseReason {
    /// The buyer (storefront) cancelled.
    Cancelled,
    /// The reservation's TTL passed.
    Expired,
    /// A multi-shard reservation failed on another shard; this part was rolled back.
    Aborted,
}

/// Membership of a reservation part in a reservation that spans several shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct Group {
    /// Bit `i` set = shard `i` holds a part of this reservation. The home shard is `id.shard()`.
    pub shards_mask: u64,
    /// Bit `i` set = line `i` of the original request is held by this part (lines of a part
    /// are stored in request order), so the full reservation can be reassembled in request order.
    pub line_positions: u64,
}

/// A fact logged by a shard. Applying the same events in the same order yields the same state.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum Event {
    /// A SKU was created or its settings replaced.
    SkuUpserted {
        /// The new settings.
        spec: SkuSpec,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// Units were added to a SKU's total stock.
    Restocked {
        /// The SKU.
        sku: SkuId,
        /// Units added.
        qty: u64,
        /// The caller's idempotency key and request hash (the `qty`), for a keyed restock
        /// (ADR 0015, addendum): a retry with it answers without adding stock.
        key: Option<RequestKey>,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// Stock was held for a buyer (on this shard: the lines this shard owns).
    Reserved {
        /// The reservation.
        id: ReservationId,
        /// Who holds it.
        buyer: BuyerId,
        /// The lines held on this shard.
        lines: Vec<Line>,
        /// When the hold lapses, Unix ms.
        expires_at_ms: u64,
        /// The client's idempotency key, if any (kept on the home shard).
        idempotency_key: Option<ScopedKey>,
        /// Hash of the full request body, to detect a key reused with another body.
        request_hash: u64,
        /// Set when the reservation spans several shards.
        group: Option<Group>,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A held reservation became an order.
    Confirmed {
        /// The reservation.
        id: ReservationId,
        /// The order it became.
        order: OrderId,
        /// The payment reference the storefront gave (archived as the `String` it was).
        payment_ref: PaymentRef,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A held reservation gave its stock back.
    Released {
        /// The reservation.
        id: ReservationId,
        /// Why.
        reason: ReleaseReason,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A held reservation's expiry moved later (on its home, then on each part).
    Extended {
        /// The reservation.
        id: ReservationId,
        /// The new expiry, Unix ms.
        expires_at_ms: u64,
        /// How many times it has been extended, this time included.
        extensions: u32,
        /// The caller's idempotency key and request hash, on the home shard of a keyed
        /// extension (ADR 0015, addendum): a retry with it answers without a new event.
        key: Option<RequestKey>,
        /// When, Unix ms.
        at_ms: u64,
    },
}

/// An idempotency key scoped to its caller, with the hash of the request it was first sent
/// with (to tell a retry from another request under the same key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct RequestKey {
    /// The caller's key.
    pub key: ScopedKey,
    /// Hash of the request body it was first sent with.
    pub request_hash: u64,
}

/// One record of a shard's write-ahead log.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct LogRecord {
    /// The shard that logged it.
    pub shard: ShardId,
    /// Position in that shard's log, starting at 1, without gaps.
    pub seq: u64,
    /// The fact.
    pub event: Event,
}
