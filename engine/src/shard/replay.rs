//! Replay's decode of a logged record with the shard's own handles (ADR 0036, fourth round).
//!
//! [`decode_record`](flashsale_protocol::decode_record) builds every SKU and buyer id of a
//! record as a fresh `Arc<str>` and a fresh line vector, which `apply` then drops again: two
//! or three allocations and frees per `Reserved`, most of replay's decode cost. Here the
//! record is built from its validated archive with the shard's own handle of each SKU and
//! buyer it already holds (a reference count, no allocation) and the line buffer the previous
//! reservation left, and notes the index of each line's SKU so that neither the check nor the
//! apply hashes the id again ([`Shard::apply_record_at`]), and the buyer's handle, so that
//! the apply does not hash the buyer's id a second time ([`Resolved`], ADR 0036, seventh
//! round). The record is equal to the one `decode_record` returns, and it is checked and
//! applied by the same functions, so the state reached is the same.
//!
//! Recovery goes one step further ([`Shard::apply_archived`], ADR 0036, ninth round): the
//! events of a sale are checked and applied from the archived fields without an owned record
//! in between, by the same check and apply functions — a `Reserved`'s lines as compact lines
//! of SKU indexes, with no `SkuId` handle or owned `Line` (tenth round).

use std::sync::Arc;

use flashsale_protocol::event::{
    ArchivedEvent, ArchivedLine, ArchivedLogRecord, ArchivedReleaseReason, Group,
};
use flashsale_protocol::ids::{ArchivedBuyerId, ArchivedScopedKey, ArchivedSkuId};
use flashsale_protocol::{
    BuyerId, DecodeError, Event, Line, LogRecord, OrderId, PaymentRef, ReleaseReason,
    ReservationId, ScopedKey, SkuId, MAX_LINES,
};
use rkyv::option::ArchivedOption;
use rkyv::rancor::Error as ArchiveError;
use rkyv::vec::ArchivedVec;

use super::apply::{not_held, ApplyError, Reserved, Units};
use super::buyers::{BuyerHandle, BuyerHint};
use super::store::CLine;
use super::Shard;

/// Why [`Shard::apply_archived`] could not apply a logged record; each displays as the
/// record-then-apply path ([`Shard::record_from_archived`], the log's seq check,
/// [`Shard::apply_record_at`]) reports it.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// rkyv failed to deserialize a field of the validated archive.
    #[error("{0}")]
    Decode(DecodeError),
    /// The record's own seq is not the one the log read it at.
    #[error("record says seq {found}")]
    Logged {
        /// The record's seq.
        found: u64,
    },
    /// The record does not apply to the state (the state is unchanged).
    #[error("{0}")]
    Apply(ApplyError),
}

impl From<ArchiveError> for ReplayError {
    fn from(e: ArchiveError) -> Self {
        ReplayError::Decode(DecodeError::Invalid(e.to_string()))
    }
}

/// What [`Shard::record_from_archived`] found of a record's ids in the shard, for
/// [`Shard::apply_record_at`]: the SKU index of each line of a `Reserved` whose SKUs the
/// shard all holds, and its buyer's handle (or that the buyer has none). Reused from record
/// to record (its buffers are kept); [`Shard::apply_archived`] also keeps its compact lines
/// of a `Reserved` here. A hint never changes the state reached, only how the ids are found.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// `skus[i]`: the index of line `i`'s SKU (empty unless every line's SKU is held).
    skus: Vec<u32>,
    /// The buyer as the index knew it when the record was built.
    pub(super) buyer: BuyerHint,
    /// [`Shard::apply_archived`]'s buffer of a `Reserved`'s lines with their SKU indexes
    /// (only its own: [`Shard::apply_record_at`] does not read it).
    lines: Vec<CLine>,
}

impl Resolved {
    /// Nothing resolved yet.
    pub fn new() -> Self {
        Resolved::default()
    }

    /// The SKU index of each line of the last `Reserved` built, or nothing (not a
    /// `Reserved`, or one of a SKU the shard does not hold).
    pub fn skus(&self) -> &[u32] {
        &self.skus
    }

