//! The pump: moves pending changes from the inbox into the history, numbering and encoding each
//! once, then wakes connections; [`StockHub::spawn_pump`] runs it paced by the publish interval
//! and records how long each change waited for its publication.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::{lock, unix_micros, HubEntry, StockHub};

/// Longest wait the histogram tracks exactly (larger values are clamped), µs.
const MAX_TRACKED_WAIT_US: u64 = 60_000_000;

/// An empty histogram of change → publication waits, µs.
pub(super) fn wait_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_TRACKED_WAIT_US, 3) {
        Ok(h) => h,
        Err(_) => unreachable!("constant histogram bounds are valid"),
    }
}

impl StockHub {
    /// Moves pending changes into the history: assigns sequence numbers, encodes each update
    /// once, and wakes connections. Returns how many updates were published.
    pub fn pump(&self) -> usize {
        let mut scratch = lock(&self.pump_lock);
        {
            let mut inbox = lock(&self.inbox);
            std::mem::swap(&mut *inbox, &mut *scratch);
        }
        if scratch.is_empty() {
            return 0;
        }
        // Only the pump assigns sequence numbers, and pumps are serialized by `pump_lock`.
        let (head, fresh): (u64, Vec<_>) = {
            let state = self.read();
            // A change older in the log than what was published for its SKU (from a term this
            // node led before) is dropped: per SKU, `log_seq` never goes back (ADR 0033).
            let fresh = scratch
                .drain()
                .filter(|p| {
                    state
                        .latest
                        .get(&p.sku)
                        .is_none_or(|e| e.log_seq <= p.log_seq)
                })
                .collect();
            (state.head, fresh)
        };
        if fresh.is_empty() {
            return 0;
        }
        let published_us = unix_micros();
        let mut entries = Vec::with_capacity(fresh.len());
        let mut wait = lock(&self.wait_us);
        for (seq, p) in (head + 1..).zip(fresh) {
            let waited = published_us.saturating_sub(p.first_seen_us);
            wait.saturating_record(waited.clamp(1, MAX_TRACKED_WAIT_US));
            entries.push(Arc::new(HubEntry::publish(seq, p, published_us)));
        }
        drop(wait);
        let published = entries.len();
        self.publishes.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.write();
            state.append(entries, self.capacity);
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
}

#[cfg(test)]
mod tests {
    use flashsale_engine::observer::{StockLevel, StockObserver};
    use flashsale_protocol::stream::Subscription;

    use super::super::test_support::level;
    use super::*;

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
    fn log_positions_never_go_back_per_sku() {
        let hub = StockHub::new(16);
        let at = |s: &str, available: u64, log_seq: u64| StockLevel {
            log_seq,
            ..level(s, available)
        };
        hub.stock_changed(&at("a", 10, 40));
        hub.pump();
        // A seed at the same or an older position (an earlier term's engine) changes nothing.
        hub.seed(&[at("a", 99, 40), at("a", 98, 12)]);
        assert_eq!(hub.pump(), 0);
        // A change older in the log than what was published is dropped by the pump.
        hub.stock_changed(&at("a", 97, 39));
        assert_eq!(hub.pump(), 0);
        // A seed at a later position (this node leads again) is published.
        hub.seed(&[at("a", 7, 55), at("b", 3, 2)]);
        assert_eq!(hub.pump(), 2);
        let snap = hub.snapshot(&Subscription::All);
        let got: Vec<_> = snap
            .entries
            .iter()
            .map(|e| (e.sku.as_str(), e.available, e.log_seq))
            .collect();
        assert_eq!(got, vec![("a", 7, 55), ("b", 3, 2)]);
        assert_eq!(snap.entries[0].level().log_seq, 55);
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
}
