//! The coordinator of one cross-shard reservation: a sans-IO state machine that runs on the
//! reservation's home shard. It takes events (the home part became durable, a part answered,
//! a rolled-back part acknowledged) and returns actions for its driver; it never does I/O.
//!
//! ```text
//! HomePending --home durable--> PartsPending --all parts held--> Done(Ok)
//!      |                             |
//!      +--home failed--> Done(Err)   +--a part refused--> RollingBack --all acked--> Done(Err)
//! ```
//!
//! A [`Event::Deadline`] ends a coordination that waits too long (a shard that never answers):
//! unanswered parts count as failed, unacknowledged rollbacks as done (such a part asks its
//! home later, see `Shard::stale_parts`), so no coordination holds stock or its key forever.
//!
//! Every part that was *sent* is rolled back on failure, whatever it answered: a part whose
//! log failed has applied its hold in memory and must release it too. The home part is
//! released last, so its idempotency key stays "in progress" until the stock is back.

use flashsale_protocol::limits::checked_total_cents;
use flashsale_protocol::{ReservationId, ShardId, MAX_LINES};

use crate::command::CommandError;
use crate::shard::{assemble_reservation, PartView, ReserveCommand};
use crate::view::ReservationView;

/// Where a coordination stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The home part is applied; waiting for it to be durable.
    HomePending,
    /// The other parts were sent; waiting for their answers.
    PartsPending,
    /// A part failed; waiting for the parts to acknowledge their rollback.
    RollingBack,
    /// Finished (the outcome was returned as [`Action::Finish`]).
    Done,
}

/// One non-home part.
#[derive(Debug)]
enum PartState {
    /// Waiting to be sent (holds the command and its claims).
    Unsent(Box<ReserveCommand>),
    /// Sent; no answer yet.
    Sent,
    /// Durably held.
    Held(PartView),
    /// Refused or failed (may hold in memory if its log failed).
    Failed,
    /// Told to roll back; no acknowledgement yet.
    Aborting,
    /// Rolled back.
    Aborted,
}

#[derive(Debug)]
struct Part {
    shard: ShardId,
    state: PartState,
}

/// What the driver reports to a coordination.
#[derive(Debug)]
pub enum Event {
    /// The home part is durable; its view.
    HomeDurable(PartView),
    /// The home part could not be made durable.
    HomeFailed(CommandError),
    /// A part answered.
    PartReplied {
        /// The part's shard.
        shard: ShardId,
        /// Its view, or why it failed.
        result: Result<PartView, CommandError>,
    },
    /// A part acknowledged its rollback.
    PartRolledBack {
        /// The part's shard.
        shard: ShardId,
    },
    /// The home part is no longer held (it expired while the parts were pending).
    HomeLost,
    /// The coordination ran past its deadline (a shard never answered).
    Deadline,
}

/// What a coordination asks its driver to do.
#[derive(Debug)]
pub enum Action {
    /// Send a part its command (the command carries the reservation id and claims).
    SendPart {
        /// The part's shard.
        shard: ShardId,
        /// The command.
        cmd: Box<ReserveCommand>,
    },
    /// Roll a part back (release it as aborted, acknowledged).
    AbortPart {
        /// The part's shard.
        shard: ShardId,
    },
    /// Roll the home part back.
    AbortHome,
    /// The outcome, for the caller and every duplicate waiting on the key.
    Finish(Result<ReservationView, CommandError>),
}

/// One cross-shard reservation being coordinated by its home shard.
#[derive(Debug)]
pub struct Coordination {
    id: ReservationId,
    phase: Phase,
    home: Option<PartView>,
    parts: Vec<Part>,
    failure: Option<CommandError>,
    started_ms: u64,
}

impl Coordination {
    /// Starts coordinating `id`, whose home part is applied but not yet durable; `parts` are
    /// the other parts' shards and commands (with their claims).
    pub fn new(id: ReservationId, parts: Vec<(ShardId, ReserveCommand)>, now_ms: u64) -> Self {
        assert!(!parts.is_empty(), "a coordination needs other parts");
        assert!(parts.len() < 64, "more parts than shards");
        Coordination {
            id,
            phase: Phase::HomePending,
            home: None,
            parts: parts
                .into_iter()
                .map(|(shard, mut cmd)| {
                    cmd.id = Some(id);
                    Part {
                        shard,
                        state: PartState::Unsent(Box::new(cmd)),
                    }
                })
                .collect(),
            failure: None,
            started_ms: now_ms,
        }
    }

    /// When the coordination began, Unix ms.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// The reservation.
    pub fn id(&self) -> ReservationId {
        self.id
    }

