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

mod orders;
mod route;
mod snapshot;

pub mod cluster;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use flashsale_protocol::event::Group;
use flashsale_protocol::{
    BuyerId, Event, Line, LogRecord, OrderId, ReleaseReason, ReservationId, ScopedKey, ShardId,
    SkuId, SkuSpec, MAX_LINES,
};

use crate::command::CommandError;
use crate::gate::StockGate;
use crate::observer::StockLevel;
use crate::view::{OrderView, ReservationStatus, ReservationView, SkuView};

pub use route::{
    assemble_order, assemble_reservation, plan, reconcile, request_hash, shard_of, shard_of_key,
    FollowAction, GroupState, Plan, PlanPart,
};
pub use snapshot::SnapshotError;

/// Largest total stock of one SKU (keeps every count far from overflow).
pub const MAX_STOCK: u64 = 1 << 48;
/// Longest SKU display name in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest payment reference in bytes.
pub const MAX_PAYMENT_REF_LEN: usize = 256;

type FastMap<K, V> = hashbrown::HashMap<K, V, ahash::RandomState>;

fn fast_map<K, V>() -> FastMap<K, V> {
    // Fixed seeds: iteration order is deterministic (we still never rely on it).
    FastMap::with_hasher(ahash::RandomState::with_seeds(
        0x5eed_0001,
        0x5eed_0002,
        0x5eed_0003,
        0x5eed_0004,
    ))
}

/// Receives each record a shard produces, before it is applied.
pub trait EventSink {
    /// A new record (consecutive `seq` per shard).
    fn record(&mut self, record: &LogRecord);
}

impl EventSink for Vec<LogRecord> {
    fn record(&mut self, record: &LogRecord) {
        self.push(record.clone());
    }
}

/// A sink that drops every record (for benchmarks of the pure state machine).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl EventSink for NullSink {
    fn record(&mut self, _record: &LogRecord) {}
}

/// Why a record could not be applied (only on replay of a bad or foreign log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The record belongs to another shard.
    #[error("record of shard {found} replayed into shard {expected}")]
    WrongShard {
        /// This shard.
        expected: ShardId,
        /// The record's shard.
        found: ShardId,
    },
    /// Sequence numbers are not consecutive.
    #[error("expected seq {expected}, found {found}")]
    Seq {
        /// The next sequence number.
        expected: u64,
        /// The record's.
        found: u64,
    },
    /// The event does not fit the state (unknown SKU, double confirm, negative stock…).
    #[error("inconsistent event: {0}")]
    Inconsistent(String),
}

/// Per-SKU state. `available` is derived: `spec.stock - reserved - sold`.
#[derive(Debug)]
struct SkuState {
    spec: SkuSpec,
    reserved: u64,
    sold: u64,
    gate: Arc<StockGate>,
}

impl SkuState {
    fn available(&self) -> u64 {
        self.spec.stock - self.reserved - self.sold
    }

    /// The per-SKU invariant, O(1): `available + reserved + sold == total`, nothing negative
    /// (`available` is derived, so this is `reserved + sold <= total` without overflow).
    fn invariant_holds(&self) -> bool {
        self.reserved
            .checked_add(self.sold)
            .is_some_and(|c| c <= self.spec.stock)
    }

    fn view(&self) -> SkuView {
        SkuView {
            sku: self.spec.sku.clone(),
            name: self.spec.name.clone(),
            price_cents: self.spec.price_cents,
            total: self.spec.stock,
            available: self.available(),
            reserved: self.reserved,
            sold: self.sold,
            per_buyer_limit: self.spec.per_buyer_limit,
            sale_starts_at_ms: self.spec.sale_starts_at_ms,
            sale_ends_at_ms: self.spec.sale_ends_at_ms,
            reservation_ttl_ms: self.spec.reservation_ttl_ms,
        }
    }

    fn level(&self) -> StockLevel {
        StockLevel {
            sku: self.spec.sku.clone(),
            available: self.available(),
            reserved: self.reserved,
            sold: self.sold,
        }
    }

    fn sale_open(&self, now_ms: u64) -> bool {
        self.spec.sale_starts_at_ms.is_none_or(|s| now_ms >= s)
            && self.spec.sale_ends_at_ms.is_none_or(|e| now_ms < e)
    }
}

/// A reservation line as the shard stores it: the SKU by its index in `Shard::skus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CLine {
    sku: u32,
    qty: u32,
    unit_price_cents: u64,
}

/// A reservation's lines: inline when there is one (the common case), boxed otherwise.
#[derive(Debug, Clone)]
enum Lines {
    One(CLine),
    Many(Box<[CLine]>),
}

impl Lines {
    fn as_slice(&self) -> &[CLine] {
        match self {
            Lines::One(l) => std::slice::from_ref(l),
            Lines::Many(b) => b,
        }
    }

    fn from_slice(lines: &[CLine]) -> Lines {
        match lines {
            [one] => Lines::One(*one),
            many => Lines::Many(many.into()),
        }
    }
}

/// One reservation (or, for a cross-shard reservation, this shard's part of it).
#[derive(Debug, Clone)]
struct Reservation {
    id: ReservationId,
    buyer: BuyerId,
    lines: Lines,
    created_at_ms: u64,
    expires_at_ms: u64,
    status: ReservationStatus,
    release_reason: Option<ReleaseReason>,
    /// When it was released or expired (0 while held or once confirmed).
    released_at_ms: u64,
    order: Option<OrderId>,
    payment_ref: String,
    confirmed_at_ms: u64,
    idempotency_key: Option<ScopedKey>,
    request_hash: u64,
    group: Option<Group>,
}

/// Slots per chunk of the own-reservation store.
const CHUNK: u64 = 1024;

/// A fixed-size block of reservation slots (never reallocated once created).
#[derive(Debug)]
struct Chunk {
    live: usize,
    slots: Box<[Option<Reservation>]>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            live: 0,
            slots: (0..CHUNK).map(|_| None).collect(),
        }
    }
}

/// Reservations by id. This shard's own ids are dense counters, so they live in fixed-size
/// chunks of slots indexed by counter (no hashing, and growth never moves a reservation).
/// Retention empties old chunks: an empty chunk at the front is dropped, and a chunk (not the
/// newest) that falls below 1/32 occupancy has its survivors (confirmed reservations) moved to
/// the map and is dropped, so memory follows the live reservations. The map also holds parts
/// of other shards' reservations.
#[derive(Debug)]
struct Store {
    /// Chunk number (`counter / CHUNK`) of `own[0]`.
    first_chunk: u64,
    own: VecDeque<Option<Chunk>>,
    own_len: usize,
    map: FastMap<ReservationId, Reservation>,
}

