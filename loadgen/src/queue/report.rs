//! The queue scenario's part of the report: passes, fairness (Kendall τ of admission order
//! against join order), time to admission, the poll rate, the sell-out lag, and the checks
//! that fail the run.

use std::fmt::Write as _;

use serde::Serialize;

use super::buyer::{BuyerRecord, End};
use super::flags::QueueMethod;
use super::monitor::{Watched, MONITOR_PERIOD};
use super::stats::{self, kendall_tau, Millis, Tau};
use super::wire::QueueCounts;

/// Smallest fifo τ accepted (after the start).
pub const MIN_FIFO_TAU: f64 = 0.99;
/// Largest |z| of the pre-queue's τ accepted as a uniform shuffle: a false alarm once in a
/// million runs (two-sided). At 0.1 % (|z| 3.29) one honest run in a thousand failed, and CI
/// runs this check on every change. A pre-queue left in join order still gives |z| ≥ 7.8 at
/// the smallest judged sample (30) and ≈ 14 at 90; the room's own seeded χ² test over many
/// runs is what checks uniformity closely (ADR 0030 addendum).
pub const MAX_SHUFFLE_Z: f64 = 4.89;
/// Fewest pre-queue admissions for the shuffle test to be judged.
pub const MIN_SHUFFLE_SAMPLE: usize = 30;

/// Reservations sent on purpose without a valid pass.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WithoutPass {
    /// Sent.
    pub attempts: u64,
    /// Succeeded (2xx): must be 0.
    pub succeeded: u64,
    /// 403 `pass-required` (sent without a pass).
    pub refused_pass_required: u64,
    /// 403 `pass-invalid` (sent with a forged pass).
    pub refused_pass_invalid: u64,
    /// Any other answer or no answer.
    pub other: u64,
}

/// Admission order against join order.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Order {
    /// Buyers who joined after the start: ticket number vs admission place (fifo: τ ≥ 0.99).
    pub after_start: Option<Tau>,
    /// Buyers who joined in the pre-queue: ticket number vs admission place (a uniform
    /// shuffle: τ near 0, |z| ≤ [`MAX_SHUFFLE_Z`]).
    pub prequeue: Option<Tau>,
    /// Joins answered after the start although scheduled before it (left out of both).
    pub late_prequeue_joins: u64,
}

/// The poll rate (`GET …/tickets/…` answered per second).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PollRate {
    /// Polls answered.
    pub total: u64,
    /// Seconds from the first to the last second with a poll.
    pub seconds: u64,
    /// Mean polls per second over those seconds.
    pub mean_rps: f64,
    /// Median of the per-second counts (the sustained rate).
    pub median_rps: f64,
    /// Busiest second.
    pub peak_rps: u64,
}

/// How long waiting tickets took to learn the (final) sell-out.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SoldOutLag {
    /// Times the queue turned sold out (units may come back after a cancel or an expiry).
    pub episodes: u64,
    /// The final sell-out, seconds after the queue's creation (`None`: never sold out).
    pub final_at_s: Option<f64>,
    /// Buyers waiting at the final sell-out.
    pub waiting: u64,
    /// Lag from the final sell-out to each waiting buyer's poll that said `sold_out`, ms.
    pub lag_ms: Millis,
    /// Waiting buyers that never saw `sold_out` (the run ended first).
    pub never_learned: u64,
    /// The sell-out moment is known to within this, ms (the monitor's period).
    pub resolution_ms: u64,
}

/// The queue scenario's section of the report.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    /// Queue name.
    pub queue: String,
    /// Admission method after the start.
    pub method: QueueMethod,
    /// Buyers.
    pub buyers: usize,
    /// Of those, scheduled in the pre-queue.
    pub prequeue_buyers: usize,
    /// Buyers with a ticket.
    pub joined: u64,
    /// Buyers that saw their admission.
    pub admitted: u64,
    /// How the buyers ended, by kind.
    pub ends: std::collections::BTreeMap<String, u64>,
    /// Reservations without a valid pass.
    pub without_pass: WithoutPass,
    /// Fairness.
    pub order: Order,
    /// From joining (the start, for pre-queue buyers) to the server's admission, ms.
    pub time_to_admission_ms: Millis,
    /// From joining (the start, for pre-queue buyers) to the poll that showed the admission, ms.
    pub time_to_learn_admission_ms: Millis,
    /// Poll rate.
    pub polls: PollRate,
    /// Sell-out lag.
    pub sold_out: SoldOutLag,
    /// The queue's counts at the end (server).
    pub server: Option<QueueCounts>,
    /// Confirms acknowledged to the buyers (the server's `spent` must match).
    pub confirmed: u64,
    /// What failed (empty = the queue's promises held).
    pub failures: Vec<String>,
}

