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
