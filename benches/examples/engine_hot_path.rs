//! The engine's hot path without criterion, for instruction counts under callgrind and for
//! quick wall-clock medians: `PAIRS` reserve+confirm pairs of one unit on one shard (the
//! workload of the criterion bench `a_reserve_confirm_one_shard`), as the pure state machine
//! (`plain`) or with both records encoded as the runtime logs them (`encode`).
//!
//! ```sh
//! cargo run --release -p flashsale-benches --example engine_hot_path -- [PAIRS] [plain|encode] [ROUNDS]
//! valgrind --tool=callgrind target/release/examples/engine_hot_path 100000 encode 1
//! ```
//!
//! Prints the median ns per pair over `ROUNDS` fresh shards (default 200,000 pairs, both
//! modes, 7 rounds).

use std::hint::black_box;
use std::time::Instant;

use flashsale_benches::{buyer, reserve_confirm_pairs, shard_with, sku, EncodingSink};
use flashsale_engine::shard::{NullSink, MAX_STOCK};

/// Runs `pairs` pairs on a fresh shard; returns the elapsed ns per pair.
fn round(pairs: u64, encode: bool) -> f64 {
    let id = sku("hot");
    let who = buyer("bench-buyer");
    let mut shard = shard_with(&id, MAX_STOCK);
    let start = Instant::now();
    let done = if encode {
        let mut sink = EncodingSink::default();
        reserve_confirm_pairs(&mut shard, &id, &who, pairs, &mut sink, |s| s.bytes.clear())
    } else {
        reserve_confirm_pairs(&mut shard, &id, &who, pairs, &mut NullSink, |_| {})
    };
    let elapsed = start.elapsed();
    black_box(done);
    elapsed.as_nanos() as f64 / pairs as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000)
        .max(1);
    let modes: Vec<bool> = match args.next().as_deref() {
        Some("plain") => vec![false],
        Some("encode") => vec![true],
        _ => vec![false, true],
    };
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7).max(1);
    for encode in modes {
        let mut ns: Vec<f64> = (0..rounds).map(|_| round(pairs, encode)).collect();
        ns.sort_by(f64::total_cmp);
        let median = ns[ns.len() / 2];
        let name = if encode {
            "state_machine+encode"
        } else {
            "state_machine"
        };
        println!(
            "{name}: median {median:.1} ns/pair = {:.2} M pairs/s ({rounds} rounds of {pairs} pairs; min {:.1}, max {:.1})",
            1e3 / median,
            ns[0],
            ns[ns.len() - 1]
        );
    }
}
