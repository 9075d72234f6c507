//! A synchronous driver of several shard nodes: each call delivers its request, then every
//! message in order and every flush, until the world is quiet. The same nodes, coordinator and
//! commit path as the glommio runtime, without threads, faults or I/O. Used by the pure
//! simulation; crashes restore snapshots and replay the in-memory logs.

use flashsale_protocol::{OrderId, PaymentRef, ReservationId, ScopedKey, ShardId, SkuId, SkuSpec};

use crate::command::{CommandError, ReserveRequest};
use crate::shard::{
    assemble_order, merge_pages, shard_of, ExtendCommand, ListPos, OrderQuery, PartView,
    ReservationQuery,
};
use crate::view::{OrderView, ReservationView, SkuView};

use super::caller::{prepare_reserve, GateInfo, Prepared, ReserveReply};
use super::commit::SnapshotPolicy;
use super::message::{Answer, Request};
use super::world::World;
use super::NodeConfig;

/// Several shards driven synchronously.
#[derive(Debug)]
pub struct Cluster {
    world: World,
}

fn unexpected(a: &Answer) -> CommandError {
    CommandError::Internal(format!("unexpected answer {a:?}"))
}

impl Cluster {
    /// `shards` empty shards (1..=64). Snapshots are taken only by [`Cluster::snapshot_all`].
    pub fn new(shards: usize) -> Self {
        let config = NodeConfig {
            expiry_batch: usize::MAX,
            snapshots: SnapshotPolicy {
                every_events: 0,
                state_factor: 0,
            },
        };
        Cluster {
            world: World::new(shards, config),
        }
    }

    /// Sets every shard's retention of released / expired reservations.
    pub fn set_retention_ms(&mut self, retention_ms: u64) {
        self.world.set_retention_ms(retention_ms);
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.world.shard_count()
    }

    /// The underlying world.
    pub fn world(&self) -> &World {
        &self.world
    }

    fn owner(&self, sku: &SkuId) -> ShardId {
        shard_of(sku, self.shard_count())
    }

    fn call(&mut self, now_ms: u64, to: ShardId, req: Request) -> Result<Answer, CommandError> {
        let t = self.world.submit(to, req);
        self.world.settle(now_ms);
        self.world
            .take_reply(t)
            .unwrap_or_else(|| Err(CommandError::Internal("no reply".into())))
    }

    /// Creates or replaces a SKU.
    pub fn upsert_sku(
        &mut self,
        now_ms: u64,
        spec: SkuSpec,
    ) -> Result<(SkuView, bool), CommandError> {
        let to = self.owner(&spec.sku);
        match self.call(now_ms, to, Request::Upsert(spec))? {
            Answer::Upserted(v, c) => Ok((v, c)),
            a => Err(unexpected(&a)),
        }
    }

    /// Adds stock.
    pub fn restock(
        &mut self,
        now_ms: u64,
        sku: &SkuId,
        qty: u64,
        key: Option<ScopedKey>,
    ) -> Result<SkuView, CommandError> {
        let to = self.owner(sku);
        match self.call(now_ms, to, Request::Restock(sku.clone(), qty, key))? {
            Answer::Sku(v) => Ok(v),
            a => Err(unexpected(&a)),
        }
    }

