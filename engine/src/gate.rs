//! The lock-free stock gate: a per-SKU atomic count of units that callers may still claim.
//!
//! Callers on any thread claim units with a CAS before hopping to the owning shard, so a sold-out
//! request is rejected with one atomic read and a race of buyers can never claim more units than
//! exist. The shard stays the authority: it re-checks every claim against its own state and gives
//! back units it does not use.
//!
//! Invariant (with no claim in flight): `gate.available() == shard.available(sku)`; in general
//! `gate + in-flight claims == shard available`, so the gate never exceeds the shard.

use crate::sync::atomic::{AtomicI64, Ordering};

/// Claimable units of one SKU, shared between the owning shard and every caller thread.
#[derive(Debug)]
pub struct StockGate {
    /// May dip below zero only when the shard removes stock while claims are in flight;
    /// claims fail while it is below the requested quantity.
    available: AtomicI64,
}

impl StockGate {
    /// A gate holding `available` claimable units.
    pub fn new(available: u64) -> Self {
        StockGate {
            available: AtomicI64::new(clamp(available)),
        }
    }

    /// Units that can be claimed right now (0 when sold out).
    pub fn available(&self) -> u64 {
        self.available.load(Ordering::Acquire).max(0) as u64
    }

    /// Claims `qty` units if at least that many are available; on failure returns what was seen.
    pub fn try_claim(&self, qty: u64) -> Result<(), u64> {
        let qty = clamp(qty);
        let mut current = self.available.load(Ordering::Acquire);
        loop {
            if current < qty {
                return Err(current.max(0) as u64);
            }
            match self.available.compare_exchange_weak(
                current,
                current - qty,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }

    /// Returns `qty` units (an unused claim, a release, an expiry or a restock).
    pub fn give_back(&self, qty: u64) {
        self.available.fetch_add(clamp(qty), Ordering::AcqRel);
    }

    /// Removes `qty` units unconditionally (the shard lowered stock or reserved without a claim).
    /// The shard has checked its own count first; the gate may dip below zero meanwhile.
    pub fn take(&self, qty: u64) {
        self.available.fetch_sub(clamp(qty), Ordering::AcqRel);
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

// Under `--cfg loom` (loom-tests) the atomics are loom's and only work inside `loom::model`.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn claims_never_exceed_stock() {
        let g = StockGate::new(3);
        assert_eq!(g.try_claim(2), Ok(()));
        assert_eq!(g.try_claim(2), Err(1));
        assert_eq!(g.try_claim(1), Ok(()));
        assert_eq!(g.available(), 0);
        g.give_back(2);
        assert_eq!(g.available(), 2);
        g.take(3);
        assert_eq!(g.available(), 0);
        assert_eq!(g.try_claim(1), Err(0));
        g.give_back(1);
        assert_eq!(g.try_claim(1), Err(0), "still one unit in debt");
    }
}
