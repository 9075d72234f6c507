//! The standby's log tail against the real Postgres (postgres://postgres@127.0.0.1:5432/test;
//! these tests fail, not skip, when it is unreachable): a follower catches up in bounded
//! batches across a compacted prefix (restoring the snapshot) to the leader's exact state, and
//! a fenced commit wakes a listening tail.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{block_on, run, Schema, PG_URL};
use flashsale_engine::claim::Claims;
use flashsale_engine::log::LogBackend;
use flashsale_engine::shard::{CommandLines, ReserveCommand, Shard};
use flashsale_engine::Follower;
use flashsale_persistence::postgres::tail::{LogTail, TAIL_BATCH};
use flashsale_persistence::PostgresBackend;
use flashsale_protocol::{encode_record, BuyerId, LogRecord, ReservationId, SkuId, SkuSpec};

fn backend(schema: &Schema) -> PostgresBackend {
    PostgresBackend::with_schema(PG_URL, &schema.0)
        .unwrap_or_else(|e| panic!("postgres backend on {PG_URL}: {e}"))
}

fn spec() -> SkuSpec {
    SkuSpec {
        sku: SkuId::new("tail-tee").unwrap_or_else(|e| panic!("{e}")),
        name: "tee".into(),
        price_cents: 5,
        stock: 1_000_000,
        per_buyer_limit: None,
        sale_starts_at_ms: None,
        sale_ends_at_ms: None,
        reservation_ttl_ms: 3_600_000,
        max_hold_ms: flashsale_protocol::default_max_hold_ms(3_600_000),
        max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
    }
}

/// A leader shard that created the SKU and `n` reservations, its encoded records, the
/// snapshot it would have taken at `snapshot_at`, and the reservation ids.
fn leader(n: usize, snapshot_at: u64) -> (Shard, Vec<Vec<u8>>, Vec<u8>, Vec<ReservationId>) {
    let mut shard = Shard::new(0);
    let mut log: Vec<LogRecord> = Vec::new();
    shard
        .upsert_sku(0, spec(), &mut log)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ids = Vec::new();
    let mut snapshot = Vec::new();
    for i in 0..n {
        let cmd = ReserveCommand {
            buyer: BuyerId::new(format!("b{i}")).unwrap_or_else(|e| panic!("{e}")),
            lines: CommandLines::from_buf([(spec().sku, 1)]),
            idempotency_key: None,
            request_hash: 0,
            id: None,
            expires_at_ms: None,
            group: None,
            claims: Claims::none(),
        };
        let out = shard
            .reserve(1, cmd, &mut log)
            .unwrap_or_else(|e| panic!("{e}"));
        ids.push(out.id);
        if shard.seq() == snapshot_at {
            snapshot = shard.snapshot();
        }
    }
    let records = log
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            encode_record(r, &mut out).unwrap_or_else(|e| panic!("{e}"));
            out
        })
        .collect();
    (shard, records, snapshot, ids)
}

/// Appends `records[from-1..to]` (seqs `from..=to`) through `backend`'s shard 0 and flushes.
fn write(
    backend: &PostgresBackend,
    records: &[Vec<u8>],
    from: u64,
    to: u64,
    snapshot: Option<(u64, Vec<u8>)>,
) {
    let (b, records) = (backend.clone(), records.to_vec());
    run(move || async move {
        let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        for seq in from..=to {
            log.append(seq, &records[seq as usize - 1]);
        }
        log.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
        if let Some((seq, bytes)) = snapshot {
            log.write_snapshot(seq, &bytes)
                .await
                .unwrap_or_else(|e| panic!("snapshot: {e}"));
        }
    });
}

#[test]
fn a_follower_catches_up_across_a_compacted_prefix_in_bounded_batches() {
    const N: usize = 2_600;
    const SNAPSHOT_AT: u64 = 1_200;
    let schema = Schema::new("tail");
    // The writer is fenced at the lease's initial epoch (0), as an HA leader's is.
    let b = backend(&schema).fenced(0);
    let (leader, records, snapshot, ids) = leader(N, SNAPSHOT_AT);
    let last = records.len() as u64;
    // The first 1,500 records, then a snapshot at 1,200 that deletes the rows it covers.
    write(&b, &records, 1, 1_500, Some((SNAPSHOT_AT, snapshot)));
    write(&b, &records, 1_501, last, None);
    let follower = Mutex::new(Follower::new(1).unwrap_or_else(|e| panic!("{e}")));
    block_on(async {
        let tail = LogTail::connect(&b)
            .await
            .unwrap_or_else(|e| panic!("tail: {e}"));
        // One batch per round: the rounds stop short of the end until the last one.
        let mut rounds = 0;
        let mut applied = 0;
        loop {
            let step = tail
                .catch_up(&follower, 1)
                .await
                .unwrap_or_else(|e| panic!("catch up: {e}"));
            applied += step.applied;
            rounds += 1;
            assert_eq!(step.end, last);
            if step.at_end {
                break;
            }
            assert!(rounds < 100, "never reached the end");
        }
        assert_eq!(
            applied, last,
            "the snapshot's records plus every row after it"
        );
        // The snapshot round, then ⌈(last − 1,200) / 1,000⌉ batches.
        let batches = (last - SNAPSHOT_AT).div_ceil(TAIL_BATCH as u64);
        assert!(
            rounds as u64 >= batches,
            "{rounds} rounds for {batches} batches"
        );
    });
    let f = follower.into_inner().unwrap_or_else(|e| e.into_inner());
    assert_eq!(f.position(0), leader.seq());
    let sku = f.sku(&spec().sku).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (sku.available, sku.reserved),
        (1_000_000 - N as u64, N as u64)
    );
    for id in [ids[0], ids[1_500], ids[N - 1]] {
        let got = f.reservation(id).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Some(got), leader.reservation(id).map(|p| p.view));
    }
}

#[test]
fn a_fenced_commit_wakes_a_listening_tail() {
    let schema = Schema::new("tail_notify");
    let b = backend(&schema).fenced(0);
    let (_, records, _, _) = leader(3, 0);
    write(&b, &records, 1, 2, None);
    let follower = Mutex::new(Follower::new(1).unwrap_or_else(|e| panic!("{e}")));
    block_on(async {
        let tail = LogTail::connect(&b)
            .await
            .unwrap_or_else(|e| panic!("tail: {e}"));
        let step = tail
            .catch_up(&follower, 4)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((step.applied, step.at_end), (2, true));
        // Nothing new: the wait runs to its timeout.
        let t0 = Instant::now();
        tail.wait(Duration::from_millis(300)).await;
        assert!(t0.elapsed() >= Duration::from_millis(250));
        let writer = {
            let (b, records) = (b.clone(), records.clone());
            std::thread::spawn(move || write(&b, &records, 3, 3, None))
        };
        // The commit's notification ends the wait long before its 30 s timeout.
        let t0 = Instant::now();
        tail.wait(Duration::from_secs(30)).await;
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        writer.join().unwrap_or_else(|_| panic!("writer panicked"));
        let step = tail
            .catch_up(&follower, 4)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(step.applied, 1);
    });
    let f = follower.into_inner().unwrap_or_else(|e| e.into_inner());
    assert_eq!(f.position(0), 3);
}
