//! The retry schedule of a failing delivery: exponential backoff with jitter, for a bounded
//! period after the first attempt; past it the event is dead-lettered (webhooks).

use std::time::Duration;

/// How a destination retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure (before jitter).
    pub base: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// How long after the first attempt an event is retried before it is dead-lettered.
    pub period: Duration,
}

impl Default for RetryPolicy {
    /// 1 s, doubling up to 5 min, for 24 h.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            period: Duration::from_secs(86_400),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `failures + 1` given `failures` so far (≥ 1), with `jitter`
    /// in [0, 1): between half and all of `base · 2^(failures-1)`, capped at `max_delay`.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max_delay);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// Whether another attempt is allowed after `elapsed` since the first one.
    pub fn may_retry(&self, elapsed: Duration) -> bool {
        elapsed < self.period
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_jittered_and_capped() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            period: Duration::from_secs(10),
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(1, 0.999_999).as_millis(), 99);
        assert_eq!(p.delay(3, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay(40, 0.0), Duration::from_millis(500));
        assert!(p.may_retry(Duration::from_secs(9)));
        assert!(!p.may_retry(Duration::from_secs(10)));
    }
}
