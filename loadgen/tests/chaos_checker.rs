//! The chaos history checker on small hand-written histories: clean ones are valid, and each
//! kind of violation it detects is found (and only where it is). Broken files are errors that
//! name the line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flashsale_loadgen::chaos::check::{Kind, Verdict};
use flashsale_loadgen::chaos::history::{self, Call, FaultKind, HttpAnswer, Outcome};
use support::history::*;

const A: &str = "a"; // stock 10, per-buyer limit 2, TTL 2 s
const B: &str = "b"; // stock 100, no limit, TTL 2 s
const RA: &[(&str, u32)] = &[(A, 1), (B, 1)];
const R2: &[(&str, u32)] = &[(A, 2)];
const R3: &[(&str, u32)] = &[(B, 1)];

fn skus() -> Vec<flashsale_loadgen::chaos::history::SkuSetup> {
    vec![sku(A, 10, Some(2), 2), sku(B, 100, None, 2)]
}

/// A reserve answered 201 at [t, t+10] ms; its expiry is t + 2005 ms (created at t+5, TTL 2 s).
fn ack(h: &mut H, t: u64, id: &str, key: &str, buyer: &str, l: &[(&str, u32)]) -> u64 {
    let exp = t + 2005;
    h.op(
        t,
        t + 10,
        reserve(key, buyer, l),
        with_view(201, view(id, "held", buyer, l, exp)),
    );
    exp
}

/// Load: r1 confirmed, r2 cancelled, r3 abandoned (expires); a SKU read; no faults.
fn load() -> (H, [u64; 3]) {
    let mut h = H::new(skus());
    let e1 = ack(&mut h, 0, "r1", "k1", "u1", RA);
    h.op(
        100,
        110,
        confirm("r1"),
        with_view(200, view("r1", "confirmed", "u1", RA, e1)),
    );
    let e2 = ack(&mut h, 200, "r2", "k2", "u2", R2);
    h.op(
        300,
        310,
        cancel("r2"),
        with_view(200, view("r2", "released", "u2", R2, e2)),
    );
    let e3 = ack(&mut h, 400, "r3", "k3", "u1", R3);
    h.op(500, 510, get_sku(A), counts(10, 9, 0, 1));
    (h, [e1, e2, e3])
}

/// The read-back after [`load`]: final states and counts.
fn read_back(h: &mut H, e: [u64; 3]) {
    h.fault(4_500, FaultKind::LoadEnd);
    h.fin(
        9_000,
        9_010,
        get("r1"),
        with_view(200, view("r1", "confirmed", "u1", RA, e[0])),
    );
    h.fin(
        9_020,
        9_030,
        get("r2"),
        with_view(200, view("r2", "released", "u2", R2, e[1])),
    );
    h.fin(
        9_040,
        9_050,
        get("r3"),
        with_view(200, view("r3", "expired", "u1", R3, e[2])),
    );
    h.fin(9_060, 9_070, get_sku(A), counts(10, 9, 0, 1));
    h.fin(9_080, 9_090, get_sku(B), counts(100, 99, 0, 1));
}

fn clean() -> (H, [u64; 3]) {
    let (mut h, e) = load();
    read_back(&mut h, e);
    (h, e)
}

#[track_caller]
fn assert_finds(h: &H, kind: Kind) -> Vec<Kind> {
    let r = h.check();
    let k = kinds(&r);
    assert!(k.contains(&kind), "expected {kind:?}, found {k:?}");
    assert_eq!(r.verdict, Verdict::Invalid);
    k
}

#[test]
fn a_clean_history_is_valid() {
    let (h, _) = clean();
    let r = h.check();
    assert_eq!(kinds(&r), vec![], "{:#?}", r.violations);
    assert_eq!(r.verdict, Verdict::Valid, "{:?}", r.unresolved);
    assert_eq!(r.stats.reservations, 3);
    assert_eq!(r.stats.final_states["confirmed"], 1);
    assert_eq!(r.stats.final_states["expired"], 1);
}