    /// Forgets what was resolved (keeps the buffers).
    pub fn clear(&mut self) {
        self.skus.clear();
        self.buyer = BuyerHint::Unknown;
    }
}

/// Most entries [`Shard::reserve_for_replay`] sets room for in any one structure (16 Mi: a
/// hint past it, e.g. from a damaged log directory, reserves no more than this).
const MAX_REPLAY_RESERVE: u64 = 1 << 24;

impl Shard {
    /// Makes room, before a replay of about `records` records (a hint from the log,
    /// [`crate::log::ShardLog::replay_size_hint`]), in the structures that grow by one entry
    /// per replayed event of a sale: the expiry queue (one per home `Reserved`), the
    /// settled queue (one per `Released`) and the dense order index (one per own
    /// `Confirmed`). Each then grows in place instead of being reallocated and copied
    /// as it doubles (`memcpy` from `realloc`, ≈ 4 % of replay's instructions; ADR 0036,
    /// thirteenth round). A hint only: the state reached is the same whatever it says, room
    /// that is never written is never touched (address space, not memory), at most
    /// [`MAX_REPLAY_RESERVE`] entries each are asked for, and a reservation the allocator
    /// refuses is skipped.
    pub fn reserve_for_replay(&mut self, records: u64) {
        let n = usize::try_from(records.min(MAX_REPLAY_RESERVE)).unwrap_or(0);
        // Refused room is not an error: the structures grow as before.
        let _ = self.expiry.try_reserve(n);
        let _ = self.settled.try_reserve(n);
        self.orders.try_reserve_own(n);
    }

    /// The owned record of a validated archive, equal to what `decode_record` makes of it,
    /// sharing the shard's handles of the ids it holds (see the module doc). Errors only if
    /// rkyv fails to deserialize a field of the validated archive.
    /// `resolved` is cleared, then, for a `Reserved`, filled with each line's SKU index (when
    /// the shard holds them all) and its buyer's handle, for [`Shard::apply_record_at`].
    pub fn record_from_archived(
        &mut self,
        archived: &ArchivedLogRecord,
        resolved: &mut Resolved,
    ) -> Result<LogRecord, ArchiveError> {
        resolved.clear();
        let event = match &archived.event {
            ArchivedEvent::Reserved {
                id,
                buyer,
                lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms,
            } => {
                let (buyer, owned, idempotency_key) =
                    self.reserved_parts(buyer, lines, idempotency_key, resolved)?;
                Event::Reserved {
                    id: ReservationId(id.0.to_native()),
                    buyer,
                    lines: owned,
                    expires_at_ms: expires_at_ms.to_native(),
                    idempotency_key,
                    request_hash: request_hash.to_native(),
                    group: group.as_ref().map(|g| Group {
                        shards_mask: g.shards_mask.to_native(),
                        line_positions: g.line_positions.to_native(),
                    }),
                    at_ms: at_ms.to_native(),
                }
            }
            // The two other events of every sale, read in place like the fields above
            // (ADR 0036, eighth round); the rest through rkyv.
            ArchivedEvent::Confirmed {
                id,
                order,
                payment_ref,
                at_ms,
            } => Event::Confirmed {
                id: ReservationId(id.0.to_native()),
                order: OrderId(order.0.to_native()),
                payment_ref: PaymentRef::from(payment_ref.as_str()),
                at_ms: at_ms.to_native(),
            },
            ArchivedEvent::Released { id, reason, at_ms } => Event::Released {
                id: ReservationId(id.0.to_native()),
                reason: release_reason(reason),
                at_ms: at_ms.to_native(),
            },
            other => rkyv::deserialize::<Event, ArchiveError>(other)?,
        };
        Ok(LogRecord {
            shard: archived.shard.to_native(),
            seq: archived.seq.to_native(),
            event,
        })
    }

