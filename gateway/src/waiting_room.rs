//! The waiting room in the server: the sans-IO [`WaitingRoom`] behind a mutex, its journal
//! (records durable before an answer), the clock, and [`QueueService::tick`], which feeds the
//! room the engine's stock counts and what became of the passes' reservations, then lets it
//! start queues, expire passes and admit. Polls read the room only: they never reach a shard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flashsale_engine::{Clock, ReservationQuery, ReservationStatus};
use flashsale_persistence::{JournalError, QueueJournal, Stored};
use flashsale_protocol::queue::{QueueId, QueueRecord, QueueSpec};
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use flashsale_waiting_room::limits::{
    MAX_PASS_CHECKS_PER_TICK, MAX_PASS_CHECK_PAGES, PASS_CHECK_SKEW_MS,
};
use flashsale_waiting_room::{
    ApplyError, ConfigureError, HoldGuard, JoinError, PassCheck, PassError, PassKey, PassToCheck,
    PollSpread, QueueView, TicketError, TicketView, WaitingRoom,
};

use crate::http::inventory::Inventory;

/// How often the ticker runs: the longest a waiting ticket takes to learn of a sell-out, plus
/// its poll interval.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Records logged after which the journal is compacted (a snapshot of the live state
/// replaces them): replay at start and the journal's size stay bounded over a long sale.
pub const COMPACT_AFTER_RECORDS: u64 = 100_000;

