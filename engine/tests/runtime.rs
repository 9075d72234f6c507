//! Flows through the real glommio runtime with the in-memory log and a manual clock.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use flashsale_engine::log::memory::MemoryBackend;
use flashsale_engine::{
    CommandError, Engine, EngineConfig, ManualClock, ReservationStatus, ReserveRequest,
};
use flashsale_protocol::{
    BuyerId, IdempotencyKey, KeyOwner, ReleaseReason, ScopedKey, SkuId, SkuSpec,
};

fn sku(s: &str) -> SkuId {
    SkuId::new(s).unwrap()
}

fn buyer(s: &str) -> BuyerId {
    BuyerId::new(s).unwrap()
}

fn spec(id: &str, stock: u64) -> SkuSpec {
    SkuSpec {
        sku: sku(id),
        name: format!("{id} name"),
        price_cents: 1_000,
        stock,
        per_buyer_limit: None,
        sale_starts_at_ms: None,
        sale_ends_at_ms: None,
        reservation_ttl_ms: 60_000,
        max_hold_ms: flashsale_protocol::default_max_hold_ms(60_000),
        max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
    }
}

fn start(backend: &MemoryBackend, clock: &Arc<ManualClock>, shards: usize) -> Engine {
    let mut cfg = EngineConfig::new(Arc::new(backend.clone()), clock.clone());
    cfg.shards = shards;
    cfg.pin_cores = false;
    cfg.expiry_tick_ms = 2;
    cfg.snapshot_every_events = 50;
    cfg.snapshot_state_factor = 0;
    Engine::start(cfg).unwrap()
}

fn req(b: &str, lines: &[(&str, u32)], key: Option<&str>) -> ReserveRequest {
    ReserveRequest {
        buyer: buyer(b),
        lines: lines.iter().map(|(s, q)| (sku(s), *q)).collect(),
        idempotency_key: key
            .map(|k| ScopedKey::new(KeyOwner::Credential(1), IdempotencyKey::new(k).unwrap())),
        ttl_ms: None,
    }
}

