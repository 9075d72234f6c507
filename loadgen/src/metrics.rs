//! Latency and outcome recording: hdrhistograms per request kind, errors by kind, and a
//! per-second timeline. Buyers record into one of a few mutex-protected shards (buyer index modulo
//! shard count), so contention stays low and memory does not grow with the connection count.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::api::Outcome;

/// Highest latency recorded exactly (1 hour, in µs); larger values are clamped to it.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by the histograms.
pub const SIGFIG: u8 = 3;
/// Most distinct error kinds kept; further kinds are counted as `other`.
pub const MAX_ERROR_KINDS: usize = 64;
/// Most timeline buckets kept (one per second).
pub const MAX_BUCKETS: usize = 4 * 3_600;

/// A kind of request (one histogram each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `POST /v1/reservations`.
    Reserve,
    /// `POST /v1/reservations/{id}/confirm`.
    Confirm,
    /// `POST /v1/reservations/{id}/cancel`.
    Cancel,
    /// Stock-stream update delay (change made over HTTP → update seen by a subscriber).
    StreamUpdate,
    /// `POST /v1/queues/{queue}/join` (queue scenario).
    QueueJoin,
    /// `GET /v1/queues/{queue}/tickets/{ticket}`, a waiting buyer's poll (queue scenario).
    QueuePoll,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 6] = [
        Kind::Reserve,
        Kind::Confirm,
        Kind::Cancel,
        Kind::StreamUpdate,
        Kind::QueueJoin,
        Kind::QueuePoll,
    ];

    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reserve => "reserve",
            Kind::Confirm => "confirm",
            Kind::Cancel => "cancel",
            Kind::StreamUpdate => "stream_update",
            Kind::QueueJoin => "queue_join",
            Kind::QueuePoll => "queue_poll",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A new histogram with the run's bounds.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    match Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGFIG) {
        Ok(h) => h,
        Err(_) => unreachable!("constant histogram bounds are valid"),
    }
}

/// Counts of answers by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Requests completed (any outcome).
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 409 sold-out answers.
    pub sold_out: u64,
    /// Everything else (HTTP errors, connect, timeout, io).
    pub errors: u64,
}

impl Counts {
    fn add_n(&mut self, outcome: &Outcome, n: u64) {
        self.requests += n;
        match outcome {
            Outcome::Ok => self.ok += n,
            Outcome::SoldOut => self.sold_out += n,
            Outcome::Error(_) => self.errors += n,
        }
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.sold_out += o.sold_out;
        self.errors += o.errors;
    }
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// End of the bucket in seconds since measuring started.
    pub t_s: f64,
    /// Length of the bucket in seconds (1 except for the last, partial one).
    pub span_s: f64,
    /// Answers completed in the bucket.
    pub counts: Counts,
    /// Median latency in the bucket (all kinds), µs.
    pub p50_us: u64,
    /// 99th percentile in the bucket, µs.
    pub p99_us: u64,
    /// Largest latency in the bucket, µs.
    pub max_us: u64,
}

#[derive(Debug)]
struct KindStats {
    hist: Histogram<u64>,
    counts: Counts,
}

#[derive(Debug)]
struct Shard {
    kinds: Vec<KindStats>,
    interval: Histogram<u64>,
    interval_counts: Counts,
    errors: BTreeMap<String, u64>,
    samples: BTreeMap<String, String>,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            kinds: Kind::ALL
                .iter()
                .map(|_| KindStats {
                    hist: new_histogram(),
                    counts: Counts::default(),
                })
                .collect(),
            interval: new_histogram(),
            interval_counts: Counts::default(),
            errors: BTreeMap::new(),
            samples: BTreeMap::new(),
        }
    }
}

/// Everything measured, at the end of a run.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Per request kind: histogram (µs) and counts; kinds with no requests are left out.
    pub per_kind: BTreeMap<Kind, (Histogram<u64>, Counts)>,
    /// All kinds merged.
    pub all: Histogram<u64>,
    /// Counts over all kinds.
    pub counts: Counts,
    /// Error counts by kind (`connect`, `timeout`, `io`, `http_<status>[_<type>]`, …).
    pub errors: BTreeMap<String, u64>,
    /// First message seen per error kind, for diagnosis.
    pub error_samples: BTreeMap<String, String>,
    /// One bucket per second.
    pub timeline: Vec<Bucket>,
    /// Measured time.
    pub elapsed: Duration,
}

