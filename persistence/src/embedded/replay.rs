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

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
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
            &mut SegmentPool::default(),
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

/// Reads a segment file whole (page cache, plain buffered read; see `files::read_all`) into
/// `buf` (emptied first; a recycled buffer keeps its pages, see [`SegmentPool`]).
fn read_segment(path: &std::path::Path, mut buf: Vec<u8>) -> Result<Arc<Vec<u8>>, LogError> {
    use std::io::Read;
    buf.clear();
    std::fs::File::open(path)?.read_to_end(&mut buf)?;
    Ok(Arc::new(buf))
}

/// Segment buffers kept for the next read (ADR 0036, sixth round). A segment read into a
/// fresh buffer costs an `mmap` of 64 MiB, a page fault per 4 KiB page while the kernel copies
/// into it and an `munmap` wherever its last reference drops (pipelined: on the applying
/// thread, the critical path), all under the process's one `mmap_lock`, which the applying
/// thread's own page faults and `malloc` arena growth wait for. Reused, a buffer's pages stay
/// mapped: one buffer serves every segment but the ones still in use.
#[derive(Default)]
struct SegmentPool {
    /// A buffer no batch refers to any more, ready for the next segment.
    spare: Option<Vec<u8>>,
    /// Segments the applying thread is done with (one reference per applied batch), when
    /// pipelined; a reference that turns out to be the last gives its buffer back.
    returned: Option<Receiver<Arc<Vec<u8>>>>,
}

impl SegmentPool {
    /// A pool that also takes back the segments sent on `returned`.
    fn with_returns(returned: Receiver<Arc<Vec<u8>>>) -> Self {
        SegmentPool {
            spare: None,
            returned: Some(returned),
        }
    }

    /// A buffer to read the next segment into: a spare one if any segment is no longer
    /// referenced, else a new one.
    fn take(&mut self) -> Vec<u8> {
        if let Some(returned) = self.returned.take() {
            for data in returned.try_iter() {
                self.give(data);
            }
            self.returned = Some(returned);
        }
        self.spare.take().unwrap_or_default()
    }

