//! The pipelined replay (a reader thread checking segments, the caller applying) reaches
//! exactly what the sequential replay reaches: the same records in the same order, the same
//! writer position and torn-tail cut, and the same error after the same records (ADR 0036).

mod common;

use std::path::{Path, PathBuf};

use common::{
    append_flush, expect, replay_all, run, varied_record, write_segments, write_segments_of,
};
use flashsale_engine::log::{LogBackend, LogError};
use flashsale_persistence::embedded::replay::BATCH_RECORDS;
use flashsale_persistence::embedded::{
    replay_archived, replay_decoded, replay_segments, ReplayMode, ReplayOutcome,
};
use flashsale_persistence::frame::{parse_frame, Parsed};
use flashsale_persistence::{EmbeddedBackend, EmbeddedOptions};
use flashsale_protocol::{
    encode_record, Event, LogRecord, RecordView, ReleaseReason, ReservationId,
};

/// A replay's outcome as compared: `last`, `replayed_through`, and the last segment's
/// (first, end, cut); or the error's text.
type Summary = Result<(Option<u64>, u64, Option<(u64, usize, bool)>), String>;

/// The comparable [`Summary`] of a replay's result.
fn summary(result: Result<ReplayOutcome, LogError>) -> Summary {
    result
        .map(|o| {
            (
                o.last,
                o.replayed_through,
                o.last_segment.map(|l| (l.first, l.end.end, l.end.cut)),
            )
        })
        .map_err(|e| e.to_string())
}

/// Cuts the last segment of `segments` `keep` bytes into its last frame (a torn write);
/// returns the frame starts of that segment before the cut.
fn tear_last_record(segments: &[(u64, PathBuf)], keep: usize) -> Vec<usize> {
    let (_, last_path) = &segments[segments.len() - 1];
    let starts = frame_starts(last_path);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(last_path)
        .unwrap_or_else(|e| panic!("{e}"));
    f.set_len((starts[starts.len() - 1] + keep) as u64)
        .unwrap_or_else(|e| panic!("{e}"));
    starts
}

/// Everything a replay produced: the records applied, then its outcome or its error.
#[derive(Debug, PartialEq, Eq)]
struct Trace {
    applied: Vec<(u64, Vec<u8>)>,
    /// The outcome or the error.
    result: Summary,
}

/// Replays `segments` after `after` in `mode`; `fail_at` makes `apply` fail at that seq.
fn trace(segments: &[(u64, PathBuf)], after: u64, mode: ReplayMode, fail_at: Option<u64>) -> Trace {
    let mut applied = Vec::new();
    let mut apply = |seq: u64, bytes: &[u8]| {
        if fail_at == Some(seq) {
            return Err(LogError::Replay {
                seq,
                reason: "refused by the test".into(),
            });
        }
        applied.push((seq, bytes.to_vec()));
        Ok(())
    };
    let result = summary(replay_segments(0, after, segments, mode, &mut apply));
    Trace { applied, result }
}

/// Asserts both modes agree on `segments` for several `after`s and failing seqs; returns
/// the sequential trace with `after = 0` for further checks.
fn same_in_both_modes(segments: &[(u64, PathBuf)], last: u64) -> Trace {
    let mut cases = vec![(0, None), (last / 2, None), (last, None)];
    cases.push((0, Some(last / 3 + 1)));
    cases.push((0, Some(last)));
    for (after, fail_at) in cases {
        let sequential = trace(segments, after, ReplayMode::Sequential, fail_at);
        for mode in [ReplayMode::Pipelined, ReplayMode::PipelinedDecode] {
            let pipelined = trace(segments, after, mode, fail_at);
            assert_eq!(
                sequential, pipelined,
                "{mode:?} differs (after {after}, fail at {fail_at:?})"
            );
        }
    }
    trace(segments, 0, ReplayMode::Sequential, None)
}

