//! Loom models of the stock mirror (a seqlock): a reader racing the shard's writes only ever sees
//! counts that one write stored whole, never a mix of two, and never goes back in time.
#![cfg(loom)]

use flashsale_loom_tests::mirror::{StockCounts, StockMirror};
use loom::sync::Arc;
use loom::thread;

/// Every SKU in these models holds this many units in total.
const TOTAL: u64 = 3;

/// The levels the mirror holds in order: the initial one, then each write. Consecutive levels
/// differ in every count, so any mix of two of them breaks `available + reserved + sold == TOTAL`
/// or is not in this list.
const LEVELS: [StockCounts; 3] = [
    StockCounts {
        available: 3,
        reserved: 0,
        sold: 0,
        log_seq: 0,
    },
    StockCounts {
        available: 2,
        reserved: 1,
        sold: 0,
        log_seq: 1,
    },
    StockCounts {
        available: 0,
        reserved: 2,
        sold: 1,
        log_seq: 2,
    },
];

/// Which of `LEVELS` a read returned; fails the model on a torn read.
fn position(seen: StockCounts) -> usize {
    assert_eq!(seen.total(), Some(TOTAL), "torn level: {seen:?}");
    LEVELS
        .iter()
        .position(|l| *l == seen)
        .unwrap_or_else(|| panic!("a level no write stored: {seen:?}"))
}

/// Explores every interleaving with up to `preemptions` forced thread switches. The reader's retry
/// loop makes the unbounded search grow without need (tens of seconds for two writes); a torn
/// read needs two switches (reader → writer → reader), so these bounds leave room to spare.
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// The shard publishes two levels while a caller thread reads: the read is one whole level, and
/// once the writer is done every read sees its last level.
#[test]
fn reader_never_sees_a_torn_level() {
    model(5, || {
        let mirror = Arc::new(StockMirror::new(LEVELS[0]));
        let shard = mirror.clone();
        let writer = thread::spawn(move || {
            for level in &LEVELS[1..] {
                shard.write(*level);
            }
        });
        position(mirror.read());
        writer.join().unwrap();
        assert_eq!(position(mirror.read()), LEVELS.len() - 1);
    });
}

/// Two reads by one caller while the shard publishes two levels: each is whole and the second
/// is never older than the first.
#[test]
fn reads_never_go_back_in_time() {
    model(3, || {
        let mirror = Arc::new(StockMirror::new(LEVELS[0]));
        let shard = mirror.clone();
        let writer = thread::spawn(move || {
            for level in &LEVELS[1..] {
                shard.write(*level);
            }
        });
        let first = position(mirror.read());
        let second = position(mirror.read());
        assert!(second >= first, "read level {second} after level {first}");
        writer.join().unwrap();
    });
}

/// A read that starts after a write returned (here: after the writer signalled through a
/// release/acquire flag, like a reply to a caller) sees that write or a later one.
#[test]
fn a_read_after_a_write_sees_it() {
    use loom::sync::atomic::{AtomicBool, Ordering};
    loom::model(|| {
        let mirror = Arc::new(StockMirror::new(LEVELS[0]));
        let replied = Arc::new(AtomicBool::new(false));
        let (shard, reply) = (mirror.clone(), replied.clone());
        let writer = thread::spawn(move || {
            shard.write(LEVELS[1]);
            reply.store(true, Ordering::Release);
            shard.write(LEVELS[2]);
        });
        if replied.load(Ordering::Acquire) {
            assert!(
                position(mirror.read()) >= 1,
                "the caller read a level older than its own"
            );
        }
        writer.join().unwrap();
    });
}

/// Two writers (never the case in the engine, where only the owning shard writes) take turns:
/// their writes never interleave, so the mirror ends holding one of the two levels whole.
///
/// No reader races them here: two threads spinning at once (a waiting writer and a reader) can
/// yield to each other forever under loom. A reader's view depends only on each write bracketing
/// its stores with the version, which the models above check.
#[test]
fn racing_writers_take_turns() {
    loom::model(|| {
        let mirror = Arc::new(StockMirror::new(LEVELS[0]));
        let other = mirror.clone();
        let writer = thread::spawn(move || other.write(LEVELS[2]));
        mirror.write(LEVELS[1]);
        writer.join().unwrap();
        assert!(position(mirror.read()) >= 1, "a write was lost");
    });
}
