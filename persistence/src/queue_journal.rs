//! The waiting room's journal: its [`QueueRecord`]s in a log of their own — shard 0 of 1 of a
//! separate backend instance (`<data dir>/waiting-room` embedded, schema `<schema>_queues` on
//! Postgres; see ADR 0025) — written by one glommio thread (`flashsale-queues`) with group
//! commit, and replayed at start from its last snapshot.
//!
//! Order is the room's order: take a [`JournalPermit`] before changing the room, submit the
//! records under the same lock, await durability after releasing it.
//!
//! Detached records ([`JournalPermit::submit_detached`]: nobody awaits them, a restart repairs
//! their loss) are not flushed on their own at once: they ride the next awaited batch's flush,
//! or are flushed [`DETACHED_FLUSH_DELAY`] after the first of them at the latest (ADR 0040).
//! A reservation's `HoldPlaced` and its cancel's `HoldReleased` then cost no `fdatasync` each,
//! which competed on the disk with the engine's own group commits.
//!
//! Compaction: a [`RoomSnapshot`] submitted the same way (under the room's lock, so it is the
//! fold of every record before it) is written as the log's snapshot once those records are
//! durable; the backend then drops the records it covers (whole segments, embedded; rows,
//! Postgres). A restart loads the snapshot and replays only the records after it.

use flashsale_engine::log::{LogBackend, ShardLog};
use flashsale_protocol::queue::{decode_queue_record, encode_queue_record, QueueRecord};
use flashsale_protocol::queue_snapshot::{
    decode_room_snapshot, encode_room_snapshot, RoomSnapshot,
};
use glommio::{LocalExecutorBuilder, Placement};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most batches waiting for the journal thread; more are refused with [`JournalError::Busy`].
pub const JOURNAL_QUEUE_BATCHES: usize = 4_096;

/// Most batches one group commit takes.
const GROUP_MAX_BATCHES: usize = 1_024;

/// Longest time detached records wait in memory for a flush when no awaited batch comes
/// (ADR 0040): the widest window in which a crash loses them (a restart repairs it).
pub const DETACHED_FLUSH_DELAY: Duration = Duration::from_millis(100);

/// The journal thread's DMA memory (the log only writes small records).
const IO_MEMORY: usize = 512 << 10;

/// Why the journal could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The log could not be opened or replayed.
    #[error("waiting-room journal: cannot open: {0}")]
    Open(String),
    /// A stored record did not decode.
    #[error("waiting-room journal: record {seq} is corrupt: {reason}")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// [`JOURNAL_QUEUE_BATCHES`] batches are waiting already.
    #[error("waiting-room journal is busy")]
    Busy,
    /// The log refused the write (records stay buffered; the next flush retries them).
    #[error("waiting-room journal: write failed: {0}")]
    Write(String),
    /// The journal thread stopped.
    #[error("waiting-room journal stopped")]
    Closed,
}

type Done = oneshot::Sender<Result<(), JournalError>>;

enum Batch {
    /// Records to append; `done` is told once they are durable (`None`: detached, flushed
    /// with the next awaited batch or after [`DETACHED_FLUSH_DELAY`]).
    Records {
        records: Vec<QueueRecord>,
        done: Option<Done>,
    },
    /// The room's state after every record submitted before it.
    Snapshot {
        snapshot: Box<RoomSnapshot>,
        done: Done,
    },
}

/// What the journal holds at start: the last snapshot (if any) and the records after it.
#[derive(Debug, Default)]
pub struct Stored {
    /// The room as of the last compaction.
    pub snapshot: Option<RoomSnapshot>,
    /// The records logged after it, in order.
    pub records: Vec<QueueRecord>,
}

/// The open journal. Dropping it stops its thread after the batches already submitted.
pub struct QueueJournal {
    tx: Option<mpsc::Sender<Batch>>,
    thread: Option<glommio::ExecutorJoinHandle<()>>,
}

/// A reserved place for one batch: taken before the room changes, so a full journal refuses
/// the command instead of losing its records.
pub struct JournalPermit<'a>(mpsc::Permit<'a, Batch>);

