//! Tasks run on the shard executors (`Engine::spawn_on_shards`) and the same-thread path:
//! a request made on a shard's own executor thread skips the queue, answers exactly as the
//! queued path does, requests for other shards still cross, and keyed retries still replay.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashsale_engine::log::memory::MemoryBackend;
use flashsale_engine::{
    CommandError, Engine, EngineConfig, ManualClock, ReservationStatus, ReservationView,
    ReserveRequest,
};
use flashsale_protocol::{BuyerId, IdempotencyKey, KeyOwner, ScopedKey};
use support::{sku, spec};

fn start(backend: &MemoryBackend, clock: &Arc<ManualClock>, shards: usize) -> Engine {
    let mut cfg = EngineConfig::new(Arc::new(backend.clone()), clock.clone());
    cfg.shards = shards;
    cfg.pin_cores = false;
    cfg.expiry_tick_ms = 2;
    Engine::start(cfg).unwrap()
}

fn req(buyer: &str, lines: &[(&str, u32)], key: Option<&str>) -> ReserveRequest {
    ReserveRequest {
        buyer: BuyerId::new(buyer).unwrap(),
        lines: lines.iter().map(|(s, q)| (sku(s), *q)).collect(),
        idempotency_key: key
            .map(|k| ScopedKey::new(KeyOwner::Credential(1), IdempotencyKey::new(k).unwrap())),
        ttl_ms: None,
    }
}

/// The first SKU name `{prefix}-{i}` that lives on `shard`.
fn sku_on(engine: &Engine, prefix: &str, shard: usize) -> String {
    (0..200)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| engine.shard_of(&sku(n)) == shard)
        .unwrap()
}

/// What one scenario answered, without ids or times (which differ between runs).
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    status: ReservationStatus,
    lines: Vec<(String, u32)>,
}

/// `v` with its SKUs named by role (`local` / `remote`), since the runs use different SKUs.
fn summary(v: &ReservationView, local: &str) -> Summary {
    Summary {
        status: v.status,
        lines: v
            .lines
            .iter()
            .map(|l| {
                let role = if l.sku.as_str() == local {
                    "local"
                } else {
                    "remote"
                };
                (role.to_owned(), l.qty)
            })
            .collect(),
    }
}

/// Everything a scenario observed.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    /// Reserve 2 of the local SKU, confirm it.
    local: (Summary, Summary),
    /// Reserve 1 of the other shard's SKU.
    remote: Summary,
    /// A keyed reserve and its retry: same id?
    retry_same_id: bool,
    /// The retry's summary.
    retry: Summary,
    /// The same key for another request.
    mismatch: Result<(), String>,
    /// Reserving more than is left.
    sold_out: Result<(), String>,
    /// A reservation read back.
    read: Summary,
}

