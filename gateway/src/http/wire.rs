//! JSON bodies of the API: request shapes (unknown fields refused), their validation, and the
//! views returned. Times are RFC 3339 in UTC; money is integer cents.

use std::collections::HashSet;

use flashsale_engine::{OrderView, ReservationView, SkuView};
use flashsale_protocol::{BuyerId, ReleaseReason, SkuId, SkuSpec, MAX_LINES};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::problem::Problem;

/// Default reservation TTL when a SKU is created without `reservation_ttl_s`.
pub const DEFAULT_RESERVATION_TTL_S: u64 = 600;
/// Longest allowed reservation TTL (one day).
pub const MAX_RESERVATION_TTL_S: u64 = 86_400;
/// Longest SKU display name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest payment reference, in bytes.
pub const MAX_PAYMENT_REF_LEN: usize = 256;
/// Largest stock or restock quantity accepted (keeps sums far from overflow).
pub const MAX_UNITS: i64 = 1_000_000_000_000;
/// Largest quantity on one reservation line.
pub const MAX_LINE_QTY: i64 = 1_000_000;

/// Formats Unix milliseconds as RFC 3339 UTC (`2026-11-21T10:00:00Z`, with a fraction if any).
pub fn format_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Parses an RFC 3339 time into Unix milliseconds; `field` names it in the error.
pub fn parse_time(field: &str, s: &str) -> Result<u64, Problem> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        Problem::invalid(format!(
            "{field}: {s:?} is not an RFC 3339 time (e.g. 2026-11-21T10:00:00Z): {e}"
        ))
    })?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| Problem::invalid(format!("{field}: {s:?} is before 1970")))
}

/// Parses a JSON body into `T`, reporting where it failed as 400 malformed.
pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::malformed(
            "the request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        Problem::malformed(format!("invalid JSON body: {e}"))
            .with("line", e.line())
            .with("column", e.column())
    })
}

/// `PUT /v1/skus/{sku}` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSkuBody {
    /// Display name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Total stock (available + reserved + sold).
    pub stock: i64,
    /// Most units one buyer may hold and buy together.
    #[serde(default)]
    pub per_buyer_limit: Option<i64>,
    /// Sale opens at (RFC 3339).
    #[serde(default)]
    pub sale_starts_at: Option<String>,
    /// Sale closes at (RFC 3339).
    #[serde(default)]
    pub sale_ends_at: Option<String>,
    /// Reservation TTL in seconds.
    #[serde(default)]
    pub reservation_ttl_s: Option<i64>,
}

impl PutSkuBody {
    /// Validates into the engine's [`SkuSpec`].
    pub fn into_spec(self, sku: SkuId) -> Result<SkuSpec, Problem> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(Problem::invalid(format!(
                "name must be 1..={MAX_NAME_LEN} bytes"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Problem::invalid("name must not contain control characters"));
        }
        let price_cents = u64::try_from(self.price_cents)
            .map_err(|_| Problem::invalid("price_cents must be ≥ 0"))?;
        if !(0..=MAX_UNITS).contains(&self.stock) {
            return Err(Problem::invalid(format!("stock must be 0..={MAX_UNITS}")));
        }
        let per_buyer_limit = match self.per_buyer_limit {
            None => None,
            Some(n) if n >= 1 && n <= i64::from(u32::MAX) => Some(n as u32),
            Some(_) => return Err(Problem::invalid("per_buyer_limit must be ≥ 1")),
        };
        let starts = self
            .sale_starts_at
            .as_deref()
            .map(|s| parse_time("sale_starts_at", s))
            .transpose()?;
        let ends = self
            .sale_ends_at
            .as_deref()
            .map(|s| parse_time("sale_ends_at", s))
            .transpose()?;
        if let (Some(s), Some(e)) = (starts, ends) {
            if e <= s {
                return Err(Problem::invalid(
                    "sale_ends_at must be after sale_starts_at",
                ));
            }
        }
        let ttl_s = match self.reservation_ttl_s {
            None => DEFAULT_RESERVATION_TTL_S,
            Some(t) if t >= 1 && t as u64 <= MAX_RESERVATION_TTL_S => t as u64,
            Some(_) => {
                return Err(Problem::invalid(format!(
                    "reservation_ttl_s must be 1..={MAX_RESERVATION_TTL_S}"
                )))
            }
        };
        Ok(SkuSpec {
            sku,
            name,
            price_cents,
            stock: self.stock as u64,
            per_buyer_limit,
            sale_starts_at_ms: starts,
            sale_ends_at_ms: ends,
            reservation_ttl_ms: ttl_s * 1000,
        })
    }
}

