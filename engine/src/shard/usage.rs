//! Per-buyer usage: the units of each SKU a buyer holds or bought (for per-buyer limits),
//! keyed by the buyer's handle in the shard and the SKU's index (two integers: no id hashed).
//!
//! Only SKUs with a per-buyer limit are counted ([`SkuState::counts_usage`]): a SKU without
//! one costs no map entry per reservation (ADR 0029, addendum 4). An upsert that adds or
//! removes a SKU's limit recounts or drops that SKU's entries from the store
//! ([`Shard::recount_usage_of`]), so the map always equals a recount of the limited SKUs.

use flashsale_protocol::{BuyerId, SkuId};

use super::buyers::BuyerHandle;
use super::sku::SkuState;
use super::{FastMap, Shard};
use crate::view::ReservationStatus;

/// Units held or bought per `(buyer handle, SKU index)`.
pub(super) type Usage = FastMap<(BuyerHandle, u32), u64>;

impl Shard {
    /// Units of `sku` the buyer holds or bought, for a SKU with a per-buyer limit (0 for a SKU
    /// without one: its units are not counted per buyer).
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

    /// Makes the usage entries of the SKU at index `sku` match its settings after an upsert
    /// changed whether it has a per-buyer limit: drops them, then, if it now counts usage,
    /// recounts its held and bought units per buyer from the store. O(kept reservations), on
    /// the rare upsert that adds or removes a limit only.
    pub(super) fn recount_usage_of(&mut self, sku: u32) {
        self.usage.retain(|&(_, s), _| s != sku);
        if !self
            .skus
            .get(sku as usize)
            .is_some_and(SkuState::counts_usage)
        {
            return;
        }
        for r in self.reservations.iter() {
            if !matches!(
                r.status,
                ReservationStatus::Held | ReservationStatus::Confirmed
            ) {
                continue;
            }
            for l in r.lines.as_slice().iter().filter(|l| l.sku == sku) {
                *self.usage.entry((r.buyer_handle, sku)).or_default() += u64::from(l.qty);
            }
        }
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
