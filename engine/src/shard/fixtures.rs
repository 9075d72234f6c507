//! Fixtures shared by the engine's unit tests: a SKU's spec and a plain reserve command
//! (vary a field with struct update syntax, e.g. `SkuSpec { price_cents: 100, ..sku_spec("tee", 10) }`).

use flashsale_protocol::{BuyerId, SkuId, SkuSpec};

use super::{CommandLines, ReserveCommand};

/// SKU `sku` (named after itself) with `stock` units at 5 cents, a 1 s reservation TTL, the
/// default hold and extension limits, no per-buyer limit and no sale window.
pub(crate) fn sku_spec(sku: &str, stock: u64) -> SkuSpec {
    SkuSpec {
        sku: SkuId::new(sku).unwrap(),
        name: sku.into(),
        price_cents: 5,
        stock,
        per_buyer_limit: None,
        sale_starts_at_ms: None,
        sale_ends_at_ms: None,
        reservation_ttl_ms: 1_000,
        max_hold_ms: flashsale_protocol::default_max_hold_ms(1_000),
        max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
    }
}

/// `qty` units of `sku` for `buyer`: no idempotency key, no group, no claims, the SKU's TTL.
pub(crate) fn reserve_cmd(buyer: &str, sku: &str, qty: u32) -> ReserveCommand {
    ReserveCommand {
        buyer: BuyerId::new(buyer).unwrap(),
        lines: CommandLines::from_buf([(SkuId::new(sku).unwrap(), qty)]),
        idempotency_key: None,
        request_hash: 0,
        id: None,
        expires_at_ms: None,
        group: None,
        claims: crate::claim::Claims::none(),
    }
}