/// `POST /v1/skus/{sku}/restock` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestockBody {
    /// Units to add.
    pub qty: i64,
}

impl RestockBody {
    /// The validated quantity.
    pub fn qty(&self) -> Result<u64, Problem> {
        if (1..=MAX_UNITS).contains(&self.qty) {
            Ok(self.qty as u64)
        } else {
            Err(Problem::invalid(format!("qty must be 1..={MAX_UNITS}")))
        }
    }
}

/// One line of a reservation request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    /// The SKU (validated after parsing so that a bad id is 422, not 400).
    pub sku: String,
    /// Units; must be ≥ 1.
    pub qty: i64,
}

/// `POST /v1/reservations` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    /// The buyer; required with a storefront token, implied by a buyer JWT.
    #[serde(default)]
    pub buyer: Option<String>,
    /// What to hold.
    pub lines: Vec<LineBody>,
}

impl ReserveBody {
    /// Validates the lines: 1..=32 of them, no SKU twice, qty 1..=1,000,000.
    pub fn validated_lines(&self) -> Result<Vec<(SkuId, u32)>, Problem> {
        if self.lines.is_empty() {
            return Err(Problem::invalid("lines must not be empty"));
        }
        if self.lines.len() > MAX_LINES {
            return Err(Problem::invalid(format!(
                "at most {MAX_LINES} lines per reservation, got {}",
                self.lines.len()
            )));
        }
        let mut seen = HashSet::with_capacity(self.lines.len());
        let mut out = Vec::with_capacity(self.lines.len());
        for (i, line) in self.lines.iter().enumerate() {
            let sku = SkuId::new(line.sku.as_str())
                .map_err(|e| Problem::invalid(format!("lines[{i}].sku: {e}")))?;
            if !(1..=MAX_LINE_QTY).contains(&line.qty) {
                return Err(Problem::invalid(format!(
                    "lines[{i}].qty must be 1..={MAX_LINE_QTY}, got {}",
                    line.qty
                )));
            }
            if !seen.insert(sku.clone()) {
                return Err(Problem::invalid(format!(
                    "lines[{i}]: SKU {sku} appears more than once"
                )));
            }
            out.push((sku, line.qty as u32));
        }
        Ok(out)
    }

    /// The validated buyer id from the body, if any.
    pub fn buyer(&self) -> Result<Option<BuyerId>, Problem> {
        self.buyer
            .as_deref()
            .map(|b| BuyerId::new(b).map_err(|e| Problem::invalid(format!("buyer: {e}"))))
            .transpose()
    }
}

/// `POST /v1/reservations/{id}/confirm` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The storefront's payment reference.
    pub payment_ref: String,
}

impl ConfirmBody {
    /// The validated payment reference.
    pub fn payment_ref(self) -> Result<String, Problem> {
        let r = self.payment_ref;
        if r.is_empty() || r.len() > MAX_PAYMENT_REF_LEN || r.chars().any(char::is_control) {
            return Err(Problem::invalid(format!(
                "payment_ref must be 1..={MAX_PAYMENT_REF_LEN} bytes without control characters"
            )));
        }
        Ok(r)
    }
}

/// `POST /v1/reservations/{id}/cancel` body: empty, or an empty object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {}

/// A SKU as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkuJson {
    /// The SKU id.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: u64,
    /// available + reserved + sold.
    pub total: u64,
    /// Units that can be reserved now.
    pub available: u64,
    /// Units held by reservations.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
    /// Per-buyer limit, if any.
    pub per_buyer_limit: Option<u32>,
    /// Sale window start.
    pub sale_starts_at: Option<String>,
    /// Sale window end.
    pub sale_ends_at: Option<String>,
    /// Reservation TTL in seconds.
    pub reservation_ttl_s: u64,
}

impl From<&SkuView> for SkuJson {
    fn from(v: &SkuView) -> Self {
        SkuJson {
            sku: v.sku.to_string(),
            name: v.name.clone(),
            price_cents: v.price_cents,
            total: v.total,
            available: v.available,
            reserved: v.reserved,
            sold: v.sold,
            per_buyer_limit: v.per_buyer_limit,
            sale_starts_at: v.sale_starts_at_ms.map(format_ms),
            sale_ends_at: v.sale_ends_at_ms.map(format_ms),
            reservation_ttl_s: v.reservation_ttl_ms / 1000,
        }
    }
}