#[test]
fn legitimate_answers_under_faults_are_valid() {
    // Concurrent duplicates (one waits with 409 in-progress + Retry-After), a timeout resolved
    // by re-sending the key after the run, a restock, a 503 during a Postgres outage, a replay
    // answered during the outage, recovery within 2 s, a late confirm refused, a read model
    // that agrees.
    let mut h = H::new(skus());
    h.op(
        0,
        12,
        reserve("k1", "u1", RA),
        problem(409, "idempotency-in-progress"),
    );
    let e1 = ack(&mut h, 0, "r1", "k1", "u1", RA);
    h.op(
        100,
        110,
        confirm("r1"),
        with_view(200, view("r1", "confirmed", "u1", RA, e1)),
    );
    h.op(200, 700, reserve("k2", "u2", R3), timeout());
    h.op(300, 310, restock(A, 2), counts(12, 11, 0, 1));
    h.fault(600, FaultKind::PgStop);
    h.op(
        650,
        2_650,
        reserve("k4", "u3", R3),
        problem(503, "unavailable"),
    );
    h.op(
        700,
        710,
        reserve("k1", "u1", RA),
        with_view(201, view("r1", "confirmed", "u1", RA, e1)),
    );
    h.fault(3_000, FaultKind::PgStart);
    h.fault(3_100, FaultKind::PgReady);
    let e5 = ack(&mut h, 3_200, "r5", "k5", "u4", R3);
    h.op(
        e5 + 100,
        e5 + 110,
        confirm("r5"),
        problem(409, "invalid-state"),
    );
    h.fault(8_000, FaultKind::LoadEnd);
    // Read-back: k2's outcome is resolved by sending it again (the reservation exists).
    h.fin(
        8_100,
        8_110,
        reserve("k2", "u2", R3),
        with_view(201, view("r2", "expired", "u2", R3, 2_205)),
    );
    h.fin(
        8_200,
        8_210,
        reserve("k4", "u3", R3),
        problem(409, "sold-out"),
    );
    h.fin(
        9_000,
        9_010,
        get("r1"),
        with_view(200, view("r1", "confirmed", "u1", RA, e1)),
    );
    h.fin(
        9_020,
        9_030,
        get("r2"),
        with_view(200, view("r2", "expired", "u2", R3, 2_205)),
    );
    h.fin(
        9_040,
        9_050,
        get("r5"),
        with_view(200, view("r5", "expired", "u4", R3, e5)),
    );
    h.fin(9_060, 9_070, get_sku(A), counts(12, 11, 0, 1));
    h.fin(9_080, 9_090, get_sku(B), counts(100, 99, 0, 1));
    h.read_model(
        &[("ord-r1", "r1", "u1", "pay-r1", RA)],
        &[(A, 12, 0, 1), (B, 100, 0, 1)],
    );
    let r = h.check();
    assert_eq!(kinds(&r), vec![], "{:#?}", r.violations);
    assert_eq!(r.verdict, Verdict::Valid, "{:?}", r.unresolved);
    assert_eq!(r.stats.pg_recovery_ms, vec![110]);
    assert_eq!(r.stats.read_model_orders_checked, 1);
}

#[test]
fn an_outcome_left_unknown_makes_the_verdict_unknown() {
    let (mut h, e) = load();
    h.op(600, 4_100, reserve("k9", "u9", R3), timeout());
    read_back(&mut h, e);
    let r = h.check();
    assert_eq!(kinds(&r), vec![]);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(
        r.unresolved.iter().any(|u| u.contains("k9")),
        "{:?}",
        r.unresolved
    );
}

#[test]
fn a_500_is_an_unexpected_answer() {
    let (mut h, e) = load();
    h.op(600, 610, reserve("k9", "u9", R3), problem(500, "internal"));
    h.op(700, 710, reserve("k10", "u9", R3), problem(422, "invalid"));
    read_back(&mut h, e);
    let k = assert_finds(&h, Kind::UnexpectedAnswer);
    assert_eq!(
        k.iter().filter(|k| **k == Kind::UnexpectedAnswer).count(),
        2
    );
}

