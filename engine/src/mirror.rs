//! The stock mirror: a SKU's last durable stock counts, written by its shard and read from any
//! thread as one consistent snapshot.
//!
//! A seqlock. The version is even while the counts are stable and odd while a write is under way;
//! a reader keeps a snapshot only if the version was even before it and unchanged after it, so it
//! never returns counts from two different writes (`available + reserved + sold` always equals
//! what one write stored). Writers serialize on the version; in practice only the owning shard's
//! executor writes, once per SKU per commit batch, so a writer never waits and readers retry only
//! when they overlap that write.
//!
//! Memory model (Boehm, "Can Seqlocks Get Along with Programming Language Memory Models?", 2012;
//! the scheme crossbeam's `AtomicCell` uses): the counts are atomics, so a racing read is no data
//! race, only possibly stale.
//! - The writer makes the version odd, issues a release fence, stores the counts (relaxed), then
//!   stores the next even version with release.
//! - The reader loads the version with acquire, loads the counts (relaxed), issues an acquire
//!   fence, and loads the version again (relaxed).
//!
//! If the reader saw any count of a newer write, the writer's release fence synchronizes with the
//! reader's acquire fence, so the second version load sees that write's odd version or later and
//! the snapshot is discarded. If the first load saw a write's final even version, its release
//! store makes every count of that write (and of earlier ones) visible.

use crate::sync::atomic::{fence, AtomicU64, Ordering};
use crate::sync::hint;

/// One SKU's stock counts as the mirror stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StockCounts {
    /// Units that can be reserved.
    pub available: u64,
    /// Units held by open reservations.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
    /// The shard log position these counts stand at ([`crate::StockLevel::log_seq`]).
    pub log_seq: u64,
}

impl StockCounts {
    /// `available + reserved + sold`, the SKU's total stock; `None` if it overflows `u64`.
    pub fn total(&self) -> Option<u64> {
        self.available
            .checked_add(self.reserved)?
            .checked_add(self.sold)
    }
}

/// A SKU's stock counts, written by one thread at a time and read consistently from any thread.
#[derive(Debug)]
pub struct StockMirror {
    /// Even: the counts are stable. Odd: a write is under way. Advances by 2 per write.
    version: AtomicU64,
    /// [`StockCounts::available`] of the latest write (stale while a write is under way).
    available: AtomicU64,
    /// [`StockCounts::reserved`] of the latest write.
    reserved: AtomicU64,
    /// [`StockCounts::sold`] of the latest write.
    sold: AtomicU64,
    /// [`StockCounts::log_seq`] of the latest write.
    log_seq: AtomicU64,
}

impl StockMirror {
    /// A mirror holding `counts`.
    pub fn new(counts: StockCounts) -> Self {
        assert!(
            counts.total().is_some(),
            "stock counts overflow: {counts:?}"
        );
        StockMirror {
            version: AtomicU64::new(0),
            available: AtomicU64::new(counts.available),
            reserved: AtomicU64::new(counts.reserved),
            sold: AtomicU64::new(counts.sold),
            log_seq: AtomicU64::new(counts.log_seq),
        }
    }

    /// Publishes `counts`; readers see either the previous counts or these, never a mix.
    pub fn write(&self, counts: StockCounts) {
        assert!(
            counts.total().is_some(),
            "stock counts overflow: {counts:?}"
        );
        let stable = self.begin_write();
        assert_eq!(stable & 1, 0, "a write began from an odd version");
        // Orders the odd version before the counts for any reader that sees one of them.
        fence(Ordering::Release);
        self.available.store(counts.available, Ordering::Relaxed);
        self.reserved.store(counts.reserved, Ordering::Relaxed);
        self.sold.store(counts.sold, Ordering::Relaxed);
        self.log_seq.store(counts.log_seq, Ordering::Relaxed);
        self.version
            .store(stable.wrapping_add(2), Ordering::Release);
    }

