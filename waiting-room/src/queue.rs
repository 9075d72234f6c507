//! One queue's state: its tickets, the pre-queue, the line, the random pool, the passes out,
//! the stock it was told about. Changed only by applying records ([`Queue::apply`]), so a
//! replay of the log rebuilds it exactly; the decisions (who is admitted, when) are the
//! room's, in [`crate::room`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use flashsale_protocol::queue::{AdmissionMethod, QueueId, QueueSpec};
use flashsale_protocol::queue_snapshot::{QueueSnapshot, TicketSnapshot, TicketSnapshotState};
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::limits::{MAX_POLL_MS, SOLD_OUT_POLL_MS};
use crate::pass::{PassClaims, PassKey};
use crate::poll::{self, PollSpread};
use crate::ticket::{Hold, Ticket, TicketState, TicketStatus, TicketView};

/// A record did not fit the state it was applied to (a corrupt or reordered log, or a bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue {queue}: {reason}")]
pub struct ApplyError {
    /// The queue.
    pub queue: QueueId,
    /// What did not fit.
    pub reason: String,
}

/// Before or after the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started: joins (from the pre-queue opening) wait in the pre-queue.
    Scheduled,
    /// Started at this Unix ms: the pre-queue was shuffled into the line; admission runs.
    Started {
        /// When the start was applied.
        at_ms: u64,
    },
}

/// Units of one SKU as last told by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkuStock {
    /// Unclaimed units (neither held nor sold).
    pub available: u64,
    /// Held units (may come back).
    pub reserved: u64,
}

/// A queue's counts, for the admin view and the invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Tickets ever issued.
    pub joined: u64,
    /// Tickets admitted, ever.
    pub admitted_total: u64,
    /// Admitted passes neither spent nor expired.
    pub active: u64,
    /// Active passes with no held reservation.
    pub idle: u64,
    /// Active passes holding a reservation.
    pub holding: u64,
    /// Passes spent by a confirm.
    pub spent: u64,
    /// Passes expired.
    pub expired: u64,
}

/// A held reservation of a pass found in a snapshot: (reservation, ticket, expiry in Unix ms).
pub type SnapshotHold = (ReservationId, u64, u64);

/// One queue.
#[derive(Debug)]
pub struct Queue {
    id: QueueId,
    spec: QueueSpec,
    seed: u64,
    phase: Phase,
    /// Ticket `n` is `tickets[n - 1]`.
    tickets: Vec<Ticket>,
    by_buyer: HashMap<BuyerId, u64>,
    /// Joined before the start, in join order (shuffled at the start).
    prequeue: Vec<u64>,
    /// The ordered line: the shuffled pre-queue, then (fifo) arrivals. Front = next.
    line: VecDeque<u64>,
    /// The `order` the next ticket appended to `line` gets.
    next_order: u64,
    /// Random method: arrivals after the start, drawn uniformly.
    pool: Vec<u64>,
    pool_index: HashMap<u64, usize>,
    /// (pass expiry, ticket) of passes that may expire idle.
    expiries: BTreeSet<(u64, u64)>,
    counts: Counts,
    stock: BTreeMap<SkuId, SkuStock>,
    /// Admission credit in thousandths of an admission, and when it was last topped up
    /// (`None` after a restart: the credit restarts empty at the first tick, so a restart
    /// never releases the admissions the downtime would have earned).
    pub(crate) credit_milli: u64,
    pub(crate) credit_at_ms: Option<u64>,
}

impl Queue {
    /// A new queue (from its `Configured` record).
    pub fn new(id: QueueId, spec: QueueSpec, seed: u64) -> Self {
        Queue {
            id,
            spec,
            seed,
            phase: Phase::Scheduled,
            tickets: Vec::new(),
            by_buyer: HashMap::new(),
            prequeue: Vec::new(),
            line: VecDeque::new(),
            next_order: 0,
            pool: Vec::new(),
            pool_index: HashMap::new(),
            expiries: BTreeSet::new(),
            counts: Counts::default(),
            stock: BTreeMap::new(),
            credit_milli: 0,
            credit_at_ms: None,
        }
    }

