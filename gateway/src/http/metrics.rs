//! Gateway metrics and their Prometheus text rendering: request counts by route and status,
//! latency histograms per route (hdrhistogram), connection counts, rate-limit refusals, plus the
//! engine's counters from [`StatsSnapshot`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use flashsale_engine::StatsSnapshot;
use hdrhistogram::Histogram;

use super::routes::{RouteId, ROUTES, ROUTE_COUNT};

/// Status codes counted individually; anything else is counted as `other`.
const STATUSES: &[u16] = &[
    200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429, 500, 503,
];
const STATUS_SLOTS: usize = 16;
/// Slots: every route, then one for requests that matched no route.
const ROUTE_SLOTS: usize = ROUTE_COUNT + 1;
/// Latency histogram bucket bounds, in µs (rendered in seconds).
const LATENCY_BOUNDS_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];
/// Highest latency tracked exactly by the histograms (larger values are clamped), in µs.
const MAX_TRACKED_US: u64 = 60_000_000;

/// Copies of every route's counters: each thread records into one of them (its own, with up
/// to this many recording threads), so the two HTTP workers do not pass the same cache lines
/// and the same histogram lock back and forth on every request (ADR 0043); readers add them up.
const RECORD_SHARDS: usize = 4;

/// The counters of one route as recorded by the threads of one shard (kept on cache lines of
/// its own by [`CachePadded`] in [`RouteStats`]).
struct RouteShard {
    /// Answers by status slot.
    by_status: [AtomicU64; STATUS_SLOTS],
    /// Latency of the answers, µs.
    latency_us: Mutex<Histogram<u64>>,
    /// Sum of the latencies, µs.
    latency_sum_us: AtomicU64,
}

/// The counters of one route.
struct RouteStats {
    /// One copy per recording shard.
    shards: [CachePadded<RouteShard>; RECORD_SHARDS],
}

impl RouteStats {
    /// All counters at zero.
    fn new() -> Self {
        RouteStats {
            shards: std::array::from_fn(|_| {
                CachePadded::new(RouteShard {
                    by_status: std::array::from_fn(|_| AtomicU64::new(0)),
                    latency_us: Mutex::new(new_histogram()),
                    latency_sum_us: AtomicU64::new(0),
                })
            }),
        }
    }

    /// Requests answered with the status of slot `status_slot`.
    fn count(&self, status_slot: usize) -> u64 {
        self.shards
            .iter()
            .map(|s| s.by_status[status_slot].load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of the recorded latencies, in µs.
    fn latency_sum_us(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.latency_sum_us.load(Ordering::Relaxed))
            .sum()
    }

    /// Adds every shard's latency histogram into `into`.
    fn add_latency_to(&self, into: &mut Histogram<u64>) {
        for s in &self.shards {
            if let Ok(h) = s.latency_us.lock() {
                // Same bounds everywhere: adding cannot fail.
                let _ = into.add(&*h);
            }
        }
    }

    /// The latency histogram of every shard together.
    fn latency(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        self.add_latency_to(&mut all);
        all
    }
}

thread_local! {
    /// The shard this thread records into.
    static RECORD_SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % RECORD_SHARDS
    };
}

/// The gateway's own counters. Cheap to update from any thread.
pub struct Metrics {
    routes: Vec<RouteStats>,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections accepted and served.
    pub connections_accepted: AtomicU64,
    /// Connections refused because the connection cap was reached.
    pub connections_refused: AtomicU64,
    /// Connections refused because their address was at the per-address cap.
    pub connections_refused_per_ip: AtomicU64,
    /// Connections closed after having no request in flight for the idle timeout.
    pub connections_closed_idle: AtomicU64,
    /// Connections served on a shard executor (`--http-runtime shards`).
    pub connections_on_shards: AtomicU64,
    /// Requests refused by the per-IP limit.
    pub rate_limited_ip: AtomicU64,
    /// Requests refused by the per-buyer limit.
    pub rate_limited_buyer: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A latency histogram: 1 µs .. 60 s at 2 significant digits (a few KB).
#[allow(clippy::expect_used)]
fn new_histogram() -> Histogram<u64> {
    // Constant bounds that satisfy hdrhistogram's rules (low ≥ 1, high ≥ 2 × low, sigfig ≤ 5).
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 2).expect("constant histogram bounds are valid")
}