/// Offsets of the frames of a segment file.
fn frame_starts(path: &Path) -> Vec<usize> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let mut pos = 0;
    let mut starts = Vec::new();
    while let Parsed::Frame { frame_len, .. } = parse_frame(&data[pos..]) {
        starts.push(pos);
        pos += frame_len;
    }
    starts
}

fn flip(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    data[offset] ^= 0x5A;
    std::fs::write(path, data).unwrap_or_else(|e| panic!("{e}"));
}

/// Records spanning several batches and several segments, a segment smaller than a batch.
const LAST: u64 = 3 * BATCH_RECORDS as u64 + 123;

fn layout(dir: &Path) -> Vec<(u64, PathBuf)> {
    write_segments(dir, LAST, 2 * BATCH_RECORDS as u64 + 7, 4096)
}

#[test]
fn intact_log_replays_the_same_in_both_modes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let segs = layout(dir.path());
    assert!(segs.len() >= 2);
    let t = same_in_both_modes(&segs, LAST);
    let want: Vec<(u64, Vec<u8>)> = (1..=LAST).map(|s| (s, varied_record(s))).collect();
    assert_eq!(t.applied, want);
    assert!(matches!(
        t.result,
        Ok((Some(LAST), LAST, Some((_, _, false))))
    ));
}

#[test]
fn torn_tail_is_cut_the_same_in_both_modes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let segs = layout(dir.path());
    let starts = tear_last_record(&segs, 9);
    let t = same_in_both_modes(&segs, LAST);
    assert_eq!(t.applied.len() as u64, LAST - 1);
    let last_start = starts[starts.len() - 1];
    assert_eq!(
        t.result,
        Ok((
            Some(LAST - 1),
            LAST - 1,
            Some((segs[segs.len() - 1].0, last_start, true))
        ))
    );
}

#[test]
fn flipped_last_record_is_cut_the_same_in_both_modes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let segs = layout(dir.path());
    let (_, last_path) = &segs[segs.len() - 1];
    let starts = frame_starts(last_path);
    flip(last_path, starts[starts.len() - 1] + 20);
    let t = same_in_both_modes(&segs, LAST);
    assert_eq!(t.applied.len() as u64, LAST - 1);
    assert!(matches!(t.result, Ok((_, _, Some((_, _, true))))));
}

