//! The interface between shards and a durable write-ahead log.
//!
//! Backends live in `flashsale-persistence` (segment files, Postgres); [`memory`] is an
//! in-process backend for tests. A shard's log is opened and used only on that shard's executor
//! thread, so its futures need not be `Send`.
//!
//! Group commit is driven by the shard runtime: while one `flush` runs, new records wait in the
//! runtime's buffer; when it returns, everything that arrived meanwhile is appended and flushed
//! with one more `flush`. A command's result is released only after the flush covering its
//! records returned `Ok`.

pub mod memory;

use std::future::Future;
use std::pin::Pin;

use flashsale_protocol::event::ArchivedLogRecord;
use flashsale_protocol::{
    decode_record, decode_record_with, with_record, LogRecord, RecordView, ShardId,
};

/// A boxed future that may hold thread-local state (runs on one executor).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A stored snapshot: the last sequence number it covers and its bytes.
pub type StoredSnapshot = (u64, Vec<u8>);

/// The callback replay feeds each record to: `(seq, encoded record)`.
pub type ReplayFn<'a> = dyn FnMut(u64, &[u8]) -> Result<(), LogError> + 'a;

/// The callback [`ShardLog::replay_records`] feeds each decoded record to: `(seq, record)`.
pub type RecordFn<'a> = dyn FnMut(u64, LogRecord) -> Result<(), LogError> + 'a;

/// The callback [`ShardLog::replay_archived`] feeds each validated record to: `(seq, view)`.
pub type ArchivedFn<'a> = dyn FnMut(u64, RecordView<'_>) -> Result<(), LogError> + 'a;

/// Validates the record logged at `seq` in place ([`with_record`]) and hands its view to
/// `apply`; a record that is not a valid archive is the same [`LogError::Replay`] as
/// [`decode_logged`]'s. The default of [`ShardLog::replay_archived`].
pub fn apply_logged(seq: u64, bytes: &[u8], apply: &mut ArchivedFn<'_>) -> Result<(), LogError> {
    with_record(bytes, |view| apply(seq, view)).map_err(|e| LogError::Replay {
        seq,
        reason: e.to_string(),
    })?
}

/// Decodes the record logged at `seq`, checking that it names that seq. The one decode (and
/// validation) of a record on replay; a backend may run it on another thread.
pub fn decode_logged(seq: u64, bytes: &[u8]) -> Result<LogRecord, LogError> {
    let record = decode_record(bytes).map_err(|e| LogError::Replay {
        seq,
        reason: e.to_string(),
    })?;
    logged_at(seq, record)
}

/// `record` if it names `seq`, the position it was logged at.
pub(crate) fn logged_at(seq: u64, record: LogRecord) -> Result<LogRecord, LogError> {
    if record.seq != seq {
        return Err(LogError::Replay {
            seq,
            reason: format!("record says seq {}", record.seq),
        });
    }
    Ok(record)
}

/// Like [`decode_logged`], with a record of the current version built by `build` from its
/// archive, validated once in place ([`decode_record_with`]): recovery builds it with the
/// shard's own id handles ([`crate::shard::Shard::record_from_archived`]). Same checks, same
/// errors, same record.
pub fn decode_logged_with<F>(seq: u64, bytes: &[u8], build: F) -> Result<LogRecord, LogError>
where
    F: FnOnce(&ArchivedLogRecord) -> Result<LogRecord, rkyv::rancor::Error>,
{
    let record = decode_record_with(bytes, build).map_err(|e| LogError::Replay {
        seq,
        reason: e.to_string(),
    })?;
    logged_at(seq, record)
}

/// Why the log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O error (disk full, permission, …).
    #[error("log I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The backend (e.g. Postgres) is unreachable or refused the write.
    #[error("log backend unavailable: {0}")]
    Unavailable(String),
    /// The writer was deposed: its epoch is no longer the group's lease epoch (high
    /// availability), so nothing it appends can become durable.
    #[error("log fenced: epoch {epoch} was superseded by a newer leader")]
    Fenced {
        /// The writer's (stale) epoch.
        epoch: u64,
    },
    /// Stored data is corrupt beyond the torn tail that recovery cuts.
    #[error("log corrupt: {0}")]
    Corrupt(String),
    /// A record passed to replay could not be applied.
    #[error("replay failed at seq {seq}: {reason}")]
    Replay {
        /// The record's sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// Opens each shard's log. Shared by all shards; `open` is called on the shard's own thread.
pub trait LogBackend: Send + Sync + 'static {
    /// Opens (creating if needed) the log of `shard` out of `shard_count`.
    fn open(
        &self,
        shard: ShardId,
        shard_count: u16,
    ) -> LocalBoxFuture<'static, Result<Box<dyn ShardLog>, LogError>>;

    /// A one-line description for start-up output, e.g. `embedded log in ./flashsale-data`.
    fn describe(&self) -> String;
}

