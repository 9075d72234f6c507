//! Claims on stock gates as guard values: a [`Claim`] holds units taken from a SKU's
//! [`StockGate`] and gives them back when dropped, unless the shard that reserved them calls
//! [`Claim::consume`]. A claim can therefore never leak, whatever path a refused, failed or
//! abandoned command takes.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::gate::StockGate;

/// Units of one SKU claimed on its gate, given back on drop unless consumed.
#[derive(Debug)]
#[must_use = "a dropped claim gives its units back at once"]
pub struct Claim {
    gate: Arc<StockGate>,
    qty: u64,
}

impl Claim {
    /// Claims `qty` units of `gate`; on failure returns the units that were available.
    pub fn try_new(gate: &Arc<StockGate>, qty: u64) -> Result<Claim, u64> {
        gate.try_claim(qty)?;
        Ok(Claim {
            gate: gate.clone(),
            qty,
        })
    }

    /// Units claimed.
    pub fn qty(&self) -> u64 {
        self.qty
    }

    /// Whether this claim is on `gate`.
    pub fn is_on(&self, gate: &Arc<StockGate>) -> bool {
        Arc::ptr_eq(&self.gate, gate)
    }

    /// The units became part of a reservation: they stay taken from the gate.
    pub fn consume(mut self) {
        self.qty = 0;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.qty > 0 {
            self.gate.give_back(self.qty);
        }
    }
}

/// Claims in line order: one (a one-line reservation, the common case) is held inline, so
/// claiming it allocates nothing; more spill to the heap.
pub type ClaimList = SmallVec<[Claim; 1]>;

/// The claims of one command's lines, in line order (empty = the caller claimed nothing and
/// the shard takes the units from the gates itself when it applies the reservation).
#[derive(Debug, Default)]
pub struct Claims(ClaimList);

impl Claims {
    /// No claims: the shard takes units from the gates on apply.
    pub fn none() -> Self {
        Claims(ClaimList::new())
    }

    /// Claims taken by the caller, one per line in line order (a [`ClaimList`], or a `Vec`).
    pub fn held(claims: impl Into<ClaimList>) -> Self {
        Claims(claims.into())
    }

    /// Whether the caller claimed the lines' units.
    pub fn is_held(&self) -> bool {
        !self.0.is_empty()
    }

    /// Number of claims.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no claims.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The claims, in line order.
    pub fn iter(&self) -> impl Iterator<Item = &Claim> {
        self.0.iter()
    }

    /// Every claim became part of a reservation.
    pub fn consume(self) {
        self.0.into_iter().for_each(Claim::consume);
    }

    /// Drops claims that hold nothing (`Claims::none()`, the command path's common case)
    /// without the call of the list's generic drop, which iterates no element and frees
    /// no buffer (≈ 22 instructions per reserve; ADR 0029 addendum 7). Anything else (claims,
    /// or an empty list with a heap buffer) is dropped as usual: a held claim still gives its
    /// units back.
    #[inline(always)]
    pub fn drop_empty(self) {
        if self.0.is_empty() && !self.0.spilled() {
            // Nothing to give back and no buffer to free.
            std::mem::forget(self);
        } else {
            drop(self);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_claim_gives_back_and_a_consumed_one_does_not() {
        let gate = Arc::new(StockGate::new(5));
        let a = Claim::try_new(&gate, 3)
            .map_err(|_| "claim")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(gate.available(), 2);
        assert_eq!(Claim::try_new(&gate, 3).err(), Some(2));
        drop(a);
        assert_eq!(gate.available(), 5);
        let b = Claim::try_new(&gate, 4).unwrap_or_else(|_| panic!("claim"));
        b.consume();
        assert_eq!(gate.available(), 1);
        let set = Claims::held(vec![
            Claim::try_new(&gate, 1).unwrap_or_else(|_| panic!("claim"))
        ]);
        assert!(set.is_held() && gate.available() == 0);
        drop(set);
        assert_eq!(gate.available(), 1);
    }

    /// `drop_empty` of no claims frees nothing and gives nothing back; of held claims it is
    /// an ordinary drop (the units go back).
    #[test]
    fn drop_empty_gives_held_claims_back() {
        let gate = Arc::new(StockGate::new(5));
        Claims::none().drop_empty();
        assert_eq!(gate.available(), 5);
        let set = Claims::held(vec![
            Claim::try_new(&gate, 2).unwrap_or_else(|_| panic!("claim"))
        ]);
        assert_eq!(gate.available(), 3);
        set.drop_empty();
        assert_eq!(gate.available(), 5);
    }
}
