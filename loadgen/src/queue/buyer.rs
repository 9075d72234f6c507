//! One queued buyer: joins at its time, polls when the server says, reserves with its pass
//! once admitted, then confirms, cancels or abandons the hold. Every loop is bounded by the
//! run's deadline and by [`MAX_POLLS`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::wire::{QueueApi, Status, TicketAnswer};
use crate::api::{self, Outcome};
use crate::cli::Config;
use crate::conn::{Answer, TransportError};
use crate::follow::{self, Leader, Seat, MAX_FOLLOW_ATTEMPTS};
use crate::ledger::{Event, Ledger};
use crate::metrics::{Kind, Metrics};
use crate::scenario::{FollowUp, Plan};

/// Most polls one buyer makes (a bound besides the deadline).
pub const MAX_POLLS: u32 = 100_000;
/// Poll interval when the server names none, ms (the contract's shortest).
pub const DEFAULT_POLL_MS: u64 = 1_000;
/// Attempts of a join or a reservation that is refused with 429 or fails in transport.
pub const MAX_ATTEMPTS: u32 = 5;
/// Most state changes one buyer records (waiting ↔ sold out flaps).
pub const MAX_OBSERVATIONS: usize = 256;

/// Unix ms now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What every buyer shares.
#[derive(Debug)]
pub struct Shared {
    /// The run's configuration.
    pub cfg: Arc<Config>,
    /// Request builders, one per `--target` (each with its own `Host`).
    pub apis: Vec<QueueApi>,
    /// Which target leads: the buyers follow it (ADR 0032).
    pub leader: Arc<Leader>,
    /// Prefix of the reservations' Idempotency-Keys (`None`: no key; set with several
    /// targets, so a reservation can be sent again to a new leader).
    pub key_prefix: Option<String>,
    /// Follow-up shares.
    pub plan: Plan,
    /// Latencies and outcomes.
    pub metrics: Arc<Metrics>,
    /// What the server acknowledged, for the oversell check.
    pub ledger: Arc<Ledger>,
    /// The run's start (queue created).
    pub t0: Instant,
    /// Nothing is sent after this.
    pub deadline: Instant,
    /// Polls answered per second since `t0`.
    pub polls_per_s: Vec<AtomicU64>,
    /// Set by the monitor once the queue is sold out with nothing held (nothing comes back).
    pub final_sold_out: watch::Receiver<bool>,
}

/// How a buyer's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The join never succeeded.
    NotJoined,
    /// Still waiting (or sold out) when the run ended.
    StillWaiting,
    /// Learned the sell-out and stopped once nothing could come back.
    SoldOut,
    /// The reservation was confirmed.
    Confirmed,
    /// The reservation was cancelled.
    Cancelled,
    /// The reservation was left to expire.
    Abandoned,
    /// Admitted, but the reservation was refused (sold out, pass refused, error).
    ReserveRefused,
    /// The ticket read `spent` or `expired` before this buyer used it.
    PassLost,
}

/// What one buyer saw.
#[derive(Debug, Clone)]
pub struct BuyerRecord {
    /// Joined during the pre-queue (by schedule).
    pub prequeue: bool,
    /// When the join was sent and answered, Unix ms.
    pub join_sent_ms: u64,
    /// When the join was answered, Unix ms.
    pub join_answered_ms: u64,
    /// Ticket number (server's join order).
    pub ticket: Option<u64>,
    /// Place in the admission order.
    pub admission: Option<u64>,
    /// When the server admitted it, Unix ms.
    pub admitted_at_ms: Option<u64>,
    /// When a poll first showed the admission, Unix ms.
    pub learned_admitted_ms: Option<u64>,
    /// Changes of the waiting status seen: (Unix ms, sold out?).
    pub observations: Vec<(u64, bool)>,
    /// The last time a poll said `waiting`, Unix ms.
    pub last_waiting_ms: Option<u64>,
    /// How it ended.
    pub end: End,
}

