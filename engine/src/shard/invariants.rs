//! Self-checks: recompute every derived count and index from the reservations and compare.

use super::buyers::BuyerHandle;
use super::{fast_map, FastMap, Shard};
use crate::view::ReservationStatus;

/// Counts recomputed from the reservations alone.
struct Recount {
    /// Units held, by SKU index.
    reserved: Vec<u64>,
    /// Units sold, by SKU index.
    sold: Vec<u64>,
    /// Units held or bought, by `(buyer handle, SKU index)`, of SKUs with a per-buyer limit.
    usage: FastMap<(BuyerHandle, u32), u64>,
}

impl Shard {
    /// Checks every invariant by recomputing derived counts from the reservations.
    pub fn check_invariants(&self) -> Result<(), String> {
        let counts = self.recount()?;
        self.check_skus(&counts)?;
        self.check_usage(&counts)?;
        self.check_keys_and_orders()?;
        self.check_buyer_index()
    }

    /// Recomputes per-SKU reserved and sold units and per-buyer usage from the reservations;
    /// checks that every confirmed reservation has an order and every order one reservation.
    fn recount(&self) -> Result<Recount, String> {
        let mut c = Recount {
            reserved: vec![0u64; self.skus.len()],
            sold: vec![0u64; self.skus.len()],
            usage: fast_map(),
        };
        let mut confirmed = 0usize;
        let mut grouped = 0usize;
        for r in self.reservations.iter() {
            grouped += usize::from(r.group().is_some());
            for l in r.lines.as_slice() {
                let q = u64::from(l.qty);
                let i = l.sku as usize;
                if i >= self.skus.len() {
                    return Err(format!("{} holds an unknown SKU index", r.id));
                }
                match r.status {
                    ReservationStatus::Held => c.reserved[i] += q,
                    ReservationStatus::Confirmed => c.sold[i] += q,
                    _ => continue,
                }
                if self.skus[i].counts_usage() {
                    *c.usage.entry((r.buyer_handle, l.sku)).or_default() += q;
                }
            }
            if r.status == ReservationStatus::Confirmed {
                if r.order().is_none() {
                    return Err(format!("{} confirmed without order", r.id));
                }
                confirmed += 1;
            }
        }
        if self.orders.len() != confirmed {
            return Err(format!(
                "{} orders indexed for {confirmed} confirmed reservations",
                self.orders.len()
            ));
        }
        // The grouped index names exactly the stored reservations with a group.
        if self.reservations.grouped_len() != grouped
            || self
                .reservations
                .grouped(self.id)
                .filter(|r| r.group().is_some())
                .count()
                != grouped
        {
            return Err(format!(
                "{} ids in the grouped index for {grouped} grouped reservations",
                self.reservations.grouped_len()
            ));
        }
        Ok(c)
    }

    /// Checks the SKU index and every SKU's counts against the recount.
    fn check_skus(&self, c: &Recount) -> Result<(), String> {
        if self.sku_index.len() != self.skus.len() || self.sku_order.len() != self.skus.len() {
            return Err("SKU index out of step".into());
        }
        for (i, s) in self.skus.iter().enumerate() {
            let id = &s.spec.sku;
            let want = Some(&(i as u32));
            if self.sku_index.get(id) != want || self.sku_order.get(id) != want {
                return Err(format!("{id}: SKU index out of step"));
            }
            if s.reserved != c.reserved[i] || s.sold != c.sold[i] {
                return Err(format!(
                    "{id}: counts reserved {} sold {} but reservations say {} {}",
                    s.reserved, s.sold, c.reserved[i], c.sold[i]
                ));
            }
            if !s.invariant_holds() {
                return Err(format!("{id}: reserved + sold exceeds total"));
            }
        }
        Ok(())
    }

    /// Checks the per-buyer usage map against the recount (no missing, wrong or zero entry).
    fn check_usage(&self, c: &Recount) -> Result<(), String> {
        for (key, u) in &c.usage {
            if self.usage.get(key) != Some(u) {
                let (buyer, sku) = key;
                return Err(format!(
                    "usage of buyer handle {buyer} on SKU #{sku} is off"
                ));
            }
        }
        if self.usage.len() != c.usage.len() || self.usage.values().any(|u| *u == 0) {
            return Err("usage map has stale entries".into());
        }
        Ok(())
    }

    /// Checks that every idempotency key and every order points to its own reservation.
    fn check_keys_and_orders(&self) -> Result<(), String> {
        for (key, id) in &self.idempotency {
            match self.res(*id) {
                Some(r) if r.idempotency_key.as_ref() == Some(key) => {}
                _ => {
                    return Err(format!(
                        "idempotency key {key} points to a wrong reservation"
                    ))
                }
            }
        }
        for (order, id) in self.orders.iter() {
            match self.res(id) {
                Some(r) if r.order() == Some(order) => {}
                _ => return Err(format!("order {order} points to a wrong reservation")),
            }
        }
        Ok(())
    }

    /// Checks that every gate equals its SKU's available units (only valid with no claim in
    /// flight).
    pub fn check_gates(&self) -> Result<(), String> {
        for s in &self.skus {
            if s.gate.available() != s.available() {
                return Err(format!(
                    "{}: gate {} != available {}",
                    s.spec.sku,
                    s.gate.available(),
                    s.available()
                ));
            }
        }
        Ok(())
    }
}
