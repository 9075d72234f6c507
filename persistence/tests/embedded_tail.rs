//! The embedded log's tail (the events outbox reads it): only durable records, in order, across
//! segment rotations, in bounded batches; and the hold that keeps needed segments after a
//! snapshot.

mod common;

use std::path::Path;

use common::{append_flush, expect, replay_all, run};

use flashsale_engine::log::ShardLog;
use flashsale_persistence::{EmbeddedBackend, EmbeddedOptions};

fn small_segments(dir: &Path, bytes: u64) -> EmbeddedBackend {
    EmbeddedBackend::open_with(
        dir,
        EmbeddedOptions {
            segment_size_bytes: bytes,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("open: {e}"))
}

/// Reads everything after `after` in batches of `batch`.
fn read_all(
    tail: &mut flashsale_persistence::embedded::EmbeddedTail,
    mut after: u64,
    batch: usize,
) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let got = tail
            .read(0, after, batch)
            .unwrap_or_else(|e| panic!("tail read: {e}"));
        assert!(got.len() <= batch, "batch bound");
        let Some(&(last, _)) = got.last() else {
            return out;
        };
        after = last;
        out.extend(got);
    }
}

#[test]
fn tail_reads_durable_records_across_segments_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        let b = small_segments(&path, 16 << 10);
        let mut tail = b.tail();
        let mut log = b.open_shard(0, 1).await.unwrap_or_else(|e| panic!("{e}"));
        replay_all(&mut log, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(read_all(&mut tail, 0, 10).is_empty(), "nothing durable yet");
        for chunk in 0..12u64 {
            append_flush(&mut log, chunk * 50 + 1..=chunk * 50 + 50).await;
        }
        assert!(log.segment_firsts().len() >= 3, "rotation happened");
        // Appended but not flushed: not durable, never read.
        log.append(601, &common::record(601));
        assert_eq!(read_all(&mut tail, 0, 37), expect(1..=600));
        // From any position, through a fresh cursor.
        let mut fresh = b.tail();
        assert_eq!(read_all(&mut fresh, 333, 1000), expect(334..=600));
        log.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_all(&mut tail, 600, 5), expect(601..=601));
    });
}

#[test]
fn the_hold_keeps_segments_a_reader_still_needs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        let b = small_segments(&path, 16 << 10);
        let marks = b.tail_marks();
        let mut log = b.open_shard(0, 1).await.unwrap_or_else(|e| panic!("{e}"));
        replay_all(&mut log, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for chunk in 0..20u64 {
            append_flush(&mut log, chunk * 50 + 1..=chunk * 50 + 50).await;
        }
        // A reader has delivered up to 100: seqs from 101 on stay readable after a snapshot.
        marks.set_hold(0, 101);
        let before = log.segment_firsts().to_vec();
        log.write_snapshot(900, b"state@900")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let after = log.segment_firsts().to_vec();
        assert!(after[0] <= 101, "{before:?} -> {after:?}");
        let mut tail = b.tail();
        assert_eq!(read_all(&mut tail, 100, 64), expect(101..=1000));
        // Once the reader moved on, the next snapshot removes what it no longer needs.
        marks.set_hold(0, u64::MAX);
        log.write_snapshot(1000, b"state@1000")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(log.segment_firsts().len(), 1, "only the active segment");
        let err = b.tail().read(0, 100, 10);
        assert!(
            err.is_err(),
            "records no longer on disk are an error, never skipped"
        );
    });
}

