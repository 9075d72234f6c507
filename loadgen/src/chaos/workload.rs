//! The chaos workload: workers that reserve multi-line carts for a rotating crowd of buyers with
//! an `Idempotency-Key` on every reservation, send some of them as concurrent duplicates (same
//! key, same body, same moment), retry after timeouts, resets and refused connections with the
//! same key, confirm, cancel, abandon holds to their short TTL, extend holds (up to and past
//! the SKUs' bounds), probe keys with another body, restock, read counts and read buyers'
//! reservation lists page by page. Every request is recorded in the history with its outcome.
//!
//! Each worker owns a few keep-alive connections; every connection is one Jepsen "process"
//! (`proc` = worker × [`CONNS_PER_WORKER`] + connection), sending one request at a time.
//! Bounded: the run stops at the stop signal, the duration or the op cap, whichever comes first,
//! and every request has a deadline.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::catalog::{Catalog, SkuKind};
use super::client::{Client, SendMode};
use super::history::{Call, Line, Op, Outcome, Phase};
use crate::conn::Conn;

/// Connections (processes) per worker: the main one and two more for concurrent duplicates.
pub const CONNS_PER_WORKER: usize = 3;
/// Most workers.
pub const MAX_WORKERS: usize = 256;
/// Attempts of one reservation (same key and body) before it is left to the read-back.
pub const MAX_RESERVE_ATTEMPTS: usize = 6;
/// Attempts of one confirm or cancel.
pub const MAX_FOLLOW_UP_ATTEMPTS: usize = 4;
/// Recent reservations a worker remembers for replays and mismatch probes.
pub const RECENT_KEYS: usize = 16;

/// How the workload behaves.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Seed of every random choice (worker `w` uses a generator derived from it).
    pub seed: u64,
    /// Concurrent workers.
    pub workers: usize,
    /// Longest load phase.
    pub duration: Duration,
    /// Hard cap on requests sent in the load phase.
    pub max_ops: u64,
    /// Deadline of an ordinary request (longer than the server's 2 s wait for a durable log,
    /// so that an outage is seen as `503 unavailable`, not as a timeout).
    pub timeout: Duration,
    /// Share of reservations sent as 2–3 concurrent duplicates.
    pub dup_share: f64,
    /// Share of requests given a short deadline (100–500 ms): timeouts, then retries.
    pub short_timeout_share: f64,
    /// Share of requests whose connection the client drops right after sending.
    pub reset_share: f64,
    /// Pause between two flows of a worker, upper bound.
    pub think_max: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            seed: 0,
            workers: 12,
            duration: Duration::from_secs(60),
            max_ops: 2_000_000,
            timeout: Duration::from_millis(3_500),
            dup_share: 0.2,
            short_timeout_share: 0.05,
            reset_share: 0.03,
            think_max: Duration::from_millis(20),
        }
    }
}

/// A reservation request whose outcome the load phase could not learn (left for read-back).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenKey {
    /// Caller index.
    pub caller: u32,
    /// Idempotency key.
    pub key: String,
    /// Buyer in the body.
    pub buyer: String,
    /// Lines in the body.
    pub lines: Vec<Line>,
}

/// Counters printed while the load runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests sent.
    pub ops: AtomicU64,
    /// Reservations acknowledged (first 201 of a key).
    pub acked: AtomicU64,
    /// Requests whose outcome is unknown.
    pub unknown: AtomicU64,
    /// 503 answers.
    pub unavailable: AtomicU64,
    /// Groups of concurrent duplicates sent.
    pub dup_groups: AtomicU64,
}

/// State shared by the workers and the read-back.
#[derive(Debug)]
pub struct Workload {
    /// The HTTP client (and history).
    pub client: Client,
    /// SKUs and buyers.
    pub catalog: Catalog,
    /// Behaviour.
    pub cfg: WorkloadConfig,
    /// Start of the load.
    pub started: Instant,
    /// Progress counters.
    pub counters: Counters,
    /// Acknowledged reservation ids and their latest possible `expires_at` (ms), to read back.
    pub acked: Mutex<BTreeMap<String, u64>>,
    /// Buyers of acknowledged reservations (their orders are read back after the run).
    pub buyers: Mutex<BTreeSet<String>>,
    /// Reservation keys without a definite outcome.
    pub open_keys: Mutex<Vec<OpenKey>>,
}