/// Inputs of [`QueueReport::build`] besides the buyers' records.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Queue name.
    pub queue: String,
    /// Method.
    pub method: QueueMethod,
    /// The queue's start, Unix ms.
    pub starts_at_ms: u64,
    /// The run's start (queue creation), Unix ms.
    pub t0_ms: u64,
    /// Polls per second since the start of the run.
    pub polls_per_s: Vec<u64>,
    /// The monitor's observations.
    pub watched: Watched,
    /// The probes.
    pub without_pass: WithoutPass,
    /// Confirms acknowledged.
    pub confirmed: u64,
    /// Confirms without an answer (the server's `spent` may exceed `confirmed` by these).
    pub unknown_confirms: u64,
}

impl QueueReport {
    /// Analyses the buyers' records.
    pub fn build(records: &[BuyerRecord], f: Facts) -> QueueReport {
        let mut ends = std::collections::BTreeMap::new();
        for r in records {
            let k = serde_json::to_value(r.end)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *ends.entry(k).or_insert(0u64) += 1;
        }
        let joined = records.iter().filter(|r| r.ticket.is_some()).count() as u64;
        let admitted = records.iter().filter(|r| r.admission.is_some()).count() as u64;
        // Order: pre-queue buyers must have been answered before the start; the others joined
        // after it by schedule.
        let mut late = 0;
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        for r in records {
            let (Some(t), Some(a)) = (r.ticket, r.admission) else {
                continue;
            };
            if r.prequeue {
                if r.join_answered_ms < f.starts_at_ms {
                    pre.push((t, a));
                } else {
                    late += 1;
                }
            } else if r.join_sent_ms >= f.starts_at_ms {
                post.push((t, a));
            }
        }
        let order = Order {
            after_start: kendall_tau(&post),
            prequeue: kendall_tau(&pre),
            late_prequeue_joins: late,
        };
        let base = |r: &BuyerRecord| r.join_sent_ms.max(f.starts_at_ms);
        let time_to_admission_ms = stats::millis(
            records
                .iter()
                .filter_map(|r| Some(r.admitted_at_ms?.saturating_sub(base(r))))
                .collect(),
        );
        let time_to_learn_admission_ms = stats::millis(
            records
                .iter()
                .filter_map(|r| Some(r.learned_admitted_ms?.saturating_sub(base(r))))
                .collect(),
        );
        let polls = poll_rate(&f.polls_per_s);
        let sold_out = sold_out_lag(records, &f.watched, f.t0_ms);
        let mut r = QueueReport {
            queue: f.queue,
            method: f.method,
            buyers: records.len(),
            prequeue_buyers: records.iter().filter(|r| r.prequeue).count(),
            joined,
            admitted,
            ends,
            without_pass: f.without_pass,
            order,
            time_to_admission_ms,
            time_to_learn_admission_ms,
            polls,
            sold_out,
            server: f.watched.last,
            confirmed: f.confirmed,
            failures: Vec::new(),
        };
        r.failures = r.judge(f.unknown_confirms);
        r
    }

    fn judge(&self, unknown_confirms: u64) -> Vec<String> {
        let mut out = Vec::new();
        let w = &self.without_pass;
        if w.succeeded > 0 {
            out.push(format!(
                "{} reservations without a valid pass succeeded",
                w.succeeded
            ));
        }
        if w.refused_pass_required + w.refused_pass_invalid != w.attempts {
            out.push(format!(
                "of {} reservations without a valid pass, {} were not refused with pass-required / pass-invalid",
                w.attempts,
                w.attempts - w.refused_pass_required - w.refused_pass_invalid
            ));
        }
        if self.method == QueueMethod::Fifo {
            if let Some(t) = self.order.after_start {
                if t.tau < MIN_FIFO_TAU {
                    out.push(format!(
                        "fifo admission order vs join order: Kendall tau {:.4} < {MIN_FIFO_TAU}",
                        t.tau
                    ));
                }
            }
        }
        if let Some(t) = self.order.prequeue {
            if t.n >= MIN_SHUFFLE_SAMPLE && t.z.abs() > MAX_SHUFFLE_Z {
                out.push(format!(
                    "pre-queue order is not a uniform shuffle: tau {:.4}, |z| {:.2} > {MAX_SHUFFLE_Z}",
                    t.tau,
                    t.z.abs()
                ));
            }
        }
        if let Some(s) = self.server {
            if s.spent < self.confirmed || s.spent > self.confirmed + unknown_confirms {
                out.push(format!(
                    "the server counts {} spent passes, the buyers were told of {} confirms",
                    s.spent, self.confirmed
                ));
            }
        } else {
            out.push("the queue's counts could not be read".into());
        }
        out
    }