/// One buyer: index `who`, joining at `join_at`, as a pre-queue buyer or not.
pub async fn run(
    shared: Arc<Shared>,
    who: usize,
    prequeue: bool,
    join_at: Instant,
    source: Option<std::net::IpAddr>,
) -> BuyerRecord {
    let cfg = shared.cfg.clone();
    let mut conn = Seat::new(&shared.leader, source, cfg.timeout());
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(cfg.seed ^ (who as u64).wrapping_mul(0x9e37_79b9));
    let buyer = format!("lg-q-{who}");
    let mut rec = BuyerRecord {
        prequeue,
        join_sent_ms: 0,
        join_answered_ms: 0,
        ticket: None,
        admission: None,
        admitted_at_ms: None,
        learned_admitted_ms: None,
        observations: Vec::new(),
        last_waiting_ms: None,
        end: End::NotJoined,
    };
    if !sleep_until(&shared, join_at).await {
        return rec;
    }
    rec.join_sent_ms = unix_ms();
    let Some(mut t) = join(&shared, &mut conn, who, &buyer).await else {
        return rec;
    };
    rec.join_answered_ms = unix_ms();
    rec.ticket = t.number();
    rec.end = End::StillWaiting;
    let Some(ticket) = rec.ticket.map(|n| format!("tkt_{n}")) else {
        return rec;
    };
    let mut final_rx = shared.final_sold_out.clone();
    for _ in 0..MAX_POLLS {
        let now = unix_ms();
        match t.status {
            Status::Admitted => {
                rec.learned_admitted_ms = Some(now);
                rec.admission = t.admission;
                rec.admitted_at_ms = t.admitted_at_ms();
                rec.end =
                    reserve_and_follow_up(&shared, &mut conn, who, &buyer, &t, &mut rng).await;
                return rec;
            }
            Status::Spent | Status::Expired => {
                rec.end = End::PassLost;
                return rec;
            }
            Status::Waiting | Status::SoldOut => {
                let sold_out = t.status == Status::SoldOut;
                if !sold_out {
                    rec.last_waiting_ms = Some(now);
                }
                if rec.observations.last().map(|o| o.1) != Some(sold_out)
                    && rec.observations.len() < MAX_OBSERVATIONS
                {
                    rec.observations.push((now, sold_out));
                }
                if sold_out && *final_rx.borrow() {
                    rec.end = End::SoldOut;
                    return rec;
                }
            }
        }
        let wait = Duration::from_millis(t.poll_after_ms.unwrap_or(DEFAULT_POLL_MS));
        let wake = Instant::now() + wait;
        if wake >= shared.deadline {
            return rec;
        }
        if t.status == Status::SoldOut {
            // Already knows: stop as soon as nothing can come back.
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = final_rx.wait_for(|f| *f) => {
                    rec.end = End::SoldOut;
                    return rec;
                }
            }
        } else {
            tokio::time::sleep_until(wake.into()).await;
        }
        match poll(&shared, &mut conn, who, &ticket).await {
            Some(next) => t = next,
            None => return rec,
        }
    }
    rec
}

/// Sleeps until `at`; false when that is past the deadline.
async fn sleep_until(shared: &Shared, at: Instant) -> bool {
    if at >= shared.deadline {
        return false;
    }
    tokio::time::sleep_until(at.into()).await;
    true
}

/// Whether a request may be sent again to a new leader after a failure that may be a takeover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// A repeat returns the original result: a join (same ticket), a poll, a reservation with
    /// its Idempotency-Key, a confirm with its payment ref, a cancel.
    Safe,
    /// A reservation without an Idempotency-Key: never sent twice.
    Never,
}

/// One request's result after retries and moves to a new leader.
#[derive(Debug)]
struct Exchanged {
    /// The last attempt's result.
    result: Result<Answer, TransportError>,
    /// Some attempt got no answer (timeout, broken connection): the server may have acted.
    unknown_attempt: bool,
}

