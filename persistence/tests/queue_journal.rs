//! The waiting room's journal on both backends: records written by one server are replayed by
//! the next, which shows every ticket (position, status, pass) as the first one did; a second
//! restart appends after the first's records; after a compaction (snapshot + truncation) a
//! restart loads the snapshot and the records after it and shows every ticket as before.

mod common;

use std::sync::Arc;

use flashsale_engine::log::LogBackend;
use flashsale_persistence::{EmbeddedBackend, PostgresBackend, QueueJournal};
use flashsale_protocol::queue::{AdmissionMethod, QueueId, QueueSpec};
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use flashsale_waiting_room::{PassKey, TicketView, WaitingRoom};

const T0: u64 = 5_000_000;

fn q() -> QueueId {
    QueueId::new("drop").unwrap_or_else(|e| panic!("{e}"))
}

fn key() -> PassKey {
    PassKey::new([3; 32])
}

fn buyer(i: usize) -> BuyerId {
    BuyerId::new(format!("b{i}")).unwrap_or_else(|e| panic!("{e}"))
}

fn tee() -> SkuId {
    SkuId::new("tee").unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `f(room)` and makes its records durable, as a server does per command.
fn commit(journal: &QueueJournal, room: &mut WaitingRoom, f: impl FnOnce(&mut WaitingRoom)) {
    let permit = journal.try_reserve().unwrap_or_else(|e| panic!("{e}"));
    f(room);
    let done = permit.submit(room.take_records());
    common::block_on(done).unwrap_or_else(|e| panic!("{e}"));
}

fn views(room: &WaitingRoom, n: u64, now: u64) -> Vec<TicketView> {
    (1..=n)
        .map(|t| room.ticket(&q(), t, now).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// A fifo queue of `tee` with a pre-queue from `T0`, starting at `T0 + 1 s`.
fn fifo_spec(admit_per_s: u32, max_active: u32) -> QueueSpec {
    QueueSpec {
        skus: vec![tee()],
        prequeue_opens_at_ms: Some(T0),
        starts_at_ms: T0 + 1_000,
        admit_per_s,
        max_active,
        pass_ttl_s: 60,
        method: AdmissionMethod::Fifo,
        overbooking_pct: 100,
    }
}

fn restart_keeps_every_position(backend: impl Fn() -> Arc<dyn LogBackend>) {
    let (journal, stored) = QueueJournal::open(backend()).unwrap_or_else(|e| panic!("{e}"));
    assert!(stored.records.is_empty() && stored.snapshot.is_none());
    let mut room = WaitingRoom::new(key(), 1);
    commit(&journal, &mut room, |r| {
        r.configure(q(), fifo_spec(5, 100), T0)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    room.observe_stock(&tee(), 50, 0);
    for i in 0..30 {
        commit(&journal, &mut room, |r| {
            r.join(&q(), &buyer(i), T0 + 10 + i as u64)
                .unwrap_or_else(|e| panic!("{e}"));
        });
    }
    commit(&journal, &mut room, |r| r.tick(T0 + 1_000));
    for i in 30..50 {
        commit(&journal, &mut room, |r| {
            r.join(&q(), &buyer(i), T0 + 1_100)
                .unwrap_or_else(|e| panic!("{e}"));
        });
    }
    commit(&journal, &mut room, |r| r.tick(T0 + 2_000));
    // The first admitted buyer holds a reservation, then confirms: its pass is spent.
    let first = views(&room, 50, T0 + 2_000)
        .into_iter()
        .find(|v| v.pass.is_some())
        .unwrap_or_else(|| panic!("nobody admitted"));
    commit(&journal, &mut room, |r| {
        let g = r
            .begin_hold(&[tee()], first.pass.as_deref(), &first.buyer, T0 + 2_000)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no guard"));
        r.hold_placed(g, ReservationId::compose(0, 1), u64::MAX);
        assert!(r.reservation_confirmed(ReservationId::compose(0, 1), T0 + 2_001));
    });
    let before = views(&room, 50, T0 + 2_500);
    journal.close();

    let (journal, stored) = QueueJournal::open(backend()).unwrap_or_else(|e| panic!("{e}"));
    let mut again =
        WaitingRoom::restore(key(), 2, stored.records).unwrap_or_else(|e| panic!("{e}"));
    again.check_invariants().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        views(&again, 50, T0 + 2_500),
        before,
        "every ticket as before"
    );
    // A second life appends after the first's records.
    again.observe_stock(&tee(), 49, 0);
    // Admission resumes at the rate from the first tick after the restart (no burst).
    commit(&journal, &mut again, |r| r.tick(T0 + 3_000));
    commit(&journal, &mut again, |r| r.tick(T0 + 4_000));
    let after = views(&again, 50, T0 + 4_000);
    journal.close();
    let (journal, stored) = QueueJournal::open(backend()).unwrap_or_else(|e| panic!("{e}"));
    let third = WaitingRoom::restore(key(), 3, stored.records).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(views(&third, 50, T0 + 4_000), after);
    let admitted = after.iter().filter(|v| v.pass.is_some()).count();
    assert!(admitted > 5, "the second life admitted more ({admitted})");
    journal.close();
}

#[test]
fn embedded_journal_survives_restarts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("waiting-room");
    restart_keeps_every_position(|| {
        Arc::new(EmbeddedBackend::open(&path).unwrap_or_else(|e| panic!("open: {e}")))
    });
}

#[test]
fn postgres_journal_survives_restarts() {
    let schema = format!("queue_journal_{}", std::process::id());
    common::execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    restart_keeps_every_position(|| {
        Arc::new(
            PostgresBackend::with_schema(common::PG_URL, &schema)
                .unwrap_or_else(|e| panic!("postgres: {e}")),
        )
    });
    common::execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}

/// Fills the journal, compacts it, adds records after the snapshot, and restarts:
/// `segments` counts the backend's segment files (embedded), to see the truncation.
fn compaction_keeps_every_ticket(
    backend: impl Fn() -> Arc<dyn LogBackend>,
    segments: impl Fn() -> Option<usize>,
) {
    let (journal, _) = QueueJournal::open(backend()).unwrap_or_else(|e| panic!("{e}"));
    let mut room = WaitingRoom::new(key(), 1);
    commit(&journal, &mut room, |r| {
        r.configure(q(), fifo_spec(50, 1_000), T0)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    room.observe_stock(&tee(), 40, 0);
    for i in 0..200 {
        commit(&journal, &mut room, |r| {
            r.join(&q(), &buyer(i), T0 + 10 + i as u64)
                .unwrap_or_else(|e| panic!("{e}"));
        });
    }
    commit(&journal, &mut room, |r| r.tick(T0 + 1_000));
    commit(&journal, &mut room, |r| r.tick(T0 + 2_000));
    let views_now = views(&room, 200, T0 + 2_000);
    let first = views_now
        .iter()
        .find(|v| v.pass.is_some())
        .unwrap_or_else(|| panic!("nobody admitted"));
    commit(&journal, &mut room, |r| {
        let g = r
            .begin_hold(&[tee()], first.pass.as_deref(), &first.buyer, T0 + 2_000)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no guard"));
        r.hold_placed(g, ReservationId::compose(0, 7), T0 + 90_000);
    });
    // Compaction, then life goes on.
    let segments_before = segments();
    let permit = journal.try_reserve().unwrap_or_else(|e| panic!("{e}"));
    common::block_on(permit.submit_snapshot(room.snapshot())).unwrap_or_else(|e| panic!("{e}"));
    if let (Some(before), Some(after)) = (segments_before, segments()) {
        assert!(
            before > 3 && after <= 2,
            "the segments before the snapshot were dropped: {before} -> {after}"
        );
    }
    for i in 200..210 {
        commit(&journal, &mut room, |r| {
            r.join(&q(), &buyer(i), T0 + 2_100)
                .unwrap_or_else(|e| panic!("{e}"));
        });
    }
    commit(&journal, &mut room, |r| r.tick(T0 + 2_500));
    let before = views(&room, 210, T0 + 2_600);
    journal.close();

    let (journal, stored) = QueueJournal::open(backend()).unwrap_or_else(|e| panic!("{e}"));
    assert!(stored.snapshot.is_some(), "the snapshot is loaded");
    // Only the records after it: 10 joins and one tick's admissions (at most 25 at 50/s).
    let n = stored.records.len();
    assert!((10..=35).contains(&n), "{n} records after the snapshot");
    let again = WaitingRoom::restore_from(key(), 2, stored.snapshot, stored.records)
        .unwrap_or_else(|e| panic!("{e}"));
    again.check_invariants().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        views(&again, 210, T0 + 2_600),
        before,
        "every ticket as before"
    );
    assert_eq!(
        again.due_holds(T0 + 90_000),
        vec![ReservationId::compose(0, 7)],
        "the pass's hold survived"
    );
    journal.close();
}

#[test]
fn embedded_journal_compacts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("waiting-room");
    let options = || flashsale_persistence::EmbeddedOptions {
        segment_size_bytes: 4096,
        zero_fill_segments: false,
        ..flashsale_persistence::EmbeddedOptions::default()
    };
    let p2 = path.clone();
    compaction_keeps_every_ticket(
        || {
            Arc::new(
                EmbeddedBackend::open_with(&path, options())
                    .unwrap_or_else(|e| panic!("open: {e}")),
            )
        },
        move || {
            Some(
                walk(&p2)
                    .into_iter()
                    .filter(|f| f.extension().is_some_and(|e| e == "seg"))
                    .count(),
            )
        },
    );
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn postgres_journal_compacts() {
    let schema = format!("queue_journal_c_{}", std::process::id());
    common::execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    compaction_keeps_every_ticket(
        || {
            Arc::new(
                PostgresBackend::with_schema(common::PG_URL, &schema)
                    .unwrap_or_else(|e| panic!("postgres: {e}")),
            )
        },
        || None,
    );
    common::execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}

/// Non-zero bytes in the `.seg` files under `dir`: grows when records reach the disk.
fn written_bytes(dir: &std::path::Path) -> usize {
    walk(dir)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "seg"))
        .map(|f| {
            std::fs::read(&f)
                .unwrap_or_default()
                .iter()
                .filter(|b| **b != 0)
                .count()
        })
        .sum()
}

/// An embedded backend on `path` with small segments, not zero-filled.
fn small_embedded(path: &std::path::Path) -> Arc<dyn LogBackend> {
    let options = flashsale_persistence::EmbeddedOptions {
        segment_size_bytes: 1 << 20,
        zero_fill_segments: false,
        ..flashsale_persistence::EmbeddedOptions::default()
    };
    Arc::new(EmbeddedBackend::open_with(path, options).unwrap_or_else(|e| panic!("open: {e}")))
}

/// Joins `buyer(i)` and submits its record detached (nobody waits for it).
fn join_detached(journal: &QueueJournal, room: &mut WaitingRoom, i: usize) {
    let permit = journal.try_reserve().unwrap_or_else(|e| panic!("{e}"));
    room.join(&q(), &buyer(i), T0 + 10 + i as u64)
        .unwrap_or_else(|e| panic!("{e}"));
    permit.submit_detached(room.take_records());
}

/// The buyers of the tickets a journal on `path` replays, in ticket order.
fn replayed_buyers(path: &std::path::Path) -> Vec<BuyerId> {
    let (journal, stored) =
        QueueJournal::open(small_embedded(path)).unwrap_or_else(|e| panic!("{e}"));
    journal.close();
    let room = WaitingRoom::restore(key(), 2, stored.records).unwrap_or_else(|e| panic!("{e}"));
    let n = room.queue(&q()).map_or(0, |q| q.counts().joined);
    views(&room, n, T0 + 20)
        .into_iter()
        .map(|v| v.buyer)
        .collect()
}

/// A journal at `path` with detached records flushed after `delay`, a room with one queue
/// configured through it (awaited), and the bytes written so far.
fn configured_journal(
    path: &std::path::Path,
    delay: std::time::Duration,
) -> (QueueJournal, WaitingRoom, usize) {
    let (journal, _) =
        QueueJournal::open_with(small_embedded(path), delay).unwrap_or_else(|e| panic!("{e}"));
    let mut room = WaitingRoom::new(key(), 1);
    commit(&journal, &mut room, |r| {
        r.configure(q(), fifo_spec(5, 100), T0)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let configured = written_bytes(path);
    (journal, room, configured)
}

#[test]
fn detached_records_are_flushed_after_the_delay_with_no_awaited_batch() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("waiting-room");
    let (journal, mut room, configured) =
        configured_journal(&path, std::time::Duration::from_millis(50));
    assert!(configured > 0, "the awaited record is on disk");
    join_detached(&journal, &mut room, 0);
    join_detached(&journal, &mut room, 1);
    // Nothing else comes: the delay's flush writes them (bounded wait, 10 s).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while written_bytes(&path) == configured && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        written_bytes(&path) > configured,
        "the detached records reached the disk without an awaited batch"
    );
    // Dropped without close: the thread ends, the records are already there.
    drop(journal);
    assert_eq!(replayed_buyers(&path), vec![buyer(0), buyer(1)]);
}

#[test]
fn detached_records_ride_the_next_awaited_flush_in_order() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("waiting-room");
    // A delay far longer than the test: only an awaited batch (or the close) flushes them.
    let (journal, mut room, configured) =
        configured_journal(&path, std::time::Duration::from_secs(600));
    join_detached(&journal, &mut room, 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        written_bytes(&path),
        configured,
        "a detached record alone waits for its delay (no fdatasync of its own)"
    );
    commit(&journal, &mut room, |r| {
        r.join(&q(), &buyer(1), T0 + 11)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let with_awaited = written_bytes(&path);
    assert!(with_awaited > configured, "the awaited join is on disk");
    // One more detached record, then close: the close flushes it.
    join_detached(&journal, &mut room, 2);
    journal.close();
    assert_eq!(
        replayed_buyers(&path),
        vec![buyer(0), buyer(1), buyer(2)],
        "the detached join went out before the awaited one, and the last at the close"
    );
}
