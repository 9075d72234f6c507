//! Per-buyer indexes of the reservations and orders this shard is the home of, for the
//! storefront's lists (`GET /v1/reservations?buyer=`, `GET /v1/orders?buyer=`), and the
//! queries that page through them, newest first.
//!
//! Derived state: the indexes follow the reservation store exactly (an entry per home
//! reservation that was not rolled back; an entry per home order), are kept up to date by the
//! apply functions and by retention ([`super::Shard::forget`]), and are rebuilt from the store
//! on snapshot restore. So their memory is bounded by the reservations the shard keeps anyway
//! (ADR 0023): one entry (buyer id, time, id) per kept reservation and per order.

use flashsale_protocol::event::Group;
use flashsale_protocol::{BuyerId, ReleaseReason, ReservationId, SkuId};

use super::chunked::ChunkedVec;
use super::poslist::PosList;
use super::{fast_map, FastMap, PartView, Shard};
use crate::view::{OrderView, ReservationStatus};

/// Most index entries one list query examines on one shard: a page costs at most this many
/// steps per shard whatever the filters, and says where it stopped.
pub const MAX_LIST_SCAN: usize = 1_000;

/// Most items one page of a buyer's list may hold.
pub const MAX_LIST_LIMIT: usize = 100;

/// A position in a buyer's list: `(time in Unix ms, reservation id)`. Lists run from the
/// greatest position down (newest first); a cursor names the last position seen.
pub type ListPos = (u64, ReservationId);

/// A buyer's dense handle inside one shard: its slot in [`BuyerIndex`]. A reservation keeps
/// its buyer's handle, so confirming, releasing and forgetting it hash no buyer id, and
/// per-buyer usage is keyed by `(handle, SKU index)` (two integers) instead of the id.
pub(super) type BuyerHandle = u32;

/// What replay's decode found of a `Reserved`'s buyer in the index, handed to the apply so
/// that it does not hash the id again ([`BuyerIndex::acquire_hinted`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum BuyerHint {
    /// Not looked up (commands, and records not built by the replay's decode).
    #[default]
    Unknown,
    /// The buyer had this handle when the record was built.
    Known(BuyerHandle),
    /// The buyer had no kept reservation when the record was built.
    Absent,
}

/// One buyer's slot: its id, how many kept reservations name it, and the positions of its
/// home reservations and home orders.
#[derive(Debug, Default)]
struct BuyerEntries {
    /// The buyer (`None` while the slot is free).
    buyer: Option<BuyerId>,
    /// Reservations (or parts) in the store whose handle this is; the slot is freed at 0.
    kept: u32,
    /// `(created_at_ms, id)` of every home reservation kept, rolled-back ones excepted.
    reservations: PosList,
    /// `(confirmed_at_ms, reservation id)` of every home order.
    orders: PosList,
}

/// One shard's buyers (see the module doc): a dense handle per buyer with a kept
/// reservation, hashed once when a reservation enters the shard, and each buyer's entries by
/// handle. Adding an entry compares integers only and appends in O(1) ([`PosList`], ADR 0029).
/// A buyer whose last kept reservation is forgotten frees its slot (and its lists' memory)
/// for the next new buyer, so live slots follow the kept reservations; the slot vector's
/// length is the most buyers with kept reservations at once.
#[derive(Debug)]
pub(super) struct BuyerIndex {
    /// Handle of every buyer with a kept reservation.
    handles: FastMap<BuyerId, BuyerHandle>,
    /// Entries by handle, in chunks that growth never moves ([`ChunkedVec`], ADR 0059).
    slots: ChunkedVec<BuyerEntries>,
    /// Free handles, reused before the vector grows.
    free: Vec<BuyerHandle>,
    /// Reservation entries in all.
    reservations: usize,
    /// Order entries in all.
    orders: usize,
}

impl Default for BuyerIndex {
    fn default() -> Self {
        BuyerIndex {
            handles: fast_map(),
            slots: ChunkedVec::default(),
            free: Vec::new(),
            reservations: 0,
            orders: 0,
        }
    }
}

impl BuyerIndex {
    /// The handle of `buyer` for one more kept reservation (one hash for a known buyer; the
    /// id is cloned only for a buyer without one).
    ///
    /// Always inlined: the reserve command's one call (ADR 0057).
    #[inline(always)]
    pub(super) fn acquire(&mut self, buyer: &BuyerId) -> BuyerHandle {
        if let Some(&h) = self.handles.get(buyer) {
            self.slot_mut(h).kept += 1;
            return h;
        }
        self.acquire_slow(buyer)
    }

