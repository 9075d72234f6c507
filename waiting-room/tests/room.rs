//! The waiting room's rules, one at a time: configuration errors name the field, joins are
//! idempotent, admission follows the rate, `max_active` and the stock, sold-out is one flip,
//! passes are checked (forged, expired, spent, other buyer, in use) and give the place back.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flashsale_protocol::queue::{AdmissionMethod, QueueId, QueueSpec};
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use flashsale_waiting_room::limits::{MIN_POLL_MS, POLL_MS_PER_PLACE};
use flashsale_waiting_room::{
    ConfigureError, JoinError, PassCheck, PassClaims, PassError, PassKey, PollSpread, TicketStatus,
    WaitingRoom,
};

const T0: u64 = 1_000_000;

fn key() -> PassKey {
    PassKey::new([42; 32])
}

fn q(s: &str) -> QueueId {
    QueueId::new(s).unwrap()
}

fn b(i: usize) -> BuyerId {
    BuyerId::new(format!("buyer-{i}")).unwrap()
}

fn sku(s: &str) -> SkuId {
    SkuId::new(s).unwrap()
}

fn spec() -> QueueSpec {
    QueueSpec {
        skus: vec![sku("tee")],
        prequeue_opens_at_ms: Some(T0),
        starts_at_ms: T0 + 10_000,
        admit_per_s: 10,
        max_active: 1_000,
        pass_ttl_s: 60,
        method: AdmissionMethod::Fifo,
        overbooking_pct: 100,
    }
}

fn room_with(spec: QueueSpec) -> WaitingRoom {
    let mut room = WaitingRoom::new(key(), 1);
    assert_eq!(room.configure(q("drop"), spec, T0), Ok(true));
    room
}

fn admitted(room: &WaitingRoom, now: u64) -> Vec<u64> {
    let queue = room.queue(&q("drop")).unwrap();
    (1..=queue.counts().joined)
        .filter(|&t| room.ticket(&q("drop"), t, now).unwrap().status == TicketStatus::Admitted)
        .collect()
}

fn pass_of(room: &WaitingRoom, ticket: u64, now: u64) -> String {
    room.ticket(&q("drop"), ticket, now).unwrap().pass.unwrap()
}

