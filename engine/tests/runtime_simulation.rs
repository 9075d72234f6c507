//! Runtime-level deterministic simulation: the real shard nodes — coordinator, idempotency keys
//! in progress, commit path — in a [`World`] whose driver picks every step at random from a
//! seed: which message is delivered next (any order), which shard flushes and whether its log
//! fails, when the clock moves and ticks, when the process crashes (losing the unflushed tail
//! of each log, or keeping part of it). Callers submit concurrently, duplicates with the same
//! Idempotency-Key included.
//!
//! A reference model of the contract checks every answer as it arrives and, at quiet points,
//! the whole state: an acknowledged reservation is real, whole and durable; a key (scoped to
//! its caller) names one reservation and its retries return it; nothing is held, sold or
//! refused that the contract does not allow; every SKU's counts are the sum of its
//! reservations; no buyer exceeds a limit; parts agree with their home.
//!
//! Replay a failing seed with the command it prints. `FLASHSALE_RTSIM_SEED` runs one seed,
//! `FLASHSALE_RTSIM_STEPS` sets the steps per seed, `FLASHSALE_RTSIM_SEEDS` the seed count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use flashsale_engine::limits::UNAVAILABLE_AFTER_MS;
use flashsale_engine::node::message::{Answer, Request};
use flashsale_engine::node::world::{Ticket, World};
use flashsale_engine::shard::shard_of;
use flashsale_engine::{CommandError, ReservationStatus, ReservationView, ReserveRequest};
use flashsale_protocol::{BuyerId, KeyOwner, ReleaseReason, ReservationId, ScopedKey, SkuId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::*;

/// What the model knows of an acknowledged reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Acknowledged held; may have expired since.
    Held,
    /// A confirm was acknowledged.
    Confirmed,
    /// A cancel was acknowledged.
    Cancelled,
    /// A confirm or cancel was sent but its answer was lost in a crash.
    Decided,
}

#[derive(Debug, Clone)]
struct MRes {
    buyer: BuyerId,
    lines: Vec<(SkuId, u32)>,
    expires_at_ms: u64,
    known: Known,
}

/// A reservation request whose outcome was lost in a crash: it may or may not exist.
#[derive(Debug, Clone)]
struct Unknown {
    buyer: BuyerId,
    lines: Vec<(SkuId, u32)>,
    key: Option<ScopedKey>,
}

/// The contract, as plainly as possible.
#[derive(Debug, Default)]
struct Model {
    res: BTreeMap<ReservationId, MRes>,
    keys: BTreeMap<ScopedKey, ReservationId>,
    unknown: Vec<Unknown>,
    limits: BTreeMap<SkuId, Option<u32>>,
    totals: BTreeMap<SkuId, u64>,
}

/// A request on its way (a test's short list of them: the size of a variant does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Op {
    Reserve {
        req: ReserveRequest,
        sub: Submitted,
        /// The caller's key in flight, released with the answer (or the crash).
        _key: Option<flashsale_engine::node::caller::KeyInFlight>,
    },
    Decide {
        id: ReservationId,
        confirm: bool,
        ticket: Ticket,
    },
}

struct Sim {
    seed: u64,
    rng: ChaCha8Rng,
    w: World,
    now: u64,
    skus: Vec<SkuId>,
    buyers: Vec<BuyerId>,
    keyed: Vec<ReserveRequest>,
    /// The callers' keys in flight (as `Engine::reserve` keeps them).
    keys: std::sync::Arc<flashsale_engine::node::caller::KeysInFlight>,
    ops: Vec<Op>,
    model: Model,
    /// Every answered or lost reservation request, for failure reports: (step, request, outcome).
    history: Vec<(u64, ReserveRequest, String)>,
    /// Per shard: since when its log fails (flushes fail until it heals).
    failing: Vec<Option<u64>>,
    stats: Stats,
}

#[derive(Debug, Default)]
struct Stats {
    steps: u64,
    acked: u64,
    refused: u64,
    in_progress: u64,
    unavailable: u64,
    crashes: u64,
    snapshots_restored: u64,
    flush_failures: u64,
    duplicates: u64,
    resolved_unknown: u64,
}

