//! Waiting-room benchmarks (docs/benchmarks.md gives the command and the figures): the cost of
//! what 10,000 polling buyers ask of the room — a poll of a waiting ticket, a poll of an
//! admitted one (signs its pass), a pass check — and of a join, in a queue of 10,000 tickets.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flashsale_protocol::queue::{AdmissionMethod, QueueId, QueueSpec};
use flashsale_protocol::{BuyerId, SkuId};
use flashsale_waiting_room::{PassKey, WaitingRoom};

const T0: u64 = 1_000_000;
const WAITING: usize = 10_000;

fn fail(what: &str) -> ! {
    panic!("benchmark set-up failed: {what}")
}

fn queue() -> QueueId {
    QueueId::new("drop").unwrap_or_else(|_| fail("queue id"))
}

fn buyer(i: usize) -> BuyerId {
    BuyerId::new(format!("buyer-{i}")).unwrap_or_else(|_| fail("buyer id"))
}

/// A started fifo queue with `WAITING` tickets, of which the first 100 are admitted.
fn room() -> WaitingRoom {
    let mut room = WaitingRoom::new(PassKey::new([1; 32]), 1);
    let spec = QueueSpec {
        skus: vec![SkuId::new("tee").unwrap_or_else(|_| fail("sku"))],
        prequeue_opens_at_ms: None,
        starts_at_ms: T0,
        admit_per_s: 100,
        max_active: 100,
        pass_ttl_s: 3_600,
        method: AdmissionMethod::Fifo,
        overbooking_pct: 100,
    };
    room.configure(queue(), spec, T0)
        .unwrap_or_else(|_| fail("configure"));
    room.observe_stock(&SkuId::new("tee").unwrap_or_else(|_| fail("sku")), 1_000, 0);
    for i in 0..WAITING {
        room.join(&queue(), &buyer(i), T0)
            .unwrap_or_else(|_| fail("join"));
    }
    room.tick(T0 + 1_000);
    room.take_records();
    room
}

fn polls(c: &mut Criterion) {
    let mut group = c.benchmark_group("waiting_room");
    group.throughput(Throughput::Elements(1));
    let mut room = room();
    let q = queue();
    let now = T0 + 1_500;
    group.bench_function("poll_waiting_ticket", |b| {
        let mut t = 100u64;
        b.iter(|| {
            t = if t >= WAITING as u64 { 101 } else { t + 1 };
            black_box(room.ticket(&q, t, now).is_ok())
        })
    });
    group.bench_function("poll_admitted_ticket_signs_pass", |b| {
        let mut t = 0u64;
        b.iter(|| {
            t = t % 100 + 1;
            black_box(room.ticket(&q, t, now).is_ok())
        })
    });
    let admitted = room.ticket(&q, 1, now).unwrap_or_else(|_| fail("ticket"));
    let pass = admitted.pass.unwrap_or_else(|| fail("pass"));
    let tee = [SkuId::new("tee").unwrap_or_else(|_| fail("sku"))];
    group.bench_function("pass_check", |b| {
        b.iter(|| {
            let guard = room
                .begin_hold(&tee, Some(&pass), &admitted.buyer, now)
                .unwrap_or_else(|_| fail("begin_hold"))
                .unwrap_or_else(|| fail("guard"));
            room.hold_failed(guard);
        })
    });
    group.bench_function("join_new_buyer", |b| {
        let mut i = WAITING;
        let mut room = self::room();
        b.iter(|| {
            i += 1;
            if i >= 150_000 {
                room = self::room();
                i = WAITING;
            }
            black_box(room.join(&q, &buyer(i), now).is_ok());
            room.take_records();
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = polls
}
criterion_main!(benches);
