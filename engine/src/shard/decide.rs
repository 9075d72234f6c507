//! Deciding a reservation: confirm, cancel and extend on its home shard, and the parts on
//! other shards following that decision.

use flashsale_protocol::event::Group;
use flashsale_protocol::PaymentRef;
use flashsale_protocol::{
    Event, LogRecord, OrderId, ReleaseReason, RequestKey, ReservationId, ScopedKey, SkuId,
};

use super::apply::ConfirmRest;
use super::store::Reservation;
use super::{EventSink, FollowAction, Shard, MAX_PAYMENT_REF_LEN};
use crate::command::{CommandError, HoldLimit};
use crate::view::{ReservationStatus, SkuView};

/// An extension as the home shard checks it: the new hold and the bounds of the
/// reservation's lines (all of them, on every shard: the caller works them out from the SKUs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendCommand {
    /// The reservation.
    pub id: ReservationId,
    /// The hold asked for, from now, in ms.
    pub ttl_ms: u64,
    /// The strictest `max_hold_ms` of the lines, and its SKU.
    pub max_hold: (u64, flashsale_protocol::SkuId),
    /// The strictest `max_extensions` of the lines, and its SKU.
    pub max_extensions: (u32, flashsale_protocol::SkuId),
    /// The caller's idempotency key, if any: an extension already made with it is answered
    /// as the reservation is, without a new event (ADR 0015, addendum).
    pub key: Option<ScopedKey>,
}

impl ExtendCommand {
    /// An extension of `id` by `ttl_ms` whose bounds are the strictest of `skus` (the SKUs of
    /// every line of the reservation, read now): the shortest `max_hold_ms` and the fewest
    /// `max_extensions`, each with the first SKU that has it (the cart rule of a multi-line
    /// hold). A reservation without lines is an internal error.
    pub fn strictest_of<'a>(
        id: ReservationId,
        ttl_ms: u64,
        key: Option<ScopedKey>,
        skus: impl IntoIterator<Item = &'a SkuView>,
    ) -> Result<Self, CommandError> {
        let mut max_hold: Option<(u64, &SkuId)> = None;
        let mut max_extensions: Option<(u32, &SkuId)> = None;
        for sku in skus {
            if max_hold.is_none_or(|(m, _)| sku.max_hold_ms < m) {
                max_hold = Some((sku.max_hold_ms, &sku.sku));
            }
            if max_extensions.is_none_or(|(m, _)| sku.max_extensions < m) {
                max_extensions = Some((sku.max_extensions, &sku.sku));
            }
        }
        let (Some((hold_ms, hold_sku)), Some((extensions, extensions_sku))) =
            (max_hold, max_extensions)
        else {
            return Err(CommandError::Internal(format!("{id} has no lines")));
        };
        Ok(ExtendCommand {
            id,
            ttl_ms,
            max_hold: (hold_ms, hold_sku.clone()),
            max_extensions: (extensions, extensions_sku.clone()),
            key,
        })
    }
}

/// What part shards must do after the home shard decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The reservation.
    pub id: ReservationId,
    /// Its group (which shards hold parts).
    pub group: Group,
    /// What the parts follow with.
    pub action: FollowAction,
}

/// Result of confirm / cancel on the home shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecideOutcome {
    /// The reservation (its view: [`Shard::reservation`]).
    pub id: ReservationId,
    /// The order, once confirmed.
    pub order: Option<OrderId>,
    /// Set when part shards must follow (only for a fresh decision on a group).
    pub follow: Option<Decision>,
}

