//! The waiting room's errors as problems: pass checks (403 `pass-required` / `pass-invalid`,
//! each failure with its own `reason`), joins (404 unknown queue, 409 `queue-closed`),
//! configuration (422 naming the `field`) and the journal (503).

use flashsale_persistence::JournalError;
use flashsale_waiting_room::{ConfigureError, JoinError, PassError, TicketError};

use super::problem::{Problem, ProblemKind};
use super::wire::format_ms;
use crate::waiting_room::QueueServiceError;

impl From<PassError> for Problem {
    fn from(e: PassError) -> Self {
        let detail = e.to_string();
        let reason = match &e {
            PassError::Required { queue } => {
                return Problem::new(ProblemKind::PassRequired, detail)
                    .with("queue", queue.as_str());
            }
            PassError::Forged => "forged",
            PassError::Expired => "expired",
            PassError::Spent => "spent",
            PassError::OtherBuyer => "other-buyer",
            PassError::OtherQueue { .. } => "other-queue",
            PassError::SeveralQueues { .. } => "several-queues",
            PassError::InUse => "in-use",
            PassError::Checking => {
                // Transient (ADR 0034): the ticker checks it within a few ticks.
                let mut p = Problem::new(ProblemKind::Unavailable, detail);
                p.retry_after_s = Some(1);
                return p;
            }
        };
        Problem::new(ProblemKind::PassInvalid, detail).with("reason", reason)
    }
}

impl From<JoinError> for Problem {
    fn from(e: JoinError) -> Self {
        let detail = e.to_string();
        match e {
            JoinError::UnknownQueue(q) => Problem::not_found(detail).with("queue", q.as_str()),
            JoinError::NotOpen { queue, opens_at_ms } => {
                Problem::new(ProblemKind::QueueClosed, detail)
                    .with("queue", queue.as_str())
                    .with("opens_at", format_ms(opens_at_ms))
            }
            JoinError::Full(q) => {
                Problem::new(ProblemKind::QueueClosed, detail).with("queue", q.as_str())
            }
        }
    }
}

impl From<TicketError> for Problem {
    fn from(e: TicketError) -> Self {
        Problem::not_found(e.to_string())
    }
}

impl From<JournalError> for Problem {
    fn from(e: JournalError) -> Self {
        let mut p = Problem::new(ProblemKind::Unavailable, format!("{e}; retry later"));
        p.retry_after_s = Some(1);
        p
    }
}

impl From<ConfigureError> for Problem {
    fn from(e: ConfigureError) -> Self {
        match e {
            ConfigureError::Invalid(c) => Problem::invalid(c.to_string()).with("field", c.field),
            ConfigureError::TooManyQueues => Problem::new(ProblemKind::InvalidState, e.to_string()),
        }
    }
}

impl From<QueueServiceError> for Problem {
    fn from(e: QueueServiceError) -> Self {
        match e {
            QueueServiceError::Configure(e) => e.into(),
            QueueServiceError::Join(e) => e.into(),
            QueueServiceError::Journal(e) => e.into(),
        }
    }
}