    /// [`BuyerIndex::acquire`] with what replay's decode already found of `buyer`
    /// ([`BuyerIndex::lookup`]): a known buyer's handle is taken after comparing the slot's
    /// id with `buyer` (a pointer comparison when the record shares the slot's id), with no
    /// hash; a buyer found absent is added with one hash. A hint that does not match the
    /// index falls back to the hashed lookup, so the result never depends on the hint.
    #[inline]
    pub(super) fn acquire_hinted(&mut self, buyer: &BuyerId, hint: BuyerHint) -> BuyerHandle {
        match hint {
            BuyerHint::Known(h) => {
                if let Some(slot) = self.slots.get_mut(h as usize) {
                    if slot.kept > 0 && slot.buyer.as_ref() == Some(buyer) {
                        slot.kept += 1;
                        return h;
                    }
                }
            }
            BuyerHint::Absent => return self.acquire_slow(buyer),
            BuyerHint::Unknown => {}
        }
        if let Some(&h) = self.handles.get(buyer) {
            self.slot_mut(h).kept += 1;
            return h;
        }
        self.acquire_slow(buyer)
    }

    /// [`BuyerIndex::acquire`] by the map's entry (one hash): a new buyer gets a free slot
    /// or a new one.
    fn acquire_slow(&mut self, buyer: &BuyerId) -> BuyerHandle {
        match self.handles.entry(buyer.clone()) {
            hashbrown::hash_map::Entry::Occupied(known) => {
                let h = *known.get();
                self.slot_mut(h).kept += 1;
                h
            }
            hashbrown::hash_map::Entry::Vacant(vacant) => {
                let h = match self.free.pop() {
                    Some(h) => h,
                    None => {
                        let Ok(h) = BuyerHandle::try_from(self.slots.len()) else {
                            panic!("more than u32::MAX buyers on one shard");
                        };
                        self.slots.push(BuyerEntries::default());
                        h
                    }
                };
                let Some(slot) = self.slots.get_mut(h as usize) else {
                    panic!("unknown buyer handle {h}");
                };
                debug_assert!(slot.buyer.is_none() && slot.kept == 0);
                slot.buyer = Some(buyer.clone());
                slot.kept = 1;
                vacant.insert(h);
                h
            }
        }
    }

    /// One kept reservation of handle `h` fewer (it left the store); the last frees the slot.
    pub(super) fn release(&mut self, h: BuyerHandle) {
        let slot = self.slot_mut(h);
        assert!(
            slot.kept > 0,
            "buyer handle {h} released more than acquired"
        );
        slot.kept -= 1;
        if slot.kept > 0 {
            return;
        }
        assert!(
            slot.reservations.is_empty() && slot.orders.is_empty(),
            "buyer handle {h} freed with entries"
        );
        let freed = std::mem::take(slot);
        if let Some(buyer) = freed.buyer {
            self.handles.remove(&buyer);
        }
        self.free.push(h);
    }

    /// The handle of `buyer`, if it has a kept reservation.
    pub(super) fn handle(&self, buyer: &BuyerId) -> Option<BuyerHandle> {
        self.handles.get(buyer).copied()
    }

    /// The shard's id of the buyer named `buyer` and its handle, if it has a kept reservation
    /// (replay shares the id instead of allocating it again, and hands the handle to
    /// [`BuyerIndex::acquire_hinted`]).
    pub(super) fn lookup(&self, buyer: &str) -> Option<(&BuyerId, BuyerHandle)> {
        self.handles
            .get_key_value(buyer)
            .map(|(known, &h)| (known, h))
    }

    /// The buyer of handle `h`, if the slot is in use.
    pub(super) fn buyer_of(&self, h: BuyerHandle) -> Option<&BuyerId> {
        self.slots.get(h as usize).and_then(|s| s.buyer.as_ref())
    }

    /// The buyer of handle `h`, which a kept reservation holds (so the slot is in use): a
    /// reservation names its buyer by its handle only (ADR 0036, twelfth round).
    pub(super) fn buyer_of_kept(&self, h: BuyerHandle) -> &BuyerId {
        match self.buyer_of(h) {
            Some(buyer) => buyer,
            None => panic!("buyer handle {h} of a kept reservation is free"),
        }
    }

