//! The commit path of one shard, without I/O: records buffered for the next group commit, the
//! durable sequence number, and what waits for durability. The driver cuts a [`Batch`],
//! appends and flushes it to the log, and reports back with [`Commit::flushed`] or
//! [`Commit::flush_failed`].

use std::collections::VecDeque;

use flashsale_protocol::{encode_record, Event, LogRecord, ReservationId, ShardId, SkuId};

use crate::limits::{MAX_COMMIT_WAITERS, MAX_PENDING_BYTES, UNAVAILABLE_AFTER_MS};
use crate::observer::StockLevel;
use crate::shard::{Decision, EventSink, Shard};

use super::message::Answer;

/// What happens once the records applied so far are durable.
#[derive(Debug)]
pub enum AfterDurable<R> {
    /// Answer a caller.
    Reply {
        /// The caller.
        to: R,
        /// The answer.
        answer: Answer,
    },
    /// The home part of a coordinated reservation is durable: hold the other parts.
    HomeHeld(ReservationId),
    /// This shard's part of a reservation is durable: tell its home.
    PartHeld {
        /// The reservation.
        id: ReservationId,
        /// Its home shard.
        home: ShardId,
    },
    /// A followed decision is durable: acknowledge it to the home.
    Ack {
        /// The reservation.
        id: ReservationId,
        /// Its home shard.
        home: ShardId,
    },
    /// A failed coordination's rollback of its home part is durable: its caller hears the
    /// error (a crash can no longer revive the reservation).
    Refuse {
        /// The reservation.
        id: ReservationId,
        /// Why it failed.
        error: crate::command::CommandError,
    },
    /// What the home knows is durable: tell a part that asked (dropped if the log fails: the
    /// part asks again).
    Tell {
        /// The part's shard.
        to: ShardId,
        /// The message.
        msg: super::message::PeerMsg,
    },
    /// A SKU's change is durable: make it visible to caller threads.
    Publish(flashsale_protocol::SkuId),
    /// A home decision is durable: the parts follow it.
    Forward(Decision),
    /// A home decision is durable: the parts follow it, and the caller hears back once they
    /// acknowledged.
    ForwardThenReply {
        /// The decision.
        decision: Decision,
        /// The caller.
        to: R,
        /// The answer.
        answer: Answer,
    },
}

impl<R> AfterDurable<R> {
    /// Whether someone waits on it and must hear of a failing log (forwards just wait).
    fn fails_with_the_log(&self) -> bool {
        !matches!(self, AfterDurable::Forward(_) | AfterDurable::Publish(_))
    }
}

/// One entry waiting for durability.
#[derive(Debug)]
struct Waiter<R> {
    seq: u64,
    then: AfterDurable<R>,
}

/// Records produced by commands, waiting for the next flush.
#[derive(Debug, Default)]
pub struct Pending {
    bytes: Vec<u8>,
    index: Vec<(u64, usize, usize)>,
    /// SKUs a record changed, with that record's sequence number.
    dirty_skus: Vec<(SkuId, u64)>,
    /// Reservations a record confirmed or released, with that record's sequence number.
    dirty_reservations: Vec<(ReservationId, u64)>,
    encode_failures: u64,
}

impl Pending {
    /// Empties the buffers, keeping their capacity (for the next batch).
    fn clear(&mut self) {
        self.bytes.clear();
        self.index.clear();
        self.dirty_skus.clear();
        self.dirty_reservations.clear();
    }
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
        let seq = record.seq;
        match &record.event {
            Event::SkuUpserted { spec, .. } => self.dirty_skus.push((spec.sku.clone(), seq)),
            Event::Restocked { sku, .. } => self.dirty_skus.push((sku.clone(), seq)),
            Event::Reserved { lines, .. } => self
                .dirty_skus
                .extend(lines.iter().map(|l| (l.sku.clone(), seq))),
            Event::Confirmed { id, .. } | Event::Released { id, .. } => {
                self.dirty_reservations.push((*id, seq))
            }
            // A later expiry changes no stock count.
            Event::Extended { .. } => {}
        }
    }
}

