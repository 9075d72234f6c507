//! Loom models of the stock gate: racing reservers, releasers and the shard never oversell,
//! never lose units, and never leave the gate negative once the races settle.
#![cfg(loom)]

use flashsale_loom_tests::gate::StockGate;
use loom::sync::Arc;
use loom::thread;

/// Two buyers race for the last unit: exactly one wins, the gate ends at zero.
#[test]
fn two_reservers_one_unit_exactly_one_wins() {
    loom::model(|| {
        let gate = Arc::new(StockGate::new(1));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let g = gate.clone();
                thread::spawn(move || g.try_claim(1).is_ok())
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count();
        assert_eq!(wins, 1, "the last unit was sold {wins} times");
        assert_eq!(gate.available(), 0);
    });
}

/// Three reservers of different sizes and a releaser giving a unit back: the units claimed
/// never exceed the units that existed, and claimed + remaining == initial + returned.
#[test]
fn reservers_and_releaser_conserve_units() {
    loom::model(|| {
        let gate = Arc::new(StockGate::new(2));
        let claimed = Arc::new(loom::sync::atomic::AtomicU64::new(0));
        let mut handles = Vec::new();
        for qty in [1u64, 2] {
            let g = gate.clone();
            let c = claimed.clone();
            handles.push(thread::spawn(move || {
                if g.try_claim(qty).is_ok() {
                    c.fetch_add(qty, loom::sync::atomic::Ordering::SeqCst);
                }
            }));
        }
        let g = gate.clone();
        handles.push(thread::spawn(move || g.give_back(1)));
        for h in handles {
            h.join().unwrap();
        }
        let claimed = claimed.load(loom::sync::atomic::Ordering::SeqCst);
        assert!(claimed <= 3, "claimed {claimed} of at most 3 units");
        assert_eq!(claimed + gate.available(), 3, "units lost or created");
    });
}

/// A reserver whose claim the shard refuses gives it back while another reserver races:
/// the unit is never lost and never double-sold.
#[test]
fn refused_claim_given_back_is_not_lost() {
    loom::model(|| {
        let gate = Arc::new(StockGate::new(1));
        let g1 = gate.clone();
        let a = thread::spawn(move || {
            if g1.try_claim(1).is_ok() {
                // The shard refused (e.g. buyer limit): the claim goes back.
                g1.give_back(1);
            }
        });
        let g2 = gate.clone();
        let b = thread::spawn(move || g2.try_claim(1).is_ok());
        a.join().unwrap();
        let b_won = b.join().unwrap();
        let remaining = gate.available();
        assert_eq!(remaining + u64::from(b_won), 1);
    });
}

/// The shard lowers stock (`take`) while a buyer claims: the buyer can only win a unit that
/// still exists, and the gate settles at total - claimed - taken (never below zero when
/// nothing is in flight).
#[test]
fn shard_take_races_with_claim() {
    loom::model(|| {
        let gate = Arc::new(StockGate::new(2));
        let g1 = gate.clone();
        let shard = thread::spawn(move || g1.take(1));
        let g2 = gate.clone();
        let buyer = thread::spawn(move || g2.try_claim(2).is_ok());
        shard.join().unwrap();
        let won = buyer.join().unwrap();
        if won {
            // The buyer claimed both units before the shard took one: the shard's own
            // re-check refuses one of them later; the gate shows the debt as zero available.
            assert_eq!(gate.available(), 0);
        } else {
            assert_eq!(gate.available(), 1);
        }
    });
}
