//! Shard-level unit tests: retention, and memory that follows live reservations across store
//! chunks and snapshots.

use flashsale_protocol::{BuyerId, Event, Line, LogRecord, OrderId, ReleaseReason, SkuSpec};

use super::fixtures::{reserve_cmd, sku_spec};
use super::store::CHUNK;
use super::*;
use crate::view::ReservationStatus;
use flashsale_protocol::limits::MAX_MONEY_CENTS;

/// SKU `t` with `stock` units.
fn spec(stock: u64) -> SkuSpec {
    sku_spec("t", stock)
}

/// One unit of SKU `t` for buyer `b`, no key.
fn one_cmd() -> ReserveCommand {
    reserve_cmd("b", "t", 1)
}

fn one(shard: &mut Shard, now: u64) -> ReservationId {
    shard.reserve(now, one_cmd(), &mut NullSink).unwrap().id
}

/// Thousands of reservations across chunks; most are cancelled and forgotten, every 100th
/// is confirmed and kept. Memory follows the survivors; snapshots round-trip.
#[test]
fn retention_drops_settled_reservations_and_keeps_orders() {
    let mut shard = Shard::new(0);
    shard.set_retention_ms(10);
    shard.upsert_sku(0, spec(1 << 20), &mut NullSink).unwrap();
    let n = 5 * CHUNK as usize;
    let mut kept = Vec::new();
    for i in 0..n {
        let id = one(&mut shard, 1);
        if i % 100 == 0 {
            let o = shard.confirm(2, id, "p", &mut NullSink).unwrap();
            kept.push((id, o.order.unwrap()));
        } else {
            shard.cancel(2, id, &mut NullSink).unwrap();
        }
    }
    assert_eq!(shard.reservation_count(), n);
    assert_eq!(shard.expire(11, 100, &mut NullSink).unwrap().forgotten, 0);
    let out = shard.expire(12, usize::MAX, &mut NullSink).unwrap();
    assert_eq!(out.forgotten, n - kept.len());
    assert_eq!(shard.reservation_count(), kept.len());
    assert!(shard.reservations.own.len() <= 2, "old chunks dropped");
    shard.check_invariants().unwrap();
    for (id, order) in &kept {
        assert_eq!(
            shard.reservation(*id).unwrap().view.status,
            ReservationStatus::Confirmed
        );
        assert!(shard.order(*order).is_some());
    }
    let restored = Shard::restore(&shard.snapshot()).unwrap();
    assert_eq!(restored.state_hash(), shard.state_hash());
    // New ids keep working after the front chunks went away.
    let id = one(&mut shard, 20);
    assert!(shard.reservation(id).is_some());
    shard.check_invariants().unwrap();
}

/// A shard whose two live reservations are ten million ids apart snapshots and restores in
/// memory for the two (issue 11, 6a), and keeps working after the restore.
#[test]
fn restore_with_a_huge_id_gap_allocates_for_live_reservations_only() {
    let mut shard = Shard::new(0);
    shard.upsert_sku(0, spec(100), &mut NullSink).unwrap();
    let first = one(&mut shard, 1);
    let far = ReservationId::compose(0, 10_000_000);
    let cmd = ReserveCommand {
        buyer: BuyerId::new("b").unwrap(),
        lines: CommandLines::from_buf([(SkuId::new("t").unwrap(), 2)]),
        idempotency_key: None,
        request_hash: 0,
        id: Some(far),
        expires_at_ms: None,
        group: None,
        claims: crate::claim::Claims::none(),
    };
    assert_eq!(shard.reserve(1, cmd, &mut NullSink).unwrap().id, far);
    let restored = Shard::restore(&shard.snapshot()).unwrap();
    assert!(
        restored.reservations.footprint() <= 2 * CHUNK as usize + 64,
        "{} slots for 2 reservations",
        restored.reservations.footprint()
    );
    assert_eq!(restored.state_hash(), shard.state_hash());
    restored.check_invariants().unwrap();
    let mut shard = restored;
    assert_eq!(shard.sku(&SkuId::new("t").unwrap()).unwrap().reserved, 3);
    let next = one(&mut shard, 2);
    assert_eq!(next, ReservationId::compose(0, 10_000_001));
    for id in [first, far, next] {
        shard.cancel(3, id, &mut NullSink).unwrap();
    }
    shard.check_invariants().unwrap();
    shard.check_gates().unwrap();
    assert_eq!(shard.sku(&SkuId::new("t").unwrap()).unwrap().available, 100);
}

