//! Where reservations live: [`Store`] keeps them by id (own ids in fixed-size chunks, other
//! shards' parts in a map), with their compact lines ([`Lines`], [`CLine`]).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use flashsale_protocol::event::Group;
use flashsale_protocol::PaymentRef;
use flashsale_protocol::{OrderId, ReleaseReason, RequestKey, ReservationId, ScopedKey, ShardId};

use super::{fast_map, FastMap};
use crate::view::ReservationStatus;

/// A reservation line as the shard stores it: the SKU by its index in `Shard::skus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CLine {
    /// Index of the SKU in `Shard::skus`.
    pub(super) sku: u32,
    /// Units held.
    pub(super) qty: u32,
    /// Price of one unit when reserved.
    pub(super) unit_price_cents: u64,
}

/// A reservation's lines: inline when there is one (the common case), boxed otherwise.
#[derive(Debug, Clone)]
pub(super) enum Lines {
    /// A single line, inline.
    One(CLine),
    /// Several lines (or none, for an empty home part).
    Many(Box<[CLine]>),
}

impl Lines {
    /// The lines, in request order.
    pub(super) fn as_slice(&self) -> &[CLine] {
        match self {
            Lines::One(l) => std::slice::from_ref(l),
            Lines::Many(b) => b,
        }
    }

    /// Stores `lines`, inline when there is one.
    pub(super) fn from_slice(lines: &[CLine]) -> Lines {
        match lines {
            [one] => Lines::One(*one),
            many => Lines::Many(many.into()),
        }
    }
}

/// One reservation (or, for a cross-shard reservation, this shard's part of it).
#[derive(Debug, Clone)]
pub(super) struct Reservation {
    /// Its id (allocated by the home shard).
    pub(super) id: ReservationId,
    /// Who holds it: the buyer's handle in this shard ([`super::buyers::BuyerIndex`]),
    /// acquired when the reservation is stored and released when it is forgotten, so the
    /// handle's slot names the buyer for as long as the reservation is kept
    /// ([`super::buyers::BuyerIndex::buyer_of_kept`]). The buyer's shared id is not stored
    /// here too: 16 bytes of every slot and a reference-count touch per `Reserved` (ADR 0036,
    /// twelfth round).
    pub(super) buyer_handle: super::buyers::BuyerHandle,
    /// Its lines on this shard.
    pub(super) lines: Lines,
    /// When it was reserved.
    pub(super) created_at_ms: u64,
    /// When it expires if still held.
    pub(super) expires_at_ms: u64,
    /// Held, confirmed, released or expired.
    pub(super) status: ReservationStatus,
    /// Why it was released, once released or expired.
    pub(super) release_reason: Option<ReleaseReason>,
    /// When it was confirmed, released or expired (0 while held): one field for the two
    /// times, as a reservation is settled once ([`Reservation::confirmed_at_ms`],
    /// [`Reservation::released_at_ms`]; ADR 0036, twelfth round).
    pub(super) settled_at_ms: u64,
    /// Its order once confirmed, not meaningful before (`OrderId(0)`):
    /// [`Reservation::order`] reads it with the status, so no `Option` tag takes 8 more
    /// bytes of every slot.
    pub(super) order_id: OrderId,
    /// The payment reference it was confirmed with (empty before).
    pub(super) payment_ref: PaymentRef,
    /// The caller's key, on the home shard of a keyed request: shared with the shard's key
    /// map (`Shard::idempotency`), so the slot holds a pointer, not the 48-byte key, and the
    /// map's entry is not a second copy of the key's text (ADR 0060).
    pub(super) idempotency_key: Option<Arc<ScopedKey>>,
    /// Hash of the whole request, to tell a retry from another request under the same key.
    pub(super) request_hash: u64,
    /// What few reservations have (a group, keyed extensions), out of line: `None` for most
    /// ([`Rare`]).
    pub(super) rare: Option<Box<Rare>>,
}

