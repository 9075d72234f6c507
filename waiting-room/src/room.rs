//! The waiting room: every queue, the SKU → queue index, the passes' reservations, and the
//! decisions (start, admission, pass expiry) taken at `tick`. Sans-IO: time comes in as
//! `now_ms`, randomness from an injected seed, stock counts from the caller; every change is a
//! [`QueueRecord`] that is applied at once and queued for the caller to make durable
//! ([`WaitingRoom::take_records`]). [`WaitingRoom::restore`] replays them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flashsale_protocol::queue::{QueueId, QueueRecord, QueueSpec};
use flashsale_protocol::queue_snapshot::RoomSnapshot;
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{self, ConfigError};
use crate::limits::{
    ADMIT_BURST_S, MAX_ADMISSIONS_PER_TICK, MAX_PENDING_RECORDS, MAX_QUEUES, MAX_TICKETS_PER_QUEUE,
};
use crate::pass::{PassError, PassKey};
use crate::poll::PollSpread;
use crate::queue::{ApplyError, Counts, Phase, Queue, SkuStock};
use crate::ticket::{Hold, Ticket, TicketState, TicketView};

/// Why a queue could not be created or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigureError {
    /// The configuration is invalid (422 with the field).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The server keeps [`MAX_QUEUES`] queues already.
    #[error("at most {MAX_QUEUES} queues")]
    TooManyQueues,
}

/// Why a buyer could not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// No such queue.
    #[error("no queue {0}")]
    UnknownQueue(QueueId),
    /// The queue does not take joins yet.
    #[error("queue {queue} opens at {opens_at_ms} (Unix ms)")]
    NotOpen {
        /// The queue.
        queue: QueueId,
        /// When joins open, Unix ms.
        opens_at_ms: u64,
    },
    /// The queue holds [`MAX_TICKETS_PER_QUEUE`] tickets already.
    #[error("queue {0} is full")]
    Full(QueueId),
}

/// Why a ticket could not be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// No such queue.
    #[error("no queue {0}")]
    UnknownQueue(QueueId),
    /// No such ticket in the queue.
    #[error("no ticket {ticket} in queue {queue}")]
    UnknownTicket {
        /// The queue.
        queue: QueueId,
        /// The ticket.
        ticket: u64,
    },
}

/// A pass checked and reserved for one reservation: report the outcome with
/// [`WaitingRoom::hold_placed`] or [`WaitingRoom::hold_failed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "report the reservation's outcome with hold_placed or hold_failed"]
pub struct HoldGuard {
    /// The queue.
    pub queue: QueueId,
    /// The ticket whose pass it is.
    pub ticket: u64,
}

/// A pass to check against the engine after a restart ([`WaitingRoom::distrust_idle_passes`]):
/// does its buyer hold a reservation of one of the queue's SKUs?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassToCheck {
    /// The queue.
    pub queue: QueueId,
    /// The ticket whose pass it is.
    pub ticket: u64,
    /// The ticket's buyer.
    pub buyer: BuyerId,
    /// The queue's SKUs.
    pub skus: Vec<SkuId>,
    /// When the pass was admitted, Unix ms: no reservation made with it is older.
    pub admitted_at_ms: u64,
}

/// What the engine said about a [`PassToCheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassCheck {
    /// The buyer holds this reservation of one of the queue's SKUs: the pass holds it (its
    /// `HoldPlaced` was lost in a crash, or never written).
    Holds {
        /// The reservation.
        reservation: ReservationId,
        /// When it expires unless confirmed or extended, Unix ms.
        expires_at_ms: u64,
    },
    /// The buyer confirmed this reservation of one of the queue's SKUs, made with the pass:
    /// the pass is spent (its `HoldPlaced` and `Spent` were both lost in a crash).
    Spent {
        /// The confirmed reservation.
        reservation: ReservationId,
        /// Its hold's expiry as the engine kept it, Unix ms (logged with the hold).
        expires_at_ms: u64,
        /// When the check learned it was confirmed, Unix ms.
        at_ms: u64,
    },
    /// The buyer holds no reservation of the queue's SKUs: the pass is idle.
    Free,
}