/// Pages of `list_skus` walk every SKU once, in id order, whatever the order they were
/// created in, from any cursor (also one that names no SKU), before and after a restore.
#[test]
fn list_skus_pages_in_id_order() {
    let mut shard = Shard::new(0);
    let n = 1_000u64;
    // Created in a scrambled order (7919 is prime, so k ↦ k·7919 mod n is a permutation).
    for k in 0..n {
        let mut s = spec(1);
        s.sku = SkuId::new(format!("sku-{:04}", k * 7919 % n)).unwrap();
        shard.upsert_sku(0, s, &mut NullSink).unwrap();
    }
    shard.check_invariants().unwrap();
    let all: Vec<SkuId> = (0..n)
        .map(|k| SkuId::new(format!("sku-{k:04}")).unwrap())
        .collect();
    for shard in [Shard::restore(&shard.snapshot()).unwrap(), shard] {
        let mut seen = Vec::new();
        let mut after: Option<SkuId> = None;
        loop {
            let page = shard.list_skus(after.as_ref(), 7);
            assert!(page.len() <= 7);
            let Some(last) = page.last() else { break };
            after = Some(last.sku.clone());
            seen.extend(page.into_iter().map(|v| v.sku));
        }
        assert_eq!(seen, all);
        let between = SkuId::new("sku-0499x").unwrap();
        let page = shard.list_skus(Some(&between), 2);
        assert_eq!(
            page.iter().map(|v| &v.sku).collect::<Vec<_>>(),
            [&all[500], &all[501]]
        );
        assert!(shard.list_skus(Some(&all[999]), 10).is_empty());
        assert!(shard.list_skus(None, 0).is_empty());
    }
}

/// Replaying an event that does not fit the state is refused with an error and changes
/// nothing (the apply step below it is never reached).
#[test]
fn replay_of_inconsistent_events_is_refused_without_change() {
    let mut shard = Shard::new(0);
    shard.upsert_sku(0, spec(5), &mut NullSink).unwrap();
    let held = one(&mut shard, 1);
    let bought = one(&mut shard, 1);
    let order = shard
        .confirm(1, bought, "p", &mut NullSink)
        .unwrap()
        .order
        .unwrap();
    let hash = shard.state_hash();
    let unknown = ReservationId::compose(0, 99);
    let events = [
        Event::Confirmed {
            id: unknown,
            order: OrderId::compose(0, 1),
            payment_ref: "p".into(),
            at_ms: 2,
        },
        Event::Released {
            id: unknown,
            reason: ReleaseReason::Cancelled,
            at_ms: 2,
        },
        Event::Restocked {
            sku: SkuId::new("nope").unwrap(),
            qty: 1,
            key: None,
            at_ms: 2,
        },
        Event::Confirmed {
            id: held,
            order,
            payment_ref: "p".into(),
            at_ms: 2,
        },
    ];
    for event in events {
        let record = LogRecord {
            shard: 0,
            seq: shard.seq() + 1,
            event,
        };
        assert!(matches!(
            shard.apply_record(record),
            Err(ApplyError::Inconsistent(_))
        ));
        assert_eq!(shard.state_hash(), hash);
    }
    assert!(shard.reservation(held).is_some());
}

/// The apply step past `check` treats a missing reservation or SKU as the bug it is
/// (issue 11, item 8): it stops instead of quietly carrying on.
#[test]
#[should_panic(expected = "missing reservation")]
fn applying_a_confirm_of_a_missing_reservation_is_a_bug() {
    let mut shard = Shard::new(0);
    shard.upsert_sku(0, spec(5), &mut NullSink).unwrap();
    shard.mutate(
        Event::Confirmed {
            id: ReservationId::compose(0, 7),
            order: OrderId::compose(0, 1),
            payment_ref: "p".into(),
            at_ms: 2,
        },
        super::apply::Units::FromGates,
        None,
    );
}

