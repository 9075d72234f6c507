//! Recovery's replay of one shard's segment files, sequential or pipelined (ADR 0036).
//!
//! Pipelined, a reader thread reads each segment, checks every frame once (length, CRC,
//! sequence) with [`SegmentScan`] and hands the positions of the records to replay, in
//! batches, through a bounded crossbeam channel to the caller's thread, which decodes (the
//! one rkyv validation of each record, [`replay_decoded`]) and applies. With
//! [`ReplayMode::PipelinedDecode`] the reader also decodes, so the caller's thread only
//! applies. With [`replay_archived`] (what recovery uses, ADR 0036 fifth round) the reader
//! also validates each record (rkyv's `check_bytes`) into its batch's 16-aligned arena, and
//! the caller's thread reads the validated archive there, in place, without a copy or a
//! second validation. Reading and checking segment `k + 1` thus overlaps
//! applying segment `k`. The outcome is the one the sequential replay reaches: the same
//! records reach `apply` in the same order, and an error is reported after exactly the
//! records the sequential replay would have applied before it (the reader sends the records
//! it checked before an error, then the error).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use flashsale_engine::log::{
    apply_logged, decode_logged, ArchivedFn, LogError, RecordFn, ReplayFn,
};

use flashsale_protocol::{CheckedArena, CheckedAt, LogRecord, ShardId};

use super::scan::{SegmentScan, TailEnd};

/// How a replay reads and checks segments relative to applying their records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplayMode {
    /// One thread: read a segment, check and apply its records, then the next segment.
    Sequential,
    /// `Pipelined` when the shards recovering together leave a core free (fewer shards than
    /// cores), else `Sequential`: with a shard per core, the shards' own recoveries already
    /// run in parallel and a reader thread per shard only adds work (ADR 0036). The default.
    #[default]
    Auto,
    /// A reader thread reads and checks segments while the caller's thread decodes (if
    /// asked) and applies the records already checked (see the module docs).
    Pipelined,
    /// Like `Pipelined`, and the reader thread also decodes each record
    /// ([`replay_decoded`]), so the caller's thread only applies. Measured slower than
    /// `Pipelined` on the 2-vCPU machine (the applying thread then touches records built on
    /// another core and frees memory of another malloc arena: ADR 0036).
    PipelinedDecode,
}

impl ReplayMode {
    /// The mode a shard of `shard_count` uses: [`ReplayMode::Auto`] resolved against the
    /// cores available to this process; any other mode as it is.
    pub fn resolve(self, shard_count: u16) -> ReplayMode {
        match self {
            ReplayMode::Auto => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                if usize::from(shard_count) < cores {
                    ReplayMode::Pipelined
                } else {
                    ReplayMode::Sequential
                }
            }
            other => other,
        }
    }
}

/// Records per batch handed from the reader thread to the applying thread.
pub const BATCH_RECORDS: usize = 8192;

/// Bytes of validated archives one batch's arena holds before it is sent (with
/// [`BATCH_RECORDS`], bounds the memory of a batch however long its records are).
pub const BATCH_ARENA_BYTES: usize = 4 << 20;

/// Batches the channel holds before the reader waits (bounds memory: the reader runs at
/// most this many batches, and so about two segments, ahead of `apply`).
pub const CHANNEL_BATCHES: usize = 16;

/// The last segment of a replay: where the writer continues.
#[derive(Debug, Clone)]
pub struct LastSegment {
    /// Its first sequence number.
    pub first: u64,
    /// Its file.
    pub path: PathBuf,
    /// Where its valid records end and whether a torn tail follows.
    pub end: TailEnd,
    /// Its whole content as read.
    pub data: Arc<Vec<u8>>,
}

/// What a replay found.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    /// Last sequence number found (records covered by the snapshot included).
    pub last: Option<u64>,
    /// What `ShardLog::replay` returns: the last seq seen, or `after` if none is later.
    pub replayed_through: u64,
    /// The last segment, if there is any segment.
    pub last_segment: Option<LastSegment>,
}

