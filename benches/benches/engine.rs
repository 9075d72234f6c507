//! Engine benchmarks (docs/benchmarks.md gives the command and the figures):
//! (a) reserve+confirm on one shard, (b) sold-out rejection, (c) one hot SKU from 2 threads,
//! (d) a two-line reservation across two shards.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flashsale_benches::{
    buyer, engine, reserve_confirm_pairs, shard_with, sku, skus_on_two_shards, spec, EncodingSink,
};
use flashsale_engine::shard::{NullSink, MAX_STOCK};
use flashsale_engine::{CommandError, ReserveRequest, StockGate};
use futures::executor::block_on;

/// Operations per fresh shard: confirmed reservations are kept (for reads), so the benchmark
/// starts over on a new shard every batch to keep memory flat; set-up is not timed.
const BATCH: u64 = 200_000;

/// (a) The pure state machine: one reserve and one confirm of one unit, as one operation.
fn reserve_confirm(c: &mut Criterion) {
    let mut group = c.benchmark_group("a_reserve_confirm_one_shard");
    group.throughput(Throughput::Elements(1));
    let id = sku("hot");
    let who = buyer("bench-buyer");
    for encode in [false, true] {
        let name = if encode {
            "state_machine+encode"
        } else {
            "state_machine"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH);
                    left -= n;
                    let mut shard = shard_with(&id, MAX_STOCK);
                    let mut sink = EncodingSink::default();
                    let start = Instant::now();
                    let done = if encode {
                        reserve_confirm_pairs(&mut shard, &id, &who, n, &mut sink, |s| {
                            s.bytes.clear()
                        })
                    } else {
                        reserve_confirm_pairs(&mut shard, &id, &who, n, &mut NullSink, |_| {})
                    };
                    black_box(done);
                    elapsed += start.elapsed();
                }
                elapsed
            })
        });
    }
    group.finish();
}

/// (b) Rejecting a request for a sold-out SKU: the gate alone, and the whole engine call
/// (validation, SKU lookup, gate) which never reaches a shard.
fn sold_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("b_sold_out_rejection");
    group.throughput(Throughput::Elements(1));
    let gate = StockGate::new(0);
    group.bench_function("gate_try_claim", |b| {
        b.iter(|| black_box(gate.try_claim(black_box(1)).is_err()))
    });

    let engine = engine(2);
    let id = sku("gone");
    if let Err(e) = block_on(engine.upsert_sku(spec(&id, 0))) {
        panic!("upsert: {e}");
    }
    let request = ReserveRequest {
        buyer: buyer("late-buyer"),
        lines: vec![(id.clone(), 1)],
        idempotency_key: None,
        ttl_ms: None,
    };
    group.bench_function("engine_reserve", |b| {
        b.iter(|| {
            let r = block_on(engine.reserve(request.clone()));
            black_box(matches!(r, Err(CommandError::SoldOut { .. })))
        })
    });
    group.finish();
    engine.shutdown();
}

/// Runs `per_thread` claim+give-back pairs on one gate from `threads` threads; returns wall time.
fn hammer_gate(gate: &Arc<StockGate>, threads: usize, per_thread: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let gate = gate.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..per_thread {
                    if gate.try_claim(1).is_ok() {
                        gate.give_back(1);
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        if h.join().is_err() {
            panic!("gate thread panicked");
        }
    }
    start.elapsed()
}

/// (c) One hot SKU from 1 and 2 threads: the shared structure is the SKU's gate (every
/// reservation claims it, every release gives back), and, end to end, engine reserve+cancel.
fn hot_sku(c: &mut Criterion) {
    let mut group = c.benchmark_group("c_hot_sku");
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(
            BenchmarkId::new("gate_claim_release", threads),
            &threads,
            |b, &t| {
                let gate = Arc::new(StockGate::new(1_000_000));
                // Each timed "iteration" is one claim+release on every thread.
                b.iter_custom(|iters| hammer_gate(&gate, t, iters))
            },
        );
    }

    let engine = engine(2);
    let id = sku("hot-e2e");
    if let Err(e) = block_on(engine.upsert_sku(spec(&id, 1_000_000_000))) {
        panic!("upsert: {e}");
    }
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(
            BenchmarkId::new("engine_reserve_cancel", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    let barrier = Arc::new(Barrier::new(t + 1));
                    let handles: Vec<_> = (0..t)
                        .map(|i| {
                            let engine = engine.clone();
                            let barrier = barrier.clone();
                            let request = ReserveRequest {
                                buyer: buyer(&format!("buyer-{i}")),
                                lines: vec![(id.clone(), 1)],
                                idempotency_key: None,
                                ttl_ms: None,
                            };
                            thread::spawn(move || {
                                barrier.wait();
                                for _ in 0..iters {
                                    match block_on(engine.reserve(request.clone())) {
                                        Ok(view) => {
                                            if let Err(e) = block_on(engine.cancel(view.id)) {
                                                panic!("cancel: {e}");
                                            }
                                        }
                                        Err(e) => panic!("reserve: {e}"),
                                    }
                                }
                            })
                        })
                        .collect();
                    barrier.wait();
                    let start = Instant::now();
                    for h in handles {
                        if h.join().is_err() {
                            panic!("engine thread panicked");
                        }
                    }
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
    engine.shutdown();
}

/// (d) A two-line reservation whose lines live on different shards, then its cancellation.
fn cross_shard(c: &mut Criterion) {
    let mut group = c.benchmark_group("d_cross_shard");
    group.throughput(Throughput::Elements(1));
    let engine = engine(2);
    let (a, b_sku) = skus_on_two_shards(2);
    for id in [&a, &b_sku] {
        if let Err(e) = block_on(engine.upsert_sku(spec(id, 1_000_000_000))) {
            panic!("upsert: {e}");
        }
    }
    let two_lines = ReserveRequest {
        buyer: buyer("cross-buyer"),
        lines: vec![(a.clone(), 1), (b_sku.clone(), 1)],
        idempotency_key: None,
        ttl_ms: None,
    };
    let one_line = ReserveRequest {
        buyer: buyer("cross-buyer"),
        lines: vec![(a.clone(), 1)],
        idempotency_key: None,
        ttl_ms: None,
    };
    for (name, request) in [
        ("one_line_baseline", one_line),
        ("two_lines_two_shards", two_lines),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| match block_on(engine.reserve(request.clone())) {
                Ok(view) => black_box(block_on(engine.cancel(view.id)).is_ok()),
                Err(e) => panic!("reserve: {e}"),
            })
        });
    }
    group.finish();
    engine.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = reserve_confirm, sold_out, hot_sku, cross_shard
}
criterion_main!(benches);
