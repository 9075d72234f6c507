//! Reading the embedded log from outside its shards, for consumers that follow it (the events
//! outbox): only records already made durable by a group commit, in bounded batches, and a
//! hold that keeps segments a consumer still needs from being removed after a snapshot.
//!
//! Each shard publishes its last durable seq into [`TailMarks`] after every successful flush
//! (and after recovery); a consumer publishes the first seq it still needs per shard
//! ([`TailMarks::hold`]). A segment is removed only when a snapshot covers it *and* every
//! record in it is below the hold. See `docs/adr/0024-events-outbox.md`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flashsale_protocol::ShardId;

use super::files::{list_numbered, segment_path};
use crate::frame::{parse_frame, Parsed, FRAME_HEADER_LEN, MAX_RECORD_LEN};
use crate::PersistenceError;

/// Most shards whose marks are kept (a reservation's shard mask is 64 bits wide).
pub const MAX_TAIL_SHARDS: usize = 64;

/// Bytes read from a segment at a time (a frame longer than this is read whole). One buffer
/// per reader, reused by every read (a fresh zeroed megabyte per read cost more than the
/// records it returned when the reader follows the head in small batches).
pub const CHUNK_BYTES: usize = 256 << 10;

/// Per shard: the last durable seq (published by the shard) and the first seq a consumer
/// still needs (published by the consumer; `u64::MAX` = none).
#[derive(Debug)]
pub struct TailMarks {
    durable: [AtomicU64; MAX_TAIL_SHARDS],
    hold: [AtomicU64; MAX_TAIL_SHARDS],
}

impl Default for TailMarks {
    fn default() -> Self {
        TailMarks {
            durable: std::array::from_fn(|_| AtomicU64::new(0)),
            hold: std::array::from_fn(|_| AtomicU64::new(u64::MAX)),
        }
    }
}

impl TailMarks {
    /// The last durable seq of `shard` (0 = none known yet).
    pub fn durable(&self, shard: ShardId) -> u64 {
        self.durable
            .get(usize::from(shard))
            .map_or(0, |a| a.load(Ordering::Acquire))
    }

    /// Called by the shard's log after a successful flush or recovery.
    pub fn set_durable(&self, shard: ShardId, seq: u64) {
        if let Some(a) = self.durable.get(usize::from(shard)) {
            a.fetch_max(seq, Ordering::AcqRel);
        }
    }

    /// The first seq of `shard` some consumer still needs (`u64::MAX` = none).
    pub fn hold(&self, shard: ShardId) -> u64 {
        self.hold
            .get(usize::from(shard))
            .map_or(u64::MAX, |a| a.load(Ordering::Acquire))
    }

    /// Sets the first seq of `shard` still needed; segments holding it or later stay.
    pub fn set_hold(&self, shard: ShardId, first_needed: u64) {
        if let Some(a) = self.hold.get(usize::from(shard)) {
            a.store(first_needed, Ordering::Release);
        }
    }
}

/// Where a reader stands in one shard's segments.
#[derive(Debug, Clone)]
struct Cursor {
    /// First seq of the segment being read.
    segment_first: u64,
    /// Byte offset of the next frame in it.
    offset: u64,
    /// Seq of the last record passed.
    last_seq: u64,
}

/// Where one frame that a read returned starts. A reader that asks again from inside its last
/// batch (a consumer that used only part of it, like the events ledger keeper stopping at its
/// target) resumes there, instead of parsing and checksumming its segment from the start.
#[derive(Debug, Clone, Copy)]
struct FramePos {
    /// First seq of the segment holding the frame.
    segment_first: u64,
    /// Byte offset of the frame in that segment.
    offset: u64,
    /// The frame's seq.
    seq: u64,
}

impl FramePos {
    /// A cursor that reads the frame at `self` next.
    fn cursor(self) -> Cursor {
        Cursor {
            segment_first: self.segment_first,
            offset: self.offset,
            last_seq: self.seq - 1,
        }
    }
}

