//! Heap allocations of a shard's node per durable reservation, without the runtime (ADR 0055).
//!
//! The sans-IO [`ShardNode`] driven as the glommio executor drives it: requests of single-line
//! reservations (planned and claimed by the caller beforehand, as `Engine::reserve` does on
//! its own thread), then the group commit: the batch is cut, "flushed", and its buffers are
//! handed back for the next one. A counting allocator counts what the node does on this
//! thread; no executor, reactor or disk is involved, so the count is exact from run to run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
#[path = "support/thread_allocs.rs"]
mod thread_allocs;

use flashsale_engine::node::caller::{prepare_reserve, GateInfo, Prepared};
use flashsale_engine::node::commit::SnapshotPolicy;
use flashsale_engine::node::message::{Output, Request};
use flashsale_engine::node::{NodeConfig, ShardNode};
use flashsale_engine::shard::Shard;
use flashsale_engine::ReserveRequest;
use flashsale_protocol::SkuId;
use support::{buyer, sku, spec};
use thread_allocs::{thread_allocations, ThreadCounting};

#[global_allocator]
static ALLOC: ThreadCounting = ThreadCounting;

/// Reservations per batch (one group commit).
const PER_BATCH: usize = 32;

/// Batches counted (after as many for the warm-up).
const BATCHES: usize = 50;

/// The most allocations the node may make per batch of `PER_BATCH` reservations: two per
/// reservation that the shard's state needs (the new buyer's list of reservations, and the
/// lines of the view the caller is answered with) and one per batch of headroom for the
/// occasional growth of a map. Before ADR 0055 the commit path itself also allocated its
/// record buffer, index, SKU lists, stock levels and list of what became durable anew for
/// every batch, and grew each of them from empty: 83 per batch of 32 (median; 64 after).
const BOUND_PER_BATCH: u64 = 2 * PER_BATCH as u64 + 1;

/// Cuts, "flushes" and recycles the pending batch; returns the replies it released.
fn commit(node: &mut ShardNode<usize>, now_ms: u64, out: &mut Vec<Output<usize>>) -> usize {
    let batch = node.cut().expect("records to commit");
    node.flushed(now_ms, out);
    node.recycle(batch);
    let replies = out
        .iter()
        .filter(|o| matches!(o, Output::Reply { result: Ok(_), .. }))
        .count();
    out.clear();
    replies
}

#[test]
fn a_batch_of_reservations_allocates_only_what_the_shard_keeps() {
    let now_ms = 1_000;
    let mut node: ShardNode<usize> = ShardNode::new(
        Shard::new(0),
        NodeConfig {
            expiry_batch: 1024,
            snapshots: SnapshotPolicy {
                every_events: 0,
                state_factor: 0,
            },
        },
    );
    node.mark_recovered();
    let mut out = Vec::new();
    node.request(now_ms, Request::Upsert(spec("hot", 1_000_000)), 0, &mut out);
    assert_eq!(commit(&mut node, now_ms, &mut out), 1);
    let hot = sku("hot");
    let mut counted = 0u64;
    let mut per_batch = Vec::with_capacity(BATCHES);
    for b in 0..2 * BATCHES {
        // The callers' part (parse, plan, claim): not the node's, not counted.
        let requests: Vec<Request> = (0..PER_BATCH)
            .map(|i| {
                let req = ReserveRequest {
                    buyer: buyer(&format!("b{b}-{i}")),
                    lines: vec![(hot.clone(), 1)],
                    idempotency_key: None,
                    ttl_ms: None,
                };
                let gate = |s: &SkuId| {
                    node.shard().gate(s).map(|gate| GateInfo {
                        gate,
                        ttl_ms: 60_000,
                    })
                };
                match prepare_reserve(req, 1, now_ms, gate).unwrap() {
                    Prepared::Send { request, .. } => request,
                    Prepared::Refused { error, .. } => panic!("refused: {error}"),
                }
            })
            .collect();
        let before = thread_allocations();
        for (i, req) in requests.into_iter().enumerate() {
            node.request(now_ms, req, i, &mut out);
        }
        let replies = commit(&mut node, now_ms, &mut out);
        let used = thread_allocations() - before;
        assert_eq!(
            replies, PER_BATCH,
            "batch {b}: every reservation answered once durable"
        );
        if b >= BATCHES {
            counted += used;
            per_batch.push(used);
        }
    }
    per_batch.sort_unstable();
    println!(
        "node allocations per batch of {PER_BATCH} reservations: median {}, max {}, \
         {:.2} per reservation",
        per_batch[BATCHES / 2],
        per_batch[BATCHES - 1],
        counted as f64 / (BATCHES * PER_BATCH) as f64
    );
    assert!(
        counted <= BOUND_PER_BATCH * BATCHES as u64,
        "{counted} allocations in {BATCHES} batches, above {BOUND_PER_BATCH} per batch"
    );
}