/// Segment size of the waiting room's embedded journal: compaction drops whole segments.
pub const JOURNAL_SEGMENT_BYTES: u64 = 8 << 20;

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
    /// Records submitted since the last snapshot.
    since_snapshot: AtomicU64,
    /// Compact after this many records.
    compact_after: AtomicU64,
    /// Snapshots written (compactions).
    compactions: AtomicU64,
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
        let stored = Stored {
            snapshot: None,
            records: stored,
        };
        Self::from_stored(key, seed, clock, journal, stored)
    }

    /// Like [`Self::new`], from a journal's snapshot and the records after it.
    pub fn from_stored(
        key: PassKey,
        seed: u64,
        clock: Arc<dyn Clock>,
        journal: Option<QueueJournal>,
        stored: Stored,
    ) -> Result<Self, ApplyError> {
        let since = stored.records.len() as u64;
        let mut room = WaitingRoom::restore_from(key, seed, stored.snapshot, stored.records)?;
        // `HoldPlaced` is not awaited (ADR 0034): any idle pass may hold a reservation the
        // journal lost. Each is refused `in-use` until the ticker has asked the engine.
        let unchecked = room.distrust_idle_passes();
        if unchecked > 0 {
            tracing::info!(
                passes = unchecked,
                "waiting room: idle passes to check against the engine"
            );
        }
        Ok(QueueService {
            room: Mutex::new(room),
            journal,
            clock,
            since_snapshot: AtomicU64::new(since),
            compact_after: AtomicU64::new(COMPACT_AFTER_RECORDS),
            compactions: AtomicU64::new(0),
        })
    }

    /// Compacts the journal after `records` records instead of [`COMPACT_AFTER_RECORDS`].
    pub fn set_compaction_after(&self, records: u64) {
        self.compact_after.store(records.max(1), Ordering::Relaxed);
    }

    /// Spreads waiting tickets' poll intervals by `spread` (`--queue-poll-spread`).
    pub fn set_poll_spread(&self, spread: PollSpread) {
        self.lock().set_poll_spread(spread);
    }

    /// Snapshots written since start.
    pub fn compactions(&self) -> u64 {
        self.compactions.load(Ordering::Relaxed)
    }

    /// Under the room's lock, after `n` more records were submitted: when enough piled up
    /// since the last snapshot, submits a snapshot of the room (the fold of every record
    /// before it) so the journal can drop them. Not awaited; a failed snapshot is retried at
    /// the next threshold.
    fn maybe_compact(&self, room: &WaitingRoom, n: u64) {
        let Some(journal) = &self.journal else {
            return;
        };
        let since = self.since_snapshot.fetch_add(n, Ordering::Relaxed) + n;
        if since < self.compact_after.load(Ordering::Relaxed) {
            return;
        }
        let Ok(permit) = journal.try_reserve() else {
            return;
        };
        self.since_snapshot.store(0, Ordering::Relaxed);
        self.compactions.fetch_add(1, Ordering::Relaxed);
        let done = permit.submit_snapshot(room.snapshot());
        tokio::spawn(async move {
            if let Err(e) = done.await {
                tracing::warn!(error = %e, "waiting room: journal compaction failed");
            }
        });
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
            let n = records.len() as u64;
            let done = permit.map(|p| p.submit(records));
            self.maybe_compact(&room, n);
            (out, done)
        };
        if let Some(done) = done {
            done.await?;
        }
        Ok(out)
    }

    /// Like [`Self::commit`], but the answer does not wait for durability: the records are
    /// submitted in the room's order and become durable with the journal's next group
    /// commit. Only for records whose loss a restart repairs by itself (ADR 0025, 0032).
    /// The room changes even when the journal is full: its records then stay in the room's
    /// outbox, in order, and are submitted with the next command's (the error is returned).
    fn commit_detached(&self, f: impl FnOnce(&mut WaitingRoom, u64)) -> Result<(), JournalError> {
        let now = self.clock.now_ms();
        let mut room = self.lock();
        let permit = match &self.journal {
            Some(j) => match j.try_reserve() {
                Ok(p) => Some(p),
                Err(e) => {
                    f(&mut room, now);
                    return Err(e);
                }
            },
            None => None,
        };
        f(&mut room, now);
        let records = room.take_records();
        let n = records.len() as u64;
        if let Some(p) = permit {
            if records
                .iter()
                .any(|r| matches!(r, QueueRecord::Spent { .. }))
            {
                // A confirm's `Spent` is flushed at once, as before ADR 0040 (still not
                // awaited): a takeover right after a confirm must find the ticket spent, not
                // admitted with a pass until the repair. One per confirm: cheap.
                drop(p.submit(records));
            } else {
                // Flushed with the next awaited batch, or within the journal's detached delay
                // (ADR 0040): no fdatasync of its own.
                p.submit_detached(records);
            }
        }
        self.maybe_compact(&room, n);
        Ok(())
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

    /// The reservation checked by `guard` was placed (durably, in the engine). Not awaited
    /// (ADR 0034): if the record is lost in a crash, the pass restarts as
    /// [`flashsale_waiting_room::Hold::Checking`] and the ticker finds the reservation among
    /// its buyer's held ones ([`Self::check_passes`]) before the pass can hold again.
    pub fn hold_placed(
        &self,
        guard: HoldGuard,
        reservation: ReservationId,
        expires_at_ms: u64,
    ) -> Result<(), JournalError> {
        self.commit_detached(|room, _| room.hold_placed(guard, reservation, expires_at_ms))
    }

    /// Checks up to [`MAX_PASS_CHECKS_PER_TICK`] passes distrusted at the restart against
    /// the engine: a confirmed reservation of its buyer with one of the queue's SKUs, made
    /// after the pass's admission, spent it (its `HoldPlaced` and `Spent` are logged again); a
    /// held one is the pass's hold (its `HoldPlaced` is logged again); none means the pass is
    /// idle. A pass whose check fails (engine error, scan bound) stays
    /// refused and is checked again at the next tick.
    pub async fn check_passes<E: Inventory>(&self, inventory: &E) -> Result<(), JournalError> {
        let todo = {
            let room = self.lock();
            if room.passes_unchecked() == 0 {
                return Ok(());
            }
            room.passes_to_check(MAX_PASS_CHECKS_PER_TICK)
        };
        for pass in todo {
            let Some(check) = held_by_pass(inventory, &pass, self.clock.now_ms()).await else {
                continue;
            };
            self.commit_detached(|room, _| room.pass_checked(&pass.queue, pass.ticket, check))?;
        }
        Ok(())
    }

    /// The reservation checked by `guard` was refused.
    pub fn hold_failed(&self, guard: HoldGuard) {
        self.lock().hold_failed(guard);
    }

    /// A reservation was confirmed (its pass, if any, is spent). Not awaited: if the record
    /// is lost in a crash, the pass still reads as holding the reservation (it cannot be used
    /// again), and the check of holds past their expiry (see [`Self::tick`]) learns from the
    /// engine that it was confirmed and logs it again.
    pub fn confirmed(&self, reservation: ReservationId) -> Result<(), JournalError> {
        self.commit_detached(|room, now| {
            room.reservation_confirmed(reservation, now);
        })
    }

    /// A reservation was cancelled or expired (its pass, if any, may hold again). Not awaited,
    /// repaired like [`Self::confirmed`] (until then the pass reads as still holding: it is
    /// refused `in-use`, never used twice).
    pub fn released(&self, reservation: ReservationId) -> Result<(), JournalError> {
        self.commit_detached(|room, now| {
            room.reservation_released(reservation, now);
        })
    }

    /// One round: the engine's counts of every queued SKU, the fate of passes' reservations
    /// past their expiry, then the room's own tick (start, pass expiry, admission).
    pub async fn tick<E: Inventory>(&self, inventory: &E) -> Result<(), JournalError> {
        self.check_passes(inventory).await?;
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
                    ReservationStatus::Confirmed => self.confirmed(r)?,
                    ReservationStatus::Released | ReservationStatus::Expired => self.released(r)?,
                },
                // The engine forgot it (retention): its units came back long ago.
                Err(flashsale_engine::CommandError::ReservationNotFound(_)) => self.released(r)?,
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

/// What the engine has of a pass being checked: a confirmed reservation of its buyer with
/// one of the queue's SKUs made after its admission spends it (checked first: a spent pass
/// never holds again), else such a held one is its hold, else it is free. `None` when the
/// check failed (engine error, scan bound): the pass stays refused and is checked again.
async fn held_by_pass<E: Inventory>(
    inventory: &E,
    pass: &PassToCheck,
    now_ms: u64,
) -> Option<PassCheck> {
    for sku in &pass.skus {
        if let Some(v) = made_with_pass(inventory, pass, sku, ReservationStatus::Confirmed).await? {
            return Some(PassCheck::Spent {
                reservation: v.id,
                expires_at_ms: v.expires_at_ms,
                at_ms: now_ms,
            });
        }
    }
    for sku in &pass.skus {
        if let Some(v) = made_with_pass(inventory, pass, sku, ReservationStatus::Held).await? {
            return Some(PassCheck::Holds {
                reservation: v.id,
                expires_at_ms: v.expires_at_ms,
            });
        }
    }
    Some(PassCheck::Free)
}

/// The newest reservation of the pass's buyer with `sku` in `status` made after the pass's
/// admission: `Some(None)` when there is none, `None` when the scan failed or reached its
/// bound.
async fn made_with_pass<E: Inventory>(
    inventory: &E,
    pass: &PassToCheck,
    sku: &SkuId,
    status: ReservationStatus,
) -> Option<Option<flashsale_engine::ReservationView>> {
    let oldest = pass.admitted_at_ms.saturating_sub(PASS_CHECK_SKEW_MS);
    let mut before = None;
    for _ in 0..MAX_PASS_CHECK_PAGES {
        let query = ReservationQuery {
            buyer: pass.buyer.clone(),
            status: Some(status),
            sku: Some(sku.clone()),
            before,
            limit: 1,
        };
        let (items, next) = match inventory.list_reservations(query).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, queue = %pass.queue, ticket = pass.ticket, "waiting room: pass check");
                return None;
            }
        };
        if let Some(v) = items.into_iter().find(|v| v.created_at_ms >= oldest) {
            return Some(Some(v));
        }
        // Newest first: past the pass's admission, nothing older was made with it.
        match next {
            Some(pos) if pos.0 >= oldest => before = Some(pos),
            _ => return Some(None),
        }
    }
    tracing::warn!(queue = %pass.queue, ticket = pass.ticket, "waiting room: pass check reached its scan bound; retried");
    None
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
        Some((url, schema)) => Arc::new(postgres_journal(url, schema)?),
        None => Arc::new(flashsale_persistence::EmbeddedBackend::open_with(
            &data_dir.join("waiting-room"),
            flashsale_persistence::EmbeddedOptions {
                segment_size_bytes: JOURNAL_SEGMENT_BYTES,
                ..Default::default()
            },
        )?),
    })
}