/// Sends the request `make` builds for the leader's target (rebuilt per attempt), recording it
/// as `kind`; retries 429 (after `Retry-After`) and, for joins and polls, transport failures
/// up to [`MAX_ATTEMPTS`] within the deadline. After `503 not-leader` or a failure without an
/// answer it finds the leader ([`Seat::follow`]) and, if the leader moved and `resend` allows,
/// sends the request there (at most [`MAX_FOLLOW_ATTEMPTS`] moves; an attempt that led to a
/// move is not recorded, the latency of the one recorded runs from the first send).
async fn exchange(
    shared: &Shared,
    seat: &mut Seat,
    who: usize,
    kind: Kind,
    resend: Resend,
    make: impl Fn(&QueueApi) -> Option<hyper::Request<http_body_util::Full<bytes::Bytes>>>,
) -> Option<Exchanged> {
    let leader = &shared.leader;
    let mut last = None;
    let mut unknown_attempt = false;
    let mut moves = 0u32;
    let mut attempts = 0u32;
    let mut first_sent: Option<Instant> = None;
    while attempts < MAX_ATTEMPTS {
        seat.sync(leader);
        let at = seat.at();
        let req = make(shared.apis.get(at.index)?)?;
        let sent = Instant::now();
        let since = *first_sent.get_or_insert(sent);
        let r = seat.conn.send(req).await;
        unknown_attempt |= matches!(&r, Err(e) if !matches!(e, TransportError::Connect(_)));
        match follow::takeover_hint(leader, &r) {
            Some(takeover)
                if leader.is_following()
                    && resend == Resend::Safe
                    && moves < MAX_FOLLOW_ATTEMPTS
                    && Instant::now() < shared.deadline =>
            {
                if seat
                    .follow(leader, at, sent, takeover, shared.deadline)
                    .await
                {
                    moves += 1;
                    continue;
                }
            }
            Some(_) => {}
            None => leader.note_success(at, Instant::now()),
        }
        attempts += 1;
        first_sent = None;
        let latency = since.elapsed();
        match &r {
            // A transient refusal of a request that is safe to resend (a keyed reservation
            // whose pass is still being checked after a takeover, ADR 0034): wait as told and
            // send it again, like a move; only the final answer is recorded.
            Ok(a)
                if a.status == StatusCode::SERVICE_UNAVAILABLE
                    && a.retry_after_s.is_some()
                    && resend == Resend::Safe
                    && attempts < MAX_ATTEMPTS =>
            {
                let wait = Duration::from_secs(a.retry_after_s.unwrap_or(1).clamp(1, 30));
                if Instant::now() + wait < shared.deadline {
                    first_sent = Some(since);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let outcome = api::classify(a.status, &a.body);
                shared.metrics.record(who, kind, &outcome, latency);
                last = Some(r);
                break;
            }
            Ok(a) => {
                let outcome = api::classify(a.status, &a.body);
                shared.metrics.record(who, kind, &outcome, latency);
                if let Outcome::Error(k) = &outcome {
                    shared
                        .metrics
                        .sample_error(who, k, &String::from_utf8_lossy(&a.body));
                }
                if a.status == StatusCode::TOO_MANY_REQUESTS {
                    let wait = Duration::from_secs(a.retry_after_s.unwrap_or(1).clamp(1, 30));
                    last = Some(r);
                    if Instant::now() + wait >= shared.deadline {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
                last = Some(r);
                break;
            }
            Err(e) => {
                let outcome = Outcome::Error(e.kind().to_string());
                shared.metrics.record(who, kind, &outcome, latency);
                shared.metrics.sample_error(who, e.kind(), &e.to_string());
                // A reservation without an answer may hold stock: never resend it (but after
                // a move to a new leader, above, with its key).
                if kind != Kind::QueueJoin && kind != Kind::QueuePoll {
                    last = Some(r);
                    break;
                }
                last = Some(r);
                if Instant::now() + Duration::from_millis(200) >= shared.deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    if moves > 0 {
        leader.note_retried(u64::from(moves));
    }
    last.map(|result| Exchanged {
        result,
        unknown_attempt,
    })
}

async fn join(shared: &Shared, conn: &mut Seat, who: usize, buyer: &str) -> Option<TicketAnswer> {
    let r = exchange(shared, conn, who, Kind::QueueJoin, Resend::Safe, |api| {
        api.join(buyer).ok()
    })
    .await?;
    match r.result {
        Ok(a) if a.status.is_success() => TicketAnswer::parse(&a.body),
        _ => None,
    }
}

async fn poll(shared: &Shared, conn: &mut Seat, who: usize, ticket: &str) -> Option<TicketAnswer> {
    let r = exchange(shared, conn, who, Kind::QueuePoll, Resend::Safe, |api| {
        api.poll(ticket).ok()
    })
    .await?;
    match r.result {
        Ok(a) if a.status.is_success() => {
            let s = shared.t0.elapsed().as_secs() as usize;
            if let Some(b) = shared.polls_per_s.get(s) {
                b.fetch_add(1, Ordering::Relaxed);
            }
            TicketAnswer::parse(&a.body)
        }
        _ => None,
    }
}

async fn reserve_and_follow_up(
    shared: &Shared,
    conn: &mut Seat,
    who: usize,
    buyer: &str,
    t: &TicketAnswer,
    rng: &mut rand::rngs::StdRng,
) -> End {
    let cfg = &shared.cfg;
    let (sku, qty) = (cfg.skus[0].as_str(), cfg.qty);
    let pass = t.pass.as_deref();
    // With a key, a reservation whose leader died under it is sent again to the new one: the
    // key returns the original (passes are valid on every node).
    let key = shared.key_prefix.as_ref().map(|p| format!("{p}-{who}"));
    let resend = if key.is_some() {
        Resend::Safe
    } else {
        Resend::Never
    };
    let Some(r) = exchange(shared, conn, who, Kind::Reserve, resend, |api| {
        api.reserve(buyer, sku, qty, pass, key.as_deref()).ok()
    })
    .await
    else {
        return End::ReserveRefused;
    };
    let id = match r.result {
        Err(_) => {
            shared.ledger.add(0, Event::UnknownReserve, qty);
            return End::ReserveRefused;
        }
        Ok(a) if a.status == StatusCode::CREATED => {
            shared.ledger.add(0, Event::Held, qty);
            match api::reservation_id(&a.body) {
                Some(id) => id,
                None => return End::Abandoned,
            }
        }
        // Refused in the end, but an earlier attempt got no answer: it may hold stock.
        Ok(_) if r.unknown_attempt => {
            shared.ledger.add(0, Event::UnknownReserve, qty);
            return End::ReserveRefused;
        }
        Ok(_) => return End::ReserveRefused,
    };
    let (kind, done, unknown) = match shared.plan.follow_up(rng.gen::<f64>()) {
        FollowUp::Abandon => return End::Abandoned,
        FollowUp::Confirm => (Kind::Confirm, Event::Confirmed, Event::UnknownConfirm),
        FollowUp::Cancel => (Kind::Cancel, Event::Cancelled, Event::UnknownCancel),
    };
    // A confirm repeats with the same payment ref (same order), a cancel answers the released
    // reservation: both may follow the leader.
    let pay = format!("lg-pay-{who}");
    let r = exchange(shared, conn, who, kind, Resend::Safe, |api| {
        if kind == Kind::Confirm {
            api.confirm(&id, &pay).ok()
        } else {
            api.cancel(&id).ok()
        }
    })
    .await;
    match r {
        Some(Exchanged { result: Ok(a), .. }) if a.status.is_success() => {
            shared.ledger.add(0, done, qty);
            if kind == Kind::Confirm {
                End::Confirmed
            } else {
                End::Cancelled
            }
        }
        Some(Exchanged { result: Err(_), .. })
        | Some(Exchanged {
            unknown_attempt: true,
            ..
        }) => {
            shared.ledger.add(0, unknown, qty);
            End::Abandoned
        }
        _ => End::Abandoned,
    }
}