/// The first SKU name `{prefix}-{i}` (i < 60) that lives on `shard`.
fn sku_on(engine: &Engine, prefix: &str, shard: usize) -> String {
    (0..60)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| engine.shard_of(&sku(n)) == shard)
        .unwrap()
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_confirm_cancel_expire() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let engine = start(&backend, &clock, 2);
    let (v, created) = engine.upsert_sku(spec("tee", 5)).await.unwrap();
    assert!(created);
    assert_eq!(v.available, 5);
    let (_, created) = engine.upsert_sku(spec("tee", 5)).await.unwrap();
    assert!(!created);

    let r = engine
        .reserve(req("alice", &[("tee", 2)], None))
        .await
        .unwrap();
    assert_eq!(r.status, ReservationStatus::Held);
    assert_eq!(r.expires_at_ms, 1_000_000 + 60_000);
    let c = engine.confirm(r.id, "pay-1").await.unwrap();
    assert_eq!(c.status, ReservationStatus::Confirmed);
    let order = engine.order(c.order.unwrap()).await.unwrap();
    assert_eq!(order.total_cents, 2_000);
    assert_eq!(order.payment_ref, "pay-1");
    // Confirm again with the same payment ref: same order.
    let again = engine.confirm(r.id, "pay-1").await.unwrap();
    assert_eq!(again.order, c.order);
    assert!(matches!(
        engine.cancel(r.id).await,
        Err(CommandError::InvalidState { .. })
    ));

    let r2 = engine
        .reserve(req("bob", &[("tee", 1)], None))
        .await
        .unwrap();
    let c2 = engine.cancel(r2.id).await.unwrap();
    assert_eq!(c2.status, ReservationStatus::Released);
    assert_eq!(c2.release_reason, Some(ReleaseReason::Cancelled));

    let r3 = engine
        .reserve(req("carol", &[("tee", 3)], None))
        .await
        .unwrap();
    assert!(matches!(
        engine.reserve(req("dave", &[("tee", 1)], None)).await,
        Err(CommandError::SoldOut { available: 0, .. })
    ));
    assert!(engine.stats().sold_out_rejections >= 1);
    clock.advance(60_001);
    let e = engine.clone();
    let id = r3.id;
    wait_for(|| {
        futures::executor::block_on(e.reservation(id)).map(|v| v.status)
            == Ok(ReservationStatus::Expired)
    })
    .await;
    let v = engine.sku(sku("tee")).await.unwrap();
    assert_eq!((v.available, v.reserved, v.sold), (3, 0, 2));
    assert!(matches!(
        engine.confirm(id, "late").await,
        Err(CommandError::InvalidState {
            status: ReservationStatus::Expired,
            ..
        })
    ));
    let stats = engine.stats();
    assert_eq!(stats.reservations_confirmed, 1);
    assert_eq!(stats.reservations_expired, 1);
    assert!(stats.log_writable && engine.ready());
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_shard_all_or_nothing_and_idempotency() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(5_000));
    let engine = start(&backend, &clock, 3);
    // Find SKUs on different shards.
    let names: Vec<String> = (0..40).map(|i| format!("item-{i}")).collect();
    let a = names
        .iter()
        .find(|n| engine.shard_of(&sku(n)) == 0)
        .unwrap();
    let b = names
        .iter()
        .find(|n| engine.shard_of(&sku(n)) == 1)
        .unwrap();
    let c = names
        .iter()
        .find(|n| engine.shard_of(&sku(n)) == 2)
        .unwrap();
    engine.upsert_sku(spec(a, 10)).await.unwrap();
    engine.upsert_sku(spec(b, 10)).await.unwrap();
    let mut short = spec(c, 1);
    short.reservation_ttl_ms = 1_000;
    engine.upsert_sku(short).await.unwrap();

    let r = engine
        .reserve(req("x", &[(c, 1), (a, 2), (b, 3)], Some("k1")))
        .await
        .unwrap();
    let order: Vec<_> = r.lines.iter().map(|l| l.sku.as_str().to_string()).collect();
    assert_eq!(order, vec![c.clone(), a.clone(), b.clone()]);
    assert_eq!(r.expires_at_ms, 6_000, "shortest TTL of all lines");
    // Idempotent retry, even though c is now sold out.
    let again = engine
        .reserve(req("x", &[(c, 1), (a, 2), (b, 3)], Some("k1")))
        .await
        .unwrap();
    assert_eq!(again.id, r.id);
    assert_eq!(
        engine
            .reserve(req("x", &[(c, 1), (a, 1)], Some("k1")))
            .await,
        Err(CommandError::IdempotencyMismatch)
    );
    // A group failing on one part leaves nothing held.
    let fail = engine
        .reserve(req("y", &[(a, 1), (b, 8)], None))
        .await
        .unwrap_err();
    assert!(matches!(fail, CommandError::SoldOut { .. }), "{fail:?}");
    let mut lim = spec(b, 20);
    lim.per_buyer_limit = Some(1);
    engine.upsert_sku(lim).await.unwrap();
    let fail = engine
        .reserve(req("y", &[(a, 1), (b, 2)], None))
        .await
        .unwrap_err();
    assert!(matches!(fail, CommandError::BuyerLimit { .. }), "{fail:?}");
    let va = engine.sku(sku(a)).await.unwrap();
    assert_eq!((va.available, va.reserved), (8, 2));
    assert_eq!(engine.available_now(&sku(a)), Some(8));

    let conf = engine.confirm(r.id, "p").await.unwrap();
    assert_eq!(conf.lines.len(), 3);
    let o = engine.order(conf.order.unwrap()).await.unwrap();
    assert_eq!(o.lines.len(), 3);
    assert_eq!(o.total_cents, 6_000);
    let vb = engine.sku(sku(b)).await.unwrap();
    assert_eq!((vb.reserved, vb.sold), (0, 3));

    // Expiry of a group on the home shard releases every part.
    let g = engine
        .reserve(req("z", &[(a, 1), (b, 1)], None))
        .await
        .unwrap();
    clock.advance(61_000);
    let e = engine.clone();
    wait_for(|| {
        futures::executor::block_on(e.sku(sku(b)))
            .map(|v| v.reserved == 0)
            .unwrap_or(false)
    })
    .await;
    assert_eq!(
        engine.reservation(g.id).await.unwrap().status,
        ReservationStatus::Expired
    );
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_failure_makes_unavailable_then_recovers() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(0));
    let engine = start(&backend, &clock, 1);
    engine.upsert_sku(spec("hat", 10)).await.unwrap();
    backend.set_failing(true);
    let started = std::time::Instant::now();
    let r = engine.reserve(req("a", &[("hat", 1)], Some("key-1"))).await;
    assert!(matches!(r, Err(CommandError::Unavailable(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!engine.ready());
    assert!(!engine.stats().log_writable);
    // New mutations are refused fast.
    let t = std::time::Instant::now();
    let r = engine.reserve(req("b", &[("hat", 1)], None)).await;
    assert!(matches!(r, Err(CommandError::Unavailable(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_millis(500));
    backend.set_failing(false);
    let e = engine.clone();
    wait_for(|| e.ready()).await;
    // The first reservation was applied and is durable now; its key returns it.
    let again = engine
        .reserve(req("a", &[("hat", 1)], Some("key-1")))
        .await
        .unwrap();
    assert_eq!(again.status, ReservationStatus::Held);
    let v = engine.sku(sku("hat")).await.unwrap();
    assert_eq!(v.available + v.reserved + v.sold, 10);
    assert_eq!(v.reserved, 1);
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reaches_the_same_state() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(10_000));
    let engine = start(&backend, &clock, 2);
    for i in 0..6 {
        engine.upsert_sku(spec(&format!("s{i}"), 50)).await.unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..60u32 {
        let lines = [
            (format!("s{}", i % 6), 1 + i % 3),
            (format!("s{}", (i + 1) % 6), 1),
        ];
        let lines: Vec<(&str, u32)> = lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
        if let Ok(r) = engine.reserve(req(&format!("b{i}"), &lines, None)).await {
            ids.push(r.id);
        }
    }
    for (i, id) in ids.iter().enumerate() {
        match i % 3 {
            0 => drop(engine.confirm(*id, format!("p{i}")).await.unwrap()),
            1 => drop(engine.cancel(*id).await.unwrap()),
            _ => {}
        }
    }
    let before_levels = engine.stock_levels().await;
    let before: Vec<_> =
        futures::future::join_all(ids.iter().map(|id| engine.reservation(*id))).await;
    engine.shutdown();
    let engine = start(&backend, &clock, 2);
    let after: Vec<_> =
        futures::future::join_all(ids.iter().map(|id| engine.reservation(*id))).await;
    assert_eq!(before, after);
    // The same counts; recovered levels are labelled with their shard's log position, at or
    // after the last change a commit published (ADR 0033).
    let after_levels = engine.stock_levels().await;
    let counts = |ls: &[flashsale_engine::StockLevel]| -> Vec<_> {
        ls.iter()
            .map(|l| (l.sku.clone(), l.available, l.reserved, l.sold))
            .collect()
    };
    assert_eq!(counts(&before_levels), counts(&after_levels));
    for (b, a) in before_levels.iter().zip(&after_levels) {
        assert!(a.log_seq >= b.log_seq, "{b:?} then {a:?}");
        assert!(
            b.log_seq > 0,
            "a published level has its log position: {b:?}"
        );
    }
    for l in engine.stock_levels().await {
        assert_eq!(l.available + l.reserved + l.sold, 50);
        assert_eq!(engine.available_now(&l.sku), Some(l.available));
    }
    engine.shutdown();
}

/// The contract: same key + same body returns the original reservation; same key + another
/// body is refused, even when the other body's lines live on other shards than the first's;
/// and this holds across a restart (recovery from snapshot + log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_is_global_across_shards_and_restarts() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(50_000));
    let engine = start(&backend, &clock, 3);
    let (a, b, c) = (
        sku_on(&engine, "idem", 0),
        sku_on(&engine, "idem", 1),
        sku_on(&engine, "idem", 2),
    );
    for n in [&a, &b, &c] {
        engine.upsert_sku(spec(n, 10)).await.unwrap();
    }
    // Several keys so that some hash to a shard owning none of the lines.
    for k in 0..6 {
        let key = format!("key-{k}");
        let first = engine
            .reserve(req("ann", &[(&a, 1)], Some(&key)))
            .await
            .unwrap();
        assert_eq!(first.lines.len(), 1);
        assert_eq!(first.lines[0].sku, sku(&a));
        let again = engine
            .reserve(req("ann", &[(&a, 1)], Some(&key)))
            .await
            .unwrap();
        assert_eq!(again, first);
        for other in [&b, &c] {
            assert_eq!(
                engine.reserve(req("ann", &[(other, 1)], Some(&key))).await,
                Err(CommandError::IdempotencyMismatch),
                "key {key} reused with a first line on another shard"
            );
        }
        assert_eq!(
            engine
                .reserve(req("ann", &[(&b, 1), (&a, 1)], Some(&key)))
                .await,
            Err(CommandError::IdempotencyMismatch)
        );
    }
    let va = engine.sku(sku(&a)).await.unwrap();
    assert_eq!((va.available, va.reserved), (4, 6));
    for other in [&b, &c] {
        let v = engine.sku(sku(other)).await.unwrap();
        assert_eq!(
            (v.available, v.reserved),
            (10, 0),
            "nothing leaked on {other}"
        );
        assert_eq!(engine.available_now(&sku(other)), Some(10));
    }
    // Confirm one keyed reservation (its home may be a shard holding none of its lines).
    let r0 = engine
        .reserve(req("ann", &[(&a, 1)], Some("key-0")))
        .await
        .unwrap();
    let conf = engine.confirm(r0.id, "pay-0").await.unwrap();
    let order = engine.order(conf.order.unwrap()).await.unwrap();
    assert_eq!(order.lines, r0.lines);
    engine.shutdown();

    let engine = start(&backend, &clock, 3);
    for k in 0..6 {
        let key = format!("key-{k}");
        let again = engine
            .reserve(req("ann", &[(&a, 1)], Some(&key)))
            .await
            .unwrap();
        assert_eq!(again.lines[0].sku, sku(&a));
        assert_eq!(
            engine.reserve(req("ann", &[(&c, 1)], Some(&key))).await,
            Err(CommandError::IdempotencyMismatch),
            "after restart, key {key}"
        );
    }
    assert_eq!(
        engine.order(conf.order.unwrap()).await.unwrap().lines,
        r0.lines
    );
    let va = engine.sku(sku(&a)).await.unwrap();
    assert_eq!((va.available, va.reserved, va.sold), (4, 5, 1));
    engine.shutdown();
}

/// Released reservations and their keys are dropped once the retention period (default 24 h)
/// has passed since their release; confirmed ones and their orders stay.
/// `Engine::replay` answers a keyed request with the reservation its key already made (single-
/// or cross-shard, held or confirmed), without reserving anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_answers_a_key_without_reserving() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(50_000));
    let engine = start(&backend, &clock, 3);
    let (a, b) = (sku_on(&engine, "replay", 0), sku_on(&engine, "replay", 1));
    for n in [&a, &b] {
        engine.upsert_sku(spec(n, 10)).await.unwrap();
    }
    // Nothing to replay: no key, or a key never used; and nothing is held by asking.
    assert_eq!(engine.replay(&req("ann", &[(&a, 1)], None)).await, Ok(None));
    assert_eq!(
        engine.replay(&req("ann", &[(&a, 1)], Some("new"))).await,
        Ok(None)
    );
    assert_eq!(engine.sku(sku(&a)).await.unwrap().available, 10);
    for (key, lines) in [
        ("one", vec![(a.as_str(), 1)]),
        ("two", vec![(&a, 1), (&b, 2)]),
    ] {
        let first = engine.reserve(req("ann", &lines, Some(key))).await.unwrap();
        let replayed = engine.replay(&req("ann", &lines, Some(key))).await;
        assert_eq!(replayed, Ok(Some(first.clone())), "key {key}");
        // The same key with other lines is a mismatch, as for a reservation.
        assert_eq!(
            engine.replay(&req("ann", &[(&b, 1)], Some(key))).await,
            Err(CommandError::IdempotencyMismatch)
        );
        let confirmed = engine
            .confirm(first.id, format!("pay-{key}"))
            .await
            .unwrap();
        let replayed = engine.replay(&req("ann", &lines, Some(key))).await;
        assert_eq!(replayed, Ok(Some(confirmed)), "key {key} after its confirm");
    }
    // Only the two reservations hold or sold stock.
    assert_eq!(engine.sku(sku(&a)).await.unwrap().sold, 2);
    assert_eq!(engine.sku(sku(&b)).await.unwrap().sold, 2);
    assert_eq!(engine.sku(sku(&a)).await.unwrap().available, 8);
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_reservations_are_forgotten_after_retention() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let engine = start(&backend, &clock, 2);
    engine.upsert_sku(spec("ret", 10)).await.unwrap();
    let kept = engine
        .reserve(req("ann", &[("ret", 1)], Some("keep")))
        .await
        .unwrap();
    let kept = engine.confirm(kept.id, "pay").await.unwrap();
    let gone = engine
        .reserve(req("bob", &[("ret", 2)], Some("gone")))
        .await
        .unwrap();
    engine.cancel(gone.id).await.unwrap();
    clock.advance(flashsale_engine::shard::DEFAULT_RETENTION_MS - 1);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        engine.reservation(gone.id).await.unwrap().status,
        ReservationStatus::Released
    );
    clock.advance(1);
    let e = engine.clone();
    let id = gone.id;
    wait_for(|| futures::executor::block_on(e.reservation(id)).is_err()).await;
    assert_eq!(
        engine.reservation(gone.id).await,
        Err(CommandError::ReservationNotFound(gone.id))
    );
    // The key is free again: the same body makes a new reservation.
    let fresh = engine
        .reserve(req("bob", &[("ret", 2)], Some("gone")))
        .await
        .unwrap();
    assert_ne!(fresh.id, gone.id);
    // Confirmed reservations and orders stay, also across a restart.
    assert_eq!(engine.reservation(kept.id).await.unwrap(), kept);
    engine.shutdown();
    let engine = start(&backend, &clock, 2);
    assert_eq!(engine.reservation(kept.id).await.unwrap(), kept);
    assert!(engine.order(kept.order.unwrap()).await.is_ok());
    assert!(engine.reservation(gone.id).await.is_err());
    let v = engine.sku(sku("ret")).await.unwrap();
    assert_eq!((v.available, v.reserved, v.sold), (7, 2, 1));
    engine.shutdown();
}

#[test]
fn concurrent_reservers_never_oversell() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(0));
    let engine = start(&backend, &clock, 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        engine.upsert_sku(spec("hot", 100)).await.unwrap();
        engine.upsert_sku(spec("warm", 100)).await.unwrap();
    });
    let mut threads = Vec::new();
    for t in 0..4 {
        let engine = engine.clone();
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut held = 0u64;
                for i in 0..150 {
                    let lines: &[(&str, u32)] = if i % 2 == 0 {
                        &[("hot", 1)]
                    } else {
                        &[("hot", 1), ("warm", 1)]
                    };
                    match engine.reserve(req(&format!("t{t}-{i}"), lines, None)).await {
                        Ok(r) => {
                            held += 1;
                            if i % 5 == 0 {
                                engine.confirm(r.id, "p").await.unwrap();
                            }
                        }
                        Err(CommandError::SoldOut { .. }) | Err(CommandError::Busy(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                held
            })
        }));
    }
    let held: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    rt.block_on(async {
        let hot = engine.sku(sku("hot")).await.unwrap();
        assert_eq!(hot.available + hot.reserved + hot.sold, 100);
        assert_eq!(held, hot.reserved + hot.sold);
        assert_eq!(hot.available, 0);
        assert_eq!(engine.available_now(&sku("hot")), Some(0));
        let warm = engine.sku(sku("warm")).await.unwrap();
        assert_eq!(warm.available + warm.reserved + warm.sold, 100);
        assert_eq!(engine.available_now(&sku("warm")), Some(warm.available));
    });
    engine.shutdown();
}