/// The parts of a reservation that most reservations do not have, boxed out of its slot so
/// that every slot is smaller: replay builds millions of reservations in fresh memory, and
/// the store's size is what it pays for in page faults and memory traffic (ADR 0036,
/// eleventh round). Boxed only when one of them is set ([`Rare::boxed`]).
#[derive(Debug, Clone, Default)]
pub(super) struct Rare {
    /// Which shards hold parts, for a cross-shard reservation (set when stored, never
    /// changed: the store indexes grouped reservations by it).
    pub(super) group: Option<Group>,
    /// The keys of its keyed extensions, on the home shard (at most one per extension).
    pub(super) extension_keys: Vec<RequestKey>,
    /// How many times its expiry was extended ([`Reservation::extensions`]): 0 for most
    /// reservations, so out of the slot (4 bytes that took the slot from 120 bytes to 128;
    /// ADR 0060).
    pub(super) extensions: u32,
}

impl Rare {
    /// The out-of-line parts of a new reservation of this group (no extension yet): `None`
    /// (no allocation, nothing to drop) without a group, as for nearly every reservation.
    #[inline(always)]
    pub(super) fn of_group(group: Option<Group>) -> Option<Box<Rare>> {
        group.map(|group| {
            Box::new(Rare {
                group: Some(group),
                extension_keys: Vec::new(),
                extensions: 0,
            })
        })
    }

    /// The out-of-line parts of a reservation with this group, these extension keys and this
    /// many extensions: `None` (no allocation) when it has none of them.
    #[inline]
    pub(super) fn boxed(
        group: Option<Group>,
        extension_keys: Vec<RequestKey>,
        extensions: u32,
    ) -> Option<Box<Rare>> {
        if group.is_none() && extension_keys.is_empty() && extensions == 0 {
            return None;
        }
        Some(Box::new(Rare {
            group,
            extension_keys,
            extensions,
        }))
    }
}

impl Reservation {
    /// Its order, once confirmed.
    #[inline]
    pub(super) fn order(&self) -> Option<OrderId> {
        (self.status == ReservationStatus::Confirmed).then_some(self.order_id)
    }

    /// When it was confirmed (0 before).
    #[inline]
    pub(super) fn confirmed_at_ms(&self) -> u64 {
        if self.status == ReservationStatus::Confirmed {
            self.settled_at_ms
        } else {
            0
        }
    }

    /// When it was released or expired (0 while held or once confirmed).
    #[inline]
    pub(super) fn released_at_ms(&self) -> u64 {
        if matches!(
            self.status,
            ReservationStatus::Released | ReservationStatus::Expired
        ) {
            self.settled_at_ms
        } else {
            0
        }
    }

    /// Which shards hold parts, for a cross-shard reservation.
    #[inline]
    pub(super) fn group(&self) -> Option<Group> {
        self.rare.as_ref().and_then(|r| r.group)
    }

    /// The keys of its keyed extensions, on the home shard.
    pub(super) fn extension_keys(&self) -> &[RequestKey] {
        self.rare.as_ref().map_or(&[], |r| &r.extension_keys)
    }

    /// How many times its expiry was extended.
    #[inline]
    pub(super) fn extensions(&self) -> u32 {
        self.rare.as_ref().map_or(0, |r| r.extensions)
    }

    /// Sets how many times its expiry was extended (boxing the rare parts if they were not
    /// and `n` is not 0).
    pub(super) fn set_extensions(&mut self, n: u32) {
        match &mut self.rare {
            Some(rare) => rare.extensions = n,
            None if n == 0 => {}
            None => self.rare.get_or_insert_with(Box::default).extensions = n,
        }
    }

    /// Notes the key of a keyed extension (boxing the rare parts if they were not).
    pub(super) fn add_extension_key(&mut self, key: RequestKey) {
        self.rare
            .get_or_insert_with(Box::default)
            .extension_keys
            .push(key);
    }
}

/// Slots per chunk of the own-reservation store.
pub(super) const CHUNK: u64 = 1024;

/// Most empty chunk entries a gap of ids between two own reservations may cost; a wider gap
/// drops the chunks before it (their reservations move to the map).
pub(super) const MAX_GAP_CHUNKS: u64 = 64;

/// A fixed-size block of reservation slots (never reallocated once created).
#[derive(Debug)]
pub(super) struct Chunk {
    /// Occupied slots.
    pub(super) live: usize,
    /// `CHUNK` slots, indexed by `counter % CHUNK`.
    pub(super) slots: Box<[Option<Reservation>]>,
}

impl Chunk {
    /// An empty chunk.
    pub(super) fn new() -> Self {
        Chunk {
            live: 0,
            slots: (0..CHUNK).map(|_| None).collect(),
        }
    }
}

