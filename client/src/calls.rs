//! Typed calls of the contract's endpoints on [`ApiClient`]: paths from validated ids, query
//! strings percent-encoded, request bodies built here, answers deserialized into [`crate::types`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flashsale_protocol::{BuyerId, OrderId, ReservationId, SkuId};
use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::{encode, ApiClient, ApiError, Replay, Reply};
use crate::types::{Cluster, Order, Page, Reservation, ReservationStatus, Sku};

/// Largest page the API serves (`limit` of the list endpoints).
pub const MAX_PAGE: u32 = 1_000;

/// The settings of `PUT /v1/skus/{sku}` (schema `PutSku`); `None` fields are not sent (the
/// server's default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SkuSettings {
    /// Display name.
    pub name: String,
    /// Price of one unit, in cents.
    pub price_cents: u64,
    /// Total stock (available + reserved + sold after the put).
    pub stock: u64,
    /// Most units one buyer may hold or buy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_buyer_limit: Option<u64>,
    /// Start of the sale window (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_starts_at: Option<String>,
    /// End of the sale window (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_ends_at: Option<String>,
    /// Default hold of a reservation, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_ttl_s: Option<u64>,
    /// Longest hold from `created_at`, extensions included, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_hold_s: Option<u64>,
    /// Most extensions of one reservation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_extensions: Option<u32>,
}

/// A reservation to make (`POST /v1/reservations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    /// Whose (required with a storefront or admin token).
    pub buyer: Option<BuyerId>,
    /// `(sku, qty)` lines, all or nothing.
    pub lines: Vec<(SkuId, u32)>,
    /// Hold in seconds (at most the lines' smallest `reservation_ttl_s`).
    pub ttl_s: Option<u64>,
    /// The `Idempotency-Key`; a fresh one ([`new_idempotency_key`]) when `None`. Reuse it to
    /// retry the same reservation safely.
    pub idempotency_key: Option<String>,
}

impl NewReservation {
    /// A reservation of `lines` for `buyer`, default hold, fresh key.
    pub fn new(buyer: BuyerId, lines: Vec<(SkuId, u32)>) -> NewReservation {
        NewReservation {
            buyer: Some(buyer),
            lines,
            ttl_s: None,
            idempotency_key: None,
        }
    }

    /// The request body.
    fn body(&self) -> Value {
        let lines: Vec<Value> = self
            .lines
            .iter()
            .map(|(sku, qty)| json!({"sku": sku.as_str(), "qty": qty}))
            .collect();
        let mut body = json!({ "lines": lines });
        if let Some(b) = &self.buyer {
            body["buyer"] = json!(b.as_str());
        }
        if let Some(t) = self.ttl_s {
            body["ttl_s"] = json!(t);
        }
        body
    }
}

/// A key unique to this process and call: `fsc-<unix ms>-<pid>-<counter>` (hex), printable
/// ASCII as the API requires.
pub fn new_idempotency_key() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("fsc-{ms:x}-{:x}-{n:x}", std::process::id())
}

