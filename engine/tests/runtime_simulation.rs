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
//! reservations; no buyer exceeds a limit; parts agree with their home. Hold extensions are
//! sent concurrently with the rest: an acknowledged extension moves the deadline the model
//! holds the system to (no expiry before it), stays within the SKUs' maximum hold and number
//! of extensions, and a refusal must be one they explain. After every crash and at every quiet
//! point each buyer's lists (reservations, with filters, paged by cursor; orders) are read from
//! the shards' per-buyer indexes and assembled as the runtime does: each reservation once,
//! whole, exactly the model's.
//!
//! Replay a failing seed with the command it prints. `FLASHSALE_RTSIM_SEED` runs one seed,
//! `FLASHSALE_RTSIM_STEPS` sets the steps per seed, `FLASHSALE_RTSIM_SEEDS` the seed count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use flashsale_engine::limits::UNAVAILABLE_AFTER_MS;
use flashsale_engine::node::message::{Answer, Request};
use flashsale_engine::node::world::{Ticket, World};
use flashsale_engine::shard::{merge_pages, shard_of, ExtendCommand};
use flashsale_engine::{
    CommandError, HoldLimit, OrderQuery, ReservationQuery, ReservationStatus, ReservationView,
    ReserveRequest,
};
use flashsale_protocol::{
    BuyerId, KeyOwner, ReleaseReason, ReservationId, ScopedKey, SkuId, SkuSpec,
};
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
    /// The latest deadline acknowledged (at creation or by an extension): no expiry before.
    expires_at_ms: u64,
    known: Known,
    /// Extensions sent (acknowledged or not): at most this many can have happened.
    extends_sent: u32,
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
    /// Every SKU as created (the run never changes them).
    specs: BTreeMap<SkuId, SkuSpec>,
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
    /// One page of a buyer's reservations, asked of every shard as the runtime does.
    List {
        buyer: BuyerId,
        tickets: Vec<Ticket>,
    },
    Extend {
        cmd: ExtendCommand,
        /// When it was sent: the home decides at delivery, no earlier.
        sent_ms: u64,
        /// What the model knew of the reservation then.
        known: Known,
        /// The deadline acknowledged by then: the extension may not end the hold earlier.
        deadline_ms: u64,
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
    /// Reservations a list showed during the run, with the lines it showed: each must exist
    /// at the next quiet point, never rolled back, with those lines (a list shows a
    /// reservation only whole, once it is placed).
    listed: BTreeMap<ReservationId, (BuyerId, Vec<(SkuId, u32)>)>,
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
    extended: u64,
    extend_refused: u64,
    lists_checked: u64,
    listed_mid_run: u64,
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
            if rng.gen_bool(0.6) {
                s.max_hold_ms = s.reservation_ttl_ms + rng.gen_range(0..6_000);
            }
            if rng.gen_bool(0.5) {
                s.max_extensions = rng.gen_range(0..4);
            }
            model.specs.insert(s.sku.clone(), s.clone());
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
            listed: BTreeMap::new(),
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
            20..=21 => {
                // Mostly a hold that should still be live (those are the interesting ones).
                let now = self.now;
                let live: Vec<ReservationId> = self
                    .model
                    .res
                    .iter()
                    .filter(|(_, m)| m.known == Known::Held && m.expires_at_ms > now)
                    .map(|(id, _)| *id)
                    .collect();
                let ids: Vec<ReservationId> = if !live.is_empty() && self.rng.gen_bool(0.8) {
                    live
                } else {
                    self.model.res.keys().copied().collect()
                };
                if !ids.is_empty() {
                    let id = ids[self.rng.gen_range(0..ids.len())];
                    let ttl_ms = self.rng.gen_range(1..8_000);
                    let cmd = self.extend_command(id, ttl_ms);
                    if let Some(m) = self.model.res.get_mut(&id) {
                        m.extends_sent += 1;
                    }
                    let (known, deadline_ms) = self
                        .model
                        .res
                        .get(&id)
                        .map_or((Known::Decided, 0), |m| (m.known, m.expires_at_ms));
                    let ticket = self
                        .w
                        .submit(id.shard(), Request::Extend(Box::new(cmd.clone())));
                    self.ops.push(Op::Extend {
                        cmd,
                        sent_ms: self.now,
                        known,
                        deadline_ms,
                        ticket,
                    });
                }
            }
            22..=25 => {
                let ids: Vec<ReservationId> = self.model.res.keys().copied().collect();
                if !ids.is_empty() {
                    let id = ids[self.rng.gen_range(0..ids.len())];
                    let confirm = self.rng.gen_bool(0.6);
                    let req = if confirm {
                        Request::Confirm(id, format!("pay-{}", id.counter()).into())
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
            26 => {
                let buyer = self.buyers[self.rng.gen_range(0..self.buyers.len())].clone();
                let q = ReservationQuery {
                    buyer: buyer.clone(),
                    status: None,
                    sku: None,
                    before: None,
                    limit: self.rng.gen_range(1..20),
                };
                let tickets = (0..shards)
                    .map(|s| {
                        let q = Box::new(q.clone());
                        self.w.submit(s as u16, Request::BuyerReservations(q))
                    })
                    .collect();
                self.ops.push(Op::List { buyer, tickets });
            }
            27..=64 => {
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
                Op::Decide { ticket, .. } | Op::Extend { ticket, .. } => self.w.has_reply(*ticket),
                Op::List { tickets, .. } => tickets.iter().all(|t| self.w.has_reply(*t)),
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
                Op::Extend {
                    cmd,
                    sent_ms,
                    known,
                    deadline_ms,
                    ticket,
                } => {
                    let r = self.w.take_reply(ticket).expect("answered");
                    self.check_extend(&cmd, (sent_ms, known, deadline_ms), r)?;
                }
                Op::List { buyer, tickets } => self.collect_list(&buyer, tickets)?,
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
                    extends_sent: 0,
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

    /// An extension of `id` by `ttl_ms` as the runtime's caller builds it: the strictest
    /// bounds of the lines' SKUs (the first line's on a tie).
    fn extend_command(&self, id: ReservationId, ttl_ms: u64) -> ExtendCommand {
        let m = &self.model.res[&id];
        let mut max_hold: Option<(u64, SkuId)> = None;
        let mut max_extensions: Option<(u32, SkuId)> = None;
        for (sku, _) in &m.lines {
            let spec = &self.model.specs[sku];
            if max_hold.as_ref().is_none_or(|(h, _)| spec.max_hold_ms < *h) {
                max_hold = Some((spec.max_hold_ms, sku.clone()));
            }
            if max_extensions
                .as_ref()
                .is_none_or(|(e, _)| spec.max_extensions < *e)
            {
                max_extensions = Some((spec.max_extensions, sku.clone()));
            }
        }
        ExtendCommand {
            id,
            ttl_ms,
            max_hold: max_hold.expect("lines"),
            max_extensions: max_extensions.expect("lines"),
            key: None,
        }
    }

    /// An extension's answer: an acknowledged one was held, moved the deadline to at least
    /// `sent + ttl` within the bounds, and becomes the deadline the model holds the system to;
    /// a refusal must be one the state and the bounds explain. `sent` is when it was sent,
    /// what the model knew then and the deadline acknowledged by then.
    fn check_extend(
        &mut self,
        cmd: &ExtendCommand,
        sent: (u64, Known, u64),
        r: Result<Answer, CommandError>,
    ) -> Result<(), String> {
        let (sent_ms, known_at_send, deadline_at_send) = sent;
        let id = cmd.id;
        let now = self.now;
        let read = self.read(id);
        let Some(m) = self.model.res.get_mut(&id) else {
            return Ok(());
        };
        let (max_hold, _) = cmd.max_hold;
        let (max_ext, _) = cmd.max_extensions;
        let bad = match r {
            Ok(Answer::Part(p)) => {
                let v = &p.view;
                self.stats.extended += 1;
                let wrong = v.id != id
                    || v.status != ReservationStatus::Held
                    || v.expires_at_ms < sent_ms + cmd.ttl_ms
                    || v.expires_at_ms < deadline_at_send
                    || v.expires_at_ms > v.created_at_ms + max_hold
                    || v.extensions > max_ext
                    || v.extensions > m.extends_sent
                    || matches!(known_at_send, Known::Confirmed | Known::Cancelled);
                if !wrong {
                    // Answers of concurrent extensions may arrive in any order.
                    m.expires_at_ms = m.expires_at_ms.max(v.expires_at_ms);
                }
                wrong.then(|| {
                    format!(
                        "extend {cmd:?} sent at {sent_ms} ({known_at_send:?}, deadline {}, {} \
                         sent) answered {v:?}",
                        m.expires_at_ms, m.extends_sent
                    )
                })
            }
            Err(CommandError::InvalidState {
                status: ReservationStatus::Expired,
                ..
            }) if now < m.expires_at_ms => Some(format!(
                "extend of {id} refused as expired at {now}, before the acknowledged deadline {}",
                m.expires_at_ms
            )),
            Err(CommandError::HoldLimit {
                limit: HoldLimit::MaxExtensions,
                ..
            }) if m.extends_sent.saturating_sub(1) < max_ext => Some(format!(
                "extend of {id} refused past {max_ext} extensions with {} others sent",
                m.extends_sent - 1
            )),
            Err(CommandError::HoldLimit {
                limit: HoldLimit::MaxHold,
                ..
            }) if read
                .as_ref()
                .is_some_and(|v| now + cmd.ttl_ms <= v.created_at_ms + max_hold) =>
            {
                Some(format!(
                    "extend {cmd:?} refused past the maximum hold at {now}: {read:?}"
                ))
            }
            Err(CommandError::HoldLimit { .. })
            | Err(CommandError::InvalidState { .. })
            | Err(CommandError::Busy(_))
            | Err(CommandError::Unavailable(_)) => {
                self.stats.extend_refused += 1;
                None
            }
            Ok(a) => Some(format!("extend of {id} answered {a:?}")),
            Err(e) => Some(format!("extend of known {id} answered {e:?}")),
        };
        match bad {
            Some(why) => Err(self.fail(why)),
            None => Ok(()),
        }
    }

    /// A page every shard answered: merged and assembled as the runtime does; each reservation
    /// shown once, the buyer's, and remembered to be checked at the next quiet point.
    fn collect_list(&mut self, buyer: &BuyerId, tickets: Vec<Ticket>) -> Result<(), String> {
        let mut pages = Vec::new();
        for t in tickets {
            match self.w.take_reply(t).expect("answered") {
                Ok(Answer::BuyerReservations(page)) => pages.push(page),
                // The log of that shard fails: the list is refused, as the runtime's would be.
                Err(CommandError::Unavailable(_)) | Err(CommandError::Busy(_)) => return Ok(()),
                other => return Err(self.fail(format!("a list page answered {other:?}"))),
            }
        }
        let (items, _) = merge_pages(pages, usize::MAX);
        let mut seen = std::collections::BTreeSet::new();
        for (_, part) in items {
            let v = self.w.assemble(part);
            if &v.buyer != buyer || !seen.insert(v.id) {
                return Err(self.fail(format!("{buyer}'s list shows {v:?} (twice or foreign)")));
            }
            self.stats.listed_mid_run += 1;
            let lines = v.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect();
            self.listed.entry(v.id).or_insert((v.buyer.clone(), lines));
        }
        Ok(())
    }

    /// Every buyer's lists, read from the shards' per-buyer indexes and assembled as the
    /// runtime does, paged by cursor with a random page size: each reservation once, whole
    /// (equal to its read), newest first, exactly the model's (filters included); the orders
    /// exactly its confirmed ones.
    fn check_lists(&mut self) -> Result<(), String> {
        self.stats.lists_checked += 1;
        // Every acknowledged reservation read once, by buyer, newest first.
        let mut by_buyer: BTreeMap<BuyerId, Vec<ReservationView>> = BTreeMap::new();
        for (id, m) in &self.model.res {
            if let Some(v) = self.read(*id) {
                by_buyer.entry(m.buyer.clone()).or_default().push(v);
            }
        }
        for views in by_buyer.values_mut() {
            views.sort_by_key(|v| std::cmp::Reverse((v.created_at_ms, v.id)));
        }
        let none = Vec::new();
        for buyer in self.buyers.clone() {
            let views = by_buyer.get(&buyer).unwrap_or(&none);
            let status = self.rng.gen_bool(0.5).then(|| {
                [
                    ReservationStatus::Held,
                    ReservationStatus::Confirmed,
                    ReservationStatus::Released,
                    ReservationStatus::Expired,
                ][self.rng.gen_range(0..4)]
            });
            let sku = self
                .rng
                .gen_bool(0.3)
                .then(|| self.skus[self.rng.gen_range(0..self.skus.len())].clone());
            for (status, sku) in [(None, None), (status, sku)] {
                let limit = self.rng.gen_range(1..12);
                self.check_reservation_list(&buyer, views, status, sku, limit)?;
            }
            let limit = self.rng.gen_range(1..12);
            self.check_order_list(&buyer, views, limit)?;
        }
        Ok(())
    }

    fn check_reservation_list(
        &self,
        buyer: &BuyerId,
        views: &[ReservationView],
        status: Option<ReservationStatus>,
        sku: Option<SkuId>,
        limit: usize,
    ) -> Result<(), String> {
        let mut q = ReservationQuery {
            buyer: buyer.clone(),
            status,
            sku: sku.clone(),
            before: None,
            limit,
        };
        let mut listed: Vec<ReservationView> = Vec::new();
        for _ in 0..10_000 {
            let pages = self
                .w
                .nodes()
                .iter()
                .map(|n| n.shard().buyer_reservations(&q))
                .collect();
            let (items, next) = merge_pages(pages, limit);
            if items.len() > limit {
                return Err(self.fail(format!("a page of {} for {limit}", items.len())));
            }
            listed.extend(
                items
                    .into_iter()
                    .map(|(_, part)| self.w.assemble(part))
                    .filter(|v| {
                        sku.as_ref()
                            .is_none_or(|s| v.lines.iter().any(|l| &l.sku == s))
                    }),
            );
            match next {
                Some(pos) if q.before.is_some_and(|b| pos >= b) => {
                    return Err(self.fail(format!("list {q:?} made no progress")))
                }
                Some(pos) => q.before = Some(pos),
                None => break,
            }
        }
        let want: Vec<&ReservationView> = views
            .iter()
            .filter(|v| status.is_none_or(|s| v.status == s))
            .filter(|v| {
                sku.as_ref()
                    .is_none_or(|s| v.lines.iter().any(|l| &l.sku == s))
            })
            .collect();
        if listed.iter().ne(want.iter().copied()) {
            let got: Vec<_> = listed.iter().map(|v| (v.id, v.status)).collect();
            let want: Vec<_> = want.iter().map(|v| (v.id, v.status)).collect();
            return Err(self.fail(format!(
                "{buyer}'s reservations ({status:?}, {sku:?}, pages of {limit}): listed {got:?},                  the model's {want:?} (or a listed one is not whole)"
            )));
        }
        Ok(())
    }

    fn check_order_list(
        &self,
        buyer: &BuyerId,
        views: &[ReservationView],
        limit: usize,
    ) -> Result<(), String> {
        let mut q = OrderQuery {
            buyer: buyer.clone(),
            before: None,
            limit,
        };
        let mut listed = Vec::new();
        for _ in 0..10_000 {
            let pages = self
                .w
                .nodes()
                .iter()
                .map(|n| n.shard().buyer_orders(&q))
                .collect();
            let (items, next) = merge_pages(pages, limit);
            for (_, (order, group)) in items {
                let parts: Vec<_> = match group {
                    Some(g) => self
                        .w
                        .nodes()
                        .iter()
                        .enumerate()
                        .filter(|(s, _)| {
                            *s != usize::from(order.id.shard()) && g.shards_mask & (1 << s) != 0
                        })
                        .filter_map(|(_, n)| n.shard().reservation(order.reservation))
                        .collect(),
                    None => Vec::new(),
                };
                listed.push(flashsale_engine::shard::assemble_order(
                    order, group, &parts,
                ));
            }
            match next {
                Some(pos) if q.before.is_some_and(|b| pos >= b) => {
                    return Err(self.fail(format!("orders {q:?} made no progress")))
                }
                Some(pos) => q.before = Some(pos),
                None => break,
            }
        }
        let got: Vec<(ReservationId, Vec<(SkuId, u32)>)> = listed
            .iter()
            .map(|o| {
                let lines = o.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect();
                (o.reservation, lines)
            })
            .collect();
        let mut confirmed: Vec<&ReservationView> = views
            .iter()
            .filter(|v| v.status == ReservationStatus::Confirmed)
            .collect();
        confirmed.sort_by_key(|v| v.id);
        let mut by_time: Vec<_> = listed
            .iter()
            .map(|o| (o.created_at_ms, o.reservation))
            .collect();
        let sorted = by_time.windows(2).all(|w| w[0] > w[1]);
        by_time.sort_by_key(|(_, id)| *id);
        let want: Vec<(ReservationId, Vec<(SkuId, u32)>)> = confirmed
            .iter()
            .map(|v| {
                (
                    v.id,
                    v.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect(),
                )
            })
            .collect();
        let mut got_sorted = got.clone();
        got_sorted.sort_by_key(|(id, _)| *id);
        let whole = listed.iter().all(|o| &o.buyer == buyer);
        if got_sorted != want || !sorted || !whole {
            return Err(self.fail(format!(
                "{buyer}'s orders (pages of {limit}): listed {got:?}, confirmed {want:?}"
            )));
        }
        Ok(())
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
                Op::Decide { .. } | Op::Extend { .. } | Op::List { .. } => {}
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
                // A lost extension may or may not have happened: the deadline the model holds
                // the system to stays the last acknowledged one (a lower bound).
                Op::Extend { .. } | Op::List { .. } => {}
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
        self.check_state()?;
        // The lists after recovery (every few crashes: they cost a read of everything).
        if self.rng.gen_bool(0.25) {
            self.check_lists()?;
        }
        Ok(())
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
        self.check_lists()?;
        for (id, (buyer, lines)) in std::mem::take(&mut self.listed) {
            let v = self.read(id);
            let whole = v.as_ref().is_some_and(|v| {
                v.buyer == buyer
                    && same_lines(v, &lines)
                    && v.release_reason != Some(ReleaseReason::Aborted)
            });
            if !whole {
                return Err(self.fail(format!(
                    "a list showed {id} of {buyer} with lines {lines:?}; now it is {v:?}"
                )));
            }
        }
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
                            extends_sent: 0,
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
                    extends_sent: 0,
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
        total.extended += s.extended;
        total.extend_refused += s.extend_refused;
        total.lists_checked += s.lists_checked;
        total.listed_mid_run += s.listed_mid_run;
    }
    eprintln!("runtime simulation: {total:?}");
    // The run must have exercised what it claims to.
    assert!(total.acked > 0 && total.refused > 0 && total.duplicates > 0);
    assert!(total.crashes > 0 && total.flush_failures > 0 && total.unavailable > 0);
    assert!(total.snapshots_restored > 0 && total.in_progress > 0);
    assert!(total.extended > 0 && total.extend_refused > 0 && total.lists_checked > 0);
    assert!(total.listed_mid_run > 0);
}