/// The review's case through the real runtime and threads: two identical keyed requests at the
/// same moment for a line whose shard refuses it (buyer limit), the key's home being another
/// shard. Neither gets a reservation, nothing is an internal error, stock is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_keyed_duplicates_refused_on_another_shard_never_get_a_reservation() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let engine = start(&backend, &clock, 2);
    let mut s = spec("cap", 1_000);
    s.per_buyer_limit = Some(1);
    engine.upsert_sku(s).await.unwrap();
    engine
        .reserve(req("zed", &[("cap", 1)], None))
        .await
        .unwrap();
    let owner = engine.shard_of(&sku("cap"));
    let keys: Vec<String> = (0..2_000)
        .map(|i| format!("dup-{i}"))
        .filter(|k| {
            let k = ScopedKey::new(
                KeyOwner::Credential(1),
                IdempotencyKey::new(k.as_str()).unwrap(),
            );
            usize::from(flashsale_engine::shard::shard_of_key(&k, 2)) != owner
        })
        .take(200)
        .collect();
    for k in &keys {
        let (a, b) = tokio::join!(
            engine.reserve(req("zed", &[("cap", 1)], Some(k))),
            engine.reserve(req("zed", &[("cap", 1)], Some(k))),
        );
        for r in [a, b] {
            match r {
                Err(CommandError::BuyerLimit { .. })
                | Err(CommandError::IdempotencyInProgress { .. }) => {}
                other => panic!("key {k}: {other:?}"),
            }
        }
    }
    let v = engine.sku(sku("cap")).await.unwrap();
    assert_eq!((v.reserved, v.available), (1, 999));
    assert_eq!(engine.available_now(&sku("cap")), Some(999));
    engine.shutdown();
}

/// A pinned engine whose executors spin before parking (`spin_before_park_us`, ADR 0038)
/// serves reservations, durable and counted, like one that parks at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_executors_serve_reservations() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut cfg = EngineConfig::new(Arc::new(backend.clone()), clock.clone());
    cfg.shards = 2;
    cfg.pin_cores = true;
    cfg.spin_before_park_us = 50;
    let engine = Engine::start(cfg).unwrap();
    engine.upsert_sku(spec("spin", 3)).await.unwrap();
    for b in ["a", "b", "c"] {
        let r = engine.reserve(req(b, &[("spin", 1)], None)).await.unwrap();
        assert_eq!(r.status, ReservationStatus::Held);
    }
    assert!(matches!(
        engine.reserve(req("d", &[("spin", 1)], None)).await,
        Err(CommandError::SoldOut { available: 0, .. })
    ));
    let v = engine.sku(sku("spin")).await.unwrap();
    assert_eq!((v.available, v.reserved, v.sold), (0, 3, 0));
    engine.shutdown();
}