    /// The handle of `buyer`, found absent by [`BuyerIndex::handle_named`] just before, for
    /// one more kept reservation: one hash (the map's entry), as for a new buyer of
    /// [`BuyerIndex::acquire`].
    pub(super) fn acquire_absent(&mut self, buyer: &BuyerId) -> BuyerHandle {
        self.acquire_slow(buyer)
    }

    /// The handle of the buyer named `buyer`, if it has a kept reservation (one hash, no id
    /// built or cloned; then [`BuyerIndex::acquire_known`], or [`BuyerIndex::acquire_absent`]).
    #[inline]
    pub(super) fn handle_named(&self, buyer: &str) -> Option<BuyerHandle> {
        self.handles.get(buyer).copied()
    }

    /// Handle `h`, just found by [`BuyerIndex::handle_named`] with no change to the index
    /// since, for one more kept reservation (no hash; inlined into replay's apply).
    #[inline(always)]
    pub(super) fn acquire_known(&mut self, h: BuyerHandle) -> BuyerHandle {
        let slot = self.slot_mut(h);
        assert!(slot.kept > 0, "buyer handle {h} acquired while free");
        slot.kept += 1;
        h
    }

    /// The slot of a handle a kept reservation holds (so in use).
    #[inline(always)]
    fn slot_mut(&mut self, h: BuyerHandle) -> &mut BuyerEntries {
        let Some(slot) = self.slots.get_mut(h as usize) else {
            panic!("unknown buyer handle {h}");
        };
        slot
    }

    /// `buyer`'s entries, if it has a kept reservation.
    fn entries(&self, buyer: &BuyerId) -> Option<&BuyerEntries> {
        self.handle(buyer).and_then(|h| self.slots.get(h as usize))
    }

    /// Indexes a home reservation of the buyer of handle `h`. Always inlined (an append, in
    /// the reserve's apply; ADR 0057).
    #[inline(always)]
    pub(super) fn add_reservation(
        &mut self,
        h: BuyerHandle,
        created_at_ms: u64,
        id: ReservationId,
    ) {
        let added = self.slot_mut(h).reservations.insert((created_at_ms, id));
        self.reservations += usize::from(added);
    }

    /// Drops a home reservation (rolled back, or forgotten after retention).
    pub(super) fn remove_reservation(
        &mut self,
        h: BuyerHandle,
        created_at_ms: u64,
        id: ReservationId,
    ) {
        if self.slot_mut(h).reservations.remove((created_at_ms, id)) {
            self.reservations -= 1;
        }
    }

    /// Indexes a home order (its reservation id and confirmation time). Always inlined (an
    /// append, in the confirm's apply; ADR 0057).
    #[inline(always)]
    pub(super) fn add_order(&mut self, h: BuyerHandle, confirmed_at_ms: u64, id: ReservationId) {
        let added = self.slot_mut(h).orders.insert((confirmed_at_ms, id));
        self.orders += usize::from(added);
    }

    /// Whether the reservations of handle `h` hold `pos`.
    fn has_reservation(&self, h: BuyerHandle, pos: ListPos) -> bool {
        self.slots
            .get(h as usize)
            .is_some_and(|e| e.reservations.contains(pos))
    }

    /// Whether the orders of handle `h` hold `pos`.
    fn has_order(&self, h: BuyerHandle, pos: ListPos) -> bool {
        self.slots
            .get(h as usize)
            .is_some_and(|e| e.orders.contains(pos))
    }

    /// Checks every slot against `kept` (the kept reservations per handle, recounted from the
    /// store): in-use slots are exactly the handles with kept reservations, each mapped from
    /// its buyer; free slots are empty.
    fn check_slots(&self, kept: &[u32]) -> Result<(), String> {
        let mut in_use = 0usize;
        for (h, slot) in self.slots.iter().enumerate() {
            let want = kept.get(h).copied().unwrap_or(0);
            if slot.kept != want {
                return Err(format!(
                    "buyer handle {h} counts {} kept, not {want}",
                    slot.kept
                ));
            }
            match &slot.buyer {
                Some(b) => {
                    in_use += 1;
                    if want == 0 || self.handles.get(b).map(|x| *x as usize) != Some(h) {
                        return Err(format!("buyer handle {h} ({b}) out of step"));
                    }
                }
                None if want == 0 && slot.reservations.is_empty() && slot.orders.is_empty() => {}
                None => return Err(format!("free buyer handle {h} in use")),
            }
        }
        if in_use != self.handles.len() || in_use + self.free.len() != self.slots.len() {
            return Err("buyer handles out of step".into());
        }
        Ok(())
    }
}

