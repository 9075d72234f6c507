//! The runtime around the shards: one glommio executor per shard pinned to a core, group
//! commit into the log, expiry ticks, and the async [`Engine`] handle callers use from any
//! thread (tokio tasks included).

mod directory;
mod executor;
mod metrics;
mod recovery;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale_protocol::{OrderId, PaymentRef, ReservationId, ScopedKey, ShardId, SkuId, SkuSpec};
use glommio::{LocalExecutorBuilder, Placement};
use tokio::sync::oneshot;

use self::directory::Directory;
use self::executor::{Cmd, Ctx};
use self::metrics::Metrics;
use crate::node::caller::{
    prepare_reserve, probe_of, GateInfo, KeysInFlight, Prepared, ReserveReply,
};
use crate::node::commit::SnapshotPolicy;
use crate::node::message::{Answer, Request};
use crate::node::{NodeConfig, ShardNode};
use crate::shard::{
    assemble_order, assemble_reservation, merge_pages, reconcile, shard_of, ExtendCommand, ListPos,
    OrderQuery, PartView, ReservationQuery,
};

use crate::clock::Clock;
use crate::command::{CommandError, ReserveRequest};
use crate::log::LogBackend;
use crate::observer::StockObserver;
use crate::stats::StatsSnapshot;
use crate::view::{OrderView, ReservationView, SkuView};

/// A task factory run on every shard's executor by [`Engine::spawn_on_shards`]: called there
/// with the shard's index, it returns the (thread-local, not `Send`) future to run.
pub type ShardTask = dyn Fn(usize) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync;

/// Source of process-unique engine ids.
static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// Memory each executor registers for io_uring buffers (kept small: RLIMIT_MEMLOCK is often 8 MiB).
const IO_MEMORY: usize = 512 << 10;

/// How to run the engine.
pub struct EngineConfig {
    /// Number of shards (executors); default = number of cores.
    pub shards: usize,
    /// Pin each executor to a core (core = shard index modulo cores).
    pub pin_cores: bool,
    /// Bound of each shard's command queue; a full queue refuses with [`CommandError::Busy`].
    pub queue_depth: usize,
    /// Period of the expiry tick in ms.
    pub expiry_tick_ms: u64,
    /// Most reservations expired per shard per tick (bounded work).
    pub expiry_batch: usize,
    /// Take a snapshot after this many logged events per shard (0 = never)...
    pub snapshot_every_events: u64,
    /// ...or after `snapshot_state_factor` × the reservations the shard holds in memory, if that
    /// is more (0 = ignore the state size). A snapshot copies the whole shard, so tying its
    /// period to the state size keeps its cost per event bounded as reservations accumulate
    /// (with 2: at most half a reservation copied per logged event), while replay after a
    /// crash stays proportional to the state.
    pub snapshot_state_factor: u64,
    /// The write-ahead log.
    pub log: Arc<dyn LogBackend>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Told of every durable stock change.
    pub observer: Option<Arc<dyn StockObserver>>,
    /// How long an idle executor polls for work before it parks, in µs (0 = park at once).
    /// Spinning saves the wake-up of a parked thread when work comes soon, at the price of
    /// the CPU it burns; it only applies to pinned executors (`pin_cores`). ADR 0038.
    pub spin_before_park_us: u64,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("shards", &self.shards)
            .field("pin_cores", &self.pin_cores)
            .field("queue_depth", &self.queue_depth)
            .field("log", &self.log.describe())
            .finish_non_exhaustive()
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// An executor could not be spawned.
    #[error("cannot start shard executor: {0}")]
    Executor(String),
    /// The log could not be opened or replayed.
    #[error("recovery of shard {shard} failed: {source}")]
    Recovery {
        /// The shard.
        shard: u16,
        /// Why.
        source: crate::log::LogError,
    },
}

impl EngineConfig {
    /// Defaults: one shard per core, pinned, queue depth 4096, 10 ms expiry tick, 1024
    /// expiries per tick, a snapshot every 100 000 events or twice the reservations held,
    /// whichever is more.
    pub fn new(log: Arc<dyn LogBackend>, clock: Arc<dyn Clock>) -> Self {
        EngineConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_cores: true,
            queue_depth: 4096,
            expiry_tick_ms: 10,
            expiry_batch: 1024,
            snapshot_every_events: 100_000,
            snapshot_state_factor: 2,
            log,
            clock,
            observer: None,
            spin_before_park_us: 0,
        }
    }
}

