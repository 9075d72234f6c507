//! One acknowledged reservation at a time: a 201 carries the requested lines; afterwards the
//! reservation is readable with the same buyer, lines and expiry (it may legitimately have been
//! confirmed, released or expired, never forgotten); its state only moves from `held` to one
//! final state; expiry happens at `expires_at` = creation + the shortest TTL of its lines (not
//! before, not long after); a confirm after `expires_at` is refused; a confirm or cancel is
//! refused only when something else decided the reservation first.
//!
//! Extensions move the deadline: an acknowledged one is honoured (no expiry before its new
//! `expires_at`, which covers the hold asked for, within the SKUs' maximum hold and number of
//! extensions), one whose answer was lost may have moved it up to what it asked, and an
//! extension is refused only when the state or a bound explains it. List pages that show the
//! reservation are observations like any read: a list never shows it in a state its history
//! contradicts.

use super::index::{effect, http, Effect, Ix, Res, State};
use super::{Findings, Kind, CLOCK_TOLERANCE_MS, EXPIRY_SLACK_MS};
use crate::chaos::history::{Call, Line, Op};

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

/// The deadlines of a reservation's hold, given the extensions sent.
#[derive(Debug, Clone)]
pub struct Deadlines {
    /// Acknowledged extensions: (op index, the new `expires_at` in ms), by invocation.
    pub acked: Vec<(usize, u64)>,
    /// The latest deadline the history allows: an extension whose answer was lost may have
    /// moved it up to what it asked, counted from when the server applied it — which may be
    /// after the client gave up on the answer (a reset exchange is still served), so a later
    /// read that shows it is the bound (see [`Deadlines::of`]).
    pub upper_ms: u64,
    /// The latest deadline by the answers alone: acknowledged extensions, and unanswered
    /// ones counted from their answer's time.
    answered_upper_ms: u64,
    /// Extensions with an unknown outcome: (sent at µs, ttl in ms).
    unknown: Vec<(u64, u64)>,
}

impl Deadlines {
    /// The deadlines of `r`. An extension with an unknown outcome moves the latest allowed
    /// deadline to what it asked counted from its answer's time; a read may show one counted
    /// from later, when the server applied it after the client stopped waiting: such a
    /// deadline is allowed when an unknown extension sent before the read could have set it
    /// by the read's completion (`complete + ttl`, with the clock tolerance).
    pub fn of(ix: &Ix<'_>, r: &Res<'_>) -> Deadlines {
        let mut acked = Vec::new();
        let mut upper_ms = r.expires_at_ms;
        // Extensions with an unknown outcome: (sent at µs, ttl in ms).
        let mut unknown: Vec<(u64, u64)> = Vec::new();
        for &i in &r.ops {
            let op = ix.ops[i];
            let Call::Extend { id, ttl_s } = &op.call else {
                continue;
            };
            if id != r.id {
                continue;
            }
            let seen = http(op)
                .filter(|a| a.status == 200)
                .and_then(|a| a.shows(r.id));
            match (effect(op), seen) {
                (Effect::Done, Some(v)) => {
                    acked.push((i, v.expires_at_ms));
                    upper_ms = upper_ms.max(v.expires_at_ms);
                }
                (Effect::None, _) => {}
                _ => {
                    let asked = op.complete_us / 1000 + ttl_s * 1000 + CLOCK_TOLERANCE_MS;
                    upper_ms = upper_ms.max(asked);
                    unknown.push((op.invoke_us, ttl_s.saturating_mul(1000)));
                }
            }
        }
        let mut dl = Deadlines {
            acked,
            upper_ms,
            answered_upper_ms: upper_ms,
            unknown,
        };
        if !dl.unknown.is_empty() {
            for &i in &r.ops {
                let op = ix.ops[i];
                let Some(v) = http(op).and_then(|a| a.shows(r.id)) else {
                    continue;
                };
                if v.expires_at_ms > dl.upper_ms && dl.unanswered_could_set(v.expires_at_ms, op) {
                    dl.upper_ms = v.expires_at_ms;
                }
            }
        }
        dl
    }

    /// Whether an extension with an unknown outcome, sent before `seen_by` completed, could
    /// have set `expires_at_ms` by then.
    fn unanswered_could_set(&self, expires_at_ms: u64, seen_by: &Op) -> bool {
        self.unknown.iter().any(|&(sent_us, ttl_ms)| {
            sent_us <= seen_by.complete_us
                && expires_at_ms <= seen_by.complete_us / 1000 + ttl_ms + CLOCK_TOLERANCE_MS
        })
    }