/// Reservations by id. This shard's own ids are dense counters, so they live in fixed-size
/// chunks of slots indexed by counter (no hashing, and growth never moves a reservation).
/// Retention empties old chunks: an empty chunk at the front is dropped, and a chunk (not the
/// newest) that falls to 1/32 occupancy or below has its survivors (confirmed reservations)
/// moved to the map and is dropped, so memory follows the live reservations. Restoring a
/// snapshot follows the same rule as each chunk stops being the newest, and a gap of ids costs
/// (almost) nothing (see [`Store::insert`]). The map also holds parts of other shards'
/// reservations.
///
/// An own id whose chunk is allocated is never in the map, so lookups probe one place.
///
/// The ids of the stored reservations that belong to a cross-shard group are also kept apart
/// ([`Store::grouped`]), so that recovery's reconciliation visits those, not every reservation
/// (ADR 0036, eleventh round). A reservation's `group` is set when it is stored and never
/// changed.
#[derive(Debug)]
pub(super) struct Store {
    /// Chunk number (`counter / CHUNK`) of `own[0]`.
    pub(super) first_chunk: u64,
    /// Own reservations by chunk; `None` = a dropped chunk.
    pub(super) own: VecDeque<Option<Chunk>>,
    /// Own reservations stored in chunks.
    pub(super) own_len: usize,
    /// Other shards' parts, and own survivors of dropped chunks.
    pub(super) map: FastMap<ReservationId, Reservation>,
    /// Ids of the stored reservations with a `group` (cross-shard parts), wherever stored.
    grouped: BTreeSet<ReservationId>,
}

impl Store {
    /// An empty store.
    pub(super) fn new() -> Self {
        Store {
            first_chunk: 0,
            own: VecDeque::new(),
            own_len: 0,
            map: fast_map(),
            grouped: BTreeSet::new(),
        }
    }

    /// The `(chunk, slot)` position of an own counter, if inside the chunk range.
    #[inline]
    pub(super) fn locate(&self, counter: u64) -> Option<(usize, usize)> {
        let c = usize::try_from((counter / CHUNK).checked_sub(self.first_chunk)?).ok()?;
        (c < self.own.len()).then_some((c, (counter % CHUNK) as usize))
    }

    /// The reservation with this id (`shard`: the owning shard).
    #[inline(always)]
    pub(super) fn get(&self, shard: ShardId, id: ReservationId) -> Option<&Reservation> {
        if id.shard() == shard {
            if let Some((c, i)) = self.locate(id.counter()) {
                if let Some(chunk) = &self.own[c] {
                    return chunk.slots[i].as_ref();
                }
            }
        }
        self.map.get(&id)
    }

    /// The reservation with this id, to change it.
    #[inline(always)]
    pub(super) fn get_mut(
        &mut self,
        shard: ShardId,
        id: ReservationId,
    ) -> Option<&mut Reservation> {
        if id.shard() == shard {
            if let Some((c, i)) = self.locate(id.counter()) {
                if let Some(chunk) = &mut self.own[c] {
                    return chunk.slots[i].as_mut();
                }
            }
        }
        self.map.get_mut(&id)
    }

    /// The held reservation with this id, to settle it; else the status found (`None`: no
    /// such reservation). The one lookup of a confirm's or release's apply.
    #[inline(always)]
    pub(super) fn held_mut(
        &mut self,
        shard: ShardId,
        id: ReservationId,
    ) -> Result<&mut Reservation, Option<ReservationStatus>> {
        match self.get_mut(shard, id) {
            Some(r) if r.status == ReservationStatus::Held => Ok(r),
            found => Err(found.map(|r| r.status)),
        }
    }

    /// Inserts; returns false (and changes nothing) if the id is taken.
    ///
    /// An own id gets a slot in its chunk when that chunk exists or comes after the newest
    /// one; an id in a dropped chunk or before the first goes to the map. So memory follows
    /// the reservations stored, not the ids issued: a gap of ids costs at most
    /// [`MAX_GAP_CHUNKS`] empty entries, a larger gap moves the chunked reservations to the
    /// map and starts the chunks afresh.
    #[inline]
    pub(super) fn insert(&mut self, shard: ShardId, r: Reservation) -> bool {
        let id = r.id;
        self.insert_with(shard, id, || r)
    }

