//! How long a restart takes: writes N events into an embedded log (one shard), then times
//! `Engine::start`, which opens the log, replays every record through the shard's `apply`
//! and serves. Prints the figure quoted in docs/benchmarks.md.
//!
//! `cargo run --release -p flashsale-benches --example recovery_time -- [EVENTS] [DIR]
//! [--replay sequential|pipelined|pipelined-decode|both|all] [--rounds N] [--shards S]` (default
//! 10,000,000 events in a temporary directory, pipelined replay, one round, one shard). With
//! `both` (sequential and pipelined) or `all`, the same log is recovered by each mode in turn,
//! `N` rounds alternated, and the medians are printed (ADR 0036). With `--shards S` the events
//! are split evenly over `S` shards (one SKU each, owned by that shard) and recovered by `S`
//! shard executors in parallel, as the server does with its default of a shard per core
//! (ADR 0036, sixth round).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use flashsale_engine::shard::shard_of;
use flashsale_engine::{Engine, EngineConfig, LogBackend, SystemClock};
use flashsale_persistence::embedded::ReplayMode;
use flashsale_persistence::{EmbeddedBackend, EmbeddedOptions};
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

/// The SKU of shard `shard` of `shards`: `recovery-tee` with one shard, else the first
/// `recovery-tee-N` that [`shard_of`] places on it.
fn sku_of_shard(shard: u16, shards: u16) -> anyhow::Result<SkuId> {
    if shards == 1 {
        return Ok(SkuId::new("recovery-tee")?);
    }
    for n in 0..100_000 {
        let sku = SkuId::new(format!("recovery-tee-{n}"))?;
        if shard_of(&sku, usize::from(shards)) == shard {
            return Ok(sku);
        }
    }
    bail!("no SKU id found for shard {shard} of {shards}")
}

/// Writes `events` records split evenly over `shards` shards (shard 0 takes the remainder):
/// what each shard's SKU must replay to.
fn write_logs(dir: &Path, events: u64, shards: u16) -> anyhow::Result<Vec<(SkuId, Expected)>> {
    let per_shard = events / u64::from(shards);
    let mut out = Vec::new();
    for s in 0..shards {
        let n = if s == 0 {
            events - per_shard * u64::from(shards - 1)
        } else {
            per_shard
        };
        let sku = sku_of_shard(s, shards)?;
        out.push((sku.clone(), write_log(dir, n, s, shards, sku)?));
    }
    Ok(out)
}

/// Writes `events` records into shard `shard` of `shards`: its SKU, then reservations of which
/// half are confirmed, a quarter cancelled and a quarter left held (expiring a day from now,
/// so none expires on replay).
fn write_log(
    dir: &Path,
    events: u64,
    shard: u16,
    shards: u16,
    sku: SkuId,
) -> anyhow::Result<Expected> {
    let backend = EmbeddedBackend::open(dir).context("open embedded log")?;
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(512 << 10)
        .spawn(move || async move {
            let log = backend
                .open(shard, shards)
                .await
                .with_context(|| format!("open shard {shard}"))?;
            let now_ms = SystemClock.now_ms_for_bench();
            let mut w = Writer {
                shard,
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
                let id = ReservationId::compose(shard, k);
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
                            order: OrderId::compose(shard, k),
                            payment_ref: format!("pay-{k}").into(),
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
    shard: u16,
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
                shard: self.shard,
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

/// Command line: `[EVENTS] [DIR] [--replay sequential|pipelined|pipelined-decode|both|all]
/// [--rounds N] [--shards S]`.
#[derive(Debug)]
struct Args {
    events: u64,
    dir: Option<std::path::PathBuf>,
    modes: Vec<ReplayMode>,
    rounds: u32,
    shards: u16,
}

/// Most shards `--shards` accepts (the engine's limit).
const MAX_SHARDS: u16 = 64;

/// Most rounds `--rounds` accepts.
const MAX_ROUNDS: u32 = 20;

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        events: 10_000_000,
        dir: None,
        modes: vec![ReplayMode::Pipelined],
        rounds: 1,
        shards: 1,
    };
    let mut it = std::env::args().skip(1);
    let mut positional = 0;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--replay" => {
                args.modes = match it.next().as_deref() {
                    Some("sequential") => vec![ReplayMode::Sequential],
                    Some("pipelined") => vec![ReplayMode::Pipelined],
                    Some("pipelined-decode") => vec![ReplayMode::PipelinedDecode],
                    Some("both") => vec![ReplayMode::Sequential, ReplayMode::Pipelined],
                    Some("all") => vec![
                        ReplayMode::Sequential,
                        ReplayMode::Pipelined,
                        ReplayMode::PipelinedDecode,
                    ],
                    other => bail!(
                        "--replay takes sequential, pipelined, pipelined-decode, both or all, \
                         not {other:?}"
                    ),
                }
            }
            "--rounds" => {
                args.rounds = it
                    .next()
                    .context("--rounds needs a number")?
                    .parse()
                    .context("--rounds must be a number")?;
                if args.rounds == 0 || args.rounds > MAX_ROUNDS {
                    bail!("--rounds must be 1..={MAX_ROUNDS}");
                }
            }
            "--shards" => {
                args.shards = it
                    .next()
                    .context("--shards needs a number")?
                    .parse()
                    .context("--shards must be a number")?;
                if args.shards == 0 || args.shards > MAX_SHARDS {
                    bail!("--shards must be 1..={MAX_SHARDS}");
                }
            }
            _ if positional == 0 => {
                args.events = a.parse().context("EVENTS must be a number")?;
                positional += 1;
            }
            _ if positional == 1 => {
                args.dir = Some(a.into());
                positional += 1;
            }
            _ => bail!("unexpected argument {a:?}"),
        }
    }
    Ok(args)
}

