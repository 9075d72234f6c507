//! Helpers shared by the hub's unit tests.

use flashsale_engine::observer::StockLevel;
use flashsale_protocol::SkuId;

/// A SKU id from a valid literal.
pub(super) fn sku(s: &str) -> SkuId {
    SkuId::new(s).unwrap()
}

/// A level of SKU `s` with `available` units and half as many reserved.
pub(super) fn level(s: &str, available: u64) -> StockLevel {
    StockLevel {
        sku: sku(s),
        available,
        reserved: available / 2,
        sold: 0,
        log_seq: 0,
    }
}
