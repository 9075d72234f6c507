//! RFC 9457 problem details: the one error shape of the API, with stable `type` URIs.

use std::cell::RefCell;

use bytes::Bytes;
use flashsale_engine::{CommandError, HoldLimit};
use flashsale_protocol::SkuId;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

use super::wire::format_ms;

/// Prefix of every problem `type` URI.
pub use flashsale_protocol::problem::PROBLEM_TYPE_BASE as TYPE_BASE;
/// The kinds of problem the API reports (the list is shared with the clients, in `protocol`).
pub use flashsale_protocol::ProblemKind;

/// The `detail` of every `500 internal` answer: what went wrong is logged, never shown.
pub const INTERNAL_DETAIL: &str = "an internal error occurred; it was logged";

/// Every kind the server answers, for documentation checks.
pub const ALL_KINDS: &[ProblemKind] = ProblemKind::KNOWN;

/// The HTTP status of `kind`.
pub fn status_of(kind: ProblemKind) -> StatusCode {
    StatusCode::from_u16(kind.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// One problem to report: its kind, a detail for humans, extension members and extra headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// What went wrong.
    pub kind: ProblemKind,
    /// This occurrence, explained.
    pub detail: String,
    /// Extension members (e.g. `sku`, `available` for sold-out).
    pub extra: Map<String, Value>,
    /// `Retry-After` in seconds, when the client should retry later.
    pub retry_after_s: Option<u64>,
    /// `Allow` header for 405.
    pub allow: Option<String>,
    /// Whether the connection should be closed after this answer (e.g. an unread body).
    pub close: bool,
    /// What operators need to know and clients must not see (an internal error's cause):
    /// logged with the request, never part of the body.
    pub log_detail: Option<String>,
}

impl Problem {
    /// A problem of `kind` with a detail.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            detail: detail.into(),
            extra: Map::new(),
            retry_after_s: None,
            allow: None,
            close: false,
            log_detail: None,
        }
    }

    /// 500 internal: a bug. `what` goes to the log (with the request); the client sees only
    /// [`INTERNAL_DETAIL`].
    pub fn internal(what: impl Into<String>) -> Self {
        let mut p = Self::new(ProblemKind::Internal, INTERNAL_DETAIL);
        p.log_detail = Some(what.into());
        p
    }

    /// 400 malformed.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Malformed, detail)
    }

    /// 422 invalid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Invalid, detail)
    }

    /// 404 not found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::NotFound, detail)
    }

    /// 429 rate-limited, with `Retry-After`.
    pub fn rate_limited(scope: &str, retry_after_s: u64) -> Self {
        let mut p = Self::new(
            ProblemKind::RateLimited,
            format!("too many requests for this {scope}; retry after {retry_after_s} s"),
        );
        p.retry_after_s = Some(retry_after_s);
        p.extra
            .insert("retry_after_s".into(), Value::from(retry_after_s));
        p
    }

    /// 503 not-leader: this node stands by; `leader_url` (JSON null when no node holds the
    /// lease) is where to send the request. `Retry-After: 1`.
    pub fn not_leader(leader_url: Option<&str>) -> Self {
        let detail = match leader_url {
            Some(url) => format!("this node is a standby; the leader is {url}"),
            None => "this node is a standby and no leader is known right now; retry".to_string(),
        };
        let mut p = Self::new(ProblemKind::NotLeader, detail);
        p.retry_after_s = Some(1);
        p.extra.insert(
            "leader_url".into(),
            leader_url.map_or(Value::Null, Value::from),
        );
        p
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), Value::from(self.kind.type_uri()));
        m.insert("title".into(), Value::from(self.kind.title()));
        m.insert("status".into(), Value::from(status_of(self.kind).as_u16()));
        m.insert("detail".into(), Value::from(self.detail.clone()));
        for (k, v) in &self.extra {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(m)
    }

    /// The JSON body as bytes: the same bytes as `serde_json::to_vec(&self.body())`, written
    /// straight from the problem without building (and cloning into) a [`Value`] map first
    /// (ADR 0043: the sold-out answer is the hot path of a sale's end).
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROBLEM_BODY_CAPACITY_BYTES);
        // Writing into a Vec cannot fail, and every member is a string, a number or a
        // `Value`; an error would be a serde_json bug: fall back to the map.
        match serde_json::to_writer(&mut out, &BodyView(self)) {
            Ok(()) => out,
            Err(_) => serde_json::to_vec(&self.body()).unwrap_or_default(),
        }
    }

    /// The HTTP response (security headers are added by the caller for every response).
    pub fn into_response(mut self) -> Response<super::app::ResBody> {
        let allow = self.allow.take();
        let body = Bytes::from(self.body_bytes());
        problem_response(
            self.kind,
            body,
            self.retry_after_s,
            allow.as_deref(),
            self.close,
        )
    }
}