impl Store {
    fn new() -> Self {
        Store {
            first_chunk: 0,
            own: VecDeque::new(),
            own_len: 0,
            map: fast_map(),
        }
    }

    fn locate(&self, counter: u64) -> Option<(usize, usize)> {
        let c = usize::try_from((counter / CHUNK).checked_sub(self.first_chunk)?).ok()?;
        (c < self.own.len()).then_some((c, (counter % CHUNK) as usize))
    }

    fn get(&self, shard: ShardId, id: ReservationId) -> Option<&Reservation> {
        if id.shard() == shard {
            if let Some((c, i)) = self.locate(id.counter()) {
                if let Some(chunk) = &self.own[c] {
                    return chunk.slots[i].as_ref();
                }
            }
        }
        self.map.get(&id)
    }

    fn get_mut(&mut self, shard: ShardId, id: ReservationId) -> Option<&mut Reservation> {
        if id.shard() == shard {
            if let Some((c, i)) = self.locate(id.counter()) {
                if let Some(chunk) = &mut self.own[c] {
                    return chunk.slots[i].as_mut();
                }
            }
        }
        self.map.get_mut(&id)
    }

    /// Inserts; returns false (and changes nothing) if the id is taken.
    fn insert(&mut self, shard: ShardId, r: Reservation) -> bool {
        if self.get(shard, r.id).is_some() {
            return false;
        }
        if r.id.shard() == shard {
            let chunk = r.id.counter() / CHUNK;
            if self.own.is_empty() {
                self.first_chunk = chunk;
            }
            while chunk < self.first_chunk {
                self.own.push_front(Some(Chunk::new()));
                self.first_chunk -= 1;
            }
            while chunk - self.first_chunk >= self.own.len() as u64 {
                self.own.push_back(Some(Chunk::new()));
            }
            if let Some((c, i)) = self.locate(r.id.counter()) {
                if let Some(chunk) = &mut self.own[c] {
                    chunk.slots[i] = Some(r);
                    chunk.live += 1;
                    self.own_len += 1;
                    return true;
                }
            }
        }
        self.map.insert(r.id, r);
        true
    }

    /// Removes a reservation; emptied or sparse old chunks are dropped (see above).
    fn remove(&mut self, shard: ShardId, id: ReservationId) -> Option<Reservation> {
        let located = (id.shard() == shard)
            .then(|| self.locate(id.counter()))
            .flatten();
        let Some((c, i)) = located else {
            return self.map.remove(&id);
        };
        let newest = c + 1 == self.own.len();
        let Some(chunk) = &mut self.own[c] else {
            return self.map.remove(&id);
        };
        let r = chunk.slots[i].take()?;
        chunk.live -= 1;
        self.own_len -= 1;
        if !newest && chunk.live as u64 <= CHUNK / 32 {
            if let Some(chunk) = self.own[c].take() {
                self.own_len -= chunk.live;
                for survivor in chunk.slots.into_vec().into_iter().flatten() {
                    self.map.insert(survivor.id, survivor);
                }
            }
        }
        while self.own.len() > 1 && self.own.front().is_some_and(Option::is_none) {
            self.own.pop_front();
            self.first_chunk += 1;
        }
        Some(r)
    }

    fn contains(&self, shard: ShardId, id: ReservationId) -> bool {
        self.get(shard, id).is_some()
    }

    fn len(&self) -> usize {
        self.own_len + self.map.len()
    }

    fn iter(&self) -> impl Iterator<Item = &Reservation> + '_ {
        self.own
            .iter()
            .flatten()
            .flat_map(|c| c.slots.iter().flatten())
            .chain(self.map.values())
    }
}

/// A reservation as one shard sees it: its lines on this shard, plus group membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartView {
    /// The view; `lines` are the lines held on this shard.
    pub view: ReservationView,
    /// Set when the reservation spans several shards.
    pub group: Option<Group>,
}

/// A reservation request as one shard executes it (its own lines only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveCommand {
    /// Who is buying.
    pub buyer: BuyerId,
    /// This shard's `(sku, qty)` lines, in request order. Empty only for the home part of a
    /// cross-shard reservation whose home (the idempotency key's shard) holds no line.
    pub lines: Vec<(SkuId, u32)>,
    /// The client's key (home shard only).
    pub idempotency_key: Option<ScopedKey>,
    /// Hash of the whole request ([`request_hash`]).
    pub request_hash: u64,
    /// Id chosen by the home shard; `None` = this shard is home and allocates it.
    pub id: Option<ReservationId>,
    /// Expiry chosen by the coordinator; `None` = now + the shortest TTL of the lines.
    pub expires_at_ms: Option<u64>,
    /// Group membership for cross-shard reservations.
    pub group: Option<Group>,
    /// The caller already claimed every line's `qty` on the line's [`StockGate`]; the shard
    /// consumes the claims on success and gives them back on failure.
    pub claimed: bool,
}

/// A successful reservation on one shard. The view is not built on this path: callers that
/// need it ask [`Shard::reservation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveOutcome {
    /// The reservation.
    pub id: ReservationId,
    /// True when an earlier reservation was returned for the same idempotency key.
    pub replayed: bool,
}

/// What part shards must do after the home shard decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The reservation.
    pub id: ReservationId,
    /// Its group (which shards hold parts).
    pub group: Group,
    /// What the parts follow with.
    pub action: FollowAction,
}

/// Result of confirm / cancel on the home shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecideOutcome {
    /// The reservation (its view: [`Shard::reservation`]).
    pub id: ReservationId,
    /// The order, once confirmed.
    pub order: Option<OrderId>,
    /// Set when part shards must follow (only for a fresh decision on a group).
    pub follow: Option<Decision>,
}

/// Result of an expiry pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireOutcome {
    /// Reservations expired.
    pub expired: usize,
    /// Group reservations whose parts must follow.
    pub follows: Vec<Decision>,
    /// SKUs whose stock changed.
    pub skus: Vec<SkuId>,
    /// Settled reservations dropped after their retention period.
    pub forgotten: usize,
}

/// Key for per-buyer usage `(buyer, SKU index)`, looked up without allocating.
struct UsageRef<'a>(&'a BuyerId, u32);

impl Hash for UsageRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must match the Hash of the tuple `(BuyerId, u32)`.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl hashbrown::Equivalent<(BuyerId, u32)> for UsageRef<'_> {
    fn equivalent(&self, key: &(BuyerId, u32)) -> bool {
        self.1 == key.1 && *self.0 == key.0
    }
}

