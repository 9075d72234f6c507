//! Open-loop arrival schedule: request `i` is due at `start + i / rate`, whatever happened to
//! earlier requests, and its latency is measured from that due time (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Offset of arrival `i` from the start of the schedule at `rate_rps` arrivals per second.
pub fn due_offset(i: u64, rate_rps: f64) -> Duration {
    debug_assert!(rate_rps > 0.0);
    Duration::from_secs_f64(i as f64 / rate_rps)
}

/// Number of arrivals due in `[0, window)` at `rate_rps`.
pub fn arrivals_in(window: Duration, rate_rps: f64) -> u64 {
    (window.as_secs_f64() * rate_rps).ceil() as u64
}

/// The shared arrival counter: whichever buyer is free takes the next due slot, so one slow
/// connection does not delay arrivals that another free connection could send.
#[derive(Debug)]
pub struct OpenSchedule {
    next: AtomicU64,
    rate_rps: f64,
    limit: u64,
}

impl OpenSchedule {
    /// A schedule at `rate_rps` lasting `window`, capped at `max_arrivals`.
    pub fn new(rate_rps: f64, window: Duration, max_arrivals: u64) -> OpenSchedule {
        OpenSchedule {
            next: AtomicU64::new(0),
            rate_rps,
            limit: arrivals_in(window, rate_rps).min(max_arrivals),
        }
    }

    /// Claims the next arrival: its index and due offset, or `None` when the schedule is over.
    pub fn claim(&self) -> Option<(u64, Duration)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.limit).then(|| (i, due_offset(i, self.rate_rps)))
    }

    /// Arrivals claimed so far (at most [`OpenSchedule::limit`]).
    pub fn claimed(&self) -> u64 {
        self.next.load(Ordering::Relaxed).min(self.limit)
    }

    /// Rate of the schedule.
    pub fn rate_rps(&self) -> f64 {
        self.rate_rps
    }

    /// Total arrivals in the schedule.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// Most groups [`unsent`] returns; larger backlogs are grouped (each group recorded with the
/// smallest latency of its members, a lower bound).
pub const MAX_UNSENT_GROUPS: u64 = 100_000;

/// Arrivals `first..limit` that were due before `stop` (offset from the schedule start) but never
/// sent, as `(count, latency)` groups: the latency of an unsent arrival is at least
/// `stop - due`, and leaving it out would hide exactly the overload the open loop is for.
pub fn unsent(first: u64, limit: u64, rate_rps: f64, stop: Duration) -> Vec<(u64, Duration)> {
    let due_before_stop = limit.min(arrivals_in(stop, rate_rps));
    if first >= due_before_stop {
        return Vec::new();
    }
    let n = due_before_stop - first;
    let group = n.div_ceil(MAX_UNSENT_GROUPS).max(1);
    let mut out = Vec::new();
    let mut i = first;
    while i < due_before_stop {
        let count = group.min(due_before_stop - i);
        // The last member of the group is the latest due, so it has the smallest latency.
        let last_due = due_offset(i + count - 1, rate_rps);
        out.push((count, stop.saturating_sub(last_due)));
        i += count;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_evenly_spaced() {
        assert_eq!(due_offset(0, 100.0), Duration::ZERO);
        assert_eq!(due_offset(1, 100.0), Duration::from_millis(10));
        assert_eq!(due_offset(250, 100.0), Duration::from_millis(2_500));
        assert_eq!(due_offset(3, 0.5), Duration::from_secs(6));
    }

    #[test]
    fn the_window_bounds_the_schedule() {
        assert_eq!(arrivals_in(Duration::from_secs(2), 100.0), 200);
        assert_eq!(arrivals_in(Duration::from_millis(1_001), 1.0), 2);
        let s = OpenSchedule::new(10.0, Duration::from_secs(1), u64::MAX);
        let claimed: Vec<_> = std::iter::from_fn(|| s.claim()).collect();
        assert_eq!(claimed.len(), 10);
        assert_eq!(claimed[9], (9, Duration::from_millis(900)));
        assert!(s.claim().is_none());
        let capped = OpenSchedule::new(1_000.0, Duration::from_secs(10), 5);
        assert_eq!(capped.limit(), 5);
        assert_eq!(capped.claimed(), 0);
        capped.claim();
        assert_eq!(capped.claimed(), 1);
    }

    #[test]
    fn unsent_arrivals_keep_their_waiting_time() {
        // 10/s for 1 s: arrivals 0..10; 0..6 were sent, 6..10 were due at 0.6..0.9 s.
        let u = unsent(6, 10, 10.0, Duration::from_secs(1));
        let ms: Vec<(u64, u128)> = u.iter().map(|(n, d)| (*n, d.as_millis())).collect();
        assert_eq!(ms, vec![(1, 400), (1, 300), (1, 200), (1, 100)]);
        assert!(unsent(10, 10, 10.0, Duration::from_secs(1)).is_empty());
        // Interrupted at 0.5 s: only arrivals due before then count.
        assert_eq!(unsent(2, 10, 10.0, Duration::from_millis(500)).len(), 3);
        // Huge backlogs are grouped, counts preserved.
        let big = unsent(0, 10_000_000, 1_000_000.0, Duration::from_secs(10));
        assert!(big.len() as u64 <= MAX_UNSENT_GROUPS);
        assert_eq!(big.iter().map(|g| g.0).sum::<u64>(), 10_000_000);
    }
}
