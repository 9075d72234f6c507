//! The stock ledger of one shard: what no single log record carries but some events need —
//! each SKU's total, reserved and sold units (for `sku.sold_out`) and each held reservation's
//! buyer and lines (for the order in `reservation.confirmed`). It is a pure fold of the
//! committed log, so folding the same records from the same start gives the same facts, and
//! the events derived from them keep their ids across retries and restarts.
//!
//! A ledger folded from the first record of the log is *complete*. One started later (a data
//! dir whose log was compacted before this version kept a ledger) knows only the SKUs and
//! reservations whose records it saw; it emits no `sku.sold_out` for SKUs it does not know
//! and confirms reservations it does not know without their lines.

use std::collections::HashMap;

use flashsale_protocol::{BuyerId, Event, Line, LogRecord, SkuId};
use serde::{Deserialize, Serialize};

/// Units of one SKU on the ledger (`available = total - reserved - sold`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuUnits {
    /// Total stock (set by the SKU's settings, raised by restocks).
    pub total: u64,
    /// Units held by reservations not yet confirmed or released.
    pub reserved: u64,
    /// Units of confirmed reservations.
    pub sold: u64,
}

impl SkuUnits {
    /// Units that can still be reserved.
    pub fn available(&self) -> u64 {
        self.total
            .saturating_sub(self.reserved)
            .saturating_sub(self.sold)
    }
}

/// One line of a held reservation, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLine {
    /// The SKU: the ledger's own handle when it knows the SKU (one shared string for every
    /// hold of it), else the record's. Stored as its text.
    pub sku: SkuId,
    /// Units.
    pub qty: u32,
    /// Unit price when reserved, in cents.
    pub unit_price_cents: u64,
}

/// A reservation (part) held on this shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Who holds it: the record's handle, shared, not copied. Stored as its text.
    pub buyer: BuyerId,
    /// Its lines on this shard.
    pub lines: Vec<HeldLine>,
    /// Part of a reservation spanning several shards.
    pub partial: bool,
}

/// What the ledger learned from one record, beyond the record itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// For a `Confirmed`: the reservation it confirmed, as held (`None` if the ledger did not
    /// see it held).
    pub confirmed: Option<Held>,
    /// SKUs whose available units this record took from above zero to zero, with their units
    /// after it, in line order.
    pub sold_out: Vec<(SkuId, SkuUnits)>,
}

/// The fold of one shard's log up to `seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// The last record folded (0 = none).
    pub seq: u64,
    /// Folded from the first record of the log (every SKU and hold is known).
    pub complete: bool,
    /// Each known SKU's units; the key is the handle every hold of the SKU shares
    /// (`get_key_value_mut` hands it out with the units in one lookup).
    skus: hashbrown::HashMap<SkuId, SkuUnits>,
    held: HashMap<u64, Held>,
}

/// The ledger as stored in `<data dir>/events/ledger-<shard>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLedger {
    /// The last record folded.
    pub seq: u64,
    /// Folded from the first record of the log.
    pub complete: bool,
    /// `(sku, units)`, sorted by SKU.
    pub skus: Vec<(SkuId, SkuUnits)>,
    /// `(reservation id as u64, hold)`, sorted by id.
    pub held: Vec<(u64, Held)>,
}

impl Ledger {
    /// An empty ledger before record `seq + 1`; complete if that is the log's first record.
    pub fn starting_after(seq: u64, complete: bool) -> Ledger {
        Ledger {
            seq,
            complete,
            ..Ledger::default()
        }
    }

    /// The units of `sku`, if known.
    pub fn units(&self, sku: &str) -> Option<SkuUnits> {
        self.skus.get(sku).copied()
    }