/// The admin's view of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    /// The queue.
    pub queue: QueueId,
    /// Its configuration.
    pub spec: QueueSpec,
    /// Started (admission runs).
    pub started: bool,
    /// Nothing of its SKUs is unclaimed now.
    pub sold_out: bool,
    /// Unclaimed units (`None` until the engine's counts of every SKU were seen).
    pub unclaimed: Option<u64>,
    /// Tickets waiting.
    pub waiting: u64,
    /// Its counts.
    pub counts: Counts,
}

/// Every queue of one server.
#[derive(Debug)]
pub struct WaitingRoom {
    key: PassKey,
    rng: ChaCha8Rng,
    queues: BTreeMap<QueueId, Queue>,
    sku_queue: HashMap<SkuId, QueueId>,
    /// Reservation → (queue, ticket, expires_at_ms) of every pass's held reservation.
    holds: HashMap<ReservationId, (QueueId, u64, u64)>,
    /// Passes marked [`Hold::Checking`] after a restart, awaiting [`Self::pass_checked`].
    unchecked: BTreeSet<(QueueId, u64)>,
    outbox: Vec<QueueRecord>,
    /// How waiting tickets' poll intervals are spread (a server setting, not logged).
    poll_spread: PollSpread,
}

impl WaitingRoom {
    /// An empty room signing passes with `key`, drawing with a generator seeded by `seed`.
    pub fn new(key: PassKey, seed: u64) -> Self {
        WaitingRoom {
            key,
            rng: ChaCha8Rng::seed_from_u64(seed),
            queues: BTreeMap::new(),
            sku_queue: HashMap::new(),
            holds: HashMap::new(),
            unchecked: BTreeSet::new(),
            outbox: Vec::new(),
            poll_spread: PollSpread::Even,
        }
    }

    /// Spreads waiting tickets' poll intervals by `spread` from now on.
    pub fn set_poll_spread(&mut self, spread: PollSpread) {
        self.poll_spread = spread;
    }

    /// A room rebuilt from its records, in log order.
    pub fn restore(
        key: PassKey,
        seed: u64,
        records: impl IntoIterator<Item = QueueRecord>,
    ) -> Result<Self, ApplyError> {
        Self::restore_from(key, seed, None, records)
    }

    /// A room rebuilt from a snapshot (if any) and the records logged after it, in order.
    pub fn restore_from(
        key: PassKey,
        seed: u64,
        snapshot: Option<RoomSnapshot>,
        records: impl IntoIterator<Item = QueueRecord>,
    ) -> Result<Self, ApplyError> {
        let mut room = WaitingRoom::new(key, seed);
        for s in snapshot.map(|s| s.queues).unwrap_or_default() {
            let (q, holds) = Queue::from_snapshot(s)?;
            let id = q.id().clone();
            for sku in &q.spec().skus {
                if let Some(other) = room.sku_queue.insert(sku.clone(), id.clone()) {
                    return Err(ApplyError {
                        queue: id,
                        reason: format!("snapshot: SKU {sku} is also in queue {other}"),
                    });
                }
            }
            for (r, ticket, expires_at_ms) in holds {
                room.holds.insert(r, (id.clone(), ticket, expires_at_ms));
            }
            room.queues.insert(id, q);
        }
        for r in records {
            room.apply(&r)?;
        }
        for q in room.queues.values_mut() {
            q.resume();
        }
        Ok(room)
    }

    /// The live state of every queue: with it, the records logged so far may be dropped
    /// (restore with [`Self::restore_from`]).
    pub fn snapshot(&self) -> RoomSnapshot {
        RoomSnapshot {
            queues: self
                .queues
                .values()
                .map(|q| q.snapshot(&self.holds))
                .collect(),
        }
    }

