//! The connection side of the hub: the bounded history ring of published updates and the latest
//! entry per SKU, and the reads connections make of them (snapshot, resume check, catch-up).
//!
//! Sequence numbers in the ring are contiguous, so a cursor maps to an index. A reader that fell
//! out of the ring, or too far behind, is served the latest entry of each SKU instead
//! (coalesced) and jumps to the head.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use flashsale_protocol::stream::Subscription;
use flashsale_protocol::SkuId;

use super::{HubEntry, StockHub};

/// Connection-facing state: what has been published.
#[derive(Debug)]
pub(super) struct History {
    /// The newest sequence number assigned (0 before the first update).
    pub(super) head: u64,
    /// The last published updates, oldest first, contiguous sequence numbers ending at `head`.
    pub(super) history: VecDeque<Arc<HubEntry>>,
    /// The latest update of every SKU ever published.
    pub(super) latest: HashMap<SkuId, Arc<HubEntry>>,
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
    /// Whether `cursor` reached the head as of this read, so reading again before the head
    /// moves would return nothing (saves a connection that read everything a second read).
    pub caught_up: bool,
}

/// A consistent picture of the subscribed SKUs.
#[derive(Debug)]
pub struct HubSnapshot {
    /// Every change up to this sequence number is reflected.
    pub seq: u64,
    /// Latest entry per subscribed SKU, sorted by SKU.
    pub entries: Vec<Arc<HubEntry>>,
}

impl History {
    /// An empty history for a ring of `capacity` updates.
    pub(super) fn new(capacity: usize) -> Self {
        History {
            head: 0,
            history: VecDeque::with_capacity(capacity.min(1 << 16)),
            latest: HashMap::new(),
        }
    }

    /// Appends freshly numbered `entries` (the next sequence numbers, in order), dropping the
    /// oldest ones beyond `capacity`.
    pub(super) fn append(&mut self, entries: Vec<Arc<HubEntry>>, capacity: usize) {
        for entry in entries {
            debug_assert_eq!(entry.seq, self.head + 1, "sequence numbers are contiguous");
            self.head = entry.seq;
            if self.history.len() == capacity {
                self.history.pop_front();
            }
            self.latest.insert(entry.sku.clone(), entry.clone());
            self.history.push_back(entry);
        }
        assert!(self.history.len() <= capacity);
    }

    /// The latest entry of each subscribed SKU changed after `cursor`, in no particular order.
    fn changed_since(&self, cursor: u64, subscription: &Subscription) -> Vec<Arc<HubEntry>> {
        match subscription {
            Subscription::All => self
                .latest
                .values()
                .filter(|e| e.seq > cursor)
                .cloned()
                .collect(),
            Subscription::Skus(list) => list
                .iter()
                .filter_map(|sku| self.latest.get(sku))
                .filter(|e| e.seq > cursor)
                .cloned()
                .collect(),
        }
    }
}

impl StockHub {
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
                caught_up: true,
            };
        }
        let oldest = state.history.front().map_or(head + 1, |e| e.seq);
        let too_far = lag_limit.is_some_and(|limit| head - cursor > limit);
        if cursor + 1 < oldest || too_far {
            let mut entries = state.changed_since(cursor, subscription);
            drop(state);
            entries.sort_by_key(|e| e.seq);
            entries.dedup_by_key(|e| e.seq);
            self.coalesced_reads.fetch_add(1, Ordering::Relaxed);
            return ReadBatch {
                entries,
                cursor: head,
                coalesced: true,
                caught_up: true,
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
            caught_up: new_cursor == head,
        }
    }
}

#[cfg(test)]
mod tests {
    use flashsale_engine::observer::StockObserver;

    use super::super::test_support::{level, sku};
    use super::*;

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
}
