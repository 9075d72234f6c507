//! The waiting room in the server: the sans-IO [`WaitingRoom`] behind a mutex, its journal
//! (records durable before an answer), the clock, and [`QueueService::tick`], which feeds the
//! room the engine's stock counts and what became of the passes' reservations, then lets it
//! start queues, expire passes and admit. Polls read the room only: they never reach a shard.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flashsale_engine::{Clock, ReservationStatus};
use flashsale_persistence::{JournalError, QueueJournal};
use flashsale_protocol::queue::{QueueId, QueueRecord, QueueSpec};
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use flashsale_waiting_room::{
    ApplyError, ConfigureError, HoldGuard, JoinError, PassError, PassKey, QueueView, TicketError,
    TicketView, WaitingRoom,
};

use crate::http::inventory::Inventory;

/// How often the ticker runs: the longest a waiting ticket takes to learn of a sell-out, plus
/// its poll interval.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Why a waiting-room command failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueServiceError {
    /// The configuration was refused.
    #[error(transparent)]
    Configure(#[from] ConfigureError),
    /// The join was refused.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// The records could not be made durable.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The waiting room of one server.
pub struct QueueService {
    room: Mutex<WaitingRoom>,
    journal: Option<QueueJournal>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for QueueService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueService")
            .field("journal", &self.journal.is_some())
            .finish()
    }
}

impl QueueService {
    /// A room signing with `key`, rebuilt from `stored` records, logging to `journal` (none:
    /// in memory only, for tests).
    pub fn new(
        key: PassKey,
        seed: u64,
        clock: Arc<dyn Clock>,
        journal: Option<QueueJournal>,
        stored: Vec<QueueRecord>,
    ) -> Result<Self, ApplyError> {
        Ok(QueueService {
            room: Mutex::new(WaitingRoom::restore(key, seed, stored)?),
            journal,
            clock,
        })
    }

    fn lock(&self) -> MutexGuard<'_, WaitingRoom> {
        // A panic while holding the lock cannot leave the room half-changed: every change is
        // one record applied whole. Keep serving.
        self.room.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the room and makes its records durable before returning its result. The
    /// journal's place is taken before the room changes (a full journal refuses the command),
    /// and the records are submitted under the lock, so the log has the room's order.
    async fn commit<T>(
        &self,
        f: impl FnOnce(&mut WaitingRoom, u64) -> T,
    ) -> Result<T, JournalError> {
        let now = self.clock.now_ms();
        let (out, done) = {
            let mut room = self.lock();
            let permit = match &self.journal {
                Some(j) => Some(j.try_reserve()?),
                None => None,
            };
            let out = f(&mut room, now);
            let records = room.take_records();
            (out, permit.map(|p| p.submit(records)))
        };
        if let Some(done) = done {
            done.await?;
        }
        Ok(out)
    }

    /// Now, Unix ms.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Creates (`true`) or changes a queue; returns its view.
    pub async fn configure(
        &self,
        queue: QueueId,
        spec: QueueSpec,
    ) -> Result<(bool, QueueView), QueueServiceError> {
        let q = queue.clone();
        let created = self
            .commit(|room, now| room.configure(q, spec, now))
            .await??;
        let view = self
            .lock()
            .queue_view(&queue)
            .ok_or_else(|| JoinError::UnknownQueue(queue.clone()))?;
        Ok((created, view))
    }

    /// A queue's view.
    pub fn queue_view(&self, queue: &QueueId) -> Option<QueueView> {
        self.lock().queue_view(queue)
    }

    /// Joins `buyer` (the same ticket again if it joined before).
    pub async fn join(
        &self,
        queue: &QueueId,
        buyer: &BuyerId,
    ) -> Result<TicketView, QueueServiceError> {
        Ok(self
            .commit(|room, now| room.join(queue, buyer, now))
            .await??)
    }

    /// A poll: the room's answer, no record, no shard.
    pub fn ticket(&self, queue: &QueueId, ticket: u64) -> Result<TicketView, TicketError> {
        let now = self.clock.now_ms();
        self.lock().ticket(queue, ticket, now)
    }

    /// Checks a reservation's pass (see [`WaitingRoom::begin_hold`]).
    pub fn begin_hold(
        &self,
        skus: &[SkuId],
        pass: Option<&str>,
        buyer: &BuyerId,
    ) -> Result<Option<HoldGuard>, PassError> {
        let now = self.clock.now_ms();
        self.lock().begin_hold(skus, pass, buyer, now)
    }