/// `GET /v1/skus` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkuPage {
    /// The SKUs of this page, ordered by id.
    pub items: Vec<SkuJson>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A reservation or order line as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineJson {
    /// The SKU.
    pub sku: String,
    /// Units.
    pub qty: u32,
    /// Unit price in cents at reservation time.
    pub unit_price_cents: u64,
}

/// A reservation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservationJson {
    /// The reservation id (`res_…`).
    pub id: String,
    /// `held`, `confirmed`, `released` or `expired`.
    pub status: &'static str,
    /// The buyer.
    pub buyer: String,
    /// The lines, in request order.
    pub lines: Vec<LineJson>,
    /// Sum of qty × unit price.
    pub total_cents: u64,
    /// When it was made.
    pub created_at: String,
    /// When the hold lapses (or lapsed).
    pub expires_at: String,
    /// The order, once confirmed.
    pub order_id: Option<String>,
    /// `cancelled`, `expired` or `aborted`, once released.
    pub release_reason: Option<&'static str>,
}

fn lines_json(lines: &[flashsale_protocol::Line]) -> (Vec<LineJson>, u64) {
    let mut total = 0u64;
    let out = lines
        .iter()
        .map(|l| {
            total = total.saturating_add(u64::from(l.qty).saturating_mul(l.unit_price_cents));
            LineJson {
                sku: l.sku.to_string(),
                qty: l.qty,
                unit_price_cents: l.unit_price_cents,
            }
        })
        .collect();
    (out, total)
}

/// The contract's name of a release reason.
pub fn release_reason_str(r: ReleaseReason) -> &'static str {
    match r {
        ReleaseReason::Cancelled => "cancelled",
        ReleaseReason::Expired => "expired",
        ReleaseReason::Aborted => "aborted",
    }
}

impl From<&ReservationView> for ReservationJson {
    fn from(v: &ReservationView) -> Self {
        let (lines, total_cents) = lines_json(&v.lines);
        ReservationJson {
            id: v.id.to_string(),
            status: v.status.as_str(),
            buyer: v.buyer.to_string(),
            lines,
            total_cents,
            created_at: format_ms(v.created_at_ms),
            expires_at: format_ms(v.expires_at_ms),
            order_id: v.order.map(|o| o.to_string()),
            release_reason: v.release_reason.map(release_reason_str),
        }
    }
}

/// An order as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderJson {
    /// The order id (`ord_…`).
    pub id: String,
    /// The reservation it came from.
    pub reservation_id: String,
    /// The buyer.
    pub buyer: String,
    /// Lines with unit prices.
    pub lines: Vec<LineJson>,
    /// Sum of qty × unit price, in cents.
    pub total_cents: u64,
    /// The storefront's payment reference.
    pub payment_ref: String,
    /// When it was confirmed.
    pub created_at: String,
}