/// The name of an error's variant (its fields hold ids that differ between runs).
fn variant(e: &CommandError) -> String {
    format!("{e:?}")
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Runs the scenario with `local` (a SKU of the calling shard, stock 3) and `remote` (another
/// shard's SKU); `tag` keeps keys and buyers apart between runs.
async fn scenario(engine: &Engine, local: &str, remote: &str, tag: &str) -> Observed {
    let held = engine
        .reserve(req(&format!("buyer-{tag}"), &[(local, 2)], None))
        .await
        .unwrap();
    let confirmed = engine.confirm(held.id, "pay-1").await.unwrap();
    let remote_view = engine
        .reserve(req(&format!("buyer-{tag}"), &[(remote, 1)], None))
        .await
        .unwrap();
    let key = format!("key-{tag}");
    let first = engine
        .reserve(req(&format!("buyer-{tag}"), &[(local, 1)], Some(&key)))
        .await
        .unwrap();
    let again = engine
        .reserve(req(&format!("buyer-{tag}"), &[(local, 1)], Some(&key)))
        .await
        .unwrap();
    let mismatch = engine
        .reserve(req(&format!("buyer-{tag}"), &[(remote, 1)], Some(&key)))
        .await
        .map(|_| ())
        .map_err(|e| variant(&e));
    let sold_out = engine
        .reserve(req(&format!("buyer-{tag}"), &[(local, 1)], None))
        .await
        .map(|_| ())
        .map_err(|e| match e {
            CommandError::SoldOut { .. } => "sold out".to_owned(),
            other => variant(&other),
        });
    let read = engine.reservation(first.id).await.unwrap();
    Observed {
        local: (summary(&held, local), summary(&confirmed, local)),
        remote: summary(&remote_view, local),
        retry_same_id: first.id == again.id,
        retry: summary(&again, local),
        mismatch,
        sold_out,
        read: summary(&read, local),
    }
}

/// Runs `scenario` on shard `shard`'s executor and returns what it observed.
async fn on_shard(engine: &Engine, shard: usize, local: String, remote: String) -> Observed {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let e = engine.clone();
    let task = Arc::new(move |s: usize| -> Pin<Box<dyn Future<Output = ()>>> {
        let e = e.clone();
        let (local, remote) = (local.clone(), remote.clone());
        let tx = if s == shard {
            tx.lock().unwrap().take()
        } else {
            None
        };
        Box::pin(async move {
            if let Some(tx) = tx {
                let seen = scenario(&e, &local, &remote, &format!("shard{s}")).await;
                let _ = tx.send(seen);
            }
        })
    });
    engine.spawn_on_shards(task).unwrap();
    tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("the scenario on the shard did not finish")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_thread_answers_as_the_queue() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(1_000));
    let engine = start(&backend, &clock, 2);
    let names: Vec<(String, String)> = (0..2)
        .map(|s| (sku_on(&engine, "q", s), sku_on(&engine, "t", s)))
        .collect();
    for (q, t) in &names {
        engine.upsert_sku(spec(q, 3)).await.unwrap();
        engine.upsert_sku(spec(t, 3)).await.unwrap();
    }
    // From a tokio thread: every request goes over the queues.
    let queued = scenario(&engine, &names[0].0, &names[1].0, "tokio").await;
    assert_eq!(engine.same_thread_requests(), 0);
    // From shard 0's executor, same scenario on fresh SKUs of the same shards.
    let before = engine.same_thread_requests();
    let on0 = on_shard(&engine, 0, names[0].1.clone(), names[1].1.clone()).await;
    let local_asks = engine.same_thread_requests() - before;
    assert_eq!(
        queued, on0,
        "same-thread answers differ from the queued ones"
    );
    // reserve, confirm, keyed reserve ×2 (+ probes), mismatch probe, read: several local asks.
    assert!(local_asks >= 5, "only {local_asks} same-thread requests");
    assert!(queued.retry_same_id);
    assert_eq!(queued.sold_out, Err("sold out".to_owned()));
    assert_eq!(queued.local.1.status, ReservationStatus::Confirmed);
    assert_eq!(queued.read.status, ReservationStatus::Held);
    assert!(queued.mismatch.is_err());

    // Shard 1 with its own SKU as the local one and shard 0's as the remote one.
    let l1 = sku_on(&engine, "u", 1);
    let r0 = sku_on(&engine, "v", 0);
    engine.upsert_sku(spec(&l1, 3)).await.unwrap();
    engine.upsert_sku(spec(&r0, 3)).await.unwrap();
    let on1 = on_shard(&engine, 1, l1.clone(), r0.clone()).await;
    assert_eq!(on1.local.1.status, ReservationStatus::Confirmed);
    assert!(on1.retry_same_id);
    assert_eq!(on1.sold_out, Err("sold out".to_owned()));

    // Every count adds up, and what the shards hold was logged (a restart sees the same).
    for n in [&names[0].1, &l1] {
        let v = engine.sku(sku(n)).await.unwrap();
        assert_eq!((v.available, v.reserved, v.sold), (0, 1, 2), "{n}");
    }
    engine.shutdown();
    let engine = start(&backend, &clock, 2);
    for (n, want) in [(&names[0].1, (0, 1, 2)), (&l1, (0, 1, 2)), (&r0, (2, 1, 0))] {
        let v = engine.sku(sku(n)).await.unwrap();
        assert_eq!((v.available, v.reserved, v.sold), want, "{n} after restart");
    }
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_tasks_stop_with_the_engine() {
    let backend = MemoryBackend::new();
    let clock = Arc::new(ManualClock::new(1_000));
    let engine = start(&backend, &clock, 2);
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = started.clone();
    let task = Arc::new(move |_s: usize| -> Pin<Box<dyn Future<Output = ()>>> {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // A task that never ends on its own.
        Box::pin(std::future::pending())
    });
    engine.spawn_on_shards(task).unwrap();
    for _ in 0..500 {
        if started.load(std::sync::atomic::Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 2);
    let e = engine.clone();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || e.shutdown()),
    )
    .await
    .expect("shutdown hung on a running shard task")
    .unwrap();
    let refused = engine.spawn_on_shards(Arc::new(|_| Box::pin(async {})));
    assert!(matches!(refused, Err(CommandError::Busy(_))));
}