/// The frame of `positions` (one read's returned frames, consecutive seqs) whose seq is
/// `after + 1`, if that read returned it.
fn resume_in(positions: &[FramePos], after: u64) -> Option<FramePos> {
    let first = positions.first()?.seq;
    let index = usize::try_from(after.checked_add(1)?.checked_sub(first)?).ok()?;
    let pos = *positions.get(index)?;
    debug_assert_eq!(pos.seq, after + 1, "a read returns consecutive seqs");
    (pos.seq == after + 1).then_some(pos)
}

/// A reader of the durable records of an embedded log's shards (blocking file reads: call it
/// from a blocking thread). Keeps one cursor per shard so consecutive reads are sequential.
#[derive(Debug)]
pub struct EmbeddedTail {
    dir: PathBuf,
    marks: Arc<TailMarks>,
    cursors: Vec<Option<Cursor>>,
    /// Per shard, where each frame of the last read started (at most that read's
    /// `max_records`): a read again from inside it resumes without a scan.
    returned: Vec<Vec<FramePos>>,
    /// The read buffer ([`CHUNK_BYTES`], allocated on first use).
    buf: Vec<u8>,
}

impl EmbeddedTail {
    /// A reader of the shard directories in `data_dir`, bounded by `marks`.
    pub fn new(data_dir: &Path, marks: Arc<TailMarks>) -> EmbeddedTail {
        EmbeddedTail {
            dir: data_dir.to_path_buf(),
            marks,
            cursors: vec![None; MAX_TAIL_SHARDS],
            returned: vec![Vec::new(); MAX_TAIL_SHARDS],
            buf: Vec::new(),
        }
    }

    /// The marks this reader is bounded by.
    pub fn marks(&self) -> &Arc<TailMarks> {
        &self.marks
    }