    /// Reservations held (on this shard) as far as the ledger knows.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Folds `rec` (the record after [`Ledger::seq`]; records at or before it are ignored
    /// and yield no facts) and returns what it learned.
    pub fn apply(&mut self, rec: &LogRecord) -> Facts {
        let mut facts = Facts::default();
        if rec.seq <= self.seq {
            return facts;
        }
        debug_assert_eq!(rec.seq, self.seq + 1, "ledger folds records in order");
        self.seq = rec.seq;
        match &rec.event {
            Event::SkuUpserted { spec, .. } => {
                let known = self.complete || self.skus.contains_key(spec.sku.as_str());
                if known {
                    let u = self.skus.entry(spec.sku.clone()).or_default();
                    let before = u.available();
                    u.total = spec.stock;
                    if before > 0 && u.available() == 0 {
                        facts.sold_out.push((spec.sku.clone(), *u));
                    }
                }
            }
            Event::Restocked { sku, qty, .. } => {
                if let Some(u) = self.skus.get_mut(sku.as_str()) {
                    u.total = u.total.saturating_add(*qty);
                }
            }
            Event::Reserved {
                id,
                buyer,
                lines,
                group,
                ..
            } => {
                // One allocation per hold (its lines); the ids are shared handles.
                let mut held = Vec::with_capacity(lines.len());
                for l in lines {
                    let sku = match self.skus.get_key_value_mut(l.sku.as_str()) {
                        Some((known, u)) => {
                            let before = u.available();
                            u.reserved = u.reserved.saturating_add(u64::from(l.qty));
                            if before > 0 && u.available() == 0 {
                                facts.sold_out.push((known.clone(), *u));
                            }
                            known.clone()
                        }
                        None => l.sku.clone(),
                    };
                    held.push(held_line(sku, l));
                }
                self.held.insert(
                    id.0,
                    Held {
                        buyer: buyer.clone(),
                        lines: held,
                        partial: group.is_some(),
                    },
                );
            }
            Event::Confirmed { id, .. } => {
                if let Some(h) = self.held.remove(&id.0) {
                    for l in &h.lines {
                        if let Some(u) = self.skus.get_mut(l.sku.as_str()) {
                            u.reserved = u.reserved.saturating_sub(u64::from(l.qty));
                            u.sold = u.sold.saturating_add(u64::from(l.qty));
                        }
                    }
                    facts.confirmed = Some(h);
                }
            }
            Event::Released { id, .. } => {
                if let Some(h) = self.held.remove(&id.0) {
                    for l in &h.lines {
                        if let Some(u) = self.skus.get_mut(l.sku.as_str()) {
                            u.reserved = u.reserved.saturating_sub(u64::from(l.qty));
                        }
                    }
                }
            }
            Event::Extended { .. } => {}
        }
        facts
    }

    /// The durable form.
    pub fn to_stored(&self) -> StoredLedger {
        let mut skus: Vec<(SkuId, SkuUnits)> = self
            .skus
            .iter()
            .map(|(sku, units)| (sku.clone(), *units))
            .collect();
        skus.sort_by(|a, b| a.0.cmp(&b.0));
        let mut held: Vec<(u64, Held)> = self.held.iter().map(|(k, v)| (*k, v.clone())).collect();
        held.sort_by_key(|(k, _)| *k);
        StoredLedger {
            seq: self.seq,
            complete: self.complete,
            skus,
            held,
        }
    }

    /// Back from the durable form.
    pub fn from_stored(s: StoredLedger) -> Ledger {
        let skus: hashbrown::HashMap<SkuId, SkuUnits> = s.skus.into_iter().collect();
        // The holds' lines share the known SKUs' handles, as folded ones do.
        let held = s
            .held
            .into_iter()
            .map(|(id, mut h)| {
                for l in &mut h.lines {
                    if let Some((known, _)) = skus.get_key_value(l.sku.as_str()) {
                        l.sku = known.clone();
                    }
                }
                (id, h)
            })
            .collect();
        Ledger {
            seq: s.seq,
            complete: s.complete,
            skus,
            held,
        }
    }
}