/// A batch cut from the pending records, to append and flush.
#[derive(Debug)]
pub struct Batch {
    /// The records (bytes and index); the SKU lists in it are emptied once the batch is cut.
    pending: Pending,
    /// The last sequence number in the batch.
    pub last_seq: u64,
    /// Counts of every SKU the batch changed, to publish once durable.
    pub levels: Vec<StockLevel>,
    /// A snapshot to store after the batch is durable.
    pub snapshot: Option<Vec<u8>>,
}

impl Batch {
    /// `(seq, encoded record)` in order.
    pub fn records(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let bytes = &self.pending.bytes;
        self.pending
            .index
            .iter()
            .map(move |(seq, start, end)| (*seq, &bytes[*start..*end]))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.pending.index.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.pending.index.is_empty()
    }
}

/// The buffers of a flushed batch kept for the next one (emptied, capacity kept).
#[derive(Debug)]
struct Spare {
    pending: Pending,
    levels: Vec<StockLevel>,
}

/// Most bytes of record buffer kept for reuse between batches: a batch larger than this
/// (a burst, a recovery's expiry sweep) frees its buffer instead of pinning it.
const MAX_SPARE_BYTES: usize = 1 << 20;

/// Whether the log takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// The last flush succeeded.
    Writable,
    /// Flushes fail since this time (ms).
    Failing {
        /// When the first failure was seen.
        since_ms: u64,
    },
}

/// When to snapshot.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotPolicy {
    /// After this many events (0 = never)...
    pub every_events: u64,
    /// ...or this many × the reservations held, if more.
    pub state_factor: u64,
}

/// The commit path of one shard.
#[derive(Debug)]
pub struct Commit<R> {
    /// Records waiting for the next flush (the shard's event sink).
    pub pending: Pending,
    /// Emptied buffers of the last batch flushed, swapped in for `pending` when the next batch
    /// is cut (a batch's buffers are reused instead of grown again from empty: ADR 0055).
    spare: Option<Spare>,
    durable_seq: u64,
    flushing: Option<u64>,
    waiters: VecDeque<Waiter<R>>,
    log: LogState,
    events_since_snapshot: u64,
    snapshots: SnapshotPolicy,
}

impl<R> Commit<R> {
    /// A commit path whose log is durable up to `durable_seq`.
    pub fn new(durable_seq: u64, snapshots: SnapshotPolicy) -> Self {
        Commit {
            pending: Pending::default(),
            spare: None,
            durable_seq,
            flushing: None,
            waiters: VecDeque::new(),
            log: LogState::Writable,
            events_since_snapshot: 0,
            snapshots,
        }
    }

    /// The last durable sequence number.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Whether the log takes writes.
    pub fn log_state(&self) -> LogState {
        self.log
    }

    /// Whether records wait for a flush.
    pub fn has_pending(&self) -> bool {
        !self.pending.index.is_empty()
    }

    /// Whether a flush is under way.
    pub fn is_flushing(&self) -> bool {
        self.flushing.is_some()
    }

    /// Records that could not be encoded (a bug if ever non-zero).
    pub fn encode_failures(&self) -> u64 {
        self.pending.encode_failures
    }

