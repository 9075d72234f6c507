//! Checks over time: no buyer ever holds or buys more of a SKU than its per-buyer limit, no SKU
//! ever has more units held or sold than its stock, and every SKU read adds up.
//!
//! Each acknowledged reservation is *certainly live* from its first 201 until the earliest
//! moment it may have been released: the first cancel sent, or its `expires_at`; a confirmed
//! one stays forever (sold units, and the per-buyer limit counts bought units). Sweeping these
//! intervals gives a lower bound of what was held at every instant, so a sum above the limit (or
//! the stock, counting every restock that may have happened by then) is a violation whatever
//! the unknown outcomes were. Reservations already shown to be broken (lines differ from the
//! request, unknown afterwards) are left out: they are reported by [`super::lifecycle`].

use std::collections::{BTreeMap, HashMap};

use super::index::{effect, http, Effect, Ix, Res, State};
use super::{Findings, Kind};
use crate::chaos::history::Call;

/// Most reservations shown in one excerpt.
const MAX_EXCERPT: usize = 12;

/// A certainly-live interval of one reservation's line.
#[derive(Debug, Clone)]
struct Live<'h> {
    id: &'h str,
    ack: usize,
    start_us: u64,
    end_us: u64,
    qty: u64,
}

fn contradicted(ix: &Ix<'_>, r: &Res<'_>) -> bool {
    let acked = r.acked_us(ix);
    let lost = r.ops.iter().any(|&i| {
        let op = ix.ops[i];
        op.invoke_us > acked && http(op).is_some_and(|a| a.status == 404)
    });
    let differs = r.acks.iter().any(|&i| {
        let op = ix.ops[i];
        match (&op.call, http(op).and_then(|a| a.reservation.as_ref())) {
            (Call::Reserve { lines, buyer, .. }, Some(v)) => v.lines != *lines || v.buyer != *buyer,
            _ => true,
        }
    });
    let aborted = matches!(r.final_state, Some((_, State::Aborted)));
    lost || differs || aborted
}

fn interval(ix: &Ix<'_>, r: &Res<'_>) -> (u64, u64) {
    let start = r.acked_us(ix);
    let confirmed = r.ops.iter().chain(&r.acks).any(|&i| {
        let op = ix.ops[i];
        let Some(a) = http(op) else { return false };
        let shows_confirmed = a
            .reservation
            .as_ref()
            .is_some_and(|v| v.id == r.id && matches!(State::of(v), State::Confirmed(_)));
        shows_confirmed && (200..300).contains(&a.status)
    });
    if confirmed {
        return (start, u64::MAX);
    }
    let cancel = r
        .ops
        .iter()
        .map(|&i| ix.ops[i])
        .filter(|op| matches!(op.call, Call::Cancel { .. }) && effect(op) != Effect::None)
        .map(|op| op.invoke_us)
        .min()
        .unwrap_or(u64::MAX);
    (start, cancel.min(r.expires_at_ms.saturating_mul(1000)))
}

/// Sweeps `lives` in time order; calls `over(t, active)` at every start with the active set.
fn sweep<'a, 'h>(lives: &'a [Live<'h>], mut over: impl FnMut(u64, &[&'a Live<'h>]) -> bool) {
    // Ends before starts at the same instant: an interval is half-open.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(lives.len() * 2);
    for (n, l) in lives.iter().enumerate() {
        events.push((l.start_us, true, n));
        if l.end_us != u64::MAX {
            events.push((l.end_us, false, n));
        }
    }
    events.sort_by_key(|&(t, start, n)| (t, start, n));
    let mut active: BTreeMap<usize, &Live> = BTreeMap::new();
    for (t, start, n) in events {
        if start {
            active.insert(n, &lives[n]);
            let set: Vec<&Live> = active.values().copied().collect();
            if over(t, &set) {
                return;
            }
        } else {
            active.remove(&n);
        }
    }
}