#[test]
fn invalid_configurations_name_the_field() {
    let mut room = WaitingRoom::new(key(), 1);
    type Change = Box<dyn Fn(&mut QueueSpec)>;
    let cases: Vec<(&str, Change)> = vec![
        ("skus", Box::new(|s| s.skus.clear())),
        ("skus", Box::new(|s| s.skus = vec![sku("a"), sku("a")])),
        (
            "skus",
            Box::new(|s| s.skus = (0..33).map(|i| sku(&format!("s{i}"))).collect()),
        ),
        (
            "prequeue_opens_at",
            Box::new(|s| s.prequeue_opens_at_ms = Some(s.starts_at_ms + 1)),
        ),
        ("admit_per_s", Box::new(|s| s.admit_per_s = 0)),
        ("admit_per_s", Box::new(|s| s.admit_per_s = 100_001)),
        ("max_active", Box::new(|s| s.max_active = 0)),
        ("pass_ttl_s", Box::new(|s| s.pass_ttl_s = 0)),
        ("pass_ttl_s", Box::new(|s| s.pass_ttl_s = 3_601)),
        ("overbooking_pct", Box::new(|s| s.overbooking_pct = 99)),
        ("overbooking_pct", Box::new(|s| s.overbooking_pct = 1_001)),
    ];
    for (field, change) in cases {
        let mut s = spec();
        change(&mut s);
        match room.configure(q("drop"), s, T0) {
            Err(ConfigureError::Invalid(e)) => assert_eq!(e.field, field, "{e}"),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(
        room.take_records().is_empty(),
        "a refused config logs nothing"
    );
    // A SKU belongs to one queue.
    assert_eq!(room.configure(q("a"), spec(), T0), Ok(true));
    match room.configure(q("b"), spec(), T0) {
        Err(ConfigureError::Invalid(e)) => assert_eq!(e.field, "skus"),
        other => panic!("{other:?}"),
    }
    // Changing it again is an update; after the start the times and SKUs stay.
    assert_eq!(room.configure(q("a"), spec(), T0), Ok(false));
    room.tick(T0 + 10_000);
    let mut late = spec();
    late.starts_at_ms += 1;
    match room.configure(q("a"), late, T0 + 10_000) {
        Err(ConfigureError::Invalid(e)) => assert_eq!(e.field, "starts_at"),
        other => panic!("{other:?}"),
    }
    let mut faster = spec();
    faster.admit_per_s = 99;
    assert_eq!(room.configure(q("a"), faster, T0 + 10_000), Ok(false));
}

#[test]
fn joins_are_idempotent_and_refused_when_closed_or_unknown() {
    let mut s = spec();
    s.prequeue_opens_at_ms = None;
    let mut room = room_with(s);
    assert_eq!(
        room.join(&q("nope"), &b(1), T0),
        Err(JoinError::UnknownQueue(q("nope")))
    );
    assert_eq!(
        room.join(&q("drop"), &b(1), T0),
        Err(JoinError::NotOpen {
            queue: q("drop"),
            opens_at_ms: T0 + 10_000
        })
    );
    let first = room.join(&q("drop"), &b(1), T0 + 10_000).unwrap();
    let again = room.join(&q("drop"), &b(1), T0 + 10_500).unwrap();
    assert_eq!(first.ticket, again.ticket);
    assert_eq!(first.status, TicketStatus::Waiting);
    assert_eq!(first.position, Some(1));
    let second = room.join(&q("drop"), &b(2), T0 + 10_500).unwrap();
    assert_eq!(second.ticket, first.ticket + 1);
    assert_eq!(second.position, Some(2));
    assert!(second.poll_after_ms.is_some() && second.eta_s.is_some());
}

#[test]
fn admission_follows_the_rate_the_active_cap_and_the_stock() {
    let mut s = spec();
    s.max_active = 25;
    let mut room = room_with(s);
    room.observe_stock(&sku("tee"), 1_000, 0);
    for i in 0..100 {
        room.join(&q("drop"), &b(i), T0 + 1).unwrap();
    }
    room.tick(T0 + 9_999);
    assert!(
        admitted(&room, T0 + 9_999).is_empty(),
        "nobody before the start"
    );
    room.tick(T0 + 10_000);
    room.tick(T0 + 11_000);
    assert_eq!(admitted(&room, T0 + 11_000).len(), 10, "10 per second");
    room.tick(T0 + 11_500);
    assert_eq!(admitted(&room, T0 + 11_500).len(), 15);
    room.tick(T0 + 20_000);
    assert_eq!(admitted(&room, T0 + 20_000).len(), 25, "max_active");
    room.check_invariants().unwrap();

    // Stock: 3 unclaimed units with 150 % overbooking = 4 idle passes.
    let mut s = spec();
    s.overbooking_pct = 150;
    let mut room = room_with(s);
    room.observe_stock(&sku("tee"), 3, 0);
    for i in 0..100 {
        room.join(&q("drop"), &b(i), T0 + 1).unwrap();
    }
    room.tick(T0 + 10_000);
    room.tick(T0 + 20_000);
    assert_eq!(admitted(&room, T0 + 20_000).len(), 4);
    // Until the engine's counts are known nobody is admitted.
    let mut room = room_with(spec());
    room.join(&q("drop"), &b(1), T0 + 1).unwrap();
    room.tick(T0 + 10_000);
    room.tick(T0 + 20_000);
    assert!(admitted(&room, T0 + 20_000).is_empty());
}

#[test]
fn sold_out_flips_every_waiting_ticket_and_resumes_when_units_return() {
    let mut room = room_with(spec());
    room.observe_stock(&sku("tee"), 1, 0);
    for i in 0..50 {
        room.join(&q("drop"), &b(i), T0 + 1).unwrap();
    }
    room.tick(T0 + 10_000);
    room.tick(T0 + 11_000);
    let first = admitted(&room, T0 + 11_000);
    assert_eq!(first.len(), 1);
    // The admitted buyer holds the last unit: nothing unclaimed.
    let buyer = room
        .ticket(&q("drop"), first[0], T0 + 11_000)
        .unwrap()
        .buyer;
    let pass = pass_of(&room, first[0], T0 + 11_000);
    let guard = room
        .begin_hold(&[sku("tee")], Some(&pass), &buyer, T0 + 11_000)
        .unwrap()
        .unwrap();
    let res = ReservationId::compose(0, 1);
    room.hold_placed(guard, res, u64::MAX);
    room.observe_stock(&sku("tee"), 0, 1);
    let statuses: Vec<_> = (1..=50)
        .filter(|t| *t != first[0])
        .map(|t| room.ticket(&q("drop"), t, T0 + 11_001).unwrap())
        .collect();
    assert!(statuses.iter().all(|v| v.status == TicketStatus::SoldOut));
    assert!(
        statuses.iter().all(|v| v.poll_after_ms == Some(5_000)),
        "units may return"
    );
    // The hold expires: the unit returns, admission resumes in order.
    assert!(room.reservation_released(res, T0 + 12_000));
    room.observe_stock(&sku("tee"), 1, 0);
    assert_eq!(
        room.ticket(&q("drop"), 2, T0 + 12_000).unwrap().status,
        TicketStatus::Waiting
    );
    room.tick(T0 + 71_000);
    // The first pass expired (60 s) and gave its place back; the next was admitted.
    assert_eq!(
        room.ticket(&q("drop"), first[0], T0 + 71_000)
            .unwrap()
            .status,
        TicketStatus::Expired
    );
    assert_eq!(admitted(&room, T0 + 71_000).len(), 1);
    room.check_invariants().unwrap();
}

#[test]
fn passes_are_checked_and_each_failure_is_distinct() {
    let mut s = spec();
    s.skus = vec![sku("tee"), sku("cap")];
    let mut room = room_with(s);
    let mut other = spec();
    other.skus = vec![sku("mug")];
    room.configure(q("other"), other, T0).unwrap();
    room.observe_stock(&sku("tee"), 10, 0);
    room.observe_stock(&sku("cap"), 10, 0);
    for i in 0..3 {
        room.join(&q("drop"), &b(i), T0 + 1).unwrap();
    }
    room.tick(T0 + 10_000);
    room.tick(T0 + 11_000);
    let now = T0 + 11_000;
    let t = room.ticket(&q("drop"), 1, now).unwrap();
    let (alice, pass) = (t.buyer.clone(), t.pass.clone().unwrap());
    let tee = [sku("tee")];

    // Unqueued SKUs need nothing.
    assert_eq!(room.begin_hold(&[sku("free")], None, &alice, now), Ok(None));
    assert_eq!(
        room.begin_hold(&tee, None, &alice, now),
        Err(PassError::Required { queue: q("drop") })
    );
    assert_eq!(
        room.begin_hold(&tee, Some("garbage"), &alice, now),
        Err(PassError::Forged)
    );
    let forged = PassKey::new([1; 32]).sign(&PassClaims {
        queue: q("drop"),
        buyer: alice.clone(),
        ticket: 1,
        expires_at_ms: t.pass_expires_at_ms.unwrap(),
    });
    assert_eq!(
        room.begin_hold(&tee, Some(&forged), &alice, now),
        Err(PassError::Forged)
    );
    assert_eq!(
        room.begin_hold(&tee, Some(&pass), &b(9), now),
        Err(PassError::OtherBuyer)
    );
    assert!(matches!(
        room.begin_hold(&[sku("tee"), sku("mug")], Some(&pass), &alice, now),
        Err(PassError::SeveralQueues { .. })
    ));
    assert!(matches!(
        room.begin_hold(&[sku("mug")], Some(&pass), &alice, now),
        Err(PassError::OtherQueue { .. })
    ));
    assert_eq!(
        room.begin_hold(&tee, Some(&pass), &alice, now + 60_000),
        Err(PassError::Expired)
    );

    // One hold at a time; a failed reservation frees the pass; a cancel too; a confirm spends.
    let g = room
        .begin_hold(&tee, Some(&pass), &alice, now)
        .unwrap()
        .unwrap();
    assert_eq!(
        room.begin_hold(&tee, Some(&pass), &alice, now),
        Err(PassError::InUse)
    );
    room.hold_failed(g);
    let g = room
        .begin_hold(&tee, Some(&pass), &alice, now)
        .unwrap()
        .unwrap();
    room.hold_placed(g, ReservationId::compose(0, 1), u64::MAX);
    assert_eq!(
        room.begin_hold(&tee, Some(&pass), &alice, now),
        Err(PassError::InUse)
    );
    assert!(room.reservation_released(ReservationId::compose(0, 1), now));
    let g = room
        .begin_hold(&tee, Some(&pass), &alice, now)
        .unwrap()
        .unwrap();
    room.hold_placed(g, ReservationId::compose(0, 2), u64::MAX);
    assert!(room.reservation_confirmed(ReservationId::compose(0, 2), now));
    assert_eq!(
        room.begin_hold(&tee, Some(&pass), &alice, now),
        Err(PassError::Spent)
    );
    assert_eq!(
        room.ticket(&q("drop"), 1, now).unwrap().status,
        TicketStatus::Spent
    );
    assert!(!room.reservation_confirmed(ReservationId::compose(0, 9), now));
    // An idle pass expires at its time and can no longer reserve.
    let t2 = room.ticket(&q("drop"), 2, now).unwrap();
    room.tick(t2.pass_expires_at_ms.unwrap());
    assert_eq!(
        room.begin_hold(&tee, t2.pass.as_deref(), &t2.buyer, now),
        Err(PassError::Expired)
    );
    room.check_invariants().unwrap();
}

#[test]
fn a_restart_keeps_every_position_and_pass() {
    let mut room = room_with(spec());
    room.observe_stock(&sku("tee"), 5, 0);
    for i in 0..40 {
        room.join(&q("drop"), &b(i), T0 + 1 + i as u64).unwrap();
    }
    room.tick(T0 + 10_000);
    for i in 40..60 {
        room.join(&q("drop"), &b(i), T0 + 10_001).unwrap();
    }
    room.tick(T0 + 10_400);
    let t = admitted(&room, T0 + 10_400)[0];
    let v = room.ticket(&q("drop"), t, T0 + 10_400).unwrap();
    let g = room
        .begin_hold(&[sku("tee")], v.pass.as_deref(), &v.buyer, T0 + 10_400)
        .unwrap()
        .unwrap();
    room.hold_placed(g, ReservationId::compose(1, 1), u64::MAX);
    let records = room.take_records();
    let restored = WaitingRoom::restore(key(), 99, records).unwrap();
    restored.check_invariants().unwrap();
    for t in 1..=60 {
        assert_eq!(
            restored.ticket(&q("drop"), t, T0 + 10_500),
            room.ticket(&q("drop"), t, T0 + 10_500),
            "ticket {t}"
        );
    }
    assert_eq!(
        restored.queue(&q("drop")).unwrap().counts(),
        room.queue(&q("drop")).unwrap().counts()
    );
}

#[test]
fn a_restart_resumes_admission_at_the_rate_without_a_burst() {
    // 10 admissions/s, plenty of stock and buyers: before the restart, 100 ms ticks admit one
    // each.
    let mut room = room_with(spec());
    room.observe_stock(&sku("tee"), 1_000, 0);
    for i in 0..200 {
        room.join(&q("drop"), &b(i), T0 + 1 + i as u64).unwrap();
    }
    let mut now = T0 + 10_000;
    room.tick(now);
    for _ in 0..20 {
        now += 100;
        room.tick(now);
    }
    let before = room.queue(&q("drop")).unwrap().counts().admitted_total;
    assert_eq!(before, 20, "2 s at 10/s");

    // Down for a minute (and for a long time since the start): the replayed room must not
    // admit what the downtime, or the credit it had, would have earned.
    let records = room.take_records();
    let mut room = WaitingRoom::restore(key(), 7, records).unwrap();
    room.observe_stock(&sku("tee"), 1_000, 0);
    now += 60_000;
    let mut per_tick = Vec::new();
    for _ in 0..10 {
        let was = room.queue(&q("drop")).unwrap().counts().admitted_total;
        room.tick(now);
        per_tick.push(room.queue(&q("drop")).unwrap().counts().admitted_total - was);
        now += 100;
    }
    room.check_invariants().unwrap();
    assert_eq!(
        per_tick[0], 0,
        "the first tick after a restart admits nobody"
    );
    assert!(
        per_tick.iter().all(|&n| n <= 1),
        "at most the rate per tick: {per_tick:?}"
    );
    let total: u64 = per_tick.iter().sum();
    assert!(
        (8..=10).contains(&total),
        "one second after the restart: {per_tick:?}"
    );
    // Admission order continues where it stopped (fifo over the shuffled pre-queue).
    let after = room.queue(&q("drop")).unwrap().counts().admitted_total;
    assert_eq!(after, before + total);
}

#[test]
fn a_restart_from_a_snapshot_keeps_every_position_pass_and_admission() {
    let mut room = room_with(spec());
    room.observe_stock(&sku("tee"), 5, 0);
    for i in 0..40 {
        room.join(&q("drop"), &b(i), T0 + 1 + i as u64).unwrap();
    }
    room.tick(T0 + 10_000);
    room.tick(T0 + 10_400);
    let t = admitted(&room, T0 + 10_400)[0];
    let v = room.ticket(&q("drop"), t, T0 + 10_400).unwrap();
    let g = room
        .begin_hold(&[sku("tee")], v.pass.as_deref(), &v.buyer, T0 + 10_400)
        .unwrap()
        .unwrap();
    room.hold_placed(g, ReservationId::compose(1, 1), T0 + 70_000);
    // Compaction: the snapshot replaces every record so far; later records follow it.
    room.take_records();
    let snapshot = room.snapshot();
    for i in 40..60 {
        room.join(&q("drop"), &b(i), T0 + 10_500).unwrap();
    }
    room.tick(T0 + 10_800);
    let after = room.take_records();
    assert!(!after.is_empty());
    let restored = WaitingRoom::restore_from(key(), 99, Some(snapshot), after).unwrap();
    restored.check_invariants().unwrap();
    for t in 1..=60 {
        let (a, b) = (
            restored.ticket(&q("drop"), t, T0 + 10_900).unwrap(),
            room.ticket(&q("drop"), t, T0 + 10_900).unwrap(),
        );
        assert_eq!(a, b, "ticket {t}");
        if a.status == TicketStatus::Admitted {
            assert!(a.pass.is_some() && a.admission.is_some());
        }
    }
    assert_eq!(
        restored.queue(&q("drop")).unwrap().counts(),
        room.queue(&q("drop")).unwrap().counts()
    );
    // The pass's hold survived: due at its expiry, and its pass is in use until then.
    assert_eq!(
        restored.due_holds(T0 + 70_000),
        vec![ReservationId::compose(1, 1)]
    );
    let mut restored = restored;
    assert_eq!(
        restored.begin_hold(&[sku("tee")], v.pass.as_deref(), &v.buyer, T0 + 10_900),
        Err(PassError::InUse)
    );
}

#[test]
fn after_a_restart_idle_passes_are_refused_until_checked_and_do_not_expire_meanwhile() {
    let mut room = room_with(spec());
    room.observe_stock(&sku("tee"), 5, 0);
    for i in 0..10 {
        room.join(&q("drop"), &b(i), T0 + 1 + i as u64).unwrap();
    }
    room.tick(T0 + 10_000);
    room.tick(T0 + 10_400);
    let ts = admitted(&room, T0 + 10_400);
    assert!(ts.len() >= 3, "{ts:?}");
    let views: Vec<_> = ts[..3]
        .iter()
        .map(|&t| room.ticket(&q("drop"), t, T0 + 10_400).unwrap())
        .collect();
    // The first pass's reservation was placed, its `HoldPlaced` lost: no record of it.
    let g = room
        .begin_hold(
            &[sku("tee")],
            views[0].pass.as_deref(),
            &views[0].buyer,
            T0 + 10_400,
        )
        .unwrap()
        .unwrap();
    room.hold_failed(g);
    let records = room.take_records();
    let mut restored = WaitingRoom::restore(key(), 99, records).unwrap();
    let n = restored.distrust_idle_passes();
    assert_eq!(n, ts.len(), "every admitted pass was idle in the journal");
    restored.check_invariants().unwrap();
    let now = T0 + 10_500;
    for v in &views {
        assert_eq!(
            restored.begin_hold(&[sku("tee")], v.pass.as_deref(), &v.buyer, now),
            Err(PassError::Checking)
        );
    }
    let todo = restored.passes_to_check(2);
    assert_eq!(todo.len(), 2);
    assert_eq!(
        (todo[0].ticket, &todo[0].buyer),
        (views[0].ticket, &views[0].buyer)
    );
    assert_eq!(restored.passes_to_check(usize::MAX).len(), n);
    // The engine holds the first buyer's reservation; the second holds nothing.
    let r = ReservationId::compose(0, 9);
    restored.pass_checked(
        &q("drop"),
        views[0].ticket,
        PassCheck::Holds {
            reservation: r,
            expires_at_ms: now + 30_000,
        },
    );
    restored.pass_checked(&q("drop"), views[1].ticket, PassCheck::Free);
    assert_eq!(restored.passes_unchecked(), n - 2);
    restored.check_invariants().unwrap();
    assert_eq!(
        restored.begin_hold(
            &[sku("tee")],
            views[0].pass.as_deref(),
            &views[0].buyer,
            now
        ),
        Err(PassError::InUse)
    );
    assert_eq!(restored.due_holds(now + 30_000), vec![r]);
    let records = restored.take_records();
    assert_eq!(
        records.len(),
        1,
        "the found hold is logged again: {records:?}"
    );
    let g = restored
        .begin_hold(
            &[sku("tee")],
            views[1].pass.as_deref(),
            &views[1].buyer,
            now,
        )
        .unwrap();
    assert!(g.is_some(), "checked free: usable");
    // Past every pass's expiry, unchecked passes are not expired (they may hold); a checked
    // free one is.
    let late = T0 + 10_400 + 61_000;
    restored.hold_failed(g.unwrap());
    restored.tick(late);
    let v2 = restored.ticket(&q("drop"), views[1].ticket, late).unwrap();
    assert_eq!(v2.status, TicketStatus::Expired);
    let v3 = restored.ticket(&q("drop"), views[2].ticket, late).unwrap();
    assert_eq!(v3.status, TicketStatus::Admitted, "unchecked: not expired");
    // Checked free later, it expires at the next tick.
    restored.pass_checked(&q("drop"), views[2].ticket, PassCheck::Free);
    restored.tick(late + 100);
    let v3 = restored
        .ticket(&q("drop"), views[2].ticket, late + 100)
        .unwrap();
    assert_eq!(v3.status, TicketStatus::Expired);
    restored.check_invariants().unwrap();
}

#[test]
fn by_position_the_back_of_the_line_polls_less_often_and_follows_its_place() {
    let mut s = spec();
    s.prequeue_opens_at_ms = None;
    s.admit_per_s = 1_000;
    let start = s.starts_at_ms;
    let mut room = room_with(s);
    for i in 1..=3_000 {
        room.join(&q("drop"), &b(i), start).unwrap();
    }
    let interval = |room: &WaitingRoom, t: u64| {
        let v = room.ticket(&q("drop"), t, start).unwrap();
        (v.position.unwrap(), v.poll_after_ms.unwrap())
    };
    // Even (the default): 3,000 waiting share the budget, everyone polls at the shortest.
    assert_eq!(interval(&room, 1), (1, MIN_POLL_MS));
    assert_eq!(interval(&room, 3_000), (3_000, MIN_POLL_MS));
    room.set_poll_spread(PollSpread::ByPosition);
    assert_eq!(interval(&room, 1), (1, MIN_POLL_MS));
    assert_eq!(interval(&room, 300), (300, MIN_POLL_MS));
    assert_eq!(interval(&room, 3_000), (3_000, 3_000 * POLL_MS_PER_PLACE));
    // Admissions move the line up: the interval follows the new place at once.
    room.observe_stock(&sku("tee"), 1_000_000, 0);
    room.tick(start + 1_000);
    let moved = 3_000 - u64::try_from(admitted(&room, start + 1_000).len()).unwrap();
    assert!(moved < 3_000);
    assert_eq!(
        interval(&room, 3_000),
        (moved, (moved * POLL_MS_PER_PLACE).max(MIN_POLL_MS))
    );
    room.set_poll_spread(PollSpread::Even);
    assert_eq!(interval(&room, 3_000).1, MIN_POLL_MS);
}
