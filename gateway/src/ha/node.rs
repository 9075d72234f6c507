//! The high-availability controller of one node: joins the group (refusing a node id that a
//! live node already uses), then loops every lease/5: a standby follows the log (a task keeps
//! its [`Follower`] current, see [`super::follow`]), watches the lease and takes it when it
//! lapses (epoch bump), then starts its engine on the log fenced at its epoch from the
//! follower's state (replaying only the records it had not applied yet) and serves; a leader
//! renews, and steps down when it cannot renew before its lease ends (by its own clock,
//! counted from before the renewal was sent) or finds the epoch moved on, then names the new
//! leader at once and follows the log again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use flashsale_engine::{Engine, Follower, LogBackend};
use flashsale_persistence::postgres::lease::GroupStore;
use flashsale_persistence::{PostgresBackend, ReadModelConfig, ReadModelHandle};

use super::follow::FollowTask;
use super::state::{ClusterState, NodeRole};
use super::switch::SwitchEngine;
use super::term::{TermHook, TermServices};
use crate::stream::StockHub;

/// Starts an engine on the given (fenced) log, from a follower's state if given (see
/// [`Engine::start_from`]); blocking (it recovers the shards).
pub type EngineFactory =
    Arc<dyn Fn(Arc<dyn LogBackend>, Option<Follower>) -> anyhow::Result<Engine> + Send + Sync>;

/// Settings of a node.
#[derive(Debug, Clone)]
pub struct HaConfig {
    /// This node's identity in the group (unique among live nodes).
    pub node_id: String,
    /// The URL clients reach this node's HTTP API at (shown by standbys as `leader_url`).
    pub advertise_url: String,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// Number of engine shards (for log positions and the read model).
    pub shard_count: u16,
    /// Whether a standby keeps a live copy of the state (see [`super::follow`]).
    pub follow: bool,
}

impl HaConfig {
    /// Period of the controller loop: a fifth of the lease (at least 20 ms).
    pub fn tick(&self) -> Duration {
        (self.lease / 5).max(Duration::from_millis(20))
    }

    /// The lease in ms (for SQL).
    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The state of the controller (the HTTP-visible role follows it through [`ClusterState`]).
enum Phase {
    /// Watching the lease.
    Standby,
    /// Holding the lease.
    Leading(Term),
}

/// A leadership term: what the node runs while it holds the lease at `epoch`.
struct Term {
    /// The lease epoch every log write of `engine` is fenced with.
    epoch: u64,
    /// The end of the lease by the local clock, counted from before the last successful
    /// renewal was sent (never later than the database's view of it).
    deadline: Instant,
    /// The engine serving this term.
    engine: Engine,
    /// The read model, run by the leader only.
    read_model: ReadModelHandle,
    /// What the term hook started (events, the waiting room).
    services: TermServices,
}

/// One node of a group: its controller and what it shares with the HTTP API.
pub struct HaNode {
    config: HaConfig,
    backend: PostgresBackend,
    instance: String,
    state: Arc<ClusterState>,
    engines: SwitchEngine,
    start_engine: EngineFactory,
    hub: Option<Arc<StockHub>>,
    store: StoreSlot,
    /// The log tail of a standby (none while leading).
    follow: Option<FollowTask>,
    term_hook: Option<TermHook>,
}

/// The group connection, (re)opened on demand.
struct StoreSlot {
    backend: PostgresBackend,
    connect_timeout: Duration,
    store: Option<GroupStore>,
}

impl StoreSlot {
    /// The connection, reconnecting if it is gone (`None` if Postgres is unreachable).
    async fn get(&mut self) -> Option<&GroupStore> {
        if self.store.as_ref().is_some_and(GroupStore::is_closed) {
            self.store = None;
        }
        if self.store.is_none() {
            match tokio::time::timeout(self.connect_timeout, GroupStore::connect(&self.backend))
                .await
            {
                Ok(Ok(s)) => self.store = Some(s),
                Ok(Err(e)) => tracing::debug!(error = %e, "group connection failed"),
                Err(_) => tracing::debug!("group connection timed out"),
            }
        }
        self.store.as_ref()
    }

    /// Drops the connection (after a failure or a timeout), so the next use reconnects.
    fn reset(&mut self) {
        self.store = None;
    }
}

impl std::fmt::Debug for HaNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaNode")
            .field("config", &self.config)
            .field("instance", &self.instance)
            .finish()
    }
}

/// A per-process instance id: distinguishes a restarted node (same node id) from a duplicate.
fn instance_id() -> String {
    format!("{}-{:016x}", std::process::id(), rand::random::<u64>())
}