struct Recent {
    caller: u32,
    key: String,
    buyer: String,
    lines: Vec<Line>,
}

struct Worker {
    w: Arc<Workload>,
    index: usize,
    rng: StdRng,
    conns: Vec<Conn>,
    seq: u64,
    recent: VecDeque<Recent>,
}

/// What a reservation attempt (possibly several concurrent copies) established.
enum Resolved {
    /// A 201: the id and `expires_at` of the reservation.
    Held(String, u64),
    /// A definite refusal: no reservation under this key (for now).
    Refused,
    /// Nothing definite; retry (after this long).
    Retry(Duration),
}

impl Workload {
    /// A workload for `catalog` (whose SKUs must exist already) sending through `client`.
    pub fn new(client: Client, catalog: Catalog, cfg: WorkloadConfig) -> Arc<Workload> {
        Arc::new(Workload {
            client,
            catalog,
            cfg,
            started: Instant::now(),
            counters: Counters::default(),
            acked: Mutex::new(BTreeMap::new()),
            buyers: Mutex::new(BTreeSet::new()),
            open_keys: Mutex::new(Vec::new()),
        })
    }

    /// Records what an op taught about the state (acknowledgements, counters).
    fn note(&self, op: &Op) {
        self.counters.ops.fetch_add(1, Ordering::Relaxed);
        if let Call::Extend { id, ttl_s } = &op.call {
            // The hold may now last longer: the read-back waits for the latest possible end.
            let latest = match &op.outcome {
                Outcome::Http(h) if h.status == 200 => {
                    h.reservation.as_ref().map(|r| r.expires_at_ms)
                }
                o if effect_unknown(o) => Some(op.complete_us / 1000 + ttl_s * 1000),
                _ => None,
            };
            if let Some(t) = latest {
                if let Some(e) = lock(&self.acked).get_mut(id) {
                    *e = (*e).max(t);
                }
            }
        }
        match &op.outcome {
            Outcome::Unknown { .. } => {
                self.counters.unknown.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Http(h) if h.status == 503 => {
                self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Http(h) if h.status == 201 => {
                if let Some(r) = &h.reservation {
                    let mut acked = lock(&self.acked);
                    let e = acked.entry(r.id.clone()).or_insert_with(|| {
                        self.counters.acked.fetch_add(1, Ordering::Relaxed);
                        r.expires_at_ms
                    });
                    *e = (*e).max(r.expires_at_ms);
                    lock(&self.buyers).insert(r.buyer.clone());
                }
            }
            _ => {}
        }
    }

    fn budget_left(&self) -> bool {
        self.counters.ops.load(Ordering::Relaxed) < self.cfg.max_ops
            && self.started.elapsed() < self.cfg.duration
    }

    /// Runs the workers until `stop` turns true, the duration passes or the op cap is reached.
    pub async fn run_load(self: &Arc<Self>, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let workers = self.cfg.workers.clamp(1, MAX_WORKERS);
        let mut tasks = Vec::with_capacity(workers);
        for index in 0..workers {
            let mut worker = Worker {
                w: self.clone(),
                index,
                rng: StdRng::seed_from_u64(
                    self.cfg.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ),
                conns: (0..CONNS_PER_WORKER)
                    .map(|_| self.client.conn(self.cfg.timeout))
                    .collect(),
                seq: 0,
                recent: VecDeque::with_capacity(RECENT_KEYS),
            };
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { worker.run(stop).await }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }
}

/// Locks a mutex, ignoring poisoning (a panicked worker's partial state is still consistent:
/// every update is a single insert or push).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Whether an answer to a write leaves its effect unknown (it may have happened or may still
/// happen): no answer, `503` (the record may become durable later) or another 5xx.
pub fn effect_unknown(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Unknown { .. } => true,
        Outcome::Refused { .. } => false,
        Outcome::Http(h) => h.status >= 500,
    }
}

impl Worker {
    fn proc(&self, conn: usize) -> u32 {
        (self.index * CONNS_PER_WORKER + conn) as u32
    }

    fn send_mode(&mut self) -> SendMode {
        let cfg = &self.w.cfg;
        let u: f64 = self.rng.gen();
        if u < cfg.reset_share {
            SendMode::Reset(Duration::from_millis(self.rng.gen_range(0..8)))
        } else if u < cfg.reset_share + cfg.short_timeout_share {
            SendMode::Wait(Duration::from_millis(self.rng.gen_range(100..500)))
        } else {
            SendMode::Wait(cfg.timeout)
        }
    }

    async fn call(&mut self, conn: usize, call: Call, send: SendMode) -> anyhow::Result<Op> {
        let proc = self.proc(conn);
        let w = self.w.clone();
        let op = w
            .client
            .run(&mut self.conns[conn], proc, Phase::Load, call, send)
            .await?;
        w.note(&op);
        Ok(op)
    }

    /// Sleeps up to `d`, returning false if the run is to stop.
    async fn pause(&self, d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.changed() => {}
        }
        !*stop.borrow() && self.w.budget_left()
    }

    async fn run(&mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        while !*stop.borrow() && self.w.budget_left() {
            let u: f64 = self.rng.gen();
            if u < 0.01 {
                self.restock().await?;
            } else if u < 0.06 {
                self.read_sku().await?;
            } else if u < 0.08 && !self.recent.is_empty() {
                self.replay(&mut stop).await?;
            } else if u < 0.095 && !self.recent.is_empty() {
                self.mismatch_probe().await?;
            } else if u < 0.115 && self.w.client.callers() > 1 {
                self.scope_pair().await?;
            } else if u < 0.145 {
                self.read_list().await?;
            } else {
                self.reserve_flow(&mut stop).await?;
            }
            let think = self.w.cfg.think_max.as_millis() as u64;
            let d = Duration::from_millis(self.rng.gen_range(0..=think));
            if !self.pause(d, &mut stop).await {
                break;
            }
        }
        Ok(())
    }

    fn pick_lines(&mut self) -> Vec<Line> {
        let n = match self.rng.gen_range(0..100) {
            0..=24 => 1,
            25..=59 => 2,
            60..=84 => 3,
            _ => 4,
        };
        let cat = &self.w.catalog;
        let cart = if self.rng.gen_bool(0.25) {
            cat.pick_plenty_cart(&mut self.rng, n)
        } else {
            let mixed = self.rng.gen_bool(0.6);
            cat.pick_cart(&mut self.rng, n, mixed)
        };
        cart.into_iter()
            .map(|i| Line {
                sku: cat.skus[i].sku.clone(),
                qty: if self.rng.gen_bool(0.8) { 1 } else { 2 },
            })
            .collect()
    }

    fn new_key(&mut self) -> String {
        self.seq += 1;
        format!("{}-k{}-{}", self.w.catalog.prefix, self.index, self.seq)
    }

    fn buyer(&mut self) -> String {
        let elapsed = self.w.started.elapsed().as_secs();
        self.w.catalog.pick_buyer(&mut self.rng, elapsed)
    }

    /// Sends one attempt of a reservation, as `copies` concurrent duplicates.
    async fn attempt(&mut self, call: &Call, copies: usize) -> anyhow::Result<Vec<Op>> {
        if copies <= 1 {
            let send = self.send_mode();
            return Ok(vec![self.call(0, call.clone(), send).await?]);
        }
        self.w.counters.dup_groups.fetch_add(1, Ordering::Relaxed);
        let sends: Vec<SendMode> = (0..copies).map(|_| self.send_mode()).collect();
        let client = self.w.client.clone();
        let procs: Vec<u32> = (0..copies).map(|c| self.proc(c)).collect();
        let futures = self
            .conns
            .iter_mut()
            .take(copies)
            .zip(sends)
            .zip(procs)
            .map(|((conn, send), proc)| {
                let client = client.clone();
                let call = call.clone();
                async move { client.run(conn, proc, Phase::Load, call, send).await }
            });
        let mut ops = Vec::with_capacity(copies);
        for r in join_all(futures).await {
            let op = r?;
            self.w.note(&op);
            ops.push(op);
        }
        Ok(ops)
    }

    fn resolve(&mut self, ops: &[Op], attempt: usize) -> Resolved {
        let mut retry = false;
        let mut wait = Duration::from_millis(100u64 << attempt.min(4)).min(Duration::from_secs(1));
        for op in ops {
            match &op.outcome {
                Outcome::Http(h) if h.status == 201 => {
                    if let Some(r) = &h.reservation {
                        return Resolved::Held(r.id.clone(), r.expires_at_ms);
                    }
                    // A 201 without a readable body: the checker reports it; the key is
                    // read back after the run.
                    retry = true;
                }
                Outcome::Http(h) if h.is(409, "idempotency-in-progress") => {
                    retry = true;
                    if let Some(s) = h.retry_after_s {
                        wait = wait.max(Duration::from_secs(s.min(1)));
                    }
                }
                Outcome::Http(h) if h.status == 429 && !is_buyer_limit(op) => {
                    retry = true;
                }
                Outcome::Refused { .. } => retry = true,
                o if effect_unknown(o) => retry = true,
                _ => {}
            }
        }
        let jitter = Duration::from_millis(self.rng.gen_range(0..50));
        if retry {
            Resolved::Retry(wait + jitter)
        } else {
            Resolved::Refused
        }
    }

    /// Reserves under a fresh key until a definite answer (bounded); returns the reservation.
    async fn reserve(
        &mut self,
        caller: u32,
        key: String,
        buyer: String,
        lines: Vec<Line>,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<(String, u64)>> {
        let call = Call::Reserve {
            caller,
            key: Some(key.clone()),
            buyer: buyer.clone(),
            lines: lines.clone(),
        };
        let dup = self.rng.gen_bool(self.w.cfg.dup_share);
        for attempt in 0..MAX_RESERVE_ATTEMPTS {
            let copies = if dup && attempt == 0 {
                self.rng.gen_range(2..=CONNS_PER_WORKER)
            } else {
                1
            };
            let ops = self.attempt(&call, copies).await?;
            match self.resolve(&ops, attempt) {
                Resolved::Held(id, exp) => {
                    self.remember(caller, key, buyer, lines);
                    return Ok(Some((id, exp)));
                }
                Resolved::Refused => return Ok(None),
                Resolved::Retry(wait) => {
                    if attempt + 1 == MAX_RESERVE_ATTEMPTS || !self.pause(wait, stop).await {
                        break;
                    }
                }
            }
        }
        lock(&self.w.open_keys).push(OpenKey {
            caller,
            key,
            buyer,
            lines,
        });
        Ok(None)
    }

    fn remember(&mut self, caller: u32, key: String, buyer: String, lines: Vec<Line>) {
        if self.recent.len() == RECENT_KEYS {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent {
            caller,
            key,
            buyer,
            lines,
        });
    }

    async fn reserve_flow(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let caller = self.rng.gen_range(0..self.w.client.callers()) as u32;
        let key = self.new_key();
        let buyer = self.buyer();
        let lines = self.pick_lines();
        let Some((id, expires_at_ms)) = self.reserve(caller, key, buyer, lines, stop).await? else {
            return Ok(());
        };
        if self.rng.gen_bool(0.2) {
            let send = self.send_mode();
            self.call(0, Call::GetReservation { id: id.clone() }, send)
                .await?;
        }
        if self.rng.gen_bool(0.25) {
            self.extend(&id, stop).await?;
        }
        let u: f64 = self.rng.gen();
        if u < 0.35 {
            self.confirm(&id, stop).await?;
        } else if u < 0.55 {
            self.cancel(&id, stop).await?;
        } else if u < 0.60 {
            self.late_confirm(&id, expires_at_ms, stop).await?;
        }
        // Otherwise abandoned: it expires after its TTL.
        if self.rng.gen_bool(0.1) {
            let send = self.send_mode();
            self.call(0, Call::GetReservation { id }, send).await?;
        }
        Ok(())
    }

    async fn follow_up(
        &mut self,
        call: Call,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        for attempt in 0..MAX_FOLLOW_UP_ATTEMPTS {
            let send = self.send_mode();
            let op = self.call(0, call.clone(), send).await?;
            let again =
                matches!(op.outcome, Outcome::Refused { .. }) || effect_unknown(&op.outcome);
            if !again {
                return Ok(());
            }
            let wait =
                Duration::from_millis((100u64 << attempt).min(1000) + self.rng.gen_range(0..50));
            if !self.pause(wait, stop).await {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn confirm(&mut self, id: &str, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let payment_ref = format!("{}-pay-{id}", self.w.catalog.prefix);
        let call = Call::Confirm {
            id: id.to_string(),
            payment_ref,
        };
        self.follow_up(call, stop).await
    }

    async fn cancel(&mut self, id: &str, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        self.follow_up(Call::Cancel { id: id.to_string() }, stop)
            .await
    }

    /// Extends the hold 1–4 times by 1–3 s, a little apart (the SKUs' bounds allow 2 to 3
    /// extensions and, for the scarce ones, a 4 s hold: some are refused). An extension is not
    /// retried: each one counts, so a lost answer is left to the checker as a maybe.
    async fn extend(&mut self, id: &str, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        for _ in 0..self.rng.gen_range(1..=4) {
            let call = Call::Extend {
                id: id.to_string(),
                ttl_s: self.rng.gen_range(1..=3),
            };
            let send = self.send_mode();
            let op = self.call(0, call, send).await?;
            let go_on = matches!(&op.outcome, Outcome::Http(h) if h.status == 200);
            let wait = Duration::from_millis(self.rng.gen_range(50..400));
            if !go_on || !self.pause(wait, stop).await {
                break;
            }
        }
        Ok(())
    }

    /// Reads a buyer's reservations (sometimes only one status), up to three pages.
    async fn read_list(&mut self) -> anyhow::Result<()> {
        let buyer = self.buyer();
        let status = self.rng.gen_bool(0.3).then(|| {
            ["held", "confirmed", "released", "expired"][self.rng.gen_range(0..4)].to_string()
        });
        let limit = self.rng.gen_range(1..=20);
        let mut cursor = None;
        for _ in 0..3 {
            let call = Call::ListReservations {
                buyer: buyer.clone(),
                status: status.clone(),
                limit,
                cursor: cursor.take(),
            };
            let send = self.send_mode();
            let op = self.call(0, call, send).await?;
            match &op.outcome {
                Outcome::Http(h) if h.status == 200 && h.next_cursor.is_some() => {
                    cursor = h.next_cursor.clone();
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Waits past the hold's expiry, then confirms: the server must refuse (409 invalid-state).
    async fn late_confirm(
        &mut self,
        id: &str,
        expires_at_ms: u64,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let now_ms = super::history::now_us() / 1000;
        let wait_ms = expires_at_ms.saturating_sub(now_ms).min(3_000) + self.rng.gen_range(50..300);
        if !self.pause(Duration::from_millis(wait_ms), stop).await {
            return Ok(());
        }
        self.confirm(id, stop).await
    }

    /// The same key and body again, after the reservation was made: the same reservation must
    /// come back, in its current state.
    async fn replay(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let i = self.rng.gen_range(0..self.recent.len());
        let r = &self.recent[i];
        let call = Call::Reserve {
            caller: r.caller,
            key: Some(r.key.clone()),
            buyer: r.buyer.clone(),
            lines: r.lines.clone(),
        };
        let copies = if self.rng.gen_bool(0.3) { 2 } else { 1 };
        let ops = self.attempt(&call, copies).await?;
        if let Resolved::Retry(wait) = self.resolve(&ops, 0) {
            let _ = self.pause(wait, stop).await;
        }
        Ok(())
    }

    /// A key already used, with another body: the server must refuse (409 idempotency-mismatch).
    async fn mismatch_probe(&mut self) -> anyhow::Result<()> {
        let i = self.rng.gen_range(0..self.recent.len());
        let r = &self.recent[i];
        let mut lines = r.lines.clone();
        if let Some(first) = lines.first_mut() {
            first.qty = if first.qty == 1 { 2 } else { 1 };
        }
        let call = Call::Reserve {
            caller: r.caller,
            key: Some(r.key.clone()),
            buyer: r.buyer.clone(),
            lines,
        };
        let send = self.send_mode();
        self.call(0, call, send).await?;
        Ok(())
    }

    /// One key string used by two callers with different bodies at the same moment: keys are
    /// scoped per caller, so each gets its own outcome (never a mismatch, never the other's).
    async fn scope_pair(&mut self) -> anyhow::Result<()> {
        let key = self.new_key();
        let mut calls = Vec::with_capacity(2);
        for caller in 0..2u32 {
            let buyer = self.buyer();
            let lines = {
                let cat = &self.w.catalog;
                cat.pick_plenty_cart(&mut self.rng, 1)
                    .into_iter()
                    .map(|i| Line {
                        sku: cat.skus[i].sku.clone(),
                        qty: 1,
                    })
                    .collect::<Vec<_>>()
            };
            calls.push(Call::Reserve {
                caller,
                key: Some(key.clone()),
                buyer,
                lines,
            });
        }
        let client = self.w.client.clone();
        let timeout = self.w.cfg.timeout;
        let procs = [self.proc(0), self.proc(1)];
        let (c0, rest) = self.conns.split_at_mut(1);
        let (a, b) = tokio::join!(
            client.run(
                &mut c0[0],
                procs[0],
                Phase::Load,
                calls[0].clone(),
                SendMode::Wait(timeout)
            ),
            client.run(
                &mut rest[0],
                procs[1],
                Phase::Load,
                calls[1].clone(),
                SendMode::Wait(timeout)
            ),
        );
        for (op, call) in [(a?, &calls[0]), (b?, &calls[1])] {
            self.w.note(&op);
            let definite = matches!(&op.outcome, Outcome::Http(h) if h.status < 500 && !h.is(409, "idempotency-in-progress"));
            if !definite {
                if let Call::Reserve {
                    caller,
                    key,
                    buyer,
                    lines,
                } = call
                {
                    lock(&self.w.open_keys).push(OpenKey {
                        caller: *caller,
                        key: key.clone().unwrap_or_default(),
                        buyer: buyer.clone(),
                        lines: lines.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn restock(&mut self) -> anyhow::Result<()> {
        let scarce = self.w.catalog.of_kind(SkuKind::Scarce);
        if scarce.is_empty() {
            return Ok(());
        }
        let i = scarce[self.rng.gen_range(0..scarce.len())];
        let call = Call::Restock {
            sku: self.w.catalog.skus[i].sku.clone(),
            qty: self.rng.gen_range(1..=3),
        };
        let send = self.send_mode();
        self.call(0, call, send).await?;
        Ok(())
    }

    async fn read_sku(&mut self) -> anyhow::Result<()> {
        let i = self.rng.gen_range(0..self.w.catalog.skus.len());
        let call = Call::GetSku {
            sku: self.w.catalog.skus[i].sku.clone(),
        };
        let send = self.send_mode();
        self.call(0, call, send).await?;
        Ok(())
    }
}

fn is_buyer_limit(op: &Op) -> bool {
    matches!(&op.outcome, Outcome::Http(h) if h.is(429, "buyer-limit"))
}

/// Open keys grouped by (caller, key), first body kept (a key is only ever re-sent with its
/// first body by the read-back).
pub fn dedup_open_keys(keys: Vec<OpenKey>) -> Vec<OpenKey> {
    let mut seen: HashMap<(u32, String), OpenKey> = HashMap::new();
    for k in keys {
        seen.entry((k.caller, k.key.clone())).or_insert(k);
    }
    let mut out: Vec<OpenKey> = seen.into_values().collect();
    out.sort();
    out
}
