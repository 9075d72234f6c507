//! SKUs: per-SKU state ([`SkuState`]), the admin commands that create, change and restock
//! them, and the validation of their settings.

use std::collections::VecDeque;
use std::sync::Arc;

use flashsale_protocol::limits::MAX_MONEY_CENTS;
use flashsale_protocol::{Event, RequestKey, ScopedKey, SkuId, SkuSpec};

use super::{bug, EventSink, Shard, MAX_NAME_LEN, MAX_STOCK};
use crate::command::CommandError;
use crate::gate::StockGate;
use crate::observer::StockLevel;
use crate::view::SkuView;

/// Per-SKU state. `available` is derived: `spec.stock - reserved - sold`.
#[derive(Debug)]
pub(super) struct SkuState {
    /// Settings; `spec.stock` is the total.
    pub(super) spec: SkuSpec,
    /// Units held by reservations.
    pub(super) reserved: u64,
    /// Units sold.
    pub(super) sold: u64,
    /// The lock-free gate callers claim units on before reserving.
    pub(super) gate: Arc<StockGate>,
    /// The keys of its latest keyed restocks, oldest first (at most
    /// [`crate::limits::MAX_RESTOCK_KEYS`]).
    pub(super) restock_keys: VecDeque<RequestKey>,
}

impl SkuState {
    /// Units neither reserved nor sold.
    pub(super) fn available(&self) -> u64 {
        self.spec.stock - self.reserved - self.sold
    }

    /// The per-SKU invariant, O(1): `available + reserved + sold == total`, nothing negative
    /// (`available` is derived, so this is `reserved + sold <= total` without overflow).
    pub(super) fn invariant_holds(&self) -> bool {
        self.reserved
            .checked_add(self.sold)
            .is_some_and(|c| c <= self.spec.stock)
    }

    /// The SKU as queries show it.
    pub(super) fn view(&self) -> SkuView {
        SkuView {
            sku: self.spec.sku.clone(),
            name: self.spec.name.clone(),
            price_cents: self.spec.price_cents,
            total: self.spec.stock,
            available: self.available(),
            reserved: self.reserved,
            sold: self.sold,
            per_buyer_limit: self.spec.per_buyer_limit,
            sale_starts_at_ms: self.spec.sale_starts_at_ms,
            sale_ends_at_ms: self.spec.sale_ends_at_ms,
            reservation_ttl_ms: self.spec.reservation_ttl_ms,
            max_hold_ms: self.spec.max_hold_ms,
            max_extensions: self.spec.max_extensions,
        }
    }

    /// The SKU's stock counts, standing at shard log position `log_seq`.
    pub(super) fn level(&self, log_seq: u64) -> StockLevel {
        StockLevel {
            sku: self.spec.sku.clone(),
            available: self.available(),
            reserved: self.reserved,
            sold: self.sold,
            log_seq,
        }
    }

    /// Whether the shard counts each buyer's units of this SKU (only with a per-buyer limit:
    /// the usage map holds no entry for a SKU without one).
    pub(super) fn counts_usage(&self) -> bool {
        self.spec.per_buyer_limit.is_some()
    }

    /// Whether the sale window is open at `now_ms`.
    pub(super) fn sale_open(&self, now_ms: u64) -> bool {
        self.spec.sale_starts_at_ms.is_none_or(|s| now_ms >= s)
            && self.spec.sale_ends_at_ms.is_none_or(|e| now_ms < e)
    }
}

impl Shard {
    /// Creates or replaces a SKU's settings. `stock` is the new total; it may not drop below
    /// the units already reserved or sold. Returns the view and whether it was created.
    pub fn upsert_sku(
        &mut self,
        now_ms: u64,
        spec: SkuSpec,
        sink: &mut impl EventSink,
    ) -> Result<(SkuView, bool), CommandError> {
        validate_spec(&spec)?;
        let created = match self.sku_state(&spec.sku) {
            Some(s) => {
                let committed = s.reserved + s.sold;
                if spec.stock < committed {
                    return Err(CommandError::StockConflict {
                        sku: spec.sku.clone(),
                        detail: format!(
                            "stock {} is below the {} units of {} already reserved or sold",
                            spec.stock, committed, spec.sku
                        ),
                    });
                }
                false
            }
            None => true,
        };
        let sku = spec.sku.clone();
        self.emit(
            Event::SkuUpserted {
                spec,
                at_ms: now_ms,
            },
            sink,
        )?;
        Ok((self.sku_view_or_bug(&sku)?, created))
    }

