//! The server-chosen poll interval and the wait estimate.
//!
//! A waiting ticket is asked to poll about three times before its turn, never more often than
//! [`MIN_POLL_MS`], never less often than [`MAX_POLL_MS`], and all waiting tickets of a queue
//! together stay under [`POLL_BUDGET_PER_S`] (10,000 waiting → every 2 s at least).

use crate::limits::{MAX_POLL_MS, MIN_POLL_MS, POLL_BUDGET_PER_S};

/// Seconds until `ahead` more admissions at `admit_per_s` (rounded up).
pub fn eta_s(ahead: u64, admit_per_s: u32) -> u64 {
    let rate = u64::from(admit_per_s.max(1));
    ahead.div_ceil(rate)
}

/// The poll interval for a ticket expected to be admitted in `eta_ms`, with `waiting` tickets
/// polling the same queue.
pub fn poll_after_ms(eta_ms: u64, waiting: u64) -> u64 {
    let by_eta = eta_ms / 3;
    let by_budget = waiting.saturating_mul(1_000) / POLL_BUDGET_PER_S;
    by_eta.max(by_budget).clamp(MIN_POLL_MS, MAX_POLL_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_bounds_and_budget() {
        assert_eq!(poll_after_ms(0, 1), MIN_POLL_MS);
        assert_eq!(poll_after_ms(u64::MAX, 1), MAX_POLL_MS);
        // 10,000 waiting, next in line: the budget sets 2 s.
        assert_eq!(poll_after_ms(0, 10_000), 2_000);
        assert_eq!(eta_s(0, 10), 0);
        assert_eq!(eta_s(1, 10), 1);
        assert_eq!(eta_s(21, 10), 3);
    }
}
