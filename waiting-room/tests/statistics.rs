//! Fairness, measured: fifo admission keeps join order (Kendall τ ≥ 0.99), random draws do not
//! (τ near 0), and the pre-queue shuffle puts every buyer at every place equally often
//! (a chi-square test over places, with a control that an unshuffled order fails it).

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flashsale_protocol::queue::{AdmissionMethod, QueueId, QueueRecord, QueueSpec};
use flashsale_protocol::{BuyerId, SkuId};
use flashsale_waiting_room::{PassKey, WaitingRoom};

const T0: u64 = 1_000_000;

fn q() -> QueueId {
    QueueId::new("drop").unwrap()
}

fn spec(method: AdmissionMethod, prequeue: bool) -> QueueSpec {
    QueueSpec {
        skus: vec![SkuId::new("tee").unwrap()],
        prequeue_opens_at_ms: prequeue.then_some(T0),
        starts_at_ms: T0 + 1_000,
        admit_per_s: 1_000,
        max_active: 100_000,
        pass_ttl_s: 600,
        method,
        overbooking_pct: 100,
    }
}

/// Kendall's τ-a between two rankings of the same items (`a[i]`, `b[i]`: ranks of item `i`).
fn kendall_tau(a: &[u64], b: &[u64]) -> f64 {
    let n = a.len();
    let mut score = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            let s = (a[i] as i64 - a[j] as i64).signum() * (b[i] as i64 - b[j] as i64).signum();
            score += s;
        }
    }
    score as f64 / (n * (n - 1) / 2) as f64
}

/// Runs one queue: `pre` buyers join during the pre-queue, `post` after the start; returns
/// the tickets in admission order.
fn admission_order(seed: u64, method: AdmissionMethod, pre: usize, post: usize) -> Vec<u64> {
    let mut room = WaitingRoom::new(PassKey::new([1; 32]), seed);
    room.configure(q(), spec(method, pre > 0), T0).unwrap();
    room.observe_stock(&SkuId::new("tee").unwrap(), 1_000_000, 0);
    for i in 0..pre {
        let buyer = BuyerId::new(format!("b{i}")).unwrap();
        room.join(&q(), &buyer, T0 + i as u64 % 1_000).unwrap();
    }
    for i in pre..pre + post {
        let buyer = BuyerId::new(format!("b{i}")).unwrap();
        room.join(&q(), &buyer, T0 + 1_000 + i as u64).unwrap();
    }
    room.take_records();
    let mut order = Vec::new();
    let mut now = T0 + 1_000;
    while order.len() < pre + post {
        now += 1_000;
        room.tick(now);
        for r in room.take_records() {
            if let QueueRecord::Admitted { ticket, .. } = r {
                order.push(ticket);
            }
        }
        assert!(now < T0 + 10_000_000, "admission stalled");
    }
    order
}

#[test]
fn fifo_keeps_join_order_and_random_does_not() {
    let n = 2_000;
    let order = admission_order(7, AdmissionMethod::Fifo, 0, n);
    let join_rank: Vec<u64> = order.clone(); // ticket number = join order
    let admit_rank: Vec<u64> = (0..n as u64).collect();
    let tau = kendall_tau(&join_rank, &admit_rank);
    eprintln!("fifo τ = {tau:.4}");
    assert!(tau >= 0.99, "fifo τ = {tau}");

    let order = admission_order(7, AdmissionMethod::Random, 0, n);
    let tau = kendall_tau(&order, &admit_rank);
    // Under independence τ has sd ≈ 0.015 at n = 2000: |τ| < 0.1 is beyond 6 sd.
    eprintln!("random τ = {tau:.4}");
    assert!(tau.abs() < 0.1, "random τ = {tau}");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=n as u64).collect::<Vec<_>>(), "everyone once");
}

/// Chi-square of a buyers × places count table against the uniform expectation.
fn chi_square(counts: &[Vec<u64>], trials: u64) -> f64 {
    let k = counts.len() as f64;
    let expected = trials as f64 / k;
    counts
        .iter()
        .flatten()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

#[test]
fn the_prequeue_shuffle_is_uniform_and_ahead_of_later_arrivals() {
    let (k, trials) = (8usize, 4_000u64);
    let mut counts = vec![vec![0u64; k]; k];
    let mut unshuffled = vec![vec![0u64; k]; k];
    for seed in 0..trials {
        let order = admission_order(seed, AdmissionMethod::Fifo, k, 3);
        // Pre-queue first, then the later arrivals in their order.
        assert_eq!(&order[k..], &[9, 10, 11], "seed {seed}");
        for (place, &ticket) in order[..k].iter().enumerate() {
            counts[ticket as usize - 1][place] += 1;
            unshuffled[place][place] += 1;
        }
    }
    // df = (k-1)^2 = 49; the 0.1 % critical value is 85.35.
    let stat = chi_square(&counts, trials);
    eprintln!("pre-queue χ² = {stat:.1} (df 49, 0.1 % critical 85.35)");
    assert!(
        stat < 85.35,
        "pre-queue places are not uniform: χ² = {stat:.1}"
    );
    assert!(
        chi_square(&unshuffled, trials) > 85.35,
        "the test has no power"
    );
    // Random method: the pre-queue is still shuffled and ahead.
    let order = admission_order(3, AdmissionMethod::Random, k, 50);
    let mut head: Vec<u64> = order[..k].to_vec();
    head.sort_unstable();
    assert_eq!(head, (1..=k as u64).collect::<Vec<_>>());
}
