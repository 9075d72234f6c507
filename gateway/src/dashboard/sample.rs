//! One dashboard sample: what the page shows, computed from cumulative counters and the
//! previous sample (rates and latency quantiles are over the last interval). Sans-IO: the
//! sampler task gathers [`Inputs`]; [`Sampler::sample`] only computes.

use flashsale_engine::{StatsSnapshot, StockLevel};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::http::recent::ProblemRecord;
use crate::http::stock_metrics::{busiest_first, StockSum};
use crate::http::wire::format_ms;

/// SKUs the dashboard lists by name (the busiest; the rest are summed).
pub const DASHBOARD_TOP_SKUS: usize = 25;

/// What the sampler reads at one tick; counters are cumulative since start.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Now, Unix ms.
    pub now_ms: u64,
    /// The engine's counters.
    pub stats: Option<StatsSnapshot>,
    /// Latency of every HTTP answer since start, µs, all routes together.
    pub latency_us: Histogram<u64>,
    /// Every SKU's stock.
    pub levels: Vec<StockLevel>,
    /// Open HTTP connections.
    pub http_connections: u64,
    /// Open stock-stream connections.
    pub stream_subscribers: u64,
    /// Open dashboard event streams.
    pub dashboard_streams: u64,
    /// The latest problems, newest first.
    pub problems: Vec<ProblemRecord>,
    /// Problems since start.
    pub problems_total: u64,
}

/// One SKU's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkuRow {
    /// The SKU id.
    pub sku: String,
    /// `available + reserved + sold`.
    pub total: u64,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
}

/// Several SKUs summed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SkuTotals {
    /// How many SKUs.
    pub count: u64,
    /// Their total stock.
    pub total: u64,
    /// Units available.
    pub available: u64,
    /// Units held.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
}

impl SkuTotals {
    fn of(count: usize, s: &StockSum) -> Self {
        SkuTotals {
            count: count as u64,
            total: s.total(),
            available: s.available,
            reserved: s.reserved,
            sold: s.sold,
        }
    }
}

/// The SKU part of a sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SkuSection {
    /// The busiest SKUs (most reserved plus sold, ties by id), at most [`DASHBOARD_TOP_SKUS`].
    pub shown: Vec<SkuRow>,
    /// The other SKUs, summed.
    pub others: SkuTotals,
    /// All SKUs, summed.
    pub all: SkuTotals,
}

/// What one server-sent event carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// When it was taken, RFC 3339 UTC.
    pub at: String,
    /// Seconds since the previous sample (`null` for the first).
    pub interval_s: Option<f64>,
    /// Reservations acknowledged per second over the interval.
    pub reservations_per_s: Option<f64>,
    /// Reserve requests refused as sold out per second over the interval.
    pub sold_out_per_s: Option<f64>,
    /// HTTP answers per second over the interval.
    pub requests_per_s: Option<f64>,
    /// Median HTTP latency over the interval, ms (`null` without requests).
    pub http_p50_ms: Option<f64>,
    /// 99th percentile HTTP latency over the interval, ms.
    pub http_p99_ms: Option<f64>,
    /// 99th percentile log commit latency over the interval, ms: the upper bound of its
    /// histogram bucket (`null` without commits).
    pub commit_p99_ms: Option<f64>,
    /// Whether every shard's log is writable.
    pub log_writable: bool,
    /// Open HTTP connections.
    pub http_connections: u64,
    /// Open stock-stream connections.
    pub stream_subscribers: u64,
    /// Open dashboard event streams.
    pub dashboard_streams: u64,
    /// Stock.
    pub skus: SkuSection,
    /// The latest problems answered (4xx and 5xx but sold-out), newest first.
    pub errors: Vec<ProblemRecord>,
    /// Problems since start.
    pub errors_total: u64,
}

/// What the previous sample saw.
#[derive(Debug, Clone)]
struct Previous {
    at_ms: u64,
    held: u64,
    sold_out: u64,
    batches: u64,
    commit_buckets: Vec<(u64, u64)>,
    latency_us: Histogram<u64>,
}