    /// After a restart: every admitted idle pass may have placed a reservation whose
    /// `HoldPlaced` record was lost (it is logged after the engine's write, not awaited: ADR
    /// 0032), so each is marked [`Hold::Checking`] — refused `in-use`, not expired — until
    /// [`Self::pass_checked`] tells what the engine holds for its buyer. Returns how many.
    pub fn distrust_idle_passes(&mut self) -> usize {
        for (id, q) in self.queues.iter_mut() {
            for t in q.passes_with(Hold::Idle) {
                if q.set_hold(t, Hold::Checking).is_ok() {
                    self.unchecked.insert((id.clone(), t));
                }
            }
        }
        self.unchecked.len()
    }

    /// Passes still waiting for their check against the engine.
    pub fn passes_unchecked(&self) -> usize {
        self.unchecked.len()
    }

    /// Up to `max` passes still waiting for their check against the engine, in queue and
    /// ticket order.
    pub fn passes_to_check(&self, max: usize) -> Vec<PassToCheck> {
        let mut out = Vec::new();
        for (id, t) in self.unchecked.iter().take(max) {
            let Some(q) = self.queues.get(id) else {
                continue;
            };
            if let Some(Ticket {
                buyer,
                state: TicketState::Admitted { admitted_at_ms, .. },
                ..
            }) = q.ticket(*t)
            {
                out.push(PassToCheck {
                    queue: id.clone(),
                    ticket: *t,
                    buyer: buyer.clone(),
                    skus: q.spec().skus.clone(),
                    admitted_at_ms: *admitted_at_ms,
                });
            }
        }
        out
    }

    /// The engine's answer for a pass being checked: it holds the reservation (a
    /// `HoldPlaced` is logged again), it was spent by a confirmed one (`HoldPlaced` and
    /// `Spent` are logged again) or it is idle (usable, and watched for expiry again).
    /// Ignored if the pass is no longer being checked.
    pub fn pass_checked(&mut self, queue: &QueueId, ticket: u64, check: PassCheck) {
        let checking = matches!(
            self.queues
                .get(queue)
                .and_then(|q| q.ticket(ticket))
                .map(|t| t.state),
            Some(TicketState::Admitted {
                hold: Hold::Checking,
                ..
            })
        );
        if !self.unchecked.remove(&(queue.clone(), ticket)) || !checking {
            return;
        }
        match check {
            PassCheck::Holds {
                reservation,
                expires_at_ms,
            } => self.emit(QueueRecord::HoldPlaced {
                queue: queue.clone(),
                ticket,
                reservation,
                expires_at_ms,
            }),
            // The hold and its end, in the order they happened: the replay applies both.
            PassCheck::Spent {
                reservation,
                expires_at_ms,
                at_ms,
            } => {
                self.emit(QueueRecord::HoldPlaced {
                    queue: queue.clone(),
                    ticket,
                    reservation,
                    expires_at_ms,
                });
                self.emit(QueueRecord::Spent {
                    queue: queue.clone(),
                    ticket,
                    at_ms,
                });
            }
            PassCheck::Free => {
                if let Some(q) = self.queues.get_mut(queue) {
                    if q.set_hold(ticket, Hold::Idle).is_ok() {
                        q.watch_expiry(ticket);
                    }
                }
            }
        }
    }

    /// The records made since the last call, in order: log them (durably) before answering.
    pub fn take_records(&mut self) -> Vec<QueueRecord> {
        std::mem::take(&mut self.outbox)
    }

    /// A queue.
    pub fn queue(&self, queue: &QueueId) -> Option<&Queue> {
        self.queues.get(queue)
    }

    /// Every queue's name.
    pub fn queue_ids(&self) -> impl Iterator<Item = &QueueId> {
        self.queues.keys()
    }

    /// Every queued SKU (the caller feeds their counts to [`Self::observe_stock`]).
    pub fn queued_skus(&self) -> Vec<SkuId> {
        let mut skus: Vec<SkuId> = self.sku_queue.keys().cloned().collect();
        skus.sort_unstable();
        skus
    }

    /// The queue guarding `sku`, if any.
    pub fn queue_of_sku(&self, sku: &SkuId) -> Option<&QueueId> {
        self.sku_queue.get(sku)
    }

