//! The chaos workload's HTTP client: builds each contract request, sends it on a [`Conn`] with
//! its own deadline, turns whatever happened into an [`Outcome`] (unknown outcomes included)
//! and appends the op to the history.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::history::{
    now_us, Call, Entry, HistoryWriter, HttpAnswer, Line, Op, OrderSeen, Outcome, Phase,
    ReservationSeen, SkuSeen, SkuSetup,
};
use crate::conn::{Answer, Conn, TransportError};
use crate::request::{bearer, encode, HttpRequest, Requests, Reserve, ReserveLine};
use crate::target::Target;

/// Longest `detail` kept from an unexpected answer.
pub const MAX_DETAIL_CHARS: usize = 300;

/// How one request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// Wait up to this long for the answer.
    Wait(Duration),
    /// Open the connection first, then give the exchange only this long and drop the
    /// connection (a client reset right after sending): the outcome is unknown unless the
    /// answer was faster.
    Reset(Duration),
}

/// Credentials and target of the workload; records every op it sends.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    requests: Requests,
    storefront: Vec<HeaderValue>,
    admin: Option<HeaderValue>,
    history: Arc<HistoryWriter>,
}

impl Client {
    /// A client of `target` with one or more storefront tokens (callers `0..`) and the admin
    /// token (needed to create SKUs and restock).
    pub fn new(
        target: Target,
        storefront: &[String],
        admin: Option<&str>,
        history: Arc<HistoryWriter>,
    ) -> anyhow::Result<Client> {
        anyhow::ensure!(!storefront.is_empty(), "at least one storefront token");
        Ok(Client {
            requests: Requests::new(&target.authority)?,
            storefront: storefront
                .iter()
                .map(|t| bearer(t, "a storefront token"))
                .collect::<Result<_, _>>()?,
            admin: admin.map(|t| bearer(t, "the admin token")).transpose()?,
            target,
            history,
        })
    }

    /// The server's address.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Number of storefront credentials (callers).
    pub fn callers(&self) -> usize {
        self.storefront.len()
    }

    /// The history this client records to.
    pub fn history(&self) -> &Arc<HistoryWriter> {
        &self.history
    }

    /// A fresh connection to the target (opened on first use).
    pub fn conn(&self, timeout: Duration) -> Conn {
        Conn::new(self.target.addr, None, timeout)
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        auth: &HeaderValue,
        body: Option<Value>,
    ) -> anyhow::Result<HttpRequest> {
        Ok(self
            .requests
            .build(method, path, Some(auth), body.as_ref())?)
    }

    fn admin(&self) -> anyhow::Result<&HeaderValue> {
        self.admin
            .as_ref()
            .context("this call needs the admin token")
    }

    /// The HTTP request for `call`.
    pub fn build(&self, call: &Call) -> anyhow::Result<HttpRequest> {
        let shop = &self.storefront[0];
        match call {
            Call::Reserve {
                caller,
                key,
                buyer,
                lines,
            } => {
                let auth = self
                    .storefront
                    .get(*caller as usize)
                    .with_context(|| format!("no storefront token for caller {caller}"))?;
                let lines: Vec<ReserveLine<'_>> = lines
                    .iter()
                    .map(|l| ReserveLine {
                        sku: &l.sku,
                        qty: u64::from(l.qty),
                    })
                    .collect();
                let reserve = Reserve {
                    buyer,
                    lines: &lines,
                    idempotency_key: key.as_deref(),
                    pass: None,
                };
                Ok(self.requests.reserve(auth, &reserve)?)
            }
            Call::GetReservation { id } => self.request(
                Method::GET,
                &format!("/v1/reservations/{}", encode(id)),
                shop,
                None,
            ),
            Call::Confirm { id, payment_ref } => {
                Ok(self.requests.confirm(shop, id, payment_ref)?)
            }
            Call::Cancel { id } => Ok(self.requests.cancel(shop, id)?),
            Call::Restock { sku, qty } => self.request(
                Method::POST,
                &format!("/v1/skus/{}/restock", encode(sku)),
                self.admin()?,
                Some(json!({ "qty": qty })),
            ),
            Call::GetSku { sku } => self.request(
                Method::GET,
                &format!("/v1/skus/{}", encode(sku)),
                shop,
                None,
            ),
            Call::Extend { id, ttl_s } => self.request(
                Method::POST,
                &format!("/v1/reservations/{}/extend", encode(id)),
                shop,
                Some(json!({ "ttl_s": ttl_s })),
            ),
            Call::ListReservations {
                buyer,
                status,
                limit,
                cursor,
            } => {
                let mut q = format!("/v1/reservations?buyer={}&limit={limit}", encode(buyer));
                if let Some(s) = status {
                    q.push_str(&format!("&status={}", encode(s)));
                }
                if let Some(c) = cursor {
                    q.push_str(&format!("&cursor={}", encode(c)));
                }
                self.request(Method::GET, &q, shop, None)
            }
            Call::ListOrders {
                buyer,
                limit,
                cursor,
            } => {
                let mut q = format!("/v1/orders?buyer={}&limit={limit}", encode(buyer));
                if let Some(c) = cursor {
                    q.push_str(&format!("&cursor={}", encode(c)));
                }
                self.request(Method::GET, &q, shop, None)
            }
        }
    }

