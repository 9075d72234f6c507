//! The engine over each real log backend: after a mixed workload (with snapshots taken along
//! the way), a restart reaches exactly the state that was acknowledged, and reservations whose
//! TTL passed while the process was down are released at start-up.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use flashsale_engine::{
    CommandError, Engine, EngineConfig, LogBackend, ManualClock, ReservationStatus, ReserveRequest,
};
use flashsale_persistence::{EmbeddedBackend, PostgresBackend};
use flashsale_protocol::{BuyerId, ReservationId, SkuId, SkuSpec};
use futures::executor::block_on;

const T0_MS: u64 = 1_800_000_000_000;

fn sku(s: &str) -> SkuId {
    SkuId::new(s).unwrap()
}

fn spec(id: &str, stock: u64, ttl_ms: u64) -> SkuSpec {
    SkuSpec {
        sku: sku(id),
        name: format!("item {id}"),
        price_cents: 1000,
        stock,
        per_buyer_limit: Some(3),
        sale_starts_at_ms: None,
        sale_ends_at_ms: None,
        reservation_ttl_ms: ttl_ms,
        max_hold_ms: flashsale_protocol::default_max_hold_ms(ttl_ms),
        max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
    }
}

fn start(log: Arc<dyn LogBackend>, clock: Arc<ManualClock>) -> Engine {
    let mut config = EngineConfig::new(log, clock);
    config.shards = 2;
    config.pin_cores = false;
    // Small, so the workload crosses several snapshots and recovery is snapshot + log tail.
    config.snapshot_every_events = 40;
    config.snapshot_state_factor = 0;
    Engine::start(config).unwrap()
}

/// Everything observable about the engine: every SKU's counts and every reservation's view.
fn digest(engine: &Engine, ids: &[ReservationId]) -> String {
    let mut out = String::new();
    for view in block_on(engine.list_skus(None, 1000)).unwrap() {
        out += &format!("{view:?}\n");
    }
    for id in ids {
        out += &format!("{:?}\n", block_on(engine.reservation(*id)));
    }
    out
}

/// Reserves, confirms, cancels (single- and cross-shard lines); returns every id it made.
fn workload(engine: &Engine, clock: &ManualClock) -> Vec<ReservationId> {
    for (id, ttl) in [
        ("long-a", 3_600_000),
        ("long-b", 3_600_000),
        ("short", 1_000),
    ] {
        block_on(engine.upsert_sku(spec(id, 120, ttl))).unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..150u32 {
        clock.advance(7);
        let lines = match i % 3 {
            0 => vec![(sku("long-a"), 1)],
            1 => vec![(sku("long-a"), 1), (sku("long-b"), 2)],
            _ => vec![(sku("long-b"), 1)],
        };
        let request = ReserveRequest {
            buyer: BuyerId::new(format!("buyer-{}", i % 40)).unwrap(),
            lines,
            idempotency_key: None,
            ttl_ms: None,
        };
        match block_on(engine.reserve(request)) {
            Ok(view) => {
                ids.push(view.id);
                match i % 4 {
                    0 => {
                        block_on(engine.confirm(view.id, format!("pay-{i}"))).unwrap();
                    }
                    1 => {
                        block_on(engine.cancel(view.id)).unwrap();
                    }
                    _ => {}
                }
            }
            Err(CommandError::SoldOut { .. } | CommandError::BuyerLimit { .. }) => {}
            Err(e) => panic!("reserve {i}: {e}"),
        }
    }
    // Holds on the short-TTL SKU: they must expire while the engine is down.
    for i in 0..5 {
        let request = ReserveRequest {
            buyer: BuyerId::new(format!("late-{i}")).unwrap(),
            lines: vec![(sku("short"), 2)],
            idempotency_key: None,
            ttl_ms: None,
        };
        ids.push(block_on(engine.reserve(request)).unwrap().id);
    }
    ids
}

fn restart_reaches_the_same_state(log: Arc<dyn LogBackend>) {
    let clock = Arc::new(ManualClock::new(T0_MS));
    let engine = start(log.clone(), clock.clone());
    let ids = workload(&engine, &clock);
    let before = digest(&engine, &ids);
    let short_before = block_on(engine.sku(sku("short"))).unwrap();
    assert_eq!(short_before.reserved, 10, "{short_before:?}");
    engine.shutdown();

    // Same clock: the restarted engine shows exactly the acknowledged state.
    let engine = start(log.clone(), clock.clone());
    assert_eq!(digest(&engine, &ids), before, "state differs after restart");
    engine.shutdown();

    // Down for longer than the short TTL: those holds are released at start-up.
    clock.advance(5_000);
    let engine = start(log, clock);
    let short = block_on(engine.sku(sku("short"))).unwrap();
    assert_eq!(
        short.reserved, 0,
        "expired holds not released at start-up: {short:?}"
    );
    assert_eq!(short.available, short.total);
    for id in &ids[ids.len() - 5..] {
        let view = block_on(engine.reservation(*id)).unwrap();
        assert_eq!(view.status, ReservationStatus::Expired, "{view:?}");
    }
    for view in block_on(engine.list_skus(None, 1000)).unwrap() {
        assert_eq!(
            view.available + view.reserved + view.sold,
            view.total,
            "{view:?}"
        );
    }
    engine.shutdown();
}

#[test]
fn embedded_log_restart_reaches_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedBackend::open(dir.path()).unwrap();
    restart_reaches_the_same_state(Arc::new(log));
}

#[test]
fn postgres_log_restart_reaches_the_same_state() {
    let schema = format!("engine_recovery_{}", std::process::id());
    let log = PostgresBackend::with_schema(common::PG_URL, &schema)
        .unwrap_or_else(|e| panic!("postgres at {} unreachable: {e}", common::PG_URL));
    restart_reaches_the_same_state(Arc::new(log));
    common::block_on(async {
        let client = common::client().await;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .unwrap();
    });
}
