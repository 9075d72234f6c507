//! Orders by id. This shard's own order ids are dense counters, so they live in a `Vec`
//! indexed by counter (no hashing, no rehash on growth); orders of other shards (parts of
//! cross-shard reservations) and ids far beyond the dense range live in a map.

use flashsale_protocol::{OrderId, ReservationId, ShardId};

use super::{fast_map, FastMap};

/// How far past the end of the dense range an own order may land and still grow it (beyond,
/// e.g. from a bad snapshot, it goes to the map instead of allocating a huge vector).
const MAX_GAP: usize = 1 << 16;

/// The dense range's mark for "no order with this counter": the id whose raw value is 0
/// (shard 0, counter 0). A reservation with that id is never stored there
/// ([`Orders::insert_other`] maps it), so an own entry is 8 bytes, not an `Option`'s 16
/// (fresh memory per confirm; ADR 0060).
const NONE: ReservationId = ReservationId(0);

/// Orders by id: own ones dense, the rest mapped (see the module doc).
#[derive(Debug)]
pub(super) struct Orders {
    /// The owning shard.
    shard: ShardId,
    /// `own[c - 1]` = the reservation of this shard's order with counter `c` ([`NONE`]: no
    /// such order).
    own: Vec<ReservationId>,
    /// Entries in `own`.
    own_len: usize,
    /// Orders of other shards, and own ones far beyond the dense range.
    other: FastMap<OrderId, ReservationId>,
}

impl Orders {
    /// An empty index for `shard`.
    pub(super) fn new(shard: ShardId) -> Self {
        Orders {
            shard,
            own: Vec::new(),
            own_len: 0,
            other: fast_map(),
        }
    }

    /// The index in `own` of an own order.
    fn slot(&self, order: OrderId) -> Option<usize> {
        if order.shard() != self.shard {
            return None;
        }
        usize::try_from(order.counter().checked_sub(1)?).ok()
    }

    /// The reservation of an order.
    pub(super) fn get(&self, order: OrderId) -> Option<ReservationId> {
        if let Some(Some(&id)) = self.slot(order).map(|i| self.own.get(i)) {
            if id != NONE {
                return Some(id);
            }
        }
        self.other.get(&order).copied()
    }

    /// Inserts; returns the reservation previously stored under `order`, if any.
    ///
    /// The common case, the next own order, is an append inlined into the caller; the rest is
    /// [`Orders::insert_other`]'s (a call of the whole function from the confirm's apply cost
    /// ≈ 20 instructions per confirm when it stopped being inlined; ADR 0029 addendum 8).
    #[inline(always)]
    pub(super) fn insert(&mut self, order: OrderId, id: ReservationId) -> Option<ReservationId> {
        if self.slot(order) == Some(self.own.len()) && self.other.is_empty() && id != NONE {
            self.own.push(id);
            self.own_len += 1;
            return None;
        }
        self.insert_other(order, id)
    }

    /// [`Orders::insert`] of anything but its common append: an own order within
    /// [`MAX_GAP`] of the dense range (unless the map holds it), else into the map; so is
    /// a reservation id equal to [`NONE`].
    #[inline(never)]
    fn insert_other(&mut self, order: OrderId, id: ReservationId) -> Option<ReservationId> {
        if let Some(i) = self.slot(order) {
            if id != NONE && i < self.own.len() + MAX_GAP && !self.other.contains_key(&order) {
                if i >= self.own.len() {
                    self.own.resize(i + 1, NONE);
                }
                let old = std::mem::replace(&mut self.own[i], id);
                if old == NONE {
                    self.own_len += 1;
                    return None;
                }
                return Some(old);
            }
            if id == NONE {
                // Out of the dense range, so the order must not be there too.
                if let Some(old) = self.own.get_mut(i).filter(|old| **old != NONE) {
                    let old = std::mem::replace(old, NONE);
                    self.own_len -= 1;
                    self.other.insert(order, id);
                    return Some(old);
                }
            }
        }
        self.other.insert(order, id)
    }

    /// Makes room for `additional` more own orders in the dense range, if the allocator
    /// grants it (a replay's size hint, [`super::Shard::reserve_for_replay`]).
    pub(super) fn try_reserve_own(&mut self, additional: usize) {
        // Refused room is not an error: the range grows as before.
        let _ = self.own.try_reserve(additional);
    }

    /// Number of orders.
    pub(super) fn len(&self) -> usize {
        self.own_len + self.other.len()
    }

    /// Every `(order, reservation)`, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (OrderId, ReservationId)> + '_ {
        let shard = self.shard;
        self.own
            .iter()
            .enumerate()
            .filter(|(_, id)| **id != NONE)
            .map(move |(i, &id)| (OrderId::compose(shard, i as u64 + 1), id))
            .chain(self.other.iter().map(|(o, id)| (*o, *id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_orders_are_dense_and_foreign_ones_mapped() {
        let mut o = Orders::new(1);
        let r = |c| ReservationId::compose(1, c);
        assert_eq!(o.insert(OrderId::compose(1, 1), r(5)), None);
        assert_eq!(o.insert(OrderId::compose(1, 3), r(7)), None);
        assert_eq!(o.insert(OrderId::compose(2, 1), r(9)), None);
        assert_eq!(o.insert(OrderId::compose(1, 1 << 40), r(11)), None);
        assert_eq!(o.insert(OrderId::compose(1, 3), r(8)), Some(r(7)));
        assert_eq!(o.len(), 4);
        assert_eq!(o.own.len(), 3, "far order not in the dense range");
        assert_eq!(o.get(OrderId::compose(1, 1)), Some(r(5)));
        assert_eq!(o.get(OrderId::compose(1, 2)), None);
        assert_eq!(o.get(OrderId::compose(1, 3)), Some(r(8)));
        assert_eq!(o.get(OrderId::compose(2, 1)), Some(r(9)));
        assert_eq!(o.get(OrderId::compose(1, 1 << 40)), Some(r(11)));
        assert_eq!(o.get(OrderId::compose(1, 0)), None);
        // The reservation id whose raw value marks an empty entry is mapped, not lost.
        assert_eq!(o.insert(OrderId::compose(1, 2), ReservationId(0)), None);
        assert_eq!(o.get(OrderId::compose(1, 2)), Some(ReservationId(0)));
        assert_eq!(
            o.insert(OrderId::compose(1, 1), ReservationId(0)),
            Some(r(5))
        );
        assert_eq!(o.get(OrderId::compose(1, 1)), Some(ReservationId(0)));
        assert_eq!(o.len(), 5);
        let mut all: Vec<_> = o.iter().collect();
        all.sort();
        assert_eq!(all.len(), 5);
        assert!(all.contains(&(OrderId::compose(1, 3), r(8))));
        assert!(all.contains(&(OrderId::compose(1, 1), ReservationId(0))));
        assert!(!all.contains(&(OrderId::compose(1, 1), r(5))));
    }
}
