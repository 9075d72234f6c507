//! Every answer must be one the contract allows for its call. The workload only sends valid
//! requests, so `400`, `422`, `401`/`403` are server bugs; so is any 5xx but
//! `503 unavailable` (and `500 internal` in particular). `409 idempotency-in-progress` must carry
//! `Retry-After`. Whether a `404` is legal depends on the reservation's history
//! ([`super::lifecycle`]). An extension may also be refused `422 invalid` naming the hold bound
//! it went past (`max_hold_s` or `max_extensions`): whether it had to be is for
//! [`super::lifecycle`] too.

use super::index::{http, Ix};
use super::{Findings, Kind};
use crate::chaos::history::{Call, HttpAnswer};

/// Why `a` is not a legal answer to `call`, if it is not.
pub fn illegal(call: &Call, a: &HttpAnswer) -> Option<String> {
    let p = a.problem.as_deref().unwrap_or("");
    // Answers legal for any call: refusals that change nothing.
    if a.is(503, "unavailable") || a.is(429, "rate-limited") {
        return None;
    }
    let ok = match call {
        Call::Reserve { .. } => match a.status {
            201 => {
                if a.reservation.is_none() {
                    return Some("201 without a readable reservation body".into());
                }
                true
            }
            409 => matches!(
                p,
                "sold-out" | "idempotency-in-progress" | "idempotency-mismatch"
            ),
            429 => p == "buyer-limit",
            _ => false,
        },
        Call::GetReservation { .. } | Call::Confirm { .. } | Call::Cancel { .. } => {
            match a.status {
                200 => {
                    let Some(r) = &a.reservation else {
                        return Some("200 without a readable reservation body".into());
                    };
                    let want = match call {
                        Call::Confirm { .. } => Some("confirmed"),
                        Call::Cancel { .. } => Some("released"),
                        _ => None,
                    };
                    if let Some(w) = want {
                        if r.status != w {
                            return Some(format!("200 with status {:?}, not {w:?}", r.status));
                        }
                    }
                    let same_id = call.reservation_id() == Some(r.id.as_str());
                    if !same_id {
                        return Some(format!("answered reservation {} instead", r.id));
                    }
                    true
                }
                404 => p == "not-found",
                409 => p == "invalid-state" && !matches!(call, Call::GetReservation { .. }),
                _ => false,
            }
        }
        Call::Extend { id, .. } => match a.status {
            200 => match &a.reservation {
                None => return Some("200 without a readable reservation body".into()),
                Some(r) if r.id != *id => {
                    return Some(format!("answered reservation {} instead", r.id))
                }
                Some(r) if r.status != "held" => {
                    return Some(format!("200 with status {:?}, not \"held\"", r.status))
                }
                Some(_) => true,
            },
            404 => p == "not-found",
            409 => p == "invalid-state",
            422 => {
                p == "invalid"
                    && matches!(
                        a.limit_name.as_deref(),
                        Some("max_hold_s" | "max_extensions")
                    )
            }
            _ => false,
        },
        Call::ListReservations { .. } => match a.status {
            200 if a.items.is_none() => return Some("200 without a readable page".into()),
            200 => true,
            _ => false,
        },
        Call::ListOrders { .. } => match a.status {
            200 if a.orders.is_none() => return Some("200 without a readable page".into()),
            200 => true,
            _ => false,
        },
        Call::Restock { .. } | Call::GetSku { .. } => match a.status {
            200 => {
                if a.sku.is_none() {
                    return Some("200 without readable SKU counts".into());
                }
                true
            }
            _ => false,
        },
    };
    if ok {
        None
    } else {
        let what = match (&a.problem, &a.detail) {
            (Some(p), Some(d)) => format!("{} {p}: {d}", a.status),
            (Some(p), None) => format!("{} {p}", a.status),
            (None, Some(d)) => format!("{} {d}", a.status),
            (None, None) => a.status.to_string(),
        };
        Some(what)
    }
}

/// Reports every illegal answer.
pub fn check(ix: &Ix<'_>, f: &mut Findings) {
    for (i, op) in ix.ops.iter().enumerate() {
        let Some(a) = http(op) else { continue };
        if let Some(why) = illegal(&op.call, a) {
            f.violation(
                Kind::UnexpectedAnswer,
                format!("{} answered {why}", op.call.name()),
                ix.at(&[i]),
            );
        }
        if a.is(409, "idempotency-in-progress") && a.retry_after_s.is_none() {
            f.violation(
                Kind::InProgressWithoutRetryAfter,
                "409 idempotency-in-progress without a Retry-After header".into(),
                ix.at(&[i]),
            );
        }
    }
}
