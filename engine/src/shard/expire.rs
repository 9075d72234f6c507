//! Time passing: expiring held reservations whose TTL ran out, and forgetting settled ones
//! after the retention period.

use std::cmp::Reverse;

use flashsale_protocol::{Event, ReleaseReason, ReservationId, SkuId};

use super::sku::sku_at;
use super::{Decision, EventSink, FollowAction, Shard};
use crate::command::CommandError;
use crate::limits::PART_RESOLVE_GRACE_MS;
use crate::view::ReservationStatus;

/// Result of an expiry pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireOutcome {
    /// Reservations expired.
    pub expired: usize,
    /// Group reservations whose parts must follow.
    pub follows: Vec<Decision>,
    /// SKUs whose stock changed.
    pub skus: Vec<SkuId>,
    /// Settled reservations dropped after their retention period.
    pub forgotten: usize,
}

impl Shard {
    /// Expires at most `max` home reservations whose TTL passed, then drops at most `max`
    /// settled (released / expired) reservations older than the retention period (bounded
    /// work per call). Dropping logs nothing: it is a pure function of the state and `now_ms`
    /// that only ever removes reservations no command can change any more.
    pub fn expire(
        &mut self,
        now_ms: u64,
        max: usize,
        sink: &mut impl EventSink,
    ) -> Result<ExpireOutcome, CommandError> {
        self.expire_except(now_ms, max, |_| false, sink)
    }

    /// [`Shard::expire`], leaving alone the reservations `busy` names (cross-shard
    /// reservations still being coordinated: their coordinator decides their fate). Their
    /// expiry stays scheduled for a later pass.
    pub fn expire_except(
        &mut self,
        now_ms: u64,
        max: usize,
        busy: impl Fn(ReservationId) -> bool,
        sink: &mut impl EventSink,
    ) -> Result<ExpireOutcome, CommandError> {
        let mut out = ExpireOutcome::default();
        let mut later = Vec::new();
        let mut pops = 0usize;
        let pop_budget = max.saturating_mul(8).saturating_add(64);
        while out.expired < max && pops < pop_budget {
            let Some(&Reverse((at, id))) = self.expiry.peek() else {
                break;
            };
            if at > now_ms {
                break;
            }
            self.expiry.pop();
            pops += 1;
            if busy(id) {
                later.push(Reverse((at, id)));
                continue;
            }
            let (group, skus) = match self.res(id) {
                Some(r) if r.status == ReservationStatus::Held && r.expires_at_ms == at => (
                    r.group(),
                    r.lines
                        .as_slice()
                        .iter()
                        .map(|l| sku_at(&self.skus, l.sku).spec.sku.clone())
                        .collect::<Vec<_>>(),
                ),
                _ => continue,
            };
            self.emit(
                Event::Released {
                    id,
                    reason: ReleaseReason::Expired,
                    at_ms: now_ms,
                },
                sink,
            )?;
            out.expired += 1;
            out.skus.extend(skus);
            if let Some(group) = group {
                out.follows.push(Decision {
                    id,
                    group,
                    action: FollowAction::Release(ReleaseReason::Expired),
                });
            }
        }
        self.expiry.extend(later);
        out.forgotten = self.forget(now_ms, max);
        Ok(out)
    }

    /// Drops at most `max` released / expired reservations whose release is at least
    /// `retention_ms` old, with their idempotency keys. Returns how many were dropped.
    pub fn forget(&mut self, now_ms: u64, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(&(at, id)) = self.settled.front() else {
                break;
            };
            if at.saturating_add(self.retention_ms) > now_ms {
                break;
            }
            self.settled.pop_front();
            let Some(r) = self.reservations.remove(self.id, id) else {
                continue;
            };
            debug_assert!(matches!(
                r.status,
                ReservationStatus::Released | ReservationStatus::Expired
            ));
            if let Some(key) = &r.idempotency_key {
                if self.idempotency.get(key) == Some(&id) {
                    self.idempotency.remove(key);
                }
            }
            if id.shard() == self.id {
                self.buyers
                    .remove_reservation(r.buyer_handle, r.created_at_ms, id);
            }
            self.buyers.release(r.buyer_handle);
            n += 1;
        }
        n
    }

    /// Earliest pending expiry (a hint for timers; may name an already-settled reservation).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// Parts of other shards' reservations still held [`PART_RESOLVE_GRACE_MS`] after their
    /// expiry (at most `max`): their home's decision never reached this shard, so the caller
    /// asks the home. Each is asked about again one grace period later while still held.
    pub fn stale_parts(&mut self, now_ms: u64, max: usize) -> Vec<ReservationId> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&Reverse((at, id))) = self.part_expiry.peek() else {
                break;
            };
            if at.saturating_add(PART_RESOLVE_GRACE_MS) > now_ms {
                break;
            }
            self.part_expiry.pop();
            if self
                .res(id)
                .is_some_and(|r| r.status == ReservationStatus::Held)
            {
                out.push(id);
                self.part_expiry.push(Reverse((now_ms, id)));
            }
        }
        out
    }
}
