//! A standby's live copy of the engine state: a task tails the log (woken by the leader's
//! commit notifications, reading by position in bounded batches, see
//! `flashsale_persistence::postgres::tail`) and applies each committed record to a
//! [`Follower`], which answers the standby's reads and is handed to the engine at a takeover
//! (which then replays only the records after its position). The follower runs no timers
//! and writes nothing: it only applies what the leader made durable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale_engine::Follower;
use flashsale_persistence::postgres::tail::{LogTail, TailError};
use flashsale_persistence::PostgresBackend;

/// Most batches per shard one catch-up round applies before the task yields and re-reads
/// the heads (bounds a round's time; memory is bounded by one batch).
const MAX_BATCHES_PER_ROUND: usize = 16;

/// The followed state shared by the tail task, the API's reads and the controller.
#[derive(Debug, Clone)]
pub struct FollowedState {
    follower: Arc<Mutex<Follower>>,
    /// The records applied, summed over shards (for the lag).
    applied: Arc<AtomicU64>,
    /// Set once the first catch-up reached the log's end: reads are served from then on.
    caught_up: Arc<AtomicBool>,
}

impl FollowedState {
    /// Runs `f` on the follower under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&Follower) -> T) -> T {
        let guard = match self.follower.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&guard)
    }

    /// The records applied, summed over shards.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Whether the first catch-up is done (reads answer from a state near the log's end).
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }
}

/// The running tail: its state and its task.
#[derive(Debug)]
pub struct FollowTask {
    state: FollowedState,
    task: tokio::task::JoinHandle<()>,
}

impl FollowTask {
    /// Starts following `backend`'s log from nothing (the snapshots, then the records after
    /// them), polling at least every `poll` when no notification comes.
    pub fn start(
        backend: PostgresBackend,
        shard_count: usize,
        poll: Duration,
    ) -> anyhow::Result<FollowTask> {
        let follower = Follower::new(shard_count)?;
        let state = FollowedState {
            follower: Arc::new(Mutex::new(follower)),
            applied: Arc::new(AtomicU64::new(0)),
            caught_up: Arc::new(AtomicBool::new(false)),
        };
        let task = tokio::spawn(run(backend, state.clone(), poll));
        Ok(FollowTask { state, task })
    }

    /// The shared state (reads, lag).
    pub fn state(&self) -> FollowedState {
        self.state.clone()
    }

    /// Stops the tail and takes the follower out (for the engine of a takeover). The task
    /// is stopped at an await point, never inside an apply, so the state is whole.
    pub async fn stop(self) -> Follower {
        self.task.abort();
        let _ = self.task.await;
        let mut guard = match self.state.follower.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.take()
    }
}

/// The tail loop: (re)connect, catch up in bounded rounds, then wait for a notification.
async fn run(backend: PostgresBackend, state: FollowedState, poll: Duration) {
    let mut tail: Option<LogTail> = None;
    loop {
        if tail.as_ref().is_some_and(LogTail::is_closed) {
            tail = None;
        }
        if tail.is_none() {
            match tokio::time::timeout(poll * 4, LogTail::connect(&backend)).await {
                Ok(Ok(t)) => tail = Some(t),
                Ok(Err(e)) => tracing::debug!(error = %e, "log tail: cannot connect"),
                Err(_) => tracing::debug!("log tail: connect timed out"),
            }
        }
        let Some(t) = tail.as_ref() else {
            tokio::time::sleep(poll).await;
            continue;
        };
        match t.catch_up(&state.follower, MAX_BATCHES_PER_ROUND).await {
            Ok(step) => {
                let applied = state.with(Follower::applied);
                state.applied.store(applied, Ordering::Release);
                if step.at_end {
                    state.caught_up.store(true, Ordering::Release);
                    t.wait(poll).await;
                }
            }
            Err(TailError::Pg(e)) => {
                tracing::debug!(error = %e, "log tail: read failed; reconnecting");
                tail = None;
                tokio::time::sleep(poll).await;
            }
            Err(TailError::Follow(e)) => {
                // A record the follower cannot apply: start over from the snapshots.
                tracing::error!(error = %e, "log tail: cannot apply the log; following it afresh");
                {
                    let mut guard = match state.follower.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    drop(guard.take());
                }
                state.caught_up.store(false, Ordering::Release);
                tokio::time::sleep(poll).await;
            }
        }
    }
}
