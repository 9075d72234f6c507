//! Read views returned to callers: what a SKU, a reservation or an order looks like now.

use flashsale_protocol::{BuyerId, Line, OrderId, ReleaseReason, ReservationId, SkuId};

/// A SKU's settings and stock counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuView {
    /// The SKU.
    pub sku: SkuId,
    /// Display name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: u64,
    /// available + reserved + sold.
    pub total: u64,
    /// Units that can be reserved now.
    pub available: u64,
    /// Units held by reservations.
    pub reserved: u64,
    /// Units confirmed into orders.
    pub sold: u64,
    /// Most units one buyer may hold and buy together.
    pub per_buyer_limit: Option<u32>,
    /// Sale window start, Unix ms.
    pub sale_starts_at_ms: Option<u64>,
    /// Sale window end, Unix ms.
    pub sale_ends_at_ms: Option<u64>,
    /// Reservation TTL in ms.
    pub reservation_ttl_ms: u64,
    /// Longest hold from creation, extensions included, in ms.
    pub max_hold_ms: u64,
    /// Most extensions of one reservation.
    pub max_extensions: u32,
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    /// Stock is held until `expires_at_ms`.
    Held,
    /// Became an order.
    Confirmed,
    /// Cancelled (or rolled back); stock returned.
    Released,
    /// TTL passed; stock returned.
    Expired,
}

impl ReservationStatus {
    /// The contract's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Confirmed => "confirmed",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
        }
    }
}

/// A reservation, all its lines (across shards) included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationView {
    /// The reservation.
    pub id: ReservationId,
    /// Current status.
    pub status: ReservationStatus,
    /// Who holds it.
    pub buyer: BuyerId,
    /// All lines, in request order.
    pub lines: Vec<Line>,
    /// When it was made, Unix ms.
    pub created_at_ms: u64,
    /// When the hold lapses, Unix ms.
    pub expires_at_ms: u64,
    /// The order, once confirmed.
    pub order: Option<OrderId>,
    /// Why it was released, once released or expired.
    pub release_reason: Option<ReleaseReason>,
    /// How many times its expiry was extended.
    pub extensions: u32,
}

/// A confirmed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    /// The order.
    pub id: OrderId,
    /// The reservation it came from.
    pub reservation: ReservationId,
    /// The buyer.
    pub buyer: BuyerId,
    /// Lines with unit prices.
    pub lines: Vec<Line>,
    /// Sum of qty × unit price, in cents.
    pub total_cents: u64,
    /// The storefront's payment reference.
    pub payment_ref: String,
    /// When it was confirmed, Unix ms.
    pub created_at_ms: u64,
}