impl Shard {
    /// Confirms a held reservation on its home shard: allocates the order id.
    /// Confirming again with the same `payment_ref` returns the same order.
    pub fn confirm(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        payment_ref: impl Into<PaymentRef>,
        sink: &mut impl EventSink,
    ) -> Result<DecideOutcome, CommandError> {
        let payment_ref = payment_ref.into();
        if payment_ref.is_empty() || payment_ref.len() > MAX_PAYMENT_REF_LEN {
            return Err(CommandError::Invalid(format!(
                "payment_ref must be 1..={MAX_PAYMENT_REF_LEN} bytes"
            )));
        }
        // One store lookup per confirm (ADR 0057): the reservation's slot is found here, checked,
        // and the `Confirmed` applied to it once logged ([`ConfirmRest::confirm`], replay's
        // code), instead of a lookup to check and another to apply.
        if id.shard() != self.id {
            return Err(CommandError::ReservationNotFound(id));
        }
        let order = OrderId::compose(self.id, self.next_order);
        // Debug builds check the event in full with the replay check, as `emit` does; made
        // before the slot is borrowed (nothing changes in between) and asserted only if the
        // event is emitted.
        #[cfg(debug_assertions)]
        let checked = self.check(&Event::Confirmed {
            id,
            order,
            payment_ref: payment_ref.clone(),
            at_ms: now_ms,
        });
        let (shard, seq) = (self.id, self.seq);
        let r = match self.reservations.get_mut(shard, id) {
            Some(r) if r.release_reason != Some(ReleaseReason::Aborted) => r,
            _ => return Err(CommandError::ReservationNotFound(id)),
        };
        match r.status {
            ReservationStatus::Held if now_ms >= r.expires_at_ms => {
                Err(CommandError::InvalidState {
                    id,
                    status: ReservationStatus::Expired,
                })
            }
            ReservationStatus::Held => {
                #[cfg(debug_assertions)]
                if let Err(e) = checked {
                    debug_assert!(false, "command produced an inapplicable event: {e}");
                    return Err(super::bug(&e.to_string()));
                }
                let record = LogRecord {
                    shard,
                    seq: seq + 1,
                    event: Event::Confirmed {
                        id,
                        order,
                        payment_ref,
                        at_ms: now_ms,
                    },
                };
                sink.record(&record);
                self.seq = record.seq;
                let Event::Confirmed { payment_ref, .. } = record.event else {
                    unreachable!("a confirm logs a Confirmed")
                };
                let rest = ConfirmRest {
                    shard,
                    skus: &mut self.skus,
                    buyers: &mut self.buyers,
                    orders: &mut self.orders,
                    next_order: &mut self.next_order,
                };
                rest.confirm(r, order, payment_ref, now_ms);
                // A reservation without a group (nearly all) answers without building a
                // follow: its own return writes `None` alone, where one return of a `follow`
                // built either way copied the whole `Option<Decision>` (ADR 0063).
                let Some(group) = r.group() else {
                    return Ok(DecideOutcome {
                        id,
                        order: Some(order),
                        follow: None,
                    });
                };
                // The parts follow with the reference the reservation now holds.
                Ok(DecideOutcome {
                    id,
                    order: Some(order),
                    follow: Some(Decision {
                        id,
                        group,
                        action: FollowAction::Confirm {
                            order,
                            payment_ref: r.payment_ref.clone(),
                            at_ms: now_ms,
                        },
                    }),
                })
            }
            ReservationStatus::Confirmed if r.payment_ref == payment_ref => Ok(DecideOutcome {
                id,
                order: r.order(),
                follow: None,
            }),
            status => Err(CommandError::InvalidState { id, status }),
        }
    }

    /// Cancels a held reservation on its home shard. Cancelling a released one again is a no-op.
    pub fn cancel(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        sink: &mut impl EventSink,
    ) -> Result<DecideOutcome, CommandError> {
        let r = self.home_reservation(id)?;
        match r.status {
            ReservationStatus::Held => {
                let group = r.group();
                self.emit(
                    Event::Released {
                        id,
                        reason: ReleaseReason::Cancelled,
                        at_ms: now_ms,
                    },
                    sink,
                )?;
                Ok(DecideOutcome {
                    id,
                    order: None,
                    follow: group.map(|group| Decision {
                        id,
                        group,
                        action: FollowAction::Release(ReleaseReason::Cancelled),
                    }),
                })
            }
            ReservationStatus::Released => Ok(DecideOutcome {
                id,
                order: None,
                follow: None,
            }),
            status => Err(CommandError::InvalidState { id, status }),
        }
    }

