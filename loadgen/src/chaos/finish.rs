//! The read-back after the load, on a healthy server: every reservation key whose outcome is
//! still unknown is sent again (same key, same body) until the answer is definite; once every
//! hold has had time to expire, every acknowledged reservation and every SKU is read, and every
//! buyer's orders page by page to the last. All of it is recorded in the history (phase
//! `final`), where the checker finds the final state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::client::SendMode;
use super::history::{now_us, Call, Op, Outcome, Phase};
use super::workload::{dedup_open_keys, effect_unknown, lock, OpenKey, Workload};
use crate::conn::Conn;

/// Connections used by the read-back.
pub const FINAL_CONNECTIONS: usize = 8;
/// Attempts per request of the read-back.
pub const FINAL_ATTEMPTS: usize = 20;
/// Time after the latest `expires_at` before the final reads (expiry runs on a tick).
pub const EXPIRY_GRACE: Duration = Duration::from_millis(1_500);
/// Longest wait for the last holds to expire.
pub const MAX_EXPIRY_WAIT: Duration = Duration::from_secs(15);
/// Deadline of one read-back request.
pub const FINAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the read-back did.
#[derive(Debug, Default, Clone, Copy)]
pub struct FinishStats {
    /// Keys re-sent.
    pub keys_retried: usize,
    /// Keys still without a definite answer.
    pub keys_unresolved: usize,
    /// Reservations read.
    pub reservations_read: usize,
    /// SKUs read.
    pub skus_read: usize,
    /// Buyers whose orders were read to the last page.
    pub buyers_orders_read: usize,
}

/// Most pages of one buyer's orders read back (100 orders a page).
pub const MAX_ORDER_PAGES: usize = 100;

/// Proc numbers of the read-back start here (above every worker's).
pub const FINAL_PROC_BASE: u32 = 10_000;