struct Inner {
    /// Process-unique id (tells this engine's executor threads from another engine's).
    id: u64,
    senders: Vec<flume::Sender<Cmd>>,
    keys: Arc<KeysInFlight>,
    dir: Arc<Directory>,
    metrics: Arc<Metrics>,
    writable: Arc<[AtomicBool]>,
    clock: Arc<dyn Clock>,
    joins: Mutex<Vec<glommio::ExecutorJoinHandle<()>>>,
    stopped: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for s in &self.senders {
            let _ = s.try_send(Cmd::Shutdown);
        }
    }
}

/// A cheap, cloneable, `Send + Sync` handle to the running engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.inner.senders.len())
            .finish_non_exhaustive()
    }
}

fn busy(what: &str) -> CommandError {
    CommandError::Busy(what.to_string())
}

fn unexpected(a: &Answer) -> CommandError {
    CommandError::Internal(format!("unexpected answer from a shard: {a:?}"))
}

impl Engine {
    /// Starts the shards, recovers each from its snapshot and log, and returns once all serve.
    ///
    /// Recovery: snapshot + replay per shard, then cross-shard reservations are reconciled
    /// with their home shards, then reservations whose TTL passed while down are expired.
    /// Blocks the calling thread until done.
    pub fn start(config: EngineConfig) -> Result<Engine, StartError> {
        Self::start_inner(config, None)
    }

    /// Starts the shards from a follower's state (a high-availability standby taking over):
    /// each shard replays only the log after its [`Follower::position`], instead of loading
    /// the snapshot and replaying the log after it. A shard whose log no longer holds the
    /// records right after that position (compacted under a newer snapshot) recovers from the
    /// snapshot as [`Engine::start`] does. Then as `start`: reconciliation and expiry.
    /// `config.shards` must equal the follower's shard count.
    ///
    /// [`Follower::position`]: crate::Follower::position
    pub fn start_from(
        config: EngineConfig,
        follower: crate::Follower,
    ) -> Result<Engine, StartError> {
        if follower.shard_count() != config.shards {
            return Err(StartError::Config(format!(
                "the follower has {} shards, the engine {}",
                follower.shard_count(),
                config.shards
            )));
        }
        Self::start_inner(config, Some(follower.into_shards()))
    }

