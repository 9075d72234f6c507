//! The sans-IO core of the embedded log's group commit with overlapping flushes (ADR 0036,
//! addendum): which batch may be written next, when its `fdatasync` is issued, and which
//! records are durable.
//!
//! A batch is written (one O_DIRECT write of the segment's partial tail block and the new
//! frames), then synced (`fdatasync`). Writes are strictly one at a time: each rewrites the
//! partial block the previous one ended in, so two in flight could land out of order and
//! leave the older (shorter) copy of that block on disk. Syncs may overlap: while batch `k`'s
//! `fdatasync` runs, batch `k + 1` is written and its own `fdatasync` issued. At most
//! [`MAX_FLUSHES_IN_FLIGHT`] batches are written or syncing at once.
//!
//! Durability order is kept whatever order the syncs complete in: a batch counts as durable
//! only once its own sync **and the syncs of every earlier batch** returned `Ok`, so a record
//! is acknowledged only when every record before it is durable. A failure of any write or
//! sync hands every batch still in flight back to the caller, to be rewritten into a fresh
//! segment (the same rule as the single-flush log: never trust that file again).

use std::collections::VecDeque;

/// Batches written or being synced at once (two: one `fdatasync` in flight while the next
/// batch is written and its own `fdatasync` issued).
pub const MAX_FLUSHES_IN_FLIGHT: usize = 2;

/// Names one batch in flight (unique for the life of a pipeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchId(u64);

/// Where a batch in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Its write was issued and has not completed.
    Writing,
    /// Written; its `fdatasync` was issued and has not completed.
    Syncing,
    /// Its `fdatasync` returned `Ok`; durable once every earlier batch is too.
    Synced,
}

/// A batch in flight and the bytes it carries (kept until durable, for a rewrite).
#[derive(Debug)]
struct InFlight<B> {
    id: BatchId,
    seqs: SeqRange,
    stage: Stage,
    bytes: B,
}

/// The first and last sequence numbers of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    /// First sequence number.
    pub first: u64,
    /// Last sequence number (`>= first`).
    pub last: u64,
}

/// What a completion made durable.
#[derive(Debug, PartialEq, Eq)]
pub struct Durable<B> {
    /// Every record up to and including this seq is durable.
    pub through_seq: u64,
    /// The bytes of the batches that became durable (for reuse), oldest first.
    pub released: Vec<B>,
}

/// A batch handed back after a failure, to be written again.
#[derive(Debug, PartialEq, Eq)]
pub struct Requeued<B> {
    /// Its sequence numbers.
    pub seqs: SeqRange,
    /// Its framed records.
    pub bytes: B,
}

/// The group-commit pipeline of one shard's log: batches in seq order, oldest first.
#[derive(Debug)]
pub struct FlushPipeline<B> {
    in_flight: VecDeque<InFlight<B>>,
    next_id: u64,
}

impl<B> Default for FlushPipeline<B> {
    fn default() -> Self {
        FlushPipeline {
            in_flight: VecDeque::with_capacity(MAX_FLUSHES_IN_FLIGHT),
            next_id: 0,
        }
    }
}

impl<B> FlushPipeline<B> {
    /// Whether a new batch may be written now: no write in flight and a free slot.
    pub fn can_write(&self) -> bool {
        self.in_flight.len() < MAX_FLUSHES_IN_FLIGHT
            && self.in_flight.iter().all(|b| b.stage != Stage::Writing)
    }

    /// Batches written or syncing.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is in flight.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Whether `id` is in flight (not yet durable, not handed back by a failure).
    pub fn contains(&self, id: BatchId) -> bool {
        self.in_flight.iter().any(|b| b.id == id)
    }

    /// The last seq written or being written (not necessarily durable).
    pub fn last_seq(&self) -> Option<u64> {
        self.in_flight.back().map(|b| b.seqs.last)
    }

    /// Records that the write of `seqs` (framed in `bytes`) was issued. Only when
    /// [`FlushPipeline::can_write`]; `seqs` must follow the batch before it.
    pub fn write_started(&mut self, seqs: SeqRange, bytes: B) -> BatchId {
        assert!(self.can_write(), "a write started without a free slot");
        assert!(seqs.first <= seqs.last, "a batch holds at least one record");
        if let Some(prev) = self.in_flight.back() {
            assert_eq!(
                prev.seqs.last + 1,
                seqs.first,
                "batches in flight are consecutive"
            );
        }
        let id = BatchId(self.next_id);
        self.next_id += 1;
        self.in_flight.push_back(InFlight {
            id,
            seqs,
            stage: Stage::Writing,
            bytes,
        });
        id
    }

    /// The write of `id` completed: the caller issues its `fdatasync` now. Returns whether
    /// `id` is still in flight (a completion of a batch handed back by
    /// [`FlushPipeline::failed`] is ignored).
    pub fn write_done(&mut self, id: BatchId) -> bool {
        match self.in_flight.iter_mut().find(|b| b.id == id) {
            Some(b) => {
                assert_eq!(b.stage, Stage::Writing, "write of {id:?} completed twice");
                b.stage = Stage::Syncing;
                true
            }
            None => false,
        }
    }

