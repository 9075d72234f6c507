//! The Rust client (`flashsale-client`) against a real `flashsale serve`: every typed call
//! deserializes the server's answer into its documented type, and error answers come back as
//! typed problems with their extension members.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use flashsale_client::{
    ApiClient, ListQuery, NewReservation, ProblemKind, ReleaseReason, ReservationStatus,
    SkuSettings,
};
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use support::{Server, ADMIN, PARTNER, SHOP};

fn client(server: &Server, token: &str) -> ApiClient {
    ApiClient::new(&server.url(""), token, Duration::from_secs(10)).unwrap()
}

fn sku(s: &str) -> SkuId {
    SkuId::new(s).unwrap()
}

fn buyer(s: &str) -> BuyerId {
    BuyerId::new(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skus_are_typed() {
    let server = Server::start(&[]);
    let admin = client(&server, ADMIN);
    let settings = SkuSettings {
        name: "Tee".into(),
        price_cents: 1999,
        stock: 10,
        per_buyer_limit: Some(3),
        reservation_ttl_s: Some(60),
        max_hold_s: Some(600),
        max_extensions: Some(2),
        ..SkuSettings::default()
    };
    let created = admin.put_sku(&sku("tee"), &settings).await.unwrap();
    assert_eq!(created.status, 201);
    assert_eq!(created.sku, sku("tee"));
    assert_eq!(
        (
            created.total,
            created.available,
            created.reserved,
            created.sold
        ),
        (10, 10, 0, 0)
    );
    assert_eq!(created.per_buyer_limit, Some(3));
    assert_eq!(
        (
            created.reservation_ttl_s,
            created.max_hold_s,
            created.max_extensions
        ),
        (60, 600, 2)
    );
    assert!(created.sale_starts_at.is_none() && created.sale_ends_at.is_none());
    let updated = admin
        .put_sku(
            &sku("tee"),
            &SkuSettings {
                sale_ends_at: Some("2099-01-01T00:00:00Z".into()),
                ..settings.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.status, 200);
    assert_eq!(
        updated.sale_ends_at.as_deref(),
        Some("2099-01-01T00:00:00.000Z")
    );
    admin
        .put_sku(
            &sku("mug"),
            &SkuSettings {
                name: "Mug".into(),
                price_cents: 5,
                stock: 1,
                ..SkuSettings::default()
            },
        )
        .await
        .unwrap();

    let restocked = admin.restock(&sku("tee"), 5).await.unwrap();
    assert_eq!((restocked.total, restocked.available), (15, 15));
    let partner = client(&server, PARTNER);
    let seen = partner.sku(&sku("tee")).await.unwrap();
    assert_eq!(seen.value, restocked.value);

    // Pages with cursors.
    let first = partner.list_skus(1, None).await.unwrap().into_inner();
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].sku, sku("mug"));
    let cursor = first.next_cursor.expect("a second page");
    let rest = partner.list_skus(10, Some(&cursor)).await.unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].sku, sku("tee"));
    assert!(rest.next_cursor.is_none());

    // Problems are typed.
    let e = partner.sku(&sku("nosuch")).await.unwrap_err();
    assert_eq!(e.kind(), Some(&ProblemKind::NotFound), "{e}");
    assert_eq!(e.problem().unwrap().status, 404);
    let e = client(&server, SHOP)
        .restock(&sku("tee"), 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Some(&ProblemKind::Forbidden), "{e}");
    let e = client(&server, "wrong")
        .list_skus(1, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Some(&ProblemKind::Unauthenticated), "{e}");
    // Without --ha there is no cluster view: 404, typed.
    let e = admin.cluster().await.unwrap_err();
    assert_eq!(e.kind(), Some(&ProblemKind::NotFound), "{e}");
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_orders_and_lists_are_typed() {
    let server = Server::start(&[]);
    let admin = client(&server, ADMIN);
    for (id, stock) in [("tee", 5), ("cap", 5)] {
        admin
            .put_sku(
                &sku(id),
                &SkuSettings {
                    name: id.into(),
                    price_cents: 100,
                    stock,
                    reservation_ttl_s: Some(60),
                    max_hold_s: Some(300),
                    max_extensions: Some(1),
                    ..SkuSettings::default()
                },
            )
            .await
            .unwrap();
    }
    let shop = client(&server, SHOP);

    // A two-line reservation with a key: a retry with the same key is the same reservation.
    let mut cart = NewReservation::new(buyer("ann"), vec![(sku("tee"), 2), (sku("cap"), 1)]);
    cart.ttl_s = Some(30);
    cart.idempotency_key = Some("cart-1".into());
    let held = shop.reserve(&cart).await.unwrap();
    assert_eq!(held.status, 201);
    assert_eq!(held.value.status, ReservationStatus::Held);
    assert_eq!(held.buyer, buyer("ann"));
    assert_eq!(held.lines.len(), 2);
    assert_eq!(held.total_cents, 300);
    assert_eq!((held.extensions, held.order_id), (0, None));
    let again = shop.reserve(&cart).await.unwrap();
    assert_eq!(again.id, held.id);
    assert_eq!(shop.sku(&sku("tee")).await.unwrap().reserved, 2);

    // Extend: once is allowed, the second is past max_extensions: 422 naming the limit.
    let extended = shop.extend(held.id, 120).await.unwrap();
    assert_eq!(extended.extensions, 1);
    assert!(extended.expires_at > held.expires_at, "{extended:?}");
    let e = shop.extend(held.id, 120).await.unwrap_err();
    let p = e.problem().unwrap();
    assert_eq!((p.status, &p.kind), (422, &ProblemKind::Invalid), "{e}");
    assert_eq!(p.limit_name.as_deref(), Some("max_extensions"), "{e}");
    assert_eq!(p.limit, Some(1), "{e}");

    // Confirm: the reservation becomes an order.
    let confirmed = shop.confirm(held.id, "pay_1").await.unwrap();
    assert_eq!(confirmed.value.status, ReservationStatus::Confirmed);
    let order_id = confirmed.order_id.expect("an order id");
    let order = shop.order(order_id).await.unwrap();
    assert_eq!(order.reservation_id, held.id);
    assert_eq!(order.payment_ref, "pay_1");
    assert_eq!(order.total_cents, 300);

    // A second reservation, cancelled; cancelling again answers it unchanged, cancelling a
    // confirmed one is 409 invalid-state naming its status.
    let other = shop
        .reserve(&NewReservation::new(buyer("ann"), vec![(sku("cap"), 1)]))
        .await
        .unwrap();
    let released = shop.cancel(other.id).await.unwrap();
    assert_eq!(released.value.status, ReservationStatus::Released);
    assert_eq!(released.release_reason, Some(ReleaseReason::Cancelled));
    assert_eq!(shop.cancel(other.id).await.unwrap().value, released.value);
    let e = shop.cancel(held.id).await.unwrap_err();
    let p = e.problem().unwrap();
    assert_eq!(
        (p.status, &p.kind),
        (409, &ProblemKind::InvalidState),
        "{e}"
    );
    assert_eq!(p.reservation_status.as_deref(), Some("confirmed"), "{e}");
    let got = shop.reservation(other.id).await.unwrap();
    assert_eq!(got.value, released.value);

    // Lists: newest first, filters, pages.
    let all = ListQuery {
        buyer: Some(buyer("ann")),
        ..ListQuery::default()
    };
    let page = shop.list_reservations(&all).await.unwrap();
    let ids: Vec<ReservationId> = page.items.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![other.id, held.id]);
    let confirmed_only = ListQuery {
        status: Some(ReservationStatus::Confirmed),
        ..all.clone()
    };
    let page = shop.list_reservations(&confirmed_only).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, held.id);
    let tee_only = ListQuery {
        sku: Some(sku("tee")),
        ..all.clone()
    };
    assert_eq!(
        shop.list_reservations(&tee_only).await.unwrap().items.len(),
        1
    );
    let one = ListQuery {
        limit: Some(1),
        ..all.clone()
    };
    let first = shop.list_reservations(&one).await.unwrap().into_inner();
    assert_eq!(first.items.len(), 1);
    let next = ListQuery {
        cursor: first.next_cursor.clone(),
        ..one.clone()
    };
    let second = shop.list_reservations(&next).await.unwrap();
    assert_eq!(second.items[0].id, held.id);
    let orders = shop.list_orders(&all).await.unwrap();
    assert_eq!(orders.items.len(), 1);
    assert_eq!(orders.items[0].id, order_id);
    assert!(orders.next_cursor.is_none());

    // A cursor from elsewhere is 400; a list without a buyer is refused.
    let bad = ListQuery {
        cursor: Some("bm90LWEtY3Vyc29y".into()),
        ..all.clone()
    };
    let e = shop.list_reservations(&bad).await.unwrap_err();
    assert_eq!(e.problem().unwrap().status, 400, "{e}");
    let e = shop.list_orders(&ListQuery::default()).await.unwrap_err();
    assert!(e.problem().is_some(), "{e}");

    // Sold out is typed with what was available.
    let e = shop
        .reserve(&NewReservation::new(buyer("bob"), vec![(sku("tee"), 4)]))
        .await
        .unwrap_err();
    let p = e.problem().unwrap();
    assert_eq!(p.kind, ProblemKind::SoldOut, "{e}");
    assert_eq!((p.sku.as_deref(), p.available), (Some("tee"), Some(3)));
    assert!(server.stop().success());
}
