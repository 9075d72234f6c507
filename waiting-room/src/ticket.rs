//! Tickets: one per buyer and queue, numbered from 1 in join order, and what a poll shows.

use flashsale_protocol::{BuyerId, ReservationId};

/// What an admitted pass is doing with its (one) reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// No reservation: the pass may reserve.
    Idle,
    /// A reservation with this pass is being placed (not logged: a restart forgets it).
    Reserving,
    /// Restored idle after a restart, not yet checked against the engine's held
    /// reservations of its buyer (its `HoldPlaced` may have been lost): refused (`PassError::Checking`, 503)
    /// until [`crate::WaitingRoom::pass_checked`] (ADR 0034).
    Checking,
    /// The pass holds this reservation.
    Holding(ReservationId),
}

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    /// Joined before the start: waits for the shuffle.
    Prequeue,
    /// In the line. `order` is its place in the ordered part of the line (the shuffled
    /// pre-queue, then fifo arrivals); `None` = in the random pool.
    Waiting {
        /// Place in the ordered line, from 0 (`None` in the random pool).
        order: Option<u64>,
    },
    /// Admitted with a pass.
    Admitted {
        /// When, Unix ms.
        admitted_at_ms: u64,
        /// Its place in the queue's admission order (1 = admitted first).
        admission: u64,
        /// When the pass expires, Unix ms.
        pass_expires_at_ms: u64,
        /// The pass's reservation.
        hold: Hold,
    },
    /// The pass was spent by a confirmed reservation.
    Spent {
        /// When, Unix ms.
        at_ms: u64,
    },
    /// The pass expired unused (or its reservation ended after its expiry).
    Expired {
        /// When, Unix ms.
        at_ms: u64,
    },
}

/// One buyer's ticket.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The buyer.
    pub buyer: BuyerId,
    /// When the buyer joined, Unix ms.
    pub joined_at_ms: u64,
    /// Its state.
    pub state: TicketState,
}

/// A ticket's status as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketStatus {
    /// Waiting for admission (or for the start).
    Waiting,
    /// Admitted: the pass may reserve.
    Admitted,
    /// Waiting, but nothing of the queue's SKUs is unclaimed now.
    SoldOut,
    /// The pass bought (a reservation with it was confirmed).
    Spent,
    /// The pass expired.
    Expired,
}

impl TicketStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Waiting => "waiting",
            TicketStatus::Admitted => "admitted",
            TicketStatus::SoldOut => "sold_out",
            TicketStatus::Spent => "spent",
            TicketStatus::Expired => "expired",
        }
    }
}

/// What a join or a poll returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    /// The ticket number (from 1, per queue).
    pub ticket: u64,
    /// The buyer.
    pub buyer: BuyerId,
    /// Its status.
    pub status: TicketStatus,
    /// Place in line (1 = next), when known (ordered part of the line only).
    pub position: Option<u64>,
    /// Estimated wait until admission, in s (waiting tickets).
    pub eta_s: Option<u64>,
    /// When to poll again, in ms (absent when nothing more will change by itself).
    pub poll_after_ms: Option<u64>,
    /// The pass (admitted tickets).
    pub pass: Option<String>,
    /// When the pass expires, Unix ms.
    pub pass_expires_at_ms: Option<u64>,
    /// When the ticket was admitted, Unix ms (admitted tickets).
    pub admitted_at_ms: Option<u64>,
    /// Its place in the queue's admission order, 1 = admitted first (admitted tickets): what
    /// fairness is checked against, exact where `admitted_at_ms` ties within a tick.
    pub admission: Option<u64>,
}
