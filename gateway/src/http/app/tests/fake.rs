//! An in-memory fake of the engine: enough of its behaviour (stock counts, idempotency keys
//! by [`ScopedKey`], confirm/cancel states) to test handlers without shards or a log.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use flashsale_engine::{
    CommandError, ListPos, OrderQuery, OrderView, ReservationQuery, ReservationStatus,
    ReservationView, ReserveRequest, SkuView, StatsSnapshot,
};
use flashsale_protocol::{Line, OrderId, PaymentRef, ReservationId, ScopedKey, SkuId, SkuSpec};

use crate::http::inventory::Inventory;

/// The fake's data.
#[derive(Default)]
pub(super) struct State {
    /// SKUs by id.
    pub skus: BTreeMap<SkuId, SkuView>,
    /// Reservations by id.
    pub reservations: HashMap<ReservationId, ReservationView>,
    /// Orders by id.
    pub orders: HashMap<OrderId, OrderView>,
    /// Idempotency keys (scoped to their caller) → the request's lines and its reservation.
    pub keys: HashMap<ScopedKey, (Vec<(SkuId, u32)>, ReservationId)>,
    /// Last reservation counter issued.
    pub next: u64,
}

/// The fake engine.
#[derive(Default)]
pub(super) struct Fake {
    /// Its data.
    pub state: Mutex<State>,
    /// When set, `ready()` is false.
    pub not_ready: AtomicBool,
    /// When set, every engine call fails with this error.
    pub fail_with: Mutex<Option<CommandError>>,
    /// The `limit` of every `list_skus` call, in order.
    pub list_limits: Mutex<Vec<usize>>,
    /// When set, it answers reads while the node stands by (a caught-up HA standby).
    pub standby_reads: AtomicBool,
}

