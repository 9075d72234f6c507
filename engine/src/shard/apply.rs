//! Events into state: logging a command's event ([`Shard::emit`]), replaying a logged record
//! ([`Shard::apply_record`]), checking an event against the state, and one apply function
//! per event.

use std::cmp::Reverse;
use std::sync::Arc;

use flashsale_protocol::event::Group;
use flashsale_protocol::limits::{checked_total_cents, MAX_MONEY_CENTS};
use flashsale_protocol::PaymentRef;
use flashsale_protocol::{
    Event, Line, LogRecord, OrderId, ReleaseReason, RequestKey, ReservationId, ScopedKey, ShardId,
    SkuId, SkuSpec, MAX_LINES,
};

use super::buyers::{BuyerHandle, BuyerHint, BuyerIndex};
use super::orders::Orders;
use super::replay::Resolved;
use super::sku::{sku_at_mut, SkuState};
use super::store::{CLine, Lines, Rare, Reservation};
use super::usage::sub_usage;
use super::{validate_spec, EventSink, Shard, MAX_STOCK};
use crate::command::CommandError;
use crate::gate::StockGate;
use crate::view::ReservationStatus;

/// Where a `Reserved`'s units come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Units {
    /// The caller's [`crate::claim::Claims`] already took them from the gates.
    Claimed,
    /// The shard takes them from the gates as it applies the event (replay, tests).
    FromGates,
}

/// The plain fields of a `Reserved` event, handed to [`Shard::apply_reserved`] together
/// (its buyer and lines go separately).
#[derive(Debug)]
pub(super) struct Reserved {
    /// The reservation.
    pub(super) id: ReservationId,
    /// When it expires if still held.
    pub(super) expires_at_ms: u64,
    /// Hash of the whole request.
    pub(super) request_hash: u64,
    /// When it was reserved.
    pub(super) at_ms: u64,
    /// The caller's key, on the home shard of a keyed request, already shared
    /// ([`Reservation::idempotency_key`]): an 8-byte pointer moved from the record to the
    /// store, not the 48-byte key copied at every step (ADR 0063).
    pub(super) idempotency_key: Option<Arc<ScopedKey>>,
    /// Which shards hold parts, for a cross-shard reservation.
    pub(super) group: Option<Group>,
}

/// A line of a `Reserved` as [`Shard::check_reserved`] and [`Shard::apply_reserved`] read
/// it: the event's own [`Line`] (commands, and replay of an owned record), or a [`CLine`]
/// whose SKU index replay found as it read the archived line (ADR 0036, tenth round), so
/// that a replayed line needs no `SkuId` handle (an atomic increment, and a decrement when
/// the line buffer is cleared) and no line buffer of the event's type.
pub(super) trait ReservedLine {
    /// Units held.
    fn qty(&self) -> u32;
    /// Price of one unit, in cents.
    fn unit_price_cents(&self) -> u64;
    /// Whether `other` is a line of the same SKU.
    fn same_sku(&self, other: &Self) -> bool;
    /// The SKU's index in `shard`: `hint` (the index the caller found for this line), else
    /// looked up; `None` if the shard does not hold the SKU.
    fn sku_index(&self, shard: &Shard, hint: Option<u32>) -> Option<u32>;
    /// The SKU's id, for messages.
    fn sku_name<'a>(&'a self, shard: &'a Shard) -> &'a str;
}

impl ReservedLine for Line {
    #[inline(always)]
    fn qty(&self) -> u32 {
        self.qty
    }

    #[inline(always)]
    fn unit_price_cents(&self) -> u64 {
        self.unit_price_cents
    }

    #[inline(always)]
    fn same_sku(&self, other: &Self) -> bool {
        self.sku == other.sku
    }

    #[inline(always)]
    fn sku_index(&self, shard: &Shard, hint: Option<u32>) -> Option<u32> {
        hint.or_else(|| shard.sku_index.get(&self.sku).copied())
    }

    fn sku_name<'a>(&'a self, _: &'a Shard) -> &'a str {
        self.sku.as_str()
    }
}

/// A compact line's SKU is its index, which its maker found in the shard: the same index is
/// the same SKU (`sku_index` maps each id to its own index).
impl ReservedLine for CLine {
    #[inline(always)]
    fn qty(&self) -> u32 {
        self.qty
    }

    #[inline(always)]
    fn unit_price_cents(&self) -> u64 {
        self.unit_price_cents
    }

    #[inline(always)]
    fn same_sku(&self, other: &Self) -> bool {
        self.sku == other.sku
    }