    /// The reservation checked by `guard` was placed.
    pub async fn hold_placed(
        &self,
        guard: HoldGuard,
        reservation: ReservationId,
        expires_at_ms: u64,
    ) -> Result<(), JournalError> {
        self.commit(|room, _| room.hold_placed(guard, reservation, expires_at_ms))
            .await
    }

    /// The reservation checked by `guard` was refused.
    pub fn hold_failed(&self, guard: HoldGuard) {
        self.lock().hold_failed(guard);
    }

    /// A reservation was confirmed (its pass, if any, is spent).
    pub async fn confirmed(&self, reservation: ReservationId) -> Result<(), JournalError> {
        self.commit(|room, now| {
            room.reservation_confirmed(reservation, now);
        })
        .await
    }

    /// A reservation was cancelled or expired (its pass, if any, may hold again).
    pub async fn released(&self, reservation: ReservationId) -> Result<(), JournalError> {
        self.commit(|room, now| {
            room.reservation_released(reservation, now);
        })
        .await
    }

    /// One round: the engine's counts of every queued SKU, the fate of passes' reservations
    /// past their expiry, then the room's own tick (start, pass expiry, admission).
    pub async fn tick<E: Inventory>(&self, inventory: &E) -> Result<(), JournalError> {
        let skus = self.lock().queued_skus();
        for sku in skus {
            // An unknown SKU is not observed: its queue admits nobody until it exists.
            if let Ok(v) = inventory.sku(sku.clone()).await {
                self.lock().observe_stock(&sku, v.available, v.reserved);
            }
        }
        let due = self.lock().due_holds(self.clock.now_ms());
        for r in due {
            match inventory.reservation(r).await {
                Ok(v) => match v.status {
                    ReservationStatus::Held => self.lock().hold_extended(r, v.expires_at_ms),
                    ReservationStatus::Confirmed => self.confirmed(r).await?,
                    ReservationStatus::Released | ReservationStatus::Expired => {
                        self.released(r).await?
                    }
                },
                // The engine forgot it (retention): its units came back long ago.
                Err(flashsale_engine::CommandError::ReservationNotFound(_)) => {
                    self.released(r).await?
                }
                Err(_) => {}
            }
        }
        self.commit(|room, now| room.tick(now)).await
    }

    /// Runs [`Self::tick`] every [`TICK_INTERVAL`] until the task is dropped.
    pub fn spawn_ticker<E: Inventory>(
        self: Arc<Self>,
        inventory: Arc<E>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = self.tick(inventory.as_ref()).await {
                    tracing::warn!(error = %e, "waiting room tick");
                }
            }
        })
    }
}

/// The pass key of a server: derived from a stable secret of its identity, so passes stay
/// valid across restarts and differ between servers.
pub fn pass_key_from(secret: &[u8]) -> PassKey {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"flashsale waiting-room pass key v1\n");
    h.update(secret);
    PassKey::new(h.finalize().into())
}

/// Where the waiting room's journal lives: schema `<schema>_queues` next to a Postgres log,
/// else `<data dir>/waiting-room` (each its own log, shard 0 of 1; ADR 0025).
pub fn journal_backend(
    database: Option<(&str, &str)>,
    data_dir: &std::path::Path,
) -> Result<Arc<dyn flashsale_engine::LogBackend>, flashsale_persistence::PersistenceError> {
    Ok(match database {
        Some((url, schema)) => Arc::new(flashsale_persistence::PostgresBackend::with_schema(
            url,
            &format!("{schema}_queues"),
        )?),
        None => Arc::new(flashsale_persistence::EmbeddedBackend::open(
            &data_dir.join("waiting-room"),
        )?),
    })
}

/// Opens the journal on `backend` and the room from its records.
pub fn open(
    backend: Arc<dyn flashsale_engine::LogBackend>,
    key: PassKey,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<QueueService>> {
    use anyhow::Context as _;
    let (journal, stored) =
        QueueJournal::open(backend).context("cannot open the waiting room's journal")?;
    let count = stored.len();
    let service = QueueService::new(key, rand::random(), clock, Some(journal), stored)
        .context("cannot replay the waiting room's journal")?;
    tracing::info!(records = count, "waiting room replayed");
    Ok(Arc::new(service))
}