/// Reads, checks and applies `segments` (first seq and path, ascending) of `shard`, calling
/// `apply` for every valid record with `seq > after`, in order.
pub fn replay_segments(
    shard: ShardId,
    after: u64,
    segments: &[(u64, PathBuf)],
    mode: ReplayMode,
    apply: &mut ReplayFn<'_>,
) -> Result<ReplayOutcome, LogError> {
    // The reader (if any) only finds the records; the bytes are applied where they lie.
    replay_with(
        shard,
        after,
        segments,
        mode,
        in_place,
        &mut |seq, data, _, range| apply(seq, slice(data, seq, range)?),
    )
}

/// Like [`replay_segments`], with each record decoded by [`decode_logged`] before `apply`;
/// with [`ReplayMode::PipelinedDecode`] the reader thread decodes, so the caller's thread
/// only applies.
pub fn replay_decoded(
    shard: ShardId,
    after: u64,
    segments: &[(u64, PathBuf)],
    mode: ReplayMode,
    apply: &mut RecordFn<'_>,
) -> Result<ReplayOutcome, LogError> {
    if mode == ReplayMode::PipelinedDecode {
        return replay_with(
            shard,
            after,
            segments,
            mode,
            decode_at,
            &mut |seq, _, _, record| apply(seq, record),
        );
    }
    replay_with(
        shard,
        after,
        segments,
        mode,
        in_place,
        &mut |seq, data, _, range| {
            apply(seq, decode_at(seq, data, &mut CheckedArena::new(), range)?)
        },
    )
}

/// Like [`replay_segments`], with each record validated and handed to `apply` as its archive
/// ([`RecordView`]). Pipelined, the reader thread validates each record ([`check_at`]: the
/// frame checks and rkyv's validation both off the applying thread) and the applying thread
/// reads the archive it validated without validating it again; sequentially, each record is
/// validated once before `apply` ([`apply_logged`]). Same records, same errors.
pub fn replay_archived(
    shard: ShardId,
    after: u64,
    segments: &[(u64, PathBuf)],
    mode: ReplayMode,
    apply: &mut ArchivedFn<'_>,
) -> Result<ReplayOutcome, LogError> {
    match mode.resolve(1) {
        ReplayMode::Sequential | ReplayMode::Auto => replay_with(
            shard,
            after,
            segments,
            ReplayMode::Sequential,
            in_place,
            &mut |seq, data, _, range| apply_logged(seq, slice(data, seq, range)?, apply),
        ),
        ReplayMode::Pipelined | ReplayMode::PipelinedDecode => replay_with(
            shard,
            after,
            segments,
            ReplayMode::Pipelined,
            check_at,
            &mut |seq, _, arena, checked: CheckedAt| {
                // `checked` was made by `check_at` on the arena of this record's batch, the
                // `arena` handed here (moved whole to this thread): read without validating
                // again.
                let read = arena.read(checked, |view| apply(seq, view));
                read.map_err(|e| LogError::Replay {
                    seq,
                    reason: e.to_string(),
                })?
            },
        ),
    }
}

/// The preparation that validates a record into its batch's arena ([`CheckedArena::check`]:
/// header and rkyv archive, kept 16-aligned for the applying thread to read in place); an
/// invalid record is the error [`decode_logged`] gives for it.
fn check_at(
    seq: u64,
    data: &[u8],
    arena: &mut CheckedArena,
    range: Range<usize>,
) -> Result<CheckedAt, LogError> {
    arena
        .check(slice(data, seq, range)?)
        .map_err(|e| LogError::Replay {
            seq,
            reason: e.to_string(),
        })
}

/// The preparation that leaves a record where it lies: its byte range.
fn in_place(
    _: u64,
    _: &[u8],
    _: &mut CheckedArena,
    range: Range<usize>,
) -> Result<Range<usize>, LogError> {
    Ok(range)
}

/// The preparation that decodes a record ([`decode_logged`]).
fn decode_at(
    seq: u64,
    data: &[u8],
    _: &mut CheckedArena,
    range: Range<usize>,
) -> Result<LogRecord, LogError> {
    decode_logged(seq, slice(data, seq, range)?)
}