fn status_slot(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(STATUS_SLOTS - 1)
}

impl Metrics {
    /// All counters at zero.
    pub fn new() -> Self {
        let routes = (0..ROUTE_SLOTS).map(|_| RouteStats::new()).collect();
        Metrics {
            routes,
            connections_open: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_refused_per_ip: AtomicU64::new(0),
            connections_closed_idle: AtomicU64::new(0),
            connections_on_shards: AtomicU64::new(0),
            rate_limited_ip: AtomicU64::new(0),
            rate_limited_buyer: AtomicU64::new(0),
        }
    }

    /// Records one answered request (`route` = `None` when no route matched).
    pub fn record(&self, route: Option<RouteId>, status: u16, latency: Duration) {
        let slot = route.map_or(ROUTE_COUNT, RouteId::index);
        let r = &self.routes[slot].shards[RECORD_SHARD.with(|s| *s)];
        r.by_status[status_slot(status)].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TRACKED_US);
        r.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        if let Ok(mut h) = r.latency_us.lock() {
            h.saturating_record(us);
        }
    }

    /// The latency of every answer since start, all routes together, in µs.
    pub fn latency_all_routes(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for r in &self.routes {
            r.add_latency_to(&mut all);
        }
        all
    }

    /// Number of requests recorded for `route` with `status`.
    pub fn count(&self, route: Option<RouteId>, status: u16) -> u64 {
        let slot = route.map_or(ROUTE_COUNT, RouteId::index);
        self.routes[slot].count(status_slot(status))
    }

    /// Renders the connection counters and the rate limits.
    fn render_connections(&self, out: &mut String) {
        gauge(
            out,
            "flashsale_http_connections_open",
            "Open HTTP connections.",
            self.connections_open.load(Ordering::Relaxed),
        );
        counter(
            out,
            "flashsale_http_connections_accepted_total",
            "HTTP connections accepted.",
            self.connections_accepted.load(Ordering::Relaxed),
        );
        counter(
            out,
            "flashsale_http_connections_refused_total",
            "HTTP connections refused at the connection cap.",
            self.connections_refused.load(Ordering::Relaxed),
        );
        counter(
            out,
            "flashsale_http_connections_refused_per_ip_total",
            "HTTP connections refused at the per-address cap.",
            self.connections_refused_per_ip.load(Ordering::Relaxed),
        );
        counter(
            out,
            "flashsale_http_connections_closed_idle_total",
            "HTTP connections closed after the idle timeout with no request in flight.",
            self.connections_closed_idle.load(Ordering::Relaxed),
        );
        counter(
            out,
            "flashsale_http_connections_on_shards_total",
            "HTTP connections served on a shard executor (--http-runtime shards, the default).",
            self.connections_on_shards.load(Ordering::Relaxed),
        );
        header(
            out,
            "flashsale_http_rate_limited_total",
            "counter",
            "Requests refused by a rate limit, by scope.",
        );
        let _ = writeln!(
            out,
            "flashsale_http_rate_limited_total{{scope=\"ip\"}} {}",
            self.rate_limited_ip.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "flashsale_http_rate_limited_total{{scope=\"buyer\"}} {}",
            self.rate_limited_buyer.load(Ordering::Relaxed)
        );
    }

    /// Renders everything in Prometheus text format (v0.0.4).
    pub fn render(&self, engine: Option<&StatsSnapshot>) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let label =
            |slot: usize| -> &'static str { ROUTES.get(slot).map_or("unmatched", |r| r.name) };

        header(
            &mut out,
            "flashsale_http_requests_total",
            "counter",
            "HTTP requests answered, by route and status.",
        );
        for (slot, r) in self.routes.iter().enumerate() {
            for i in 0..STATUS_SLOTS {
                let n = r.count(i);
                if n == 0 {
                    continue;
                }
                let status = STATUSES.get(i).map_or("other".to_owned(), u16::to_string);
                let _ = writeln!(
                    out,
                    "flashsale_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    label(slot)
                );
            }
        }

        header(
            &mut out,
            "flashsale_http_request_duration_seconds",
            "histogram",
            "Time from request head to response, by route.",
        );
        let latencies: Vec<Histogram<u64>> = self.routes.iter().map(RouteStats::latency).collect();
        for (slot, (r, h)) in self.routes.iter().zip(&latencies).enumerate() {
            if h.is_empty() {
                continue;
            }
            let name = label(slot);
            for &bound in LATENCY_BOUNDS_US {
                let n = h.count_between(0, bound);
                let _ = writeln!(
                    out,
                    "flashsale_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"{}\"}} {n}",
                    us_to_s(bound)
                );
            }
            let _ = writeln!(
                out,
                "flashsale_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {}",
                h.len()
            );
            let _ = writeln!(
                out,
                "flashsale_http_request_duration_seconds_sum{{route=\"{name}\"}} {}",
                us_to_s(r.latency_sum_us())
            );
            let _ = writeln!(
                out,
                "flashsale_http_request_duration_seconds_count{{route=\"{name}\"}} {}",
                h.len()
            );
        }

        header(
            &mut out,
            "flashsale_http_request_duration_quantile_seconds",
            "gauge",
            "Latency quantiles by route since start (from hdrhistogram).",
        );
        for (slot, h) in latencies.iter().enumerate() {
            if h.is_empty() {
                continue;
            }
            for q in [0.5, 0.9, 0.99, 0.999] {
                let _ = writeln!(
                    out,
                    "flashsale_http_request_duration_quantile_seconds{{route=\"{}\",quantile=\"{q}\"}} {}",
                    label(slot),
                    us_to_s(h.value_at_quantile(q))
                );
            }
        }

        self.render_connections(&mut out);

        if let Some(s) = engine {
            render_engine(&mut out, s);
        }
        out
    }
}

