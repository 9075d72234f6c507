//! The run report: one serialisable model (`Report`) built from the measurements, rendered as
//! JSON ([`json`]), a terminal table ([`summary`]) and a self-contained HTML page ([`html`]).

pub mod html;
pub mod json;
pub mod summary;
pub mod svg;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::check::CheckReport;
use crate::cli::Config;
use crate::fdlimit::FdLimit;
use crate::follow::FollowReport;
use crate::metrics::{Bucket, Counts, Snapshot};
use crate::scenario::setup::SetupInfo;

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
    /// Smallest value.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Number of values.
    pub count: u64,
}

impl Latency {
    /// Summarises a histogram of microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            min: h.min(),
            mean: h.mean(),
            count: h.len(),
        }
    }
}

/// Counts and latencies of one request kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// Completed requests.
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 409 sold-out answers.
    pub sold_out: u64,
    /// Errors.
    pub errors: u64,
    /// Answered requests per measured second.
    pub throughput_rps: f64,
    /// Latency summary, µs.
    pub latency_us: Latency,
}

/// One point of the latency distribution (percentile spectrum).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DistributionPoint {
    /// Percentile in `[0, 100]`.
    pub percentile: f64,
    /// Latency at that percentile, µs.
    pub latency_us: u64,
}

/// Connection facts of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    /// Buyer connections requested.
    pub requested: usize,
    /// Connections open when the load started.
    pub open_at_start: usize,
    /// Loopback source addresses used (empty = kernel's choice).
    pub source_addrs: Vec<String>,
    /// Time to open the connections, seconds.
    pub ramp_up_s: f64,
    /// RLIMIT_NOFILE in effect.
    pub fd_limit: Option<FdLimit>,
    /// Buyers still running at the hard stop, aborted.
    pub aborted_buyers: usize,
}

/// Facts gathered by the run besides the metrics.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// Wall-clock start, seconds since the Unix epoch.
    pub started_at_unix_s: u64,
    /// Connection facts.
    pub connections: ConnectionsReport,
    /// What setup did (`None` with `--use-existing`).
    pub setup: Option<SetupInfo>,
    /// The after-run check, or why it could not be made.
    pub check: Result<CheckReport, String>,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// Stream scenario results.
    pub stream: Option<serde_json::Value>,
    /// The buyers' moves to a new leader.
    pub follow: FollowReport,
}

/// The full report (the JSON file is this struct).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Tool name and version.
    pub tool: String,
    /// Scenario name.
    pub scenario: String,
    /// Start, seconds since the Unix epoch.
    pub started_at_unix_s: u64,
    /// Measured seconds (after warm-up, until the last answer).
    pub duration_s: f64,
    /// Requests of every kind (reserve, confirm, cancel); open loop: every due arrival.
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 409 sold-out answers.
    pub sold_out: u64,
    /// Errors by kind: `connect`, `timeout`, `io`, `http_<status>[_<problem type>]`.
    pub errors: BTreeMap<String, u64>,
    /// Sum of `errors`.
    pub errors_total: u64,
    /// `errors_total` in percent of `requests` (0 without requests).
    pub error_rate_percent: f64,
    /// More errors than `--max-error-rate` allows (`config.max_error_rate_percent`).
    pub too_many_errors: bool,
    /// Answered requests per measured second (open loop: `not_sent` arrivals excluded).
    pub throughput_rps: f64,
    /// Open loop: arrivals due but never sent (also in `errors` and in the latencies).
    pub not_sent: u64,
    /// 2xx answers per measured second.
    pub ok_rps: f64,
    /// Latency over all request kinds, µs (open loop: from the intended send time).
    pub latency_us: Latency,
    /// Units oversold (see `check`); `null` if the server's counts could not be read.
    pub oversold: Option<u64>,
    /// Held+sold on the server matches what the load generator was told.
    pub counts_match: Option<bool>,
    /// The after-run check in detail.
    pub check: Option<CheckReport>,
    /// Why the check could not be made.
    pub check_error: Option<String>,
    /// Per request kind.
    pub per_kind: BTreeMap<String, KindReport>,
    /// One bucket per second.
    pub timeline: Vec<Bucket>,
    /// Latency percentile spectrum over all kinds.
    pub latency_distribution: Vec<DistributionPoint>,
    /// First message per error kind.
    pub error_samples: BTreeMap<String, String>,
    /// Connection facts.
    pub connections: ConnectionsReport,
    /// What setup did.
    pub setup: Option<SetupInfo>,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// Stream scenario results.
    pub stream: Option<serde_json::Value>,
    /// Times the buyers moved to a new leader during the run (`follow.changes` has each).
    pub leader_changes: usize,
    /// The targets, the leader changes (time, gap) and the requests sent again after them.
    pub follow: FollowReport,
    /// Queue scenario results (`--scenario queue`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<crate::queue::report::QueueReport>,
    /// Queue bench results (`--scenario queue --bench-rounds N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_bench: Option<crate::queue::bench::BenchReport>,
    /// The configuration of the run.
    pub config: Config,
}

