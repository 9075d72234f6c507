//! The engine behind the HTTP API of a high-availability node: present while the node leads,
//! absent while it stands by (calls then fail `unavailable`; the API answers standbys'
//! requests with `503 not-leader` before reaching it).

use std::future::Future;
use std::sync::{Arc, RwLock};

use flashsale_engine::{
    CommandError, Engine, ListPos, OrderQuery, OrderView, ReservationQuery, ReservationView,
    ReserveRequest, SkuView, StatsSnapshot, StockLevel,
};
use flashsale_protocol::{OrderId, ReservationId, SkuId, SkuSpec};

use crate::http::Inventory;

/// An [`Inventory`] whose engine is swapped in at a takeover and out at a step-down. Clones
/// share the slot.
#[derive(Debug, Default, Clone)]
pub struct SwitchEngine {
    current: Arc<RwLock<Option<Engine>>>,
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

    fn engine(&self) -> Result<Engine, CommandError> {
        self.get().ok_or_else(not_leading)
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
    ) -> impl Future<Output = Result<SkuView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.restock(sku, qty).await }
    }
    fn sku(&self, sku: SkuId) -> impl Future<Output = Result<SkuView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.sku(sku).await }
    }
    fn list_skus(
        &self,
        after: Option<SkuId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SkuView>, CommandError>> + Send {
        let e = self.engine();
        async move { e?.list_skus(after, limit).await }
    }
    fn reserve(
        &self,
        request: ReserveRequest,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.reserve(request).await }
    }
    fn reservation(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.reservation(id).await }
    }
    fn confirm(
        &self,
        id: ReservationId,
        payment_ref: String,
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
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.extend(id, ttl_ms).await }
    }
    fn order(&self, id: OrderId) -> impl Future<Output = Result<OrderView, CommandError>> + Send {
        let e = self.engine();
        async move { e?.order(id).await }
    }
    fn list_reservations(
        &self,
        query: ReservationQuery,
    ) -> impl Future<Output = Result<(Vec<ReservationView>, Option<ListPos>), CommandError>> + Send
    {
        let e = self.engine();
        async move { e?.list_reservations(query).await }
    }
    fn list_orders(
        &self,
        query: OrderQuery,
    ) -> impl Future<Output = Result<(Vec<OrderView>, Option<ListPos>), CommandError>> + Send {
        let e = self.engine();
        async move { e?.list_orders(query).await }
    }
    fn ready(&self) -> bool {
        self.get().is_some_and(|e| e.ready())
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
