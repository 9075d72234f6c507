//! Idempotency keys are scoped per caller: a storefront credential, or the buyer of a buyer
//! JWT. The same key from two callers names two requests; a duplicate still in progress is a
//! 409 with `Retry-After`.

use flashsale_engine::CommandError;
use flashsale_protocol::{BuyerId, IdempotencyKey, KeyOwner, ScopedKey};

use super::{app_with, buyer_token, call_with, problem_type, seed, App, Fake};
use crate::auth::Role;
use crate::http::app::access::now_s;
use crate::http::app::CredentialId;

/// An API with two storefront tokens, `shop` and `shop2`.
fn two_shops() -> App<Fake> {
    app_with(|c| c.tokens.add("shop2", Role::Storefront))
}

/// `POST /v1/reservations` with `token`, `Idempotency-Key: key` and `body`.
async fn reserve(app: &App<Fake>, token: &str, key: &str, body: &str) -> super::Reply {
    let headers = [("idempotency-key", key)];
    call_with(app, "POST", "/v1/reservations", Some(token), body, &headers).await
}

/// The scoped keys the fake engine has seen.
fn keys(app: &App<Fake>) -> Vec<ScopedKey> {
    app.inventory()
        .state
        .lock()
        .unwrap()
        .keys
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn two_storefronts_with_the_same_key_get_independent_reservations() {
    let app = two_shops();
    seed(&app, "tee", 10).await;
    let one = r#"{"buyer":"b1","lines":[{"sku":"tee","qty":1}]}"#;
    let two = r#"{"buyer":"b2","lines":[{"sku":"tee","qty":2}]}"#;
    let a = reserve(&app, "shop", "order-1", one).await;
    // Same key, another credential, another body: not a mismatch, a new reservation.
    let b = reserve(&app, "shop2", "order-1", two).await;
    assert_eq!((a.status, b.status), (201, 201), "{} {}", a.body, b.body);
    assert_ne!(a.body["id"], b.body["id"]);
    // Same key, another credential, the same body: still a new reservation.
    let c = reserve(&app, "shop2", "order-2", one).await;
    let d = reserve(&app, "shop", "order-2", one).await;
    assert_eq!((c.status, d.status), (201, 201));
    assert_ne!(c.body["id"], d.body["id"]);
    // Each caller's retry returns its own original.
    let a2 = reserve(&app, "shop", "order-1", one).await;
    let b2 = reserve(&app, "shop2", "order-1", two).await;
    assert_eq!(a2.body["id"], a.body["id"]);
    assert_eq!(b2.body["id"], b.body["id"]);
    // And a mismatch is only within one caller's scope.
    let m = reserve(&app, "shop", "order-1", two).await;
    assert_eq!((m.status, problem_type(&m)), (409, "idempotency-mismatch"));
    let r = call_with(&app, "GET", "/v1/skus/tee", Some("shop"), "", &[]).await;
    assert_eq!(r.body["reserved"], 1 + 2 + 1 + 1, "{}", r.body);

    let key = IdempotencyKey::new("order-1").unwrap();
    let mut seen = keys(&app);
    seen.sort();
    let mut want = vec![
        ScopedKey::new(
            KeyOwner::Credential(CredentialId::of("shop").0),
            key.clone(),
        ),
        ScopedKey::new(KeyOwner::Credential(CredentialId::of("shop2").0), key),
    ];
    for k in ["shop", "shop2"] {
        want.push(ScopedKey::new(
            KeyOwner::Credential(CredentialId::of(k).0),
            IdempotencyKey::new("order-2").unwrap(),
        ));
    }
    want.sort();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn a_buyer_jwt_key_is_scoped_to_that_buyer() {
    let app = two_shops();
    seed(&app, "tee", 10).await;
    let (alice, bob) = (
        buyer_token("alice", now_s() + 600),
        buyer_token("bob", now_s() + 600),
    );
    let body = r#"{"lines":[{"sku":"tee","qty":1}]}"#;
    let a = reserve(&app, &alice, "k", body).await;
    let b = reserve(&app, &bob, "k", body).await;
    let s = reserve(
        &app,
        "shop",
        "k",
        r#"{"buyer":"alice","lines":[{"sku":"tee","qty":1}]}"#,
    )
    .await;
    assert_eq!((a.status, b.status, s.status), (201, 201, 201));
    assert_eq!(
        (a.body["buyer"].as_str(), b.body["buyer"].as_str()),
        (Some("alice"), Some("bob"))
    );
    // Three callers, three reservations: neither the other buyer nor a storefront acting for
    // alice shares her key.
    assert_ne!(a.body["id"], b.body["id"]);
    assert_ne!(a.body["id"], s.body["id"]);
    // A new JWT of the same buyer (another token string) is the same scope.
    let alice_again = buyer_token("alice", now_s() + 601);
    assert_ne!(alice_again, alice);
    let a2 = reserve(&app, &alice_again, "k", body).await;
    assert_eq!((a2.status, &a2.body["id"]), (201, &a.body["id"]));
    let owners: Vec<KeyOwner> = keys(&app).into_iter().map(|k| k.owner).collect();
    for buyer in ["alice", "bob"] {
        let owner = KeyOwner::Buyer(BuyerId::new(buyer).unwrap());
        assert_eq!(
            owners.iter().filter(|o| **o == owner).count(),
            1,
            "{owners:?}"
        );
    }
}

#[tokio::test]
async fn a_duplicate_in_progress_is_409_with_retry_after() {
    let app = two_shops();
    seed(&app, "tee", 10).await;
    *app.inventory().fail_with.lock().unwrap() = Some(CommandError::IdempotencyInProgress {
        retry_after_ms: 1500,
    });
    let r = reserve(
        &app,
        "shop",
        "k",
        r#"{"buyer":"b1","lines":[{"sku":"tee","qty":1}]}"#,
    )
    .await;
    assert_eq!(
        (r.status, problem_type(&r)),
        (409, "idempotency-in-progress"),
        "{}",
        r.body
    );
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(r.headers["content-type"], "application/problem+json");
}