/// A problem's response from its parts: `kind`'s status, the problem+json body `body`, and
/// the headers the problem asks for (security headers are added by the caller for every
/// response). Both [`Problem::into_response`] and [`sold_out_response`] build it here, so a
/// reused sold-out answer cannot differ from a rendered one in anything but the rendering.
fn problem_response(
    kind: ProblemKind,
    body: Bytes,
    retry_after_s: Option<u64>,
    allow: Option<&str>,
    close: bool,
) -> Response<super::app::ResBody> {
    let mut res = Response::new(super::app::full(body));
    *res.status_mut() = status_of(kind);
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(s) = retry_after_s {
        h.insert(RETRY_AFTER, HeaderValue::from(s));
    }
    if kind == ProblemKind::Unauthenticated {
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"flashsale\""),
        );
    }
    if let Some(allow) = allow {
        if let Ok(v) = HeaderValue::from_str(allow) {
            h.insert(ALLOW, v);
        }
    }
    if close {
        h.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// The `409 sold-out` answer for `sku` with `available` units left: the response of
/// `Problem::from(CommandError::SoldOut { sku, available })`, byte for byte. During a sale's
/// end every buyer of a SKU gets this same answer, so the body this thread rendered last is
/// reused when the SKU and the count are the same: no detail string, no extension map, no
/// serialization, no allocation for the body (ADR 0061; ADR 0052 kept the body too, but only
/// after building the problem to compare it).
pub fn sold_out_response(sku: &SkuId, available: u64) -> Response<super::app::ResBody> {
    let body = LAST_SOLD_OUT.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            // Not reachable (rendering does not call back into here); stay correct.
            return render_sold_out(sku, available);
        };
        if let Some(l) = last
            .as_ref()
            .filter(|l| l.available == available && l.sku == *sku)
        {
            return l.body.clone();
        }
        let body = render_sold_out(sku, available);
        *last = Some(SoldOutBody {
            sku: sku.clone(),
            available,
            body: body.clone(),
        });
        body
    });
    problem_response(ProblemKind::SoldOut, body, None, None, false)
}

/// The body of the sold-out problem of `sku` with `available` left, rendered.
fn render_sold_out(sku: &SkuId, available: u64) -> Bytes {
    let p = Problem::from(CommandError::SoldOut {
        sku: sku.clone(),
        available,
    });
    Bytes::from(p.body_bytes())
}

/// The last sold-out body a thread rendered, with what it was rendered from (see
/// [`sold_out_response`]).
struct SoldOutBody {
    /// The SKU.
    sku: SkuId,
    /// Units left when it was refused.
    available: u64,
    /// The rendered body.
    body: Bytes,
}

thread_local! {
    /// The last sold-out body this thread rendered (see [`sold_out_response`]).
    static LAST_SOLD_OUT: RefCell<Option<SoldOutBody>> = const { RefCell::new(None) };
}

/// Bytes reserved up front for a problem body (a sold-out body is ≈ 150).
const PROBLEM_BODY_CAPACITY_BYTES: usize = 256;

/// One standard member of a problem body.
#[derive(Debug, Clone, Copy)]
enum Standard<'a> {
    /// `title` or `detail`.
    Text(&'a str),
    /// `type`: the base URI and the kind's suffix, written without joining them first.
    Type(&'static str),
    /// `status`.
    Status(u16),
}

/// A problem's body as serde sees it: the standard members and the extension members (an
/// extension never overrides a standard member), in the order [`Problem::body`]'s map
/// serializes them (its keys sorted), so both give the same bytes.
struct BodyView<'a>(&'a Problem);