/// The positions in `list` strictly before `before` (all when `None`), newest first.
fn newest_first(
    list: Option<&PosList>,
    before: Option<ListPos>,
) -> impl Iterator<Item = ListPos> + '_ {
    list.into_iter().flat_map(move |l| l.newest_first(before))
}

/// What a buyer's reservation list asks one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationQuery {
    /// Whose reservations.
    pub buyer: BuyerId,
    /// Only this status.
    pub status: Option<ReservationStatus>,
    /// Only reservations with a line of this SKU.
    pub sku: Option<SkuId>,
    /// Strictly before this position (the previous page's cursor).
    pub before: Option<ListPos>,
    /// At most this many items.
    pub limit: usize,
}

/// What a buyer's order list asks one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQuery {
    /// Whose orders.
    pub buyer: BuyerId,
    /// Strictly before this position (the previous page's cursor).
    pub before: Option<ListPos>,
    /// At most this many items.
    pub limit: usize,
}

/// One shard's page of a list: the items it found, newest first, and where it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPage<T> {
    /// Matching items with their positions, newest first.
    pub items: Vec<(ListPos, T)>,
    /// The last position examined when the scan stopped before the end of the buyer's
    /// entries (the page was full or [`MAX_LIST_SCAN`] entries were examined); `None` when
    /// every older entry was examined. Entries at or after it were all examined.
    pub stopped_at: Option<ListPos>,
}

/// A home order on this shard, with its reservation's group (the caller adds the other
/// shards' lines).
pub type OrderPart = (OrderView, Option<Group>);

impl Shard {
    /// A page of `q.buyer`'s home reservations on this shard, newest first. With `q.sku`, a
    /// cross-shard reservation whose lines here lack the SKU is still returned (its other
    /// parts may hold it): the caller filters the assembled reservation again.
    pub fn buyer_reservations(&self, q: &ReservationQuery) -> ShardPage<PartView> {
        let limit = q.limit.clamp(1, MAX_LIST_LIMIT);
        // `Some(None)`: the SKU is not on this shard, only other parts may hold it.
        let sku = q.sku.as_ref().map(|s| self.sku_index.get(s).copied());
        let mut items = Vec::new();
        let mut last = None;
        let mut stopped = false;
        for (examined, pos) in newest_first(
            self.buyers.entries(&q.buyer).map(|e| &e.reservations),
            q.before,
        )
        .enumerate()
        {
            if items.len() == limit || examined == MAX_LIST_SCAN {
                stopped = true;
                break;
            }
            last = Some(pos);
            let Some(r) = self.res(pos.1) else {
                debug_assert!(false, "buyer index names a missing {}", pos.1);
                continue;
            };
            debug_assert_ne!(r.release_reason, Some(ReleaseReason::Aborted));
            if q.status.is_some_and(|s| s != r.status) {
                continue;
            }
            let sku_ok = match sku {
                None => true,
                Some(None) => r.group().is_some(),
                Some(Some(i)) => {
                    r.group().is_some() || r.lines.as_slice().iter().any(|l| l.sku == i)
                }
            };
            if sku_ok {
                items.push((pos, self.part_of(r)));
            }
        }
        ShardPage {
            items,
            stopped_at: last.filter(|_| stopped),
        }
    }

    /// A page of `q.buyer`'s home orders on this shard, newest first (by confirmation).
    pub fn buyer_orders(&self, q: &OrderQuery) -> ShardPage<OrderPart> {
        let limit = q.limit.clamp(1, MAX_LIST_LIMIT);
        let mut items = Vec::new();
        let mut last = None;
        let mut stopped = false;
        for (examined, pos) in
            newest_first(self.buyers.entries(&q.buyer).map(|e| &e.orders), q.before).enumerate()
        {
            if items.len() == limit || examined == MAX_LIST_SCAN {
                stopped = true;
                break;
            }
            last = Some(pos);
            let Some(r) = self.res(pos.1) else {
                debug_assert!(false, "order index names a missing {}", pos.1);
                continue;
            };
            let Some(order) = r.order() else {
                debug_assert!(false, "order index names unconfirmed {}", pos.1);
                continue;
            };
            let lines = self.full_lines(&r.lines);
            let view = OrderView {
                id: order,
                reservation: r.id,
                buyer: self.buyers.buyer_of_kept(r.buyer_handle).clone(),
                total_cents: super::total_cents(&lines),
                lines,
                payment_ref: r.payment_ref.to_string(),
                created_at_ms: r.confirmed_at_ms(),
            };
            items.push((pos, (view, r.group())));
        }
        ShardPage {
            items,
            stopped_at: last.filter(|_| stopped),
        }
    }

