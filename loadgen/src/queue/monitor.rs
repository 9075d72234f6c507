//! The queue's watcher: reads `GET /v1/queues/{queue}` every [`MONITOR_PERIOD`], keeps the
//! changes of its status (when it sold out, when units came back) and tells the buyers once
//! the queue is sold out with nothing held (nothing can come back). The sold-out moments are
//! known to within one period.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::buyer::unix_ms;
use super::wire::{QueueAnswer, QueueApi, QueueCounts};
use crate::conn::Conn;

/// How often the queue view is read.
pub const MONITOR_PERIOD: Duration = Duration::from_millis(50);

/// What the monitor saw.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// Changes of the queue's status: (Unix ms, sold out?).
    pub changes: Vec<(u64, bool)>,
    /// The last time the status read `open`, Unix ms.
    pub last_open_ms: Option<u64>,
    /// The last counts read.
    pub last: Option<QueueCounts>,
    /// Reads that failed.
    pub failed_reads: u64,
}

/// Most status changes kept.
const MAX_CHANGES: usize = 4_096;

/// Watches until `stop` turns true or `deadline`; sets `final_tx` once sold out with nothing
/// held.
pub async fn watch(
    mut conn: Conn,
    api: QueueApi,
    deadline: Instant,
    final_tx: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) -> Watched {
    let mut w = Watched::default();
    let mut every = tokio::time::interval(MONITOR_PERIOD);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < deadline && !*stop.borrow() {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => break,
        }
        let Ok(req) = api.get_queue() else { break };
        let answer = match conn.send(req).await {
            Ok(a) if a.status.is_success() => QueueAnswer::parse(&a.body),
            _ => None,
        };
        let Some(q) = answer else {
            w.failed_reads += 1;
            continue;
        };
        let now = unix_ms();
        let sold_out = q.status == "sold_out";
        if q.status == "open" {
            w.last_open_ms = Some(now);
        }
        if q.status != "scheduled"
            && w.changes.last().map(|c| c.1) != Some(sold_out)
            && w.changes.len() < MAX_CHANGES
        {
            w.changes.push((now, sold_out));
        }
        let nothing_held = q.counts.holding == 0;
        final_tx.send_if_modified(|f| {
            let new = sold_out && nothing_held;
            let changed = *f != new;
            *f = new;
            changed
        });
        w.last = Some(q.counts);
    }
    w
}
