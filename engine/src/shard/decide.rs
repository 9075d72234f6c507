//! Deciding a reservation: confirm and cancel on its home shard, and the parts on other
//! shards following that decision.

use flashsale_protocol::event::Group;
use flashsale_protocol::{Event, OrderId, ReleaseReason, ReservationId};

use super::store::Reservation;
use super::{EventSink, FollowAction, Shard, MAX_PAYMENT_REF_LEN};
use crate::command::CommandError;
use crate::view::ReservationStatus;

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
        payment_ref: String,
        sink: &mut impl EventSink,
    ) -> Result<DecideOutcome, CommandError> {
        if payment_ref.is_empty() || payment_ref.len() > MAX_PAYMENT_REF_LEN {
            return Err(CommandError::Invalid(format!(
                "payment_ref must be 1..={MAX_PAYMENT_REF_LEN} bytes"
            )));
        }
        let r = self.home_reservation(id)?;
        match r.status {
            ReservationStatus::Held if now_ms >= r.expires_at_ms => {
                Err(CommandError::InvalidState {
                    id,
                    status: ReservationStatus::Expired,
                })
            }
            ReservationStatus::Held => {
                let group = r.group;
                let order = OrderId::compose(self.id, self.next_order);
                let follow = group.map(|group| Decision {
                    id,
                    group,
                    action: FollowAction::Confirm {
                        order,
                        payment_ref: payment_ref.clone(),
                        at_ms: now_ms,
                    },
                });
                self.emit(
                    Event::Confirmed {
                        id,
                        order,
                        payment_ref,
                        at_ms: now_ms,
                    },
                    sink,
                )?;
                Ok(DecideOutcome {
                    id,
                    order: Some(order),
                    follow,
                })
            }
            ReservationStatus::Confirmed if r.payment_ref == payment_ref => Ok(DecideOutcome {
                id,
                order: r.order,
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
                let group = r.group;
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
        match self.res(id) {
            Some(r) if r.status == ReservationStatus::Held => {}
            _ => return Ok(false),
        }
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
        };
        self.emit(event, sink)?;
        Ok(true)
    }

    /// A reservation this shard is home of and that was not rolled back.
    fn home_reservation(&self, id: ReservationId) -> Result<&Reservation, CommandError> {
        if id.shard() != self.id {
            return Err(CommandError::ReservationNotFound(id));
        }
        self.res(id)
            .filter(|r| r.release_reason != Some(ReleaseReason::Aborted))
            .ok_or(CommandError::ReservationNotFound(id))
    }
}
