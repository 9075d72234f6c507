//! The engine's live counters and histograms, exported as [`StatsSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

use crate::stats::StatsSnapshot;

const STRIPES: usize = 16;

/// A counter striped over cache lines (crossbeam's `CachePadded`), for increments from many
/// threads without false sharing.
#[derive(Debug, Default)]
struct Striped {
    cells: [CachePadded<AtomicU64>; STRIPES],
}

thread_local! {
    static STRIPE: usize = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) as usize % STRIPES
    };
}

impl Striped {
    fn add(&self, n: u64) {
        let i = STRIPE.with(|s| *s);
        self.cells[i].fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384];
const LATENCY_BOUNDS_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Shared counters, updated by shard threads and caller threads.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) held: AtomicU64,
    pub(crate) confirmed: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) expired: AtomicU64,
    sold_out: Striped,
    /// Requests handed to a shard on its own executor thread (the same-thread path).
    same_thread: Striped,
    log_batches: AtomicU64,
    log_records: AtomicU64,
    batch_sum: AtomicU64,
    latency_sum_us: AtomicU64,
    hists: Mutex<(MaybeHist, MaybeHist)>,
}

/// A histogram, absent only if hdrhistogram refused its (constant, valid) bounds.
type MaybeHist = Option<Histogram<u64>>;

fn hist() -> MaybeHist {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).ok()
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Metrics {
            held: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            released: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            sold_out: Striped::default(),
            same_thread: Striped::default(),
            log_batches: AtomicU64::new(0),
            log_records: AtomicU64::new(0),
            batch_sum: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            hists: Mutex::new((hist(), hist())),
        }
    }

    /// Counts a request handed to its shard on the shard's own thread.
    pub(crate) fn same_thread(&self) {
        self.same_thread.add(1);
    }

    /// Requests handed to their shard on the shard's own thread so far.
    pub(crate) fn same_thread_requests(&self) -> u64 {
        self.same_thread.get()
    }

    pub(crate) fn sold_out(&self) {
        self.sold_out.add(1);
    }

    /// Adds a node's counts.
    pub(crate) fn add(&self, c: &crate::node::Counters) {
        if *c == crate::node::Counters::default() {
            return;
        }
        self.held.fetch_add(c.held, Ordering::Relaxed);
        self.confirmed.fetch_add(c.confirmed, Ordering::Relaxed);
        self.released.fetch_add(c.released, Ordering::Relaxed);
        self.expired.fetch_add(c.expired, Ordering::Relaxed);
        if c.sold_out > 0 {
            self.sold_out.add(c.sold_out);
        }
    }

    pub(crate) fn batch(&self, records: u64, latency_us: u64) {
        self.log_batches.fetch_add(1, Ordering::Relaxed);
        self.log_records.fetch_add(records, Ordering::Relaxed);
        self.batch_sum.fetch_add(records, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(latency_us, Ordering::Relaxed);
        let mut h = match self.hists.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(b) = h.0.as_mut() {
            let _ = b.record(records.max(1));
        }
        if let Some(l) = h.1.as_mut() {
            let _ = l.record(latency_us.max(1));
        }
    }

    pub(crate) fn snapshot(&self, log_writable: bool) -> StatsSnapshot {
        let h = match self.hists.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let buckets = |h: &Option<Histogram<u64>>, bounds: &[u64]| -> Vec<(u64, u64)> {
            let Some(h) = h else {
                return Vec::new();
            };
            bounds
                .iter()
                .map(|b| (*b, h.count_between(0, *b)))
                .chain(std::iter::once((u64::MAX, h.len())))
                .collect()
        };
        StatsSnapshot {
            reservations_held: self.held.load(Ordering::Relaxed),
            reservations_confirmed: self.confirmed.load(Ordering::Relaxed),
            reservations_released: self.released.load(Ordering::Relaxed),
            reservations_expired: self.expired.load(Ordering::Relaxed),
            sold_out_rejections: self.sold_out.get(),
            log_batches: self.log_batches.load(Ordering::Relaxed),
            log_records: self.log_records.load(Ordering::Relaxed),
            log_batch_size_buckets: buckets(&h.0, BATCH_BOUNDS),
            log_batch_size_sum: self.batch_sum.load(Ordering::Relaxed),
            commit_latency_us_buckets: buckets(&h.1, LATENCY_BOUNDS_US),
            commit_latency_us_sum: self.latency_sum_us.load(Ordering::Relaxed),
            log_writable,
        }
    }
}