fn same_lines(v: &ReservationView, lines: &[(SkuId, u32)]) -> bool {
    v.lines.len() == lines.len()
        && v.lines
            .iter()
            .zip(lines)
            .all(|(l, (s, q))| l.sku == *s && l.qty == *q)
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shards = rng.gen_range(2..=4);
        let mut w = world_with_snapshots(shards, rng.gen_range(20..200));
        let mut model = Model::default();
        let n_skus = rng.gen_range(3..10);
        let now = 1_000_000;
        let mut skus = Vec::new();
        for i in 0..n_skus {
            let mut s = spec(&format!("sku-{i}"), rng.gen_range(0..30));
            s.per_buyer_limit = rng.gen_bool(0.4).then(|| rng.gen_range(1..4));
            if rng.gen_bool(0.15) {
                s.sale_starts_at_ms = Some(now + rng.gen_range(0..20_000));
            }
            s.reservation_ttl_ms = rng.gen_range(300..6_000);
            model.limits.insert(s.sku.clone(), s.per_buyer_limit);
            model.totals.insert(s.sku.clone(), s.stock);
            skus.push(s.sku.clone());
            upsert(&mut w, now, s);
        }
        Sim {
            seed,
            buyers: (0..rng.gen_range(2..7))
                .map(|i| buyer(&format!("buyer-{i}")))
                .collect(),
            rng,
            w,
            now,
            skus,
            keyed: Vec::new(),
            keys: Default::default(),
            ops: Vec::new(),
            model,
            failing: vec![None; shards],
            history: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn fail(&self, why: String) -> String {
        format!(
            "seed {} step {}: {why}\nreplay: FLASHSALE_RTSIM_SEED={} cargo test -p flashsale-engine \
             --test runtime_simulation",
            self.seed, self.stats.steps, self.seed
        )
    }

    fn random_request(&mut self) -> ReserveRequest {
        if !self.keyed.is_empty() && self.rng.gen_bool(0.3) {
            // A retry or a concurrent duplicate of a keyed request; rarely with another body.
            self.stats.duplicates += 1;
            let i = self.rng.gen_range(0..self.keyed.len());
            let mut req = self.keyed[i].clone();
            if self.rng.gen_bool(0.05) {
                req.lines[0].1 += 1;
            }
            return req;
        }
        let n = if self.rng.gen_bool(0.5) {
            1
        } else {
            self.rng.gen_range(2..5)
        };
        let mut lines: Vec<(SkuId, u32)> = Vec::new();
        for _ in 0..n {
            let s = self.skus[self.rng.gen_range(0..self.skus.len())].clone();
            if !lines.iter().any(|(x, _)| *x == s) {
                lines.push((s, self.rng.gen_range(1..3)));
            }
        }
        let b = self.buyers[self.rng.gen_range(0..self.buyers.len())].clone();
        let key = self.rng.gen_bool(0.5).then(|| {
            let owner = if self.rng.gen_bool(0.2) {
                KeyOwner::Buyer(b.clone())
            } else {
                KeyOwner::Credential(self.rng.gen_range(1..3))
            };
            let k = flashsale_protocol::IdempotencyKey::new(format!(
                "k{}",
                self.rng.gen_range(0..1_000_000u32)
            ))
            .expect("key");
            ScopedKey::new(owner, k)
        });
        let req = ReserveRequest {
            buyer: b,
            lines,
            idempotency_key: key,
            ttl_ms: None,
        };
        if req.idempotency_key.is_some() {
            self.keyed.push(req.clone());
            if self.keyed.len() > 64 {
                self.keyed.remove(0);
            }
        }
        req
    }

    fn step(&mut self) -> Result<(), String> {
        self.stats.steps += 1;
        if self.rng.gen_bool(0.2) {
            self.now += self.rng.gen_range(0..300);
        }
        let shards = self.w.shard_count();
        match self.rng.gen_range(0..100) {
            0..=19 => {
                let req = self.random_request();
                let (sub, key) = submit_keyed(&mut self.w, self.now, req.clone(), Some(&self.keys));
                self.ops.push(Op::Reserve {
                    req,
                    sub,
                    _key: key,
                });
            }
            20..=25 => {
                let ids: Vec<ReservationId> = self.model.res.keys().copied().collect();
                if !ids.is_empty() {
                    let id = ids[self.rng.gen_range(0..ids.len())];
                    let confirm = self.rng.gen_bool(0.6);
                    let req = if confirm {
                        Request::Confirm(id, format!("pay-{}", id.counter()))
                    } else {
                        Request::Cancel(id)
                    };
                    let ticket = self.w.submit(id.shard(), req);
                    self.ops.push(Op::Decide {
                        id,
                        confirm,
                        ticket,
                    });
                }
            }
            26..=64 => {
                if self.w.in_flight() > 0 {
                    let i = self.rng.gen_range(0..self.w.in_flight());
                    self.w.deliver(i, self.now);
                }
            }
            65..=84 => {
                let s = self.rng.gen_range(0..shards);
                if !self.w.is_flushing(s) {
                    self.w.append(s);
                } else {
                    self.flush(s);
                }
            }
            85..=89 => {
                let s = self.rng.gen_range(0..shards);
                // Logs fail about a tenth of the time, in spells.
                self.failing[s] = match self.failing[s] {
                    Some(_) => None,
                    None if self.rng.gen_bool(0.1) => Some(self.now),
                    None => None,
                };
            }
            90..=97 => {
                let s = self.rng.gen_range(0..shards);
                self.w.tick(s, self.now);
            }
            _ => {
                if self.rng.gen_bool(0.1) {
                    self.crash()?;
                }
            }
        }
        self.collect()
    }

    fn flush(&mut self, s: usize) {
        match self.failing[s] {
            None => self.w.flush(s, true, self.now),
            Some(since) => {
                self.stats.flush_failures += 1;
                // A failing log: the longer it fails, the more waiters give up.
                let failing_for = self.now.saturating_sub(since)
                    + if self.rng.gen_bool(0.2) {
                        UNAVAILABLE_AFTER_MS
                    } else {
                        0
                    };
                self.w.flush_after(s, false, self.now, failing_for);
            }
        }
    }

    /// Checks every answer that arrived.
    fn collect(&mut self) -> Result<(), String> {
        let mut i = 0;
        while i < self.ops.len() {
            let done = match &self.ops[i] {
                Op::Reserve { sub, .. } => !pending(&self.w, sub),
                Op::Decide { ticket, .. } => self.w.has_reply(*ticket),
            };
            if !done {
                i += 1;
                continue;
            }
            match self.ops.swap_remove(i) {
                Op::Reserve { req, sub, .. } => {
                    let r = outcome(&mut self.w, &sub).expect("answered");
                    let said = match &r {
                        Ok(v) => format!("ok {} {:?}", v.id, v.status),
                        Err(e) => format!("{e:?}"),
                    };
                    self.history.push((self.stats.steps, req.clone(), said));
                    self.check_reserve(&req, r)?;
                }
                Op::Decide {
                    id,
                    confirm,
                    ticket,
                } => {
                    let r = self.w.take_reply(ticket).expect("answered");
                    self.check_decide(id, confirm, r)?;
                }
            }
        }
        Ok(())
    }

    fn check_reserve(
        &mut self,
        req: &ReserveRequest,
        r: Result<ReservationView, CommandError>,
    ) -> Result<(), String> {
        let earlier = req
            .idempotency_key
            .as_ref()
            .and_then(|k| self.model.keys.get(k).copied());
        match r {
            Ok(v) => {
                self.stats.acked += 1;
                if !same_lines(&v, &req.lines) || v.buyer != req.buyer {
                    return Err(self.fail(format!(
                        "acknowledged a partial or foreign {v:?} for {req:?}"
                    )));
                }
                if let Some(id) = earlier {
                    if id != v.id {
                        return Err(self.fail(format!("key returned {} after {id}", v.id)));
                    }
                    return Ok(());
                }
                if let Some(k) = &req.idempotency_key {
                    self.model.keys.insert(k.clone(), v.id);
                }
                // A fresh acknowledgement must be held right now (the model treats a replay of
                // an unknown outcome as fresh too: it may already have moved on).
                let known = match v.status {
                    ReservationStatus::Held => Known::Held,
                    ReservationStatus::Confirmed | ReservationStatus::Released => Known::Decided,
                    ReservationStatus::Expired => Known::Held,
                };
                self.model.res.entry(v.id).or_insert(MRes {
                    buyer: v.buyer.clone(),
                    lines: req.lines.clone(),
                    expires_at_ms: v.expires_at_ms,
                    known,
                });
                Ok(())
            }
            Err(e) => {
                match &e {
                    CommandError::IdempotencyInProgress { .. } => self.stats.in_progress += 1,
                    CommandError::Unavailable(_) => {
                        // Like a timeout: the hold may still reach the log once it heals.
                        self.stats.unavailable += 1;
                        self.model.unknown.push(Unknown {
                            buyer: req.buyer.clone(),
                            lines: req.lines.clone(),
                            key: req.idempotency_key.clone(),
                        });
                    }
                    CommandError::Busy(_) => self.stats.unavailable += 1,
                    CommandError::SoldOut { .. }
                    | CommandError::BuyerLimit { .. }
                    | CommandError::SaleNotOpen { .. }
                    | CommandError::IdempotencyMismatch => self.stats.refused += 1,
                    other => return Err(self.fail(format!("reserve {req:?} answered {other:?}"))),
                }
                let may_refuse = matches!(
                    e,
                    CommandError::IdempotencyInProgress { .. }
                        | CommandError::Unavailable(_)
                        | CommandError::Busy(_)
                        | CommandError::IdempotencyMismatch
                );
                if let Some(id) = earlier {
                    if !may_refuse {
                        let related: Vec<String> = self
                            .history
                            .iter()
                            .filter(|(_, r, _)| r.idempotency_key == req.idempotency_key)
                            .map(|(step, r, said)| format!("step {step}: {:?} -> {said}", r.lines))
                            .collect();
                        return Err(self.fail(format!(
                            "key of {id} refused its retry with {e:?} instead of returning it; \
                             {:?}; with this key: {related:#?}",
                            self.read(id)
                        )));
                    }
                }
                if matches!(e, CommandError::IdempotencyMismatch) {
                    let k = req.idempotency_key.as_ref();
                    let same = k
                        .and_then(|k| self.model.keys.get(k))
                        .and_then(|id| self.model.res.get(id))
                        .is_some_and(|m| m.lines == req.lines && m.buyer == req.buyer);
                    if same {
                        return Err(self.fail(format!("mismatch for the same body {req:?}")));
                    }
                }
                Ok(())
            }
        }
    }

    fn check_decide(
        &mut self,
        id: ReservationId,
        confirm: bool,
        r: Result<Answer, CommandError>,
    ) -> Result<(), String> {
        let Some(m) = self.model.res.get_mut(&id) else {
            return Ok(());
        };
        match r {
            Ok(Answer::Part(p)) => {
                let want = if confirm {
                    ReservationStatus::Confirmed
                } else {
                    ReservationStatus::Released
                };
                if p.view.status != want {
                    return Err(format!("decision on {id} answered {:?}", p.view.status));
                }
                let before = m.known;
                m.known = if confirm {
                    Known::Confirmed
                } else {
                    Known::Cancelled
                };
                let contradicts = matches!(
                    (before, confirm),
                    (Known::Confirmed, false) | (Known::Cancelled, true)
                );
                if contradicts {
                    let m = format!("{id} was {before:?}, then acknowledged confirm={confirm}");
                    return Err(self.fail(m));
                }
                Ok(())
            }
            Ok(a) => Err(self.fail(format!("decision answered {a:?}"))),
            Err(CommandError::Unavailable(_)) => {
                // The decision may still reach the log once it heals.
                if m.known == Known::Held {
                    m.known = Known::Decided;
                }
                Ok(())
            }
            Err(CommandError::InvalidState { .. }) | Err(CommandError::Busy(_)) => Ok(()),
            Err(CommandError::Invalid(msg)) if msg.contains("payment_ref") => Ok(()),
            Err(e) => Err(self.fail(format!("decision on known {id} answered {e:?}"))),
        }
    }

    /// The process dies; answers in flight are lost (their outcome becomes unknown).
    fn crash(&mut self) -> Result<(), String> {
        self.stats.crashes += 1;
        for op in self.ops.iter() {
            match op {
                Op::Reserve { req, .. } => {
                    self.history
                        .push((self.stats.steps, req.clone(), "lost in a crash".into()))
                }
                Op::Decide { .. } => {}
            }
        }
        for op in std::mem::take(&mut self.ops) {
            match op {
                Op::Reserve { req, .. } => self.model.unknown.push(Unknown {
                    buyer: req.buyer,
                    lines: req.lines,
                    key: req.idempotency_key,
                }),
                Op::Decide { id, .. } => {
                    if let Some(m) = self.model.res.get_mut(&id) {
                        if m.known == Known::Held {
                            m.known = Known::Decided;
                        }
                    }
                }
            }
        }
        let ticks = if self.rng.gen_bool(0.5) {
            flashsale_engine::node::world::Ticks::DuringRecovery
        } else {
            flashsale_engine::node::world::Ticks::NotDuringRecovery
        };
        // The process may come back after holds ran out: recovery must still be consistent.
        if self.rng.gen_bool(0.3) {
            self.now += self.rng.gen_range(0..8_000);
        }
        let rng = &mut self.rng;
        let r = self.w.crash_ticking(
            self.now,
            |_, tail| {
                if tail == 0 || rng.gen_bool(0.5) {
                    0
                } else {
                    rng.gen_range(0..=tail)
                }
            },
            ticks,
        );
        r.map_err(|e| format!("recovery failed: {e}"))?;
        self.stats.snapshots_restored +=
            self.w.logs().iter().filter(|l| l.has_snapshot()).count() as u64;
        self.failing.iter_mut().for_each(|f| *f = None);
        self.check_state()
    }

    /// Heals every log, delivers everything, then checks the whole state.
    fn quiesce(&mut self) -> Result<(), String> {
        self.failing.iter_mut().for_each(|f| *f = None);
        self.w.settle(self.now);
        for s in 0..self.w.shard_count() {
            self.w.tick(s, self.now);
        }
        self.w.settle(self.now);
        self.collect()?;
        if !self.ops.is_empty() {
            let quiet: Vec<String> = self
                .w
                .nodes()
                .iter()
                .map(|n| {
                    format!(
                        "shard {}: {} coordinations, quiet {}",
                        n.id(),
                        n.coordinations(),
                        n.is_quiet()
                    )
                })
                .collect();
            return Err(self.fail(format!(
                "{} requests never answered: {:?}; {quiet:?}",
                self.ops.len(),
                self.ops
            )));
        }
        self.check_state()?;
        for n in self.w.nodes() {
            n.shard()
                .check_gates()
                .map_err(|e| self.fail(format!("gates: {e}")))?;
            if !n.is_quiet() {
                return Err(self.fail(format!("shard {} not quiet after settling", n.id())));
            }
        }
        self.check_counts()
    }

    /// The system's whole reservation `id`, from its home and parts.
    fn read(&self, id: ReservationId) -> Option<ReservationView> {
        let home = self
            .w
            .nodes()
            .get(usize::from(id.shard()))?
            .shard()
            .reservation(id)?;
        Some(self.w.assemble(home))
    }

    /// Every acknowledged reservation is real and whole; every reservation is acknowledged or
    /// the outcome of a request whose answer was lost.
    fn check_state(&mut self) -> Result<(), String> {
        for n in self.w.nodes() {
            n.shard()
                .check_invariants()
                .map_err(|e| self.fail(format!("shard {}: {e}", n.id())))?;
        }
        let acked: Vec<(ReservationId, MRes)> = self
            .model
            .res
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (id, m) in acked {
            let Some(v) = self.read(id) else {
                let said = format!("ok {id}");
                let related: Vec<String> = self
                    .history
                    .iter()
                    .filter(|(_, r, _)| r.buyer == m.buyer && r.lines == m.lines)
                    .map(|(step, r, said)| {
                        format!("step {step}: {:?} -> {said}", r.idempotency_key)
                    })
                    .collect();
                let states: Vec<_> = self
                    .w
                    .nodes()
                    .iter()
                    .map(|n| n.shard().group_state(id))
                    .collect();
                return Err(self.fail(format!(
                    "acknowledged {id} ({said}) is gone: {m:?}; parts {states:?}; requests like it: {related:#?}"
                )));
            };
            if !same_lines(&v, &m.lines) {
                return Err(self.fail(format!("{id} changed lines: {v:?} vs {m:?}")));
            }
            let ok = match (m.known, v.status) {
                (Known::Confirmed, s) => s == ReservationStatus::Confirmed,
                (Known::Cancelled, s) => s == ReservationStatus::Released,
                (Known::Decided, _) => true,
                (Known::Held, ReservationStatus::Held) => true,
                (Known::Held, ReservationStatus::Expired) => self.now >= m.expires_at_ms,
                (Known::Held, _) => false,
            };
            if !ok {
                return Err(self.fail(format!("{id} is {:?}, model {:?}", v.status, m.known)));
            }
            if v.release_reason == Some(ReleaseReason::Aborted) {
                return Err(self.fail(format!("acknowledged {id} was rolled back")));
            }
        }
        self.resolve_unknown()
    }

    /// Matches reservations the model does not know to requests whose answer was lost: a
    /// keyed one by its key (as a retry would), an unkeyed one by buyer and lines.
    fn resolve_unknown(&mut self) -> Result<(), String> {
        let shards = self.w.shard_count();
        let mut i = 0;
        while i < self.model.unknown.len() {
            let u = &self.model.unknown[i];
            let Some(k) = u.key.clone() else {
                i += 1;
                continue;
            };
            let hash = flashsale_engine::shard::request_hash(&u.buyer, &u.lines);
            let home = usize::from(flashsale_engine::shard::shard_of_key(&k, shards));
            match self.w.nodes()[home].shard().lookup_key(&k, hash) {
                Some(Ok(part)) if !self.model.res.contains_key(&part.view.id) => {
                    let u = self.model.unknown.swap_remove(i);
                    self.stats.resolved_unknown += 1;
                    self.model.keys.entry(k).or_insert(part.view.id);
                    self.model.res.insert(
                        part.view.id,
                        MRes {
                            buyer: u.buyer,
                            lines: u.lines,
                            expires_at_ms: part.view.expires_at_ms,
                            known: Known::Decided,
                        },
                    );
                }
                _ => i += 1,
            }
        }
        let mut found = Vec::new();
        for n in self.w.nodes() {
            for g in n.shard().group_states() {
                if g.id.shard() == n.id() && g.release_reason != Some(ReleaseReason::Aborted) {
                    found.push(g.id);
                }
            }
            found.extend(n.shard().home_reservation_ids());
        }
        found.sort_unstable();
        found.dedup();
        for id in found {
            if self.model.res.contains_key(&id) {
                continue;
            }
            let Some(v) = self.read(id) else { continue };
            if v.release_reason == Some(ReleaseReason::Aborted) {
                continue;
            }
            let Some(i) =
                self.model.unknown.iter().position(|u| {
                    u.key.is_none() && u.buyer == v.buyer && same_lines(&v, &u.lines)
                })
            else {
                let related: Vec<String> = self
                    .history
                    .iter()
                    .filter(|(_, r, _)| r.buyer == v.buyer && same_lines(&v, &r.lines))
                    .map(|(step, r, said)| {
                        format!("step {step}: {:?} -> {said}", r.idempotency_key)
                    })
                    .collect();
                return Err(self.fail(format!(
                    "phantom reservation {v:?}; requests like it: {related:#?}"
                )));
            };
            let u = self.model.unknown.swap_remove(i);
            self.stats.resolved_unknown += 1;
            self.model.res.insert(
                id,
                MRes {
                    buyer: u.buyer,
                    lines: u.lines,
                    expires_at_ms: v.expires_at_ms,
                    known: Known::Decided,
                },
            );
        }
        Ok(())
    }

    /// At rest: every SKU's counts are the sum of its reservations' lines, no buyer exceeds a
    /// limit, and parts agree with their home.
    fn check_counts(&self) -> Result<(), String> {
        let mut reserved: BTreeMap<SkuId, u64> = BTreeMap::new();
        let mut sold: BTreeMap<SkuId, u64> = BTreeMap::new();
        let mut usage: BTreeMap<(BuyerId, SkuId), u64> = BTreeMap::new();
        for id in self.model.res.keys() {
            let v = self.read(*id).expect("checked");
            for l in &v.lines {
                let q = u64::from(l.qty);
                match v.status {
                    ReservationStatus::Held => *reserved.entry(l.sku.clone()).or_default() += q,
                    ReservationStatus::Confirmed => *sold.entry(l.sku.clone()).or_default() += q,
                    _ => continue,
                }
                *usage.entry((v.buyer.clone(), l.sku.clone())).or_default() += q;
            }
            let group = self.w.nodes()[usize::from(id.shard())]
                .shard()
                .reservation(*id)
                .and_then(|p| p.group);
            if let Some(g) = group {
                for (s, n) in self.w.nodes().iter().enumerate() {
                    if g.shards_mask & (1u64 << s) == 0 || s == usize::from(id.shard()) {
                        continue;
                    }
                    let part = n.shard().group_state(*id);
                    if part.as_ref().map(|p| p.status) != Some(v.status) {
                        return Err(self.fail(format!(
                            "part of {id} on shard {s} is {:?}, home {:?}",
                            part.map(|p| p.status),
                            v.status
                        )));
                    }
                }
            }
        }
        for s in &self.skus {
            let owner = usize::from(shard_of(s, self.w.shard_count()));
            let v = self.w.nodes()[owner].shard().sku(s).expect("sku");
            let want = (
                reserved.get(s).copied().unwrap_or(0),
                sold.get(s).copied().unwrap_or(0),
                self.model.totals[s],
            );
            if (v.reserved, v.sold, v.total) != want {
                return Err(self.fail(format!("{s}: system {v:?}, reservations say {want:?}")));
            }
        }
        for ((b, s), u) in &usage {
            if let Some(Some(limit)) = self.model.limits.get(s) {
                if *u > u64::from(*limit) {
                    return Err(self.fail(format!("{b} holds {u} of {s} over its limit {limit}")));
                }
            }
        }
        Ok(())
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run(seed: u64, steps: u64) -> Stats {
    let mut sim = Sim::new(seed);
    for i in 0..steps {
        if let Err(e) = sim.step() {
            panic!("{e}");
        }
        if i % 2_000 == 1_999 {
            if let Err(e) = sim.quiesce() {
                panic!("{e}");
            }
        }
    }
    if let Err(e) = sim.quiesce() {
        panic!("{e}");
    }
    sim.stats
}

/// At least 1,000,000 steps per CI run (8 seeds × 125,000 by default).
#[test]
fn runtime_simulation_with_faults_against_the_model() {
    let steps = env_u64("FLASHSALE_RTSIM_STEPS").unwrap_or(125_000);
    let seeds: Vec<u64> = match env_u64("FLASHSALE_RTSIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("FLASHSALE_RTSIM_SEEDS").unwrap_or(8)).collect(),
    };
    let mut total = Stats::default();
    for seed in seeds {
        let s = run(seed, steps);
        total.steps += s.steps;
        total.acked += s.acked;
        total.refused += s.refused;
        total.in_progress += s.in_progress;
        total.unavailable += s.unavailable;
        total.crashes += s.crashes;
        total.snapshots_restored += s.snapshots_restored;
        total.flush_failures += s.flush_failures;
        total.duplicates += s.duplicates;
        total.resolved_unknown += s.resolved_unknown;
    }
    eprintln!("runtime simulation: {total:?}");
    // The run must have exercised what it claims to.
    assert!(total.acked > 0 && total.refused > 0 && total.duplicates > 0);
    assert!(total.crashes > 0 && total.flush_failures > 0 && total.unavailable > 0);
    assert!(total.snapshots_restored > 0 && total.in_progress > 0);
}
