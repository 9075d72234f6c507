//! Idempotency keys whose first request is still in progress on this (their home) shard.
//!
//! While a keyed cross-shard reservation is being coordinated, its key is already stored with
//! the home part; a duplicate must not see that partial reservation. It waits here (at most
//! [`MAX_KEY_WAITERS`] per key, at most [`DUPLICATE_WAIT_MS`]) for the first request's
//! outcome and gets the same answer, or `IdempotencyInProgress`.

use flashsale_protocol::{ReservationId, ScopedKey};

use crate::limits::{DUPLICATE_WAIT_MS, MAX_KEY_WAITERS};

type FastMap<K, V> = hashbrown::HashMap<K, V, ahash::RandomState>;

/// A duplicate waiting for the first request's outcome.
#[derive(Debug)]
struct KeyWaiter<R> {
    to: R,
    since_ms: u64,
}

/// A key in progress.
#[derive(Debug)]
struct InProgress<R> {
    request_hash: u64,
    id: ReservationId,
    waiters: Vec<KeyWaiter<R>>,
}

/// What a keyed request finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// No request with this key is in progress.
    Free,
    /// The same request is in progress (reservation id).
    InProgress(ReservationId),
    /// Another request with this key is in progress.
    Mismatch,
}

/// Keys in progress on one shard.
#[derive(Debug)]
pub struct PendingKeys<R> {
    keys: FastMap<ScopedKey, InProgress<R>>,
}

impl<R> Default for PendingKeys<R> {
    fn default() -> Self {
        PendingKeys {
            keys: FastMap::with_hasher(ahash::RandomState::with_seeds(7, 11, 13, 17)),
        }
    }
}

impl<R> PendingKeys<R> {
    /// Whether `key` is in progress, and with which request.
    pub fn status(&self, key: &ScopedKey, request_hash: u64) -> KeyStatus {
        match self.keys.get(key) {
            None => KeyStatus::Free,
            Some(p) if p.request_hash == request_hash => KeyStatus::InProgress(p.id),
            Some(_) => KeyStatus::Mismatch,
        }
    }

    /// Marks `key` in progress for reservation `id`.
    pub fn begin(&mut self, key: ScopedKey, request_hash: u64, id: ReservationId) {
        let previous = self.keys.insert(
            key,
            InProgress {
                request_hash,
                id,
                waiters: Vec::new(),
            },
        );
        assert!(previous.is_none(), "a key began twice");
    }

    /// Queues a duplicate of `key`; gives the reply handle back if the key is not in progress
    /// or already has [`MAX_KEY_WAITERS`] waiting.
    pub fn wait(&mut self, key: &ScopedKey, to: R, now_ms: u64) -> Result<(), R> {
        match self.keys.get_mut(key) {
            Some(p) if p.waiters.len() < MAX_KEY_WAITERS => {
                p.waiters.push(KeyWaiter {
                    to,
                    since_ms: now_ms,
                });
                Ok(())
            }
            _ => Err(to),
        }
    }

    /// The first request with `key` finished: returns the duplicates waiting for its outcome.
    pub fn finish(&mut self, key: &ScopedKey) -> Vec<R> {
        self.keys
            .remove(key)
            .map(|p| p.waiters.into_iter().map(|w| w.to).collect())
            .unwrap_or_default()
    }

    /// Duplicates that waited [`DUPLICATE_WAIT_MS`] or more (removed).
    pub fn timed_out(&mut self, now_ms: u64) -> Vec<R> {
        let mut out = Vec::new();
        for p in self.keys.values_mut() {
            let (late, waiting): (Vec<_>, Vec<_>) = p
                .waiters
                .drain(..)
                .partition(|w| now_ms.saturating_sub(w.since_ms) >= DUPLICATE_WAIT_MS);
            p.waiters = waiting;
            out.extend(late.into_iter().map(|w| w.to));
        }
        out
    }

    /// Number of keys in progress.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is in progress.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use flashsale_protocol::{IdempotencyKey, KeyOwner};

    use super::*;

    fn key(owner: u64, k: &str) -> ScopedKey {
        let k = IdempotencyKey::new(k).unwrap_or_else(|e| panic!("{e}"));
        ScopedKey::new(KeyOwner::Credential(owner), k)
    }

    #[test]
    fn duplicates_wait_bounded_and_hear_the_outcome() {
        let mut keys: PendingKeys<u32> = PendingKeys::default();
        let id = ReservationId::compose(0, 1);
        assert_eq!(keys.status(&key(1, "k"), 5), KeyStatus::Free);
        keys.begin(key(1, "k"), 5, id);
        assert_eq!(keys.status(&key(1, "k"), 5), KeyStatus::InProgress(id));
        assert_eq!(keys.status(&key(1, "k"), 6), KeyStatus::Mismatch);
        assert_eq!(
            keys.status(&key(2, "k"), 5),
            KeyStatus::Free,
            "scoped per owner"
        );
        for i in 0..MAX_KEY_WAITERS as u32 {
            assert_eq!(keys.wait(&key(1, "k"), i, 100), Ok(()));
        }
        assert_eq!(keys.wait(&key(1, "k"), 99, 100), Err(99), "bounded");
        assert_eq!(
            keys.timed_out(100 + DUPLICATE_WAIT_MS - 1),
            Vec::<u32>::new()
        );
        assert_eq!(
            keys.timed_out(100 + DUPLICATE_WAIT_MS).len(),
            MAX_KEY_WAITERS
        );
        assert_eq!(keys.wait(&key(1, "k"), 7, 2_000), Ok(()));
        assert_eq!(keys.finish(&key(1, "k")), vec![7]);
        assert!(keys.is_empty());
    }
}
