//! Replay's two decodes give the same records and the same state (ADR 0036, fourth round):
//! `decode_logged` (an owned record from rkyv's deserialize) + `Shard::apply_record`, and
//! `decode_logged_with` + `Shard::record_from_archived` (the record built from its validated
//! archive with the shard's own id handles, and its lines' SKU indexes) +
//! `Shard::apply_record_at`, on a random log of every kind of event; and the fused
//! `Shard::apply_archived` (a `Reserved` checked and applied from its archive, no owned
//! event; ADR 0036, ninth round) reaches the same state and refuses the same records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flashsale_engine::claim::Claims;
use flashsale_engine::log::{decode_logged, decode_logged_with};
use flashsale_engine::shard::{ExtendCommand, ReplayError, ReserveCommand, Resolved, Shard};
use flashsale_protocol::{encode_record, with_record, Event, LogRecord, RecordView, ReservationId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{buyer, key, sku, spec};

/// SKUs of the random log.
const SKUS: [&str; 4] = ["tee", "cap", "mug", "pin"];

/// A random log of `steps` commands on one shard: upserts, restocks, reservations of one to
/// three lines (some keyed), confirms, cancels, extensions and expiries. Returns the records
/// and the shard's state hash after them.
fn random_log(seed: u64, steps: usize) -> (Vec<LogRecord>, u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut shard = Shard::new(0);
    let mut log: Vec<LogRecord> = Vec::new();
    for s in SKUS {
        shard.upsert_sku(0, spec(s, 200), &mut log).unwrap();
    }
    let mut held: Vec<ReservationId> = Vec::new();
    for step in 0..steps {
        let now_ms = 1_000 + step as u64 * 50;
        match rng.gen_range(0..100) {
            0..=44 => {
                let n = rng.gen_range(1..=3);
                let first = rng.gen_range(0..SKUS.len());
                let lines = (0..n)
                    .map(|k| (sku(SKUS[(first + k) % SKUS.len()]), rng.gen_range(1..=3)))
                    .collect();
                let keyed = rng.gen_bool(0.2);
                let cmd = ReserveCommand {
                    buyer: buyer(&format!("buyer-{}", rng.gen_range(0..20))),
                    lines,
                    idempotency_key: keyed.then(|| key(7, &format!("k-{step}"))),
                    request_hash: rng.gen(),
                    id: None,
                    expires_at_ms: None,
                    group: None,
                    claims: Claims::none(),
                };
                if let Ok(out) = shard.reserve(now_ms, cmd, &mut log) {
                    held.push(out.id);
                }
            }
            45..=64 if !held.is_empty() => {
                let id = held.swap_remove(rng.gen_range(0..held.len()));
                let _ = shard.confirm(now_ms, id, format!("pay-{step}"), &mut log);
            }
            65..=79 if !held.is_empty() => {
                let id = held.swap_remove(rng.gen_range(0..held.len()));
                let _ = shard.cancel(now_ms, id, &mut log);
            }
            80..=87 if !held.is_empty() => {
                let id = held[rng.gen_range(0..held.len())];
                let cmd = ExtendCommand {
                    id,
                    ttl_ms: 20_000,
                    max_hold: (1_000_000, sku("tee")),
                    max_extensions: (100, sku("tee")),
                    key: rng.gen_bool(0.5).then(|| key(7, &format!("x-{step}"))),
                };
                let _ = shard.extend(now_ms, &cmd, &mut log);
            }
            88..=93 => {
                let s = sku(SKUS[rng.gen_range(0..SKUS.len())]);
                let restock_key = rng.gen_bool(0.5).then(|| key(7, &format!("r-{step}")));
                let _ = shard.restock(now_ms, &s, rng.gen_range(1..20), restock_key, &mut log);
            }
            _ => {
                let _ = shard.expire(now_ms, 10, &mut log);
            }
        }
    }
    (log, shard.state_hash())
}

/// `Shard::apply_archived` of the record in `bytes`, read at `seq` (a record of the
/// current version).
fn replay_fused(
    shard: &mut Shard,
    seq: u64,
    bytes: &[u8],
    hints: &mut Resolved,
) -> Result<(), ReplayError> {
    with_record(bytes, |view| match view {
        RecordView::Current(a) => shard.apply_archived(seq, a, hints),
        RecordView::Older(_) => panic!("an older record version from encode_record"),
    })
    .unwrap()
}

/// Every record decodes to the same owned record both ways, and replaying either into a new
/// shard — or replaying the archive in one step (`apply_archived`) — reaches the state of
/// the shard that logged them, record by record.
#[test]
fn both_decodes_replay_a_random_log_to_the_same_state() {
    for seed in 0..8 {
        let (log, logged_state) = random_log(seed, 3_000);
        let reserved = log
            .iter()
            .filter(|r| matches!(r.event, Event::Reserved { .. }))
            .count();
        let others = log.len() - reserved;
        assert!(reserved > 500 && others > 500, "seed {seed}: a thin log");
        let mut owned = Shard::new(0);
        let mut archived = Shard::new(0);
        let mut fused = Shard::new(0);
        let mut bytes = Vec::new();
        let mut hints = Resolved::new();
        let mut fused_hints = Resolved::new();
        let mut resolved = 0;
        for record in &log {
            bytes.clear();
            encode_record(record, &mut bytes).unwrap();
            let seq = record.seq;
            let old = decode_logged(seq, &bytes).unwrap();
            let new = decode_logged_with(seq, &bytes, |a| {
                archived.record_from_archived(a, &mut hints)
            })
            .unwrap();
            assert_eq!(old, new, "seed {seed}, seq {seq}");
            assert_eq!(&old, record, "seed {seed}, seq {seq}");
            if let Event::Reserved { lines, .. } = &old.event {
                // Every SKU of the log is known when a reservation of it is replayed.
                assert_eq!(hints.skus().len(), lines.len(), "seed {seed}, seq {seq}");
                resolved += 1;
            } else {
                assert!(hints.skus().is_empty(), "seed {seed}, seq {seq}");
            }
            owned.apply_record(old).unwrap();
            archived.apply_record_at(new, &hints).unwrap();
            replay_fused(&mut fused, seq, &bytes, &mut fused_hints).unwrap();
            if seq % 256 == 0 {
                // On the way too, not only at the end (a hash of the whole state, so not at
                // every record).
                assert_eq!(
                    fused.state_hash(),
                    archived.state_hash(),
                    "seed {seed}, seq {seq}"
                );
            }
        }
        assert_eq!(resolved, reserved);
        assert_eq!(owned.state_hash(), logged_state, "seed {seed}");
        assert_eq!(archived.state_hash(), logged_state, "seed {seed}");
        assert_eq!(fused.state_hash(), logged_state, "seed {seed}");
        owned.check_invariants().unwrap();
        archived.check_invariants().unwrap();
        fused.check_invariants().unwrap();
    }
}

/// A record the shard cannot apply (a reservation of a SKU it does not hold: the id is then
/// built anew, not shared) fails both ways with the same error and leaves the state as it
/// was; a record of the wrong seq is refused with the same error by both decodes.
#[test]
fn both_decodes_refuse_the_same_records() {
    let (log, _) = random_log(99, 400);
    let reserved = log
        .iter()
        .find(|r| matches!(r.event, Event::Reserved { .. }))
        .unwrap();
    let mut bytes = Vec::new();
    encode_record(
        &LogRecord {
            seq: 1,
            ..reserved.clone()
        },
        &mut bytes,
    )
    .unwrap();
    let mut owned = Shard::new(0);
    let mut archived = Shard::new(0);
    let mut hints = Resolved::new();
    let before = owned.state_hash();
    let old = decode_logged(1, &bytes).unwrap();
    let new =
        decode_logged_with(1, &bytes, |a| archived.record_from_archived(a, &mut hints)).unwrap();
    assert_eq!(old, new);
    assert!(hints.skus().is_empty(), "an unknown SKU has no index");
    let old_err = owned.apply_record(old).unwrap_err();
    let new_err = archived.apply_record_at(new, &hints).unwrap_err();
    assert_eq!(old_err, new_err);
    assert_eq!(owned.state_hash(), before);
    assert_eq!(archived.state_hash(), before);
    let mut fused = Shard::new(0);
    let fused_err = replay_fused(&mut fused, 1, &bytes, &mut hints).unwrap_err();
    assert!(
        matches!(&fused_err, ReplayError::Apply(e) if *e == old_err),
        "{fused_err}"
    );
    assert_eq!(fused.state_hash(), before);
    // Read at another seq than the record's: refused before anything is applied.
    let fused_seq = replay_fused(&mut fused, 2, &bytes, &mut hints).unwrap_err();
    assert_eq!(fused_seq.to_string(), "record says seq 1");
    assert_eq!(fused.state_hash(), before);

    let old_seq = decode_logged(2, &bytes).unwrap_err().to_string();
    let new_seq = decode_logged_with(2, &bytes, |a| archived.record_from_archived(a, &mut hints))
        .unwrap_err()
        .to_string();
    assert_eq!(old_seq, new_seq);
    assert!(old_seq.contains("record says seq 1"), "{old_seq}");
    // Corrupt bytes: both refuse them with the same validation error.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[8..last].fill(0xff);
    let old_bad = decode_logged(1, &bad).unwrap_err().to_string();
    let new_bad = decode_logged_with(1, &bad, |a| archived.record_from_archived(a, &mut hints))
        .unwrap_err()
        .to_string();
    assert_eq!(old_bad, new_bad);
}

/// A `Reserved` of SKUs the shard holds that does not apply — a SKU twice, a line of 0
/// units, more units than are available, an id reserved before, no line, more lines than a
/// reservation may have, a total past the maximum — is refused by the fused apply (its
/// compact lines, ADR 0036 tenth round; the owned record's way past `MAX_LINES`) with the
/// error of the owned record's apply, state unchanged; a good one after them applies to the
/// same state both ways.
#[test]
fn the_fused_apply_refuses_bad_lines_like_the_owned_record() {
    use flashsale_protocol::{Line, MAX_LINES};

    let mut logger = Shard::new(0);
    let mut log: Vec<LogRecord> = Vec::new();
    logger.upsert_sku(0, spec("tee", 5), &mut log).unwrap();
    logger.upsert_sku(0, spec("cap", 5), &mut log).unwrap();
    let cmd = |b: &str, lines: Vec<(flashsale_protocol::SkuId, u32)>| ReserveCommand {
        buyer: buyer(b),
        lines: lines.into_iter().collect(),
        idempotency_key: None,
        request_hash: 1,
        id: None,
        expires_at_ms: None,
        group: None,
        claims: Claims::none(),
    };
    let first = logger
        .reserve(10, cmd("ann", vec![(sku("tee"), 2)]), &mut log)
        .unwrap()
        .id;
    let mut owned = Shard::new(0);
    let mut fused = Shard::new(0);
    let mut hints = Resolved::new();
    let mut bytes = Vec::new();
    for record in &log {
        bytes.clear();
        encode_record(record, &mut bytes).unwrap();
        owned.apply_record(record.clone()).unwrap();
        replay_fused(&mut fused, record.seq, &bytes, &mut hints).unwrap();
    }
    let before = fused.state_hash();
    assert_eq!(owned.state_hash(), before);

    let seq = log.len() as u64 + 1;
    let line = |s: &str, qty: u32, unit_price_cents: u64| Line {
        sku: sku(s),
        qty,
        unit_price_cents,
    };
    let reserved = |id: ReservationId, lines: Vec<Line>| LogRecord {
        shard: 0,
        seq,
        event: Event::Reserved {
            id,
            buyer: buyer("bob"),
            lines,
            expires_at_ms: 20_000,
            idempotency_key: None,
            request_hash: 2,
            group: None,
            at_ms: 20,
        },
    };
    let next = ReservationId::compose(0, 50);
    let bad = [
        (
            reserved(next, vec![line("tee", 1, 100), line("tee", 1, 100)]),
            "has a bad line for tee",
        ),
        (
            reserved(next, vec![line("cap", 1, 100), line("tee", 0, 100)]),
            "has a bad line for tee",
        ),
        (
            reserved(next, vec![line("tee", 1, 100), line("cap", 6, 100)]),
            "holds unavailable cap",
        ),
        (
            reserved(next, vec![line("tee", 4, 100)]),
            "holds unavailable tee",
        ),
        (reserved(first, vec![line("cap", 1, 100)]), "reserved twice"),
        (reserved(next, vec![]), "has 0 lines"),
        (
            reserved(next, vec![line("tee", 1, 100); MAX_LINES + 1]),
            "has 33 lines",
        ),
        (
            reserved(next, vec![line("tee", 1, u64::MAX / 2)]),
            "totals more than",
        ),
    ];
    for (record, says) in bad {
        bytes.clear();
        encode_record(&record, &mut bytes).unwrap();
        let owned_err = owned.apply_record(record.clone()).unwrap_err();
        let fused_err = replay_fused(&mut fused, seq, &bytes, &mut hints).unwrap_err();
        assert!(owned_err.to_string().contains(says), "{owned_err}");
        assert!(
            matches!(&fused_err, ReplayError::Apply(e) if *e == owned_err),
            "{fused_err} / {owned_err}"
        );
        assert_eq!(fused.state_hash(), before, "{says}");
        assert_eq!(owned.state_hash(), before, "{says}");
    }
    // A good one of two lines, after the refused ones.
    let good = reserved(next, vec![line("cap", 5, 100), line("tee", 3, 100)]);
    bytes.clear();
    encode_record(&good, &mut bytes).unwrap();
    owned.apply_record(good).unwrap();
    replay_fused(&mut fused, seq, &bytes, &mut hints).unwrap();
    assert_eq!(fused.state_hash(), owned.state_hash());
    assert_ne!(fused.state_hash(), before);
    fused.check_invariants().unwrap();
}

/// A `Confirmed` or `Released` that does not apply — of an unknown reservation, of one
/// confirmed or released before, under an order that exists (checked before the
/// reservation, also when that is not held) — is refused by the fused apply, whose store
/// lookup is also the held check (ADR 0036, thirteenth round), with the error of the owned
/// record's apply, state and seq unchanged; a good one at the same seq then applies to the
/// same state both ways.
#[test]
fn the_fused_apply_refuses_bad_settlements_like_the_owned_record() {
    use flashsale_protocol::{OrderId, PaymentRef, ReleaseReason};

    let mut logger = Shard::new(0);
    let mut log: Vec<LogRecord> = Vec::new();
    logger.upsert_sku(0, spec("tee", 5), &mut log).unwrap();
    let mut reserve = |b: &str, log: &mut Vec<LogRecord>| {
        let cmd = ReserveCommand {
            buyer: buyer(b),
            lines: [(sku("tee"), 1)].into_iter().collect(),
            idempotency_key: None,
            request_hash: 1,
            id: None,
            expires_at_ms: None,
            group: None,
            claims: Claims::none(),
        };
        logger.reserve(10, cmd, log).unwrap().id
    };
    let (a, b, c) = (
        reserve("ann", &mut log),
        reserve("bob", &mut log),
        reserve("cid", &mut log),
    );
    logger.confirm(11, a, "pay-a", &mut log).unwrap();
    logger.cancel(12, b, &mut log).unwrap();
    let taken = log
        .iter()
        .find_map(|r| match r.event {
            Event::Confirmed { order, .. } => Some(order),
            _ => None,
        })
        .unwrap();
    let mut owned = Shard::new(0);
    let mut fused = Shard::new(0);
    let mut hints = Resolved::new();
    let mut bytes = Vec::new();
    for record in &log {
        bytes.clear();
        encode_record(record, &mut bytes).unwrap();
        owned.apply_record(record.clone()).unwrap();
        replay_fused(&mut fused, record.seq, &bytes, &mut hints).unwrap();
    }
    let before = fused.state_hash();
    assert_eq!(owned.state_hash(), before);

    let seq = log.len() as u64 + 1;
    let record = |event| LogRecord {
        shard: 0,
        seq,
        event,
    };
    let confirmed = |id, order| {
        record(Event::Confirmed {
            id,
            order,
            payment_ref: PaymentRef::from("pay"),
            at_ms: 20,
        })
    };
    let released = |id| {
        record(Event::Released {
            id,
            reason: ReleaseReason::Cancelled,
            at_ms: 20,
        })
    };
    let unknown = ReservationId::compose(0, 99);
    let fresh = OrderId::compose(0, 77);
    let bad = [
        (confirmed(unknown, fresh), "unknown"),
        (confirmed(a, fresh), "is confirmed"),
        (confirmed(b, fresh), "is released"),
        (confirmed(c, taken), "exists"),
        (confirmed(b, taken), "exists"),
        (released(a), "is confirmed"),
        (released(b), "is released"),
        (released(unknown), "unknown"),
    ];
    for (record, says) in bad {
        bytes.clear();
        encode_record(&record, &mut bytes).unwrap();
        let owned_err = owned.apply_record(record.clone()).unwrap_err();
        let fused_err = replay_fused(&mut fused, seq, &bytes, &mut hints).unwrap_err();
        assert!(owned_err.to_string().contains(says), "{owned_err}");
        assert!(
            matches!(&fused_err, ReplayError::Apply(e) if *e == owned_err),
            "{fused_err} / {owned_err}"
        );
        assert_eq!(fused.state_hash(), before, "{says}");
        assert_eq!(fused.seq(), seq - 1, "{says}");
        assert_eq!(owned.state_hash(), before, "{says}");
    }
    // A good one at the same seq: the confirm of the held reservation.
    let good = confirmed(c, fresh);
    bytes.clear();
    encode_record(&good, &mut bytes).unwrap();
    owned.apply_record(good).unwrap();
    replay_fused(&mut fused, seq, &bytes, &mut hints).unwrap();
    assert_eq!(fused.state_hash(), owned.state_hash());
    assert_ne!(fused.state_hash(), before);
    assert_eq!(fused.seq(), seq);
    fused.check_invariants().unwrap();
}