impl serde::Serialize for BodyView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let p = self.0;
        // Sorted by key, as the map of `body()` iterates.
        let mut standard: [(&str, Standard<'_>); 4] = [
            ("detail", Standard::Text(&p.detail)),
            ("status", Standard::Status(status_of(p.kind).as_u16())),
            ("title", Standard::Text(p.kind.title())),
            ("type", Standard::Type(p.kind.suffix())),
        ];
        standard.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let extra = p
            .extra
            .iter()
            .filter(|(k, _)| !standard.iter().any(|(s, _)| *s == k.as_str()));
        let mut map = serializer.serialize_map(Some(standard.len() + p.extra.len()))?;
        let mut extra = extra.peekable();
        for (key, value) in standard {
            while let Some((k, v)) = extra.next_if(|(k, _)| k.as_str() < key) {
                map.serialize_entry(k, v)?;
            }
            match value {
                Standard::Text(t) => map.serialize_entry(key, t)?,
                Standard::Status(s) => map.serialize_entry(key, &s)?,
                Standard::Type(suffix) => map.serialize_entry(key, &TypeUri(suffix))?,
            }
        }
        for (k, v) in extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A problem `type` URI from its suffix: [`TYPE_BASE`] followed by the suffix, as
/// [`ProblemKind::type_uri`] spells it.
struct TypeUri(&'static str);

impl serde::Serialize for TypeUri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{TYPE_BASE}{}", self.0))
    }
}

/// The detail of a `buyer-limit` problem: the request is refused because it *would* take the
/// buyer past the limit (the buyer may hold fewer units than the limit).
fn buyer_limit_detail(sku: &SkuId, limit: u32, already: u64) -> String {
    format!(
        "this reservation would exceed the buyer limit of {limit} for {sku} \
         ({already} already held or bought)"
    )
}

