//! Small hand-written chaos histories for the checker's tests: a builder with millisecond
//! times (relative to a fixed epoch), call and answer shorthands, and a writer that produces the
//! JSON Lines file the checker reads.

use std::path::PathBuf;

use flashsale_loadgen::chaos::check::{self, Kind, Report};
use flashsale_loadgen::chaos::history::{
    self, Call, End, Entry, FaultEvent, FaultKind, HttpAnswer, Line, Meta, Op, OrderLineRow,
    OrderRow, OrderSeen, Outcome, Phase, ReadModelSnapshot, ReservationSeen, SkuSeen, SkuSetup,
    SkuStockRow,
};

/// Time zero of every test history, in ms since the epoch.
pub const T0_MS: u64 = 1_700_000_000_000;

/// Microseconds of `ms` after [`T0_MS`].
pub fn us(ms: u64) -> u64 {
    (T0_MS + ms) * 1000
}

/// Milliseconds since the epoch of `ms` after [`T0_MS`].
pub fn at_ms(ms: u64) -> u64 {
    T0_MS + ms
}

/// An order row: (order id, reservation id, buyer, payment_ref, lines).
pub type OrderSpec<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [(&'a str, u32)]);

/// A history being written.
pub struct H {
    entries: Vec<Entry>,
    next_op: u64,
}

/// SKU setup: (id, stock, per-buyer limit, ttl seconds).
pub fn sku(id: &str, stock: u64, limit: Option<u32>, ttl_s: u64) -> SkuSetup {
    SkuSetup {
        sku: id.into(),
        price_cents: 100,
        stock,
        per_buyer_limit: limit,
        ttl_s,
        max_hold_s: None,
        max_extensions: None,
    }
}

/// Lines from (sku, qty) pairs.
pub fn lines(l: &[(&str, u32)]) -> Vec<Line> {
    l.iter()
        .map(|(s, q)| Line {
            sku: s.to_string(),
            qty: *q,
        })
        .collect()
}

/// `POST /v1/reservations` by caller 0 with `key`.
pub fn reserve(key: &str, buyer: &str, l: &[(&str, u32)]) -> Call {
    Call::Reserve {
        caller: 0,
        key: Some(key.into()),
        buyer: buyer.into(),
        lines: lines(l),
    }
}

/// `GET /v1/reservations/{id}`.
pub fn get(id: &str) -> Call {
    Call::GetReservation { id: id.into() }
}

/// Confirm with payment reference `pay-{id}`.
pub fn confirm(id: &str) -> Call {
    Call::Confirm {
        id: id.into(),
        payment_ref: format!("pay-{id}"),
    }
}

/// Cancel.
pub fn cancel(id: &str) -> Call {
    Call::Cancel { id: id.into() }
}

/// `GET /v1/skus/{sku}`.
pub fn get_sku(s: &str) -> Call {
    Call::GetSku { sku: s.into() }
}

/// Restock.
pub fn restock(s: &str, qty: u64) -> Call {
    Call::Restock { sku: s.into(), qty }
}

/// `POST /v1/reservations/{id}/extend {ttl_s}`.
pub fn extend(id: &str, ttl_s: u64) -> Call {
    Call::Extend {
        id: id.into(),
        ttl_s,
    }
}

/// The first page of `buyer`'s reservations (limit 20), with an optional status filter.
pub fn list_res(buyer: &str, status: Option<&str>) -> Call {
    Call::ListReservations {
        buyer: buyer.into(),
        status: status.map(str::to_string),
        limit: 20,
        cursor: None,
    }
}

/// A page of `buyer`'s orders (limit 100) from `cursor`.
pub fn list_orders(buyer: &str, cursor: Option<&str>) -> Call {
    Call::ListOrders {
        buyer: buyer.into(),
        limit: 100,
        cursor: cursor.map(str::to_string),
    }
}

/// A page of reservations.
pub fn page(items: Vec<ReservationSeen>, next: Option<&str>) -> Outcome {
    Outcome::Http(Box::new(HttpAnswer {
        items: Some(items),
        next_cursor: next.map(str::to_string),
        ..answer(200)
    }))
}

/// An order listed: (reservation id, buyer, lines).
pub type ListedOrder<'a> = (&'a str, &'a str, &'a [(&'a str, u32)]);

/// A page of orders; the order id is `ord-{reservation}`.
pub fn orders_page(orders: &[ListedOrder<'_>], next: Option<&str>) -> Outcome {
    Outcome::Http(Box::new(HttpAnswer {
        orders: Some(
            orders
                .iter()
                .map(|(r, b, l)| OrderSeen {
                    id: format!("ord-{r}"),
                    reservation_id: r.to_string(),
                    buyer: b.to_string(),
                    lines: lines(l),
                })
                .collect(),
        ),
        next_cursor: next.map(str::to_string),
        ..answer(200)
    }))
}

/// `422 invalid` naming the hold bound `limit_name`.
pub fn hold_limit(limit_name: &str) -> Outcome {
    Outcome::Http(Box::new(HttpAnswer {
        problem: Some("invalid".into()),
        limit_name: Some(limit_name.into()),
        ..answer(422)
    }))
}

fn answer(status: u16) -> HttpAnswer {
    HttpAnswer {
        status,
        problem: None,
        retry_after_s: None,
        reservation: None,
        sku: None,
        items: None,
        orders: None,
        next_cursor: None,
        limit_name: None,
        detail: None,
    }
}

/// A reservation view.
pub fn view(
    id: &str,
    status: &str,
    buyer: &str,
    l: &[(&str, u32)],
    expires_ms: u64,
) -> ReservationSeen {
    ReservationSeen {
        id: id.into(),
        status: status.into(),
        buyer: buyer.into(),
        lines: lines(l),
        expires_at_ms: at_ms(expires_ms),
        order_id: (status == "confirmed").then(|| format!("ord-{id}")),
        release_reason: match status {
            "released" => Some("cancelled".into()),
            "expired" => Some("expired".into()),
            _ => None,
        },
    }
}

/// An answer carrying a reservation view.
pub fn with_view(status: u16, v: ReservationSeen) -> Outcome {
    Outcome::Http(Box::new(HttpAnswer {
        reservation: Some(v),
        ..answer(status)
    }))
}

/// A problem answer.
pub fn problem(status: u16, p: &str) -> Outcome {
    Outcome::Http(Box::new(HttpAnswer {
        problem: Some(p.into()),
        retry_after_s: matches!(p, "idempotency-in-progress" | "unavailable").then_some(1),
        ..answer(status)
    }))
}

/// SKU counts.
pub fn counts(total: i64, available: i64, reserved: i64, sold: i64) -> Outcome {
    Outcome::Http(Box::new(HttpAnswer {
        sku: Some(SkuSeen {
            total,
            available,
            reserved,
            sold,
        }),
        ..answer(200)
    }))
}

/// No answer (client timeout).
pub fn timeout() -> Outcome {
    Outcome::Unknown {
        reason: "timeout".into(),
    }
}

impl H {
    /// A history over `skus`, two callers.
    pub fn new(skus: Vec<SkuSetup>) -> H {
        H {
            entries: vec![Entry::Meta(Meta {
                version: history::HISTORY_VERSION,
                seed: 7,
                backend: "embedded".into(),
                target: "http://127.0.0.1:1".into(),
                shards: Some(2),
                callers: vec!["a".into(), "b".into()],
                skus,
                faults: vec![],
                notes: vec![],
                started_us: us(0),
            })],
            next_op: 1,
        }
    }

    /// An op of the load phase from `invoke` to `complete` (ms after T0).
    pub fn op(&mut self, invoke: u64, complete: u64, call: Call, outcome: Outcome) -> &mut H {
        self.push(invoke, complete, call, outcome, Phase::Load)
    }

    /// An op of the read-back phase.
    pub fn fin(&mut self, invoke: u64, complete: u64, call: Call, outcome: Outcome) -> &mut H {
        self.push(invoke, complete, call, outcome, Phase::Final)
    }

    fn push(
        &mut self,
        invoke: u64,
        complete: u64,
        call: Call,
        outcome: Outcome,
        phase: Phase,
    ) -> &mut H {
        let op = self.next_op;
        self.next_op += 1;
        self.entries.push(Entry::Op(Op {
            op,
            proc: (op % 4) as u32,
            invoke_us: us(invoke),
            complete_us: us(complete),
            phase,
            call,
            outcome,
        }));
        self
    }

    /// A fault event at `at` ms.
    pub fn fault(&mut self, at: u64, kind: FaultKind) -> &mut H {
        self.entries.push(Entry::Fault(FaultEvent {
            at_us: us(at),
            fault: kind,
            detail: String::new(),
        }));
        self
    }

    /// A read-model record: orders (order, reservation, buyer, payment_ref, lines), stock rows
    /// (sku, total, reserved, sold).
    pub fn read_model(
        &mut self,
        orders: &[OrderSpec<'_>],
        stock: &[(&str, i64, i64, i64)],
    ) -> &mut H {
        let mut order_lines = Vec::new();
        for (o, _, _, _, l) in orders {
            for (s, q) in l.iter() {
                order_lines.push(OrderLineRow {
                    order_id: o.to_string(),
                    sku: s.to_string(),
                    qty: *q,
                });
            }
        }
        self.entries.push(Entry::ReadModel(ReadModelSnapshot {
            at_us: us(900_000),
            caught_up: true,
            orders: orders
                .iter()
                .map(|(o, r, b, p, _)| OrderRow {
                    order_id: o.to_string(),
                    reservation_id: r.to_string(),
                    buyer: b.to_string(),
                    payment_ref: p.to_string(),
                })
                .collect(),
            order_lines,
            sku_stock: stock
                .iter()
                .map(|(s, t, r, so)| SkuStockRow {
                    sku: s.to_string(),
                    total: *t,
                    reserved: *r,
                    sold: *so,
                })
                .collect(),
        }));
        self
    }

    /// The JSON Lines text, `end` record included.
    pub fn text(&self) -> String {
        let ops = self
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::Op(_)))
            .count() as u64;
        let mut out = String::new();
        for e in self.entries.iter().chain(std::iter::once(&Entry::End(End {
            at_us: us(1_000_000),
            ops,
        }))) {
            out.push_str(&serde_json::to_string(e).unwrap());
            out.push('\n');
        }
        out
    }

    /// Writes the history to a temp file.
    pub fn write(&self) -> (tempfile::TempDir, PathBuf) {
        write_text(&self.text())
    }

    /// Checks the history.
    pub fn check(&self) -> Report {
        let (_dir, path) = self.write();
        let h = history::read(&path).unwrap();
        check::check(&h)
    }
}

/// Writes `text` to a temp file.
pub fn write_text(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// The kinds of the report's violations (sorted, with repetitions).
pub fn kinds(r: &Report) -> Vec<Kind> {
    r.violations.iter().map(|v| v.kind).collect()
}

/// A small valid history: one reservation held and left to expire, read back after the run.
pub fn clean_history_text() -> String {
    let mut h = H::new(vec![sku("a", 10, Some(2), 2)]);
    let l = [("a", 1)];
    h.op(
        0,
        10,
        reserve("k1", "u1", &l),
        with_view(201, view("r1", "held", "u1", &l, 2_005)),
    );
    h.fault(4_500, FaultKind::LoadEnd);
    h.fin(
        9_000,
        9_010,
        get("r1"),
        with_view(200, view("r1", "expired", "u1", &l, 2_005)),
    );
    h.fin(9_020, 9_030, get_sku("a"), counts(10, 10, 0, 0));
    h.text()
}
