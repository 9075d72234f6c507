//! The shard: a pure, deterministic state machine owning a subset of SKUs.
//!
//! Event-sourced: every command validates against the current state, then produces
//! [`Event`]s; the state changes only by applying events (`check` then `mutate`), and replay on
//! recovery uses the very same functions, so a replayed shard reaches the identical state
//! (see [`Shard::state_hash`]). No I/O, no threads, no clock: `now_ms` is passed in.
//!
//! Idempotency: only *successful* reservations are remembered under their key. A failed attempt
//! (sold out, limit, …) is not cached, so a retry with the same key re-evaluates; a key whose
//! cross-shard reservation was rolled back (`Released{Aborted}`) is forgotten too. A key reused
//! with another request body is refused with [`CommandError::IdempotencyMismatch`].
//!
//! Keys live on the reservation's home shard, which for a keyed request is the key's shard
//! ([`shard_of_key`]), so a key is checked in one place whatever the request's lines.
//!
//! One concept per file: `store` keeps reservations by id, `sku` the SKUs and their admin
//! commands, `reserve` holds stock, `decide` confirms, cancels and follows, `expire` expires
//! and forgets, `apply` turns events into state, `invariants` re-checks it, `queries` reads
//! it, `usage` counts per buyer, `orders` indexes orders, `snapshot` saves and restores,
//! `sink` receives the records, and `route` maps SKUs and keys to shards and plans, assembles
//! and reconciles cross-shard reservations; `buyers` indexes home reservations and orders per
//! buyer and pages through them; `replay` builds logged records with the shard's own id handles.

mod apply;
mod buyers;
mod chunked;
mod decide;
mod expire;
mod invariants;
mod orders;
mod poslist;
mod queries;
mod replay;
mod reserve;
mod route;
mod sink;
mod sku;
mod snapshot;
mod store;
mod usage;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;

use flashsale_protocol::{Line, ReservationId, ScopedKey, ShardId, SkuId};

use crate::command::CommandError;

pub use apply::ApplyError;
pub use buyers::{
    merge_pages, ListPos, OrderPart, OrderQuery, ReservationQuery, ShardPage, MAX_LIST_LIMIT,
    MAX_LIST_SCAN,
};
pub use decide::{DecideOutcome, Decision, ExtendCommand};
pub use expire::ExpireOutcome;
pub use queries::{total_cents, PartView};
pub use replay::{ReplayError, Resolved};
pub use reserve::{validate_lines, CommandLines, ReserveCommand, ReserveOutcome};
pub use route::{
    assemble_order, assemble_reservation, plan, reconcile, request_hash, shard_of, shard_of_key,
    FollowAction, GroupState, Plan, PlanPart,
};
pub use sink::{EventSink, NullSink};
pub use sku::validate_spec;
pub use snapshot::SnapshotError;

use sku::SkuState;
use store::{Reservation, Store};

/// The bounds the shard checks are the contract's ([`flashsale_protocol::limits`]); these
/// names stay here for the crates that import them from the shard.
pub use flashsale_protocol::limits::{MAX_NAME_LEN, MAX_PAYMENT_REF_LEN, MAX_STOCK};

/// A hash map with a fixed-seed hasher (deterministic, fast, not DoS-resistant: keys are
/// validated ids).
type FastMap<K, V> = hashbrown::HashMap<K, V, ahash::RandomState>;

/// An empty [`FastMap`] with the fixed seeds.
fn fast_map<K, V>() -> FastMap<K, V> {
    // Fixed seeds: iteration order is deterministic (we still never rely on it).
    FastMap::with_hasher(ahash::RandomState::with_seeds(
        0x5eed_0001,
        0x5eed_0002,
        0x5eed_0003,
        0x5eed_0004,
    ))
}