    /// The summary's lines about the queue.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "queue {} ({}): {} buyers ({} in the pre-queue), {} joined, {} admitted; ends: {}",
            self.queue,
            self.method.as_str(),
            self.buyers,
            self.prequeue_buyers,
            self.joined,
            self.admitted,
            self.ends
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let w = &self.without_pass;
        let _ = writeln!(
            out,
            "  without a pass: {} sent, {} succeeded (must be 0), refused {} pass-required + {} pass-invalid, {} other",
            w.attempts, w.succeeded, w.refused_pass_required, w.refused_pass_invalid, w.other
        );
        let tau = |t: &Option<Tau>| match t {
            Some(t) => format!(
                "Kendall tau {:.4} (n {}, z {:.2}, discordant pairs {})",
                t.tau, t.n, t.z, t.discordant_pairs
            ),
            None => "n/a (fewer than 2 admitted)".into(),
        };
        let _ = writeln!(
            out,
            "  order after the start: {}{}",
            tau(&self.order.after_start),
            if self.method == QueueMethod::Fifo {
                format!(" (fifo: must be >= {MIN_FIFO_TAU})")
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "  pre-queue order: {} (uniform shuffle: tau near 0, |z| <= {MAX_SHUFFLE_Z})",
            tau(&self.order.prequeue)
        );
        let m = |x: &Millis| {
            format!(
                "p50 {} ms, p99 {} ms, max {} ms (n {})",
                x.p50, x.p99, x.max, x.count
            )
        };
        let _ = writeln!(
            out,
            "  time to admission: {}",
            m(&self.time_to_admission_ms)
        );
        let _ = writeln!(
            out,
            "  time until a poll showed it: {}",
            m(&self.time_to_learn_admission_ms)
        );
        let p = &self.polls;
        let _ = writeln!(
            out,
            "  polls: {} over {} s, sustained (median) {:.0}/s, mean {:.0}/s, peak {}/s",
            p.total, p.seconds, p.median_rps, p.mean_rps, p.peak_rps
        );
        let s = &self.sold_out;
        match s.final_at_s {
            Some(at) => {
                let _ = writeln!(
                    out,
                    "  sold out at {at:.2} s ({} episode(s)); {} waiting tickets learned it after {} (never: {}), +/- {} ms",
                    s.episodes,
                    s.waiting,
                    m(&s.lag_ms),
                    s.never_learned,
                    s.resolution_ms
                );
            }
            None => {
                let _ = writeln!(out, "  never sold out ({} episode(s))", s.episodes);
            }
        }
        if let Some(c) = self.server {
            let _ = writeln!(
                out,
                "  server: joined {} waiting {} admitted {} holding {} spent {} (confirmed {}) expired {}",
                c.joined, c.waiting, c.admitted, c.holding, c.spent, self.confirmed, c.expired
            );
        }
        for f in &self.failures {
            let _ = writeln!(out, "  QUEUE CHECK FAILED: {f}");
        }
        out
    }
}

fn poll_rate(per_s: &[u64]) -> PollRate {
    let first = per_s.iter().position(|&n| n > 0);
    let last = per_s.iter().rposition(|&n| n > 0);
    let (Some(a), Some(b)) = (first, last) else {
        return PollRate::default();
    };
    let span = &per_s[a..=b];
    let total: u64 = span.iter().sum();
    PollRate {
        total,
        seconds: span.len() as u64,
        mean_rps: total as f64 / span.len() as f64,
        median_rps: stats::median(span.to_vec()),
        peak_rps: span.iter().copied().max().unwrap_or(0),
    }
}

/// The final sell-out starts at the first `sold_out` seen (by the monitor or a buyer) after
/// the last `open` / `waiting` seen by anyone, if the monitor's last reading was sold out.
fn sold_out_lag(records: &[BuyerRecord], w: &Watched, t0_ms: u64) -> SoldOutLag {
    let episodes = w.changes.iter().filter(|c| c.1).count() as u64;
    let mut lag = SoldOutLag {
        episodes,
        resolution_ms: MONITOR_PERIOD.as_millis() as u64,
        ..SoldOutLag::default()
    };
    if w.changes.last().map(|c| c.1) != Some(true) {
        return lag;
    }
    let last_open = records
        .iter()
        .filter_map(|r| r.last_waiting_ms)
        .chain(w.last_open_ms)
        .max()
        .unwrap_or(0);
    let first_after =
        |obs: &[(u64, bool)]| obs.iter().find(|o| o.1 && o.0 > last_open).map(|o| o.0);
    let start = records
        .iter()
        .filter_map(|r| first_after(&r.observations))
        .chain(first_after(&w.changes))
        .min();
    let Some(start) = start else { return lag };
    lag.final_at_s = Some(start.saturating_sub(t0_ms) as f64 / 1_000.0);
    let mut lags = Vec::new();
    for r in records {
        let waiting = r.ticket.is_some()
            && r.join_answered_ms <= start
            && r.admitted_at_ms.is_none_or(|a| a > start)
            && r.end != End::NotJoined;
        if !waiting || r.admission.is_some() {
            continue;
        }
        lag.waiting += 1;
        let before = r.observations.iter().rev().find(|o| o.0 <= start);
        if before.is_some_and(|o| o.1) {
            lags.push(0);
            continue;
        }
        match r.observations.iter().find(|o| o.1 && o.0 >= start) {
            Some(o) => lags.push(o.0 - start),
            None => lag.never_learned += 1,
        }
    }
    lag.lag_ms = stats::millis(lags);
    lag
}