    #[inline(always)]
    fn sku_index(&self, _: &Shard, _: Option<u32>) -> Option<u32> {
        Some(self.sku)
    }

    fn sku_name<'a>(&'a self, shard: &'a Shard) -> &'a str {
        shard
            .skus
            .get(self.sku as usize)
            .map_or("", |s| s.spec.sku.as_str())
    }
}

/// The lines [`Shard::apply_reserved`] takes: the event's line vector, whose buffer is kept
/// for the next reservation once its units are taken ([`Shard::recycle_lines`]), or replay's
/// compact lines, borrowed.
pub(super) trait ReservedLines {
    /// The type of one line.
    type Line: ReservedLine;
    /// The lines, in request order.
    fn lines(&self) -> &[Self::Line];
    /// The lines are taken: gives their buffer back to `shard` if they own one.
    fn done(self, shard: &mut Shard);
}

impl ReservedLines for Vec<Line> {
    type Line = Line;

    #[inline(always)]
    fn lines(&self) -> &[Line] {
        self
    }

    #[inline(always)]
    fn done(self, shard: &mut Shard) {
        shard.recycle_lines(self);
    }
}

impl ReservedLines for &[CLine] {
    type Line = CLine;

    #[inline(always)]
    fn lines(&self) -> &[CLine] {
        self
    }

    #[inline(always)]
    fn done(self, _: &mut Shard) {}
}

/// Why a record could not be applied (only on replay of a bad or foreign log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The record belongs to another shard.
    #[error("record of shard {found} replayed into shard {expected}")]
    WrongShard {
        /// This shard.
        expected: ShardId,
        /// The record's shard.
        found: ShardId,
    },
    /// Sequence numbers are not consecutive.
    #[error("expected seq {expected}, found {found}")]
    Seq {
        /// The next sequence number.
        expected: u64,
        /// The record's.
        found: u64,
    },
    /// The event does not fit the state (unknown SKU, double confirm, negative stock…).
    #[error("inconsistent event: {0}")]
    Inconsistent(String),
}

impl Shard {
    /// Logs and applies one event produced by a command. The command validated the event
    /// against the state just before; debug builds re-check it in full with the replay check.
    #[inline(always)]
    pub(super) fn emit(
        &mut self,
        event: Event,
        sink: &mut impl EventSink,
    ) -> Result<(), CommandError> {
        self.emit_with(event, sink, Units::FromGates, None)
    }

    /// [`Shard::emit`] of a `Reserved` whose lines' SKU indexes the command already resolved
    /// (`skus[i]` is the index of `lines[i].sku`), so applying it hashes no SKU id again.
    ///
    /// Always inlined into the command: the event is built in the record and taken apart
    /// there (a call here took the event by value and copied it into the record, one
    /// `memcpy` per command in the encoding build; ADR 0029 addendum 6).
    #[inline(always)]
    pub(super) fn emit_with(
        &mut self,
        event: Event,
        sink: &mut impl EventSink,
        units: Units,
        skus: Option<&[u32]>,
    ) -> Result<(), CommandError> {
        #[cfg(debug_assertions)]
        if let Err(e) = self.check(&event) {
            debug_assert!(false, "command produced an inapplicable event: {e}");
            return Err(super::bug(&e.to_string()));
        }
        let record = LogRecord {
            shard: self.id,
            seq: self.seq + 1,
            event,
        };
        sink.record(&record);
        self.seq = record.seq;
        // A confirm's fields straight to its apply: passing the event whole to `mutate`
        // copied it (a `memcpy` per confirm; ADR 0029 addendum 6). Tested by reference first
        // so that the other events go to `mutate` from the record itself (a binding of the
        // moved event would be one more copy).
        if !matches!(record.event, Event::Confirmed { .. }) {
            self.mutate(record.event, units, skus);
        } else if let Event::Confirmed {
            id,
            order,
            payment_ref,
            at_ms,
        } = record.event
        {
            self.apply_confirmed(id, order, payment_ref, at_ms);
        }
        Ok(())
    }

    /// Applies a logged record (replay). Validates it first; on error the state is unchanged.
    pub fn apply_record(&mut self, record: LogRecord) -> Result<(), ApplyError> {
        self.apply_record_at(record, &Resolved::default())
    }

