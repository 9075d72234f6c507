//! Helpers of the waiting room's crash tests: an engine and a waiting room on real embedded
//! logs in one data directory, started, stopped (as a crash would: records not yet submitted
//! are gone) and started again.

#![allow(clippy::expect_used, clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flashsale_engine::{Engine, EngineConfig, ReserveRequest, SystemClock};
use flashsale_gateway::waiting_room::{journal_backend, open, QueueService};
use flashsale_persistence::EmbeddedBackend;
use flashsale_protocol::queue::{AdmissionMethod, QueueId, QueueSpec};
use flashsale_protocol::{BuyerId, SkuId, SkuSpec};
use flashsale_waiting_room::{HoldGuard, PassKey, TicketStatus};

/// The queued SKU.
pub const SKU: &str = "tee";
/// The queue.
pub const QUEUE: &str = "drop";

/// A SKU id.
pub fn sku(s: &str) -> SkuId {
    SkuId::new(s).unwrap()
}

/// A buyer id.
pub fn buyer(s: &str) -> BuyerId {
    BuyerId::new(s).unwrap()
}

/// The queue's id.
pub fn queue() -> QueueId {
    QueueId::new(QUEUE).unwrap()
}

/// The engine and the waiting room of one server life.
pub struct Server {
    /// The engine (its log in `<dir>/engine`).
    pub engine: Arc<Engine>,
    /// The waiting room (its journal in `<dir>/waiting-room`).
    pub room: Arc<QueueService>,
}

impl Server {
    /// Starts (or restarts) both from `dir`.
    pub async fn start(dir: &Path) -> Server {
        let engine_dir = dir.join("engine");
        let mut cfg = EngineConfig::new(
            Arc::new(EmbeddedBackend::open(&engine_dir).unwrap()),
            Arc::new(SystemClock),
        );
        cfg.shards = 2;
        cfg.pin_cores = false;
        let engine = tokio::task::spawn_blocking(move || Engine::start(cfg))
            .await
            .unwrap()
            .unwrap();
        let backend = journal_backend(None, dir).unwrap();
        let room = open(backend, PassKey::new([7; 32]), Arc::new(SystemClock)).unwrap();
        Server {
            engine: Arc::new(engine),
            room,
        }
    }

    /// Stops both. The journal writes what was submitted to it; what a test did not submit
    /// (a `HoldPlaced` it skipped) is lost, as in a crash before that record was durable.
    pub async fn stop(self) {
        let Server { engine, room } = self;
        drop(room);
        tokio::task::spawn_blocking(move || engine.shutdown())
            .await
            .unwrap();
    }

    /// Creates the SKU (`stock` units, holds of `ttl_ms`) and a started fifo queue over it.
    pub async fn sale(&self, stock: u64, ttl_ms: u64) {
        self.engine
            .upsert_sku(SkuSpec {
                sku: sku(SKU),
                name: SKU.into(),
                price_cents: 100,
                stock,
                per_buyer_limit: None,
                sale_starts_at_ms: None,
                sale_ends_at_ms: None,
                reservation_ttl_ms: ttl_ms,
                max_hold_ms: flashsale_protocol::default_max_hold_ms(ttl_ms),
                max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
            })
            .await
            .unwrap();
        let now = self.room.now_ms();
        self.room
            .configure(
                queue(),
                QueueSpec {
                    skus: vec![sku(SKU)],
                    prequeue_opens_at_ms: None,
                    starts_at_ms: now.saturating_sub(1_000),
                    admit_per_s: 100,
                    max_active: 100,
                    pass_ttl_s: 600,
                    method: AdmissionMethod::Fifo,
                    overbooking_pct: 100,
                },
            )
            .await
            .unwrap();
    }

    /// Joins `who` and ticks until its ticket is admitted (bounded: 100 ticks); its pass.
    pub async fn admitted_pass(&self, who: &str) -> String {
        let t = self.room.join(&queue(), &buyer(who)).await.unwrap();
        for _ in 0..100 {
            self.room.tick(self.engine.as_ref()).await.unwrap();
            let v = self.room.ticket(&queue(), t.ticket).unwrap();
            if v.status == TicketStatus::Admitted {
                return v.pass.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{who} was not admitted");
    }

    /// Checks `pass` of `who` for a reservation of the queued SKU.
    pub fn begin_hold(
        &self,
        who: &str,
        pass: &str,
    ) -> Result<Option<HoldGuard>, flashsale_waiting_room::PassError> {
        self.room.begin_hold(&[sku(SKU)], Some(pass), &buyer(who))
    }

    /// A reservation of one unit for `who`, in the engine.
    pub async fn reserve(&self, who: &str) -> flashsale_engine::ReservationView {
        self.engine
            .reserve(ReserveRequest {
                buyer: buyer(who),
                lines: vec![(sku(SKU), 1)],
                idempotency_key: None,
                ttl_ms: None,
            })
            .await
            .unwrap()
    }

    /// One tick of the room (the restart's pass checks run first in it).
    pub async fn tick(&self) {
        self.room.tick(self.engine.as_ref()).await.unwrap();
    }
}
