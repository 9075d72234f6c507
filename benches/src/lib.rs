//! Fixtures shared by the criterion benchmarks in `benches/`: SKU specs, shards and engines set up
//! the same way for every measurement.

use std::sync::Arc;

use flashsale_engine::claim::Claims;
use flashsale_engine::log::memory::MemoryBackend;
use flashsale_engine::shard::{shard_of, CommandLines, EventSink, NullSink, ReserveCommand, Shard};
use flashsale_engine::{Engine, EngineConfig, SystemClock};
use flashsale_protocol::{encode_record, BuyerId, LogRecord, SkuId, SkuSpec};

/// A SKU id, built from a literal the benches know to be valid.
pub fn sku(s: &str) -> SkuId {
    match SkuId::new(s) {
        Ok(id) => id,
        Err(e) => panic!("bench fixture sku {s:?}: {e}"),
    }
}

/// A buyer id, built from a literal the benches know to be valid.
pub fn buyer(s: &str) -> BuyerId {
    match BuyerId::new(s) {
        Ok(id) => id,
        Err(e) => panic!("bench fixture buyer {s:?}: {e}"),
    }
}

/// Settings of a bench SKU: `stock` units, no per-buyer limit, always on sale, 10-minute TTL.
pub fn spec(id: &SkuId, stock: u64) -> SkuSpec {
    SkuSpec {
        sku: id.clone(),
        name: format!("bench {id}"),
        price_cents: 1999,
        stock,
        per_buyer_limit: None,
        sale_starts_at_ms: None,
        sale_ends_at_ms: None,
        reservation_ttl_ms: 600_000,
        max_hold_ms: flashsale_protocol::default_max_hold_ms(600_000),
        max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
    }
}

/// A shard owning one SKU with `stock` units.
pub fn shard_with(id: &SkuId, stock: u64) -> Shard {
    let mut shard = Shard::new(0);
    if let Err(e) = shard.upsert_sku(0, spec(id, stock), &mut NullSink) {
        panic!("bench fixture upsert: {e}");
    }
    shard
}

/// An event sink that encodes every record as the runtime does before logging it.
#[derive(Debug, Default)]
pub struct EncodingSink {
    /// Encoded bytes of the records since the last `clear`.
    pub bytes: Vec<u8>,
}

impl EventSink for EncodingSink {
    fn record(&mut self, record: &LogRecord) {
        if let Err(e) = encode_record(record, &mut self.bytes) {
            panic!("bench encode: {e}");
        }
    }
}

/// Runs `pairs` reserve+confirm pairs of one unit of `sku` for `buyer` on `shard` (the
/// workload of bench (a)), handing every record to `sink` and calling `after` after each
/// command (e.g. to clear an encoding buffer). Returns how many were confirmed.
pub fn reserve_confirm_pairs<S: EventSink>(
    shard: &mut Shard,
    sku: &SkuId,
    buyer: &BuyerId,
    pairs: u64,
    sink: &mut S,
    mut after: impl FnMut(&mut S),
) -> u64 {
    let mut confirmed = 0;
    for _ in 0..pairs {
        let cmd = ReserveCommand {
            buyer: buyer.clone(),
            lines: CommandLines::from_buf([(sku.clone(), 1)]),
            idempotency_key: None,
            request_hash: 0,
            id: None,
            expires_at_ms: None,
            group: None,
            claims: Claims::none(),
        };
        let out = shard.reserve(1, cmd, sink);
        after(sink);
        let id = match out {
            Ok(o) => o.id,
            Err(e) => panic!("reserve: {e}"),
        };
        let done = shard.confirm(2, id, "pay", sink);
        after(sink);
        confirmed += u64::from(done.is_ok());
    }
    confirmed
}

/// Starts an engine with `shards` shards on the in-memory log (durable = appended in memory).
pub fn engine(shards: usize) -> Engine {
    let mut config = EngineConfig::new(Arc::new(MemoryBackend::new()), Arc::new(SystemClock));
    config.shards = shards;
    match Engine::start(config) {
        Ok(e) => e,
        Err(e) => panic!("bench engine start: {e}"),
    }
}

/// Two SKU ids that live on different shards of a `shards`-shard engine.
pub fn skus_on_two_shards(shards: usize) -> (SkuId, SkuId) {
    let first = sku("cross-0");
    let home = shard_of(&first, shards);
    for i in 1..10_000 {
        let other = sku(&format!("cross-{i}"));
        if shard_of(&other, shards) != home {
            return (first, other);
        }
    }
    panic!("no two SKUs on different shards among 10,000 candidates")
}