    fn start_inner(
        config: EngineConfig,
        followed: Option<Vec<crate::shard::Shard>>,
    ) -> Result<Engine, StartError> {
        let n = config.shards;
        if n == 0 || n > 64 {
            return Err(StartError::Config(format!(
                "shards must be 1..=64, got {n}"
            )));
        }
        if config.queue_depth == 0 || config.expiry_tick_ms == 0 || config.expiry_batch == 0 {
            return Err(StartError::Config(
                "queue_depth, expiry_tick_ms and expiry_batch must be positive".into(),
            ));
        }
        let dir = Arc::new(Directory::new());
        let metrics = Arc::new(Metrics::new());
        let writable: Arc<[AtomicBool]> = (0..n).map(|_| AtomicBool::new(true)).collect();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| flume::bounded::<Cmd>(config.queue_depth))
            .unzip();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut joins = Vec::with_capacity(n);
        let mut spawn_error = None;
        let engine_id = NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed);
        let shared = Shared {
            engine_id,
            senders: senders.clone(),
            dir: dir.clone(),
            metrics: metrics.clone(),
            writable: writable.clone(),
        };
        let mut followed = followed.map(Vec::into_iter);
        for (i, rx) in receivers.into_iter().enumerate() {
            let from = followed.as_mut().and_then(Iterator::next);
            match spawn_shard(i, rx, &shared, &config, from, ready_tx.clone()) {
                Ok(j) => joins.push(j),
                Err(e) => {
                    spawn_error = Some(e);
                    break;
                }
            }
        }
        drop(ready_tx);
        let inner = Arc::new(Inner {
            id: engine_id,
            senders,
            keys: Arc::new(KeysInFlight::default()),
            dir,
            metrics,
            writable,
            clock: config.clock.clone(),
            joins: Mutex::new(joins),
            stopped: AtomicBool::new(false),
        });
        let engine = Engine { inner };
        if let Some(e) = spawn_error {
            engine.shutdown();
            return Err(e);
        }
        let first_error = collect_ready(&engine, &ready_rx, n);
        if let Some(e) = first_error {
            engine.shutdown();
            return Err(e);
        }
        if let Err(e) = futures::executor::block_on(engine.recover_groups()) {
            engine.shutdown();
            return Err(StartError::Executor(format!("reconciliation failed: {e}")));
        }
        Ok(engine)
    }

    /// Reconciles cross-shard reservations with their home shards, then expires what is due.
    async fn recover_groups(&self) -> Result<(), CommandError> {
        let mut states = Vec::new();
        for s in 0..self.shard_count() {
            match self.ask(s, Request::GroupStates).await? {
                Answer::GroupStates(g) => states.extend(g),
                a => return Err(unexpected(&a)),
            }
        }
        for (s, id, action) in reconcile(&states) {
            self.ask(usize::from(s), Request::Follow(id, action))
                .await?;
        }
        for s in 0..self.shard_count() {
            self.ask(s, Request::ExpireAll).await?;
        }
        Ok(())
    }

    /// Sends a request to shard `s` (refusing with `Busy` if its queue is full) and awaits it.
    /// Called on shard `s`'s own executor thread (a task started by
    /// [`Engine::spawn_on_shards`]), it hands the request to the shard directly instead: no
    /// queue, no wake-up of another thread; the reply still comes only once durable.
    async fn ask(&self, s: usize, req: Request) -> Result<Answer, CommandError> {
        let (tx, rx) = oneshot::channel();
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(busy("the engine is shut down"));
        }
        if let Some((req, tx)) = executor::try_local(self.inner.id, s, req, tx) {
            self.send(s, Cmd::Request(req, tx))?;
        }
        rx.await
            .unwrap_or_else(|_| Err(busy("the shard stopped before replying")))
    }

    fn send(&self, s: usize, cmd: Cmd) -> Result<(), CommandError> {
        // A refused command drops here, giving back any claims it carries.
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(busy("the engine is shut down"));
        }
        let Some(sender) = self.inner.senders.get(s) else {
            return Err(busy("no such shard"));
        };
        match sender.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(flume::TrySendError::Full(_)) => Err(busy("shard queue is full")),
            Err(flume::TrySendError::Disconnected(_)) => Err(busy("the engine is shut down")),
        }
    }

    /// Runs `task(shard)` as a task on every shard's executor thread (thread-per-core serving:
    /// a request such a task makes for its own shard skips the queue, see [`Engine::ask`]'s
    /// fast path). The tasks end when they finish or when the engine shuts down.
    pub fn spawn_on_shards(&self, task: Arc<ShardTask>) -> Result<(), CommandError> {
        for s in 0..self.shard_count() {
            self.send(s, Cmd::Spawn(task.clone()))?;
        }
        Ok(())
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.inner.senders.len()
    }

    /// The shard owning a SKU.
    pub fn shard_of(&self, sku: &SkuId) -> usize {
        usize::from(shard_of(sku, self.shard_count()))
    }

    /// Creates or replaces a SKU's settings. Returns the view and whether it was created.
    pub async fn upsert_sku(&self, spec: SkuSpec) -> Result<(SkuView, bool), CommandError> {
        let s = self.shard_of(&spec.sku);
        match self.ask(s, Request::Upsert(spec)).await? {
            Answer::Upserted(v, created) => Ok((v, created)),
            a => Err(unexpected(&a)),
        }
    }

    /// Adds units to a SKU's stock. With `key`, a retry of one of the SKU's latest keyed
    /// restocks returns the SKU as it is, adding nothing.
    pub async fn restock(
        &self,
        sku: SkuId,
        qty: u64,
        key: Option<ScopedKey>,
    ) -> Result<SkuView, CommandError> {
        let s = self.shard_of(&sku);
        match self.ask(s, Request::Restock(sku, qty, key)).await? {
            Answer::Sku(v) => Ok(v),
            a => Err(unexpected(&a)),
        }
    }

    /// A SKU's current view.
    pub async fn sku(&self, sku: SkuId) -> Result<SkuView, CommandError> {
        let s = self.shard_of(&sku);
        match self.ask(s, Request::Sku(sku)).await? {
            Answer::Sku(v) => Ok(v),
            a => Err(unexpected(&a)),
        }
    }

    /// SKUs ordered by id, strictly after `after`, at most `limit`: each shard returns at most
    /// `limit` from its sorted index, so a page costs O(shards × limit), not the catalogue.
    pub async fn list_skus(
        &self,
        after: Option<SkuId>,
        limit: usize,
    ) -> Result<Vec<SkuView>, CommandError> {
        let mut all = Vec::new();
        for s in 0..self.shard_count() {
            let after = after.clone();
            match self.ask(s, Request::List { after, limit }).await? {
                Answer::Skus(page) => all.extend(page),
                a => return Err(unexpected(&a)),
            }
        }
        all.sort_unstable_by(|a, b| a.sku.cmp(&b.sku));
        all.truncate(limit);
        Ok(all)
    }

    /// Holds stock for every line or none; returns once durable.
    ///
    /// The calling thread first claims every line on its SKU's lock-free gate: an unknown or
    /// sold-out line is refused right there, without a shard hop (unless an idempotency key
    /// is given: then the key's shard is asked whether the key already has a reservation).
    /// Lines on one shard are reserved there; lines on several shards are coordinated by the
    /// home shard's coordinator, all or nothing (ADR 0014). The home is the idempotency key's
    /// shard for a keyed request (so a key is checked in one place whatever the lines), else
    /// the shard of the first line. A duplicate of a keyed request still in progress waits for
    /// its outcome or gets `IdempotencyInProgress`; it never sees a partial reservation.
    pub async fn reserve(&self, request: ReserveRequest) -> Result<ReservationView, CommandError> {
        // Held until this request is answered: a duplicate meanwhile gets IdempotencyInProgress.
        let _in_flight = match &request.idempotency_key {
            Some(k) => Some(self.inner.keys.enter(k)?),
            None => None,
        };
        let now = self.inner.clock.now_ms();
        let dir = &self.inner.dir;
        let prepared = prepare_reserve(request, self.shard_count(), now, |sku| {
            dir.with(sku, |e| {
                e.map(|e| GateInfo {
                    gate: e.gate.clone(),
                    ttl_ms: e.ttl_ms.load(Ordering::Acquire),
                })
            })
        })?;
        match prepared {
            Prepared::Refused { error, probe } => {
                if matches!(error, CommandError::SoldOut { .. }) {
                    self.inner.metrics.sold_out();
                }
                if let Some(p) = probe {
                    let asked = self
                        .ask(usize::from(p.home), Request::Probe(p.key, p.request_hash))
                        .await?;
                    // A key in progress answers with the first request's whole outcome.
                    match ReserveReply::of(asked)? {
                        ReserveReply::Whole(v) => return Ok(v),
                        ReserveReply::Complete(part) => return self.assemble(part).await,
                        ReserveReply::NoReservation => {}
                    }
                }
                Err(error)
            }
            Prepared::Send { home, request } => {
                let answer = self.ask(usize::from(home), request).await?;
                self.whole(answer).await
            }
        }
    }

    /// The reservation a keyed request already made, if any, without reserving anything:
    /// what a retry of `request` is answered with. `None` when the request has no key or its
    /// key has no reservation; `IdempotencyMismatch` when the key was used for another request;
    /// `IdempotencyInProgress` while a request with the key is still being answered.
    ///
    /// The gateway uses it for a retry whose waiting-room pass is already taken by the very
    /// reservation the retry asks for (the pass check comes before the engine's key check).
    pub async fn replay(
        &self,
        request: &ReserveRequest,
    ) -> Result<Option<ReservationView>, CommandError> {
        let Some(probe) = probe_of(request, self.shard_count()) else {
            return Ok(None);
        };
        let _in_flight = self.inner.keys.enter(&probe.key)?;
        let asked = self
            .ask(
                usize::from(probe.home),
                Request::Probe(probe.key, probe.request_hash),
            )
            .await?;
        match ReserveReply::of(asked)? {
            ReserveReply::Whole(v) => Ok(Some(v)),
            ReserveReply::Complete(part) => self.assemble(part).await.map(Some),
            ReserveReply::NoReservation => Ok(None),
        }
    }

    /// The whole reservation from a shard's answer.
    async fn whole(&self, answer: Answer) -> Result<ReservationView, CommandError> {
        match ReserveReply::of(answer)? {
            ReserveReply::Whole(v) => Ok(v),
            ReserveReply::Complete(p) => self.assemble(p).await,
            ReserveReply::NoReservation => Err(CommandError::Internal(
                "a reservation answered with nothing".into(),
            )),
        }
    }

    /// Completes a home part with the other shards' parts.
    async fn assemble(&self, home: PartView) -> Result<ReservationView, CommandError> {
        let Some(group) = home.group else {
            return Ok(home.view);
        };
        let parts = self
            .parts_of(home.view.id, home.view.id.shard(), group)
            .await?;
        Ok(assemble_reservation(home, &parts))
    }

    /// The parts of reservation `id` on every shard of its group except `home`.
    async fn parts_of(
        &self,
        id: ReservationId,
        home: ShardId,
        group: flashsale_protocol::event::Group,
    ) -> Result<Vec<PartView>, CommandError> {
        let mut parts = Vec::new();
        for s in 0..self.shard_count() {
            if s != usize::from(home) && group.shards_mask & (1u64 << s) != 0 {
                match self.ask(s, Request::Part(id)).await? {
                    Answer::MaybePart(Some(p)) => parts.push(p),
                    Answer::MaybePart(None) => {}
                    a => return Err(unexpected(&a)),
                }
            }
        }
        Ok(parts)
    }

    fn home_of(&self, id: ReservationId) -> Result<usize, CommandError> {
        let s = usize::from(id.shard());
        if s >= self.shard_count() {
            return Err(CommandError::ReservationNotFound(id));
        }
        Ok(s)
    }

    /// A reservation's current view.
    pub async fn reservation(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        let home = self.home_of(id)?;
        match self.ask(home, Request::Part(id)).await? {
            Answer::MaybePart(Some(p)) => self.assemble(p).await,
            Answer::MaybePart(None) => Err(CommandError::ReservationNotFound(id)),
            a => Err(unexpected(&a)),
        }
    }

    /// Turns a held reservation into an order; returns once durable.
    pub async fn confirm(
        &self,
        id: ReservationId,
        payment_ref: impl Into<PaymentRef>,
    ) -> Result<ReservationView, CommandError> {
        let payment_ref = payment_ref.into();
        let home = self.home_of(id)?;
        let answer = self.ask(home, Request::Confirm(id, payment_ref)).await?;
        self.whole(answer).await
    }

    /// Releases a held reservation; returns once durable.
    pub async fn cancel(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        let home = self.home_of(id)?;
        let answer = self.ask(home, Request::Cancel(id)).await?;
        self.whole(answer).await
    }

    /// Extends a held reservation's hold to `ttl_ms` from now (never shortening it); returns
    /// once durable on its home and followed by its parts. The bounds are the strictest
    /// `max_hold_ms` and `max_extensions` of its lines' SKUs, read from the SKUs now. With
    /// `key`, a retry of an extension already made returns the reservation as it is, without
    /// extending it again.
    pub async fn extend(
        &self,
        id: ReservationId,
        ttl_ms: u64,
        key: Option<ScopedKey>,
    ) -> Result<ReservationView, CommandError> {
        let home = self.home_of(id)?;
        let view = self.reservation(id).await?;
        let mut skus = Vec::with_capacity(view.lines.len());
        for line in &view.lines {
            // A SKU's settings are never removed, so every line's SKU is known.
            skus.push(self.sku(line.sku.clone()).await?);
        }
        let cmd = ExtendCommand::strictest_of(id, ttl_ms, key, &skus)?;
        let answer = self.ask(home, Request::Extend(Box::new(cmd))).await?;
        self.whole(answer).await
    }

    /// An order's view.
    pub async fn order(&self, id: OrderId) -> Result<OrderView, CommandError> {
        let s = usize::from(id.shard());
        if s >= self.shard_count() {
            return Err(CommandError::OrderNotFound(id.to_string()));
        }
        let (view, group) = match self.ask(s, Request::Order(id)).await? {
            Answer::Order(v, g) => (v, g),
            a => return Err(unexpected(&a)),
        };
        let parts = match group {
            Some(g) => self.parts_of(view.reservation, id.shard(), g).await?,
            None => Vec::new(),
        };
        Ok(assemble_order(view, group, &parts))
    }

    /// A page of a buyer's reservations, newest first, each one whole (a cross-shard
    /// reservation appears once, on its home shard's page, completed with its other parts),
    /// and the position to continue from (`None`: the last page). Every shard examines at
    /// most [`crate::shard::MAX_LIST_SCAN`] entries, so a page may be short, even empty,
    /// while the list goes on.
    pub async fn list_reservations(
        &self,
        query: ReservationQuery,
    ) -> Result<(Vec<ReservationView>, Option<ListPos>), CommandError> {
        let mut pages = Vec::with_capacity(self.shard_count());
        for s in 0..self.shard_count() {
            let q = Box::new(query.clone());
            match self.ask(s, Request::BuyerReservations(q)).await? {
                Answer::BuyerReservations(page) => pages.push(page),
                a => return Err(unexpected(&a)),
            }
        }
        let (items, next) = merge_pages(pages, query.limit);
        let mut out = Vec::with_capacity(items.len());
        for (_, part) in items {
            let view = self.assemble(part).await?;
            // A home part is a candidate for a SKU its other parts may hold: check it whole.
            if query
                .sku
                .as_ref()
                .is_none_or(|sku| view.lines.iter().any(|l| &l.sku == sku))
            {
                out.push(view);
            }
        }
        Ok((out, next))
    }

    /// A page of a buyer's orders, newest first, each one whole, and the position to
    /// continue from (`None`: the last page); bounded as [`Engine::list_reservations`].
    pub async fn list_orders(
        &self,
        query: OrderQuery,
    ) -> Result<(Vec<OrderView>, Option<ListPos>), CommandError> {
        let mut pages = Vec::with_capacity(self.shard_count());
        for s in 0..self.shard_count() {
            let q = Box::new(query.clone());
            match self.ask(s, Request::BuyerOrders(q)).await? {
                Answer::BuyerOrders(page) => pages.push(page),
                a => return Err(unexpected(&a)),
            }
        }
        let (items, next) = merge_pages(pages, query.limit);
        let mut out = Vec::with_capacity(items.len());
        for (_, (view, group)) in items {
            let parts = match group {
                Some(g) => self.parts_of(view.reservation, view.id.shard(), g).await?,
                None => Vec::new(),
            };
            out.push(assemble_order(view, group, &parts));
        }
        Ok((out, next))
    }

    /// Whether every shard's log is writable (for `/ready`).
    pub fn ready(&self) -> bool {
        !self.inner.stopped.load(Ordering::Acquire)
            && self
                .inner
                .writable
                .iter()
                .all(|w| w.load(Ordering::Acquire))
    }

    /// Requests handed to a shard on its own executor thread so far (the same-thread path of
    /// tasks started by [`Engine::spawn_on_shards`]), i.e. without the shard queue.
    pub fn same_thread_requests(&self) -> u64 {
        self.inner.metrics.same_thread_requests()
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> StatsSnapshot {
        let writable = self
            .inner
            .writable
            .iter()
            .all(|w| w.load(Ordering::Acquire));
        self.inner.metrics.snapshot(writable)
    }

    /// Every SKU's current stock level (for stream snapshots), from the lock-free mirrors of
    /// the last durable counts, ordered by SKU id.
    pub async fn stock_levels(&self) -> Vec<crate::observer::StockLevel> {
        self.inner.dir.all().iter().map(|e| e.level()).collect()
    }

    /// Units of a SKU a caller can claim right now, from its gate (no shard hop).
    pub fn available_now(&self, sku: &SkuId) -> Option<u64> {
        self.inner.dir.with(sku, |e| e.map(|e| e.gate.available()))
    }

    /// Stops accepting commands, finishes in-flight ones and joins the executors.
    /// Idempotent; later calls on any clone return [`CommandError::Busy`].
    pub fn shutdown(&self) {
        if self.inner.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        for s in &self.inner.senders {
            let _ = s.send(Cmd::Shutdown);
        }
        let joins = match self.inner.joins.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for j in joins {
            if let Err(e) = j.join() {
                tracing::error!(error = %e, "shard executor ended with an error");
            }
        }
    }
}

