//! The history checker (Jepsen's checkers in spirit, for this data model): it reads a history
//! and decides whether every answer the server gave is explained by one legal execution of the
//! contract. It only uses what the history says (pure: no network), so it runs on any history,
//! hand-written ones included. What it proves and what it does not: docs/adr/0017-history-checker.md.
//!
//! Checks, each in its own module:
//! - [`answers`]: every answer is one the contract allows for that call (no 500, no 422 for a
//!   valid request, `409 idempotency-in-progress` carries `Retry-After`, …);
//! - [`lifecycle`]: every 201 has the requested lines, is readable afterwards with the same lines
//!   (or was legitimately released, expired or confirmed), states only move forward, expiry
//!   happens at `expires_at` (not before, not long after), confirms and cancels are refused only
//!   when they must be; an acknowledged extension is honoured (no expiry before its new
//!   `expires_at`) and within the SKUs' bounds, an extension refused only when it must be;
//!   list pages are reads like any other (never a state the history contradicts);
//! - [`idempotency`]: each (caller, Idempotency-Key) maps to at most one reservation, retries
//!   return it, a mismatch is reported only for another body;
//! - [`sweep`]: no buyer ever holds more than a per-buyer limit, no SKU ever has more units held
//!   or sold than its stock, every SKU read adds up;
//! - [`lists`]: every list page shows only the buyer's reservations (orders), each once, with
//!   the status asked for; after the run, every acknowledged confirmed reservation is in its
//!   buyer's `GET /v1/orders?buyer=` (read to the last page), with its lines;
//! - [`quiescence`]: the counts after the run equal what the acknowledged reservations explain,
//!   and the Postgres read model agrees;
//! - [`faults`]: no new acknowledgement while Postgres is down, reservations acknowledged again
//!   within 2 s of Postgres accepting connections, every restart succeeded.
//!
//! Unknown outcomes (timeouts, resets, 503s whose record may still become durable) are never
//! guessed: the workload resolves them by reading back after the run, and a check that still
//! depends on an unresolved one is bounded instead of exact (and said so).

pub mod answers;
pub mod faults;
pub mod idempotency;
pub mod index;
pub mod lifecycle;
pub mod lists;
pub mod quiescence;
pub mod render;
pub mod sweep;

use std::collections::BTreeMap;

use serde::Serialize;

use super::history::{History, Pos};
use index::Ix;

/// Tolerance for comparing the client's clock with `expires_at` (same machine, ms rounding).
pub const CLOCK_TOLERANCE_MS: u64 = 5;
/// How long after `expires_at` a hold may still read as `held` at quiescence.
pub const EXPIRY_SLACK_MS: u64 = 5_000;
/// Longest time from Postgres accepting connections to the next acknowledged reservation.
pub const PG_RECOVERY_BOUND_MS: u64 = 2_000;