/// Runs `f` for every item over [`FINAL_CONNECTIONS`] connections; `f` returns whether the item
/// got a definite answer.
async fn for_each<T, F, Fut>(w: &Arc<Workload>, items: Vec<T>, f: F) -> anyhow::Result<usize>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(Arc<Workload>, Conn, u32, T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<(Conn, bool)>> + Send,
{
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..FINAL_CONNECTIONS.min(items.len().max(1)) {
        let (w, items, next, f) = (w.clone(), items.clone(), next.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = w.client.conn(FINAL_TIMEOUT);
            let mut failed = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let (c2, ok) = f(w.clone(), conn, FINAL_PROC_BASE + c as u32, item.clone()).await?;
                conn = c2;
                if !ok {
                    failed += 1;
                }
            }
            Ok::<usize, anyhow::Error>(failed)
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.context("read-back task")??;
    }
    Ok(failed)
}

async fn retry_call(
    w: &Workload,
    conn: &mut Conn,
    proc: u32,
    call: Call,
    mut done: impl FnMut(&Op) -> bool,
) -> anyhow::Result<bool> {
    for attempt in 0..FINAL_ATTEMPTS {
        let op = w
            .client
            .run(
                conn,
                proc,
                Phase::Final,
                call.clone(),
                SendMode::Wait(FINAL_TIMEOUT),
            )
            .await?;
        if done(&op) {
            return Ok(true);
        }
        let wait = match &op.outcome {
            Outcome::Http(h) => Duration::from_secs(h.retry_after_s.unwrap_or(0).min(2)),
            _ => Duration::ZERO,
        };
        let backoff = Duration::from_millis((100u64 << attempt.min(4)).min(1_000));
        tokio::time::sleep(wait.max(backoff)).await;
    }
    Ok(false)
}

/// Whether a reserve answer settles its key: a 201 with a body, or a definite refusal.
fn reserve_settled(op: &Op) -> bool {
    match &op.outcome {
        Outcome::Http(h) if h.status == 201 => h.reservation.is_some(),
        Outcome::Http(h) if h.is(409, "idempotency-in-progress") => false,
        Outcome::Http(h) if h.is(429, "rate-limited") => false,
        Outcome::Refused { .. } => false,
        o => !effect_unknown(o),
    }
}

/// The read-back. Call once the load stopped and the server is healthy.
pub async fn finish(w: &Arc<Workload>) -> anyhow::Result<FinishStats> {
    let mut stats = FinishStats::default();
    // Let requests that were still inside the server (paused, waiting for the log) finish.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let keys = dedup_open_keys(std::mem::take(&mut *lock(&w.open_keys)));
    stats.keys_retried = keys.len();
    stats.keys_unresolved = for_each(w, keys, |w, mut conn, proc, k: OpenKey| async move {
        let call = Call::Reserve {
            caller: k.caller,
            key: Some(k.key),
            buyer: k.buyer,
            lines: k.lines,
        };
        let ok = retry_call(&w, &mut conn, proc, call, |op| {
            w.note_final(op);
            reserve_settled(op)
        })
        .await?;
        Ok((conn, ok))
    })
    .await?;

    // Every hold expires (or was confirmed / released) before the final reads.
    let latest_ms = lock(&w.acked).values().copied().max().unwrap_or(0);
    let until_us = latest_ms * 1000 + EXPIRY_GRACE.as_micros() as u64;
    let wait = Duration::from_micros(until_us.saturating_sub(now_us())).min(MAX_EXPIRY_WAIT);
    tokio::time::sleep(wait).await;

    let ids: Vec<String> = lock(&w.acked).keys().cloned().collect();
    stats.reservations_read = ids.len();
    let started = Instant::now();
    for_each(w, ids, |w, mut conn, proc, id: String| async move {
        let ok = retry_call(
            &w,
            &mut conn,
            proc,
            Call::GetReservation { id },
            |op| matches!(&op.outcome, Outcome::Http(h) if h.status < 500 && h.status != 429),
        )
        .await?;
        Ok((conn, ok))
    })
    .await?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reservations read back"
    );

    let skus: Vec<String> = w.catalog.skus.iter().map(|s| s.sku.clone()).collect();
    stats.skus_read = skus.len();
    for_each(w, skus, |w, mut conn, proc, sku: String| async move {
        let ok = retry_call(
            &w,
            &mut conn,
            proc,
            Call::GetSku { sku },
            |op| matches!(&op.outcome, Outcome::Http(h) if h.status == 200),
        )
        .await?;
        Ok((conn, ok))
    })
    .await?;

    let buyers: Vec<String> = lock(&w.buyers).iter().cloned().collect();
    let unread = for_each(
        w,
        buyers.clone(),
        |w, mut conn, proc, buyer: String| async move {
            let ok = read_orders(&w, &mut conn, proc, buyer).await?;
            Ok((conn, ok))
        },
    )
    .await?;
    stats.buyers_orders_read = buyers.len() - unread;
    Ok(stats)
}

/// Reads `buyer`'s orders from the first page to the last (each page retried until answered).
async fn read_orders(
    w: &Workload,
    conn: &mut Conn,
    proc: u32,
    buyer: String,
) -> anyhow::Result<bool> {
    let mut cursor = None;
    for _ in 0..MAX_ORDER_PAGES {
        let call = Call::ListOrders {
            buyer: buyer.clone(),
            limit: 100,
            cursor: cursor.take(),
        };
        let mut next = None;
        let ok = retry_call(w, conn, proc, call, |op| match &op.outcome {
            Outcome::Http(h) if h.status == 200 && h.orders.is_some() => {
                next = Some(h.next_cursor.clone());
                true
            }
            _ => false,
        })
        .await?;
        match next {
            Some(Some(c)) if ok => cursor = Some(c),
            Some(None) if ok => return Ok(true),
            _ => return Ok(false),
        }
    }
    Ok(false)
}

impl Workload {
    /// Learns acknowledgements from a read-back op (a re-sent key may be answered 201).
    fn note_final(&self, op: &Op) {
        if let Outcome::Http(h) = &op.outcome {
            if h.status == 201 {
                if let Some(r) = &h.reservation {
                    lock(&self.acked).insert(r.id.clone(), r.expires_at_ms);
                }
            }
        }
    }
}