    /// Makes the version odd once no other write is under way; returns the even version it
    /// replaced.
    fn begin_write(&self) -> u64 {
        // Only the compare-exchange reads the version: it always sees the latest value, where
        // a plain load in a retry loop may keep returning a stale odd one.
        let mut expected = self.version.load(Ordering::Relaxed) & !1;
        loop {
            // Acquire: our stores come after the previous writer's in every count's history.
            match self.version.compare_exchange(
                expected,
                expected.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return expected,
                Err(now) if now & 1 == 0 => expected = now,
                Err(now) => {
                    // Another writer is mid-write (never the case with one writer per SKU):
                    // wait for the even version its write ends at.
                    hint::spin_loop();
                    expected = now.wrapping_add(1);
                }
            }
        }
    }

    /// The counts of the latest write that completed before this read (or of one that completed
    /// during it); retries while a write overlaps the read.
    pub fn read(&self) -> StockCounts {
        loop {
            if let Some(counts) = self.try_read() {
                return counts;
            }
            hint::spin_loop();
        }
    }

    /// One read attempt: the counts if no write overlapped it, else `None`.
    fn try_read(&self) -> Option<StockCounts> {
        let before = self.version.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let counts = StockCounts {
            available: self.available.load(Ordering::Relaxed),
            reserved: self.reserved.load(Ordering::Relaxed),
            sold: self.sold.load(Ordering::Relaxed),
            log_seq: self.log_seq.load(Ordering::Relaxed),
        };
        // Orders the count loads before the second version load (pairs with the writer's
        // release fence).
        fence(Ordering::Acquire);
        let after = self.version.load(Ordering::Relaxed);
        (after == before).then_some(counts)
    }
}

// Under `--cfg loom` (loom-tests) the atomics are loom's and only work inside `loom::model`.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn counts(available: u64, reserved: u64, sold: u64) -> StockCounts {
        StockCounts {
            available,
            reserved,
            sold,
            log_seq: 0,
        }
    }

    #[test]
    fn reads_what_was_written() {
        let m = StockMirror::new(counts(10, 0, 0));
        assert_eq!(m.read(), counts(10, 0, 0));
        m.write(counts(7, 2, 1));
        assert_eq!(m.read(), counts(7, 2, 1));
        let labelled = StockCounts {
            log_seq: 42,
            ..counts(6, 3, 1)
        };
        m.write(labelled);
        assert_eq!(
            m.read(),
            labelled,
            "the log position travels with the counts"
        );
        m.write(counts(0, 0, 10));
        assert_eq!(m.read(), counts(0, 0, 10));
        assert_eq!(
            m.version.load(Ordering::Relaxed),
            6,
            "three writes, two steps each"
        );
    }

    #[test]
    fn a_read_overlapping_a_write_is_refused() {
        let m = StockMirror::new(counts(5, 0, 0));
        assert_eq!(m.try_read(), Some(counts(5, 0, 0)));
        let stable = m.begin_write();
        assert_eq!(m.try_read(), None, "read during a write");
        m.available.store(4, Ordering::Relaxed);
        m.reserved.store(1, Ordering::Relaxed);
        assert_eq!(m.try_read(), None, "half-written counts");
        m.version.store(stable + 2, Ordering::Release);
        assert_eq!(m.try_read(), Some(counts(4, 1, 0)));
    }

    #[test]
    fn total_detects_overflow() {
        assert_eq!(counts(1, 2, 3).total(), Some(6));
        assert_eq!(counts(u64::MAX, 1, 0).total(), None);
    }

    /// A smoke test on real threads (loom-tests checks every interleaving of a small model).
    #[test]
    fn concurrent_readers_never_see_a_torn_level() {
        const TOTAL: u64 = 1_000;
        let m = Arc::new(StockMirror::new(counts(TOTAL, 0, 0)));
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (m, done) = (m.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !done.load(Ordering::Acquire) || reads == 0 {
                        let c = m.read();
                        assert_eq!(c.total(), Some(TOTAL), "torn read: {c:?}");
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for i in 0..20_000u64 {
            let sold = i % TOTAL;
            let reserved = (i * 7) % (TOTAL - sold);
            m.write(counts(TOTAL - sold - reserved, reserved, sold));
        }
        done.store(true, Ordering::Release);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        assert_eq!(m.read().total(), Some(TOTAL));
    }
}
