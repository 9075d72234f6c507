//! A buyer's lists: `GET /v1/reservations?buyer=&status=&sku=&limit=&cursor=` and
//! `GET /v1/orders?buyer=&limit=&cursor=` (storefront or admin for any buyer, a buyer JWT for
//! itself), their query parameters and their opaque cursors.
//!
//! A cursor is the position of the last item of a page (time, reservation id) and a tag of
//! the list it belongs to (endpoint, buyer, filters), base64url-encoded: a cursor of another
//! list, another buyer or other filters, or anything this server did not issue, is 400.

use base64::Engine as _;
use flashsale_engine::{ListPos, OrderQuery, ReservationQuery, ReservationStatus, MAX_LIST_LIMIT};
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use hyper::StatusCode;
use serde::Serialize;

use super::access::Caller;
use super::response::json;
use super::{Answer, App};
use crate::http::inventory::Inventory;
use crate::http::problem::{Problem, ProblemKind};
use crate::http::wire::{OrderJson, ReservationJson};

/// Default page size of the buyer lists.
pub const DEFAULT_LIST_LIMIT: usize = 20;

/// Which list a cursor belongs to (part of its tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    /// `GET /v1/reservations`.
    Reservations,
    /// `GET /v1/orders`.
    Orders,
}

/// The parsed query of a buyer list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListQuery {
    /// `buyer`, if given.
    buyer: Option<BuyerId>,
    /// `status` (reservations only).
    status: Option<ReservationStatus>,
    /// `sku` (reservations only).
    sku: Option<SkuId>,
    /// `limit`.
    limit: usize,
    /// `cursor`, raw (decoded once the buyer is known).
    cursor: Option<String>,
}

/// A page of a list as the API shows it.
#[derive(Debug, Serialize)]
struct Page<T> {
    /// The items, newest first.
    items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

impl<E: Inventory> App<E> {
    /// `GET /v1/reservations?…`: one page of a buyer's reservations.
    pub(super) async fn list_reservations(&self, caller: &Caller, query: Option<&str>) -> Answer {
        let q = parse_query(query, ListKind::Reservations)?;
        let buyer = acting_buyer(caller, q.buyer.as_ref())?;
        let tag = list_tag(ListKind::Reservations, &buyer, q.status, q.sku.as_ref());
        let before = q
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, tag))
            .transpose()?;
        let (views, next) = self
            .inventory
            .list_reservations(ReservationQuery {
                buyer,
                status: q.status,
                sku: q.sku,
                before,
                limit: q.limit,
            })
            .await?;
        let page = Page {
            items: views
                .iter()
                .map(ReservationJson::try_from)
                .collect::<Result<Vec<_>, _>>()?,
            next_cursor: next.map(|pos| encode_cursor(pos, tag)),
        };
        json(StatusCode::OK, &page)
    }

    /// `GET /v1/orders?…`: one page of a buyer's orders.
    pub(super) async fn list_orders(&self, caller: &Caller, query: Option<&str>) -> Answer {
        let q = parse_query(query, ListKind::Orders)?;
        let buyer = acting_buyer(caller, q.buyer.as_ref())?;
        let tag = list_tag(ListKind::Orders, &buyer, None, None);
        let before = q
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, tag))
            .transpose()?;
        let (views, next) = self
            .inventory
            .list_orders(OrderQuery {
                buyer,
                before,
                limit: q.limit,
            })
            .await?;
        let page = Page {
            items: views
                .iter()
                .map(OrderJson::try_from)
                .collect::<Result<Vec<_>, _>>()?,
            next_cursor: next.map(|pos| encode_cursor(pos, tag)),
        };
        json(StatusCode::OK, &page)
    }
}

/// Whose list is asked for: a storefront or admin names any buyer (422 without one); a buyer
/// JWT may only ask for itself (403 for another); a partner may not ask (403).
fn acting_buyer(caller: &Caller, asked: Option<&BuyerId>) -> Result<BuyerId, Problem> {
    match caller {
        Caller::Admin(_) | Caller::Storefront(_) => asked
            .cloned()
            .ok_or_else(|| Problem::invalid("buyer is required with a storefront or admin token")),
        Caller::Buyer(me) => match asked {
            Some(b) if b != me => Err(Problem::new(
                ProblemKind::Forbidden,
                "a buyer token may only list its own reservations and orders",
            )),
            _ => Ok(me.clone()),
        },
        Caller::Partner => Err(Problem::new(
            ProblemKind::Forbidden,
            "partner tokens may only read stock",
        )),
    }
}

