//! Deriving outgoing events from committed log records: pure, no state, so the same record
//! always yields the same event (and id).

use flashsale_protocol::{Event, LogRecord, ReleaseReason};
use serde_json::json;

use crate::kind::EventType;
use crate::outgoing::{rfc3339_ms, OutEvent};

/// The event of one log record (each record yields at most one; a hold extension none).
pub fn derive(record: &LogRecord) -> Option<OutEvent> {
    let id = OutEvent::id_for(record.shard, record.seq);
    let (kind, at_ms, key, data) = match &record.event {
        Event::SkuUpserted { spec, at_ms } => (
            EventType::SkuUpdated,
            *at_ms,
            spec.sku.to_string(),
            json!({
                "sku": spec.sku.as_str(),
                "change": "settings",
                "name": spec.name,
                "price_cents": spec.price_cents,
                "stock": spec.stock,
                "per_buyer_limit": spec.per_buyer_limit,
                "sale_starts_at": spec.sale_starts_at_ms.map(rfc3339_ms),
                "sale_ends_at": spec.sale_ends_at_ms.map(rfc3339_ms),
                "reservation_ttl_s": spec.reservation_ttl_ms / 1000,
            }),
        ),
        Event::Restocked { sku, qty, at_ms } => (
            EventType::SkuUpdated,
            *at_ms,
            sku.to_string(),
            json!({"sku": sku.as_str(), "change": "restocked", "qty_added": qty}),
        ),
        Event::Reserved {
            id: rid,
            buyer,
            lines,
            expires_at_ms,
            group,
            at_ms,
            ..
        } => (
            EventType::ReservationHeld,
            *at_ms,
            rid.to_string(),
            json!({
                "reservation_id": rid.to_string(),
                "buyer": buyer.as_str(),
                "lines": lines.iter().map(|l| json!({
                    "sku": l.sku.as_str(),
                    "qty": l.qty,
                    "unit_price_cents": l.unit_price_cents,
                })).collect::<Vec<_>>(),
                "expires_at": rfc3339_ms(*expires_at_ms),
                "partial": group.is_some(),
            }),
        ),
        Event::Confirmed {
            id: rid,
            order,
            payment_ref,
            at_ms,
        } => (
            EventType::ReservationConfirmed,
            *at_ms,
            rid.to_string(),
            json!({
                "reservation_id": rid.to_string(),
                "order_id": order.to_string(),
                "payment_ref": payment_ref,
            }),
        ),
        // A hold's expiry moved later: no event type of the contract carries it (the new
        // `expires_at` shows in the reservation's later events and in its GET).
        Event::Extended { .. } => return None,
        Event::Released {
            id: rid,
            reason,
            at_ms,
        } => {
            let (kind, reason) = match reason {
                ReleaseReason::Expired => (EventType::ReservationExpired, "expired"),
                ReleaseReason::Cancelled => (EventType::ReservationReleased, "cancelled"),
                ReleaseReason::Aborted => (EventType::ReservationReleased, "aborted"),
            };
            (
                kind,
                *at_ms,
                rid.to_string(),
                json!({"reservation_id": rid.to_string(), "reason": reason}),
            )
        }
    };
    Some(OutEvent {
        id,
        kind,
        at_ms,
        key,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale_protocol::{BuyerId, Line, OrderId, ReservationId, SkuId};

    fn rec(seq: u64, event: Event) -> LogRecord {
        LogRecord {
            shard: 2,
            seq,
            event,
        }
    }

    #[test]
    fn reservation_lifecycle_maps_to_types_with_stable_ids() {
        let rid = ReservationId::compose(2, 7);
        let sku = SkuId::new("tee").unwrap_or_else(|_| unreachable!());
        let buyer = BuyerId::new("b1").unwrap_or_else(|_| unreachable!());
        let held = derive(&rec(
            10,
            Event::Reserved {
                id: rid,
                buyer,
                lines: vec![Line {
                    sku,
                    qty: 2,
                    unit_price_cents: 500,
                }],
                expires_at_ms: 60_000,
                idempotency_key: None,
                request_hash: 0,
                group: None,
                at_ms: 1_000,
            },
        ));
        let held = held.unwrap_or_else(|| unreachable!());
        assert_eq!(held.id, "evt_2_10");
        assert_eq!(held.kind, EventType::ReservationHeld);
        assert_eq!(held.data["lines"][0]["qty"], 2);
        assert_eq!(held.key, rid.to_string());
        let confirmed = derive(&rec(
            11,
            Event::Confirmed {
                id: rid,
                order: OrderId::compose(2, 1),
                payment_ref: "pay-1".into(),
                at_ms: 2_000,
            },
        ))
        .unwrap_or_else(|| unreachable!());
        assert_eq!(confirmed.kind, EventType::ReservationConfirmed);
        assert_eq!(confirmed.data["payment_ref"], "pay-1");
        assert_eq!(confirmed.key, held.key);
        for (reason, kind) in [
            (ReleaseReason::Expired, EventType::ReservationExpired),
            (ReleaseReason::Cancelled, EventType::ReservationReleased),
            (ReleaseReason::Aborted, EventType::ReservationReleased),
        ] {
            let e = derive(&rec(
                12,
                Event::Released {
                    id: rid,
                    reason,
                    at_ms: 3_000,
                },
            ))
            .unwrap_or_else(|| unreachable!());
            assert_eq!(e.kind, kind);
            assert_eq!(e.id, "evt_2_12");
        }
    }
}
