//! The delivery loop of one destination on one shard: read committed records after the
//! position in bounded batches, derive and filter events, deliver them (webhooks: events of
//! one key — reservation or SKU — in log order, several keys at a time; AMQP: the batch in
//! log order), then store the new position. A crash between
//! delivery and the stored position only repeats events, with the same ids (at-least-once).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;

use crate::derive::derive_filtered;
use crate::dest::{lock, DeliveryRecord, Dest, DestKind};
use crate::keeper::fold;
use crate::ledger::Ledger;
use crate::outgoing::{rfc3339_ms, OutEvent};
use crate::service::Shared;
use crate::source::LogSource;
use crate::store::DeadLetter;
use crate::webhook::{send, Attempt};

/// Now as Unix ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sleeps `d` unless the destination is stopped first; false if stopped.
async fn pause(dest: &Dest, d: Duration) -> bool {
    let mut rx = dest.stop.subscribe();
    if *rx.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => !dest.stopped(),
        _ = rx.changed() => false,
    }
}

/// Waits until the gate is open (this node may deliver); false if stopped first.
async fn wait_gate(shared: &Shared, dest: &Dest) -> bool {
    while !shared.config.gate.is_open() {
        if !pause(dest, shared.config.poll_interval).await {
            return false;
        }
    }
    !dest.stopped()
}

