//! The API's answers as Rust types, deserialized from the schemas of `docs/openapi.yaml`
//! (`Sku`, `Reservation`, `Order`, `Line`, `Cluster` and the list pages). Times stay the
//! server's RFC 3339 strings (`2026-11-21T10:00:00.000Z`): the client compares and prints them,
//! it does no arithmetic on them.

use flashsale_protocol::{BuyerId, OrderId, ReservationId, SkuId};
use serde::{Deserialize, Serialize};

/// A SKU with its live counts (`GET /v1/skus/{sku}`, schema `Sku`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sku {
    /// The SKU's id.
    pub sku: SkuId,
    /// Display name.
    pub name: String,
    /// Price of one unit, in cents.
    pub price_cents: u64,
    /// `available + reserved + sold`. The counts are signed as in the schema (no minimum): a
    /// faulty server's negative count is read, not refused (the load generator checks them).
    pub total: i64,
    /// Units neither held nor sold.
    pub available: i64,
    /// Units held by open reservations.
    pub reserved: i64,
    /// Units sold.
    pub sold: i64,
    /// Most units one buyer may hold or buy; `None` = no limit.
    pub per_buyer_limit: Option<u64>,
    /// Start of the sale window; `None` = open now.
    pub sale_starts_at: Option<String>,
    /// End of the sale window; `None` = no end.
    pub sale_ends_at: Option<String>,
    /// Default hold of a reservation, in seconds.
    pub reservation_ttl_s: u64,
    /// Longest hold from a reservation's `created_at`, extensions included, in seconds.
    pub max_hold_s: u64,
    /// Most extensions of one reservation.
    pub max_extensions: u32,
}

/// What a reservation is now (schema `Reservation.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    /// Still holding stock.
    Held,
    /// Became an order.
    Confirmed,
    /// Cancelled (or aborted).
    Released,
    /// Its hold ran out.
    Expired,
}

impl ReservationStatus {
    /// The API's name (`held`, `confirmed`, `released`, `expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Confirmed => "confirmed",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
        }
    }
}

/// Why a reservation stopped holding stock without becoming an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseReason {
    /// `POST /v1/reservations/{id}/cancel`.
    Cancelled,
    /// The hold ran out.
    Expired,
    /// A multi-shard reservation that could not complete.
    Aborted,
}

impl ReleaseReason {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::Cancelled => "cancelled",
            ReleaseReason::Expired => "expired",
            ReleaseReason::Aborted => "aborted",
        }
    }
}

/// One line of a reservation or order (schema `Line`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The SKU.
    pub sku: SkuId,
    /// Units.
    pub qty: u64,
    /// Price of one unit when reserved, in cents.
    pub unit_price_cents: u64,
}

/// A reservation (schema `Reservation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// `res_…`.
    pub id: ReservationId,
    /// What it is now.
    pub status: ReservationStatus,
    /// Whose.
    pub buyer: BuyerId,
    /// What it holds.
    pub lines: Vec<Line>,
    /// Sum of qty × unit price, in cents.
    pub total_cents: u64,
    /// When it was made.
    pub created_at: String,
    /// When the hold ends (or ended).
    pub expires_at: String,
    /// The order it became, once confirmed.
    pub order_id: Option<OrderId>,
    /// Why it was released, once released or expired.
    pub release_reason: Option<ReleaseReason>,
    /// How many times its hold was extended.
    pub extensions: u32,
}

/// An order: a confirmed reservation (schema `Order`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// `ord_…`.
    pub id: OrderId,
    /// The reservation it confirmed.
    pub reservation_id: ReservationId,
    /// Whose.
    pub buyer: BuyerId,
    /// What was bought.
    pub lines: Vec<Line>,
    /// Sum of qty × unit price, in cents.
    pub total_cents: u64,
    /// The storefront's payment reference.
    pub payment_ref: String,
    /// When it was confirmed.
    pub created_at: String,
}

/// One page of a list (`GET /v1/skus`, `/v1/reservations`, `/v1/orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A node's role in an HA group (schema `Cluster.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the lease and serves writes.
    Leader,
    /// Follows the log; refuses writes with 503 `not-leader`.
    Standby,
}

/// What a node says about its HA group (`GET /v1/cluster`, schema `Cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// This node's id.
    pub node_id: String,
    /// Leader or standby.
    pub role: Role,
    /// The lease epoch.
    pub epoch: u64,
    /// Where the leader serves (`None` while nobody holds the lease).
    pub leader_url: Option<String>,
    /// This node's position in the log.
    pub log_position: u64,
    /// How far this node is behind the leader, in log records.
    pub lag: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples_deserialize() {
        let r: Reservation = serde_json::from_value(serde_json::json!({
            "id": "res_00010000000000a1", "status": "released", "buyer": "bob",
            "lines": [{"sku": "tee", "qty": 2, "unit_price_cents": 1999}],
            "total_cents": 3998, "created_at": "2026-11-21T10:00:00.000Z",
            "expires_at": "2026-11-21T10:10:00.000Z", "order_id": null,
            "release_reason": "cancelled", "extensions": 1
        }))
        .unwrap();
        assert_eq!(r.status, ReservationStatus::Released);
        assert_eq!(r.release_reason, Some(ReleaseReason::Cancelled));
        assert_eq!(r.lines[0].sku.as_str(), "tee");
        let p: Page<Order> =
            serde_json::from_value(serde_json::json!({"items": [], "next_cursor": null})).unwrap();
        assert!(p.items.is_empty() && p.next_cursor.is_none());
        let c: Cluster = serde_json::from_value(serde_json::json!({
            "node_id": "a", "role": "standby", "epoch": 3, "leader_url": "http://127.0.0.1:1",
            "log_position": 10, "lag": 0
        }))
        .unwrap();
        assert_eq!(c.role, Role::Standby);
        // A status the schema does not list is refused, not guessed.
        let bad = serde_json::json!({"node_id": "a", "role": "boss", "epoch": 0,
            "leader_url": null, "log_position": 0, "lag": 0});
        assert!(serde_json::from_value::<Cluster>(bad).is_err());
    }
}
