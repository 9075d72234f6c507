//! Holding stock: the reserve command, idempotency-key lookups, and the checks of a
//! reservation's lines (shape, stock, sale window, per-buyer limit).

use std::sync::Arc;

use flashsale_protocol::event::Group;
use flashsale_protocol::limits::MAX_MONEY_CENTS;
use flashsale_protocol::{
    BuyerId, Event, Line, LogRecord, ReservationId, ScopedKey, SkuId, MAX_LINES,
};
use smallvec::SmallVec;

use super::apply::{Reserved, Units};
use super::sku::SkuState;
use super::{bug, EventSink, PartView, Shard};
use crate::claim::Claims;
use crate::command::CommandError;

/// A command's `(sku, qty)` lines: one line (the common case) is held inline, so building a
/// one-line command allocates nothing; more lines spill to the heap.
pub type CommandLines = SmallVec<[(SkuId, u32); 1]>;

/// A reservation request as one shard executes it (its own lines only).
#[derive(Debug)]
pub struct ReserveCommand {
    /// Who is buying.
    pub buyer: BuyerId,
    /// This shard's `(sku, qty)` lines, in request order. Empty only for the home part of a
    /// cross-shard reservation whose home (the idempotency key's shard) holds no line.
    pub lines: CommandLines,
    /// The client's key (home shard only).
    pub idempotency_key: Option<ScopedKey>,
    /// Hash of the whole request ([`request_hash`]).
    pub request_hash: u64,
    /// Id chosen by the home shard; `None` = this shard is home and allocates it.
    pub id: Option<ReservationId>,
    /// Expiry chosen by the coordinator; `None` = now + the shortest TTL of the lines.
    pub expires_at_ms: Option<u64>,
    /// Group membership for cross-shard reservations.
    pub group: Option<Group>,
    /// The caller's claims on the lines' gates, one per line in order (or none: the shard then
    /// takes the units from the gates itself). Consumed on success; dropping the command
    /// anywhere else gives them back.
    pub claims: Claims,
}

/// A successful reservation on one shard. The view is not built on this path: callers that
/// need it ask [`Shard::reservation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveOutcome {
    /// The reservation.
    pub id: ReservationId,
    /// True when an earlier reservation was returned for the same idempotency key.
    pub replayed: bool,
}