/// A fresh reader (a seek: it skips from the segment's start to its position) must get past a
/// chunk boundary that cuts a frame's 16-byte header. It used to take such a cut for the end
/// of the written records, return nothing and seek again at the next read — forever: the
/// events sink that stalled after the load in the shared-feed benchmark (ADR 0037, addendum "Shared feed, again").
#[test]
fn a_fresh_reader_skips_past_a_frame_header_cut_by_the_read_chunk() {
    use flashsale_persistence::embedded::tail::CHUNK_BYTES;
    use flashsale_persistence::frame::FRAME_HEADER_LEN as HEADER_BYTES;
    // Equal records whose frames leave 1..15 bytes of a header before the chunk's end.
    let record_lens: Vec<usize> = (60..200)
        .filter(|len| {
            let cut = CHUNK_BYTES % (HEADER_BYTES + len);
            (1..HEADER_BYTES).contains(&cut)
        })
        .take(4)
        .collect();
    assert!(!record_lens.is_empty(), "some record length cuts a header");
    for len in record_lens {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().to_path_buf();
        run(move || async move {
            let b = small_segments(&path, 64 << 20);
            let mut log = b.open_shard(0, 1).await.unwrap_or_else(|e| panic!("{e}"));
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let frames_per_chunk = (CHUNK_BYTES / (HEADER_BYTES + len)) as u64;
            let last = frames_per_chunk * 2 + 10;
            let body = |seq: u64| {
                let mut r = seq.to_le_bytes().to_vec();
                r.resize(len, 7);
                r
            };
            for seq in 1..=last {
                log.append(seq, &body(seq));
            }
            log.flush().await.unwrap_or_else(|e| panic!("{e}"));
            // Positions just before, at and after the cut frame, and further on.
            for after in [
                frames_per_chunk - 1,
                frames_per_chunk,
                frames_per_chunk + 1,
                frames_per_chunk + 5,
                last - 1,
            ] {
                let got = b
                    .tail()
                    .read(0, after, 3)
                    .unwrap_or_else(|e| panic!("tail read: {e}"));
                let seqs: Vec<u64> = got.iter().map(|r| r.0).collect();
                let want: Vec<u64> = (after + 1..=last).take(3).collect();
                assert_eq!(seqs, want, "record len {len}, after {after}");
                assert_eq!(got[0].1, body(after + 1), "record len {len}, after {after}");
            }
        });
    }
}

/// The segment files of shard 0, oldest first.
fn shard0_segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("shard-0000"))
        .unwrap_or_else(|e| panic!("list shard dir: {e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("dir entry: {e}")).path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_read_again_from_inside_the_last_batch_resumes_there_without_a_scan() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        let b = small_segments(&path, 16 << 10);
        let mut tail = b.tail();
        let mut log = b.open_shard(0, 1).await.unwrap_or_else(|e| panic!("{e}"));
        replay_all(&mut log, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for chunk in 0..12u64 {
            append_flush(&mut log, chunk * 50 + 1..=chunk * 50 + 50).await;
        }
        let segments = shard0_segments(&path);
        assert!(segments.len() >= 3, "rotation happened: {segments:?}");
        // A batch that crosses at least one segment boundary.
        let batch = tail
            .read(0, 0, 400)
            .unwrap_or_else(|e| panic!("tail read: {e}"));
        assert_eq!(batch, expect(1..=400));
        // The consumer used only part of it and asks again from inside it, once in the first
        // segment and once in a later one: the same records, in order.
        assert_eq!(
            tail.read(0, 20, 30)
                .unwrap_or_else(|e| panic!("tail read: {e}")),
            expect(21..=50)
        );
        assert_eq!(
            tail.read(0, 10, 5)
                .unwrap_or_else(|e| panic!("tail read: {e}")),
            expect(11..=15),
            "inside the batch before the last one: a scan, the same records"
        );
        let again = tail
            .read(0, 3, 400)
            .unwrap_or_else(|e| panic!("tail read: {e}"));
        assert_eq!(again, expect(4..=403));
        // Now damage the first segment's first frame: a reader that scanned the segment from
        // its start could not pass it, a resumed one never looks at it.
        let first = segments.first().unwrap_or_else(|| panic!("a segment"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(first)
            .unwrap_or_else(|e| panic!("open segment: {e}"));
        file.write_all_at(&[0xAB; 16], 0)
            .unwrap_or_else(|e| panic!("damage segment: {e}"));
        assert_eq!(
            tail.read(0, 5, 10)
                .unwrap_or_else(|e| panic!("resumed read: {e}")),
            expect(6..=15)
        );
        let fresh = b.tail().read(0, 5, 10);
        assert!(
            !matches!(&fresh, Ok(records) if *records == expect(6..=15)),
            "a fresh reader scans the damaged segment from its start and cannot pass it: {:?}",
            fresh.map(|r| r.len())
        );
    });
}
