//! What runs on each shard's executor: the command loop, the group-commit flusher, the expiry
//! ticker and the coordinators of cross-shard operations. The shard state lives in an
//! `Rc<RefCell<Core>>` that is never borrowed across an `.await`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashsale_protocol::event::Group;
use flashsale_protocol::{
    decode_record, encode_record, Event, LogRecord, OrderId, ReleaseReason, ReservationId,
    ScopedKey, ShardId, SkuId, SkuSpec,
};
use tokio::sync::oneshot;

use super::directory::Directory;
use super::metrics::Metrics;
use crate::clock::Clock;
use crate::command::CommandError;
use crate::log::{LogBackend, LogError, ShardLog};
use crate::observer::{StockLevel, StockObserver};
use crate::shard::{
    shard_of, Decision, EventSink, FollowAction, GroupState, PartView, ReserveCommand,
    ReserveOutcome, Shard,
};

fn part_or_bug(shard: &Shard, id: ReservationId) -> Result<PartView, CommandError> {
    shard
        .reservation(id)
        .ok_or_else(|| CommandError::Internal(format!("{id} missing after apply")))
}
use crate::view::{OrderView, SkuView};

/// How long a caller waits for durability while the log fails before getting `Unavailable`.
pub(crate) const UNAVAILABLE_AFTER: Duration = Duration::from_secs(2);

/// A reply channel.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, CommandError>>;

/// A cross-shard reservation, coordinated by its home shard.
#[derive(Debug)]
pub(crate) struct GroupReserve {
    /// `(shard, command)`, home first; every command carries claims.
    pub(crate) parts: Vec<(ShardId, ReserveCommand)>,
}

/// A message to a shard.
#[derive(Debug)]
pub(crate) enum Cmd {
    Upsert(SkuSpec, Reply<(SkuView, bool)>),
    Restock(SkuId, u64, Reply<SkuView>),
    Sku(SkuId, Reply<SkuView>),
    List(Option<SkuId>, usize, Reply<Vec<SkuView>>),
    Reserve(Box<ReserveCommand>, Reply<PartView>),
    Group(Box<GroupReserve>, Reply<PartView>),
    Probe(ScopedKey, u64, Reply<Option<PartView>>),
    Part(ReservationId, Reply<Option<PartView>>),
    Confirm(ReservationId, String, Reply<PartView>),
    Cancel(ReservationId, Reply<PartView>),
    Follow(ReservationId, FollowAction, Reply<()>),
    Order(OrderId, Reply<(OrderView, Option<Group>)>),
    GroupStates(Reply<Vec<GroupState>>),
    ExpireAll(Reply<usize>),
    Shutdown,
}

/// Everything a shard executor shares with the rest of the engine.
pub(crate) struct Ctx {
    pub(crate) id: ShardId,
    pub(crate) shard_count: usize,
    pub(crate) peers: Vec<flume::Sender<Cmd>>,
    pub(crate) dir: Arc<Directory>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) writable: Arc<[AtomicBool]>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Option<Arc<dyn StockObserver>>,
    pub(crate) expiry_tick: Duration,
    pub(crate) expiry_batch: usize,
    pub(crate) snapshot_every: u64,
    pub(crate) snapshot_state_factor: u64,
}

struct Waiter {
    seq: u64,
    since: Instant,
    done: Box<dyn FnOnce(Result<(), CommandError>)>,
}

/// Records produced by commands, waiting for the next flush.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    index: Vec<(u64, usize, usize)>,
    dirty_skus: Vec<SkuId>,
    dirty_reservations: Vec<ReservationId>,
    encode_failures: u64,
}