/// See [`applying_a_confirm_of_a_missing_reservation_is_a_bug`].
#[test]
#[should_panic(expected = "missing reservation")]
fn applying_a_release_of_a_missing_reservation_is_a_bug() {
    let mut shard = Shard::new(0);
    shard.mutate(
        Event::Released {
            id: ReservationId::compose(0, 7),
            reason: ReleaseReason::Cancelled,
            at_ms: 2,
        },
        super::apply::Units::FromGates,
        None,
    );
}

/// See [`applying_a_confirm_of_a_missing_reservation_is_a_bug`].
#[test]
#[should_panic(expected = "missing SKU")]
fn applying_a_restock_of_a_missing_sku_is_a_bug() {
    let mut shard = Shard::new(0);
    shard.mutate(
        Event::Restocked {
            sku: SkuId::new("nope").unwrap(),
            qty: 1,
            key: None,
            at_ms: 2,
        },
        super::apply::Units::FromGates,
        None,
    );
}

/// See [`applying_a_confirm_of_a_missing_reservation_is_a_bug`].
#[test]
#[should_panic(expected = "missing SKU")]
fn applying_a_reserve_of_a_missing_sku_is_a_bug() {
    let mut shard = Shard::new(0);
    let lines = vec![Line {
        sku: SkuId::new("nope").unwrap(),
        qty: 1,
        unit_price_cents: 5,
    }];
    shard.mutate(
        Event::Reserved {
            id: ReservationId::compose(0, 1),
            buyer: BuyerId::new("b").unwrap(),
            lines,
            expires_at_ms: 10,
            idempotency_key: None,
            request_hash: 0,
            group: None,
            at_ms: 1,
        },
        super::apply::Units::FromGates,
        None,
    );
}

/// Every gate move of the apply step matches the change in available units: after upserts
/// up and down, restocks, reservations with and without claims, confirms, cancels and
/// expiries, every gate equals its SKU's available units.
#[test]
fn gates_follow_available_through_every_event() {
    let mut shard = Shard::new(0);
    let t = SkuId::new("t").unwrap();
    shard.upsert_sku(0, spec(10), &mut NullSink).unwrap();
    let a = one(&mut shard, 1);
    let b = one(&mut shard, 1);
    let c = one(&mut shard, 1);
    shard.check_gates().unwrap();
    shard.upsert_sku(1, spec(4), &mut NullSink).unwrap();
    shard.check_gates().unwrap();
    shard.restock(1, &t, 6, None, &mut NullSink).unwrap();
    shard.check_gates().unwrap();
    let gate = shard.gate(&t).unwrap();
    let claim = crate::claim::Claim::try_new(&gate, 2).unwrap();
    let cmd = ReserveCommand {
        buyer: BuyerId::new("b").unwrap(),
        lines: CommandLines::from_buf([(t.clone(), 2)]),
        idempotency_key: None,
        request_hash: 0,
        id: None,
        expires_at_ms: None,
        group: None,
        claims: crate::claim::Claims::held(vec![claim]),
    };
    shard.reserve(1, cmd, &mut NullSink).unwrap();
    shard.check_gates().unwrap();
    shard.confirm(2, a, "p", &mut NullSink).unwrap();
    shard.cancel(2, b, &mut NullSink).unwrap();
    shard.check_gates().unwrap();
    assert_eq!(shard.expire(5_000, 10, &mut NullSink).unwrap().expired, 2);
    assert!(shard.reservation(c).is_some());
    shard.check_gates().unwrap();
    shard.check_invariants().unwrap();
    assert_eq!(gate.available(), 9);
}