    /// Checks that the per-buyer indexes name exactly the home reservations kept (rolled-back
    /// ones excepted) and the home orders, with their buyers and times.
    pub(super) fn check_buyer_index(&self) -> Result<(), String> {
        let mut kept = 0usize;
        let mut ordered = 0usize;
        let mut per_handle = vec![0u32; self.buyers.slots.len()];
        for r in self.reservations.iter() {
            match per_handle.get_mut(r.buyer_handle as usize) {
                Some(n) if self.buyers.buyer_of(r.buyer_handle).is_some() => *n += 1,
                _ => return Err(format!("{} has a wrong buyer handle", r.id)),
            }
            if r.id.shard() != self.id || r.release_reason == Some(ReleaseReason::Aborted) {
                continue;
            }
            kept += 1;
            if !self
                .buyers
                .has_reservation(r.buyer_handle, (r.created_at_ms, r.id))
            {
                return Err(format!("{} missing from the buyer index", r.id));
            }
            if r.status == ReservationStatus::Confirmed {
                ordered += 1;
                if !self
                    .buyers
                    .has_order(r.buyer_handle, (r.confirmed_at_ms(), r.id))
                {
                    return Err(format!("order of {} missing from the buyer index", r.id));
                }
            }
        }
        self.buyers.check_slots(&per_handle)?;
        let (indexed, orders) = (self.buyers.reservations, self.buyers.orders);
        if (indexed, orders) != (kept, ordered) {
            return Err(format!(
                "buyer index holds {indexed} reservations and {orders} orders for {kept} and {ordered}"
            ));
        }
        Ok(())
    }
}