impl EventSink for Pending {
    fn record(&mut self, record: &LogRecord) {
        let start = self.bytes.len();
        if encode_record(record, &mut self.bytes).is_err() {
            // Cannot happen for in-memory owned data; counted so it is visible if it does.
            self.encode_failures += 1;
            self.bytes.truncate(start);
            return;
        }
        self.index.push((record.seq, start, self.bytes.len()));
        match &record.event {
            Event::SkuUpserted { spec, .. } => self.dirty_skus.push(spec.sku.clone()),
            Event::Restocked { sku, .. } => self.dirty_skus.push(sku.clone()),
            Event::Reserved { lines, .. } => {
                self.dirty_skus.extend(lines.iter().map(|l| l.sku.clone()))
            }
            Event::Confirmed { id, .. } | Event::Released { id, .. } => {
                self.dirty_reservations.push(*id)
            }
        }
    }
}

/// A batch cut from the pending records, to append and flush.
struct Batch {
    bytes: Vec<u8>,
    index: Vec<(u64, usize, usize)>,
    last_seq: u64,
    levels: Vec<StockLevel>,
    snapshot: Option<Vec<u8>>,
}

pub(crate) struct Core {
    shard: Shard,
    pending: Pending,
    durable_seq: u64,
    waiters: VecDeque<Waiter>,
    writable: bool,
    shutting_down: bool,
    events_since_snapshot: u64,
    wake: flume::Sender<()>,
}

impl Core {
    fn new(shard: Shard, wake: flume::Sender<()>) -> Self {
        let seq = shard.seq();
        Core {
            shard,
            pending: Pending::default(),
            durable_seq: seq,
            waiters: VecDeque::new(),
            writable: true,
            shutting_down: false,
            events_since_snapshot: 0,
            wake,
        }
    }

    /// Calls `done` once everything applied so far is durable (now, if it already is).
    fn after_durable(&mut self, done: Box<dyn FnOnce(Result<(), CommandError>)>) {
        let seq = self.shard.seq();
        if seq <= self.durable_seq {
            done(Ok(()));
        } else {
            self.waiters.push_back(Waiter {
                seq,
                since: Instant::now(),
                done,
            });
            // Whoever waits, the flusher must run (coordinator tasks apply outside the loop).
            let _ = self.wake.try_send(());
        }
    }

    fn reply_durable<T: 'static>(&mut self, reply: Reply<T>, result: Result<T, CommandError>) {
        match result {
            Err(e) => {
                let _ = reply.send(Err(e));
            }
            Ok(v) => self.after_durable(Box::new(move |r| {
                let _ = reply.send(r.map(|()| v));
            })),
        }
    }

    fn has_pending(&self) -> bool {
        !self.pending.index.is_empty()
    }

    fn cut(&mut self, snapshot_every: u64, state_factor: u64) -> Batch {
        let p = std::mem::take(&mut self.pending);
        let last_seq = p.index.last().map_or(self.durable_seq, |(s, _, _)| *s);
        let mut skus = p.dirty_skus;
        for id in &p.dirty_reservations {
            skus.extend(self.shard.reservation_skus(*id).cloned());
        }
        skus.sort_unstable();
        skus.dedup();
        let levels = skus
            .iter()
            .filter_map(|s| self.shard.stock_level(s))
            .collect();
        self.events_since_snapshot += p.index.len() as u64;
        let state_size = self.shard.reservation_count() as u64;
        let period = snapshot_every.max(state_factor.saturating_mul(state_size));
        let snapshot = (snapshot_every > 0 && self.events_since_snapshot >= period).then(|| {
            self.events_since_snapshot = 0;
            self.shard.snapshot()
        });
        debug_assert_eq!(last_seq, self.shard.seq());
        Batch {
            bytes: p.bytes,
            index: p.index,
            last_seq,
            levels,
            snapshot,
        }
    }

    fn release_waiters(&mut self) {
        while let Some(w) = self.waiters.front() {
            if w.seq > self.durable_seq {
                break;
            }
            if let Some(w) = self.waiters.pop_front() {
                (w.done)(Ok(()));
            }
        }
    }

    fn fail_old_waiters(&mut self, force: bool) {
        let now = Instant::now();
        while let Some(w) = self.waiters.front() {
            if !force && now.duration_since(w.since) < UNAVAILABLE_AFTER {
                break;
            }
            if let Some(w) = self.waiters.pop_front() {
                (w.done)(Err(CommandError::Unavailable(
                    "the write-ahead log is not writable".into(),
                )));
            }
        }
    }
}