/// One shard's write-ahead log and snapshots.
pub trait ShardLog {
    /// The latest snapshot: the last sequence number it covers and its bytes.
    fn load_snapshot(&mut self) -> LocalBoxFuture<'_, Result<Option<StoredSnapshot>, LogError>>;

    /// Calls `apply(seq, record)` for every durable record with `seq > after`, in order, and
    /// returns the last sequence number seen (`after` if none). A torn or corrupt tail is cut
    /// here (never replayed, never fatal); corruption before the tail is an error.
    fn replay<'a>(
        &'a mut self,
        after: u64,
        apply: &'a mut ReplayFn<'a>,
    ) -> LocalBoxFuture<'a, Result<u64, LogError>>;

    /// Like [`ShardLog::replay`], with every record decoded by [`decode_logged`] first (a
    /// decode error stops the replay there, as an `apply` error does). A backend may decode
    /// on another thread, in parallel with `apply` (the embedded log does, ADR 0036).
    fn replay_records<'a>(
        &'a mut self,
        after: u64,
        apply: &'a mut RecordFn<'a>,
    ) -> LocalBoxFuture<'a, Result<u64, LogError>> {
        Box::pin(async move {
            let mut raw = |seq: u64, bytes: &[u8]| apply(seq, decode_logged(seq, bytes)?);
            self.replay(after, &mut raw).await
        })
    }

    /// Like [`ShardLog::replay`], with every record validated and handed over as its
    /// archive, read in place ([`RecordView`]; older record versions decoded): the caller
    /// builds what it needs from it (recovery: [`crate::shard::Shard::record_from_archived`])
    /// and checks the record's seq. Default: [`apply_logged`] on the caller's thread. A
    /// backend may validate on another thread, in parallel with `apply`, so each record is
    /// still validated once (the embedded log does, ADR 0036, fifth round).
    fn replay_archived<'a>(
        &'a mut self,
        after: u64,
        apply: &'a mut ArchivedFn<'a>,
    ) -> LocalBoxFuture<'a, Result<u64, LogError>> {
        Box::pin(async move {
            let mut raw = |seq: u64, bytes: &[u8]| apply_logged(seq, bytes, apply);
            self.replay(after, &mut raw).await
        })
    }

    /// About how many records a replay after `after` will hand over, if the backend can tell
    /// without reading them (the embedded log counts its segments by their names): recovery
    /// sizes the shard's growing structures with it before the replay
    /// ([`crate::shard::Shard::reserve_for_replay`], ADR 0036, thirteenth round). A hint,
    /// neither a bound nor a promise: the replay's outcome never depends on it. Default:
    /// `None` (no hint).
    fn replay_size_hint(&mut self, after: u64) -> Option<u64> {
        let _ = after;
        None
    }

    /// Whether [`ShardLog::replay_records`] decodes on another thread than the caller's
    /// (the embedded log's `PipelinedDecode` mode): recovery then uses it; otherwise it
    /// replays the raw records and decodes them with the shard's own handles (ADR 0036).
    fn decodes_while_reading(&self) -> bool {
        false
    }

    /// Buffers one encoded record (not durable yet). Sequence numbers are consecutive.
    fn append(&mut self, seq: u64, record: &[u8]);

    /// Makes every appended record durable. On error the records stay buffered and the next
    /// `flush` tries them again (the backend must not lose or duplicate them).
    fn flush(&mut self) -> LocalBoxFuture<'_, Result<(), LogError>>;

    /// Stores a snapshot covering every record up to and including `seq`; records it covers
    /// may then be removed.
    fn write_snapshot<'a>(
        &'a mut self,
        seq: u64,
        snapshot: &'a [u8],
    ) -> LocalBoxFuture<'a, Result<(), LogError>>;
}