/// Percentiles of the distribution plot: 0, 1 - 10^(-k/8) for k = 1..=40 (up to 99.999), 100.
pub fn distribution(h: &Histogram<u64>) -> Vec<DistributionPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<DistributionPoint> = (0..=40)
        .map(|k| {
            let q = 1.0 - 10f64.powf(-(k as f64) / 8.0);
            DistributionPoint {
                percentile: q * 100.0,
                latency_us: h.value_at_quantile(q),
            }
        })
        .collect();
    out.push(DistributionPoint {
        percentile: 100.0,
        latency_us: h.max(),
    });
    out
}

fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

impl Report {
    /// Builds the report from the configuration, the measurements and the run facts.
    pub fn build(cfg: &Config, m: &Snapshot, facts: RunFacts) -> Report {
        let secs = m.elapsed.as_secs_f64();
        // Open-loop arrivals never sent are requests (with their waiting time as latency) but
        // not answers: throughput counts answers only.
        let not_sent = m.errors.get(crate::run::NOT_SENT).copied().unwrap_or(0);
        let per_kind = m
            .per_kind
            .iter()
            .map(|(kind, (h, c))| {
                let k = KindReport {
                    requests: c.requests,
                    ok: c.ok,
                    sold_out: c.sold_out,
                    errors: c.errors,
                    throughput_rps: if *kind == crate::metrics::Kind::Reserve {
                        per_second(c.requests.saturating_sub(not_sent), secs)
                    } else {
                        per_second(c.requests, secs)
                    },
                    latency_us: Latency::from_histogram(h),
                };
                (kind.as_str().to_string(), k)
            })
            .collect();
        let Counts {
            requests,
            ok,
            sold_out,
            errors: errors_total,
        } = m.counts;
        let error_rate_percent = if requests > 0 {
            errors_total as f64 * 100.0 / requests as f64
        } else {
            0.0
        };
        // The last tick of a run often closes a bucket in which nothing was answered any more:
        // it would draw a drop to zero that did not happen.
        let mut timeline = m.timeline.clone();
        while timeline.last().is_some_and(|b| b.counts.requests == 0) {
            timeline.pop();
        }
        let (check, check_error) = match facts.check {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        Report {
            tool: format!("flashsale-loadgen {}", env!("CARGO_PKG_VERSION")),
            scenario: cfg.scenario.as_str().to_string(),
            started_at_unix_s: facts.started_at_unix_s,
            duration_s: secs,
            requests,
            ok,
            sold_out,
            errors: m.errors.clone(),
            errors_total,
            error_rate_percent,
            too_many_errors: error_rate_percent > cfg.max_error_rate_percent,
            throughput_rps: per_second(requests.saturating_sub(not_sent), secs),
            not_sent,
            ok_rps: per_second(ok, secs),
            latency_us: Latency::from_histogram(&m.all),
            oversold: check.as_ref().map(|c| c.oversold),
            counts_match: check.as_ref().map(|c| c.counts_match),
            check,
            check_error,
            per_kind,
            timeline,
            latency_distribution: distribution(&m.all),
            error_samples: m.error_samples.clone(),
            connections: facts.connections,
            setup: facts.setup,
            interrupted: facts.interrupted,
            stream: facts.stream,
            leader_changes: facts.follow.changes.len(),
            follow: facts.follow,
            queue: None,
            queue_bench: None,
            config: cfg.clone(),
        }
    }

    /// Counts and latencies over all request kinds, as one row.
    pub fn all_kinds(&self) -> KindReport {
        KindReport {
            requests: self.requests,
            ok: self.ok,
            sold_out: self.sold_out,
            errors: self.errors_total,
            throughput_rps: self.throughput_rps,
            latency_us: self.latency_us,
        }
    }

    /// One line saying whether the error share is within `--max-error-rate`.
    pub fn error_verdict(&self) -> String {
        let limit = self.config.max_error_rate_percent;
        if self.too_many_errors {
            format!(
                "{} of {} requests were errors ({:.2} %), more than --max-error-rate {limit} %",
                self.errors_total, self.requests, self.error_rate_percent
            )
        } else {
            format!(
                "errors {:.2} % of requests, within --max-error-rate {limit} %",
                self.error_rate_percent
            )
        }
    }

    /// True if the run found a correctness problem (oversell, invariant violation, mismatched
    /// counts) or could not check.
    pub fn failed_check(&self) -> bool {
        if self.queue.as_ref().is_some_and(|q| !q.failures.is_empty()) {
            return true;
        }
        match &self.check {
            Some(c) => c.oversold > 0 || c.invariant_violations > 0 || !c.counts_match,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Outcome;
    use crate::cli::Args;
    use crate::metrics::{Kind, Metrics};
    use clap::Parser;
    use std::time::Duration;

    fn config() -> Config {
        let argv = [
            "x",
            "--token",
            "t",
            "--admin-token",
            "a",
            "--connections",
            "10",
        ];
        Config::from_args(Args::try_parse_from(argv).unwrap(), 0).unwrap()
    }

    fn facts(check: Result<CheckReport, String>) -> RunFacts {
        RunFacts {
            started_at_unix_s: 1,
            connections: ConnectionsReport {
                requested: 10,
                open_at_start: 10,
                source_addrs: vec![],
                ramp_up_s: 0.1,
                fd_limit: None,
                aborted_buyers: 0,
            },
            setup: None,
            check,
            interrupted: false,
            stream: None,
            follow: crate::follow::FollowReport::default(),
        }
    }

    #[test]
    fn report_has_the_contract_fields() {
        let m = Metrics::new(2);
        for i in 1..=1000u64 {
            let o = if i <= 10 {
                Outcome::Ok
            } else {
                Outcome::SoldOut
            };
            m.record(i as usize, Kind::Reserve, &o, Duration::from_micros(i));
        }
        m.record(
            0,
            Kind::Reserve,
            &Outcome::Error("timeout".into()),
            Duration::from_secs(1),
        );
        m.tick();
        let mut snap = m.snapshot();
        snap.elapsed = Duration::from_secs(2);
        let r = Report::build(&config(), &snap, facts(Err("unreachable".into())));
        assert_eq!(
            (r.requests, r.ok, r.sold_out, r.errors_total),
            (1001, 10, 990, 1)
        );
        assert_eq!(r.throughput_rps, 500.5);
        assert!(
            (499..=501).contains(&r.latency_us.p50),
            "{:?}",
            r.latency_us
        );
        assert!(r.latency_us.max >= 999_000);
        assert_eq!(r.oversold, None);
        assert!(r.failed_check());
        let v = serde_json::to_value(&r).unwrap();
        for field in [
            "requests",
            "ok",
            "sold_out",
            "errors",
            "throughput_rps",
            "oversold",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][p].is_u64(), "{p}");
        }
        assert_eq!(v["errors"]["timeout"], 1);
        assert_eq!(v["per_kind"]["reserve"]["requests"], 1001);
        assert_eq!(v["config"]["scenario"], "hot-item");
        assert!(
            v["config"].get("token").is_none(),
            "tokens must not leak into reports"
        );
    }

    #[test]
    fn more_errors_than_allowed_are_flagged_and_empty_trailing_buckets_dropped() {
        let m = Metrics::new(1);
        for i in 0..98u64 {
            m.record(
                0,
                Kind::Reserve,
                &Outcome::Ok,
                Duration::from_micros(100 + i),
            );
        }
        for _ in 0..2 {
            let e = Outcome::Error("http_429_rate-limited".into());
            m.record(0, Kind::Reserve, &e, Duration::from_micros(50));
        }
        m.tick();
        m.tick(); // a last bucket with no answers
        let mut snap = m.snapshot();
        snap.elapsed = Duration::from_secs(2);
        assert_eq!(snap.timeline.len(), 2);
        let r = Report::build(&config(), &snap, facts(Err("n/a".into())));
        assert_eq!(r.timeline.len(), 1, "the trailing empty bucket is dropped");
        assert_eq!(r.error_rate_percent, 2.0);
        assert!(r.too_many_errors, "2 % > the default 1 %");
        assert!(r.error_verdict().contains("2 of 100 requests were errors"));
        let mut lenient = config();
        lenient.max_error_rate_percent = 5.0;
        let r = Report::build(&lenient, &snap, facts(Err("n/a".into())));
        assert!(!r.too_many_errors);
        assert!(r.error_verdict().contains("within --max-error-rate 5 %"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["error_rate_percent"], 2.0);
        assert_eq!(v["too_many_errors"], false);
    }

    #[test]
    fn summary_and_html_headline_say_too_many_errors_in_red() {
        let m = Metrics::new(1);
        m.record(0, Kind::Reserve, &Outcome::Ok, Duration::from_micros(100));
        let e = Outcome::Error("http_429_rate-limited".into());
        m.record(0, Kind::Reserve, &e, Duration::from_micros(50));
        m.tick();
        let mut snap = m.snapshot();
        snap.elapsed = Duration::from_secs(1);
        let r = Report::build(&config(), &snap, facts(Err("n/a".into())));
        assert!(r.too_many_errors);
        let plain = summary::render(&r);
        let last = plain.lines().last().unwrap();
        assert!(
            last.starts_with("FAILED: 1 of 2 requests were errors (50.00 %)"),
            "{last}"
        );
        assert!(!plain.contains('\x1b'), "no escapes outside terminals");
        let red = summary::render_styled(&r, true);
        assert!(red.contains("\x1b[1;31mFAILED: "), "{red}");
        let page = html::render(&r);
        assert!(
            page.contains("<span class=\"bad\">1 of 2 requests were errors"),
            "the headline says it in red"
        );
    }

    #[test]
    fn distribution_is_monotonic_and_ends_at_max() {
        let mut h = crate::metrics::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let d = distribution(&h);
        assert_eq!(d.first().unwrap().percentile, 0.0);
        assert_eq!(d.last().unwrap().latency_us, h.max());
        assert!(d.windows(2).all(|w| w[0].latency_us <= w[1].latency_us));
        assert!(d.windows(2).all(|w| w[0].percentile < w[1].percentile));
    }
}