/// What kind of contract violation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An answer the contract does not allow for that call.
    UnexpectedAnswer,
    /// `409 idempotency-in-progress` without `Retry-After`.
    InProgressWithoutRetryAfter,
    /// A 201 whose lines or buyer differ from the request.
    AckLinesDiffer,
    /// A reservation answered 201, later unknown (404).
    AckLost,
    /// A read of a reservation shows other lines, buyer or expiry than acknowledged.
    ReadDiffers,
    /// One (caller, key) answered with two reservations, or one reservation under two keys.
    KeyTwoReservations,
    /// `409 idempotency-mismatch` for the same body.
    SpuriousMismatch,
    /// A key reused with another body after its reservation was made, answered 201.
    MismatchAccepted,
    /// A reservation's state went backwards or changed after it was final.
    IllegalTransition,
    /// Read as expired before its `expires_at`.
    EarlyExpiry,
    /// Still held long after its `expires_at`.
    HeldPastExpiry,
    /// `expires_at` is not creation time plus the shortest TTL of its lines.
    WrongExpiry,
    /// Confirmed by a confirm sent after `expires_at`.
    ConfirmAfterExpiry,
    /// Released as cancelled though no cancel was sent, or rolled back (`aborted`) after a 201.
    SpontaneousRelease,
    /// An extension acknowledged past the SKUs' maximum hold or number of extensions.
    HoldBoundIgnored,
    /// A list page shows another buyer's reservation or order, one twice, or another status
    /// than asked; or an order of a reservation that was not confirmed.
    ListContradicts,
    /// An acknowledged confirmed reservation missing from its buyer's orders after the run.
    OrderMissing,
    /// A confirm or cancel refused (409) while the hold was live and nothing else touched it.
    SpuriousRefusal,
    /// A buyer held or bought more units of a SKU than its per-buyer limit.
    BuyerLimitExceeded,
    /// More units held or sold than the SKU's stock.
    Oversell,
    /// A SKU read where `available + reserved + sold != total` or a count is negative.
    Conservation,
    /// A SKU's total differs from its stock plus the restocks.
    StockTotal,
    /// Counts after the run differ from what the acknowledged reservations explain.
    CountsAtQuiescence,
    /// A confirmed order missing from (or different in) the Postgres read model.
    ReadModelOrder,
    /// An order in the read model that no confirmed reservation explains.
    ReadModelPhantomOrder,
    /// The read model's stock differs from the server's, or it did not catch up.
    ReadModelStock,
    /// A new acknowledgement while Postgres was down.
    AckDuringOutage,
    /// Reservations not acknowledged again within 2 s of Postgres accepting connections.
    SlowRecovery,
    /// The server could not be restarted on its own log.
    RestartFailed,
}

impl Kind {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UnexpectedAnswer => "unexpected-answer",
            Kind::InProgressWithoutRetryAfter => "in-progress-without-retry-after",
            Kind::AckLinesDiffer => "ack-lines-differ",
            Kind::AckLost => "ack-lost",
            Kind::ReadDiffers => "read-differs",
            Kind::KeyTwoReservations => "key-two-reservations",
            Kind::SpuriousMismatch => "spurious-mismatch",
            Kind::MismatchAccepted => "mismatch-accepted",
            Kind::IllegalTransition => "illegal-transition",
            Kind::EarlyExpiry => "early-expiry",
            Kind::HeldPastExpiry => "held-past-expiry",
            Kind::WrongExpiry => "wrong-expiry",
            Kind::ConfirmAfterExpiry => "confirm-after-expiry",
            Kind::SpontaneousRelease => "spontaneous-release",
            Kind::HoldBoundIgnored => "hold-bound-ignored",
            Kind::ListContradicts => "list-contradicts",
            Kind::OrderMissing => "order-missing",
            Kind::SpuriousRefusal => "spurious-refusal",
            Kind::BuyerLimitExceeded => "buyer-limit-exceeded",
            Kind::Oversell => "oversell",
            Kind::Conservation => "conservation",
            Kind::StockTotal => "stock-total",
            Kind::CountsAtQuiescence => "counts-at-quiescence",
            Kind::ReadModelOrder => "read-model-order",
            Kind::ReadModelPhantomOrder => "read-model-phantom-order",
            Kind::ReadModelStock => "read-model-stock",
            Kind::AckDuringOutage => "ack-during-outage",
            Kind::SlowRecovery => "slow-recovery",
            Kind::RestartFailed => "restart-failed",
        }
    }
}

/// One violation: what, and the shortest excerpt of the history that shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Kind.
    pub kind: Kind,
    /// What is wrong, in words.
    pub message: String,
    /// The history lines that show it (the excerpt), in file order.
    #[serde(serialize_with = "ser_lines")]
    pub at: Vec<Pos>,
}

fn ser_lines<S: serde::Serializer>(at: &[Pos], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(at.iter().map(|p| p.line))
}

/// The verdict over a whole history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No violation, every outcome resolved.
    Valid,
    /// At least one violation.
    Invalid,
    /// No violation found, but some outcomes stayed unknown, so some checks were bounded and
    /// the history cannot be called valid.
    Unknown,
}

