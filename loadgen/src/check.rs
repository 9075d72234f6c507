//! The after-run check: the server's SKU counts against the contract invariant and against what
//! the load generator was told. See docs/adr/0011-loadgen.md for the exact definitions.

use serde::Serialize;

use crate::ledger::Tally;
use flashsale_client::Sku;

/// A SKU's counts as the server reports them (`GET /v1/skus/{sku}`), signed: a faulty server's
/// negative count is evidence, not a parse error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
pub struct SkuCounts {
    /// Total stock.
    pub total: i64,
    /// Units neither held nor sold.
    pub available: i64,
    /// Units held by open reservations.
    pub reserved: i64,
    /// Units sold (confirmed).
    pub sold: i64,
}

impl From<&Sku> for SkuCounts {
    fn from(s: &Sku) -> SkuCounts {
        SkuCounts {
            total: s.total,
            available: s.available,
            reserved: s.reserved,
            sold: s.sold,
        }
    }
}

/// One SKU's counts before and after the run, and the client's tally for it.
#[derive(Debug, Clone, Copy)]
pub struct SkuObservation {
    /// Counts read after setup, before the load.
    pub before: SkuCounts,
    /// Counts read after the load (and `--settle-s`).
    pub after: SkuCounts,
    /// What the load generator was told about this SKU.
    pub tally: Tally,
}

/// An inclusive range of acceptable values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// Smallest acceptable value.
    pub min: i64,
    /// Largest acceptable value.
    pub max: i64,
}

impl Bounds {
    fn contains(&self, v: i64) -> bool {
        self.min <= v && v <= self.max
    }
}

/// The outcome of the check over all SKUs.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Units held or sold beyond stock, or negative counts, summed over SKUs, from the server's
    /// counts plus, when it can be known, from the acknowledgements the client received. Must be 0.
    pub oversold: u64,
    /// Server-side part: per SKU `max(0, sold + reserved - total, -available, -reserved, -sold)`.
    pub server_oversold: u64,
    /// Client-side part (acknowledged net holds beyond the stock available to the run); `None`
    /// when reservations may have expired during the run (released stock may be re-sold).
    pub client_oversold: Option<u64>,
    /// SKUs whose `available + reserved + sold != total`.
    pub invariant_violations: u64,
    /// SKUs checked.
    pub skus_checked: usize,
    /// Client tallies summed over SKUs.
    pub told: Tally,
    /// Change of `sold` over the run, summed over SKUs.
    pub server_sold_delta: i64,
    /// Change of `reserved + sold` over the run, summed over SKUs.
    pub server_held_plus_sold_delta: i64,
    /// Acknowledged holds neither confirmed nor cancelled by the client (left to expire).
    pub abandoned: u64,
    /// `abandoned` minus the change of `reserved`: abandoned units the server no longer holds,
    /// i.e. released by expiry (approximate when there are unknown outcomes).
    pub expired_inferred: i64,
    /// Acceptable `server_sold_delta` given what the client was told.
    pub expected_sold: Bounds,
    /// Acceptable `server_held_plus_sold_delta` given what the client was told.
    pub expected_held_plus_sold: Bounds,
    /// Both deltas are within their bounds on every SKU.
    pub counts_match: bool,
    /// SKUs whose deltas are outside their bounds.
    pub mismatched_skus: Vec<String>,
    /// The bounds are a single value (no unknown outcomes, no expiry possible).
    pub exact: bool,
    /// Whether reservations could have expired before the counts were read.
    pub expiry_possible: bool,
}

fn sku_bounds(t: &Tally, expiry_possible: bool) -> (Bounds, Bounds) {
    let held = t.held as i64;
    let confirmed = t.confirmed as i64;
    let cancelled = t.cancelled as i64;
    let sold = Bounds {
        min: confirmed,
        max: confirmed + t.unknown_confirm as i64,
    };
    let upper = held - cancelled + t.unknown_reserve as i64;
    let lower = if expiry_possible {
        confirmed
    } else {
        held - cancelled - t.unknown_cancel as i64
    };
    (
        sold,
        Bounds {
            min: lower,
            max: upper.max(lower),
        },
    )
}

fn server_oversold(c: &SkuCounts) -> u64 {
    let over = (c.sold + c.reserved - c.total)
        .max(-c.available)
        .max(-c.reserved)
        .max(-c.sold)
        .max(0);
    over as u64
}

