//! Log records of version 2, as written before SKUs had a maximum hold and a number of
//! extensions and before `Extended` existed: a frozen copy of that layout, read and converted
//! to the current types (the SKU limits take their defaults), so logs written by older builds
//! still replay.

use crate::event::{
    default_max_hold_ms, Event, Group, Line, LogRecord, ReleaseReason, SkuSpec,
    DEFAULT_MAX_EXTENSIONS,
};
use crate::ids::{BuyerId, OrderId, ReservationId, ScopedKey, ShardId, SkuId};

/// The version these types were written with.
pub const VERSION: u16 = 2;

/// `SkuSpec` of version 2.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SkuSpecV2 {
    /// See [`SkuSpec::sku`].
    pub sku: SkuId,
    /// See [`SkuSpec::name`].
    pub name: String,
    /// See [`SkuSpec::price_cents`].
    pub price_cents: u64,
    /// See [`SkuSpec::stock`].
    pub stock: u64,
    /// See [`SkuSpec::per_buyer_limit`].
    pub per_buyer_limit: Option<u32>,
    /// See [`SkuSpec::sale_starts_at_ms`].
    pub sale_starts_at_ms: Option<u64>,
    /// See [`SkuSpec::sale_ends_at_ms`].
    pub sale_ends_at_ms: Option<u64>,
    /// See [`SkuSpec::reservation_ttl_ms`].
    pub reservation_ttl_ms: u64,
}

impl From<SkuSpecV2> for SkuSpec {
    fn from(s: SkuSpecV2) -> SkuSpec {
        SkuSpec {
            max_hold_ms: default_max_hold_ms(s.reservation_ttl_ms),
            max_extensions: DEFAULT_MAX_EXTENSIONS,
            sku: s.sku,
            name: s.name,
            price_cents: s.price_cents,
            stock: s.stock,
            per_buyer_limit: s.per_buyer_limit,
            sale_starts_at_ms: s.sale_starts_at_ms,
            sale_ends_at_ms: s.sale_ends_at_ms,
            reservation_ttl_ms: s.reservation_ttl_ms,
        }
    }
}

/// `Event` of version 2 (the same variants in the same order, without `Extended`).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[allow(missing_docs)]
pub enum EventV2 {
    SkuUpserted {
        spec: SkuSpecV2,
        at_ms: u64,
    },
    Restocked {
        sku: SkuId,
        qty: u64,
        at_ms: u64,
    },
    Reserved {
        id: ReservationId,
        buyer: BuyerId,
        lines: Vec<Line>,
        expires_at_ms: u64,
        idempotency_key: Option<ScopedKey>,
        request_hash: u64,
        group: Option<Group>,
        at_ms: u64,
    },
    Confirmed {
        id: ReservationId,
        order: OrderId,
        payment_ref: String,
        at_ms: u64,
    },
    Released {
        id: ReservationId,
        reason: ReleaseReason,
        at_ms: u64,
    },
}

impl From<EventV2> for Event {
    fn from(e: EventV2) -> Event {
        match e {
            EventV2::SkuUpserted { spec, at_ms } => Event::SkuUpserted {
                spec: spec.into(),
                at_ms,
            },
            EventV2::Restocked { sku, qty, at_ms } => Event::Restocked {
                sku,
                qty,
                key: None,
                at_ms,
            },
            EventV2::Reserved {
                id,
                buyer,
                lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms,
            } => Event::Reserved {
                id,
                buyer,
                lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms,
            },
            EventV2::Confirmed {
                id,
                order,
                payment_ref,
                at_ms,
            } => Event::Confirmed {
                id,
                order,
                payment_ref: payment_ref.into(),
                at_ms,
            },
            EventV2::Released { id, reason, at_ms } => Event::Released { id, reason, at_ms },
        }
    }
}

/// `LogRecord` of version 2.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LogRecordV2 {
    /// See [`LogRecord::shard`].
    pub shard: ShardId,
    /// See [`LogRecord::seq`].
    pub seq: u64,
    /// See [`LogRecord::event`].
    pub event: EventV2,
}

impl From<LogRecordV2> for LogRecord {
    fn from(r: LogRecordV2) -> LogRecord {
        LogRecord {
            shard: r.shard,
            seq: r.seq,
            event: r.event.into(),
        }
    }
}
