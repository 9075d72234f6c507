//! The cross-shard coordinator under the interleavings that broke it: concurrent duplicates of
//! a keyed request whose line another shard refuses, a part whose log fails, a decision that
//! never reaches a part. Driven message by message through the simulation world, which runs
//! the same nodes as the glommio runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flashsale_engine::limits::{PART_RESOLVE_GRACE_MS, UNAVAILABLE_AFTER_MS};
use flashsale_engine::shard::{shard_of, shard_of_key};
use flashsale_engine::{CommandError, ReservationStatus, ReserveRequest};
use flashsale_protocol::ScopedKey;
use support::*;

/// A key of credential 1 whose home is not `shard` among `shards`.
fn key_not_on(shard: u16, shards: usize, salt: &str) -> ScopedKey {
    (0..1000)
        .map(|i| key(1, &format!("{salt}-{i}")))
        .find(|k| shard_of_key(k, shards) != shard)
        .expect("a key elsewhere")
}

fn req(b: &str, lines: &[(&str, u32)], k: Option<ScopedKey>) -> ReserveRequest {
    ReserveRequest {
        buyer: buyer(b),
        lines: lines.iter().map(|(s, q)| (sku(s), *q)).collect(),
        idempotency_key: k,
        ttl_ms: None,
    }
}