/// Checks every SKU. `names` label mismatches; `expiry_possible` says whether holds may have been
/// released by expiry before the counts were read.
pub fn check(names: &[String], obs: &[SkuObservation], expiry_possible: bool) -> CheckReport {
    let mut r = CheckReport {
        oversold: 0,
        server_oversold: 0,
        client_oversold: (!expiry_possible).then_some(0),
        invariant_violations: 0,
        skus_checked: obs.len(),
        told: Tally::default(),
        server_sold_delta: 0,
        server_held_plus_sold_delta: 0,
        abandoned: 0,
        expired_inferred: 0,
        expected_sold: Bounds { min: 0, max: 0 },
        expected_held_plus_sold: Bounds { min: 0, max: 0 },
        counts_match: true,
        mismatched_skus: Vec::new(),
        exact: true,
        expiry_possible,
    };
    for (i, o) in obs.iter().enumerate() {
        let a = &o.after;
        r.server_oversold += server_oversold(a);
        if a.available + a.reserved + a.sold != a.total {
            r.invariant_violations += 1;
        }
        if let Some(client) = r.client_oversold.as_mut() {
            // Stock the run could take: what was available when it started, plus restocks.
            let capacity = o.before.available + (a.total - o.before.total).max(0);
            let net_min =
                o.tally.held as i64 - o.tally.cancelled as i64 - o.tally.unknown_cancel as i64;
            *client += (net_min - capacity).max(0) as u64;
        }
        r.told.merge(&o.tally);
        let d_sold = a.sold - o.before.sold;
        let d_held_sold = (a.reserved + a.sold) - (o.before.reserved + o.before.sold);
        r.server_sold_delta += d_sold;
        r.server_held_plus_sold_delta += d_held_sold;
        let (sold, held_sold) = sku_bounds(&o.tally, expiry_possible);
        r.expected_sold.min += sold.min;
        r.expected_sold.max += sold.max;
        r.expected_held_plus_sold.min += held_sold.min;
        r.expected_held_plus_sold.max += held_sold.max;
        if sold.min != sold.max || held_sold.min != held_sold.max {
            r.exact = false;
        }
        if !(sold.contains(d_sold) && held_sold.contains(d_held_sold)) {
            r.counts_match = false;
            if r.mismatched_skus.len() < 20 {
                let name = names.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
                r.mismatched_skus.push(name);
            }
        }
    }
    r.oversold = r.server_oversold + r.client_oversold.unwrap_or(0);
    r.abandoned = r
        .told
        .held
        .saturating_sub(r.told.confirmed + r.told.cancelled);
    let reserved_delta = r.server_held_plus_sold_delta - r.server_sold_delta;
    r.expired_inferred = r.abandoned as i64 - reserved_delta;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: i64, available: i64, reserved: i64, sold: i64) -> SkuCounts {
        SkuCounts {
            total,
            available,
            reserved,
            sold,
        }
    }

    fn fresh(total: i64) -> SkuCounts {
        counts(total, total, 0, 0)
    }

    #[test]
    fn an_honest_hot_item_run_matches_exactly() {
        let tally = Tally {
            held: 100,
            ..Tally::default()
        };
        let obs = [SkuObservation {
            before: fresh(100),
            after: counts(100, 0, 100, 0),
            tally,
        }];
        let r = check(&["hot".into()], &obs, false);
        assert_eq!(r.oversold, 0);
        assert!(r.counts_match && r.exact);
        assert_eq!(r.expected_held_plus_sold, Bounds { min: 100, max: 100 });
    }

    #[test]
    fn server_oversell_is_detected() {
        let obs = [SkuObservation {
            before: fresh(10),
            after: counts(10, -2, 12, 0),
            tally: Tally {
                held: 12,
                ..Tally::default()
            },
        }];
        let r = check(&["x".into()], &obs, false);
        assert_eq!(r.server_oversold, 2);
        assert_eq!(r.client_oversold, Some(2));
        assert_eq!(r.oversold, 4);
        assert_eq!(r.invariant_violations, 0);
    }

    #[test]
    fn acknowledgements_the_server_forgot_are_a_mismatch() {
        let obs = [SkuObservation {
            before: fresh(10),
            after: counts(10, 5, 5, 0),
            tally: Tally {
                held: 7,
                ..Tally::default()
            },
        }];
        let r = check(&["lost".into()], &obs, false);
        assert_eq!(r.oversold, 0);
        assert!(!r.counts_match);
        assert_eq!(r.mismatched_skus, vec!["lost".to_string()]);
    }

    #[test]
    fn unknown_outcomes_and_expiry_widen_the_bounds() {
        let tally = Tally {
            held: 10,
            confirmed: 4,
            cancelled: 2,
            unknown_reserve: 1,
            unknown_confirm: 1,
            unknown_cancel: 0,
        };
        // 4 or 5 sold, and 0..=4 still held (abandoned ones may have expired).
        let obs = [SkuObservation {
            before: fresh(20),
            after: counts(20, 14, 1, 5),
            tally,
        }];
        let r = check(&["c".into()], &obs, true);
        assert_eq!(r.client_oversold, None);
        assert_eq!(r.expected_sold, Bounds { min: 4, max: 5 });
        assert_eq!(r.expected_held_plus_sold, Bounds { min: 4, max: 9 });
        assert!(r.counts_match && !r.exact);
        assert_eq!(r.abandoned, 4);
        assert_eq!(r.expired_inferred, 3, "4 abandoned, 1 still reserved");
        assert_eq!(r.invariant_violations, 0);
    }

    #[test]
    fn deltas_allow_pre_existing_sales() {
        let tally = Tally {
            held: 3,
            ..Tally::default()
        };
        let obs = [SkuObservation {
            before: counts(10, 5, 1, 4),
            after: counts(10, 2, 4, 4),
            tally,
        }];
        let r = check(&["old".into()], &obs, false);
        assert!(r.counts_match);
        assert_eq!(r.oversold, 0);
        let broken = counts(10, 3, 4, 4);
        let r = check(
            &["old".into()],
            &[SkuObservation {
                after: broken,
                ..obs[0]
            }],
            false,
        );
        assert_eq!(r.invariant_violations, 1);
    }
}