    /// Moves a held reservation's expiry to `now + ttl_ms` on its home shard (never earlier
    /// than it is), within the reservation's maximum hold (from its creation) and number of
    /// extensions; past either, nothing changes. A reservation whose hold already ran out is
    /// `Expired` even before the expiry pass released it.
    pub fn extend(
        &mut self,
        now_ms: u64,
        cmd: &ExtendCommand,
        sink: &mut impl EventSink,
    ) -> Result<DecideOutcome, CommandError> {
        let id = cmd.id;
        let r = self.home_reservation(id)?;
        // A retry of an extension already made answers the reservation as it is now; the same
        // key with another hold asked for is another request.
        if let Some(key) = &cmd.key {
            if let Some(found) = r.extension_keys().iter().find(|k| &k.key == key) {
                if found.request_hash != cmd.ttl_ms {
                    return Err(CommandError::IdempotencyMismatch);
                }
                return Ok(DecideOutcome {
                    id,
                    order: r.order(),
                    follow: None,
                });
            }
        }
        match r.status {
            ReservationStatus::Held if now_ms >= r.expires_at_ms => {
                return Err(CommandError::InvalidState {
                    id,
                    status: ReservationStatus::Expired,
                })
            }
            ReservationStatus::Held => {}
            status => return Err(CommandError::InvalidState { id, status }),
        }
        let (max_extensions, ext_sku) = &cmd.max_extensions;
        if r.extensions() >= *max_extensions {
            return Err(CommandError::HoldLimit {
                sku: ext_sku.clone(),
                limit: HoldLimit::MaxExtensions,
                value: u64::from(*max_extensions),
                detail: format!(
                    "{id} was extended {} times: the max_extensions of {ext_sku} is {max_extensions}",
                    r.extensions()
                ),
            });
        }
        let (max_hold_ms, hold_sku) = &cmd.max_hold;
        let expires_at_ms = r.expires_at_ms.max(now_ms.saturating_add(cmd.ttl_ms));
        let latest = r.created_at_ms.saturating_add(*max_hold_ms);
        if expires_at_ms > latest {
            return Err(CommandError::HoldLimit {
                sku: hold_sku.clone(),
                limit: HoldLimit::MaxHold,
                value: *max_hold_ms,
                detail: format!(
                    "a hold until then would last {} s from the reservation's creation: the \
                     max_hold_s of {hold_sku} is {} s ({} s left)",
                    (expires_at_ms - r.created_at_ms).div_ceil(1000),
                    max_hold_ms / 1000,
                    latest.saturating_sub(now_ms) / 1000
                ),
            });
        }
        let extensions = r.extensions() + 1;
        let group = r.group();
        self.emit(
            Event::Extended {
                id,
                expires_at_ms,
                extensions,
                key: cmd.key.clone().map(|key| RequestKey {
                    key,
                    request_hash: cmd.ttl_ms,
                }),
                at_ms: now_ms,
            },
            sink,
        )?;
        Ok(DecideOutcome {
            id,
            order: None,
            follow: group.map(|group| Decision {
                id,
                group,
                action: FollowAction::Extend {
                    expires_at_ms,
                    extensions,
                },
            }),
        })
    }

    /// Applies a decision taken elsewhere (the home shard, or a rollback) to this shard's part.
    /// A part that is not held (or unknown) is left alone: following is idempotent.
    /// Returns whether anything changed.
    pub fn follow(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        action: &FollowAction,
        sink: &mut impl EventSink,
    ) -> Result<bool, CommandError> {
        let extensions_now = match self.res(id) {
            Some(r) if r.status == ReservationStatus::Held => r.extensions(),
            _ => return Ok(false),
        };
        let event = match action {
            FollowAction::Confirm {
                order,
                payment_ref,
                at_ms,
            } => Event::Confirmed {
                id,
                order: *order,
                payment_ref: payment_ref.clone(),
                at_ms: *at_ms,
            },
            FollowAction::Release(reason) => Event::Released {
                id,
                reason: *reason,
                at_ms: now_ms,
            },
            // An extension this part already has (a repeated message) changes nothing.
            FollowAction::Extend { extensions, .. } if *extensions <= extensions_now => {
                return Ok(false)
            }
            FollowAction::Extend {
                expires_at_ms,
                extensions,
            } => Event::Extended {
                id,
                expires_at_ms: *expires_at_ms,
                extensions: *extensions,
                key: None,
                at_ms: now_ms,
            },
        };
        self.emit(event, sink)?;
        Ok(true)
    }

    /// A reservation this shard is home of and that was not rolled back.
    fn home_reservation(&self, id: ReservationId) -> Result<&Reservation, CommandError> {
        if id.shard() != self.id {
            return Err(CommandError::ReservationNotFound(id));
        }
        // A match, not `ok_or`: that builds (and drops) the error on every success.
        match self.res(id) {
            Some(r) if r.release_reason != Some(ReleaseReason::Aborted) => Ok(r),
            _ => Err(CommandError::ReservationNotFound(id)),
        }
    }
}