/// Money stays exact and within `MAX_MONEY_CENTS` (issue 11, 6c): a unit price above it is
/// refused, as is a reservation whose lines on this shard total more; at the limit it works.
#[test]
fn money_above_the_limit_is_refused() {
    let mut shard = Shard::new(0);
    let mut s = spec(10);
    s.price_cents = MAX_MONEY_CENTS + 1;
    let err = shard.upsert_sku(0, s.clone(), &mut NullSink).unwrap_err();
    assert!(matches!(err, CommandError::Invalid(_)), "{err:?}");
    s.price_cents = MAX_MONEY_CENTS / 2 + 1;
    shard.upsert_sku(0, s.clone(), &mut NullSink).unwrap();
    let command = |qty: u32| ReserveCommand {
        buyer: BuyerId::new("b").unwrap(),
        lines: CommandLines::from_buf([(SkuId::new("t").unwrap(), qty)]),
        idempotency_key: None,
        request_hash: 0,
        id: None,
        expires_at_ms: None,
        group: None,
        claims: crate::claim::Claims::none(),
    };
    match shard.reserve(1, command(2), &mut NullSink) {
        Err(CommandError::Invalid(msg)) => {
            assert!(msg.contains(&MAX_MONEY_CENTS.to_string()), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(shard.reservation_count(), 0);
    let id = shard.reserve(1, command(1), &mut NullSink).unwrap().id;
    let order = shard.confirm(2, id, "p", &mut NullSink).unwrap().order;
    let (view, _) = shard.order(order.unwrap()).unwrap();
    assert_eq!(view.total_cents, MAX_MONEY_CENTS / 2 + 1);
    shard.check_invariants().unwrap();
    assert_eq!(total_cents(&view.lines), view.total_cents);
}

/// One stock limit for upsert and restock (issue 11, 6d): a SKU restocked up to
/// `MAX_STOCK` can be upserted again at its own total; one unit more is refused by both.
#[test]
fn restock_and_upsert_share_the_stock_limit() {
    let mut shard = Shard::new(0);
    let t = SkuId::new("t").unwrap();
    shard.upsert_sku(0, spec(10), &mut NullSink).unwrap();
    shard
        .restock(1, &t, MAX_STOCK - 10, None, &mut NullSink)
        .unwrap();
    // Valid in itself, refused by the SKU's state: a conflict, not invalid input.
    assert!(matches!(
        shard.restock(1, &t, 1, None, &mut NullSink),
        Err(CommandError::StockConflict { sku, .. }) if sku == t
    ));
    let (view, created) = shard.upsert_sku(2, spec(MAX_STOCK), &mut NullSink).unwrap();
    assert!(!created);
    assert_eq!(view.total, MAX_STOCK);
    assert!(matches!(
        shard.upsert_sku(2, spec(MAX_STOCK + 1), &mut NullSink),
        Err(CommandError::Invalid(_))
    ));
    let restored = Shard::restore(&shard.snapshot()).unwrap();
    assert_eq!(restored.sku(&t).unwrap().total, MAX_STOCK);
    shard.check_gates().unwrap();
}

/// The shard's limits are the protocol's: names and payment references are bounded by the
/// same constants the gateway checks.
#[test]
fn the_shard_checks_the_protocol_limits() {
    assert_eq!(MAX_STOCK, flashsale_protocol::limits::MAX_STOCK);
    assert_eq!(MAX_NAME_LEN, flashsale_protocol::limits::MAX_NAME_LEN);
    assert_eq!(
        MAX_PAYMENT_REF_LEN,
        flashsale_protocol::limits::MAX_PAYMENT_REF_LEN
    );
    let mut shard = Shard::new(0);
    let mut s = spec(1);
    s.name = "n".repeat(MAX_NAME_LEN + 1);
    assert!(shard.upsert_sku(0, s.clone(), &mut NullSink).is_err());
    s.name = "é".repeat(MAX_NAME_LEN + 1);
    assert!(shard.upsert_sku(0, s.clone(), &mut NullSink).is_err());
    // Characters, not bytes: 200 two-byte characters are a valid name.
    s.name = "é".repeat(MAX_NAME_LEN);
    shard.upsert_sku(0, s.clone(), &mut NullSink).unwrap();
    s.name = "n".repeat(MAX_NAME_LEN);
    shard.upsert_sku(0, s, &mut NullSink).unwrap();
    let id = one(&mut shard, 1);
    let long = "p".repeat(MAX_PAYMENT_REF_LEN + 1);
    assert!(shard.confirm(2, id, long, &mut NullSink).is_err());
}

/// Snapshots are format 5 (`FSSNAP05`); formats before 3 (unscoped keys) are refused
/// with an error that names them, anything else as not a snapshot.
#[test]
fn snapshots_of_older_formats_are_refused_by_name() {
    let mut shard = Shard::new(0);
    shard.upsert_sku(0, spec(5), &mut NullSink).unwrap();
    one(&mut shard, 1);
    let bytes = shard.snapshot();
    assert!(bytes.starts_with(b"FSSNAP05"));
    assert_eq!(
        Shard::restore(&bytes).unwrap().state_hash(),
        shard.state_hash()
    );
    for old in [b"FSSNAP01", b"FSSNAP02"] {
        let mut aged = bytes.clone();
        aged[..8].copy_from_slice(old);
        let err = Shard::restore(&aged).unwrap_err();
        let found = String::from_utf8(old.to_vec()).unwrap();
        assert_eq!(
            err,
            SnapshotError::Outdated {
                found: found.clone()
            }
        );
        assert!(err.to_string().contains(&found), "{err}");
    }
    assert_eq!(
        Shard::restore(b"NOTASNAP").unwrap_err(),
        SnapshotError::Magic
    );
    assert_eq!(Shard::restore(b"FS").unwrap_err(), SnapshotError::Magic);
    let mut torn = bytes.clone();
    torn.truncate(bytes.len() / 2);
    assert!(matches!(
        Shard::restore(&torn),
        Err(SnapshotError::Archive(_))
    ));
}

/// A keyed extension retried with its key answers the reservation as it is, without a new
/// event or a second extension; the same key with another hold is a mismatch; the keys
/// survive a snapshot and a replay of the log (ADR 0015, addendum).
#[test]
fn a_keyed_extension_is_made_once_across_snapshots_and_replay() {
    use flashsale_protocol::{IdempotencyKey, KeyOwner, ScopedKey};
    let key = |k: &str| {
        Some(ScopedKey::new(
            KeyOwner::Credential(1),
            IdempotencyKey::new(k).unwrap(),
        ))
    };
    let mut log: Vec<LogRecord> = Vec::new();
    let mut shard = Shard::new(0);
    shard.upsert_sku(0, spec(5), &mut log).unwrap();
    let id = one(&mut shard, 1);
    // `one` logs nothing: replay starts from a snapshot taken after it.
    let base = shard.snapshot();
    let cmd = |ttl_ms: u64, k: &str| ExtendCommand {
        id,
        ttl_ms,
        max_hold: (1_000_000, SkuId::new("t").unwrap()),
        max_extensions: (3, SkuId::new("t").unwrap()),
        key: key(k),
    };
    let mut log: Vec<LogRecord> = Vec::new();
    shard.extend(10, &cmd(5_000, "x1"), &mut log).unwrap();
    assert_eq!(log.len(), 1);
    let first = shard.reservation(id).unwrap().view.expires_at_ms;
    assert_eq!(first, 5_010);
    // The retry, later: same answer, nothing logged, not counted.
    shard.extend(20, &cmd(5_000, "x1"), &mut log).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(shard.reservation(id).unwrap().view.expires_at_ms, first);
    // Another body under the same key.
    assert_eq!(
        shard.extend(20, &cmd(6_000, "x1"), &mut log),
        Err(CommandError::IdempotencyMismatch)
    );
    // Another key is another extension.
    shard.extend(30, &cmd(6_000, "x2"), &mut log).unwrap();
    assert_eq!(log.len(), 2);
    // A snapshot and a replay keep both keys.
    let restored = Shard::restore(&shard.snapshot()).unwrap();
    let mut replayed = Shard::restore(&base).unwrap();
    for r in log.iter().cloned() {
        replayed.apply_record(r).unwrap();
    }
    for mut s in [restored, replayed] {
        assert_eq!(s.state_hash(), shard.state_hash());
        let mut none: Vec<LogRecord> = Vec::new();
        s.extend(40, &cmd(5_000, "x1"), &mut none).unwrap();
        s.extend(40, &cmd(6_000, "x2"), &mut none).unwrap();
        assert!(none.is_empty());
        assert_eq!(s.reservation(id).unwrap().view.expires_at_ms, 6_030);
    }
}

/// A keyed restock retried with its key adds nothing; the same key with another `qty` is a
/// mismatch; a SKU keeps only its latest `MAX_RESTOCK_KEYS` keys; snapshots and replay keep
/// them (ADR 0015, addendum).
#[test]
fn a_keyed_restock_adds_stock_once_across_snapshots_and_replay() {
    use crate::limits::MAX_RESTOCK_KEYS;
    use flashsale_protocol::{IdempotencyKey, KeyOwner, ScopedKey};
    let key = |k: &str| {
        Some(ScopedKey::new(
            KeyOwner::Credential(9),
            IdempotencyKey::new(k).unwrap(),
        ))
    };
    let t = SkuId::new("t").unwrap();
    let mut shard = Shard::new(0);
    shard.upsert_sku(0, spec(5), &mut NullSink).unwrap();
    let base = shard.snapshot();
    let mut log: Vec<LogRecord> = Vec::new();
    assert_eq!(
        shard.restock(1, &t, 3, key("r0"), &mut log).unwrap().total,
        8
    );
    assert_eq!(
        shard.restock(2, &t, 3, key("r0"), &mut log).unwrap().total,
        8
    );
    assert_eq!(log.len(), 1);
    assert_eq!(
        shard.restock(2, &t, 4, key("r0"), &mut log),
        Err(CommandError::IdempotencyMismatch)
    );
    // Enough later keyed restocks push the first key out: its retry then adds again.
    for i in 1..=MAX_RESTOCK_KEYS {
        shard
            .restock(3, &t, 1, key(&format!("r{i}")), &mut log)
            .unwrap();
    }
    let total = 8 + MAX_RESTOCK_KEYS as u64;
    let restored = Shard::restore(&shard.snapshot()).unwrap();
    let mut replayed = Shard::restore(&base).unwrap();
    for r in log.iter().cloned() {
        replayed.apply_record(r).unwrap();
    }
    for mut s in [restored, replayed] {
        assert_eq!(s.state_hash(), shard.state_hash());
        let last = format!("r{MAX_RESTOCK_KEYS}");
        assert_eq!(
            s.restock(4, &t, 1, key(&last), &mut NullSink)
                .unwrap()
                .total,
            total
        );
        assert_eq!(
            s.restock(4, &t, 3, key("r0"), &mut NullSink).unwrap().total,
            total + 3
        );
    }
}

/// The bounds of a multi-line extension are the strictest of its lines' SKUs, each with the
/// first SKU that has it; a reservation without lines is an internal error.
#[test]
fn extension_bounds_are_the_strictest_of_the_lines() {
    let view = |name: &str, max_hold_ms: u64, max_extensions: u32| crate::view::SkuView {
        sku: SkuId::new(name).unwrap(),
        name: name.into(),
        price_cents: 1,
        total: 1,
        available: 1,
        reserved: 0,
        sold: 0,
        per_buyer_limit: None,
        sale_starts_at_ms: None,
        sale_ends_at_ms: None,
        reservation_ttl_ms: 1_000,
        max_hold_ms,
        max_extensions,
    };
    let id = ReservationId::compose(0, 7);
    let skus = [
        view("a", 9_000, 5),
        view("b", 4_000, 7),
        view("c", 4_000, 2),
        view("d", 8_000, 2),
    ];
    let cmd = ExtendCommand::strictest_of(id, 1_500, None, &skus).unwrap();
    assert_eq!(cmd.id, id);
    assert_eq!(cmd.ttl_ms, 1_500);
    assert_eq!(cmd.max_hold, (4_000, SkuId::new("b").unwrap()));
    assert_eq!(cmd.max_extensions, (2, SkuId::new("c").unwrap()));
    let single = ExtendCommand::strictest_of(id, 1, None, &skus[..1]).unwrap();
    assert_eq!(single.max_hold, (9_000, SkuId::new("a").unwrap()));
    assert_eq!(single.max_extensions, (5, SkuId::new("a").unwrap()));
    assert!(matches!(
        ExtendCommand::strictest_of(id, 1, None, &[]),
        Err(CommandError::Internal(_))
    ));
}

/// Per-buyer usage is counted only for SKUs with a per-buyer limit; an upsert that adds a
/// limit recounts the SKU's held and bought units per buyer from the store (so the limit
/// applies to what buyers already hold), one that removes it drops them. The invariant
/// check recounts, snapshots round-trip, and the hot-SKU hint never changes a result.
#[test]
fn usage_is_counted_for_limited_skus_and_recounted_when_a_limit_appears() {
    let mut shard = Shard::new(0);
    shard.upsert_sku(0, spec(100), &mut NullSink).unwrap();
    let t = SkuId::new("t").unwrap();
    let b = BuyerId::new("b").unwrap();
    let held = one(&mut shard, 1);
    let bought = one(&mut shard, 1);
    let cancelled = one(&mut shard, 1);
    shard.confirm(2, bought, "p", &mut NullSink).unwrap();
    shard.cancel(2, cancelled, &mut NullSink).unwrap();
    assert_eq!(shard.used(&b, &t), 0, "no limit: not counted");
    assert!(shard.usage.is_empty());
    shard.check_invariants().unwrap();

    let mut limited = spec(100);
    limited.per_buyer_limit = Some(3);
    shard.upsert_sku(3, limited.clone(), &mut NullSink).unwrap();
    assert_eq!(
        shard.used(&b, &t),
        2,
        "held + bought, not the cancelled one"
    );
    shard.check_invariants().unwrap();
    one(&mut shard, 4);
    assert_eq!(shard.used(&b, &t), 3);
    assert!(matches!(
        shard.reserve(5, one_cmd(), &mut NullSink),
        Err(CommandError::BuyerLimit { already: 3, .. })
    ));
    shard.cancel(6, held, &mut NullSink).unwrap();
    assert_eq!(shard.used(&b, &t), 2);
    let restored = Shard::restore(&shard.snapshot()).unwrap();
    assert_eq!(restored.used(&b, &t), 2);
    assert_eq!(restored.state_hash(), shard.state_hash());

    shard.upsert_sku(7, spec(100), &mut NullSink).unwrap();
    assert_eq!(shard.used(&b, &t), 0);
    assert!(
        shard.usage.is_empty(),
        "a removed limit drops the SKU's entries"
    );
    shard.check_invariants().unwrap();
    shard.upsert_sku(8, limited, &mut NullSink).unwrap();
    assert_eq!(shard.used(&b, &t), 2);
    shard.check_invariants().unwrap();
}

/// The hot-SKU hint: reserving another SKU after the hot one, an unknown SKU, and a
/// zero-quantity single line all answer as without it.
#[test]
fn the_hot_sku_hint_never_changes_a_result() {
    let mut shard = Shard::new(0);
    shard.upsert_sku(0, spec(10), &mut NullSink).unwrap();
    let mut other = spec(10);
    other.sku = SkuId::new("u").unwrap();
    shard.upsert_sku(0, other, &mut NullSink).unwrap();
    let cmd = |sku: &str, qty: u32| reserve_cmd("b", sku, qty);
    one(&mut shard, 1);
    let u = shard.reserve(1, cmd("u", 2), &mut NullSink).unwrap().id;
    let t = one(&mut shard, 1);
    assert_eq!(shard.sku(&SkuId::new("t").unwrap()).unwrap().reserved, 2);
    assert_eq!(shard.sku(&SkuId::new("u").unwrap()).unwrap().reserved, 2);
    assert!(shard.res(u).is_some() && shard.res(t).is_some());
    assert!(matches!(
        shard.reserve(1, cmd("nope", 1), &mut NullSink),
        Err(CommandError::SkuNotFound(_))
    ));
    assert!(matches!(
        shard.reserve(1, cmd("t", 0), &mut NullSink),
        Err(CommandError::Invalid(m)) if m == "qty of t must be at least 1"
    ));
    shard.check_invariants().unwrap();
}
