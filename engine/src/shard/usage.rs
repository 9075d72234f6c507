//! Per-buyer usage: the units of each SKU a buyer holds or bought (for per-buyer limits),
//! keyed by the buyer's handle in the shard and the SKU's index (two integers: no id hashed).

use flashsale_protocol::{BuyerId, SkuId};

use super::buyers::BuyerHandle;
use super::{FastMap, Shard};

/// Units held or bought per `(buyer handle, SKU index)`.
pub(super) type Usage = FastMap<(BuyerHandle, u32), u64>;

impl Shard {
    /// Units of `sku` the buyer holds or bought.
    pub fn used(&self, buyer: &BuyerId, sku: &SkuId) -> u64 {
        self.sku_index
            .get(sku)
            .map_or(0, |idx| self.used_idx(buyer, *idx))
    }

    /// Units of the SKU at index `sku` the buyer holds or bought.
    pub(super) fn used_idx(&self, buyer: &BuyerId, sku: u32) -> u64 {
        self.buyers
            .handle(buyer)
            .and_then(|h| self.usage.get(&(h, sku)))
            .copied()
            .unwrap_or(0)
    }

    /// Counts `qty` more units of SKU `sku` for the buyer of handle `buyer`.
    pub(super) fn add_usage(&mut self, buyer: BuyerHandle, sku: u32, qty: u64) {
        *self.usage.entry((buyer, sku)).or_default() += qty;
    }
}

/// Counts `qty` fewer units of SKU `sku` for the buyer of handle `buyer`; drops the entry at
/// zero. The units were counted when reserved, so a missing or smaller entry is a bug.
pub(super) fn sub_usage(usage: &mut Usage, buyer: BuyerHandle, sku: u32, qty: u64) {
    let key = (buyer, sku);
    let Some(u) = usage.get_mut(&key) else {
        panic!("missing usage of buyer handle {buyer} on SKU #{sku}");
    };
    assert!(
        *u >= qty,
        "usage of buyer handle {buyer} on SKU #{sku} below {qty}"
    );
    *u -= qty;
    if *u == 0 {
        usage.remove(&key);
    }
}
