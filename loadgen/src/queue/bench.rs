//! `--scenario queue --bench-rounds N`: what a crowd in a waiting room costs the buyers it
//! admitted. Two SKUs with the same stock: `<sku>-free` (no queue) and `<sku>` (guarded by the
//! queue). `--hot-buyers` buyers join first and are admitted (`max_active` = their number, so
//! nobody else is); then `--connections` buyers join and wait, polling as the server says.
//! Rounds alternate: a *free* round (pollers paused, the hot buyers reserve and cancel the free
//! SKU as fast as they can) and a *queued* round (pollers polling, the hot buyers reserve the
//! queued SKU with their passes and cancel). The result is the ratio of the median reservation
//! throughputs, queued / free, measured in the same run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper::StatusCode;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::buyer::unix_ms;
use super::flags::BenchPoller;
use super::raw_poll::{self, RawPoller};
use super::wire::{self, QueueApi, Status, TicketAnswer};
use crate::api;
use crate::check::{self, CheckReport, SkuObservation};
use crate::cli::Config;
use crate::conn::Conn;
use crate::ledger::{Event, Ledger};
use crate::source_addrs;

/// Pass lifetime of the hot buyers' passes (they hold them through every round), s.
pub const BENCH_PASS_TTL_S: u32 = 3_600;
/// Admissions per second of the bench queue: high enough that every waiting ticket's
/// expected wait is short, so the poll interval is set by the poll budget (10,000 waiting →
/// every 2 s, 5,000 polls/s), the heaviest polling the server asks for.
pub const BENCH_ADMIT_PER_S: u32 = 5_000;
/// Longest wait for the hot buyers' admission.
pub const ADMISSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Which kind of round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundKind {
    /// No queue: the free SKU, pollers paused.
    Free,
    /// The queued SKU with passes, pollers polling.
    Queued,
}

/// One round's measurements.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Round {
    /// Its kind.
    pub kind: RoundKind,
    /// Reservations (201) per second.
    pub reserve_rps: f64,
    /// Polls answered per second during the round.
    pub poll_rps: f64,
    /// Answers other than 201 / 200 (or none) to the hot buyers' reservations and cancels
    /// during the round.
    pub errors: u64,
    /// Polls of the waiting buyers that failed during the round (an answer other than 200,
    /// or none).
    pub poll_errors: u64,
}

/// The bench's result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Buyers waiting and polling.
    pub waiting_buyers: usize,
    /// Of those, how many joined.
    pub joined: u64,
    /// Admitted buyers reserving.
    pub hot_buyers: usize,
    /// Length of each round, s.
    pub round_s: f64,
    /// Every round, in order.
    pub rounds: Vec<Round>,
    /// Median reservations/s of the free rounds.
    pub free_median_rps: f64,
    /// Median reservations/s of the queued rounds.
    pub queued_median_rps: f64,
    /// `queued_median_rps / free_median_rps` (the target is ≥ 0.8).
    pub ratio: f64,
    /// Median polls/s of the queued rounds.
    pub queued_median_poll_rps: f64,
    /// The hot buyers' failed exchanges over the whole run, by request and answer (e.g.
    /// `reserve 403`, `cancel io`).
    pub error_answers: BTreeMap<String, u64>,
}

impl BenchReport {
    /// The summary's lines.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "queue bench: {} admitted buyers reserve+cancel while {} of {} waiting buyers poll as told; {} rounds of {:.0} s\n",
            self.hot_buyers,
            self.joined,
            self.waiting_buyers,
            self.rounds.len(),
            self.round_s
        );
        for (i, r) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "  round {i}: {:<7} {:>8.0} reservations/s, {:>6.0} polls/s, {} errors, {} poll errors\n",
                match r.kind {
                    RoundKind::Free => "free",
                    RoundKind::Queued => "queued",
                },
                r.reserve_rps,
                r.poll_rps,
                r.errors,
                r.poll_errors
            ));
        }
        out.push_str(&format!(
            "  medians: free {:.0}/s, queued {:.0}/s (polls {:.0}/s) => ratio {:.3}\n",
            self.free_median_rps, self.queued_median_rps, self.queued_median_poll_rps, self.ratio
        ));
        if !self.error_answers.is_empty() {
            let list: Vec<String> = self
                .error_answers
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            out.push_str(&format!("  hot buyers' errors: {}\n", list.join(", ")));
        }
        out
    }
}

/// Bench flags (validated by the caller).
#[derive(Debug, Clone, Copy)]
pub struct BenchFlags {
    /// Rounds (alternating, free first).
    pub rounds: u32,
    /// Length of a round, s.
    pub round_s: f64,
    /// Admitted buyers reserving.
    pub hot_buyers: usize,
    /// How the waiting buyers poll.
    pub poller: BenchPoller,
}

