//! One acknowledged reservation at a time: a 201 carries the requested lines; afterwards the
//! reservation is readable with the same buyer, lines and expiry (it may legitimately have been
//! confirmed, released or expired, never forgotten); its state only moves from `held` to one
//! final state; expiry happens at `expires_at` = creation + the shortest TTL of its lines (not
//! before, not long after); a confirm after `expires_at` is refused; a confirm or cancel is
//! refused only when something else decided the reservation first.

use super::index::{effect, http, Effect, Ix, Res, State};
use super::{Findings, Kind, CLOCK_TOLERANCE_MS, EXPIRY_SLACK_MS};
use crate::chaos::history::{Call, Line};

/// `[a×1, b×2]`.
pub fn fmt_lines(lines: &[Line]) -> String {
    let parts: Vec<String> = lines
        .iter()
        .map(|l| format!("{}×{}", l.sku, l.qty))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// An observation of the reservation's state: which op, and what it showed.
struct Obs {
    i: usize,
    state: State,
}

/// Runs the per-reservation checks.
pub fn check(ix: &Ix<'_>, f: &mut Findings) {
    for r in ix.res.values() {
        check_one(ix, r, f);
    }
}

fn sent_before(ix: &Ix<'_>, r: &Res<'_>, t_us: u64, want: impl Fn(&Call) -> bool) -> bool {
    r.ops.iter().any(|&j| {
        let op = ix.ops[j];
        want(&op.call) && op.invoke_us <= t_us && effect(op) != Effect::None
    })
}

fn check_one(ix: &Ix<'_>, r: &Res<'_>, f: &mut Findings) {
    let ms = |us: u64| us / 1000;
    let acked_us = r.acked_us(ix);
    let mut obs: Vec<Obs> = Vec::new();

    // 1. Every 201 shows what was asked (one violation per reservation, shown by its first
    // wrong answer).
    let mut wrong: Vec<usize> = Vec::new();
    for &i in &r.acks {
        let op = ix.ops[i];
        let (Call::Reserve { buyer, lines, .. }, Some(v)) =
            (&op.call, http(op).and_then(|h| h.reservation.as_ref()))
        else {
            continue;
        };
        if v.lines != *lines || v.buyer != *buyer {
            wrong.push(i);
        }
        if v.expires_at_ms != r.expires_at_ms {
            f.violation(
                Kind::ReadDiffers,
                format!(
                    "two 201s for reservation {} show different expires_at ({} and {} ms)",
                    r.id, r.expires_at_ms, v.expires_at_ms
                ),
                ix.at(&[r.first_ack, i]),
            );
        }
        obs.push(Obs {
            i,
            state: State::of(v),
        });
    }
    if let Some(&i) = wrong.iter().min_by_key(|&&i| ix.ops[i].complete_us) {
        let op = ix.ops[i];
        if let (Call::Reserve { buyer, lines, .. }, Some(v)) =
            (&op.call, http(op).and_then(|h| h.reservation.as_ref()))
        {
            f.violation(
                Kind::AckLinesDiffer,
                format!(
                    "201 for reservation {} shows buyer {} with lines {} but the request was \
                     buyer {buyer} with lines {}{}",
                    r.id,
                    v.buyer,
                    fmt_lines(&v.lines),
                    fmt_lines(lines),
                    if wrong.len() > 1 {
                        format!(" ({} such answers)", wrong.len())
                    } else {
                        String::new()
                    }
                ),
                ix.at(&[i]),
            );
        }
    }

    // 2. Later reads show the same reservation; a 404 means an acknowledged one was lost. One
    // violation of each kind per reservation, shown by the first offending answer.
    let mut lost_reported = false;
    let mut differs_reported = false;
    for &i in &r.ops {
        let op = ix.ops[i];
        let Some(a) = http(op) else { continue };
        if a.status == 404 && op.invoke_us > acked_us && !lost_reported {
            lost_reported = true;
            f.violation(
                Kind::AckLost,
                format!(
                    "reservation {} was acknowledged (201) with lines {}, then {} answered 404",
                    r.id,
                    fmt_lines(r.lines),
                    op.call.name()
                ),
                ix.at(&[r.first_ack, i]),
            );
        }
        let Some(v) = a
            .reservation
            .as_ref()
            .filter(|v| a.status == 200 && v.id == r.id)
        else {
            continue;
        };
        let differs =
            v.lines != r.lines || v.buyer != r.buyer || v.expires_at_ms != r.expires_at_ms;
        if differs && !differs_reported {
            differs_reported = true;
            f.violation(
                Kind::ReadDiffers,
                format!(
                    "reservation {} was acknowledged for buyer {} with lines {} expiring at {} \
                     ms, but {} shows buyer {} with lines {} expiring at {} ms",
                    r.id,
                    r.buyer,
                    fmt_lines(r.lines),
                    r.expires_at_ms,
                    op.call.name(),
                    v.buyer,
                    fmt_lines(&v.lines),
                    v.expires_at_ms
                ),
                ix.at(&[r.first_ack, i]),
            );
        }
        obs.push(Obs {
            i,
            state: State::of(v),
        });
    }

    // 3. States only move forward.
    obs.sort_by_key(|o| ix.ops[o.i].invoke_us);
    'outer: for (n, a) in obs.iter().enumerate() {
        if !a.state.is_final() {
            continue;
        }
        let done = ix.ops[a.i].complete_us;
        for b in &obs[n + 1..] {
            if ix.ops[b.i].invoke_us > done && b.state != a.state {
                f.violation(
                    Kind::IllegalTransition,
                    format!(
                        "reservation {} was {} and later {}",
                        r.id,
                        a.state.name(),
                        b.state.name()
                    ),
                    ix.at(&[a.i, b.i]),
                );
                break 'outer;
            }
        }
    }

    // 4. Releases have a cause and expiry its time.
    for o in &obs {
        let op = ix.ops[o.i];
        match &o.state {
            State::Expired if ms(op.complete_us) + CLOCK_TOLERANCE_MS < r.expires_at_ms => {
                f.violation(
                    Kind::EarlyExpiry,
                    format!(
                        "reservation {} read as expired {} ms before its expires_at",
                        r.id,
                        r.expires_at_ms - ms(op.complete_us)
                    ),
                    ix.at(&[r.first_ack, o.i]),
                );
            }
            State::Cancelled
                if !sent_before(ix, r, op.complete_us, |c| matches!(c, Call::Cancel { .. })) =>
            {
                f.violation(
                    Kind::SpontaneousRelease,
                    format!(
                        "reservation {} read as released (cancelled) but no cancel was sent",
                        r.id
                    ),
                    ix.at(&[r.first_ack, o.i]),
                );
            }
            State::Aborted => f.violation(
                Kind::SpontaneousRelease,
                format!(
                    "reservation {} was acknowledged (201) and later read as released \
                     (aborted): a rolled-back attempt was acknowledged",
                    r.id
                ),
                ix.at(&[r.first_ack, o.i]),
            ),
            State::Other(s) => f.violation(
                Kind::ReadDiffers,
                format!("reservation {} has status {s:?}", r.id),
                ix.at(&[o.i]),
            ),
            _ => {}
        }
    }

    // 5. Confirms and cancels: refused only when they must be, accepted only when they may be.
    let exp_us = r.expires_at_ms * 1000;
    let confirmed_in_time = sent_before(ix, r, exp_us, |c| matches!(c, Call::Confirm { .. }));
    for &i in &r.ops {
        let op = ix.ops[i];
        let Some(a) = http(op) else { continue };
        let before_expiry = ms(op.complete_us) + CLOCK_TOLERANCE_MS < r.expires_at_ms;
        match &op.call {
            Call::Confirm { .. }
                if a.status == 200
                    && ms(op.invoke_us) > r.expires_at_ms + CLOCK_TOLERANCE_MS
                    && !confirmed_in_time =>
            {
                f.violation(
                    Kind::ConfirmAfterExpiry,
                    format!(
                        "reservation {} expiring at {} ms was confirmed by a confirm sent {} ms \
                         later",
                        r.id,
                        r.expires_at_ms,
                        ms(op.invoke_us) - r.expires_at_ms
                    ),
                    ix.at(&[r.first_ack, i]),
                );
            }
            Call::Confirm { payment_ref, .. }
                if a.is(409, "invalid-state") && before_expiry && op.invoke_us >= acked_us =>
            {
                let other = r.ops.iter().any(|&j| {
                    let o = ix.ops[j];
                    o.invoke_us <= op.complete_us
                        && effect(o) != Effect::None
                        && match &o.call {
                            Call::Cancel { .. } => true,
                            Call::Confirm { payment_ref: p, .. } => p != payment_ref,
                            _ => false,
                        }
                });
                if !other {
                    f.violation(
                        Kind::SpuriousRefusal,
                        format!(
                            "confirm of reservation {} refused (409 invalid-state) before its \
                             expiry with no cancel or other confirm sent",
                            r.id
                        ),
                        ix.at(&[r.first_ack, i]),
                    );
                }
            }
            Call::Cancel { .. }
                if a.is(409, "invalid-state") && before_expiry && op.invoke_us >= acked_us =>
            {
                let confirm =
                    sent_before(ix, r, op.complete_us, |c| matches!(c, Call::Confirm { .. }));
                if !confirm {
                    f.violation(
                        Kind::SpuriousRefusal,
                        format!(
                            "cancel of reservation {} refused (409 invalid-state) before its \
                             expiry with no confirm sent",
                            r.id
                        ),
                        ix.at(&[r.first_ack, i]),
                    );
                }
            }
            _ => {}
        }
    }

    // 6. expires_at = creation time + the shortest TTL of the lines.
    if let Some(ttl_ms) = ix.ttl_ms(r.lines) {
        let first_invoke_us = match r.key {
            Some(k) => ix
                .keys
                .get(&k)
                .and_then(|l| l.first())
                .map(|&j| ix.ops[j].invoke_us),
            None => None,
        }
        .unwrap_or(ix.ops[r.first_ack].invoke_us);
        let lo = (ms(first_invoke_us) + ttl_ms).saturating_sub(CLOCK_TOLERANCE_MS);
        let hi = ms(acked_us) + ttl_ms + CLOCK_TOLERANCE_MS;
        if r.expires_at_ms < lo || r.expires_at_ms > hi {
            f.violation(
                Kind::WrongExpiry,
                format!(
                    "reservation {} expires at {} ms, outside [{lo}, {hi}] (created between its \
                     first request and its 201, plus the shortest TTL {ttl_ms} ms)",
                    r.id, r.expires_at_ms
                ),
                ix.at(&[r.first_ack]),
            );
        }
    }

    // 7. The final state, read back after the run.
    match &r.final_state {
        Some((i, State::Held)) if ms(ix.ops[*i].invoke_us) > r.expires_at_ms + EXPIRY_SLACK_MS => {
            f.violation(
                Kind::HeldPastExpiry,
                format!(
                    "reservation {} still held {} ms after its expires_at",
                    r.id,
                    ms(ix.ops[*i].invoke_us) - r.expires_at_ms
                ),
                ix.at(&[r.first_ack, *i]),
            );
        }
        None if !r.final_not_found && ix.has_final => f.unresolved.push(format!(
            "reservation {}: no answer to the read-back, final state unknown",
            r.id
        )),
        _ => {}
    }
}