/// Live recorder shared by all buyers.
#[derive(Debug)]
pub struct Metrics {
    shards: Vec<Mutex<Shard>>,
    timeline: Mutex<Vec<Bucket>>,
    start: Mutex<Instant>,
    last_tick: Mutex<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a metrics lock cannot leave the counters torn in a way that matters
    // more than losing the whole run, so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// A recorder with `shards` shards; measuring starts now.
    pub fn new(shards: usize) -> Metrics {
        Metrics {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Shard::new()))
                .collect(),
            timeline: Mutex::new(Vec::new()),
            start: Mutex::new(Instant::now()),
            last_tick: Mutex::new(Instant::now()),
        }
    }

    /// Records one answer of `kind` for buyer `who` with `latency`.
    pub fn record(&self, who: usize, kind: Kind, outcome: &Outcome, latency: Duration) {
        self.record_inner(who, kind, outcome, latency, 1, kind != Kind::StreamUpdate);
    }

    /// Records `n` requests that got no answer because they were never sent (open-loop
    /// backlog at the end): in the totals and histograms, not in the per-second timeline,
    /// which shows answers.
    pub fn record_unanswered(
        &self,
        who: usize,
        kind: Kind,
        outcome: &Outcome,
        latency: Duration,
        n: u64,
    ) {
        self.record_inner(who, kind, outcome, latency, n, false);
    }

    fn record_inner(
        &self,
        who: usize,
        kind: Kind,
        outcome: &Outcome,
        latency: Duration,
        n: u64,
        into_timeline: bool,
    ) {
        if n == 0 {
            return;
        }
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let mut s = lock(&self.shards[who % self.shards.len()]);
        let k = &mut s.kinds[kind.index()];
        // `us` is clamped into the histogram's range, so recording cannot fail.
        let _ = k.hist.record_n(us, n);
        k.counts.add_n(outcome, n);
        if into_timeline {
            // The timeline and progress line are about answers to requests; stream delays and
            // unsent arrivals have their histograms only.
            let _ = s.interval.record_n(us, n);
            s.interval_counts.add_n(outcome, n);
        }
        if let Outcome::Error(e) = outcome {
            let known = s.errors.len() < MAX_ERROR_KINDS || s.errors.contains_key(e);
            let key = if known {
                e.clone()
            } else {
                "other".to_string()
            };
            *s.errors.entry(key).or_insert(0) += n;
        }
    }

    /// Counts an error of `kind` that has no latency (e.g. a stream disconnection).
    pub fn count_error(&self, who: usize, kind: &str) {
        let mut s = lock(&self.shards[who % self.shards.len()]);
        let known = s.errors.len() < MAX_ERROR_KINDS || s.errors.contains_key(kind);
        let key = if known { kind } else { "other" };
        *s.errors.entry(key.to_string()).or_insert(0) += 1;
    }

    /// Keeps `message` as the example for error `kind` if none is kept yet.
    pub fn sample_error(&self, who: usize, kind: &str, message: &str) {
        let mut s = lock(&self.shards[who % self.shards.len()]);
        if s.samples.len() < MAX_ERROR_KINDS && !s.samples.contains_key(kind) {
            let msg: String = message.chars().take(300).collect();
            s.samples.insert(kind.to_string(), msg);
        }
    }

    /// Forgets everything recorded so far (end of warm-up); measuring restarts now.
    pub fn reset(&self) {
        for shard in &self.shards {
            *lock(shard) = Shard::new();
        }
        lock(&self.timeline).clear();
        let now = Instant::now();
        *lock(&self.start) = now;
        *lock(&self.last_tick) = now;
    }

    /// Time since measuring started.
    pub fn elapsed(&self) -> Duration {
        lock(&self.start).elapsed()
    }

    /// Closes the current one-second bucket and returns it with the run's p99 so far (µs).
    pub fn tick(&self) -> (Bucket, u64) {
        let mut interval = new_histogram();
        let mut counts = Counts::default();
        let mut so_far = new_histogram();
        for shard in &self.shards {
            let mut s = lock(shard);
            let _ = interval.add(&s.interval);
            counts.merge(&s.interval_counts);
            s.interval.reset();
            s.interval_counts = Counts::default();
            for (kind, k) in Kind::ALL.iter().zip(&s.kinds) {
                if k.counts.requests > 0 && *kind != Kind::StreamUpdate {
                    let _ = so_far.add(&k.hist);
                }
            }
        }
        let span_s = {
            let mut last = lock(&self.last_tick);
            let now = Instant::now();
            let span = now.saturating_duration_since(*last);
            *last = now;
            span.as_secs_f64()
        };
        let bucket = Bucket {
            t_s: self.elapsed().as_secs_f64(),
            span_s,
            counts,
            p50_us: interval.value_at_quantile(0.5),
            p99_us: interval.value_at_quantile(0.99),
            max_us: interval.max(),
        };
        let mut timeline = lock(&self.timeline);
        if timeline.len() < MAX_BUCKETS {
            timeline.push(bucket);
        }
        (bucket, so_far.value_at_quantile(0.99))
    }

    /// Merges all shards into a snapshot (call after the last tick).
    pub fn snapshot(&self) -> Snapshot {
        let mut per_kind: BTreeMap<Kind, (Histogram<u64>, Counts)> = BTreeMap::new();
        let mut all = new_histogram();
        let mut counts = Counts::default();
        let mut errors = BTreeMap::new();
        let mut error_samples = BTreeMap::new();
        for shard in &self.shards {
            let s = lock(shard);
            for (kind, k) in Kind::ALL.iter().zip(&s.kinds) {
                if k.counts.requests == 0 {
                    continue;
                }
                let e = per_kind
                    .entry(*kind)
                    .or_insert_with(|| (new_histogram(), Counts::default()));
                let _ = e.0.add(&k.hist);
                e.1.merge(&k.counts);
                if *kind != Kind::StreamUpdate {
                    let _ = all.add(&k.hist);
                    counts.merge(&k.counts);
                }
            }
            for (e, n) in &s.errors {
                *errors.entry(e.clone()).or_insert(0) += n;
            }
            for (e, m) in &s.samples {
                error_samples.entry(e.clone()).or_insert_with(|| m.clone());
            }
        }
        Snapshot {
            per_kind,
            all,
            counts,
            errors,
            error_samples,
            timeline: lock(&self.timeline).clone(),
            elapsed: self.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_latencies_are_aggregated() {
        let m = Metrics::new(3);
        for i in 0..100u64 {
            m.record(
                i as usize,
                Kind::Reserve,
                &Outcome::Ok,
                Duration::from_micros(i + 1),
            );
        }
        m.record(
            1,
            Kind::Reserve,
            &Outcome::SoldOut,
            Duration::from_micros(5),
        );
        m.record(
            2,
            Kind::Confirm,
            &Outcome::Error("timeout".into()),
            Duration::from_secs(5),
        );
        m.sample_error(2, "timeout", "took too long");
        let (bucket, p99) = m.tick();
        assert_eq!(bucket.counts.requests, 102);
        assert!((99..=100).contains(&p99), "{p99}");
        let (empty, _) = m.tick();
        assert_eq!(empty.counts, Counts::default());
        let s = m.snapshot();
        assert_eq!(
            s.counts,
            Counts {
                requests: 102,
                ok: 100,
                sold_out: 1,
                errors: 1
            }
        );
        assert_eq!(s.per_kind[&Kind::Reserve].1.requests, 101);
        assert_eq!(s.errors["timeout"], 1);
        assert_eq!(s.error_samples["timeout"], "took too long");
        assert_eq!(s.timeline.len(), 2);
        assert!(s.all.max() >= 4_990_000);
    }

    #[test]
    fn unanswered_requests_count_but_stay_out_of_the_timeline() {
        let m = Metrics::new(2);
        m.record(0, Kind::Reserve, &Outcome::Ok, Duration::from_millis(1));
        let e = Outcome::Error("not_sent".into());
        m.record_unanswered(1, Kind::Reserve, &e, Duration::from_secs(2), 1_000);
        let (bucket, _) = m.tick();
        assert_eq!(bucket.counts.requests, 1);
        let s = m.snapshot();
        assert_eq!(s.counts.requests, 1_001);
        assert_eq!(s.errors["not_sent"], 1_000);
        assert!(s.all.value_at_quantile(0.5) >= 1_990_000);
    }

    #[test]
    fn reset_forgets_warmup() {
        let m = Metrics::new(2);
        m.record(0, Kind::Reserve, &Outcome::Ok, Duration::from_millis(1));
        m.tick();
        m.reset();
        let s = m.snapshot();
        assert_eq!(s.counts.requests, 0);
        assert!(s.timeline.is_empty());
    }

    #[test]
    fn error_kinds_are_bounded() {
        let m = Metrics::new(1);
        for i in 0..(MAX_ERROR_KINDS + 10) {
            let e = Outcome::Error(format!("http_{i}"));
            m.record(0, Kind::Reserve, &e, Duration::from_millis(1));
        }
        let s = m.snapshot();
        assert_eq!(s.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(s.errors["other"], 10);
    }
}
