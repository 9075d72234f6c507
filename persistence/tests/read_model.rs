//! Read model against the real Postgres: logged Reserved/Confirmed/Released records become
//! `orders`, `order_lines` and `sku_stock` rows.

mod common;

use std::time::{Duration, Instant};

use common::{block_on, client, run, Schema, PG_URL};
use flashsale_engine::log::LogBackend;
use flashsale_persistence::{spawn_read_model, PostgresBackend, ReadModelConfig};
use flashsale_protocol::{
    encode_record, BuyerId, Event, Line, LogRecord, OrderId, ReleaseReason, ReservationId, SkuId,
    SkuSpec,
};

fn sku(s: &str) -> SkuId {
    SkuId::new(s).unwrap_or_else(|e| panic!("{e}"))
}

fn encoded(seq: u64, event: Event) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(
        &LogRecord {
            shard: 0,
            seq,
            event,
        },
        &mut out,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

fn spec(name: &str, stock: u64, price_cents: u64) -> SkuSpec {
    SkuSpec {
        sku: sku(name),
        name: format!("{name} shirt"),
        price_cents,
        stock,
        per_buyer_limit: None,
        sale_starts_at_ms: None,
        sale_ends_at_ms: None,
        reservation_ttl_ms: 60_000,
        max_hold_ms: flashsale_protocol::default_max_hold_ms(60_000),
        max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
    }
}

fn reserved(id: ReservationId, buyer: &str, lines: Vec<Line>, at_ms: u64) -> Event {
    Event::Reserved {
        id,
        buyer: BuyerId::new(buyer).unwrap_or_else(|e| panic!("{e}")),
        lines,
        expires_at_ms: at_ms + 60_000,
        idempotency_key: None,
        request_hash: 1,
        group: None,
        at_ms,
    }
}

#[test]
fn confirmed_reservations_become_orders_and_stock_is_tracked() {
    let schema = Schema::new("readmodel");
    let backend = PostgresBackend::with_schema(PG_URL, &schema.0)
        .unwrap_or_else(|e| panic!("postgres backend on {PG_URL}: {e}"));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let r1 = ReservationId::compose(0, 1);
    let r2 = ReservationId::compose(0, 2);
    let r3 = ReservationId::compose(0, 3);
    let order = OrderId::compose(0, 1);
    let line = |name: &str, qty: u32, price: u64| Line {
        sku: sku(name),
        qty,
        unit_price_cents: price,
    };
    let events = vec![
        Event::SkuUpserted {
            spec: spec("tee", 10, 1999),
            at_ms: now_ms,
        },
        Event::SkuUpserted {
            spec: spec("cap", 5, 500),
            at_ms: now_ms,
        },
        reserved(
            r1,
            "alice",
            vec![line("tee", 2, 1999), line("cap", 1, 500)],
            now_ms + 1,
        ),
        Event::Confirmed {
            id: r1,
            order,
            payment_ref: "pay_1".into(),
            at_ms: now_ms + 2,
        },
        reserved(r2, "bob", vec![line("tee", 1, 1999)], now_ms + 3),
        Event::Released {
            id: r2,
            reason: ReleaseReason::Cancelled,
            at_ms: now_ms + 4,
        },
        Event::Restocked {
            sku: sku("tee"),
            qty: 5,
            key: None,
            at_ms: now_ms + 5,
        },
        reserved(r3, "carol", vec![line("cap", 2, 500)], now_ms + 6),
    ];
    let records: Vec<Vec<u8>> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| encoded(i as u64 + 1, e))
        .collect();
    let n = records.len() as i64;
    let b = backend.clone();
    run(move || async move {
        let mut log = b.open(0, 1).await.unwrap_or_else(|e| panic!("open: {e}"));
        // Two flushes: the read model sees a reservation created in one batch and resolved
        // in a later one as well as within one.
        for (i, r) in records.iter().enumerate() {
            log.append(i as u64 + 1, r);
            if i == 2 {
                log.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
            }
        }
        log.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
    });

    let mut config = ReadModelConfig::for_backend(&backend, 1);
    config.batch_rows = 3; // several batches
    config.poll_interval = Duration::from_millis(50);
    let s = schema.0.clone();
    block_on(async move {
        let handle = spawn_read_model(config);
        let c = client().await;
        let started = Instant::now();
        loop {
            let pos: Option<i64> = c
                .query_opt(
                    &format!("SELECT seq FROM \"{s}\".read_model_position WHERE shard = 0"),
                    &[],
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .map(|r| r.get(0));
            if pos == Some(n) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "read model stuck at {pos:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let row = c
            .query_one(
                &format!(
                    "SELECT order_id, reservation_id, buyer, payment_ref, total_cents, \
                     tableoid::regclass::text, (extract(epoch from created_at) * 1000)::int8 \
                     FROM \"{s}\".orders"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.get::<_, String>(0), order.to_string());
        assert_eq!(row.get::<_, String>(1), r1.to_string());
        assert_eq!(row.get::<_, String>(2), "alice");
        assert_eq!(row.get::<_, String>(3), "pay_1");
        assert_eq!(row.get::<_, i64>(4), 2 * 1999 + 500);
        let partition: String = row.get(5);
        assert!(
            partition.contains("orders_2"),
            "order stored in monthly partition, got {partition}"
        );
        assert_eq!(row.get::<_, i64>(6), (now_ms + 2) as i64);
        let lines = c
            .query(
                &format!("SELECT sku, qty, unit_price_cents FROM \"{s}\".order_lines ORDER BY sku"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<(String, i32, i64)> = lines
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(lines, vec![("cap".into(), 1, 500), ("tee".into(), 2, 1999)]);
        let stock = c
            .query(
                &format!(
                    "SELECT sku, total, available, reserved, sold FROM \"{s}\".sku_stock ORDER BY sku"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let stock: Vec<(String, i64, i64, i64, i64)> = stock
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        assert_eq!(
            stock,
            vec![("cap".into(), 5, 2, 2, 1), ("tee".into(), 15, 13, 0, 2)]
        );
        // Carol's hold is still pending in the read model.
        let held: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM \"{s}\".read_model_reservations"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .get(0);
        assert_eq!(held, 1);
        // Partitions exist ahead of the current month.
        let parts: i64 = c
            .query_one(
                &format!(
                    "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent \
                     JOIN pg_namespace n ON n.oid = p.relnamespace \
                     WHERE p.relname = 'orders' AND n.nspname = '{s}'"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .get(0);
        assert!(parts >= 4, "default + current + 3 ahead, got {parts}");
        assert_eq!(
            handle
                .stats()
                .applied
                .load(std::sync::atomic::Ordering::Relaxed),
            n as u64
        );
        handle.stop().await.unwrap_or_else(|e| panic!("{e}"));
    });
}
