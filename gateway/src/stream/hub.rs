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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flashsale_engine::observer::{StockLevel, StockObserver};
use flashsale_protocol::stream::{
    encode_frame, LevelEntry, ServerFrame, Subscription, UpdateFrame, MAX_FRAME_LEN,
};
use flashsale_protocol::SkuId;
use hdrhistogram::Histogram;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Default number of updates kept for resume.
pub const DEFAULT_HISTORY_CAPACITY: usize = 65_536;

/// The current Unix time in microseconds (0 if the clock is before 1970).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One numbered update, encoded once and shared by every connection that sends it.
#[derive(Debug)]
pub struct HubEntry {
    /// Global sequence number.
    pub seq: u64,
    /// The SKU.
    pub sku: SkuId,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
    /// When this update was published (sequence number assigned), Unix µs; sent to clients as
    /// `server_time_us`, so receipt minus it is the delivery latency.
    pub server_time_us: u64,
    /// When the hub learned of the oldest change this entry carries, Unix µs (publication minus
    /// this is the time the change waited to be conflated and published).
    pub changed_us: u64,
    /// The encoded `Update` frame (length prefix included).
    pub frame: Bytes,
}

impl HubEntry {
    /// This entry as a snapshot level.
    pub fn level(&self) -> LevelEntry {
        LevelEntry {
            sku: self.sku.clone(),
            available: self.available,
            reserved: self.reserved,
            sold: self.sold,
            seq: self.seq,
        }
    }
}

/// A change waiting in the inbox for the pump.
#[derive(Debug)]
struct Pending {
    sku: SkuId,
    available: u64,
    reserved: u64,
    sold: u64,
    first_seen_us: u64,
}

/// Engine-facing buffer: insertion-ordered, one entry per SKU.
#[derive(Debug, Default)]
struct Inbox {
    pending: Vec<Pending>,
    index: HashMap<SkuId, usize>,
}

/// Connection-facing state.
#[derive(Debug)]
struct State {
    head: u64,
    history: VecDeque<Arc<HubEntry>>,
    latest: HashMap<SkuId, Arc<HubEntry>>,
}

/// The result of [`StockHub::read_since`].
#[derive(Debug, Default)]
pub struct ReadBatch {
    /// Entries to send, in increasing `seq` order, filtered to the subscription.
    pub entries: Vec<Arc<HubEntry>>,
    /// The connection's new cursor: every change up to it is in `entries` or was sent before.
    pub cursor: u64,
    /// Whether the batch was coalesced (latest value per SKU) because the reader fell behind.
    pub coalesced: bool,
}

/// A consistent picture of the subscribed SKUs.
#[derive(Debug)]
pub struct HubSnapshot {
    /// Every change up to this sequence number is reflected.
    pub seq: u64,
    /// Latest entry per subscribed SKU, sorted by SKU.
    pub entries: Vec<Arc<HubEntry>>,
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
    state: RwLock<State>,
    head_tx: watch::Sender<u64>,
    observed: AtomicU64,
    inbox_coalesced: AtomicU64,
    coalesced_reads: AtomicU64,
    publishes: AtomicU64,
    /// Change → publication wait, µs (written by the pump only).
    wait_us: Mutex<Histogram<u64>>,
}

/// Longest wait the histogram tracks exactly (larger values are clamped), µs.
const MAX_TRACKED_WAIT_US: u64 = 60_000_000;

