//! What the HTTP layer needs from the engine, as a trait: the real [`Engine`] implements it, and
//! tests implement it with a small in-memory fake so that handlers are tested without shards.

use std::future::Future;

use flashsale_engine::{
    CommandError, Engine, ListPos, OrderQuery, OrderView, ReservationQuery, ReservationView,
    ReserveRequest, SkuView, StatsSnapshot, StockLevel,
};
use flashsale_protocol::{OrderId, PaymentRef, ReservationId, ScopedKey, SkuId, SkuSpec};

/// The engine operations the API calls. Mirrors [`Engine`]'s methods one to one.
pub trait Inventory: Send + Sync + 'static {
    /// See [`Engine::upsert_sku`].
    fn upsert_sku(
        &self,
        spec: SkuSpec,
    ) -> impl Future<Output = Result<(SkuView, bool), CommandError>> + Send;
    /// See [`Engine::restock`].
    fn restock(
        &self,
        sku: SkuId,
        qty: u64,
        key: Option<ScopedKey>,
    ) -> impl Future<Output = Result<SkuView, CommandError>> + Send;
    /// See [`Engine::sku`].
    fn sku(&self, sku: SkuId) -> impl Future<Output = Result<SkuView, CommandError>> + Send;
    /// See [`Engine::list_skus`].
    fn list_skus(
        &self,
        after: Option<SkuId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SkuView>, CommandError>> + Send;
    /// See [`Engine::reserve`].
    fn reserve(
        &self,
        request: ReserveRequest,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send;
    /// See [`Engine::replay`].
    fn replay(
        &self,
        request: &ReserveRequest,
    ) -> impl Future<Output = Result<Option<ReservationView>, CommandError>> + Send;
    /// See [`Engine::reservation`].
    fn reservation(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send;
    /// See [`Engine::confirm`].
    fn confirm(
        &self,
        id: ReservationId,
        payment_ref: PaymentRef,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send;
    /// See [`Engine::cancel`].
    fn cancel(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send;
    /// See [`Engine::extend`].
    fn extend(
        &self,
        id: ReservationId,
        ttl_ms: u64,
        key: Option<ScopedKey>,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send;
    /// See [`Engine::order`].
    fn order(&self, id: OrderId) -> impl Future<Output = Result<OrderView, CommandError>> + Send;
    /// See [`Engine::list_reservations`].
    fn list_reservations(
        &self,
        query: ReservationQuery,
    ) -> impl Future<Output = Result<(Vec<ReservationView>, Option<ListPos>), CommandError>> + Send;
    /// See [`Engine::list_orders`].
    fn list_orders(
        &self,
        query: OrderQuery,
    ) -> impl Future<Output = Result<(Vec<OrderView>, Option<ListPos>), CommandError>> + Send;
    /// See [`Engine::ready`].
    fn ready(&self) -> bool;
    /// See [`Engine::stats`]; `None` if the implementation keeps none.
    fn stats(&self) -> Option<StatsSnapshot>;
    /// See [`Engine::stock_levels`]: every SKU's current stock (none by default).
    fn stock_levels(&self) -> impl Future<Output = Vec<StockLevel>> + Send {
        async { Vec::new() }
    }
    /// Whether reads are answered while this node stands by (a high-availability standby
    /// with a caught-up followed state); false by default.
    fn serves_standby_reads(&self) -> bool {
        false
    }
}

impl Inventory for Engine {
    fn upsert_sku(
        &self,
        spec: SkuSpec,
    ) -> impl Future<Output = Result<(SkuView, bool), CommandError>> + Send {
        Engine::upsert_sku(self, spec)
    }
    fn restock(
        &self,
        sku: SkuId,
        qty: u64,
        key: Option<ScopedKey>,
    ) -> impl Future<Output = Result<SkuView, CommandError>> + Send {
        Engine::restock(self, sku, qty, key)
    }
    fn sku(&self, sku: SkuId) -> impl Future<Output = Result<SkuView, CommandError>> + Send {
        Engine::sku(self, sku)
    }
    fn list_skus(
        &self,
        after: Option<SkuId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SkuView>, CommandError>> + Send {
        Engine::list_skus(self, after, limit)
    }
    fn reserve(
        &self,
        request: ReserveRequest,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        Engine::reserve(self, request)
    }
    fn replay(
        &self,
        request: &ReserveRequest,
    ) -> impl Future<Output = Result<Option<ReservationView>, CommandError>> + Send {
        Engine::replay(self, request)
    }
    fn reservation(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        Engine::reservation(self, id)
    }
    fn confirm(
        &self,
        id: ReservationId,
        payment_ref: PaymentRef,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        Engine::confirm(self, id, payment_ref)
    }
    fn cancel(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        Engine::cancel(self, id)
    }
    fn extend(
        &self,
        id: ReservationId,
        ttl_ms: u64,
        key: Option<ScopedKey>,
    ) -> impl Future<Output = Result<ReservationView, CommandError>> + Send {
        Engine::extend(self, id, ttl_ms, key)
    }
    fn order(&self, id: OrderId) -> impl Future<Output = Result<OrderView, CommandError>> + Send {
        Engine::order(self, id)
    }
    fn list_reservations(
        &self,
        query: ReservationQuery,
    ) -> impl Future<Output = Result<(Vec<ReservationView>, Option<ListPos>), CommandError>> + Send
    {
        Engine::list_reservations(self, query)
    }
    fn list_orders(
        &self,
        query: OrderQuery,
    ) -> impl Future<Output = Result<(Vec<OrderView>, Option<ListPos>), CommandError>> + Send {
        Engine::list_orders(self, query)
    }
    fn ready(&self) -> bool {
        Engine::ready(self)
    }
    fn stats(&self) -> Option<StatsSnapshot> {
        Some(Engine::stats(self))
    }
    fn stock_levels(&self) -> impl Future<Output = Vec<StockLevel>> + Send {
        Engine::stock_levels(self)
    }
}
