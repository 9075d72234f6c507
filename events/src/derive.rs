//! Deriving outgoing events from committed log records and the [`Facts`] the shard's
//! [`crate::ledger::Ledger`] learned from them: pure, so the same record folded from the same
//! ledger always yields the same events (and ids).

use flashsale_protocol::{Event, LogRecord, ReleaseReason};
use serde_json::json;

use crate::kind::{EventFilter, EventType};
use crate::ledger::Facts;
use crate::outgoing::{rfc3339_ms, OutEvent};

/// Appends the events of one log record to `out`: its own event (none for a hold extension)
/// with id `evt_<shard>_<seq>`, then one `sku.sold_out` per SKU the record sold out, with ids
/// `evt_<shard>_<seq>_<n>` (n = 1, 2, … in line order).
pub fn derive(record: &LogRecord, facts: &Facts, out: &mut Vec<OutEvent>) {
    derive_filtered(record, facts, &EventFilter::All, out);
}

/// Like [`derive`], keeping only the events `filter` accepts; the bodies of the others are
/// never built (a destination on a few types skips the JSON of every other record).
pub fn derive_filtered(
    record: &LogRecord,
    facts: &Facts,
    filter: &EventFilter,
    out: &mut Vec<OutEvent>,
) {
    if own_kind(&record.event).is_some_and(|k| filter.accepts(k)) {
        out.extend(derive_own(record, facts));
    }
    if facts.sold_out.is_empty() || !filter.accepts(EventType::SkuSoldOut) {
        return;
    }
    let at_ms = record_at_ms(&record.event);
    for (n, (sku, units)) in facts.sold_out.iter().enumerate() {
        out.push(OutEvent {
            id: format!("{}_{}", OutEvent::id_for(record.shard, record.seq), n + 1),
            kind: EventType::SkuSoldOut,
            at_ms,
            key: sku.to_string(),
            data: json!({
                "sku": sku,
                "stock": units.total,
                "reserved": units.reserved,
                "sold": units.sold,
            }),
        });
    }
}

/// The type of the record's own event (`None` for a hold extension), as [`derive`] gives it.
fn own_kind(event: &Event) -> Option<EventType> {
    match event {
        Event::SkuUpserted { .. } | Event::Restocked { .. } => Some(EventType::SkuUpdated),
        Event::Reserved { .. } => Some(EventType::ReservationHeld),
        Event::Confirmed { .. } => Some(EventType::ReservationConfirmed),
        Event::Extended { .. } => None,
        Event::Released { reason, .. } => Some(match reason {
            ReleaseReason::Expired => EventType::ReservationExpired,
            ReleaseReason::Cancelled | ReleaseReason::Aborted => EventType::ReservationReleased,
        }),
    }
}

/// When the record's fact was logged, Unix ms.
fn record_at_ms(event: &Event) -> u64 {
    match event {
        Event::SkuUpserted { at_ms, .. }
        | Event::Restocked { at_ms, .. }
        | Event::Reserved { at_ms, .. }
        | Event::Confirmed { at_ms, .. }
        | Event::Released { at_ms, .. }
        | Event::Extended { at_ms, .. } => *at_ms,
    }
}