/// A pure state machine owning some SKUs, their reservations and orders.
#[derive(Debug)]
pub struct Shard {
    id: ShardId,
    seq: u64,
    next_reservation: u64,
    next_order: u64,
    /// SKUs by index (never removed, so indexes are stable); `sku_index` maps ids to them.
    skus: Vec<SkuState>,
    sku_index: FastMap<SkuId, u32>,
    reservations: Store,
    orders: orders::Orders,
    idempotency: FastMap<ScopedKey, ReservationId>,
    usage: FastMap<(BuyerId, u32), u64>,
    /// Home reservations by expiry; entries of reservations no longer held are skipped lazily.
    expiry: BinaryHeap<Reverse<(u64, ReservationId)>>,
    /// Released or expired reservations in release order, dropped after `retention_ms`.
    settled: VecDeque<(u64, ReservationId)>,
    /// How long released / expired reservations (and their idempotency keys) are kept.
    retention_ms: u64,
    /// Recycled buffer for the lines of `Reserved` events (keeps the hot path allocation-free).
    spare_lines: Vec<Line>,
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
            reservations: Store::new(),
            orders: orders::Orders::new(id),
            idempotency: fast_map(),
            usage: fast_map(),
            expiry: BinaryHeap::new(),
            settled: VecDeque::new(),
            retention_ms: DEFAULT_RETENTION_MS,
            spare_lines: Vec::new(),
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

    fn sku_state(&self, sku: &SkuId) -> Option<&SkuState> {
        self.sku_index
            .get(sku)
            .and_then(|i| self.skus.get(*i as usize))
    }

    fn res(&self, id: ReservationId) -> Option<&Reservation> {
        self.reservations.get(self.id, id)
    }

    fn part_of(&self, r: &Reservation) -> PartView {
        PartView {
            view: ReservationView {
                id: r.id,
                status: r.status,
                buyer: r.buyer.clone(),
                lines: self.full_lines(&r.lines),
                created_at_ms: r.created_at_ms,
                expires_at_ms: r.expires_at_ms,
                order: r.order,
                release_reason: r.release_reason,
            },
            group: r.group,
        }
    }

    fn full_lines(&self, lines: &Lines) -> Vec<Line> {
        lines
            .as_slice()
            .iter()
            .filter_map(|l| {
                self.skus.get(l.sku as usize).map(|s| Line {
                    sku: s.spec.sku.clone(),
                    qty: l.qty,
                    unit_price_cents: l.unit_price_cents,
                })
            })
            .collect()
    }

    // ----- commands -----

    /// Creates or replaces a SKU's settings. `stock` is the new total; it may not drop below
    /// the units already reserved or sold. Returns the view and whether it was created.
    pub fn upsert_sku(
        &mut self,
        now_ms: u64,
        spec: SkuSpec,
        sink: &mut impl EventSink,
    ) -> Result<(SkuView, bool), CommandError> {
        validate_spec(&spec)?;
        let created = match self.sku_state(&spec.sku) {
            Some(s) => {
                let committed = s.reserved + s.sold;
                if spec.stock < committed {
                    return Err(CommandError::Invalid(format!(
                        "stock {} is below the {} units already reserved or sold",
                        spec.stock, committed
                    )));
                }
                false
            }
            None => true,
        };
        let sku = spec.sku.clone();
        self.emit(
            Event::SkuUpserted {
                spec,
                at_ms: now_ms,
            },
            sink,
            false,
        )?;
        Ok((self.sku_view_or_bug(&sku)?, created))
    }

