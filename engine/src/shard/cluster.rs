//! A synchronous, single-threaded driver of several shards: the same protocol as the glommio
//! runtime (gate claims on the caller side, home-first cross-shard reservations with rollback,
//! home decisions followed by parts, reconciliation after a crash), without threads or I/O.
//! Used by the deterministic simulation and by benchmarks; each shard's records are kept in an
//! in-memory log so a crash can be simulated by restoring snapshots and replaying.

use flashsale_protocol::{LogRecord, OrderId, ReservationId, SkuId, SkuSpec};

use super::{
    assemble_order, assemble_reservation, plan, reconcile, request_hash, shard_of, shard_of_key,
    validate_lines, EventSink, FollowAction, PartView, ReserveCommand, Shard,
};
use crate::command::{CommandError, ReserveRequest};
use crate::gate::StockGate;
use crate::view::{OrderView, ReservationView, SkuView};

struct Sink<'a> {
    log: &'a mut Vec<LogRecord>,
    keep: bool,
}

impl EventSink for Sink<'_> {
    fn record(&mut self, record: &LogRecord) {
        if self.keep {
            self.log.push(record.clone());
        }
    }
}

/// Several shards driven synchronously, with a per-shard record log and snapshot.
#[derive(Debug)]
pub struct Cluster {
    shards: Vec<Shard>,
    logs: Vec<Vec<LogRecord>>,
    snapshots: Vec<Option<Vec<u8>>>,
    keep_log: bool,
    retention_ms: u64,
}

impl Cluster {
    /// `shards` empty shards (1..=64); `keep_log` keeps every record for crash simulation.
    pub fn new(shards: usize, keep_log: bool) -> Self {
        let n = shards.clamp(1, 64);
        Cluster {
            shards: (0..n).map(|i| Shard::new(i as u16)).collect(),
            logs: vec![Vec::new(); n],
            snapshots: vec![None; n],
            keep_log,
            retention_ms: super::DEFAULT_RETENTION_MS,
        }
    }

    /// Sets every shard's retention of released / expired reservations (see
    /// [`Shard::set_retention_ms`]); kept across simulated crashes.
    pub fn set_retention_ms(&mut self, retention_ms: u64) {
        self.retention_ms = retention_ms;
        for s in &mut self.shards {
            s.set_retention_ms(retention_ms);
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shards (read-only).
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    fn split(&mut self, i: usize) -> (&mut Shard, Sink<'_>) {
        (
            &mut self.shards[i],
            Sink {
                log: &mut self.logs[i],
                keep: self.keep_log,
            },
        )
    }

    fn owner(&self, sku: &SkuId) -> usize {
        shard_of(sku, self.shards.len()) as usize
    }

    /// Creates or replaces a SKU.
    pub fn upsert_sku(
        &mut self,
        now_ms: u64,
        spec: SkuSpec,
    ) -> Result<(SkuView, bool), CommandError> {
        let i = self.owner(&spec.sku);
        let (shard, mut sink) = self.split(i);
        shard.upsert_sku(now_ms, spec, &mut sink)
    }

    /// Adds stock.
    pub fn restock(&mut self, now_ms: u64, sku: &SkuId, qty: u64) -> Result<SkuView, CommandError> {
        let i = self.owner(sku);
        let (shard, mut sink) = self.split(i);
        shard.restock(now_ms, sku, qty, &mut sink)
    }

    /// A SKU's view.
    pub fn sku(&self, sku: &SkuId) -> Result<SkuView, CommandError> {
        self.shards[self.owner(sku)]
            .sku(sku)
            .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))
    }

    /// SKUs ordered by id after `after`, at most `limit`, across shards.
    pub fn list_skus(&self, after: Option<&SkuId>, limit: usize) -> Vec<SkuView> {
        let mut all: Vec<SkuView> = self
            .shards
            .iter()
            .flat_map(|s| s.list_skus(after, limit))
            .collect();
        all.sort_unstable_by(|a, b| a.sku.cmp(&b.sku));
        all.truncate(limit);
        all
    }

    fn gate(&self, sku: &SkuId) -> Option<std::sync::Arc<StockGate>> {
        self.shards[self.owner(sku)].gate(sku)
    }

