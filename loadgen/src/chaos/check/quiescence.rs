//! After the run (no load, every hold expired): each SKU's counts must be exactly what the
//! acknowledged reservations explain (`sold` = units of the confirmed ones, `reserved` = units of
//! the ones still held), and the Postgres read model must hold every confirmed order with its
//! lines, no order nobody confirmed, and the same stock counts as the server.
//!
//! The workload sends every reservation with an Idempotency-Key and re-sends every key whose
//! outcome stayed unknown, so every reservation that exists is one it knows; what could still
//! not be resolved widens the check into bounds and is reported.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::index::{effect, http, Effect, Ix, State};
use super::lifecycle::fmt_lines;
use super::{Findings, Kind};
use crate::chaos::history::{Call, Line, Phase, Pos};

/// Keys with no 201 whose last answers leave open whether a reservation exists under them.
pub fn unresolved_keys<'h>(ix: &Ix<'h>) -> Vec<(u32, &'h str, &'h [Line])> {
    let mut out = Vec::new();
    for (&(caller, key), list) in &ix.keys {
        let acked = list
            .iter()
            .any(|&i| http(ix.ops[i]).is_some_and(|a| a.status == 201));
        if acked {
            continue;
        }
        let last_maybe = list
            .iter()
            .map(|&i| ix.ops[i])
            .filter(|op| effect(op) == Effect::Maybe)
            .map(|op| op.complete_us)
            .max();
        let Some(last_maybe) = last_maybe else {
            continue;
        };
        let settled = list.iter().map(|&i| ix.ops[i]).any(|op| {
            op.invoke_us > last_maybe
                && http(op).is_some_and(|a| {
                    (400..500).contains(&a.status)
                        && !a.is(409, "idempotency-in-progress")
                        && !a.is(429, "rate-limited")
                })
        });
        if !settled {
            if let Call::Reserve { lines, .. } = &ix.ops[list[0]].call {
                out.push((caller, key, lines.as_slice()));
            }
        }
    }
    out
}

/// Runs the quiescence and read-model checks.
pub fn check(ix: &Ix<'_>, f: &mut Findings) {
    if !ix.has_final {
        f.unresolved
            .push("no read-back phase in the history: counts after the run not checked".into());
        return;
    }
    let open = unresolved_keys(ix);
    for (caller, key, _) in &open {
        f.unresolved.push(format!(
            "caller {caller} key {key:?}: no definite answer, even after the read-back"
        ));
    }
    let mut final_counts: HashMap<&str, (usize, crate::chaos::history::SkuSeen)> = HashMap::new();
    for s in &ix.h.meta.skus {
        let sku = s.sku.as_str();
        let last = ix
            .sku_reads
            .get(sku)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| {
                let op = ix.ops[i];
                op.phase == Phase::Final && matches!(op.call, Call::GetSku { .. })
            })
            .max_by_key(|&i| ix.ops[i].invoke_us);
        let Some(i) = last else {
            f.unresolved
                .push(format!("{sku}: not read back after the run"));
            continue;
        };
        let Some(c) = http(ix.ops[i]).and_then(|a| a.sku) else {
            continue;
        };
        final_counts.insert(sku, (i, c));
        let (mut sold, mut held, mut unknown) = (0i64, 0i64, 0i64);
        for r in ix.res.values() {
            let qty: i64 = r
                .lines
                .iter()
                .filter(|l| l.sku == sku)
                .map(|l| i64::from(l.qty))
                .sum();
            if qty == 0 {
                continue;
            }
            match (&r.final_state, r.final_not_found) {
                (Some((_, State::Confirmed(_))), _) => sold += qty,
                (Some((_, State::Held)), _) => held += qty,
                (Some(_), _) | (None, true) => {}
                (None, false) => unknown += qty,
            }
        }
        for (_, _, lines) in &open {
            unknown += lines
                .iter()
                .filter(|l| l.sku == sku)
                .map(|l| i64::from(l.qty))
                .sum::<i64>();
        }
        let sold_ok = c.sold >= sold && c.sold <= sold + unknown;
        let held_ok = c.reserved >= held && c.reserved <= held + unknown;
        if !(sold_ok && held_ok) {
            let bound = |v: i64| {
                if unknown == 0 {
                    v.to_string()
                } else {
                    format!("{v}..={}", v + unknown)
                }
            };
            let hint = if c.reserved > held + unknown {
                " (units held at rest that no held reservation explains: a leaked hold)"
            } else if c.sold > sold + unknown {
                " (units sold that no confirmed reservation explains)"
            } else {
                " (acknowledged units missing)"
            };
            f.violation(
                Kind::CountsAtQuiescence,
                format!(
                    "{sku} after the run: sold {} and reserved {}, but the acknowledged \
                     reservations explain sold {} and reserved {}{hint}",
                    c.sold,
                    c.reserved,
                    bound(sold),
                    bound(held)
                ),
                ix.at(&[i]),
            );
        }
        if unknown > 0 {
            f.unresolved.push(format!(
                "{sku}: {unknown} units depend on unresolved outcomes (counts checked as bounds)"
            ));
        }
    }
    read_model(ix, f, &final_counts, !open.is_empty());
}

