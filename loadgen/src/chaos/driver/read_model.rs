//! Reads the Postgres read model after the run (tables `orders`, `order_lines`, `sku_stock` in
//! the server's schema, see persistence/src/read_model.rs), once it has applied the whole log
//! (`read_model_position` has reached the last `log` row of every shard) or a deadline passed.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_postgres::NoTls;

use crate::chaos::history::{now_us, OrderLineRow, OrderRow, ReadModelSnapshot, SkuStockRow};

/// Longest wait for the read model to catch up with the log.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

fn valid_schema(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// Waits for the read model in `schema` at `url` to catch up, then reads it.
pub async fn snapshot(url: &str, schema: &str) -> anyhow::Result<ReadModelSnapshot> {
    anyhow::ensure!(valid_schema(schema), "invalid schema name {schema:?}");
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to Postgres to read the read model")?;
    let task = tokio::spawn(conn);
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let lag_sql = format!(
        "SELECT count(*) FROM (SELECT shard, max(seq) AS last FROM {schema}.log GROUP BY shard) l \
         LEFT JOIN {schema}.read_model_position p USING (shard) \
         WHERE coalesce(p.seq, 0) < l.last"
    );
    let caught_up = loop {
        let behind: i64 = client
            .query_one(&lag_sql, &[])
            .await
            .context("comparing the read model position with the log")?
            .try_get(0)?;
        if behind == 0 {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let orders = client
        .query(
            &format!("SELECT order_id, reservation_id, buyer, payment_ref FROM {schema}.orders"),
            &[],
        )
        .await
        .context("reading orders")?
        .iter()
        .map(|r| {
            Ok(OrderRow {
                order_id: r.try_get(0)?,
                reservation_id: r.try_get(1)?,
                buyer: r.try_get(2)?,
                payment_ref: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let order_lines = client
        .query(
            &format!("SELECT order_id, sku, qty FROM {schema}.order_lines"),
            &[],
        )
        .await
        .context("reading order_lines")?
        .iter()
        .map(|r| {
            let qty: i32 = r.try_get(2)?;
            Ok(OrderLineRow {
                order_id: r.try_get(0)?,
                sku: r.try_get(1)?,
                qty: qty.max(0) as u32,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let sku_stock = client
        .query(
            &format!("SELECT sku, total, reserved, sold FROM {schema}.sku_stock"),
            &[],
        )
        .await
        .context("reading sku_stock")?
        .iter()
        .map(|r| {
            Ok(SkuStockRow {
                sku: r.try_get(0)?,
                total: r.try_get(1)?,
                reserved: r.try_get(2)?,
                sold: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    drop(client);
    task.abort();
    Ok(ReadModelSnapshot {
        at_us: now_us(),
        caught_up,
        orders,
        order_lines,
        sku_stock,
    })
}