impl Shard {
    /// Holds stock for this shard's lines of a reservation, all or nothing.
    ///
    /// Checks, per line in order: the SKU exists, enough is available, the sale is open, the
    /// buyer stays within the per-buyer limit. A key seen before returns that reservation.
    /// Builds no view (see [`Shard::reservation`]); in steady state it allocates nothing.
    pub fn reserve(
        &mut self,
        now_ms: u64,
        cmd: ReserveCommand,
        sink: &mut impl EventSink,
    ) -> Result<ReserveOutcome, CommandError> {
        if let Some(key) = &cmd.idempotency_key {
            if let Some(found) = self.key_hit(key, cmd.request_hash) {
                // `cmd` drops here, giving its claims back.
                return found.map(|id| ReserveOutcome { id, replayed: true });
            }
        }
        // Each line's SKU index; its unit price is read from the SKU when the line is built
        // (no second array to zero: ADR 0029 addendum 6).
        let mut idx = [0u32; MAX_LINES];
        // On error `cmd` drops, giving its claims back.
        let min_ttl = self.check_reserve(now_ms, &cmd, &mut idx)?;
        let id = match cmd.id {
            Some(id) => id,
            None => ReservationId::compose(self.id, self.next_reservation),
        };
        let expires_at_ms = cmd
            .expires_at_ms
            .unwrap_or_else(|| now_ms.saturating_add(min_ttl));
        // Only the claims and the lines are taken out of the command here; its other fields
        // move straight into the record below (bound to locals first, the 48-byte key was
        // copied once more; ADR 0063).
        let claims = cmd.claims;
        let cmd_lines = cmd.lines;
        let units = if claims.is_held() {
            claims.consume();
            Units::Claimed
        } else {
            claims.drop_empty();
            Units::FromGates
        };
        let n_lines = cmd_lines.len().min(MAX_LINES);
        if n_lines > 0 {
            self.hot_sku = idx[0];
        }
        let mut lines = std::mem::take(&mut self.spare_lines);
        lines.clear();
        // Nothing changed a SKU since the check, so its price is the one checked.
        match cmd_lines.into_inner() {
            // One line, held inline (the common case): taken out of the `SmallVec` whole, so
            // the vector is not dropped (its generic drop, through its consumed `IntoIter`,
            // cost ≈ 20 instructions per reserve; ADR 0029 addendum 8).
            Ok([(sku, qty)]) => {
                let unit_price_cents = self.skus[idx[0] as usize].spec.price_cents;
                lines.push(Line {
                    sku,
                    qty,
                    unit_price_cents,
                });
            }
            // A plain loop of pushes: `extend` over the zipped iterator cost ≈ 100
            // instructions for one line (callgrind). The SKU indexes by reference: zipping
            // the array by value copies it.
            Err(cmd_lines) => {
                // (One line needs no room made: its push grows an empty buffer once, and
                // the buffer is kept.)
                lines.reserve(n_lines);
                for ((sku, qty), &i) in cmd_lines.into_iter().zip(idx.iter()) {
                    let unit_price_cents = self.skus[i as usize].spec.price_cents;
                    lines.push(Line {
                        sku,
                        qty,
                        unit_price_cents,
                    });
                }
            }
        }
        // The event is built in its record (built apart and moved in, it was copied).
        let record = LogRecord {
            shard: self.id,
            seq: self.seq + 1,
            event: Event::Reserved {
                id,
                buyer: cmd.buyer,
                lines,
                expires_at_ms,
                idempotency_key: cmd.idempotency_key,
                request_hash: cmd.request_hash,
                group: cmd.group,
                at_ms: now_ms,
            },
        };
        // Debug builds re-check the event in full with the replay check, as `emit` does.
        #[cfg(debug_assertions)]
        if let Err(e) = self.check(&record.event) {
            debug_assert!(false, "command produced an inapplicable event: {e}");
            return Err(super::bug(&e.to_string()));
        }
        sink.record(&record);
        self.seq = record.seq;
        // Applied here, from the record's fields, by replay's own apply of a `Reserved`
        // (ADR 0057): not through `mutate`'s dispatch, which took the event whole.
        let Event::Reserved {
            id,
            buyer,
            lines,
            expires_at_ms,
            idempotency_key,
            request_hash,
            group,
            at_ms,
        } = record.event
        else {
            unreachable!("a reserve logs a Reserved")
        };
        let buyer_handle = self.buyers.acquire(&buyer);
        self.apply_reserved_inline(
            Reserved {
                id,
                expires_at_ms,
                request_hash,
                at_ms,
                // A keyed reservation's key is stored once, shared by its slot and the key
                // map; wrapped here, so only its pointer moves on (ADR 0063).
                idempotency_key: idempotency_key.map(Arc::new),
                group,
            },
            buyer_handle,
            lines,
            units,
            Some(&idx[..n_lines]),
        );
        Ok(ReserveOutcome {
            id,
            replayed: false,
        })
    }

    /// The reservation stored under `key`, if any: `Some(Ok)` for the same request,
    /// `Some(Err(IdempotencyMismatch))` for another request, `None` if the key is unknown.
    pub fn lookup_key(
        &self,
        key: &ScopedKey,
        request_hash: u64,
    ) -> Option<Result<PartView, CommandError>> {
        self.key_hit(key, request_hash).map(|r| {
            r.and_then(|id| {
                self.res(id)
                    .map(|r| self.part_of(r))
                    .ok_or_else(|| bug("idempotency key without reservation"))
            })
        })
    }

    /// The reservation id stored under `key`: `Ok` for the same request, `Err` for another.
    fn key_hit(
        &self,
        key: &ScopedKey,
        request_hash: u64,
    ) -> Option<Result<ReservationId, CommandError>> {
        let id = self.idempotency.get(key)?;
        let r = self.res(*id)?;
        Some(if r.request_hash == request_hash {
            Ok(r.id)
        } else {
            Err(CommandError::IdempotencyMismatch)
        })
    }

