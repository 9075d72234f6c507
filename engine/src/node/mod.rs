//! The shard node: everything one shard's executor does, as a sans-IO state machine. It owns
//! the [`Shard`], its commit path ([`commit`]), the cross-shard reservations it coordinates as
//! their home ([`coordinator`]) and the idempotency keys in progress ([`keys`]). It takes
//! requests, messages from other shards, flush results and clock ticks — always with `now` —
//! and returns [`Output`]s: replies, messages to send, SKUs to publish. It never does I/O.
//!
//! Two drivers run it: the glommio runtime ([`crate::runtime`]: channels, a real log, real
//! timers) and the [`world::World`] of the simulation and the synchronous [`cluster::Cluster`]
//! (message queues, an in-memory log that can fail and lose its unflushed tail, a manual
//! clock). Both run this same code, so the simulation tests the protocol production runs.

pub mod caller;
pub mod cluster;
pub mod commit;
pub mod coordinator;
pub mod keys;
pub mod message;
pub mod world;

use flashsale_protocol::{PaymentRef, ReleaseReason, ReservationId, ScopedKey, ShardId, SkuId};

use crate::command::CommandError;
use crate::limits::{
    COORDINATION_DEADLINE_MS, DECISION_ACK_WAIT_MS, DUPLICATE_RETRY_AFTER_MS, MAX_COORDINATIONS,
};
use crate::shard::{ExtendCommand, FollowAction, GroupState, PartView, ReserveCommand, Shard};
use crate::view::ReservationStatus;

use self::commit::{AfterDurable, Batch, Commit, LogState, SnapshotPolicy};
use self::coordinator::{Action, Coordination, Event as CoordEvent, Phase};
use self::keys::{KeyStatus, PendingKeys};
use self::message::{AckWanted, Answer, GroupRequest, Output, PeerMsg, Published, Request};

type FastMap<K, V> = hashbrown::HashMap<K, V, ahash::RandomState>;

/// How a node runs.
#[derive(Debug, Clone, Copy)]
pub struct NodeConfig {
    /// Most reservations expired per tick.
    pub expiry_batch: usize,
    /// When to snapshot.
    pub snapshots: SnapshotPolicy,
}

/// Counts a node keeps for metrics; the driver takes them with [`ShardNode::take_counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Reservations that became held.
    pub held: u64,
    /// Reservations confirmed.
    pub confirmed: u64,
    /// Reservations cancelled or rolled back.
    pub released: u64,
    /// Reservations expired.
    pub expired: u64,
    /// Reservations refused for lack of stock.
    pub sold_out: u64,
}

/// Whether the node is still being recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Replayed, but cross-shard reservations are not reconciled yet: the clock must not
    /// expire anything (an expiry now would race the reconciliation's rollbacks).
    Recovering,
    /// Reconciled (the recovery's [`Request::ExpireAll`] ran): ticks expire as usual.
    Serving,
}

/// A cross-shard reservation this node coordinates, with who waits for it.
#[derive(Debug)]
struct Active<R> {
    coordination: Coordination,
    origin: R,
    key: Option<ScopedKey>,
}

/// A home decision whose parts have not all acknowledged it yet.
#[derive(Debug)]
struct Deciding<R> {
    /// Bit `s` set = shard `s` has not acknowledged.
    waiting: u64,
    since_ms: u64,
    to: R,
    answer: Answer,
}

/// One shard and everything around it, without I/O. `R` is the driver's reply handle.
#[derive(Debug)]
pub struct ShardNode<R> {
    id: ShardId,
    shard: Shard,
    commit: Commit<R>,
    active: FastMap<ReservationId, Active<R>>,
    keys: PendingKeys<R>,
    deciding: FastMap<ReservationId, Deciding<R>>,
    config: NodeConfig,
    counters: Counters,
    stage: Stage,
}

fn unavailable() -> CommandError {
    CommandError::Unavailable("the write-ahead log is not writable; retry later".into())
}

