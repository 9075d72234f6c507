//! Target `segment_recovery`: the embedded log's recovery scan
//! (`flashsale_persistence::embedded::SegmentScan`, what `EmbeddedLog::replay` runs over the
//! segment files it reads) over damaged logs and arbitrary bytes.
//!
//! The scan is fuzzed without files: the embedded log writes with O_DIRECT through glommio
//! (io_uring, one executor per thread, locked memory) and recovery syncs a data dir several
//! times, so opening a real log costs tens of milliseconds, 100–1,000 times a scan here. The file
//! I/O around the scan is covered by `persistence/tests/embedded.rs`.
//!
//! Input: a mode byte (bit 0), then
//! - **model** (bit 0 = 0): a valid log is built from the input (first seq, record sizes,
//!   segment boundaries, snapshot seq, zero padding), then damaged in one way: a torn tail, a
//!   burst of up to 4 flipped bytes, a truncated or missing segment, garbage or an out-of-place
//!   valid frame appended, or a batch rewritten into the next segment after a failed flush (see
//!   [`Damage`]). The scan's result is compared with a reference that works on whole frames.
//! - **raw** (bit 0 = 1): a snapshot seq and up to 6 segments of arbitrary bytes with arbitrary
//!   first seqs.
//!
//! Properties: the scan never panics; the records it replays have consecutive seqs from
//! `after + 1`; it reports where valid data ends and cuts exactly the non-zero bytes after
//! it; scanning again after the cut gives the same records and cuts nothing. In model mode:
//! an intact log, a torn tail or a rewritten batch are recovered without error, and the
//! records replayed are exactly the log's records from `after + 1` up to the first damaged one;
//! damage anywhere but at the tail is an error (`LogError::Corrupt`), never a silent loss.

use std::path::Path;

use flashsale_engine::log::LogError;
use flashsale_persistence::embedded::scan::{SegmentScan, TailEnd, FOLLOW_WINDOW};
use flashsale_persistence::frame::{encode_frame, FRAME_HEADER_LEN};

use crate::input::Input;

/// Most records of a model log.
pub const MAX_RECORDS: usize = 48;
/// Most segments of a raw input.
pub const MAX_RAW_SEGMENTS: usize = 6;

/// Runs one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    if input.u8() & 1 == 0 {
        model(&mut input);
    } else {
        raw(&mut input);
    }
}

/// One segment file: the first seq in its name, its bytes (damaged or not), and the frames the
/// model wrote in it (`written`: the bytes as written, before any damage).
#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    data: Vec<u8>,
    written: Vec<u8>,
    known: Vec<Known>,
}

/// A valid frame the model wrote at `off`, `len` bytes long.
#[derive(Debug, Clone, Copy)]
struct Known {
    off: usize,
    len: usize,
    seq: u64,
}

/// A replayed record: its seq and a fingerprint of its bytes (length and CRC-32C), so that
/// records compare without copying them.
type Rec = (u64, usize, u32);

fn rec(seq: u64, record: &[u8]) -> Rec {
    (seq, record.len(), crc32c::crc32c(record))
}

impl Known {
    fn end(&self) -> usize {
        self.off + self.len
    }
}

impl Segment {
    fn new(first: u64) -> Segment {
        Segment {
            first,
            data: Vec::new(),
            written: Vec::new(),
            known: Vec::new(),
        }
    }

    fn push_frame(&mut self, seq: u64, record: &[u8]) {
        let off = self.data.len();
        encode_frame(seq, record, &mut self.data);
        let len = self.data.len() - off;
        self.written.truncate(off);
        self.written.extend_from_slice(&self.data[off..]);
        self.known.push(Known { off, len, seq });
    }

    /// The record bytes of `k` as written.
    fn record(&self, k: &Known) -> &[u8] {
        &self.written[k.off + FRAME_HEADER_LEN..k.end()]
    }

    /// Whether the frame `k` is still in `data`, unchanged.
    fn intact(&self, k: &Known) -> bool {
        self.data.get(k.off..k.end()) == self.written.get(k.off..k.end())
    }
}

/// What a scan recovered: the replayed records, what `replay` returns, where the last segment's
/// valid data ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recovered {
    records: Vec<Rec>,
    through: u64,
    tail: Option<TailEnd>,
}