    /// The admin's view of a queue.
    pub fn queue_view(&self, queue: &QueueId) -> Option<QueueView> {
        let q = self.queues.get(queue)?;
        Some(QueueView {
            queue: queue.clone(),
            spec: q.spec().clone(),
            started: matches!(q.phase(), Phase::Started { .. }),
            sold_out: q.sold_out(),
            unclaimed: q.unclaimed(),
            waiting: q.waiting(),
            counts: q.counts(),
        })
    }

    fn emit(&mut self, record: QueueRecord) {
        match self.apply(&record) {
            Ok(()) => {
                debug_assert!(
                    self.outbox.len() < MAX_PENDING_RECORDS,
                    "outbox not drained"
                );
                self.outbox.push(record);
            }
            // The room checked the record's preconditions: refusing it is a bug. The state is
            // unchanged and the record is not logged.
            Err(e) => debug_assert!(false, "room made an inapplicable record: {e}"),
        }
    }

    /// Applies one record (replay; commands apply theirs as they make them).
    pub fn apply(&mut self, record: &QueueRecord) -> Result<(), ApplyError> {
        let queue = record.queue().clone();
        if let QueueRecord::Configured { spec, seed, .. } = record {
            let q = self
                .queues
                .entry(queue.clone())
                .or_insert_with(|| Queue::new(queue.clone(), spec.clone(), *seed));
            let old: Vec<SkuId> = q.spec().skus.clone();
            q.apply_configured(spec.clone());
            for s in old {
                self.sku_queue.remove(&s);
            }
            for s in &spec.skus {
                self.sku_queue.insert(s.clone(), queue.clone());
            }
            return Ok(());
        }
        let q = self.queues.get_mut(&queue).ok_or_else(|| ApplyError {
            queue: queue.clone(),
            reason: "no such queue".into(),
        })?;
        match record {
            QueueRecord::Configured { .. } => Ok(()),
            QueueRecord::Joined { buyer, at_ms, .. } => {
                q.apply_joined(buyer.clone(), *at_ms).map(|_| ())
            }
            QueueRecord::Started { at_ms, .. } => q.apply_started(*at_ms),
            QueueRecord::Admitted {
                ticket,
                pass_expires_at_ms,
                at_ms,
                ..
            } => q.apply_admitted(*ticket, *pass_expires_at_ms, *at_ms),
            QueueRecord::HoldPlaced {
                ticket,
                reservation,
                expires_at_ms,
                ..
            } => {
                q.apply_hold_placed(*ticket, *reservation)?;
                self.holds
                    .insert(*reservation, (queue, *ticket, *expires_at_ms));
                Ok(())
            }
            QueueRecord::HoldReleased { ticket, .. } => {
                q.apply_hold_released(*ticket)?;
                self.holds.retain(|_, v| !(v.0 == queue && v.1 == *ticket));
                Ok(())
            }
            QueueRecord::Spent { ticket, at_ms, .. } => {
                q.apply_spent(*ticket, *at_ms)?;
                self.holds.retain(|_, v| !(v.0 == queue && v.1 == *ticket));
                Ok(())
            }
            QueueRecord::PassExpired { ticket, at_ms, .. } => q.apply_pass_expired(*ticket, *at_ms),
        }
    }

    /// Creates (`Ok(true)`) or changes (`Ok(false)`) a queue.
    pub fn configure(
        &mut self,
        queue: QueueId,
        spec: QueueSpec,
        now_ms: u64,
    ) -> Result<bool, ConfigureError> {
        config::validate(&spec)?;
        for sku in &spec.skus {
            if let Some(other) = self.sku_queue.get(sku) {
                if *other != queue {
                    return Err(ConfigError::new(
                        "skus",
                        format!("SKU {sku} is already in queue {other}"),
                    )
                    .into());
                }
            }
        }
        let (created, seed) = match self.queues.get(&queue) {
            Some(q) => {
                let started = matches!(q.phase(), Phase::Started { .. });
                config::validate_change(q.spec(), &spec, started)?;
                (false, q.seed())
            }
            None => {
                if self.queues.len() >= MAX_QUEUES {
                    return Err(ConfigureError::TooManyQueues);
                }
                (true, self.rng.gen())
            }
        };
        self.emit(QueueRecord::Configured {
            queue,
            spec,
            seed,
            at_ms: now_ms,
        });
        Ok(created)
    }