#[test]
fn corruption_before_valid_records_fails_after_the_same_records() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let segs = layout(dir.path());
    // A damaged record in the middle of the first segment, past a full batch.
    let starts = frame_starts(&segs[0].1);
    let bad = BATCH_RECORDS + 5;
    flip(&segs[0].1, starts[bad] + 18);
    let t = same_in_both_modes(&segs, LAST);
    assert_eq!(t.applied.len(), bad);
    match &t.result {
        Err(msg) => assert!(msg.contains("log corrupt"), "{msg}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // Corruption in the last segment followed by valid records is an error too.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let segs = layout(dir.path());
    let (_, last_path) = &segs[segs.len() - 1];
    let starts = frame_starts(last_path);
    flip(last_path, starts[3] + 17);
    let t = same_in_both_modes(&segs, LAST);
    assert!(t.result.is_err(), "{:?}", t.result);
}

#[test]
fn missing_segment_fails_the_same_in_both_modes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut segs = write_segments(dir.path(), LAST, 5000, 64);
    assert!(segs.len() >= 3);
    let gone = segs.remove(1);
    std::fs::remove_file(&gone.1).unwrap_or_else(|e| panic!("{e}"));
    let t = same_in_both_modes(&segs, LAST);
    assert_eq!(t.applied.len(), 5000);
    match &t.result {
        Err(msg) => assert!(msg.contains("before later segment 10001"), "{msg}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn no_segments_replay_nothing_in_both_modes() {
    let t = same_in_both_modes(&[], 0);
    assert!(t.applied.is_empty());
    assert_eq!(t.result, Ok((None, 0, None)));
}

/// Opens the data dir with 64 KiB segments and `mode`.
fn backend(dir: &Path, mode: ReplayMode) -> EmbeddedBackend {
    EmbeddedBackend::open_with(
        dir,
        EmbeddedOptions {
            segment_size_bytes: 64 << 10,
            replay: mode,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("open: {e}"))
}

#[test]
fn embedded_log_recovers_a_torn_tail_the_same_in_both_modes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        {
            let b = backend(&path, ReplayMode::Pipelined);
            let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
            replay_all(log.as_mut(), 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            for chunk in 0..20u64 {
                append_flush(log.as_mut(), chunk * 500 + 1..=chunk * 500 + 500).await;
            }
        }
        // Tear the last record of the newest segment.
        let shard_dir = path.join("shard-0000");
        let mut segs: Vec<PathBuf> = std::fs::read_dir(&shard_dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        segs.sort();
        assert!(segs.len() >= 2, "{segs:?}");
        let newest = &segs[segs.len() - 1];
        let starts = frame_starts(newest);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(newest)
            .unwrap_or_else(|e| panic!("{e}"));
        f.set_len((starts[starts.len() - 1] + 5) as u64)
            .unwrap_or_else(|e| panic!("{e}"));
        drop(f);
        let mut results = Vec::new();
        for mode in [
            ReplayMode::Sequential,
            ReplayMode::Pipelined,
            ReplayMode::PipelinedDecode,
        ] {
            // Each mode recovers its own copy (recovery cuts the tail on disk).
            let copy = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let to = copy.path().join("shard-0000");
            std::fs::create_dir_all(&to).unwrap_or_else(|e| panic!("{e}"));
            for seg in &segs {
                let name = seg.file_name().unwrap_or_else(|| panic!("no file name"));
                std::fs::copy(seg, to.join(name)).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::copy(path.join("FORMAT"), copy.path().join("FORMAT"))
                .unwrap_or_else(|e| panic!("{e}"));
            let b = backend(copy.path(), mode);
            let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
            let got = replay_all(log.as_mut(), 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got, expect(1..=9_999), "{mode:?}");
            // Writing resumes at the cut record.
            append_flush(log.as_mut(), 10_000..=10_010).await;
            drop(log);
            drop(b);
            let b = backend(copy.path(), mode);
            let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
            results.push(
                replay_all(log.as_mut(), 0)
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        assert_eq!(results[0], expect(1..=10_010));
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0], results[2]);
    });
}

/// A real log record for `seq` (decodable), except at `bad_at`: bytes that pass the frame's
/// CRC but are no record (caught by the decode, on the reader thread when pipelined).
fn logged(seq: u64, bad_at: Option<u64>) -> Vec<u8> {
    if bad_at == Some(seq) {
        return b"not an rkyv record".to_vec();
    }
    let mut out = Vec::new();
    encode_record(
        &LogRecord {
            shard: 0,
            seq,
            event: Event::Released {
                id: ReservationId::compose(0, seq),
                reason: ReleaseReason::Cancelled,
                at_ms: 1_800_000_000_000 + seq,
            },
        },
        &mut out,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Decoded replay of `segments` in `mode`: each record applied (as its debug text), then
/// the outcome or the error; `fail_at` makes `apply` fail at that seq.
fn decoded_trace(
    segments: &[(u64, PathBuf)],
    after: u64,
    mode: ReplayMode,
    fail_at: Option<u64>,
) -> (Vec<String>, Summary) {
    let mut applied = Vec::new();
    let mut apply = |seq: u64, record: LogRecord| {
        if fail_at == Some(seq) {
            return Err(LogError::Replay {
                seq,
                reason: "refused by the test".into(),
            });
        }
        applied.push(format!("{seq} {record:?}"));
        Ok(())
    };
    let result = summary(replay_decoded(0, after, segments, mode, &mut apply));
    (applied, result)
}

#[test]
fn decoded_replay_is_the_same_in_both_modes_torn_tail_and_bad_record_included() {
    for bad_at in [None, Some(BATCH_RECORDS as u64 + 3)] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let segs = torn_log(dir.path(), bad_at);
        for (after, fail_at) in REPLAY_CASES {
            let sequential = decoded_trace(&segs, after, ReplayMode::Sequential, fail_at);
            for mode in [ReplayMode::Pipelined, ReplayMode::PipelinedDecode] {
                let pipelined = decoded_trace(&segs, after, mode, fail_at);
                assert_eq!(
                    sequential, pipelined,
                    "{mode:?}: bad record {bad_at:?}, after {after}, fail at {fail_at:?}"
                );
            }
        }
        let (applied, result) = decoded_trace(&segs, 0, ReplayMode::PipelinedDecode, None);
        match bad_at {
            None => {
                assert_eq!(applied.len() as u64, LAST - 1);
                assert!(matches!(result, Ok((Some(l), _, Some((_, _, true)))) if l == LAST - 1));
            }
            Some(bad) => {
                assert_eq!(applied.len() as u64, bad - 1);
                match result {
                    Err(msg) => assert!(
                        msg.contains(&format!("replay failed at seq {bad}")),
                        "{msg}"
                    ),
                    other => panic!("expected a decode error, got {other:?}"),
                }
            }
        }
    }
}

/// The `(after, fail_at)` pairs the replay comparisons run: from the start, from the middle,
/// `apply` failing early, `apply` failing at the last record.
const REPLAY_CASES: [(u64, Option<u64>); 4] = [
    (0, None),
    (LAST / 2, None),
    (0, Some(7)),
    (0, Some(LAST - 1)),
];

/// Records 1..`LAST` over two batches' worth of 4 KiB segments, record `bad_at` (if any)
/// passing the CRC but no archive, the last record torn.
fn torn_log(dir: &Path, bad_at: Option<u64>) -> Vec<(u64, PathBuf)> {
    let segs = write_segments_of(dir, LAST, 2 * BATCH_RECORDS as u64, 4096, |s| {
        logged(s, bad_at)
    });
    tear_last_record(&segs, 11);
    segs
}

/// Archived replay of `segments` in `mode` (each record's validated archive deserialized, as
/// its debug text), then the outcome or the error; `fail_at` makes `apply` fail at that seq.
fn archived_trace(
    segments: &[(u64, PathBuf)],
    after: u64,
    mode: ReplayMode,
    fail_at: Option<u64>,
) -> (Vec<String>, Summary) {
    let mut applied = Vec::new();
    let mut apply = |seq: u64, view: RecordView<'_>| {
        if fail_at == Some(seq) {
            return Err(LogError::Replay {
                seq,
                reason: "refused by the test".into(),
            });
        }
        let record = view
            .into_record()
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        applied.push(format!("{seq} {record:?}"));
        Ok(())
    };
    let result = summary(replay_archived(0, after, segments, mode, &mut apply));
    (applied, result)
}

/// The archived replay (validated on the reader thread when pipelined, read there without a
/// second validation: ADR 0036, fifth round) hands over the records the decoded replay
/// decodes and stops with the same error after the same records, in every mode: intact, a
/// torn tail, a record that passes the CRC but is no archive, an `apply` failure.
#[test]
fn archived_replay_matches_the_decoded_replay_in_every_mode() {
    for bad_at in [None, Some(BATCH_RECORDS as u64 + 3)] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let segs = torn_log(dir.path(), bad_at);
        for (after, fail_at) in REPLAY_CASES {
            let decoded = decoded_trace(&segs, after, ReplayMode::Sequential, fail_at);
            assert!(!decoded.0.is_empty() || after > 0);
            for mode in [
                ReplayMode::Sequential,
                ReplayMode::Pipelined,
                ReplayMode::PipelinedDecode,
            ] {
                let archived = archived_trace(&segs, after, mode, fail_at);
                assert_eq!(
                    decoded, archived,
                    "{mode:?}: bad record {bad_at:?}, after {after}, fail at {fail_at:?}"
                );
            }
        }
    }
}