impl Fake {
    /// The injected failure, if any.
    fn injected(&self) -> Result<(), CommandError> {
        match self.fail_with.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Inventory for Fake {
    async fn upsert_sku(&self, spec: SkuSpec) -> Result<(SkuView, bool), CommandError> {
        self.injected()?;
        let mut s = self.state.lock().unwrap();
        let created = !s.skus.contains_key(&spec.sku);
        let v = SkuView {
            sku: spec.sku.clone(),
            name: spec.name,
            price_cents: spec.price_cents,
            total: spec.stock,
            available: spec.stock,
            reserved: 0,
            sold: 0,
            per_buyer_limit: spec.per_buyer_limit,
            sale_starts_at_ms: spec.sale_starts_at_ms,
            sale_ends_at_ms: spec.sale_ends_at_ms,
            reservation_ttl_ms: spec.reservation_ttl_ms,
            max_hold_ms: spec.max_hold_ms,
            max_extensions: spec.max_extensions,
        };
        s.skus.insert(spec.sku, v.clone());
        Ok((v, created))
    }
    async fn restock(
        &self,
        sku: SkuId,
        qty: u64,
        _key: Option<ScopedKey>,
    ) -> Result<SkuView, CommandError> {
        self.injected()?;
        let mut s = self.state.lock().unwrap();
        let v = s.skus.get_mut(&sku).ok_or(CommandError::SkuNotFound(sku))?;
        v.total += qty;
        v.available += qty;
        Ok(v.clone())
    }
    async fn sku(&self, sku: SkuId) -> Result<SkuView, CommandError> {
        self.injected()?;
        let s = self.state.lock().unwrap();
        s.skus
            .get(&sku)
            .cloned()
            .ok_or(CommandError::SkuNotFound(sku))
    }
    async fn list_skus(
        &self,
        after: Option<SkuId>,
        limit: usize,
    ) -> Result<Vec<SkuView>, CommandError> {
        self.injected()?;
        self.list_limits.lock().unwrap().push(limit);
        let s = self.state.lock().unwrap();
        Ok(s.skus
            .values()
            .filter(|v| after.as_ref().is_none_or(|a| &v.sku > a))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn replay(&self, r: &ReserveRequest) -> Result<Option<ReservationView>, CommandError> {
        self.injected()?;
        let s = self.state.lock().unwrap();
        let Some(k) = &r.idempotency_key else {
            return Ok(None);
        };
        match s.keys.get(k) {
            None => Ok(None),
            Some((lines, id)) if *lines == r.lines => Ok(Some(s.reservations[id].clone())),
            Some(_) => Err(CommandError::IdempotencyMismatch),
        }
    }
    async fn reserve(&self, r: ReserveRequest) -> Result<ReservationView, CommandError> {
        self.injected()?;
        let mut s = self.state.lock().unwrap();
        if let Some(k) = &r.idempotency_key {
            if let Some((lines, id)) = s.keys.get(k) {
                return if *lines == r.lines {
                    Ok(s.reservations[id].clone())
                } else {
                    Err(CommandError::IdempotencyMismatch)
                };
            }
        }
        let mut out = Vec::new();
        for (sku, qty) in &r.lines {
            let v = s
                .skus
                .get(sku)
                .ok_or_else(|| CommandError::SkuNotFound(sku.clone()))?;
            if v.available < u64::from(*qty) {
                return Err(CommandError::SoldOut {
                    sku: sku.clone(),
                    available: v.available,
                });
            }
            out.push(Line {
                sku: sku.clone(),
                qty: *qty,
                unit_price_cents: v.price_cents,
            });
        }
        for (sku, qty) in &r.lines {
            let v = s.skus.get_mut(sku).unwrap();
            v.available -= u64::from(*qty);
            v.reserved += u64::from(*qty);
        }
        s.next += 1;
        let id = ReservationId::compose(0, s.next);
        let view = ReservationView {
            id,
            status: ReservationStatus::Held,
            buyer: r.buyer,
            lines: out,
            created_at_ms: 1_795_255_200_000,
            expires_at_ms: 1_795_255_800_000,
            order: None,
            release_reason: None,
            extensions: 0,
        };
        s.reservations.insert(id, view.clone());
        if let Some(k) = r.idempotency_key {
            s.keys.insert(k, (r.lines, id));
        }
        Ok(view)
    }
    async fn reservation(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        self.injected()?;
        let s = self.state.lock().unwrap();
        s.reservations
            .get(&id)
            .cloned()
            .ok_or(CommandError::ReservationNotFound(id))
    }
    async fn confirm(
        &self,
        id: ReservationId,
        payment_ref: PaymentRef,
    ) -> Result<ReservationView, CommandError> {
        self.injected()?;
        let mut s = self.state.lock().unwrap();
        let order = OrderId::compose(0, id.counter());
        let v = s
            .reservations
            .get_mut(&id)
            .ok_or(CommandError::ReservationNotFound(id))?;
        if v.status != ReservationStatus::Held {
            return Err(CommandError::InvalidState {
                id,
                status: v.status,
            });
        }
        v.status = ReservationStatus::Confirmed;
        v.order = Some(order);
        let v = v.clone();
        s.orders.insert(
            order,
            OrderView {
                id: order,
                reservation: id,
                buyer: v.buyer.clone(),
                lines: v.lines.clone(),
                total_cents: v
                    .lines
                    .iter()
                    .map(|l| u64::from(l.qty) * l.unit_price_cents)
                    .sum(),
                payment_ref: payment_ref.into(),
                created_at_ms: 1_795_255_300_000,
            },
        );
        Ok(v)
    }
    async fn cancel(&self, id: ReservationId) -> Result<ReservationView, CommandError> {
        self.injected()?;
        let mut s = self.state.lock().unwrap();
        let v = s
            .reservations
            .get_mut(&id)
            .ok_or(CommandError::ReservationNotFound(id))?;
        if v.status != ReservationStatus::Held {
            return Err(CommandError::InvalidState {
                id,
                status: v.status,
            });
        }
        v.status = ReservationStatus::Released;
        v.release_reason = Some(flashsale_protocol::ReleaseReason::Cancelled);
        Ok(v.clone())
    }
    async fn extend(
        &self,
        id: ReservationId,
        ttl_ms: u64,
        _key: Option<ScopedKey>,
    ) -> Result<ReservationView, CommandError> {
        self.injected()?;
        let mut s = self.state.lock().unwrap();
        let v = s
            .reservations
            .get_mut(&id)
            .ok_or(CommandError::ReservationNotFound(id))?;
        if v.status != ReservationStatus::Held {
            return Err(CommandError::InvalidState {
                id,
                status: v.status,
            });
        }
        v.expires_at_ms = v.expires_at_ms.max(v.created_at_ms + ttl_ms);
        v.extensions += 1;
        Ok(v.clone())
    }
    async fn order(&self, id: OrderId) -> Result<OrderView, CommandError> {
        self.injected()?;
        let s = self.state.lock().unwrap();
        s.orders
            .get(&id)
            .cloned()
            .ok_or(CommandError::OrderNotFound(id.to_string()))
    }
    async fn list_reservations(
        &self,
        q: ReservationQuery,
    ) -> Result<(Vec<ReservationView>, Option<ListPos>), CommandError> {
        self.injected()?;
        let s = self.state.lock().unwrap();
        let found = s.reservations.values().filter(|v| {
            v.buyer == q.buyer
                && q.status.is_none_or(|st| st == v.status)
                && q.sku
                    .as_ref()
                    .is_none_or(|k| v.lines.iter().any(|l| &l.sku == k))
        });
        Ok(newest_page(
            found.map(|v| ((v.created_at_ms, v.id), v.clone())),
            q.before,
            q.limit,
        ))
    }
    async fn list_orders(
        &self,
        q: OrderQuery,
    ) -> Result<(Vec<OrderView>, Option<ListPos>), CommandError> {
        self.injected()?;
        let s = self.state.lock().unwrap();
        let found = s.orders.values().filter(|o| o.buyer == q.buyer);
        Ok(newest_page(
            found.map(|o| ((o.created_at_ms, o.reservation), o.clone())),
            q.before,
            q.limit,
        ))
    }
    fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::Relaxed)
    }
    fn serves_standby_reads(&self) -> bool {
        self.standby_reads.load(Ordering::Relaxed)
    }
    fn stats(&self) -> Option<StatsSnapshot> {
        Some(StatsSnapshot {
            reservations_held: 1,
            ..Default::default()
        })
    }
}

/// Items strictly before `before`, newest first, at most `limit`, and the position of the
/// last one when more remain (the engine's paging, without its scan bound).
fn newest_page<T>(
    items: impl Iterator<Item = (ListPos, T)>,
    before: Option<ListPos>,
    limit: usize,
) -> (Vec<T>, Option<ListPos>) {
    let mut all: Vec<(ListPos, T)> = items
        .filter(|(p, _)| before.is_none_or(|b| *p < b))
        .collect();
    all.sort_unstable_by_key(|(p, _)| std::cmp::Reverse(*p));
    let more = all.len() > limit;
    all.truncate(limit);
    let next = if more {
        all.last().map(|(p, _)| *p)
    } else {
        None
    };
    (all.into_iter().map(|(_, t)| t).collect(), next)
}
