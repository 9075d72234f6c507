//! The lock-free SKU directory shared by every caller thread: per SKU its [`StockGate`], its
//! reservation TTL and a mirror of its last durable stock counts ([`StockMirror`]).
//!
//! Lookups are wait-free (`ArcSwap::load`); SKU creation (rare) copies one of 256 buckets. A
//! stock-level read retries only while the owning shard is publishing that SKU's counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use flashsale_protocol::SkuId;

use crate::gate::StockGate;
use crate::mirror::{StockCounts, StockMirror};
use crate::observer::StockLevel;
use crate::shard::shard_of;

const BUCKETS: usize = 256;

/// One SKU as seen by caller threads.
#[derive(Debug)]
pub(crate) struct SkuEntry {
    pub(crate) sku: SkuId,
    pub(crate) gate: Arc<StockGate>,
    pub(crate) ttl_ms: AtomicU64,
    /// The last durable counts; written only by the owning shard, read consistently anywhere.
    mirror: StockMirror,
}

impl SkuEntry {
    /// The SKU's last durable stock counts, as one consistent snapshot
    /// (`available + reserved + sold` is the SKU's total at that point).
    pub(crate) fn level(&self) -> StockLevel {
        let counts = self.mirror.read();
        StockLevel {
            sku: self.sku.clone(),
            available: counts.available,
            reserved: counts.reserved,
            sold: counts.sold,
            log_seq: counts.log_seq,
        }
    }

    /// Publishes the SKU's durable stock counts (called by the owning shard after a commit).
    pub(crate) fn set_level(&self, level: &StockLevel) {
        debug_assert_eq!(level.sku, self.sku, "level of another SKU");
        self.mirror.write(counts_of(level));
    }
}

/// The counts of a level, as the mirror stores them.
fn counts_of(level: &StockLevel) -> StockCounts {
    StockCounts {
        available: level.available,
        reserved: level.reserved,
        sold: level.sold,
        log_seq: level.log_seq,
    }
}

type Bucket = HashMap<SkuId, Arc<SkuEntry>, ahash::RandomState>;

/// SKU id → entry, readable from any thread without locks.
pub(crate) struct Directory {
    buckets: Box<[ArcSwap<Bucket>]>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
}

fn bucket_of(sku: &SkuId) -> usize {
    // A different modulus than the shard mapping, so buckets spread within a shard too.
    shard_of(sku, 251) as usize % BUCKETS
}

impl Directory {
    pub(crate) fn new() -> Self {
        Directory {
            buckets: (0..BUCKETS)
                .map(|_| ArcSwap::from_pointee(Bucket::default()))
                .collect(),
        }
    }

    /// Runs `f` on the SKU's entry without cloning it.
    pub(crate) fn with<R>(&self, sku: &SkuId, f: impl FnOnce(Option<&Arc<SkuEntry>>) -> R) -> R {
        let guard = self.buckets[bucket_of(sku)].load();
        f(guard.get(sku))
    }

    pub(crate) fn get(&self, sku: &SkuId) -> Option<Arc<SkuEntry>> {
        self.with(sku, |e| e.cloned())
    }

    /// Adds a SKU (no-op if present) and returns its entry.
    pub(crate) fn insert(
        &self,
        sku: &SkuId,
        gate: Arc<StockGate>,
        ttl_ms: u64,
        level: Option<StockLevel>,
    ) -> Arc<SkuEntry> {
        if let Some(e) = self.get(sku) {
            e.ttl_ms.store(ttl_ms, Ordering::Release);
            return e;
        }
        debug_assert!(
            level.as_ref().is_none_or(|l| l.sku == *sku),
            "level of another SKU"
        );
        let counts = match &level {
            Some(level) => counts_of(level),
            None => StockCounts {
                available: gate.available(),
                ..StockCounts::default()
            },
        };
        let entry = Arc::new(SkuEntry {
            sku: sku.clone(),
            gate,
            ttl_ms: AtomicU64::new(ttl_ms),
            mirror: StockMirror::new(counts),
        });
        let bucket = &self.buckets[bucket_of(sku)];
        bucket.rcu(|map| {
            let mut map = Bucket::clone(map);
            map.entry(sku.clone()).or_insert_with(|| entry.clone());
            map
        });
        self.get(sku).unwrap_or(entry)
    }

    /// Every entry.
    pub(crate) fn all(&self) -> Vec<Arc<SkuEntry>> {
        let mut out = Vec::new();
        for b in self.buckets.iter() {
            out.extend(b.load().values().cloned());
        }
        out.sort_unstable_by(|a, b| a.sku.cmp(&b.sku));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> SkuId {
        SkuId::new(s).unwrap()
    }

    fn level(sku: &SkuId, available: u64, reserved: u64, sold: u64) -> StockLevel {
        StockLevel {
            sku: sku.clone(),
            available,
            reserved,
            sold,
            log_seq: 0,
        }
    }

    #[test]
    fn entries_mirror_the_levels_they_are_given() {
        let dir = Directory::new();
        let (a, b) = (sku("A"), sku("B"));
        let ea = dir.insert(&a, Arc::new(StockGate::new(5)), 1_000, None);
        assert_eq!(
            ea.level(),
            level(&a, 5, 0, 0),
            "without a level: the gate's units"
        );
        let eb = dir.insert(
            &b,
            Arc::new(StockGate::new(3)),
            1_000,
            Some(level(&b, 3, 2, 1)),
        );
        assert_eq!(eb.level(), level(&b, 3, 2, 1));

        ea.set_level(&level(&a, 2, 1, 2));
        assert_eq!(dir.get(&a).map(|e| e.level()), Some(level(&a, 2, 1, 2)));
        let again = dir.insert(&a, Arc::new(StockGate::new(9)), 2_000, None);
        assert!(Arc::ptr_eq(&again, &ea), "a second insert keeps the entry");
        assert_eq!(again.level(), level(&a, 2, 1, 2), "and its counts");
        assert_eq!(again.ttl_ms.load(Ordering::Acquire), 2_000);
        let levels: Vec<_> = dir.all().iter().map(|e| e.level()).collect();
        assert_eq!(levels, vec![level(&a, 2, 1, 2), level(&b, 3, 2, 1)]);
    }
}