    /// A SKU's view.
    pub fn sku(&self, sku: &SkuId) -> Result<SkuView, CommandError> {
        self.world.nodes()[usize::from(self.owner(sku))]
            .shard()
            .sku(sku)
            .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))
    }

    /// SKUs ordered by id after `after`, at most `limit`, across shards.
    pub fn list_skus(&self, after: Option<&SkuId>, limit: usize) -> Vec<SkuView> {
        let mut all: Vec<SkuView> = self
            .world
            .nodes()
            .iter()
            .flat_map(|n| n.shard().list_skus(after, limit))
            .collect();
        all.sort_unstable_by(|a, b| a.sku.cmp(&b.sku));
        all.truncate(limit);
        all
    }

    /// The caller's view of a SKU's gate.
    pub fn gate_info(&self, sku: &SkuId) -> Option<GateInfo> {
        self.world.gate_info(sku)
    }

    /// Holds every line or none (see [`crate::Engine::reserve`]).
    pub fn reserve(
        &mut self,
        now_ms: u64,
        req: ReserveRequest,
    ) -> Result<ReservationView, CommandError> {
        let n = self.shard_count();
        let prepared = prepare_reserve(req, n, now_ms, |sku| self.gate_info(sku))?;
        match prepared {
            Prepared::Refused { error, probe } => {
                if let Some(p) = probe {
                    let asked = self.call(now_ms, p.home, Request::Probe(p.key, p.request_hash))?;
                    match ReserveReply::of(asked)? {
                        ReserveReply::Whole(v) => return Ok(v),
                        ReserveReply::Complete(part) => return Ok(self.world.assemble(part)),
                        ReserveReply::NoReservation => {}
                    }
                }
                Err(error)
            }
            Prepared::Send { home, request } => {
                match ReserveReply::of(self.call(now_ms, home, request)?)? {
                    ReserveReply::Whole(v) => Ok(v),
                    ReserveReply::Complete(p) => Ok(self.world.assemble(p)),
                    ReserveReply::NoReservation => {
                        Err(CommandError::Internal("no reservation".into()))
                    }
                }
            }
        }
    }

    fn assemble(&self, home: PartView) -> ReservationView {
        self.world.assemble(home)
    }

    /// A reservation, all lines in request order.
    pub fn reservation(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        let home = self
            .world
            .nodes()
            .get(usize::from(id.shard()))
            .and_then(|n| n.shard().reservation(id))
            .ok_or(CommandError::ReservationNotFound(id))?;
        Ok(self.assemble(home))
    }

    fn decide(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        req: Request,
    ) -> Result<ReservationView, CommandError> {
        if usize::from(id.shard()) >= self.shard_count() {
            return Err(CommandError::ReservationNotFound(id));
        }
        match self.call(now_ms, id.shard(), req)? {
            Answer::Part(p) => Ok(self.assemble(p)),
            a => Err(unexpected(&a)),
        }
    }

    /// Confirms on the home shard; the parts follow.
    pub fn confirm(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        payment_ref: impl Into<PaymentRef>,
    ) -> Result<ReservationView, CommandError> {
        self.decide(now_ms, id, Request::Confirm(id, payment_ref.into()))
    }

    /// Cancels on the home shard; the parts follow.
    pub fn cancel(
        &mut self,
        now_ms: u64,
        id: ReservationId,
    ) -> Result<ReservationView, CommandError> {
        self.decide(now_ms, id, Request::Cancel(id))
    }

    /// Extends a held reservation's hold to `ttl_ms` from now (see [`crate::Engine::extend`]):
    /// the bounds are the strictest of its lines' SKUs, read now; the parts follow.
    pub fn extend(
        &mut self,
        now_ms: u64,
        id: ReservationId,
        ttl_ms: u64,
        key: Option<ScopedKey>,
    ) -> Result<ReservationView, CommandError> {
        let view = self.reservation(id)?;
        let skus = view
            .lines
            .iter()
            .map(|line| self.sku(&line.sku))
            .collect::<Result<Vec<_>, _>>()?;
        let cmd = ExtendCommand::strictest_of(id, ttl_ms, key, &skus)?;
        self.decide(now_ms, id, Request::Extend(Box::new(cmd)))
    }

    /// A page of a buyer's reservations, newest first, each one whole (see
    /// [`crate::Engine::list_reservations`]), and the position to continue from.
    pub fn list_reservations(
        &mut self,
        now_ms: u64,
        query: &ReservationQuery,
    ) -> Result<(Vec<ReservationView>, Option<ListPos>), CommandError> {
        let mut pages = Vec::with_capacity(self.shard_count());
        for s in 0..self.shard_count() {
            let q = Box::new(query.clone());
            let to = ShardId::try_from(s).map_err(|_| CommandError::Internal("shard id".into()))?;
            match self.call(now_ms, to, Request::BuyerReservations(q))? {
                Answer::BuyerReservations(page) => pages.push(page),
                a => return Err(unexpected(&a)),
            }
        }
        let (items, next) = merge_pages(pages, query.limit);
        let views = items
            .into_iter()
            .map(|(_, part)| self.assemble(part))
            .filter(|v| {
                query
                    .sku
                    .as_ref()
                    .is_none_or(|sku| v.lines.iter().any(|l| &l.sku == sku))
            })
            .collect();
        Ok((views, next))
    }

    /// A page of a buyer's orders, newest first, each one whole (see
    /// [`crate::Engine::list_orders`]), and the position to continue from.
    pub fn list_orders(
        &mut self,
        now_ms: u64,
        query: &OrderQuery,
    ) -> Result<(Vec<OrderView>, Option<ListPos>), CommandError> {
        let mut pages = Vec::with_capacity(self.shard_count());
        for s in 0..self.shard_count() {
            let q = Box::new(query.clone());
            let to = ShardId::try_from(s).map_err(|_| CommandError::Internal("shard id".into()))?;
            match self.call(now_ms, to, Request::BuyerOrders(q))? {
                Answer::BuyerOrders(page) => pages.push(page),
                a => return Err(unexpected(&a)),
            }
        }
        let (items, next) = merge_pages(pages, query.limit);
        let orders = items
            .into_iter()
            .map(|(_, (view, group))| {
                let parts = match group {
                    Some(g) => self.parts_of(view.reservation, view.id.shard(), g),
                    None => Vec::new(),
                };
                assemble_order(view, group, &parts)
            })
            .collect();
        Ok((orders, next))
    }

    /// The parts of reservation `id` on the shards of `group` other than `home`.
    fn parts_of(
        &self,
        id: ReservationId,
        home: ShardId,
        group: flashsale_protocol::event::Group,
    ) -> Vec<PartView> {
        self.world
            .nodes()
            .iter()
            .enumerate()
            .filter(|(s, _)| *s != usize::from(home) && group.shards_mask & (1u64 << s) != 0)
            .filter_map(|(_, n)| n.shard().reservation(id))
            .collect()
    }

    /// An order, all lines in request order.
    pub fn order(&self, id: OrderId) -> Result<OrderView, CommandError> {
        let (view, group) = self
            .world
            .nodes()
            .get(usize::from(id.shard()))
            .and_then(|n| n.shard().order(id))
            .ok_or_else(|| CommandError::OrderNotFound(id.to_string()))?;
        let parts = match group {
            Some(g) => self.parts_of(view.reservation, id.shard(), g),
            None => Vec::new(),
        };
        Ok(assemble_order(view, group, &parts))
    }

    /// One expiry tick on every shard; parts follow their homes. Returns how many expired.
    pub fn tick(&mut self, now_ms: u64) -> usize {
        self.world.take_counters();
        for s in 0..self.shard_count() {
            self.world.tick(s, now_ms);
        }
        self.world.settle(now_ms);
        self.world.take_counters().expired as usize
    }

    /// Snapshots every shard (its log then holds only later records).
    pub fn snapshot_all(&mut self) {
        self.world.snapshot_all();
    }

    /// Throws the in-memory state away and rebuilds every shard from its snapshot and log,
    /// then reconciles groups and expires what passed while down.
    pub fn crash_and_recover(&mut self, now_ms: u64) -> Result<(), String> {
        self.world.crash(now_ms, |_, _| 0)
    }

    /// Checks every shard's invariants and gates.
    pub fn check(&self) -> Result<(), String> {
        for n in self.world.nodes() {
            n.shard().check_invariants()?;
            n.shard().check_gates()?;
        }
        Ok(())
    }

    /// Hashes of every shard's state.
    pub fn state_hashes(&self) -> Vec<u64> {
        self.world
            .nodes()
            .iter()
            .map(|n| n.shard().state_hash())
            .collect()
    }
}