impl JournalPermit<'_> {
    /// Submits the records (in the order the room made them); the future resolves once they
    /// are durable.
    pub fn submit(
        self,
        records: Vec<QueueRecord>,
    ) -> impl std::future::Future<Output = Result<(), JournalError>> {
        let (done, rx) = oneshot::channel();
        let empty = records.is_empty();
        if empty {
            let _ = done.send(Ok(()));
        } else {
            self.0.send(Batch::Records {
                records,
                done: Some(done),
            });
        }
        async move { rx.await.unwrap_or(Err(JournalError::Closed)) }
    }

    /// Submits records nobody waits for (their loss in a crash is repaired at the restart):
    /// written in the room's order with the next awaited batch, or within
    /// [`DETACHED_FLUSH_DELAY`] (the journal's delay) when none comes.
    pub fn submit_detached(self, records: Vec<QueueRecord>) {
        if !records.is_empty() {
            self.0.send(Batch::Records {
                records,
                done: None,
            });
        }
    }

    /// Submits a snapshot of the room (taken under the same lock as the records before it);
    /// the future resolves once it is stored and the records it covers may be dropped.
    pub fn submit_snapshot(
        self,
        snapshot: RoomSnapshot,
    ) -> impl std::future::Future<Output = Result<(), JournalError>> {
        let (done, rx) = oneshot::channel();
        self.0.send(Batch::Snapshot {
            snapshot: Box::new(snapshot),
            done,
        });
        async move { rx.await.unwrap_or(Err(JournalError::Closed)) }
    }
}

impl QueueJournal {
    /// Opens the journal on `backend` (shard 0 of 1) and returns it with its last snapshot
    /// and the records after it, in order.
    pub fn open(backend: Arc<dyn LogBackend>) -> Result<(QueueJournal, Stored), JournalError> {
        Self::open_with(backend, DETACHED_FLUSH_DELAY)
    }