/// The review's case: two identical keyed requests at the same moment, for a line on another
/// shard than the key's home, which that shard refuses (buyer limit reached). Neither may get
/// a reservation (let alone one without lines), and nothing is an internal error.
#[test]
fn concurrent_duplicates_never_see_a_partial_reservation() {
    for round in 0..50u64 {
        let mut w = world(2);
        let mut s = spec("hat", 100);
        s.per_buyer_limit = Some(1);
        upsert(&mut w, 0, s);
        let owner = shard_of(&sku("hat"), 2);
        // The buyer reaches the limit first.
        let first = submit_reserve(&mut w, 1, req("ann", &[("hat", 1)], None));
        w.settle(1);
        assert!(outcome(&mut w, &first).unwrap().is_ok());
        let k = key_not_on(owner, 2, &format!("r{round}"));
        let a = submit_reserve(&mut w, 2, req("ann", &[("hat", 1)], Some(k.clone())));
        let b = submit_reserve(&mut w, 2, req("ann", &[("hat", 1)], Some(k)));
        // Interleave: deliver in an order that depends on the round.
        let mut step = round;
        while w.in_flight() > 0 || (0..2).any(|s| w.has_pending(s) || w.is_flushing(s)) {
            if w.in_flight() > 0 {
                let i = (step as usize) % w.in_flight();
                w.deliver(i, 2);
            }
            let s = (step % 2) as usize;
            if !w.is_flushing(s) {
                w.append(s);
            }
            if step % 3 == 0 {
                w.flush(s, true, 2);
            }
            step = step
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                >> 7;
            for s in 0..2 {
                if w.is_flushing(s) && step % 5 == 0 {
                    w.flush(s, true, 2);
                }
            }
            w.settle_flushes(2);
        }
        for x in [&a, &b] {
            match outcome(&mut w, x).expect("answered") {
                Err(CommandError::BuyerLimit { .. })
                | Err(CommandError::IdempotencyInProgress { .. }) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        let v = w.nodes()[usize::from(owner)]
            .shard()
            .sku(&sku("hat"))
            .unwrap();
        assert_eq!((v.reserved, v.available), (1, 99), "round {round}");
        for n in w.nodes() {
            n.shard().check_invariants().unwrap();
            n.shard().check_gates().unwrap();
        }
    }
}

/// Two identical keyed requests at once that succeed: the same reservation, whole, twice.
#[test]
fn concurrent_duplicates_get_the_same_whole_reservation() {
    let mut w = world(3);
    for s in ["a", "b", "c", "d"] {
        upsert(&mut w, 0, spec(s, 10));
    }
    let lines = [("a", 1), ("b", 2), ("c", 1), ("d", 3)];
    let k = key(7, "same");
    let x = submit_reserve(&mut w, 1, req("bo", &lines, Some(k.clone())));
    let y = submit_reserve(&mut w, 1, req("bo", &lines, Some(k.clone())));
    w.settle(1);
    let vx = outcome(&mut w, &x).unwrap().unwrap();
    let vy = outcome(&mut w, &y).unwrap().unwrap();
    assert_eq!(vx, vy);
    let got: Vec<(String, u32)> = vx
        .lines
        .iter()
        .map(|l| (l.sku.to_string(), l.qty))
        .collect();
    let want: Vec<(String, u32)> = lines.iter().map(|(s, q)| (s.to_string(), *q)).collect();
    assert_eq!(got, want);
    // Another caller's identical key is another reservation.
    let other = ScopedKey::new(flashsale_protocol::KeyOwner::Credential(8), k.key.clone());
    let z = submit_reserve(&mut w, 1, req("bo", &lines, Some(other)));
    w.settle(1);
    assert_ne!(outcome(&mut w, &z).unwrap().unwrap().id, vx.id);
}

/// A part whose log fails past the durability deadline answers `Unavailable`; the coordinator
/// rolls back every part it sent, that one included, so no stock stays held (review item 6g).
#[test]
fn a_part_whose_log_fails_is_rolled_back_too() {
    let mut w = world(2);
    upsert(&mut w, 0, spec("a", 5));
    upsert(&mut w, 0, spec("b", 5));
    // Find SKUs on different shards.
    let (sa, sb) = (shard_of(&sku("a"), 2), shard_of(&sku("b"), 2));
    let (x, y) = if sa != sb {
        ("a", "b")
    } else {
        upsert(&mut w, 0, spec("c", 5));
        upsert(&mut w, 0, spec("d", 5));
        let names = ["a", "b", "c", "d"];
        let x = names[0];
        let y = *names
            .iter()
            .find(|n| shard_of(&sku(n), 2) != shard_of(&sku(x), 2))
            .expect("two shards");
        (x, y)
    };
    let home = shard_of(&sku(x), 2);
    let part = usize::from(shard_of(&sku(y), 2));
    let r = submit_reserve(&mut w, 1, req("cy", &[(x, 1), (y, 1)], None));
    // Deliver until the part holds in memory, then its flushes fail.
    let mut now = 1;
    for _ in 0..100 {
        if w.in_flight() > 0 {
            w.deliver(0, now);
        }
        if w.has_pending(usize::from(home)) || w.is_flushing(usize::from(home)) {
            w.append(usize::from(home));
            w.flush(usize::from(home), true, now);
        }
        if w.has_pending(part) || w.is_flushing(part) {
            w.append(part);
            now += 500;
            w.flush_after(part, false, now, now);
        }
        if pending(&w, &r) {
            continue;
        }
        break;
    }
    assert!(
        now >= UNAVAILABLE_AFTER_MS,
        "the part's log failed long enough"
    );
    // The log comes back; everything settles.
    w.settle(now);
    match outcome(&mut w, &r) {
        Some(Err(CommandError::Unavailable(_))) => {}
        other => panic!("{other:?}"),
    }
    for s in [x, y] {
        let n = &w.nodes()[usize::from(shard_of(&sku(s), 2))];
        let v = n.shard().sku(&sku(s)).unwrap();
        assert_eq!((v.reserved, v.available), (0, 5), "{s} still held");
    }
    check_all(&w);
}

/// A home decision that never reaches a part (a lost message): the part, still held after its
/// expiry plus a grace period, asks its home and follows the answer.
#[test]
fn a_stale_part_asks_its_home_and_follows() {
    let mut w = world(2);
    let (x, y) = skus_on_two_shards(&mut w, "s", 5, 100);
    let (x, y) = (x.as_str(), y.as_str());
    let r = submit_reserve(&mut w, 1, req("dee", &[(x, 1), (y, 1)], None));
    w.settle(1);
    let id = outcome(&mut w, &r).unwrap().unwrap().id;
    // Cancel at the home; lose the decision on its way to the part.
    let t = w.submit(
        id.shard(),
        flashsale_engine::node::message::Request::Cancel(id),
    );
    for _ in 0..50 {
        if let Some(i) = (0..w.in_flight()).find(|i| {
            w.describe(*i)
                .is_some_and(|d| d.contains("Follow") && d.contains("Cancelled"))
        }) {
            assert!(w.lose(i));
            break;
        }
        if w.in_flight() > 0 {
            w.deliver(0, 2);
        }
        for s in 0..2 {
            w.append(s);
            w.flush(s, true, 2);
        }
    }
    let part = usize::from(shard_of(&sku(y), 2));
    let held = |w: &flashsale_engine::node::world::World| {
        w.nodes()[part].shard().reservation(id).unwrap().view.status
    };
    w.settle(2);
    assert_eq!(
        held(&w),
        ReservationStatus::Held,
        "the part missed the cancel"
    );
    // The home answered the caller once the part acknowledged — which it never will; time
    // passes: the part's own expiry plus the grace period.
    let later = 1 + 10_000 + PART_RESOLVE_GRACE_MS;
    for s in 0..2 {
        w.tick(s, later);
    }
    w.settle(later);
    assert_eq!(held(&w), ReservationStatus::Released);
    assert!(
        w.take_reply(t).is_some_and(|r| r.is_ok()),
        "the cancel was answered"
    );
    check_all(&w);
}

/// Every money value stays exact (≤ 2^53 − 1): a cart whose parts are each within the limit
/// but whose total is not is refused whole, and its parts are rolled back.
#[test]
fn a_total_above_the_money_limit_is_refused_across_parts() {
    use flashsale_protocol::limits::MAX_MONEY_CENTS;
    let mut w = world(2);
    let (x, y) = skus_on_two_shards(&mut w, "gold", 5, MAX_MONEY_CENTS / 2 + 1);
    let (x, y) = (x.as_str(), y.as_str());
    let r = submit_reserve(&mut w, 1, req("rich", &[(x, 1), (y, 1)], None));
    w.settle(1);
    match outcome(&mut w, &r) {
        Some(Err(CommandError::Invalid(msg))) => {
            assert!(msg.contains(&MAX_MONEY_CENTS.to_string()), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    for s in [x, y] {
        let v = w.nodes()[usize::from(shard_of(&sku(s), 2))]
            .shard()
            .sku(&sku(s))
            .unwrap();
        assert_eq!((v.reserved, v.available), (0, 5), "{s} still held");
    }
    // One line alone is fine.
    let ok = submit_reserve(&mut w, 1, req("rich", &[(x, 1)], None));
    w.settle(1);
    assert!(outcome(&mut w, &ok).unwrap().is_ok());
}

/// A shard that never answers (its message lost) cannot hold a coordination, its stock or its
/// key forever: past the deadline the coordination gives up and rolls back.
#[test]
fn a_coordination_past_its_deadline_gives_up() {
    use flashsale_engine::limits::COORDINATION_DEADLINE_MS;
    let mut w = world(2);
    let (x, y) = skus_on_two_shards(&mut w, "s", 5, 100);
    let (x, y) = (x.as_str(), y.as_str());
    let r = submit_reserve(
        &mut w,
        1,
        req("eve", &[(x, 1), (y, 1)], Some(key(3, "lost"))),
    );
    // Deliver until the part's command is on its way, then lose it.
    for _ in 0..50 {
        if let Some(i) =
            (0..w.in_flight()).find(|i| w.describe(*i).is_some_and(|d| d.contains("ReservePart")))
        {
            assert!(w.lose(i));
            break;
        }
        if w.in_flight() > 0 {
            w.deliver(0, 1);
        }
        for s in 0..2 {
            w.append(s);
            w.flush(s, true, 1);
        }
    }
    w.settle(1);
    assert!(pending(&w, &r), "waiting for the lost part");
    let later = 1 + COORDINATION_DEADLINE_MS;
    for s in 0..2 {
        w.tick(s, later);
    }
    w.settle(later);
    match outcome(&mut w, &r) {
        Some(Err(CommandError::Busy(_))) => {}
        other => panic!("{other:?}"),
    }
    for n in w.nodes() {
        assert_eq!(n.coordinations(), 0);
        n.shard().check_invariants().unwrap();
    }
    // The key is free again: a retry reserves.
    let again = submit_reserve(
        &mut w,
        later,
        req("eve", &[(x, 1), (y, 1)], Some(key(3, "lost"))),
    );
    w.settle(later);
    assert!(outcome(&mut w, &again).unwrap().is_ok());
}

/// A buyer's list (and so a storefront) never sees a cross-shard reservation while it is
/// being placed: its home part is held, and durable, before the other parts are asked, which
/// may still refuse and roll it back (a list would show a partial reservation, or one that
/// never existed). Once placed it is listed, whole.
#[test]
fn a_list_never_shows_a_cross_shard_reservation_being_placed() {
    use flashsale_engine::node::message::{Answer, Request};
    use flashsale_engine::node::world::World;
    use flashsale_engine::ReservationQuery;

    let mut w = world(2);
    let (x, y) = skus_on_two_shards(&mut w, "p", 10, 100);
    let home = shard_of(&sku(&x), 2);
    let now = 1_000;
    let sub = submit_reserve(&mut w, now, req("ann", &[(&x, 1), (&y, 1)], None));
    // The home takes the request and makes its own part durable; the part is not asked yet.
    w.deliver(0, now);
    assert!(w.append(usize::from(home)));
    w.flush(usize::from(home), true, now);
    assert!(
        pending(&w, &sub),
        "answered before its other part was placed"
    );
    let query = ReservationQuery {
        buyer: buyer("ann"),
        status: None,
        sku: None,
        before: None,
        limit: 10,
    };
    let list = |w: &mut World| {
        let t = w.submit(home, Request::BuyerReservations(Box::new(query.clone())));
        let last = w.in_flight() - 1;
        w.deliver(last, now);
        if !w.has_reply(t) {
            w.append(usize::from(home));
            w.flush(usize::from(home), true, now);
        }
        match w.take_reply(t) {
            Some(Ok(Answer::BuyerReservations(page))) => page,
            other => panic!("list answered {other:?}"),
        }
    };
    let page = list(&mut w);
    assert!(page.items.is_empty(), "listed while being placed: {page:?}");

    w.settle(now);
    let placed = outcome(&mut w, &sub).expect("answered").expect("placed");
    let page = list(&mut w);
    let listed: Vec<_> = page
        .items
        .into_iter()
        .map(|(_, part)| w.assemble(part))
        .collect();
    assert_eq!(listed, vec![placed]);
    assert_eq!(listed[0].lines.len(), 2);
}