/// What every shard executor shares with the engine handle.
struct Shared {
    engine_id: u64,
    senders: Vec<flume::Sender<Cmd>>,
    dir: Arc<Directory>,
    metrics: Arc<Metrics>,
    writable: Arc<[AtomicBool]>,
}

/// What a shard reports once recovered: its gates and levels, or why it could not recover.
type Ready = (ShardId, Result<RecoveredSkus, crate::log::LogError>);

/// A recovered shard's SKUs: `(sku, gate, ttl)` and their stock levels.
type RecoveredSkus = (
    Vec<(SkuId, Arc<crate::gate::StockGate>, u64)>,
    Vec<crate::observer::StockLevel>,
);

/// Spawns shard `i`'s executor: it recovers the shard (from `from`'s position if given, see
/// [`Engine::start_from`]), reports on `ready`, then runs it.
fn spawn_shard(
    i: usize,
    rx: flume::Receiver<Cmd>,
    shared: &Shared,
    config: &EngineConfig,
    from: Option<crate::shard::Shard>,
    ready: std::sync::mpsc::Sender<Ready>,
) -> Result<glommio::ExecutorJoinHandle<()>, StartError> {
    let id = i as ShardId;
    let n = config.shards;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let placement = if config.pin_cores {
        Placement::Fixed(i % cores)
    } else {
        Placement::Unbound
    };
    let ctx = Ctx {
        id,
        engine_id: shared.engine_id,
        peers: shared.senders.clone(),
        dir: shared.dir.clone(),
        metrics: shared.metrics.clone(),
        writable: shared.writable.clone(),
        clock: config.clock.clone(),
        observer: config.observer.clone(),
        expiry_tick: Duration::from_millis(config.expiry_tick_ms),
    };
    let backend = config.log.clone();
    let node_config = NodeConfig {
        expiry_batch: config.expiry_batch,
        snapshots: SnapshotPolicy {
            every_events: config.snapshot_every_events,
            state_factor: config.snapshot_state_factor,
        },
    };
    let mut builder = LocalExecutorBuilder::new(placement)
        .name(&format!("flashsale-shard-{i}"))
        .io_memory(IO_MEMORY);
    if config.spin_before_park_us > 0 {
        builder = builder.spin_before_park(Duration::from_micros(config.spin_before_park_us));
    }
    builder
        .spawn(move || async move {
            let (shard, log) = match recovery::recover(id, n, &backend, from).await {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready.send((id, Err(e)));
                    return;
                }
            };
            let _ = ready.send((id, Ok((shard.gates(), shard.stock_levels()))));
            drop(ready);
            let node = ShardNode::new(shard, node_config);
            executor::run(Rc::new(ctx), node, log, rx).await;
        })
        .map_err(|e| StartError::Executor(e.to_string()))
}

/// Waits for every shard to report, publishing each SKU to the directory; returns the first
/// failure.
fn collect_ready(
    engine: &Engine,
    ready: &std::sync::mpsc::Receiver<Ready>,
    n: usize,
) -> Option<StartError> {
    let mut first_error = None;
    for _ in 0..n {
        match ready.recv() {
            Ok((_, Ok((gates, levels)))) => {
                for (sku, gate, ttl) in gates {
                    let level = levels.iter().find(|l| l.sku == sku).cloned();
                    engine.inner.dir.insert(&sku, gate, ttl, level);
                }
            }
            Ok((shard, Err(source))) => {
                first_error.get_or_insert(StartError::Recovery { shard, source });
            }
            Err(_) => {
                first_error.get_or_insert(StartError::Executor(
                    "a shard executor failed to start (io_uring unavailable or \
                     RLIMIT_MEMLOCK too low?)"
                        .into(),
                ));
                break;
            }
        }
    }
    first_error
}
