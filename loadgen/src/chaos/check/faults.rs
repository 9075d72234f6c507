//! What clients see around faults. While Postgres is down (from the moment it is stopped to the
//! moment it is started again) no write may be newly acknowledged: a 201 or 200 there must be
//! the replay of something sent before the outage (the contract's answer is `503 unavailable`;
//! other 5xx are reported by [`super::answers`]). Within 2 s of Postgres accepting connections
//! again, a new reservation must be acknowledged (when the workload asked for one and no other
//! fault came first). A server that cannot restart on its own log is a violation. Recovery
//! times after restarts and after a full disk was freed are measured for the record.

use super::index::{effect, http, Effect, Ix};
use super::{Findings, Kind, Stats, PG_RECOVERY_BOUND_MS};
use crate::chaos::history::{Call, FaultKind, Outcome, Pos};

/// Faults that end a recovery window early (another disturbance began).
const DISTURBANCES: [FaultKind; 5] = [
    FaultKind::Kill,
    FaultKind::Pause,
    FaultKind::PgStop,
    FaultKind::DiskFull,
    FaultKind::LoadEnd,
];

fn class(op: &crate::chaos::history::Op) -> String {
    match &op.outcome {
        Outcome::Http(h) => match &h.problem {
            Some(p) => format!("{} {} {p}", op.call.name(), h.status),
            None => format!("{} {}", op.call.name(), h.status),
        },
        Outcome::Unknown { .. } => format!("{} unknown", op.call.name()),
        Outcome::Refused { .. } => format!("{} refused", op.call.name()),
    }
}

/// Ops that are the first acknowledgement of their reservation, completed at or after `t_us`,
/// in completion order.
fn first_new_ack(ix: &Ix<'_>, t_us: u64) -> Option<usize> {
    ix.res
        .values()
        .map(|r| r.first_ack)
        .filter(|&i| ix.ops[i].complete_us >= t_us)
        .min_by_key(|&i| ix.ops[i].complete_us)
}

fn next_disturbance(ix: &Ix<'_>, t_us: u64) -> u64 {
    ix.h.faults
        .iter()
        .filter(|(_, f)| DISTURBANCES.contains(&f.fault) && f.at_us > t_us)
        .map(|(_, f)| f.at_us)
        .min()
        .unwrap_or(u64::MAX)
}

fn recoveries(ix: &Ix<'_>, kind: FaultKind) -> Vec<u64> {
    let mut out = Vec::new();
    for (_, t) in ix.faults(kind) {
        if let Some(i) = first_new_ack(ix, t) {
            let c = ix.ops[i].complete_us;
            if c <= next_disturbance(ix, t) {
                out.push((c - t) / 1000);
            }
        }
    }
    out
}

/// Runs the fault checks and measures recoveries.
pub fn check(ix: &Ix<'_>, f: &mut Findings) {
    for (pos, ev) in &ix.h.faults {
        if ev.fault == FaultKind::RestartFailed {
            f.violation(
                Kind::RestartFailed,
                format!("the server could not be restarted: {}", ev.detail),
                vec![*pos],
            );
        }
    }
    outages(ix, f);
    pg_recovery(ix, f);
    let Stats {
        restart_recovery_ms,
        disk_recovery_ms,
        ..
    } = &mut f.stats;
    *restart_recovery_ms = recoveries(ix, FaultKind::Restart);
    *disk_recovery_ms = recoveries(ix, FaultKind::DiskFreed);
}

fn outages(ix: &Ix<'_>, f: &mut Findings) {
    let starts = ix.faults(FaultKind::PgStart);
    for (stop_pos, t0) in ix.faults(FaultKind::PgStop) {
        let t1 = starts
            .iter()
            .map(|(_, t)| *t)
            .find(|t| *t > t0)
            .unwrap_or(u64::MAX);
        for (i, op) in ix.ops.iter().enumerate() {
            if op.invoke_us < t0 || op.complete_us > t1 {
                continue;
            }
            *f.stats.outage_answers.entry(class(op)).or_insert(0) += 1;
            if !op.call.is_write() || effect(op) != Effect::Done {
                continue;
            }
            let sent_before = |want: &dyn Fn(&Call) -> bool| {
                ix.ops.iter().any(|o| o.invoke_us < t0 && want(&o.call))
            };
            let replay = match &op.call {
                Call::Reserve {
                    caller,
                    key: Some(key),
                    ..
                } => ix
                    .keys
                    .get(&(*caller, key.as_str()))
                    .is_some_and(|l| l.iter().any(|&j| ix.ops[j].invoke_us < t0)),
                Call::Confirm { id, .. } => {
                    sent_before(&|c| matches!(c, Call::Confirm { id: other, .. } if other == id))
                }
                Call::Cancel { id } => {
                    sent_before(&|c| matches!(c, Call::Cancel { id: other } if other == id))
                }
                _ => false,
            };
            if !replay {
                let status = http(op).map_or(0, |a| a.status);
                f.violation(
                    Kind::AckDuringOutage,
                    format!(
                        "{} answered {status} while Postgres was down: a new acknowledgement \
                         that cannot have been durable",
                        op.call.name()
                    ),
                    vec![stop_pos, ix.pos[i]],
                );
            }
        }
    }
}

fn pg_recovery(ix: &Ix<'_>, f: &mut Findings) {
    for (ready_pos, t) in ix.faults(FaultKind::PgReady) {
        let deadline = t + PG_RECOVERY_BOUND_MS * 1000;
        let next = next_disturbance(ix, t);
        let ack = first_new_ack(ix, t).filter(|&i| ix.ops[i].complete_us <= next);
        if let Some(i) = ack {
            f.stats
                .pg_recovery_ms
                .push((ix.ops[i].complete_us - t) / 1000);
        }
        if next <= deadline {
            continue; // another fault came first: nothing to require
        }
        let on_time = ack.is_some_and(|i| ix.ops[i].complete_us <= deadline);
        let asked: Vec<usize> = (0..ix.ops.len())
            .filter(|&i| {
                let op = ix.ops[i];
                matches!(op.call, Call::Reserve { .. })
                    && op.invoke_us >= t
                    && op.invoke_us <= deadline
            })
            .collect();
        if on_time || asked.is_empty() {
            continue;
        }
        let mut at: Vec<Pos> = vec![ready_pos];
        at.extend(ix.at(&asked[..asked.len().min(3)]));
        let waited = match ack {
            Some(i) => {
                at.push(ix.pos[i]);
                format!(
                    "the first new reservation was acknowledged {} ms later",
                    (ix.ops[i].complete_us - t) / 1000
                )
            }
            None => "no new reservation was acknowledged before the next fault".into(),
        };
        f.violation(
            Kind::SlowRecovery,
            format!(
                "Postgres accepted connections again; {waited} (bound {PG_RECOVERY_BOUND_MS} \
                 ms; {} reservations sent in between)",
                asked.len()
            ),
            at,
        );
    }
}