/// Runs the real scan over `segments`, in order, as `EmbeddedLog::replay` does.
fn scan(segments: &[Segment], after: u64) -> Result<Recovered, LogError> {
    let mut scan = SegmentScan::new(0, after);
    let mut records = Vec::new();
    let mut tail = None;
    {
        let mut apply = |seq: u64, record: &[u8]| -> Result<(), LogError> {
            records.push(rec(seq, record));
            Ok(())
        };
        for (i, seg) in segments.iter().enumerate() {
            let next = segments.get(i + 1).map(|s| s.first);
            let end = scan.segment(
                seg.first,
                next,
                Path::new("fuzz.seg"),
                &seg.data,
                &mut apply,
            )?;
            assert_eq!(
                end.is_some(),
                next.is_none(),
                "only the last segment reports where the writer continues"
            );
            tail = end;
        }
    }
    Ok(Recovered {
        records,
        through: scan.replayed_through(),
        tail,
    })
}

/// Properties every successful scan has, whatever the input; then scans again after the cut.
fn check_recovered(segments: &[Segment], after: u64, got: &Recovered) {
    for (i, (seq, _, _)) in got.records.iter().enumerate() {
        let want = after.checked_add(1 + i as u64);
        assert_eq!(
            Some(*seq),
            want,
            "replayed seqs must run from after + 1 = {} without gaps: {:?}",
            after.wrapping_add(1),
            got.records.iter().map(|r| r.0).collect::<Vec<_>>()
        );
    }
    assert_eq!(
        got.through,
        got.records.last().map_or(after, |r| r.0),
        "replay returns the last replayed seq, or `after`"
    );
    let Some(last) = segments.last() else {
        assert_eq!(got.tail, None, "no segment, no writer position");
        return;
    };
    let Some(tail) = got.tail else {
        panic!("the last segment has no writer position");
    };
    let Some(rest) = last.data.get(tail.end..) else {
        panic!("writer position {} past the segment end", tail.end);
    };
    assert_eq!(
        tail.cut,
        rest.iter().any(|&b| b != 0),
        "a cut is needed exactly when non-zero bytes follow the last valid record"
    );
    // Recovery truncates the segment at `end` and pre-allocates it again (zeros): a second
    // recovery must find the same records and nothing to cut.
    let mut cut = segments.to_vec();
    if let Some(seg) = cut.last_mut() {
        seg.data.truncate(tail.end);
        seg.data.resize(tail.end + 64, 0);
    }
    match scan(&cut, after) {
        Ok(again) => assert_eq!(
            again,
            Recovered {
                tail: Some(TailEnd {
                    end: tail.end,
                    cut: false
                }),
                ..got.clone()
            },
            "recovery after the cut differs"
        ),
        Err(e) => panic!("recovery after the cut fails: {e}"),
    }
}

/// Raw mode: arbitrary segment bytes and names.
fn raw(input: &mut Input<'_>) {
    let after = input.u64();
    let count = usize::from(input.u8()) % (MAX_RAW_SEGMENTS + 1);
    let mut segments = Vec::with_capacity(count);
    for i in 0..count {
        let first = input.u64();
        let data = if i + 1 == count {
            input.rest().to_vec()
        } else {
            let len = usize::from(input.u16());
            input.bytes(len).to_vec()
        };
        segments.push(Segment {
            first,
            data,
            written: Vec::new(),
            known: Vec::new(),
        });
    }
    // As `list_numbered` lists them: by first seq, one file per name.
    segments.sort_by_key(|s| s.first);
    segments.dedup_by_key(|s| s.first);
    if let Ok(got) = scan(&segments, after) {
        check_recovered(&segments, after, &got);
    }
}

/// The one kind of damage a model log gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The log as written.
    None,
    /// The last segment ends mid-write (then zero padding, as pre-allocated).
    TornTail,
    /// Up to 4 consecutive bytes of one segment flipped (after padding).
    Burst,
    /// Arbitrary bytes after the last segment's records.
    Garbage,
    /// One segment (any) truncated.
    Truncate,
    /// One segment file missing.
    Drop,
    /// A valid frame with an arbitrary seq after one segment's records.
    ExtraFrame,
    /// The first records of the next segment also at the end of one segment, the last copy
    /// possibly torn: a batch rewritten into a fresh segment after a failed flush.
    Rewrite,
}

impl Damage {
    /// The damage selected by a byte of input.
    pub fn from_byte(b: u8) -> Damage {
        match b % 8 {
            0 => Damage::None,
            1 => Damage::TornTail,
            2 => Damage::Burst,
            3 => Damage::Garbage,
            4 => Damage::Truncate,
            5 => Damage::Drop,
            6 => Damage::ExtraFrame,
            _ => Damage::Rewrite,
        }
    }
}