/// Gathers the shards' pages of one list into one page of at most `limit` items, newest
/// first, and the position to continue from (`None`: the list is complete).
///
/// A shard that stopped early examined every entry at or after its `stopped_at`, so the
/// union of the pages is complete down to the latest of those positions (the frontier):
/// items older than it are left for the next page, which starts from the last item kept (or
/// from the frontier when no item is kept before it, so a page may be short or even empty
/// while the list goes on).
pub fn merge_pages<T>(
    pages: Vec<ShardPage<T>>,
    limit: usize,
) -> (Vec<(ListPos, T)>, Option<ListPos>) {
    let limit = limit.clamp(1, MAX_LIST_LIMIT);
    let frontier = pages.iter().filter_map(|p| p.stopped_at).max();
    let mut items: Vec<(ListPos, T)> = pages
        .into_iter()
        .flat_map(|p| p.items)
        .filter(|(pos, _)| frontier.is_none_or(|f| *pos >= f))
        .collect();
    items.sort_unstable_by_key(|(pos, _)| std::cmp::Reverse(*pos));
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(|(pos, _)| *pos);
        return (items, next);
    }
    (items, frontier)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use flashsale_protocol::SkuSpec;

    use super::*;
    use crate::shard::fixtures::{reserve_cmd, sku_spec};
    use crate::shard::NullSink;

    fn spec(sku: &str) -> SkuSpec {
        sku_spec(sku, 1 << 20)
    }

    fn reserve(shard: &mut Shard, now: u64, buyer: &str, sku: &str) -> ReservationId {
        shard
            .reserve(now, reserve_cmd(buyer, sku, 1), &mut NullSink)
            .unwrap()
            .id
    }

    fn query(buyer: &str, before: Option<ListPos>, limit: usize) -> ReservationQuery {
        ReservationQuery {
            buyer: BuyerId::new(buyer).unwrap(),
            status: None,
            sku: None,
            before,
            limit,
        }
    }

    fn ids(page: &ShardPage<PartView>) -> Vec<ReservationId> {
        page.items.iter().map(|(_, p)| p.view.id).collect()
    }

    /// A buyer's handle lives as long as its kept reservations: forgetting the last frees it,
    /// the next new buyer reuses the slot, and usage and lists follow the buyer, not the slot
    /// (also across a snapshot).
    #[test]
    fn buyer_handles_follow_kept_reservations_and_are_reused() {
        let mut shard = Shard::new(0);
        shard.set_retention_ms(100);
        let mut limited = spec("hat");
        limited.per_buyer_limit = Some(2);
        shard.upsert_sku(0, limited, &mut NullSink).unwrap();
        let hat = SkuId::new("hat").unwrap();
        let (ann, bob) = (BuyerId::new("ann").unwrap(), BuyerId::new("bob").unwrap());
        let a1 = reserve(&mut shard, 10, "ann", "hat");
        let a2 = reserve(&mut shard, 11, "ann", "hat");
        assert_eq!(shard.used(&ann, &hat), 2);
        assert_eq!(shard.buyers.handle(&ann), Some(0));
        assert_eq!(shard.buyers.slots[0].kept, 2);
        shard.cancel(20, a1, &mut NullSink).unwrap();
        shard.cancel(21, a2, &mut NullSink).unwrap();
        assert_eq!(shard.used(&ann, &hat), 0);
        // Released but kept: the handle stays until retention forgets both.
        assert_eq!(shard.buyers.handle(&ann), Some(0));
        assert_eq!(shard.forget(120, 10), 1);
        assert_eq!(shard.buyers.slots[0].kept, 1);
        assert_eq!(shard.forget(200, 10), 1);
        assert_eq!(shard.buyers.handle(&ann), None);
        assert_eq!(shard.buyers.free, vec![0]);
        shard.check_invariants().unwrap();
        let b1 = reserve(&mut shard, 300, "bob", "hat");
        assert_eq!(
            shard.buyers.handle(&bob),
            Some(0),
            "the freed slot is reused"
        );
        assert_eq!(shard.buyers.slots.len(), 1);
        assert_eq!(shard.used(&bob, &hat), 1);
        assert_eq!(shard.used(&ann, &hat), 0);
        assert_eq!(
            ids(&shard.buyer_reservations(&query("bob", None, 10))),
            vec![b1]
        );
        assert!(ids(&shard.buyer_reservations(&query("ann", None, 10))).is_empty());
        let a3 = reserve(&mut shard, 301, "ann", "hat");
        assert_eq!(shard.buyers.handle(&ann), Some(1));
        shard.check_invariants().unwrap();
        let restored = Shard::restore(&shard.snapshot()).unwrap();
        assert_eq!(restored.used(&bob, &hat), 1);
        assert_eq!(restored.used(&ann, &hat), 1);
        assert_eq!(
            ids(&restored.buyer_reservations(&query("ann", None, 10))),
            vec![a3]
        );
        assert_eq!(restored.state_hash(), shard.state_hash());
    }

    /// Pages run newest first, per buyer, with filters; retention and snapshots keep the
    /// index equal to the store.
    #[test]
    fn a_buyers_reservations_page_newest_first_and_follow_retention() {
        let mut shard = Shard::new(0);
        shard.set_retention_ms(100);
        shard.upsert_sku(0, spec("hat"), &mut NullSink).unwrap();
        shard.upsert_sku(0, spec("cap"), &mut NullSink).unwrap();
        let a1 = reserve(&mut shard, 10, "ann", "hat");
        let b1 = reserve(&mut shard, 11, "bob", "hat");
        let a2 = reserve(&mut shard, 12, "ann", "cap");
        let a3 = reserve(&mut shard, 12, "ann", "hat");
        shard.confirm(13, a1, "pay", &mut NullSink).unwrap();
        shard.cancel(14, a2, &mut NullSink).unwrap();
        shard.check_invariants().unwrap();

        let all = shard.buyer_reservations(&query("ann", None, 10));
        assert_eq!(ids(&all), [a3, a2, a1], "newest first, same time by id");
        assert_eq!(all.stopped_at, None);
        assert_eq!(
            ids(&shard.buyer_reservations(&query("bob", None, 10))),
            [b1]
        );
        assert!(shard
            .buyer_reservations(&query("cid", None, 10))
            .items
            .is_empty());

        let first = shard.buyer_reservations(&query("ann", None, 2));
        assert_eq!(ids(&first), [a3, a2]);
        let cursor = first.stopped_at.unwrap();
        let second = shard.buyer_reservations(&query("ann", Some(cursor), 2));
        assert_eq!(ids(&second), [a1]);
        assert_eq!(second.stopped_at, None);

        let mut q = query("ann", None, 10);
        q.status = Some(ReservationStatus::Confirmed);
        assert_eq!(ids(&shard.buyer_reservations(&q)), [a1]);
        q.status = None;
        q.sku = Some(SkuId::new("cap").unwrap());
        assert_eq!(ids(&shard.buyer_reservations(&q)), [a2]);
        q.sku = Some(SkuId::new("nope").unwrap());
        assert!(shard.buyer_reservations(&q).items.is_empty());

        let orders = shard.buyer_orders(&OrderQuery {
            buyer: BuyerId::new("ann").unwrap(),
            before: None,
            limit: 10,
        });
        assert_eq!(orders.items.len(), 1);
        assert_eq!(orders.items[0].1 .0.reservation, a1);
        assert_eq!(orders.items[0].1 .0.payment_ref, "pay");

        // The snapshot rebuilds the same index.
        let restored = Shard::restore(&shard.snapshot()).unwrap();
        assert_eq!(
            ids(&restored.buyer_reservations(&query("ann", None, 10))),
            [a3, a2, a1]
        );

        // Retention forgets the cancelled one; the confirmed one stays listed.
        shard.expire(14 + 100, usize::MAX, &mut NullSink).unwrap();
        shard.check_invariants().unwrap();
        let after = ids(&shard.buyer_reservations(&query("ann", None, 10)));
        assert!(!after.contains(&a2), "{after:?}");
        assert!(after.contains(&a1), "{after:?}");
    }

    /// A filter that matches nothing costs at most `MAX_LIST_SCAN` entries a page, and the
    /// pages still reach the one match at the end.
    #[test]
    fn a_page_examines_a_bounded_number_of_entries() {
        let mut shard = Shard::new(0);
        shard.upsert_sku(0, spec("hat"), &mut NullSink).unwrap();
        let oldest = reserve(&mut shard, 1, "ann", "hat");
        shard.confirm(2, oldest, "p", &mut NullSink).unwrap();
        for _ in 0..(2 * MAX_LIST_SCAN + 10) {
            reserve(&mut shard, 3, "ann", "hat");
        }
        let mut q = query("ann", None, 5);
        q.status = Some(ReservationStatus::Confirmed);
        let mut pages = 0;
        let mut found = Vec::new();
        loop {
            pages += 1;
            let (items, next) = merge_pages(vec![shard.buyer_reservations(&q)], q.limit);
            found.extend(items.into_iter().map(|(_, p)| p.view.id));
            match next {
                Some(pos) => q.before = Some(pos),
                None => break,
            }
            assert!(pages < 10, "no progress");
        }
        assert_eq!(found, [oldest]);
        assert_eq!(pages, 3, "two full scans, then the rest");
    }

    /// Merging keeps only what every shard examined; the next page starts where it ends.
    #[test]
    fn merging_stops_at_the_latest_frontier() {
        let r = |c| ReservationId::compose(0, c);
        let pos = |t, c| (t, r(c));
        let a = ShardPage {
            items: vec![(pos(9, 1), 'a'), (pos(5, 2), 'b')],
            stopped_at: Some(pos(5, 2)),
        };
        let b = ShardPage {
            items: vec![(pos(8, 3), 'c'), (pos(7, 4), 'd'), (pos(4, 5), 'e')],
            stopped_at: None,
        };
        let (items, next) = merge_pages(vec![a, b], 10);
        let got: Vec<char> = items.iter().map(|(_, c)| *c).collect();
        assert_eq!(got, ['a', 'c', 'd', 'b'], "'e' is after the frontier");
        assert_eq!(next, Some(pos(5, 2)));
        let a = ShardPage {
            items: vec![(pos(9, 1), 'a'), (pos(5, 2), 'b')],
            stopped_at: None,
        };
        let b = ShardPage {
            items: vec![(pos(8, 3), 'c')],
            stopped_at: None,
        };
        let (items, next) = merge_pages(vec![a, b], 2);
        assert_eq!(items.iter().map(|(_, c)| *c).collect::<String>(), "ac");
        assert_eq!(next, Some(pos(8, 3)));
    }
}
