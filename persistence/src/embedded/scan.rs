//! Recovery's scan of one shard's segments, without I/O: which records to replay, where the
//! writer continues and whether a torn tail must be cut (see ADR 0004, "Recovery").
//!
//! [`EmbeddedLog`](super::EmbeddedLog) reads the segment files in order and feeds their bytes
//! here; the fuzz target `segment_recovery` feeds arbitrary and damaged segments the same way.

use std::ops::Range;
use std::path::Path;

use flashsale_engine::log::{LogError, ReplayFn};
use flashsale_protocol::ShardId;

use crate::frame::{parse_frame, valid_frame_follows, Parsed};

/// How far past the last good seq a frame found after a bad one may be and still count as
/// "a valid record follows" (anything further is treated as noise).
pub const FOLLOW_WINDOW: u64 = u32::MAX as u64;

/// Where the scan of the last segment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailEnd {
    /// Byte offset just after the last valid record: the writer continues here.
    pub end: usize,
    /// Non-zero bytes follow `end` that are no valid record and are followed by none: a torn
    /// (never acknowledged) tail that recovery must cut before writing.
    pub cut: bool,
}

/// The state of a recovery scan across the segments of one shard, fed in ascending order of
/// their first sequence numbers (each segment at most once).
#[derive(Debug)]
pub struct SegmentScan {
    shard: ShardId,
    /// Records with `seq <= after` are covered by a snapshot: checked, not replayed.
    after: u64,
    /// Last sequence number seen so far.
    last: Option<u64>,
}

fn corrupt(msg: String) -> LogError {
    LogError::Corrupt(msg)
}

impl SegmentScan {
    /// A scan of `shard`'s segments that replays records with `seq > after`.
    pub fn new(shard: ShardId, after: u64) -> SegmentScan {
        SegmentScan {
            shard,
            after,
            last: None,
        }
    }

    /// Last sequence number found in the segments scanned so far (covered ones included).
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// What `replay` returns: the last sequence number seen, or `after` if none is later.
    pub fn replayed_through(&self) -> u64 {
        self.last.unwrap_or(self.after).max(self.after)
    }

    /// Scans the segment starting at `first` (`data` is its whole content; `path` only names it
    /// in errors), calling `apply` for every valid record with `seq > after`, in order. `next`
    /// is the first seq of the following segment, `None` for the last one.
    ///
    /// Returns where the last segment's valid records end (`None` for the others), or
    /// [`LogError::Corrupt`] when records are missing or damaged anywhere but in a torn tail.
    pub fn segment(
        &mut self,
        first: u64,
        next: Option<u64>,
        path: &Path,
        data: &[u8],
        apply: &mut ReplayFn<'_>,
    ) -> Result<Option<TailEnd>, LogError> {
        self.segment_ranges(first, next, path, data, &mut |seq, range| {
            apply(seq, &data[range])
        })
    }

