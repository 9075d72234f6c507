//! The runtime around the shards: one glommio executor per shard pinned to a core, group
//! commit into the log, expiry ticks, and the async [`Engine`] handle callers use from any
//! thread (tokio tasks included).

mod directory;
mod metrics;
mod shard_task;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale_protocol::{OrderId, ReservationId, ShardId, SkuId, SkuSpec, MAX_LINES};
use glommio::{LocalExecutorBuilder, Placement};
use tokio::sync::oneshot;

use self::directory::Directory;
use self::metrics::Metrics;
use self::shard_task::{Cmd, Ctx, GroupReserve, Reply};
use crate::shard::{
    assemble_order, assemble_reservation, plan, reconcile, request_hash, shard_of, shard_of_key,
    validate_lines, PartView, ReserveCommand,
};

use crate::clock::Clock;
use crate::command::{CommandError, ReserveRequest};
use crate::log::LogBackend;
use crate::observer::StockObserver;
use crate::stats::StatsSnapshot;
use crate::view::{OrderView, ReservationView, SkuView};

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
        }
    }
}

struct Inner {
    senders: Vec<flume::Sender<Cmd>>,
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

async fn recv<T>(rx: oneshot::Receiver<Result<T, CommandError>>) -> Result<T, CommandError> {
    rx.await
        .unwrap_or_else(|_| Err(busy("the shard stopped before replying")))
}

impl Engine {
    /// Starts the shards, recovers each from its snapshot and log, and returns once all serve.
    ///
    /// Recovery: snapshot + replay per shard, then cross-shard reservations are reconciled
    /// with their home shards, then reservations whose TTL passed while down are expired.
    /// Blocks the calling thread until done.
    pub fn start(config: EngineConfig) -> Result<Engine, StartError> {
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
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let dir = Arc::new(Directory::new());
        let metrics = Arc::new(Metrics::new());
        let writable: Arc<[AtomicBool]> = (0..n).map(|_| AtomicBool::new(true)).collect();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| flume::bounded::<Cmd>(config.queue_depth))
            .unzip();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut joins = Vec::with_capacity(n);
        let mut spawn_error = None;
        for (i, rx) in receivers.into_iter().enumerate() {
            let id = i as ShardId;
            let placement = if config.pin_cores {
                Placement::Fixed(i % cores)
            } else {
                Placement::Unbound
            };
            let peers = senders.clone();
            let dir = dir.clone();
            let metrics = metrics.clone();
            let writable = writable.clone();
            let clock = config.clock.clone();
            let observer = config.observer.clone();
            let backend = config.log.clone();
            let ready = ready_tx.clone();
            let tick = Duration::from_millis(config.expiry_tick_ms);
            let batch = config.expiry_batch;
            let snapshot_every = config.snapshot_every_events;
            let snapshot_state_factor = config.snapshot_state_factor;
            let spawned = LocalExecutorBuilder::new(placement)
                .name(&format!("flashsale-shard-{i}"))
                .io_memory(IO_MEMORY)
                .spawn(move || async move {
                    let recovered = shard_task::recover(id, n, &backend).await;
                    let (shard, log) = match recovered {
                        Ok(x) => x,
                        Err(e) => {
                            let _ = ready.send((id, Err(e)));
                            return;
                        }
                    };
                    let gates = shard.gates();
                    let levels = shard.stock_levels();
                    let _ = ready.send((id, Ok((gates, levels))));
                    drop(ready);
                    let ctx = Rc::new(Ctx {
                        id,
                        shard_count: n,
                        peers,
                        dir,
                        metrics,
                        writable,
                        clock,
                        observer,
                        expiry_tick: tick,
                        expiry_batch: batch,
                        snapshot_every,
                        snapshot_state_factor,
                    });
                    shard_task::run(ctx, shard, log, rx).await;
                });
            match spawned {
                Ok(j) => joins.push(j),
                Err(e) => {
                    spawn_error = Some(StartError::Executor(e.to_string()));
                    break;
                }
            }
        }
        drop(ready_tx);
        let inner = Arc::new(Inner {
            senders,
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
        let mut first_error = None;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok((id, Ok((gates, levels)))) => {
                    for (sku, gate, ttl) in gates {
                        let level = levels.iter().find(|l| l.sku == sku).cloned();
                        let _ = id;
                        engine.inner.dir.insert(&sku, gate, ttl, level);
                    }
                }
                Ok((id, Err(source))) => {
                    first_error.get_or_insert(StartError::Recovery { shard: id, source });
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
            states.extend(self.ask(s, Cmd::GroupStates).await?);
        }
        for (s, id, action) in reconcile(&states) {
            self.ask(s as usize, |tx| Cmd::Follow(id, action, tx))
                .await?;
        }
        for s in 0..self.shard_count() {
            self.ask(s, Cmd::ExpireAll).await?;
        }
        Ok(())
    }

    /// Sends a command to shard `s` (refusing with `Busy` if its queue is full) and awaits it.
    async fn ask<T>(
        &self,
        s: usize,
        make: impl FnOnce(Reply<T>) -> Cmd,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(s, make(tx))?;
        recv(rx).await
    }

    fn send(&self, s: usize, cmd: Cmd) -> Result<(), CommandError> {
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(self.refused(cmd, "the engine is shut down"));
        }
        let Some(sender) = self.inner.senders.get(s) else {
            return Err(busy("no such shard"));
        };
        match sender.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(flume::TrySendError::Full(cmd)) => Err(self.refused(cmd, "shard queue is full")),
            Err(flume::TrySendError::Disconnected(cmd)) => {
                Err(self.refused(cmd, "the engine is shut down"))
            }
        }
    }

