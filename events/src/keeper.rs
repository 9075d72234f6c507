//! The ledger keeper of one shard: folds the committed log into the shard's
//! [`Ledger`](crate::ledger::Ledger) up to the slowest destination's stored position (or the
//! head when there is none) and stores it every [`SAVE_EVERY`], so a worker (re)starting at
//! its position rebuilds its ledger from the stored one plus the records in between — the
//! log from the stored ledger on is held back from compaction for that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ledger::Ledger;
use crate::service::Shared;

/// How often a ledger that moved is stored (it can be large: one entry per held reservation).
pub const SAVE_EVERY: Duration = Duration::from_secs(30);

/// The least time between two reads that caught up: under a steady load the keeper folds a
/// tenth of a second of records per read instead of waking for every log flush (a read, a
/// hop to the blocking pool and a wake-up each, ADR 0053). Its ledger is stored only every
/// [`SAVE_EVERY`], so lagging this much changes nothing a worker sees.
pub const PACE: Duration = Duration::from_millis(100);

/// What one pass of the keeper did, which sets how long it waits before the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Nothing new to fold: wait the poll interval (at least [`PACE`]).
    Idle,
    /// Folded everything up to the target: wait [`PACE`].
    CaughtUp,
    /// A full batch and still short of the target: read again at once.
    Behind,
}

/// Runs until the service stops; stores the ledger a last time then.
pub async fn run(shared: Arc<Shared>, shard: u16) {
    let Some(stored) = shared.stored_ledger(shard) else {
        tracing::error!(shard, "events: ledger keeper started before the ledger");
        return;
    };
    let mut ledger: Ledger = (*stored).clone();
    let mut saved_seq = ledger.seq;
    let mut last_save = Instant::now();
    let mut stop_rx = shared.stop.subscribe();
    let source = shared.source.own_reader();
    loop {
        if *stop_rx.borrow() {
            break;
        }
        let target = match shared.slowest(shard) {
            Some(p) => p,
            None => match shared.source.head(shard).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(shard, error = %e, "events: ledger keeper cannot read the head");
                    ledger.seq
                }
            },
        };
        let mut pass = Pass::Idle;
        if ledger.seq < target {
            match source.read(shard, ledger.seq, shared.config.batch).await {
                Ok(records) => {
                    for (seq, bytes) in records.iter().filter(|r| r.0 <= target) {
                        fold(&mut ledger, shard, *seq, bytes);
                        pass = Pass::CaughtUp;
                    }
                    if records.len() >= shared.config.batch && ledger.seq < target {
                        pass = Pass::Behind;
                    }
                }
                Err(e) => {
                    tracing::warn!(shard, error = %e, "events: ledger keeper cannot read the log")
                }
            }
        }
        if ledger.seq > saved_seq && last_save.elapsed() >= SAVE_EVERY {
            save(&shared, shard, &ledger).await;
            saved_seq = ledger.seq;
            last_save = Instant::now();
        }
        let pause = match pass {
            Pass::Behind => None,
            Pass::CaughtUp => Some(PACE),
            Pass::Idle => Some(shared.config.poll_interval.max(PACE)),
        };
        if let Some(pause) = pause {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop_rx.changed() => {}
            }
        }
    }
    if ledger.seq > saved_seq {
        save(&shared, shard, &ledger).await;
    }
}

/// Folds one encoded record (an undecodable one only moves the position, as the workers do).
pub fn fold(ledger: &mut Ledger, shard: u16, seq: u64, bytes: &[u8]) -> crate::ledger::Facts {
    match flashsale_protocol::decode_record(bytes) {
        Ok(rec) => ledger.apply(&rec),
        Err(e) => {
            tracing::error!(shard, seq, error = %e, "events: undecodable log record skipped");
            ledger.seq = ledger.seq.max(seq);
            crate::ledger::Facts::default()
        }
    }
}

/// Stores `ledger` as the shard's ledger and publishes it.
async fn save(shared: &Arc<Shared>, shard: u16, ledger: &Ledger) {
    let stored = ledger.to_stored();
    match shared.store.save_ledger(shard, stored).await {
        Ok(()) => shared.ledger_stored(shard, Arc::new(ledger.clone())).await,
        Err(e) => tracing::error!(shard, error = %e, "events: cannot store the ledger"),
    }
}
