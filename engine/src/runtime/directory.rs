//! The lock-free SKU directory shared by every caller thread: per SKU its [`StockGate`], its
//! reservation TTL and mirrors of its last durable stock counts.
//!
//! Reads are wait-free (`ArcSwap::load`); SKU creation (rare) copies one of 256 buckets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use flashsale_protocol::SkuId;

use crate::gate::StockGate;
use crate::observer::StockLevel;
use crate::shard::shard_of;

const BUCKETS: usize = 256;

/// One SKU as seen by caller threads.
#[derive(Debug)]
pub(crate) struct SkuEntry {
    pub(crate) sku: SkuId,
    pub(crate) gate: Arc<StockGate>,
    pub(crate) ttl_ms: AtomicU64,
    pub(crate) available: AtomicU64,
    pub(crate) reserved: AtomicU64,
    pub(crate) sold: AtomicU64,
}

impl SkuEntry {
    pub(crate) fn level(&self) -> StockLevel {
        StockLevel {
            sku: self.sku.clone(),
            available: self.available.load(Ordering::Acquire),
            reserved: self.reserved.load(Ordering::Acquire),
            sold: self.sold.load(Ordering::Acquire),
        }
    }

    pub(crate) fn set_level(&self, level: &StockLevel) {
        self.available.store(level.available, Ordering::Release);
        self.reserved.store(level.reserved, Ordering::Release);
        self.sold.store(level.sold, Ordering::Release);
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
        let available = gate.available();
        let entry = Arc::new(SkuEntry {
            sku: sku.clone(),
            gate,
            ttl_ms: AtomicU64::new(ttl_ms),
            available: AtomicU64::new(available),
            reserved: AtomicU64::new(0),
            sold: AtomicU64::new(0),
        });
        if let Some(level) = &level {
            entry.set_level(level);
        }
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