/// One page of a buyer's list: whose, which, how many, from where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// The buyer (required with a storefront or admin token; a buyer JWT lists itself).
    pub buyer: Option<BuyerId>,
    /// Only this status (reservations only).
    pub status: Option<ReservationStatus>,
    /// Only reservations with a line of this SKU (reservations only).
    pub sku: Option<SkuId>,
    /// Page size (the server's default when `None`).
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// The query string, starting with `?` (empty when nothing is set).
    fn to_query(&self) -> String {
        let mut pairs: Vec<String> = Vec::new();
        if let Some(b) = &self.buyer {
            pairs.push(format!("buyer={}", encode(b.as_str())));
        }
        if let Some(s) = self.status {
            pairs.push(format!("status={}", s.as_str()));
        }
        if let Some(s) = &self.sku {
            pairs.push(format!("sku={}", encode(s.as_str())));
        }
        if let Some(n) = self.limit {
            pairs.push(format!("limit={n}"));
        }
        if let Some(c) = &self.cursor {
            pairs.push(format!("cursor={}", encode(c)));
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
}

impl ApiClient {
    async fn read<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Reply<T>, ApiError> {
        self.typed(Method::GET, path, None, None, Replay::Allowed)
            .await
    }

    /// `PUT /v1/skus/{sku}` (admin): creates (201) or replaces (200) the SKU's settings. PUT
    /// of the same settings again leaves the same SKU, so it follows the leader.
    pub async fn put_sku(
        &self,
        sku: &SkuId,
        settings: &SkuSettings,
    ) -> Result<Reply<Sku>, ApiError> {
        let path = format!("/v1/skus/{}", encode(sku.as_str()));
        let body = serde_json::to_value(settings)
            .map_err(|e| ApiError::Usage(format!("SKU settings: {e}")))?;
        self.typed(Method::PUT, &path, Some(&body), None, Replay::Allowed)
            .await
    }

    /// `GET /v1/skus/{sku}`.
    pub async fn sku(&self, sku: &SkuId) -> Result<Reply<Sku>, ApiError> {
        self.read(&format!("/v1/skus/{}", encode(sku.as_str())))
            .await
    }

    /// `GET /v1/skus?limit=&cursor=`: one page of SKUs, ordered by id.
    pub async fn list_skus(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Reply<Page<Sku>>, ApiError> {
        let mut path = format!("/v1/skus?limit={limit}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={}", encode(c)));
        }
        self.read(&path).await
    }

    /// `POST /v1/skus/{sku}/restock {qty}` (admin) with a fresh `Idempotency-Key`, so it
    /// follows the leader: the server answers a repeat with the SKU, adding nothing.
    pub async fn restock(&self, sku: &SkuId, qty: u64) -> Result<Reply<Sku>, ApiError> {
        let path = format!("/v1/skus/{}/restock", encode(sku.as_str()));
        let body = json!({ "qty": qty });
        let key = new_idempotency_key();
        self.typed(
            Method::POST,
            &path,
            Some(&body),
            Some(&key),
            Replay::Allowed,
        )
        .await
    }

    /// `POST /v1/reservations` with an `Idempotency-Key` (the given one or a fresh one), so
    /// it follows the leader.
    pub async fn reserve(&self, r: &NewReservation) -> Result<Reply<Reservation>, ApiError> {
        let key = r
            .idempotency_key
            .clone()
            .unwrap_or_else(new_idempotency_key);
        let body = r.body();
        self.typed(
            Method::POST,
            "/v1/reservations",
            Some(&body),
            Some(&key),
            Replay::Allowed,
        )
        .await
    }

    /// `GET /v1/reservations/{id}`.
    pub async fn reservation(&self, id: ReservationId) -> Result<Reply<Reservation>, ApiError> {
        self.read(&format!("/v1/reservations/{id}")).await
    }

    /// `GET /v1/reservations?buyer=&status=&sku=&limit=&cursor=`: one page of a buyer's
    /// reservations, newest first.
    pub async fn list_reservations(
        &self,
        q: &ListQuery,
    ) -> Result<Reply<Page<Reservation>>, ApiError> {
        self.read(&format!("/v1/reservations{}", q.to_query()))
            .await
    }

    /// `POST /v1/reservations/{id}/extend {ttl_s}` with a fresh `Idempotency-Key`, so it
    /// follows the leader: the server answers a repeat with the reservation, without
    /// extending it again.
    pub async fn extend(
        &self,
        id: ReservationId,
        ttl_s: u64,
    ) -> Result<Reply<Reservation>, ApiError> {
        let path = format!("/v1/reservations/{id}/extend");
        let body = json!({ "ttl_s": ttl_s });
        let key = new_idempotency_key();
        self.typed(
            Method::POST,
            &path,
            Some(&body),
            Some(&key),
            Replay::Allowed,
        )
        .await
    }

    /// `POST /v1/reservations/{id}/confirm {payment_ref}`. Confirming again with the same
    /// `payment_ref` returns the same order, so it follows the leader.
    pub async fn confirm(
        &self,
        id: ReservationId,
        payment_ref: &str,
    ) -> Result<Reply<Reservation>, ApiError> {
        let path = format!("/v1/reservations/{id}/confirm");
        let body = json!({ "payment_ref": payment_ref });
        self.typed(Method::POST, &path, Some(&body), None, Replay::Allowed)
            .await
    }

    /// `POST /v1/reservations/{id}/cancel`. Cancelling a released reservation again answers
    /// it unchanged, so it follows the leader.
    pub async fn cancel(&self, id: ReservationId) -> Result<Reply<Reservation>, ApiError> {
        let path = format!("/v1/reservations/{id}/cancel");
        self.typed(Method::POST, &path, None, None, Replay::Allowed)
            .await
    }

    /// `GET /v1/orders/{order_id}`.
    pub async fn order(&self, id: OrderId) -> Result<Reply<Order>, ApiError> {
        self.read(&format!("/v1/orders/{id}")).await
    }

    /// `GET /v1/orders?buyer=&limit=&cursor=`: one page of a buyer's orders, newest first
    /// (`status` and `sku` of the query are not sent).
    pub async fn list_orders(&self, q: &ListQuery) -> Result<Reply<Page<Order>>, ApiError> {
        let q = ListQuery {
            status: None,
            sku: None,
            ..q.clone()
        };
        self.read(&format!("/v1/orders{}", q.to_query())).await
    }

    /// `GET /v1/cluster`: this node's role in its HA group (404 `not-found` without HA).
    pub async fn cluster(&self) -> Result<Reply<Cluster>, ApiError> {
        self.read("/v1/cluster").await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn list_queries_are_encoded() {
        assert_eq!(ListQuery::default().to_query(), "");
        let q = ListQuery {
            buyer: Some(BuyerId::new("ann&co@x").unwrap()),
            status: Some(ReservationStatus::Held),
            sku: Some(SkuId::new("hat.1").unwrap()),
            limit: Some(5),
            cursor: Some("AbC_-9".into()),
        };
        assert_eq!(
            q.to_query(),
            "?buyer=ann%26co%40x&status=held&sku=hat.1&limit=5&cursor=AbC_-9"
        );
    }

    #[test]
    fn bodies_carry_only_what_is_set() {
        let s = SkuSettings {
            name: "Tee".into(),
            price_cents: 1999,
            stock: 10,
            max_hold_s: Some(1200),
            ..SkuSettings::default()
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"name": "Tee", "price_cents": 1999, "stock": 10, "max_hold_s": 1200})
        );
        let mut r = NewReservation::new(
            BuyerId::new("bob").unwrap(),
            vec![(SkuId::new("tee").unwrap(), 2)],
        );
        r.ttl_s = Some(30);
        assert_eq!(
            r.body(),
            json!({"buyer": "bob", "lines": [{"sku": "tee", "qty": 2}], "ttl_s": 30})
        );
    }

    #[test]
    fn fresh_keys_differ_and_are_printable() {
        let (a, b) = (new_idempotency_key(), new_idempotency_key());
        assert_ne!(a, b);
        assert!(
            a.bytes().all(|c| c.is_ascii_graphic()) && a.len() <= 64,
            "{a}"
        );
    }
}