    /// [`Store::insert`] of the reservation `make` builds (its id must be `id`), called only
    /// once the slot is known free, so the reservation is built where it is stored.
    #[inline(always)]
    pub(super) fn insert_with(
        &mut self,
        shard: ShardId,
        id: ReservationId,
        make: impl FnOnce() -> Reservation,
    ) -> bool {
        if id.shard() == shard {
            let chunk = id.counter() / CHUNK;
            if self.own.is_empty() || chunk >= self.first_chunk + self.own.len() as u64 {
                // Beyond the chunk range: never stored (an own id is in the map only when
                // its chunk was dropped or came before the range).
                self.open_chunk(chunk);
            }
            if let Some((c, i)) = self.locate(id.counter()) {
                if let Some(chunk) = &mut self.own[c] {
                    // An own id whose chunk is allocated is never in the map: its slot
                    // alone says whether it is taken (one probe, no hashing).
                    let slot = &mut chunk.slots[i];
                    if slot.is_some() {
                        return false;
                    }
                    debug_assert!(!self.map.contains_key(&id), "{id} in both places");
                    let r = slot.insert(make());
                    assert_eq!(r.id, id, "a reservation stored under another id");
                    if r.group().is_some() {
                        note_grouped(&mut self.grouped, id);
                    }
                    chunk.live += 1;
                    self.own_len += 1;
                    return true;
                }
            }
        }
        match self.map.entry(id) {
            hashbrown::hash_map::Entry::Occupied(_) => false,
            hashbrown::hash_map::Entry::Vacant(v) => {
                let r = v.insert(make());
                assert_eq!(r.id, id, "a reservation stored under another id");
                if r.group().is_some() {
                    note_grouped(&mut self.grouped, id);
                }
                true
            }
        }
    }

    /// Makes `chunk` (at or after the end of the chunk range) the newest chunk. The chunk it
    /// replaces as newest is dropped if sparse, as [`Store::remove`] would; chunks between
    /// stay empty entries, or, past [`MAX_GAP_CHUNKS`], every chunk is dropped first.
    fn open_chunk(&mut self, chunk: u64) {
        let end = self.first_chunk + self.own.len() as u64;
        assert!(
            self.own.is_empty() || chunk >= end,
            "chunk {chunk} inside the range"
        );
        if self.own.is_empty() || chunk - end > MAX_GAP_CHUNKS {
            for c in 0..self.own.len() {
                self.drop_chunk(c);
            }
            self.own.clear();
            self.first_chunk = chunk;
        } else {
            let newest = self.own.len() - 1;
            if self.own[newest]
                .as_ref()
                .is_some_and(|c| c.live as u64 <= CHUNK / 32)
            {
                self.drop_chunk(newest);
            }
            for _ in end..chunk {
                self.own.push_back(None);
            }
        }
        self.own.push_back(Some(Chunk::new()));
        self.trim_front();
        assert_eq!(self.first_chunk + self.own.len() as u64, chunk + 1);
    }

    /// Drops the chunk at position `c`, moving its reservations to the map.
    fn drop_chunk(&mut self, c: usize) {
        if let Some(chunk) = self.own[c].take() {
            self.own_len -= chunk.live;
            for survivor in chunk.slots.into_vec().into_iter().flatten() {
                self.map.insert(survivor.id, survivor);
            }
        }
    }

    /// Pops dropped chunks off the front (keeping the newest entry).
    fn trim_front(&mut self) {
        while self.own.len() > 1 && self.own.front().is_some_and(Option::is_none) {
            self.own.pop_front();
            self.first_chunk += 1;
        }
    }

    /// Removes a reservation; emptied or sparse old chunks are dropped (see above).
    pub(super) fn remove(&mut self, shard: ShardId, id: ReservationId) -> Option<Reservation> {
        let r = self.take(shard, id)?;
        if r.group().is_some() {
            self.grouped.remove(&id);
        }
        Some(r)
    }

    /// [`Store::remove`] but for the index of grouped ids.
    fn take(&mut self, shard: ShardId, id: ReservationId) -> Option<Reservation> {
        let located = (id.shard() == shard)
            .then(|| self.locate(id.counter()))
            .flatten();
        let Some((c, i)) = located else {
            return self.map.remove(&id);
        };
        let newest = c + 1 == self.own.len();
        let Some(chunk) = &mut self.own[c] else {
            return self.map.remove(&id);
        };
        let r = chunk.slots[i].take()?;
        chunk.live -= 1;
        self.own_len -= 1;
        if !newest && chunk.live as u64 <= CHUNK / 32 {
            self.drop_chunk(c);
        }
        self.trim_front();
        Some(r)
    }