impl<R> ShardNode<R> {
    /// A node around a recovered shard whose records are all durable.
    pub fn new(shard: Shard, config: NodeConfig) -> Self {
        let durable = shard.seq();
        ShardNode {
            id: shard.id(),
            shard,
            commit: Commit::new(durable, config.snapshots),
            active: FastMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4)),
            keys: PendingKeys::default(),
            deciding: FastMap::with_hasher(ahash::RandomState::with_seeds(5, 6, 7, 8)),
            config,
            counters: Counters::default(),
            stage: Stage::Recovering,
        }
    }

    /// Where recovery stands.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// A node with nothing to recover (a fresh shard) serves at once.
    pub fn mark_recovered(&mut self) {
        self.stage = Stage::Serving;
    }

    /// The shard (read-only).
    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    /// This node's shard id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Whether the log takes writes.
    pub fn log_state(&self) -> LogState {
        self.commit.log_state()
    }

    /// Whether records wait for a flush.
    pub fn has_pending(&self) -> bool {
        self.commit.has_pending()
    }

    /// Cross-shard reservations being coordinated.
    pub fn coordinations(&self) -> usize {
        self.active.len()
    }

    /// Whether nothing is in progress: no coordination, no key, nothing to flush.
    pub fn is_quiet(&self) -> bool {
        self.active.is_empty()
            && self.deciding.is_empty()
            && self.keys.is_empty()
            && !self.commit.has_pending()
            && !self.commit.is_flushing()
    }

    /// The counts since the last call.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.counters)
    }

    // ----- inputs -----

    /// A caller's request; `to` receives exactly one reply (now or later).
    pub fn request(&mut self, now_ms: u64, req: Request, to: R, out: &mut Vec<Output<R>>) {
        if req.is_mutating() {
            if let LogState::Failing { .. } = self.commit.log_state() {
                return reply(out, to, Err(unavailable()));
            }
            if let Some(why) = self.commit.full() {
                return reply(out, to, Err(CommandError::Busy(why.into())));
            }
        }
        match req {
            Request::Upsert(spec) => {
                let r = self
                    .shard
                    .upsert_sku(now_ms, spec, &mut self.commit.pending);
                if let Ok((view, _)) = &r {
                    // Callers see the SKU (gate, TTL) once its record is durable.
                    let sku = view.sku.clone();
                    self.then_durable(now_ms, AfterDurable::Publish(sku), out);
                }
                self.reply_durable(now_ms, to, r.map(|(v, c)| Answer::Upserted(v, c)), out);
            }
            Request::Restock(sku, qty, key) => self.restock(now_ms, sku, qty, key, to, out),
            Request::Sku(sku) => {
                let r = self.shard.sku(&sku).ok_or(CommandError::SkuNotFound(sku));
                reply(out, to, r.map(Answer::Sku));
            }
            Request::List { after, limit } => {
                let page = self.shard.list_skus(after.as_ref(), limit);
                reply(out, to, Ok(Answer::Skus(page)));
            }
            Request::Reserve(cmd) => self.reserve_single(now_ms, *cmd, to, out),
            Request::ReserveGroup(g) => self.reserve_group(now_ms, *g, to, out),
            Request::Probe(key, hash) => self.probe(now_ms, key, hash, to, out),
            Request::Part(id) => {
                reply(out, to, Ok(Answer::MaybePart(self.shard.reservation(id))));
            }
            Request::Confirm(id, payment_ref) => self.confirm(now_ms, id, payment_ref, to, out),
            Request::Cancel(id) => self.cancel(now_ms, id, to, out),
            Request::Extend(cmd) => self.extend(now_ms, &cmd, to, out),
            Request::Order(id) => {
                let r = self
                    .shard
                    .order(id)
                    .ok_or_else(|| CommandError::OrderNotFound(id.to_string()));
                self.reply_durable(now_ms, to, r.map(|(v, g)| Answer::Order(v, g)), out);
            }
            Request::BuyerReservations(q) => {
                let mut page = self.shard.buyer_reservations(&q);
                // A cross-shard reservation still being placed is not shown: its other parts
                // may not be held yet and it may still roll back (no caller has its id yet).
                // The scan's stopping point is unchanged, so paging stays exact.
                page.items
                    .retain(|(_, p)| !self.active.contains_key(&p.view.id));
                // What the page shows must be durable first, as for a single reservation.
                self.reply_durable(now_ms, to, Ok(Answer::BuyerReservations(page)), out);
            }
            Request::BuyerOrders(q) => {
                let page = self.shard.buyer_orders(&q);
                self.reply_durable(now_ms, to, Ok(Answer::BuyerOrders(page)), out);
            }
            Request::GroupStates => {
                reply(out, to, Ok(Answer::GroupStates(self.shard.group_states())));
            }
            Request::Follow(id, action) => {
                let r = self
                    .shard
                    .follow(now_ms, id, &action, &mut self.commit.pending);
                self.reply_durable(now_ms, to, r.map(|c| Answer::Count(usize::from(c))), out);
            }
            Request::ExpireAll => {
                // The last step of recovery: from now on ticks expire too.
                self.stage = Stage::Serving;
                let n = self.expire(now_ms, usize::MAX, out);
                self.reply_durable(now_ms, to, Ok(Answer::Count(n)), out);
            }
        }
    }

    /// A message from another shard.
    pub fn peer(&mut self, now_ms: u64, msg: PeerMsg, out: &mut Vec<Output<R>>) {
        match msg {
            PeerMsg::ReservePart(cmd) => self.reserve_part(now_ms, *cmd, out),
            PeerMsg::PartReserved { id, from, result } => {
                let home_held = self.home_held(id, now_ms);
                let Some(a) = self.active.get_mut(&id) else {
                    return;
                };
                let mut actions = Vec::new();
                if !home_held && a.coordination.phase() == Phase::PartsPending {
                    actions.extend(a.coordination.on(CoordEvent::HomeLost));
                }
                actions.extend(a.coordination.on(CoordEvent::PartReplied {
                    shard: from,
                    result,
                }));
                self.drive(now_ms, id, actions, out);
            }
            PeerMsg::Follow { id, action, ack } => {
                let r = self
                    .shard
                    .follow(now_ms, id, &action, &mut self.commit.pending);
                if let Err(e) = r {
                    tracing::error!(shard = self.id, reservation = %id, error = %e, "follow failed");
                }
                if ack == AckWanted::Yes {
                    let home = id.shard();
                    self.then_durable(now_ms, AfterDurable::Ack { id, home }, out);
                }
            }
            PeerMsg::Followed { id, from } => {
                if let Some(a) = self.active.get_mut(&id) {
                    let actions = a
                        .coordination
                        .on(CoordEvent::PartRolledBack { shard: from });
                    self.drive(now_ms, id, actions, out);
                } else if let Some(d) = self.deciding.get_mut(&id) {
                    d.waiting &= !(1u64 << (from % 64));
                    if d.waiting == 0 {
                        if let Some(d) = self.deciding.remove(&id) {
                            reply(out, d.to, Ok(d.answer));
                        }
                    }
                }
            }
            PeerMsg::Resolve { id, from } => self.resolve(now_ms, id, from, out),
        }
    }

    /// Cuts the pending records into a batch for the driver to append and flush.
    pub fn cut(&mut self) -> Option<Batch> {
        self.commit.cut(&self.shard)
    }

    /// Takes back a batch the driver appended and flushed, to reuse its buffers for the next
    /// one (optional: a batch simply dropped costs its buffers' allocations next time).
    pub fn recycle(&mut self, batch: Batch) {
        self.commit.recycle(batch);
    }

    /// The batch in flight is durable.
    pub fn flushed(&mut self, now_ms: u64, out: &mut Vec<Output<R>>) {
        self.commit.flushed();
        while let Some(then) = self.commit.next_durable() {
            self.run_after(now_ms, then, out);
        }
    }

    /// The flush of the batch in flight failed; the driver retries it. `failing_for_ms`: how
    /// long the log has been failing (the driver's monotonic clock); past
    /// [`crate::limits::UNAVAILABLE_AFTER_MS`] everyone waiting hears `Unavailable`.
    pub fn flush_failed(&mut self, now_ms: u64, failing_for_ms: u64, out: &mut Vec<Output<R>>) {
        for then in self.commit.flush_failed(now_ms, failing_for_ms) {
            self.run_failed(now_ms, then, unavailable(), out);
        }
    }

    /// The clock advanced: expiries, duplicates that waited too long, stale parts.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Output<R>>) {
        if self.stage == Stage::Recovering {
            return;
        }
        if self.commit.log_state() == LogState::Writable {
            self.expire(now_ms, self.config.expiry_batch, out);
            for id in self
                .shard
                .stale_parts(now_ms, crate::limits::PART_RESOLVE_BATCH)
            {
                out.push(Output::Send {
                    to: id.shard(),
                    msg: PeerMsg::Resolve { id, from: self.id },
                });
            }
        }
        for to in self.keys.timed_out(now_ms) {
            reply(out, to, Err(in_progress()));
        }
        let overdue: Vec<ReservationId> = self
            .active
            .iter()
            .filter(|(_, a)| {
                now_ms.saturating_sub(a.coordination.started_ms()) >= COORDINATION_DEADLINE_MS
            })
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            if let Some(a) = self.active.get_mut(&id) {
                let actions = a.coordination.on(CoordEvent::Deadline);
                self.drive(now_ms, id, actions, out);
            }
        }
        let late: Vec<ReservationId> = self
            .deciding
            .iter()
            .filter(|(_, d)| now_ms.saturating_sub(d.since_ms) >= DECISION_ACK_WAIT_MS)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(d) = self.deciding.remove(&id) {
                reply(out, d.to, Ok(d.answer));
            }
        }
    }

    /// The driver stops: everything waiting hears that nothing more will be made durable.
    pub fn shut_down(&mut self, now_ms: u64, out: &mut Vec<Output<R>>) {
        let stopping = || CommandError::Busy("the engine is shutting down".into());
        for then in self.commit.give_up_all() {
            self.run_failed(now_ms, then, stopping(), out);
        }
        for (_, d) in self.deciding.drain() {
            reply(out, d.to, Ok(d.answer));
        }
        let ids: Vec<ReservationId> = self.active.keys().copied().collect();
        for id in ids {
            if let Some(a) = self.active.remove(&id) {
                self.finish_waiters(a, Err(stopping()), out);
            }
        }
    }

    fn restock(
        &mut self,
        now_ms: u64,
        sku: SkuId,
        qty: u64,
        key: Option<ScopedKey>,
        to: R,
        out: &mut Vec<Output<R>>,
    ) {
        let r = self
            .shard
            .restock(now_ms, &sku, qty, key, &mut self.commit.pending);
        if r.is_ok() {
            self.then_durable(now_ms, AfterDurable::Publish(sku), out);
        }
        self.reply_durable(now_ms, to, r.map(Answer::Sku), out);
    }

    fn confirm(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        payment_ref: PaymentRef,
        to: R,
        out: &mut Vec<Output<R>>,
    ) {
        let before = self.shard.seq();
        let r = self
            .shard
            .confirm(now_ms, id, payment_ref, &mut self.commit.pending);
        if r.is_ok() && self.shard.seq() != before {
            self.counters.confirmed += 1;
        }
        self.decided(now_ms, id, r.map(|o| o.follow), to, out);
    }

    fn cancel(&mut self, now_ms: u64, id: ReservationId, to: R, out: &mut Vec<Output<R>>) {
        let before = self.shard.seq();
        let r = self.shard.cancel(now_ms, id, &mut self.commit.pending);
        if r.is_ok() && self.shard.seq() != before {
            self.counters.released += 1;
        }
        self.decided(now_ms, id, r.map(|o| o.follow), to, out);
    }

    /// Extends a hold on the home; the parts follow once it is durable, as they follow a
    /// confirm. A reservation still being coordinated is refused as busy (its parts are not
    /// all held yet): retry.
    fn extend(&mut self, now_ms: u64, cmd: &ExtendCommand, to: R, out: &mut Vec<Output<R>>) {
        if self.active.contains_key(&cmd.id) {
            let busy = "the reservation is still being placed; retry";
            return reply(out, to, Err(CommandError::Busy(busy.into())));
        }
        let r = self.shard.extend(now_ms, cmd, &mut self.commit.pending);
        self.decided(now_ms, cmd.id, r.map(|o| o.follow), to, out);
    }

    // ----- reservations -----

    fn reserve_single(
        &mut self,
        now_ms: u64,
        cmd: ReserveCommand,
        to: R,
        out: &mut Vec<Output<R>>,
    ) {
        if let Some(to) = self.check_key(
            now_ms,
            cmd.idempotency_key.as_ref(),
            cmd.request_hash,
            to,
            out,
        ) {
            let r = self.shard.reserve(now_ms, cmd, &mut self.commit.pending);
            match r {
                Ok(o) => {
                    if !o.replayed {
                        self.counters.held += 1;
                    }
                    let answer = self.answer_for(o.id);
                    self.reply_durable(now_ms, to, answer, out);
                }
                Err(e) => self.refused(to, e, out),
            }
        }
    }

    fn reserve_group(&mut self, now_ms: u64, g: GroupRequest, to: R, out: &mut Vec<Output<R>>) {
        let mut parts = g.parts.into_iter();
        let Some((home, home_cmd)) = parts.next() else {
            return reply(out, to, Err(CommandError::Internal("empty group".into())));
        };
        assert_eq!(
            home, self.id,
            "a group sent to a shard that is not its home"
        );
        let others: Vec<(ShardId, ReserveCommand)> = parts.collect();
        if others.is_empty() {
            return self.reserve_single(now_ms, home_cmd, to, out);
        }
        let key = home_cmd.idempotency_key.clone();
        let hash = home_cmd.request_hash;
        let Some(to) = self.check_key(now_ms, key.as_ref(), hash, to, out) else {
            return;
        };
        if self.active.len() >= MAX_COORDINATIONS {
            let busy = CommandError::Busy("too many cross-shard reservations in progress".into());
            return reply(out, to, Err(busy));
        }
        match self
            .shard
            .reserve(now_ms, home_cmd, &mut self.commit.pending)
        {
            Err(e) => self.refused(to, e, out),
            Ok(o) if o.replayed => {
                let answer = self.answer_for(o.id);
                self.reply_durable(now_ms, to, answer, out);
            }
            Ok(o) => {
                let id = o.id;
                if let Some(k) = &key {
                    self.keys.begin(k.clone(), hash, id);
                }
                let coordination = Coordination::new(id, others, now_ms);
                let active = Active {
                    coordination,
                    origin: to,
                    key,
                };
                self.active.insert(id, active);
                self.then_durable(now_ms, AfterDurable::HomeHeld(id), out);
            }
        }
    }

    fn reserve_part(&mut self, now_ms: u64, cmd: ReserveCommand, out: &mut Vec<Output<R>>) {
        let Some(id) = cmd.id else {
            tracing::error!(shard = self.id, "a part without a reservation id");
            return;
        };
        let home = id.shard();
        let refusal = match self.commit.log_state() {
            LogState::Failing { .. } => Some(unavailable()),
            LogState::Writable => self.commit.full().map(|why| CommandError::Busy(why.into())),
        };
        let result = match refusal {
            Some(e) => Err(e),
            None => self
                .shard
                .reserve(now_ms, cmd, &mut self.commit.pending)
                .map(|_| ()),
        };
        match result {
            Ok(()) => self.then_durable(now_ms, AfterDurable::PartHeld { id, home }, out),
            Err(e) => {
                if matches!(e, CommandError::SoldOut { .. }) {
                    self.counters.sold_out += 1;
                }
                out.push(Output::Send {
                    to: home,
                    msg: PeerMsg::PartReserved {
                        id,
                        from: self.id,
                        result: Err(e),
                    },
                });
            }
        }
    }

    fn probe(&mut self, now_ms: u64, key: ScopedKey, hash: u64, to: R, out: &mut Vec<Output<R>>) {
        let Some(to) = self.check_key(now_ms, Some(&key), hash, to, out) else {
            return;
        };
        match self.shard.lookup_key(&key, hash) {
            None => reply(out, to, Ok(Answer::MaybePart(None))),
            Some(Ok(part)) => {
                self.reply_durable(now_ms, to, Ok(Answer::MaybePart(Some(part))), out)
            }
            Some(Err(e)) => reply(out, to, Err(e)),
        }
    }

    /// Lets a keyed request through (returns its reply handle) unless its key is in progress:
    /// then it waits for the outcome, or is refused.
    fn check_key(
        &mut self,
        now_ms: u64,
        key: Option<&ScopedKey>,
        hash: u64,
        to: R,
        out: &mut Vec<Output<R>>,
    ) -> Option<R> {
        let Some(key) = key else {
            return Some(to);
        };
        match self.keys.status(key, hash) {
            KeyStatus::Free => Some(to),
            KeyStatus::Mismatch => {
                reply(out, to, Err(CommandError::IdempotencyMismatch));
                None
            }
            KeyStatus::InProgress(_) => {
                if let Err(to) = self.keys.wait(key, to, now_ms) {
                    reply(out, to, Err(in_progress()));
                }
                None
            }
        }
    }

    fn refused(&mut self, to: R, e: CommandError, out: &mut Vec<Output<R>>) {
        if matches!(e, CommandError::SoldOut { .. }) {
            self.counters.sold_out += 1;
        }
        reply(out, to, Err(e));
    }

    /// The answer for a reservation this shard just reserved or replayed: the whole view when
    /// it is single-shard, else the home part for the caller to complete.
    fn answer_for(&self, id: ReservationId) -> Result<Answer, CommandError> {
        self.shard
            .reservation(id)
            .map(part_answer)
            .ok_or_else(|| CommandError::Internal(format!("{id} missing after apply")))
    }

    /// Whether the home part of `id` is held and its hold has not run out at `now_ms`.
    fn home_held(&self, id: ReservationId, now_ms: u64) -> bool {
        self.shard.reservation(id).is_some_and(|p| {
            p.view.status == ReservationStatus::Held && now_ms < p.view.expires_at_ms
        })
    }

    /// Carries out a coordination's actions.
    fn drive(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        actions: Vec<Action>,
        out: &mut Vec<Output<R>>,
    ) {
        for action in actions {
            match action {
                Action::SendPart { shard, cmd } => out.push(Output::Send {
                    to: shard,
                    msg: PeerMsg::ReservePart(cmd),
                }),
                Action::AbortPart { shard } => out.push(Output::Send {
                    to: shard,
                    msg: PeerMsg::Follow {
                        id,
                        action: FollowAction::Release(ReleaseReason::Aborted),
                        ack: AckWanted::Yes,
                    },
                }),
                Action::AbortHome => {
                    let abort = FollowAction::Release(ReleaseReason::Aborted);
                    match self
                        .shard
                        .follow(now_ms, id, &abort, &mut self.commit.pending)
                    {
                        Ok(true) => self.counters.released += 1,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::error!(reservation = %id, error = %e, "rollback failed")
                        }
                    }
                }
                Action::Finish(Ok(view)) => {
                    if let Some(a) = self.active.remove(&id) {
                        self.counters.held += 1;
                        self.finish_waiters(a, Ok(Answer::Reservation(view)), out);
                    }
                }
                // The caller hears of the failure once the home's rollback is durable: else
                // a crash could revive the parts that were already durable.
                Action::Finish(Err(error)) => {
                    self.then_durable(now_ms, AfterDurable::Refuse { id, error }, out)
                }
            }
        }
    }

    fn finish_waiters(
        &mut self,
        a: Active<R>,
        result: Result<Answer, CommandError>,
        out: &mut Vec<Output<R>>,
    ) {
        if let Some(key) = &a.key {
            for to in self.keys.finish(key) {
                reply(out, to, result.clone());
            }
        }
        reply(out, a.origin, result);
    }

    /// A home decision (confirm / cancel): once it is durable the parts follow it, and the
    /// caller hears back when they acknowledged (so every SKU's counts already show it).
    fn decided(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        r: Result<Option<crate::shard::Decision>, CommandError>,
        to: R,
        out: &mut Vec<Output<R>>,
    ) {
        let answer = r.and_then(|follow| {
            let part = self
                .shard
                .reservation(id)
                .ok_or_else(|| CommandError::Internal(format!("{id} missing after apply")))?;
            Ok((follow, Answer::Part(part)))
        });
        match answer {
            Err(e) => reply(out, to, Err(e)),
            Ok((None, answer)) => self.reply_durable(now_ms, to, Ok(answer), out),
            Ok((Some(decision), answer)) => {
                let then = AfterDurable::ForwardThenReply {
                    decision,
                    to,
                    answer,
                };
                self.then_durable(now_ms, then, out);
            }
        }
    }

    /// Sends a decision to every part of its group; returns the mask of part shards.
    fn forward(&self, d: &crate::shard::Decision, ack: AckWanted, out: &mut Vec<Output<R>>) -> u64 {
        let mut mask = 0u64;
        for s in 0..64u16 {
            if s != d.id.shard() && d.group.shards_mask & (1u64 << s) != 0 {
                mask |= 1u64 << s;
                out.push(Output::Send {
                    to: s,
                    msg: PeerMsg::Follow {
                        id: d.id,
                        action: d.action.clone(),
                        ack,
                    },
                });
            }
        }
        mask
    }

    /// Answers a part that asks what became of its reservation.
    fn resolve(&mut self, now_ms: u64, id: ReservationId, from: ShardId, out: &mut Vec<Output<R>>) {
        if self.active.contains_key(&id) {
            return;
        }
        let action = match self.shard.group_state(id) {
            None => Some(FollowAction::Release(ReleaseReason::Aborted)),
            Some(GroupState {
                status: ReservationStatus::Held,
                ..
            }) => None,
            Some(g) => match (g.status, g.order) {
                (ReservationStatus::Confirmed, Some(order)) => Some(FollowAction::Confirm {
                    order,
                    payment_ref: g.payment_ref,
                    at_ms: g.confirmed_at_ms,
                }),
                _ => Some(FollowAction::Release(
                    g.release_reason.unwrap_or(ReleaseReason::Aborted),
                )),
            },
        };
        if let Some(action) = action {
            // Only a decision that is durable here may reach a part: a part must never be
            // ahead of its home after a crash.
            let msg = PeerMsg::Follow {
                id,
                action,
                ack: AckWanted::No,
            };
            self.then_durable(now_ms, AfterDurable::Tell { to: from, msg }, out);
        }
    }

    fn expire(&mut self, now_ms: u64, max: usize, out: &mut Vec<Output<R>>) -> usize {
        let active = &self.active;
        let busy = |id: ReservationId| active.contains_key(&id);
        match self
            .shard
            .expire_except(now_ms, max, busy, &mut self.commit.pending)
        {
            Ok(o) => {
                self.counters.expired += o.expired as u64;
                for d in o.follows {
                    self.then_durable(now_ms, AfterDurable::Forward(d), out);
                }
                o.expired
            }
            Err(e) => {
                tracing::error!(shard = self.id, error = %e, "expiry failed");
                0
            }
        }
    }

    // ----- durability -----

    fn reply_durable(
        &mut self,
        now_ms: u64,
        to: R,
        result: Result<Answer, CommandError>,
        out: &mut Vec<Output<R>>,
    ) {
        match result {
            Err(e) => reply(out, to, Err(e)),
            Ok(answer) => self.then_durable(now_ms, AfterDurable::Reply { to, answer }, out),
        }
    }

    fn then_durable(&mut self, now_ms: u64, then: AfterDurable<R>, out: &mut Vec<Output<R>>) {
        if let Some(then) = self.commit.after_durable(&self.shard, then) {
            self.run_after(now_ms, then, out);
        }
    }

    /// What waited for durability, now that it is durable.
    fn run_after(&mut self, now_ms: u64, then: AfterDurable<R>, out: &mut Vec<Output<R>>) {
        match then {
            AfterDurable::Reply { to, answer } => reply(out, to, Ok(answer)),
            AfterDurable::HomeHeld(id) => {
                let event = match self.shard.reservation(id) {
                    Some(p)
                        if p.view.status == ReservationStatus::Held
                            && now_ms < p.view.expires_at_ms =>
                    {
                        CoordEvent::HomeDurable(p)
                    }
                    _ => CoordEvent::HomeFailed(CommandError::Busy(
                        "the reservation expired before all its parts were held; retry".into(),
                    )),
                };
                if let Some(a) = self.active.get_mut(&id) {
                    let actions = a.coordination.on(event);
                    self.drive(now_ms, id, actions, out);
                }
            }
            AfterDurable::Refuse { id, error } => {
                if let Some(a) = self.active.remove(&id) {
                    self.finish_waiters(a, Err(error), out);
                }
            }
            AfterDurable::Tell { to, msg } => out.push(Output::Send { to, msg }),
            AfterDurable::Publish(sku) => self.publish(&sku, out),
            AfterDurable::PartHeld { id, home } => {
                let result = self
                    .shard
                    .reservation(id)
                    .ok_or_else(|| CommandError::Internal(format!("part {id} missing")));
                out.push(Output::Send {
                    to: home,
                    msg: PeerMsg::PartReserved {
                        id,
                        from: self.id,
                        result,
                    },
                });
            }
            AfterDurable::Ack { id, home } => out.push(Output::Send {
                to: home,
                msg: PeerMsg::Followed { id, from: self.id },
            }),
            AfterDurable::Forward(d) => {
                self.forward(&d, AckWanted::No, out);
            }
            AfterDurable::ForwardThenReply {
                decision,
                to,
                answer,
            } => {
                let waiting = self.forward(&decision, AckWanted::Yes, out);
                if waiting == 0 {
                    reply(out, to, Ok(answer));
                } else {
                    let d = Deciding {
                        waiting,
                        since_ms: now_ms,
                        to,
                        answer,
                    };
                    if let Some(old) = self.deciding.insert(decision.id, d) {
                        reply(out, old.to, Ok(old.answer));
                    }
                }
            }
        }
    }

    /// What waited for durability, now that the log failed (or the node stops).
    fn run_failed(
        &mut self,
        now_ms: u64,
        then: AfterDurable<R>,
        e: CommandError,
        out: &mut Vec<Output<R>>,
    ) {
        match then {
            AfterDurable::Reply { to, .. } => reply(out, to, Err(e)),
            AfterDurable::HomeHeld(id) => {
                if let Some(a) = self.active.get_mut(&id) {
                    let actions = a.coordination.on(CoordEvent::HomeFailed(e));
                    self.drive(now_ms, id, actions, out);
                }
            }
            // The rollback may still reach the log, or not: the outcome is unknown to the
            // caller, which is what `Unavailable` says.
            AfterDurable::Refuse { id, .. } => {
                if let Some(a) = self.active.remove(&id) {
                    self.finish_waiters(a, Err(e), out);
                }
            }
            AfterDurable::Tell { .. } => {}
            // Applied in memory, so the record reaches the log later: publish anyway.
            AfterDurable::Publish(sku) => self.publish(&sku, out),
            AfterDurable::PartHeld { id, home } => out.push(Output::Send {
                to: home,
                msg: PeerMsg::PartReserved {
                    id,
                    from: self.id,
                    result: Err(e),
                },
            }),
            // The home only waits to finish a rollback or answer a decision; what the part
            // applied stays in memory and reaches the log later.
            AfterDurable::Ack { id, home } => out.push(Output::Send {
                to: home,
                msg: PeerMsg::Followed { id, from: self.id },
            }),
            AfterDurable::Forward(d) => {
                // Never given up (see `AfterDurable::fails_with_the_log`); forward anyway.
                self.run_after(now_ms, AfterDurable::Forward(d), out);
            }
            AfterDurable::ForwardThenReply { decision, to, .. } => {
                // The decision stays applied and reaches the log later: the parts follow then.
                reply(out, to, Err(e));
                self.then_durable(now_ms, AfterDurable::Forward(decision), out);
            }
        }
    }

    fn publish(&self, sku: &SkuId, out: &mut Vec<Output<R>>) {
        if let (Some(gate), Some(view)) = (self.shard.gate(sku), self.shard.sku(sku)) {
            out.push(Output::Publish(Published {
                sku: sku.clone(),
                gate,
                ttl_ms: view.reservation_ttl_ms,
                level: self.shard.stock_level(sku),
            }));
        }
    }
}

fn in_progress() -> CommandError {
    CommandError::IdempotencyInProgress {
        retry_after_ms: DUPLICATE_RETRY_AFTER_MS,
    }
}

fn reply<R>(out: &mut Vec<Output<R>>, to: R, result: Result<Answer, CommandError>) {
    out.push(Output::Reply { to, result });
}

/// The answer a caller gets for a home part: the whole view when it is single-shard, else the
/// home part for the caller to complete.
fn part_answer(part: PartView) -> Answer {
    if part.group.is_some() {
        Answer::Part(part)
    } else {
        Answer::Reservation(part.view)
    }
}