/// The one replay of every mode: each record with `seq > after` is prepared (`prepare`: on
/// the reader thread when pipelined) and then applied (`apply`, on the caller's thread), in
/// order. Sequentially, both run in the scan's one per-record step.
fn replay_with<T, P>(
    shard: ShardId,
    after: u64,
    segments: &[(u64, PathBuf)],
    mode: ReplayMode,
    prepare: P,
    apply: &mut ApplyAt<'_, T>,
) -> Result<ReplayOutcome, LogError>
where
    T: Send + 'static,
    P: Fn(u64, &[u8], &mut CheckedArena, Range<usize>) -> Result<T, LogError> + Send + 'static,
{
    let mut arena = CheckedArena::new();
    match mode.resolve(1) {
        ReplayMode::Sequential | ReplayMode::Auto => scan_segments(
            shard,
            after,
            segments,
            &mut |seq, data, range| {
                // Sequentially a record is applied at once: one arena, cleared per record.
                arena.clear();
                let prepared = prepare(seq, data, &mut arena, range)?;
                apply(seq, data, &arena, prepared)
            },
            &mut || Ok(()),
        ),
        ReplayMode::Pipelined | ReplayMode::PipelinedDecode => {
            pipelined(shard, after, segments, prepare, apply)
        }
    }
}

/// The bytes of record `seq` at `range` of its segment.
fn slice(data: &[u8], seq: u64, range: Range<usize>) -> Result<&[u8], LogError> {
    data.get(range).ok_or_else(|| {
        LogError::Corrupt(format!(
            "shard replay: record {seq} out of its segment's bounds"
        ))
    })
}

/// Reads a segment file whole (page cache, plain buffered read; see `files::read_all`).
fn read_segment(path: &std::path::Path) -> Result<Arc<Vec<u8>>, LogError> {
    Ok(Arc::new(std::fs::read(path)?))
}

/// What the applying side is given per record: its seq, its segment's bytes, its batch's
/// arena and its prepared form (a byte range, the decoded record, or where in the arena it
/// was validated).
type ApplyAt<'a, T> = dyn FnMut(u64, &[u8], &CheckedArena, T) -> Result<(), LogError> + 'a;

/// What the scan hands each record to replay: its seq, its segment's bytes and its range.
type OnRecord<'a> = dyn FnMut(u64, &Arc<Vec<u8>>, Range<usize>) -> Result<(), LogError> + 'a;

/// The one loop over the segments, for every mode: reads each segment, checks its frames
/// ([`SegmentScan`]), hands each record with `seq > after` to `on_record`, and calls
/// `segment_end` once a segment's scan stopped, before any error of it is returned (the
/// pipelined reader sends its last batch there, so the records checked before an error are
/// applied before the error is reported).
fn scan_segments(
    shard: ShardId,
    after: u64,
    segments: &[(u64, PathBuf)],
    on_record: &mut OnRecord<'_>,
    segment_end: &mut dyn FnMut() -> Result<(), LogError>,
) -> Result<ReplayOutcome, LogError> {
    let mut scan = SegmentScan::new(shard, after);
    let mut last_segment = None;
    for (i, (first, path)) in segments.iter().enumerate() {
        let next = segments.get(i + 1).map(|(n, _)| *n);
        let data = read_segment(path)?;
        let scanned = scan.segment_ranges(*first, next, path, &data, &mut |seq, range| {
            on_record(seq, &data, range)
        });
        segment_end()?;
        if let Some(end) = scanned? {
            last_segment = Some(LastSegment {
                first: *first,
                path: path.clone(),
                end,
                data,
            });
        }
    }
    Ok(ReplayOutcome {
        last: scan.last(),
        replayed_through: scan.replayed_through(),
        last_segment,
    })
}

/// Checked (and prepared) records of one segment, handed to the applying thread.
struct Batch<T> {
    /// The segment's bytes (shared by its batches).
    data: Arc<Vec<u8>>,
    /// Sequence number and prepared form (a byte range, or the decoded record) of each
    /// record, in order.
    records: Vec<(u64, T)>,
    /// The archives the reader validated for this batch ([`check_at`]), 16-aligned; empty in
    /// the other modes.
    arena: CheckedArena,
}

/// What the reader thread sends.
enum Message<T> {
    /// Records to apply, in order.
    Records(Batch<T>),
    /// The end: the scan's outcome or the error that stopped it (after every record the
    /// sequential replay would have applied before it).
    Done(Result<ReplayOutcome, LogError>),
}