    /// Up to `max_records` durable records of `shard` with `seq > after`, in order, as
    /// `(seq, encoded record)`. Empty when none is durable yet. An error when the records after
    /// `after` are no longer on disk (removed before the hold covered them) or unreadable.
    pub fn read(
        &mut self,
        shard: ShardId,
        after: u64,
        max_records: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, PersistenceError> {
        let durable = self.marks.durable(shard);
        let mut out = Vec::new();
        if durable <= after || max_records == 0 {
            return Ok(out);
        }
        if usize::from(shard) >= self.cursors.len() {
            return Err(PersistenceError::Config(format!(
                "shard {shard} beyond {MAX_TAIL_SHARDS}"
            )));
        }
        if self.buf.len() != CHUNK_BYTES {
            self.buf = vec![0u8; CHUNK_BYTES];
        }
        let mut buf = std::mem::take(&mut self.buf);
        let res = self.read_with(shard, after, max_records, durable, &mut buf, &mut out);
        self.buf = buf;
        res.map(|()| out)
    }

    /// [`EmbeddedTail::read`] with its buffer and output.
    fn read_with(
        &mut self,
        shard: ShardId,
        after: u64,
        max_records: usize,
        durable: u64,
        chunk: &mut [u8],
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), PersistenceError> {
        let shard_dir = self.dir.join(format!("shard-{shard:04}"));
        let slot = usize::from(shard);
        let mut positions = std::mem::take(&mut self.returned[slot]);
        let mut cursor = match self.cursors[slot].take() {
            Some(c) if c.last_seq == after => c,
            _ => match resume_in(&positions, after) {
                // Its segment may have been removed since (below every hold): then seek.
                Some(pos) if segment_path(&shard_dir, pos.segment_first).exists() => pos.cursor(),
                _ => seek(&shard_dir, after)?,
            },
        };
        positions.clear();
        'segments: loop {
            let path = segment_path(&shard_dir, cursor.segment_first);
            let io = |source| PersistenceError::Io {
                op: "reading log segment",
                path: path.clone(),
                source,
            };
            let file = File::open(&path).map_err(io)?;
            loop {
                let n = read_at(&file, chunk, cursor.offset).map_err(io)?;
                let buf = &chunk[..n];
                let mut pos = 0usize;
                let mut progressed = false;
                let stop = loop {
                    let rest = &buf[pos..];
                    match parse_frame(rest) {
                        Parsed::Frame {
                            seq,
                            start,
                            frame_len,
                        } => {
                            if seq > durable || seq != cursor.last_seq + 1 {
                                break true;
                            }
                            if seq > after {
                                out.push((seq, rest[start..frame_len].to_vec()));
                                positions.push(FramePos {
                                    segment_first: cursor.segment_first,
                                    offset: cursor.offset,
                                    seq,
                                });
                            }
                            cursor.last_seq = seq;
                            cursor.offset += frame_len as u64;
                            pos += frame_len;
                            progressed = true;
                            if out.len() >= max_records || seq == durable {
                                break true;
                            }
                        }
                        // A full chunk may end inside a frame, even inside its header
                        // (whose first bytes may be zeros): read again from that frame. Only
                        // a parse at the start of a chunk tells the end of the records, a
                        // torn tail or a frame longer than a chunk.
                        Parsed::End => break !(n == CHUNK_BYTES && pos > 0),
                        Parsed::Invalid => {
                            if n == CHUNK_BYTES {
                                break false;
                            }
                            break true;
                        }
                    }
                };
                if out.len() >= max_records || cursor.last_seq >= durable {
                    break 'segments;
                }
                if !stop && progressed {
                    continue;
                }
                if !stop {
                    // A single frame longer than a chunk: read it whole.
                    let len = buf
                        .get(pos..pos + 4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map_or(0, |b| u32::from_le_bytes(b) as usize);
                    if len == 0 || len > MAX_RECORD_LEN {
                        break;
                    }
                    let mut big = vec![0u8; FRAME_HEADER_LEN + len];
                    let got = read_at(&file, &mut big, cursor.offset).map_err(io)?;
                    big.truncate(got);
                    match parse_frame(&big) {
                        Parsed::Frame {
                            seq,
                            start,
                            frame_len,
                        } if seq <= durable && seq == cursor.last_seq + 1 => {
                            if seq > after {
                                out.push((seq, big[start..frame_len].to_vec()));
                                positions.push(FramePos {
                                    segment_first: cursor.segment_first,
                                    offset: cursor.offset,
                                    seq,
                                });
                            }
                            cursor.last_seq = seq;
                            cursor.offset += frame_len as u64;
                            continue;
                        }
                        _ => break,
                    }
                }
                break;
            }
            // The end of this segment's records: the next segment continues the log.
            let next = cursor.last_seq + 1;
            if segment_path(&shard_dir, next).exists() && next != cursor.segment_first {
                cursor = Cursor {
                    segment_first: next,
                    offset: 0,
                    last_seq: cursor.last_seq,
                };
                continue 'segments;
            }
            break;
        }
        if out.is_empty() && cursor.last_seq < durable && cursor.last_seq == after {
            // Durable records exist that the segments do not show: never skip silently.
            self.cursors[slot] = None;
            self.returned[slot] = positions;
            return Err(PersistenceError::Corrupt(format!(
                "shard {shard}: durable up to seq {durable} but no readable record after {after}"
            )));
        }
        self.cursors[slot] = Some(cursor);
        self.returned[slot] = positions;
        Ok(())
    }
}

/// Reads as much of `buf` as the file has from `offset` (short at end of file).
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A cursor at the start of the segment holding `after + 1`.
fn seek(shard_dir: &Path, after: u64) -> Result<Cursor, PersistenceError> {
    let segments = list_numbered(shard_dir, "seg").map_err(|source| PersistenceError::Io {
        op: "listing log segments",
        path: shard_dir.to_path_buf(),
        source,
    })?;
    let want = after.saturating_add(1);
    let Some((first, _)) = segments.iter().rev().find(|(first, _)| *first <= want) else {
        return Err(PersistenceError::Corrupt(format!(
            "{}: the records from seq {want} are no longer in the log (oldest segment starts at {})",
            shard_dir.display(),
            segments.first().map_or(0, |(f, _)| *f)
        )));
    };
    Ok(Cursor {
        segment_first: *first,
        offset: 0,
        last_seq: first.saturating_sub(1),
    })
}