/// The shard's ledger at `pos`: the stored one, folded forward through the log; `None` if
/// the destination stopped first.
async fn ledger_at(
    shared: &Shared,
    source: &LogSource,
    dest: &Dest,
    shard: u16,
    pos: u64,
) -> Option<Ledger> {
    let mut ledger = match shared.stored_ledger(shard) {
        Some(l) if l.seq <= pos => (*l).clone(),
        other => {
            // Cannot happen: the keeper follows the stored positions. Go on without history.
            tracing::error!(destination = %dest.id, shard, pos, ledger = ?other.map(|l| l.seq),
                "events: no ledger at or before the position; starting an incomplete one");
            return Some(Ledger::starting_after(pos, false));
        }
    };
    let mut backoff = Duration::from_millis(100);
    while ledger.seq < pos {
        match source.read(shard, ledger.seq, shared.config.batch).await {
            Ok(records) if !records.is_empty() => {
                for (seq, bytes) in records.iter().filter(|r| r.0 <= pos) {
                    fold(&mut ledger, shard, *seq, bytes);
                }
            }
            Ok(_) => {
                tracing::error!(destination = %dest.id, shard, pos, at = ledger.seq,
                    "events: the log ends before the position; starting an incomplete ledger");
                return Some(Ledger::starting_after(pos, false));
            }
            Err(e) => {
                tracing::warn!(destination = %dest.id, shard, error = %e, "events: cannot read the log");
                if !pause(dest, backoff).await {
                    return None;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    Some(ledger)
}

/// Runs until the destination stops (or, on a high-availability node, its position writes
/// are fenced: another node leads and delivers from the stored positions).
pub async fn run(shared: Arc<Shared>, dest: Arc<Dest>, shard: u16) {
    let slot = usize::from(shard);
    let mut read_backoff = Duration::from_millis(100);
    let start = lock(&dest.positions).get(slot).copied().unwrap_or(0);
    let source = shared.source.own_reader();
    let Some(mut ledger) = ledger_at(&shared, &source, &dest, shard, start).await else {
        return;
    };
    // Delivered but not yet stored (positions are stored at most every
    // [`POSITION_SAVE_EVERY`]).
    let mut unsaved = PositionState::Stored;
    let mut last_save = Instant::now();
    loop {
        if dest.stopped() {
            return;
        }
        let pos = lock(&dest.positions).get(slot).copied().unwrap_or(0);
        debug_assert_eq!(ledger.seq, pos, "the ledger follows the position");
        let records = match source.read(shard, pos, shared.config.batch).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(destination = %dest.id, shard, error = %e, "events: cannot read the log");
                if !pause(&dest, read_backoff).await {
                    return;
                }
                read_backoff = (read_backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        read_backoff = Duration::from_millis(100);
        // The head for the lag: a short batch ends at it; only a full one needs a look.
        if records.len() < shared.config.batch {
            let head = records.last().map_or(pos, |r| r.0);
            dest.metrics.head[slot].fetch_max(head, Ordering::Relaxed);
        } else {
            crate::metrics::refresh_head(&dest.metrics, &shared.source, shard).await;
        }
        let Some(&(last, _)) = records.last() else {
            dest.metrics.pending_since_ms[slot].store(0, Ordering::Relaxed);
            if let PositionState::Unsaved(seq) = unsaved {
                // Caught up: store what was delivered, at most every POSITION_SAVE_EVERY too
                // (a worker that keeps catching up between short batches would otherwise sync
                // a file per batch, on the disk the log's group commits wait for); an idle
                // worker stores it at the first empty read after that.
                if last_save.elapsed() < POSITION_SAVE_EVERY {
                    if !pause(&dest, shared.config.poll_interval).await {
                        return;
                    }
                    continue;
                }
                match store_position(&shared, &dest, shard, seq).await {
                    StoreOutcome::Stored => {
                        unsaved = PositionState::Stored;
                        last_save = Instant::now();
                    }
                    StoreOutcome::Retry => {}
                    StoreOutcome::Deposed => return,
                }
            }
            if !pause(&dest, shared.config.poll_interval).await {
                return;
            }
            continue;
        };
        let mut events = Vec::with_capacity(records.len());
        for (seq, bytes) in &records {
            match flashsale_protocol::decode_record(bytes) {
                Ok(rec) => {
                    let facts = ledger.apply(&rec);
                    derive_filtered(&rec, &facts, &dest.filter, &mut events);
                }
                Err(e) => {
                    ledger.seq = ledger.seq.max(*seq);
                    tracing::error!(shard, seq, error = %e, "events: undecodable log record skipped")
                }
            }
        }
        if let Some(first) = events.first() {
            dest.metrics.pending_since_ms[slot].store(first.at_ms.max(1), Ordering::Relaxed);
        }
        let done = match &dest.kind {
            DestKind::Webhook { .. } => deliver_webhooks(&shared, &dest, &events).await,
            DestKind::Amqp(sink) => publish_amqp(&shared, &dest, sink, &events).await,
        };
        if !done {
            return;
        }
        let short = records.len() < shared.config.batch;
        drop(records);
        if last_save.elapsed() < POSITION_SAVE_EVERY {
            // Delivered: the next batch starts after it; stored with a later batch (or when
            // caught up). A crash before that delivers these events again, same ids.
            if let Some(p) = lock(&dest.positions).get_mut(slot) {
                *p = last;
            }
            unsaved = PositionState::Unsaved(last);
        } else {
            match store_position(&shared, &dest, shard, last).await {
                StoreOutcome::Stored => {
                    unsaved = PositionState::Stored;
                    last_save = Instant::now();
                }
                // Not stored: delivery goes on from here (the ledger is there already);
                // storing is tried again with the next batch or when caught up, and a crash
                // meanwhile delivers these events again (same ids).
                StoreOutcome::Retry => {
                    if let Some(p) = lock(&dest.positions).get_mut(slot) {
                        *p = last;
                    }
                    unsaved = PositionState::Unsaved(last);
                    if !pause(&dest, read_backoff).await {
                        return;
                    }
                    continue;
                }
                StoreOutcome::Deposed => return,
            }
        }
        // A short batch ended at the head: let the next one gather records for a moment
        // (fewer reads, requests to the broker and wake-ups per event; bounded extra lag).
        if short && !pause(&dest, shared.config.poll_interval).await {
            return;
        }
    }
}

/// At most how often a worker stores its position (each store is a file written and synced,
/// or a Postgres row); a caught-up worker stores what it delivered once this much passed
/// since its last store.
pub const POSITION_SAVE_EVERY: Duration = Duration::from_millis(250);

/// Whether a worker's delivered position is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PositionState {
    /// Everything delivered is stored.
    Stored,
    /// Delivered up to this seq, not stored yet.
    Unsaved(u64),
}

/// What storing a position came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreOutcome {
    /// Stored.
    Stored,
    /// Not stored this time; try again later.
    Retry,
    /// This node no longer leads: delivery stops.
    Deposed,
}

/// Stores `seq` as the position of `dest` on `shard` ([`Shared::advance`]).
async fn store_position(shared: &Shared, dest: &Dest, shard: u16, seq: u64) -> StoreOutcome {
    match shared.advance(dest, shard, seq).await {
        Ok(()) => StoreOutcome::Stored,
        Err(crate::EventsError::Fenced { epoch }) => {
            tracing::warn!(destination = %dest.id, shard, epoch, "events: deposed (fenced); delivery stops here");
            StoreOutcome::Deposed
        }
        Err(_) => StoreOutcome::Retry,
    }
}

/// Most requests one worker (endpoint × shard) has in flight: events of different keys
/// (reservations, SKUs) go out concurrently, events of one key one after the other.
pub const WEBHOOK_IN_FLIGHT: usize = 64;

/// Delivers the batch, retrying per the policy: events of one key (reservation or SKU) in
/// log order, up to [`WEBHOOK_IN_FLIGHT`] keys at a time; false if stopped meanwhile.
async fn deliver_webhooks(shared: &Shared, dest: &Dest, events: &[OutEvent]) -> bool {
    use futures::StreamExt as _;
    // Chains of events per key, in log order, chains in the order of their first event.
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut chains: Vec<Vec<&OutEvent>> = Vec::new();
    for ev in events {
        let slot = *index.entry(ev.key.as_str()).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[slot].push(ev);
    }
    let chains: Vec<_> = chains
        .into_iter()
        .map(|chain| deliver_chain(shared, dest, chain))
        .collect();
    let mut results = futures::stream::iter(chains).buffer_unordered(WEBHOOK_IN_FLIGHT);
    let mut all = true;
    while let Some(ok) = results.next().await {
        all &= ok;
    }
    all
}

/// Delivers the events of one key one after the other; false if stopped meanwhile.
async fn deliver_chain(shared: &Shared, dest: &Dest, chain: Vec<&OutEvent>) -> bool {
    for ev in chain {
        let body = bytes::Bytes::from(ev.body());
        if !deliver_one(shared, dest, &ev.id, ev.kind.as_str(), &body).await {
            return false;
        }
    }
    true
}

/// Delivers one event until it succeeds or its retry period ends (then it is dead-lettered);
/// false if stopped first.
pub async fn deliver_one(
    shared: &Shared,
    dest: &Dest,
    id: &str,
    kind: &str,
    body: &bytes::Bytes,
) -> bool {
    let DestKind::Webhook { url, secret } = &dest.kind else {
        return true;
    };
    let policy = shared.config.retry;
    let started = Instant::now();
    let mut failures = 0u32;
    loop {
        if !wait_gate(shared, dest).await {
            return false;
        }
        let t0 = Instant::now();
        let ts = now_ms() / 1000;
        dest.metrics.attempts.fetch_add(1, Ordering::Relaxed);
        let mut stop_rx = dest.stop.subscribe();
        let attempt = tokio::select! {
            a = send(&shared.http, url, secret, id, ts, body) => a,
            _ = stop_rx.changed() => return false,
        };
        let duration_ms = t0.elapsed().as_millis() as u64;
        let mut rec = DeliveryRecord {
            event_id: id.to_string(),
            kind: kind.to_string(),
            attempt: failures + 1,
            at: rfc3339_ms(now_ms()),
            status: None,
            outcome: "delivered",
            error: None,
            duration_ms,
        };
        match attempt {
            Attempt::Delivered { status } => {
                rec.status = Some(status);
                dest.log(rec);
                dest.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Attempt::Failed { status, error } => {
                failures += 1;
                dest.metrics.failures.fetch_add(1, Ordering::Relaxed);
                rec.status = status;
                rec.error = Some(error.clone());
                if !policy.may_retry(started.elapsed()) {
                    rec.outcome = "dead_lettered";
                    dest.log(rec);
                    dest.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
                    let dl = DeadLetter {
                        id: id.to_string(),
                        kind: kind.to_string(),
                        body: String::from_utf8_lossy(body).into_owned(),
                        failed_at: rfc3339_ms(now_ms()),
                        last_error: error,
                        attempts: failures,
                    };
                    dest.add_dead(&shared.store, dl).await;
                    return true;
                }
                rec.outcome = "failed";
                dest.log(rec);
                let jitter = rand::thread_rng().gen::<f64>();
                if !pause(dest, policy.delay(failures, jitter)).await {
                    return false;
                }
            }
        }
    }
}

/// Publishes the batch until the broker confirms it (the broker is retried forever: the log
/// is the buffer); false if stopped first.
async fn publish_amqp(
    shared: &Shared,
    dest: &Dest,
    sink: &tokio::sync::Mutex<crate::amqp::AmqpSink>,
    events: &[OutEvent],
) -> bool {
    if events.is_empty() {
        return true;
    }
    let mut failures = 0u32;
    loop {
        if !wait_gate(shared, dest).await {
            return false;
        }
        let n = events.len() as u64;
        dest.metrics.attempts.fetch_add(n, Ordering::Relaxed);
        let mut stop_rx = dest.stop.subscribe();
        let res = tokio::select! {
            r = async { sink.lock().await.publish(events).await } => r,
            _ = stop_rx.changed() => return false,
        };
        match res {
            Ok(()) => {
                dest.metrics.delivered.fetch_add(n, Ordering::Relaxed);
                return true;
            }
            Err(e) => {
                failures += 1;
                dest.metrics.failures.fetch_add(n, Ordering::Relaxed);
                if failures == 1 {
                    tracing::warn!(error = %e, "events: AMQP publish failed; retrying");
                }
                let jitter = rand::thread_rng().gen::<f64>();
                let delay = shared
                    .config
                    .retry
                    .delay(failures, jitter)
                    .min(Duration::from_secs(5));
                if !pause(dest, delay).await {
                    return false;
                }
            }
        }
    }
}
