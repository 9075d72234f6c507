//! The runtime around the shards: one glommio executor per shard pinned to a core, group
//! commit into the log, expiry ticks, and the async [`Engine`] handle callers use from any
//! thread (tokio tasks included).

use std::sync::Arc;

use flashsale_protocol::{OrderId, ReservationId, SkuId, SkuSpec};

use crate::clock::Clock;
use crate::command::{CommandError, ReserveRequest};
use crate::log::LogBackend;
use crate::observer::StockObserver;
use crate::stats::StatsSnapshot;
use crate::view::{OrderView, ReservationView, SkuView};

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
    /// Take a snapshot after this many logged events per shard (0 = never).
    pub snapshot_every_events: u64,
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

/// A cheap, cloneable, `Send + Sync` handle to the running engine.
#[derive(Clone)]
pub struct Engine {
    _inner: Arc<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

#[allow(clippy::todo, unused_variables)]
impl Engine {
    /// Starts the shards, recovers each from its snapshot and log, and returns once all serve.
    pub fn start(config: EngineConfig) -> Result<Engine, StartError> {
        todo!()
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        todo!()
    }

    /// Creates or replaces a SKU's settings. Returns the view and whether it was created.
    pub async fn upsert_sku(&self, spec: SkuSpec) -> Result<(SkuView, bool), CommandError> {
        todo!()
    }

    /// Adds units to a SKU's stock.
    pub async fn restock(&self, sku: SkuId, qty: u64) -> Result<SkuView, CommandError> {
        todo!()
    }

    /// A SKU's current view.
    pub async fn sku(&self, sku: SkuId) -> Result<SkuView, CommandError> {
        todo!()
    }

    /// SKUs ordered by id, strictly after `after`, at most `limit`.
    pub async fn list_skus(
        &self,
        after: Option<SkuId>,
        limit: usize,
    ) -> Result<Vec<SkuView>, CommandError> {
        todo!()
    }

    /// Holds stock for every line or none; returns once durable.
    pub async fn reserve(&self, request: ReserveRequest) -> Result<ReservationView, CommandError> {
        todo!()
    }

    /// A reservation's current view.
    pub async fn reservation(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        todo!()
    }

    /// Turns a held reservation into an order; returns once durable.
    pub async fn confirm(
        &self,
        id: ReservationId,
        payment_ref: String,
    ) -> Result<ReservationView, CommandError> {
        todo!()
    }

    /// Releases a held reservation; returns once durable.
    pub async fn cancel(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        todo!()
    }

    /// An order's view.
    pub async fn order(&self, id: OrderId) -> Result<OrderView, CommandError> {
        todo!()
    }

    /// Whether every shard's log is writable (for `/ready`).
    pub fn ready(&self) -> bool {
        todo!()
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> StatsSnapshot {
        todo!()
    }

    /// Every SKU's current stock level (for stream snapshots), from the lock-free mirrors.
    pub async fn stock_levels(&self) -> Vec<crate::observer::StockLevel> {
        todo!()
    }

    /// Stops accepting commands, finishes in-flight ones and joins the executors.
    pub fn shutdown(&self) {
        todo!()
    }
}