    /// Like [`SegmentScan::segment`], but hands `on_record` each valid record's byte range in
    /// `data` instead of the bytes, so a caller can pass the positions to another thread
    /// (the pipelined replay of `embedded::replay`). Every check is the same.
    pub fn segment_ranges(
        &mut self,
        first: u64,
        next: Option<u64>,
        path: &Path,
        data: &[u8],
        on_record: &mut dyn FnMut(u64, Range<usize>) -> Result<(), LogError>,
    ) -> Result<Option<TailEnd>, LogError> {
        if first == 0 {
            return Err(corrupt(format!(
                "{}: segment starts at seq 0",
                path.display()
            )));
        }
        debug_assert!(
            next.is_none_or(|n| n > first),
            "segments are fed in ascending order"
        );
        // A gap between segments, or before the first one, is fine only where a snapshot
        // covers it (segments are deleted only once a snapshot covers all their records).
        if self.last.is_none() && first - 1 > self.after {
            return Err(corrupt(format!(
                "shard {}: records {}..{} missing before {} (the log starts after the snapshot)",
                self.shard,
                self.after + 1,
                first - 1,
                path.display()
            )));
        }
        if let Some(l) = self.last {
            if first > l + 1 && first - 1 > self.after {
                return Err(corrupt(format!(
                    "shard {}: records {}..{} missing before {}",
                    self.shard,
                    l + 1,
                    first - 1,
                    path.display()
                )));
            }
            if first > l + 1 {
                self.last = Some(first - 1);
            }
        }
        let mut pos = 0usize;
        let mut bad_stop = false;
        loop {
            match parse_frame(&data[pos..]) {
                Parsed::Frame {
                    seq,
                    start,
                    frame_len,
                } => {
                    if next.is_some_and(|n| seq >= n) {
                        // Superseded: rewritten into the next segment after a failed flush.
                        break;
                    }
                    let expected = match self.last {
                        None => first,
                        Some(l) => l.checked_add(1).ok_or_else(|| {
                            corrupt(format!(
                                "{} offset {pos}: record {seq} after the last possible seq {l}",
                                path.display()
                            ))
                        })?,
                    };
                    if seq != expected {
                        return Err(corrupt(format!(
                            "{} offset {pos}: expected seq {expected}, found {seq}",
                            path.display()
                        )));
                    }
                    if seq > self.after {
                        on_record(seq, pos + start..pos + frame_len)?;
                    }
                    self.last = Some(seq);
                    pos += frame_len;
                }
                Parsed::End => {
                    bad_stop = !data[pos..].iter().all(|&b| b == 0);
                    break;
                }
                Parsed::Invalid => {
                    bad_stop = true;
                    break;
                }
            }
        }
        match next {
            Some(n) => {
                let reached = self.last.map_or(first, |l| l + 1);
                if reached < n && n - 1 > self.after {
                    return Err(corrupt(format!(
                        "{} offset {pos}: unreadable record at seq {reached} before \
                         later segment {n}",
                        path.display()
                    )));
                }
                Ok(None)
            }
            None => {
                if bad_stop {
                    let good = self.last.unwrap_or(first - 1);
                    if valid_frame_follows(&data[pos..], good, FOLLOW_WINDOW) {
                        return Err(corrupt(format!(
                            "{} offset {pos}: corrupt record after seq {good} followed by \
                             valid records",
                            path.display()
                        )));
                    }
                }
                Ok(Some(TailEnd {
                    end: pos,
                    cut: bad_stop,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    fn segment(seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in seqs {
            encode_frame(seq, &seq.to_le_bytes(), &mut out);
        }
        out.resize(out.len() + 64, 0);
        out
    }

    /// Scans `segments` (first seq, bytes) after `after`; the replayed seqs or the error.
    fn scan(after: u64, segments: &[(u64, Vec<u8>)]) -> Result<Vec<u64>, LogError> {
        let mut scan = SegmentScan::new(0, after);
        let mut seqs = Vec::new();
        let mut apply = |seq: u64, _: &[u8]| {
            seqs.push(seq);
            Ok(())
        };
        for (i, (first, data)) in segments.iter().enumerate() {
            let next = segments.get(i + 1).map(|(n, _)| *n);
            scan.segment(*first, next, Path::new("x.seg"), data, &mut apply)?;
        }
        Ok(seqs)
    }

    #[test]
    fn segments_replay_after_the_snapshot() {
        let segs = [(1, segment(1..=4)), (5, segment(5..=9))];
        assert_eq!(scan(0, &segs).ok(), Some((1..=9).collect()));
        assert_eq!(scan(6, &segs).ok(), Some(vec![7, 8, 9]));
        // The first segment may start anywhere up to the snapshot's next seq.
        assert_eq!(scan(4, &segs[1..]).ok(), Some((5..=9).collect()));
    }

    #[test]
    fn a_missing_first_segment_is_an_error() {
        // Found by the `segment_recovery` fuzz target: without a snapshot covering them, the
        // records of a deleted first segment were silently skipped.
        let segs = [(5, segment(5..=9))];
        match scan(0, &segs) {
            Err(LogError::Corrupt(msg)) => assert!(msg.contains("records 1..4 missing"), "{msg}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(matches!(scan(3, &segs), Err(LogError::Corrupt(_))));
    }

    #[test]
    fn a_record_after_the_last_possible_seq_is_an_error() {
        // Found by the `segment_recovery` fuzz target: `last + 1` overflowed (a panic with
        // overflow checks, a wrap to seq 0 without).
        let mut seg = Vec::new();
        encode_frame(u64::MAX, b"last", &mut seg);
        encode_frame(0, b"wrapped", &mut seg);
        match scan(u64::MAX - 1, &[(u64::MAX, seg)]) {
            Err(LogError::Corrupt(msg)) => assert!(msg.contains("last possible seq"), "{msg}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