/// Turns successive [`Inputs`] into [`Sample`]s.
#[derive(Debug, Default)]
pub struct Sampler {
    previous: Option<Previous>,
}

/// `delta / seconds`, rounded to 0.1.
fn per_s(delta: u64, seconds: f64) -> f64 {
    ((delta as f64 / seconds) * 10.0).round() / 10.0
}

/// µs as ms, rounded to 0.001.
fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The `q` quantile of the commits between two cumulative bucket lists (`(bound µs,
/// cumulative count)`), as its bucket's bound; the last bound if it lies beyond all of them.
pub fn bucket_quantile_us(
    prev: &[(u64, u64)],
    cur: &[(u64, u64)],
    total: u64,
    q: f64,
) -> Option<u64> {
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let before = |i: usize, bound: u64| -> u64 {
        prev.get(i)
            .filter(|(b, _)| *b == bound)
            .map_or(0, |(_, n)| *n)
    };
    for (i, &(bound, n)) in cur.iter().enumerate() {
        if n.saturating_sub(before(i, bound)) >= rank {
            return Some(bound);
        }
    }
    cur.last().map(|&(bound, _)| bound)
}

impl Sampler {
    /// A sampler with no history (its first sample has no rates).
    pub fn new() -> Self {
        Self::default()
    }

    /// The sample of `inputs`, listing at most `top` SKUs by name.
    pub fn sample(&mut self, mut inputs: Inputs, top: usize) -> Sample {
        let stats = inputs.stats.clone().unwrap_or_default();
        let skus = sku_section(&mut inputs.levels, top);
        let mut sample = Sample {
            at: format_ms(inputs.now_ms),
            interval_s: None,
            reservations_per_s: None,
            sold_out_per_s: None,
            requests_per_s: None,
            http_p50_ms: None,
            http_p99_ms: None,
            commit_p99_ms: None,
            log_writable: inputs.stats.as_ref().is_none_or(|s| s.log_writable),
            http_connections: inputs.http_connections,
            stream_subscribers: inputs.stream_subscribers,
            dashboard_streams: inputs.dashboard_streams,
            skus,
            errors: inputs.problems,
            errors_total: inputs.problems_total,
        };
        if let Some(prev) = &self.previous {
            let seconds = inputs.now_ms.saturating_sub(prev.at_ms).max(1) as f64 / 1000.0;
            sample.interval_s = Some(seconds);
            sample.reservations_per_s = Some(per_s(
                stats.reservations_held.saturating_sub(prev.held),
                seconds,
            ));
            sample.sold_out_per_s = Some(per_s(
                stats.sold_out_rejections.saturating_sub(prev.sold_out),
                seconds,
            ));
            let mut recent = inputs.latency_us.clone();
            if recent.subtract(&prev.latency_us).is_ok() {
                sample.requests_per_s = Some(per_s(recent.len(), seconds));
                if !recent.is_empty() {
                    sample.http_p50_ms = Some(us_to_ms(recent.value_at_quantile(0.5)));
                    sample.http_p99_ms = Some(us_to_ms(recent.value_at_quantile(0.99)));
                }
            }
            let commits = stats.log_batches.saturating_sub(prev.batches);
            sample.commit_p99_ms = bucket_quantile_us(
                &prev.commit_buckets,
                &stats.commit_latency_us_buckets,
                commits,
                0.99,
            )
            .map(us_to_ms);
        }
        self.previous = Some(Previous {
            at_ms: inputs.now_ms,
            held: stats.reservations_held,
            sold_out: stats.sold_out_rejections,
            batches: stats.log_batches,
            commit_buckets: stats.commit_latency_us_buckets,
            latency_us: inputs.latency_us,
        });
        sample
    }
}

