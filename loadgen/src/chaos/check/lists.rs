//! Buyers' lists (`GET /v1/reservations?buyer=`, `GET /v1/orders?buyer=`): every page shows
//! only the buyer's reservations (orders), each once, with the status asked for, and an order
//! only of a reservation that was confirmed, with its lines; after the run, every acknowledged
//! confirmed reservation is in its buyer's orders, read to the last page. The states a list
//! shows are checked against each reservation's history by [`super::lifecycle`] (a list item
//! is an observation like a read).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::index::{http, Ix, Res, State};
use super::lifecycle::fmt_lines;
use super::{Findings, Kind};
use crate::chaos::history::{Call, Phase};

/// Runs the list checks.
pub fn check(ix: &Ix<'_>, f: &mut Findings) {
    reservation_pages(ix, f);
    order_pages(ix, f);
    orders_complete(ix, f);
}

fn reservation_pages(ix: &Ix<'_>, f: &mut Findings) {
    for &i in &ix.res_lists {
        let op = ix.ops[i];
        let Call::ListReservations { buyer, status, .. } = &op.call else {
            continue;
        };
        let Some(items) = http(op)
            .filter(|a| a.status == 200)
            .and_then(|a| a.items.as_ref())
        else {
            continue;
        };
        f.stats.list_pages += 1;
        let mut seen = HashSet::new();
        for v in items {
            let why = if v.buyer != *buyer {
                format!("reservation {} of buyer {}", v.id, v.buyer)
            } else if !seen.insert(v.id.as_str()) {
                format!("reservation {} twice", v.id)
            } else if status.as_ref().is_some_and(|s| *s != v.status) {
                format!("reservation {} with status {:?}", v.id, v.status)
            } else {
                continue;
            };
            f.violation(
                Kind::ListContradicts,
                format!(
                    "the reservations of buyer {buyer} (status {}) show {why}",
                    status.as_deref().unwrap_or("any")
                ),
                ix.at(&[i]),
            );
            break;
        }
    }
}

fn order_pages(ix: &Ix<'_>, f: &mut Findings) {
    for (buyer, list) in &ix.order_lists {
        for &i in list {
            let Some(orders) = http(ix.ops[i])
                .filter(|a| a.status == 200)
                .and_then(|a| a.orders.as_ref())
            else {
                continue;
            };
            f.stats.list_pages += 1;
            let mut seen = HashSet::new();
            for o in orders {
                let r = ix.res.get(o.reservation_id.as_str());
                let not_confirmed = r.and_then(|r| r.final_state.as_ref()).filter(|(j, s)| {
                    !matches!(s, State::Confirmed(_))
                        && ix.ops[*j].complete_us <= ix.ops[i].invoke_us
                });
                let why = if o.buyer != *buyer {
                    format!("order {} of buyer {}", o.id, o.buyer)
                } else if !seen.insert(o.id.as_str()) {
                    format!("order {} twice", o.id)
                } else if let Some(r) = r.filter(|r| o.lines != r.lines) {
                    format!(
                        "order {} of reservation {} with lines {}, acknowledged with {}",
                        o.id,
                        r.id,
                        fmt_lines(&o.lines),
                        fmt_lines(r.lines)
                    )
                } else if let Some((_, s)) = not_confirmed {
                    format!(
                        "order {} of reservation {}, read {} before",
                        o.id,
                        o.reservation_id,
                        s.name()
                    )
                } else {
                    continue;
                };
                let mut at = vec![i];
                at.extend(r.map(|r| r.first_ack));
                f.violation(
                    Kind::ListContradicts,
                    format!("the orders of buyer {buyer} show {why}"),
                    ix.at(&at),
                );
                break;
            }
        }
    }
}

/// Whether `r` is known confirmed: a confirm was acknowledged, or it was read confirmed.
fn known_confirmed(ix: &Ix<'_>, r: &Res<'_>) -> Option<usize> {
    let confirm = r.ops.iter().copied().find(|&j| {
        let op = ix.ops[j];
        matches!(op.call, Call::Confirm { .. }) && http(op).is_some_and(|a| a.status == 200)
    });
    let read = match &r.final_state {
        Some((j, State::Confirmed(_))) => Some(*j),
        _ => None,
    };
    confirm.or(read)
}

/// The reservation ids of `buyer`'s orders read after the run, following `next_cursor` from
/// the first page to the last, and the pages' ops; `None` if no such chain of answers exists.
fn final_orders<'h>(ix: &Ix<'h>, buyer: &str) -> Option<(HashSet<&'h str>, Vec<usize>)> {
    let list = ix.order_lists.get(buyer)?;
    let mut by_cursor: HashMap<Option<&str>, usize> = HashMap::new();
    for &i in list {
        let op = ix.ops[i];
        let Call::ListOrders { cursor, .. } = &op.call else {
            continue;
        };
        let ok = http(op).is_some_and(|a| a.status == 200 && a.orders.is_some());
        if op.phase == Phase::Final && ok {
            by_cursor.insert(cursor.as_deref(), i);
        }
    }
    let mut ids = HashSet::new();
    let mut pages = Vec::new();
    let mut cursor: Option<&str> = None;
    for _ in 0..=by_cursor.len() {
        let i = *by_cursor.get(&cursor)?;
        pages.push(i);
        let a = http(ix.ops[i])?;
        ids.extend(a.orders.iter().flatten().map(|o| o.reservation_id.as_str()));
        match a.next_cursor.as_deref() {
            None => return Some((ids, pages)),
            Some(c) => cursor = Some(c),
        }
    }
    None
}

fn orders_complete(ix: &Ix<'_>, f: &mut Findings) {
    // A history whose read-back did not read orders (an older workload, a hand-written
    // history) has nothing to check here.
    let read_back = ix
        .order_lists
        .values()
        .flatten()
        .any(|&i| ix.ops[i].phase == Phase::Final);
    if !read_back {
        return;
    }
    let mut by_buyer: BTreeMap<&str, Vec<(&Res<'_>, usize)>> = BTreeMap::new();
    for r in ix.res.values() {
        if let Some(j) = known_confirmed(ix, r) {
            by_buyer.entry(r.buyer).or_default().push((r, j));
        }
    }
    for (buyer, confirmed) in by_buyer {
        let Some((ids, pages)) = final_orders(ix, buyer) else {
            if ix.has_final {
                f.unresolved.push(format!(
                    "the orders of buyer {buyer} were not read to the last page after the run \
                     ({} confirmed reservations unchecked)",
                    confirmed.len()
                ));
            }
            continue;
        };
        for (r, j) in confirmed {
            if ids.contains(r.id) {
                f.stats.orders_listed_checked += 1;
                continue;
            }
            let mut at = vec![r.first_ack, j];
            at.extend(pages.iter().copied());
            f.violation(
                Kind::OrderMissing,
                format!(
                    "reservation {} of buyer {buyer} was confirmed, but its order is not in \
                     GET /v1/orders?buyer={buyer} after the run ({} pages)",
                    r.id,
                    pages.len()
                ),
                ix.at(&at),
            );
        }
    }
}