    /// Keeps `data`'s buffer for reuse if this was its last reference and no buffer is kept
    /// yet (else only drops the reference, or frees the buffer here, off the applying thread).
    fn give(&mut self, data: Arc<Vec<u8>>) {
        if self.spare.is_none() {
            if let Ok(buf) = Arc::try_unwrap(data) {
                self.spare = Some(buf);
            }
        }
    }
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
    pool: &mut SegmentPool,
    on_record: &mut OnRecord<'_>,
    segment_end: &mut dyn FnMut() -> Result<(), LogError>,
) -> Result<ReplayOutcome, LogError> {
    let mut scan = SegmentScan::new(shard, after);
    let mut last_segment = None;
    for (i, (first, path)) in segments.iter().enumerate() {
        let next = segments.get(i + 1).map(|(n, _)| *n);
        let data = read_segment(path, pool.take())?;
        let scanned = scan.segment_ranges(*first, next, path, &data, &mut |seq, range| {
            on_record(seq, &data, range)
        });
        segment_end()?;
        match scanned? {
            Some(end) => {
                last_segment = Some(LastSegment {
                    first: *first,
                    path: path.clone(),
                    end,
                    data,
                })
            }
            None => pool.give(data),
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

/// What the applying thread hands back to the reader once a batch is applied, for reuse
/// (ADR 0036, sixth round): the batch's reference to its segment ([`SegmentPool`]), and its
/// emptied record list and arena (no allocation per batch, and no free of the reader's
/// memory on the applying thread).
struct Returns<T> {
    /// Segment references of applied batches.
    segments: Sender<Arc<Vec<u8>>>,
    /// Emptied record lists and arenas of applied batches.
    batches: Sender<(Vec<(u64, T)>, CheckedArena)>,
}

/// The reader thread's work: [`scan_segments`] with each record prepared (an error there
/// stops the scan at that record, as an `apply` error does) and sent in batches of at most
/// [`BATCH_RECORDS`] (never spanning two segments), then the outcome. Buffers come back from
/// the applying thread on `pool`'s and `spent`'s channels.
fn read_and_check<T, P>(
    shard: ShardId,
    after: u64,
    segments: &[(u64, PathBuf)],
    prepare: P,
    tx: &Sender<Message<T>>,
    mut pool: SegmentPool,
    spent: &Receiver<(Vec<(u64, T)>, CheckedArena)>,
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
        &mut pool,
        &mut |seq, data, range| {
            let mut slot = pending.borrow_mut();
            let batch = slot.get_or_insert_with(|| {
                let (mut records, mut arena) = spent
                    .try_recv()
                    .unwrap_or_else(|_| (Vec::with_capacity(BATCH_RECORDS), CheckedArena::new()));
                records.clear();
                arena.clear();
                Batch {
                    data: data.clone(),
                    records,
                    arena,
                }
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
    // Unbounded, but only batches in flight circulate: at most `CHANNEL_BATCHES` + 2.
    let (segments_back, segments_returned) = unbounded();
    let (batches_back, batches_returned) = unbounded();
    let returns = Returns {
        segments: segments_back,
        batches: batches_back,
    };
    let owned = segments.to_vec();
    let reader = std::thread::Builder::new()
        .name(format!("flashsale-replay-{shard}"))
        .spawn(move || {
            let pool = SegmentPool::with_returns(segments_returned);
            read_and_check(shard, after, &owned, prepare, &tx, pool, &batches_returned)
        })?;
    // Ends when the reader sends `Done` (it always does, unless it panicked: then the channel
    // disconnects) or when `apply` fails.
    let result = apply_batches(&rx, apply, &returns);
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

/// Applies the reader's batches in order, handing each applied batch's buffers back
/// (`returns`); the outcome, or `None` if the reader vanished.
fn apply_batches<T>(
    rx: &Receiver<Message<T>>,
    apply: &mut ApplyAt<'_, T>,
    returns: &Returns<T>,
) -> Option<Result<ReplayOutcome, LogError>> {
    for message in rx.iter() {
        match message {
            Message::Records(mut batch) => {
                for (seq, prepared) in batch.records.drain(..) {
                    if let Err(e) = apply(seq, &batch.data, &batch.arena, prepared) {
                        return Some(Err(e));
                    }
                }
                // The reader may have finished (then these are freed with the channels).
                let _ = returns.segments.send(batch.data);
                let _ = returns.batches.send((batch.records, batch.arena));
            }
            Message::Done(outcome) => return Some(outcome),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment's buffer is reused only once no batch refers to it, whichever side dropped
    /// the other references; its pages are kept (same allocation), its content is not.
    #[test]
    fn a_segment_buffer_is_reused_only_after_its_last_reference() {
        let (back, returned) = unbounded();
        let mut pool = SegmentPool::with_returns(returned);
        let mut first = pool.take();
        assert!(first.capacity() == 0, "a new pool has no spare buffer");
        first.extend_from_slice(b"segment one");
        let data = Arc::new(first);
        let at = data.as_ptr();
        // Two batches in flight hold the segment; the reader gives up its own reference.
        let (batch_a, batch_b) = (data.clone(), data.clone());
        pool.give(data);
        back.send(batch_a).ok();
        assert!(
            pool.take().capacity() == 0,
            "a batch still holds the segment"
        );
        back.send(batch_b).ok();
        let reused = pool.take();
        assert_eq!(
            reused.as_ptr(),
            at,
            "the last reference gave its buffer back"
        );
        let dir = tempfile::tempdir().ok();
        let path = dir.as_ref().map(|d| d.path().join("s.seg"));
        let path = path
            .as_deref()
            .filter(|p| std::fs::write(p, b"two").is_ok());
        let Some(path) = path else {
            panic!("cannot write a temporary segment file");
        };
        let read = read_segment(path, reused).ok();
        assert_eq!(read.as_deref().map(Vec::as_slice), Some(&b"two"[..]));
    }
}
