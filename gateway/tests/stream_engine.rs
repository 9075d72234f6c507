//! The stock stream fed by the real engine: the snapshot and the updates a subscriber sees match
//! the engine's counts, every update keeps `available + reserved + sold == stock`, and a stalled
//! subscriber does not hold up reservations. Runs against both stream drivers.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod stream_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flashsale_engine::log::memory::MemoryBackend;
use flashsale_engine::{Engine, EngineConfig, ReserveRequest, SystemClock};
use flashsale_gateway::stream::{StockHub, StreamDriver};
use flashsale_protocol::{BuyerId, SkuSpec};
use flashsale_stream_client::{Connector, Session, StreamEvent, Subscription};
use stream_support::*;

const STOCK: u64 = 500;

fn spec(id: &str) -> SkuSpec {
    SkuSpec {
        sku: sku(id),
        name: id.to_string(),
        price_cents: 1_000,
        stock: STOCK,
        per_buyer_limit: None,
        sale_starts_at_ms: None,
        sale_ends_at_ms: None,
        reservation_ttl_ms: 60_000,
        max_hold_ms: flashsale_protocol::default_max_hold_ms(60_000),
        max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
    }
}

async fn start_engine(hub: &Arc<StockHub>) -> Engine {
    let mut cfg = EngineConfig::new(Arc::new(MemoryBackend::new()), Arc::new(SystemClock));
    cfg.shards = 2;
    cfg.pin_cores = false;
    cfg.observer = Some(hub.clone());
    tokio::task::spawn_blocking(move || Engine::start(cfg))
        .await
        .expect("start task")
        .expect("engine starts")
}

type Counts = BTreeMap<String, (u64, u64, u64)>;

async fn engine_counts(engine: &Engine) -> Counts {
    engine
        .stock_levels()
        .await
        .into_iter()
        .map(|l| {
            (
                l.sku.as_str().to_string(),
                (l.available, l.reserved, l.sold),
            )
        })
        .collect()
}

async fn stream_matches_the_engine_and_a_stalled_reader_does_not_hold_up_reservations(
    driver: StreamDriver,
) {
    let hub = StockHub::new(4096);
    let engine = start_engine(&hub).await;
    for id in ["tee", "mug"] {
        engine.upsert_sku(spec(id)).await.expect("upsert");
    }
    hub.seed(&engine.stock_levels().await);
    let server = TestServer::start(driver, hub.clone(), |c| c.lag_limit = 64).await;

    // Snapshot equals the engine's counts.
    let mut sub = server.subscriber(Subscription::All);
    assert!(matches!(
        next_non_heartbeat(&mut sub).await,
        StreamEvent::Connected { .. }
    ));
    let mut seen: Counts = match next_non_heartbeat(&mut sub).await {
        StreamEvent::Snapshot { levels, .. } => levels
            .into_iter()
            .map(|l| {
                (
                    l.sku.as_str().to_string(),
                    (l.available, l.reserved, l.sold),
                )
            })
            .collect(),
        other => panic!("expected a snapshot, got {other:?}"),
    };
    assert_eq!(seen, engine_counts(&engine).await);

    // A subscriber that never reads, with a tiny flow-control window.
    let mut options = server.options();
    options.receive_window = Some(8 * 1024);
    let connector = Connector::new(&options.trust, options.receive_window).expect("connector");
    let (_stalled, _) = Session::open(&connector, &options, None)
        .await
        .expect("stalled session");

    // Reservations, confirmations and cancellations from several tasks.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let id = if (t + i) % 2 == 0 { "tee" } else { "mug" };
                let request = ReserveRequest {
                    buyer: BuyerId::new(format!("buyer-{t}-{i}")).unwrap(),
                    lines: vec![(sku(id), 1 + (i % 3) as u32)],
                    idempotency_key: None,
                    ttl_ms: None,
                };
                let r = engine.reserve(request).await.expect("reserve");
                match i % 3 {
                    0 => {
                        engine
                            .confirm(r.id, format!("pay-{t}-{i}"))
                            .await
                            .expect("confirm");
                    }
                    1 => {
                        engine.cancel(r.id).await.expect("cancel");
                    }
                    _ => {}
                }
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("reservations are not held up by a stalled subscriber")
            .expect("reservation task");
    }
    let want = engine_counts(&engine).await;
    assert_ne!(want.get("tee").map(|c| c.2), Some(0), "some units sold");

    // The healthy subscriber converges on the engine's counts; every update it sees is a
    // consistent level of its SKU.
    let mut updates = 0;
    while seen != want {
        match next_non_heartbeat(&mut sub).await {
            StreamEvent::Update(u) => {
                assert_eq!(u.available + u.reserved + u.sold, STOCK, "{u:?}");
                seen.insert(
                    u.sku.as_str().to_string(),
                    (u.available, u.reserved, u.sold),
                );
                updates += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(updates > 0);
    assert!(hub.stats().observed > 0);

    server.shutdown().await;
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .expect("engine shutdown");
}

on_both_drivers!(stream_matches_the_engine_and_a_stalled_reader_does_not_hold_up_reservations,);