    /// Replays one record of the log, read at `seq`, from its validated archive: the same
    /// checks, the same apply functions and the same state as [`Shard::record_from_archived`]
    /// then [`Shard::apply_record_at`] (which the rare events still take), but the events of
    /// a sale — `Reserved`, `Confirmed`, `Released` — are checked and applied from their
    /// fields as they are read ([`Shard::check_reserved`] then [`Shard::apply_reserved`];
    /// [`Shard::check_order_free`] then [`Shard::confirm_held`]; [`Shard::release_held`],
    /// whose store lookup is also the held check, ADR 0036, thirteenth round): no owned
    /// [`Event`] is built, returned and taken apart again (ADR 0036, ninth round). A
    /// `Reserved` whose SKUs the shard all holds is checked and applied from its archived lines with their SKU indexes (compact lines in
    /// `resolved`'s buffer), not from owned `Line`s (ADR 0036, tenth round); one naming a SKU
    /// the shard does not hold, or more lines than a reservation may have, takes the owned
    /// record's way, which refuses it as before. On error the state is unchanged.
    pub fn apply_archived(
        &mut self,
        seq: u64,
        archived: &ArchivedLogRecord,
        resolved: &mut Resolved,
    ) -> Result<(), ReplayError> {
        let record_seq = archived.seq.to_native();
        let shard = archived.shard.to_native();
        match &archived.event {
            ArchivedEvent::Reserved {
                id,
                buyer,
                lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms,
            } => {
                if !self.compact_lines(lines, &mut resolved.lines) {
                    return self.apply_archived_rare(seq, archived, resolved);
                }
                // The buyer's handle (one hash of the archived name): a known buyer's id is
                // neither built nor cloned (the reservation keeps the handle only), a new
                // buyer's is built here, before the checks, as before.
                let buyer = match self.buyers.handle_named(buyer.as_str()) {
                    Some(h) => KnownOrNew::Known(h),
                    None => KnownOrNew::New(rkyv::deserialize::<BuyerId, ArchiveError>(buyer)?),
                };
                // The plain fields read in place: rkyv's generic deserialize only for a key,
                // which owns a string (as `reserved_parts`).
                let idempotency_key = match idempotency_key.as_ref() {
                    Some(key) => Some(rkyv::deserialize::<ScopedKey, ArchiveError>(key)?),
                    None => None,
                };
                if record_seq != seq {
                    return Err(ReplayError::Logged { found: record_seq });
                }
                let id = ReservationId(id.0.to_native());
                let group = group.as_ref().map(|g| Group {
                    shards_mask: g.shards_mask.to_native(),
                    line_positions: g.line_positions.to_native(),
                });
                let lines = resolved.lines.as_slice();
                self.check_position(shard, record_seq)
                    .and_then(|()| self.check_reserved(id, lines, group.is_some(), None))
                    .map_err(ReplayError::Apply)?;
                // Acquired once the checks passed (nothing changed on an error).
                let buyer_handle = match buyer {
                    KnownOrNew::Known(h) => self.buyers.acquire_known(h),
                    KnownOrNew::New(buyer) => self.buyers.acquire_absent(&buyer),
                };
                self.seq = record_seq;
                self.apply_reserved(
                    Reserved {
                        id,
                        expires_at_ms: expires_at_ms.to_native(),
                        request_hash: request_hash.to_native(),
                        at_ms: at_ms.to_native(),
                        idempotency_key: idempotency_key.map(Arc::new),
                        group,
                    },
                    buyer_handle,
                    lines,
                    Units::FromGates,
                    None,
                );
                Ok(())
            }
            // `resolved` is not read for these two (nor after them: the next `Reserved` or
            // rare event fills what it reads), so it is not cleared here.
            ArchivedEvent::Confirmed {
                id,
                order,
                payment_ref,
                at_ms,
            } => {
                if record_seq != seq {
                    return Err(ReplayError::Logged { found: record_seq });
                }
                let id = ReservationId(id.0.to_native());
                let order = OrderId(order.0.to_native());
                self.check_position(shard, record_seq)
                    .and_then(|()| self.check_order_free(order))
                    .map_err(ReplayError::Apply)?;
                // The held check is the apply's own store lookup (one, not two; ADR 0036,
                // thirteenth round): on an error nothing changed, as after `check_held`.
                let payment_ref = PaymentRef::from(payment_ref.as_str());
                self.confirm_held(id, order, payment_ref, at_ms.to_native())
                    .map_err(|found| ReplayError::Apply(not_held(id, found)))?;
                self.seq = record_seq;
                Ok(())
            }
            ArchivedEvent::Released { id, reason, at_ms } => {
                if record_seq != seq {
                    return Err(ReplayError::Logged { found: record_seq });
                }
                let id = ReservationId(id.0.to_native());
                self.check_position(shard, record_seq)
                    .map_err(ReplayError::Apply)?;
                self.release_held(id, release_reason(reason), at_ms.to_native())
                    .map_err(|found| ReplayError::Apply(not_held(id, found)))?;
                self.seq = record_seq;
                Ok(())
            }
            _ => self.apply_archived_rare(seq, archived, resolved),
        }
    }

