//! Deterministic simulation: a seeded random mix of every command, clock jumps, crashes with
//! snapshot + replay recovery and 1–4 shards, checked after every step against a plain
//! reference model and the shard invariants.
//!
//! The model encodes the contract, not the implementation: an idempotency key (scoped to its caller) is one name everywhere (the
//! same key with the same body returns the original reservation, with another body — whatever
//! its lines and shards — it is refused), and released / expired reservations are forgotten
//! (with their keys) once the retention period has passed since their release.
//!
//! Replay a failing seed with `FLASHSALE_SIM_SEED=<seed> cargo test -p flashsale-engine --test
//! simulation`. `FLASHSALE_SIM_STEPS` overrides the number of steps per seed.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use flashsale_engine::log::memory::MemoryBackend;
use flashsale_engine::node::cluster::Cluster;
use flashsale_engine::{
    CommandError, Engine, EngineConfig, ManualClock, OrderView, ReservationStatus, ReservationView,
    ReserveRequest, SkuView,
};
use flashsale_protocol::{
    BuyerId, IdempotencyKey, KeyOwner, OrderId, ReleaseReason, ReservationId, ScopedKey, SkuId,
    SkuSpec,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type R<T> = Result<T, CommandError>;

// ---------------------------------------------------------------------------------------------
// The reference model: the rules written as plainly as possible.

#[derive(Debug, Clone)]
struct MSku {
    spec: SkuSpec,
    reserved: u64,
    sold: u64,
}

#[derive(Debug, Clone)]
struct MRes {
    buyer: BuyerId,
    lines: Vec<(SkuId, u32, u64)>,
    request: Vec<(SkuId, u32)>,
    created_at: u64,
    expires_at: u64,
    status: ReservationStatus,
    reason: Option<ReleaseReason>,
    order: Option<OrderId>,
    payment_ref: String,
    confirmed_at: u64,
    released_at: u64,
}

#[derive(Debug, Default)]
struct Model {
    skus: BTreeMap<SkuId, MSku>,
    res: BTreeMap<ReservationId, MRes>,
    /// Idempotency keys, scoped per caller as the contract says.
    keys: BTreeMap<ScopedKey, ReservationId>,
    /// Released / expired reservations are forgotten this long after their release.
    retention_ms: u64,
    /// Units held or bought per (buyer, SKU).
    usage: BTreeMap<(BuyerId, SkuId), u64>,
    orders: BTreeMap<OrderId, ReservationId>,
}

impl Model {
    fn view(&self, sku: &SkuId) -> Option<SkuView> {
        self.skus.get(sku).map(|s| SkuView {
            sku: sku.clone(),
            name: s.spec.name.clone(),
            price_cents: s.spec.price_cents,
            total: s.spec.stock,
            available: s.spec.stock - s.reserved - s.sold,
            reserved: s.reserved,
            sold: s.sold,
            per_buyer_limit: s.spec.per_buyer_limit,
            sale_starts_at_ms: s.spec.sale_starts_at_ms,
            sale_ends_at_ms: s.spec.sale_ends_at_ms,
            reservation_ttl_ms: s.spec.reservation_ttl_ms,
            max_hold_ms: s.spec.max_hold_ms,
            max_extensions: s.spec.max_extensions,
        })
    }

    fn used(&self, buyer: &BuyerId, sku: &SkuId) -> u64 {
        self.usage
            .get(&(buyer.clone(), sku.clone()))
            .copied()
            .unwrap_or(0)
    }

    fn upsert(&mut self, spec: SkuSpec) -> R<bool> {
        let bad = spec.reservation_ttl_ms == 0
            || spec.per_buyer_limit == Some(0)
            || spec.stock > (1 << 48)
            || spec.name.len() > 256
            || matches!((spec.sale_starts_at_ms, spec.sale_ends_at_ms), (Some(s), Some(e)) if e <= s);
        if bad {
            return Err(CommandError::Invalid(String::new()));
        }
        match self.skus.get_mut(&spec.sku) {
            Some(s) => {
                if spec.stock < s.reserved + s.sold {
                    return Err(CommandError::StockConflict {
                        sku: spec.sku.clone(),
                        detail: String::new(),
                    });
                }
                s.spec = spec;
                Ok(false)
            }
            None => {
                self.skus.insert(
                    spec.sku.clone(),
                    MSku {
                        spec,
                        reserved: 0,
                        sold: 0,
                    },
                );
                Ok(true)
            }
        }
    }

    fn restock(&mut self, sku: &SkuId, qty: u64) -> R<()> {
        let s = self
            .skus
            .get_mut(sku)
            .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))?;
        if qty == 0 {
            return Err(CommandError::Invalid(String::new()));
        }
        if s.spec.stock + qty > (1 << 48) {
            return Err(CommandError::StockConflict {
                sku: sku.clone(),
                detail: String::new(),
            });
        }
        s.spec.stock += qty;
        Ok(())
    }

    /// `Ok(Some(id))`: must return that existing reservation; `Ok(None)`: a new one;
    /// `Err(errors)`: the engine must fail with one of these.
    fn reserve_decision(
        &self,
        now: u64,
        req: &ReserveRequest,
    ) -> Result<Option<ReservationId>, Vec<CommandError>> {
        let n = req.lines.len();
        let dup = (0..n).any(|i| (0..i).any(|j| req.lines[i].0 == req.lines[j].0));
        if n == 0 || n > 32 || dup || req.lines.iter().any(|(_, q)| *q == 0) {
            return Err(vec![CommandError::Invalid(String::new())]);
        }
        if let Some(key) = &req.idempotency_key {
            if let Some(id) = self.keys.get(key) {
                let r = &self.res[id];
                return if r.buyer == req.buyer && r.request == req.lines {
                    Ok(Some(*id))
                } else {
                    Err(vec![CommandError::IdempotencyMismatch])
                };
            }
        }
        let mut errors = Vec::new();
        for (sku, qty) in &req.lines {
            let q = u64::from(*qty);
            let Some(s) = self.skus.get(sku) else {
                errors.push(CommandError::SkuNotFound(sku.clone()));
                continue;
            };
            let available = s.spec.stock - s.reserved - s.sold;
            if available < q {
                errors.push(CommandError::SoldOut {
                    sku: sku.clone(),
                    available,
                });
                continue;
            }
            let open = s.spec.sale_starts_at_ms.is_none_or(|t| now >= t)
                && s.spec.sale_ends_at_ms.is_none_or(|t| now < t);
            if !open {
                errors.push(CommandError::SaleNotOpen {
                    sku: sku.clone(),
                    starts_at_ms: s.spec.sale_starts_at_ms,
                    ends_at_ms: s.spec.sale_ends_at_ms,
                });
                continue;
            }
            if let Some(limit) = s.spec.per_buyer_limit {
                let used = self.used(&req.buyer, sku);
                if used + q > u64::from(limit) {
                    errors.push(CommandError::BuyerLimit {
                        sku: sku.clone(),
                        limit,
                        already: used,
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(None)
        } else {
            Err(errors)
        }
    }

    fn add_reservation(&mut self, now: u64, req: &ReserveRequest, id: ReservationId) {
        let mut lines = Vec::new();
        let mut ttl = u64::MAX;
        for (sku, qty) in &req.lines {
            let s = self.skus.get_mut(sku).expect("checked");
            s.reserved += u64::from(*qty);
            ttl = ttl.min(s.spec.reservation_ttl_ms);
            *self
                .usage
                .entry((req.buyer.clone(), sku.clone()))
                .or_default() += u64::from(*qty);
            lines.push((sku.clone(), *qty, s.spec.price_cents));
        }
        if let Some(key) = &req.idempotency_key {
            self.keys.insert(key.clone(), id);
        }
        self.res.insert(
            id,
            MRes {
                buyer: req.buyer.clone(),
                lines,
                request: req.lines.clone(),
                created_at: now,
                expires_at: now + ttl,
                status: ReservationStatus::Held,
                reason: None,
                order: None,
                payment_ref: String::new(),
                confirmed_at: 0,
                released_at: 0,
            },
        );
    }

    fn release(&mut self, id: ReservationId, reason: ReleaseReason, now: u64) {
        let r = self.res.get_mut(&id).expect("known");
        assert_eq!(r.status, ReservationStatus::Held);
        r.released_at = now;
        r.status = if reason == ReleaseReason::Expired {
            ReservationStatus::Expired
        } else {
            ReservationStatus::Released
        };
        r.reason = Some(reason);
        for (sku, q, _) in &r.lines {
            self.skus.get_mut(sku).expect("known").reserved -= u64::from(*q);
            *self
                .usage
                .get_mut(&(r.buyer.clone(), sku.clone()))
                .expect("usage") -= u64::from(*q);
        }
    }

    fn res_view(&self, id: ReservationId) -> Option<ReservationView> {
        self.res.get(&id).map(|r| ReservationView {
            id,
            status: r.status,
            buyer: r.buyer.clone(),
            lines: r
                .lines
                .iter()
                .map(|(sku, qty, price)| flashsale_protocol::Line {
                    sku: sku.clone(),
                    qty: *qty,
                    unit_price_cents: *price,
                })
                .collect(),
            created_at_ms: r.created_at,
            expires_at_ms: r.expires_at,
            order: r.order,
            release_reason: r.reason,
            extensions: 0,
        })
    }

    fn order_view(&self, id: OrderId) -> Option<OrderView> {
        let rid = self.orders.get(&id)?;
        let v = self.res_view(*rid)?;
        let r = &self.res[rid];
        Some(OrderView {
            id,
            reservation: *rid,
            buyer: v.buyer,
            total_cents: v
                .lines
                .iter()
                .map(|l| u64::from(l.qty) * l.unit_price_cents)
                .sum(),
            lines: v.lines,
            payment_ref: r.payment_ref.clone(),
            created_at_ms: r.confirmed_at,
        })
    }

    fn expire_due(&mut self, now: u64) {
        let due: Vec<_> = self
            .res
            .iter()
            .filter(|(_, r)| r.status == ReservationStatus::Held && r.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.release(id, ReleaseReason::Expired, now);
        }
        self.forget_due(now);
    }

    /// Drops released / expired reservations (and their keys) past the retention period.
    fn forget_due(&mut self, now: u64) {
        let retention = self.retention_ms;
        let gone: Vec<_> = self
            .res
            .iter()
            .filter(|(_, r)| {
                matches!(
                    r.status,
                    ReservationStatus::Released | ReservationStatus::Expired
                ) && r.released_at.saturating_add(retention) <= now
            })
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.res.remove(&id);
            self.keys.retain(|_, v| *v != id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Systems under test: the pure shards (Cluster) and the real runtime (Engine).

trait Sut {
    fn upsert(&mut self, now: u64, spec: SkuSpec) -> R<(SkuView, bool)>;
    fn restock(&mut self, now: u64, sku: &SkuId, qty: u64) -> R<SkuView>;
    fn sku(&mut self, sku: &SkuId) -> R<SkuView>;
    fn list(&mut self, after: Option<SkuId>, limit: usize) -> Vec<SkuView>;
    fn reserve(&mut self, now: u64, req: ReserveRequest) -> R<ReservationView>;
    fn reservation(&mut self, id: ReservationId) -> R<ReservationView>;
    fn confirm(&mut self, now: u64, id: ReservationId, pref: String) -> R<ReservationView>;
    fn cancel(&mut self, now: u64, id: ReservationId) -> R<ReservationView>;
    fn order(&mut self, id: OrderId) -> R<OrderView>;
    /// Expires everything due; returns false if this system does not expire synchronously.
    fn tick(&mut self, now: u64) -> bool;
    fn crash(&mut self, now: u64, snapshot: bool) -> Result<(), String>;
    fn check(&mut self) -> Result<(), String>;
    /// Asks for this retention of released reservations; returns the one in effect.
    fn set_retention(&mut self, retention_ms: u64) -> u64;
}

struct PureSut(Cluster);

impl Sut for PureSut {
    fn upsert(&mut self, now: u64, spec: SkuSpec) -> R<(SkuView, bool)> {
        self.0.upsert_sku(now, spec)
    }
    fn restock(&mut self, now: u64, sku: &SkuId, qty: u64) -> R<SkuView> {
        self.0.restock(now, sku, qty)
    }
    fn sku(&mut self, sku: &SkuId) -> R<SkuView> {
        self.0.sku(sku)
    }
    fn list(&mut self, after: Option<SkuId>, limit: usize) -> Vec<SkuView> {
        self.0.list_skus(after.as_ref(), limit)
    }
    fn reserve(&mut self, now: u64, req: ReserveRequest) -> R<ReservationView> {
        self.0.reserve(now, req)
    }
    fn reservation(&mut self, id: ReservationId) -> R<ReservationView> {
        self.0.reservation(id)
    }
    fn confirm(&mut self, now: u64, id: ReservationId, pref: String) -> R<ReservationView> {
        self.0.confirm(now, id, pref)
    }
    fn cancel(&mut self, now: u64, id: ReservationId) -> R<ReservationView> {
        self.0.cancel(now, id)
    }
    fn order(&mut self, id: OrderId) -> R<OrderView> {
        self.0.order(id)
    }
    fn tick(&mut self, now: u64) -> bool {
        let _ = self.0.tick(now);
        true
    }
    fn crash(&mut self, now: u64, snapshot: bool) -> Result<(), String> {
        if snapshot {
            self.0.snapshot_all();
        }
        // Nothing is due (the caller ticked at `now`), so recovery must reach identical state.
        let before = self.0.state_hashes();
        self.0.crash_and_recover(now)?;
        let after = self.0.state_hashes();
        if before != after {
            return Err(format!(
                "state hash changed across recovery: {before:?} -> {after:?}"
            ));
        }
        Ok(())
    }
    fn check(&mut self) -> Result<(), String> {
        self.0.check()
    }
    fn set_retention(&mut self, retention_ms: u64) -> u64 {
        self.0.set_retention_ms(retention_ms);
        retention_ms
    }
}

struct EngineSut {
    engine: Option<Engine>,
    backend: MemoryBackend,
    clock: Arc<ManualClock>,
    shards: usize,
}

impl EngineSut {
    fn start(backend: MemoryBackend, clock: Arc<ManualClock>, shards: usize) -> Engine {
        let mut cfg = EngineConfig::new(Arc::new(backend), clock);
        cfg.shards = shards;
        cfg.pin_cores = false;
        cfg.expiry_tick_ms = 1_000;
        cfg.snapshot_every_events = 37;
        cfg.snapshot_state_factor = 0;
        Engine::start(cfg).expect("engine starts")
    }
    fn e(&self) -> &Engine {
        self.engine.as_ref().expect("running")
    }
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

impl Sut for EngineSut {
    fn upsert(&mut self, now: u64, spec: SkuSpec) -> R<(SkuView, bool)> {
        self.clock.set(now);
        block(self.e().upsert_sku(spec))
    }
    fn restock(&mut self, now: u64, sku: &SkuId, qty: u64) -> R<SkuView> {
        self.clock.set(now);
        block(self.e().restock(sku.clone(), qty))
    }
    fn sku(&mut self, sku: &SkuId) -> R<SkuView> {
        block(self.e().sku(sku.clone()))
    }
    fn list(&mut self, after: Option<SkuId>, limit: usize) -> Vec<SkuView> {
        block(self.e().list_skus(after, limit)).expect("list")
    }
    fn reserve(&mut self, now: u64, req: ReserveRequest) -> R<ReservationView> {
        self.clock.set(now);
        block(self.e().reserve(req))
    }
    fn reservation(&mut self, id: ReservationId) -> R<ReservationView> {
        block(self.e().reservation(id))
    }
    fn confirm(&mut self, now: u64, id: ReservationId, pref: String) -> R<ReservationView> {
        self.clock.set(now);
        block(self.e().confirm(id, pref))
    }
    fn cancel(&mut self, now: u64, id: ReservationId) -> R<ReservationView> {
        self.clock.set(now);
        block(self.e().cancel(id))
    }
    fn order(&mut self, id: OrderId) -> R<OrderView> {
        block(self.e().order(id))
    }
    fn tick(&mut self, _now: u64) -> bool {
        false
    }
    fn crash(&mut self, now: u64, _snapshot: bool) -> Result<(), String> {
        let levels = block(self.e().stock_levels());
        if let Some(e) = self.engine.take() {
            e.shutdown();
        }
        self.clock.set(now);
        let e = Self::start(self.backend.clone(), self.clock.clone(), self.shards);
        let after = block(e.stock_levels());
        self.engine = Some(e);
        if levels != after {
            return Err("stock levels changed across restart".into());
        }
        Ok(())
    }
    fn check(&mut self) -> Result<(), String> {
        for l in block(self.e().stock_levels()) {
            let v = block(self.e().sku(l.sku.clone())).map_err(|e| e.to_string())?;
            if self.e().available_now(&l.sku) != Some(v.available) {
                return Err(format!("gate of {} != available {}", l.sku, v.available));
            }
            if (l.available, l.reserved, l.sold) != (v.available, v.reserved, v.sold) {
                return Err(format!("durable mirror of {} is stale", l.sku));
            }
        }
        Ok(())
    }
    fn set_retention(&mut self, _retention_ms: u64) -> u64 {
        // The runtime keeps the default (the simulated time never reaches it).
        flashsale_engine::shard::DEFAULT_RETENTION_MS
    }
}

// ---------------------------------------------------------------------------------------------
// The driver.

struct Sim<S: Sut> {
    rng: ChaCha8Rng,
    sut: S,
    model: Model,
    now: u64,
    sku_names: Vec<SkuId>,
    buyers: Vec<BuyerId>,
    keys: Vec<ScopedKey>,
    requests: Vec<ReserveRequest>,
    ids: Vec<ReservationId>,
    expiry: bool,
}

fn same_error(actual: &CommandError, expected: &CommandError) -> bool {
    match (actual, expected) {
        (CommandError::Invalid(_), CommandError::Invalid(_)) => true,
        (
            CommandError::StockConflict { sku: a, .. },
            CommandError::StockConflict { sku: b, .. },
        ) => a == b,
        (a, b) => a == b,
    }
}

impl<S: Sut> Sim<S> {
    fn new(seed: u64, mut sut: S, expiry: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n_skus = rng.gen_range(3..14);
        // At least the longest TTL (8 s), short enough to forget often within a run.
        let retention_ms = sut.set_retention(rng.gen_range(8_000..40_000));
        Sim {
            sku_names: (0..n_skus)
                .map(|i| SkuId::new(format!("sku-{i}")).expect("sku"))
                .collect(),
            buyers: (0..rng.gen_range(2..9))
                .map(|i| BuyerId::new(format!("buyer-{i}")).expect("buyer"))
                .collect(),
            keys: (0..20)
                .map(|i| {
                    let key = IdempotencyKey::new(format!("key-{}", i / 2)).expect("key");
                    ScopedKey::new(KeyOwner::Credential(i % 2), key)
                })
                .collect(),
            rng,
            sut,
            model: Model {
                retention_ms,
                ..Model::default()
            },
            now: 1_000_000,
            requests: Vec::new(),
            ids: Vec::new(),
            expiry,
        }
    }

    fn pick_sku(&mut self) -> SkuId {
        let i = self.rng.gen_range(0..self.sku_names.len());
        self.sku_names[i].clone()
    }

    fn random_spec(&mut self) -> SkuSpec {
        let sku = self.pick_sku();
        let committed = self.model.skus.get(&sku).map_or(0, |s| s.reserved + s.sold);
        let r = &mut self.rng;
        let stock = if r.gen_bool(0.1) {
            committed.saturating_sub(1)
        } else {
            committed + r.gen_range(0..25)
        };
        let start = self.now as i64 + r.gen_range(-5_000..5_000);
        let ttl_ms = if r.gen_bool(0.02) {
            0
        } else if self.expiry {
            r.gen_range(500..8_000)
        } else {
            1 << 40
        };
        SkuSpec {
            sku,
            name: "thing".into(),
            price_cents: r.gen_range(1..5_000),
            stock,
            per_buyer_limit: r.gen_bool(0.4).then(|| r.gen_range(0..6)),
            sale_starts_at_ms: r.gen_bool(0.2).then_some(start.max(0) as u64),
            sale_ends_at_ms: r
                .gen_bool(0.15)
                .then(|| (start + r.gen_range(-1_000..20_000)).max(0) as u64),
            reservation_ttl_ms: ttl_ms,
            max_hold_ms: flashsale_protocol::default_max_hold_ms(ttl_ms),
            max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
        }
    }

    fn random_request(&mut self) -> ReserveRequest {
        if !self.requests.is_empty() && self.rng.gen_bool(0.15) {
            let i = self.rng.gen_range(0..self.requests.len());
            let mut req = self.requests[i].clone();
            if self.rng.gen_bool(0.2) && !req.lines.is_empty() {
                // Same key, another body (same first line).
                req.lines[0].1 += 1;
            } else if self.rng.gen_bool(0.2) {
                // Same key, another body whose first line is (often) on another shard.
                req.lines = self.random_lines();
            }
            return req;
        }
        let lines = self.random_lines();
        let buyer = self.buyers[self.rng.gen_range(0..self.buyers.len())].clone();
        let key = self
            .rng
            .gen_bool(0.4)
            .then(|| self.keys[self.rng.gen_range(0..self.keys.len())].clone());
        let req = ReserveRequest {
            buyer,
            lines,
            idempotency_key: key,
            ttl_ms: None,
        };
        if req.idempotency_key.is_some() {
            self.requests.push(req.clone());
        }
        req
    }

    fn random_lines(&mut self) -> Vec<(SkuId, u32)> {
        let n = if self.rng.gen_bool(0.6) {
            1
        } else {
            self.rng.gen_range(2..5)
        };
        let mut lines: Vec<(SkuId, u32)> = Vec::new();
        for _ in 0..n {
            let sku = self.pick_sku();
            if lines.iter().any(|(s, _)| *s == sku) && !self.rng.gen_bool(0.05) {
                continue;
            }
            let qty = if self.rng.gen_bool(0.02) {
                0
            } else {
                self.rng.gen_range(1..4)
            };
            lines.push((sku, qty));
        }
        if self.rng.gen_bool(0.01) {
            lines.clear();
        }
        if self.rng.gen_bool(0.03) {
            lines.push((SkuId::new("no-such-sku").expect("sku"), 1));
        }
        lines
    }

    fn pick_id(&mut self) -> ReservationId {
        if self.ids.is_empty() || self.rng.gen_bool(0.03) {
            ReservationId::compose(self.rng.gen_range(0..5), self.rng.gen_range(0..1000))
        } else {
            self.ids[self.rng.gen_range(0..self.ids.len())]
        }
    }

    fn compare_sku(&mut self, sku: &SkuId) -> Result<(), String> {
        let actual = self.sut.sku(sku).ok();
        let expected = self.model.view(sku);
        if actual != expected {
            return Err(format!("SKU {sku}: engine {actual:?}, model {expected:?}"));
        }
        Ok(())
    }

    fn compare_res(&mut self, id: ReservationId) -> Result<(), String> {
        let actual = self.sut.reservation(id).ok();
        let expected = self.model.res_view(id);
        if actual != expected {
            return Err(format!("{id}: engine {actual:?}, model {expected:?}"));
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), String> {
        // Clock: mostly small steps, sometimes a jump past many TTLs.
        if self.rng.gen_bool(0.3) {
            self.now += if self.rng.gen_bool(0.03) {
                self.rng.gen_range(5_000..30_000)
            } else {
                self.rng.gen_range(0..400)
            };
        }
        let roll = self.rng.gen_range(0..100);
        match roll {
            0..=7 => {
                let spec = self.random_spec();
                let sku = spec.sku.clone();
                let expected = self.model.upsert(spec.clone());
                let actual = self.sut.upsert(self.now, spec);
                match (&actual, &expected) {
                    (Ok((_, a)), Ok(b)) if a == b => {}
                    (Err(a), Err(b)) if same_error(a, b) => {}
                    _ => return Err(format!("upsert: engine {actual:?}, model {expected:?}")),
                }
                self.compare_sku(&sku)?;
            }
            8..=10 => {
                let sku = self.pick_sku();
                let qty = self.rng.gen_range(0..10);
                let expected = self.model.restock(&sku, qty);
                let actual = self.sut.restock(self.now, &sku, qty).map(|_| ());
                match (&actual, &expected) {
                    (Ok(()), Ok(())) => {}
                    (Err(a), Err(b)) if same_error(a, b) => {}
                    _ => return Err(format!("restock: engine {actual:?}, model {expected:?}")),
                }
                self.compare_sku(&sku)?;
            }
            11..=55 => {
                let req = self.random_request();
                let decision = self.model.reserve_decision(self.now, &req);
                let actual = self.sut.reserve(self.now, req.clone());
                match (decision, &actual) {
                    (Ok(Some(id)), Ok(v)) if v.id == id => {}
                    (Ok(None), Ok(v)) => {
                        if self.model.res.contains_key(&v.id) {
                            return Err(format!("reused id {}", v.id));
                        }
                        self.model.add_reservation(self.now, &req, v.id);
                        self.ids.push(v.id);
                        let expected = self.model.res_view(v.id);
                        if Some(v) != expected.as_ref() {
                            return Err(format!("reserve: engine {v:?}, model {expected:?}"));
                        }
                    }
                    (Err(errors), Err(a)) if errors.iter().any(|e| same_error(a, e)) => {}
                    (d, a) => return Err(format!("reserve {req:?}: engine {a:?}, model {d:?}")),
                }
                for (sku, _) in &req.lines {
                    self.compare_sku(sku)?;
                }
            }
            56..=70 => {
                let id = self.pick_id();
                let pref = format!("pay-{}", self.rng.gen_range(0..3));
                let expected: R<()> = match self.model.res.get(&id) {
                    None => Err(CommandError::ReservationNotFound(id)),
                    Some(r) => match r.status {
                        ReservationStatus::Held if self.now >= r.expires_at => {
                            Err(CommandError::InvalidState {
                                id,
                                status: ReservationStatus::Expired,
                            })
                        }
                        ReservationStatus::Held => Ok(()),
                        ReservationStatus::Confirmed if r.payment_ref == pref => Ok(()),
                        status => Err(CommandError::InvalidState { id, status }),
                    },
                };
                let actual = self.sut.confirm(self.now, id, pref.clone());
                match (&expected, &actual) {
                    (Ok(()), Ok(v)) => {
                        let order = v.order.ok_or("confirmed without order")?;
                        let r = self.model.res.get_mut(&id).ok_or("unknown")?;
                        if r.status == ReservationStatus::Held {
                            r.status = ReservationStatus::Confirmed;
                            r.order = Some(order);
                            r.payment_ref = pref;
                            r.confirmed_at = self.now;
                            for (sku, q, _) in r.lines.clone() {
                                let s = self.model.skus.get_mut(&sku).ok_or("sku")?;
                                s.reserved -= u64::from(q);
                                s.sold += u64::from(q);
                            }
                            if self.model.orders.insert(order, id).is_some() {
                                return Err(format!("order id {order} reused"));
                            }
                        } else if r.order != Some(order) {
                            return Err("re-confirm changed the order".into());
                        }
                    }
                    (Err(e), Err(a)) if same_error(a, e) => {}
                    _ => return Err(format!("confirm: engine {actual:?}, model {expected:?}")),
                }
                self.compare_res(id)?;
            }
            71..=78 => {
                let id = self.pick_id();
                let expected: R<bool> = match self.model.res.get(&id) {
                    None => Err(CommandError::ReservationNotFound(id)),
                    Some(r) => match r.status {
                        ReservationStatus::Held => Ok(true),
                        ReservationStatus::Released => Ok(false),
                        status => Err(CommandError::InvalidState { id, status }),
                    },
                };
                let actual = self.sut.cancel(self.now, id);
                match (&expected, &actual) {
                    (Ok(fresh), Ok(_)) => {
                        if *fresh {
                            self.model.release(id, ReleaseReason::Cancelled, self.now);
                        }
                    }
                    (Err(e), Err(a)) if same_error(a, e) => {}
                    _ => return Err(format!("cancel: engine {actual:?}, model {expected:?}")),
                }
                self.compare_res(id)?;
            }
            79..=84 => {
                let id = self.pick_id();
                self.compare_res(id)?;
                let order = self.model.res.get(&id).and_then(|r| r.order);
                if let Some(order) = order {
                    let actual = self.sut.order(order).ok();
                    let expected = self.model.order_view(order);
                    if actual != expected {
                        return Err(format!("order: engine {actual:?}, model {expected:?}"));
                    }
                }
            }
            85..=87 => {
                let after = self.rng.gen_bool(0.5).then(|| self.pick_sku());
                let limit = self.rng.gen_range(0..6);
                let actual = self.sut.list(after.clone(), limit);
                let expected: Vec<SkuView> = self
                    .model
                    .skus
                    .keys()
                    .filter(|k| after.as_ref().is_none_or(|a| *k > a))
                    .take(limit)
                    .filter_map(|k| self.model.view(k))
                    .collect();
                if actual != expected {
                    return Err(format!("list: engine {actual:?}, model {expected:?}"));
                }
            }
            88..=96 => {
                if self.expiry && self.sut.tick(self.now) {
                    self.model.expire_due(self.now);
                    for sku in self.sku_names.clone() {
                        self.compare_sku(&sku)?;
                    }
                }
            }
            _ => {
                if self.rng.gen_bool(0.3) {
                    if self.expiry && self.sut.tick(self.now) {
                        self.model.expire_due(self.now);
                    }
                    let snapshot = self.rng.gen_bool(0.5);
                    self.sut.crash(self.now, snapshot)?;
                    for sku in self.sku_names.clone() {
                        self.compare_sku(&sku)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn full_check(&mut self) -> Result<(), String> {
        self.sut.check()?;
        for sku in self.sku_names.clone() {
            self.compare_sku(&sku)?;
        }
        Ok(())
    }

    fn run(&mut self, steps: usize) -> Result<(), String> {
        for i in 0..steps {
            self.step().map_err(|e| format!("step {i}: {e}"))?;
            if i % 64 == 0 {
                self.full_check().map_err(|e| format!("step {i}: {e}"))?;
            }
        }
        for id in self.ids.clone() {
            self.compare_res(id)?;
        }
        self.full_check()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match env_u64("FLASHSALE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => default.collect(),
    }
}

#[test]
fn simulation_pure_shards_against_the_model() {
    let steps = env_u64("FLASHSALE_SIM_STEPS").unwrap_or(5_000) as usize;
    let mut total = 0;
    for seed in seeds(0..44) {
        let shards = 1 + (seed % 4) as usize;
        let mut sim = Sim::new(seed, PureSut(Cluster::new(shards)), true);
        if let Err(e) = sim.run(steps) {
            panic!(
                "simulation failed with seed {seed} ({shards} shards): {e}\n\
                 replay: FLASHSALE_SIM_SEED={seed} cargo test -p flashsale-engine --test simulation"
            );
        }
        total += steps;
    }
    assert!(
        total >= 200_000
            || env_u64("FLASHSALE_SIM_SEED").is_some()
            || env_u64("FLASHSALE_SIM_STEPS").is_some()
    );
}

#[test]
fn simulation_through_the_glommio_runtime() {
    let steps = env_u64("FLASHSALE_SIM_STEPS").map_or(600, |s| s.min(2_000)) as usize;
    for seed in seeds(1000..1004) {
        let shards = 1 + (seed % 4) as usize;
        let backend = MemoryBackend::new();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let engine = EngineSut::start(backend.clone(), clock.clone(), shards);
        let sut = EngineSut {
            engine: Some(engine),
            backend,
            clock,
            shards,
        };
        let mut sim = Sim::new(seed, sut, false);
        let result = sim.run(steps);
        if let Some(e) = sim.sut.engine.take() {
            e.shutdown();
        }
        if let Err(e) = result {
            panic!(
                "runtime simulation failed with seed {seed} ({shards} shards): {e}\n\
                 replay: FLASHSALE_SIM_SEED={seed} cargo test -p flashsale-engine --test simulation"
            );
        }
    }
}