/// The bytes of the model record `seq` (`len` ≥ 1 bytes, none zero).
fn record(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| 1 + (seq.wrapping_add(j as u64) % 255) as u8)
        .collect()
}

/// Model mode: a valid log, damaged once, scanned, compared with [`reference`].
fn model(input: &mut Input<'_>) {
    let base = match input.u8() % 4 {
        0 => 1,
        1 => 1 + u64::from(input.u16()),
        2 => u64::MAX - u64::from(input.u8()),
        _ => input.u64().max(1),
    };
    // Records base..=u64::MAX at most.
    let room = usize::try_from(u64::MAX - base).unwrap_or(usize::MAX);
    let n = (usize::from(input.u8()) % (MAX_RECORDS + 1)).min(room.saturating_add(1));
    let sizes: Vec<usize> = (0..n).map(|_| 1 + usize::from(input.u8() % 64)).collect();
    let splits = input.u64();
    let after = (base - 1).saturating_add(u64::from(input.u8()) % (n as u64 + 2));
    let pad = input.u8();
    let damage = Damage::from_byte(input.u8());

    let mut segments: Vec<Segment> = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let seq = base + i as u64;
        if i == 0 || (i < 63 && (splits >> i) & 1 == 1) {
            segments.push(Segment::new(seq));
        }
        if let Some(seg) = segments.last_mut() {
            seg.push_frame(seq, &record(seq, *size));
        }
    }
    let originals: Vec<Rec> = segments
        .iter()
        .flat_map(|s| s.known.iter().map(|k| rec(k.seq, s.record(k))))
        .collect();
    // A fresh log's first segment, or a segment created by a rotation just before a crash.
    if splits >> 63 == 1 {
        if let Some(next) = originals.last().map_or(Some(base), |r| r.0.checked_add(1)) {
            segments.push(Segment::new(next));
        }
    }

    let at = input.u32() as usize;
    let pick = usize::from(input.u8());
    match damage {
        Damage::None | Damage::Burst => {}
        Damage::TornTail => {
            if let Some(seg) = segments.last_mut() {
                seg.data.truncate(at % (seg.data.len() + 1));
            }
        }
        Damage::Garbage => {
            if let Some(seg) = segments.last_mut() {
                let len = at % 256;
                seg.data.extend_from_slice(input.bytes(len));
            }
        }
        Damage::Truncate => {
            let count = segments.len();
            if let Some(seg) = segments.get_mut(pick % count.max(1)) {
                seg.data.truncate(at % (seg.data.len() + 1));
            }
        }
        Damage::Drop => {
            if !segments.is_empty() {
                segments.remove(pick % segments.len());
            }
        }
        Damage::ExtraFrame => {
            let seq = match input.u8() % 4 {
                0 => originals.last().map_or(base, |r| r.0.wrapping_add(1)),
                1 => originals.last().map_or(base, |r| r.0),
                2 => u64::from(input.u8()),
                _ => input.u64(),
            };
            let count = segments.len();
            if let Some(seg) = segments.get_mut(pick % count.max(1)) {
                seg.push_frame(seq, &record(seq, 1 + at % 64));
            }
        }
        Damage::Rewrite => {
            if segments.len() >= 2 {
                let k = pick % (segments.len() - 1);
                let next = &segments[k + 1];
                let copies: Vec<(u64, Vec<u8>)> = next
                    .known
                    .iter()
                    .take(1 + at % 4)
                    .map(|c| (c.seq, next.record(c).to_vec()))
                    .collect();
                let seg = &mut segments[k];
                let written = seg.data.len();
                for (seq, record) in &copies {
                    seg.push_frame(*seq, record);
                }
                // The failed write may have reached the disk only in part.
                let torn = usize::from(input.u8() % 32);
                let keep = seg.data.len().saturating_sub(torn).max(written);
                seg.data.truncate(keep);
            }
        }
    }
    // Pre-allocated segments read as zeros after the written data.
    let count = segments.len();
    for (i, seg) in segments.iter_mut().enumerate() {
        let zeros = if i + 1 == count {
            usize::from(pad >> 4) * 64
        } else {
            usize::from(pad & 15) * 16
        };
        seg.data.resize(seg.data.len() + zeros, 0);
    }
    if damage == Damage::Burst {
        let count = segments.len();
        if let Some(seg) = segments.get_mut(pick % count.max(1)) {
            if !seg.data.is_empty() {
                let start = at % seg.data.len();
                let len = 1 + usize::from(input.u8() % 4);
                let end = (start + len).min(seg.data.len());
                for b in &mut seg.data[start..end] {
                    *b ^= input.u8();
                }
            }
        }
    }

    let got = scan(&segments, after);
    if let Ok(got) = &got {
        check_recovered(&segments, after, got);
        // Nothing acknowledged is lost without an error: whatever the damage, the records
        // replayed are the log's own records, in order, up to the damage.
        let want: Vec<&Rec> = originals.iter().filter(|r| r.0 > after).collect();
        let common = got.records.len().min(want.len());
        for (g, w) in got.records.iter().zip(&want).take(common) {
            assert_eq!(g, *w, "a replayed record is not the log's record");
        }
    }
    if matches!(damage, Damage::None | Damage::TornTail | Damage::Rewrite) {
        let Ok(got) = &got else {
            panic!("{damage:?} must be recovered without error: {got:?}");
        };
        if damage != Damage::TornTail {
            let want: Vec<Rec> = originals.iter().filter(|r| r.0 > after).copied().collect();
            assert_eq!(got.records, want, "{damage:?}: records lost");
        }
    }
    if damage == Damage::Garbage {
        // Garbage may hold a forged valid frame: only an error or a full recovery is checked.
        if let Ok(got) = &got {
            let want = originals.iter().filter(|r| r.0 > after).count();
            assert!(
                got.records.len() >= want,
                "garbage after the log lost records"
            );
        }
        return;
    }
    match (got, reference(&segments, after)) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "{damage:?}: scan differs from reference"),
        (Err(LogError::Corrupt(_)), Err(_)) => {}
        (got, want) => panic!("{damage:?}: scan gave {got:?}, reference {want:?}"),
    }
}

