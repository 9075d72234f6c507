//! A high-availability standby's view of the log: it LISTENs for the leader's commits (a
//! fenced group commit issues `pg_notify('flashsale_log', <schema>)` in its transaction, so the
//! notification arrives only once the records are committed) and reads the records after a
//! position in bounded batches, applying them to a [`Follower`]. See
//! `docs/adr/0026-standby.md`.
//!
//! Notifications only wake the tail early; correctness rests on the catch-up reads by
//! position, so a lost notification (a reconnect, a full queue) costs latency, never records.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale_engine::{FollowError, Follower};
use flashsale_protocol::ShardId;
use futures::StreamExt as _;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::schema::quoted;
use crate::{PersistenceError, PostgresBackend};

/// The notification channel of log commits; the payload is the schema's name.
pub const CHANNEL: &str = "flashsale_log";

/// Most records read (and held in memory) per query.
pub const TAIL_BATCH: i64 = 1_000;

/// Why the tail stopped.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// Postgres failed (reconnect and continue: the follower keeps its position).
    #[error("postgres: {0}")]
    Pg(#[from] PersistenceError),
    /// A record or snapshot could not be applied (rebuild the follower from the snapshot).
    #[error(transparent)]
    Follow(#[from] FollowError),
}

impl From<tokio_postgres::Error> for TailError {
    fn from(e: tokio_postgres::Error) -> Self {
        TailError::Pg(PersistenceError::from(e))
    }
}

/// One shard's head: the last record in the log and the seq its snapshot covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardHead {
    /// The last durable sequence number (log or snapshot, whichever is further).
    pub end: u64,
    /// The sequence number the shard's snapshot covers (0: none).
    pub snapshot: u64,
}

/// What one [`LogTail::catch_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CatchUp {
    /// Records applied (a restored snapshot counts the records it covers past the position).
    pub applied: u64,
    /// The log's end, summed over shards, as read at the start of the round.
    pub end: u64,
    /// Every shard reached that end (else the round stopped at its batch bound: call again).
    pub at_end: bool,
}

/// A listening connection reading the log of one schema.
#[derive(Debug)]
pub struct LogTail {
    client: Client,
    schema: String,
    wake: Arc<tokio::sync::Notify>,
}

impl LogTail {
    /// Connects, LISTENs on [`CHANNEL`] and returns the tail. The connection is driven by a
    /// task on the current tokio runtime, which turns this schema's notifications into
    /// wake-ups.
    pub async fn connect(backend: &PostgresBackend) -> Result<LogTail, PersistenceError> {
        let (client, mut connection) = backend.pg_config().connect(NoTls).await?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let (w, schema) = (wake.clone(), backend.schema().to_string());
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) if n.payload() == schema => w.notify_one(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "log tail connection closed");
                        break;
                    }
                }
            }
            // Wake the waiter so it notices the closed connection at once.
            w.notify_one();
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        Ok(LogTail {
            client,
            schema: quoted(backend.schema()),
            wake,
        })
    }

    /// Whether the connection is gone (then connect again).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Waits for a commit notification, at most `timeout` (the catch-up reads run either way).
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    /// Every shard's head, shards `0..shard_count`.
    pub async fn heads(&self, shard_count: u16) -> Result<Vec<ShardHead>, PersistenceError> {
        let s = &self.schema;
        let last = i32::from(shard_count) - 1;
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT coalesce((SELECT max(l.seq) FROM {s}.log l WHERE l.shard = g.s), 0)::int8, \
                            coalesce((SELECT sn.seq FROM {s}.snapshots sn WHERE sn.shard = g.s), 0)::int8 \
                     FROM generate_series(0, $1) AS g(s) ORDER BY g.s"
                ),
                &[&last],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let log = row.try_get::<_, i64>(0)?.max(0) as u64;
            let snapshot = row.try_get::<_, i64>(1)?.max(0) as u64;
            out.push(ShardHead {
                end: log.max(snapshot),
                snapshot,
            });
        }
        Ok(out)
    }

    /// At most [`TAIL_BATCH`] records of `shard` after `after`, in order.
    pub async fn read_after(
        &self,
        shard: ShardId,
        after: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, PersistenceError> {
        let s = &self.schema;
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT seq, record FROM {s}.log WHERE shard = $1 AND seq > $2 \
                     ORDER BY seq LIMIT {TAIL_BATCH}"
                ),
                &[&(shard as i16), &(i64::try_from(after).unwrap_or(i64::MAX))],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get(0)?;
            out.push((seq.max(0) as u64, row.try_get::<_, Vec<u8>>(1)?));
        }
        Ok(out)
    }

    /// `shard`'s snapshot, if any: the seq it covers and its bytes.
    pub async fn snapshot(
        &self,
        shard: ShardId,
    ) -> Result<Option<(u64, Vec<u8>)>, PersistenceError> {
        let s = &self.schema;
        let row = self
            .client
            .query_opt(
                &format!("SELECT seq, snapshot FROM {s}.snapshots WHERE shard = $1"),
                &[&(shard as i16)],
            )
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let seq: i64 = row.try_get(0)?;
                Ok(Some((seq.max(0) as u64, row.try_get(1)?)))
            }
        }
    }

    /// Brings `follower` up to the log's current end: per shard, the records after its
    /// position in batches of [`TAIL_BATCH`] (at most `max_batches` per shard per call, so
    /// one call is bounded in time and memory), restoring the snapshot first when the
    /// records right after the position were compacted under it. The lock on `follower` is held only while a batch
    /// is applied, never across a query.
    pub async fn catch_up(
        &self,
        follower: &Mutex<Follower>,
        max_batches: usize,
    ) -> Result<CatchUp, TailError> {
        let shard_count = with(follower, |f| f.shard_count());
        let heads = self
            .heads(u16::try_from(shard_count).unwrap_or(u16::MAX))
            .await?;
        let mut out = CatchUp {
            applied: 0,
            end: heads.iter().map(|h| h.end).sum(),
            at_end: true,
        };
        for (s, head) in heads.iter().enumerate() {
            let shard = s as ShardId;
            for round in 0..=max_batches {
                let pos = with(follower, |f| f.position(shard));
                if pos >= head.end {
                    break;
                }
                if round == max_batches {
                    out.at_end = false;
                    break;
                }
                let rows = self.read_after(shard, pos).await?;
                let contiguous = rows.first().is_some_and(|(seq, _)| *seq == pos + 1);
                if !contiguous {
                    // The next record is gone: compacted under a snapshot past `pos`.
                    if head.snapshot <= pos {
                        break;
                    }
                    if let Some((seq, bytes)) = self.snapshot(shard).await? {
                        with(follower, |f| f.restore(shard, seq, &bytes))?;
                        out.applied += seq.saturating_sub(pos);
                    }
                    continue;
                }
                let full = rows.len() as i64 == TAIL_BATCH;
                let n = with(follower, |f| -> Result<u64, FollowError> {
                    let mut n = 0;
                    for (seq, record) in &rows {
                        f.apply(shard, *seq, record)?;
                        n += 1;
                    }
                    Ok(n)
                })?;
                out.applied += n;
                if !full {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Runs `f` on the follower under its lock (a poisoned lock is taken over: every apply
/// leaves the state whole).
fn with<T>(follower: &Mutex<Follower>, f: impl FnOnce(&mut Follower) -> T) -> T {
    let mut guard = match follower.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    f(&mut guard)
}
