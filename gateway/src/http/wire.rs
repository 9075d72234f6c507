//! JSON bodies of the API: request shapes (unknown fields refused, objects only), their
//! validation against [`flashsale_protocol::limits`], and the views returned. Times are RFC 3339
//! in UTC; money is integer cents, exact (at most [`MAX_MONEY_CENTS`]) in every response.

use std::collections::HashSet;

use flashsale_engine::{OrderView, ReservationView, SkuView};
use flashsale_protocol::limits::{
    checked_total_cents, DEFAULT_RESERVATION_TTL_S, MAX_MONEY_CENTS, MAX_NAME_LEN,
    MAX_PAYMENT_REF_LEN, MAX_RESERVATION_TTL_S, MAX_STOCK,
};
use flashsale_protocol::{BuyerId, Line, ReleaseReason, SkuId, SkuSpec, MAX_LINES};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::json::objects;
pub use super::json::parse_json;
use super::problem::Problem;

/// Largest quantity on one reservation line.
pub const MAX_LINE_QTY: i64 = 1_000_000;

/// How every time in a response is written: RFC 3339 in UTC, always with milliseconds
/// (`2026-11-21T10:00:00.000Z`), so times line up and sort as strings.
const TIME_FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

/// Formats Unix milliseconds as RFC 3339 UTC with exactly three fraction digits
/// (`2026-11-21T10:00:00.000Z`, `2026-11-21T10:00:00.250Z`).
pub fn format_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(TIME_FORMAT).ok())
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

/// `value` if it is in `0..=max`, else 422 naming `field` and the range.
fn in_range(field: &str, value: i64, min: u64, max: u64) -> Result<u64, Problem> {
    u64::try_from(value)
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| Problem::invalid(format!("{field} must be {min}..={max}, got {value}")))
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
        let name = validated_name(&self.name)?;
        let price_cents = in_range("price_cents", self.price_cents, 0, MAX_MONEY_CENTS)?;
        let stock = in_range("stock", self.stock, 0, MAX_STOCK)?;
        let per_buyer_limit = match self.per_buyer_limit {
            None => None,
            Some(n) => Some(u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                Problem::invalid(format!("per_buyer_limit must be 1..={}, got {n}", u32::MAX))
            })?),
        };
        let (starts, ends) = self.sale_window()?;
        let ttl_s = match self.reservation_ttl_s {
            None => DEFAULT_RESERVATION_TTL_S,
            Some(t) => in_range("reservation_ttl_s", t, 1, MAX_RESERVATION_TTL_S)?,
        };
        Ok(SkuSpec {
            sku,
            name,
            price_cents,
            stock,
            per_buyer_limit,
            sale_starts_at_ms: starts,
            sale_ends_at_ms: ends,
            reservation_ttl_ms: ttl_s * 1000,
        })
    }

    /// The sale window in Unix ms; the end, if both are given, after the start.
    fn sale_window(&self) -> Result<(Option<u64>, Option<u64>), Problem> {
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
        Ok((starts, ends))
    }
}

