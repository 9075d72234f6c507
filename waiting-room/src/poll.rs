//! The server-chosen poll interval and the wait estimate.
//!
//! A waiting ticket is asked to poll about three times before its turn, never more often than
//! [`MIN_POLL_MS`], never less often than [`MAX_POLL_MS`], and all waiting tickets of a queue
//! together stay under [`POLL_BUDGET_PER_S`] (10,000 waiting → every 2 s at least). With
//! [`PollSpread::ByPosition`] a ticket far back in the line is also asked to poll less often,
//! [`POLL_MS_PER_PLACE`] per place ahead of it (ADR 0039): it cannot be admitted soon, so its
//! answer barely changes between polls.

use crate::limits::{MAX_POLL_MS, MIN_POLL_MS, POLL_BUDGET_PER_S, POLL_MS_PER_PLACE};

/// How a queue's poll budget is spread over its waiting tickets (a server setting, not logged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PollSpread {
    /// Every waiting ticket gets the same interval (10,000 waiting → every 2 s).
    #[default]
    Even,
    /// Like [`PollSpread::Even`], but never shorter than [`POLL_MS_PER_PLACE`] per place in
    /// line: the front polls as often as with `Even`, the back less often.
    ByPosition,
}

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

/// [`poll_after_ms`] for a ticket at `position` in line (1 = next; `None`: not in the ordered
/// line yet), spread by `spread`.
pub fn poll_after_ms_at(
    eta_ms: u64,
    waiting: u64,
    position: Option<u64>,
    spread: PollSpread,
) -> u64 {
    let even = poll_after_ms(eta_ms, waiting);
    match (spread, position) {
        (PollSpread::ByPosition, Some(p)) => even
            .max(p.saturating_mul(POLL_MS_PER_PLACE))
            .min(MAX_POLL_MS),
        (PollSpread::Even, _) | (PollSpread::ByPosition, None) => even,
    }
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

    #[test]
    fn by_position_never_polls_more_than_even_and_spares_the_back() {
        let waiting = 10_000;
        let mut even_per_s = 0.0;
        let mut spread_per_s = 0.0;
        for p in 1..=waiting {
            let even = poll_after_ms_at(0, waiting, Some(p), PollSpread::Even);
            let spread = poll_after_ms_at(0, waiting, Some(p), PollSpread::ByPosition);
            assert_eq!(even, poll_after_ms(0, waiting));
            assert!(
                spread >= even && spread <= MAX_POLL_MS,
                "place {p}: {spread}"
            );
            even_per_s += 1_000.0 / even as f64;
            spread_per_s += 1_000.0 / spread as f64;
        }
        // The front polls as told by the budget; the back once per place × 3 ms.
        assert_eq!(
            poll_after_ms_at(0, waiting, Some(1), PollSpread::ByPosition),
            2_000
        );
        assert_eq!(
            poll_after_ms_at(0, waiting, Some(waiting), PollSpread::ByPosition),
            waiting * POLL_MS_PER_PLACE
        );
        assert!((even_per_s - 5_000.0).abs() < 1.0, "{even_per_s}");
        assert!(spread_per_s < 0.3 * even_per_s, "{spread_per_s}");
        // Unordered tickets (not drawn yet) keep the even interval.
        assert_eq!(
            poll_after_ms_at(0, waiting, None, PollSpread::ByPosition),
            2_000
        );
    }
}