/// Runs the sweeps and the per-read checks.
pub fn check(ix: &Ix<'_>, f: &mut Findings) {
    let mut by_buyer_sku: BTreeMap<(&str, &str), Vec<Live>> = BTreeMap::new();
    let mut by_sku: BTreeMap<&str, Vec<Live>> = BTreeMap::new();
    for r in ix.res.values() {
        if contradicted(ix, r) {
            continue;
        }
        let (start_us, end_us) = interval(ix, r);
        if end_us <= start_us {
            continue;
        }
        for l in r.lines {
            let live = Live {
                id: r.id,
                ack: r.first_ack,
                start_us,
                end_us,
                qty: u64::from(l.qty),
            };
            by_sku.entry(l.sku.as_str()).or_default().push(live.clone());
            by_buyer_sku
                .entry((r.buyer, l.sku.as_str()))
                .or_default()
                .push(live);
        }
    }

    for ((buyer, sku), lives) in &by_buyer_sku {
        let Some(limit) = ix.skus.get(sku).and_then(|s| s.per_buyer_limit) else {
            continue;
        };
        sweep(lives, |_, active| {
            let sum: u64 = active.iter().map(|l| l.qty).sum();
            if sum <= u64::from(limit) {
                return false;
            }
            let ids: Vec<&str> = active.iter().map(|l| l.id).collect();
            let at: Vec<usize> = active.iter().take(MAX_EXCERPT).map(|l| l.ack).collect();
            f.violation(
                Kind::BuyerLimitExceeded,
                format!(
                    "buyer {buyer} held or bought {sum} units of {sku} at once (per-buyer limit \
                     {limit}) through reservations {}",
                    ids.join(", ")
                ),
                ix.at(&at),
            );
            true
        });
    }

    for (sku, lives) in &by_sku {
        let Some(setup) = ix.skus.get(sku) else {
            continue;
        };
        let mut restocks: Vec<(u64, u64)> = ix
            .restocks
            .get(sku)
            .into_iter()
            .flatten()
            .map(|&i| ix.ops[i])
            .filter(|op| effect(op) != Effect::None)
            .filter_map(|op| match op.call {
                Call::Restock { qty, .. } => Some((op.invoke_us, qty)),
                _ => None,
            })
            .collect();
        restocks.sort_unstable();
        sweep(lives, |t, active| {
            let cap = setup.stock
                + restocks
                    .iter()
                    .take_while(|(at, _)| *at <= t)
                    .map(|(_, q)| q)
                    .sum::<u64>();
            let sum: u64 = active.iter().map(|l| l.qty).sum();
            if sum <= cap {
                return false;
            }
            let at: Vec<usize> = active.iter().take(MAX_EXCERPT).map(|l| l.ack).collect();
            f.violation(
                Kind::Oversell,
                format!(
                    "{sum} units of {sku} were held or sold at once, but its stock was at most \
                     {cap} ({} reservations; excerpt shows {})",
                    active.len(),
                    at.len()
                ),
                ix.at(&at),
            );
            true
        });
    }

    check_reads(ix, f);
}

/// Every SKU read adds up, and its total is the stock plus the restocks that may have happened.
fn check_reads(ix: &Ix<'_>, f: &mut Findings) {
    let mut reads: Vec<(&str, usize)> = ix
        .sku_reads
        .iter()
        .flat_map(|(s, l)| l.iter().map(move |&i| (*s, i)))
        .collect();
    reads.sort_by_key(|&(_, i)| i);
    let mut reported: HashMap<(&str, Kind), ()> = HashMap::new();
    for (sku, i) in reads {
        let op = ix.ops[i];
        let Some(c) = http(op).and_then(|a| a.sku) else {
            continue;
        };
        if (c.available + c.reserved + c.sold != c.total
            || c.available < 0
            || c.reserved < 0
            || c.sold < 0)
            && reported.insert((sku, Kind::Conservation), ()).is_none()
        {
            f.violation(
                Kind::Conservation,
                format!(
                    "{sku}: available {} + reserved {} + sold {} != total {} (or a count is \
                     negative)",
                    c.available, c.reserved, c.sold, c.total
                ),
                ix.at(&[i]),
            );
        }
        let Some(setup) = ix.skus.get(sku) else {
            continue;
        };
        let (mut lo, mut hi) = (setup.stock as i64, setup.stock as i64);
        for &j in ix.restocks.get(sku).into_iter().flatten() {
            let r = ix.ops[j];
            let Call::Restock { qty, .. } = r.call else {
                continue;
            };
            let e = effect(r);
            if e == Effect::Done && (r.complete_us < op.invoke_us || j == i) {
                lo += qty as i64;
            }
            if e != Effect::None && r.invoke_us <= op.complete_us {
                hi += qty as i64;
            }
        }
        if (c.total < lo || c.total > hi) && reported.insert((sku, Kind::StockTotal), ()).is_none()
        {
            f.violation(
                Kind::StockTotal,
                format!(
                    "{sku}: total {} but stock {} plus the restocks that may have happened by \
                     then allow only {lo}..={hi}",
                    c.total, setup.stock
                ),
                ix.at(&[i]),
            );
        }
    }
}
