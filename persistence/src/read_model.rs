//! The Postgres read model: a background tokio task that tails the durable log table of the
//! Postgres backend and maintains, for other systems, `orders` (partitioned by month on
//! `created_at`, partitions created ahead), `order_lines` and `sku_stock`.
//!
//! It only reads records that are already committed, on its own connection, so it can never
//! block or slow an acknowledgement; it may lag at peak and catches up afterwards. Each batch
//! of events and the new position (`read_model_position`) commit in one transaction, so every
//! event is applied exactly once across restarts. Held reservations live in
//! `read_model_reservations` until confirmed or released.
//!
//! Supported source: the Postgres backend's `log` table (same schema). The embedded backend's
//! segment files are not tailed (see `docs/adr/0006-read-model.md`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flashsale_protocol::{decode_record, Event, ShardId};
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls, Transaction};

use crate::postgres::schema::{quoted, valid_schema_name};
use crate::{PersistenceError, PostgresBackend};

/// What the read model reads and writes.
#[derive(Debug, Clone)]
pub struct ReadModelConfig {
    /// Connection settings.
    pub pg: tokio_postgres::Config,
    /// Schema of the Postgres log (the read-model tables live there too).
    pub schema: String,
    /// Number of shards whose logs are tailed (`0..shard_count`).
    pub shard_count: u16,
    /// Most log rows applied per transaction.
    pub batch_rows: i64,
    /// Pause when every shard is caught up.
    pub poll_interval: Duration,
    /// How many months of `orders` partitions exist ahead of the current month.
    pub partitions_ahead_months: u32,
}

impl ReadModelConfig {
    /// Settings tailing `backend`'s log for `shard_count` shards, with defaults (1,000 rows a
    /// batch, 200 ms poll, 3 months of partitions ahead).
    pub fn for_backend(backend: &PostgresBackend, shard_count: u16) -> ReadModelConfig {
        ReadModelConfig {
            pg: backend.pg_config().clone(),
            schema: backend.schema().to_string(),
            shard_count,
            batch_rows: 1_000,
            poll_interval: Duration::from_millis(200),
            partitions_ahead_months: 3,
        }
    }
}

/// Counters the read model updates while it runs.
#[derive(Debug, Default)]
pub struct ReadModelStats {
    /// Log records applied since start.
    pub applied: AtomicU64,
    /// Errors (connection losses, failed batches) since start; each is retried.
    pub errors: AtomicU64,
}

/// A read model running as a tokio task; stop it with [`ReadModelHandle::stop`].
#[derive(Debug)]
pub struct ReadModelHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), PersistenceError>>,
    stats: Arc<ReadModelStats>,
}

impl ReadModelHandle {
    /// The running counters.
    pub fn stats(&self) -> &ReadModelStats {
        &self.stats
    }

    /// Asks the task to stop after its current batch and waits for it.
    pub async fn stop(mut self) -> Result<(), PersistenceError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(PersistenceError::Runtime(format!("read model task: {e}"))),
        }
    }
}

/// Spawns [`run_read_model`] on the current tokio runtime (call from within one).
pub fn spawn_read_model(config: ReadModelConfig) -> ReadModelHandle {
    let (tx, rx) = oneshot::channel::<()>();
    let stats = Arc::new(ReadModelStats::default());
    let task = tokio::spawn(run_read_model(config, stats.clone(), async move {
        let _ = rx.await;
    }));
    ReadModelHandle {
        stop: Some(tx),
        task,
        stats,
    }
}

