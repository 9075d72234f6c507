//! Embedded log: round trip, group commit, torn tails, corruption, snapshots, crash reopen.

mod common;

use std::path::{Path, PathBuf};

use common::{append_flush, expect, record, replay_all, run};

use flashsale_engine::log::{LogBackend, LogError, ShardLog};
use flashsale_persistence::embedded::EmbeddedLog;
use flashsale_persistence::frame::{encode_frame, parse_frame, Parsed};
use flashsale_persistence::{EmbeddedBackend, EmbeddedOptions, PersistenceError};

fn backend(dir: &Path) -> EmbeddedBackend {
    EmbeddedBackend::open(dir).unwrap_or_else(|e| panic!("open: {e}"))
}

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

async fn open(b: &EmbeddedBackend) -> EmbeddedLog {
    b.open_shard(0, 1)
        .await
        .unwrap_or_else(|e| panic!("open shard: {e}"))
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Offsets of every frame in a segment file and its logical end.
fn frames(path: &Path) -> (Vec<usize>, usize) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let mut pos = 0;
    let mut starts = Vec::new();
    while let Parsed::Frame { frame_len, .. } = parse_frame(&data[pos..]) {
        starts.push(pos);
        pos += frame_len;
    }
    (starts, pos)
}

fn flip(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    data[offset] ^= 0x5A;
    std::fs::write(path, data).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn append_flush_replay_round_trip() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        {
            let b = backend(&path);
            let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
            assert!(replay_all(log.as_mut(), 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty());
            assert!(log
                .load_snapshot()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none());
            append_flush(log.as_mut(), 1..=500).await;
            append_flush(log.as_mut(), 501..=501).await;
            append_flush(log.as_mut(), 502..=1000).await;
        }
        let b = backend(&path);
        let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        let got = replay_all(log.as_mut(), 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, expect(1..=1000));
        // Replay honours `after`.
        let got = replay_all(log.as_mut(), 990)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, expect(991..=1000));
        // Appending continues the same log.
        append_flush(log.as_mut(), 1001..=1010).await;
        drop(log);
        drop(b);
        let b = backend(&path);
        let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        assert_eq!(
            replay_all(log.as_mut(), 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=1010)
        );
    });
}

#[test]
fn group_commit_one_sync_for_many_appends() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        let b = backend(&path);
        let mut log = open(&b).await;
        replay_all(&mut log, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        append_flush(&mut log, 1..=20_000).await;
        assert_eq!(log.commits(), 1, "20k appends, one flush, one fdatasync");
        // An empty flush does no I/O.
        log.flush().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(log.commits(), 1);
        assert_eq!(log.last_durable_seq(), Some(20_000));
        drop(log);
        drop(b);
        let b = backend(&path);
        let mut log = open(&b).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=20_000)
        );
    });
}

#[test]
fn unflushed_records_are_lost_flushed_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        {
            let b = backend(&path);
            let mut log = open(&b).await;
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            append_flush(&mut log, 1..=100).await;
            for s in 101..=150 {
                log.append(s, &record(s));
            }
            // "Crash": dropped without flush or close.
            std::mem::forget(log);
            drop(b);
        }
        // The forgotten log still holds the dir lock fd; a fresh process would not. Emulate by
        // reading through a new backend after the forgotten value's lock: flock is per open
        // file description, so open a *different* dir copy instead.
        let copy = path.with_extension("copy");
        copy_dir(&path, &copy);
        let b = backend(&copy);
        let mut log = open(&b).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=100)
        );
        // The log continues at 101.
        append_flush(&mut log, 101..=120).await;
        drop(log);
        drop(b);
        let b = backend(&copy);
        let mut log = open(&b).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=120)
        );
        let _ = std::fs::remove_dir_all(&copy);
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{e}")) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn torn_tail_truncated_mid_record_is_cut_not_fatal() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        {
            let b = backend(&path);
            let mut log = open(&b).await;
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            append_flush(&mut log, 1..=50).await;
        }
        let seg = segments(&path.join("shard-0000"));
        assert_eq!(seg.len(), 1);
        let (starts, end) = frames(&seg[0]);
        assert_eq!(starts.len(), 50);
        // Cut the file in the middle of record 50.
        let cut = starts[49] + 10;
        assert!(cut < end);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&seg[0])
            .unwrap_or_else(|e| panic!("{e}"));
        f.set_len(cut as u64).unwrap_or_else(|e| panic!("{e}"));
        drop(f);
        let b = backend(&path);
        let mut log = open(&b).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=49)
        );
        // Writing resumes at 50 over the cut tail.
        append_flush(&mut log, 50..=60).await;
        drop(log);
        drop(b);
        let b = backend(&path);
        let mut log = open(&b).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=60)
        );
    });
}