    /// Joins `buyer` to `queue` (the same ticket again if it joined before).
    pub fn join(
        &mut self,
        queue: &QueueId,
        buyer: &BuyerId,
        now_ms: u64,
    ) -> Result<TicketView, JoinError> {
        let q = self
            .queues
            .get(queue)
            .ok_or_else(|| JoinError::UnknownQueue(queue.clone()))?;
        if let Some(t) = q.ticket_of(buyer) {
            return self.view_or_unknown(queue, t, now_ms);
        }
        let spec = q.spec();
        let opens_at_ms = spec.prequeue_opens_at_ms.unwrap_or(spec.starts_at_ms);
        if now_ms < opens_at_ms {
            return Err(JoinError::NotOpen {
                queue: queue.clone(),
                opens_at_ms,
            });
        }
        if q.counts().joined as usize >= MAX_TICKETS_PER_QUEUE {
            return Err(JoinError::Full(queue.clone()));
        }
        // A join at or after the start lands after the shuffled pre-queue, tick or no tick.
        self.start_if_due(queue, now_ms);
        self.emit(QueueRecord::Joined {
            queue: queue.clone(),
            buyer: buyer.clone(),
            at_ms: now_ms,
        });
        let t = self
            .queues
            .get(queue)
            .and_then(|q| q.ticket_of(buyer))
            .ok_or_else(|| JoinError::UnknownQueue(queue.clone()))?;
        self.view_or_unknown(queue, t, now_ms)
    }

    fn view_or_unknown(
        &self,
        queue: &QueueId,
        ticket: u64,
        now_ms: u64,
    ) -> Result<TicketView, JoinError> {
        self.queues
            .get(queue)
            .and_then(|q| q.view(ticket, now_ms, &self.key, self.poll_spread))
            .ok_or_else(|| JoinError::UnknownQueue(queue.clone()))
    }

    /// A poll: the ticket as of `now_ms` (no record, no shard).
    pub fn ticket(
        &self,
        queue: &QueueId,
        ticket: u64,
        now_ms: u64,
    ) -> Result<TicketView, TicketError> {
        let q = self
            .queues
            .get(queue)
            .ok_or_else(|| TicketError::UnknownQueue(queue.clone()))?;
        q.view(ticket, now_ms, &self.key, self.poll_spread)
            .ok_or_else(|| TicketError::UnknownTicket {
                queue: queue.clone(),
                ticket,
            })
    }

    /// The engine's current counts of `sku`; admission and `sold_out` follow them.
    pub fn observe_stock(&mut self, sku: &SkuId, available: u64, reserved: u64) {
        let Some(queue) = self.sku_queue.get(sku) else {
            return;
        };
        if let Some(q) = self.queues.get_mut(queue) {
            q.observe(
                sku,
                SkuStock {
                    available,
                    reserved,
                },
            );
        }
    }

    fn start_if_due(&mut self, queue: &QueueId, now_ms: u64) {
        let due = self
            .queues
            .get(queue)
            .is_some_and(|q| q.phase() == Phase::Scheduled && now_ms >= q.spec().starts_at_ms);
        if due {
            self.emit(QueueRecord::Started {
                queue: queue.clone(),
                at_ms: now_ms,
            });
        }
    }

    /// Moves time to `now_ms`: starts due queues, expires idle passes, admits at the rate
    /// within `max_active` and the stock cap.
    pub fn tick(&mut self, now_ms: u64) {
        let ids: Vec<QueueId> = self.queues.keys().cloned().collect();
        for queue in ids {
            self.start_if_due(&queue, now_ms);
            self.expire_passes(&queue, now_ms);
            self.admit(&queue, now_ms);
        }
    }