    /// Fills `out` with `lines` as compact lines (each SKU by its index in the shard, the
    /// logged quantity and price), and says whether it could: `false` if a line names a SKU
    /// the shard does not hold or there are more than [`MAX_LINES`] lines (the owned
    /// record's way then refuses the record, with its error).
    #[inline(always)]
    fn compact_lines(&mut self, lines: &ArchivedVec<ArchivedLine>, out: &mut Vec<CLine>) -> bool {
        out.clear();
        if lines.len() > MAX_LINES {
            return false;
        }
        for l in lines.iter() {
            let Some(sku) = self.archived_sku_index(&l.sku) else {
                return false;
            };
            out.push(CLine {
                sku,
                qty: l.qty.to_native(),
                unit_price_cents: l.unit_price_cents.to_native(),
            });
        }
        true
    }

    /// The index of an archived SKU id in the shard, if it holds the SKU: the hot SKU first,
    /// as [`Shard::sku_handle`] (a hint only: the id is compared in full), then the hashed
    /// lookup, whose hit becomes the hot SKU.
    #[inline(always)]
    fn archived_sku_index(&mut self, sku: &ArchivedSkuId) -> Option<u32> {
        let name = sku.as_str();
        if let Some(hot) = self.skus.get(self.hot_sku as usize) {
            if same_id(hot.spec.sku.as_str().as_bytes(), name.as_bytes()) {
                return Some(self.hot_sku);
            }
        }
        let i = *self.sku_index.get(name)?;
        self.hot_sku = i;
        Some(i)
    }

    /// [`Shard::apply_archived`] of the rare events (SKU upserts, restocks, extensions): the
    /// owned record, then [`Shard::apply_record_at`].
    #[cold]
    #[inline(never)]
    fn apply_archived_rare(
        &mut self,
        seq: u64,
        archived: &ArchivedLogRecord,
        resolved: &mut Resolved,
    ) -> Result<(), ReplayError> {
        let record = self.record_from_archived(archived, resolved)?;
        if record.seq != seq {
            return Err(ReplayError::Logged { found: record.seq });
        }
        self.apply_record_at(record, resolved)
            .map_err(ReplayError::Apply)
    }

    /// The owned parts of an archived `Reserved` that are not plain numbers — its buyer's id,
    /// its lines (in the buffer the previous reservation left) and its key — sharing the
    /// shard's handles; notes each line's SKU index (when the shard holds them all) and the
    /// buyer's handle in `resolved` (cleared before). [`Shard::record_from_archived`]'s: the
    /// fused [`Shard::apply_archived`] reads a `Reserved`'s lines as compact lines
    /// ([`Shard::compact_lines`], ADR 0036 tenth round).
    #[inline(always)]
    fn reserved_parts(
        &mut self,
        buyer: &ArchivedBuyerId,
        lines: &ArchivedVec<ArchivedLine>,
        idempotency_key: &ArchivedOption<ArchivedScopedKey>,
        resolved: &mut Resolved,
    ) -> Result<(BuyerId, Vec<Line>, Option<ScopedKey>), ArchiveError> {
        let skus = &mut resolved.skus;
        let mut owned = std::mem::take(&mut self.spare_lines);
        owned.clear();
        owned.reserve(lines.len());
        let mut all_known = true;
        for l in lines.iter() {
            let (sku, index) = self.sku_handle(&l.sku)?;
            match index {
                Some(i) if all_known => skus.push(i),
                _ => all_known = false,
            }
            owned.push(Line {
                sku,
                qty: l.qty.to_native(),
                unit_price_cents: l.unit_price_cents.to_native(),
            });
        }
        if !all_known {
            skus.clear();
        }
        let (buyer, hint) = self.buyer_handle_of(buyer)?;
        resolved.buyer = hint;
        // The plain fields read in place: rkyv's generic deserialize (a pool of shared
        // pointers set up per call) only for a key, which owns a string.
        let idempotency_key = match idempotency_key.as_ref() {
            Some(key) => Some(rkyv::deserialize::<ScopedKey, ArchiveError>(key)?),
            None => None,
        };
        Ok((buyer, owned, idempotency_key))
    }