/// Figures about the history (for the summary and for docs/benchmarks.md).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// `op` records.
    pub ops: usize,
    /// Ops by call and outcome class (`reserve 201`, `confirm unknown`, …).
    pub outcomes: BTreeMap<String, usize>,
    /// Reservations acknowledged (distinct ids answered 201).
    pub reservations: usize,
    /// Final states of the acknowledged reservations (`confirmed`, `expired`, …, `unresolved`).
    pub final_states: BTreeMap<String, usize>,
    /// Keys used.
    pub keys: usize,
    /// Keys sent as concurrent duplicates (overlapping requests with the same key).
    pub keys_with_concurrent_duplicates: usize,
    /// Requests whose outcome the client could not know (timeouts, resets, broken connections).
    pub unknown_outcomes: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Time from Postgres accepting connections to the next acknowledged reservation, ms.
    pub pg_recovery_ms: Vec<u64>,
    /// Time from a restart (listening) to the next acknowledged reservation, ms.
    pub restart_recovery_ms: Vec<u64>,
    /// Time from the disk being freed to the next acknowledged reservation, ms.
    pub disk_recovery_ms: Vec<u64>,
    /// Answers given while Postgres was down, by class.
    pub outage_answers: BTreeMap<String, usize>,
    /// Confirmed orders checked against the Postgres read model.
    pub read_model_orders_checked: usize,
    /// Extensions acknowledged.
    pub extensions_acknowledged: usize,
    /// List pages read (reservations and orders).
    pub list_pages: usize,
    /// Acknowledged confirmed reservations found in their buyer's orders after the run.
    pub orders_listed_checked: usize,
    /// Reservation requests answered `503 unavailable` whose reservation was created during
    /// that very request and exists after all (the record became durable later): a 503 is an
    /// unknown outcome, not a failure.
    pub unavailable_then_durable: usize,
}

/// The checker's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Overall verdict.
    pub verdict: Verdict,
    /// Violations by kind.
    pub violations_by_kind: BTreeMap<String, usize>,
    /// Every violation found.
    pub violations: Vec<Violation>,
    /// Checks that could not be exact because an outcome stayed unknown.
    pub unresolved: Vec<String>,
    /// Figures.
    pub stats: Stats,
}

/// Where the checks put their findings.
#[derive(Debug, Default)]
pub struct Findings {
    /// Violations.
    pub violations: Vec<Violation>,
    /// Unresolved outcomes, described.
    pub unresolved: Vec<String>,
    /// Figures.
    pub stats: Stats,
}

impl Findings {
    /// Adds a violation shown by the lines at `at`.
    pub fn violation(&mut self, kind: Kind, message: String, mut at: Vec<Pos>) {
        at.sort_by_key(|p| p.line);
        at.dedup();
        self.violations.push(Violation { kind, message, at });
    }
}

/// Checks a history.
pub fn check(h: &History) -> Report {
    let ix = Ix::new(h);
    let mut f = Findings::default();
    answers::check(&ix, &mut f);
    lifecycle::check(&ix, &mut f);
    idempotency::check(&ix, &mut f);
    lists::check(&ix, &mut f);
    sweep::check(&ix, &mut f);
    quiescence::check(&ix, &mut f);
    faults::check(&ix, &mut f);
    ix.summarize(&mut f.stats);
    f.violations
        .sort_by_key(|v| (v.kind, v.at.first().map(|p| p.line).unwrap_or(0)));
    let mut by_kind = BTreeMap::new();
    for v in &f.violations {
        *by_kind.entry(v.kind.as_str().to_string()).or_insert(0) += 1;
    }
    let verdict = if !f.violations.is_empty() {
        Verdict::Invalid
    } else if !f.unresolved.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    Report {
        verdict,
        violations_by_kind: by_kind,
        violations: f.violations,
        unresolved: f.unresolved,
        stats: f.stats,
    }
}
