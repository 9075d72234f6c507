//! The server's phase (serving, draining, closing) as every connection task sees it.
//!
//! Each connection task waits for a phase change next to its hyper connection, so the wait is
//! polled on every wake-up of the task, i.e. on every request. A `tokio::sync::watch` wait
//! takes the channel's one waiter lock on each such poll, a lock shared by every connection on
//! both worker threads; here each connection has its own slot (an atomic phase and an
//! [`AtomicWaker`]), and only a phase change (twice in the server's life) takes the lock of the
//! list of slots (ADR 0043).

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use futures::task::AtomicWaker;

/// Where the server is in its life; every connection task follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Accepting and serving.
    Serving,
    /// Shutting down: finish in-flight requests, take no new ones, then close.
    Draining,
    /// The grace period is over: close now.
    Closing,
}

impl Phase {
    /// The phase as stored in an atomic.
    fn code(self) -> u8 {
        match self {
            Phase::Serving => 0,
            Phase::Draining => 1,
            Phase::Closing => 2,
        }
    }

    /// The phase stored as `code` (an unknown code is the last phase).
    fn of_code(code: u8) -> Phase {
        match code {
            0 => Phase::Serving,
            1 => Phase::Draining,
            _ => Phase::Closing,
        }
    }
}

/// One connection's slot: the phase it was told and the waker of its task.
#[derive(Debug)]
struct Slot {
    /// The latest phase, as a [`Phase::code`].
    phase: AtomicU8,
    /// Woken when `phase` changes.
    waker: AtomicWaker,
}

/// The phase and the slot of every open connection.
#[derive(Debug)]
struct Shared {
    /// The current phase, as a [`Phase::code`]; new slots start from it.
    current: AtomicU8,
    /// Numbers the slots.
    next_id: AtomicU64,
    /// The open connections' slots, by number.
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
}

/// Sets the phase for every connection; dropping it closes them all (as a dropped
/// `watch::Sender` did).
#[derive(Debug)]
pub(super) struct PhaseSender {
    /// Shared with the watchers.
    shared: Arc<Shared>,
}

/// One connection's view of the phase; dropping it frees the connection's slot.
#[derive(Debug)]
pub(super) struct PhaseWatch {
    /// Shared with the sender.
    shared: Arc<Shared>,
    /// This connection's slot number.
    id: u64,
    /// This connection's slot.
    slot: Arc<Slot>,
    /// The phase last returned by [`PhaseWatch::changed`] (or the one at the start).
    seen: Phase,
}

impl PhaseSender {
    /// A sender in [`Phase::Serving`], with no connection yet.
    pub(super) fn new() -> Self {
        PhaseSender {
            shared: Arc::new(Shared {
                current: AtomicU8::new(Phase::Serving.code()),
                next_id: AtomicU64::new(0),
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A view for a new connection, starting from the current phase.
    pub(super) fn watch(&self) -> PhaseWatch {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut slots = self
            .shared
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Read under the lock that `send` holds while it updates the slots: no change is
        // missed between this read and the insertion.
        let current = self.shared.current.load(Ordering::Acquire);
        let slot = Arc::new(Slot {
            phase: AtomicU8::new(current),
            waker: AtomicWaker::new(),
        });
        slots.insert(id, slot.clone());
        PhaseWatch {
            shared: self.shared.clone(),
            id,
            slot,
            seen: Phase::of_code(current),
        }
    }

    /// Moves every connection (and those that open later) to `phase`, waking their tasks.
    pub(super) fn send(&self, phase: Phase) {
        let slots = self
            .shared
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared.current.store(phase.code(), Ordering::Release);
        for slot in slots.values() {
            slot.phase.store(phase.code(), Ordering::Release);
            slot.waker.wake();
        }
    }
}

impl Drop for PhaseSender {
    fn drop(&mut self) {
        self.send(Phase::Closing);
    }
}

impl PhaseWatch {
    /// Waits until the phase differs from the one last seen, and returns it. Cancel-safe: a
    /// change that happens while no one waits is returned by the next call.
    pub(super) async fn changed(&mut self) -> Phase {
        poll_fn(|cx| {
            // Register first, then read: a change after the read wakes this waker.
            self.slot.waker.register(cx.waker());
            let now = Phase::of_code(self.slot.phase.load(Ordering::Acquire));
            if now == self.seen {
                Poll::Pending
            } else {
                self.seen = now;
                Poll::Ready(now)
            }
        })
        .await
    }
}

impl Drop for PhaseWatch {
    fn drop(&mut self) {
        self.shared
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_watch_sees_each_change_once_and_new_watches_start_current() {
        let sender = PhaseSender::new();
        let mut a = sender.watch();
        let waiting = tokio::spawn(async move {
            let first = a.changed().await;
            (first, a)
        });
        tokio::task::yield_now().await;
        sender.send(Phase::Draining);
        let (first, mut a) = waiting.await.unwrap();
        assert_eq!(first, Phase::Draining);
        let mut b = sender.watch();
        assert_eq!(b.seen, Phase::Draining);
        // A change sent while no one waits is returned by the next wait.
        sender.send(Phase::Closing);
        assert_eq!(a.changed().await, Phase::Closing);
        assert_eq!(b.changed().await, Phase::Closing);
        drop(a);
        drop(b);
        assert!(sender.shared.slots.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn dropping_the_sender_closes_every_connection() {
        let sender = PhaseSender::new();
        let mut a = sender.watch();
        drop(sender);
        assert_eq!(a.changed().await, Phase::Closing);
    }
}