type CoreRef = Rc<RefCell<Core>>;

fn unavailable() -> CommandError {
    CommandError::Unavailable("the write-ahead log is not writable; retry later".into())
}

/// Opens the log, recovers the shard and returns it with the log.
pub(crate) async fn recover(
    id: ShardId,
    shard_count: usize,
    backend: &Arc<dyn LogBackend>,
) -> Result<(Shard, Box<dyn ShardLog>), LogError> {
    let mut log = backend.open(id, shard_count as u16).await?;
    let (after, mut shard) = match log.load_snapshot().await? {
        Some((seq, bytes)) => {
            let shard = Shard::restore(&bytes)
                .map_err(|e| LogError::Corrupt(format!("snapshot at seq {seq}: {e}")))?;
            if shard.seq() != seq || shard.id() != id {
                return Err(LogError::Corrupt(format!(
                    "snapshot claims seq {seq} of shard {id} but holds seq {} of shard {}",
                    shard.seq(),
                    shard.id()
                )));
            }
            (seq, shard)
        }
        None => (0, Shard::new(id)),
    };
    let mut apply = |seq: u64, bytes: &[u8]| -> Result<(), LogError> {
        let record = decode_record(bytes).map_err(|e| LogError::Replay {
            seq,
            reason: e.to_string(),
        })?;
        if record.seq != seq {
            return Err(LogError::Replay {
                seq,
                reason: format!("record says seq {}", record.seq),
            });
        }
        shard.apply_record(record).map_err(|e| LogError::Replay {
            seq,
            reason: e.to_string(),
        })
    };
    log.replay(after, &mut apply).await?;
    for (sku, _, _) in shard.gates() {
        let owner = shard_of(&sku, shard_count);
        if owner != id {
            return Err(LogError::Corrupt(format!(
                "SKU {sku} belongs to shard {owner} of {shard_count}, found in shard {id}: \
                 the shard count changed since the data was written"
            )));
        }
    }
    Ok((shard, log))
}

/// Runs a recovered shard until shutdown.
pub(crate) async fn run(
    ctx: Rc<Ctx>,
    shard: Shard,
    log: Box<dyn ShardLog>,
    rx: flume::Receiver<Cmd>,
) {
    let (wake_tx, wake_rx) = flume::bounded::<()>(1);
    let core: CoreRef = Rc::new(RefCell::new(Core::new(shard, wake_tx.clone())));
    let flusher = glommio::spawn_local(flusher(ctx.clone(), core.clone(), log, wake_rx));
    let ticker = glommio::spawn_local(ticker(ctx.clone(), core.clone(), wake_tx.clone()));
    while let Ok(cmd) = rx.recv_async().await {
        if matches!(cmd, Cmd::Shutdown) {
            break;
        }
        handle(&ctx, &core, cmd);
        if core.borrow().has_pending() {
            let _ = wake_tx.try_send(());
        }
    }
    core.borrow_mut().shutting_down = true;
    let _ = wake_tx.try_send(());
    drop(wake_tx);
    ticker.cancel().await;
    flusher.await;
    // Anything still waiting was never made durable.
    core.borrow_mut().fail_old_waiters(true);
    // Refuse whatever is still queued.
    while let Ok(cmd) = rx.try_recv() {
        refuse(
            &ctx,
            cmd,
            CommandError::Busy("engine is shutting down".into()),
        );
    }
}

