//! Delivery counters of one destination, and their Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::source::LogSource;

/// Counters of one destination (a webhook endpoint or the AMQP sink).
#[derive(Debug)]
pub struct DestMetrics {
    /// Events delivered (acknowledged by the receiver or confirmed by the broker).
    pub delivered: AtomicU64,
    /// Delivery attempts (HTTP requests; published messages).
    pub attempts: AtomicU64,
    /// Failed attempts.
    pub failures: AtomicU64,
    /// Events dead-lettered.
    pub dead_letters: AtomicU64,
    /// Per shard: the last committed seq seen (for the lag in events).
    pub head: Vec<AtomicU64>,
    /// Per shard: the logged time of the oldest event not yet delivered, Unix ms (0 = none).
    pub pending_since_ms: Vec<AtomicU64>,
}

impl DestMetrics {
    /// Zeroed counters for `shards` shards.
    pub fn new(shards: usize) -> DestMetrics {
        DestMetrics {
            delivered: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            head: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            pending_since_ms: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Events committed but not yet delivered, given the positions.
    pub fn lag_events(&self, positions: &[u64]) -> u64 {
        self.head
            .iter()
            .zip(positions)
            .map(|(h, p)| h.load(Ordering::Relaxed).saturating_sub(*p))
            .sum()
    }

    /// Age of the oldest undelivered event in seconds (0 when caught up).
    pub fn lag_seconds(&self, now_ms: u64) -> f64 {
        self.pending_since_ms
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .filter(|&t| t > 0)
            .min()
            .map_or(0.0, |t| now_ms.saturating_sub(t) as f64 / 1000.0)
    }
}

/// Appends the metrics of one destination (`kind` = `webhook` or `amqp`) to `out`.
pub fn render(
    out: &mut String,
    kind: &str,
    dest: &str,
    m: &DestMetrics,
    positions: &[u64],
    now_ms: u64,
) {
    use std::fmt::Write as _;
    let l = format!("kind=\"{kind}\",destination=\"{dest}\"");
    let _ = writeln!(
        out,
        "flashsale_events_delivered_total{{{l}}} {}",
        m.delivered.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "flashsale_events_attempts_total{{{l}}} {}",
        m.attempts.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "flashsale_events_failures_total{{{l}}} {}",
        m.failures.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "flashsale_events_dead_letters_total{{{l}}} {}",
        m.dead_letters.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "flashsale_events_lag_events{{{l}}} {}",
        m.lag_events(positions)
    );
    let _ = writeln!(
        out,
        "flashsale_events_lag_seconds{{{l}}} {:.3}",
        m.lag_seconds(now_ms)
    );
}

/// The `# HELP`/`# TYPE` lines of the events metrics (once per scrape).
pub fn render_help(out: &mut String) {
    for (name, ty, help) in [
        (
            "flashsale_events_delivered_total",
            "counter",
            "Events delivered per destination.",
        ),
        (
            "flashsale_events_attempts_total",
            "counter",
            "Delivery attempts per destination.",
        ),
        (
            "flashsale_events_failures_total",
            "counter",
            "Failed delivery attempts per destination.",
        ),
        (
            "flashsale_events_dead_letters_total",
            "counter",
            "Events dead-lettered per destination.",
        ),
        (
            "flashsale_events_lag_events",
            "gauge",
            "Committed events not yet delivered.",
        ),
        (
            "flashsale_events_lag_seconds",
            "gauge",
            "Age of the oldest undelivered event.",
        ),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {ty}\n"));
    }
}

/// Refreshes `m.head[shard]` from the source (the lag's reference).
pub async fn refresh_head(m: &DestMetrics, source: &LogSource, shard: u16) {
    if let Ok(h) = source.head(shard).await {
        if let Some(a) = m.head.get(usize::from(shard)) {
            a.fetch_max(h, Ordering::Relaxed);
        }
    }
}
