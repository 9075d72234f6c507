//! The one-line-per-second progress report on stderr.

use crate::metrics::Bucket;
use crate::units::{fmt_count, fmt_us};

/// Which phase the run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Warm-up (not measured).
    Warmup,
    /// Measured load.
    Load,
}

/// Formats a progress line for one finished one-second bucket.
pub fn line(phase: Phase, t_s: f64, b: &Bucket, p99_so_far_us: u64, running: usize) -> String {
    let tag = match phase {
        Phase::Warmup => "warmup",
        Phase::Load => "load",
    };
    let c = &b.counts;
    format!(
        "[{tag} {t_s:>6.1}s] {} req/s | ok {} sold_out {} err {} | p99 {} (run {}) max {} | buyers {}",
        fmt_count(c.requests as f64),
        c.ok,
        c.sold_out,
        c.errors,
        fmt_us(b.p99_us),
        fmt_us(p99_so_far_us),
        fmt_us(b.max_us),
        running
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counts;

    #[test]
    fn the_line_names_rate_errors_and_p99() {
        let b = Bucket {
            t_s: 3.0,
            span_s: 1.0,
            counts: Counts {
                requests: 12_345,
                ok: 10,
                sold_out: 12_334,
                errors: 1,
            },
            p50_us: 100,
            p99_us: 2_500,
            max_us: 9_000,
        };
        let l = line(Phase::Load, 3.0, &b, 2_000, 10_000);
        assert!(l.contains("12,345 req/s"), "{l}");
        assert!(l.contains("err 1"), "{l}");
        assert!(l.contains("p99 2.50ms (run 2.00ms)"), "{l}");
    }
}