    /// Gives back the claims of a command that never reached its shard.
    fn refused(&self, cmd: Cmd, why: &str) -> CommandError {
        match cmd {
            Cmd::Reserve(c, _) if c.claimed => self.inner.dir.give_back(&c.lines),
            Cmd::Group(g, _) => {
                for (_, c) in &g.parts {
                    if c.claimed {
                        self.inner.dir.give_back(&c.lines);
                    }
                }
            }
            _ => {}
        }
        busy(why)
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.inner.senders.len()
    }

    /// The shard owning a SKU.
    pub fn shard_of(&self, sku: &SkuId) -> usize {
        shard_of(sku, self.shard_count()) as usize
    }

    /// Creates or replaces a SKU's settings. Returns the view and whether it was created.
    pub async fn upsert_sku(&self, spec: SkuSpec) -> Result<(SkuView, bool), CommandError> {
        let s = self.shard_of(&spec.sku);
        self.ask(s, |tx| Cmd::Upsert(spec, tx)).await
    }

    /// Adds units to a SKU's stock.
    pub async fn restock(&self, sku: SkuId, qty: u64) -> Result<SkuView, CommandError> {
        let s = self.shard_of(&sku);
        self.ask(s, |tx| Cmd::Restock(sku, qty, tx)).await
    }

    /// A SKU's current view.
    pub async fn sku(&self, sku: SkuId) -> Result<SkuView, CommandError> {
        let s = self.shard_of(&sku);
        self.ask(s, |tx| Cmd::Sku(sku, tx)).await
    }

