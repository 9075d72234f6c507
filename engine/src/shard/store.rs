//! Where reservations live: [`Store`] keeps them by id (own ids in fixed-size chunks, other
//! shards' parts in a map), with their compact lines ([`Lines`], [`CLine`]).

use std::collections::VecDeque;

use flashsale_protocol::event::Group;
use flashsale_protocol::{BuyerId, OrderId, ReleaseReason, ReservationId, ScopedKey, ShardId};

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
    /// Who holds it.
    pub(super) buyer: BuyerId,
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
    /// When it was released or expired (0 while held or once confirmed).
    pub(super) released_at_ms: u64,
    /// Its order, once confirmed.
    pub(super) order: Option<OrderId>,
    /// The payment reference it was confirmed with (empty before).
    pub(super) payment_ref: String,
    /// When it was confirmed (0 before).
    pub(super) confirmed_at_ms: u64,
    /// The caller's key, on the home shard of a keyed request.
    pub(super) idempotency_key: Option<ScopedKey>,
    /// Hash of the whole request, to tell a retry from another request under the same key.
    pub(super) request_hash: u64,
    /// Which shards hold parts, for a cross-shard reservation.
    pub(super) group: Option<Group>,
}

/// Slots per chunk of the own-reservation store.
pub(super) const CHUNK: u64 = 1024;

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
/// newest) that falls below 1/32 occupancy has its survivors (confirmed reservations) moved to
/// the map and is dropped, so memory follows the live reservations. The map also holds parts
/// of other shards' reservations.
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
}

impl Store {
    /// An empty store.
    pub(super) fn new() -> Self {
        Store {
            first_chunk: 0,
            own: VecDeque::new(),
            own_len: 0,
            map: fast_map(),
        }
    }

    /// The `(chunk, slot)` position of an own counter, if inside the chunk range.
    pub(super) fn locate(&self, counter: u64) -> Option<(usize, usize)> {
        let c = usize::try_from((counter / CHUNK).checked_sub(self.first_chunk)?).ok()?;
        (c < self.own.len()).then_some((c, (counter % CHUNK) as usize))
    }

    /// The reservation with this id (`shard`: the owning shard).
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

    /// Inserts; returns false (and changes nothing) if the id is taken.
    pub(super) fn insert(&mut self, shard: ShardId, r: Reservation) -> bool {
        if self.get(shard, r.id).is_some() {
            return false;
        }
        if r.id.shard() == shard {
            let chunk = r.id.counter() / CHUNK;
            if self.own.is_empty() {
                self.first_chunk = chunk;
            }
            while chunk < self.first_chunk {
                self.own.push_front(Some(Chunk::new()));
                self.first_chunk -= 1;
            }
            while chunk - self.first_chunk >= self.own.len() as u64 {
                self.own.push_back(Some(Chunk::new()));
            }
            if let Some((c, i)) = self.locate(r.id.counter()) {
                if let Some(chunk) = &mut self.own[c] {
                    chunk.slots[i] = Some(r);
                    chunk.live += 1;
                    self.own_len += 1;
                    return true;
                }
            }
        }
        self.map.insert(r.id, r);
        true
    }

    /// Removes a reservation; emptied or sparse old chunks are dropped (see above).
    pub(super) fn remove(&mut self, shard: ShardId, id: ReservationId) -> Option<Reservation> {
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
            if let Some(chunk) = self.own[c].take() {
                self.own_len -= chunk.live;
                for survivor in chunk.slots.into_vec().into_iter().flatten() {
                    self.map.insert(survivor.id, survivor);
                }
            }
        }
        while self.own.len() > 1 && self.own.front().is_some_and(Option::is_none) {
            self.own.pop_front();
            self.first_chunk += 1;
        }
        Some(r)
    }

    /// Whether a reservation with this id is stored.
    pub(super) fn contains(&self, shard: ShardId, id: ReservationId) -> bool {
        self.get(shard, id).is_some()
    }

    /// Number of reservations stored.
    pub(super) fn len(&self) -> usize {
        self.own_len + self.map.len()
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