struct Counters {
    ledger: Ledger,
    reserves: AtomicU64,
    errors: AtomicU64,
    polls: AtomicU64,
    poll_errors: AtomicU64,
    /// The hot buyers' failed exchanges by request and answer.
    error_answers: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    /// Counts a hot buyer's failed exchange: `what` (reserve, cancel) and its status, or `io`.
    fn hot_error(&self, what: &str, status: Option<StatusCode>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let key = match status {
            Some(s) => format!("{what} {}", s.as_u16()),
            None => format!("{what} io"),
        };
        let mut answers = self.error_answers.lock().unwrap_or_else(|p| p.into_inner());
        *answers.entry(key).or_insert(0) += 1;
    }
}

/// Runs the bench.
/// Runs the bench; returns its report and the oversell check of both SKUs.
pub async fn run(
    cfg: Arc<Config>,
    queue: &str,
    flags: BenchFlags,
) -> anyhow::Result<(BenchReport, Result<CheckReport, String>)> {
    let admin = cfg
        .admin_token
        .as_deref()
        .context("the bench needs --admin-token")?;
    let qapi = QueueApi::new(&cfg.target.authority, &cfg.token, admin, queue)?;
    let mut setup = Conn::new(
        cfg.target.addr,
        None,
        cfg.timeout().max(Duration::from_secs(5)),
    );
    let queued_sku = cfg.skus[0].clone();
    let free_sku = format!("{queued_sku}-free");
    for sku in [&queued_sku, &free_sku] {
        let a = setup
            .send(qapi.put_sku(sku, cfg.stock, cfg.price_cents, cfg.reservation_ttl_s)?)
            .await
            .context("PUT /v1/skus")?;
        if !a.status.is_success() {
            bail!("PUT /v1/skus/{sku} answered {}", a.status);
        }
    }
    let mut before = Vec::new();
    for sku in [&queued_sku, &free_sku] {
        before.push(super::read_sku(&mut setup, &qapi, sku).await?);
    }
    let now = unix_ms();
    let settings = json!({
        "skus": [queued_sku],
        "starts_at": wire::format_rfc3339_ms(now.saturating_sub(1_000)),
        "admit_per_s": BENCH_ADMIT_PER_S,
        "max_active": flags.hot_buyers,
        "pass_ttl_s": BENCH_PASS_TTL_S,
        "method": "fifo",
    });
    let a = setup
        .send(qapi.put_queue(settings)?)
        .await
        .context("PUT /v1/queues")?;
    if !a.status.is_success() {
        bail!(
            "PUT /v1/queues/{queue} answered {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
    }

    // The hot buyers: join first, wait for the pass.
    let sources = source_addrs::source_addrs(cfg.target.addr, cfg.source_addrs);
    let mut hot = Vec::with_capacity(flags.hot_buyers);
    let mut joins = JoinSet::new();
    for i in 0..flags.hot_buyers {
        let (cfg, qapi) = (cfg.clone(), qapi.clone());
        let src = source_addrs::for_index(&sources, i);
        joins.spawn(async move { admitted_buyer(&cfg, &qapi, i, src).await });
    }
    while let Some(r) = joins.join_next().await {
        hot.push(r.context("hot buyer task")??);
    }

    // The waiting crowd: join over 2 s, then poll as told (paused in free rounds).
    let counters = Arc::new(Counters {
        ledger: Ledger::new(2),
        reserves: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        polls: AtomicU64::new(0),
        poll_errors: AtomicU64::new(0),
        error_answers: Mutex::new(BTreeMap::new()),
    });
    let (polling_tx, polling_rx) = watch::channel(true);
    let (stop_tx, stop_rx) = watch::channel(false);
    let joined = Arc::new(AtomicU64::new(0));
    let t_join = Instant::now();
    let mut pollers = JoinSet::new();
    for i in 0..cfg.connections {
        let at = t_join + Duration::from_millis(2_000 * i as u64 / cfg.connections.max(1) as u64);
        let ctx = (cfg.clone(), qapi.clone(), counters.clone(), joined.clone());
        let (polling, stop) = (polling_rx.clone(), stop_rx.clone());
        let src = source_addrs::for_index(&sources, flags.hot_buyers + i);
        pollers.spawn(poller(ctx, (i, flags.poller), at, src, polling, stop));
    }
    // Everyone joined and polling at its pace before the first round.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let round = Duration::from_secs_f64(flags.round_s);
    let mut rounds = Vec::new();
    for r in 0..flags.rounds {
        let kind = if r % 2 == 0 {
            RoundKind::Free
        } else {
            RoundKind::Queued
        };
        let _ = polling_tx.send(kind == RoundKind::Queued);
        // Let the pollers settle into (or out of) their pace.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (reserves0, errors0, polls0, poll_errors0) = (
            counters.reserves.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed),
            counters.polls.load(Ordering::Relaxed),
            counters.poll_errors.load(Ordering::Relaxed),
        );
        let start = Instant::now();
        let end = start + round;
        let mut workers = JoinSet::new();
        for (i, (buyer, pass)) in hot.iter().enumerate() {
            let (sku, index) = match kind {
                RoundKind::Free => (free_sku.clone(), 1),
                RoundKind::Queued => (queued_sku.clone(), 0),
            };
            let pass = (kind == RoundKind::Queued).then(|| pass.clone());
            let ctx = (cfg.clone(), qapi.clone(), counters.clone());
            let src = source_addrs::for_index(&sources, i);
            workers.spawn(hot_loop(ctx, buyer.clone(), (sku, index), pass, end, src));
        }
        while workers.join_next().await.is_some() {}
        let secs = start.elapsed().as_secs_f64();
        rounds.push(Round {
            kind,
            reserve_rps: (counters.reserves.load(Ordering::Relaxed) - reserves0) as f64 / secs,
            poll_rps: (counters.polls.load(Ordering::Relaxed) - polls0) as f64 / secs,
            errors: counters.errors.load(Ordering::Relaxed) - errors0,
            poll_errors: counters.poll_errors.load(Ordering::Relaxed) - poll_errors0,
        });
        if !cfg.quiet {
            eprintln!("bench round {r}: {:?}", rounds[rounds.len() - 1]);
        }
    }
    let _ = stop_tx.send(true);
    let _ = polling_tx.send(true);
    while tokio::time::timeout(cfg.timeout() * 2, pollers.join_next())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    pollers.abort_all();

    let med = |k: RoundKind, f: fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds.iter().filter(|r| r.kind == k).map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    };
    let free = med(RoundKind::Free, |r| r.reserve_rps);
    let queued = med(RoundKind::Queued, |r| r.reserve_rps);
    let mut obs = Vec::new();
    let mut read_error = None;
    for (i, sku) in [&queued_sku, &free_sku].into_iter().enumerate() {
        match super::read_sku(&mut setup, &qapi, sku).await {
            Ok(after) => obs.push(SkuObservation {
                before: before[i],
                after,
                tally: counters.ledger.tally(i),
            }),
            Err(e) => read_error = Some(format!("{e:#}")),
        }
    }
    let checked = match read_error {
        Some(e) => Err(e),
        None => Ok(check::check(
            &[queued_sku.clone(), free_sku.clone()],
            &obs,
            false,
        )),
    };
    let queued_median_poll_rps = med(RoundKind::Queued, |r| r.poll_rps);
    let report = BenchReport {
        waiting_buyers: cfg.connections,
        joined: joined.load(Ordering::Relaxed),
        hot_buyers: flags.hot_buyers,
        round_s: flags.round_s,
        rounds,
        free_median_rps: free,
        queued_median_rps: queued,
        ratio: if free > 0.0 { queued / free } else { 0.0 },
        queued_median_poll_rps,
        error_answers: counters
            .error_answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    };
    Ok((report, checked))
}