    /// Adds `qty` units to a SKU's total stock.
    pub fn restock(
        &mut self,
        now_ms: u64,
        sku: &SkuId,
        qty: u64,
        sink: &mut impl EventSink,
    ) -> Result<SkuView, CommandError> {
        let s = self
            .sku_state(sku)
            .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))?;
        if qty == 0 {
            return Err(CommandError::Invalid(
                "restock qty must be at least 1".into(),
            ));
        }
        if s.spec.stock.saturating_add(qty) > MAX_STOCK {
            return Err(CommandError::Invalid(format!(
                "stock would exceed the maximum of {MAX_STOCK} units"
            )));
        }
        self.emit(
            Event::Restocked {
                sku: sku.clone(),
                qty,
                at_ms: now_ms,
            },
            sink,
            false,
        )?;
        self.sku_view_or_bug(sku)
    }

    /// Holds stock for this shard's lines of a reservation, all or nothing.
    ///
    /// Checks, per line in order: the SKU exists, enough is available, the sale is open, the
    /// buyer stays within the per-buyer limit. A key seen before returns that reservation.
    /// Builds no view (see [`Shard::reservation`]); in steady state it allocates nothing.
    pub fn reserve(
        &mut self,
        now_ms: u64,
        cmd: ReserveCommand,
        sink: &mut impl EventSink,
    ) -> Result<ReserveOutcome, CommandError> {
        if let Some(key) = &cmd.idempotency_key {
            if let Some(found) = self.key_hit(key, cmd.request_hash) {
                self.give_back_claims(&cmd);
                return found.map(|id| ReserveOutcome { id, replayed: true });
            }
        }
        let mut prices = [0u64; MAX_LINES];
        let mut idx = [0u32; MAX_LINES];
        let min_ttl = match self.check_reserve(now_ms, &cmd, &mut prices, &mut idx) {
            Ok(ttl) => ttl,
            Err(e) => {
                self.give_back_claims(&cmd);
                return Err(e);
            }
        };
        let id = match cmd.id {
            Some(id) => id,
            None => ReservationId::compose(self.id, self.next_reservation),
        };
        let expires_at_ms = cmd
            .expires_at_ms
            .unwrap_or_else(|| now_ms.saturating_add(min_ttl));
        let ReserveCommand {
            buyer,
            lines: cmd_lines,
            idempotency_key,
            request_hash,
            group,
            claimed,
            ..
        } = cmd;
        let n_lines = cmd_lines.len().min(MAX_LINES);
        let mut lines = std::mem::take(&mut self.spare_lines);
        lines.clear();
        lines.extend(
            cmd_lines
                .into_iter()
                .zip(prices)
                .map(|((sku, qty), unit_price_cents)| Line {
                    sku,
                    qty,
                    unit_price_cents,
                }),
        );
        self.emit_with(
            Event::Reserved {
                id,
                buyer,
                lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms: now_ms,
            },
            sink,
            claimed,
            Some(&idx[..n_lines]),
        )?;
        Ok(ReserveOutcome {
            id,
            replayed: false,
        })
    }

    /// The reservation stored under `key`, if any: `Some(Ok)` for the same request,
    /// `Some(Err(IdempotencyMismatch))` for another request, `None` if the key is unknown.
    pub fn lookup_key(
        &self,
        key: &ScopedKey,
        request_hash: u64,
    ) -> Option<Result<PartView, CommandError>> {
        self.key_hit(key, request_hash).map(|r| {
            r.and_then(|id| {
                self.res(id)
                    .map(|r| self.part_of(r))
                    .ok_or_else(|| bug("idempotency key without reservation"))
            })
        })
    }

    fn key_hit(
        &self,
        key: &ScopedKey,
        request_hash: u64,
    ) -> Option<Result<ReservationId, CommandError>> {
        let id = self.idempotency.get(key)?;
        let r = self.res(*id)?;
        Some(if r.request_hash == request_hash {
            Ok(r.id)
        } else {
            Err(CommandError::IdempotencyMismatch)
        })
    }

    /// Validates a reservation command against the state; writes each line's unit price into
    /// `prices` and returns the shortest TTL of the lines.
    fn check_reserve(
        &self,
        now_ms: u64,
        cmd: &ReserveCommand,
        prices: &mut [u64; MAX_LINES],
        idx: &mut [u32; MAX_LINES],
    ) -> Result<u64, CommandError> {
        // The home part of a cross-shard reservation may hold no line (ADR 0003).
        let empty_home = cmd.lines.is_empty() && cmd.group.is_some() && cmd.id.is_none();
        if !empty_home {
            validate_lines(cmd.lines.iter().map(|(s, q)| (s, *q)))?;
        }
        if let Some(id) = cmd.id {
            if self.reservations.contains(self.id, id) {
                return Err(CommandError::Invalid(format!("reservation {id} exists")));
            }
        }
        if let Some(exp) = cmd.expires_at_ms {
            if exp <= now_ms {
                return Err(CommandError::Invalid("expiry in the past".into()));
            }
        }
        let mut min_ttl = u64::MAX;
        for (i, (sku, qty)) in cmd.lines.iter().enumerate() {
            let idx_of = *self
                .sku_index
                .get(sku)
                .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))?;
            let s = &self.skus[idx_of as usize];
            line_check(s, *qty, || self.used_idx(&cmd.buyer, idx_of), now_ms)?;
            min_ttl = min_ttl.min(s.spec.reservation_ttl_ms);
            if let (Some(p), Some(x)) = (prices.get_mut(i), idx.get_mut(i)) {
                *p = s.spec.price_cents;
                *x = idx_of;
            }
        }
        Ok(min_ttl)
    }

    fn give_back_claims(&self, cmd: &ReserveCommand) {
        if !cmd.claimed {
            return;
        }
        for (sku, qty) in &cmd.lines {
            if let Some(s) = self.sku_state(sku) {
                s.gate.give_back(u64::from(*qty));
            }
        }
    }

    /// Units of `sku` the buyer holds or bought.
    pub fn used(&self, buyer: &BuyerId, sku: &SkuId) -> u64 {
        self.sku_index
            .get(sku)
            .map_or(0, |idx| self.used_idx(buyer, *idx))
    }

    fn used_idx(&self, buyer: &BuyerId, sku: u32) -> u64 {
        self.usage.get(&UsageRef(buyer, sku)).copied().unwrap_or(0)
    }

    /// Confirms a held reservation on its home shard: allocates the order id.
    /// Confirming again with the same `payment_ref` returns the same order.
    pub fn confirm(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        payment_ref: String,
        sink: &mut impl EventSink,
    ) -> Result<DecideOutcome, CommandError> {
        if payment_ref.is_empty() || payment_ref.len() > MAX_PAYMENT_REF_LEN {
            return Err(CommandError::Invalid(format!(
                "payment_ref must be 1..={MAX_PAYMENT_REF_LEN} bytes"
            )));
        }
        let r = self.home_reservation(id)?;
        match r.status {
            ReservationStatus::Held if now_ms >= r.expires_at_ms => {
                Err(CommandError::InvalidState {
                    id,
                    status: ReservationStatus::Expired,
                })
            }
            ReservationStatus::Held => {
                let group = r.group;
                let order = OrderId::compose(self.id, self.next_order);
                let follow = group.map(|group| Decision {
                    id,
                    group,
                    action: FollowAction::Confirm {
                        order,
                        payment_ref: payment_ref.clone(),
                        at_ms: now_ms,
                    },
                });
                self.emit(
                    Event::Confirmed {
                        id,
                        order,
                        payment_ref,
                        at_ms: now_ms,
                    },
                    sink,
                    false,
                )?;
                Ok(DecideOutcome {
                    id,
                    order: Some(order),
                    follow,
                })
            }
            ReservationStatus::Confirmed if r.payment_ref == payment_ref => Ok(DecideOutcome {
                id,
                order: r.order,
                follow: None,
            }),
            status => Err(CommandError::InvalidState { id, status }),
        }
    }

    /// Cancels a held reservation on its home shard. Cancelling a released one again is a no-op.
    pub fn cancel(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        sink: &mut impl EventSink,
    ) -> Result<DecideOutcome, CommandError> {
        let r = self.home_reservation(id)?;
        match r.status {
            ReservationStatus::Held => {
                let group = r.group;
                self.emit(
                    Event::Released {
                        id,
                        reason: ReleaseReason::Cancelled,
                        at_ms: now_ms,
                    },
                    sink,
                    false,
                )?;
                Ok(DecideOutcome {
                    id,
                    order: None,
                    follow: group.map(|group| Decision {
                        id,
                        group,
                        action: FollowAction::Release(ReleaseReason::Cancelled),
                    }),
                })
            }
            ReservationStatus::Released => Ok(DecideOutcome {
                id,
                order: None,
                follow: None,
            }),
            status => Err(CommandError::InvalidState { id, status }),
        }
    }

    /// Applies a decision taken elsewhere (the home shard, or a rollback) to this shard's part.
    /// A part that is not held (or unknown) is left alone: following is idempotent.
    /// Returns whether anything changed.
    pub fn follow(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        action: &FollowAction,
        sink: &mut impl EventSink,
    ) -> Result<bool, CommandError> {
        match self.res(id) {
            Some(r) if r.status == ReservationStatus::Held => {}
            _ => return Ok(false),
        }
        let event = match action {
            FollowAction::Confirm {
                order,
                payment_ref,
                at_ms,
            } => Event::Confirmed {
                id,
                order: *order,
                payment_ref: payment_ref.clone(),
                at_ms: *at_ms,
            },
            FollowAction::Release(reason) => Event::Released {
                id,
                reason: *reason,
                at_ms: now_ms,
            },
        };
        self.emit(event, sink, false)?;
        Ok(true)
    }

    /// Expires at most `max` home reservations whose TTL passed, then drops at most `max`
    /// settled (released / expired) reservations older than the retention period (bounded
    /// work per call). Dropping logs nothing: it is a pure function of the state and `now_ms`
    /// that only ever removes reservations no command can change any more.
    pub fn expire(
        &mut self,
        now_ms: u64,
        max: usize,
        sink: &mut impl EventSink,
    ) -> Result<ExpireOutcome, CommandError> {
        let mut out = ExpireOutcome::default();
        let mut pops = 0usize;
        let pop_budget = max.saturating_mul(8).saturating_add(64);
        while out.expired < max && pops < pop_budget {
            let Some(&Reverse((at, id))) = self.expiry.peek() else {
                break;
            };
            if at > now_ms {
                break;
            }
            self.expiry.pop();
            pops += 1;
            let (group, skus) = match self.res(id) {
                Some(r) if r.status == ReservationStatus::Held && r.expires_at_ms == at => (
                    r.group,
                    r.lines
                        .as_slice()
                        .iter()
                        .filter_map(|l| self.skus.get(l.sku as usize))
                        .map(|s| s.spec.sku.clone())
                        .collect::<Vec<_>>(),
                ),
                _ => continue,
            };
            self.emit(
                Event::Released {
                    id,
                    reason: ReleaseReason::Expired,
                    at_ms: now_ms,
                },
                sink,
                false,
            )?;
            out.expired += 1;
            out.skus.extend(skus);
            if let Some(group) = group {
                out.follows.push(Decision {
                    id,
                    group,
                    action: FollowAction::Release(ReleaseReason::Expired),
                });
            }
        }
        out.forgotten = self.forget(now_ms, max);
        Ok(out)
    }

    /// Drops at most `max` released / expired reservations whose release is at least
    /// `retention_ms` old, with their idempotency keys. Returns how many were dropped.
    pub fn forget(&mut self, now_ms: u64, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(&(at, id)) = self.settled.front() else {
                break;
            };
            if at.saturating_add(self.retention_ms) > now_ms {
                break;
            }
            self.settled.pop_front();
            let Some(r) = self.reservations.remove(self.id, id) else {
                continue;
            };
            debug_assert!(matches!(
                r.status,
                ReservationStatus::Released | ReservationStatus::Expired
            ));
            if let Some(key) = &r.idempotency_key {
                if self.idempotency.get(key) == Some(&id) {
                    self.idempotency.remove(key);
                }
            }
            n += 1;
        }
        n
    }

    /// Earliest pending expiry (a hint for timers; may name an already-settled reservation).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    fn home_reservation(&self, id: ReservationId) -> Result<&Reservation, CommandError> {
        if id.shard() != self.id {
            return Err(CommandError::ReservationNotFound(id));
        }
        self.res(id)
            .filter(|r| r.release_reason != Some(ReleaseReason::Aborted))
            .ok_or(CommandError::ReservationNotFound(id))
    }

    // ----- queries -----

    /// A SKU's view.
    pub fn sku(&self, sku: &SkuId) -> Option<SkuView> {
        self.sku_state(sku).map(SkuState::view)
    }

    /// A SKU's stock counts.
    pub fn stock_level(&self, sku: &SkuId) -> Option<StockLevel> {
        self.sku_state(sku).map(SkuState::level)
    }

    /// Every SKU's stock counts (unordered).
    pub fn stock_levels(&self) -> Vec<StockLevel> {
        self.skus.iter().map(SkuState::level).collect()
    }

    /// SKUs ordered by id, strictly after `after`, at most `limit`.
    pub fn list_skus(&self, after: Option<&SkuId>, limit: usize) -> Vec<SkuView> {
        let mut states: Vec<&SkuState> = self
            .skus
            .iter()
            .filter(|s| after.is_none_or(|a| s.spec.sku > *a))
            .collect();
        states.sort_unstable_by(|a, b| a.spec.sku.cmp(&b.spec.sku));
        states.truncate(limit);
        states.into_iter().map(SkuState::view).collect()
    }

    /// The gate of a SKU.
    pub fn gate(&self, sku: &SkuId) -> Option<Arc<StockGate>> {
        self.sku_state(sku).map(|s| s.gate.clone())
    }

    /// Every SKU's gate and reservation TTL.
    pub fn gates(&self) -> Vec<(SkuId, Arc<StockGate>, u64)> {
        self.skus
            .iter()
            .map(|s| {
                (
                    s.spec.sku.clone(),
                    s.gate.clone(),
                    s.spec.reservation_ttl_ms,
                )
            })
            .collect()
    }

    /// This shard's part of a reservation. A rolled-back attempt (`Aborted`) was never
    /// acknowledged to anyone and is reported as unknown.
    pub fn reservation(&self, id: ReservationId) -> Option<PartView> {
        self.res(id)
            .filter(|r| r.release_reason != Some(ReleaseReason::Aborted))
            .map(|r| self.part_of(r))
    }

    /// The SKUs of the lines held on this shard by a reservation (rolled-back attempts too).
    pub fn reservation_skus(&self, id: ReservationId) -> impl Iterator<Item = &SkuId> + '_ {
        self.res(id)
            .into_iter()
            .flat_map(|r| r.lines.as_slice().iter())
            .filter_map(|l| self.skus.get(l.sku as usize))
            .map(|s| &s.spec.sku)
    }

    /// An order allocated by this shard, with this shard's lines, and the reservation's group.
    pub fn order(&self, id: OrderId) -> Option<(OrderView, Option<Group>)> {
        let rid = self.orders.get(id)?;
        let r = self.res(rid)?;
        let lines = self.full_lines(&r.lines);
        let view = OrderView {
            id,
            reservation: r.id,
            buyer: r.buyer.clone(),
            total_cents: total_cents(&lines),
            lines,
            payment_ref: r.payment_ref.clone(),
            created_at_ms: r.confirmed_at_ms,
        };
        Some((view, r.group))
    }

    /// State of every cross-shard reservation part held or known here (for reconciliation).
    pub fn group_states(&self) -> Vec<GroupState> {
        let mut out: Vec<GroupState> = self
            .reservations
            .iter()
            .filter_map(|r| {
                r.group.map(|group| GroupState {
                    shard: self.id,
                    id: r.id,
                    group,
                    status: r.status,
                    release_reason: r.release_reason,
                    order: r.order,
                    payment_ref: r.payment_ref.clone(),
                    confirmed_at_ms: r.confirmed_at_ms,
                })
            })
            .collect();
        out.sort_unstable_by_key(|g| g.id);
        out
    }

    fn sku_view_or_bug(&self, sku: &SkuId) -> Result<SkuView, CommandError> {
        self.sku(sku).ok_or_else(|| bug("SKU missing after apply"))
    }

    // ----- events -----

    /// Logs and applies one event produced by a command. The command validated the event
    /// against the state just before; debug builds re-check it in full with the replay check.
    fn emit(
        &mut self,
        event: Event,
        sink: &mut impl EventSink,
        claimed: bool,
    ) -> Result<(), CommandError> {
        self.emit_with(event, sink, claimed, None)
    }

    /// [`Shard::emit`] of a `Reserved` whose lines' SKU indexes the command already resolved
    /// (`skus[i]` is the index of `lines[i].sku`), so applying it hashes no SKU id again.
    fn emit_with(
        &mut self,
        event: Event,
        sink: &mut impl EventSink,
        claimed: bool,
        skus: Option<&[u32]>,
    ) -> Result<(), CommandError> {
        #[cfg(debug_assertions)]
        if let Err(e) = self.check(&event) {
            debug_assert!(false, "command produced an inapplicable event: {e}");
            return Err(bug(&e.to_string()));
        }
        let record = LogRecord {
            shard: self.id,
            seq: self.seq + 1,
            event,
        };
        sink.record(&record);
        self.seq = record.seq;
        self.mutate(record.event, claimed, skus);
        Ok(())
    }

    /// Applies a logged record (replay). Validates it first; on error the state is unchanged.
    pub fn apply_record(&mut self, record: LogRecord) -> Result<(), ApplyError> {
        if record.shard != self.id {
            return Err(ApplyError::WrongShard {
                expected: self.id,
                found: record.shard,
            });
        }
        if record.seq != self.seq + 1 {
            return Err(ApplyError::Seq {
                expected: self.seq + 1,
                found: record.seq,
            });
        }
        self.check(&record.event)?;
        self.seq = record.seq;
        self.mutate(record.event, false, None);
        Ok(())
    }

    /// Verifies that `event` can be applied to the current state.
    fn check(&self, event: &Event) -> Result<(), ApplyError> {
        let inconsistent = |s: String| Err(ApplyError::Inconsistent(s));
        match event {
            Event::SkuUpserted { spec, .. } => {
                if let Err(e) = validate_spec(spec) {
                    return inconsistent(e.to_string());
                }
                if let Some(s) = self.sku_state(&spec.sku) {
                    if spec.stock < s.reserved + s.sold {
                        return inconsistent(format!("stock of {} below committed", spec.sku));
                    }
                }
                Ok(())
            }
            Event::Restocked { sku, qty, .. } => match self.sku_state(sku) {
                Some(s) if s.spec.stock.saturating_add(*qty) <= MAX_STOCK => Ok(()),
                Some(_) => inconsistent(format!("restock of {sku} overflows")),
                None => inconsistent(format!("restock of unknown {sku}")),
            },
            Event::Reserved {
                id, lines, group, ..
            } => {
                if self.reservations.contains(self.id, *id) {
                    return inconsistent(format!("{id} reserved twice"));
                }
                // Only the home part of a group may hold no line (the key's shard, ADR 0003).
                let empty_ok = group.is_some() && id.shard() == self.id;
                if (lines.is_empty() && !empty_ok) || lines.len() > MAX_LINES {
                    return inconsistent(format!("{id} has {} lines", lines.len()));
                }
                for (i, l) in lines.iter().enumerate() {
                    if lines[..i].iter().any(|o| o.sku == l.sku) || l.qty == 0 {
                        return inconsistent(format!("{id} has a bad line for {}", l.sku));
                    }
                    match self.sku_state(&l.sku) {
                        Some(s) if s.available() >= u64::from(l.qty) => {}
                        _ => return inconsistent(format!("{id} holds unavailable {}", l.sku)),
                    }
                }
                Ok(())
            }
            Event::Confirmed { id, .. } | Event::Released { id, .. } => match self.res(*id) {
                Some(r) if r.status == ReservationStatus::Held => Ok(()),
                Some(r) => inconsistent(format!("{id} is {}", r.status.as_str())),
                None => inconsistent(format!("unknown {id}")),
            },
        }
    }

    /// Applies a checked event. `claimed`: a `Reserved` whose units were already taken from
    /// the gates by the caller's claims. Asserts the per-SKU invariant of every SKU it
    /// touches (O(1) each).
    fn mutate(&mut self, event: Event, claimed: bool, skus: Option<&[u32]>) {
        match event {
            Event::SkuUpserted { spec, .. } => match self.sku_index.get(&spec.sku) {
                Some(&i) => {
                    let s = &mut self.skus[i as usize];
                    let before = s.available();
                    s.spec = spec;
                    let after = s.available();
                    if after >= before {
                        s.gate.give_back(after - before);
                    } else {
                        s.gate.take(before - after);
                    }
                    assert!(s.invariant_holds(), "{}: counts exceed stock", s.spec.sku);
                }
                None => {
                    let gate = Arc::new(StockGate::new(spec.stock));
                    let i = self.skus.len() as u32;
                    self.sku_index.insert(spec.sku.clone(), i);
                    self.skus.push(SkuState {
                        spec,
                        reserved: 0,
                        sold: 0,
                        gate,
                    });
                }
            },
            Event::Restocked { sku, qty, .. } => {
                if let Some(&i) = self.sku_index.get(&sku) {
                    let s = &mut self.skus[i as usize];
                    s.spec.stock += qty;
                    s.gate.give_back(qty);
                }
            }
            Event::Reserved {
                id,
                buyer,
                mut lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms,
            } => {
                let mut compact = [CLine {
                    sku: 0,
                    qty: 0,
                    unit_price_cents: 0,
                }; MAX_LINES];
                let mut n = 0;
                debug_assert!(skus.is_none_or(|x| x.len() == lines.len()));
                for (k, l) in lines.iter().enumerate() {
                    let qty = u64::from(l.qty);
                    let resolved = skus.and_then(|x| x.get(k)).copied();
                    let Some(i) = resolved.or_else(|| self.sku_index.get(&l.sku).copied()) else {
                        continue;
                    };
                    debug_assert_eq!(self.sku_index.get(&l.sku), Some(&i));
                    let s = &mut self.skus[i as usize];
                    s.reserved += qty;
                    assert!(s.invariant_holds(), "{}: counts exceed stock", s.spec.sku);
                    if !claimed {
                        s.gate.take(qty);
                    }
                    self.add_usage(&buyer, i, qty);
                    if let Some(c) = compact.get_mut(n) {
                        *c = CLine {
                            sku: i,
                            qty: l.qty,
                            unit_price_cents: l.unit_price_cents,
                        };
                        n += 1;
                    }
                }
                lines.clear();
                self.spare_lines = lines;
                let home = id.shard() == self.id;
                if home {
                    self.next_reservation = self.next_reservation.max(id.counter() + 1);
                    self.expiry.push(Reverse((expires_at_ms, id)));
                    if let Some(key) = &idempotency_key {
                        self.idempotency.insert(key.clone(), id);
                    }
                }
                let inserted = self.reservations.insert(
                    self.id,
                    Reservation {
                        id,
                        buyer,
                        lines: Lines::from_slice(&compact[..n]),
                        created_at_ms: at_ms,
                        expires_at_ms,
                        status: ReservationStatus::Held,
                        release_reason: None,
                        released_at_ms: 0,
                        order: None,
                        payment_ref: String::new(),
                        confirmed_at_ms: 0,
                        idempotency_key,
                        request_hash,
                        group,
                    },
                );
                debug_assert!(inserted, "{id} inserted twice");
            }
            Event::Confirmed {
                id,
                order,
                payment_ref,
                at_ms,
            } => {
                let Some(r) = self.reservations.get_mut(self.id, id) else {
                    return;
                };
                r.status = ReservationStatus::Confirmed;
                r.order = Some(order);
                r.payment_ref = payment_ref;
                r.confirmed_at_ms = at_ms;
                for l in r.lines.as_slice() {
                    if let Some(s) = self.skus.get_mut(l.sku as usize) {
                        let qty = u64::from(l.qty);
                        s.reserved -= qty;
                        s.sold += qty;
                        assert!(s.invariant_holds(), "{}: counts exceed stock", s.spec.sku);
                    }
                }
                if order.shard() == self.id {
                    self.next_order = self.next_order.max(order.counter() + 1);
                }
                self.orders.insert(order, id);
            }
            Event::Released { id, reason, at_ms } => {
                let Some(r) = self.reservations.get_mut(self.id, id) else {
                    return;
                };
                r.status = if reason == ReleaseReason::Expired {
                    ReservationStatus::Expired
                } else {
                    ReservationStatus::Released
                };
                r.release_reason = Some(reason);
                r.released_at_ms = at_ms;
                let r = &*r;
                for l in r.lines.as_slice() {
                    let qty = u64::from(l.qty);
                    if let Some(s) = self.skus.get_mut(l.sku as usize) {
                        s.reserved -= qty;
                        s.gate.give_back(qty);
                    }
                    sub_usage(&mut self.usage, &r.buyer, l.sku, qty);
                }
                if reason == ReleaseReason::Aborted {
                    if let Some(key) = &r.idempotency_key {
                        if self.idempotency.get(key) == Some(&id) {
                            self.idempotency.remove(key);
                        }
                    }
                }
                self.settled.push_back((at_ms, id));
            }
        }
    }

    fn add_usage(&mut self, buyer: &BuyerId, sku: u32, qty: u64) {
        if let Some(u) = self.usage.get_mut(&UsageRef(buyer, sku)) {
            *u += qty;
        } else {
            self.usage.insert((buyer.clone(), sku), qty);
        }
    }

    // ----- invariants -----

    /// Checks every invariant by recomputing derived counts from the reservations.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut reserved = vec![0u64; self.skus.len()];
        let mut sold = vec![0u64; self.skus.len()];
        let mut usage: FastMap<(&BuyerId, u32), u64> = fast_map();
        let mut confirmed = 0usize;
        for r in self.reservations.iter() {
            for l in r.lines.as_slice() {
                let q = u64::from(l.qty);
                let i = l.sku as usize;
                if i >= self.skus.len() {
                    return Err(format!("{} holds an unknown SKU index", r.id));
                }
                match r.status {
                    ReservationStatus::Held => reserved[i] += q,
                    ReservationStatus::Confirmed => sold[i] += q,
                    _ => continue,
                }
                *usage.entry((&r.buyer, l.sku)).or_default() += q;
            }
            if r.status == ReservationStatus::Confirmed {
                if r.order.is_none() {
                    return Err(format!("{} confirmed without order", r.id));
                }
                confirmed += 1;
            }
        }
        if self.orders.len() != confirmed {
            return Err(format!(
                "{} orders indexed for {confirmed} confirmed reservations",
                self.orders.len()
            ));
        }
        if self.sku_index.len() != self.skus.len() {
            return Err("SKU index out of step".into());
        }
        for (i, s) in self.skus.iter().enumerate() {
            let id = &s.spec.sku;
            if self.sku_index.get(id) != Some(&(i as u32)) {
                return Err(format!("{id}: SKU index out of step"));
            }
            if s.reserved != reserved[i] || s.sold != sold[i] {
                return Err(format!(
                    "{id}: counts reserved {} sold {} but reservations say {} {}",
                    s.reserved, s.sold, reserved[i], sold[i]
                ));
            }
            if !s.invariant_holds() {
                return Err(format!("{id}: reserved + sold exceeds total"));
            }
        }
        for ((buyer, sku), u) in &usage {
            if self.used_idx(buyer, *sku) != *u {
                return Err(format!("usage of {buyer} on SKU #{sku} is off"));
            }
        }
        if self.usage.len() != usage.len() || self.usage.values().any(|u| *u == 0) {
            return Err("usage map has stale entries".into());
        }
        for (key, id) in &self.idempotency {
            match self.res(*id) {
                Some(r) if r.idempotency_key.as_ref() == Some(key) => {}
                _ => {
                    return Err(format!(
                        "idempotency key {key} points to a wrong reservation"
                    ))
                }
            }
        }
        for (order, id) in self.orders.iter() {
            match self.res(id) {
                Some(r) if r.order == Some(order) => {}
                _ => return Err(format!("order {order} points to a wrong reservation")),
            }
        }
        Ok(())
    }

    /// Checks that every gate equals its SKU's available units (only valid with no claim in
    /// flight).
    pub fn check_gates(&self) -> Result<(), String> {
        for s in &self.skus {
            if s.gate.available() != s.available() {
                return Err(format!(
                    "{}: gate {} != available {}",
                    s.spec.sku,
                    s.gate.available(),
                    s.available()
                ));
            }
        }
        Ok(())
    }
}

