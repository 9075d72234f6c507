//! Per-buyer usage: the units of each SKU a buyer holds or bought (for per-buyer limits).

use std::hash::{Hash, Hasher};

use flashsale_protocol::{BuyerId, SkuId};

use super::{FastMap, Shard};

/// Key for per-buyer usage `(buyer, SKU index)`, looked up without allocating.
pub(super) struct UsageRef<'a>(&'a BuyerId, u32);

impl Hash for UsageRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must match the Hash of the tuple `(BuyerId, u32)`.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl hashbrown::Equivalent<(BuyerId, u32)> for UsageRef<'_> {
    fn equivalent(&self, key: &(BuyerId, u32)) -> bool {
        self.1 == key.1 && *self.0 == key.0
    }
}

impl Shard {
    /// Units of `sku` the buyer holds or bought.
    pub fn used(&self, buyer: &BuyerId, sku: &SkuId) -> u64 {
        self.sku_index
            .get(sku)
            .map_or(0, |idx| self.used_idx(buyer, *idx))
    }

    /// Units of the SKU at index `sku` the buyer holds or bought.
    pub(super) fn used_idx(&self, buyer: &BuyerId, sku: u32) -> u64 {
        self.usage.get(&UsageRef(buyer, sku)).copied().unwrap_or(0)
    }

    /// Counts `qty` more units of SKU `sku` for the buyer.
    pub(super) fn add_usage(&mut self, buyer: &BuyerId, sku: u32, qty: u64) {
        if let Some(u) = self.usage.get_mut(&UsageRef(buyer, sku)) {
            *u += qty;
        } else {
            self.usage.insert((buyer.clone(), sku), qty);
        }
    }
}

/// Counts `qty` fewer units of SKU `sku` for the buyer; drops the entry at zero. The units
/// were counted when reserved, so a missing or smaller entry is a bug.
pub(super) fn sub_usage(
    usage: &mut FastMap<(BuyerId, u32), u64>,
    buyer: &BuyerId,
    sku: u32,
    qty: u64,
) {
    let key = UsageRef(buyer, sku);
    let Some(u) = usage.get_mut(&key) else {
        panic!("missing usage of {buyer} on SKU #{sku}");
    };
    assert!(*u >= qty, "usage of {buyer} on SKU #{sku} below {qty}");
    *u -= qty;
    if *u == 0 {
        usage.remove(&key);
    }
}
