//! Typed calls of the contract's endpoints on [`ApiClient`]: paths from validated ids, query
//! strings percent-encoded, request bodies built here.

use flashsale_protocol::{BuyerId, OrderId, ReservationId, SkuId};
use hyper::Method;
use serde_json::{json, Value};

use crate::api::{encode, Answer, ApiClient, ApiError};

/// A reservation status to filter a buyer's list by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatusFilter {
    /// Still holding stock.
    Held,
    /// Became an order.
    Confirmed,
    /// Cancelled.
    Released,
    /// Its hold ran out.
    Expired,
}

impl ReservationStatusFilter {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatusFilter::Held => "held",
            ReservationStatusFilter::Confirmed => "confirmed",
            ReservationStatusFilter::Released => "released",
            ReservationStatusFilter::Expired => "expired",
        }
    }
}

/// One page of a buyer's list: whose, which, how many, from where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// The buyer (required with a storefront or admin token; a buyer JWT lists itself).
    pub buyer: Option<BuyerId>,
    /// Only this status (reservations only).
    pub status: Option<ReservationStatusFilter>,
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
    /// `PUT /v1/skus/{sku}` with the SKU's settings (a JSON object as the API takes it).
    pub async fn put_sku(&self, sku: &SkuId, settings: &Value) -> Result<Answer, ApiError> {
        let path = format!("/v1/skus/{}", encode(sku.as_str()));
        self.send(Method::PUT, &path, Some(settings)).await
    }

    /// `GET /v1/skus/{sku}`.
    pub async fn sku(&self, sku: &SkuId) -> Result<Answer, ApiError> {
        self.get(&format!("/v1/skus/{}", encode(sku.as_str())))
            .await
    }

    /// `GET /v1/skus?limit=&cursor=`: one page of SKUs.
    pub async fn list_skus(&self, limit: u32, cursor: Option<&str>) -> Result<Answer, ApiError> {
        let mut path = format!("/v1/skus?limit={limit}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={}", encode(c)));
        }
        self.get(&path).await
    }

    /// `POST /v1/skus/{sku}/restock {qty}`.
    pub async fn restock(&self, sku: &SkuId, qty: u64) -> Result<Answer, ApiError> {
        let path = format!("/v1/skus/{}/restock", encode(sku.as_str()));
        self.send(Method::POST, &path, Some(&json!({ "qty": qty })))
            .await
    }

    /// `POST /v1/reservations {buyer, lines, ttl_s?}` (no `Idempotency-Key`).
    pub async fn reserve(
        &self,
        buyer: &BuyerId,
        lines: &[(SkuId, u32)],
        ttl_s: Option<u64>,
    ) -> Result<Answer, ApiError> {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(sku, qty)| json!({"sku": sku.as_str(), "qty": qty}))
            .collect();
        let mut body = json!({"buyer": buyer.as_str(), "lines": lines});
        if let Some(t) = ttl_s {
            body["ttl_s"] = json!(t);
        }
        self.send(Method::POST, "/v1/reservations", Some(&body))
            .await
    }

    /// `GET /v1/reservations/{id}`.
    pub async fn reservation(&self, id: ReservationId) -> Result<Answer, ApiError> {
        self.get(&format!("/v1/reservations/{id}")).await
    }

    /// `GET /v1/reservations?buyer=&status=&sku=&limit=&cursor=`: one page of a buyer's
    /// reservations, newest first.
    pub async fn list_reservations(&self, q: &ListQuery) -> Result<Answer, ApiError> {
        self.get(&format!("/v1/reservations{}", q.to_query())).await
    }

    /// `POST /v1/reservations/{id}/extend {ttl_s}`.
    pub async fn extend(&self, id: ReservationId, ttl_s: u64) -> Result<Answer, ApiError> {
        let path = format!("/v1/reservations/{id}/extend");
        self.send(Method::POST, &path, Some(&json!({ "ttl_s": ttl_s })))
            .await
    }

    /// `POST /v1/reservations/{id}/confirm {payment_ref}`.
    pub async fn confirm(&self, id: ReservationId, payment_ref: &str) -> Result<Answer, ApiError> {
        let path = format!("/v1/reservations/{id}/confirm");
        let body = json!({ "payment_ref": payment_ref });
        self.send(Method::POST, &path, Some(&body)).await
    }

    /// `POST /v1/reservations/{id}/cancel`.
    pub async fn cancel(&self, id: ReservationId) -> Result<Answer, ApiError> {
        let path = format!("/v1/reservations/{id}/cancel");
        self.send(Method::POST, &path, None).await
    }

    /// `GET /v1/orders/{order_id}`.
    pub async fn order(&self, id: OrderId) -> Result<Answer, ApiError> {
        self.get(&format!("/v1/orders/{id}")).await
    }

    /// `GET /v1/orders?buyer=&limit=&cursor=`: one page of a buyer's orders, newest first
    /// (`status` and `sku` of the query are not sent).
    pub async fn list_orders(&self, q: &ListQuery) -> Result<Answer, ApiError> {
        let q = ListQuery {
            status: None,
            sku: None,
            ..q.clone()
        };
        self.get(&format!("/v1/orders{}", q.to_query())).await
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
            status: Some(ReservationStatusFilter::Held),
            sku: Some(SkuId::new("hat.1").unwrap()),
            limit: Some(5),
            cursor: Some("AbC_-9".into()),
        };
        assert_eq!(
            q.to_query(),
            "?buyer=ann%26co%40x&status=held&sku=hat.1&limit=5&cursor=AbC_-9"
        );
    }
}