    fn expire_passes(&mut self, queue: &QueueId, now_ms: u64) {
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        let due = q.take_due_expiries(now_ms);
        for ticket in due {
            let idle = matches!(
                self.queues
                    .get(queue)
                    .and_then(|q| q.ticket(ticket))
                    .map(|t| t.state),
                Some(TicketState::Admitted {
                    hold: Hold::Idle,
                    ..
                })
            );
            // A pass holding (or placing) a reservation ends with it; it is watched again
            // when it becomes idle.
            if idle {
                self.emit(QueueRecord::PassExpired {
                    queue: queue.clone(),
                    ticket,
                    at_ms: now_ms,
                });
            }
        }
    }

    fn admit(&mut self, queue: &QueueId, now_ms: u64) {
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        if q.phase() == Phase::Scheduled {
            return;
        }
        let rate = u64::from(q.spec().admit_per_s);
        match q.credit_at_ms {
            // Resumed after a restart: the credit starts empty now (no burst for the downtime).
            None => q.credit_at_ms = Some(now_ms),
            Some(at) if now_ms > at => {
                let earned = (now_ms - at).saturating_mul(rate);
                q.credit_milli = q
                    .credit_milli
                    .saturating_add(earned)
                    .min(rate * 1_000 * ADMIT_BURST_S);
                q.credit_at_ms = Some(now_ms);
            }
            Some(_) => {}
        }
        let c = q.counts();
        let by_rate = q.credit_milli / 1_000;
        let by_active = u64::from(q.spec().max_active).saturating_sub(c.active);
        let by_stock = q.pass_cap().saturating_sub(c.idle);
        let n = by_rate
            .min(by_active)
            .min(by_stock)
            .min(q.waiting())
            .min(MAX_ADMISSIONS_PER_TICK as u64);
        let ttl_ms = u64::from(q.spec().pass_ttl_s) * 1_000;
        for _ in 0..n {
            let Some(q) = self.queues.get_mut(queue) else {
                return;
            };
            let ticket = match q.next_waiting() {
                Some(t) => t,
                None => {
                    let pool = q.pool();
                    if pool.is_empty() {
                        break;
                    }
                    pool[self.rng.gen_range(0..pool.len())]
                }
            };
            q.credit_milli -= 1_000;
            self.emit(QueueRecord::Admitted {
                queue: queue.clone(),
                ticket,
                pass_expires_at_ms: now_ms + ttl_ms,
                at_ms: now_ms,
            });
        }
        if let Some(q) = self.queues.get(queue) {
            let c = q.counts();
            debug_assert!(c.active <= u64::from(q.spec().max_active));
            debug_assert!(n == 0 || c.idle <= q.pass_cap(), "stock cap broken");
        }
    }

    /// Checks a reservation's pass: `Ok(None)` when no line names a queued SKU, else the pass
    /// is marked in use until [`Self::hold_placed`] or [`Self::hold_failed`].
    pub fn begin_hold(
        &mut self,
        skus: &[SkuId],
        pass: Option<&str>,
        buyer: &BuyerId,
        now_ms: u64,
    ) -> Result<Option<HoldGuard>, PassError> {
        let mut queue: Option<&QueueId> = None;
        for sku in skus {
            if let Some(q) = self.sku_queue.get(sku) {
                match queue {
                    Some(first) if first != q => {
                        return Err(PassError::SeveralQueues {
                            first: first.clone(),
                            second: q.clone(),
                        })
                    }
                    _ => queue = Some(q),
                }
            }
        }
        let Some(queue) = queue.cloned() else {
            return Ok(None);
        };
        let pass = pass.ok_or_else(|| PassError::Required {
            queue: queue.clone(),
        })?;
        let claims = self.key.verify(pass)?;
        if claims.queue != queue {
            return Err(PassError::OtherQueue {
                pass_queue: claims.queue,
                queue,
            });
        }
        if claims.buyer != *buyer {
            return Err(PassError::OtherBuyer);
        }
        let q = self.queues.get_mut(&queue).ok_or(PassError::Forged)?;
        let t = q.ticket(claims.ticket).ok_or(PassError::Forged)?;
        if t.buyer != claims.buyer {
            return Err(PassError::Forged);
        }
        match t.state {
            TicketState::Spent { .. } => Err(PassError::Spent),
            TicketState::Expired { .. } => Err(PassError::Expired),
            TicketState::Prequeue | TicketState::Waiting { .. } => Err(PassError::Forged),
            TicketState::Admitted {
                pass_expires_at_ms,
                hold,
                ..
            } => {
                if pass_expires_at_ms != claims.expires_at_ms {
                    return Err(PassError::Forged);
                }
                if now_ms >= pass_expires_at_ms {
                    return Err(PassError::Expired);
                }
                match hold {
                    Hold::Idle => {}
                    Hold::Checking => return Err(PassError::Checking),
                    Hold::Reserving | Hold::Holding(_) => return Err(PassError::InUse),
                }
                q.set_hold(claims.ticket, Hold::Reserving)
                    .map_err(|_| PassError::Forged)?;
                Ok(Some(HoldGuard {
                    queue,
                    ticket: claims.ticket,
                }))
            }
        }
    }

