//! Target `http_body`: HTTP request bodies through the gateway's parsing and validation
//! (`flashsale_gateway::http::wire`) into what the engine is given, as the routes do it.
//!
//! Input: a selector byte (mod 5: `PUT /v1/skus/{sku}`, `POST …/restock`,
//! `POST /v1/reservations`, `POST …/confirm`, `POST …/cancel`), then the body bytes.
//!
//! Properties: never panics; a body that does not parse is 400 `Malformed`, one that parses but
//! is refused is 422 `Invalid`; what is accepted is within the contract's bounds and passes the
//! engine's own checks (`validate_spec`, `validate_lines`), so no accepted body reaches the
//! engine only to be refused there.
//!
//! Only public items of `wire` are used (the module is being refactored); the bounds come
//! from `flashsale_protocol::limits`, where the contract keeps them.

use flashsale_engine::shard::{validate_lines, validate_spec};
use flashsale_gateway::http::problem::{Problem, ProblemKind};
use flashsale_gateway::http::wire::{
    parse_json, CancelBody, ConfirmBody, PutSkuBody, ReserveBody, RestockBody, MAX_LINE_QTY,
};
use flashsale_protocol::limits::{
    MAX_NAME_LEN, MAX_PAYMENT_REF_LEN, MAX_RESERVATION_TTL_S, MAX_STOCK,
};
use flashsale_protocol::{BuyerId, SkuId, MAX_LINES};
use serde::Deserialize;

/// Runs one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => put_sku(body),
        1 => restock(body),
        2 => reserve(body),
        3 => confirm(body),
        _ => {
            let _: Option<CancelBody> = parsed(body);
        }
    }
}

/// The parsed body, or `None` after checking that the refusal is 400 `Malformed`.
fn parsed<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    match parse_json::<T>(body) {
        Ok(t) => Some(t),
        Err(p) => {
            expect_kind(&p, ProblemKind::Malformed);
            None
        }
    }
}

fn expect_kind(p: &Problem, kind: ProblemKind) {
    assert_eq!(p.kind, kind, "wrong problem kind for: {}", p.detail);
}

fn put_sku(body: &[u8]) {
    let Some(req) = parsed::<PutSkuBody>(body) else {
        return;
    };
    let sku = SkuId::new("fuzz-sku").unwrap_or_else(|e| panic!("{e}"));
    let spec = match req.into_spec(sku.clone()) {
        Ok(spec) => spec,
        Err(p) => return expect_kind(&p, ProblemKind::Invalid),
    };
    if let Err(e) = validate_spec(&spec) {
        panic!("the engine refuses an accepted SKU ({e}): {spec:?}");
    }
    assert_eq!(spec.sku, sku);
    assert!(
        !spec.name.is_empty()
            && spec.name.len() <= MAX_NAME_LEN
            && spec.name.trim() == spec.name
            && !spec.name.chars().any(char::is_control),
        "accepted name {:?}",
        spec.name
    );
    assert!(spec.stock <= MAX_STOCK, "accepted stock {}", spec.stock);
    assert_ne!(
        spec.per_buyer_limit,
        Some(0),
        "accepted a zero per-buyer limit"
    );
    assert!(
        (1_000..=MAX_RESERVATION_TTL_S * 1_000).contains(&spec.reservation_ttl_ms)
            && spec.reservation_ttl_ms % 1_000 == 0,
        "accepted reservation TTL {} ms",
        spec.reservation_ttl_ms
    );
    if let (Some(starts), Some(ends)) = (spec.sale_starts_at_ms, spec.sale_ends_at_ms) {
        assert!(ends > starts, "accepted a sale ending before it starts");
    }
}

fn restock(body: &[u8]) {
    let Some(req) = parsed::<RestockBody>(body) else {
        return;
    };
    match req.qty() {
        Ok(qty) => assert!((1..=MAX_STOCK).contains(&qty), "accepted restock {qty}"),
        Err(p) => expect_kind(&p, ProblemKind::Invalid),
    }
}

fn reserve(body: &[u8]) {
    let Some(req) = parsed::<ReserveBody>(body) else {
        return;
    };
    match req.validated_lines() {
        Ok(lines) => {
            assert!(
                (1..=MAX_LINES).contains(&lines.len()),
                "accepted {} lines",
                lines.len()
            );
            assert_eq!(lines.len(), req.lines.len(), "lines dropped or added");
            for ((sku, qty), line) in lines.iter().zip(&req.lines) {
                assert_eq!(sku.as_str(), line.sku, "line SKU changed");
                assert_eq!(i128::from(*qty), line.qty.0, "line qty changed");
                assert!(
                    (1..=MAX_LINE_QTY).contains(&u64::from(*qty)),
                    "accepted qty {qty}"
                );
                assert!(SkuId::new(sku.as_str()).is_ok(), "accepted SKU {sku:?}");
            }
            if let Err(e) = validate_lines(lines.iter().map(|(s, q)| (s, *q))) {
                panic!("the engine refuses accepted lines ({e}): {lines:?}");
            }
        }
        Err(p) => expect_kind(&p, ProblemKind::Invalid),
    }
    match req.buyer() {
        Ok(Some(buyer)) => {
            assert_eq!(Some(buyer.as_str()), req.buyer.as_deref(), "buyer changed");
            assert!(BuyerId::new(buyer.as_str()).is_ok(), "accepted {buyer:?}");
        }
        Ok(None) => assert_eq!(req.buyer, None, "buyer dropped"),
        Err(p) => expect_kind(&p, ProblemKind::Invalid),
    }
}

fn confirm(body: &[u8]) {
    let Some(req) = parsed::<ConfirmBody>(body) else {
        return;
    };
    match req.payment_ref() {
        Ok(r) => assert!(
            !r.is_empty() && r.len() <= MAX_PAYMENT_REF_LEN && !r.as_str().chars().any(char::is_control),
            "accepted payment_ref {r:?}"
        ),
        Err(p) => expect_kind(&p, ProblemKind::Invalid),
    }
}
