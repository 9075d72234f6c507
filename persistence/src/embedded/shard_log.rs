//! One shard's embedded log: recovery (scan, torn-tail cut), group-commit writes, snapshots.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use flashsale_engine::log::{ArchivedFn, LocalBoxFuture, LogError, RecordFn, ReplayFn, ShardLog};
use flashsale_protocol::ShardId;
use futures::channel::mpsc;
use futures::StreamExt;
use glommio::io::DmaFile;

use super::files::{self, segment_path, snapshot_path};
use super::lock::DirLock;
use super::pipeline::{BatchId, FlushPipeline, SeqRange, MAX_FLUSHES_IN_FLIGHT};
use super::replay::{replay_archived, replay_decoded, replay_segments, ReplayMode, ReplayOutcome};
use super::scan::TailEnd;
use crate::frame::encode_frame;

/// A segment being prepared in the background: a readiness flag and the task.
type Spare = (Rc<Cell<bool>>, glommio::Task<std::io::Result<DmaFile>>);

/// Name of the segment being prepared in the background.
const SPARE: &str = "spare.tmp";

/// Creates, pre-allocates, zero-fills and syncs a segment file at `path`.
async fn prepare_segment(path: PathBuf, size: u64, zero_fill: bool) -> std::io::Result<DmaFile> {
    let file = files::open_for_write(&path, true).await?;
    let res = async {
        file.pre_allocate(size, false).await?;
        if zero_fill {
            files::zero_fill(&file, size).await?;
        }
        file.fdatasync().await?;
        Ok::<(), std::io::Error>(())
    }
    .await;
    match res {
        Ok(()) => Ok(file),
        Err(e) => {
            let _ = file.close().await;
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Which I/O of a batch completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    /// Its O_DIRECT write.
    Write,
    /// Its `fdatasync`.
    Sync,
}

/// A completed write or `fdatasync` of a batch in flight, sent by the task that ran it.
struct OpDone {
    batch: BatchId,
    kind: OpKind,
    /// The file it ran on (a written batch is synced on the same file).
    file: Rc<DmaFile>,
    result: std::io::Result<()>,
}

/// The segment currently written.
struct Active {
    file: Rc<DmaFile>,
    path: PathBuf,
    first_seq: u64,
    /// Logical end of the data written or being written (bytes; durable once the batches in
    /// flight are).
    end: u64,
    /// Bytes from `align_down(end)` to `end`: rewritten with the next write (O_DIRECT writes
    /// whole blocks).
    tail: Vec<u8>,
    /// A write or fdatasync failed: nothing more is written to this file.
    poisoned: bool,
}

/// Where one write of the pending records goes in the active segment.
struct AppendPlan {
    /// Block-aligned file offset the write starts at (`tail ++ pending` is written there).
    base: u64,
    /// The segment's logical end once the write is done.
    new_end: u64,
    /// The partial block the write leaves at `new_end`, rewritten by the next write.
    new_tail: Vec<u8>,
}

impl Active {
    /// Whether a batch of `pending_len` bytes starting at seq `first` must go to a fresh
    /// segment: this one failed, is full, was opened for another first seq, or the batch
    /// does not follow the last seq written (`written_last`) without a gap.
    fn must_rotate(
        &self,
        first: u64,
        pending_len: u64,
        segment_size: u64,
        written_last: Option<u64>,
    ) -> bool {
        self.poisoned
            || (self.end > 0 && self.end + pending_len > segment_size)
            || (self.end == 0 && self.first_seq != first)
            || written_last.is_some_and(|l| l + 1 != first)
    }

    /// Plans the write of `pending` after the segment's logical end; the new tail is built in
    /// `buffer` (emptied first: the old tail's buffer, reused).
    fn plan_append(&self, pending: &[u8], buffer: Vec<u8>) -> AppendPlan {
        let align = self.file.alignment();
        let base = self.end / align * align;
        debug_assert_eq!((self.end - base) as usize, self.tail.len());
        let new_end = self.end + pending.len() as u64;
        let new_tail = next_tail(&self.tail, pending, base, new_end, align, buffer);
        AppendPlan {
            base,
            new_end,
            new_tail,
        }
    }
}

/// One shard's embedded write-ahead log (see the module docs of `embedded`).
pub struct EmbeddedLog {
    dir: PathBuf,
    shard: ShardId,
    segment_size: u64,
    zero_fill: bool,
    /// How recovery reads segments relative to applying records.
    replay: ReplayMode,
    /// The next segment, being created and zero-filled in the background (`spare.tmp`), so
    /// rotation costs only a rename.
    spare: Option<Spare>,
    _lock: Arc<DirLock>,
    /// Durable seqs published for log followers, and the segments they still need.
    marks: Arc<super::TailMarks>,
    recovered: bool,
    /// First seqs of the segments on disk, ascending.
    segments: Vec<u64>,
    active: Option<Active>,
    /// Last durable sequence number, if any record is in the log.
    last_durable: Option<u64>,
    /// Framed records appended and not yet handed to a write.
    pending: Vec<u8>,
    pending_first: Option<u64>,
    pending_last: Option<u64>,
    /// Batches written or syncing (at most [`MAX_FLUSHES_IN_FLIGHT`]) and their bytes.
    pipeline: FlushPipeline<Vec<u8>>,
    /// Completions of the writes and syncs in flight, sent by their tasks. Unbounded type,
    /// bounded in use: each task sends once, and at most [`MAX_FLUSHES_IN_FLIGHT`] batches
    /// (plus those a failure abandoned) have a task running.
    done_tx: mpsc::UnboundedSender<OpDone>,
    done_rx: mpsc::UnboundedReceiver<OpDone>,
    /// Emptied buffers of durable batches, reused for `pending` (at most
    /// [`MAX_FLUSHES_IN_FLIGHT`]).
    spare_buffers: Vec<Vec<u8>>,
    /// The buffer of the partial block before the last write, reused for the next one's
    /// (at most one block: no allocation per flush, ADR 0055).
    spare_tail: Vec<u8>,
    /// Successful group commits (one fdatasync each).
    commits: u64,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("dir", &self.dir)
            .field("shard", &self.shard)
            .field("segments", &self.segments)
            .field("last_durable", &self.last_durable)
            .field("pending_bytes", &self.pending.len())
            .finish()
    }
}

/// The partial block a write of `tail ++ pending` at `base` leaves at its end (`new_end`):
/// kept to be rewritten, with more records, by the next write. Built in `buffer` (emptied
/// first; it grows only if it is smaller than the block).
fn next_tail(
    tail: &[u8],
    pending: &[u8],
    base: u64,
    new_end: u64,
    align: u64,
    buffer: Vec<u8>,
) -> Vec<u8> {
    let new_base = new_end / align * align;
    let mut new_tail = buffer;
    new_tail.clear();
    new_tail.reserve((new_end - new_base) as usize);
    let from = (new_base - base) as usize; // offset into tail ++ pending
    if from < tail.len() {
        new_tail.extend_from_slice(&tail[from..]);
        new_tail.extend_from_slice(pending);
    } else {
        new_tail.extend_from_slice(&pending[from - tail.len()..]);
    }
    new_tail
}

fn corrupt(msg: String) -> LogError {
    LogError::Corrupt(msg)
}

impl EmbeddedLog {
    pub(super) fn new(
        dir: PathBuf,
        shard: ShardId,
        options: super::EmbeddedOptions,
        lock: Arc<DirLock>,
        marks: Arc<super::TailMarks>,
    ) -> EmbeddedLog {
        let (done_tx, done_rx) = mpsc::unbounded();
        EmbeddedLog {
            dir,
            shard,
            segment_size: options.segment_size_bytes,
            zero_fill: options.zero_fill_segments,
            replay: options.replay,
            spare: None,
            _lock: lock,
            marks,
            recovered: false,
            segments: Vec::new(),
            active: None,
            last_durable: None,
            pending: Vec::new(),
            pending_first: None,
            pending_last: None,
            pipeline: FlushPipeline::default(),
            done_tx,
            done_rx,
            spare_buffers: Vec::new(),
            spare_tail: Vec::new(),
            commits: 0,
        }
    }

    /// Number of successful group commits (each one `fdatasync`) since open.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// First sequence numbers of the segment files on disk (after recovery), ascending.
    pub fn segment_firsts(&self) -> &[u64] {
        &self.segments
    }

    /// Last durable sequence number (after recovery), if any.
    pub fn last_durable_seq(&self) -> Option<u64> {
        self.last_durable
    }

    fn latest_snapshot_seq(&self) -> Result<u64, LogError> {
        Ok(files::list_numbered(&self.dir, "snap")?
            .last()
            .map(|(s, _)| *s)
            .unwrap_or(0))
    }

    /// Scans every segment, calls `apply` for valid records with `seq > after`, cuts a torn
    /// tail of the last segment, and positions the writer after the last valid record.
    async fn recover(&mut self, after: u64, apply: &mut ReplayFn<'_>) -> Result<u64, LogError> {
        self.recover_with(|shard, segs, mode| replay_segments(shard, after, segs, mode, apply))
            .await
    }

    /// [`EmbeddedLog::recover`] with the records decoded before `apply` (on the reader
    /// thread when pipelined).
    async fn recover_decoded(
        &mut self,
        after: u64,
        apply: &mut RecordFn<'_>,
    ) -> Result<u64, LogError> {
        self.recover_with(|shard, segs, mode| replay_decoded(shard, after, segs, mode, apply))
            .await
    }

    /// [`EmbeddedLog::recover`] with the records validated before `apply` and handed over as
    /// their archives (validated on the reader thread when pipelined).
    async fn recover_archived(
        &mut self,
        after: u64,
        apply: &mut ArchivedFn<'_>,
    ) -> Result<u64, LogError> {
        self.recover_with(|shard, segs, mode| replay_archived(shard, after, segs, mode, apply))
            .await
    }

    /// The common part of recovery around `run`, the replay of the segments.
    async fn recover_with(
        &mut self,
        run: impl FnOnce(ShardId, &[(u64, PathBuf)], ReplayMode) -> Result<ReplayOutcome, LogError>,
    ) -> Result<u64, LogError> {
        let _ = std::fs::remove_file(self.dir.join("snapshot.tmp"));
        if self.spare.is_none() {
            let _ = std::fs::remove_file(self.dir.join(SPARE));
        }
        let segs = files::list_numbered(&self.dir, "seg")?;
        let outcome = run(self.shard, &segs, self.replay)?;
        let mut writer_at = None;
        if let Some(last) = outcome.last_segment {
            let TailEnd { end, cut } = last.end;
            if cut {
                tracing::warn!(
                    shard = self.shard,
                    segment = %last.path.display(),
                    offset = end,
                    last_seq = outcome.last.unwrap_or(last.first - 1),
                    "cutting torn or corrupt log tail (never acknowledged)"
                );
            }
            writer_at = Some((last.first, last.path, end, last.data, cut));
        }
        self.segments = segs.iter().map(|(n, _)| *n).collect();
        if let Some((first, path, end, data, cut)) = writer_at {
            let file = files::open_for_write(&path, false).await?;
            let align = file.alignment() as usize;
            let tail = data[end / align * align..end].to_vec();
            drop(data);
            let end = end as u64;
            if cut {
                file.truncate(end).await.map_err(std::io::Error::from)?;
                file.pre_allocate(self.segment_size, false)
                    .await
                    .map_err(std::io::Error::from)?;
                file.fdatasync().await.map_err(std::io::Error::from)?;
            }
            self.active = Some(Active {
                file: Rc::new(file),
                path,
                first_seq: first,
                end,
                tail,
                poisoned: false,
            });
        }
        self.last_durable = outcome.last;
        self.marks
            .set_durable(self.shard, self.last_durable.unwrap_or(0));
        self.recovered = true;
        Ok(outcome.replayed_through)
    }

    async fn ensure_recovered(&mut self) -> Result<(), LogError> {
        if !self.recovered {
            let after = self.latest_snapshot_seq()?;
            self.recover(after, &mut |_, _| Ok(())).await?;
        }
        Ok(())
    }

    /// Starts a fresh segment whose first record is `first`.
    async fn start_segment(&mut self, first: u64) -> Result<(), LogError> {
        let path = segment_path(&self.dir, first);
        debug_assert!(
            self.pipeline.is_idle(),
            "a segment is closed with writes in flight"
        );
        if let Some(old) = self.active.take() {
            // Nothing acknowledged lives in an old segment that starts at `first` (everything
            // from `first` on is still pending), nor in an empty one: drop either. (A task of a
            // batch abandoned by a failure may still hold the file: it closes when that ends.)
            let _ = old.file.close_rc().await;
            if old.first_seq >= first || old.end == 0 {
                let _ = std::fs::remove_file(&old.path);
                self.segments.retain(|s| *s != old.first_seq);
            }
        }
        let spare = match self.spare.take() {
            // Never wait for a spare still being zero-filled (at high rates that would stall
            // every commit): fall back to a pre-allocated segment below.
            Some((ready, task)) if !ready.get() => {
                drop(task);
                None
            }
            Some((_, task)) => match task.await {
                Ok(file) => match file.rename(&path).await {
                    Ok(()) => Some(file),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot use spare segment");
                        let _ = file.close().await;
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "spare segment preparation failed");
                    None
                }
            },
            None => None,
        };
        let file = match spare {
            Some(f) => f,
            None => prepare_segment(path.clone(), self.segment_size, false).await?,
        };
        if let Err(e) = files::sync_dir(&self.dir).await {
            let _ = file.close().await;
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
        // Prepare the next one while this one fills.
        let ready = Rc::new(Cell::new(false));
        let flag = ready.clone();
        let (spare_path, size, zero_fill) =
            (self.dir.join(SPARE), self.segment_size, self.zero_fill);
        let task = glommio::spawn_local(async move {
            let res = prepare_segment(spare_path, size, zero_fill).await;
            flag.set(true);
            res
        });
        self.spare = Some((ready, task));
        if !self.segments.contains(&first) {
            self.segments.push(first);
            self.segments.sort_unstable();
        }
        self.active = Some(Active {
            file: Rc::new(file),
            path,
            first_seq: first,
            end: 0,
            tail: Vec::new(),
            poisoned: false,
        });
        Ok(())
    }

    /// Closes the segment being written, if any (a replay reads the files from the start and
    /// the next append opens the segment again).
    async fn close_active(&mut self) {
        if let Some(a) = self.active.take() {
            let _ = a.file.close_rc().await;
        }
    }

    /// Whether the pending batch (first seq `first`) needs a fresh segment: there is none
    /// open, or [`Active::must_rotate`] says so (`written_last`: the last seq written before).
    fn must_rotate(&self, first: u64, written_last: Option<u64>) -> bool {
        self.active.as_ref().is_none_or(|a| {
            a.must_rotate(
                first,
                self.pending.len() as u64,
                self.segment_size,
                written_last,
            )
        })
    }

    /// Starts the write of every pending record as one batch, if a slot of the pipeline is
    /// free (returns whether it did). Waits only to start a new segment (after the batches in
    /// flight, which live in the old one, are durable).
    pub async fn submit(&mut self) -> Result<bool, LogError> {
        let (Some(first), Some(last)) = (self.pending_first, self.pending_last) else {
            return Ok(false);
        };
        if !self.pipeline.can_write() {
            return Ok(false);
        }
        self.ensure_recovered().await?;
        let written_last = self.pipeline.last_seq().or(self.last_durable);
        if self.must_rotate(first, written_last) {
            self.drain().await?;
            self.start_segment(first).await?;
        }
        let Some(a) = self.active.as_mut() else {
            return Err(LogError::Io(std::io::Error::other("no active segment")));
        };
        let AppendPlan {
            base,
            new_end,
            new_tail,
        } = a.plan_append(&self.pending, std::mem::take(&mut self.spare_tail));
        let buf = files::padded_buffer(&a.file, &[&a.tail, &self.pending]);
        // The next write starts after this one's bytes; if this one fails, the file is
        // poisoned and the batch rewritten elsewhere.
        a.end = new_end;
        self.spare_tail = std::mem::replace(&mut a.tail, new_tail);
        let file = a.file.clone();
        let fresh = self.spare_buffers.pop().unwrap_or_default();
        let bytes = std::mem::replace(&mut self.pending, fresh);
        self.pending_first = None;
        self.pending_last = None;
        let batch = self.pipeline.write_started(SeqRange { first, last }, bytes);
        let tx = self.done_tx.clone();
        glommio::spawn_local(async move {
            let result = files::write_buffer(&file, buf, base).await;
            let _ = tx.unbounded_send(OpDone {
                batch,
                kind: OpKind::Write,
                file,
                result,
            });
        })
        .detach();
        Ok(true)
    }

    /// Batches written or syncing now (at most [`MAX_FLUSHES_IN_FLIGHT`]).
    pub fn in_flight(&self) -> usize {
        self.pipeline.in_flight()
    }

    /// Whether records are appended and not yet handed to a write.
    pub fn has_pending(&self) -> bool {
        self.pending_first.is_some()
    }

    /// Takes in every completion already reported, without waiting: a written batch gets its
    /// `fdatasync` issued; a synced one becomes durable once every earlier one is. Returns
    /// the last durable seq. A failed write or sync hands every batch in flight back to the
    /// pending records (written again, into a fresh segment, by the next submit) and is
    /// returned.
    pub fn poll_durable(&mut self) -> Result<Option<u64>, LogError> {
        while let Ok(done) = self.done_rx.try_recv() {
            self.complete(done)?;
        }
        Ok(self.last_durable)
    }

    /// Waits for the next completion of a write or sync in flight (if any), then takes it in
    /// with every other one reported ([`EmbeddedLog::poll_durable`]). Cancel-safe: nothing is
    /// lost if the wait is dropped.
    pub async fn wait_durable(&mut self) -> Result<Option<u64>, LogError> {
        if !self.pipeline.is_idle() {
            let done = self.done_rx.next().await.ok_or_else(|| {
                LogError::Io(std::io::Error::other("log completion channel closed"))
            })?;
            self.complete(done)?;
        }
        self.poll_durable()
    }

    /// Waits until every batch in flight is durable (or one failed).
    async fn drain(&mut self) -> Result<(), LogError> {
        while !self.pipeline.is_idle() {
            self.wait_durable().await?;
        }
        Ok(())
    }

    /// Takes in one completion (see [`EmbeddedLog::poll_durable`]).
    fn complete(&mut self, done: OpDone) -> Result<(), LogError> {
        let OpDone {
            batch,
            kind,
            file,
            result,
        } = done;
        if let Err(e) = result {
            if !self.pipeline.contains(batch) {
                // A batch already handed back by an earlier failure.
                return Ok(());
            }
            self.fail_in_flight();
            tracing::error!(shard = self.shard, error = %e, "log flush failed; will retry in a fresh segment");
            return Err(LogError::Io(e));
        }
        match kind {
            OpKind::Write => {
                if self.pipeline.write_done(batch) {
                    let tx = self.done_tx.clone();
                    glommio::spawn_local(async move {
                        let result = file.fdatasync().await.map_err(std::io::Error::from);
                        let _ = tx.unbounded_send(OpDone {
                            batch,
                            kind: OpKind::Sync,
                            file,
                            result,
                        });
                    })
                    .detach();
                }
            }
            OpKind::Sync => {
                if let Some(durable) = self.pipeline.sync_done(batch) {
                    self.commits += durable.released.len() as u64;
                    self.last_durable = Some(durable.through_seq);
                    self.marks.set_durable(self.shard, durable.through_seq);
                    for mut bytes in durable.released {
                        if self.spare_buffers.len() < MAX_FLUSHES_IN_FLIGHT {
                            bytes.clear();
                            self.spare_buffers.push(bytes);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A write or sync failed: never trust the active file again, and put every batch in
    /// flight back in front of the pending records (in order), to be rewritten.
    fn fail_in_flight(&mut self) {
        if let Some(a) = self.active.as_mut() {
            a.poisoned = true;
        }
        let requeued = self.pipeline.failed();
        let Some(oldest) = requeued.first() else {
            return;
        };
        let first = oldest.seqs.first;
        let last = requeued.last().map_or(first, |r| r.seqs.last);
        let mut bytes = Vec::with_capacity(
            requeued.iter().map(|r| r.bytes.len()).sum::<usize>() + self.pending.len(),
        );
        for r in &requeued {
            bytes.extend_from_slice(&r.bytes);
        }
        bytes.extend_from_slice(&self.pending);
        self.pending = bytes;
        self.pending_first = Some(first);
        if self.pending_last.is_none() {
            self.pending_last = Some(last);
        }
    }

    /// Makes every appended record durable with one write and one `fdatasync`, awaited here
    /// (what [`ShardLog::flush`] does; the engine's group commit). Batches submitted with
    /// [`EmbeddedLog::submit`] are waited for first.
    async fn flush_pending(&mut self) -> Result<(), LogError> {
        self.drain().await?;
        let (Some(first), Some(last)) = (self.pending_first, self.pending_last) else {
            return Ok(());
        };
        self.ensure_recovered().await?;
        if self.must_rotate(first, self.last_durable) {
            self.start_segment(first).await?;
        }
        let Some(a) = self.active.as_mut() else {
            return Err(LogError::Io(std::io::Error::other("no active segment")));
        };
        let AppendPlan {
            base,
            new_end,
            new_tail,
        } = a.plan_append(&self.pending, std::mem::take(&mut self.spare_tail));
        let res = async {
            files::write_padded(&a.file, base, &[&a.tail, &self.pending]).await?;
            a.file.fdatasync().await?;
            Ok::<(), std::io::Error>(())
        }
        .await;
        if let Err(e) = res {
            // Never trust this file again: the next flush rewrites the batch into a new one.
            a.poisoned = true;
            tracing::error!(shard = self.shard, error = %e, "log flush failed; will retry in a fresh segment");
            return Err(LogError::Io(e));
        }
        a.end = new_end;
        self.spare_tail = std::mem::replace(&mut a.tail, new_tail);
        self.commits += 1;
        self.last_durable = Some(last);
        self.marks.set_durable(self.shard, last);
        self.pending.clear();
        self.pending_first = None;
        self.pending_last = None;
        Ok(())
    }

    async fn load_snapshot_inner(&mut self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        let snaps = files::list_numbered(&self.dir, "snap")?;
        let Some((name_seq, path)) = snaps.last() else {
            return Ok(None);
        };
        let data = files::read_all(path).await?;
        let (seq, body) = files::parse_snapshot(&data)
            .map_err(|e| corrupt(format!("{}: {e}", path.display())))?;
        if seq != *name_seq {
            return Err(corrupt(format!(
                "{}: header says seq {seq}",
                path.display()
            )));
        }
        Ok(Some((seq, body.to_vec())))
    }

    async fn write_snapshot_inner(&mut self, seq: u64, snapshot: &[u8]) -> Result<(), LogError> {
        self.ensure_recovered().await?;
        let tmp = self.dir.join("snapshot.tmp");
        let path = snapshot_path(&self.dir, seq);
        let file = files::open_for_write(&tmp, true).await?;
        let header = files::snapshot_header(seq, snapshot);
        let res = async {
            files::write_padded(&file, 0, &[&header, snapshot]).await?;
            file.fdatasync().await?;
            file.rename(&path).await?;
            Ok::<(), std::io::Error>(())
        }
        .await;
        let _ = file.close().await;
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        files::sync_dir(&self.dir).await?;
        // The new snapshot is durable: drop older snapshots and fully covered segments.
        for (s, p) in files::list_numbered(&self.dir, "snap")? {
            if s < seq {
                std::fs::remove_file(&p)?;
            }
        }
        let active_first = self.active.as_ref().map(|a| a.first_seq);
        let mut keep = Vec::with_capacity(self.segments.len());
        for (i, first) in self.segments.iter().enumerate() {
            let covered = self
                .segments
                .get(i + 1)
                .is_some_and(|next| *next <= seq.saturating_add(1));
            // A log follower (the events outbox) may still need this segment's records.
            let released = self
                .segments
                .get(i + 1)
                .is_some_and(|next| *next <= self.marks.hold(self.shard));
            if covered && released && Some(*first) != active_first {
                std::fs::remove_file(segment_path(&self.dir, *first))?;
            } else {
                keep.push(*first);
            }
        }
        self.segments = keep;
        files::sync_dir(&self.dir).await?;
        Ok(())
    }
}

impl ShardLog for EmbeddedLog {
    fn load_snapshot(&mut self) -> LocalBoxFuture<'_, Result<Option<(u64, Vec<u8>)>, LogError>> {
        Box::pin(self.load_snapshot_inner())
    }

    fn replay<'a>(
        &'a mut self,
        after: u64,
        apply: &'a mut dyn FnMut(u64, &[u8]) -> Result<(), LogError>,
    ) -> LocalBoxFuture<'a, Result<u64, LogError>> {
        Box::pin(async move {
            self.close_active().await;
            self.recover(after, apply).await
        })
    }

    fn replay_records<'a>(
        &'a mut self,
        after: u64,
        apply: &'a mut RecordFn<'a>,
    ) -> LocalBoxFuture<'a, Result<u64, LogError>> {
        Box::pin(async move {
            self.close_active().await;
            self.recover_decoded(after, apply).await
        })
    }

    fn replay_archived<'a>(
        &'a mut self,
        after: u64,
        apply: &'a mut ArchivedFn<'a>,
    ) -> LocalBoxFuture<'a, Result<u64, LogError>> {
        Box::pin(async move {
            self.close_active().await;
            self.recover_archived(after, apply).await
        })
    }

    fn replay_size_hint(&mut self, after: u64) -> Option<u64> {
        // The names only (one directory listing, no file opened): the sizes on disk say
        // nothing of the last segment, which is allocated whole before it is written.
        let segs = files::list_numbered(&self.dir, "seg").ok()?;
        let firsts: Vec<u64> = segs.iter().map(|(n, _)| *n).collect();
        records_hint(&firsts, after)
    }

    fn decodes_while_reading(&self) -> bool {
        self.replay.resolve(1) == ReplayMode::PipelinedDecode
    }

    fn append(&mut self, seq: u64, record: &[u8]) {
        if let Some(prev) = self
            .pending_last
            .or(self.pipeline.last_seq())
            .or(self.last_durable)
        {
            debug_assert_eq!(seq, prev + 1, "log sequence numbers must be consecutive");
        }
        if self.pending_first.is_none() {
            self.pending_first = Some(seq);
        }
        self.pending_last = Some(seq);
        encode_frame(seq, record, &mut self.pending);
    }

    fn flush(&mut self) -> LocalBoxFuture<'_, Result<(), LogError>> {
        Box::pin(self.flush_pending())
    }

    fn write_snapshot<'a>(
        &'a mut self,
        seq: u64,
        snapshot: &'a [u8],
    ) -> LocalBoxFuture<'a, Result<(), LogError>> {
        Box::pin(self.write_snapshot_inner(seq, snapshot))
    }
}