fn sub_usage(usage: &mut FastMap<(BuyerId, u32), u64>, buyer: &BuyerId, sku: u32, qty: u64) {
    let key = UsageRef(buyer, sku);
    let remove = match usage.get_mut(&key) {
        Some(u) => {
            *u = u.saturating_sub(qty);
            *u == 0
        }
        None => false,
    };
    if remove {
        usage.remove(&key);
    }
}

/// Checks one line against a SKU: stock, sale window, buyer limit (in that order). `used`
/// (the buyer's units of this SKU) is only looked up when the SKU has a per-buyer limit.
fn line_check(
    s: &SkuState,
    qty: u32,
    used: impl FnOnce() -> u64,
    now_ms: u64,
) -> Result<(), CommandError> {
    let q = u64::from(qty);
    if s.available() < q {
        return Err(CommandError::SoldOut {
            sku: s.spec.sku.clone(),
            available: s.available(),
        });
    }
    if !s.sale_open(now_ms) {
        return Err(CommandError::SaleNotOpen {
            sku: s.spec.sku.clone(),
            starts_at_ms: s.spec.sale_starts_at_ms,
            ends_at_ms: s.spec.sale_ends_at_ms,
        });
    }
    if let Some(limit) = s.spec.per_buyer_limit {
        let used = used();
        if used + q > u64::from(limit) {
            return Err(CommandError::BuyerLimit {
                sku: s.spec.sku.clone(),
                limit,
                already: used,
            });
        }
    }
    Ok(())
}

