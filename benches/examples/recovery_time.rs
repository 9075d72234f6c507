//! How long a restart takes: writes N events into an embedded log (one shard), then times
//! `Engine::start`, which opens the log, replays every record through the shard's `apply`
//! and serves. Prints the figure quoted in docs/benchmarks.md.
//!
//! `cargo run --release -p flashsale-benches --example recovery_time -- [EVENTS] [DIR]`
//! (default 10,000,000 events in a temporary directory).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use flashsale_engine::{Engine, EngineConfig, LogBackend, SystemClock};
use flashsale_persistence::EmbeddedBackend;
use flashsale_protocol::{
    encode_record, BuyerId, Event, Line, LogRecord, OrderId, ReleaseReason, ReservationId, SkuId,
    SkuSpec,
};
use futures::executor::block_on;

/// Records appended between two flushes while writing the log.
const FLUSH_EVERY: u64 = 50_000;

/// What the generated log must replay to.
#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    reserved: u64,
    sold: u64,
}

/// Writes `events` records: one SKU, then reservations of which half are confirmed, a quarter
/// cancelled and a quarter left held (expiring a day from now, so none expires on replay).
fn write_log(dir: &Path, events: u64) -> anyhow::Result<Expected> {
    let backend = EmbeddedBackend::open(dir).context("open embedded log")?;
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 << 10)
        .spawn(move || async move {
            let log = backend.open(0, 1).await.context("open shard 0")?;
            let sku = SkuId::new("recovery-tee")?;
            let now_ms = SystemClock.now_ms_for_bench();
            let mut w = Writer {
                log,
                seq: 0,
                buf: Vec::with_capacity(256),
            };
            let mut expected = Expected::default();
            w.push(Event::SkuUpserted {
                spec: SkuSpec {
                    sku: sku.clone(),
                    name: "Recovery tee".into(),
                    price_cents: 1500,
                    stock: flashsale_protocol::limits::MAX_STOCK,
                    per_buyer_limit: None,
                    sale_starts_at_ms: None,
                    sale_ends_at_ms: None,
                    reservation_ttl_ms: 86_400_000,
                    max_hold_ms: flashsale_protocol::default_max_hold_ms(86_400_000),
                    max_extensions: flashsale_protocol::DEFAULT_MAX_EXTENSIONS,
                },
                at_ms: now_ms,
            })?;
            let mut k = 0u64;
            let mut last_flush = 0;
            while w.seq < events {
                k += 1;
                let id = ReservationId::compose(0, k);
                w.push(Event::Reserved {
                    id,
                    buyer: BuyerId::new(format!("buyer-{}", k % 10_000))?,
                    lines: vec![Line {
                        sku: sku.clone(),
                        qty: 1,
                        unit_price_cents: 1500,
                    }],
                    expires_at_ms: now_ms + 86_400_000,
                    idempotency_key: None,
                    request_hash: k,
                    group: None,
                    at_ms: now_ms,
                })?;
                match k % 4 {
                    0 | 1 if w.seq < events => {
                        w.push(Event::Confirmed {
                            id,
                            order: OrderId::compose(0, k),
                            payment_ref: format!("pay-{k}"),
                            at_ms: now_ms,
                        })?;
                        expected.sold += 1;
                    }
                    2 if w.seq < events => {
                        w.push(Event::Released {
                            id,
                            reason: ReleaseReason::Cancelled,
                            at_ms: now_ms,
                        })?;
                    }
                    _ => expected.reserved += 1,
                }
                if w.seq - last_flush >= FLUSH_EVERY {
                    w.log.flush().await.context("flush")?;
                    last_flush = w.seq;
                }
            }
            w.log.flush().await.context("final flush")?;
            anyhow::Ok(expected)
        })
        .map_err(|e| anyhow::anyhow!("spawn writer executor: {e}"))?;
    handle
        .join()
        .map_err(|e| anyhow::anyhow!("writer executor: {e}"))?
}

/// Appends encoded records with consecutive sequence numbers.
struct Writer {
    log: Box<dyn flashsale_engine::ShardLog>,
    seq: u64,
    buf: Vec<u8>,
}

impl Writer {
    fn push(&mut self, event: Event) -> anyhow::Result<()> {
        self.seq += 1;
        self.buf.clear();
        encode_record(
            &LogRecord {
                shard: 0,
                seq: self.seq,
                event,
            },
            &mut self.buf,
        )?;
        self.log.append(self.seq, &self.buf);
        Ok(())
    }
}

/// `SystemClock::now_ms` through the trait, named for this file.
trait NowForBench {
    fn now_ms_for_bench(&self) -> u64;
}

impl NowForBench for SystemClock {
    fn now_ms_for_bench(&self) -> u64 {
        flashsale_engine::Clock::now_ms(self)
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: u64 = match args.next() {
        Some(a) => a.parse().context("EVENTS must be a number")?,
        None => 10_000_000,
    };
    let tmp = tempfile::tempdir()?;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => tmp.path().to_path_buf(),
    };

    let t = Instant::now();
    let expected = write_log(&dir, events)?;
    let size: u64 = std::fs::read_dir(dir.join("shard-0000"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "wrote {events} events ({:.0} MiB of segments) in {:.2} s",
        size as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );

    let backend = EmbeddedBackend::open(&dir).context("reopen embedded log")?;
    let mut config = EngineConfig::new(Arc::new(backend), Arc::new(SystemClock));
    config.shards = 1;
    config.pin_cores = false;
    config.snapshot_every_events = 0;
    let t = Instant::now();
    let engine = Engine::start(config).context("engine start (recovery)")?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "recovered {events} events in {secs:.2} s ({:.2} M events/s)",
        events as f64 / secs / 1e6
    );
    let view = block_on(engine.sku(SkuId::new("recovery-tee")?))
        .map_err(|e| anyhow::anyhow!("sku after recovery: {e}"))?;
    engine.shutdown();
    let got = Expected {
        reserved: view.reserved,
        sold: view.sold,
    };
    if got != expected {
        bail!("recovered state {got:?} differs from the log's {expected:?}");
    }
    println!("state after recovery matches the log: {got:?}");
    Ok(())
}