fn wait_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_TRACKED_WAIT_US, 3) {
        Ok(h) => h,
        Err(_) => unreachable!("constant histogram bounds are valid"),
    }
}

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
            state: RwLock::new(State {
                head: 0,
                history: VecDeque::with_capacity(capacity.min(1 << 16)),
                latest: HashMap::new(),
            }),
            head_tx: watch::Sender::new(0),
            observed: AtomicU64::new(0),
            inbox_coalesced: AtomicU64::new(0),
            coalesced_reads: AtomicU64::new(0),
            publishes: AtomicU64::new(0),
            wait_us: Mutex::new(wait_histogram()),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
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

    fn push_pending(inbox: &mut Inbox, level: &StockLevel, now_us: u64) -> bool {
        if let Some(&i) = inbox.index.get(&level.sku) {
            if let Some(p) = inbox.pending.get_mut(i) {
                p.available = level.available;
                p.reserved = level.reserved;
                p.sold = level.sold;
                return true;
            }
        }
        inbox.index.insert(level.sku.clone(), inbox.pending.len());
        inbox.pending.push(Pending {
            sku: level.sku.clone(),
            available: level.available,
            reserved: level.reserved,
            sold: level.sold,
            first_seen_us: now_us,
        });
        false
    }

    /// Sets the initial level of SKUs the hub has not heard of yet (e.g. from
    /// `Engine::stock_levels()` at start). Levels of SKUs already known or pending are ignored:
    /// those came from the observer and are at least as new.
    pub fn seed(&self, levels: &[StockLevel]) {
        let _pump = lock(&self.pump_lock);
        let now = unix_micros();
        let mut added = false;
        {
            let mut inbox = lock(&self.inbox);
            let state = self.read();
            for level in levels {
                if state.latest.contains_key(&level.sku) || inbox.index.contains_key(&level.sku) {
                    continue;
                }
                Self::push_pending(&mut inbox, level, now);
                added = true;
            }
        }
        if added {
            self.pump_wake.notify_one();
        }
    }

    /// Moves pending changes into the history: assigns sequence numbers, encodes each update
    /// once, and wakes connections. Returns how many updates were published.
    pub fn pump(&self) -> usize {
        let mut scratch = lock(&self.pump_lock);
        {
            let mut inbox = lock(&self.inbox);
            std::mem::swap(&mut *inbox, &mut *scratch);
        }
        if scratch.pending.is_empty() {
            return 0;
        }
        // Only the pump assigns sequence numbers, and pumps are serialized by `pump_lock`.
        let head = self.read().head;
        let published_us = unix_micros();
        let mut entries = Vec::with_capacity(scratch.pending.len());
        let mut wait = lock(&self.wait_us);
        for (seq, p) in (head + 1..).zip(scratch.pending.drain(..)) {
            let changed_us = p.first_seen_us;
            let waited = published_us.saturating_sub(changed_us);
            wait.saturating_record(waited.clamp(1, MAX_TRACKED_WAIT_US));
            let update = UpdateFrame {
                seq,
                sku: p.sku,
                available: p.available,
                reserved: p.reserved,
                sold: p.sold,
                server_time_us: published_us,
            };
            let mut frame = Vec::with_capacity(128);
            let frame = match encode_frame(
                &ServerFrame::Update(update.clone()),
                MAX_FRAME_LEN,
                &mut frame,
            ) {
                Ok(()) => Bytes::from(frame),
                Err(e) => {
                    // A 64-byte SKU and four integers always fit; keep the sequence gap-free anyway.
                    tracing::error!(error = %e, "cannot encode a stock update");
                    Bytes::new()
                }
            };
            entries.push(Arc::new(HubEntry {
                seq,
                sku: update.sku,
                available: update.available,
                reserved: update.reserved,
                sold: update.sold,
                server_time_us: update.server_time_us,
                changed_us,
                frame,
            }));
        }
        drop(wait);
        scratch.index.clear();
        let published = entries.len();
        self.publishes.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.write();
            for entry in entries {
                debug_assert_eq!(entry.seq, state.head + 1, "sequence numbers are contiguous");
                state.head = entry.seq;
                if state.history.len() == self.capacity {
                    state.history.pop_front();
                }
                state.latest.insert(entry.sku.clone(), entry.clone());
                state.history.push_back(entry);
            }
            assert!(state.history.len() <= self.capacity);
            self.head_tx.send_replace(state.head);
        }
        published
    }

    /// Waits until the engine side has queued something for [`StockHub::pump`].
    pub async fn wait_for_changes(&self) {
        self.pump_wake.notified().await;
    }

    /// Runs the pump until the returned task is aborted. Spawned by the stream server.
    ///
    /// Two publications are at least `interval()` apart (asked again before each one; zero:
    /// publish as soon as a change arrives). A change waits at most one interval (plus timer
    /// slack) before it is published; the interval bounds the packets each subscriber of a busy
    /// SKU receives per second.
    pub fn spawn_pump(
        self: &Arc<Self>,
        interval: impl Fn() -> Duration + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                hub.pump();
                hub.wait_for_changes().await;
                let next = last + interval();
                if next > Instant::now() {
                    tokio::time::sleep_until(next).await;
                }
                last = Instant::now();
            }
        })
    }

    /// The latest level of every subscribed SKU, consistent as of the returned `seq`.
    pub fn snapshot(&self, subscription: &Subscription) -> HubSnapshot {
        let state = self.read();
        let mut entries: Vec<Arc<HubEntry>> = match subscription {
            Subscription::All => state.latest.values().cloned().collect(),
            Subscription::Skus(list) => list
                .iter()
                .filter_map(|sku| state.latest.get(sku).cloned())
                .collect(),
        };
        let seq = state.head;
        drop(state);
        entries.sort_by(|a, b| a.sku.cmp(&b.sku));
        entries.dedup_by(|a, b| a.sku == b.sku);
        HubSnapshot { seq, entries }
    }

    /// Whether a client that has applied everything up to `seq` can be served from the history
    /// (every later update is still retained).
    pub fn can_resume_from(&self, seq: u64) -> bool {
        let state = self.read();
        if seq > state.head {
            return false;
        }
        match state.history.front() {
            Some(oldest) => seq + 1 >= oldest.seq,
            None => seq == state.head,
        }
    }

    /// The updates after `cursor` for `subscription`, at most `max_scan` history entries per call.
    ///
    /// With `lag_limit = Some(n)`, a reader more than `n` updates behind the head (or one whose
    /// cursor left the history) gets the latest entry of each subscribed SKU changed since
    /// `cursor` instead (coalesced), and its cursor jumps to the head. With `None` (replaying a
    /// resume), only falling out of the history coalesces.
    pub fn read_since(
        &self,
        cursor: u64,
        subscription: &Subscription,
        lag_limit: Option<u64>,
        max_scan: usize,
    ) -> ReadBatch {
        let state = self.read();
        let head = state.head;
        if cursor >= head {
            return ReadBatch {
                entries: Vec::new(),
                cursor: head.max(cursor),
                coalesced: false,
            };
        }
        let oldest = state.history.front().map_or(head + 1, |e| e.seq);
        let too_far = lag_limit.is_some_and(|limit| head - cursor > limit);
        if cursor + 1 < oldest || too_far {
            let mut entries: Vec<Arc<HubEntry>> = match subscription {
                Subscription::All => state
                    .latest
                    .values()
                    .filter(|e| e.seq > cursor)
                    .cloned()
                    .collect(),
                Subscription::Skus(list) => list
                    .iter()
                    .filter_map(|sku| state.latest.get(sku))
                    .filter(|e| e.seq > cursor)
                    .cloned()
                    .collect(),
            };
            drop(state);
            entries.sort_by_key(|e| e.seq);
            entries.dedup_by_key(|e| e.seq);
            self.coalesced_reads.fetch_add(1, Ordering::Relaxed);
            return ReadBatch {
                entries,
                cursor: head,
                coalesced: true,
            };
        }
        // Contiguous sequence numbers: the entry after `cursor` is at index `cursor + 1 - oldest`.
        let start = usize::try_from(cursor + 1 - oldest).unwrap_or(usize::MAX);
        let mut entries = Vec::new();
        let mut new_cursor = cursor;
        for entry in state.history.iter().skip(start).take(max_scan.max(1)) {
            debug_assert_eq!(entry.seq, new_cursor + 1);
            new_cursor = entry.seq;
            if subscription.contains(&entry.sku) {
                entries.push(entry.clone());
            }
        }
        ReadBatch {
            entries,
            cursor: new_cursor,
            coalesced: false,
        }
    }
}