#[test]
fn in_progress_needs_retry_after() {
    let (mut h, e) = load();
    h.op(
        600,
        610,
        reserve("k3", "u1", R3),
        Outcome::Http(Box::new(HttpAnswer {
            status: 409,
            problem: Some("idempotency-in-progress".into()),
            retry_after_s: None,
            reservation: None,
            sku: None,
            items: None,
            orders: None,
            next_cursor: None,
            limit_name: None,
            detail: None,
        })),
    );
    read_back(&mut h, e);
    assert_eq!(assert_finds(&h, Kind::InProgressWithoutRetryAfter).len(), 1);
}

#[test]
fn the_phantom_201_of_concurrent_duplicates_is_found() {
    // Two concurrent requests with one key; a line of the cart hits the buyer limit. One gets
    // 429, the other a 201 with no lines whose id is unknown afterwards.
    let (mut h, e) = load();
    h.op(
        600,
        615,
        reserve("k5", "u5", RA),
        problem(429, "buyer-limit"),
    );
    h.op(
        600,
        616,
        reserve("k5", "u5", RA),
        with_view(201, view("r5", "held", "u5", &[], 2_605)),
    );
    read_back(&mut h, e);
    h.fin(9_100, 9_110, get("r5"), problem(404, "not-found"));
    let k = assert_finds(&h, Kind::AckLinesDiffer);
    assert!(k.contains(&Kind::AckLost), "{k:?}");
}

#[test]
fn an_acknowledged_reservation_that_vanishes_is_lost() {
    let (mut h, e) = clean();
    h.fin(9_500, 9_510, get("r3"), problem(404, "not-found"));
    let _ = e;
    assert_eq!(assert_finds(&h, Kind::AckLost), vec![Kind::AckLost]);
}

#[test]
fn a_read_with_other_lines_differs() {
    let (mut h, e) = clean();
    h.fin(
        9_500,
        9_510,
        get("r1"),
        with_view(200, view("r1", "confirmed", "u1", R2, e[0])),
    );
    assert_finds(&h, Kind::ReadDiffers);
}

#[test]
fn one_key_two_reservations() {
    let (mut h, e) = clean();
    h.op(
        600,
        610,
        reserve("k3", "u1", R3),
        with_view(201, view("r9", "held", "u1", R3, e[2])),
    );
    h.fin(
        9_500,
        9_510,
        get("r9"),
        with_view(200, view("r9", "expired", "u1", R3, e[2])),
    );
    assert_finds(&h, Kind::KeyTwoReservations);
}

#[test]
fn keys_of_two_callers_never_share_a_reservation() {
    let (mut h, e) = clean();
    h.op(
        600,
        610,
        Call::Reserve {
            caller: 1,
            key: Some("k1".into()),
            buyer: "u1".into(),
            lines: lines(RA),
        },
        with_view(201, view("r1", "confirmed", "u1", RA, e[0])),
    );
    let k = assert_finds(&h, Kind::KeyTwoReservations);
    assert_eq!(k, vec![Kind::KeyTwoReservations]);
}

#[test]
fn a_mismatch_for_the_same_body_is_spurious() {
    let (mut h, _) = clean();
    h.op(
        600,
        610,
        reserve("k3", "u1", R3),
        problem(409, "idempotency-mismatch"),
    );
    assert_eq!(
        assert_finds(&h, Kind::SpuriousMismatch),
        vec![Kind::SpuriousMismatch]
    );
}

#[test]
fn another_body_under_a_used_key_must_be_refused() {
    let (mut h, e) = clean();
    h.op(
        600,
        610,
        reserve("k3", "u1", R2),
        with_view(201, view("r3", "held", "u1", R2, e[2])),
    );
    assert_finds(&h, Kind::MismatchAccepted);
}

#[test]
fn a_confirmed_reservation_cannot_be_released_later() {
    let (mut h, e) = clean();
    h.fin(
        9_500,
        9_510,
        get("r1"),
        with_view(200, view("r1", "released", "u1", RA, e[0])),
    );
    assert_finds(&h, Kind::IllegalTransition);
}

#[test]
fn expiry_before_expires_at_is_early() {
    let (mut h, e) = load();
    h.op(
        1_000,
        1_010,
        get("r3"),
        with_view(200, view("r3", "expired", "u1", R3, e[2])),
    );
    read_back(&mut h, e);
    assert_eq!(assert_finds(&h, Kind::EarlyExpiry), vec![Kind::EarlyExpiry]);
}