/// A pure state machine owning some SKUs, their reservations and orders.
#[derive(Debug)]
pub struct Shard {
    /// This shard's index.
    id: ShardId,
    /// Sequence number of the last applied record.
    seq: u64,
    /// Counter of the next reservation id this shard allocates.
    next_reservation: u64,
    /// Counter of the next order id this shard allocates.
    next_order: u64,
    /// SKUs by index (never removed, so indexes are stable); `sku_index` maps ids to them.
    skus: Vec<SkuState>,
    /// SKU ids to their index in `skus`.
    sku_index: FastMap<SkuId, u32>,
    /// The same in id order, for paging ([`Shard::list_skus`]).
    sku_order: BTreeMap<SkuId, u32>,
    /// Every reservation (or part) kept in memory.
    reservations: Store,
    /// Reservations by order id.
    orders: orders::Orders,
    /// Home reservations and orders per buyer, newest first (for the storefront's lists).
    buyers: buyers::BuyerIndex,
    /// Home reservations by idempotency key (successful ones only); the key is shared with
    /// its reservation's slot ([`store::Reservation::idempotency_key`]).
    idempotency: FastMap<Arc<ScopedKey>, ReservationId>,
    /// Units held or bought per `(buyer, SKU index)` of the SKUs with a per-buyer limit.
    usage: usage::Usage,
    /// Home reservations by expiry; entries of reservations no longer held are skipped lazily.
    expiry: BinaryHeap<Reverse<(u64, ReservationId)>>,
    /// Parts of other shards' reservations by expiry, to ask their home about if they are
    /// still held well after it (entries of parts no longer held are skipped lazily).
    part_expiry: BinaryHeap<Reverse<(u64, ReservationId)>>,
    /// Released or expired reservations in release order, dropped after `retention_ms`.
    settled: VecDeque<(u64, ReservationId)>,
    /// How long released / expired reservations (and their idempotency keys) are kept.
    retention_ms: u64,
    /// Recycled buffer for the lines of `Reserved` events (keeps the hot path allocation-free).
    spare_lines: Vec<Line>,
    /// Index of the SKU of the last reservation's first line: a lookup hint (a flash sale's
    /// requests name one hot SKU), checked by comparing ids before the hashed lookup. Not
    /// state: it never changes a result, only how a SKU id is found ([`Shard::sku_idx`]).
    hot_sku: u32,
}

/// Default retention of released and expired reservations: 24 hours.
pub const DEFAULT_RETENTION_MS: u64 = 24 * 3_600_000;

impl Shard {
    /// An empty shard with the default retention ([`DEFAULT_RETENTION_MS`]).
    pub fn new(id: ShardId) -> Self {
        Shard {
            id,
            seq: 0,
            next_reservation: 1,
            next_order: 1,
            skus: Vec::new(),
            sku_index: fast_map(),
            sku_order: BTreeMap::new(),
            reservations: Store::new(),
            orders: orders::Orders::new(id),
            buyers: buyers::BuyerIndex::default(),
            idempotency: fast_map(),
            usage: fast_map(),
            expiry: BinaryHeap::new(),
            part_expiry: BinaryHeap::new(),
            settled: VecDeque::new(),
            retention_ms: DEFAULT_RETENTION_MS,
            spare_lines: Vec::new(),
            hot_sku: 0,
        }
    }

    /// Sets how long released / expired reservations and their idempotency keys are kept
    /// before [`Shard::expire`] drops them (confirmed reservations and orders are kept).
    pub fn set_retention_ms(&mut self, retention_ms: u64) {
        self.retention_ms = retention_ms;
    }

    /// This shard's index.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Sequence number of the last applied record (0 = none).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of SKUs.
    pub fn sku_count(&self) -> usize {
        self.skus.len()
    }

    /// Number of reservations kept in memory (all states).
    pub fn reservation_count(&self) -> usize {
        self.reservations.len()
    }

    /// The index of SKU `sku`: the hot SKU's when the ids are equal (one pointer or short
    /// byte comparison), else by the hashed index.
    #[inline]
    fn sku_idx(&self, sku: &SkuId) -> Option<u32> {
        match self.skus.get(self.hot_sku as usize) {
            Some(s) if s.spec.sku == *sku => Some(self.hot_sku),
            _ => self.sku_index.get(sku).copied(),
        }
    }

    fn sku_state(&self, sku: &SkuId) -> Option<&SkuState> {
        self.sku_index
            .get(sku)
            .and_then(|i| self.skus.get(*i as usize))
    }

    fn res(&self, id: ReservationId) -> Option<&Reservation> {
        self.reservations.get(self.id, id)
    }
}

/// An internal error: a state the shard's own checks should have made impossible.
fn bug(what: &str) -> CommandError {
    CommandError::Internal(what.to_string())
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