    /// Whether a reservation with this id is stored (inlined like [`Store::get`]: replay
    /// asks it once per `Reserved`, a call of ≈ 39 instructions; ADR 0036, eighth round).
    #[inline(always)]
    pub(super) fn contains(&self, shard: ShardId, id: ReservationId) -> bool {
        self.get(shard, id).is_some()
    }

    /// Number of reservations stored.
    pub(super) fn len(&self) -> usize {
        self.own_len + self.map.len()
    }

    /// Memory in use, in units of one reservation slot: allocated chunk slots, chunk
    /// entries, and map entries (for tests bounding memory by live state).
    #[cfg(test)]
    pub(super) fn footprint(&self) -> usize {
        let chunks = self.own.iter().flatten().count();
        chunks * CHUNK as usize + self.own.len() + self.map.len()
    }

    /// Every stored reservation with a `group` (cross-shard parts), by id; `shard`: the
    /// owning shard, as for [`Store::get`].
    pub(super) fn grouped(&self, shard: ShardId) -> impl Iterator<Item = &Reservation> + '_ {
        self.grouped
            .iter()
            .filter_map(move |&id| self.get(shard, id))
    }

    /// Number of ids in the grouped index (for the invariant checks).
    pub(super) fn grouped_len(&self) -> usize {
        self.grouped.len()
    }

    /// Every reservation, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Reservation> + '_ {
        self.own
            .iter()
            .flatten()
            .flat_map(|c| c.slots.iter().flatten())
            .chain(self.map.values())
    }
}