/// The waiting room's journal next to the Postgres log in `schema`: schema
/// `<schema>_queues`. A high-availability group's terms fence it with their epoch, checked
/// against the group's lease ([`flashsale_persistence::PostgresBackend::fenced_by`]).
pub fn postgres_journal(
    url: &str,
    schema: &str,
) -> Result<flashsale_persistence::PostgresBackend, flashsale_persistence::PersistenceError> {
    flashsale_persistence::PostgresBackend::with_schema(url, &format!("{schema}_queues"))
}

/// Opens the journal on `backend` and the room from its records.
pub fn open(
    backend: Arc<dyn flashsale_engine::LogBackend>,
    key: PassKey,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<QueueService>> {
    open_with(
        backend,
        key,
        clock,
        flashsale_persistence::queue_journal::DETACHED_FLUSH_DELAY,
    )
}

/// Like [`open`], with detached records flushed at most `detached_delay` after the first of
/// them (zero: each group at once; see [`QueueJournal::open_with`]).
pub fn open_with(
    backend: Arc<dyn flashsale_engine::LogBackend>,
    key: PassKey,
    clock: Arc<dyn Clock>,
    detached_delay: Duration,
) -> anyhow::Result<Arc<QueueService>> {
    use anyhow::Context as _;
    let (journal, stored) = QueueJournal::open_with(backend, detached_delay)
        .context("cannot open the waiting room's journal")?;
    let count = stored.records.len();
    let snapshot = stored.snapshot.is_some();
    let service = QueueService::from_stored(key, rand::random(), clock, Some(journal), stored)
        .context("cannot replay the waiting room's journal")?;
    tracing::info!(records = count, snapshot, "waiting room replayed");
    Ok(Arc::new(service))
}