    /// Sends `call` on `conn`, records the op in the history and returns it.
    pub async fn run(
        &self,
        conn: &mut Conn,
        proc: u32,
        phase: Phase,
        call: Call,
        send: SendMode,
    ) -> anyhow::Result<Op> {
        let req = self.build(&call)?;
        let reset = match send {
            SendMode::Wait(t) => {
                conn.set_timeout(t);
                None
            }
            SendMode::Reset(t) => {
                // The reset must hit the exchange, not the connect.
                conn.set_timeout(Duration::from_secs(2));
                let _ = conn.ensure_open().await;
                conn.set_timeout(t);
                Some(t)
            }
        };
        let invoke_us = now_us();
        let result = conn.send(req).await;
        let complete_us = now_us().max(invoke_us);
        let outcome = match result {
            Ok(answer) => Outcome::Http(Box::new(parse_answer(&call, &answer))),
            Err(TransportError::Connect(e)) => Outcome::Refused { reason: e },
            Err(TransportError::Timeout) if reset.is_some() => Outcome::Unknown {
                reason: "reset".into(),
            },
            Err(TransportError::Timeout) => Outcome::Unknown {
                reason: "timeout".into(),
            },
            Err(TransportError::Io(e)) => Outcome::Unknown {
                reason: format!("io: {}", truncate(&e, 120)),
            },
        };
        let op = Op {
            op: self.history.next_op(),
            proc,
            invoke_us,
            complete_us,
            phase,
            call,
            outcome,
        };
        self.history.write(&Entry::Op(op.clone()));
        Ok(op)
    }

    /// Creates `sku` with `PUT /v1/skus/{sku}` (admin; not recorded: setup must succeed).
    pub async fn put_sku(&self, conn: &mut Conn, s: &SkuSetup) -> anyhow::Result<()> {
        let mut body = json!({
            "name": format!("chaos {}", s.sku),
            "price_cents": s.price_cents,
            "stock": s.stock,
            "reservation_ttl_s": s.ttl_s,
        });
        if let Some(l) = s.per_buyer_limit {
            body["per_buyer_limit"] = json!(l);
        }
        if let Some(h) = s.max_hold_s {
            body["max_hold_s"] = json!(h);
        }
        if let Some(e) = s.max_extensions {
            body["max_extensions"] = json!(e);
        }
        let req = self.request(
            Method::PUT,
            &format!("/v1/skus/{}", encode(&s.sku)),
            self.admin()?,
            Some(body),
        )?;
        conn.set_timeout(Duration::from_secs(10));
        let a = conn
            .send(req)
            .await
            .with_context(|| format!("PUT /v1/skus/{}", s.sku))?;
        anyhow::ensure!(
            a.status == StatusCode::CREATED,
            "PUT /v1/skus/{} answered {} (a fresh SKU must be created): {}",
            s.sku,
            a.status,
            truncate(&String::from_utf8_lossy(&a.body), MAX_DETAIL_CHARS)
        );
        Ok(())
    }

    /// True if `GET /health` answers 200 within `timeout`.
    pub async fn healthy(&self, conn: &mut Conn, timeout: Duration) -> bool {
        let Ok(req) = self.requests.build(Method::GET, "/health", None, None) else {
            return false;
        };
        conn.set_timeout(timeout);
        matches!(conn.send(req).await, Ok(a) if a.status == StatusCode::OK)
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars).collect();
        t.push('…');
        t
    }
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn rfc3339_ms(s: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn parse_lines(v: &Value) -> Option<Vec<Line>> {
    v.as_array()?
        .iter()
        .map(|l| {
            Some(Line {
                sku: l.get("sku")?.as_str()?.to_string(),
                qty: u32::try_from(l.get("qty")?.as_u64()?).ok()?,
            })
        })
        .collect()
}

/// A reservation view from a JSON body, if it is one.
pub fn parse_reservation(v: &Value) -> Option<ReservationSeen> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some(ReservationSeen {
        id: s("id")?,
        status: s("status")?,
        buyer: s("buyer")?,
        lines: parse_lines(v.get("lines")?)?,
        expires_at_ms: rfc3339_ms(v.get("expires_at")?.as_str()?)?,
        order_id: s("order_id"),
        release_reason: s("release_reason"),
    })
}

