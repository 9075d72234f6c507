//! The engine behind the HTTP API of a high-availability node: present while the node leads,
//! absent while it stands by. A standby answers reads (SKUs, reservations, orders, buyer
//! lists) from its followed state once it has caught up (the API marks them with the lag);
//! writes then fail `unavailable` (the API answers them `503 not-leader` before reaching it).

use std::future::Future;
use std::sync::{Arc, RwLock};

use flashsale_engine::{
    CommandError, Engine, ListPos, OrderQuery, OrderView, ReservationQuery, ReservationView,
    ReserveRequest, SkuView, StatsSnapshot, StockLevel,
};
use flashsale_protocol::{OrderId, PaymentRef, ReservationId, ScopedKey, SkuId, SkuSpec};

use super::follow::FollowedState;
use crate::http::Inventory;

/// An [`Inventory`] whose engine is swapped in at a takeover and out at a step-down, and
/// whose followed state (a standby's) answers reads meanwhile. Clones share the slots.
#[derive(Debug, Default, Clone)]
pub struct SwitchEngine {
    current: Arc<RwLock<Option<Engine>>>,
    standby: Arc<RwLock<Option<FollowedState>>>,
}

/// Where a read is answered from.
enum Source {
    /// The leader's engine.
    Engine(Engine),
    /// A standby's followed state.
    Followed(FollowedState),
}

fn not_leading() -> CommandError {
    CommandError::Unavailable("this node is not the leader".into())
}

impl SwitchEngine {
    /// No engine yet (a standby).
    pub fn new() -> SwitchEngine {
        SwitchEngine::default()
    }

    /// The engine, if this node leads.
    pub fn get(&self) -> Option<Engine> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Puts `engine` (or none) behind the API; returns the previous one.
    pub fn set(&self, engine: Option<Engine>) -> Option<Engine> {
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        std::mem::replace(&mut *g, engine)
    }

    /// Puts a standby's followed state (or none) behind the API's reads.
    pub fn set_standby(&self, state: Option<FollowedState>) {
        let mut g = match self.standby.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = state;
    }

    fn followed(&self) -> Option<FollowedState> {
        match self.standby.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn engine(&self) -> Result<Engine, CommandError> {
        self.get().ok_or_else(not_leading)
    }

    /// The engine if leading, else a caught-up followed state.
    fn source(&self) -> Result<Source, CommandError> {
        if let Some(e) = self.get() {
            return Ok(Source::Engine(e));
        }
        match self.followed() {
            Some(f) if f.caught_up() => Ok(Source::Followed(f)),
            _ => Err(not_leading()),
        }
    }
}

impl Inventory for SwitchEngine {
    fn upsert_sku(
        &self,
        spec: SkuSpec,
    ) -> impl Future<Output = Result<(SkuView, bool), CommandError>> + Send {
        let e = self.engine();
        async move { e?.upsert_sku(spec).await }
    }
    fn restock(
        &self,
        sku: SkuId,
        qty: u64,
        key: Option<ScopedKey>,
    ) -> impl Future<Output = Result<SkuView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.restock(sku, qty, key).await }
    }
    fn sku(&self, sku: SkuId) -> impl Future<Output = Result<SkuView, CommandError>> + Send {
        let src = self.source();
        async move {
            match src? {
                Source::Engine(e) => e.sku(sku).await,
                Source::Followed(f) => f.with(|f| f.sku(&sku)),
            }
        }
    }
    fn list_skus(
        &self,
        after: Option<SkuId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SkuView>, CommandError>> + Send {
        let src = self.source();
        async move {
            match src? {
                Source::Engine(e) => e.list_skus(after, limit).await,
                Source::Followed(f) => Ok(f.with(|f| f.list_skus(after.as_ref(), limit))),
            }
        }
    }
    fn reserve(
        &self,
        request: ReserveRequest,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.reserve(request).await }
    }
    fn replay(
        &self,
        request: &ReserveRequest,
    ) -> impl Future<Output = Result<Option<ReservationView>, CommandError>> + Send {
        let e = self.engine();
        let request = request.clone();
        async move { e?.replay(&request).await }
    }
    fn reservation(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        let src = self.source();
        async move {
            match src? {
                Source::Engine(e) => e.reservation(id).await,
                Source::Followed(f) => f.with(|f| f.reservation(id)),
            }
        }
    }
    fn confirm(
        &self,
        id: ReservationId,
        payment_ref: PaymentRef,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.confirm(id, payment_ref).await }
    }
    fn cancel(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.cancel(id).await }
    }
    fn extend(
        &self,
        id: ReservationId,
        ttl_ms: u64,
        key: Option<ScopedKey>,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.extend(id, ttl_ms, key).await }
    }
    fn order(&self, id: OrderId) -> impl Future<Output = Result<OrderView, CommandError>> + Send {
        let src = self.source();
        async move {
            match src? {
                Source::Engine(e) => e.order(id).await,
                Source::Followed(f) => f.with(|f| f.order(id)),
            }
        }
    }
    fn list_reservations(
        &self,
        query: ReservationQuery,
    ) -> impl Future<Output = Result<(Vec<ReservationView>, Option<ListPos>), CommandError>> + Send
    {
        let src = self.source();
        async move {
            match src? {
                Source::Engine(e) => e.list_reservations(query).await,
                Source::Followed(f) => Ok(f.with(|f| f.list_reservations(&query))),
            }
        }
    }
    fn list_orders(
        &self,
        query: OrderQuery,
    ) -> impl Future<Output = Result<(Vec<OrderView>, Option<ListPos>), CommandError>> + Send {
        let src = self.source();
        async move {
            match src? {
                Source::Engine(e) => e.list_orders(query).await,
                Source::Followed(f) => Ok(f.with(|f| f.list_orders(&query))),
            }
        }
    }
    fn ready(&self) -> bool {
        self.get().is_some_and(|e| e.ready())
    }
    fn serves_standby_reads(&self) -> bool {
        self.followed().is_some_and(|f| f.caught_up())
    }
    fn stats(&self) -> Option<StatsSnapshot> {
        self.get().map(|e| e.stats())
    }
    fn stock_levels(&self) -> impl Future<Output = Vec<StockLevel>> + Send {
        let e = self.get();
        async move {
            match e {
                Some(e) => e.stock_levels().await,
                None => Vec::new(),
            }
        }
    }
}
