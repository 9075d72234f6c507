//! Token-bucket rate limits keyed by client IP or buyer. Sans-IO: the caller passes `now`.
//!
//! Buckets live in a fixed number of mutex-guarded shards; each shard holds a bounded number of
//! keys. When a shard is full, buckets that have refilled (idle keys) are dropped first; if all are
//! busy the shard is reset, which forgets (and so briefly relaxes) limits rather than growing.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Number of independently locked shards.
const SHARDS: usize = 16;

/// A rate: `per_s` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second (> 0).
    pub per_s: f64,
    /// Largest burst (≥ 1).
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token-bucket limiter over keys `K`, bounded in memory.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: Rate,
    max_keys_per_shard: usize,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<K, Bucket>>]>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter allowing `rate` per key, tracking at most about `max_keys` keys.
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        assert!(
            rate.per_s > 0.0 && rate.burst >= 1.0,
            "invalid rate {rate:?}"
        );
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        RateLimiter {
            rate,
            max_keys_per_shard: (max_keys / SHARDS).max(1),
            hasher: RandomState::new(),
            shards,
        }
    }

    /// The configured rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes one token for `key` at `now`; `Err(wait)` says how long until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = match shard.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !map.contains_key(key) && map.len() >= self.max_keys_per_shard {
            let refill = Duration::from_secs_f64(self.rate.burst / self.rate.per_s);
            map.retain(|_, b| now.saturating_duration_since(b.last) < refill);
            if map.len() >= self.max_keys_per_shard {
                map.clear();
            }
        }
        let bucket = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.rate.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate.per_s).min(self.rate.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            Err(Duration::from_secs_f64(missing / self.rate.per_s))
        }
    }

    /// Number of keys tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }
}

/// Whole seconds to put in `Retry-After` for a wait (at least 1).
pub fn retry_after_s(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let l = RateLimiter::new(
            Rate {
                per_s: 2.0,
                burst: 3.0,
            },
            100,
        );
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(&"a", t0).is_ok());
        }
        let wait = l.check(&"a", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another key is independent.
        assert!(l.check(&"b", t0).is_ok());
        // Half a second later one token is back, not two.
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.check(&"a", t1).is_ok());
        assert!(l.check(&"a", t1).is_err());
        // Long idle: refills only up to the burst.
        let t2 = t1 + Duration::from_secs(100);
        for _ in 0..3 {
            assert!(l.check(&"a", t2).is_ok());
        }
        assert!(l.check(&"a", t2).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let l = RateLimiter::new(
            Rate {
                per_s: 1.0,
                burst: 1.0,
            },
            64,
        );
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let _ = l.check(&i, t0);
        }
        assert!(l.tracked() <= 64 + SHARDS, "{}", l.tracked());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_s(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_s(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_s(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_s(Duration::ZERO), 1);
    }
}