/// The reader stopped because the applying side went away (its `apply` failed).
fn consumer_gone() -> LogError {
    LogError::Io(std::io::Error::other(
        "replay stopped by the applying thread",
    ))
}

/// The reader thread's work: [`scan_segments`] with each record prepared (an error there
/// stops the scan at that record, as an `apply` error does) and sent in batches of at most
/// [`BATCH_RECORDS`] (never spanning two segments), then the outcome.
fn read_and_check<T, P>(
    shard: ShardId,
    after: u64,
    segments: &[(u64, PathBuf)],
    prepare: P,
    tx: &Sender<Message<T>>,
) where
    P: Fn(u64, &[u8], &mut CheckedArena, Range<usize>) -> Result<T, LogError>,
{
    // The batch being filled, with the segment its records lie in.
    let pending: std::cell::RefCell<Option<Batch<T>>> = std::cell::RefCell::new(None);
    let send = |batch: Batch<T>| {
        tx.send(Message::Records(batch))
            .map_err(|_| consumer_gone())
    };
    let outcome = scan_segments(
        shard,
        after,
        segments,
        &mut |seq, data, range| {
            let mut slot = pending.borrow_mut();
            let batch = slot.get_or_insert_with(|| Batch {
                data: data.clone(),
                records: Vec::with_capacity(BATCH_RECORDS),
                arena: CheckedArena::new(),
            });
            let prepared = prepare(seq, data, &mut batch.arena, range)?;
            batch.records.push((seq, prepared));
            if batch.records.len() >= BATCH_RECORDS || batch.arena.len() >= BATCH_ARENA_BYTES {
                if let Some(full) = slot.take() {
                    send(full)?;
                }
            }
            Ok(())
        },
        &mut || match pending.borrow_mut().take() {
            Some(batch) => send(batch),
            None => Ok(()),
        },
    );
    // The applying side may be gone (its apply failed): nothing left to tell it then.
    let _ = tx.send(Message::Done(outcome));
}

/// Replays with a reader thread ([`read_and_check`]) and applies its batches here.
fn pipelined<T, P>(
    shard: ShardId,
    after: u64,
    segments: &[(u64, PathBuf)],
    prepare: P,
    apply: &mut ApplyAt<'_, T>,
) -> Result<ReplayOutcome, LogError>
where
    T: Send + 'static,
    P: Fn(u64, &[u8], &mut CheckedArena, Range<usize>) -> Result<T, LogError> + Send + 'static,
{
    let (tx, rx): (Sender<Message<T>>, Receiver<Message<T>>) = bounded(CHANNEL_BATCHES);
    let owned = segments.to_vec();
    let reader = std::thread::Builder::new()
        .name(format!("flashsale-replay-{shard}"))
        .spawn(move || read_and_check(shard, after, &owned, prepare, &tx))?;
    // Ends when the reader sends `Done` (it always does, unless it panicked: then the channel
    // disconnects) or when `apply` fails.
    let result = apply_batches(&rx, apply);
    // Wakes a reader blocked on a full channel (its sends fail from now on), then waits for it.
    drop(rx);
    let joined = reader.join();
    match (result, joined) {
        (Some(result), _) => result,
        (None, Err(_)) => Err(LogError::Io(std::io::Error::other(
            "the replay reader thread panicked",
        ))),
        (None, Ok(())) => Err(LogError::Io(std::io::Error::other(
            "the replay reader thread ended without an outcome",
        ))),
    }
}

/// Applies the reader's batches in order; the outcome, or `None` if the reader vanished.
fn apply_batches<T>(
    rx: &Receiver<Message<T>>,
    apply: &mut ApplyAt<'_, T>,
) -> Option<Result<ReplayOutcome, LogError>> {
    for message in rx.iter() {
        match message {
            Message::Records(batch) => {
                for (seq, prepared) in batch.records {
                    if let Err(e) = apply(seq, &batch.data, &batch.arena, prepared) {
                        return Some(Err(e));
                    }
                }
            }
            Message::Done(outcome) => return Some(outcome),
        }
    }
    None
}