impl HaNode {
    /// Joins the group on `backend`'s schema as a standby. Fails (the node must not start) if
    /// Postgres is unreachable or a live node already uses `config.node_id`.
    pub async fn join(
        config: HaConfig,
        backend: PostgresBackend,
        start_engine: EngineFactory,
        hub: Option<Arc<StockHub>>,
    ) -> anyhow::Result<HaNode> {
        anyhow::ensure!(!config.node_id.is_empty(), "--node-id must not be empty");
        let instance = instance_id();
        let store = GroupStore::connect(&backend)
            .await
            .context("--ha: cannot reach Postgres")?;
        store
            .join(
                &config.node_id,
                &instance,
                &config.advertise_url,
                stale_after_ms(&config),
            )
            .await
            .context("--ha: cannot join the group")?;
        let state = Arc::new(ClusterState::new(&config.node_id));
        let store = StoreSlot {
            backend: backend.clone(),
            connect_timeout: config.tick() * 2,
            store: Some(store),
        };
        Ok(HaNode {
            config,
            backend,
            instance,
            state,
            engines: SwitchEngine::new(),
            start_engine,
            hub,
            store,
            follow: None,
            term_hook: None,
        })
    }

    /// Runs `hook` at every promotion (after the catch-up, before serving) and stops what it
    /// started at the step-down.
    pub fn with_term_hook(mut self, hook: TermHook) -> HaNode {
        self.term_hook = Some(hook);
        self
    }