/// The ledger's line of `l`, under the handle `sku`.
fn held_line(sku: SkuId, l: &Line) -> HeldLine {
    HeldLine {
        sku,
        qty: l.qty,
        unit_price_cents: l.unit_price_cents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale_protocol::{BuyerId, OrderId, ReleaseReason, ReservationId, SkuId, SkuSpec};

    fn sku(s: &str) -> SkuId {
        SkuId::new(s).unwrap_or_else(|_| unreachable!())
    }

    fn spec(name: &str, stock: u64) -> SkuSpec {
        SkuSpec {
            sku: sku(name),
            name: name.into(),
            price_cents: 100,
            stock,
            per_buyer_limit: None,
            sale_starts_at_ms: None,
            sale_ends_at_ms: None,
            reservation_ttl_ms: 60_000,
            max_hold_ms: 600_000,
            max_extensions: 0,
        }
    }

    fn reserve(n: u64, name: &str, qty: u32) -> Event {
        Event::Reserved {
            id: ReservationId::compose(0, n),
            buyer: BuyerId::new("b").unwrap_or_else(|_| unreachable!()),
            lines: vec![Line {
                sku: sku(name),
                qty,
                unit_price_cents: 100,
            }],
            expires_at_ms: 1,
            idempotency_key: None,
            request_hash: 0,
            group: None,
            at_ms: 1,
        }
    }

    struct Log {
        ledger: Ledger,
        seq: u64,
    }

    impl Log {
        fn apply(&mut self, event: Event) -> Facts {
            self.seq += 1;
            self.ledger.apply(&LogRecord {
                shard: 0,
                seq: self.seq,
                event,
            })
        }
    }

    #[test]
    fn sold_out_once_per_transition_and_again_after_a_restock() {
        let mut log = Log {
            ledger: Ledger::starting_after(0, true),
            seq: 0,
        };
        assert!(log
            .apply(Event::SkuUpserted {
                spec: spec("tee", 3),
                at_ms: 1
            })
            .sold_out
            .is_empty());
        assert!(log.apply(reserve(1, "tee", 2)).sold_out.is_empty());
        let f = log.apply(reserve(2, "tee", 1));
        assert_eq!(f.sold_out.len(), 1);
        assert_eq!(f.sold_out[0].1.reserved, 3);
        // Released and taken again: a new transition.
        log.apply(Event::Released {
            id: ReservationId::compose(0, 2),
            reason: ReleaseReason::Expired,
            at_ms: 2,
        });
        assert_eq!(log.ledger.units("tee").map(|u| u.available()), Some(1));
        assert_eq!(log.apply(reserve(3, "tee", 1)).sold_out.len(), 1);
        // Confirming moves held to sold without a transition; the order keeps its lines.
        let f = log.apply(Event::Confirmed {
            id: ReservationId::compose(0, 1),
            order: OrderId::compose(0, 1),
            payment_ref: "p".into(),
            at_ms: 3,
        });
        assert!(f.sold_out.is_empty());
        let held = f.confirmed.unwrap_or_else(|| unreachable!());
        assert_eq!(held.lines[0].qty, 2);
        assert_eq!(
            log.ledger.units("tee"),
            Some(SkuUnits {
                total: 3,
                reserved: 1,
                sold: 2
            })
        );
        // A restock and a sell-out again.
        log.apply(Event::Restocked {
            sku: sku("tee"),
            qty: 1,
            at_ms: 4,
            key: None,
        });
        assert_eq!(log.apply(reserve(4, "tee", 1)).sold_out.len(), 1);
        // Settings lowering the stock to what is committed is a sell-out too.
        log.apply(Event::Restocked {
            sku: sku("tee"),
            qty: 5,
            at_ms: 5,
            key: None,
        });
        let f = log.apply(Event::SkuUpserted {
            spec: spec("tee", 4),
            at_ms: 6,
        });
        assert_eq!(f.sold_out.len(), 1);
        // A SKU created with no stock was never available: no transition.
        assert!(log
            .apply(Event::SkuUpserted {
                spec: spec("gone", 0),
                at_ms: 7
            })
            .sold_out
            .is_empty());
        // The stored form round-trips.
        let back = Ledger::from_stored(log.ledger.to_stored());
        assert_eq!(back, log.ledger);
    }

    #[test]
    fn an_incomplete_ledger_ignores_skus_it_does_not_know() {
        let mut log = Log {
            ledger: Ledger::starting_after(10, false),
            seq: 10,
        };
        log.apply(Event::SkuUpserted {
            spec: spec("old", 1),
            at_ms: 1,
        });
        assert_eq!(log.ledger.units("old"), None);
        assert!(log.apply(reserve(1, "old", 1)).sold_out.is_empty());
        let f = log.apply(Event::Confirmed {
            id: ReservationId::compose(0, 99),
            order: OrderId::compose(0, 1),
            payment_ref: "p".into(),
            at_ms: 3,
        });
        assert_eq!(f.confirmed, None);
        // Records at or before its position are ignored.
        let before = log.ledger.clone();
        assert_eq!(
            log.ledger.apply(&LogRecord {
                shard: 0,
                seq: 5,
                event: reserve(7, "old", 1)
            }),
            Facts::default()
        );
        assert_eq!(log.ledger, before);
    }

    #[test]
    fn the_stored_form_keeps_its_json_shape_and_holds_share_the_known_sku() {
        let mut log = Log {
            ledger: Ledger::starting_after(0, true),
            seq: 0,
        };
        log.apply(Event::SkuUpserted {
            spec: spec("tee", 5),
            at_ms: 1,
        });
        log.apply(reserve(1, "tee", 2));
        // A SKU the ledger does not know (folded before it was created) keeps the record's id.
        log.apply(reserve(2, "cap", 1));
        let stored = log.ledger.to_stored();
        // The file written by earlier versions (ids as plain strings) reads back the same.
        let json = serde_json::json!({
            "seq": 3,
            "complete": true,
            "skus": [["tee", {"total": 5, "reserved": 2, "sold": 0}]],
            "held": [
                [1, {"buyer": "b", "lines": [{"sku": "tee", "qty": 2, "unit_price_cents": 100}], "partial": false}],
                [2, {"buyer": "b", "lines": [{"sku": "cap", "qty": 1, "unit_price_cents": 100}], "partial": false}]
            ]
        });
        let id1 = ReservationId::compose(0, 1).0;
        let id2 = ReservationId::compose(0, 2).0;
        let mut expected = json.clone();
        expected["held"][0][0] = id1.into();
        expected["held"][1][0] = id2.into();
        assert_eq!(
            serde_json::to_value(&stored).unwrap_or_else(|e| unreachable!("{e}")),
            expected
        );
        let read: StoredLedger =
            serde_json::from_value(expected).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(Ledger::from_stored(read), log.ledger);
        // An id the API would refuse is a corrupt file, not a hold.
        let mut bad = serde_json::to_value(&stored).unwrap_or_else(|e| unreachable!("{e}"));
        bad["held"][0][1]["buyer"] = "two words".into();
        assert!(serde_json::from_value::<StoredLedger>(bad).is_err());
        // Confirming hands the hold out with its lines, as folded.
        let f = log.apply(Event::Confirmed {
            id: ReservationId::compose(0, 1),
            order: OrderId::compose(0, 1),
            payment_ref: "p".into(),
            at_ms: 3,
        });
        let held = f.confirmed.unwrap_or_else(|| unreachable!());
        assert_eq!(held.buyer.as_str(), "b");
        assert_eq!(held.lines[0].sku.as_str(), "tee");
        assert_eq!(log.ledger.units("tee").map(|u| u.sold), Some(2));
    }
}