/// Joins as hot buyer `i` and polls until admitted: (buyer, pass).
async fn admitted_buyer(
    cfg: &Config,
    qapi: &QueueApi,
    i: usize,
    src: Option<std::net::IpAddr>,
) -> anyhow::Result<(String, String)> {
    let buyer = format!("lg-hot-{i}");
    let mut conn = Conn::new(cfg.target.addr, src, cfg.timeout());
    let a = conn.send(qapi.join(&buyer)?).await?;
    let mut t = TicketAnswer::parse(&a.body).context("join answer")?;
    let ticket = t.ticket.clone();
    let until = Instant::now() + ADMISSION_TIMEOUT;
    while t.status != Status::Admitted {
        if Instant::now() >= until || matches!(t.status, Status::Spent | Status::Expired) {
            bail!("hot buyer {buyer} not admitted: {:?}", t.status);
        }
        tokio::time::sleep(Duration::from_millis(t.poll_after_ms.unwrap_or(1_000))).await;
        let a = conn.send(qapi.poll(&ticket)?).await?;
        t = TicketAnswer::parse(&a.body).context("poll answer")?;
    }
    Ok((buyer, t.pass.context("admitted without a pass")?))
}

/// A waiting buyer: joins at `at`, then polls when told while `polling` is true.
async fn poller(
    (cfg, qapi, counters, joined): (Arc<Config>, QueueApi, Arc<Counters>, Arc<AtomicU64>),
    (i, how): (usize, BenchPoller),
    at: Instant,
    src: Option<std::net::IpAddr>,
    mut polling: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::time::sleep_until(at.into()).await;
    let mut conn = Conn::new(cfg.target.addr, src, cfg.timeout());
    let Ok(req) = qapi.join(&format!("lg-wait-{i}")) else {
        return;
    };
    let Some(t) = conn
        .send(req)
        .await
        .ok()
        .and_then(|a| TicketAnswer::parse(&a.body))
    else {
        return;
    };
    joined.fetch_add(1, Ordering::Relaxed);
    let mut client = match how {
        BenchPoller::Hyper => PollClient::Hyper(conn),
        BenchPoller::Raw => {
            // The join's connection is closed; polls go over a raw keep-alive connection with
            // the request built once (the load generator shares the server's cores: ADR 0039).
            drop(conn);
            let built = qapi
                .poll(&t.ticket)
                .map_err(|e| e.to_string())
                .and_then(|r| raw_poll::request_bytes(&r).map_err(|e| e.to_string()));
            let Ok(req) = built else {
                return;
            };
            PollClient::Raw(RawPoller::new(cfg.target.addr, src, cfg.timeout(), req))
        }
    };
    let mut poll_after_ms = t.poll_after_ms;
    // Bounded by the stop signal, sent after the last round.
    while !*stop.borrow() {
        let wait = Duration::from_millis(poll_after_ms.unwrap_or(1_000));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if !*polling.borrow() {
            tokio::select! {
                _ = polling.wait_for(|p| *p) => {}
                _ = stop.changed() => return,
            }
        }
        match client.poll(&qapi, &t.ticket).await {
            Polled::Ticket {
                poll_after_ms: next,
            } => {
                counters.polls.fetch_add(1, Ordering::Relaxed);
                poll_after_ms = next;
            }
            Polled::NotATicket => return,
            Polled::Failed => {
                counters.poll_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What one poll of the bench's waiting buyers gave.
enum Polled {
    /// A ticket, with when to poll again.
    Ticket {
        /// Its `poll_after_ms`.
        poll_after_ms: Option<u64>,
    },
    /// A 200 answer that is not a ticket.
    NotATicket,
    /// A transport failure or an answer other than 200.
    Failed,
}

/// A waiting buyer's poll connection.
enum PollClient {
    /// Raw socket, pre-built request.
    Raw(RawPoller),
    /// hyper client connection, request built per poll.
    Hyper(Conn),
}

impl PollClient {
    /// One poll of `ticket`.
    async fn poll(&mut self, qapi: &QueueApi, ticket: &str) -> Polled {
        let ticket_of = |poll_after_ms: Option<Option<u64>>| match poll_after_ms {
            Some(poll_after_ms) => Polled::Ticket { poll_after_ms },
            None => Polled::NotATicket,
        };
        match self {
            PollClient::Raw(raw) => match raw.poll().await {
                Ok(a) if a.http_status == StatusCode::OK.as_u16() => {
                    ticket_of(a.status.map(|_| a.poll_after_ms))
                }
                _ => Polled::Failed,
            },
            PollClient::Hyper(conn) => {
                let Ok(req) = qapi.poll(ticket) else {
                    return Polled::NotATicket;
                };
                match conn.send(req).await {
                    Ok(a) if a.status == StatusCode::OK => {
                        ticket_of(TicketAnswer::parse(&a.body).map(|t| t.poll_after_ms))
                    }
                    _ => Polled::Failed,
                }
            }
        }
    }
}

/// A hot buyer's round: reserve one unit of `sku` (with `pass`) and cancel it, until `end`.
async fn hot_loop(
    (cfg, qapi, counters): (Arc<Config>, QueueApi, Arc<Counters>),
    buyer: String,
    (sku, index): (String, usize),
    pass: Option<String>,
    end: Instant,
    src: Option<std::net::IpAddr>,
) {
    let mut conn = Conn::new(cfg.target.addr, src, cfg.timeout());
    while Instant::now() < end {
        let Ok(req) = qapi.reserve(&buyer, &sku, 1, pass.as_deref(), None) else {
            return;
        };
        let id = match conn.send(req).await {
            Ok(a) if a.status == StatusCode::CREATED => {
                let id = api::reservation_id(&a.body);
                if id.is_none() {
                    counters.hot_error("reserve", Some(a.status));
                }
                id
            }
            Ok(a) => {
                counters.hot_error("reserve", Some(a.status));
                None
            }
            Err(_) => {
                counters.ledger.add(index, Event::UnknownReserve, 1);
                counters.hot_error("reserve", None);
                None
            }
        };
        let Some(id) = id else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counters.reserves.fetch_add(1, Ordering::Relaxed);
        counters.ledger.add(index, Event::Held, 1);
        let Ok(req) = qapi.cancel(&id) else { return };
        match conn.send(req).await {
            Ok(a) if a.status.is_success() => counters.ledger.add(index, Event::Cancelled, 1),
            Ok(a) => counters.hot_error("cancel", Some(a.status)),
            Err(_) => {
                counters.hot_error("cancel", None);
                counters.ledger.add(index, Event::UnknownCancel, 1);
            }
        }
    }
}