/// The record's own event.
fn derive_own(record: &LogRecord, facts: &Facts) -> Option<OutEvent> {
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
        Event::Restocked {
            sku, qty, at_ms, ..
        } => (
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
        } => {
            let mut data = json!({
                "reservation_id": rid.to_string(),
                "order_id": order.to_string(),
                "payment_ref": payment_ref,
            });
            // The order as it was held (absent only if the ledger did not see the hold).
            if let (Some(h), Some(obj)) = (&facts.confirmed, data.as_object_mut()) {
                let total_cents = h.lines.iter().fold(0u64, |t, l| {
                    t.saturating_add(u64::from(l.qty).saturating_mul(l.unit_price_cents))
                });
                obj.insert("buyer".into(), json!(h.buyer));
                obj.insert(
                    "lines".into(),
                    json!(h
                        .lines
                        .iter()
                        .map(|l| json!({
                            "sku": l.sku,
                            "qty": l.qty,
                            "unit_price_cents": l.unit_price_cents,
                        }))
                        .collect::<Vec<_>>()),
                );
                obj.insert("total_cents".into(), json!(total_cents));
                obj.insert("partial".into(), json!(h.partial));
            }
            (
                EventType::ReservationConfirmed,
                *at_ms,
                rid.to_string(),
                data,
            )
        }
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
    use crate::ledger::{Held, HeldLine, SkuUnits};
    use flashsale_protocol::{BuyerId, Line, OrderId, ReservationId, SkuId};

    fn rec(seq: u64, event: Event) -> LogRecord {
        LogRecord {
            shard: 2,
            seq,
            event,
        }
    }

    fn one(record: &LogRecord, facts: &Facts) -> Option<OutEvent> {
        let mut out = Vec::new();
        derive(record, facts, &mut out);
        assert!(out.len() <= 1 + facts.sold_out.len());
        out.into_iter().next()
    }

    #[test]
    fn reservation_lifecycle_maps_to_types_with_stable_ids() {
        let none = Facts::default();
        let rid = ReservationId::compose(2, 7);
        let sku = SkuId::new("tee").unwrap_or_else(|_| unreachable!());
        let buyer = BuyerId::new("b1").unwrap_or_else(|_| unreachable!());
        let held = one(
            &rec(
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
            ),
            &none,
        );
        let held = held.unwrap_or_else(|| unreachable!());
        assert_eq!(held.id, "evt_2_10");
        assert_eq!(held.kind, EventType::ReservationHeld);
        assert_eq!(held.data["lines"][0]["qty"], 2);
        assert_eq!(held.key, rid.to_string());
        let confirm = rec(
            11,
            Event::Confirmed {
                id: rid,
                order: OrderId::compose(2, 1),
                payment_ref: "pay-1".into(),
                at_ms: 2_000,
            },
        );
        let facts = Facts {
            confirmed: Some(Held {
                buyer: BuyerId::new("b1").unwrap_or_else(|_| unreachable!()),
                lines: vec![HeldLine {
                    sku: SkuId::new("tee").unwrap_or_else(|_| unreachable!()),
                    qty: 2,
                    unit_price_cents: 500,
                }],
                partial: false,
            }),
            sold_out: Vec::new(),
        };
        let confirmed = one(&confirm, &facts).unwrap_or_else(|| unreachable!());
        assert_eq!(confirmed.kind, EventType::ReservationConfirmed);
        assert_eq!(confirmed.data["payment_ref"], "pay-1");
        assert_eq!(confirmed.data["buyer"], "b1");
        assert_eq!(confirmed.data["lines"][0]["sku"], "tee");
        assert_eq!(confirmed.data["lines"][0]["qty"], 2);
        assert_eq!(confirmed.data["total_cents"], 1000);
        // Without the hold on the ledger: the order without its lines.
        let bare = one(&confirm, &none).unwrap_or_else(|| unreachable!());
        assert!(bare.data.get("lines").is_none());
        assert_eq!(confirmed.key, held.key);
        for (reason, kind) in [
            (ReleaseReason::Expired, EventType::ReservationExpired),
            (ReleaseReason::Cancelled, EventType::ReservationReleased),
            (ReleaseReason::Aborted, EventType::ReservationReleased),
        ] {
            let e = one(
                &rec(
                    12,
                    Event::Released {
                        id: rid,
                        reason,
                        at_ms: 3_000,
                    },
                ),
                &none,
            )
            .unwrap_or_else(|| unreachable!());
            assert_eq!(e.kind, kind);
            assert_eq!(e.id, "evt_2_12");
        }
    }

    /// A restock of SKU `a` logged at `seq` (at 5 s) whose facts say `sold_out` SKUs sold out
    /// (4 in stock, 3 reserved, 1 sold).
    fn restock_selling_out(seq: u64, sold_out: &[&str]) -> (LogRecord, Facts) {
        let record = rec(
            seq,
            Event::Restocked {
                sku: SkuId::new("a").unwrap_or_else(|_| unreachable!()),
                qty: 1,
                at_ms: 5_000,
                key: None,
            },
        );
        let units = SkuUnits {
            total: 4,
            reserved: 3,
            sold: 1,
        };
        let facts = Facts {
            confirmed: None,
            sold_out: sold_out
                .iter()
                .map(|s| (SkuId::new(s).unwrap_or_else(|_| unreachable!()), units))
                .collect(),
        };
        (record, facts)
    }

    #[test]
    fn a_sell_out_adds_one_event_per_sku_after_the_records_own() {
        let (record, facts) = restock_selling_out(20, &["a", "b"]);
        let mut out = Vec::new();
        derive(&record, &facts, &mut out);
        let ids: Vec<&str> = out.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt_2_20", "evt_2_20_1", "evt_2_20_2"]);
        assert_eq!(out[1].kind, EventType::SkuSoldOut);
        assert_eq!(out[1].key, "a");
        assert_eq!(out[2].data["sku"], "b");
        assert_eq!(out[2].data["stock"], 4);
        assert_eq!(out[2].data["sold"], 1);
        assert_eq!(out[2].at_ms, 5_000);
    }

    #[test]
    fn a_filtered_derive_is_the_derive_with_the_other_types_left_out() {
        let (record, facts) = restock_selling_out(21, &["a"]);
        let mut all = Vec::new();
        derive(&record, &facts, &mut all);
        assert_eq!(all.len(), 2);
        let parse = |names: &[&str]| EventFilter::parse(names).unwrap_or(EventFilter::All);
        for filter in [
            parse(&["*"]),
            parse(&["sku.updated"]),
            parse(&["sku.sold_out"]),
            parse(&["reservation.held", "sku.sold_out"]),
            parse(&["reservation.held"]),
        ] {
            let mut got = Vec::new();
            derive_filtered(&record, &facts, &filter, &mut got);
            let want: Vec<&OutEvent> = all.iter().filter(|e| filter.accepts(e.kind)).collect();
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "{filter:?}");
            // The type known without building the body is the type of the built event.
            assert_eq!(own_kind(&record.event), Some(all[0].kind));
        }
    }
}