fn read_model(
    ix: &Ix<'_>,
    f: &mut Findings,
    final_counts: &HashMap<&str, (usize, crate::chaos::history::SkuSeen)>,
    open_keys: bool,
) {
    let Some((rm_pos, rm)) = &ix.h.read_model else {
        return;
    };
    let with_rm = |mut at: Vec<Pos>| {
        at.push(*rm_pos);
        at
    };
    if !rm.caught_up {
        f.violation(
            Kind::ReadModelStock,
            "the read model had not applied the whole log when it was read after the run".into(),
            vec![*rm_pos],
        );
    }
    let orders: HashMap<&str, &crate::chaos::history::OrderRow> =
        rm.orders.iter().map(|o| (o.order_id.as_str(), o)).collect();
    let mut lines: HashMap<&str, BTreeMap<&str, u32>> = HashMap::new();
    for l in &rm.order_lines {
        lines
            .entry(l.order_id.as_str())
            .or_default()
            .insert(l.sku.as_str(), l.qty);
    }
    let mut confirmed_ids: HashSet<&str> = HashSet::new();
    for r in ix.res.values() {
        let Some((fi, State::Confirmed(order))) = &r.final_state else {
            continue;
        };
        confirmed_ids.insert(r.id);
        let Some(order) = order.as_deref() else {
            continue;
        };
        f.stats.read_model_orders_checked += 1;
        let payment_refs: HashSet<&str> = r
            .ops
            .iter()
            .filter_map(|&i| match &ix.ops[i].call {
                Call::Confirm { payment_ref, .. } => Some(payment_ref.as_str()),
                _ => None,
            })
            .collect();
        let want: BTreeMap<&str, u32> = r.lines.iter().map(|l| (l.sku.as_str(), l.qty)).collect();
        match orders.get(order) {
            None => f.violation(
                Kind::ReadModelOrder,
                format!(
                    "reservation {} was confirmed as order {order} but the read model has no \
                     such order",
                    r.id
                ),
                with_rm(ix.at(&[*fi])),
            ),
            Some(row) => {
                let got = lines.get(order).cloned().unwrap_or_default();
                let pay_ok =
                    payment_refs.is_empty() || payment_refs.contains(row.payment_ref.as_str());
                if row.reservation_id != r.id || row.buyer != r.buyer || !pay_ok || got != want {
                    f.violation(
                        Kind::ReadModelOrder,
                        format!(
                            "order {order} of reservation {} (buyer {}, lines {}) is in the read \
                             model as reservation {} buyer {} payment_ref {:?} with lines {:?}",
                            r.id,
                            r.buyer,
                            fmt_lines(r.lines),
                            row.reservation_id,
                            row.buyer,
                            row.payment_ref,
                            got
                        ),
                        with_rm(ix.at(&[*fi])),
                    );
                }
            }
        }
    }
    for row in &rm.orders {
        if confirmed_ids.contains(row.reservation_id.as_str()) {
            continue;
        }
        let known = ix.res.get(row.reservation_id.as_str());
        let phantom = match known {
            Some(r) => r.final_state.is_some(),
            None => !open_keys,
        };
        if phantom {
            let at = known.map(|r| ix.at(&[r.first_ack])).unwrap_or_default();
            f.violation(
                Kind::ReadModelPhantomOrder,
                format!(
                    "the read model has order {} for reservation {}, which was not confirmed",
                    row.order_id, row.reservation_id
                ),
                with_rm(at),
            );
        }
    }
    let stock: HashMap<&str, &crate::chaos::history::SkuStockRow> =
        rm.sku_stock.iter().map(|s| (s.sku.as_str(), s)).collect();
    let mut skus: Vec<(&&str, &(usize, crate::chaos::history::SkuSeen))> =
        final_counts.iter().collect();
    skus.sort_by_key(|(s, _)| **s);
    for (sku, (i, c)) in skus {
        let ok = stock
            .get(*sku)
            .is_some_and(|s| s.total == c.total && s.reserved == c.reserved && s.sold == c.sold);
        if !ok {
            let row = stock
                .get(*sku)
                .map(|s| format!("total {} reserved {} sold {}", s.total, s.reserved, s.sold))
                .unwrap_or_else(|| "no row".into());
            f.violation(
                Kind::ReadModelStock,
                format!(
                    "{sku}: the server counts total {} reserved {} sold {} after the run, the \
                     read model's sku_stock has {row}",
                    c.total, c.reserved, c.sold
                ),
                with_rm(ix.at(&[*i])),
            );
        }
    }
}