    /// SKUs ordered by id, strictly after `after`, at most `limit`.
    pub async fn list_skus(
        &self,
        after: Option<SkuId>,
        limit: usize,
    ) -> Result<Vec<SkuView>, CommandError> {
        let mut all = Vec::new();
        for s in 0..self.shard_count() {
            let after = after.clone();
            all.extend(self.ask(s, |tx| Cmd::List(after, limit, tx)).await?);
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
    /// home shard, all or nothing (see ADR 0003). The home is the idempotency key's shard for
    /// a keyed request (so a key is checked in one place whatever the lines), else the shard
    /// of the first line.
    pub async fn reserve(&self, request: ReserveRequest) -> Result<ReservationView, CommandError> {
        validate_lines(request.lines.iter().map(|(s, q)| (s, *q)))?;
        debug_assert!(request.lines.len() <= MAX_LINES);
        let mut claimed = 0usize;
        let mut min_ttl = u64::MAX;
        let mut failure = None;
        for (sku, qty) in &request.lines {
            let r = self.inner.dir.with(sku, |e| match e {
                None => Err(CommandError::SkuNotFound(sku.clone())),
                Some(e) => {
                    min_ttl = min_ttl.min(e.ttl_ms.load(Ordering::Acquire));
                    e.gate
                        .try_claim(u64::from(*qty))
                        .map_err(|available| CommandError::SoldOut {
                            sku: sku.clone(),
                            available,
                        })
                }
            });
            match r {
                Ok(()) => claimed += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(err) = failure {
            self.inner.dir.give_back(&request.lines[..claimed]);
            if matches!(err, CommandError::SoldOut { .. }) {
                self.inner.metrics.sold_out();
            }
            if let Some(key) = request.idempotency_key {
                let hash = request_hash(&request.buyer, &request.lines);
                let home = shard_of_key(&key, self.shard_count()) as usize;
                if let Some(part) = self.ask(home, |tx| Cmd::Probe(key, hash, tx)).await? {
                    return self.assemble(part).await;
                }
            }
            return Err(err);
        }
        // Only requests that got past the gates pay for hashing and the clock.
        let hash = request_hash(&request.buyer, &request.lines);
        let now = self.inner.clock.now_ms();
        let key_home = request
            .idempotency_key
            .as_ref()
            .map(|k| shard_of_key(k, self.shard_count()));
        let plan = plan(request.lines, self.shard_count(), key_home);
        let group = plan.is_group();
        let expires_at_ms = group.then(|| now.saturating_add(min_ttl));
        let mut key = request.idempotency_key;
        let home = plan.home as usize;
        if !group {
            let Some(part) = plan.parts.into_iter().next() else {
                return Err(CommandError::Invalid("empty reservation".into()));
            };
            let cmd = ReserveCommand {
                buyer: request.buyer,
                lines: part.lines,
                idempotency_key: key,
                request_hash: hash,
                id: None,
                expires_at_ms,
                group: None,
                claimed: true,
            };
            let part = self.ask(home, |tx| Cmd::Reserve(Box::new(cmd), tx)).await?;
            return Ok(part.view);
        }
        let groups: Vec<_> = (0..plan.parts.len()).map(|i| plan.group(i)).collect();
        let commands: Vec<(ShardId, ReserveCommand)> = plan
            .parts
            .into_iter()
            .zip(groups)
            .enumerate()
            .map(|(i, (p, group))| {
                (
                    p.shard,
                    ReserveCommand {
                        buyer: request.buyer.clone(),
                        lines: p.lines,
                        idempotency_key: if i == 0 { key.take() } else { None },
                        request_hash: hash,
                        id: None,
                        expires_at_ms,
                        group,
                        claimed: true,
                    },
                )
            })
            .collect();
        let part = self
            .ask(home, |tx| {
                Cmd::Group(Box::new(GroupReserve { parts: commands }), tx)
            })
            .await?;
        self.assemble(part).await
    }

    /// Completes a home part with the other shards' parts.
    async fn assemble(&self, home: PartView) -> Result<ReservationView, CommandError> {
        let Some(group) = home.group else {
            return Ok(home.view);
        };
        let id = home.view.id;
        let mut parts = Vec::new();
        for s in 0..self.shard_count() {
            if s != id.shard() as usize && group.shards_mask & (1u64 << s) != 0 {
                if let Some(p) = self.ask(s, |tx| Cmd::Part(id, tx)).await? {
                    parts.push(p);
                }
            }
        }
        Ok(assemble_reservation(home, &parts))
    }

    fn home_of(&self, id: ReservationId) -> Result<usize, CommandError> {
        let s = id.shard() as usize;
        if s >= self.shard_count() {
            return Err(CommandError::ReservationNotFound(id));
        }
        Ok(s)
    }

    /// A reservation's current view.
    pub async fn reservation(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        let home = self.home_of(id)?;
        let part = self
            .ask(home, |tx| Cmd::Part(id, tx))
            .await?
            .ok_or(CommandError::ReservationNotFound(id))?;
        self.assemble(part).await
    }

    /// Turns a held reservation into an order; returns once durable.
    pub async fn confirm(
        &self,
        id: ReservationId,
        payment_ref: String,
    ) -> Result<ReservationView, CommandError> {
        let home = self.home_of(id)?;
        let part = self
            .ask(home, |tx| Cmd::Confirm(id, payment_ref, tx))
            .await?;
        self.assemble(part).await
    }

    /// Releases a held reservation; returns once durable.
    pub async fn cancel(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        let home = self.home_of(id)?;
        let part = self.ask(home, |tx| Cmd::Cancel(id, tx)).await?;
        self.assemble(part).await
    }

    /// An order's view.
    pub async fn order(&self, id: OrderId) -> Result<OrderView, CommandError> {
        let s = id.shard() as usize;
        if s >= self.shard_count() {
            return Err(CommandError::OrderNotFound(id.to_string()));
        }
        let (view, group) = self.ask(s, |tx| Cmd::Order(id, tx)).await?;
        let mut parts = Vec::new();
        if let Some(g) = group {
            for p in 0..self.shard_count() {
                if p != s && g.shards_mask & (1u64 << p) != 0 {
                    if let Some(part) = self.ask(p, |tx| Cmd::Part(view.reservation, tx)).await? {
                        parts.push(part);
                    }
                }
            }
        }
        Ok(assemble_order(view, group, &parts))
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
