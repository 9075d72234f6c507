//! The stock hub: numbers the engine's stock changes, keeps a bounded history for resume and the
//! latest level per SKU, and tells connections that something new arrived.
//!
//! Two halves, so the engine never waits on a subscriber:
//! - the engine side ([`StockObserver::stock_changed`]) only touches a small *inbox* under a mutex
//!   held for the time of a map update, coalescing repeated changes of a SKU into its latest value
//!   (the inbox holds at most one entry per SKU, so it is bounded by the catalog);
//! - a pump ([`StockHub::pump`], run by a task) drains the inbox, assigns sequence numbers,
//!   encodes each update once, appends it to the history ring and wakes connections. Connections
//!   pull from the ring at their own pace ([`StockHub::read_since`]).
//!
//! The pump publishes at most once per *publish interval* ([`StockHub::spawn_pump`]): changes of
//! a SKU arriving within one interval are conflated into its latest value, so a SKU selling
//! thousands of units a second costs each subscriber at most one packet per interval, whatever
//! the reservation rate. How long a change waited for its publication is recorded
//! ([`HubStats::wait_p99_us`]); an update's `server_time_us` is its publication time.
//!
//! Where things are:
//! - `hub/mod.rs`: the hub itself ([`StockHub`]: construction, identity, counters);
//! - `hub/inbox.rs`: the engine side (the observer, seeding, per-SKU coalescing);
//! - `hub/pump.rs`: numbering, encoding and publishing pending changes, paced by the interval;
//! - `hub/entry.rs`: one published update ([`HubEntry`]) and its encoded frame;
//! - `hub/history.rs`: the ring and latest-per-SKU map connections read (snapshot, resume,
//!   catch-up).
//!
//! [`StockObserver::stock_changed`]: flashsale_engine::observer::StockObserver::stock_changed

mod entry;
mod history;
mod inbox;
mod pump;
#[cfg(test)]
mod test_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use tokio::sync::{watch, Notify};

pub use entry::HubEntry;
pub use history::{HubSnapshot, ReadBatch};

use history::History;
use inbox::Inbox;

/// Default number of updates kept for resume.
pub const DEFAULT_HISTORY_CAPACITY: usize = 65_536;

/// The current Unix time in microseconds (0 if the clock is before 1970).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Counters for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    /// Calls of `stock_changed` (engine side).
    pub observed: u64,
    /// Changes merged into a pending change of the same SKU before the pump saw them.
    pub inbox_coalesced: u64,
    /// Sequence numbers assigned so far (the head).
    pub head_seq: u64,
    /// Entries in the history ring.
    pub history_len: usize,
    /// SKUs known.
    pub skus: usize,
    /// Reads that fell behind and were served the latest value per SKU instead.
    pub coalesced_reads: u64,
    /// Pump rounds that published at least one update.
    pub publishes: u64,
    /// Median time from a change reaching the hub to its publication, in µs.
    pub wait_p50_us: u64,
    /// 99th percentile of that wait, in µs (bounded by the publish interval plus pump time).
    pub wait_p99_us: u64,
    /// Longest such wait, in µs.
    pub wait_max_us: u64,
}

/// Publishes stock changes to stream connections. Register it as the engine's observer.
#[derive(Debug)]
pub struct StockHub {
    epoch: u64,
    capacity: usize,
    inbox: Mutex<Inbox>,
    /// Serializes pumps and seeding (which must not interleave with a pump).
    pump_lock: Mutex<Inbox>,
    pump_wake: Notify,
    state: RwLock<History>,
    head_tx: watch::Sender<u64>,
    observed: AtomicU64,
    inbox_coalesced: AtomicU64,
    coalesced_reads: AtomicU64,
    publishes: AtomicU64,
    /// Change → publication wait, µs (written by the pump only).
    wait_us: Mutex<Histogram<u64>>,
}

/// Locks `m`, ignoring poisoning.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these structures half-updated in a way that
    // matters more than stopping the stream; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StockHub {
    /// A hub keeping the last `history_capacity` updates (at least 1) for resume.
    pub fn new(history_capacity: usize) -> Arc<StockHub> {
        let capacity = history_capacity.max(1);
        // The epoch only has to differ between runs of the server: time and the address of a
        // fresh allocation are enough.
        let nonce = Box::new(0u8);
        let epoch = (unix_micros() ^ (&*nonce as *const u8 as u64).rotate_left(32)) | 1;
        Arc::new(StockHub {
            epoch,
            capacity,
            inbox: Mutex::new(Inbox::default()),
            pump_lock: Mutex::new(Inbox::default()),
            pump_wake: Notify::new(),
            state: RwLock::new(History::new(capacity)),
            head_tx: watch::Sender::new(0),
            observed: AtomicU64::new(0),
            inbox_coalesced: AtomicU64::new(0),
            coalesced_reads: AtomicU64::new(0),
            publishes: AtomicU64::new(0),
            wait_us: Mutex::new(pump::wait_histogram()),
        })
    }

    /// The connection-facing state, for reading (ignoring poisoning).
    fn read(&self) -> RwLockReadGuard<'_, History> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection-facing state, for the pump to append to (ignoring poisoning).
    fn write(&self) -> RwLockWriteGuard<'_, History> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Identifies this run's sequence numbering (sent in `Welcome`, echoed by resuming clients).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Updates kept for resume.
    pub fn history_capacity(&self) -> usize {
        self.capacity
    }

    /// The newest sequence number assigned (0 before the first update).
    pub fn head_seq(&self) -> u64 {
        self.read().head
    }

    /// A receiver that changes whenever the head advances.
    pub fn subscribe_head(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        let (wait_p50_us, wait_p99_us, wait_max_us) = {
            let h = lock(&self.wait_us);
            if h.is_empty() {
                (0, 0, 0)
            } else {
                (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
            }
        };
        let state = self.read();
        HubStats {
            publishes: self.publishes.load(Ordering::Relaxed),
            wait_p50_us,
            wait_p99_us,
            wait_max_us,
            observed: self.observed.load(Ordering::Relaxed),
            inbox_coalesced: self.inbox_coalesced.load(Ordering::Relaxed),
            head_seq: state.head,
            history_len: state.history.len(),
            skus: state.latest.len(),
            coalesced_reads: self.coalesced_reads.load(Ordering::Relaxed),
        }
    }
}