    /// Why a new mutating command must be refused, if it must: the buffer or the waiters are
    /// at their bound.
    pub fn full(&self) -> Option<&'static str> {
        if self.pending.bytes.len() >= MAX_PENDING_BYTES {
            Some("the commit buffer is full")
        } else if self.waiters.len() >= MAX_COMMIT_WAITERS {
            Some("too many replies wait for the log")
        } else {
            None
        }
    }

    /// Runs `then` once everything `shard` applied so far is durable: returns it back at once
    /// if it already is.
    pub fn after_durable(
        &mut self,
        shard: &Shard,
        then: AfterDurable<R>,
    ) -> Option<AfterDurable<R>> {
        let seq = shard.seq();
        assert!(self.durable_seq <= seq, "durable seq ahead of the shard");
        if seq <= self.durable_seq {
            return Some(then);
        }
        self.waiters.push_back(Waiter { seq, then });
        None
    }

    /// Cuts the pending records into a batch to flush (none while a flush is under way or
    /// nothing is pending).
    pub fn cut(&mut self, shard: &Shard) -> Option<Batch> {
        if self.flushing.is_some() || !self.has_pending() {
            return None;
        }
        let (fresh, mut levels) = match self.spare.take() {
            Some(Spare { pending, levels }) => (pending, levels),
            None => (Pending::default(), Vec::new()),
        };
        let mut p = std::mem::replace(&mut self.pending, fresh);
        let last_seq = p.index.last().map_or(self.durable_seq, |(s, _, _)| *s);
        assert_eq!(last_seq, shard.seq(), "pending records out of step");
        let skus = &mut p.dirty_skus;
        for (id, seq) in &p.dirty_reservations {
            skus.extend(shard.reservation_skus(*id).map(|s| (s.clone(), *seq)));
        }
        // Each SKU once, labelled with the last record of the batch that changed it (ADR 0033):
        // sorted by SKU then seq, the last entry of each run wins.
        skus.sort_unstable();
        skus.reverse();
        skus.dedup_by(|later, earlier| later.0 == earlier.0);
        levels.clear();
        levels.extend(skus.iter().filter_map(|(s, seq)| {
            shard.stock_level(s).map(|mut level| {
                level.log_seq = *seq;
                level
            })
        }));
        self.events_since_snapshot += p.index.len() as u64;
        let state_size = shard.reservation_count() as u64;
        let period = self
            .snapshots
            .every_events
            .max(self.snapshots.state_factor.saturating_mul(state_size));
        let due = self.snapshots.every_events > 0 && self.events_since_snapshot >= period;
        let snapshot = due.then(|| {
            self.events_since_snapshot = 0;
            shard.snapshot()
        });
        self.flushing = Some(last_seq);
        self.pending.encode_failures = p.encode_failures;
        p.dirty_skus.clear();
        p.dirty_reservations.clear();
        Some(Batch {
            pending: p,
            last_seq,
            levels,
            snapshot,
        })
    }

    /// Takes back the buffers of a batch the driver is done with (appended and flushed), to
    /// be reused by the next one: the records' bytes, their index, the SKU lists and the
    /// levels keep their capacity, so a steady load cuts batches without allocating. A batch
    /// whose record buffer grew past [`MAX_SPARE_BYTES`] is dropped instead.
    pub fn recycle(&mut self, batch: Batch) {
        let Batch {
            mut pending,
            mut levels,
            ..
        } = batch;
        if pending.bytes.capacity() > MAX_SPARE_BYTES {
            return;
        }
        pending.clear();
        levels.clear();
        self.spare = Some(Spare { pending, levels });
    }

    /// The batch in flight is durable: returns the next of what waited for it, in order
    /// (`None` once nothing more is due; call it until then).
    pub fn next_durable(&mut self) -> Option<AfterDurable<R>> {
        let w = self.waiters.front()?;
        if w.seq > self.durable_seq {
            return None;
        }
        self.waiters.pop_front().map(|w| w.then)
    }

    /// The batch in flight is durable: the durable sequence number moves to its last record;
    /// what waited for it comes out of [`Commit::next_durable`], in order.
    pub fn flushed(&mut self) {
        let Some(last) = self.flushing.take() else {
            return;
        };
        assert!(last >= self.durable_seq, "durable seq went backwards");
        self.durable_seq = last;
        self.log = LogState::Writable;
    }

    /// The flush of the batch in flight failed (it stays buffered in the log and is retried);
    /// the log has been failing for `failing_for_ms` (measured by the driver on a monotonic
    /// clock). Once that reaches [`UNAVAILABLE_AFTER_MS`], returns everything that waits and
    /// must hear of it.
    pub fn flush_failed(&mut self, now_ms: u64, failing_for_ms: u64) -> Vec<AfterDurable<R>> {
        if self.log == LogState::Writable {
            self.log = LogState::Failing { since_ms: now_ms };
        }
        if failing_for_ms < UNAVAILABLE_AFTER_MS {
            return Vec::new();
        }
        self.give_up(|_| true)
    }

    /// Everything that waits and must hear of a failure (shutdown).
    pub fn give_up_all(&mut self) -> Vec<AfterDurable<R>> {
        self.give_up(|_| true)
    }

    fn give_up(&mut self, due: impl Fn(&Waiter<R>) -> bool) -> Vec<AfterDurable<R>> {
        let mut failed = Vec::new();
        let mut kept = VecDeque::with_capacity(self.waiters.len());
        for w in self.waiters.drain(..) {
            if w.then.fails_with_the_log() && due(&w) {
                failed.push(w.then);
            } else {
                kept.push_back(w);
            }
        }
        self.waiters = kept;
        failed
    }
}
