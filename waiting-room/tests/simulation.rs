//! Deterministic simulation: a seeded random mix of joins (and re-joins), clock jumps with
//! ticks, reservations with passes (good, other buyer's, spent), confirms, cancels, hold
//! expiries, restocks and restarts (replay of the records so far, or of a snapshot — a
//! compaction — and the records after it), checked after every step
//! against a plain reference model of the rules and the room's invariants.
//!
//! The model encodes the contract: the pre-queue is admitted before anyone who joined after
//! the start, in an order the model does not predict; fifo then admits in join order, random
//! in any order; each tick admits exactly `min(rate credit, max_active − active, unclaimed ×
//! overbooking − idle passes, waiting)`; a waiting ticket is `sold_out` exactly while no unit
//! is unclaimed.
//!
//! Replay a failing seed with `FLASHSALE_QSIM_SEED=<seed> cargo test -p flashsale-waiting-room
//! --test simulation`; `FLASHSALE_QSIM_STEPS` overrides the steps per seed.

// Test code: panicking on a broken expectation is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use flashsale_protocol::queue::{AdmissionMethod, QueueId, QueueRecord, QueueSpec};
use flashsale_protocol::{BuyerId, ReservationId, SkuId};
use flashsale_waiting_room::{PassError, PassKey, TicketStatus, WaitingRoom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const T0: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MState {
    Waiting,
    Admitted { expires_at: u64, holding: bool },
    Spent,
    Expired,
}

/// The plain model of one queue.
struct Model {
    spec: QueueSpec,
    started: Option<u64>,
    credit: u64,
    /// `None` after a restart until the next tick.
    credit_at: Option<u64>,
    /// Ticket number → buyer, state.
    tickets: BTreeMap<u64, (BuyerId, MState)>,
    /// Joined before the start and not yet admitted.
    prequeue: BTreeSet<u64>,
    /// Joined after the start, not yet admitted, in join order.
    later: Vec<u64>,
}

/// The engine, as far as the room needs it: units per SKU and the passes' reservations.
struct Stock {
    available: BTreeMap<SkuId, u64>,
    reserved: BTreeMap<SkuId, u64>,
    /// Reservation → (SKU, ticket, expires_at).
    holds: BTreeMap<ReservationId, (SkuId, u64, u64)>,
    next_res: u64,
}

impl Model {
    fn start_if_due(&mut self, now: u64) {
        if self.started.is_none() && now >= self.spec.starts_at_ms {
            self.started = Some(now);
            self.credit = 0;
            self.credit_at = Some(now);
        }
    }

    fn active(&self) -> u64 {
        self.tickets
            .values()
            .filter(|(_, s)| matches!(s, MState::Admitted { .. }))
            .count() as u64
    }

    fn idle(&self) -> u64 {
        self.tickets
            .values()
            .filter(|(_, s)| matches!(s, MState::Admitted { holding: false, .. }))
            .count() as u64
    }

    fn waiting(&self) -> u64 {
        (self.prequeue.len() + self.later.len()) as u64
    }

    /// How many the tick at `now` must admit (credit updated as the rules say).
    fn admissions_due(&mut self, now: u64, unclaimed: u64) -> u64 {
        if self.started.is_none() {
            return 0;
        }
        let rate = u64::from(self.spec.admit_per_s);
        match self.credit_at {
            None => self.credit_at = Some(now),
            Some(at) if now > at => {
                self.credit = (self.credit + (now - at) * rate).min(rate * 1_000);
                self.credit_at = Some(now);
            }
            Some(_) => {}
        }
        let cap = unclaimed * u64::from(self.spec.overbooking_pct) / 100;
        let n = (self.credit / 1_000)
            .min(u64::from(self.spec.max_active).saturating_sub(self.active()))
            .min(cap.saturating_sub(self.idle()))
            .min(self.waiting());
        self.credit -= n * 1_000;
        n
    }
}

impl Stock {
    fn unclaimed(&self) -> u64 {
        self.available.values().sum()
    }
    fn observe(&self, room: &mut WaitingRoom) {
        for (sku, a) in &self.available {
            room.observe_stock(sku, *a, self.reserved[sku]);
        }
    }
}

fn q() -> QueueId {
    QueueId::new("drop").unwrap()
}

fn key() -> PassKey {
    PassKey::new([9; 32])
}

fn run(seed: u64, steps: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_skus = rng.gen_range(1..=2);
    let skus: Vec<SkuId> = (0..n_skus)
        .map(|i| SkuId::new(format!("s{i}")).unwrap())
        .collect();
    let spec = QueueSpec {
        skus: skus.clone(),
        prequeue_opens_at_ms: rng.gen_bool(0.7).then_some(T0),
        starts_at_ms: T0 + rng.gen_range(0..5_000),
        admit_per_s: rng.gen_range(1..=20),
        max_active: rng.gen_range(1..=12),
        pass_ttl_s: rng.gen_range(1..=8),
        method: if rng.gen_bool(0.5) {
            AdmissionMethod::Fifo
        } else {
            AdmissionMethod::Random
        },
        overbooking_pct: [100, 100, 150, 300][rng.gen_range(0..4)],
    };
    let mut room = WaitingRoom::new(key(), seed);
    room.configure(q(), spec.clone(), T0).unwrap();
    let mut log: Vec<QueueRecord> = room.take_records();
    // The last compaction: the log holds the records after it.
    let mut snapshot = None;
    let mut model = Model {
        spec: spec.clone(),
        started: None,
        credit: 0,
        credit_at: None,
        tickets: BTreeMap::new(),
        prequeue: BTreeSet::new(),
        later: Vec::new(),
    };
    let mut stock = Stock {
        available: skus
            .iter()
            .map(|s| (s.clone(), rng.gen_range(0..15)))
            .collect(),
        reserved: skus.iter().map(|s| (s.clone(), 0)).collect(),
        holds: BTreeMap::new(),
        next_res: 1,
    };
    stock.observe(&mut room);
    let mut now = T0;
    let buyers: Vec<BuyerId> = (0..40)
        .map(|i| BuyerId::new(format!("b{i}")).unwrap())
        .collect();

    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        match rng.gen_range(0..100) {
            // Join (or join again).
            0..=29 => {
                let buyer = &buyers[rng.gen_range(0..buyers.len())];
                let known = model
                    .tickets
                    .iter()
                    .find(|(_, (b, _))| b == buyer)
                    .map(|(t, _)| *t);
                let opens = spec.prequeue_opens_at_ms.unwrap_or(spec.starts_at_ms);
                match room.join(&q(), buyer, now) {
                    Ok(v) => {
                        assert!(now >= opens, "{ctx}: joined before opening");
                        if let Some(t) = known {
                            assert_eq!(v.ticket, t, "{ctx}: re-join gave another ticket");
                        } else {
                            model.start_if_due(now);
                            let t = model.tickets.len() as u64 + 1;
                            assert_eq!(v.ticket, t, "{ctx}: ticket numbers");
                            model.tickets.insert(t, (buyer.clone(), MState::Waiting));
                            if model.started.is_some() {
                                model.later.push(t);
                            } else {
                                model.prequeue.insert(t);
                            }
                        }
                    }
                    Err(e) => assert!(now < opens && known.is_none(), "{ctx}: {e}"),
                }
            }
            // Time passes: engine expiries, then the room's tick.
            30..=54 => {
                now += rng.gen_range(0..2_500);
                let due: Vec<ReservationId> = stock
                    .holds
                    .iter()
                    .filter(|(_, (_, _, exp))| *exp <= now)
                    .map(|(r, _)| *r)
                    .collect();
                assert_eq!(room.due_holds(now), due, "{ctx}: holds due for a check");
                for r in due {
                    let (sku, t, _) = stock.holds.remove(&r).unwrap();
                    *stock.reserved.get_mut(&sku).unwrap() -= 1;
                    *stock.available.get_mut(&sku).unwrap() += 1;
                    assert!(room.reservation_released(r, now), "{ctx}");
                    if let Some((_, MState::Admitted { holding, .. })) = model.tickets.get_mut(&t) {
                        *holding = false;
                    }
                }
                stock.observe(&mut room);
                // Fifo: who is next, before the tick.
                let positions: BTreeMap<u64, u64> = model
                    .tickets
                    .keys()
                    .filter_map(|&t| room.ticket(&q(), t, now).unwrap().position.map(|p| (p, t)))
                    .collect();
                room.tick(now);
                model.start_if_due(now);
                // Idle passes at or past their expiry expire first (their places come back).
                for (_, s) in model.tickets.values_mut() {
                    if let MState::Admitted {
                        expires_at,
                        holding: false,
                    } = *s
                    {
                        if expires_at <= now {
                            *s = MState::Expired;
                        }
                    }
                }
                let n = model.admissions_due(now, stock.unclaimed());
                let admitted: Vec<u64> = room
                    .take_records()
                    .into_iter()
                    .inspect(|r| log.push(r.clone()))
                    .filter_map(|r| match r {
                        QueueRecord::Admitted { ticket, .. } => Some(ticket),
                        _ => None,
                    })
                    .collect();
                assert_eq!(admitted.len() as u64, n, "{ctx}: admissions this tick");
                for (i, t) in admitted.iter().enumerate() {
                    if !model.prequeue.is_empty() {
                        assert!(
                            model.prequeue.remove(t),
                            "{ctx}: {t} admitted before the pre-queue"
                        );
                    } else {
                        let at = model.later.iter().position(|x| x == t);
                        let at = at.unwrap_or_else(|| panic!("{ctx}: {t} was not waiting"));
                        if spec.method == AdmissionMethod::Fifo {
                            assert_eq!(at, 0, "{ctx}: fifo admitted {t} out of order");
                        }
                        model.later.remove(at);
                    }
                    if (i as u64) < positions.len() as u64 {
                        assert_eq!(
                            positions.get(&(i as u64 + 1)),
                            Some(t),
                            "{ctx}: not the next in line"
                        );
                    }
                    let exp = now + u64::from(spec.pass_ttl_s) * 1_000;
                    model.tickets.get_mut(t).unwrap().1 = MState::Admitted {
                        expires_at: exp,
                        holding: false,
                    };
                }
            }
            // An admitted buyer reserves one unit with its pass (or someone else's).
            55..=74 => {
                let admitted: Vec<u64> = model
                    .tickets
                    .iter()
                    .filter(|(_, (_, s))| !matches!(s, MState::Waiting))
                    .map(|(t, _)| *t)
                    .collect();
                if admitted.is_empty() {
                    continue;
                }
                let t = admitted[rng.gen_range(0..admitted.len())];
                let Some(pass) = room.ticket(&q(), t, now).unwrap().pass else {
                    assert!(
                        !matches!(model.tickets[&t].1, MState::Admitted { .. }),
                        "{ctx}: no pass"
                    );
                    continue;
                };
                let (owner, state) = model.tickets[&t].clone();
                let thief = rng.gen_bool(0.2);
                let buyer = if thief {
                    BuyerId::new("thief").unwrap()
                } else {
                    owner
                };
                let sku = skus[rng.gen_range(0..skus.len())].clone();
                let got = room.begin_hold(std::slice::from_ref(&sku), Some(&pass), &buyer, now);
                let want = match state {
                    _ if thief => Err(PassError::OtherBuyer),
                    MState::Spent => Err(PassError::Spent),
                    MState::Expired => Err(PassError::Expired),
                    MState::Admitted { expires_at, .. } if now >= expires_at => {
                        Err(PassError::Expired)
                    }
                    MState::Admitted { holding: true, .. } => Err(PassError::InUse),
                    MState::Admitted { .. } => Ok(()),
                    MState::Waiting => unreachable!(),
                };
                match (got, want) {
                    (Ok(Some(guard)), Ok(())) => {
                        if stock.available[&sku] == 0 {
                            room.hold_failed(guard);
                        } else {
                            let r = ReservationId::compose(0, stock.next_res);
                            stock.next_res += 1;
                            *stock.available.get_mut(&sku).unwrap() -= 1;
                            *stock.reserved.get_mut(&sku).unwrap() += 1;
                            let exp = now + rng.gen_range(500..6_000);
                            stock.holds.insert(r, (sku, t, exp));
                            room.hold_placed(guard, r, exp);
                            if let MState::Admitted { holding, .. } =
                                &mut model.tickets.get_mut(&t).unwrap().1
                            {
                                *holding = true;
                            }
                            stock.observe(&mut room);
                        }
                    }
                    (Err(e), Err(w)) => assert_eq!(e, w, "{ctx}"),
                    (got, want) => panic!("{ctx}: ticket {t}: got {got:?}, want {want:?}"),
                }
            }
            // A holder confirms or cancels.
            75..=84 => {
                let Some((&r, _)) = stock
                    .holds
                    .iter()
                    .nth(rng.gen_range(0..stock.holds.len().max(1)))
                else {
                    continue;
                };
                let (sku, t, _) = stock.holds.remove(&r).unwrap();
                *stock.reserved.get_mut(&sku).unwrap() -= 1;
                let s = &mut model.tickets.get_mut(&t).unwrap().1;
                if rng.gen_bool(0.5) {
                    assert!(room.reservation_confirmed(r, now), "{ctx}");
                    *s = MState::Spent;
                } else {
                    *stock.available.get_mut(&sku).unwrap() += 1;
                    assert!(room.reservation_released(r, now), "{ctx}");
                    if let MState::Admitted { holding, .. } = s {
                        *holding = false;
                    }
                }
                stock.observe(&mut room);
            }
            // Restock.
            85..=89 => {
                let sku = &skus[rng.gen_range(0..skus.len())];
                *stock.available.get_mut(sku).unwrap() += rng.gen_range(1..4);
                stock.observe(&mut room);
            }
            // Restart: replay everything logged so far.
            _ => {
                log.extend(room.take_records());
                if rng.gen_bool(0.5) {
                    // Compaction: the live state replaces the records so far.
                    snapshot = Some(room.snapshot());
                    log.clear();
                }
                room = WaitingRoom::restore_from(
                    key(),
                    seed ^ step as u64,
                    snapshot.clone(),
                    log.iter().cloned(),
                )
                .unwrap_or_else(|e| panic!("{ctx}: replay: {e}"));
                stock.observe(&mut room);
                // Admission credit restarts empty at the next tick (no burst for the downtime).
                model.credit = 0;
                model.credit_at = None;
            }
        }
        log.extend(room.take_records());

        // After every step: every ticket as the model says.
        room.check_invariants()
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let sold_out = stock.unclaimed() == 0;
        for (&t, (buyer, s)) in &model.tickets {
            let v = room.ticket(&q(), t, now).unwrap();
            assert_eq!(&v.buyer, buyer, "{ctx}");
            let want = match s {
                MState::Waiting if sold_out => TicketStatus::SoldOut,
                MState::Waiting => TicketStatus::Waiting,
                MState::Admitted { .. } => TicketStatus::Admitted,
                MState::Spent => TicketStatus::Spent,
                MState::Expired => TicketStatus::Expired,
            };
            assert_eq!(v.status, want, "{ctx}: ticket {t}");
            if let MState::Admitted { expires_at, .. } = s {
                assert_eq!(v.pass_expires_at_ms, Some(*expires_at), "{ctx}");
            }
            if want == TicketStatus::Waiting {
                assert!(
                    v.poll_after_ms.is_some(),
                    "{ctx}: a waiting ticket is told when to poll"
                );
            }
        }
        let c = room.queue(&q()).unwrap().counts();
        assert_eq!(c.active, model.active(), "{ctx}");
        assert!(c.active <= u64::from(spec.max_active), "{ctx}");
    }
}

#[test]
fn simulation_matches_the_model() {
    let steps = std::env::var("FLASHSALE_QSIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    if let Some(seed) = std::env::var("FLASHSALE_QSIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(seed, steps);
        return;
    }
    for seed in 0..150 {
        run(seed, steps);
    }
}