#[test]
fn a_hold_that_never_expires_is_found() {
    let (mut h, e) = load();
    h.fault(4_500, FaultKind::LoadEnd);
    h.fin(
        9_000,
        9_010,
        get("r1"),
        with_view(200, view("r1", "confirmed", "u1", RA, e[0])),
    );
    h.fin(
        9_020,
        9_030,
        get("r2"),
        with_view(200, view("r2", "released", "u2", R2, e[1])),
    );
    h.fin(
        9_040,
        9_050,
        get("r3"),
        with_view(200, view("r3", "held", "u1", R3, e[2])),
    );
    h.fin(9_060, 9_070, get_sku(A), counts(10, 9, 0, 1));
    h.fin(9_080, 9_090, get_sku(B), counts(100, 98, 1, 1));
    assert_eq!(
        assert_finds(&h, Kind::HeldPastExpiry),
        vec![Kind::HeldPastExpiry]
    );
}

#[test]
fn expires_at_must_follow_the_ttl() {
    let (mut h, e) = load();
    h.op(
        600,
        610,
        reserve("k6", "u6", R3),
        with_view(201, view("r6", "held", "u6", R3, 5_600)),
    );
    read_back(&mut h, e);
    h.fin(
        9_500,
        9_510,
        get("r6"),
        with_view(200, view("r6", "expired", "u6", R3, 5_600)),
    );
    assert_eq!(assert_finds(&h, Kind::WrongExpiry), vec![Kind::WrongExpiry]);
}

#[test]
fn a_confirm_after_expiry_must_be_refused() {
    let (mut h, e) = load();
    h.op(
        3_000,
        3_010,
        confirm("r3"),
        with_view(200, view("r3", "confirmed", "u1", R3, e[2])),
    );
    read_back(&mut h, e);
    assert_finds(&h, Kind::ConfirmAfterExpiry);
}

#[test]
fn a_release_needs_a_cause() {
    let (mut h, e) = load();
    h.op(
        600,
        610,
        get("r3"),
        with_view(200, view("r3", "released", "u1", R3, e[2])),
    );
    read_back(&mut h, e);
    assert_finds(&h, Kind::SpontaneousRelease);
    let (mut h, e) = load();
    let mut aborted = view("r3", "released", "u1", R3, e[2]);
    aborted.release_reason = Some("aborted".into());
    h.op(600, 610, get("r3"), with_view(200, aborted));
    read_back(&mut h, e);
    assert_finds(&h, Kind::SpontaneousRelease);
}

#[test]
fn a_live_hold_must_be_confirmable() {
    let (mut h, e) = load();
    h.op(600, 610, confirm("r3"), problem(409, "invalid-state"));
    read_back(&mut h, e);
    assert_eq!(
        assert_finds(&h, Kind::SpuriousRefusal),
        vec![Kind::SpuriousRefusal]
    );
}

#[test]
fn a_buyer_above_the_limit_is_found() {
    // u2 holds a×2 from 210 ms until its cancel at 300 ms; a×1 more at 230 ms is one too many.
    let (mut h, e) = load();
    let e6 = ack(&mut h, 220, "r6", "k6", "u2", &[(A, 1)]);
    read_back(&mut h, e);
    h.fin(
        9_500,
        9_510,
        get("r6"),
        with_view(200, view("r6", "expired", "u2", &[(A, 1)], e6)),
    );
    assert_eq!(
        assert_finds(&h, Kind::BuyerLimitExceeded),
        vec![Kind::BuyerLimitExceeded]
    );
}