/// A SKU display name, trimmed: 1..=[`MAX_NAME_LEN`] bytes, no control characters.
fn validated_name(name: &str) -> Result<String, Problem> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Problem::invalid(format!(
            "name must be 1..={MAX_NAME_LEN} bytes"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Problem::invalid("name must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// `POST /v1/skus/{sku}/restock` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestockBody {
    /// Units to add.
    pub qty: i64,
}

impl RestockBody {
    /// The validated quantity: 1..=[`MAX_STOCK`] (the SKU's total after it, too, must stay
    /// within [`MAX_STOCK`]: see the restock handler).
    pub fn qty(&self) -> Result<u64, Problem> {
        in_range("qty", self.qty, 1, MAX_STOCK)
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
    /// What to hold; each line a JSON object.
    #[serde(deserialize_with = "objects")]
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

/// `cents` as a response value: exact in every JSON client (at most [`MAX_MONEY_CENTS`]).
/// Anything larger was stored by a bug (requests above it are refused): 500, never a rounded
/// or saturated number.
fn exact_cents(what: &str, cents: u64) -> Result<u64, Problem> {
    if cents <= MAX_MONEY_CENTS {
        Ok(cents)
    } else {
        Err(Problem::internal(format!(
            "{what} of {cents} cents exceeds the money limit of {MAX_MONEY_CENTS}"
        )))
    }
}

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

impl TryFrom<&SkuView> for SkuJson {
    type Error = Problem;

    fn try_from(v: &SkuView) -> Result<Self, Problem> {
        Ok(SkuJson {
            sku: v.sku.to_string(),
            name: v.name.clone(),
            price_cents: exact_cents(&format!("price of SKU {}", v.sku), v.price_cents)?,
            total: v.total,
            available: v.available,
            reserved: v.reserved,
            sold: v.sold,
            per_buyer_limit: v.per_buyer_limit,
            sale_starts_at: v.sale_starts_at_ms.map(format_ms),
            sale_ends_at: v.sale_ends_at_ms.map(format_ms),
            reservation_ttl_s: v.reservation_ttl_ms / 1000,
        })
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

/// The lines as shown and their exact total; `owner` names the reservation or order in the
/// log if a price or the total exceeds the money limit (an internal bug: 500).
fn lines_json(owner: &str, lines: &[Line]) -> Result<(Vec<LineJson>, u64), Problem> {
    let out = lines
        .iter()
        .map(|l| {
            Ok(LineJson {
                sku: l.sku.to_string(),
                qty: l.qty,
                unit_price_cents: exact_cents(
                    &format!("unit price of {} in {owner}", l.sku),
                    l.unit_price_cents,
                )?,
            })
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    let total = checked_total_cents(lines.iter().map(|l| (l.qty, l.unit_price_cents))).ok_or_else(
        || {
            Problem::internal(format!(
                "the total of {owner} exceeds the money limit of {MAX_MONEY_CENTS} cents"
            ))
        },
    )?;
    Ok((out, total))
}

/// The contract's name of a release reason.
pub fn release_reason_str(r: ReleaseReason) -> &'static str {
    match r {
        ReleaseReason::Cancelled => "cancelled",
        ReleaseReason::Expired => "expired",
        ReleaseReason::Aborted => "aborted",
    }
}

impl TryFrom<&ReservationView> for ReservationJson {
    type Error = Problem;

    fn try_from(v: &ReservationView) -> Result<Self, Problem> {
        let (lines, total_cents) = lines_json(&format!("reservation {}", v.id), &v.lines)?;
        Ok(ReservationJson {
            id: v.id.to_string(),
            status: v.status.as_str(),
            buyer: v.buyer.to_string(),
            lines,
            total_cents,
            created_at: format_ms(v.created_at_ms),
            expires_at: format_ms(v.expires_at_ms),
            order_id: v.order.map(|o| o.to_string()),
            release_reason: v.release_reason.map(release_reason_str),
        })
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

impl TryFrom<&OrderView> for OrderJson {
    type Error = Problem;

    fn try_from(v: &OrderView) -> Result<Self, Problem> {
        let owner = format!("order {}", v.id);
        let (lines, total_cents) = lines_json(&owner, &v.lines)?;
        if total_cents != v.total_cents {
            return Err(Problem::internal(format!(
                "{owner}: stored total {} differs from its lines' total {total_cents}",
                v.total_cents
            )));
        }
        Ok(OrderJson {
            id: v.id.to_string(),
            reservation_id: v.reservation.to_string(),
            buyer: v.buyer.to_string(),
            lines,
            total_cents,
            payment_ref: v.payment_ref.clone(),
            created_at: format_ms(v.created_at_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::problem::ProblemKind;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(format_ms(1_795_255_200_000), "2026-11-21T10:00:00.000Z");
        assert_eq!(format_ms(1_795_255_200_250), "2026-11-21T10:00:00.250Z");
        assert_eq!(format_ms(1_795_255_200_205), "2026-11-21T10:00:00.205Z");
        assert_eq!(format_ms(1_795_255_200_001), "2026-11-21T10:00:00.001Z");
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
