//! Idle tracking of one connection, the same for HTTP/1.1 and HTTP/2: a connection is idle
//! while no request is in flight, and has been since its last request ended (or since it was
//! opened). Bytes alone (HTTP/2 pings, window updates, a half-sent head) do not count as
//! activity, so a client cannot hold a connection slot by keeping a connection merely alive.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests in flight on one connection and when it last became idle.
#[derive(Debug)]
pub struct Activity {
    /// When the connection was opened: the origin of `idle_since_us`.
    opened: Instant,
    /// Requests handed to the service and not answered yet.
    in_flight: AtomicUsize,
    /// When the last request ended, in µs after `opened`.
    idle_since_us: AtomicU64,
}

impl Activity {
    /// A connection opened at `now`, idle since then.
    pub fn new(now: Instant) -> Arc<Self> {
        Arc::new(Activity {
            opened: now,
            in_flight: AtomicUsize::new(0),
            idle_since_us: AtomicU64::new(0),
        })
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            activity: self.clone(),
            ended_at: None,
        }
    }

    /// How long the connection has been idle at `now`; `None` while a request is in flight.
    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = Duration::from_micros(self.idle_since_us.load(Ordering::SeqCst));
        Some(now.saturating_duration_since(self.opened + since))
    }
}

/// One request in flight; dropping it (answered, or abandoned) ends it.
#[derive(Debug)]
pub struct InFlight {
    /// The connection's activity.
    activity: Arc<Activity>,
    /// When the request ended, if the caller knows it (else the clock is read at the drop).
    ended_at: Option<Instant>,
}

impl InFlight {
    /// Ends the request at `now` (a time the caller has already read, e.g. the end of the
    /// request's latency: no second clock read, ADR 0061).
    pub fn end_at(mut self, now: Instant) {
        self.ended_at = Some(now);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.activity;
        let now = self.ended_at.unwrap_or_else(Instant::now);
        // Stamp first: whoever sees the count reach 0 also sees the fresh idle start.
        let us =
            u64::try_from(now.saturating_duration_since(a.opened).as_micros()).unwrap_or(u64::MAX);
        a.idle_since_us.fetch_max(us, Ordering::SeqCst);
        let before = a.in_flight.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before > 0, "a request ended twice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_counts_from_open_and_from_the_last_request() {
        let opened = Instant::now();
        let a = Activity::new(opened);
        let later = opened + Duration::from_secs(5);
        assert_eq!(a.idle_for(later), Some(Duration::from_secs(5)));
        let one = a.begin();
        let two = a.begin();
        assert_eq!(a.idle_for(later), None);
        drop(one);
        assert_eq!(a.idle_for(later), None, "one request is still in flight");
        drop(two);
        let idle = a.idle_for(Instant::now() + Duration::from_secs(1));
        assert!(
            idle.is_some_and(|d| d >= Duration::from_secs(1) && d < Duration::from_secs(2)),
            "{idle:?}"
        );
    }

    #[test]
    fn a_request_ended_at_a_given_time_is_idle_from_then() {
        let opened = Instant::now();
        let a = Activity::new(opened);
        let ended = opened + Duration::from_secs(3);
        a.begin().end_at(ended);
        assert_eq!(
            a.idle_for(ended + Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        // An earlier end never moves the idle start back.
        a.begin().end_at(opened + Duration::from_secs(1));
        assert_eq!(
            a.idle_for(ended + Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
    }
}