#[test]
fn more_units_held_than_stock_is_an_oversell() {
    let mut h = H::new(vec![sku("c", 1, None, 2)]);
    let e1 = ack(&mut h, 0, "r1", "k1", "u1", &[("c", 1)]);
    let e2 = ack(&mut h, 100, "r2", "k2", "u2", &[("c", 1)]);
    h.fault(4_500, FaultKind::LoadEnd);
    h.fin(
        9_000,
        9_010,
        get("r1"),
        with_view(200, view("r1", "expired", "u1", &[("c", 1)], e1)),
    );
    h.fin(
        9_020,
        9_030,
        get("r2"),
        with_view(200, view("r2", "expired", "u2", &[("c", 1)], e2)),
    );
    h.fin(9_040, 9_050, get_sku("c"), counts(1, 1, 0, 0));
    assert_eq!(assert_finds(&h, Kind::Oversell), vec![Kind::Oversell]);
    // With a restock sent before the second hold, there was room.
    let mut h = H::new(vec![sku("c", 1, None, 2)]);
    let e1 = ack(&mut h, 0, "r1", "k1", "u1", &[("c", 1)]);
    h.op(50, 60, restock("c", 1), counts(2, 1, 1, 0));
    let e2 = ack(&mut h, 100, "r2", "k2", "u2", &[("c", 1)]);
    h.fault(4_500, FaultKind::LoadEnd);
    h.fin(
        9_000,
        9_010,
        get("r1"),
        with_view(200, view("r1", "expired", "u1", &[("c", 1)], e1)),
    );
    h.fin(
        9_020,
        9_030,
        get("r2"),
        with_view(200, view("r2", "expired", "u2", &[("c", 1)], e2)),
    );
    h.fin(9_040, 9_050, get_sku("c"), counts(2, 2, 0, 0));
    let r = h.check();
    assert_eq!(r.verdict, Verdict::Valid, "{:#?}", r.violations);
}

#[test]
fn counts_must_add_up() {
    let (mut h, e) = load();
    h.op(600, 610, get_sku(A), counts(10, 9, 1, 1));
    read_back(&mut h, e);
    assert_eq!(
        assert_finds(&h, Kind::Conservation),
        vec![Kind::Conservation]
    );
}

#[test]
fn the_total_is_stock_plus_restocks() {
    let (mut h, e) = load();
    h.op(600, 610, get_sku(A), counts(12, 11, 0, 1));
    read_back(&mut h, e);
    assert_eq!(assert_finds(&h, Kind::StockTotal), vec![Kind::StockTotal]);
}

#[test]
fn counts_after_the_run_must_match_the_acknowledgements() {
    let (mut h, _) = clean();
    h.fin(9_500, 9_510, get_sku(A), counts(10, 8, 0, 2));
    assert_eq!(
        assert_finds(&h, Kind::CountsAtQuiescence),
        vec![Kind::CountsAtQuiescence]
    );
}

#[test]
fn the_read_model_must_hold_every_confirmed_order_and_no_other() {
    let good = [(A, 10, 0, 1), (B, 100, 0, 1)];
    let (mut h, _) = clean();
    h.read_model(&[("ord-r1", "r1", "u1", "pay-r1", RA)], &good);
    assert_eq!(h.check().verdict, Verdict::Valid);

    let (mut h, _) = clean();
    h.read_model(&[], &good);
    assert_eq!(
        assert_finds(&h, Kind::ReadModelOrder),
        vec![Kind::ReadModelOrder]
    );

    let (mut h, _) = clean();
    h.read_model(&[("ord-r1", "r1", "u1", "pay-r1", R3)], &good);
    assert_eq!(
        assert_finds(&h, Kind::ReadModelOrder),
        vec![Kind::ReadModelOrder]
    );

    let (mut h, _) = clean();
    h.read_model(
        &[
            ("ord-r1", "r1", "u1", "pay-r1", RA),
            ("ord-r2", "r2", "u2", "pay-r2", R2),
        ],
        &good,
    );
    assert_eq!(
        assert_finds(&h, Kind::ReadModelPhantomOrder),
        vec![Kind::ReadModelPhantomOrder]
    );

    let (mut h, _) = clean();
    h.read_model(
        &[("ord-r1", "r1", "u1", "pay-r1", RA)],
        &[(A, 10, 1, 1), (B, 100, 0, 1)],
    );
    assert_eq!(
        assert_finds(&h, Kind::ReadModelStock),
        vec![Kind::ReadModelStock]
    );
}