fn refuse(ctx: &Ctx, cmd: Cmd, e: CommandError) {
    match cmd {
        Cmd::Upsert(_, r) => drop(r.send(Err(e))),
        Cmd::Restock(_, _, r) => drop(r.send(Err(e))),
        Cmd::Sku(_, r) => drop(r.send(Err(e))),
        Cmd::List(_, _, r) => drop(r.send(Err(e))),
        Cmd::Reserve(c, r) => {
            if c.claimed {
                ctx.dir.give_back(&c.lines);
            }
            drop(r.send(Err(e)))
        }
        Cmd::Group(g, r) => {
            for (_, c) in &g.parts {
                ctx.dir.give_back(&c.lines);
            }
            drop(r.send(Err(e)))
        }
        Cmd::Probe(_, _, r) => drop(r.send(Err(e))),
        Cmd::Part(_, r) => drop(r.send(Err(e))),
        Cmd::Confirm(_, _, r) => drop(r.send(Err(e))),
        Cmd::Cancel(_, r) => drop(r.send(Err(e))),
        Cmd::Follow(_, _, r) => drop(r.send(Err(e))),
        Cmd::Order(_, r) => drop(r.send(Err(e))),
        Cmd::GroupStates(r) => drop(r.send(Err(e))),
        Cmd::ExpireAll(r) => drop(r.send(Err(e))),
        Cmd::Shutdown => {}
    }
}

fn handle(ctx: &Rc<Ctx>, core: &CoreRef, cmd: Cmd) {
    let now = ctx.clock.now_ms();
    let mut c = core.borrow_mut();
    let mutating = matches!(
        cmd,
        Cmd::Upsert(..)
            | Cmd::Restock(..)
            | Cmd::Reserve(..)
            | Cmd::Group(..)
            | Cmd::Confirm(..)
            | Cmd::Cancel(..)
    );
    if mutating && !c.writable {
        drop(c);
        refuse(ctx, cmd, unavailable());
        return;
    }
    let Core { shard, pending, .. } = &mut *c;
    match cmd {
        Cmd::Upsert(spec, reply) => {
            let r = shard.upsert_sku(now, spec, pending);
            if let Ok((view, _)) = &r {
                publish(ctx, shard, &view.sku);
            }
            c.reply_durable(reply, r);
        }
        Cmd::Restock(sku, qty, reply) => {
            let r = shard.restock(now, &sku, qty, pending);
            if let Ok(view) = &r {
                publish(ctx, shard, &view.sku);
            }
            c.reply_durable(reply, r);
        }
        Cmd::Sku(sku, reply) => {
            let r = shard.sku(&sku).ok_or(CommandError::SkuNotFound(sku));
            let _ = reply.send(r);
        }
        Cmd::List(after, limit, reply) => {
            let _ = reply.send(Ok(shard.list_skus(after.as_ref(), limit)));
        }
        Cmd::Reserve(cmd, reply) => {
            let home = cmd.id.is_none();
            let r = shard.reserve(now, *cmd, pending);
            count_reserve(ctx, &r, home);
            let r = r.and_then(|o| part_or_bug(shard, o.id));
            c.reply_durable(reply, r);
        }
        Cmd::Group(g, reply) => {
            drop(c);
            glommio::spawn_local(coordinate(ctx.clone(), core.clone(), *g, reply)).detach();
        }
        Cmd::Probe(key, hash, reply) => {
            let r = shard.lookup_key(&key, hash).transpose();
            c.reply_durable(reply, r);
        }
        Cmd::Part(id, reply) => {
            let _ = reply.send(Ok(shard.reservation(id)));
        }
        Cmd::Confirm(id, payment_ref, reply) => {
            let before = shard.seq();
            let r = shard.confirm(now, id, payment_ref, pending);
            if r.is_ok() && shard.seq() != before {
                ctx.metrics.confirmed.fetch_add(1, Ordering::Relaxed);
            }
            let r = r.and_then(|o| Ok((part_or_bug(shard, o.id)?, o.follow)));
            decided(ctx, core, &mut c, r, reply);
        }
        Cmd::Cancel(id, reply) => {
            let before = shard.seq();
            let r = shard.cancel(now, id, pending);
            if r.is_ok() && shard.seq() != before {
                ctx.metrics.released.fetch_add(1, Ordering::Relaxed);
            }
            let r = r.and_then(|o| Ok((part_or_bug(shard, o.id)?, o.follow)));
            decided(ctx, core, &mut c, r, reply);
        }
        Cmd::Follow(id, action, reply) => {
            let r = shard.follow(now, id, &action, pending).map(|_| ());
            c.reply_durable(reply, r);
        }
        Cmd::Order(id, reply) => {
            let r = shard
                .order(id)
                .ok_or_else(|| CommandError::OrderNotFound(id.to_string()));
            c.reply_durable(reply, r);
        }
        Cmd::GroupStates(reply) => {
            let _ = reply.send(Ok(shard.group_states()));
        }
        Cmd::ExpireAll(reply) => {
            let r = shard.expire(now, usize::MAX, pending);
            match r {
                Ok(out) => {
                    ctx.metrics
                        .expired
                        .fetch_add(out.expired as u64, Ordering::Relaxed);
                    let n = out.expired;
                    forward_after_durable(ctx, core, &mut c, out.follows, Some((reply, n)));
                }
                Err(e) => drop(reply.send(Err(e))),
            }
        }
        Cmd::Shutdown => {}
    }
}