    /// [`Shard::apply_record`] of a record whose `Reserved` ids [`Shard::record_from_archived`]
    /// already found in the shard (`resolved`): each line's SKU index, so neither the check
    /// nor the apply hashes the SKU id again, and the buyer's handle, so the apply does not
    /// hash the buyer id again. SKU indexes that do not match the record's lines are ignored
    /// (the ids are looked up then), and a buyer hint is checked against the index before it
    /// is used: the state reached never depends on `resolved`.
    pub fn apply_record_at(
        &mut self,
        record: LogRecord,
        resolved: &Resolved,
    ) -> Result<(), ApplyError> {
        let skus = resolved.skus();
        let skus = match &record.event {
            Event::Reserved { lines, .. } if !skus.is_empty() && skus.len() == lines.len() => {
                Some(skus)
            }
            _ => None,
        };
        self.check_position(record.shard, record.seq)?;
        self.check_at(&record.event, skus)?;
        self.seq = record.seq;
        self.mutate_hinted(record.event, Units::FromGates, skus, resolved.buyer);
        Ok(())
    }

    /// Checks that a record of shard `shard` at `seq` is the next one this shard applies.
    #[inline]
    pub(super) fn check_position(&self, shard: ShardId, seq: u64) -> Result<(), ApplyError> {
        if shard != self.id {
            return Err(ApplyError::WrongShard {
                expected: self.id,
                found: shard,
            });
        }
        if seq != self.seq + 1 {
            return Err(ApplyError::Seq {
                expected: self.seq + 1,
                found: seq,
            });
        }
        Ok(())
    }