#[test]
fn nothing_new_is_acknowledged_while_postgres_is_down() {
    let (mut h, e) = load();
    h.fault(600, FaultKind::PgStop);
    let e7 = ack(&mut h, 700, "r7", "k7", "u7", R3);
    h.fault(2_000, FaultKind::PgStart);
    read_back(&mut h, e);
    h.fin(
        9_500,
        9_510,
        get("r7"),
        with_view(200, view("r7", "expired", "u7", R3, e7)),
    );
    assert_eq!(
        assert_finds(&h, Kind::AckDuringOutage),
        vec![Kind::AckDuringOutage]
    );
}

#[test]
fn reservations_resume_within_two_seconds_of_postgres() {
    let (mut h, e) = load();
    h.fault(600, FaultKind::PgStop);
    h.fault(1_000, FaultKind::PgStart);
    h.fault(1_100, FaultKind::PgReady);
    h.op(
        1_200,
        3_200,
        reserve("k8", "u8", R3),
        problem(503, "unavailable"),
    );
    let e8 = ack(&mut h, 3_300, "r8", "k8", "u8", R3);
    h.fault(5_500, FaultKind::LoadEnd);
    h.fin(
        9_000,
        9_010,
        get("r1"),
        with_view(200, view("r1", "confirmed", "u1", RA, e[0])),
    );
    h.fin(
        9_020,
        9_030,
        get("r2"),
        with_view(200, view("r2", "released", "u2", R2, e[1])),
    );
    h.fin(
        9_040,
        9_050,
        get("r3"),
        with_view(200, view("r3", "expired", "u1", R3, e[2])),
    );
    h.fin(
        9_050,
        9_055,
        get("r8"),
        with_view(200, view("r8", "expired", "u8", R3, e8)),
    );
    h.fin(9_060, 9_070, get_sku(A), counts(10, 9, 0, 1));
    h.fin(9_080, 9_090, get_sku(B), counts(100, 99, 0, 1));
    let r = h.check();
    assert_eq!(kinds(&r), vec![Kind::SlowRecovery], "{:#?}", r.violations);
    assert_eq!(r.stats.pg_recovery_ms, vec![2_210]);
}

#[test]
fn a_failed_restart_is_a_violation() {
    let (mut h, e) = load();
    h.fault(600, FaultKind::Kill);
    h.fault(900, FaultKind::RestartFailed);
    read_back(&mut h, e);
    assert_eq!(
        assert_finds(&h, Kind::RestartFailed),
        vec![Kind::RestartFailed]
    );
}

#[test]
fn violations_point_at_their_lines() {
    let (mut h, _) = clean();
    h.op(
        600,
        610,
        reserve("k3", "u1", R3),
        problem(409, "idempotency-mismatch"),
    );
    let (_dir, path) = h.write();
    let hist = history::read(&path).unwrap();
    let r = flashsale_loadgen::chaos::check::check(&hist);
    let v = &r.violations[0];
    let lines: Vec<usize> = v.at.iter().map(|p| p.line).collect();
    // Line 1 is meta, r3's 201 is line 6, the read-back ends at line 13, the mismatch is line 14.
    assert_eq!(lines, vec![6, 14], "{v:?}");
    let text = flashsale_loadgen::chaos::check::render::render(&r, &hist, 3);
    assert!(text.contains("verdict: INVALID"), "{text}");
    assert!(text.contains("history.jsonl:14: {"), "{text}");
}

#[test]
fn a_truncated_history_is_an_error_naming_the_line() {
    let (h, _) = clean();
    let text = h.text();
    let n = text.lines().count();
    let cut = &text[..text.len() - 10];
    let (_d, p) = write_text(cut);
    let e = history::read(&p).unwrap_err().to_string();
    assert!(e.contains(&format!(":{n}: truncated")), "{e}");

    let without_end: String = text.lines().take(n - 1).map(|l| format!("{l}\n")).collect();
    let (_d, p) = write_text(&without_end);
    let e = history::read(&p).unwrap_err().to_string();
    assert!(e.contains(&format!(":{n}: no end record")), "{e}");

    let missing_op: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let (_d, p) = write_text(&missing_op);
    let e = history::read(&p).unwrap_err().to_string();
    assert!(e.contains("records are missing"), "{e}");
}