/// Validates the shape of reservation lines: 1..=MAX_LINES, qty ≥ 1, no SKU twice.
pub fn validate_lines<'a>(
    lines: impl ExactSizeIterator<Item = (&'a SkuId, u32)> + Clone,
) -> Result<(), CommandError> {
    let n = lines.len();
    if n == 0 {
        return Err(CommandError::Invalid(
            "a reservation needs at least one line".into(),
        ));
    }
    if n > MAX_LINES {
        return Err(CommandError::Invalid(format!(
            "at most {MAX_LINES} lines per reservation"
        )));
    }
    for (i, (sku, qty)) in lines.clone().enumerate() {
        if qty == 0 {
            return Err(CommandError::Invalid(format!(
                "qty of {sku} must be at least 1"
            )));
        }
        if lines.clone().take(i).any(|(other, _)| other == sku) {
            return Err(CommandError::Invalid(format!("SKU {sku} appears twice")));
        }
    }
    Ok(())
}

/// Validates an admin's SKU settings.
pub fn validate_spec(spec: &SkuSpec) -> Result<(), CommandError> {
    let invalid = |s: &str| Err(CommandError::Invalid(s.to_string()));
    if spec.stock > MAX_STOCK {
        return invalid("stock is above the maximum");
    }
    if spec.name.len() > MAX_NAME_LEN {
        return invalid("name is longer than 256 bytes");
    }
    if spec.reservation_ttl_ms == 0 {
        return invalid("reservation TTL must be positive");
    }
    if spec.per_buyer_limit == Some(0) {
        return invalid("per-buyer limit must be at least 1");
    }
    if let (Some(s), Some(e)) = (spec.sale_starts_at_ms, spec.sale_ends_at_ms) {
        if e <= s {
            return invalid("sale must end after it starts");
        }
    }
    Ok(())
}

