//! JSON bodies of the API: request shapes (unknown fields refused, objects only), their
//! validation against [`flashsale_protocol::limits`], and the views returned. Times are RFC 3339
//! in UTC; money is integer cents, exact (at most [`MAX_MONEY_CENTS`]) in every response.

use std::borrow::Cow;
use std::cell::RefCell;

use flashsale_engine::{OrderView, ReservationView, SkuView};
use flashsale_protocol::limits::{
    checked_total_cents, DEFAULT_RESERVATION_TTL_S, MAX_EXTENSIONS, MAX_MONEY_CENTS, MAX_NAME_LEN,
    MAX_PAYMENT_REF_LEN, MAX_RESERVATION_TTL_S, MAX_STOCK,
};
use flashsale_protocol::{BuyerId, Line, PaymentRef, ReleaseReason, SkuId, SkuSpec, MAX_LINES};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::json::{objects, optional_str};
pub use super::json::{parse_json, JsonInt};
use super::problem::Problem;

/// Largest quantity on one reservation line.
pub const MAX_LINE_QTY: u64 = 1_000_000;

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

/// Most fraction digits of a time (nanoseconds); times are kept to the millisecond.
const MAX_FRACTION_DIGITS: usize = 9;

/// Parses a time of a request into Unix milliseconds (a fraction below the millisecond is
/// dropped); `field` names it in the error (422). The one accepted shape is RFC 3339 in UTC,
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`: upper-case `T` and `Z`, a year from 1970 to 9999, no
/// leap second, 1 to 9 fraction digits if any; the date must exist. docs/openapi.yaml states
/// the same as the `Time` schema's `pattern` and `format`.
pub fn parse_time(field: &str, s: &str) -> Result<u64, Problem> {
    let refused = |why: &str| {
        Problem::invalid(format!(
            "{field}: {s:?} is not a UTC time like 2026-11-21T10:00:00Z ({why})"
        ))
    };
    if !utc_shape(s) {
        return Err(refused(
            "RFC 3339 ending in Z, year 1970 to 9999, seconds 00 to 59, at most 9 fraction digits",
        ));
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| refused(&e.to_string()))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| refused("before 1970"))
}

/// Whether `s` is `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` with a year from 1970, a month 01..12, a day
/// 01..31, an hour 00..23, minutes and seconds 00..59 (the calendar is checked by the parser).
fn utc_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .map(|d| d.iter().fold(0u32, |acc, x| acc * 10 + u32::from(x - b'0')))
    };
    let fixed = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':';
    if !fixed {
        return false;
    }
    let fields = [
        (digits(0..4), 1970..=9999),
        (digits(5..7), 1..=12),
        (digits(8..10), 1..=31),
        (digits(11..13), 0..=23),
        (digits(14..16), 0..=59),
        (digits(17..19), 0..=59),
    ];
    if !fields
        .iter()
        .all(|(v, range)| v.is_some_and(|v| range.contains(&v)))
    {
        return false;
    }
    match &b[19..] {
        [b'Z'] => true,
        [b'.', fraction @ .., b'Z'] => {
            (1..=MAX_FRACTION_DIGITS).contains(&fraction.len())
                && fraction.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// `value` if it is in `min..=max`, else 422 naming `field` and the range.
fn in_range(field: &str, value: JsonInt, min: u64, max: u64) -> Result<u64, Problem> {
    in_range_of(|| field.to_owned(), value, min, max)
}

/// [`in_range`] with the field's name built only when the value is out of range (a line's
/// `lines[i].qty`: no allocation on the accepted path).
fn in_range_of(
    field: impl FnOnce() -> String,
    value: JsonInt,
    min: u64,
    max: u64,
) -> Result<u64, Problem> {
    u64::try_from(value.0)
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            let field = field();
            Problem::invalid(format!("{field} must be {min}..={max}, got {value}"))
        })
}

/// `PUT /v1/skus/{sku}` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSkuBody {
    /// Display name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: JsonInt,
    /// Total stock (available + reserved + sold).
    pub stock: JsonInt,
    /// Most units one buyer may hold and buy together.
    #[serde(default)]
    pub per_buyer_limit: Option<JsonInt>,
    /// Sale opens at (RFC 3339).
    #[serde(default)]
    pub sale_starts_at: Option<String>,
    /// Sale closes at (RFC 3339).
    #[serde(default)]
    pub sale_ends_at: Option<String>,
    /// Reservation TTL in seconds.
    #[serde(default)]
    pub reservation_ttl_s: Option<JsonInt>,
    /// Longest hold from creation, extensions included, in seconds.
    #[serde(default)]
    pub max_hold_s: Option<JsonInt>,
    /// Most extensions of one reservation.
    #[serde(default)]
    pub max_extensions: Option<JsonInt>,
}

impl PutSkuBody {
    /// Validates into the engine's [`SkuSpec`].
    pub fn into_spec(self, sku: SkuId) -> Result<SkuSpec, Problem> {
        let name = validated_name(&self.name)?;
        let price_cents = in_range("price_cents", self.price_cents, 0, MAX_MONEY_CENTS)?;
        let stock = in_range("stock", self.stock, 0, MAX_STOCK)?;
        let per_buyer_limit = match self.per_buyer_limit {
            None => None,
            Some(n) => {
                let n = in_range("per_buyer_limit", n, 1, u64::from(u32::MAX))?;
                Some(u32::try_from(n).map_err(|_| Problem::internal("per_buyer_limit range"))?)
            }
        };
        let (starts, ends) = self.sale_window()?;
        let ttl_s = match self.reservation_ttl_s {
            None => DEFAULT_RESERVATION_TTL_S,
            Some(t) => in_range("reservation_ttl_s", t, 1, MAX_RESERVATION_TTL_S)?,
        };
        let max_hold_ms = match self.max_hold_s {
            None => flashsale_protocol::default_max_hold_ms(ttl_s * 1000),
            Some(t) => {
                let t = in_range("max_hold_s", t, 1, MAX_RESERVATION_TTL_S)?;
                if t < ttl_s {
                    return Err(Problem::invalid(format!(
                        "max_hold_s ({t}) must be at least reservation_ttl_s ({ttl_s})"
                    )));
                }
                t * 1000
            }
        };
        let max_extensions = match self.max_extensions {
            None => flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
            Some(n) => {
                let n = in_range("max_extensions", n, 0, u64::from(MAX_EXTENSIONS))?;
                u32::try_from(n).map_err(|_| Problem::internal("max_extensions range"))?
            }
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
            max_hold_ms,
            max_extensions,
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

/// A SKU display name: 1..=[`MAX_NAME_LEN`] characters (Unicode scalar values, as JSON
/// Schema's `maxLength` counts them) as sent, no control characters, not only white space;
/// kept without leading and trailing white space.
fn validated_name(name: &str) -> Result<String, Problem> {
    let chars = name.chars().count();
    if !(1..=MAX_NAME_LEN).contains(&chars) {
        return Err(Problem::invalid(format!(
            "name must be 1..={MAX_NAME_LEN} characters, got {chars}"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Problem::invalid("name must not contain control characters"));
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(Problem::invalid("name must not be only white space"));
    }
    Ok(name.to_owned())
}

/// `POST /v1/skus/{sku}/restock` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestockBody {
    /// Units to add.
    pub qty: JsonInt,
}

impl RestockBody {
    /// The validated quantity: 1..=[`MAX_STOCK`] (the SKU's total after it, too, must stay
    /// within [`MAX_STOCK`]: see the restock handler).
    pub fn qty(&self) -> Result<u64, Problem> {
        in_range("qty", self.qty, 1, MAX_STOCK)
    }
}

/// One line of a reservation request. The SKU borrows the request body when it holds no
/// escape (the usual case).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineBody<'a> {
    /// The SKU (validated after parsing so that a bad id is 422, not 400).
    #[serde(borrow)]
    pub sku: Cow<'a, str>,
    /// Units; must be ≥ 1.
    pub qty: JsonInt,
}

/// The lines of a request as read: one (the common case) held inline, more on the heap.
pub type LineBodies<'a> = SmallVec<[LineBody<'a>; 1]>;

/// `POST /v1/reservations` body. Its strings borrow the request body when they hold no
/// escape, so reading the usual request allocates nothing but the validated ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody<'a> {
    /// The buyer; required with a storefront token, implied by a buyer JWT.
    #[serde(default, borrow, deserialize_with = "optional_str")]
    pub buyer: Option<Cow<'a, str>>,
    /// What to hold; each line a JSON object.
    #[serde(deserialize_with = "objects", borrow)]
    pub lines: LineBodies<'a>,
    /// How long to hold, in seconds (at most every line's SKU `reservation_ttl_s`).
    #[serde(default)]
    pub ttl_s: Option<JsonInt>,
}
impl<'a> ReserveBody<'a> {
    /// Parses a `POST /v1/reservations` body, as [`parse_json`] does. The body of a
    /// one-line reservation written compactly in the order the contract lists its members
    /// (`{"buyer":"…","lines":[{"sku":"…","qty":N}]}`, no escapes: what storefronts and the
    /// load generators send) is read by a scan of its bytes; any other body, valid or not, by
    /// `serde_json` (ADR 0064).
    pub fn parse(body: &'a [u8]) -> Result<Self, Problem> {
        match Self::compact(body) {
            Some(parsed) => Ok(parsed),
            None => parse_json(body),
        }
    }

    /// The compact one-line body, if `body` is exactly that; `None` for anything else. What
    /// it accepts, `serde_json` reads as the same value: strings hold no escape, no control
    /// character and valid UTF-8; the quantity is a JSON integer without sign, fraction,
    /// exponent or leading zero, of at most [`COMPACT_QTY_DIGITS`] digits.
    fn compact(body: &'a [u8]) -> Option<Self> {
        let rest = body.strip_prefix(b"{\"buyer\":\"")?;
        let (buyer, rest) = plain_str(rest)?;
        let rest = rest.strip_prefix(b",\"lines\":[{\"sku\":\"")?;
        let (sku, rest) = plain_str(rest)?;
        let rest = rest.strip_prefix(b",\"qty\":")?;
        let digits = rest.strip_suffix(b"}]}")?;
        if !(1..=COMPACT_QTY_DIGITS).contains(&digits.len())
            || digits[0] == b'0'
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let qty = digits
            .iter()
            .fold(0i128, |n, d| n * 10 + i128::from(d - b'0'));
        let mut lines = LineBodies::new();
        lines.push(LineBody {
            sku: Cow::Borrowed(sku),
            qty: JsonInt(qty),
        });
        Some(ReserveBody {
            buyer: Some(Cow::Borrowed(buyer)),
            lines,
            ttl_s: None,
        })
    }
}

/// Most digits of a quantity [`ReserveBody::compact`] reads (a longer one is read by
/// `serde_json`; every quantity above 1,000,000 is refused after parsing either way).
const COMPACT_QTY_DIGITS: usize = 18;

/// The text of a JSON string whose opening quote was just read, and what follows its closing
/// quote; `None` if it holds an escape or a control character, is not UTF-8, or is not closed.
fn plain_str(s: &[u8]) -> Option<(&str, &[u8])> {
    let end = s
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if s[end] != b'"' {
        return None;
    }
    let text = std::str::from_utf8(&s[..end]).ok()?;
    Some((text, &s[end + 1..]))
}

impl ReserveBody<'_> {
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
        // At most MAX_LINES lines: a scan of the lines taken so far finds a repeated SKU
        // without hashing or cloning every SKU into a set.
        let mut out: Vec<(SkuId, u32)> = Vec::with_capacity(self.lines.len());
        for (i, line) in self.lines.iter().enumerate() {
            let sku =
                sku_id(&line.sku).map_err(|e| Problem::invalid(format!("lines[{i}].sku: {e}")))?;
            let qty = in_range_of(|| format!("lines[{i}].qty"), line.qty, 1, MAX_LINE_QTY)?;
            let qty = u32::try_from(qty).map_err(|_| Problem::internal("line qty range"))?;
            if out.iter().any(|(taken, _)| *taken == sku) {
                return Err(Problem::invalid(format!(
                    "lines[{i}]: SKU {sku} appears more than once"
                )));
            }
            out.push((sku, qty));
        }
        Ok(out)
    }

    /// The validated hold in ms, if given (1..=86,400 s; the SKUs' bounds are the engine's).
    pub fn ttl_ms(&self) -> Result<Option<u64>, Problem> {
        self.ttl_s
            .map(|t| in_range("ttl_s", t, 1, MAX_RESERVATION_TTL_S).map(|s| s * 1000))
            .transpose()
    }

    /// The validated buyer id from the body, if any.
    pub fn buyer(&self) -> Result<Option<BuyerId>, Problem> {
        self.buyer
            .as_deref()
            .map(|b| BuyerId::new(b).map_err(|e| Problem::invalid(format!("buyer: {e}"))))
            .transpose()
    }
}

thread_local! {
    /// The SKU id this thread validated last (see [`sku_id`]).
    static LAST_SKU: RefCell<Option<SkuId>> = const { RefCell::new(None) };
}

/// `s` validated as a SKU id. The buyers of a hot item all name the same SKU: when `s` is the
/// one this thread validated last, that id is shared (a reference count) instead of a new
/// allocation per request (ADR 0064). An id's validity depends on its text alone.
fn sku_id(s: &str) -> Result<SkuId, flashsale_protocol::IdError> {
    LAST_SKU.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            // Not reachable (validating does not call back into here); stay correct.
            return SkuId::new(s);
        };
        if let Some(id) = last.as_ref().filter(|id| id.as_str() == s) {
            return Ok(id.clone());
        }
        let id = SkuId::new(s)?;
        *last = Some(id.clone());
        Ok(id)
    })
}

/// `POST /v1/reservations/{id}/extend` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// The hold asked for, in seconds from now.
    pub ttl_s: JsonInt,
}

impl ExtendBody {
    /// The validated hold in ms (1..=86,400 s; the SKUs' bounds are the engine's).
    pub fn ttl_ms(&self) -> Result<u64, Problem> {
        in_range("ttl_s", self.ttl_s, 1, MAX_RESERVATION_TTL_S).map(|s| s * 1000)
    }
}

/// `POST /v1/reservations/{id}/confirm` body. The reference borrows the request body when
/// it holds no escape (the usual case), so a confirm allocates no `String` for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody<'a> {
    /// The storefront's payment reference.
    #[serde(borrow)]
    pub payment_ref: Cow<'a, str>,
}

impl ConfirmBody<'_> {
    /// The validated payment reference: 1..=[`MAX_PAYMENT_REF_LEN`] printable ASCII
    /// characters, spaces only between others (what payment providers issue; no control
    /// characters, nothing to trim), as the engine keeps it (inline up to
    /// [`PaymentRef::INLINE_CAP`] bytes: no allocation).
    pub fn payment_ref(&self) -> Result<PaymentRef, Problem> {
        let r: &str = &self.payment_ref;
        let printable = r.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        let padded = r.starts_with(' ') || r.ends_with(' ');
        if r.is_empty() || r.len() > MAX_PAYMENT_REF_LEN || !printable || padded {
            return Err(Problem::invalid(format!(
                "payment_ref must be 1..={MAX_PAYMENT_REF_LEN} printable ASCII characters, \
                 spaces only between others"
            )));
        }
        Ok(PaymentRef::from(r))
    }
}

/// `POST /v1/reservations/{id}/cancel` body: empty, or an empty object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {}

/// `cents` as a response value: exact in every JSON client (at most [`MAX_MONEY_CENTS`]).
/// Anything larger was stored by a bug (requests above it are refused): 500, never a rounded
/// or saturated number. `what` names the value in that error; it is built only then (no
/// allocation on the path every answer takes).
fn exact_cents(what: impl FnOnce() -> String, cents: u64) -> Result<u64, Problem> {
    if cents <= MAX_MONEY_CENTS {
        Ok(cents)
    } else {
        let what = what();
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
    /// Longest hold from creation, extensions included, in seconds.
    pub max_hold_s: u64,
    /// Most extensions of one reservation.
    pub max_extensions: u32,
}

impl TryFrom<&SkuView> for SkuJson {
    type Error = Problem;

    fn try_from(v: &SkuView) -> Result<Self, Problem> {
        Ok(SkuJson {
            sku: v.sku.to_string(),
            name: v.name.clone(),
            price_cents: exact_cents(|| format!("price of SKU {}", v.sku), v.price_cents)?,
            total: v.total,
            available: v.available,
            reserved: v.reserved,
            sold: v.sold,
            per_buyer_limit: v.per_buyer_limit,
            sale_starts_at: v.sale_starts_at_ms.map(format_ms),
            sale_ends_at: v.sale_ends_at_ms.map(format_ms),
            reservation_ttl_s: v.reservation_ttl_ms / 1000,
            max_hold_s: v.max_hold_ms / 1000,
            max_extensions: v.max_extensions,
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
    /// How many times the hold was extended.
    pub extensions: u32,
}

/// The lines as shown and their exact total; `owner` names the reservation or order in the
/// log if a price or the total exceeds the money limit (an internal bug: 500).
fn lines_json(owner: &str, lines: &[Line]) -> Result<(Vec<LineJson>, u64), Problem> {
    let total = checked_lines(|| owner.to_owned(), lines)?;
    let out = lines
        .iter()
        .map(|l| LineJson {
            sku: l.sku.to_string(),
            qty: l.qty,
            unit_price_cents: l.unit_price_cents,
        })
        .collect();
    Ok((out, total))
}

/// Checks that every unit price and the lines' total are within the money limit and returns
/// the total; `owner` (built only on failure) names the reservation or order in the 500.
fn checked_lines(owner: impl Fn() -> String, lines: &[Line]) -> Result<u64, Problem> {
    for l in lines {
        exact_cents(
            || format!("unit price of {} in {}", l.sku, owner()),
            l.unit_price_cents,
        )?;
    }
    checked_total_cents(lines.iter().map(|l| (l.qty, l.unit_price_cents))).ok_or_else(|| {
        Problem::internal(format!(
            "the total of {} exceeds the money limit of {MAX_MONEY_CENTS} cents",
            owner()
        ))
    })
}

/// A reservation as the API shows it, serialized straight from the engine's view: the bytes
/// of [`ReservationJson`] without its owned strings (ids, times and SKUs are written into the
/// output as they are; ADR 0051 addendum). Built by [`ReservationOut::new`], which checks the
/// money limit first.
#[derive(Debug, Clone, Copy)]
pub struct ReservationOut<'a> {
    /// The reservation.
    view: &'a ReservationView,
    /// Its lines' total, checked.
    total_cents: u64,
}

impl<'a> ReservationOut<'a> {
    /// The view, once its prices and total are within the money limit (else 500, as
    /// [`ReservationJson::try_from`]).
    pub fn new(view: &'a ReservationView) -> Result<Self, Problem> {
        let total_cents = checked_lines(|| format!("reservation {}", view.id), &view.lines)?;
        Ok(ReservationOut { view, total_cents })
    }
}

impl Serialize for ReservationOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let v = self.view;
        // The fields and their order are ReservationJson's (the contract's bytes).
        let mut st = s.serialize_struct("ReservationJson", 10)?;
        st.serialize_field("id", &Shown(&v.id))?;
        st.serialize_field("status", v.status.as_str())?;
        st.serialize_field("buyer", &v.buyer)?;
        st.serialize_field("lines", &LinesOut(&v.lines))?;
        st.serialize_field("total_cents", &self.total_cents)?;
        st.serialize_field("created_at", &TimeOut(v.created_at_ms))?;
        st.serialize_field("expires_at", &TimeOut(v.expires_at_ms))?;
        st.serialize_field("order_id", &v.order.as_ref().map(Shown))?;
        st.serialize_field("release_reason", &v.release_reason.map(release_reason_str))?;
        st.serialize_field("extensions", &v.extensions)?;
        st.end()
    }
}

impl ReservationOut<'_> {
    /// Writes the reservation's JSON into `out`: the bytes `serde_json` writes for this value
    /// (and for [`ReservationJson`]), member by member with the names as constant bytes, the
    /// ids, numbers and times as digits (ADR 0064). Strings that may need escaping (the buyer,
    /// the SKUs) go through `serde_json`'s own string writer.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let v = self.view;
        out.extend_from_slice(b"{\"id\":\"");
        write_reservation_id(out, v.id);
        out.extend_from_slice(b"\",\"status\":\"");
        out.extend_from_slice(v.status.as_str().as_bytes());
        out.extend_from_slice(b"\",\"buyer\":");
        write_json_str(out, v.buyer.as_str())?;
        out.extend_from_slice(b",\"lines\":[");
        for (i, l) in v.lines.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"sku\":");
            write_json_str(out, l.sku.as_str())?;
            out.extend_from_slice(b",\"qty\":");
            write_u64(out, u64::from(l.qty));
            out.extend_from_slice(b",\"unit_price_cents\":");
            write_u64(out, l.unit_price_cents);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"total_cents\":");
        write_u64(out, self.total_cents);
        out.extend_from_slice(b",\"created_at\":");
        write_json_time(out, v.created_at_ms)?;
        out.extend_from_slice(b",\"expires_at\":");
        write_json_time(out, v.expires_at_ms)?;
        out.extend_from_slice(b",\"order_id\":");
        match v.order {
            Some(order) => {
                out.extend_from_slice(b"\"ord_");
                write_hex16(out, order.0);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"release_reason\":");
        match v.release_reason {
            Some(r) => {
                out.push(b'"');
                out.extend_from_slice(release_reason_str(r).as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"extensions\":");
        write_u64(out, u64::from(v.extensions));
        out.push(b'}');
        Ok(())
    }
}

/// Writes `s` as a JSON string, escaped exactly as `serde_json` escapes it (it does it).
fn write_json_str(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    s.serialize(&mut serde_json::Serializer::new(out))
}

/// Writes `n` in decimal, as `serde_json` writes an integer.
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes a reservation id as its `Display` does (`res_` and 16 hex digits), without the
/// formatting machinery.
pub fn write_reservation_id(out: &mut Vec<u8>, id: flashsale_protocol::ReservationId) {
    out.extend_from_slice(b"res_");
    write_hex16(out, id.0);
}

/// Writes the 16 lower-case hex digits of an opaque id's value (its `Display` after the
/// prefix: `{:016x}`).
fn write_hex16(out: &mut Vec<u8>, value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    for (i, d) in digits.iter_mut().enumerate() {
        let shift = 60 - 4 * i;
        *d = HEX[((value >> shift) & 0xf) as usize];
    }
    out.extend_from_slice(&digits);
}

/// Writes Unix milliseconds as the JSON string [`TimeOut`] serializes.
fn write_json_time(out: &mut Vec<u8>, ms: u64) -> Result<(), serde_json::Error> {
    let mut buf = [0u8; TIME_LEN];
    match write_time(ms, &mut buf) {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
            Ok(())
        }
        None => write_json_str(out, &format_ms(ms)),
    }
}

/// A value serialized as the string its `Display` writes, straight into the output.
#[derive(Debug, Clone, Copy)]
struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Display> Serialize for Shown<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// Lines serialized as [`LineJson`]s (prices already checked by [`checked_lines`]).
#[derive(Debug, Clone, Copy)]
struct LinesOut<'a>(&'a [Line]);

impl Serialize for LinesOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq as _, SerializeStruct as _};
        /// One line, as [`LineJson`].
        struct LineOut<'a>(&'a Line);
        impl Serialize for LineOut<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut st = s.serialize_struct("LineJson", 3)?;
                st.serialize_field("sku", &self.0.sku)?;
                st.serialize_field("qty", &self.0.qty)?;
                st.serialize_field("unit_price_cents", &self.0.unit_price_cents)?;
                st.end()
            }
        }
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for l in self.0 {
            seq.serialize_element(&LineOut(l))?;
        }
        seq.end()
    }
}

/// Unix milliseconds serialized as [`format_ms`] writes them, from a buffer on the stack.
#[derive(Debug, Clone, Copy)]
struct TimeOut(u64);

impl Serialize for TimeOut {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; TIME_LEN];
        match write_time(self.0, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&format_ms(self.0)),
        }
    }
}

/// Length of a time as written: `2026-11-21T10:00:00.000Z`.
const TIME_LEN: usize = 24;

/// Writes `ms` into `buf` as [`format_ms`] does, for the years it writes with four digits
/// (1970 to 9999); `None` for anything else (then [`format_ms`] decides).
fn write_time(ms: u64, buf: &mut [u8; TIME_LEN]) -> Option<&str> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let fields: [(u32, usize, usize); 7] = [
        (year, 0, 4),
        (u32::from(u8::from(t.month())), 5, 2),
        (u32::from(t.day()), 8, 2),
        (u32::from(t.hour()), 11, 2),
        (u32::from(t.minute()), 14, 2),
        (u32::from(t.second()), 17, 2),
        (u32::from(t.millisecond()), 20, 3),
    ];
    *buf = *b"0000-00-00T00:00:00.000Z";
    for (mut value, at, width) in fields {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    std::str::from_utf8(buf).ok()
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
            extensions: v.extensions,
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
        let e = parse_time("sale_starts_at", "tomorrow").unwrap_err();
        assert_eq!(e.kind, ProblemKind::Invalid);
        assert!(e.detail.contains("sale_starts_at"));
    }

    /// The one shape docs/openapi.yaml's `Time` allows (its `pattern` and `format`), and
    /// nothing else: what the document calls valid is accepted, the rest is 422.
    #[test]
    fn times_are_utc_from_1970_to_9999_in_one_shape() {
        for (ok, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01T00:00:00.001Z", 1),
            ("2024-02-29T23:59:59.5Z", 1_709_251_199_500),
            ("2026-11-21T10:00:00.123456789Z", 1_795_255_200_123),
            ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
        ] {
            assert_eq!(parse_time("t", ok).unwrap(), ms, "{ok}");
        }
        for bad in [
            "1969-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
            "2026-11-21T11:00:00+01:00",
            "2026-11-21T10:00:00+00:00",
            "2026-11-21T10:00:00-00:00",
            "2026-11-21t10:00:00Z",
            "2026-11-21T10:00:00z",
            "2026-11-21 10:00:00Z",
            "2026-11-21T10:00Z",
            "2026-11-21T10:00:00",
            "2026-11-21T10:00:60Z",
            "2026-11-21T24:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00:00.1234567890Z",
            "2026-11-21T10:00:00.1aZ",
            "+2026-11-21T10:00:00Z",
            "2026-11-21T10:00:00Z ",
            "２０２６-11-21T10:00:00Z",
            "",
        ] {
            let e = parse_time("sale_ends_at", bad).unwrap_err();
            assert_eq!(e.kind, ProblemKind::Invalid, "{bad}");
            assert!(
                e.detail.starts_with("sale_ends_at: "),
                "{bad}: {}",
                e.detail
            );
        }
    }

    #[test]
    fn integers_may_be_written_as_any_json_number_without_a_fraction() {
        let sku = SkuId::new("tee").unwrap();
        let spec = parse_json::<PutSkuBody>(
            br#"{"name":"Tee","price_cents":25511.0,"stock":1e3,"per_buyer_limit":1123982.0,
            "reservation_ttl_s":6.0E1}"#,
        )
        .unwrap()
        .into_spec(sku.clone())
        .unwrap();
        assert_eq!(spec.price_cents, 25_511);
        assert_eq!(spec.stock, 1000);
        assert_eq!(spec.per_buyer_limit, Some(1_123_982));
        assert_eq!(spec.reservation_ttl_ms, 60_000);
        // Exact where a float is not: 2^53 + 1 is refused as above the money limit, by value.
        let e =
            parse_json::<PutSkuBody>(br#"{"name":"x","price_cents":9007199254740993.0,"stock":1}"#)
                .unwrap()
                .into_spec(sku.clone())
                .unwrap_err();
        assert_eq!(e.kind, ProblemKind::Invalid);
        assert!(e.detail.contains("got 9007199254740993"), "{}", e.detail);
        let r: RestockBody = parse_json(br#"{"qty":153.0}"#).unwrap();
        assert_eq!(r.qty().unwrap(), 153);
        let body: ReserveBody =
            parse_json(br#"{"buyer":"b","lines":[{"sku":"a","qty":2416.0}]}"#).unwrap();
        assert_eq!(body.validated_lines().unwrap()[0].1, 2416);
        // A fraction is a type error (400); a value beyond a limit, however large, is 422.
        for bad in [
            &br#"{"qty":1.5}"#[..],
            br#"{"qty":1e-1}"#,
            br#"{"qty":"3"}"#,
            br#"{"qty":null}"#,
        ] {
            let e = parse_json::<RestockBody>(bad).unwrap_err();
            assert_eq!(
                e.kind,
                ProblemKind::Malformed,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for (big, shown) in [
            (&br#"{"qty":1e13}"#[..], "got 10000000000000"),
            (br#"{"qty":1e400}"#, "got 1.7e38 or more"),
            (br#"{"qty":-1e400}"#, "got -1.7e38 or more"),
            (br#"{"qty":-0.0}"#, "got 0"),
        ] {
            let e = parse_json::<RestockBody>(big).unwrap().qty().unwrap_err();
            assert_eq!(e.kind, ProblemKind::Invalid);
            assert!(e.detail.contains(shown), "{}", e.detail);
        }
        let e = parse_json::<PutSkuBody>(
            br#"{"name":"x","price_cents":1,"stock":1,"per_buyer_limit":4294967296}"#,
        )
        .unwrap()
        .into_spec(sku)
        .unwrap_err();
        assert!(
            e.detail.contains("per_buyer_limit must be 1..=4294967295"),
            "{}",
            e.detail
        );
    }

    #[test]
    fn names_count_characters_refuse_controls_and_blanks_and_are_trimmed() {
        let name = |n: &str| validated_name(n);
        assert_eq!(name("  Tee shirt \u{3000}").unwrap(), "Tee shirt");
        assert_eq!(
            name(&"é".repeat(MAX_NAME_LEN)).unwrap().chars().count(),
            MAX_NAME_LEN
        );
        assert_eq!(name("Café\u{a0}crème").unwrap(), "Café\u{a0}crème");
        for bad in [
            String::new(),
            "é".repeat(MAX_NAME_LEN + 1),
            format!(" {}", "x".repeat(MAX_NAME_LEN)),
            " ".into(),
            "\u{a0}\u{2003}\u{3000}".into(),
            "a\tb".into(),
            "a\nb".into(),
            "\u{85}a".into(),
            "a\u{7f}".into(),
            "a\u{9f}".into(),
            "\u{0}".into(),
        ] {
            assert_eq!(
                name(&bad).unwrap_err().kind,
                ProblemKind::Invalid,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn payment_refs_are_printable_ascii_with_inner_spaces_only() {
        let pay = |r: &str| {
            ConfirmBody {
                payment_ref: r.into(),
            }
            .payment_ref()
        };
        for ok in [
            "pay_1",
            "INV 2026/11 #7",
            "~",
            &"p".repeat(MAX_PAYMENT_REF_LEN),
        ] {
            assert_eq!(pay(ok).unwrap(), ok);
        }
        for bad in [
            "",
            " ",
            " pay",
            "pay ",
            "pay\t1",
            "pay\u{7f}",
            "z\u{4}VA",
            "payé",
            "pay\u{a0}1",
            &"p".repeat(MAX_PAYMENT_REF_LEN + 1),
        ] {
            assert_eq!(pay(bad).unwrap_err().kind, ProblemKind::Invalid, "{bad:?}");
        }
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
        /// The request body `s`, parsed (its strings borrow `s`).
        fn body(s: &str) -> ReserveBody<'_> {
            parse_json(s.as_bytes()).unwrap()
        }
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
            // Times are kept to the millisecond: an end within the start's millisecond is not
            // after it.
            r#"{"name":"x","price_cents":1,"stock":1,"sale_starts_at":"2026-11-21T10:00:00.0001Z","sale_ends_at":"2026-11-21T10:00:00.0009Z"}"#,
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
        assert!(
            matches!(c.payment_ref, Cow::Borrowed(_)),
            "no escape: borrowed"
        );
        assert_eq!(c.payment_ref().unwrap().as_str(), "pay_1");
        assert!(c.payment_ref().unwrap().is_inline());
        // An escaped reference is unescaped into its own buffer, and means the same.
        let c: ConfirmBody = parse_json(br#"{"payment_ref":"pay\u005f1"}"#).unwrap();
        assert_eq!(c.payment_ref().unwrap().as_str(), "pay_1");
        let c: ConfirmBody = parse_json(br#"{"payment_ref":""}"#).unwrap();
        assert_eq!(c.payment_ref().unwrap_err().kind, ProblemKind::Invalid);
        let r: RestockBody = parse_json(br#"{"qty":0}"#).unwrap();
        assert_eq!(r.qty().unwrap_err().kind, ProblemKind::Invalid);
        assert!(parse_json::<CancelBody>(b"{}").is_ok());
        assert!(parse_json::<CancelBody>(br#"{"why":1}"#).is_err());
    }

    /// The reservation reply written from the view is byte for byte the one built through
    /// `ReservationJson` (the contract's bytes), in every status and for times from 1970 to
    /// past 9999, and refuses the same over-limit prices.
    #[test]
    fn reservations_written_from_the_view_are_the_bytes_of_reservation_json() {
        use flashsale_engine::ReservationStatus;
        use flashsale_protocol::{OrderId, ReservationId};
        let line = |sku: &str, qty, unit_price_cents| Line {
            sku: SkuId::new(sku).unwrap(),
            qty,
            unit_price_cents,
        };
        let held = ReservationView {
            id: ReservationId::compose(1, 42),
            status: ReservationStatus::Held,
            buyer: BuyerId::new("b\"uyer\\1").unwrap(),
            lines: vec![line("hot", 1, 1500)],
            created_at_ms: 1_795_255_200_205,
            expires_at_ms: 1_795_255_800_000,
            order: None,
            release_reason: None,
            extensions: 0,
        };
        let mut views = vec![held.clone()];
        views.push(ReservationView {
            status: ReservationStatus::Confirmed,
            order: Some(OrderId::compose(0, 7)),
            lines: vec![
                line("a", 2, 0),
                line("b.c-d_e", 1_000_000, MAX_MONEY_CENTS / 1_000_000),
            ],
            extensions: 3,
            ..held.clone()
        });
        for (status, reason) in [
            (ReservationStatus::Released, ReleaseReason::Cancelled),
            (ReservationStatus::Released, ReleaseReason::Aborted),
            (ReservationStatus::Expired, ReleaseReason::Expired),
        ] {
            views.push(ReservationView {
                status,
                release_reason: Some(reason),
                ..held.clone()
            });
        }
        for ms in [
            0,
            1,
            999,
            1_000,
            86_399_999,
            951_782_400_000,     // 2000-02-29
            253_402_300_799_999, // 9999-12-31T23:59:59.999Z
            253_402_300_800_000, // year 10000: not four digits
            u64::MAX,
        ] {
            views.push(ReservationView {
                created_at_ms: ms,
                expires_at_ms: ms.wrapping_add(600_000),
                ..held.clone()
            });
        }
        let mut ms = 1u64;
        while ms < 300_000_000_000_000 {
            views.push(ReservationView {
                created_at_ms: ms,
                expires_at_ms: ms / 3,
                ..held.clone()
            });
            ms = ms * 7 + 13;
        }
        for v in &views {
            let built = serde_json::to_string(&ReservationJson::try_from(v).unwrap()).unwrap();
            let written = serde_json::to_string(&ReservationOut::new(v).unwrap()).unwrap();
            assert_eq!(written, built);
            let mut direct = Vec::new();
            ReservationOut::new(v)
                .unwrap()
                .write_json(&mut direct)
                .unwrap();
            assert_eq!(String::from_utf8(direct).unwrap(), built, "write_json");
        }
        for lines in [
            vec![line("a", 1, MAX_MONEY_CENTS + 1)],
            vec![line("a", 2, MAX_MONEY_CENTS)],
        ] {
            let v = ReservationView {
                lines,
                ..held.clone()
            };
            let built = ReservationJson::try_from(&v).unwrap_err();
            let written = ReservationOut::new(&v).unwrap_err();
            assert_eq!((written.kind, &written.detail), (built.kind, &built.detail));
            assert_eq!(written.kind, ProblemKind::Internal);
        }
    }

    /// The compact reading of a reservation body is `serde_json`'s reading wherever it
    /// applies: over strings with escapes, quotes, controls, non-ASCII and invalid UTF-8,
    /// quantities in every notation, white space, other member orders and every truncation.
    #[test]
    fn compact_reservation_bodies_read_as_serde_json_reads_them() {
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let strings: [&[u8]; 12] = [
            b"b1",
            b"",
            b"hot",
            b"a b",
            b"caf\xc3\xa9",
            b"\xc3",
            b"\xff",
            b"x\\\"y",
            b"x\\u0041",
            b"x\\",
            b"x\ty",
            b"x\x7fy",
        ];
        let qtys: [&[u8]; 14] = [
            b"1",
            b"0",
            b"01",
            b"7",
            b"1000000",
            b"1000001",
            b"1.0",
            b"-1",
            b"1e3",
            b"999999999999999999",
            b"9999999999999999999",
            b" 1",
            b"1 ",
            b"",
        ];
        for buyer in strings {
            for sku in strings {
                for qty in qtys {
                    let mut b = br#"{"buyer":""#.to_vec();
                    b.extend_from_slice(buyer);
                    b.extend_from_slice(br#"","lines":[{"sku":""#);
                    b.extend_from_slice(sku);
                    b.extend_from_slice(br#"","qty":"#);
                    b.extend_from_slice(qty);
                    b.extend_from_slice(b"}]}");
                    bodies.push(b);
                }
            }
        }
        let base: &[u8] = br#"{"buyer":"b123","lines":[{"sku":"hot","qty":1}]}"#;
        for end in 0..base.len() {
            bodies.push(base[..end].to_vec());
            let mut extra = base.to_vec();
            extra.insert(end, b' ');
            bodies.push(extra);
        }
        for other in [
            &br#"{"buyer":"b","lines":[{"sku":"hot","qty":1}]} "#[..],
            br#"{"buyer":"b","lines":[{"sku":"hot","qty":1}]}x"#,
            br#"{"buyer":"b","lines":[{"sku":"hot","qty":1}]}}"#,
            br#"{"buyer":"b","lines":[{"sku":"hot","qty":1},{"sku":"b","qty":1}]}"#,
            br#"{"buyer":"b","lines":[{"sku":"hot","qty":1}],"ttl_s":5}"#,
            br#"{"lines":[{"sku":"hot","qty":1}],"buyer":"b"}"#,
            br#"{"buyer":"b","lines":[{"qty":1,"sku":"hot"}]}"#,
            br#"{"buyer":"b","lines":[{"sku":"hot","qty":1,"x":1}]}"#,
            br#"{"buyer":"b","lines":[{"sku":"hot","qty":1}],"buyer":"c"}"#,
            br#"{"buyer":"b","lines":[{"sku":"hot","qty":"1"}]}"#,
        ] {
            bodies.push(other.to_vec());
        }
        let mut compact = 0;
        for b in &bodies {
            let shown = String::from_utf8_lossy(b);
            let general = parse_json::<ReserveBody>(b);
            if let Some(fast) = ReserveBody::compact(b) {
                compact += 1;
                assert_eq!(
                    Ok(&fast),
                    general.as_ref().map_err(|e| &e.detail),
                    "{shown}"
                );
            }
            match (ReserveBody::parse(b), general) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{shown}"),
                (Err(got), Err(want)) => {
                    assert_eq!((got.kind, got.detail), (want.kind, want.detail), "{shown}")
                }
                (got, want) => panic!("{shown}: {got:?} against {want:?}"),
            }
        }
        // The load generators' body is read compactly, and so are the plain variations.
        assert!(ReserveBody::compact(base).is_some());
        assert!(compact >= 4 * 4 * 3, "{compact} bodies read compactly");
    }

    /// A SKU id validated again shares the thread's last one; another SKU, or a bad one, is
    /// validated as [`SkuId::new`] does.
    #[test]
    fn a_repeated_sku_shares_the_last_id() {
        let hot = sku_id("hot").unwrap();
        let again = sku_id("hot").unwrap();
        assert_eq!(hot, again);
        assert_eq!(hot.as_str().as_ptr(), again.as_str().as_ptr(), "shared");
        let mug = sku_id("mug").unwrap();
        assert_eq!(mug, SkuId::new("mug").unwrap());
        assert_ne!(mug.as_str().as_ptr(), hot.as_str().as_ptr());
        assert_eq!(sku_id("hot-x").unwrap().as_str(), "hot-x");
        for bad in ["", "a/b", "h t", &"x".repeat(SkuId::MAX_LEN + 1)] {
            assert_eq!(
                sku_id(bad).unwrap_err(),
                SkuId::new(bad).unwrap_err(),
                "{bad:?}"
            );
        }
        assert_eq!(sku_id("hot").unwrap(), hot);
    }

    /// A reservation's strings borrow the request body unless they hold an escape.
    #[test]
    fn reservation_bodies_borrow_their_strings() {
        let body: ReserveBody =
            parse_json(br#"{"buyer":"b1","lines":[{"sku":"hot","qty":1}]}"#).unwrap();
        assert!(matches!(body.buyer, Some(Cow::Borrowed("b1"))));
        assert!(matches!(body.lines[0].sku, Cow::Borrowed("hot")));
        assert!(!body.lines.spilled(), "one line is held inline");
        let body: ReserveBody = parse_json(
            br#"{"buyer":"b\u0031","lines":[{"sku":"h\u006ft","qty":1},{"sku":"b","qty":2}]}"#,
        )
        .unwrap();
        assert_eq!(body.buyer().unwrap().unwrap().as_str(), "b1");
        let lines = body.validated_lines().unwrap();
        assert_eq!(
            lines,
            [
                (SkuId::new("hot").unwrap(), 1),
                (SkuId::new("b").unwrap(), 2)
            ]
        );
        let e = parse_json::<ReserveBody>(br#"{"buyer":"b","lines":{"sku":"a"}}"#).unwrap_err();
        assert!(e.detail.contains("expected a sequence"), "{}", e.detail);
    }
}
