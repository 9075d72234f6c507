//! Log records of version 3, as written before an extension or a restock carried its
//! idempotency key: a
//! frozen copy of that layout, read and converted to the current types (an extension or a
//! restock of version 3 has no key), so logs written by older builds still replay.

use crate::event::{Event, Group, Line, LogRecord, ReleaseReason, SkuSpec};
use crate::ids::{BuyerId, OrderId, ReservationId, ScopedKey, ShardId, SkuId};

/// The version these types were written with.
pub const VERSION: u16 = 3;

/// `Event` of version 3 (the same variants in the same order, `Extended` without its key).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[allow(missing_docs)]
pub enum EventV3 {
    SkuUpserted {
        spec: SkuSpec,
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
    Extended {
        id: ReservationId,
        expires_at_ms: u64,
        extensions: u32,
        at_ms: u64,
    },
}

impl From<EventV3> for Event {
    fn from(e: EventV3) -> Event {
        match e {
            EventV3::SkuUpserted { spec, at_ms } => Event::SkuUpserted { spec, at_ms },
            EventV3::Restocked { sku, qty, at_ms } => Event::Restocked {
                sku,
                qty,
                key: None,
                at_ms,
            },
            EventV3::Reserved {
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
            EventV3::Confirmed {
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
            EventV3::Released { id, reason, at_ms } => Event::Released { id, reason, at_ms },
            EventV3::Extended {
                id,
                expires_at_ms,
                extensions,
                at_ms,
            } => Event::Extended {
                id,
                expires_at_ms,
                extensions,
                key: None,
                at_ms,
            },
        }
    }
}

/// `LogRecord` of version 3.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LogRecordV3 {
    /// See [`LogRecord::shard`].
    pub shard: ShardId,
    /// See [`LogRecord::seq`].
    pub seq: u64,
    /// See [`LogRecord::event`].
    pub event: EventV3,
}

impl From<LogRecordV3> for LogRecord {
    fn from(r: LogRecordV3) -> LogRecord {
        LogRecord {
            shard: r.shard,
            seq: r.seq,
            event: r.event.into(),
        }
    }
}
