//! "One held reservation per pass" across a crash now that a reservation's `HoldPlaced` is
//! not awaited (ADR 0034). Each case stops the server with the journal in the state a crash
//! can leave and starts it again from the same data directory (real embedded logs of the
//! engine and of the waiting room):
//!
//! 1. the engine holds the reservation, the journal lost its `HoldPlaced`: the pass is
//!    refused `in-use` until the restart's pass check finds the reservation, then holds it
//!    (and is usable again once it is cancelled);
//! 2. the pass was idle, nothing held: refused until checked, then usable;
//! 3. the journal lost `HoldPlaced`, and the reservation ended while the server was down
//!    (cancelled before the crash): the check finds nothing held, the pass is idle;
//! 4. `HoldPlaced` durable, the cancel's `HoldReleased` lost: the hold check at the
//!    reservation's expiry learns it was released (ADR 0030, unchanged);
//! 5. the journal lost both `HoldPlaced` and `Spent` (reserved and confirmed within one
//!    detached flush delay before the crash): the check finds the confirmed reservation and
//!    the pass is spent, never usable again (found by the HA queue run's spent-vs-confirmed
//!    check).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod room_support;

use std::time::Duration;

use flashsale_waiting_room::PassError;
use room_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_hold_placed_is_found_in_the_engine_before_the_pass_can_hold_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.sale(10, 60_000).await;
    let pass = server.admitted_pass("ann").await;
    let guard = server.begin_hold("ann", &pass).unwrap().unwrap();
    let held = server.reserve("ann").await;
    // The crash: the engine's write is durable, the room's `HoldPlaced` never was.
    drop(guard);
    server.stop().await;

    let server = Server::start(dir.path()).await;
    assert_eq!(
        server.begin_hold("ann", &pass),
        Err(PassError::Checking),
        "an unchecked pass must not hold"
    );
    server.tick().await;
    assert_eq!(
        server.begin_hold("ann", &pass),
        Err(PassError::InUse),
        "the pass holds the reservation the engine kept"
    );
    // Its release frees the pass (the room is told as the API tells it).
    server.engine.cancel(held.id).await.unwrap();
    server.room.released(held.id).unwrap();
    let guard = server.begin_hold("ann", &pass).unwrap();
    assert!(guard.is_some(), "usable again after the release");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pass_is_refused_until_checked_then_usable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.sale(10, 60_000).await;
    let pass = server.admitted_pass("bea").await;
    // Another buyer's reservation of the SKU is not this pass's.
    let other = server.admitted_pass("cid").await;
    let g = server.begin_hold("cid", &other).unwrap().unwrap();
    let v = server.reserve("cid").await;
    server.room.hold_placed(g, v.id, v.expires_at_ms).unwrap();
    server.stop().await;

    let server = Server::start(dir.path()).await;
    assert_eq!(server.begin_hold("bea", &pass), Err(PassError::Checking));
    server.tick().await;
    let guard = server.begin_hold("bea", &pass).unwrap();
    assert!(guard.is_some(), "checked: nothing held, the pass is idle");
    assert_eq!(
        server.begin_hold("cid", &other),
        Err(PassError::InUse),
        "cid's logged hold is kept"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_hold_placed_of_a_reservation_that_ended_leaves_the_pass_idle() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.sale(10, 60_000).await;
    let pass = server.admitted_pass("dan").await;
    let guard = server.begin_hold("dan", &pass).unwrap().unwrap();
    let held = server.reserve("dan").await;
    // Neither `HoldPlaced` nor `HoldReleased` reached the journal; the engine has both.
    server.engine.cancel(held.id).await.unwrap();
    drop(guard);
    server.stop().await;

    let server = Server::start(dir.path()).await;
    assert_eq!(server.begin_hold("dan", &pass), Err(PassError::Checking));
    server.tick().await;
    assert!(server.begin_hold("dan", &pass).unwrap().is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_hold_released_is_repaired_at_the_holds_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    // Holds of 1 s: the hold check runs at the reservation's expiry.
    server.sale(10, 1_000).await;
    let pass = server.admitted_pass("eve").await;
    let guard = server.begin_hold("eve", &pass).unwrap().unwrap();
    let held = server.reserve("eve").await;
    server
        .room
        .hold_placed(guard, held.id, held.expires_at_ms)
        .unwrap();
    // The cancel is durable in the engine; its `HoldReleased` is never submitted.
    server.engine.cancel(held.id).await.unwrap();
    server.stop().await;

    let server = Server::start(dir.path()).await;
    assert_eq!(server.begin_hold("eve", &pass), Err(PassError::InUse));
    let mut freed = false;
    for _ in 0..60 {
        server.tick().await;
        if let Ok(Some(_)) = server.begin_hold("eve", &pass) {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the pass was freed once its hold's expiry passed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_hold_placed_and_spent_of_a_confirmed_reservation_leave_the_pass_spent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.sale(10, 60_000).await;
    let pass = server.admitted_pass("fay").await;
    let guard = server.begin_hold("fay", &pass).unwrap().unwrap();
    let held = server.reserve("fay").await;
    // The engine confirmed it durably; the room's `HoldPlaced` and `Spent` never were.
    server.engine.confirm(held.id, "pay-fay").await.unwrap();
    drop(guard);
    server.stop().await;

    let server = Server::start(dir.path()).await;
    assert_eq!(server.begin_hold("fay", &pass), Err(PassError::Checking));
    server.tick().await;
    assert_eq!(
        server.begin_hold("fay", &pass),
        Err(PassError::Spent),
        "a pass whose reservation was confirmed is spent, not free"
    );
    server.stop().await;

    // The repair was logged: it holds across another restart without a check.
    let server = Server::start(dir.path()).await;
    assert_eq!(server.begin_hold("fay", &pass), Err(PassError::Spent));
    server.stop().await;
}