/// Parses a list's query string; unknown or repeated parameters are 400, values out of
/// bounds 422.
fn parse_query(query: Option<&str>, kind: ListKind) -> Result<ListQuery, Problem> {
    let mut q = ListQuery {
        buyer: None,
        status: None,
        sku: None,
        limit: DEFAULT_LIST_LIMIT,
        cursor: None,
    };
    let mut seen: Vec<String> = Vec::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(raw)
            .ok_or_else(|| Problem::malformed(format!("{k}: bad percent-encoding")))?;
        if seen.iter().any(|s| s == k) {
            return Err(Problem::malformed(format!(
                "query parameter {k:?} given twice"
            )));
        }
        seen.push(k.to_owned());
        match (k, kind) {
            ("buyer", _) => {
                q.buyer =
                    Some(BuyerId::new(v).map_err(|e| Problem::invalid(format!("buyer: {e}")))?);
            }
            ("status", ListKind::Reservations) => {
                q.status = Some(match v.as_str() {
                    "held" => ReservationStatus::Held,
                    "confirmed" => ReservationStatus::Confirmed,
                    "released" => ReservationStatus::Released,
                    "expired" => ReservationStatus::Expired,
                    _ => {
                        return Err(Problem::invalid(
                            "status must be held, confirmed, released or expired",
                        ))
                    }
                });
            }
            ("sku", ListKind::Reservations) => {
                q.sku = Some(SkuId::new(v).map_err(|e| Problem::invalid(format!("sku: {e}")))?);
            }
            ("limit", _) => {
                let n: usize = v
                    .parse()
                    .map_err(|_| Problem::malformed(format!("limit: {v:?} is not a number")))?;
                if !(1..=MAX_LIST_LIMIT).contains(&n) {
                    return Err(Problem::invalid(format!(
                        "limit must be 1..={MAX_LIST_LIMIT}"
                    )));
                }
                q.limit = n;
            }
            ("cursor", _) => q.cursor = Some(v).filter(|c| !c.is_empty()),
            (other, ListKind::Reservations) => {
                return Err(Problem::malformed(format!(
                    "unknown query parameter {other:?}; expected buyer, status, sku, limit, cursor"
                )))
            }
            (other, ListKind::Orders) => {
                return Err(Problem::malformed(format!(
                    "unknown query parameter {other:?}; expected buyer, limit, cursor"
                )))
            }
        }
    }
    Ok(q)
}

