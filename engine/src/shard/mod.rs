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
//! Keys live on the reservation's home shard (the shard of its first line).

mod route;
mod snapshot;

pub mod cluster;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use flashsale_protocol::event::Group;
use flashsale_protocol::{
    BuyerId, Event, IdempotencyKey, Line, LogRecord, OrderId, ReleaseReason, ReservationId,
    ShardId, SkuId, SkuSpec, MAX_LINES,
};

use crate::command::CommandError;
use crate::gate::StockGate;
use crate::observer::StockLevel;
use crate::view::{OrderView, ReservationStatus, ReservationView, SkuView};

pub use route::{
    assemble_order, assemble_reservation, plan, reconcile, request_hash, shard_of, FollowAction,
    GroupState, Plan, PlanPart,
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

/// One reservation (or, for a cross-shard reservation, this shard's part of it).
#[derive(Debug, Clone)]
struct Reservation {
    id: ReservationId,
    buyer: BuyerId,
    lines: Vec<Line>,
    created_at_ms: u64,
    expires_at_ms: u64,
    status: ReservationStatus,
    release_reason: Option<ReleaseReason>,
    order: Option<OrderId>,
    payment_ref: String,
    confirmed_at_ms: u64,
    idempotency_key: Option<IdempotencyKey>,
    request_hash: u64,
    group: Option<Group>,
}

impl Reservation {
    fn view(&self) -> ReservationView {
        ReservationView {
            id: self.id,
            status: self.status,
            buyer: self.buyer.clone(),
            lines: self.lines.clone(),
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            order: self.order,
            release_reason: self.release_reason,
        }
    }

    fn part(&self) -> PartView {
        PartView {
            view: self.view(),
            group: self.group,
        }
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
    /// This shard's `(sku, qty)` lines, in request order.
    pub lines: Vec<(SkuId, u32)>,
    /// The client's key (home shard only).
    pub idempotency_key: Option<IdempotencyKey>,
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

/// A successful reservation on one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveOutcome {
    /// The reservation as held on this shard.
    pub part: PartView,
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
    /// The home part after the decision.
    pub part: PartView,
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
}

/// Key for per-buyer usage, looked up without allocating.
struct UsageRef<'a>(&'a BuyerId, &'a SkuId);

impl Hash for UsageRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must match the Hash of the tuple `(BuyerId, SkuId)`.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl hashbrown::Equivalent<(BuyerId, SkuId)> for UsageRef<'_> {
    fn equivalent(&self, key: &(BuyerId, SkuId)) -> bool {
        *self.0 == key.0 && *self.1 == key.1
    }
}

/// A pure state machine owning some SKUs, their reservations and orders.
#[derive(Debug)]
pub struct Shard {
    id: ShardId,
    seq: u64,
    next_reservation: u64,
    next_order: u64,
    skus: FastMap<SkuId, SkuState>,
    reservations: FastMap<ReservationId, Reservation>,
    orders: FastMap<OrderId, ReservationId>,
    idempotency: FastMap<IdempotencyKey, ReservationId>,
    usage: FastMap<(BuyerId, SkuId), u64>,
    /// Home reservations by expiry; entries of reservations no longer held are skipped lazily.
    expiry: BinaryHeap<Reverse<(u64, ReservationId)>>,
}

impl Shard {
    /// An empty shard.
    pub fn new(id: ShardId) -> Self {
        Shard {
            id,
            seq: 0,
            next_reservation: 1,
            next_order: 1,
            skus: fast_map(),
            reservations: fast_map(),
            orders: fast_map(),
            idempotency: fast_map(),
            usage: fast_map(),
            expiry: BinaryHeap::new(),
        }
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

    /// Number of reservations (all states).
    pub fn reservation_count(&self) -> usize {
        self.reservations.len()
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
        let created = match self.skus.get(&spec.sku) {
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
            .skus
            .get(sku)
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
    pub fn reserve(
        &mut self,
        now_ms: u64,
        cmd: ReserveCommand,
        sink: &mut impl EventSink,
    ) -> Result<ReserveOutcome, CommandError> {
        if let Some(key) = &cmd.idempotency_key {
            if let Some(found) = self.lookup_key(key, cmd.request_hash) {
                self.give_back_claims(&cmd);
                return found.map(|part| ReserveOutcome {
                    part,
                    replayed: true,
                });
            }
        }
        if let Err(e) = self.check_reserve(now_ms, &cmd) {
            self.give_back_claims(&cmd);
            return Err(e);
        }
        let id = match cmd.id {
            Some(id) => id,
            None => ReservationId::compose(self.id, self.next_reservation),
        };
        let mut min_ttl = u64::MAX;
        let mut lines = Vec::with_capacity(cmd.lines.len());
        for (sku, qty) in &cmd.lines {
            // check_reserve verified existence.
            let price = match self.skus.get(sku) {
                Some(s) => {
                    min_ttl = min_ttl.min(s.spec.reservation_ttl_ms);
                    s.spec.price_cents
                }
                None => 0,
            };
            lines.push(Line {
                sku: sku.clone(),
                qty: *qty,
                unit_price_cents: price,
            });
        }
        let expires_at_ms = cmd
            .expires_at_ms
            .unwrap_or_else(|| now_ms.saturating_add(min_ttl));
        let ReserveCommand {
            buyer,
            idempotency_key,
            request_hash,
            group,
            claimed,
            ..
        } = cmd;
        self.emit(
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
        )?;
        let part = self
            .reservations
            .get(&id)
            .map(Reservation::part)
            .ok_or_else(|| bug("reservation missing after apply"))?;
        Ok(ReserveOutcome {
            part,
            replayed: false,
        })
    }

    /// The reservation stored under `key`, if any: `Some(Ok)` for the same request,
    /// `Some(Err(IdempotencyMismatch))` for another request, `None` if the key is unknown.
    pub fn lookup_key(
        &self,
        key: &IdempotencyKey,
        request_hash: u64,
    ) -> Option<Result<PartView, CommandError>> {
        let id = self.idempotency.get(key)?;
        let r = self.reservations.get(id)?;
        Some(if r.request_hash == request_hash {
            Ok(r.part())
        } else {
            Err(CommandError::IdempotencyMismatch)
        })
    }

    fn check_reserve(&self, now_ms: u64, cmd: &ReserveCommand) -> Result<(), CommandError> {
        validate_lines(cmd.lines.iter().map(|(s, q)| (s, *q)))?;
        if let Some(id) = cmd.id {
            if self.reservations.contains_key(&id) {
                return Err(CommandError::Invalid(format!("reservation {id} exists")));
            }
        }
        if let Some(exp) = cmd.expires_at_ms {
            if exp <= now_ms {
                return Err(CommandError::Invalid("expiry in the past".into()));
            }
        }
        for (sku, qty) in &cmd.lines {
            let s = self
                .skus
                .get(sku)
                .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))?;
            line_check(s, &cmd.buyer, *qty, self.used(&cmd.buyer, sku), now_ms)?;
        }
        Ok(())
    }

    fn give_back_claims(&self, cmd: &ReserveCommand) {
        if !cmd.claimed {
            return;
        }
        for (sku, qty) in &cmd.lines {
            if let Some(s) = self.skus.get(sku) {
                s.gate.give_back(u64::from(*qty));
            }
        }
    }

    /// Units of `sku` the buyer holds or bought.
    pub fn used(&self, buyer: &BuyerId, sku: &SkuId) -> u64 {
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
                self.emit(
                    Event::Confirmed {
                        id,
                        order,
                        payment_ref: payment_ref.clone(),
                        at_ms: now_ms,
                    },
                    sink,
                    false,
                )?;
                let part = self.part_or_bug(id)?;
                Ok(DecideOutcome {
                    part,
                    follow: group.map(|group| Decision {
                        id,
                        group,
                        action: FollowAction::Confirm {
                            order,
                            payment_ref,
                            at_ms: now_ms,
                        },
                    }),
                })
            }
            ReservationStatus::Confirmed if r.payment_ref == payment_ref => Ok(DecideOutcome {
                part: r.part(),
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
                    part: self.part_or_bug(id)?,
                    follow: group.map(|group| Decision {
                        id,
                        group,
                        action: FollowAction::Release(ReleaseReason::Cancelled),
                    }),
                })
            }
            ReservationStatus::Released => Ok(DecideOutcome {
                part: r.part(),
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
        match self.reservations.get(&id) {
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

    /// Expires at most `max` home reservations whose TTL passed (bounded work per call).
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
            let (group, skus) = match self.reservations.get(&id) {
                Some(r) if r.status == ReservationStatus::Held && r.expires_at_ms == at => (
                    r.group,
                    r.lines.iter().map(|l| l.sku.clone()).collect::<Vec<_>>(),
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
        Ok(out)
    }

    /// Earliest pending expiry (a hint for timers; may name an already-settled reservation).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    fn home_reservation(&self, id: ReservationId) -> Result<&Reservation, CommandError> {
        if id.shard() != self.id {
            return Err(CommandError::ReservationNotFound(id));
        }
        self.reservations
            .get(&id)
            .filter(|r| r.release_reason != Some(ReleaseReason::Aborted))
            .ok_or(CommandError::ReservationNotFound(id))
    }

    // ----- queries -----

    /// A SKU's view.
    pub fn sku(&self, sku: &SkuId) -> Option<SkuView> {
        self.skus.get(sku).map(SkuState::view)
    }

    /// A SKU's stock counts.
    pub fn stock_level(&self, sku: &SkuId) -> Option<StockLevel> {
        self.skus.get(sku).map(SkuState::level)
    }

    /// Every SKU's stock counts (unordered).
    pub fn stock_levels(&self) -> Vec<StockLevel> {
        self.skus.values().map(SkuState::level).collect()
    }

    /// SKUs ordered by id, strictly after `after`, at most `limit`.
    pub fn list_skus(&self, after: Option<&SkuId>, limit: usize) -> Vec<SkuView> {
        let mut ids: Vec<&SkuId> = self
            .skus
            .keys()
            .filter(|k| after.is_none_or(|a| *k > a))
            .collect();
        ids.sort_unstable();
        ids.truncate(limit);
        ids.into_iter()
            .filter_map(|k| self.skus.get(k).map(SkuState::view))
            .collect()
    }

    /// The gate of a SKU.
    pub fn gate(&self, sku: &SkuId) -> Option<Arc<StockGate>> {
        self.skus.get(sku).map(|s| s.gate.clone())
    }

    /// Every SKU's gate and reservation TTL.
    pub fn gates(&self) -> Vec<(SkuId, Arc<StockGate>, u64)> {
        self.skus
            .iter()
            .map(|(k, s)| (k.clone(), s.gate.clone(), s.spec.reservation_ttl_ms))
            .collect()
    }

    /// This shard's part of a reservation. A rolled-back attempt (`Aborted`) was never
    /// acknowledged to anyone and is reported as unknown.
    pub fn reservation(&self, id: ReservationId) -> Option<PartView> {
        self.reservations
            .get(&id)
            .filter(|r| r.release_reason != Some(ReleaseReason::Aborted))
            .map(Reservation::part)
    }

    /// The lines held on this shard by a reservation, including rolled-back attempts.
    pub fn reservation_lines(&self, id: ReservationId) -> Option<&[Line]> {
        self.reservations.get(&id).map(|r| r.lines.as_slice())
    }

    /// An order allocated by this shard, with this shard's lines, and the reservation's group.
    pub fn order(&self, id: OrderId) -> Option<(OrderView, Option<Group>)> {
        let rid = self.orders.get(&id)?;
        let r = self.reservations.get(rid)?;
        let view = OrderView {
            id,
            reservation: r.id,
            buyer: r.buyer.clone(),
            lines: r.lines.clone(),
            total_cents: total_cents(&r.lines),
            payment_ref: r.payment_ref.clone(),
            created_at_ms: r.confirmed_at_ms,
        };
        Some((view, r.group))
    }

    /// State of every cross-shard reservation part held or known here (for reconciliation).
    pub fn group_states(&self) -> Vec<GroupState> {
        let mut out: Vec<GroupState> = self
            .reservations
            .values()
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

    fn part_or_bug(&self, id: ReservationId) -> Result<PartView, CommandError> {
        self.reservation(id)
            .ok_or_else(|| bug("reservation missing after apply"))
    }

    // ----- events -----

    /// Logs and applies one event produced by a command.
    fn emit(
        &mut self,
        event: Event,
        sink: &mut impl EventSink,
        claimed: bool,
    ) -> Result<(), CommandError> {
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
        self.mutate(record.event, claimed);
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
        self.mutate(record.event, false);
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
                if let Some(s) = self.skus.get(&spec.sku) {
                    if spec.stock < s.reserved + s.sold {
                        return inconsistent(format!("stock of {} below committed", spec.sku));
                    }
                }
                Ok(())
            }
            Event::Restocked { sku, qty, .. } => match self.skus.get(sku) {
                Some(s) if s.spec.stock.saturating_add(*qty) <= MAX_STOCK => Ok(()),
                Some(_) => inconsistent(format!("restock of {sku} overflows")),
                None => inconsistent(format!("restock of unknown {sku}")),
            },
            Event::Reserved { id, lines, .. } => {
                if self.reservations.contains_key(id) {
                    return inconsistent(format!("{id} reserved twice"));
                }
                if lines.is_empty() || lines.len() > MAX_LINES {
                    return inconsistent(format!("{id} has {} lines", lines.len()));
                }
                for (i, l) in lines.iter().enumerate() {
                    if lines[..i].iter().any(|o| o.sku == l.sku) || l.qty == 0 {
                        return inconsistent(format!("{id} has a bad line for {}", l.sku));
                    }
                    match self.skus.get(&l.sku) {
                        Some(s) if s.available() >= u64::from(l.qty) => {}
                        _ => return inconsistent(format!("{id} holds unavailable {}", l.sku)),
                    }
                }
                Ok(())
            }
            Event::Confirmed { id, .. } | Event::Released { id, .. } => {
                match self.reservations.get(id) {
                    Some(r) if r.status == ReservationStatus::Held => Ok(()),
                    Some(r) => inconsistent(format!("{id} is {}", r.status.as_str())),
                    None => inconsistent(format!("unknown {id}")),
                }
            }
        }
    }

    /// Applies a checked event. `claimed`: a `Reserved` whose units were already taken from
    /// the gates by the caller's claims.
    fn mutate(&mut self, event: Event, claimed: bool) {
        match event {
            Event::SkuUpserted { spec, .. } => match self.skus.get_mut(&spec.sku) {
                Some(s) => {
                    let before = s.available();
                    s.spec = spec;
                    let after = s.available();
                    if after >= before {
                        s.gate.give_back(after - before);
                    } else {
                        s.gate.take(before - after);
                    }
                }
                None => {
                    let gate = Arc::new(StockGate::new(spec.stock));
                    self.skus.insert(
                        spec.sku.clone(),
                        SkuState {
                            spec,
                            reserved: 0,
                            sold: 0,
                            gate,
                        },
                    );
                }
            },
            Event::Restocked { sku, qty, .. } => {
                if let Some(s) = self.skus.get_mut(&sku) {
                    s.spec.stock += qty;
                    s.gate.give_back(qty);
                }
            }
            Event::Reserved {
                id,
                buyer,
                lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms,
            } => {
                for l in &lines {
                    let qty = u64::from(l.qty);
                    if let Some(s) = self.skus.get_mut(&l.sku) {
                        s.reserved += qty;
                        debug_assert!(s.reserved + s.sold <= s.spec.stock);
                        if !claimed {
                            s.gate.take(qty);
                        }
                    }
                    self.add_usage(&buyer, &l.sku, qty);
                }
                let home = id.shard() == self.id;
                if home {
                    self.next_reservation = self.next_reservation.max(id.counter() + 1);
                    self.expiry.push(Reverse((expires_at_ms, id)));
                    if let Some(key) = &idempotency_key {
                        self.idempotency.insert(key.clone(), id);
                    }
                }
                self.reservations.insert(
                    id,
                    Reservation {
                        id,
                        buyer,
                        lines,
                        created_at_ms: at_ms,
                        expires_at_ms,
                        status: ReservationStatus::Held,
                        release_reason: None,
                        order: None,
                        payment_ref: String::new(),
                        confirmed_at_ms: 0,
                        idempotency_key,
                        request_hash,
                        group,
                    },
                );
            }
            Event::Confirmed {
                id,
                order,
                payment_ref,
                at_ms,
            } => {
                let Some(r) = self.reservations.get_mut(&id) else {
                    return;
                };
                r.status = ReservationStatus::Confirmed;
                r.order = Some(order);
                r.payment_ref = payment_ref;
                r.confirmed_at_ms = at_ms;
                for l in &r.lines {
                    if let Some(s) = self.skus.get_mut(&l.sku) {
                        let qty = u64::from(l.qty);
                        s.reserved -= qty;
                        s.sold += qty;
                    }
                }
                if order.shard() == self.id {
                    self.next_order = self.next_order.max(order.counter() + 1);
                }
                self.orders.insert(order, id);
            }
            Event::Released { id, reason, .. } => {
                let Some(r) = self.reservations.get_mut(&id) else {
                    return;
                };
                r.status = if reason == ReleaseReason::Expired {
                    ReservationStatus::Expired
                } else {
                    ReservationStatus::Released
                };
                r.release_reason = Some(reason);
                let r = &*r;
                for l in &r.lines {
                    let qty = u64::from(l.qty);
                    if let Some(s) = self.skus.get_mut(&l.sku) {
                        s.reserved -= qty;
                        s.gate.give_back(qty);
                    }
                    sub_usage(&mut self.usage, &r.buyer, &l.sku, qty);
                }
                if reason == ReleaseReason::Aborted {
                    if let Some(key) = &r.idempotency_key {
                        if self.idempotency.get(key) == Some(&id) {
                            self.idempotency.remove(key);
                        }
                    }
                }
            }
        }
    }

    fn add_usage(&mut self, buyer: &BuyerId, sku: &SkuId, qty: u64) {
        if let Some(u) = self.usage.get_mut(&UsageRef(buyer, sku)) {
            *u += qty;
        } else {
            self.usage.insert((buyer.clone(), sku.clone()), qty);
        }
    }

    // ----- invariants -----

    /// Checks every invariant by recomputing derived counts from the reservations.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut reserved: FastMap<&SkuId, u64> = fast_map();
        let mut sold: FastMap<&SkuId, u64> = fast_map();
        let mut usage: FastMap<(&BuyerId, &SkuId), u64> = fast_map();
        for r in self.reservations.values() {
            for l in &r.lines {
                let q = u64::from(l.qty);
                match r.status {
                    ReservationStatus::Held => *reserved.entry(&l.sku).or_default() += q,
                    ReservationStatus::Confirmed => *sold.entry(&l.sku).or_default() += q,
                    _ => continue,
                }
                *usage.entry((&r.buyer, &l.sku)).or_default() += q;
            }
            if r.status == ReservationStatus::Confirmed && r.order.is_none() {
                return Err(format!("{} confirmed without order", r.id));
            }
        }
        for (id, s) in &self.skus {
            let res = reserved.get(id).copied().unwrap_or(0);
            let so = sold.get(id).copied().unwrap_or(0);
            if s.reserved != res || s.sold != so {
                return Err(format!(
                    "{id}: counts reserved {} sold {} but reservations say {res} {so}",
                    s.reserved, s.sold
                ));
            }
            if s.reserved + s.sold > s.spec.stock {
                return Err(format!("{id}: reserved + sold exceeds total"));
            }
        }
        for ((buyer, sku), u) in &usage {
            if self.used(buyer, sku) != *u {
                return Err(format!("usage of {buyer} on {sku} is off"));
            }
        }
        if self.usage.len() != usage.len() || self.usage.values().any(|u| *u == 0) {
            return Err("usage map has stale entries".into());
        }
        for (key, id) in &self.idempotency {
            match self.reservations.get(id) {
                Some(r) if r.idempotency_key.as_ref() == Some(key) => {}
                _ => {
                    return Err(format!(
                        "idempotency key {key} points to a wrong reservation"
                    ))
                }
            }
        }
        for (order, id) in &self.orders {
            match self.reservations.get(id) {
                Some(r) if r.order == Some(*order) => {}
                _ => return Err(format!("order {order} points to a wrong reservation")),
            }
        }
        Ok(())
    }

    /// Checks that every gate equals its SKU's available units (only valid with no claim in
    /// flight).
    pub fn check_gates(&self) -> Result<(), String> {
        for (id, s) in &self.skus {
            if s.gate.available() != s.available() {
                return Err(format!(
                    "{id}: gate {} != available {}",
                    s.gate.available(),
                    s.available()
                ));
            }
        }
        Ok(())
    }
}

fn sub_usage(usage: &mut FastMap<(BuyerId, SkuId), u64>, buyer: &BuyerId, sku: &SkuId, qty: u64) {
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

/// Checks one line against a SKU: stock, sale window, buyer limit (in that order).
fn line_check(
    s: &SkuState,
    _buyer: &BuyerId,
    qty: u32,
    used: u64,
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
    CommandError::Invalid(format!("internal error: {what}"))
}