/// Recovery as ADR 0004 states it, over the frames the model wrote (a frame is readable iff
/// its bytes are intact; damaged bytes never form a valid frame):
/// - segments in order; every record has the next seq; before the first segment and between
///   segments, missing seqs are allowed only where the snapshot (`after`) covers them;
/// - in an older segment, records at or past the next segment's first seq are superseded; a
///   record missing before the next segment is corruption unless the snapshot covers it;
/// - in the last segment, the first unreadable record ends the log: a torn tail (cut if not
///   zeros) when no valid record with a later seq follows, corruption otherwise.
fn reference(segments: &[Segment], after: u64) -> Result<Recovered, String> {
    let mut last: Option<u64> = None;
    let mut records = Vec::new();
    let mut tail = None;
    for (i, seg) in segments.iter().enumerate() {
        let first = seg.first;
        let next = segments.get(i + 1).map(|s| s.first);
        if first == 0 {
            return Err("segment starts at seq 0".into());
        }
        let prev = last.unwrap_or(after);
        if first - 1 > prev && first - 1 > after {
            return Err(format!("records missing before segment {first}"));
        }
        if last.is_some_and(|l| first - 1 > l) {
            last = Some(first - 1);
        }
        let readable = |off: usize| seg.known.iter().find(|k| k.off == off && seg.intact(k));
        let mut pos = 0;
        while let Some(k) = readable(pos) {
            if next.is_some_and(|n| k.seq >= n) {
                break;
            }
            let expected = match last {
                None => first,
                Some(l) => l
                    .checked_add(1)
                    .ok_or_else(|| format!("record {} after seq u64::MAX", k.seq))?,
            };
            if k.seq != expected {
                return Err(format!("expected seq {expected}, found {}", k.seq));
            }
            if k.seq > after {
                records.push(rec(k.seq, seg.record(k)));
            }
            last = Some(k.seq);
            pos = k.end();
        }
        match next {
            Some(n) => {
                let reached = last.map_or(first, |l| l + 1);
                if reached < n && n - 1 > after {
                    return Err(format!("record {reached} unreadable before segment {n}"));
                }
            }
            None => {
                let cut = seg.data[pos..].iter().any(|&b| b != 0);
                let good = last.unwrap_or(first - 1);
                let follows = seg.known.iter().any(|k| {
                    k.off >= pos && k.seq > good && k.seq - good <= FOLLOW_WINDOW && seg.intact(k)
                });
                if cut && follows {
                    return Err(format!(
                        "corrupt record after seq {good} followed by valid ones"
                    ));
                }
                tail = Some(TailEnd { end: pos, cut });
            }
        }
    }
    Ok(Recovered {
        records,
        through: last.unwrap_or(after).max(after),
        tail,
    })
}