#[test]
fn flipped_bytes_in_last_record_are_cut() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        {
            let b = backend(&path);
            let mut log = open(&b).await;
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            append_flush(&mut log, 1..=30).await;
        }
        let seg = segments(&path.join("shard-0000"));
        let (starts, end) = frames(&seg[0]);
        flip(&seg[0], end - 3); // payload of record 30
        let b = backend(&path);
        let mut log = open(&b).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=29)
        );
        drop(log);
        drop(b);
        // The cut is durable: the garbage is gone from the file.
        let (starts2, end2) = frames(&seg[0]);
        assert_eq!(starts2.len(), 29);
        assert_eq!(end2, starts[29]);
        let data = std::fs::read(&seg[0]).unwrap_or_else(|e| panic!("{e}"));
        assert!(data[end2..].iter().all(|&b| b == 0));
        // A flipped length field in the header of the last record is also a torn tail.
        let b = backend(&path);
        let mut log = open(&b).await;
        replay_all(&mut log, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        append_flush(&mut log, 30..=30).await;
        drop(log);
        drop(b);
        flip(&seg[0], starts[29]);
        let b = backend(&path);
        let mut log = open(&b).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=29)
        );
    });
}

#[test]
fn corruption_before_valid_records_is_an_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        {
            let b = backend(&path);
            let mut log = open(&b).await;
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            append_flush(&mut log, 1..=100).await;
        }
        let seg = segments(&path.join("shard-0000"));
        let (starts, _) = frames(&seg[0]);
        flip(&seg[0], starts[9] + 20); // record 10 of 100
        let b = backend(&path);
        let mut log = open(&b).await;
        match replay_all(&mut log, 0).await {
            Err(LogError::Corrupt(msg)) => assert!(msg.contains("followed by valid"), "{msg}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Nothing was cut: the valid records after the damage are still on disk.
        let (after, _) = frames(&seg[0]);
        assert_eq!(after.len(), 9);
        let data = std::fs::read(&seg[0]).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            parse_frame(&data[starts[10]..]),
            Parsed::Frame { seq: 11, .. }
        ));
    });
}

#[test]
fn corruption_in_an_older_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        {
            let b = small_segments(&path, 16 << 10);
            let mut log = open(&b).await;
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            for chunk in 0..20u64 {
                append_flush(&mut log, chunk * 50 + 1..=chunk * 50 + 50).await;
            }
        }
        let segs = segments(&path.join("shard-0000"));
        assert!(segs.len() >= 3, "rotation happened: {segs:?}");
        let (starts, _) = frames(&segs[0]);
        let last = *starts.last().unwrap_or_else(|| panic!("no frames"));
        flip(&segs[0], last + 18); // last record of the first segment
        let b = small_segments(&path, 16 << 10);
        let mut log = open(&b).await;
        assert!(matches!(
            replay_all(&mut log, 0).await,
            Err(LogError::Corrupt(_))
        ));
    });
}

#[test]
fn snapshot_removes_covered_segments_and_replay_resumes_after_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        let shard_dir = path.join("shard-0000");
        {
            let b = small_segments(&path, 16 << 10);
            let mut log = open(&b).await;
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            for chunk in 0..20u64 {
                append_flush(&mut log, chunk * 50 + 1..=chunk * 50 + 50).await;
            }
            let before = segments(&shard_dir).len();
            assert!(before >= 4, "{before} segments");
            log.write_snapshot(700, b"state@700")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let after = segments(&shard_dir);
            assert!(after.len() < before, "{} -> {}", before, after.len());
            // Every remaining segment holds a record > 700 or is the first to hold 701.
            let firsts: Vec<u64> = log.segment_firsts().to_vec();
            assert!(firsts[0] <= 701, "{firsts:?}");
            assert!(firsts.get(1).is_none_or(|n| *n > 701), "{firsts:?}");
            // A second snapshot replaces the first.
            log.write_snapshot(1000, b"state@1000")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                segments(&shard_dir).len(),
                1,
                "only the active segment is left"
            );
            append_flush(&mut log, 1001..=1010).await;
        }
        let snaps: Vec<_> = std::fs::read_dir(&shard_dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "snap"))
            .collect();
        assert_eq!(snaps.len(), 1, "older snapshot deleted");
        let b = small_segments(&path, 16 << 10);
        let mut log = open(&b).await;
        let (seq, bytes) = log
            .load_snapshot()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no snapshot"));
        assert_eq!((seq, bytes.as_slice()), (1000, &b"state@1000"[..]));
        assert_eq!(
            replay_all(&mut log, seq)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1001..=1010)
        );
    });
}

#[test]
fn corrupt_snapshot_is_reported() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        {
            let b = backend(&path);
            let mut log = open(&b).await;
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            append_flush(&mut log, 1..=5).await;
            log.write_snapshot(5, b"snapshot body")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let snap = path.join("shard-0000").join(format!("{:020}.snap", 5));
        flip(&snap, 40);
        let b = backend(&path);
        let mut log = open(&b).await;
        assert!(matches!(
            log.load_snapshot().await,
            Err(LogError::Corrupt(_))
        ));
    });
}