    /// The group state the HTTP API reads.
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.clone()
    }

    /// The engine behind the HTTP API (present while leading).
    pub fn engines(&self) -> SwitchEngine {
        self.engines.clone()
    }

    /// Runs the controller until `stop` resolves; then steps down cleanly (releasing the lease
    /// so a standby takes over at once) and leaves the group.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        let mut phase = Phase::Standby;
        tokio::pin!(stop);
        loop {
            phase = self.step(phase).await;
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(self.config.tick()) => {}
            }
        }
        if let Phase::Leading(term) = phase {
            let epoch = term.epoch;
            self.step_down(term, "stopping").await;
            if let Some(store) = self.store.get().await {
                if let Err(e) = store
                    .release(&self.config.node_id, &self.instance, epoch)
                    .await
                {
                    tracing::warn!(error = %e, "could not release the lease");
                }
            }
        }
        self.engines.set_standby(None);
        if let Some(task) = self.follow.take() {
            drop(task.stop().await);
        }
        if let Some(store) = self.store.get().await {
            let _ = store.leave(&self.config.node_id, &self.instance).await;
        }
    }

    /// One round of the loop.
    async fn step(&mut self, phase: Phase) -> Phase {
        match phase {
            Phase::Standby => self.stand_by().await,
            Phase::Leading(term) => self.lead(term).await,
        }
    }

    /// A leader's round: renew the lease; step down if it was taken, or if it could not be
    /// renewed before its end by the local clock (Postgres lost, or this process paused).
    async fn lead(&mut self, mut term: Term) -> Phase {
        let sent = Instant::now();
        let timeout = self.config.tick() * 2;
        let (node, lease_ms) = (self.config.node_id.clone(), self.config.lease_ms());
        let instance = self.instance.clone();
        let renewed = match self.store.get().await {
            Some(store) => {
                tokio::time::timeout(timeout, store.renew(&node, &instance, term.epoch, lease_ms))
                    .await
                    .map_err(|_| "lease renewal timed out".to_string())
                    .and_then(|r| r.map_err(|e| format!("lease renewal failed: {e}")))
            }
            None => Err("lease renewal failed: postgres unreachable".to_string()),
        };
        match renewed {
            Ok(true) => {
                term.deadline = sent + self.config.lease;
                self.state.set_lease_deadline(term.deadline);
                self.heartbeat_and_position(true).await;
                Phase::Leading(term)
            }
            Ok(false) => {
                self.step_down(term, "the lease was taken by another node")
                    .await
            }
            Err(why) => {
                tracing::warn!(epoch = term.epoch, "{why}");
                self.store.reset();
                if Instant::now() >= term.deadline {
                    self.step_down(term, "the lease could not be renewed in time")
                        .await
                } else {
                    Phase::Leading(term)
                }
            }
        }
    }

    /// Records liveness and refreshes the log position of the view.
    async fn heartbeat_and_position(&mut self, leading: bool) {
        let (node, instance, shards) = (
            self.config.node_id.clone(),
            self.instance.clone(),
            self.config.shard_count,
        );
        let Some(store) = self.store.get().await else {
            return;
        };
        if let Ok(false) = store.heartbeat(&node, &instance).await {
            // This process was presumed dead (paused past 2 × lease) and a new one joined
            // under its id. The lease is bound to the process (node id and instance), so this
            // one can still only take a lapsed lease, like any other node.
            tracing::error!(node_id = %node, "another process took this node id over");
        }
        if let Ok(pos) = store.log_position(shards).await {
            // A standby's lag: the records its followed state has not applied yet (without
            // one, what a takeover would replay: the log past the snapshots).
            let applied = self.follow.as_ref().map(|f| f.state().applied());
            self.state.update(|v| {
                v.log_position = pos.end;
                v.lag = match (leading, applied) {
                    (true, _) => 0,
                    (false, Some(applied)) => pos.end.saturating_sub(applied),
                    (false, None) => pos.end.saturating_sub(pos.snapshot),
                };
            });
        }
    }

    /// Starts following the log, if not already (a standby's reads and its takeover use it).
    fn ensure_following(&mut self) {
        if self.follow.is_some() || !self.config.follow {
            return;
        }
        match FollowTask::start(
            self.backend.clone(),
            usize::from(self.config.shard_count),
            self.config.tick(),
        ) {
            Ok(task) => {
                self.engines.set_standby(Some(task.state()));
                self.follow = Some(task);
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "cannot follow the log"),
        }
    }

    /// A standby's round: refresh the view; take the lease if it lapsed or its holder's
    /// connection is gone.
    async fn stand_by(&mut self) -> Phase {
        self.ensure_following();
        self.heartbeat_and_position(false).await;
        let (node, url, lease_ms) = (
            self.config.node_id.clone(),
            self.config.advertise_url.clone(),
            self.config.lease_ms(),
        );
        let instance = self.instance.clone();
        let Some(store) = self.store.get().await else {
            self.state.update(|v| v.leader_url = None);
            return Phase::Standby;
        };
        let lease = match store.lease().await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "reading the lease failed");
                self.store.reset();
                return Phase::Standby;
            }
        };
        let live = lease.remaining_ms > 0 && !lease.node_id.is_empty();
        self.state.update(|v| {
            v.epoch = lease.epoch;
            v.leader_url = live.then(|| lease.advertise_url.clone());
        });
        // Tried every round: the statement itself decides (lapsed, ours, or the holder's
        // connection gone from Postgres), and changes nothing otherwise.
        let sent = Instant::now();
        let epoch = match store.try_acquire(&node, &instance, &url, lease_ms).await {
            Ok(Some(epoch)) => epoch,
            Ok(None) => return Phase::Standby,
            Err(e) => {
                tracing::warn!(error = %e, "taking the lease failed");
                self.store.reset();
                return Phase::Standby;
            }
        };
        tracing::info!(node_id = %node, epoch, "took the lease; catching up on the log");
        self.promote(epoch, sent).await
    }

    /// Starts the engine fenced at `epoch` from the followed state (replaying the log after
    /// its position: the catch-up) and serves.
    async fn promote(&mut self, epoch: u64, sent: Instant) -> Phase {
        let started = Instant::now();
        // Reads stop answering from the followed state: it becomes the engine's.
        self.engines.set_standby(None);
        let followed = match self.follow.take() {
            Some(task) => Some(task.stop().await),
            None => None,
        };
        let from = followed.as_ref().map_or(0, Follower::applied);
        let log: Arc<dyn LogBackend> = Arc::new(self.backend.fenced(epoch));
        let factory = self.start_engine.clone();
        let mut start = tokio::task::spawn_blocking(move || factory(log, followed));
        // Keep renewing while the engine catches up: a long log must not make the lease lapse
        // before the node serves (which would start the same catch-up again, forever).
        let mut lost = false;
        let mut deadline = sent + self.config.lease;
        let started_engine = loop {
            tokio::select! {
                res = &mut start => break res,
                _ = tokio::time::sleep(self.config.tick()) => {
                    if !lost {
                        lost = !self.renew_during_catch_up(epoch, &mut deadline).await;
                    }
                }
            }
        };
        let engine = match started_engine {
            Ok(Ok(engine)) if lost => {
                tracing::warn!(epoch, "lease lost while catching up");
                stop_engine(engine).await;
                return Phase::Standby;
            }
            Ok(Ok(engine)) => engine,
            Ok(Err(e)) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "cannot start the engine as leader"
                );
                self.release(epoch).await;
                return Phase::Standby;
            }
            Err(e) => {
                tracing::error!(error = %e, "engine start task failed");
                self.release(epoch).await;
                return Phase::Standby;
            }
        };
        // The recovery may have taken a while: renew before serving, so the first requests
        // do not run on a lease about to lapse.
        let (node, lease_ms) = (self.config.node_id.clone(), self.config.lease_ms());
        let instance = self.instance.clone();
        let renew_sent = Instant::now();
        if let Some(store) = self.store.get().await {
            match store.renew(&node, &instance, epoch, lease_ms).await {
                Ok(true) => deadline = renew_sent + self.config.lease,
                Ok(false) => {
                    tracing::warn!(epoch, "lease lost while catching up");
                    stop_engine(engine).await;
                    return Phase::Standby;
                }
                Err(e) => tracing::warn!(error = %e, "lease renewal after catching up failed"),
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(epoch, "lease lapsed while catching up");
            stop_engine(engine).await;
            return Phase::Standby;
        }
        let services = match &self.term_hook {
            Some(hook) => match hook(epoch, engine.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        epoch,
                        "cannot start the term's services"
                    );
                    stop_engine(engine).await;
                    self.release(epoch).await;
                    return Phase::Standby;
                }
            },
            None => TermServices::none(),
        };
        if let Some(hub) = &self.hub {
            hub.seed(&engine.stock_levels().await);
        }
        let read_model = flashsale_persistence::spawn_read_model(ReadModelConfig::for_backend(
            &self.backend,
            self.config.shard_count,
        ));
        self.engines.set(Some(engine.clone()));
        self.state.set_lease_deadline(deadline);
        let url = self.config.advertise_url.clone();
        self.state.update(|v| {
            v.role = NodeRole::Leader;
            v.epoch = epoch;
            v.leader_url = Some(url);
            v.lag = 0;
        });
        tracing::info!(
            epoch,
            followed_records = from,
            catch_up_ms = started.elapsed().as_millis() as u64,
            "leading"
        );
        println!("ha: leading at epoch {epoch}");
        Phase::Leading(Term {
            epoch,
            deadline,
            engine,
            read_model,
            services,
        })
    }

    /// One renewal while the engine starts, extending `deadline` on success; false only if
    /// the lease was taken (errors are left to the renewal after the start, which checks the
    /// deadline).
    async fn renew_during_catch_up(&mut self, epoch: u64, deadline: &mut Instant) -> bool {
        let (node, instance) = (self.config.node_id.clone(), self.instance.clone());
        let (lease_ms, timeout) = (self.config.lease_ms(), self.config.tick() * 2);
        let Some(store) = self.store.get().await else {
            return true;
        };
        let sent = Instant::now();
        match tokio::time::timeout(timeout, store.renew(&node, &instance, epoch, lease_ms)).await {
            Ok(Ok(true)) => {
                *deadline = sent + self.config.lease;
                true
            }
            Ok(Ok(false)) => false,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lease renewal during catch-up failed");
                self.store.reset();
                true
            }
            Err(_) => {
                self.store.reset();
                true
            }
        }
    }

    /// Gives the lease up (after a failed promotion).
    async fn release(&mut self, epoch: u64) {
        let (node, instance) = (self.config.node_id.clone(), self.instance.clone());
        if let Some(store) = self.store.get().await {
            let _ = store.release(&node, &instance, epoch).await;
        }
    }

    /// Stops serving at once (503 not-leader), then stops the read model and the engine
    /// (whose unacknowledged records the fence keeps out of the log).
    async fn step_down(&mut self, term: Term, why: &str) -> Phase {
        self.state.update(|v| {
            v.role = NodeRole::Standby;
            v.leader_url = None;
        });
        self.engines.set(None);
        let Term {
            epoch,
            engine,
            read_model,
            services,
            ..
        } = term;
        services.stop().await;
        if why == "stopping" {
            tracing::info!(epoch, "stepping down: stopping");
        } else {
            tracing::warn!(epoch, reason = why, "stepping down to standby");
            println!("ha: standby after epoch {epoch} ({why})");
        }
        if why != "stopping" {
            // Before the (slower) shutdown: the 503s name the new leader from now on.
            self.name_leader().await;
        }
        if let Err(e) = read_model.stop().await {
            tracing::warn!(error = %e, "read model stopped with an error");
        }
        stop_engine(engine).await;
        if why != "stopping" {
            self.ensure_following();
        }
        Phase::Standby
    }

    /// Reads the lease once and records its holder as the leader (a node that just stepped
    /// down names the new leader at once, not at its next round).
    async fn name_leader(&mut self) {
        let timeout = self.config.tick() * 2;
        let Some(store) = self.store.get().await else {
            return;
        };
        match tokio::time::timeout(timeout, store.lease()).await {
            Ok(Ok(lease)) => {
                let live = lease.remaining_ms > 0 && !lease.node_id.is_empty();
                self.state.update(|v| {
                    v.epoch = v.epoch.max(lease.epoch);
                    v.leader_url = live.then(|| lease.advertise_url.clone());
                });
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "reading the lease failed");
                self.store.reset();
            }
            Err(_) => self.store.reset(),
        }
    }
}

/// Shuts an engine down off the async threads.
async fn stop_engine(engine: Engine) {
    if let Err(e) = tokio::task::spawn_blocking(move || engine.shutdown()).await {
        tracing::error!(error = %e, "engine shutdown task failed");
    }
}

/// How long a node must have been silent before its node id may be taken by a new instance.
fn stale_after_ms(config: &HaConfig) -> u64 {
    config.lease_ms().saturating_mul(2).max(1_000)
}