    /// Adds `qty` units to a SKU's total stock. With `key`, a retry of one of the SKU's
    /// latest keyed restocks answers the SKU as it is, adding nothing; the same key with
    /// another `qty` is `IdempotencyMismatch`.
    pub fn restock(
        &mut self,
        now_ms: u64,
        sku: &SkuId,
        qty: u64,
        key: Option<ScopedKey>,
        sink: &mut impl EventSink,
    ) -> Result<SkuView, CommandError> {
        let s = self
            .sku_state(sku)
            .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))?;
        if let Some(key) = &key {
            if let Some(found) = s.restock_keys.iter().find(|k| &k.key == key) {
                if found.request_hash != qty {
                    return Err(CommandError::IdempotencyMismatch);
                }
                return self.sku_view_or_bug(sku);
            }
        }
        if qty == 0 {
            return Err(CommandError::Invalid(
                "restock qty must be at least 1".into(),
            ));
        }
        if s.spec.stock.saturating_add(qty) > MAX_STOCK {
            return Err(CommandError::StockConflict {
                sku: sku.clone(),
                detail: format!(
                    "restocking {qty} would bring the stock of {sku} above the maximum of \
                     {MAX_STOCK} units"
                ),
            });
        }
        self.emit(
            Event::Restocked {
                sku: sku.clone(),
                qty,
                key: key.map(|key| RequestKey {
                    key,
                    request_hash: qty,
                }),
                at_ms: now_ms,
            },
            sink,
        )?;
        self.sku_view_or_bug(sku)
    }

    /// Adds a SKU under the next index, in both indexes; false (nothing changed) if its id
    /// is taken.
    pub(super) fn add_sku(&mut self, s: SkuState) -> bool {
        if self.sku_index.contains_key(&s.spec.sku) {
            return false;
        }
        assert!(self.skus.len() < u32::MAX as usize, "SKU indexes are u32");
        let i = self.skus.len() as u32;
        self.sku_index.insert(s.spec.sku.clone(), i);
        self.sku_order.insert(s.spec.sku.clone(), i);
        self.skus.push(s);
        true
    }

    /// A SKU's view right after applying its event (missing = a bug).
    pub(super) fn sku_view_or_bug(&self, sku: &SkuId) -> Result<SkuView, CommandError> {
        self.sku(sku).ok_or_else(|| bug("SKU missing after apply"))
    }
}

/// The SKU at index `i` of a stored line. Always there (SKUs are never removed and lines
/// are resolved on apply): a missing one is a bug.
pub(super) fn sku_at(skus: &[SkuState], i: u32) -> &SkuState {
    match skus.get(i as usize) {
        Some(s) => s,
        None => panic!("missing SKU #{i} of a stored line"),
    }
}

/// The SKU at index `i` of a stored line, to change it. Always there (SKUs are never
/// removed and lines are resolved on apply): a missing one is a bug.
pub(super) fn sku_at_mut(skus: &mut [SkuState], i: u32) -> &mut SkuState {
    match skus.get_mut(i as usize) {
        Some(s) => s,
        None => panic!("missing SKU #{i} of a stored line"),
    }
}

/// Most extensions a SKU may allow per reservation.
const MAX_EXTENSIONS: u32 = flashsale_protocol::limits::MAX_EXTENSIONS;

/// Validates an admin's SKU settings.
pub fn validate_spec(spec: &SkuSpec) -> Result<(), CommandError> {
    let invalid = |s: String| Err(CommandError::Invalid(s));
    if spec.stock > MAX_STOCK {
        return invalid(format!("stock is above the maximum of {MAX_STOCK} units"));
    }
    if spec.price_cents > MAX_MONEY_CENTS {
        return invalid(format!(
            "price_cents is above the maximum of {MAX_MONEY_CENTS} cents"
        ));
    }
    if spec.name.chars().count() > MAX_NAME_LEN {
        return invalid(format!("name is longer than {MAX_NAME_LEN} characters"));
    }
    if spec.reservation_ttl_ms == 0 {
        return invalid("reservation TTL must be positive".into());
    }
    if spec.max_hold_ms < spec.reservation_ttl_ms {
        return invalid("max_hold_s must be at least reservation_ttl_s".into());
    }
    if spec.max_extensions > MAX_EXTENSIONS {
        return invalid(format!(
            "max_extensions is above the maximum of {MAX_EXTENSIONS}"
        ));
    }
    if spec.per_buyer_limit == Some(0) {
        return invalid("per-buyer limit must be at least 1".into());
    }
    if let (Some(s), Some(e)) = (spec.sale_starts_at_ms, spec.sale_ends_at_ms) {
        if e <= s {
            return invalid("sale must end after it starts".into());
        }
    }
    Ok(())
}