/// Adds a grouped reservation's id to the store's index: out of line, so that the insert
/// of the common reservation (no group) stays small enough to be inlined with the
/// reservation built in its slot (ADR 0036, eleventh round).
#[cold]
#[inline(never)]
fn note_grouped(grouped: &mut BTreeSet<ReservationId>, id: ReservationId) {
    grouped.insert(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(shard: ShardId, counter: u64) -> Reservation {
        Reservation {
            id: ReservationId::compose(shard, counter),
            buyer_handle: 0,
            lines: Lines::from_slice(&[]),
            created_at_ms: 0,
            expires_at_ms: 1,
            status: ReservationStatus::Held,
            release_reason: None,
            settled_at_ms: 0,
            order_id: OrderId(0),
            payment_ref: PaymentRef::default(),
            idempotency_key: None,
            request_hash: 0,
            rare: None,
        }
    }

    /// A reservation slot stays small: the group and extension keys are out of line
    /// (ADR 0036, eleventh round; 232 bytes before), the buyer is named by its handle only
    /// and the confirm and release times share one field, the order needs no tag (twelfth
    /// round; 192 bytes before); the key is a shared pointer and the extension count is out
    /// of line (ADR 0060; 160 bytes before).
    #[test]
    fn a_reservation_slot_is_small() {
        assert!(
            std::mem::size_of::<Option<Reservation>>() <= 120,
            "{}",
            std::mem::size_of::<Option<Reservation>>()
        );
        let mut r = res(0, 1);
        assert!(r.rare.is_none() && r.group().is_none() && r.extension_keys().is_empty());
        assert!(Rare::boxed(None, Vec::new(), 0).is_none());
        assert_eq!(r.extensions(), 0);
        r.set_extensions(0);
        assert!(r.rare.is_none(), "no box for no extension");
        r.set_extensions(3);
        assert_eq!(r.extensions(), 3);
        let key = RequestKey {
            key: ScopedKey::new(
                flashsale_protocol::KeyOwner::Credential(7),
                flashsale_protocol::IdempotencyKey::new("k").unwrap(),
            ),
            request_hash: 9,
        };
        r.add_extension_key(key.clone());
        assert_eq!(r.extension_keys(), std::slice::from_ref(&key));
        assert!(r.group().is_none());
    }

    /// Two live reservations ten million ids apart: the store allocates for the two, not for
    /// the ids in between (issue 11, 6a). Either order of insertion.
    #[test]
    fn a_huge_id_gap_costs_no_memory() {
        for order in [[1, 10_000_000], [10_000_000, 1]] {
            let mut s = Store::new();
            for c in order {
                assert!(s.insert(0, res(0, c)));
            }
            assert_eq!(s.len(), 2);
            assert!(
                s.footprint() <= 2 * CHUNK as usize + 64,
                "{} slots for 2 reservations",
                s.footprint()
            );
            for c in order {
                let id = ReservationId::compose(0, c);
                assert_eq!(s.get(0, id).map(|r| r.id), Some(id));
                assert!(!s.insert(0, res(0, c)), "{id} taken");
            }
            assert!(s.get(0, ReservationId::compose(0, 5_000_000)).is_none());
            let next = ReservationId::compose(0, 10_000_001);
            assert!(s.insert(0, res(0, 10_000_001)));
            assert_eq!(s.get_mut(0, next).map(|r| r.id), Some(next));
            for c in [1, 10_000_000, 10_000_001] {
                let id = ReservationId::compose(0, c);
                assert_eq!(s.remove(0, id).map(|r| r.id), Some(id));
                assert!(s.get(0, id).is_none());
            }
            assert_eq!(s.len(), 0);
            assert_eq!(s.iter().count(), 0);
        }
    }

    /// Restoring sorted ids where most chunks hold a few survivors (as after retention) keeps
    /// memory near the survivors: sparse chunks go to the map as the next chunk starts.
    #[test]
    fn sparse_chunks_do_not_stay_allocated() {
        let mut s = Store::new();
        let ids: Vec<u64> = (1..200).map(|k| k * 100).collect();
        for &c in &ids {
            assert!(s.insert(0, res(0, c)));
        }
        assert_eq!(s.len(), ids.len());
        assert!(
            s.footprint() <= 2 * CHUNK as usize + 2 * ids.len(),
            "{} slots for {} reservations",
            s.footprint(),
            ids.len()
        );
        for &c in &ids {
            let id = ReservationId::compose(0, c);
            assert_eq!(s.get(0, id).map(|r| r.id), Some(id));
        }
        assert_eq!(s.iter().count(), ids.len());
        // New ids after the restored ones still go to a chunk.
        assert!(s.insert(0, res(0, 20_000)));
        assert!(s.own.iter().flatten().any(|c| c.live > 0));
    }

    /// The grouped index names exactly the stored reservations with a group, in id order,
    /// wherever they are stored (chunks, the map, other shards' parts) and as chunks are
    /// dropped and reservations removed (ADR 0036, eleventh round).
    #[test]
    fn the_grouped_index_follows_the_grouped_reservations() {
        let grouped = |shard: ShardId, counter: u64| Reservation {
            rare: Rare::boxed(
                Some(Group {
                    shards_mask: 0b11,
                    line_positions: 1,
                }),
                Vec::new(),
                0,
            ),
            ..res(shard, counter)
        };
        let ids = |s: &Store| s.grouped(0).map(|r| r.id).collect::<Vec<_>>();
        let mut s = Store::new();
        // Own ids in a chunk, one of another shard (the map), then one far past the chunks
        // (every chunk dropped: its reservations move to the map).
        for c in 1..=40 {
            let r = if c % 10 == 0 {
                grouped(0, c)
            } else {
                res(0, c)
            };
            assert!(s.insert(0, r));
        }
        assert!(s.insert(0, grouped(1, 5)));
        assert!(!s.insert(0, grouped(0, 10)), "taken");
        let want = |cs: &[(ShardId, u64)]| {
            let mut v: Vec<_> = cs
                .iter()
                .map(|&(sh, c)| ReservationId::compose(sh, c))
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids(&s), want(&[(0, 10), (0, 20), (0, 30), (0, 40), (1, 5)]));
        assert!(s.insert(0, grouped(0, 10_000_000)));
        assert!(s.map.contains_key(&ReservationId::compose(0, 20)), "moved");
        assert_eq!(
            ids(&s),
            want(&[(0, 10), (0, 20), (0, 30), (0, 40), (1, 5), (0, 10_000_000)])
        );
        // Removing a grouped or a plain reservation, or one not stored.
        for c in [20, 21, 10_000_000, 77] {
            s.remove(0, ReservationId::compose(0, c));
        }
        assert!(s.remove(0, ReservationId::compose(1, 5)).is_some());
        assert_eq!(ids(&s), want(&[(0, 10), (0, 30), (0, 40)]));
        assert_eq!(s.grouped_len(), 3);
        assert_eq!(s.iter().filter(|r| r.group().is_some()).count(), 3);
    }
}