    /// The deadline no expiry may come before: the latest acknowledged one.
    pub fn honoured(&self, r: &Res<'_>) -> u64 {
        self.acked
            .iter()
            .map(|(_, d)| *d)
            .fold(r.expires_at_ms, u64::max)
    }

    /// The deadline known at `t_us`: the latest acknowledged by an extension answered by then.
    pub fn known_at(&self, ix: &Ix<'_>, r: &Res<'_>, t_us: u64) -> u64 {
        self.acked
            .iter()
            .filter(|(i, _)| ix.ops[*i].complete_us <= t_us)
            .map(|(_, d)| *d)
            .fold(r.expires_at_ms, u64::max)
    }

    /// Whether a view answered by `seen_by` may show `expires_at_ms`: the first one, or a
    /// later one extensions may have set by the time `seen_by` completed.
    pub fn allows(&self, r: &Res<'_>, expires_at_ms: u64, seen_by: &Op) -> bool {
        expires_at_ms == r.expires_at_ms
            || (expires_at_ms > r.expires_at_ms
                && (expires_at_ms <= self.answered_upper_ms
                    || self.unanswered_could_set(expires_at_ms, seen_by)))
    }
}

fn check_one(ix: &Ix<'_>, r: &Res<'_>, f: &mut Findings) {
    let ms = |us: u64| us / 1000;
    let acked_us = r.acked_us(ix);
    let dl = Deadlines::of(ix, r);
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
        if !dl.allows(r, v.expires_at_ms, op) {
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
        let about_it = op.call.reservation_id() == Some(r.id);
        if a.status == 404 && about_it && op.invoke_us > acked_us && !lost_reported {
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
        let Some(v) = a.shows(r.id).filter(|_| a.status == 200) else {
            continue;
        };
        let differs =
            v.lines != r.lines || v.buyer != r.buyer || !dl.allows(r, v.expires_at_ms, op);
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

    // 4. Releases have a cause and expiry its time (the latest acknowledged deadline).
    let honoured = dl.honoured(r);
    for o in &obs {
        let op = ix.ops[o.i];
        match &o.state {
            State::Expired if ms(op.complete_us) + CLOCK_TOLERANCE_MS < honoured => {
                let mut at = vec![r.first_ack, o.i];
                at.extend(dl.acked.iter().map(|(i, _)| *i));
                f.violation(
                    Kind::EarlyExpiry,
                    format!(
                        "reservation {} read as expired by {} {} ms before its {}expires_at",
                        r.id,
                        op.call.name(),
                        honoured - ms(op.complete_us),
                        if honoured > r.expires_at_ms {
                            "acknowledged extended "
                        } else {
                            ""
                        }
                    ),
                    ix.at(&at),
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
    let exp_us = dl.upper_ms * 1000;
    let confirmed_in_time = sent_before(ix, r, exp_us, |c| matches!(c, Call::Confirm { .. }));
    for &i in &r.ops {
        let op = ix.ops[i];
        let Some(a) = http(op) else { continue };
        let before_expiry = ms(op.complete_us) + CLOCK_TOLERANCE_MS < r.expires_at_ms;
        match &op.call {
            Call::Confirm { .. }
                if a.status == 200
                    && ms(op.invoke_us) > dl.upper_ms + CLOCK_TOLERANCE_MS
                    && !confirmed_in_time =>
            {
                f.violation(
                    Kind::ConfirmAfterExpiry,
                    format!(
                        "reservation {} expiring at {} ms was confirmed by a confirm sent {} ms \
                         later",
                        r.id,
                        dl.upper_ms,
                        ms(op.invoke_us) - dl.upper_ms
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
            Call::Extend { ttl_s, .. } => check_extend(ix, r, &dl, i, *ttl_s, f),
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
        Some((i, State::Held)) if ms(ix.ops[*i].invoke_us) > dl.upper_ms + EXPIRY_SLACK_MS => {
            f.violation(
                Kind::HeldPastExpiry,
                format!(
                    "reservation {} still held {} ms after its latest possible expires_at",
                    r.id,
                    ms(ix.ops[*i].invoke_us) - dl.upper_ms
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

/// One extension of `r` (op `i`, asking `ttl_s`): an acknowledged one covers the hold asked
/// for and stays within the bounds; a refusal must be explained by the state (a cancel or
/// confirm sent, or the deadline passed) or by a bound (as many extensions sent as allowed, or
/// a hold past the maximum from creation).
fn check_extend(ix: &Ix<'_>, r: &Res<'_>, dl: &Deadlines, i: usize, ttl_s: u64, f: &mut Findings) {
    let ms = |us: u64| us / 1000;
    let op = ix.ops[i];
    let Some(a) = http(op) else { return };
    if op.invoke_us < r.acked_us(ix) {
        return;
    }
    let ttl_ms = ttl_s * 1000;
    let bounds = ix.hold_bounds(r.lines);
    let created_ms = ix
        .ttl_ms(r.lines)
        .map(|t| r.expires_at_ms.saturating_sub(t));
    // Other extensions that may have counted before this one was decided.
    let others = r
        .ops
        .iter()
        .filter(|&&j| {
            let o = ix.ops[j];
            j != i
                && matches!(o.call, Call::Extend { .. })
                && o.invoke_us <= op.complete_us
                && effect(o) != Effect::None
        })
        .count();
    if a.status == 200 {
        let Some(v) = a.shows(r.id) else { return };
        if v.expires_at_ms + CLOCK_TOLERANCE_MS < ms(op.invoke_us) + ttl_ms {
            f.violation(
                Kind::WrongExpiry,
                format!(
                    "extension of reservation {} by {ttl_s} s sent at {} ms was acknowledged \
                     with expires_at {} ms, short of the hold asked for",
                    r.id,
                    ms(op.invoke_us),
                    v.expires_at_ms
                ),
                ix.at(&[r.first_ack, i]),
            );
        }
        let done_before = dl
            .acked
            .iter()
            .filter(|(j, _)| ix.ops[*j].complete_us < op.invoke_us)
            .count();
        if let (Some((max_hold_ms, max_ext)), Some(created_ms)) = (bounds, created_ms) {
            let past_hold = v.expires_at_ms > created_ms + max_hold_ms + CLOCK_TOLERANCE_MS;
            if past_hold || done_before >= max_ext as usize {
                f.violation(
                    Kind::HoldBoundIgnored,
                    format!(
                        "extension of reservation {} acknowledged with expires_at {} ms after \
                         {done_before} acknowledged extensions: its bounds are {max_ext} \
                         extensions and a hold until {} ms",
                        r.id,
                        v.expires_at_ms,
                        created_ms + max_hold_ms
                    ),
                    ix.at(&[r.first_ack, i]),
                );
            }
        }
        return;
    }
    let known = dl.known_at(ix, r, op.invoke_us);
    let live = ms(op.complete_us) + CLOCK_TOLERANCE_MS < known;
    if a.is(409, "invalid-state") && live {
        let decided = r.ops.iter().any(|&j| {
            let o = ix.ops[j];
            o.invoke_us <= op.complete_us
                && effect(o) != Effect::None
                && matches!(o.call, Call::Cancel { .. } | Call::Confirm { .. })
        });
        if !decided {
            f.violation(
                Kind::SpuriousRefusal,
                format!(
                    "extension of reservation {} refused (409 invalid-state) before its \
                     deadline {known} ms with no cancel or confirm sent",
                    r.id
                ),
                ix.at(&[r.first_ack, i]),
            );
        }
    }
    if a.status == 422 {
        let (Some((max_hold_ms, max_ext)), Some(created_ms)) = (bounds, created_ms) else {
            return;
        };
        let explained = match a.limit_name.as_deref() {
            Some("max_extensions") => others >= max_ext as usize,
            Some("max_hold_s") => {
                ms(op.complete_us) + ttl_ms + CLOCK_TOLERANCE_MS > created_ms + max_hold_ms
            }
            _ => false,
        };
        if !explained {
            f.violation(
                Kind::SpuriousRefusal,
                format!(
                    "extension of reservation {} by {ttl_s} s refused (422 {}) with {others} \
                     other extensions sent: its bounds are {max_ext} extensions and a hold \
                     until {} ms",
                    r.id,
                    a.limit_name.as_deref().unwrap_or("no limit named"),
                    created_ms + max_hold_ms
                ),
                ix.at(&[r.first_ack, i]),
            );
        }
    }
}
