//! A fair, stock-aware waiting room in front of a flash sale, as a pure state machine (no I/O:
//! time, randomness and the engine's stock counts come in from the caller; changes go out as
//! [`QueueRecord`](flashsale_protocol::queue::QueueRecord)s to log).
//!
//! - [`room`]: every queue, the decisions (start, admission at the rate within `max_active`
//!   and unclaimed units × overbooking, pass expiry) and the pass checks of reservations.
//! - [`queue`]: one queue's tickets and line, changed only by applying records.
//! - [`config`]: validation of a queue's configuration, errors naming the field.
//! - [`pass`]: HMAC-SHA256 passes over queue, buyer, ticket and expiry.
//! - [`ticket`]: tickets and what a poll shows; [`poll`]: the poll interval and wait estimate.
//! - [`limits`]: every bound and default.

pub mod config;
pub mod limits;
pub mod pass;
pub mod poll;
pub mod queue;
pub mod room;
pub mod ticket;

pub use config::ConfigError;
pub use pass::{PassClaims, PassError, PassKey};
pub use poll::PollSpread;
pub use queue::{ApplyError, Counts, Phase, Queue};
pub use room::{
    ConfigureError, HoldGuard, JoinError, PassCheck, PassToCheck, QueueView, TicketError,
    WaitingRoom,
};
pub use ticket::{Hold, Ticket, TicketState, TicketStatus, TicketView};