/// An order view from a JSON body, if it is one.
pub fn parse_order(v: &Value) -> Option<OrderSeen> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some(OrderSeen {
        id: s("id")?,
        reservation_id: s("reservation_id")?,
        buyer: s("buyer")?,
        lines: parse_lines(v.get("lines")?)?,
    })
}

/// The items of a list page with `parse` and its `next_cursor`, if the body is a page.
fn parse_page<T>(
    v: &Value,
    parse: impl Fn(&Value) -> Option<T>,
) -> Option<(Vec<T>, Option<String>)> {
    let items = v
        .get("items")?
        .as_array()?
        .iter()
        .map(parse)
        .collect::<Option<Vec<T>>>()?;
    let next = match v.get("next_cursor")? {
        Value::Null => None,
        c => Some(c.as_str()?.to_string()),
    };
    Some((items, next))
}

/// SKU counts from a JSON body, if it is a SKU view.
pub fn parse_sku(v: &Value) -> Option<SkuSeen> {
    let n = |k: &str| v.get(k).and_then(Value::as_i64);
    Some(SkuSeen {
        total: n("total")?,
        available: n("available")?,
        reserved: n("reserved")?,
        sold: n("sold")?,
    })
}

/// What the checker needs from an answer to `call`.
pub fn parse_answer(call: &Call, a: &Answer) -> HttpAnswer {
    let status = a.status.as_u16();
    let json: Option<Value> = serde_json::from_slice(&a.body).ok();
    let mut out = HttpAnswer {
        status,
        problem: None,
        retry_after_s: a.retry_after_s,
        reservation: None,
        sku: None,
        items: None,
        orders: None,
        next_cursor: None,
        limit_name: None,
        detail: None,
    };
    if a.status.is_success() {
        let v = json.as_ref();
        match call {
            Call::Reserve { .. }
            | Call::GetReservation { .. }
            | Call::Confirm { .. }
            | Call::Cancel { .. }
            | Call::Extend { .. } => {
                out.reservation = v.and_then(parse_reservation);
            }
            Call::Restock { .. } | Call::GetSku { .. } => out.sku = v.and_then(parse_sku),
            Call::ListReservations { .. } => {
                if let Some((items, next)) = v.and_then(|v| parse_page(v, parse_reservation)) {
                    out.items = Some(items);
                    out.next_cursor = next;
                }
            }
            Call::ListOrders { .. } => {
                if let Some((orders, next)) = v.and_then(|v| parse_page(v, parse_order)) {
                    out.orders = Some(orders);
                    out.next_cursor = next;
                }
            }
        }
        let parsed = out.reservation.is_some()
            || out.sku.is_some()
            || out.items.is_some()
            || out.orders.is_some();
        if !parsed {
            out.detail = Some(truncate(
                &String::from_utf8_lossy(&a.body),
                MAX_DETAIL_CHARS,
            ));
        }
        return out;
    }
    match json {
        Some(v) => {
            out.problem = v
                .get("type")
                .and_then(Value::as_str)
                .map(|t| t.rsplit('/').next().unwrap_or(t).to_string());
            out.limit_name = v
                .get("limit_name")
                .and_then(Value::as_str)
                .map(str::to_string);
            out.detail = v
                .get("detail")
                .and_then(Value::as_str)
                .map(|d| truncate(d, MAX_DETAIL_CHARS));
        }
        None => {
            out.detail = Some(truncate(
                &String::from_utf8_lossy(&a.body),
                MAX_DETAIL_CHARS,
            ))
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn answers_are_parsed() {
        let call = Call::Reserve {
            caller: 0,
            key: None,
            buyer: "b".into(),
            lines: vec![],
        };
        let body = br#"{"id":"res_1","status":"held","buyer":"b","lines":[{"sku":"a","qty":2,"unit_price_cents":5}],"total_cents":10,"created_at":"2026-11-21T10:00:00Z","expires_at":"2026-11-21T10:00:01.5Z","order_id":null,"release_reason":null}"#;
        let a = Answer {
            status: StatusCode::CREATED,
            body: Bytes::from_static(body),
            retry_after_s: None,
        };
        let h = parse_answer(&call, &a);
        let r = h.reservation.unwrap();
        assert_eq!(r.id, "res_1");
        assert_eq!(
            r.lines,
            vec![Line {
                sku: "a".into(),
                qty: 2
            }]
        );
        assert_eq!(r.expires_at_ms % 1000, 500);
        assert_eq!(r.order_id, None);
        let a = Answer {
            status: StatusCode::CONFLICT,
            body: Bytes::from_static(
                br#"{"type":"https://flashsale.dev/problems/idempotency-in-progress","detail":"wait"}"#,
            ),
            retry_after_s: Some(1),
        };
        let h = parse_answer(&call, &a);
        assert!(h.is(409, "idempotency-in-progress"));
        assert_eq!(h.retry_after_s, Some(1));
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01Z"), Some(1000));
    }
}