    /// The reservation checked by `guard` was placed; it expires at `expires_at_ms` unless
    /// confirmed (see [`Self::due_holds`]).
    pub fn hold_placed(
        &mut self,
        guard: HoldGuard,
        reservation: ReservationId,
        expires_at_ms: u64,
    ) {
        self.emit(QueueRecord::HoldPlaced {
            queue: guard.queue,
            ticket: guard.ticket,
            reservation,
            expires_at_ms,
        });
    }

    /// Held reservations of passes whose expiry is at or before `now_ms`: the caller asks the
    /// engine what became of each (confirmed, released, or extended: [`Self::hold_extended`]).
    pub fn due_holds(&self, now_ms: u64) -> Vec<ReservationId> {
        let mut due: Vec<ReservationId> = self
            .holds
            .iter()
            .filter(|(_, h)| h.2 <= now_ms)
            .map(|(r, _)| *r)
            .collect();
        due.sort_unstable();
        due
    }

    /// A pass's reservation is still held, now until `expires_at_ms` (not logged: the
    /// engine's log has the extension; after a restart the next check learns it again).
    pub fn hold_extended(&mut self, reservation: ReservationId, expires_at_ms: u64) {
        if let Some(h) = self.holds.get_mut(&reservation) {
            h.2 = expires_at_ms;
        }
    }

    /// The reservation checked by `guard` was refused: the pass is idle again.
    pub fn hold_failed(&mut self, guard: HoldGuard) {
        if let Some(q) = self.queues.get_mut(&guard.queue) {
            if q.set_hold(guard.ticket, Hold::Idle).is_ok() {
                q.watch_expiry(guard.ticket);
            }
        }
    }

    /// A reservation was confirmed: its pass (if any) is spent. Returns whether it had one.
    pub fn reservation_confirmed(&mut self, reservation: ReservationId, now_ms: u64) -> bool {
        let Some((queue, ticket, _)) = self.holds.get(&reservation).cloned() else {
            return false;
        };
        self.emit(QueueRecord::Spent {
            queue,
            ticket,
            at_ms: now_ms,
        });
        true
    }

    /// A reservation was cancelled or expired: its pass (if any) may hold again while valid.
    pub fn reservation_released(&mut self, reservation: ReservationId, now_ms: u64) -> bool {
        let Some((queue, ticket, _)) = self.holds.get(&reservation).cloned() else {
            return false;
        };
        self.emit(QueueRecord::HoldReleased {
            queue,
            ticket,
            at_ms: now_ms,
        });
        true
    }

    /// Checks every queue's invariants (tests).
    pub fn check_invariants(&self) -> Result<(), String> {
        for q in self.queues.values() {
            q.check_invariants()?;
        }
        let holding: u64 = self.queues.values().map(|q| q.counts().holding).sum();
        if holding != self.holds.len() as u64 {
            return Err(format!(
                "{holding} holding passes, {} holds",
                self.holds.len()
            ));
        }
        Ok(())
    }
}