impl From<&OrderView> for OrderJson {
    fn from(v: &OrderView) -> Self {
        let (lines, _) = lines_json(&v.lines);
        OrderJson {
            id: v.id.to_string(),
            reservation_id: v.reservation.to_string(),
            buyer: v.buyer.to_string(),
            lines,
            total_cents: v.total_cents,
            payment_ref: v.payment_ref.clone(),
            created_at: format_ms(v.created_at_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::problem::ProblemKind;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(format_ms(1_795_255_200_000), "2026-11-21T10:00:00Z");
        assert_eq!(format_ms(1_795_255_200_250), "2026-11-21T10:00:00.25Z");
        assert_eq!(
            parse_time("t", "2026-11-21T10:00:00Z").unwrap(),
            1_795_255_200_000
        );
        assert_eq!(
            parse_time("t", "2026-11-21T11:00:00+01:00").unwrap(),
            1_795_255_200_000
        );
        let e = parse_time("sale_starts_at", "tomorrow").unwrap_err();
        assert_eq!(e.kind, ProblemKind::Invalid);
        assert!(e.detail.contains("sale_starts_at"));
    }

    #[test]
    fn unknown_fields_are_malformed_and_say_where() {
        let e = parse_json::<ReserveBody>(br#"{"buyer":"b","lines":[],"coupon":"x"}"#).unwrap_err();
        assert_eq!(e.kind, ProblemKind::Malformed);
        assert!(e.detail.contains("coupon"), "{}", e.detail);
        assert_eq!(e.extra["line"], 1);
        let e = parse_json::<ReserveBody>(br#"{"buyer":"b","lines":[{"sku":"a","qty":1,"x":2}]}"#)
            .unwrap_err();
        assert!(e.detail.contains("unknown field `x`"), "{}", e.detail);
        let e = parse_json::<RestockBody>(b"{\"qty\":").unwrap_err();
        assert_eq!(e.kind, ProblemKind::Malformed);
        let e = parse_json::<RestockBody>(br#"{"qty":"3"}"#).unwrap_err();
        assert!(e.detail.contains("invalid type"), "{}", e.detail);
        let e = parse_json::<RestockBody>(b"  ").unwrap_err();
        assert!(e.detail.contains("empty"));
    }

    #[test]
    fn reservation_lines_are_validated() {
        let body = |s: &str| parse_json::<ReserveBody>(s.as_bytes()).unwrap();
        let ok = body(r#"{"buyer":"b1","lines":[{"sku":"a","qty":2},{"sku":"b","qty":1}]}"#);
        let lines = ok.validated_lines().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].1, 2);
        assert_eq!(ok.buyer().unwrap().unwrap().as_str(), "b1");

        for bad in [
            r#"{"buyer":"b","lines":[]}"#,
            r#"{"buyer":"b","lines":[{"sku":"a","qty":0}]}"#,
            r#"{"buyer":"b","lines":[{"sku":"a","qty":-1}]}"#,
            r#"{"buyer":"b","lines":[{"sku":"a","qty":1},{"sku":"a","qty":1}]}"#,
            r#"{"buyer":"b","lines":[{"sku":"a/b","qty":1}]}"#,
        ] {
            let e = body(bad).validated_lines().unwrap_err();
            assert_eq!(e.kind, ProblemKind::Invalid, "{bad}");
        }
        let many: Vec<String> = (0..33)
            .map(|i| format!(r#"{{"sku":"s{i}","qty":1}}"#))
            .collect();
        let e = body(&format!(r#"{{"buyer":"b","lines":[{}]}}"#, many.join(",")))
            .validated_lines()
            .unwrap_err();
        assert!(e.detail.contains("at most 32"));
        assert_eq!(
            body(r#"{"buyer":"a b","lines":[]}"#)
                .buyer()
                .unwrap_err()
                .kind,
            ProblemKind::Invalid
        );
    }

    #[test]
    fn sku_specs_are_validated() {
        let sku = SkuId::new("tee").unwrap();
        let body = |s: &str| parse_json::<PutSkuBody>(s.as_bytes()).unwrap();
        let spec = body(
            r#"{"name":"Tee","price_cents":1999,"stock":10,"per_buyer_limit":2,
            "sale_starts_at":"2026-11-21T10:00:00Z","reservation_ttl_s":5}"#,
        )
        .into_spec(sku.clone())
        .unwrap();
        assert_eq!(spec.reservation_ttl_ms, 5000);
        assert_eq!(spec.per_buyer_limit, Some(2));
        assert_eq!(spec.sale_starts_at_ms, Some(1_795_255_200_000));
        let spec = body(r#"{"name":"Tee","price_cents":0,"stock":0}"#)
            .into_spec(sku.clone())
            .unwrap();
        assert_eq!(spec.reservation_ttl_ms, DEFAULT_RESERVATION_TTL_S * 1000);
        for bad in [
            r#"{"name":"","price_cents":1,"stock":1}"#,
            r#"{"name":"x","price_cents":-1,"stock":1}"#,
            r#"{"name":"x","price_cents":1,"stock":-1}"#,
            r#"{"name":"x","price_cents":1,"stock":1,"per_buyer_limit":0}"#,
            r#"{"name":"x","price_cents":1,"stock":1,"reservation_ttl_s":0}"#,
            r#"{"name":"x","price_cents":1,"stock":1,"sale_starts_at":"2026-11-21T10:00:00Z","sale_ends_at":"2026-11-21T09:00:00Z"}"#,
        ] {
            assert_eq!(
                body(bad).into_spec(sku.clone()).unwrap_err().kind,
                ProblemKind::Invalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn confirm_and_restock_are_validated() {
        let c: ConfirmBody = parse_json(br#"{"payment_ref":"pay_1"}"#).unwrap();
        assert_eq!(c.payment_ref().unwrap(), "pay_1");
        let c: ConfirmBody = parse_json(br#"{"payment_ref":""}"#).unwrap();
        assert_eq!(c.payment_ref().unwrap_err().kind, ProblemKind::Invalid);
        let r: RestockBody = parse_json(br#"{"qty":0}"#).unwrap();
        assert_eq!(r.qty().unwrap_err().kind, ProblemKind::Invalid);
        assert!(parse_json::<CancelBody>(b"{}").is_ok());
        assert!(parse_json::<CancelBody>(br#"{"why":1}"#).is_err());
    }
}
