//! The engine side of the hub: the inbox of changes waiting for the pump.
//!
//! [`StockObserver::stock_changed`] runs on engine threads, so it only updates a small map under a
//! mutex: a change of a SKU already pending replaces that pending value (coalescing), keeping the
//! SKU's place in line, so the inbox holds at most one entry per SKU. [`StockHub::seed`] fills in
//! the starting levels of SKUs no change has mentioned yet.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use flashsale_engine::observer::{StockLevel, StockObserver};
use flashsale_protocol::SkuId;

use super::{lock, unix_micros, StockHub};

/// A change waiting in the inbox for the pump.
#[derive(Debug)]
pub(super) struct Pending {
    /// The SKU.
    pub(super) sku: SkuId,
    /// Units that can be reserved (latest value).
    pub(super) available: u64,
    /// Units held (latest value).
    pub(super) reserved: u64,
    /// Units sold (latest value).
    pub(super) sold: u64,
    /// The shard log position of these counts ([`StockLevel::log_seq`]).
    pub(super) log_seq: u64,
    /// When the first change merged into this one reached the hub, Unix µs.
    pub(super) first_seen_us: u64,
}

/// Engine-facing buffer: insertion-ordered, one entry per SKU.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    pending: Vec<Pending>,
    /// SKU → its position in `pending`.
    index: HashMap<SkuId, usize>,
}

impl Inbox {
    /// Queues `level`, or overwrites the SKU's pending change; returns whether it merged into one.
    fn push(&mut self, level: &StockLevel, now_us: u64) -> bool {
        if let Some(&i) = self.index.get(&level.sku) {
            if let Some(p) = self.pending.get_mut(i) {
                // A level older in the log than the pending one (a seed racing a commit) loses.
                if level.log_seq >= p.log_seq {
                    p.available = level.available;
                    p.reserved = level.reserved;
                    p.sold = level.sold;
                    p.log_seq = level.log_seq;
                }
                return true;
            }
        }
        self.index.insert(level.sku.clone(), self.pending.len());
        self.pending.push(Pending {
            sku: level.sku.clone(),
            available: level.available,
            reserved: level.reserved,
            sold: level.sold,
            log_seq: level.log_seq,
            first_seen_us: now_us,
        });
        false
    }

    /// Whether a change of `sku` is pending.
    fn contains(&self, sku: &SkuId) -> bool {
        self.index.contains_key(sku)
    }

    /// Whether nothing is pending.
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes every pending change, in arrival order, leaving the inbox empty.
    pub(super) fn drain(&mut self) -> std::vec::Drain<'_, Pending> {
        self.index.clear();
        self.pending.drain(..)
    }
}

impl StockHub {
    /// Sets the level of SKUs the hub has not heard of yet, or heard of at an older log position
    /// (e.g. from `Engine::stock_levels()` at start, or when this node of a group takes over
    /// again after another node led). Levels of SKUs pending, or already known at the same or a
    /// later log position, are ignored: those came from the observer and are at least as new.
    pub fn seed(&self, levels: &[StockLevel]) {
        let _pump = lock(&self.pump_lock);
        let now = unix_micros();
        let mut added = false;
        {
            let mut inbox = lock(&self.inbox);
            let state = self.read();
            for level in levels {
                let known = state
                    .latest
                    .get(&level.sku)
                    .is_some_and(|e| e.log_seq >= level.log_seq);
                if known || inbox.contains(&level.sku) {
                    continue;
                }
                inbox.push(level, now);
                added = true;
            }
        }
        if added {
            self.pump_wake.notify_one();
        }
    }
}

impl StockObserver for StockHub {
    fn stock_changed(&self, level: &StockLevel) {
        self.observed.fetch_add(1, Ordering::Relaxed);
        let now = unix_micros();
        let (merged, was_empty) = {
            let mut inbox = lock(&self.inbox);
            let was_empty = inbox.is_empty();
            (inbox.push(level, now), was_empty)
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
    use flashsale_protocol::stream::Subscription;

    use super::super::test_support::level;
    use super::*;

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
}