/// Sum of qty × unit price (saturating).
pub fn total_cents(lines: &[Line]) -> u64 {
    lines.iter().fold(0u64, |acc, l| {
        acc.saturating_add(u64::from(l.qty).saturating_mul(l.unit_price_cents))
    })
}

fn bug(what: &str) -> CommandError {
    CommandError::Internal(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(stock: u64) -> SkuSpec {
        SkuSpec {
            sku: SkuId::new("t").unwrap(),
            name: "t".into(),
            price_cents: 5,
            stock,
            per_buyer_limit: None,
            sale_starts_at_ms: None,
            sale_ends_at_ms: None,
            reservation_ttl_ms: 1_000,
        }
    }

    fn one(shard: &mut Shard, now: u64) -> ReservationId {
        let cmd = ReserveCommand {
            buyer: BuyerId::new("b").unwrap(),
            lines: vec![(SkuId::new("t").unwrap(), 1)],
            idempotency_key: None,
            request_hash: 0,
            id: None,
            expires_at_ms: None,
            group: None,
            claimed: false,
        };
        shard.reserve(now, cmd, &mut NullSink).unwrap().id
    }

    /// Thousands of reservations across chunks; most are cancelled and forgotten, every 100th
    /// is confirmed and kept. Memory follows the survivors; snapshots round-trip.
    #[test]
    fn retention_drops_settled_reservations_and_keeps_orders() {
        let mut shard = Shard::new(0);
        shard.set_retention_ms(10);
        shard.upsert_sku(0, spec(1 << 20), &mut NullSink).unwrap();
        let n = 5 * CHUNK as usize;
        let mut kept = Vec::new();
        for i in 0..n {
            let id = one(&mut shard, 1);
            if i % 100 == 0 {
                let o = shard.confirm(2, id, "p".into(), &mut NullSink).unwrap();
                kept.push((id, o.order.unwrap()));
            } else {
                shard.cancel(2, id, &mut NullSink).unwrap();
            }
        }
        assert_eq!(shard.reservation_count(), n);
        assert_eq!(shard.expire(11, 100, &mut NullSink).unwrap().forgotten, 0);
        let out = shard.expire(12, usize::MAX, &mut NullSink).unwrap();
        assert_eq!(out.forgotten, n - kept.len());
        assert_eq!(shard.reservation_count(), kept.len());
        assert!(shard.reservations.own.len() <= 2, "old chunks dropped");
        shard.check_invariants().unwrap();
        for (id, order) in &kept {
            assert_eq!(
                shard.reservation(*id).unwrap().view.status,
                ReservationStatus::Confirmed
            );
            assert!(shard.order(*order).is_some());
        }
        let restored = Shard::restore(&shard.snapshot()).unwrap();
        assert_eq!(restored.state_hash(), shard.state_hash());
        // New ids keep working after the front chunks went away.
        let id = one(&mut shard, 20);
        assert!(shard.reservation(id).is_some());
        shard.check_invariants().unwrap();
    }
}