impl StockObserver for StockHub {
    fn stock_changed(&self, level: &StockLevel) {
        self.observed.fetch_add(1, Ordering::Relaxed);
        let now = unix_micros();
        let (merged, was_empty) = {
            let mut inbox = lock(&self.inbox);
            let was_empty = inbox.pending.is_empty();
            (Self::push_pending(&mut inbox, level, now), was_empty)
        };
        if merged {
            self.inbox_coalesced.fetch_add(1, Ordering::Relaxed);
        }
        if was_empty {
            // Non-blocking: stores a permit if the pump is busy.
            self.pump_wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> SkuId {
        SkuId::new(s).unwrap()
    }

    fn level(s: &str, available: u64) -> StockLevel {
        StockLevel {
            sku: sku(s),
            available,
            reserved: available / 2,
            sold: 0,
        }
    }

    #[test]
    fn numbers_updates_and_keeps_latest() {
        let hub = StockHub::new(8);
        hub.stock_changed(&level("a", 10));
        hub.stock_changed(&level("b", 20));
        assert_eq!(hub.pump(), 2);
        hub.stock_changed(&level("a", 9));
        assert_eq!(hub.pump(), 1);
        assert_eq!(hub.head_seq(), 3);
        let snap = hub.snapshot(&Subscription::All);
        assert_eq!(snap.seq, 3);
        let got: Vec<_> = snap
            .entries
            .iter()
            .map(|e| (e.sku.as_str(), e.available, e.seq))
            .collect();
        assert_eq!(got, vec![("a", 9, 3), ("b", 20, 2)]);
    }

    #[test]
    fn inbox_coalesces_per_sku_and_keeps_first_order() {
        let hub = StockHub::new(8);
        for i in 0..1000 {
            hub.stock_changed(&level("a", 1000 - i));
            hub.stock_changed(&level("b", i));
        }
        assert_eq!(hub.pump(), 2);
        let r = hub.read_since(0, &Subscription::All, None, 100);
        let got: Vec<_> = r
            .entries
            .iter()
            .map(|e| (e.sku.as_str(), e.available, e.seq))
            .collect();
        assert_eq!(got, vec![("a", 1, 1), ("b", 999, 2)]);
        let s = hub.stats();
        assert_eq!(s.observed, 2000);
        assert_eq!(s.inbox_coalesced, 1998);
    }

    #[test]
    fn history_is_bounded_and_resume_points_age_out() {
        let hub = StockHub::new(4);
        for i in 0..10 {
            hub.stock_changed(&level("a", i));
            hub.pump();
        }
        let s = hub.stats();
        assert_eq!(s.history_len, 4);
        assert_eq!(s.head_seq, 10);
        assert!(hub.can_resume_from(10));
        assert!(hub.can_resume_from(6));
        assert!(!hub.can_resume_from(5));
        assert!(!hub.can_resume_from(11));
        // Exact replay from a retained point.
        let r = hub.read_since(6, &Subscription::All, None, 100);
        assert!(!r.coalesced);
        assert_eq!(
            r.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![7, 8, 9, 10]
        );
        // Out of history: coalesced to the latest value.
        let r = hub.read_since(2, &Subscription::All, None, 100);
        assert!(r.coalesced);
        assert_eq!(r.cursor, 10);
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.entries[0].available, 9);
    }

    #[test]
    fn filtered_reads_skip_other_skus_and_respect_scan_bound() {
        let hub = StockHub::new(100);
        for i in 0..20 {
            hub.stock_changed(&level(if i % 2 == 0 { "a" } else { "b" }, i));
            hub.pump();
        }
        let sub = Subscription::Skus(vec![sku("b")]);
        let r = hub.read_since(0, &sub, None, 5);
        assert_eq!(r.cursor, 5);
        assert_eq!(
            r.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 4]
        );
        let r = hub.read_since(5, &sub, None, 1000);
        assert_eq!(r.cursor, 20);
        assert!(r.entries.iter().all(|e| e.sku.as_str() == "b"));
        assert_eq!(r.entries.len(), 8);
    }