    /// Verifies that `event` can be applied to the current state.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub(super) fn check(&self, event: &Event) -> Result<(), ApplyError> {
        self.check_at(event, None)
    }

    /// [`Shard::check`], with the SKU indexes of a `Reserved`'s lines when the caller knows
    /// them (`skus[i]`: line `i`'s).
    fn check_at(&self, event: &Event, skus: Option<&[u32]>) -> Result<(), ApplyError> {
        let inconsistent = |s: String| Err(ApplyError::Inconsistent(s));
        match event {
            Event::SkuUpserted { spec, .. } => {
                if let Err(e) = validate_spec(spec) {
                    return inconsistent(e.to_string());
                }
                if let Some(s) = self.sku_state(&spec.sku) {
                    if spec.stock < s.reserved + s.sold {
                        return inconsistent(format!("stock of {} below committed", spec.sku));
                    }
                }
                Ok(())
            }
            Event::Restocked { sku, qty, .. } => match self.sku_state(sku) {
                Some(s) if s.spec.stock.saturating_add(*qty) <= MAX_STOCK => Ok(()),
                Some(_) => inconsistent(format!("restock of {sku} overflows")),
                None => inconsistent(format!("restock of unknown {sku}")),
            },
            Event::Reserved {
                id, lines, group, ..
            } => self.check_reserved(*id, lines, group.is_some(), skus),
            Event::Confirmed { id, order, .. } => self.check_confirmed(*id, *order),
            Event::Released { id, .. } => self.check_held(*id),
            Event::Extended {
                id,
                expires_at_ms,
                extensions,
                ..
            } => match self.res(*id) {
                Some(r) if r.status != ReservationStatus::Held => {
                    inconsistent(format!("{id} is {}", r.status.as_str()))
                }
                Some(r) if *expires_at_ms < r.expires_at_ms || *extensions <= r.extensions() => {
                    inconsistent(format!("{id} extended backwards"))
                }
                Some(_) => Ok(()),
                None => inconsistent(format!("unknown {id}")),
            },
        }
    }

    /// [`Shard::check_at`] of a `Reserved` (`grouped`: it has a group), shared by replay's
    /// apply of an archived `Reserved` ([`Shard::apply_archived`]), whose lines are compact
    /// ([`ReservedLine`]). `skus[i]`, when given, is line `i`'s SKU index.
    #[inline(always)]
    pub(super) fn check_reserved<L: ReservedLine>(
        &self,
        id: ReservationId,
        lines: &[L],
        grouped: bool,
        skus: Option<&[u32]>,
    ) -> Result<(), ApplyError> {
        let inconsistent = |s: String| Err(ApplyError::Inconsistent(s));
        if self.reservations.contains(self.id, id) {
            return inconsistent(format!("{id} reserved twice"));
        }
        // Only the home part of a group may hold no line (the key's shard, ADR 0003).
        let empty_ok = grouped && id.shard() == self.id;
        if (lines.is_empty() && !empty_ok) || lines.len() > MAX_LINES {
            return inconsistent(format!("{id} has {} lines", lines.len()));
        }
        if checked_total_cents(lines.iter().map(|l| (l.qty(), l.unit_price_cents()))).is_none() {
            return inconsistent(format!("{id} totals more than {MAX_MONEY_CENTS} cents"));
        }
        for (i, l) in lines.iter().enumerate() {
            if lines[..i].iter().any(|o| o.same_sku(l)) || l.qty() == 0 {
                return inconsistent(format!("{id} has a bad line for {}", l.sku_name(self)));
            }
            let hint = skus.and_then(|x| x.get(i)).copied();
            let state = l
                .sku_index(self, hint)
                .and_then(|k| self.skus.get(k as usize));
            debug_assert!(state.is_none_or(|s| s.spec.sku.as_str() == l.sku_name(self)));
            match state {
                Some(s) if s.available() >= u64::from(l.qty()) => {}
                _ => return inconsistent(format!("{id} holds unavailable {}", l.sku_name(self))),
            }
        }
        Ok(())
    }

    /// [`Shard::check_at`] of a `Confirmed` of `id` under `order` (shared with
    /// [`Shard::apply_archived`]).
    #[inline]
    pub(super) fn check_confirmed(
        &self,
        id: ReservationId,
        order: OrderId,
    ) -> Result<(), ApplyError> {
        self.check_order_free(order)?;
        self.check_held(id)
    }

    /// [`Shard::check_confirmed`]'s first half: no order `order` yet.
    #[inline]
    pub(super) fn check_order_free(&self, order: OrderId) -> Result<(), ApplyError> {
        if self.orders.get(order).is_some() {
            return Err(order_exists(order));
        }
        Ok(())
    }

    /// [`Shard::check_at`] of a `Released` of `id`, and of a `Confirmed` past its order
    /// check: `id` must be held (shared with [`Shard::apply_archived`]).
    #[inline]
    pub(super) fn check_held(&self, id: ReservationId) -> Result<(), ApplyError> {
        // The store's lookup inlined here, not `Shard::res` made inline everywhere: that
        // cost the command path's confirm ≈ 6 instructions per pair (ADR 0036, twelfth
        // round).
        match self.reservations.get(self.id, id) {
            Some(r) if r.status == ReservationStatus::Held => Ok(()),
            found => Err(not_held(id, found.map(|r| r.status))),
        }
    }

    /// Applies a checked event. `units`: whether a `Reserved`'s units were already taken from
    /// the gates by the caller's claims. Asserts the per-SKU invariant of every SKU it
    /// touches (O(1) each).
    ///
    /// Not inlined: a command's event goes through one call here (the dispatch inlined into
    /// every command's [`Shard::emit_with`] instead made the commands larger and cost +106
    /// instructions per reserve+confirm pair, ADR 0029 addendum 6); replay inlines the
    /// dispatch ([`Shard::mutate_hinted`]). The two hot commands, reserve and confirm, apply
    /// their event themselves, with the same apply functions (ADR 0057).
    #[inline(never)]
    pub(super) fn mutate(&mut self, event: Event, units: Units, skus: Option<&[u32]>) {
        self.mutate_hinted(event, units, skus, BuyerHint::Unknown);
    }

    /// [`Shard::mutate`] with what replay's decode found of a `Reserved`'s buyer
    /// ([`Shard::record_from_archived`]), so the buyer's id is not hashed again.
    ///
    /// Only a dispatch: each event's fields go to its apply function as arguments. Inlined
    /// into its callers ([`Shard::mutate`], [`Shard::apply_record_at`]), so the event is
    /// taken apart where the record holds it instead of being copied whole into a call (a
    /// `memcpy` of the event per record, ≈ 3 % of replay's instructions; ADR 0036, eighth
    /// round).
    #[inline(always)]
    pub(super) fn mutate_hinted(
        &mut self,
        event: Event,
        units: Units,
        skus: Option<&[u32]>,
        buyer_hint: BuyerHint,
    ) {
        match event {
            Event::SkuUpserted { spec, .. } => self.apply_sku_upserted(spec),
            Event::Restocked { sku, qty, key, .. } => self.apply_restocked(&sku, qty, key),
            Event::Reserved {
                id,
                buyer,
                lines,
                expires_at_ms,
                idempotency_key,
                request_hash,
                group,
                at_ms,
            } => {
                // The buyer's id is hashed at most once here (not at all when replay's
                // decode found its handle); everything after uses its handle, and the
                // reservation keeps the handle only.
                let buyer_handle = self.buyers.acquire_hinted(&buyer, buyer_hint);
                self.apply_reserved(
                    Reserved {
                        id,
                        expires_at_ms,
                        request_hash,
                        at_ms,
                        idempotency_key: idempotency_key.map(Arc::new),
                        group,
                    },
                    buyer_handle,
                    lines,
                    units,
                    skus,
                );
            }
            Event::Confirmed {
                id,
                order,
                payment_ref,
                at_ms,
            } => self.apply_confirmed(id, order, payment_ref, at_ms),
            Event::Released { id, reason, at_ms } => self.apply_released(id, reason, at_ms),
            Event::Extended {
                id,
                expires_at_ms,
                extensions,
                key,
                ..
            } => self.apply_extended(id, expires_at_ms, extensions, key),
        }
    }

    /// `Reserved` of the buyer of `buyer_handle` (acquired by the caller for this
    /// reservation, [`super::buyers::BuyerIndex`]): the lines' units
    /// ([`Shard::take_lines`]), the index entries, then the reservation built in its store
    /// slot. The lines are the event's (their buffer is kept for the next reservation) or
    /// replay's compact ones ([`ReservedLines`]).
    #[inline]
    pub(super) fn apply_reserved<L: ReservedLines>(
        &mut self,
        fields: Reserved,
        buyer_handle: BuyerHandle,
        lines: L,
        units: Units,
        skus: Option<&[u32]>,
    ) {
        self.apply_reserved_inline(fields, buyer_handle, lines, units, skus);
    }

    /// [`Shard::apply_reserved`], always inlined: the reserve command's apply, so that the
    /// event's fields go from the command to the state without being stored in an event
    /// and read back in a call (ADR 0057).
    #[inline(always)]
    pub(super) fn apply_reserved_inline<L: ReservedLines>(
        &mut self,
        fields: Reserved,
        buyer_handle: BuyerHandle,
        lines: L,
        units: Units,
        skus: Option<&[u32]>,
    ) {
        let Reserved {
            id,
            expires_at_ms,
            request_hash,
            at_ms,
            idempotency_key,
            group,
        } = fields;
        let compact = self.take_lines(buyer_handle, lines.lines(), units, skus);
        lines.done(self);
        // The index entries first, from the fields; then the reservation is built in its
        // store slot (`insert_with`), not on the stack and moved there.
        self.index_reserved(
            id,
            buyer_handle,
            at_ms,
            expires_at_ms,
            &idempotency_key,
            &group,
        );
        // Boxed only for a group (none for nearly every reservation); made before the
        // closure so that the closure stays small enough to inline and the reservation is
        // built in its slot, not copied there.
        let rare = Rare::of_group(group);
        let inserted = self.reservations.insert_with(self.id, id, || Reservation {
            id,
            buyer_handle,
            lines: compact,
            created_at_ms: at_ms,
            expires_at_ms,
            status: ReservationStatus::Held,
            release_reason: None,
            settled_at_ms: 0,
            order_id: OrderId(0),
            payment_ref: PaymentRef::default(),
            idempotency_key,
            request_hash,
            rare,
        });
        assert!(inserted, "{id} reserved twice passed the check");
    }

    /// `SkuUpserted`: creates the SKU, or replaces its settings and moves its gate by the
    /// change of its total (reserved and sold units stay).
    fn apply_sku_upserted(&mut self, spec: SkuSpec) {
        match self.sku_index.get(&spec.sku) {
            Some(&i) => {
                let s = sku_at_mut(&mut self.skus, i);
                let before = s.available();
                let step = i128::from(spec.stock) - i128::from(s.spec.stock);
                let counted = s.counts_usage();
                s.spec = spec;
                assert!(s.invariant_holds(), "{}: counts exceed stock", s.spec.sku);
                move_gate(s, before, step, 0);
                if s.counts_usage() != counted {
                    self.recount_usage_of(i);
                }
            }
            None => {
                let gate = Arc::new(StockGate::new(spec.stock));
                let added = self.add_sku(SkuState {
                    spec,
                    reserved: 0,
                    sold: 0,
                    gate,
                    restock_keys: std::collections::VecDeque::new(),
                });
                assert!(added, "a new SKU was already indexed");
            }
        }
    }

    /// `Restocked`: adds `qty` to the SKU's total and to its gate.
    fn apply_restocked(&mut self, sku: &SkuId, qty: u64, key: Option<RequestKey>) {
        let Some(&i) = self.sku_index.get(sku) else {
            panic!("restock of missing SKU {sku} passed the check");
        };
        let s = sku_at_mut(&mut self.skus, i);
        let before = s.available();
        s.spec.stock += qty;
        assert!(s.spec.stock <= MAX_STOCK, "{sku}: restocked past MAX_STOCK");
        move_gate(s, before, i128::from(qty), 0);
        if let Some(key) = key {
            if s.restock_keys.len() >= crate::limits::MAX_RESTOCK_KEYS {
                s.restock_keys.pop_front();
            }
            s.restock_keys.push_back(key);
        }
    }

    /// The stock side of `Reserved`: moves each line's units to reserved (and off the gate,
    /// unless the caller's claims already took them), counts the buyer's usage of SKUs with a
    /// per-buyer limit, and returns
    /// the lines in their stored form. `skus[k]`, when given, is the index of `lines[k].sku`;
    /// `buyer` is the buyer's handle.
    #[inline(always)]
    fn take_lines<L: ReservedLine>(
        &mut self,
        buyer: BuyerHandle,
        lines: &[L],
        units: Units,
        skus: Option<&[u32]>,
    ) -> Lines {
        assert!(
            lines.len() <= MAX_LINES,
            "{} lines passed the check",
            lines.len()
        );
        assert!(skus.is_none_or(|x| x.len() == lines.len()));
        let resolved = |k: usize| skus.and_then(|x| x.get(k)).copied();
        // One line (the common case) is stored inline, with no buffer to fill first.
        match lines {
            [one] => Lines::One(self.take_line(buyer, one, units, resolved(0))),
            many => Lines::Many(
                many.iter()
                    .enumerate()
                    .map(|(k, l)| self.take_line(buyer, l, units, resolved(k)))
                    .collect(),
            ),
        }
    }

    /// One line of [`Shard::take_lines`]: `resolved` is the SKU's index when the command
    /// already looked it up. Always inlined (a call per line: ≈ 15 instructions per
    /// reserve, and per replayed `Reserved`; ADR 0029 addendum 7).
    #[inline(always)]
    fn take_line<L: ReservedLine>(
        &mut self,
        buyer: BuyerHandle,
        l: &L,
        units: Units,
        resolved: Option<u32>,
    ) -> CLine {
        let qty = u64::from(l.qty());
        let Some(i) = l.sku_index(self, resolved) else {
            panic!(
                "reservation of missing SKU {} passed the check",
                l.sku_name(self)
            );
        };
        debug_assert_eq!(self.sku_index.get(l.sku_name(self)), Some(&i));
        let s = sku_at_mut(&mut self.skus, i);
        let before = s.available();
        s.reserved += qty;
        assert!(s.invariant_holds(), "{}: counts exceed stock", s.spec.sku);
        // `move_gate`'s delta check for this move, in `u64` (ADR 0057): available units
        // fell by exactly `qty` (the gate's whole move, the claim's part included). A claim
        // already took the units off the gate; otherwise they go now.
        assert_eq!(
            before.wrapping_sub(s.available()),
            qty,
            "{}: gate delta differs from available delta",
            s.spec.sku
        );
        if units == Units::FromGates && qty > 0 {
            s.gate.take(qty);
        }
        if s.counts_usage() {
            self.add_usage(buyer, i, qty);
        }
        CLine {
            sku: i,
            qty: l.qty(),
            unit_price_cents: l.unit_price_cents(),
        }
    }

    /// Keeps the emptied line buffer of a `Reserved` event for the next reservation.
    #[inline(always)]
    fn recycle_lines(&mut self, mut lines: Vec<Line>) {
        lines.clear();
        self.spare_lines = lines;
    }

    /// `Reserved` (after [`Shard::take_lines`], before the store insert): on its home shard
    /// advances the id counter, schedules its expiry, remembers its key and lists it for its
    /// buyer; a part of another shard's group gets its part expiry.
    #[inline(always)]
    fn index_reserved(
        &mut self,
        id: ReservationId,
        buyer_handle: BuyerHandle,
        created_at_ms: u64,
        expires_at_ms: u64,
        idempotency_key: &Option<Arc<ScopedKey>>,
        group: &Option<Group>,
    ) {
        if id.shard() == self.id {
            self.next_reservation = self.next_reservation.max(id.counter() + 1);
            self.expiry.push(Reverse((expires_at_ms, id)));
            if let Some(key) = idempotency_key {
                self.idempotency.insert(Arc::clone(key), id);
            }
            self.buyers.add_reservation(buyer_handle, created_at_ms, id);
        } else if group.is_some() {
            self.part_expiry.push(Reverse((expires_at_ms, id)));
        }
    }

    /// `Confirmed`: the held units become sold under `order` (available units, and so the
    /// gate, stay).
    pub(super) fn apply_confirmed(
        &mut self,
        id: ReservationId,
        order: OrderId,
        payment_ref: PaymentRef,
        at_ms: u64,
    ) {
        if let Err(found) = self.confirm_held(id, order, payment_ref, at_ms) {
            settle_of_non_held("confirm", id, found);
        }
    }

    /// [`Shard::apply_confirmed`] once its store lookup found `id` held; else nothing
    /// changes and the status found (`None`: no such reservation) is returned. Replay
    /// ([`Shard::apply_archived`]) checks a `Confirmed`'s reservation with this lookup
    /// instead of a [`Shard::check_held`] before the apply's own: one store lookup per
    /// replayed `Confirmed`, not two (ADR 0036, thirteenth round). The caller checked the
    /// order ([`Shard::check_confirmed`]'s first half).
    #[inline(always)]
    pub(super) fn confirm_held(
        &mut self,
        id: ReservationId,
        order: OrderId,
        payment_ref: PaymentRef,
        at_ms: u64,
    ) -> Result<(), Option<ReservationStatus>> {
        let r = self.reservations.held_mut(self.id, id)?;
        let rest = ConfirmRest {
            shard: self.id,
            skus: &mut self.skus,
            buyers: &mut self.buyers,
            orders: &mut self.orders,
            next_order: &mut self.next_order,
        };
        rest.confirm(r, order, payment_ref, at_ms);
        Ok(())
    }
    /// `Extended`: the hold lasts until `expires_at_ms`; the timer queue gets the new
    /// deadline (the old entry no longer matches and is skipped when it comes up).
    fn apply_extended(
        &mut self,
        id: ReservationId,
        expires_at_ms: u64,
        extensions: u32,
        key: Option<RequestKey>,
    ) {
        let Some(r) = self.reservations.get_mut(self.id, id) else {
            panic!("extension of missing reservation {id} passed the check");
        };
        assert_eq!(
            r.status,
            ReservationStatus::Held,
            "{id}: extension of non-held"
        );
        r.expires_at_ms = expires_at_ms;
        r.set_extensions(extensions);
        // At most one key per extension: bounded by the reservation's `max_extensions`.
        if let Some(key) = key {
            r.add_extension_key(key);
        }
        if id.shard() == self.id {
            self.expiry.push(Reverse((expires_at_ms, id)));
        } else if r.group().is_some() {
            self.part_expiry.push(Reverse((expires_at_ms, id)));
        }
    }

    /// `Released` (cancel, expiry or rollback): the held units return to the stock and the
    /// gate; a rolled-back attempt's key is forgotten; retention starts.
    pub(super) fn apply_released(&mut self, id: ReservationId, reason: ReleaseReason, at_ms: u64) {
        if let Err(found) = self.release_held(id, reason, at_ms) {
            settle_of_non_held("release", id, found);
        }
    }

    /// [`Shard::apply_released`] once its store lookup found `id` held; else nothing
    /// changes and the status found (`None`: no such reservation) is returned. Replay
    /// ([`Shard::apply_archived`]) checks a `Released`'s reservation with this lookup
    /// instead of a [`Shard::check_held`] before the apply's own: one store lookup per
    /// replayed `Released`, not two (ADR 0036, thirteenth round).
    #[inline(always)]
    pub(super) fn release_held(
        &mut self,
        id: ReservationId,
        reason: ReleaseReason,
        at_ms: u64,
    ) -> Result<(), Option<ReservationStatus>> {
        let r = self.reservations.held_mut(self.id, id)?;
        r.status = if reason == ReleaseReason::Expired {
            ReservationStatus::Expired
        } else {
            ReservationStatus::Released
        };
        r.release_reason = Some(reason);
        r.settled_at_ms = at_ms;
        let r = &*r;
        for l in r.lines.as_slice() {
            let qty = u64::from(l.qty);
            let s = sku_at_mut(&mut self.skus, l.sku);
            let before = s.available();
            s.reserved -= qty;
            move_gate(s, before, i128::from(qty), 0);
            if s.counts_usage() {
                sub_usage(&mut self.usage, r.buyer_handle, l.sku, qty);
            }
        }
        if reason == ReleaseReason::Aborted {
            if let Some(key) = &r.idempotency_key {
                if self.idempotency.get(key) == Some(&id) {
                    self.idempotency.remove(key);
                }
            }
            // Never acknowledged to anyone: not listed either.
            if id.shard() == self.id {
                self.buyers
                    .remove_reservation(r.buyer_handle, r.created_at_ms, id);
            }
        }
        self.settled.push_back((at_ms, id));
        Ok(())
    }
}

