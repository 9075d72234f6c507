//! The read side: views of SKUs, stock levels, gates, reservations, orders and groups.

use std::ops::Bound;
use std::sync::Arc;

use flashsale_protocol::event::Group;
use flashsale_protocol::{Line, OrderId, ReleaseReason, ReservationId, SkuId};

use super::sku::{sku_at, SkuState};
use super::store::{Lines, Reservation};
use super::{GroupState, Shard};
use crate::gate::StockGate;
use crate::observer::StockLevel;
use crate::view::{OrderView, ReservationView, SkuView};

/// A reservation as one shard sees it: its lines on this shard, plus group membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartView {
    /// The view; `lines` are the lines held on this shard.
    pub view: ReservationView,
    /// Set when the reservation spans several shards.
    pub group: Option<Group>,
}

impl Shard {
    /// A SKU's view.
    pub fn sku(&self, sku: &SkuId) -> Option<SkuView> {
        self.sku_state(sku).map(SkuState::view)
    }

    /// A SKU's stock counts, labelled with the shard's position ([`StockLevel::log_seq`]).
    pub fn stock_level(&self, sku: &SkuId) -> Option<StockLevel> {
        let at = self.seq();
        self.sku_state(sku).map(|s| s.level(at))
    }

    /// Every SKU's stock counts (unordered), labelled with the shard's position.
    pub fn stock_levels(&self) -> Vec<StockLevel> {
        let at = self.seq();
        self.skus.iter().map(|s| s.level(at)).collect()
    }

    /// SKUs ordered by id, strictly after `after`, at most `limit`. Walks the sorted index
    /// from the cursor: O(log n + limit), whatever the number of SKUs.
    pub fn list_skus(&self, after: Option<&SkuId>, limit: usize) -> Vec<SkuView> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.sku_order
            .range::<SkuId, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|(_, &i)| self.skus[i as usize].view())
            .collect()
    }

    /// The gate of a SKU.
    pub fn gate(&self, sku: &SkuId) -> Option<Arc<StockGate>> {
        self.sku_state(sku).map(|s| s.gate.clone())
    }

    /// Every SKU's gate and reservation TTL.
    pub fn gates(&self) -> Vec<(SkuId, Arc<StockGate>, u64)> {
        self.skus
            .iter()
            .map(|s| {
                (
                    s.spec.sku.clone(),
                    s.gate.clone(),
                    s.spec.reservation_ttl_ms,
                )
            })
            .collect()
    }

    /// This shard's part of a reservation. A rolled-back attempt (`Aborted`) was never
    /// acknowledged to anyone and is reported as unknown.
    pub fn reservation(&self, id: ReservationId) -> Option<PartView> {
        self.res(id)
            .filter(|r| r.release_reason != Some(ReleaseReason::Aborted))
            .map(|r| self.part_of(r))
    }

    /// The SKUs of the lines held on this shard by a reservation (rolled-back attempts too).
    pub fn reservation_skus(&self, id: ReservationId) -> impl Iterator<Item = &SkuId> + '_ {
        self.res(id)
            .into_iter()
            .flat_map(|r| r.lines.as_slice().iter())
            .map(|l| sku_at(&self.skus, l.sku))
            .map(|s| &s.spec.sku)
    }

    /// An order allocated by this shard, with this shard's lines, and the reservation's group.
    pub fn order(&self, id: OrderId) -> Option<(OrderView, Option<Group>)> {
        let rid = self.orders.get(id)?;
        let r = self.res(rid)?;
        let lines = self.full_lines(&r.lines);
        let view = OrderView {
            id,
            reservation: r.id,
            buyer: self.buyers.buyer_of_kept(r.buyer_handle).clone(),
            total_cents: total_cents(&lines),
            lines,
            payment_ref: r.payment_ref.to_string(),
            created_at_ms: r.confirmed_at_ms(),
        };
        Some((view, r.group()))
    }

    /// State of every cross-shard reservation part held or known here (for reconciliation),
    /// by id. Visits the grouped reservations only, not every one (recovery asks this once
    /// per shard after replaying millions of reservations; ADR 0036, eleventh round).
    pub fn group_states(&self) -> Vec<GroupState> {
        let out: Vec<GroupState> = self
            .reservations
            .grouped(self.id)
            .filter_map(|r| self.group_state_of(r))
            .collect();
        debug_assert!(out.is_sorted_by_key(|g| g.id));
        out
    }

    /// Ids of the reservations this shard is the home of, rolled-back attempts excluded
    /// (ascending; for audits and the simulation's checks).
    pub fn home_reservation_ids(&self) -> Vec<ReservationId> {
        let mut ids: Vec<ReservationId> = self
            .reservations
            .iter()
            .filter(|r| r.id.shard() == self.id && r.release_reason != Some(ReleaseReason::Aborted))
            .map(|r| r.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The state of one cross-shard reservation part held or known here (rolled-back
    /// attempts too); `None` if unknown or not part of a group.
    pub fn group_state(&self, id: ReservationId) -> Option<GroupState> {
        self.res(id).and_then(|r| self.group_state_of(r))
    }

    fn group_state_of(&self, r: &Reservation) -> Option<GroupState> {
        r.group().map(|group| GroupState {
            shard: self.id,
            id: r.id,
            group,
            status: r.status,
            release_reason: r.release_reason,
            order: r.order(),
            payment_ref: r.payment_ref.clone(),
            confirmed_at_ms: r.confirmed_at_ms(),
        })
    }

    /// This shard's part of a reservation, as a view.
    pub(super) fn part_of(&self, r: &Reservation) -> PartView {
        PartView {
            view: ReservationView {
                id: r.id,
                status: r.status,
                buyer: self.buyers.buyer_of_kept(r.buyer_handle).clone(),
                lines: self.full_lines(&r.lines),
                created_at_ms: r.created_at_ms,
                expires_at_ms: r.expires_at_ms,
                order: r.order(),
                release_reason: r.release_reason,
                extensions: r.extensions(),
            },
            group: r.group(),
        }
    }

    /// Stored lines with their SKU ids.
    pub(super) fn full_lines(&self, lines: &Lines) -> Vec<Line> {
        lines
            .as_slice()
            .iter()
            .map(|l| Line {
                sku: sku_at(&self.skus, l.sku).spec.sku.clone(),
                qty: l.qty,
                unit_price_cents: l.unit_price_cents,
            })
            .collect()
    }
}

/// Sum of qty × unit price, exact (checked, never saturating).
///
/// For stored reservations it always fits: each shard holds at most `MAX_MONEY_CENTS` of a
/// reservation (reserve, replay and restore refuse more), so even the lines of all parts of
/// one reservation sum to at most `MAX_LINES × MAX_MONEY_CENTS` < 2^64; overflow is a bug and
/// panics. A sum over several shards' parts can exceed `MAX_MONEY_CENTS`: whoever assembles
/// one must check it with [`flashsale_protocol::limits::checked_total_cents`] first.
pub fn total_cents(lines: &[Line]) -> u64 {
    let mut total = 0u64;
    for l in lines {
        let line = u64::from(l.qty).checked_mul(l.unit_price_cents);
        match line.and_then(|c| total.checked_add(c)) {
            Some(t) => total = t,
            None => panic!("total of {} lines overflows u64 cents", lines.len()),
        }
    }
    total
}