fn count_reserve(ctx: &Ctx, r: &Result<ReserveOutcome, CommandError>, home: bool) {
    match r {
        Ok(out) if home && !out.replayed => {
            ctx.metrics.held.fetch_add(1, Ordering::Relaxed);
        }
        Err(CommandError::SoldOut { .. }) => ctx.metrics.sold_out(),
        _ => {}
    }
}

/// Makes a SKU visible to caller threads (gate, TTL).
fn publish(ctx: &Ctx, shard: &Shard, sku: &SkuId) {
    if let (Some(gate), Some(view)) = (shard.gate(sku), shard.sku(sku)) {
        ctx.dir
            .insert(sku, gate, view.reservation_ttl_ms, shard.stock_level(sku));
    }
}

/// Replies to a home decision: after it is durable, parts follow, then the caller hears back.
fn decided(
    ctx: &Rc<Ctx>,
    core: &CoreRef,
    c: &mut Core,
    r: Result<(PartView, Option<Decision>), CommandError>,
    reply: Reply<PartView>,
) {
    match r {
        Err(e) => drop(reply.send(Err(e))),
        Ok((part, follow)) => match follow {
            None => c.reply_durable(reply, Ok(part)),
            Some(d) => {
                let (tx, rx) = oneshot::channel::<Result<usize, CommandError>>();
                forward_after_durable(ctx, core, c, vec![d], Some((tx, 0)));
                glommio::spawn_local(async move {
                    let r = match rx.await {
                        Ok(Ok(_)) => Ok(part),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(CommandError::Busy("shard stopped".into())),
                    };
                    let _ = reply.send(r);
                })
                .detach();
            }
        },
    }
}