    /// The `fdatasync` of `id` returned `Ok`. Returns what became durable: the oldest
    /// batches whose syncs (and all before them) completed, if any.
    pub fn sync_done(&mut self, id: BatchId) -> Option<Durable<B>> {
        let b = self.in_flight.iter_mut().find(|b| b.id == id)?;
        assert_eq!(b.stage, Stage::Syncing, "sync of {id:?} not in flight");
        b.stage = Stage::Synced;
        let mut released = Vec::new();
        let mut through_seq = None;
        while self
            .in_flight
            .front()
            .is_some_and(|b| b.stage == Stage::Synced)
        {
            if let Some(b) = self.in_flight.pop_front() {
                through_seq = Some(b.seqs.last);
                released.push(b.bytes);
            }
        }
        through_seq.map(|through_seq| Durable {
            through_seq,
            released,
        })
    }

    /// A write or `fdatasync` failed: every batch in flight (durable or not, the file is no
    /// longer trusted) is handed back, oldest first, to be written again elsewhere; late
    /// completions of them are ignored.
    pub fn failed(&mut self) -> Vec<Requeued<B>> {
        self.in_flight
            .drain(..)
            .map(|b| Requeued {
                seqs: b.seqs,
                bytes: b.bytes,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    fn seqs(first: u64, last: u64) -> SeqRange {
        SeqRange { first, last }
    }

    #[test]
    fn one_write_at_a_time_and_two_in_flight() {
        let mut p = FlushPipeline::default();
        let a = p.write_started(seqs(1, 3), "a");
        assert!(!p.can_write(), "the next write waits for this one");
        assert!(p.write_done(a));
        assert!(p.can_write(), "the next batch is written while a syncs");
        let b = p.write_started(seqs(4, 4), "b");
        assert!(p.write_done(b));
        assert!(!p.can_write(), "two in flight is the bound");
        assert_eq!(p.in_flight(), 2);
        assert_eq!(p.last_seq(), Some(4));
    }

    #[test]
    fn a_later_sync_finishing_first_releases_nothing() {
        let mut p = FlushPipeline::default();
        let a = p.write_started(seqs(1, 10), "a");
        p.write_done(a);
        let b = p.write_started(seqs(11, 20), "b");
        p.write_done(b);
        assert_eq!(p.sync_done(b), None, "b is durable only after a");
        assert!(!p.can_write(), "b still holds its slot");
        assert_eq!(
            p.sync_done(a),
            Some(Durable {
                through_seq: 20,
                released: vec!["a", "b"]
            })
        );
        assert!(p.is_idle());
    }

    #[test]
    fn a_failure_hands_back_every_batch_in_flight_and_ignores_late_completions() {
        let mut p = FlushPipeline::default();
        let a = p.write_started(seqs(1, 2), "a");
        p.write_done(a);
        let b = p.write_started(seqs(3, 5), "b");
        p.write_done(b);
        assert_eq!(p.sync_done(b), None);
        // a's fdatasync failed: b's own sync returned, but b follows a in the same file.
        assert_eq!(
            p.failed(),
            vec![
                Requeued {
                    seqs: seqs(1, 2),
                    bytes: "a"
                },
                Requeued {
                    seqs: seqs(3, 5),
                    bytes: "b"
                }
            ]
        );
        assert!(p.is_idle());
        assert_eq!(p.sync_done(a), None);
        assert!(!p.write_done(b));
    }

    /// A simulated file whose writes and syncs complete in random order (within what the
    /// pipeline issued) never gets a record acknowledged before every earlier record's batch
    /// was synced, and every record is acknowledged in the end.
    #[test]
    fn out_of_order_completions_never_acknowledge_ahead_of_an_earlier_record() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x17);
        for _round in 0..500 {
            let mut p = FlushPipeline::default();
            // Records synced so far, by seq (index seq - 1), as the simulated disk knows them.
            let total: u64 = rng.gen_range(1..200);
            let mut synced = vec![false; total as usize];
            let mut next_seq = 1u64;
            let mut acked_through = 0u64;
            // Operations issued and not yet completed: (batch, is_sync, its seqs).
            let mut issued: Vec<(BatchId, bool, SeqRange)> = Vec::new();
            while acked_through < total {
                if next_seq <= total && p.can_write() && rng.gen_bool(0.6) {
                    let last = (next_seq + rng.gen_range(0..8)).min(total);
                    let r = seqs(next_seq, last);
                    let id = p.write_started(r, ());
                    issued.push((id, false, r));
                    next_seq = last + 1;
                    continue;
                }
                if issued.is_empty() {
                    continue;
                }
                issued.shuffle(&mut rng);
                let Some((id, is_sync, r)) = issued.pop() else {
                    continue;
                };
                if is_sync {
                    for s in r.first..=r.last {
                        synced[(s - 1) as usize] = true;
                    }
                    if let Some(d) = p.sync_done(id) {
                        assert!(d.through_seq > acked_through, "durable seq went backwards");
                        assert!(
                            synced[..d.through_seq as usize].iter().all(|s| *s),
                            "acknowledged through {} before every earlier record was synced",
                            d.through_seq
                        );
                        acked_through = d.through_seq;
                    }
                } else {
                    assert!(p.write_done(id));
                    issued.push((id, true, r));
                }
            }
            assert_eq!(acked_through, total);
            assert!(p.is_idle());
        }
    }
}