#[test]
fn a_corrupt_history_is_an_error_naming_the_line() {
    let (h, _) = clean();
    let text = h.text();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = r#"{"type":"op","op":"#.into();
    let (_d, p) = write_text(&(lines.join("\n") + "\n"));
    let e = history::read(&p).unwrap_err().to_string();
    assert!(e.contains(":3: not a history record"), "{e}");

    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.swap(0, 1);
    let (_d, p) = write_text(&(lines.join("\n") + "\n"));
    let e = history::read(&p).unwrap_err().to_string();
    assert!(
        e.contains(":1: the first record must be the meta record"),
        "{e}"
    );

    let (_d, p) = write_text("");
    assert!(history::read(&p).is_err());
    let (_d, p) = write_text("\u{0}\u{1}garbage\n");
    let e = history::read(&p).unwrap_err().to_string();
    assert!(e.contains(":1:"), "{e}");
}

/// [`load`] plus holds and lists: r3 extended by 3 s (to 3605 ms), lists read during the
/// load; the read-back reads every buyer's orders to the last page.
fn with_holds_and_lists() -> (H, [u64; 3]) {
    let (mut h, mut e) = load();
    h.op(
        600,
        610,
        extend("r3", 3),
        with_view(200, view("r3", "held", "u1", R3, 3_605)),
    );
    e[2] = 3_605;
    h.op(
        700,
        710,
        list_res("u1", None),
        page(
            vec![
                view("r3", "held", "u1", R3, 3_605),
                view("r1", "confirmed", "u1", RA, e[0]),
            ],
            None,
        ),
    );
    h.op(
        720,
        730,
        list_res("u2", Some("released")),
        page(vec![view("r2", "released", "u2", R2, e[1])], None),
    );
    (h, e)
}

fn orders_read_back(h: &mut H) {
    h.fin(
        9_100,
        9_110,
        list_orders("u1", None),
        orders_page(&[("r1", "u1", RA)], None),
    );
    h.fin(
        9_120,
        9_130,
        list_orders("u2", None),
        orders_page(&[], None),
    );
}

#[test]
fn extensions_and_lists_in_a_clean_history_are_valid() {
    let (mut h, e) = with_holds_and_lists();
    read_back(&mut h, e);
    orders_read_back(&mut h);
    let r = h.check();
    assert_eq!(kinds(&r), vec![], "{:#?}", r.violations);
    assert_eq!(r.verdict, Verdict::Valid, "{:?}", r.unresolved);
    assert_eq!(r.stats.extensions_acknowledged, 1);
    assert_eq!(r.stats.list_pages, 4);
    assert_eq!(r.stats.orders_listed_checked, 1);
}

#[test]
fn an_expiry_before_an_acknowledged_extension_is_early() {
    let (mut h, e) = with_holds_and_lists();
    // Expired at 3 s: past the first deadline (2405 ms), before the extended one (3605 ms).
    h.op(
        3_000,
        3_010,
        get("r3"),
        with_view(200, view("r3", "expired", "u1", R3, 3_605)),
    );
    read_back(&mut h, e);
    orders_read_back(&mut h);
    assert_eq!(assert_finds(&h, Kind::EarlyExpiry), vec![Kind::EarlyExpiry]);
}

#[test]
fn an_extension_short_of_the_ask_is_wrong() {
    let (mut h, e) = load();
    // Asked for 3 s at 600 ms, answered with the old deadline (2405 ms).
    h.op(
        600,
        610,
        extend("r3", 3),
        with_view(200, view("r3", "held", "u1", R3, e[2])),
    );
    read_back(&mut h, e);
    assert_eq!(assert_finds(&h, Kind::WrongExpiry), vec![Kind::WrongExpiry]);
}

#[test]
fn extensions_past_the_bound_must_be_refused() {
    // B allows the default 3 extensions: a 4th acknowledged one ignores the bound.
    let (mut h, mut e) = load();
    for n in 0..4 {
        let t = 600 + 100 * n;
        let exp = t + 3_005;
        h.op(
            t,
            t + 10,
            extend("r3", 3),
            with_view(200, view("r3", "held", "u1", R3, exp)),
        );
        e[2] = exp;
    }
    read_back(&mut h, e);
    assert_eq!(
        assert_finds(&h, Kind::HoldBoundIgnored),
        vec![Kind::HoldBoundIgnored]
    );
}

