//! One limit for stock and money: `PUT` and restock share [`MAX_STOCK`]; prices are at most
//! [`MAX_MONEY_CENTS`]; every money value answered is exact, and a stored value beyond the
//! limit (a bug) is a 500, never a rounded or saturated number.

use flashsale_engine::{OrderView, ReservationStatus, ReservationView};
use flashsale_protocol::limits::{MAX_MONEY_CENTS, MAX_STOCK};
use flashsale_protocol::{BuyerId, Line, OrderId, ReservationId, SkuId};
use serde_json::json;

use super::{app, call, problem_type, seed};

/// `PUT /v1/skus/{sku}` with `price_cents` and `stock`.
async fn put(
    app: &super::App<super::Fake>,
    sku: &str,
    price_cents: u64,
    stock: u64,
) -> super::Reply {
    let body = json!({"name": "Tee", "price_cents": price_cents, "stock": stock}).to_string();
    call(app, "PUT", &format!("/v1/skus/{sku}"), Some("adm"), &body).await
}

#[tokio::test]
async fn prices_above_the_money_limit_are_refused_naming_field_and_limit() {
    let app = app();
    let r = put(&app, "max", MAX_MONEY_CENTS, 1).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["price_cents"], MAX_MONEY_CENTS);
    for price in [MAX_MONEY_CENTS + 1, (1 << 63) - 1] {
        let r = put(&app, "over", price, 1).await;
        assert_eq!((r.status, problem_type(&r)), (422, "invalid"), "{}", r.body);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains("price_cents"), "{detail}");
        assert!(detail.contains(&MAX_MONEY_CENTS.to_string()), "{detail}");
    }
    assert_eq!(
        call(&app, "GET", "/v1/skus/over", Some("adm"), "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn totals_are_exact_and_a_total_above_the_limit_is_an_internal_error() {
    let app = app();
    // One unit at the maximum price: the total is exactly the limit.
    assert_eq!(put(&app, "max", MAX_MONEY_CENTS, 10).await.status, 201);
    let body = r#"{"buyer":"b1","lines":[{"sku":"max","qty":1}]}"#;
    let r = call(&app, "POST", "/v1/reservations", Some("shop"), body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["total_cents"], MAX_MONEY_CENTS);
    // Three units: 3 × (2^53 − 1) is not a safe number. The engine refuses such a reservation
    // (422); if one were ever stored, the answer is 500, never a saturated or rounded total.
    let body = r#"{"buyer":"b2","lines":[{"sku":"max","qty":3}]}"#;
    let r = call(&app, "POST", "/v1/reservations", Some("shop"), body).await;
    assert_eq!(
        (r.status, problem_type(&r)),
        (500, "internal"),
        "{}",
        r.body
    );
    let text = r.body.to_string();
    assert!(!text.contains("27021597764222973"), "{text}");
    assert!(!text.contains("18446744073709551615"), "{text}");
    assert!(!text.contains("money limit"), "internals leaked: {text}");
}

#[tokio::test]
async fn stored_money_beyond_the_limit_is_never_shown() {
    let app = app();
    seed(&app, "tee", 5).await;
    let sku = SkuId::new("tee").unwrap();
    let buyer = BuyerId::new("b1").unwrap();
    let res_id = ReservationId::compose(0, 77);
    let order_id = OrderId::compose(0, 77);
    let line = |qty: u32, unit_price_cents: u64| Line {
        sku: sku.clone(),
        qty,
        unit_price_cents,
    };
    {
        let mut s = app.inventory().state.lock().unwrap();
        s.skus.get_mut(&sku).unwrap().price_cents = MAX_MONEY_CENTS + 1;
        s.reservations.insert(
            res_id,
            ReservationView {
                id: res_id,
                status: ReservationStatus::Held,
                buyer: buyer.clone(),
                lines: vec![line(3, (1 << 63) - 1)],
                created_at_ms: 0,
                expires_at_ms: 0,
                order: None,
                release_reason: None,
                extensions: 0,
            },
        );
        // An order whose stored total disagrees with its lines.
        s.orders.insert(
            order_id,
            OrderView {
                id: order_id,
                reservation: res_id,
                buyer,
                lines: vec![line(2, 100)],
                total_cents: 999,
                payment_ref: "p".into(),
                created_at_ms: 0,
            },
        );
    }
    for path in [
        "/v1/skus/tee".to_owned(),
        "/v1/skus".to_owned(),
        format!("/v1/reservations/{res_id}"),
        format!("/v1/orders/{order_id}"),
    ] {
        let r = call(&app, "GET", &path, Some("shop"), "").await;
        assert_eq!(
            (r.status, problem_type(&r)),
            (500, "internal"),
            "{path}: {}",
            r.body
        );
        assert_eq!(r.body["detail"], crate::http::problem::INTERNAL_DETAIL);
    }
}

#[tokio::test]
async fn stock_has_one_limit_for_put_and_restock() {
    let app = app();
    let over = json!({"name": "Tee", "price_cents": 1, "stock": MAX_STOCK + 1}).to_string();
    let r = call(&app, "PUT", "/v1/skus/big", Some("adm"), &over).await;
    assert_eq!((r.status, problem_type(&r)), (422, "invalid"), "{}", r.body);
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains(&MAX_STOCK.to_string()));

    assert_eq!(put(&app, "big", 1, MAX_STOCK - 5).await.status, 201);
    let restock = |qty: u64| json!({ "qty": qty }).to_string();
    let r = call(
        &app,
        "POST",
        "/v1/skus/big/restock",
        Some("adm"),
        &restock(MAX_STOCK + 1),
    )
    .await;
    assert_eq!((r.status, problem_type(&r)), (422, "invalid"), "{}", r.body);
    // Past the maximum by one: a valid restock the SKU's state refuses (409, naming the SKU),
    // the stock unchanged.
    let r = call(
        &app,
        "POST",
        "/v1/skus/big/restock",
        Some("adm"),
        &restock(6),
    )
    .await;
    assert_eq!(
        (r.status, problem_type(&r)),
        (409, "invalid-state"),
        "{}",
        r.body
    );
    assert_eq!(r.body["sku"], "big");
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains(&MAX_STOCK.to_string()));
    // Up to the maximum exactly.
    let r = call(
        &app,
        "POST",
        "/v1/skus/big/restock",
        Some("adm"),
        &restock(5),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total"], MAX_STOCK);
    // The SKU can be re-PUT at its own total.
    let r = put(&app, "big", 1, MAX_STOCK).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total"], MAX_STOCK);
}