#[test]
fn rewritten_batch_in_a_fresh_segment_supersedes_the_old_tail() {
    // What a flush retry after an fdatasync error leaves on disk: the old segment holds a
    // possibly partial copy of 8..=10, the fresh one holds 8..=12.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    let shard_dir = path.join("shard-0000");
    std::fs::create_dir_all(&shard_dir).unwrap_or_else(|e| panic!("{e}"));
    let mut old = Vec::new();
    for s in 1..=10 {
        encode_frame(s, &record(s), &mut old);
    }
    old.truncate(old.len() - 5); // record 10 torn in the old file
    std::fs::write(shard_dir.join(format!("{:020}.seg", 1)), &old)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut fresh = Vec::new();
    for s in 8..=12 {
        encode_frame(s, &record(s), &mut fresh);
    }
    std::fs::write(shard_dir.join(format!("{:020}.seg", 8)), &fresh)
        .unwrap_or_else(|e| panic!("{e}"));
    run(move || async move {
        let b = backend(&path);
        let mut log = open(&b).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=12)
        );
        append_flush(&mut log, 13..=13).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=13)
        );
    });
}

#[test]
fn missing_records_between_segments_are_an_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    let shard_dir = path.join("shard-0000");
    std::fs::create_dir_all(&shard_dir).unwrap_or_else(|e| panic!("{e}"));
    let mut a = Vec::new();
    for s in 1..=5 {
        encode_frame(s, &record(s), &mut a);
    }
    std::fs::write(shard_dir.join(format!("{:020}.seg", 1)), &a).unwrap_or_else(|e| panic!("{e}"));
    let mut c = Vec::new();
    for s in 9..=10 {
        encode_frame(s, &record(s), &mut c);
    }
    std::fs::write(shard_dir.join(format!("{:020}.seg", 9)), &c).unwrap_or_else(|e| panic!("{e}"));
    run(move || async move {
        let b = backend(&path);
        let mut log = open(&b).await;
        assert!(matches!(
            replay_all(&mut log, 0).await,
            Err(LogError::Corrupt(_))
        ));
        // Covered by a snapshot at 8, the gap is fine.
        assert_eq!(
            replay_all(&mut log, 8)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(9..=10)
        );
    });
}

#[test]
fn second_server_on_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let first = backend(dir.path());
    match EmbeddedBackend::open(dir.path()) {
        Err(PersistenceError::Locked { holder, .. }) => {
            assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            let msg = EmbeddedBackend::open(dir.path())
                .map(|_| ())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.contains("in use by another flashsale server"), "{msg}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    assert!(
        EmbeddedBackend::open(dir.path()).is_ok(),
        "lock released on drop"
    );
}

#[test]
fn shard_count_change_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    run(move || async move {
        {
            let b = backend(&path);
            b.open(1, 2).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let b = backend(&path);
        match b.open(0, 4).await {
            Err(LogError::Io(e)) => assert!(e.to_string().contains("--shards 2"), "{e}"),
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => panic!("opened with another shard count"),
        }
        assert!(b.open(0, 2).await.is_ok());
    });
}

/// Two batches in flight (the second written and synced while the first syncs): both become
/// durable in order, across segment rotations, and a reopened log replays every record once.
#[test]
fn two_flushes_in_flight_acknowledge_in_order_and_replay_whole() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().to_path_buf();
    // 429 steps of 7 records.
    const TOTAL: u64 = 3_003;
    run(move || async move {
        let b = small_segments(&path, 64 << 10);
        let mut log = open(&b).await;
        replay_all(&mut log, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut seq = 0u64;
        let mut durable_seen = 0u64;
        let mut submitted_through = 0u64;
        let mut both_in_flight = false;
        while seq < TOTAL || log.in_flight() > 0 || log.has_pending() {
            if seq < TOTAL {
                for _ in 0..7 {
                    seq += 1;
                    log.append(seq, &record(seq));
                }
            }
            if log.submit().await.unwrap_or_else(|e| panic!("{e}")) {
                submitted_through = seq;
            }
            both_in_flight |= log.in_flight() == 2;
            let durable = if log.in_flight() > 0 {
                log.wait_durable().await
            } else {
                log.poll_durable()
            }
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or(0);
            assert!(durable >= durable_seen, "durable seq went backwards");
            assert!(durable <= submitted_through, "durable before submitted");
            durable_seen = durable;
        }
        assert!(
            both_in_flight,
            "the second batch never overlapped the first"
        );
        assert_eq!(log.last_durable_seq(), Some(TOTAL));
        assert!(segments(&path.join("shard-0000")).len() > 1, "no rotation");
        drop(log);
        drop(b);
        let b = small_segments(&path, 64 << 10);
        let mut log = open(&b).await;
        assert_eq!(
            replay_all(&mut log, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            expect(1..=TOTAL)
        );
    });
}