/// What a `Confirmed` changes besides its reservation, borrowed apart from the store, so
/// that a confirm holding its reservation's slot (found once, [`Shard::confirm`]) applies the
/// event to it without a second lookup (ADR 0057). Replay and `follow` reach the same code
/// through [`Shard::confirm_held`].
pub(super) struct ConfirmRest<'a> {
    /// This shard.
    pub(super) shard: ShardId,
    /// The shard's SKUs.
    pub(super) skus: &'a mut [SkuState],
    /// The per-buyer lists.
    pub(super) buyers: &'a mut BuyerIndex,
    /// Orders by id.
    pub(super) orders: &'a mut Orders,
    /// The shard's next order counter.
    pub(super) next_order: &'a mut u64,
}

impl ConfirmRest<'_> {
    /// `Confirmed` of `r` (held, checked by the caller) under `order`: the held units become
    /// sold (available units, and so the gate, stay), the order is indexed.
    #[inline(always)]
    pub(super) fn confirm(
        self,
        r: &mut Reservation,
        order: OrderId,
        payment_ref: PaymentRef,
        at_ms: u64,
    ) {
        assert_eq!(
            r.status,
            ReservationStatus::Held,
            "{}: confirm of non-held",
            r.id
        );
        let id = r.id;
        r.status = ReservationStatus::Confirmed;
        r.order_id = order;
        r.payment_ref = payment_ref;
        r.settled_at_ms = at_ms;
        for l in r.lines.as_slice() {
            let s = sku_at_mut(self.skus, l.sku);
            let qty = u64::from(l.qty);
            s.reserved -= qty;
            s.sold += qty;
            // Available units do not move, so neither does the gate (the delta check of
            // `move_gate` with a step of 0, written out).
            assert!(s.invariant_holds(), "{}: counts exceed stock", s.spec.sku);
        }
        if order.shard() == self.shard {
            *self.next_order = (*self.next_order).max(order.counter() + 1);
        }
        if id.shard() == self.shard {
            self.buyers.add_order(r.buyer_handle, at_ms, id);
        }
        let previous = self.orders.insert(order, id);
        assert!(previous.is_none(), "{order} allocated twice");
    }
}