    /// Where it stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Feeds one event; returns what to do, in order.
    pub fn on(&mut self, event: Event) -> Vec<Action> {
        match (self.phase, event) {
            (Phase::HomePending, Event::HomeDurable(view)) => self.send_parts(view),
            (Phase::HomePending, Event::HomeFailed(e)) => {
                self.phase = Phase::Done;
                // The unsent commands drop here, giving their claims back.
                self.parts.clear();
                vec![Action::AbortHome, Action::Finish(Err(e))]
            }
            (Phase::PartsPending, Event::PartReplied { shard, result }) => {
                self.part_replied(shard, result);
                self.after_reply()
            }
            (Phase::PartsPending, Event::HomeLost) => {
                self.failure.get_or_insert(CommandError::Busy(
                    "the reservation expired before all its parts were held; retry".into(),
                ));
                self.after_reply()
            }
            (Phase::RollingBack, Event::PartRolledBack { shard }) => {
                for p in self.parts.iter_mut().filter(|p| p.shard == shard) {
                    if matches!(p.state, PartState::Aborting) {
                        p.state = PartState::Aborted;
                    }
                }
                self.after_rollback_ack()
            }
            (Phase::PartsPending, Event::Deadline) => {
                // Parts that never answered count as failed (and are rolled back too).
                for p in &mut self.parts {
                    if matches!(p.state, PartState::Sent) {
                        p.state = PartState::Failed;
                    }
                }
                self.failure.get_or_insert(CommandError::Busy(
                    "a shard did not answer in time; nothing was reserved, retry".into(),
                ));
                self.after_reply()
            }
            (Phase::RollingBack, Event::Deadline) => {
                // A part that never acknowledged its rollback asks its home later (stale part).
                for p in &mut self.parts {
                    if matches!(p.state, PartState::Aborting) {
                        p.state = PartState::Aborted;
                    }
                }
                self.after_rollback_ack()
            }
            // Late or repeated news (an answer or acknowledgement after a deadline, a lost home
            // after the outcome) changes nothing.
            _ => Vec::new(),
        }
    }

    fn send_parts(&mut self, home: PartView) -> Vec<Action> {
        self.home = Some(home);
        self.phase = Phase::PartsPending;
        let mut out = Vec::with_capacity(self.parts.len());
        for p in &mut self.parts {
            let state = std::mem::replace(&mut p.state, PartState::Sent);
            match state {
                PartState::Unsent(cmd) => out.push(Action::SendPart {
                    shard: p.shard,
                    cmd,
                }),
                other => panic!("part of {} sent twice ({other:?})", self.id),
            }
        }
        out
    }

    fn part_replied(&mut self, shard: ShardId, result: Result<PartView, CommandError>) {
        let Some(p) = self
            .parts
            .iter_mut()
            .find(|p| p.shard == shard && matches!(p.state, PartState::Sent))
        else {
            return;
        };
        match result {
            Ok(view) => p.state = PartState::Held(view),
            Err(e) => {
                p.state = PartState::Failed;
                self.failure.get_or_insert(e);
            }
        }
    }

    fn after_reply(&mut self) -> Vec<Action> {
        if self
            .parts
            .iter()
            .any(|p| matches!(p.state, PartState::Sent))
        {
            // Wait for every answer first: a part must not hold after the rollback ends.
            return Vec::new();
        }
        if self.failure.is_none() {
            match self.assemble() {
                Ok(view) => {
                    self.phase = Phase::Done;
                    return vec![Action::Finish(Ok(view))];
                }
                Err(e) => self.failure = Some(e),
            }
        }
        self.phase = Phase::RollingBack;
        let mut out = Vec::new();
        for p in &mut self.parts {
            if matches!(p.state, PartState::Held(_) | PartState::Failed) {
                p.state = PartState::Aborting;
                out.push(Action::AbortPart { shard: p.shard });
            }
        }
        out.extend(self.after_rollback_ack());
        out
    }

    fn after_rollback_ack(&mut self) -> Vec<Action> {
        if self
            .parts
            .iter()
            .any(|p| matches!(p.state, PartState::Aborting | PartState::Sent))
        {
            return Vec::new();
        }
        self.phase = Phase::Done;
        let e = self
            .failure
            .take()
            .unwrap_or_else(|| CommandError::Internal("rollback without a failure".into()));
        vec![Action::AbortHome, Action::Finish(Err(e))]
    }

    /// The whole reservation from the views already held (no shard is asked again); refuses
    /// a total above the money limit.
    fn assemble(&self) -> Result<ReservationView, CommandError> {
        let home = self
            .home
            .clone()
            .ok_or_else(|| CommandError::Internal(format!("{} has no home view", self.id)))?;
        let parts: Vec<PartView> = self
            .parts
            .iter()
            .filter_map(|p| match &p.state {
                PartState::Held(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            parts.len(),
            self.parts.len(),
            "assembled with a part missing"
        );
        let view = assemble_reservation(home, &parts);
        assert!(
            view.lines.len() <= MAX_LINES,
            "more lines than a request has"
        );
        if checked_total_cents(view.lines.iter().map(|l| (l.qty, l.unit_price_cents))).is_none() {
            return Err(CommandError::Invalid(format!(
                "the reservation's total would exceed {} cents",
                flashsale_protocol::limits::MAX_MONEY_CENTS
            )));
        }
        Ok(view)
    }
}