    /// Like [`Self::open`], with detached records flushed at most `detached_delay` after the
    /// first of them (zero: at once, each group on its own, as before ADR 0040).
    pub fn open_with(
        backend: Arc<dyn LogBackend>,
        detached_delay: Duration,
    ) -> Result<(QueueJournal, Stored), JournalError> {
        let (tx, rx) = mpsc::channel::<Batch>(JOURNAL_QUEUE_BATCHES);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name("flashsale-queues")
            .io_memory(IO_MEMORY)
            .spawn(move || async move {
                let opened = open_and_replay(backend.as_ref()).await;
                match opened {
                    Ok((log, records, last_seq)) => {
                        if ready_tx.send(Ok(records)).is_ok() {
                            run(log, last_seq, rx, detached_delay).await;
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| JournalError::Open(format!("starting the journal thread: {e}")))?;
        let records = ready_rx
            .recv()
            .map_err(|_| JournalError::Open("journal thread ended".into()))??;
        Ok((
            QueueJournal {
                tx: Some(tx),
                thread: Some(handle),
            },
            records,
        ))
    }

    /// A place for one batch, or `Busy`.
    pub fn try_reserve(&self) -> Result<JournalPermit<'_>, JournalError> {
        let tx = self.tx.as_ref().ok_or(JournalError::Closed)?;
        match tx.try_reserve() {
            Ok(p) => Ok(JournalPermit(p)),
            Err(mpsc::error::TrySendError::Full(())) => Err(JournalError::Busy),
            Err(mpsc::error::TrySendError::Closed(())) => Err(JournalError::Closed),
        }
    }

    /// Stops the thread after every submitted batch is written (or failed).
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for QueueJournal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

type Opened = (Box<dyn ShardLog>, Stored, u64);

async fn open_and_replay(backend: &dyn LogBackend) -> Result<Opened, JournalError> {
    let mut log = backend
        .open(0, 1)
        .await
        .map_err(|e| JournalError::Open(e.to_string()))?;
    let (after, snapshot) = match log
        .load_snapshot()
        .await
        .map_err(|e| JournalError::Open(e.to_string()))?
    {
        Some((seq, bytes)) => {
            let s = decode_room_snapshot(&bytes).map_err(|e| JournalError::Corrupt {
                seq,
                reason: format!("snapshot: {e}"),
            })?;
            (seq, Some(s))
        }
        None => (0, None),
    };
    let mut records = Vec::new();
    let mut bad: Option<JournalError> = None;
    let last = {
        let mut apply = |seq: u64, bytes: &[u8]| {
            match decode_queue_record(bytes) {
                Ok(r) => records.push(r),
                Err(e) => {
                    if bad.is_none() {
                        bad = Some(JournalError::Corrupt {
                            seq,
                            reason: e.to_string(),
                        });
                    }
                }
            }
            Ok(())
        };
        log.replay(after, &mut apply)
            .await
            .map_err(|e| JournalError::Open(e.to_string()))?
    };
    if let Some(e) = bad {
        return Err(e);
    }
    Ok((log, Stored { snapshot, records }, last))
}

/// What the journal thread waits for next.
enum Next {
    /// A batch.
    Batch(Batch),
    /// Every sender is gone.
    Closed,
    /// The detached records' delay ran out.
    Due,
}

/// The next batch, or `Due` once `until` (the detached records' flush time) has passed.
async fn next_batch(rx: &mut mpsc::Receiver<Batch>, until: Option<Instant>) -> Next {
    let Some(until) = until else {
        return rx.recv().await.map_or(Next::Closed, Next::Batch);
    };
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        // Take what is already there first: it may carry an awaited batch to flush with.
        return match rx.try_recv() {
            Ok(b) => Next::Batch(b),
            Err(mpsc::error::TryRecvError::Empty) => Next::Due,
            Err(mpsc::error::TryRecvError::Disconnected) => Next::Closed,
        };
    }
    let recv = std::pin::pin!(rx.recv());
    let sleep = std::pin::pin!(glommio::timer::sleep(left));
    match futures::future::select(recv, sleep).await {
        futures::future::Either::Left((b, _)) => b.map_or(Next::Closed, Next::Batch),
        futures::future::Either::Right(_) => Next::Due,
    }
}

async fn run(
    mut log: Box<dyn ShardLog>,
    mut seq: u64,
    mut rx: mpsc::Receiver<Batch>,
    detached_delay: Duration,
) {
    let mut buf = Vec::new();
    // When the detached records appended and not flushed yet must be flushed at the latest.
    let mut detached_due: Option<Instant> = None;
    loop {
        let first = match next_batch(&mut rx, detached_due).await {
            Next::Batch(b) => b,
            Next::Closed => break,
            Next::Due => {
                detached_due = None;
                flush_detached(log.as_mut()).await;
                continue;
            }
        };
        let mut group = vec![first];
        while group.len() < GROUP_MAX_BATCHES {
            match rx.try_recv() {
                Ok(b) => group.push(b),
                Err(_) => break,
            }
        }
        let mut failed: Option<JournalError> = None;
        let mut waiting: Vec<Done> = Vec::new();
        for batch in group {
            match batch {
                Batch::Records { records, done } => {
                    for r in &records {
                        buf.clear();
                        if let Err(e) = encode_queue_record(r, &mut buf) {
                            failed = Some(JournalError::Write(e.to_string()));
                            continue;
                        }
                        seq += 1;
                        log.append(seq, &buf);
                    }
                    match done {
                        Some(done) => waiting.push(done),
                        None => {
                            detached_due.get_or_insert_with(|| Instant::now() + detached_delay);
                        }
                    }
                }
                Batch::Snapshot { snapshot, done } => {
                    // The records before it (detached ones too) must be durable first: the
                    // snapshot covers them.
                    let dirty = detached_due.take().is_some();
                    let before = flush(log.as_mut(), failed.take(), &mut waiting, dirty).await;
                    let res = match before {
                        Ok(()) => write_snapshot(log.as_mut(), seq, &snapshot).await,
                        Err(e) => Err(e),
                    };
                    let _ = done.send(res);
                }
            }
        }
        if !waiting.is_empty() || failed.is_some() {
            // The flush an awaited batch needs takes the detached records with it.
            let _ = flush(log.as_mut(), failed, &mut waiting, false).await;
            detached_due = None;
        } else if detached_delay.is_zero() && detached_due.take().is_some() {
            flush_detached(log.as_mut()).await;
        }
    }
    if detached_due.is_some() {
        flush_detached(log.as_mut()).await;
    }
}

/// Flushes detached records nobody waits for (a failure is logged; the log keeps them
/// buffered and the next flush retries them).
async fn flush_detached(log: &mut dyn ShardLog) {
    if let Err(e) = log.flush().await {
        tracing::warn!(error = %e, "waiting-room journal: flush of detached records failed");
    }
}

/// Flushes what was appended and answers the batches waiting for it (`dirty`: detached
/// records are appended, flush even if nobody waits).
async fn flush(
    log: &mut dyn ShardLog,
    failed: Option<JournalError>,
    waiting: &mut Vec<Done>,
    dirty: bool,
) -> Result<(), JournalError> {
    if waiting.is_empty() && failed.is_none() && !dirty {
        return Ok(());
    }
    let res = match (failed, log.flush().await) {
        (Some(e), _) => Err(e),
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(JournalError::Write(e.to_string())),
    };
    for done in waiting.drain(..) {
        let _ = done.send(res.clone());
    }
    res
}

async fn write_snapshot(
    log: &mut dyn ShardLog,
    seq: u64,
    snapshot: &RoomSnapshot,
) -> Result<(), JournalError> {
    let mut bytes = Vec::new();
    encode_room_snapshot(snapshot, &mut bytes).map_err(|e| JournalError::Write(e.to_string()))?;
    log.write_snapshot(seq, &bytes)
        .await
        .map_err(|e| JournalError::Write(format!("snapshot: {e}")))
}