/// Recovers the log in `dir` once through `Engine::start` with `mode` and one shard per
/// entry of `expected`; seconds taken.
fn recover_once(
    dir: &Path,
    mode: ReplayMode,
    expected: &[(SkuId, Expected)],
) -> anyhow::Result<f64> {
    let options = EmbeddedOptions {
        replay: mode,
        ..EmbeddedOptions::default()
    };
    let backend = EmbeddedBackend::open_with(dir, options).context("reopen embedded log")?;
    let mut config = EngineConfig::new(Arc::new(backend), Arc::new(SystemClock));
    config.shards = expected.len();
    config.pin_cores = false;
    config.snapshot_every_events = 0;
    let t = Instant::now();
    let engine = Engine::start(config).context("engine start (recovery)")?;
    let secs = t.elapsed().as_secs_f64();
    let mut views = Vec::new();
    for (sku, _) in expected {
        views.push(block_on(engine.sku(sku.clone())));
    }
    engine.shutdown();
    drop(engine);
    for ((sku, want), view) in expected.iter().zip(views) {
        let view = view.map_err(|e| anyhow::anyhow!("{sku} after recovery: {e}"))?;
        let got = Expected {
            reserved: view.reserved,
            sold: view.sold,
        };
        if &got != want {
            bail!("recovered state of {sku} {got:?} differs from the log's {want:?}");
        }
    }
    Ok(secs)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let events = args.events;
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.unwrap_or_else(|| tmp.path().to_path_buf());

    let t = Instant::now();
    let expected = write_logs(&dir, events, args.shards)?;
    let size: u64 = (0..args.shards)
        .map(|s| {
            std::fs::read_dir(dir.join(format!("shard-{s:04}")))
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum::<u64>()
                })
                .unwrap_or(0)
        })
        .sum();
    println!(
        "wrote {events} events over {} shard(s) ({:.0} MiB of segments) in {:.2} s",
        args.shards,
        size as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );

    // Alternated, so every mode sees the same machine noise (ADR 0029, 0032).
    let mut times: Vec<(ReplayMode, Vec<f64>)> =
        args.modes.iter().map(|m| (*m, Vec::new())).collect();
    for round in 1..=args.rounds {
        for (mode, secs) in times.iter_mut() {
            let s = recover_once(&dir, *mode, &expected)?;
            println!(
                "round {round}: {mode:?} recovered {events} events in {s:.2} s ({:.2} M events/s)",
                events as f64 / s / 1e6
            );
            secs.push(s);
        }
    }
    for (mode, mut secs) in times {
        secs.sort_by(f64::total_cmp);
        let median = secs[secs.len() / 2];
        println!(
            "{mode:?}: median {median:.2} s of {} rounds ({:.2} M events/s)",
            secs.len(),
            events as f64 / median / 1e6
        );
    }
    println!("state after recovery matches the log: {expected:?}");
    Ok(())
}