/// The error of a `Confirmed` or `Released` of `id` whose reservation is not held: `found`
/// is its status, `None` if there is no such reservation ([`Shard::check_held`]'s message).
/// Out of line: the check's common case is a held reservation (ADR 0036, thirteenth round).
#[cold]
#[inline(never)]
pub(super) fn not_held(id: ReservationId, found: Option<ReservationStatus>) -> ApplyError {
    ApplyError::Inconsistent(match found {
        Some(status) => format!("{id} is {}", status.as_str()),
        None => format!("unknown {id}"),
    })
}

/// The error of a `Confirmed` under an order that exists. Out of line (as [`not_held`]).
#[cold]
#[inline(never)]
fn order_exists(order: OrderId) -> ApplyError {
    ApplyError::Inconsistent(format!("{order} exists"))
}

/// A checked `Confirmed` or `Released` (`what`: "confirm" or "release") of `id` found its
/// reservation not held (`found`: its status, `None` if missing): a broken invariant.
#[cold]
#[inline(never)]
fn settle_of_non_held(what: &str, id: ReservationId, found: Option<ReservationStatus>) -> ! {
    match found {
        Some(status) => panic!(
            "{id}: {what} of non-held ({}) passed the check",
            status.as_str()
        ),
        None => panic!("{what} of missing reservation {id} passed the check"),
    }
}

/// Moves a SKU's gate by `step` units after its counts changed (`available_before`: its
/// available units before), asserting that the gate's whole move — this step, after the
/// `claimed` units callers' claims already took — equals the change in available units.
/// Asserts the delta, not absolute values: claims in flight keep the gate below available.
fn move_gate(s: &SkuState, available_before: u64, step: i128, claimed: u64) {
    let moved = i128::from(s.available()) - i128::from(available_before);
    assert_eq!(
        step - i128::from(claimed),
        moved,
        "{}: gate delta differs from available delta",
        s.spec.sku
    );
    let units = u64::try_from(step.unsigned_abs()).unwrap_or(u64::MAX);
    if step > 0 {
        s.gate.give_back(units);
    } else if step < 0 {
        s.gate.take(units);
    }
}