    #[test]
    fn lagging_reader_gets_latest_per_sku_in_seq_order() {
        let hub = StockHub::new(1000);
        for i in 0..100u64 {
            hub.stock_changed(&level(["a", "b", "c"][(i % 3) as usize], i));
            hub.pump();
        }
        let r = hub.read_since(10, &Subscription::All, Some(16), 1000);
        assert!(r.coalesced);
        assert_eq!(r.cursor, 100);
        let got: Vec<_> = r.entries.iter().map(|e| (e.seq, e.available)).collect();
        assert_eq!(got, vec![(98, 97), (99, 98), (100, 99)]);
        assert_eq!(hub.stats().coalesced_reads, 1);
    }

    #[test]
    fn seed_fills_only_unknown_skus() {
        let hub = StockHub::new(10);
        hub.stock_changed(&level("a", 5));
        hub.seed(&[level("a", 50), level("b", 60)]);
        hub.pump();
        let snap = hub.snapshot(&Subscription::All);
        let got: Vec<_> = snap
            .entries
            .iter()
            .map(|e| (e.sku.as_str(), e.available))
            .collect();
        assert_eq!(got, vec![("a", 5), ("b", 60)]);
        hub.seed(&[level("b", 1)]);
        assert_eq!(hub.pump(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pump_conflates_changes_within_an_interval() {
        let hub = StockHub::new(1024);
        let pump = hub.spawn_pump(|| Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(1)).await;
        // 200 changes of one SKU, 1 ms apart: 200 ms of sales.
        for i in 0..200u64 {
            hub.stock_changed(&level("hot", 1000 - i));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        pump.abort();
        let s = hub.stats();
        // One publication at the first change, then at most one per 50 ms.
        assert!(
            (2..=6).contains(&s.head_seq),
            "200 changes in 200 ms published as {} updates",
            s.head_seq
        );
        assert_eq!(s.observed, 200);
        assert_eq!(s.observed, s.inbox_coalesced + s.head_seq);
        // The last value always gets out.
        let snap = hub.snapshot(&Subscription::All);
        assert_eq!(snap.entries[0].available, 801);
    }

    #[test]
    fn wait_statistics_follow_the_pump() {
        let hub = StockHub::new(16);
        assert_eq!((hub.stats().publishes, hub.stats().wait_max_us), (0, 0));
        hub.stock_changed(&level("a", 1));
        std::thread::sleep(std::time::Duration::from_millis(5));
        hub.pump();
        let s = hub.stats();
        assert_eq!(s.publishes, 1);
        assert!(s.wait_max_us >= 5_000, "waited {} µs", s.wait_max_us);
        let r = hub.read_since(0, &Subscription::All, None, 10);
        assert!(r.entries[0].server_time_us >= r.entries[0].changed_us + 5_000);
    }

    #[test]
    fn entries_carry_a_decodable_update_frame() {
        use flashsale_protocol::stream::FrameDecoder;
        let hub = StockHub::new(4);
        hub.stock_changed(&level("tee", 7));
        hub.pump();
        let r = hub.read_since(0, &Subscription::All, None, 10);
        let mut dec = FrameDecoder::<ServerFrame>::new(MAX_FRAME_LEN);
        dec.feed(&r.entries[0].frame);
        match dec.next_frame().unwrap() {
            Some(ServerFrame::Update(u)) => {
                assert_eq!((u.seq, u.sku.as_str(), u.available), (1, "tee", 7));
                assert!(u.server_time_us > 0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