#[test]
fn an_extension_refused_without_a_cause_is_spurious() {
    let (mut h, e) = load();
    // No extension sent before: neither bound can be reached; the hold is live.
    h.op(600, 610, extend("r3", 1), hold_limit("max_extensions"));
    h.op(700, 710, extend("r3", 1), problem(409, "invalid-state"));
    // Past the maximum hold (1 h by default): refused rightly.
    h.op(800, 810, extend("r3", 3_700), hold_limit("max_hold_s"));
    read_back(&mut h, e);
    let k = assert_finds(&h, Kind::SpuriousRefusal);
    assert_eq!(k, vec![Kind::SpuriousRefusal, Kind::SpuriousRefusal]);
}

#[test]
fn a_list_contradicting_the_history_is_found() {
    let (mut h, e) = load();
    // r1 was confirmed at 110 ms: a later page showing it held goes backwards.
    h.op(
        700,
        710,
        list_res("u1", None),
        page(vec![view("r1", "held", "u1", RA, e[0])], None),
    );
    // Another buyer's reservation, and a status other than asked.
    h.op(
        720,
        730,
        list_res("u2", None),
        page(vec![view("r1", "confirmed", "u1", RA, e[0])], None),
    );
    h.op(
        740,
        750,
        list_res("u2", Some("held")),
        page(vec![view("r2", "released", "u2", R2, e[1])], None),
    );
    read_back(&mut h, e);
    let k = assert_finds(&h, Kind::ListContradicts);
    assert_eq!(
        k,
        vec![
            Kind::IllegalTransition,
            Kind::ListContradicts,
            Kind::ListContradicts
        ]
    );
}

#[test]
fn a_confirmed_reservation_missing_from_the_orders_is_found() {
    let (mut h, e) = with_holds_and_lists();
    read_back(&mut h, e);
    h.fin(
        9_100,
        9_110,
        list_orders("u1", None),
        orders_page(&[], None),
    );
    h.fin(
        9_120,
        9_130,
        list_orders("u2", None),
        orders_page(&[], None),
    );
    assert_eq!(
        assert_finds(&h, Kind::OrderMissing),
        vec![Kind::OrderMissing]
    );
}

#[test]
fn orders_not_read_to_the_last_page_leave_the_verdict_unknown() {
    let (mut h, e) = with_holds_and_lists();
    read_back(&mut h, e);
    h.fin(
        9_100,
        9_110,
        list_orders("u1", None),
        orders_page(&[], Some("c2")),
    );
    let r = h.check();
    assert_eq!(kinds(&r), vec![], "{:#?}", r.violations);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(
        r.unresolved.iter().any(|u| u.contains("u1")),
        "{:?}",
        r.unresolved
    );
}

/// [`load`] plus an extension of r3 by 3 s sent at 600 ms whose client gave up at 610 ms (no
/// answer), and a read at [620, 640] ms showing the hold at `shown_ms`.
fn an_unanswered_extension_then_a_read(shown_ms: u64) -> H {
    let (mut h, mut e) = load();
    h.op(600, 610, extend("r3", 3), timeout());
    h.op(
        620,
        640,
        get("r3"),
        with_view(200, view("r3", "held", "u1", R3, shown_ms)),
    );
    e[2] = shown_ms;
    read_back(&mut h, e);
    h
}

#[test]
fn an_extension_applied_after_its_client_gave_up_is_allowed() {
    // The server applied it at 625 ms, after the client stopped waiting at 610 ms (a reset
    // exchange is still served): 625 + 3000 is past the 610 + 3000 (+ 5) its answer's time
    // allows, but within what a read completed at 640 ms can show.
    let h = an_unanswered_extension_then_a_read(3_625);
    let r = h.check();
    assert_eq!(kinds(&r), vec![], "{:#?}", r.violations);
    assert_ne!(r.verdict, Verdict::Invalid);
}

#[test]
fn a_deadline_no_unanswered_extension_could_set_differs() {
    // 3,700 ms: later than the read's completion (640 ms) plus the 3 s asked.
    let h = an_unanswered_extension_then_a_read(3_700);
    assert_finds(&h, Kind::ReadDiffers);
}