    /// The shard's handle of an archived SKU id and its index, or a new id (and no index)
    /// for a SKU it does not hold. The hot SKU (the last one a reservation named, as on the
    /// command path, [`Shard::sku_idx`]) is compared first, so a sale's log hashes its SKU id
    /// once per run of records of that SKU instead of once per line. A hint only: the id is
    /// compared in full, and a miss takes the hashed lookup.
    #[inline(always)]
    fn sku_handle(&mut self, sku: &ArchivedSkuId) -> Result<(SkuId, Option<u32>), ArchiveError> {
        let name = sku.as_str();
        if let Some(hot) = self.skus.get(self.hot_sku as usize) {
            if hot.spec.sku.as_str() == name {
                return Ok((hot.spec.sku.clone(), Some(self.hot_sku)));
            }
        }
        match self.sku_index.get_key_value(name) {
            Some((known, &i)) => {
                self.hot_sku = i;
                Ok((known.clone(), Some(i)))
            }
            None => Ok((rkyv::deserialize::<SkuId, ArchiveError>(sku)?, None)),
        }
    }

    /// The shard's id of an archived buyer id (a buyer with a kept reservation) and its
    /// handle, or a new id and [`BuyerHint::Absent`]: the one hash of the buyer's id on
    /// replay.
    #[inline(always)]
    fn buyer_handle_of(
        &self,
        buyer: &ArchivedBuyerId,
    ) -> Result<(BuyerId, BuyerHint), ArchiveError> {
        match self.buyers.lookup(buyer.as_str()) {
            Some((known, h)) => Ok((known.clone(), BuyerHint::Known(h))),
            None => Ok((
                rkyv::deserialize::<BuyerId, ArchiveError>(buyer)?,
                BuyerHint::Absent,
            )),
        }
    }
}

/// A replayed `Reserved`'s buyer as [`Shard::apply_archived`] found it before the checks:
/// the handle of a buyer with a kept reservation, or the id of a new one.
enum KnownOrNew {
    /// Its handle ([`super::buyers::BuyerIndex::handle_named`]).
    Known(BuyerHandle),
    /// Its id, built from the archive.
    New(BuyerId),
}

/// Whether two ids are equal, as `a == b`, without libc's `memcmp` for ids of 8 to 16 bytes
/// (two 8-byte words, the second ending at the id's end): the hot SKU's id is compared with
/// every replayed line's, and the call cost ≈ 20 instructions (ADR 0036, tenth round).
#[inline(always)]
fn same_id(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 16 {
        if let (Some(ah), Some(at), Some(bh), Some(bt)) = (
            a.first_chunk::<8>(),
            a.last_chunk::<8>(),
            b.first_chunk::<8>(),
            b.last_chunk::<8>(),
        ) {
            return u64::from_ne_bytes(*ah) == u64::from_ne_bytes(*bh)
                && u64::from_ne_bytes(*at) == u64::from_ne_bytes(*bt);
        }
    }
    a == b
}