    /// The queue's name.
    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// Its configuration.
    pub fn spec(&self) -> &QueueSpec {
        &self.spec
    }

    /// The pre-queue shuffle's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Before or after the start.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Its counts.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// A ticket by number.
    pub fn ticket(&self, ticket: u64) -> Option<&Ticket> {
        let i = usize::try_from(ticket.checked_sub(1)?).ok()?;
        self.tickets.get(i)
    }

    fn ticket_mut(&mut self, ticket: u64) -> Result<&mut Ticket, ApplyError> {
        let id = self.id.clone();
        ticket
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.tickets.get_mut(i))
            .ok_or_else(|| ApplyError {
                queue: id,
                reason: format!("no ticket {ticket}"),
            })
    }

    /// The ticket of `buyer`, if it joined.
    pub fn ticket_of(&self, buyer: &BuyerId) -> Option<u64> {
        self.by_buyer.get(buyer).copied()
    }

    /// Tickets waiting (pre-queue, line and pool).
    pub fn waiting(&self) -> u64 {
        (self.prequeue.len() + self.line.len() + self.pool.len()) as u64
    }

    /// Tickets waiting in the ordered line and the random pool (after the start).
    pub(crate) fn next_waiting(&self) -> Option<u64> {
        self.line.front().copied()
    }

    /// Random method: the pool's tickets.
    pub(crate) fn pool(&self) -> &[u64] {
        &self.pool
    }

    /// Passes whose expiry is at or before `now_ms` (they may expire if idle).
    pub(crate) fn take_due_expiries(&mut self, now_ms: u64) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&(at, t)) = self.expiries.first() {
            if at > now_ms {
                break;
            }
            self.expiries.pop_first();
            due.push(t);
        }
        due
    }

    /// Units not claimed across the queue's SKUs; `None` until every SKU was observed.
    pub fn unclaimed(&self) -> Option<u64> {
        if self.spec.skus.iter().any(|s| !self.stock.contains_key(s)) {
            return None;
        }
        Some(self.stock.values().map(|s| s.available).sum())
    }

    /// Held units across the queue's SKUs (units that may come back).
    pub fn held(&self) -> u64 {
        self.stock.values().map(|s| s.reserved).sum()
    }

    /// Every SKU was observed and none has an unclaimed unit.
    pub fn sold_out(&self) -> bool {
        self.unclaimed() == Some(0)
    }

    /// Most idle passes allowed now: unclaimed units × overbooking (0 until stock is known).
    pub fn pass_cap(&self) -> u64 {
        let unclaimed = self.unclaimed().unwrap_or(0);
        unclaimed.saturating_mul(u64::from(self.spec.overbooking_pct)) / 100
    }

    /// Records the engine's counts of one of the queue's SKUs (not logged: the engine's log
    /// has them).
    pub(crate) fn observe(&mut self, sku: &SkuId, stock: SkuStock) {
        if self.spec.skus.contains(sku) {
            self.stock.insert(sku.clone(), stock);
        }
    }

    /// Sets the pass of an admitted ticket to `Reserving` (not logged).
    pub(crate) fn set_hold(&mut self, ticket: u64, hold: Hold) -> Result<(), ApplyError> {
        let t = self.ticket_mut(ticket)?;
        match &mut t.state {
            TicketState::Admitted { hold: h, .. } => {
                *h = hold;
                Ok(())
            }
            _ => Err(self.err(format!("ticket {ticket} is not admitted"))),
        }
    }

    /// Admitted passes with this hold, by ticket number.
    pub(crate) fn passes_with(&self, hold: Hold) -> Vec<u64> {
        (1..=self.tickets.len() as u64)
            .filter(|&n| {
                matches!(
                    self.ticket(n).map(|t| t.state),
                    Some(TicketState::Admitted { hold: h, .. }) if h == hold
                )
            })
            .collect()
    }

    /// Puts an idle pass back on the expiry watch (after a hold ended).
    pub(crate) fn watch_expiry(&mut self, ticket: u64) {
        if let Some(Ticket {
            state: TicketState::Admitted {
                pass_expires_at_ms, ..
            },
            ..
        }) = self.ticket(ticket)
        {
            self.expiries.insert((*pass_expires_at_ms, ticket));
        }
    }

    fn err(&self, reason: String) -> ApplyError {
        ApplyError {
            queue: self.id.clone(),
            reason,
        }
    }

    /// The live state, for a snapshot of the journal; `holds` gives each held reservation's
    /// expiry. A pass placing a reservation (`Reserving`, not logged) or not yet checked
    /// after a restart (`Checking`) is stored idle: a restart checks it again (ADR 0034).
    pub fn snapshot(&self, holds: &HashMap<ReservationId, (QueueId, u64, u64)>) -> QueueSnapshot {
        let tickets = self
            .tickets
            .iter()
            .map(|t| TicketSnapshot {
                buyer: t.buyer.clone(),
                joined_at_ms: t.joined_at_ms,
                state: match t.state {
                    TicketState::Prequeue => TicketSnapshotState::Prequeue,
                    TicketState::Waiting { order } => TicketSnapshotState::Waiting { order },
                    TicketState::Admitted {
                        admitted_at_ms,
                        admission,
                        pass_expires_at_ms,
                        hold,
                    } => TicketSnapshotState::Admitted {
                        admitted_at_ms,
                        admission,
                        pass_expires_at_ms,
                        hold: match hold {
                            Hold::Holding(r) => holds.get(&r).map(|h| (r, h.2)),
                            Hold::Idle | Hold::Reserving | Hold::Checking => None,
                        },
                    },
                    TicketState::Spent { at_ms } => TicketSnapshotState::Spent { at_ms },
                    TicketState::Expired { at_ms } => TicketSnapshotState::Expired { at_ms },
                },
            })
            .collect();
        QueueSnapshot {
            queue: self.id.clone(),
            spec: self.spec.clone(),
            seed: self.seed,
            started_at_ms: match self.phase {
                Phase::Scheduled => None,
                Phase::Started { at_ms } => Some(at_ms),
            },
            tickets,
            prequeue: self.prequeue.clone(),
            line: self.line.iter().copied().collect(),
            next_order: self.next_order,
            pool: self.pool.clone(),
            admitted_total: self.counts.admitted_total,
        }
    }

    /// A queue from its snapshot; returns it with its held reservations (reservation,
    /// ticket, expiry). Checks the invariants (a corrupt snapshot is refused).
    pub fn from_snapshot(s: QueueSnapshot) -> Result<(Queue, Vec<SnapshotHold>), ApplyError> {
        let mut q = Queue::new(s.queue, s.spec, s.seed);
        q.phase = match s.started_at_ms {
            None => Phase::Scheduled,
            Some(at_ms) => Phase::Started { at_ms },
        };
        let mut holds = Vec::new();
        for (i, t) in s.tickets.into_iter().enumerate() {
            let n = i as u64 + 1;
            let state = match t.state {
                TicketSnapshotState::Prequeue => TicketState::Prequeue,
                TicketSnapshotState::Waiting { order } => TicketState::Waiting { order },
                TicketSnapshotState::Admitted {
                    admitted_at_ms,
                    admission,
                    pass_expires_at_ms,
                    hold,
                } => {
                    q.counts.active += 1;
                    let hold = match hold {
                        Some((r, expires_at_ms)) => {
                            holds.push((r, n, expires_at_ms));
                            q.counts.holding += 1;
                            Hold::Holding(r)
                        }
                        None => {
                            q.counts.idle += 1;
                            q.expiries.insert((pass_expires_at_ms, n));
                            Hold::Idle
                        }
                    };
                    TicketState::Admitted {
                        admitted_at_ms,
                        admission,
                        pass_expires_at_ms,
                        hold,
                    }
                }
                TicketSnapshotState::Spent { at_ms } => {
                    q.counts.spent += 1;
                    TicketState::Spent { at_ms }
                }
                TicketSnapshotState::Expired { at_ms } => {
                    q.counts.expired += 1;
                    TicketState::Expired { at_ms }
                }
            };
            if q.by_buyer.insert(t.buyer.clone(), n).is_some() {
                return Err(q.err(format!("buyer {} holds two tickets", t.buyer)));
            }
            q.tickets.push(Ticket {
                buyer: t.buyer,
                joined_at_ms: t.joined_at_ms,
                state,
            });
        }
        q.counts.joined = q.tickets.len() as u64;
        q.counts.admitted_total = s.admitted_total;
        q.prequeue = s.prequeue;
        q.line = s.line.into_iter().collect();
        q.next_order = s.next_order;
        for (i, &t) in s.pool.iter().enumerate() {
            q.pool_index.insert(t, i);
        }
        q.pool = s.pool;
        q.check_invariants()
            .map_err(|e| q.err(format!("snapshot: {e}")))?;
        let listed = q.prequeue.iter().chain(&q.pool).all(|&t| {
            matches!(
                q.ticket(t).map(|t| t.state),
                Some(TicketState::Prequeue | TicketState::Waiting { order: None })
            )
        });
        if !listed || q.next_order < q.line.len() as u64 {
            return Err(q.err("snapshot: lines do not match the tickets".into()));
        }
        q.resume();
        Ok((q, holds))
    }

    /// After a replay: the admission credit is unknown (not logged) and restarts empty at
    /// the next tick.
    pub(crate) fn resume(&mut self) {
        self.credit_milli = 0;
        self.credit_at_ms = None;
    }

    /// A new configuration (same queue).
    pub(crate) fn apply_configured(&mut self, spec: QueueSpec) {
        self.stock.retain(|sku, _| spec.skus.contains(sku));
        self.spec = spec;
    }

    /// A buyer joined: returns its ticket number.
    pub(crate) fn apply_joined(&mut self, buyer: BuyerId, at_ms: u64) -> Result<u64, ApplyError> {
        if self.by_buyer.contains_key(&buyer) {
            return Err(self.err(format!("buyer {buyer} joined twice")));
        }
        let ticket = self.tickets.len() as u64 + 1;
        let state = match self.phase {
            Phase::Scheduled => {
                self.prequeue.push(ticket);
                TicketState::Prequeue
            }
            Phase::Started { .. } => self.enter_line(ticket),
        };
        self.tickets.push(Ticket {
            buyer: buyer.clone(),
            joined_at_ms: at_ms,
            state,
        });
        self.by_buyer.insert(buyer, ticket);
        self.counts.joined += 1;
        Ok(ticket)
    }

    fn enter_line(&mut self, ticket: u64) -> TicketState {
        match self.spec.method {
            AdmissionMethod::Fifo => self.enter_ordered(ticket),
            AdmissionMethod::Random => {
                self.pool_index.insert(ticket, self.pool.len());
                self.pool.push(ticket);
                TicketState::Waiting { order: None }
            }
        }
    }

    fn enter_ordered(&mut self, ticket: u64) -> TicketState {
        let order = self.next_order;
        self.next_order += 1;
        self.line.push_back(ticket);
        TicketState::Waiting { order: Some(order) }
    }

    /// The start: the pre-queue, shuffled by the seed, goes to the front of the line.
    pub(crate) fn apply_started(&mut self, at_ms: u64) -> Result<(), ApplyError> {
        if self.phase != Phase::Scheduled {
            return Err(self.err("started twice".into()));
        }
        let mut pre = std::mem::take(&mut self.prequeue);
        pre.shuffle(&mut ChaCha8Rng::seed_from_u64(self.seed));
        for ticket in pre {
            let state = self.enter_ordered(ticket);
            self.ticket_mut(ticket)?.state = state;
        }
        self.phase = Phase::Started { at_ms };
        self.credit_milli = 0;
        self.credit_at_ms = Some(at_ms);
        Ok(())
    }

    /// A waiting ticket was admitted.
    pub(crate) fn apply_admitted(
        &mut self,
        ticket: u64,
        pass_expires_at_ms: u64,
        at_ms: u64,
    ) -> Result<(), ApplyError> {
        let state = self.ticket(ticket).map(|t| t.state);
        match state {
            Some(TicketState::Waiting { order: Some(_) }) => {
                if self.line.front() != Some(&ticket) {
                    return Err(self.err(format!("ticket {ticket} admitted out of line order")));
                }
                self.line.pop_front();
            }
            Some(TicketState::Waiting { order: None }) => {
                let i = self
                    .pool_index
                    .remove(&ticket)
                    .ok_or_else(|| self.err(format!("ticket {ticket} not in the pool")))?;
                self.pool.swap_remove(i);
                if let Some(&moved) = self.pool.get(i) {
                    self.pool_index.insert(moved, i);
                }
            }
            _ => return Err(self.err(format!("ticket {ticket} is not waiting"))),
        }
        let admission = self.counts.admitted_total + 1;
        self.ticket_mut(ticket)?.state = TicketState::Admitted {
            admitted_at_ms: at_ms,
            admission,
            pass_expires_at_ms,
            hold: Hold::Idle,
        };
        self.expiries.insert((pass_expires_at_ms, ticket));
        self.counts.admitted_total = admission;
        self.counts.active += 1;
        self.counts.idle += 1;
        Ok(())
    }

    fn admitted_hold(&self, ticket: u64) -> Result<Hold, ApplyError> {
        match self.ticket(ticket).map(|t| t.state) {
            Some(TicketState::Admitted { hold, .. }) => Ok(hold),
            _ => Err(self.err(format!("ticket {ticket} is not admitted"))),
        }
    }

    /// The pass placed its reservation.
    pub(crate) fn apply_hold_placed(
        &mut self,
        ticket: u64,
        reservation: ReservationId,
    ) -> Result<(), ApplyError> {
        match self.admitted_hold(ticket)? {
            Hold::Idle | Hold::Reserving | Hold::Checking => {}
            Hold::Holding(r) => {
                return Err(self.err(format!("ticket {ticket} already holds {r}")));
            }
        }
        self.set_hold(ticket, Hold::Holding(reservation))?;
        self.counts.idle -= 1;
        self.counts.holding += 1;
        Ok(())
    }

    /// The pass's reservation was released: the pass is idle again.
    pub(crate) fn apply_hold_released(&mut self, ticket: u64) -> Result<(), ApplyError> {
        match self.admitted_hold(ticket)? {
            Hold::Holding(_) => {}
            _ => return Err(self.err(format!("ticket {ticket} holds nothing"))),
        }
        self.set_hold(ticket, Hold::Idle)?;
        self.watch_expiry(ticket);
        self.counts.holding -= 1;
        self.counts.idle += 1;
        Ok(())
    }

    /// The pass's reservation was confirmed: spent.
    pub(crate) fn apply_spent(&mut self, ticket: u64, at_ms: u64) -> Result<(), ApplyError> {
        match self.admitted_hold(ticket)? {
            Hold::Holding(_) => {}
            _ => return Err(self.err(format!("ticket {ticket} holds nothing to confirm"))),
        }
        self.ticket_mut(ticket)?.state = TicketState::Spent { at_ms };
        self.counts.holding -= 1;
        self.counts.active -= 1;
        self.counts.spent += 1;
        Ok(())
    }

    /// An idle pass expired.
    pub(crate) fn apply_pass_expired(&mut self, ticket: u64, at_ms: u64) -> Result<(), ApplyError> {
        match self.admitted_hold(ticket)? {
            Hold::Idle | Hold::Reserving | Hold::Checking => {}
            Hold::Holding(_) => {
                return Err(self.err(format!("ticket {ticket} expired while holding")));
            }
        }
        self.ticket_mut(ticket)?.state = TicketState::Expired { at_ms };
        self.counts.idle -= 1;
        self.counts.active -= 1;
        self.counts.expired += 1;
        Ok(())
    }

    /// Checks the queue's invariants (tests and debug builds).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut c = Counts {
            joined: self.tickets.len() as u64,
            admitted_total: self.counts.admitted_total,
            ..Counts::default()
        };
        let mut waiting = 0u64;
        for t in &self.tickets {
            match t.state {
                TicketState::Prequeue | TicketState::Waiting { .. } => waiting += 1,
                TicketState::Admitted { hold, .. } => {
                    c.active += 1;
                    match hold {
                        Hold::Holding(_) => c.holding += 1,
                        Hold::Idle | Hold::Reserving | Hold::Checking => c.idle += 1,
                    }
                }
                TicketState::Spent { .. } => c.spent += 1,
                TicketState::Expired { .. } => c.expired += 1,
            }
        }
        if c != self.counts {
            return Err(format!("counts {:?} != tickets {c:?}", self.counts));
        }
        if waiting != self.waiting() {
            return Err(format!(
                "{waiting} waiting tickets, lines hold {}",
                self.waiting()
            ));
        }
        if c.active + c.spent + c.expired != c.admitted_total {
            return Err("admitted tickets do not add up".into());
        }
        if c.active > u64::from(self.spec.max_active) {
            return Err(format!("{} active > max_active", c.active));
        }
        let head = self.next_order - self.line.len() as u64;
        for (i, &t) in self.line.iter().enumerate() {
            match self.ticket(t).map(|t| t.state) {
                Some(TicketState::Waiting { order: Some(o) }) if o == head + i as u64 => {}
                other => return Err(format!("line slot {i}: ticket {t} is {other:?}")),
            }
        }
        Ok(())
    }

    /// What a poll of `ticket` shows at `now_ms`.
    pub fn view(
        &self,
        ticket: u64,
        now_ms: u64,
        key: &PassKey,
        spread: PollSpread,
    ) -> Option<TicketView> {
        let t = self.ticket(ticket)?;
        let rate = self.spec.admit_per_s;
        let waiting = self.waiting();
        let mut v = TicketView {
            ticket,
            buyer: t.buyer.clone(),
            status: TicketStatus::Waiting,
            position: None,
            eta_s: None,
            poll_after_ms: None,
            pass: None,
            pass_expires_at_ms: None,
            admitted_at_ms: None,
            admission: None,
        };
        match t.state {
            TicketState::Prequeue | TicketState::Waiting { .. } if self.sold_out() => {
                v.status = TicketStatus::SoldOut;
                v.position = self.position(t.state);
                v.poll_after_ms = Some(if self.held() > 0 {
                    SOLD_OUT_POLL_MS
                } else {
                    MAX_POLL_MS
                });
            }
            TicketState::Prequeue => {
                let until_start_ms = self.spec.starts_at_ms.saturating_sub(now_ms);
                v.eta_s = Some(until_start_ms.div_ceil(1_000));
                v.poll_after_ms = Some(poll::poll_after_ms(until_start_ms, waiting));
            }
            TicketState::Waiting { order } => {
                v.position = self.position(t.state);
                let ahead = match order {
                    Some(_) => v.position.unwrap_or(1),
                    None => waiting,
                };
                let eta_s = poll::eta_s(ahead, rate);
                v.eta_s = Some(eta_s);
                v.poll_after_ms = Some(poll::poll_after_ms_at(
                    eta_s * 1_000,
                    waiting,
                    v.position,
                    spread,
                ));
            }
            TicketState::Admitted {
                pass_expires_at_ms,
                admitted_at_ms,
                admission,
                ..
            } => {
                v.status = TicketStatus::Admitted;
                v.admitted_at_ms = Some(admitted_at_ms);
                v.admission = Some(admission);
                v.pass = Some(key.sign(&PassClaims {
                    queue: self.id.clone(),
                    buyer: t.buyer.clone(),
                    ticket,
                    expires_at_ms: pass_expires_at_ms,
                }));
                v.pass_expires_at_ms = Some(pass_expires_at_ms);
            }
            TicketState::Spent { .. } => v.status = TicketStatus::Spent,
            TicketState::Expired { .. } => v.status = TicketStatus::Expired,
        }
        Some(v)
    }

    /// Place in the ordered line (1 = next).
    fn position(&self, state: TicketState) -> Option<u64> {
        match state {
            TicketState::Waiting { order: Some(o) } => {
                let head = self.next_order - self.line.len() as u64;
                Some(o - head + 1)
            }
            _ => None,
        }
    }
}