/// Once this shard's records so far are durable, sends each decision to its part shards and
/// waits for them; then (optionally) replies `n`.
fn forward_after_durable(
    ctx: &Rc<Ctx>,
    _core: &CoreRef,
    c: &mut Core,
    follows: Vec<Decision>,
    reply: Option<(Reply<usize>, usize)>,
) {
    let (tx, rx) = oneshot::channel::<Result<(), CommandError>>();
    c.after_durable(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    let ctx = ctx.clone();
    glommio::spawn_local(async move {
        let durable = rx
            .await
            .unwrap_or_else(|_| Err(CommandError::Busy("shard stopped".into())));
        if let Err(e) = durable {
            // The decision is applied and stays buffered; parts follow on recovery at the latest.
            if let Some((reply, _)) = reply {
                let _ = reply.send(Err(e));
            }
            return;
        }
        for d in &follows {
            forward(&ctx, d).await;
        }
        if let Some((reply, n)) = reply {
            let _ = reply.send(Ok(n));
        }
    })
    .detach();
}

/// Sends one decision to every part shard of its group and waits for their acknowledgements.
async fn forward(ctx: &Ctx, d: &Decision) {
    let mut waits = Vec::new();
    for s in 0..ctx.shard_count {
        if s == d.id.shard() as usize || d.group.shards_mask & (1u64 << s) == 0 {
            continue;
        }
        let (tx, rx) = oneshot::channel();
        if ctx.peers[s]
            .send_async(Cmd::Follow(d.id, d.action.clone(), tx))
            .await
            .is_ok()
        {
            waits.push(rx);
        }
    }
    for rx in waits {
        if let Ok(Err(e)) = rx.await {
            tracing::warn!(reservation = %d.id, error = %e, "part shard could not follow yet");
        }
    }
}

/// Coordinates a cross-shard reservation on its home shard: home part first (durable), then
/// every other part; any failure rolls back the parts that succeeded.
async fn coordinate(ctx: Rc<Ctx>, core: CoreRef, g: GroupReserve, reply: Reply<PartView>) {
    let mut parts = g.parts.into_iter();
    let Some((_, home_cmd)) = parts.next() else {
        let _ = reply.send(Err(CommandError::Invalid("empty reservation".into())));
        return;
    };
    let others: Vec<(ShardId, ReserveCommand)> = parts.collect();
    let give_back_others = |others: &[(ShardId, ReserveCommand)]| {
        for (_, c) in others {
            if c.claimed {
                ctx.dir.give_back(&c.lines);
            }
        }
    };
    let now = ctx.clock.now_ms();
    let home = {
        let mut c = core.borrow_mut();
        if !c.writable {
            drop(c);
            ctx.dir.give_back(&home_cmd.lines);
            give_back_others(&others);
            let _ = reply.send(Err(unavailable()));
            return;
        }
        let Core { shard, pending, .. } = &mut *c;
        let r = shard.reserve(now, home_cmd, pending);
        count_reserve(&ctx, &r, !matches!(&r, Ok(o) if o.replayed));
        r
    };
    let home = match home {
        Err(e) => {
            give_back_others(&others);
            let _ = reply.send(Err(e));
            return;
        }
        Ok(out) => out,
    };
    if let Err(e) = durable(&core).await {
        give_back_others(&others);
        if !home.replayed {
            abort_local(&ctx, &core, home.id);
        }
        let _ = reply.send(Err(e));
        return;
    }
    let id = home.id;
    if home.replayed {
        give_back_others(&others);
        let _ = reply.send(part_or_bug(&core.borrow().shard, id));
        return;
    }
    let mut waits = Vec::new();
    for (s, mut cmd) in others {
        cmd.id = Some(id);
        let (tx, rx) = oneshot::channel();
        let lines = cmd.lines.clone();
        match ctx.peers[s as usize]
            .send_async(Cmd::Reserve(Box::new(cmd), tx))
            .await
        {
            Ok(()) => waits.push((s, Some(rx))),
            Err(_) => {
                ctx.dir.give_back(&lines);
                waits.push((s, None));
            }
        }
    }
    let mut first_error = None;
    let mut held = Vec::new();
    for (s, rx) in waits {
        let r = match rx {
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| Err(CommandError::Busy("shard stopped".into()))),
            None => Err(CommandError::Busy("shard stopped".into())),
        };
        match r {
            Ok(_) => held.push(s),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let Some(err) = first_error else {
        let _ = reply.send(part_or_bug(&core.borrow().shard, id));
        return;
    };
    // Roll back: parts that held, then the home. Stock returns to the gates on apply.
    let abort = FollowAction::Release(ReleaseReason::Aborted);
    let mut acks = Vec::new();
    for s in held {
        let (tx, rx) = oneshot::channel();
        if ctx.peers[s as usize]
            .send_async(Cmd::Follow(id, abort.clone(), tx))
            .await
            .is_ok()
        {
            acks.push(rx);
        }
    }
    for rx in acks {
        let _ = rx.await;
    }
    abort_local(&ctx, &core, id);
    let _ = durable(&core).await;
    ctx.metrics.released.fetch_add(1, Ordering::Relaxed);
    let _ = reply.send(Err(err));
}

fn abort_local(ctx: &Ctx, core: &CoreRef, id: ReservationId) {
    let now = ctx.clock.now_ms();
    let mut c = core.borrow_mut();
    let Core { shard, pending, .. } = &mut *c;
    let abort = FollowAction::Release(ReleaseReason::Aborted);
    if let Err(e) = shard.follow(now, id, &abort, pending) {
        tracing::error!(reservation = %id, error = %e, "rollback failed");
    }
}

/// Waits until everything applied so far on this shard is durable.
async fn durable(core: &CoreRef) -> Result<(), CommandError> {
    let (tx, rx) = oneshot::channel();
    core.borrow_mut().after_durable(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    rx.await
        .unwrap_or_else(|_| Err(CommandError::Busy("shard stopped".into())))
}

/// Group commit: appends whatever accumulated, flushes, releases the waiting replies.
async fn flusher(
    ctx: Rc<Ctx>,
    core: CoreRef,
    mut log: Box<dyn ShardLog>,
    wake: flume::Receiver<()>,
) {
    loop {
        loop {
            {
                let c = core.borrow();
                if c.has_pending() {
                    break;
                }
                if c.shutting_down {
                    return;
                }
            }
            if wake.recv_async().await.is_err() && !core.borrow().has_pending() {
                return;
            }
        }
        let batch = core
            .borrow_mut()
            .cut(ctx.snapshot_every, ctx.snapshot_state_factor);
        for (seq, start, end) in &batch.index {
            log.append(*seq, &batch.bytes[*start..*end]);
        }
        let started = Instant::now();
        let mut backoff = Duration::from_millis(5);
        loop {
            match log.flush().await {
                Ok(()) => break,
                Err(e) => {
                    let first = {
                        let mut c = core.borrow_mut();
                        let first = c.writable;
                        c.writable = false;
                        let force = c.shutting_down;
                        c.fail_old_waiters(force);
                        first
                    };
                    ctx.writable[ctx.id as usize].store(false, Ordering::Release);
                    if first {
                        tracing::error!(shard = ctx.id, error = %e, "log flush failed; shard unavailable");
                    }
                    if core.borrow().shutting_down && started.elapsed() > UNAVAILABLE_AFTER {
                        return;
                    }
                    glommio::timer::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
            }
        }
        let latency_us = started.elapsed().as_micros() as u64;
        // Publish the durable counts before any reply goes out, so a caller that got its answer
        // reads mirrors at least as new as its own change.
        for level in &batch.levels {
            ctx.dir.with(&level.sku, |e| {
                if let Some(e) = e {
                    e.set_level(level);
                }
            });
            if let Some(obs) = &ctx.observer {
                obs.stock_changed(level);
            }
        }
        {
            let mut c = core.borrow_mut();
            if !c.writable {
                tracing::info!(shard = ctx.id, "log writable again");
            }
            c.writable = true;
            c.durable_seq = batch.last_seq;
            c.release_waiters();
        }
        ctx.writable[ctx.id as usize].store(true, Ordering::Release);
        ctx.metrics.batch(batch.index.len() as u64, latency_us);
        if let Some(snap) = batch.snapshot {
            if let Err(e) = log.write_snapshot(batch.last_seq, &snap).await {
                tracing::warn!(shard = ctx.id, error = %e, "snapshot failed; will retry later");
            }
        }
    }
}

/// Expires reservations every tick, bounded per tick; parts follow after durability.
async fn ticker(ctx: Rc<Ctx>, core: CoreRef, wake: flume::Sender<()>) {
    loop {
        glommio::timer::sleep(ctx.expiry_tick).await;
        let now = ctx.clock.now_ms();
        let mut c = core.borrow_mut();
        if !c.writable || c.shutting_down {
            continue;
        }
        let Core { shard, pending, .. } = &mut *c;
        match shard.expire(now, ctx.expiry_batch, pending) {
            Ok(out) if out.expired > 0 => {
                ctx.metrics
                    .expired
                    .fetch_add(out.expired as u64, Ordering::Relaxed);
                if !out.follows.is_empty() {
                    forward_after_durable(&ctx, &core, &mut c, out.follows, None);
                }
                let _ = wake.try_send(());
            }
            Ok(_) => {}
            Err(e) => tracing::error!(shard = ctx.id, error = %e, "expiry failed"),
        }
    }
}