/// `%XX`-decodes a query value (`+` stays itself: no valid value holds a space); `None` on a
/// bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The tag binding a cursor to its list: the first 8 bytes of SHA-256 over the endpoint, the
/// buyer and the filters.
fn list_tag(
    kind: ListKind,
    buyer: &BuyerId,
    status: Option<ReservationStatus>,
    sku: Option<&SkuId>,
) -> u64 {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(match kind {
        ListKind::Reservations => b"reservations\0".as_slice(),
        ListKind::Orders => b"orders\0".as_slice(),
    });
    h.update(buyer.as_str().as_bytes());
    h.update(b"\0");
    h.update(status.map_or("", ReservationStatus::as_str).as_bytes());
    h.update(b"\0");
    h.update(sku.map_or("", SkuId::as_str).as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The cursor of a position in the list tagged `tag`.
fn encode_cursor((at_ms, id): ListPos, tag: u64) -> String {
    let mut raw = [0u8; 24];
    raw[..8].copy_from_slice(&at_ms.to_be_bytes());
    raw[8..16].copy_from_slice(&id.0.to_be_bytes());
    raw[16..].copy_from_slice(&tag.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The position a cursor names, if it was issued for the list tagged `tag` (else 400).
fn decode_cursor(cursor: &str, tag: u64) -> Result<ListPos, Problem> {
    let bad = || {
        Problem::malformed(
            "cursor must be the next_cursor of a previous page of this list \
             (same endpoint, buyer and filters)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let raw: [u8; 24] = raw.try_into().map_err(|_| bad())?;
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&raw[i..i + 8]);
        u64::from_be_bytes(w)
    };
    if word(16) != tag {
        return Err(bad());
    }
    Ok((word(0), ReservationId(word(8))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn buyer(s: &str) -> BuyerId {
        BuyerId::new(s).unwrap()
    }

    #[test]
    fn cursors_round_trip_and_belong_to_their_list() {
        let tag = list_tag(ListKind::Reservations, &buyer("ann"), None, None);
        let pos = (1_700_000_000_000, ReservationId::compose(3, 42));
        let c = encode_cursor(pos, tag);
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode_cursor(&c, tag).unwrap(), pos);
        for other in [
            list_tag(ListKind::Orders, &buyer("ann"), None, None),
            list_tag(ListKind::Reservations, &buyer("bob"), None, None),
            list_tag(
                ListKind::Reservations,
                &buyer("ann"),
                Some(ReservationStatus::Held),
                None,
            ),
            list_tag(
                ListKind::Reservations,
                &buyer("ann"),
                None,
                Some(&SkuId::new("hat").unwrap()),
            ),
        ] {
            assert_ne!(other, tag);
            assert_eq!(
                decode_cursor(&c, other).unwrap_err().kind,
                ProblemKind::Malformed
            );
        }
        for junk in ["tee", "", "!!!!", &c[1..], &format!("{c}AA")] {
            assert_eq!(
                decode_cursor(junk, tag).unwrap_err().kind,
                ProblemKind::Malformed
            );
        }
    }

    #[test]
    fn queries_parse_strictly() {
        let q = parse_query(
            Some("buyer=alice%40example.com&status=held&sku=hat&limit=5&cursor="),
            ListKind::Reservations,
        )
        .unwrap();
        assert_eq!(q.buyer, Some(buyer("alice@example.com")));
        assert_eq!(q.status, Some(ReservationStatus::Held));
        assert_eq!(q.limit, 5);
        assert_eq!(q.cursor, None);
        let kind = |query: &str, list| parse_query(Some(query), list).unwrap_err().kind;
        assert_eq!(
            kind("status=held", ListKind::Orders),
            ProblemKind::Malformed
        );
        assert_eq!(kind("limit=0", ListKind::Orders), ProblemKind::Invalid);
        assert_eq!(kind("limit=101", ListKind::Orders), ProblemKind::Invalid);
        assert_eq!(kind("limit=x", ListKind::Orders), ProblemKind::Malformed);
        assert_eq!(
            kind("status=gone", ListKind::Reservations),
            ProblemKind::Invalid
        );
        assert_eq!(
            kind("buyer=a&buyer=b", ListKind::Orders),
            ProblemKind::Malformed
        );
        assert_eq!(kind("buyer=%zz", ListKind::Orders), ProblemKind::Malformed);
        assert_eq!(kind("buyer=a%20b", ListKind::Orders), ProblemKind::Invalid);
        assert_eq!(
            kind("sku=a/b", ListKind::Reservations),
            ProblemKind::Invalid
        );
    }

    #[test]
    fn only_the_buyer_itself_or_a_storefront_may_ask() {
        let ann = buyer("ann");
        let sf = Caller::Storefront(super::super::access::CredentialId(1));
        assert_eq!(acting_buyer(&sf, Some(&ann)).unwrap(), ann);
        assert_eq!(
            acting_buyer(&sf, None).unwrap_err().kind,
            ProblemKind::Invalid
        );
        let me = Caller::Buyer(ann.clone());
        assert_eq!(acting_buyer(&me, None).unwrap(), ann);
        assert_eq!(acting_buyer(&me, Some(&ann)).unwrap(), ann);
        assert_eq!(
            acting_buyer(&me, Some(&buyer("bob"))).unwrap_err().kind,
            ProblemKind::Forbidden
        );
        assert_eq!(
            acting_buyer(&Caller::Partner, Some(&ann)).unwrap_err().kind,
            ProblemKind::Forbidden
        );
    }
}