fn render_engine(out: &mut String, s: &StatsSnapshot) {
    header(out, "flashsale_reservations_total", "counter", "Reservations by outcome: held (acknowledged), confirmed, released (cancelled or rolled back), expired.");
    for (outcome, n) in [
        ("held", s.reservations_held),
        ("confirmed", s.reservations_confirmed),
        ("released", s.reservations_released),
        ("expired", s.reservations_expired),
    ] {
        let _ = writeln!(
            out,
            "flashsale_reservations_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    counter(
        out,
        "flashsale_sold_out_rejections_total",
        "Reserve requests refused because stock ran out.",
        s.sold_out_rejections,
    );
    counter(
        out,
        "flashsale_log_batches_total",
        "Write-ahead log commit batches.",
        s.log_batches,
    );
    counter(
        out,
        "flashsale_log_records_total",
        "Write-ahead log records.",
        s.log_records,
    );
    gauge(
        out,
        "flashsale_log_writable",
        "1 while every shard's log is writable.",
        u64::from(s.log_writable),
    );

    header(
        out,
        "flashsale_log_batch_size_records",
        "histogram",
        "Records per log commit batch.",
    );
    let mut count = 0;
    for &(le, n) in &s.log_batch_size_buckets {
        let _ = writeln!(
            out,
            "flashsale_log_batch_size_records_bucket{{le=\"{le}\"}} {n}"
        );
        count = count.max(n);
    }
    let _ = writeln!(
        out,
        "flashsale_log_batch_size_records_bucket{{le=\"+Inf\"}} {}",
        s.log_batches.max(count)
    );
    let _ = writeln!(
        out,
        "flashsale_log_batch_size_records_sum {}",
        s.log_batch_size_sum
    );
    let _ = writeln!(
        out,
        "flashsale_log_batch_size_records_count {}",
        s.log_batches.max(count)
    );

    header(
        out,
        "flashsale_log_commit_latency_seconds",
        "histogram",
        "Time to make one log batch durable.",
    );
    let mut count = 0;
    for &(le, n) in &s.commit_latency_us_buckets {
        let _ = writeln!(
            out,
            "flashsale_log_commit_latency_seconds_bucket{{le=\"{}\"}} {n}",
            us_to_s(le)
        );
        count = count.max(n);
    }
    let _ = writeln!(
        out,
        "flashsale_log_commit_latency_seconds_bucket{{le=\"+Inf\"}} {}",
        s.log_batches.max(count)
    );
    let _ = writeln!(
        out,
        "flashsale_log_commit_latency_seconds_sum {}",
        us_to_s(s.commit_latency_us_sum)
    );
    let _ = writeln!(
        out,
        "flashsale_log_commit_latency_seconds_count {}",
        s.log_batches.max(count)
    );
}

/// Microseconds as a decimal number of seconds (Prometheus durations are in seconds).
pub(crate) fn us_to_s(us: u64) -> String {
    format!("{}", us as f64 / 1e6)
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one Prometheus counter with its help line.
pub(crate) fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {v}");
}

/// Writes one Prometheus gauge with its help line.
pub(crate) fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_from_many_threads_add_up_across_shards() {
        let m = Metrics::new();
        std::thread::scope(|s| {
            for _ in 0..(2 * RECORD_SHARDS + 1) {
                s.spawn(|| {
                    for _ in 0..100 {
                        m.record(Some(RouteId::Reserve), 409, Duration::from_micros(10));
                    }
                });
            }
        });
        let n = (2 * RECORD_SHARDS as u64 + 1) * 100;
        assert_eq!(m.count(Some(RouteId::Reserve), 409), n);
        assert_eq!(m.latency_all_routes().len(), n);
        let text = m.render(None);
        assert!(
            text.contains(&format!(
                "flashsale_http_request_duration_seconds_count{{route=\"reserve\"}} {n}"
            )),
            "{text}"
        );
    }

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let m = Metrics::new();
        m.record(Some(RouteId::Reserve), 201, Duration::from_micros(300));
        m.record(Some(RouteId::Reserve), 409, Duration::from_micros(80));
        m.record(Some(RouteId::Reserve), 409, Duration::from_millis(3));
        m.record(None, 404, Duration::from_micros(5));
        m.record(
            Some(RouteId::DashboardSignOut),
            204,
            Duration::from_micros(5),
        );
        m.record(Some(RouteId::Health), 299, Duration::from_micros(5));
        assert_eq!(m.count(Some(RouteId::Reserve), 409), 2);
        m.connections_open.store(7, Ordering::Relaxed);
        let text = m.render(None);
        assert!(
            text.contains("flashsale_http_requests_total{route=\"reserve\",status=\"409\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("flashsale_http_requests_total{route=\"unmatched\",status=\"404\"} 1")
        );
        assert!(text.contains("flashsale_http_requests_total{route=\"health\",status=\"other\"} 1"));
        assert!(text.contains(
            "flashsale_http_requests_total{route=\"dashboard_sign_out\",status=\"204\"} 1"
        ));
        assert!(
            text.contains(
                "flashsale_http_request_duration_seconds_bucket{route=\"reserve\",le=\"0.0001\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "flashsale_http_request_duration_seconds_bucket{route=\"reserve\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains("flashsale_http_request_duration_seconds_count{route=\"reserve\"} 3"));
        assert!(text.contains("flashsale_http_connections_open 7"));
        assert!(!text.contains("flashsale_reservations_total"));
    }

    #[test]
    fn engine_stats_are_rendered() {
        let s = StatsSnapshot {
            reservations_held: 5,
            reservations_confirmed: 2,
            reservations_released: 1,
            reservations_expired: 1,
            sold_out_rejections: 40,
            log_batches: 3,
            log_records: 9,
            log_batch_size_buckets: vec![(1, 1), (4, 3)],
            log_batch_size_sum: 9,
            commit_latency_us_buckets: vec![(100, 2), (1000, 3)],
            commit_latency_us_sum: 900,
            log_writable: true,
        };
        let text = Metrics::new().render(Some(&s));
        for line in [
            "flashsale_reservations_total{outcome=\"held\"} 5",
            "flashsale_reservations_total{outcome=\"expired\"} 1",
            "flashsale_sold_out_rejections_total 40",
            "flashsale_log_batch_size_records_bucket{le=\"4\"} 3",
            "flashsale_log_batch_size_records_count 3",
            "flashsale_log_commit_latency_seconds_bucket{le=\"0.0001\"} 2",
            "flashsale_log_commit_latency_seconds_sum 0.0009",
            "flashsale_log_writable 1",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        // Every sample line belongs to a declared metric family.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} "))
                    || text.contains(&format!("# TYPE {name} ")),
                "{l}"
            );
        }
    }
}