/// About how many records after `after` segments starting at `firsts` (their first seqs,
/// ascending) hold: a sealed segment holds the seqs up to the next one's first, and the last
/// is taken to hold as many as the fullest sealed one (segments have one size), less those
/// at or before `after`. `None` without a sealed segment to go by (a short log needs no
/// hint). A hint for [`ShardLog::replay_size_hint`] (ADR 0036, thirteenth round): a cut
/// tail, a gap or a changed segment size make it wrong, never the replay.
fn records_hint(firsts: &[u64], after: u64) -> Option<u64> {
    let (&last, sealed) = firsts.split_last()?;
    let fullest = sealed
        .iter()
        .zip(firsts.iter().skip(1))
        .map(|(first, next)| next.saturating_sub(*first))
        .max()?;
    let start = after.saturating_add(1);
    let before_last = sealed
        .iter()
        .zip(firsts.iter().skip(1))
        .map(|(first, next)| next.saturating_sub(start.max(*first)))
        .sum::<u64>();
    let in_last = fullest.saturating_sub(start.saturating_sub(last));
    Some(before_last.saturating_add(in_last))
}

#[cfg(test)]
mod tests {
    use super::records_hint;

    #[test]
    fn the_size_hint_counts_sealed_segments_by_name_and_the_last_as_the_fullest() {
        assert_eq!(records_hint(&[], 0), None);
        assert_eq!(records_hint(&[1], 0), None, "no sealed segment to go by");
        // Segments of 100 records from seq 1; the last taken as full.
        assert_eq!(records_hint(&[1, 101, 201], 0), Some(300));
        // After a snapshot at seq 150: 50 of the second segment, the last whole.
        assert_eq!(records_hint(&[1, 101, 201], 150), Some(150));
        // After a snapshot inside the last segment: what is left of a full one.
        assert_eq!(records_hint(&[1, 101, 201], 250), Some(50));
        assert_eq!(records_hint(&[1, 101, 201], 1_000), Some(0));
        // Compacted segments: the first one on disk need not start at 1.
        assert_eq!(records_hint(&[401, 451, 520], 0), Some(188));
        // Saturates rather than overflows (the shard caps what it reserves).
        assert_eq!(records_hint(&[1, u64::MAX], 0), Some(u64::MAX));
    }
}