/// The busiest `top` SKUs by name, the rest and all summed.
fn sku_section(levels: &mut [StockLevel], top: usize) -> SkuSection {
    let split = busiest_first(levels, top);
    let (named, rest) = levels.split_at(split);
    let mut all = StockSum::default();
    let mut others = StockSum::default();
    let shown = named
        .iter()
        .map(|l| {
            all.add(l);
            SkuRow {
                sku: l.sku.to_string(),
                total: l
                    .available
                    .saturating_add(l.reserved)
                    .saturating_add(l.sold),
                available: l.available,
                reserved: l.reserved,
                sold: l.sold,
            }
        })
        .collect();
    for l in rest {
        all.add(l);
        others.add(l);
    }
    SkuSection {
        shown,
        others: SkuTotals::of(rest.len(), &others),
        all: SkuTotals::of(levels.len(), &all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale_protocol::SkuId;

    fn histogram(values_us: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 2).unwrap();
        for &v in values_us {
            h.record(v).unwrap();
        }
        h
    }

    fn inputs(now_ms: u64, held: u64, latencies: &[u64], commits: Vec<(u64, u64)>) -> Inputs {
        let batches = commits.last().map_or(0, |b| b.1);
        Inputs {
            now_ms,
            stats: Some(StatsSnapshot {
                reservations_held: held,
                sold_out_rejections: held / 2,
                log_batches: batches,
                commit_latency_us_buckets: commits,
                log_writable: true,
                ..StatsSnapshot::default()
            }),
            latency_us: histogram(latencies),
            levels: vec![
                StockLevel {
                    sku: SkuId::new("hot").unwrap(),
                    available: 10,
                    reserved: 5,
                    sold: 85,
                    log_seq: 0,
                },
                StockLevel {
                    sku: SkuId::new("cold").unwrap(),
                    available: 7,
                    reserved: 0,
                    sold: 0,
                    log_seq: 0,
                },
            ],
            http_connections: 3,
            stream_subscribers: 1,
            dashboard_streams: 1,
            problems: Vec::new(),
            problems_total: 0,
        }
    }

    #[test]
    fn rates_and_quantiles_are_over_the_last_interval() {
        let mut s = Sampler::new();
        let first = s.sample(
            inputs(1_000, 100, &[100_000; 10], vec![(1000, 10), (5000, 10)]),
            1,
        );
        assert_eq!(first.reservations_per_s, None);
        assert_eq!(first.http_p99_ms, None);
        assert_eq!(first.skus.shown.len(), 1);
        assert_eq!(first.skus.shown[0].sku, "hot");
        assert_eq!(first.skus.shown[0].total, 100);
        assert_eq!(first.skus.others.count, 1);
        assert_eq!(first.skus.all.available, 17);
        // 2 s later: 300 more reservations, 100 fast requests (the 10 slow ones are older),
        // 100 commits of which 2 took more than 1 ms.
        let mut lat = vec![100_000; 10];
        lat.extend([200; 100]);
        let second = s.sample(inputs(3_000, 400, &lat, vec![(1000, 108), (5000, 110)]), 1);
        assert_eq!(second.interval_s, Some(2.0));
        assert_eq!(second.reservations_per_s, Some(150.0));
        assert_eq!(second.sold_out_per_s, Some(75.0));
        assert_eq!(second.requests_per_s, Some(50.0));
        let p99 = second.http_p99_ms.unwrap();
        assert!((0.19..=0.21).contains(&p99), "{p99}");
        assert_eq!(second.commit_p99_ms, Some(5.0));
        let json = serde_json::to_string(&second).unwrap();
        assert!(json.contains("\"reservations_per_s\":150.0"), "{json}");
    }

    #[test]
    fn bucket_quantiles() {
        let cur = [(100, 50), (1000, 99), (10_000, 100)];
        assert_eq!(bucket_quantile_us(&[], &cur, 100, 0.5), Some(100));
        assert_eq!(bucket_quantile_us(&[], &cur, 100, 0.99), Some(1000));
        assert_eq!(bucket_quantile_us(&[], &cur, 100, 1.0), Some(10_000));
        assert_eq!(bucket_quantile_us(&[], &cur, 0, 0.99), None);
        // Commits beyond the last bucket: the last bound.
        assert_eq!(bucket_quantile_us(&[], &[(100, 1)], 5, 0.99), Some(100));
    }
}