    /// Holds every line or none (see the runtime's `Engine::reserve`).
    pub fn reserve(
        &mut self,
        now_ms: u64,
        req: ReserveRequest,
    ) -> Result<ReservationView, CommandError> {
        validate_lines(req.lines.iter().map(|(s, q)| (s, *q)))?;
        let hash = request_hash(&req.buyer, &req.lines);
        // Caller side: claim every line on its gate; a sold-out line fails here.
        let mut claimed: Vec<(std::sync::Arc<StockGate>, u64)> = Vec::new();
        let mut gate_error = None;
        let mut min_ttl = u64::MAX;
        for (sku, qty) in &req.lines {
            let Some(gate) = self.gate(sku) else {
                gate_error = Some(CommandError::SkuNotFound(sku.clone()));
                break;
            };
            if let Ok(v) = self.sku(sku) {
                min_ttl = min_ttl.min(v.reservation_ttl_ms);
            }
            match gate.try_claim(u64::from(*qty)) {
                Ok(()) => claimed.push((gate, u64::from(*qty))),
                Err(available) => {
                    gate_error = Some(CommandError::SoldOut {
                        sku: sku.clone(),
                        available,
                    });
                    break;
                }
            }
        }
        if let Some(err) = gate_error {
            for (g, q) in claimed {
                g.give_back(q);
            }
            if let Some(key) = &req.idempotency_key {
                let home = shard_of_key(key, self.shards.len()) as usize;
                if let Some(found) = self.shards[home].lookup_key(key, hash) {
                    let part = found?;
                    return Ok(self.assemble(part));
                }
            }
            return Err(err);
        }
        let key_home = req
            .idempotency_key
            .as_ref()
            .map(|k| shard_of_key(k, self.shards.len()));
        let plan = plan(req.lines, self.shards.len(), key_home);
        let group = plan.is_group();
        let expires_at_ms = group.then(|| now_ms.saturating_add(min_ttl));
        let mut parts = plan.parts.iter().enumerate();
        let Some((_, home_part)) = parts.next() else {
            return Err(CommandError::Invalid("empty request".into()));
        };
        let home = home_part.shard as usize;
        let home_cmd = ReserveCommand {
            buyer: req.buyer.clone(),
            lines: home_part.lines.clone(),
            idempotency_key: req.idempotency_key,
            request_hash: hash,
            id: None,
            expires_at_ms,
            group: plan.group(0),
            claimed: true,
        };
        let (shard, mut sink) = self.split(home);
        let out = match shard.reserve(now_ms, home_cmd, &mut sink) {
            Ok(out) => out,
            Err(e) => {
                self.give_back_parts(&plan.parts[1..]);
                return Err(e);
            }
        };
        let id = out.id;
        if out.replayed || !group {
            if out.replayed {
                self.give_back_parts(&plan.parts[1..]);
            }
            return self.reservation(id);
        }
        let mut first_error = None;
        let mut held = Vec::new();
        for (i, part) in parts {
            let cmd = ReserveCommand {
                buyer: req.buyer.clone(),
                lines: part.lines.clone(),
                idempotency_key: None,
                request_hash: hash,
                id: Some(id),
                expires_at_ms,
                group: plan.group(i),
                claimed: true,
            };
            let s = part.shard as usize;
            let (shard, mut sink) = self.split(s);
            match shard.reserve(now_ms, cmd, &mut sink) {
                Ok(_) => held.push(s),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(err) = first_error {
            let abort = FollowAction::Release(flashsale_protocol::ReleaseReason::Aborted);
            for s in held.into_iter().chain(std::iter::once(home)) {
                let (shard, mut sink) = self.split(s);
                shard.follow(now_ms, id, &abort, &mut sink)?;
            }
            return Err(err);
        }
        self.reservation(id)
    }

    fn give_back_parts(&self, parts: &[super::PlanPart]) {
        for p in parts {
            for (sku, qty) in &p.lines {
                if let Some(g) = self.gate(sku) {
                    g.give_back(u64::from(*qty));
                }
            }
        }
    }

    fn other_parts(&self, home: &PartView) -> Vec<PartView> {
        let Some(group) = home.group else {
            return Vec::new();
        };
        let id = home.view.id;
        (0..self.shards.len())
            .filter(|s| *s != id.shard() as usize && group.shards_mask & (1u64 << s) != 0)
            .filter_map(|s| self.shards[s].reservation(id))
            .collect()
    }

    fn assemble(&self, home: PartView) -> ReservationView {
        let parts = self.other_parts(&home);
        assemble_reservation(home, &parts)
    }

    /// A reservation, all lines in request order.
    pub fn reservation(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        let home = self
            .shards
            .get(id.shard() as usize)
            .and_then(|s| s.reservation(id))
            .ok_or(CommandError::ReservationNotFound(id))?;
        Ok(self.assemble(home))
    }

    fn forward(
        &mut self,
        now_ms: u64,
        decision: Option<super::Decision>,
    ) -> Result<(), CommandError> {
        let Some(d) = decision else {
            return Ok(());
        };
        for s in 0..self.shards.len() {
            if s != d.id.shard() as usize && d.group.shards_mask & (1u64 << s) != 0 {
                let (shard, mut sink) = self.split(s);
                shard.follow(now_ms, d.id, &d.action, &mut sink)?;
            }
        }
        Ok(())
    }

    /// Confirms on the home shard, then the parts follow.
    pub fn confirm(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        payment_ref: String,
    ) -> Result<ReservationView, CommandError> {
        let home = id.shard() as usize;
        if home >= self.shards.len() {
            return Err(CommandError::ReservationNotFound(id));
        }
        let (shard, mut sink) = self.split(home);
        let out = shard.confirm(now_ms, id, payment_ref, &mut sink)?;
        self.forward(now_ms, out.follow)?;
        self.reservation(id)
    }

    /// Cancels on the home shard, then the parts follow.
    pub fn cancel(
        &mut self,
        now_ms: u64,
        id: ReservationId,
    ) -> Result<ReservationView, CommandError> {
        let home = id.shard() as usize;
        if home >= self.shards.len() {
            return Err(CommandError::ReservationNotFound(id));
        }
        let (shard, mut sink) = self.split(home);
        let out = shard.cancel(now_ms, id, &mut sink)?;
        self.forward(now_ms, out.follow)?;
        self.reservation(id)
    }

    /// An order, all lines in request order.
    pub fn order(&self, id: OrderId) -> Result<OrderView, CommandError> {
        let (view, group) = self
            .shards
            .get(id.shard() as usize)
            .and_then(|s| s.order(id))
            .ok_or_else(|| CommandError::OrderNotFound(id.to_string()))?;
        let parts = match group {
            Some(g) => (0..self.shards.len())
                .filter(|s| *s != id.shard() as usize && g.shards_mask & (1u64 << s) != 0)
                .filter_map(|s| self.shards[s].reservation(view.reservation))
                .collect(),
            None => Vec::new(),
        };
        Ok(assemble_order(view, group, &parts))
    }

    /// One expiry tick on every shard (at most `max` per shard); parts follow their homes.
    pub fn tick(&mut self, now_ms: u64, max: usize) -> Result<usize, CommandError> {
        let mut expired = 0;
        for s in 0..self.shards.len() {
            let (shard, mut sink) = self.split(s);
            let out = shard.expire(now_ms, max, &mut sink)?;
            expired += out.expired;
            for d in out.follows {
                self.forward(now_ms, Some(d))?;
            }
        }
        Ok(expired)
    }

    /// Snapshots every shard and truncates its log.
    pub fn snapshot_all(&mut self) {
        for s in 0..self.shards.len() {
            self.snapshots[s] = Some(self.shards[s].snapshot());
            self.logs[s].clear();
        }
    }

    /// Throws the in-memory state away and rebuilds every shard from its snapshot and log
    /// (requires `keep_log`), then reconciles groups and expires what passed while down.
    pub fn crash_and_recover(&mut self, now_ms: u64) -> Result<(), String> {
        let mut shards = Vec::with_capacity(self.shards.len());
        for s in 0..self.shards.len() {
            let mut shard = match &self.snapshots[s] {
                Some(bytes) => Shard::restore(bytes).map_err(|e| e.to_string())?,
                None => Shard::new(s as u16),
            };
            shard.set_retention_ms(self.retention_ms);
            for rec in &self.logs[s] {
                shard.apply_record(rec.clone()).map_err(|e| e.to_string())?;
            }
            shards.push(shard);
        }
        self.shards = shards;
        self.recover_groups(now_ms).map_err(|e| e.to_string())?;
        while self.tick(now_ms, usize::MAX).map_err(|e| e.to_string())? > 0 {}
        Ok(())
    }

    /// Runs [`reconcile`] over all shards and applies its decisions.
    pub fn recover_groups(&mut self, now_ms: u64) -> Result<usize, CommandError> {
        let states: Vec<_> = self.shards.iter().flat_map(|s| s.group_states()).collect();
        let actions = reconcile(&states);
        let n = actions.len();
        for (s, id, action) in actions {
            let (shard, mut sink) = self.split(s as usize);
            shard.follow(now_ms, id, &action, &mut sink)?;
        }
        Ok(n)
    }

    /// Checks every shard's invariants and gates.
    pub fn check(&self) -> Result<(), String> {
        for s in &self.shards {
            s.check_invariants()?;
            s.check_gates()?;
        }
        Ok(())
    }

    /// Hashes of every shard's state.
    pub fn state_hashes(&self) -> Vec<u64> {
        self.shards.iter().map(Shard::state_hash).collect()
    }
}
