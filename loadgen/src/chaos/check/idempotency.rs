//! Idempotency keys: each (caller, Idempotency-Key) maps to at most one reservation and every
//! 201 for it returns that one (whatever happened in between: retries after timeouts and
//! resets, concurrent duplicates, restarts); one reservation never answers two keys (keys are
//! scoped per caller); `409 idempotency-mismatch` only for another body than the one that made
//! the reservation; another body is never accepted once the key has a reservation.
//!
//! A key's first request (by invocation time) defines its body: the workload sends other bodies
//! only as deliberate probes after a 201.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::index::{effect, http, Effect, Ix};
use super::lifecycle::fmt_lines;
use super::{Findings, Kind};
use crate::chaos::history::{Call, Line};

fn body(call: &Call) -> Option<(&str, &[Line])> {
    match call {
        Call::Reserve { buyer, lines, .. } => Some((buyer.as_str(), lines.as_slice())),
        _ => None,
    }
}

fn acked_id<'h>(ix: &Ix<'h>, i: usize) -> Option<&'h str> {
    let a = http(ix.ops[i])?;
    (a.status == 201)
        .then_some(())
        .and(a.reservation.as_ref().map(|r| r.id.as_str()))
}

/// The (caller, key) groups that answered one reservation id, with the first such op.
type KeysOfId<'h> = BTreeMap<(u32, &'h str), usize>;

/// Runs the idempotency checks.
pub fn check(ix: &Ix<'_>, f: &mut Findings) {
    let mut keys_of_id: HashMap<&str, KeysOfId> = HashMap::new();
    for (&(caller, key), list) in &ix.keys {
        let Some(&first) = list.first() else { continue };
        let first_body = body(&ix.ops[first].call);
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in list {
            if let Some(id) = acked_id(ix, i) {
                ids.entry(id).or_insert(i);
                keys_of_id
                    .entry(id)
                    .or_default()
                    .entry((caller, key))
                    .or_insert(i);
            }
        }
        if ids.len() > 1 {
            let names: Vec<&str> = ids.keys().copied().collect();
            let at: Vec<usize> = ids.values().copied().collect();
            f.violation(
                Kind::KeyTwoReservations,
                format!(
                    "Idempotency-Key {key:?} of caller {caller} was answered with {} \
                     reservations: {}",
                    ids.len(),
                    names.join(", ")
                ),
                ix.at(&at),
            );
        }
        for &i in list {
            let op = ix.ops[i];
            let Some(a) = http(op) else { continue };
            let same = body(&op.call) == first_body;
            if a.is(409, "idempotency-mismatch") && same {
                // Legal only if another body may have made the key's reservation first.
                let other = list.iter().any(|&j| {
                    let o = ix.ops[j];
                    body(&o.call) != first_body
                        && o.invoke_us <= op.complete_us
                        && effect(o) != Effect::None
                });
                if !other {
                    let (buyer, lines) = first_body.unwrap_or(("?", &[]));
                    f.violation(
                        Kind::SpuriousMismatch,
                        format!(
                            "409 idempotency-mismatch for key {key:?} of caller {caller}, sent \
                             every time with the same body (buyer {buyer}, lines {})",
                            fmt_lines(lines)
                        ),
                        ix.at(&[first, i]),
                    );
                }
            }
            if a.status == 201 && !same {
                let prior = list.iter().copied().find(|&j| {
                    let o = ix.ops[j];
                    body(&o.call) == first_body
                        && acked_id(ix, j).is_some()
                        && o.complete_us <= op.invoke_us
                });
                if let Some(j) = prior {
                    f.violation(
                        Kind::MismatchAccepted,
                        format!(
                            "key {key:?} of caller {caller} already had reservation {} when a \
                             request with another body was answered 201",
                            acked_id(ix, j).unwrap_or("?")
                        ),
                        ix.at(&[j, i]),
                    );
                }
            }
        }
    }
    let mut shared: Vec<(&str, KeysOfId)> = keys_of_id
        .into_iter()
        .filter(|(_, ks)| ks.len() > 1)
        .collect();
    shared.sort();
    for (id, ks) in shared {
        let names: BTreeSet<String> = ks
            .keys()
            .map(|(c, k)| format!("caller {c} key {k:?}"))
            .collect();
        let at: Vec<usize> = ks.values().copied().collect();
        f.violation(
            Kind::KeyTwoReservations,
            format!(
                "reservation {id} was answered to {} different keys: {}",
                ks.len(),
                names.into_iter().collect::<Vec<_>>().join(", ")
            ),
            ix.at(&at),
        );
    }
}