    /// Validates a reservation command against the state (lines, SKUs, stock, sale window,
    /// buyer limit, and a total of at most `MAX_MONEY_CENTS` on this shard); writes each
    /// line's SKU index into `idx` and returns the shortest TTL of the lines.
    #[inline(always)]
    fn check_reserve(
        &self,
        now_ms: u64,
        cmd: &ReserveCommand,
        idx: &mut [u32; MAX_LINES],
    ) -> Result<u64, CommandError> {
        // The lines' slice, taken once: each `SmallVec` access tests whether it spilled
        // (ADR 0057).
        let lines = cmd.lines.as_slice();
        // The home part of a cross-shard reservation may hold no line (ADR 0003).
        let empty_home = lines.is_empty() && cmd.group.is_some() && cmd.id.is_none();
        // Lines are validated once: a command with held claims was planned by the caller
        // (`prepare_reserve`), which validated the request's lines before claiming them (the
        // claims are then matched to the lines one by one below; debug builds re-check the
        // event in full before applying it).
        // Whether the caller claimed the units, tested once (a `SmallVec` test each time).
        let held = cmd.claims.is_held();
        if !empty_home && !held {
            match lines {
                // One line (the common case): only its quantity can be wrong.
                [(sku, 0)] => return Err(zero_qty(sku)),
                [_] => {}
                lines => validate_lines(lines.iter().map(|(s, q)| (s, *q)))?,
            }
        }
        if let Some(id) = cmd.id {
            if self.reservations.contains(self.id, id) {
                return Err(bug(&format!("reservation {id} exists")));
            }
        }
        if let Some(exp) = cmd.expires_at_ms {
            if exp <= now_ms {
                // The coordination took longer than the hold: nothing is acknowledged, and a
                // retry starts a fresh hold.
                return Err(CommandError::Busy(
                    "the reservation expired before all its parts were held; retry".into(),
                ));
            }
        }
        let mut claims = cmd.claims.iter();
        if held && cmd.claims.len() != lines.len() {
            return Err(bug("claims out of step with the lines"));
        }
        let mut min_ttl = u64::MAX;
        // The total as `checked_total_cents` sums it, in this loop rather than a second one
        // over the lines and prices (`None` = it overflowed); checked after the per-line
        // checks, which come first.
        let mut total_cents = Some(0u64);
        for (i, (sku, qty)) in lines.iter().enumerate() {
            let Some(idx_of) = self.sku_idx(sku) else {
                return Err(CommandError::SkuNotFound(sku.clone()));
            };
            let s = &self.skus[idx_of as usize];
            if let Some(c) = claims.next() {
                if !c.is_on(&s.gate) || c.qty() != u64::from(*qty) {
                    return Err(bug("a claim does not match its line"));
                }
            }
            line_check(s, *qty, || self.used_idx(&cmd.buyer, idx_of), now_ms)?;
            min_ttl = min_ttl.min(s.spec.reservation_ttl_ms);
            total_cents = total_cents
                .and_then(|t| t.checked_add(u64::from(*qty).checked_mul(s.spec.price_cents)?));
            if let Some(x) = idx.get_mut(i) {
                *x = idx_of;
            }
        }
        if total_cents.is_none_or(|t| t > MAX_MONEY_CENTS) {
            return Err(CommandError::Invalid(format!(
                "reservation total exceeds the maximum of {MAX_MONEY_CENTS} cents"
            )));
        }
        Ok(min_ttl)
    }
}

/// Checks one line against a SKU: stock, sale window, buyer limit (in that order). `used`
/// (the buyer's units of this SKU) is only looked up when the SKU has a per-buyer limit.
/// Always inlined into [`Shard::check_reserve`], its one caller (a call per line cost ≈ 32
/// instructions per reserve of one line; ADR 0029 addendum 8); its errors are built in
/// the cold paths.
#[inline(always)]
fn line_check(
    s: &SkuState,
    qty: u32,
    used: impl FnOnce() -> u64,
    now_ms: u64,
) -> Result<(), CommandError> {
    let q = u64::from(qty);
    if s.available() < q {
        return Err(CommandError::SoldOut {
            sku: s.spec.sku.clone(),
            available: s.available(),
        });
    }
    if !s.sale_open(now_ms) {
        return Err(CommandError::SaleNotOpen {
            sku: s.spec.sku.clone(),
            starts_at_ms: s.spec.sale_starts_at_ms,
            ends_at_ms: s.spec.sale_ends_at_ms,
        });
    }
    if let Some(limit) = s.spec.per_buyer_limit {
        let used = used();
        if used + q > u64::from(limit) {
            return Err(CommandError::BuyerLimit {
                sku: s.spec.sku.clone(),
                limit,
                already: used,
            });
        }
    }
    Ok(())
}

/// Validates the shape of reservation lines: 1..=MAX_LINES, qty ≥ 1, no SKU twice.
pub fn validate_lines<'a>(
    lines: impl ExactSizeIterator<Item = (&'a SkuId, u32)> + Clone,
) -> Result<(), CommandError> {
    let n = lines.len();
    if n == 0 {
        return Err(CommandError::Invalid(
            "a reservation needs at least one line".into(),
        ));
    }
    if n > MAX_LINES {
        return Err(CommandError::Invalid(format!(
            "at most {MAX_LINES} lines per reservation"
        )));
    }
    for (i, (sku, qty)) in lines.clone().enumerate() {
        if qty == 0 {
            return Err(zero_qty(sku));
        }
        if lines.clone().take(i).any(|(other, _)| other == sku) {
            return Err(CommandError::Invalid(format!("SKU {sku} appears twice")));
        }
    }
    Ok(())
}

/// The error of a line with quantity 0.
fn zero_qty(sku: &SkuId) -> CommandError {
    CommandError::Invalid(format!("qty of {sku} must be at least 1"))
}