impl From<CommandError> for Problem {
    fn from(e: CommandError) -> Self {
        let detail = e.to_string();
        match e {
            CommandError::SkuNotFound(sku) => Problem::not_found(detail).with("sku", sku.as_str()),
            CommandError::ReservationNotFound(id) => {
                Problem::not_found(detail).with("id", id.to_string())
            }
            CommandError::OrderNotFound(id) => Problem::not_found(detail).with("id", id),
            CommandError::SoldOut { sku, available } => Problem::new(ProblemKind::SoldOut, detail)
                .with("sku", sku.as_str())
                .with("available", available),
            CommandError::SaleNotOpen {
                sku,
                starts_at_ms,
                ends_at_ms,
            } => Problem::new(ProblemKind::SaleNotOpen, detail)
                .with("sku", sku.as_str())
                .with("sale_starts_at", starts_at_ms.map(format_ms))
                .with("sale_ends_at", ends_at_ms.map(format_ms)),
            CommandError::BuyerLimit {
                sku,
                limit,
                already,
            } => Problem::new(
                ProblemKind::BuyerLimit,
                buyer_limit_detail(&sku, limit, already),
            )
            .with("sku", sku.as_str())
            .with("limit", limit)
            .with("already", already),
            CommandError::InvalidState { id, status } => {
                Problem::new(ProblemKind::InvalidState, detail)
                    .with("id", id.to_string())
                    .with("reservation_status", status.as_str())
            }
            CommandError::IdempotencyMismatch => {
                Problem::new(ProblemKind::IdempotencyMismatch, detail)
            }
            CommandError::IdempotencyInProgress { retry_after_ms } => {
                let mut p = Problem::new(ProblemKind::IdempotencyInProgress, detail);
                p.retry_after_s = Some(retry_after_ms.div_ceil(1000).max(1));
                p
            }
            CommandError::StockConflict { sku, .. } => {
                Problem::new(ProblemKind::InvalidState, detail).with("sku", sku.as_str())
            }
            CommandError::HoldLimit {
                sku, limit, value, ..
            } => {
                // Hold bounds are shown in seconds, as the API sets them.
                let shown = match limit {
                    HoldLimit::MaxExtensions => value,
                    HoldLimit::ReservationTtl | HoldLimit::MaxHold => value / 1000,
                };
                Problem::invalid(detail)
                    .with("sku", sku.as_str())
                    .with("limit", shown)
                    .with("limit_name", limit.field())
            }
            CommandError::Invalid(_) => Problem::invalid(detail),
            CommandError::Internal(what) => Problem::internal(what),
            CommandError::Unavailable(_) => {
                let mut p = Problem::new(
                    ProblemKind::Unavailable,
                    format!("{detail}; nothing was acknowledged, retry later"),
                );
                p.retry_after_s = Some(1);
                p
            }
            CommandError::Busy(_) => {
                let mut p = Problem::new(ProblemKind::Unavailable, detail);
                p.retry_after_s = Some(1);
                p
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale_engine::ReservationStatus;
    use flashsale_protocol::{ReservationId, SkuId};

    fn sku(s: &str) -> SkuId {
        SkuId::new(s).unwrap()
    }

    #[test]
    fn engine_errors_map_onto_the_contract() {
        let id = ReservationId::compose(0, 1);
        let cases: Vec<(CommandError, u16, &str)> = vec![
            (CommandError::SkuNotFound(sku("a")), 404, "not-found"),
            (CommandError::ReservationNotFound(id), 404, "not-found"),
            (
                CommandError::OrderNotFound("ord_x".into()),
                404,
                "not-found",
            ),
            (
                CommandError::SoldOut {
                    sku: sku("a"),
                    available: 0,
                },
                409,
                "sold-out",
            ),
            (
                CommandError::SaleNotOpen {
                    sku: sku("a"),
                    starts_at_ms: Some(0),
                    ends_at_ms: None,
                },
                403,
                "sale-not-open",
            ),
            (
                CommandError::BuyerLimit {
                    sku: sku("a"),
                    limit: 1,
                    already: 1,
                },
                429,
                "buyer-limit",
            ),
            (
                CommandError::InvalidState {
                    id,
                    status: ReservationStatus::Expired,
                },
                409,
                "invalid-state",
            ),
            (
                CommandError::IdempotencyMismatch,
                409,
                "idempotency-mismatch",
            ),
            (
                CommandError::StockConflict {
                    sku: sku("a"),
                    detail: "stock 1 is below the 2 units of a already reserved or sold".into(),
                },
                409,
                "invalid-state",
            ),
            (CommandError::Invalid("qty".into()), 422, "invalid"),
            (CommandError::Unavailable("disk".into()), 503, "unavailable"),
            (CommandError::Busy("queue".into()), 503, "unavailable"),
            (
                CommandError::IdempotencyInProgress { retry_after_ms: 1 },
                409,
                "idempotency-in-progress",
            ),
            (CommandError::Internal("bug".into()), 500, "internal"),
        ];
        for (err, status, suffix) in cases {
            let p = Problem::from(err.clone());
            assert_eq!(status_of(p.kind).as_u16(), status, "{err:?}");
            assert_eq!(p.kind.suffix(), suffix, "{err:?}");
            let body = p.body();
            assert_eq!(body["status"], status);
            assert_eq!(body["type"], format!("{TYPE_BASE}{suffix}"));
            assert!(!body["detail"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn buyer_limit_detail_says_the_request_would_exceed_it() {
        let p = Problem::from(CommandError::BuyerLimit {
            sku: sku("tee"),
            limit: 2,
            already: 1,
        });
        let body = p.body();
        assert_eq!(
            body["detail"],
            "this reservation would exceed the buyer limit of 2 for tee (1 already held or bought)"
        );
        assert_eq!(body["title"], "Buyer limit exceeded");
        assert_eq!(
            (body["limit"].as_u64(), body["already"].as_u64()),
            (Some(2), Some(1))
        );
    }

    #[test]
    fn sold_out_names_sku_and_available() {
        let p = Problem::from(CommandError::SoldOut {
            sku: sku("tee"),
            available: 3,
        });
        let res = p.clone().into_response();
        assert_eq!(res.status(), 409);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/problem+json");
        let body = p.body();
        assert_eq!(body["sku"], "tee");
        assert_eq!(body["available"], 3);
        assert_eq!(body["title"], "Sold out");
    }

    /// A sold-out answer reused from the thread's last one has the bytes its own problem
    /// renders to; another SKU, another count, another detail or another extension member is
    /// rendered afresh, never answered with the previous body; headers come from the problem.
    #[test]
    fn a_reused_sold_out_answer_is_the_problems_own() {
        use crate::http::test_support::seen as parts;
        // Repeats (reused), another SKU, another count, alternation, a longer SKU sharing a
        // prefix: every answer equals the problem's own response, head and body.
        let cases = [
            ("tee", 0),
            ("tee", 0),
            ("mug", 0),
            ("tee", 0),
            ("tee", 2),
            ("tee", 2),
            ("tee", 0),
            ("tee-shirt", 0),
            ("tee", 0),
        ];
        for (s, available) in cases {
            let want = Problem::from(CommandError::SoldOut {
                sku: sku(s),
                available,
            })
            .into_response();
            let got = sold_out_response(&sku(s), available);
            let got = parts(got);
            assert_eq!(got.status, 409);
            assert_eq!(got, parts(want), "{s} {available}");
        }
        // A repeat sends the kept body itself (not rendered again).
        let data = |res: Response<crate::http::app::ResBody>| {
            use http_body_util::BodyExt as _;
            let mut body = res.into_body();
            let frame = futures::executor::block_on(body.frame()).unwrap().unwrap();
            frame.into_data().unwrap()
        };
        let first = data(sold_out_response(&sku("tee"), 0));
        let again = data(sold_out_response(&sku("tee"), 0));
        assert_eq!(first, again);
        assert_eq!(first.as_ptr(), again.as_ptr(), "the kept body is reused");
    }

    #[test]
    fn in_progress_carries_retry_after_in_whole_seconds() {
        for (ms, s) in [(1, "1"), (1000, "1"), (1001, "2"), (0, "1")] {
            let p = Problem::from(CommandError::IdempotencyInProgress { retry_after_ms: ms });
            assert_eq!(p.into_response().headers()[RETRY_AFTER], s, "{ms} ms");
        }
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let res = Problem::rate_limited("buyer", 2).into_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[RETRY_AFTER], "2");
        let res = Problem::new(ProblemKind::Unauthenticated, "no token").into_response();
        assert!(res.headers().contains_key(WWW_AUTHENTICATE));
    }

    #[test]
    fn extensions_never_override_standard_members() {
        let body = Problem::invalid("x").with("status", 1).body();
        assert_eq!(body["status"], 422);
    }

    #[test]
    fn body_bytes_are_the_bytes_of_the_body_map() {
        let mut problems = vec![
            Problem::from(CommandError::SoldOut {
                sku: sku("tee"),
                available: 0,
            }),
            Problem::from(CommandError::BuyerLimit {
                sku: sku("tee"),
                limit: 2,
                already: 1,
            }),
            Problem::rate_limited("buyer", 2),
            Problem::not_leader(None),
            Problem::not_leader(Some("http://b:8080")),
            Problem::internal("the cause"),
            Problem::invalid("x").with("status", 1).with("type", "t"),
            Problem::invalid("quote \" and \u{1} and é")
                .with("aaa", "first")
                .with("sz", "between title and type")
                .with("tz", "between title and type")
                .with("zzz", vec![1, 2]),
        ];
        problems.extend(ALL_KINDS.iter().map(|k| Problem::new(*k, "d")));
        for p in problems {
            let bytes = p.body_bytes();
            assert_eq!(
                String::from_utf8(bytes.clone()).unwrap(),
                serde_json::to_string(&p.body()).unwrap(),
                "{p:?}"
            );
            assert_eq!(
                serde_json::from_slice::<Value>(&bytes).unwrap(),
                p.body(),
                "{p:?}"
            );
        }
        let body = Problem::invalid("x").with("status", 1).body_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 422);
    }

    #[test]
    fn kinds_have_unique_suffixes() {
        let mut seen = std::collections::HashSet::new();
        for k in ALL_KINDS {
            assert!(seen.insert(k.suffix()), "{k:?}");
        }
    }
}