/// The owned reason of an archived release.
fn release_reason(reason: &ArchivedReleaseReason) -> ReleaseReason {
    match reason {
        ArchivedReleaseReason::Cancelled => ReleaseReason::Cancelled,
        ArchivedReleaseReason::Expired => ReleaseReason::Expired,
        ArchivedReleaseReason::Aborted => ReleaseReason::Aborted,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use flashsale_protocol::{LogRecord, SkuSpec};

    use super::*;
    use crate::shard::fixtures::{reserve_cmd, sku_spec};

    /// A log of one SKU with a per-buyer limit: reservations of `ann`, `bob` and `cid`, one
    /// confirmed, one cancelled; and the shard that logged it.
    fn log() -> (Vec<LogRecord>, Shard) {
        let mut shard = Shard::new(0);
        let mut log = Vec::new();
        let spec = SkuSpec {
            per_buyer_limit: Some(10),
            ..sku_spec("tee", 100)
        };
        shard.upsert_sku(0, spec, &mut log).unwrap();
        let reserve = |shard: &mut Shard, now: u64, buyer: &str, log: &mut Vec<_>| {
            shard
                .reserve(now, reserve_cmd(buyer, "tee", 1), log)
                .unwrap()
                .id
        };
        let a1 = reserve(&mut shard, 1, "ann", &mut log);
        reserve(&mut shard, 2, "bob", &mut log);
        reserve(&mut shard, 3, "ann", &mut log);
        let b = reserve(&mut shard, 4, "bob", &mut log);
        shard.confirm(5, a1, "pay", &mut log).unwrap();
        shard.cancel(6, b, &mut log).unwrap();
        reserve(&mut shard, 7, "cid", &mut log);
        (log, shard)
    }

    /// Replays `log` into a new shard, each `Reserved` with the buyer hint `hint` picks for
    /// it, and checks that it reaches the logging shard's state.
    fn replay_with(log: &[LogRecord], logged: &Shard, hint: impl Fn(&Shard, &str) -> BuyerHint) {
        let mut shard = Shard::new(0);
        for record in log {
            let mut resolved = Resolved::new();
            if let Event::Reserved { buyer, .. } = &record.event {
                resolved.buyer = hint(&shard, buyer.as_str());
            }
            shard.apply_record_at(record.clone(), &resolved).unwrap();
        }
        shard.check_invariants().unwrap();
        assert_eq!(shard.state_hash(), logged.state_hash());
        for b in ["ann", "bob", "cid"] {
            let b = BuyerId::new(b).unwrap();
            let h = shard.buyers.handle(&b);
            assert_eq!(h.and_then(|h| shard.buyers.buyer_of(h)), Some(&b));
        }
    }

    /// `same_id` agrees with `==` for every length up to past its word compare, with the
    /// two ids differing at each position in turn, and for ids of different lengths.
    #[test]
    fn same_id_is_byte_equality() {
        let text: Vec<u8> = (b'a'..=b'z').collect();
        for len in 0..=20 {
            let a = &text[..len];
            assert!(same_id(a, a), "{len}");
            let copy = a.to_vec();
            assert!(same_id(a, &copy), "{len}");
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] = b'0';
                assert!(!same_id(a, &b), "{len} at {at}");
                assert!(!same_id(&b, a), "{len} at {at}");
            }
            if len > 0 {
                assert!(!same_id(a, &text[..len - 1]), "{len}");
                assert!(!same_id(&text[..len - 1], a), "{len}");
            }
        }
    }

    /// The buyer hint only saves a hash: a right one, a missing one and every kind of wrong
    /// one (another buyer's handle, a handle past the slots, "absent" for a known buyer,
    /// "known" for an absent one) reach the same state with a consistent index.
    #[test]
    fn a_buyer_hint_never_changes_the_state() {
        let (log, logged) = log();
        replay_with(&log, &logged, |s, b| match s.buyers.lookup(b) {
            Some((_, h)) => BuyerHint::Known(h),
            None => BuyerHint::Absent,
        });
        replay_with(&log, &logged, |_, _| BuyerHint::Unknown);
        replay_with(&log, &logged, |s, b| match s.buyers.lookup(b) {
            Some((_, h)) => BuyerHint::Known(h ^ 1),
            None => BuyerHint::Known(0),
        });
        replay_with(&log, &logged, |_, _| BuyerHint::Known(u32::MAX));
        replay_with(&log, &logged, |_, _| BuyerHint::Absent);
    }
}