/// Tails the log into the read-model tables until `shutdown` completes. Connection errors are
/// logged, counted and retried with backoff; only invalid configuration ends it early.
/// Undecodable records are skipped with an error log (they cannot be applied, and stopping
/// would freeze the read model for every other record).
pub async fn run_read_model(
    config: ReadModelConfig,
    stats: Arc<ReadModelStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PersistenceError> {
    if !valid_schema_name(&config.schema) {
        return Err(PersistenceError::Config(format!(
            "invalid schema name {:?}",
            config.schema
        )));
    }
    if config.batch_rows <= 0 {
        return Err(PersistenceError::Config(
            "batch_rows must be positive".into(),
        ));
    }
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = run_session(&config, &stats);
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            res = session => {
                if let Err(e) = res {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "read model: retrying after error");
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's worth of work; returns on error.
async fn run_session(
    config: &ReadModelConfig,
    stats: &ReadModelStats,
) -> Result<(), PersistenceError> {
    let (mut client, connection) = config.pg.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    let res = async {
        let s = quoted(&config.schema);
        let mut last_partition_check: Option<std::time::Instant> = None;
        loop {
            if last_partition_check.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                ensure_partitions(&client, &s, config.partitions_ahead_months).await?;
                last_partition_check = Some(std::time::Instant::now());
            }
            let mut busy = false;
            for shard in 0..config.shard_count {
                let n = apply_batch(&mut client, &s, shard, config.batch_rows).await?;
                stats.applied.fetch_add(n, Ordering::Relaxed);
                busy |= n as i64 == config.batch_rows;
            }
            if !busy {
                tokio::time::sleep(config.poll_interval).await;
            }
        }
    }
    .await;
    driver.abort();
    res
}

/// First day of the month `months` after (year, month).
fn month_add(year: i32, month: u8, months: u32) -> (i32, u8) {
    let idx = year as i64 * 12 + (month as i64 - 1) + months as i64;
    ((idx / 12) as i32, (idx % 12 + 1) as u8)
}

/// Creates the monthly `orders` partitions from the current month to `ahead` months later.
pub async fn ensure_partitions(
    client: &Client,
    s: &str,
    ahead: u32,
) -> Result<(), PersistenceError> {
    let now = time::OffsetDateTime::now_utc();
    let (y0, m0) = (now.year(), u8::from(now.month()));
    for i in 0..=ahead {
        let (y, m) = month_add(y0, m0, i);
        let (ny, nm) = month_add(y0, m0, i + 1);
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {s}.orders_{y:04}_{m:02} PARTITION OF {s}.orders \
             FOR VALUES FROM ('{y:04}-{m:02}-01 00:00:00+00') TO ('{ny:04}-{nm:02}-01 00:00:00+00')"
        );
        if let Err(e) = client.batch_execute(&sql).await {
            if e.is_closed() {
                return Err(e.into());
            }
            // E.g. rows for that month already sit in the default partition.
            tracing::warn!(error = %e, year = y, month = m, "read model: cannot create orders partition");
        }
    }
    Ok(())
}

/// A held reservation part as the read model keeps it.
#[derive(Debug, Clone)]
struct Held {
    buyer: String,
    skus: Vec<String>,
    qtys: Vec<i32>,
    prices: Vec<i64>,
}

#[derive(Debug, Default)]
struct SkuDelta {
    /// Absolute settings from a `SkuUpserted` in this batch: name, price, total, at.
    upsert: Option<(String, i64, i64)>,
    total: i64,
    reserved: i64,
    sold: i64,
    at_ms: u64,
}

struct Order {
    order_id: String,
    reservation_id: String,
    buyer: String,
    payment_ref: String,
    at_ms: i64,
    held: Held,
}

/// Applies up to `limit` log rows of `shard` after its position; returns how many.
async fn apply_batch(
    client: &mut Client,
    s: &str,
    shard: ShardId,
    limit: i64,
) -> Result<u64, PersistenceError> {
    let shard_i = shard as i16;
    let tx = client.transaction().await?;
    tx.execute(
        &format!(
            "INSERT INTO {s}.read_model_position (shard, seq) VALUES ($1, 0) \
             ON CONFLICT (shard) DO NOTHING"
        ),
        &[&shard_i],
    )
    .await?;
    let pos: i64 = tx
        .query_one(
            &format!("SELECT seq FROM {s}.read_model_position WHERE shard = $1 FOR UPDATE"),
            &[&shard_i],
        )
        .await?
        .try_get(0)?;
    let rows = tx
        .query(
            &format!(
                "SELECT seq, record FROM {s}.log WHERE shard = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ),
            &[&shard_i, &pos, &limit],
        )
        .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let mut events = Vec::with_capacity(rows.len());
    let mut last = pos;
    for row in &rows {
        let seq: i64 = row.try_get(0)?;
        let rec: &[u8] = row.try_get(1)?;
        last = seq;
        match decode_record(rec) {
            Ok(r) => events.push(r.event),
            Err(e) => {
                tracing::error!(shard, seq, error = %e, "read model: undecodable log record skipped")
            }
        }
    }
    // Pass 1: reservations resolved in this batch but created earlier are loaded at once.
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut created: Vec<String> = Vec::new();
    let mut wanted: Vec<String> = Vec::new();
    for e in &events {
        match e {
            Event::Reserved { id, .. } => created.push(id.to_string()),
            Event::Confirmed { id, .. } | Event::Released { id, .. } => {
                let id = id.to_string();
                if !created.contains(&id) {
                    wanted.push(id);
                }
            }
            _ => {}
        }
    }
    if !wanted.is_empty() {
        for row in tx
            .query(
                &format!(
                    "SELECT reservation_id, buyer, skus, qtys, prices FROM {s}.read_model_reservations \
                     WHERE shard = $1 AND reservation_id = ANY($2)"
                ),
                &[&shard_i, &wanted],
            )
            .await?
        {
            held.insert(
                row.try_get(0)?,
                Held {
                    buyer: row.try_get(1)?,
                    skus: row.try_get(2)?,
                    qtys: row.try_get(3)?,
                    prices: row.try_get(4)?,
                },
            );
        }
    }
    // Pass 2: fold the events.
    let mut skus: HashMap<String, SkuDelta> = HashMap::new();
    let mut removed: Vec<String> = Vec::new();
    let mut orders: Vec<Order> = Vec::new();
    for e in events {
        match e {
            Event::SkuUpserted { spec, at_ms } => {
                let d = skus.entry(spec.sku.to_string()).or_default();
                d.upsert = Some((spec.name, spec.price_cents as i64, spec.stock as i64));
                d.total = 0;
                d.at_ms = d.at_ms.max(at_ms);
            }
            Event::Restocked {
                sku, qty, at_ms, ..
            } => {
                let d = skus.entry(sku.to_string()).or_default();
                d.total += qty as i64;
                d.at_ms = d.at_ms.max(at_ms);
            }
            Event::Reserved {
                id,
                buyer,
                lines,
                at_ms,
                ..
            } => {
                let mut h = Held {
                    buyer: buyer.to_string(),
                    skus: Vec::with_capacity(lines.len()),
                    qtys: Vec::with_capacity(lines.len()),
                    prices: Vec::with_capacity(lines.len()),
                };
                for l in lines {
                    let d = skus.entry(l.sku.to_string()).or_default();
                    d.reserved += i64::from(l.qty);
                    d.at_ms = d.at_ms.max(at_ms);
                    h.skus.push(l.sku.to_string());
                    h.qtys.push(l.qty as i32);
                    h.prices.push(l.unit_price_cents as i64);
                }
                held.insert(id.to_string(), h);
            }
            Event::Confirmed {
                id,
                order,
                payment_ref,
                at_ms,
            } => {
                let rid = id.to_string();
                let Some(h) = held.remove(&rid) else {
                    tracing::warn!(shard, reservation = %rid, "read model: confirm of unknown reservation");
                    continue;
                };
                for (sku, qty) in h.skus.iter().zip(&h.qtys) {
                    let d = skus.entry(sku.clone()).or_default();
                    d.reserved -= i64::from(*qty);
                    d.sold += i64::from(*qty);
                    d.at_ms = d.at_ms.max(at_ms);
                }
                removed.push(rid.clone());
                orders.push(Order {
                    order_id: order.to_string(),
                    reservation_id: rid,
                    buyer: h.buyer.clone(),
                    payment_ref: payment_ref.into(),
                    at_ms: at_ms as i64,
                    held: h,
                });
            }
            Event::Released { id, at_ms, .. } => {
                let rid = id.to_string();
                let Some(h) = held.remove(&rid) else {
                    tracing::warn!(shard, reservation = %rid, "read model: release of unknown reservation");
                    continue;
                };
                for (sku, qty) in h.skus.iter().zip(&h.qtys) {
                    let d = skus.entry(sku.clone()).or_default();
                    d.reserved -= i64::from(*qty);
                    d.at_ms = d.at_ms.max(at_ms);
                }
                removed.push(rid);
            }
            // The read model keeps no expiry times: an extension changes no row.
            Event::Extended { .. } => {}
        }
    }
    write_batch(&tx, s, shard_i, &held, &created, &removed, &orders, &skus).await?;
    tx.execute(
        &format!("UPDATE {s}.read_model_position SET seq = $2 WHERE shard = $1"),
        &[&shard_i, &last],
    )
    .await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

#[allow(clippy::too_many_arguments)]
async fn write_batch(
    tx: &Transaction<'_>,
    s: &str,
    shard: i16,
    held: &HashMap<String, Held>,
    created: &[String],
    removed: &[String],
    orders: &[Order],
    skus: &HashMap<String, SkuDelta>,
) -> Result<(), PersistenceError> {
    // Reservations still held that were created in this batch.
    for id in created {
        if let Some(h) = held.get(id) {
            tx.execute(
                &format!(
                    "INSERT INTO {s}.read_model_reservations (reservation_id, shard, buyer, skus, qtys, prices) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
                ),
                &[id, &shard, &h.buyer, &h.skus, &h.qtys, &h.prices],
            )
            .await?;
        }
    }
    if !removed.is_empty() {
        tx.execute(
            &format!(
                "DELETE FROM {s}.read_model_reservations WHERE shard = $1 AND reservation_id = ANY($2)"
            ),
            &[&shard, &removed],
        )
        .await?;
    }
    for o in orders {
        let total: i64 = o
            .held
            .qtys
            .iter()
            .zip(&o.held.prices)
            .map(|(q, p)| i64::from(*q) * p)
            .sum();
        // Parts of a multi-shard order arrive from each shard with the same order id and time.
        tx.execute(
            &format!(
                "INSERT INTO {s}.orders (order_id, reservation_id, buyer, payment_ref, total_cents, created_at) \
                 VALUES ($1, $2, $3, $4, $5, to_timestamp($6::int8 / 1000.0)) \
                 ON CONFLICT (order_id, created_at) DO UPDATE \
                 SET total_cents = {s}.orders.total_cents + excluded.total_cents"
            ),
            &[&o.order_id, &o.reservation_id, &o.buyer, &o.payment_ref, &total, &o.at_ms],
        )
        .await?;
        tx.execute(
            &format!(
                "INSERT INTO {s}.order_lines (order_id, sku, qty, unit_price_cents, created_at) \
                 SELECT $1, t.sku, t.qty, t.price, to_timestamp($2::int8 / 1000.0) \
                 FROM unnest($3::text[], $4::int4[], $5::int8[]) AS t(sku, qty, price) \
                 ON CONFLICT (order_id, sku) DO NOTHING"
            ),
            &[
                &o.order_id,
                &o.at_ms,
                &o.held.skus,
                &o.held.qtys,
                &o.held.prices,
            ],
        )
        .await?;
    }
    for (sku, d) in skus {
        let at = d.at_ms as i64;
        if let Some((name, price, total)) = &d.upsert {
            tx.execute(
                &format!(
                    "INSERT INTO {s}.sku_stock (sku, name, price_cents, total, updated_at) \
                     VALUES ($1, $2, $3, $4, to_timestamp($5::int8 / 1000.0)) \
                     ON CONFLICT (sku) DO UPDATE SET name = excluded.name, \
                     price_cents = excluded.price_cents, total = excluded.total, \
                     updated_at = excluded.updated_at"
                ),
                &[sku, name, price, total, &at],
            )
            .await?;
        }
        let n = tx
            .execute(
                &format!(
                    "UPDATE {s}.sku_stock SET total = total + $2, reserved = reserved + $3, \
                     sold = sold + $4, updated_at = greatest(updated_at, to_timestamp($5::int8 / 1000.0)) \
                     WHERE sku = $1"
                ),
                &[sku, &d.total, &d.reserved, &d.sold, &at],
            )
            .await?;
        if n == 0 {
            tracing::warn!(sku = %sku, "read model: stock change for a SKU it has not seen created");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::month_add;

    #[test]
    fn months_roll_over_years() {
        assert_eq!(month_add(2026, 11, 0), (2026, 11));
        assert_eq!(month_add(2026, 11, 2), (2027, 1));
        assert_eq!(month_add(2026, 12, 13), (2028, 1));
    }
}
