//! Durable-append throughput and commit latency of the log backends, plus the classic
//! row-lock baseline (pgbench), in one run.
//!
//! ```text
//! cargo bench -p flashsale-persistence --bench log_throughput -- [embedded] [postgres] [baseline]
//!     [--secs N] [--dir PATH] [--url URL]
//! cargo bench -p flashsale-persistence --bench log_throughput -- commit [--rate R] [--rounds N]
//! ```
//! `commit` (ADR 0036 and its addendum): commit latency p50/p99/p999 per record at `--rate`
//! records/s offered (default 1 M/s) with one and with two flushes in flight, alternated in
//! the same run with the disk's own floor: a loop of one 4 KiB O_DIRECT write + `fdatasync`
//! into a pre-allocated, zero-filled file of the same directory (what one group commit costs
//! at the least), `--rounds` times (default 3).
//! Embedded: records arrive on a fixed schedule (open loop) on one glommio shard; whenever the
//! log can take a batch (one in flight: after the previous `fdatasync` returned; two: once the
//! previous write completed and fewer than two are in flight), every record arrived so far goes
//! into it. Commit latency of a record = when the log reports it (and every record before it)
//! durable − its arrival time. Postgres: two shards (two
//! connections), each appending batches and flushing in a closed loop. Baseline: pgbench,
//! 20 connections, one `UPDATE inventory … available >= 1` transaction per reservation.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use flashsale_engine::log::ShardLog;
use flashsale_persistence::embedded::EmbeddedLog;
use flashsale_persistence::{EmbeddedBackend, EmbeddedOptions, PostgresBackend};
use flashsale_protocol::{encode_record, BuyerId, Event, Line, LogRecord, ReservationId, SkuId};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

fn sample_record() -> Vec<u8> {
    let ev = Event::Reserved {
        id: ReservationId::compose(0, 123_456),
        buyer: BuyerId::new("buyer-000123456").unwrap_or_else(|e| panic!("{e}")),
        lines: vec![Line {
            sku: SkuId::new("hot-item-2026").unwrap_or_else(|e| panic!("{e}")),
            qty: 1,
            unit_price_cents: 4999,
        }],
        expires_at_ms: 1_790_000_000_000,
        idempotency_key: None,
        request_hash: 0xdead_beef,
        group: None,
        at_ms: 1_789_999_400_000,
    };
    let mut out = Vec::new();
    encode_record(
        &LogRecord {
            shard: 0,
            seq: 1,
            event: ev,
        },
        &mut out,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

struct Args {
    embedded: bool,
    postgres: bool,
    baseline: bool,
    recovery: Option<u64>,
    commit: bool,
    rate: u64,
    rounds: u32,
    secs: u64,
    zero_fill: bool,
    dir: PathBuf,
    url: String,
}

fn args() -> Args {
    let mut a = Args {
        embedded: false,
        postgres: false,
        baseline: false,
        recovery: None,
        commit: false,
        rate: 1_000_000,
        rounds: 3,
        secs: 5,
        zero_fill: true,
        dir: std::env::temp_dir().join("flashsale-log-bench"),
        url: "postgres://postgres@127.0.0.1:5432/test".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "embedded" => a.embedded = true,
            "postgres" => a.postgres = true,
            "baseline" => a.baseline = true,
            "recovery" => a.recovery = Some(10_000_000),
            "--records" => a.recovery = it.next().and_then(|v| v.parse().ok()),
            "commit" => a.commit = true,
            "--rate" => a.rate = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.rate),
            "--rounds" => {
                a.rounds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.rounds)
                    .clamp(1, 20)
            }
            "--no-zero-fill" => a.zero_fill = false,
            "--secs" => a.secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--dir" => a.dir = it.next().map(PathBuf::from).unwrap_or(a.dir),
            "--url" => a.url = it.next().unwrap_or(a.url),
            _ => {} // cargo bench passes --bench
        }
    }
    if !(a.embedded || a.postgres || a.baseline || a.commit || a.recovery.is_some()) {
        a.embedded = true;
        a.postgres = true;
        a.baseline = true;
    }
    a
}

/// How many batches an open-loop run keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flushes {
    /// One, written and synced inside `ShardLog::flush` (the engine's path; the code before
    /// the pipeline, kept as it was).
    Inline,
    /// One, through `EmbeddedLog::submit` / `wait_durable` (the pipeline's I/O tasks): the
    /// next batch is written once the previous one's `fdatasync` returned.
    One,
    /// Two: the next batch is written and its `fdatasync` issued while the previous one's
    /// runs (`EmbeddedLog::submit`, durability order kept).
    Two,
}

impl Flushes {
    fn limit(self) -> usize {
        match self {
            Flushes::Inline | Flushes::One => 1,
            Flushes::Two => flashsale_persistence::embedded::pipeline::MAX_FLUSHES_IN_FLIGHT,
        }
    }
}

/// Records per batch whose latency is sampled (weighted by the records they stand for).
const SAMPLES_PER_BATCH: u64 = 16;

/// One closed-loop run: fixed batches of `batch`, flushed as fast as possible.
fn embedded_closed_run(dir: &std::path::Path, zero_fill: bool, batch: usize, secs: u64) {
    on_warm_log(dir, zero_fill, move |mut log, rec| async move {
        let commits_before = log.commits();
        let mut flush_hist = Histogram::<u64>::new(3).unwrap_or_else(|e| panic!("{e}"));
        let mut seq = 1u64;
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        while Instant::now() < end {
            for _ in 0..batch {
                seq += 1;
                log.append(seq, &rec);
            }
            let f0 = Instant::now();
            log.flush().await.unwrap_or_else(|e| panic!("{e}"));
            flush_hist
                .record((f0.elapsed().as_micros() as u64).max(1))
                .ok();
        }
        let elapsed = start.elapsed().as_secs_f64();
        println!(
                "embedded closed/{batch}: {:>12.0} durable records/s, {:>7} flushes, flush p50 {} us p99 {} us, record {} B",
                (seq - 1) as f64 / elapsed,
                log.commits() - commits_before,
                flush_hist.value_at_quantile(0.5),
                flush_hist.value_at_quantile(0.99),
                rec.len()
            );
    })
}

/// Runs `body` on a fresh glommio executor, with shard 0 of a fresh log in `dir` (cleared
/// first, opened by [`open_warm`]) and the sample record; returns what `body` returns.
fn on_warm_log<T, F, Fut>(dir: &std::path::Path, zero_fill: bool, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(EmbeddedLog, Vec<u8>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let _ = std::fs::remove_dir_all(dir);
    let dir = dir.to_path_buf();
    let rec = sample_record();
    let res = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .spawn(move || async move {
            let log = open_warm(&dir, zero_fill, &rec).await;
            body(log, rec).await
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .join();
    match res {
        Ok(out) => out,
        Err(e) => panic!("embedded bench: {e}"),
    }
}

/// Opens shard 0 of a fresh log in `dir`, writes seq 1 and lets the spare segment be prepared.
async fn open_warm(dir: &std::path::Path, zero_fill: bool, rec: &[u8]) -> EmbeddedLog {
    let options = EmbeddedOptions {
        zero_fill_segments: zero_fill,
        ..EmbeddedOptions::default()
    };
    let backend = EmbeddedBackend::open_with(dir, options).unwrap_or_else(|e| panic!("{e}"));
    let mut log = backend
        .open_shard(0, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut noop = |_: u64, _: &[u8]| Ok(());
    log.replay(0, &mut noop)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Warm-up: create the first segment and let the spare one be prepared.
    log.append(1, rec);
    log.flush().await.unwrap_or_else(|e| panic!("{e}"));
    glommio::timer::sleep(Duration::from_secs(2)).await;
    log
}

/// A batch handed to the log and not yet durable.
struct Submitted {
    /// Its first and last record (1-based arrival index: record `k` is seq `k + 1` and
    /// arrives at `k / rate` seconds after the start).
    first_k: u64,
    last_k: u64,
    /// When it was submitted (ns since the start).
    submitted_ns: u64,
}

/// One open-loop run at `rate` records/s with `flushes` batches in flight at most: records
/// arrive on a fixed schedule (record `k` at `k / rate` s); whenever the log can take a
/// batch, every record arrived and not yet submitted goes into it. Commit latency of a record
/// = the moment the log reports it durable (it and every record before it) − its arrival.
fn embedded_run(
    dir: &std::path::Path,
    zero_fill: bool,
    rate: u64,
    flushes: Flushes,
    secs: u64,
) -> CommitStats {
    on_warm_log(dir, zero_fill, move |mut log, rec| async move {
        let commits_before = log.commits();
        let mut hist = Histogram::<u64>::new(3).unwrap_or_else(|e| panic!("{e}"));
        let mut flush_hist = Histogram::<u64>::new(3).unwrap_or_else(|e| panic!("{e}"));
        let mut in_flight: std::collections::VecDeque<Submitted> = Default::default();
        // Records appended so far (arrival index of the last one) and submitted so far.
        let mut appended_k = 0u64;
        let mut submitted_k = 0u64;
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        let ns_of = |k: u64| (k as u128 * 1_000_000_000 / rate as u128) as u64;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let now_ns = (now - start).as_nanos() as u64;
            let arrived = (now_ns as u128 * rate as u128 / 1_000_000_000) as u64;
            while appended_k < arrived {
                appended_k += 1;
                log.append(appended_k + 1, &rec);
            }
            let started = if !log.has_pending() {
                false
            } else if flushes == Flushes::Inline {
                log.flush().await.unwrap_or_else(|e| panic!("{e}"));
                true
            } else {
                log.in_flight() < flushes.limit()
                    && log.submit().await.unwrap_or_else(|e| panic!("{e}"))
            };
            if started {
                in_flight.push_back(Submitted {
                    first_k: submitted_k + 1,
                    last_k: appended_k,
                    submitted_ns: now_ns,
                });
                submitted_k = appended_k;
            }
            let blocked =
                log.in_flight() >= flushes.limit() || (log.has_pending() && log.in_flight() > 0);
            let durable = if blocked {
                // No batch can be started: park until a write or sync completes.
                log.wait_durable().await
            } else {
                // Waiting for records to arrive: a real shard would be serving meanwhile.
                glommio::executor().yield_now().await;
                log.poll_durable()
            }
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or(0);
            let done_ns = (Instant::now() - start).as_nanos() as u64;
            while in_flight.front().is_some_and(|b| b.last_k < durable) {
                let Some(b) = in_flight.pop_front() else {
                    break;
                };
                flush_hist
                    .record((done_ns.saturating_sub(b.submitted_ns) / 1000).max(1))
                    .ok();
                let n = b.last_k - b.first_k + 1;
                let samples = n.min(SAMPLES_PER_BATCH);
                for i in 0..samples {
                    let k = b.first_k + n * i / samples;
                    let lat_us = done_ns.saturating_sub(ns_of(k)) / 1000;
                    hist.record_n(lat_us.max(1), n / samples + u64::from(i < n % samples))
                        .ok();
                }
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let durable = log.last_durable_seq().unwrap_or(1) - 1;
        CommitStats {
            durable_per_s: durable as f64 / elapsed,
            commit_us: [0.5, 0.99, 0.999].map(|q| hist.value_at_quantile(q)),
            flush_us: [0.5, 0.99, 0.999].map(|q| flush_hist.value_at_quantile(q)),
            flushes: log.commits() - commits_before,
        }
    })
}

/// Per-record commit latency and per-flush latency of one open-loop run.
#[derive(Debug, Clone, Copy)]
struct CommitStats {
    durable_per_s: f64,
    /// p50, p99, p999 in µs, weighted per record.
    commit_us: [u64; 3],
    /// p50, p99, p999 in µs, per batch (submitted → durable).
    flush_us: [u64; 3],
    flushes: u64,
}

/// Bytes of the floor's file: pre-allocated and zero-filled like a log segment.
const FLOOR_FILE_BYTES: u64 = 64 << 20;
/// Bytes written before each `fdatasync` of the floor loop.
const FLOOR_WRITE_BYTES: usize = 4096;
/// Most write + fdatasync pairs of one floor run (besides its time bound).
const FLOOR_MAX_OPS: u64 = 1_000_000;

/// What one floor run measured.
struct Floor {
    /// p50, p99, p999 of one write + `fdatasync`, in µs, per operation.
    op_us: [u64; 3],
    /// p50, p99, p999 in µs, per record, of a group commit that cost nothing but these
    /// operations ([`per_record_floor`]).
    per_record_us: [u64; 3],
    ops: u64,
}

/// The per-record floor of a group commit on this disk, from the floor loop's back-to-back
/// operation times `d[i]`: a record arriving at a uniform time during operation `i` waits
/// for the rest of it and then for the whole of operation `i + 1` (the one that carries it,
/// with one flush in flight), so its latency is `d[i] - offset + d[i + 1]`, weighted by
/// time. Commit latency is counted per record the same way, so this, not the per-operation
/// p99, is the like-for-like floor for it: a rare slow `fdatasync` covers most of the time.
fn per_record_floor(durations_us: &[u64]) -> [u64; 3] {
    let mut hist = Histogram::<u64>::new(3).unwrap_or_else(|e| panic!("{e}"));
    for pair in durations_us.windows(2) {
        let (d, next) = (pair[0], pair[1]);
        for k in 0..SAMPLES_PER_BATCH {
            let offset = d * k / SAMPLES_PER_BATCH;
            let weight = (d / SAMPLES_PER_BATCH).max(1);
            hist.record_n((d - offset + next).max(1), weight).ok();
        }
    }
    [0.5, 0.99, 0.999].map(|q| hist.value_at_quantile(q))
}

/// The disk's floor for one group commit: a loop of one 4 KiB O_DIRECT write at the next
/// offset + `fdatasync` into a pre-allocated, zero-filled file in `dir` (no metadata changes,
/// as for the log's segments), for `secs`. Returns p50, p99, p999 in µs and the op count.
fn fdatasync_floor(dir: &std::path::Path, secs: u64) -> Floor {
    let path = dir.join("fdatasync-floor.tmp");
    let res = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .spawn(move || async move {
            let _ = std::fs::create_dir_all(path.parent().unwrap_or(&path));
            let file = glommio::io::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .dma_open(&path)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            file.pre_allocate(FLOOR_FILE_BYTES, false)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let chunk = 1 << 20;
            let mut at = 0;
            while at < FLOOR_FILE_BYTES {
                let mut buf = file.alloc_dma_buffer(chunk);
                buf.as_bytes_mut().fill(0);
                file.write_at(buf, at)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                at += chunk as u64;
            }
            file.fdatasync().await.unwrap_or_else(|e| panic!("{e}"));
            let mut hist = Histogram::<u64>::new(3).unwrap_or_else(|e| panic!("{e}"));
            let end = Instant::now() + Duration::from_secs(secs);
            let mut durations_us = Vec::new();
            let mut ops = 0u64;
            let mut offset = 0u64;
            while Instant::now() < end && ops < FLOOR_MAX_OPS {
                let mut buf = file.alloc_dma_buffer(FLOOR_WRITE_BYTES);
                buf.as_bytes_mut().fill(0xA5);
                let t = Instant::now();
                file.write_at(buf, offset)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                file.fdatasync().await.unwrap_or_else(|e| panic!("{e}"));
                let us = (t.elapsed().as_micros() as u64).max(1);
                hist.record(us).ok();
                durations_us.push(us);
                ops += 1;
                offset = (offset + FLOOR_WRITE_BYTES as u64) % FLOOR_FILE_BYTES;
            }
            let _ = file.close().await;
            let _ = std::fs::remove_file(&path);
            Floor {
                op_us: [0.5, 0.99, 0.999].map(|q| hist.value_at_quantile(q)),
                per_record_us: per_record_floor(&durations_us),
                ops,
            }
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .join();
    match res {
        Ok(r) => r,
        Err(e) => panic!("fdatasync floor: {e}"),
    }
}

/// Commit latency at `rate` offered with one and with two flushes in flight vs the disk's
/// fdatasync floor, alternated `rounds` times.
fn commit_vs_floor(dir: &PathBuf, zero_fill: bool, rate: u64, rounds: u32, secs: u64) {
    let mut floors = Vec::new();
    let mut runs: Vec<(Flushes, Vec<CommitStats>)> = [Flushes::Inline, Flushes::One, Flushes::Two]
        .into_iter()
        .map(|f| (f, Vec::new()))
        .collect();
    for round in 1..=rounds {
        let floor = fdatasync_floor(dir.parent().unwrap_or(dir), secs);
        println!(
            "round {round}: fdatasync floor (4 KiB write + fdatasync) p50 {} us p99 {} us \
             p999 {} us over {} ops; per record (group commit of these ops) p50 {} us \
             p99 {} us p999 {} us",
            floor.op_us[0],
            floor.op_us[1],
            floor.op_us[2],
            floor.ops,
            floor.per_record_us[0],
            floor.per_record_us[1],
            floor.per_record_us[2]
        );
        floors.push(floor);
        for (flushes, stats) in runs.iter_mut() {
            let s = embedded_run(dir, zero_fill, rate, *flushes, secs);
            println!(
                "round {round}: commit, {flushes:?} flush(es) in flight, at {rate}/s offered \
                 ({:.0}/s durable, {} fdatasyncs): p50 {} us p99 {} us p999 {} us; \
                 batch p50 {} us p99 {} us p999 {} us",
                s.durable_per_s,
                s.flushes,
                s.commit_us[0],
                s.commit_us[1],
                s.commit_us[2],
                s.flush_us[0],
                s.flush_us[1],
                s.flush_us[2]
            );
            stats.push(s);
        }
    }
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let floor_p50 = median(floors.iter().map(|f| f.op_us[0]).collect());
    let floor_p99 = median(floors.iter().map(|f| f.op_us[1]).collect());
    let record_p50 = median(floors.iter().map(|f| f.per_record_us[0]).collect());
    let record_p99 = median(floors.iter().map(|f| f.per_record_us[1]).collect());
    println!(
        "median of {rounds} rounds: fdatasync floor p50 {floor_p50} us p99 {floor_p99} us; \
         per record p50 {record_p50} us p99 {record_p99} us"
    );
    for (flushes, stats) in &runs {
        let p50 = median(stats.iter().map(|c| c.commit_us[0]).collect());
        let p99 = median(stats.iter().map(|c| c.commit_us[1]).collect());
        let batch_p99 = median(stats.iter().map(|c| c.flush_us[1]).collect());
        println!(
            "median of {rounds} rounds, {flushes:?} flush(es) in flight: commit p50 {p50} us \
             ({:.1}x the floor's p50, {:.2}x its per-record p50), p99 {p99} us ({:.1}x the \
             floor's p99, gap {} us; {:.2}x its per-record p99), batch p99 {batch_p99} us",
            p50 as f64 / floor_p50.max(1) as f64,
            p50 as f64 / record_p50.max(1) as f64,
            p99 as f64 / floor_p99.max(1) as f64,
            p99 as i64 - floor_p99 as i64,
            p99 as f64 / record_p99.max(1) as f64
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes `n` records, reopens the log and times a full replay (read, checksum, callback).
fn embedded_recovery(path: &PathBuf, n: u64) {
    let _ = std::fs::remove_dir_all(path);
    let dir = path.clone();
    let rec = sample_record();
    let res = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .spawn(move || async move {
            {
                let backend = EmbeddedBackend::open(&dir).unwrap_or_else(|e| panic!("{e}"));
                let mut log = backend
                    .open_shard(0, 1)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut noop = |_: u64, _: &[u8]| Ok(());
                log.replay(0, &mut noop)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut seq = 0;
                while seq < n {
                    for _ in 0..10_000.min(n - seq) {
                        seq += 1;
                        log.append(seq, &rec);
                    }
                    log.flush().await.unwrap_or_else(|e| panic!("{e}"));
                }
            }
            let backend = EmbeddedBackend::open(&dir).unwrap_or_else(|e| panic!("{e}"));
            let mut log = backend
                .open_shard(0, 1)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let start = Instant::now();
            let mut count = 0u64;
            let mut bytes = 0u64;
            let mut apply = |_: u64, r: &[u8]| {
                count += 1;
                bytes += r.len() as u64;
                Ok(())
            };
            log.replay(0, &mut apply)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let secs = start.elapsed().as_secs_f64();
            println!(
                "recovery scan of {count} records ({} MiB, {} segments): {secs:.2} s, {:.0} records/s \
                 (log read + CRC only, no engine apply)",
                bytes >> 20,
                log.segment_firsts().len(),
                count as f64 / secs
            );
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .join();
    if let Err(e) = res {
        panic!("recovery bench: {e}");
    }
    let _ = std::fs::remove_dir_all(path);
}

fn postgres_run(url: &str, shards: u16, batch: usize, secs: u64) -> f64 {
    let schema = format!("bench_{}", std::process::id());
    let backend = PostgresBackend::with_schema(url, &schema).unwrap_or_else(|e| panic!("{e}"));
    let rec = sample_record();
    let mut handles = Vec::new();
    for shard in 0..shards {
        let b = backend.clone();
        let rec = rec.clone();
        handles.push(
            LocalExecutorBuilder::new(Placement::Unbound)
                .io_memory(512 << 10)
                .spawn(move || async move {
                    let mut log = b
                        .open_shard(shard, shards)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    let mut hist = Histogram::<u64>::new(3).unwrap_or_else(|e| panic!("{e}"));
                    let start = Instant::now();
                    let mut seq = 0u64;
                    while start.elapsed() < Duration::from_secs(secs) {
                        for _ in 0..batch {
                            seq += 1;
                            log.append(seq, &rec);
                        }
                        let f0 = Instant::now();
                        log.flush().await.unwrap_or_else(|e| panic!("{e}"));
                        hist.record(f0.elapsed().as_micros() as u64).ok();
                    }
                    (
                        seq,
                        start.elapsed().as_secs_f64(),
                        hist.value_at_quantile(0.99),
                    )
                })
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let mut total = 0.0;
    let mut p99 = 0;
    for h in handles {
        let (n, secs, p) = h.join().unwrap_or_else(|e| panic!("{e}"));
        total += n as f64 / secs;
        p99 = p99.max(p);
    }
    println!(
        "postgres {shards} shards, batch {batch:>5}: {total:>10.0} durable records/s, flush p99 {p99} us"
    );
    drop(backend);
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    let _ = std::process::Command::new("psql")
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .args(["-q", "-d", url, "-c", &sql])
        .status();
    total
}

fn baseline(url: &str, secs: u64, skus: u32) -> f64 {
    let setup = format!(
        "DROP TABLE IF EXISTS inventory; \
         CREATE TABLE inventory (sku int PRIMARY KEY, available int NOT NULL); \
         INSERT INTO inventory SELECT g, 1000000000 FROM generate_series(1, {skus}) g;"
    );
    let ok = std::process::Command::new("psql")
        .args(["-q", "-d", url, "-c", &setup])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "psql setup of the baseline failed");
    let script = std::env::temp_dir().join(format!("flashsale-baseline-{skus}.sql"));
    std::fs::write(
        &script,
        format!(
            "\\set sku random(1, {skus})\n\
             UPDATE inventory SET available = available - 1 WHERE sku = :sku AND available >= 1;\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-c", "20", "-j", "2", "-T", &secs.to_string(), "-f"])
        .arg(&script)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("pgbench: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| {
            panic!(
                "no tps in pgbench output: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    println!("baseline pgbench 20 conns, {skus} SKU(s): {tps:>10.0} reservations/s (one UPDATE txn each)");
    let _ = std::process::Command::new("psql")
        .args(["-q", "-d", url, "-c", "DROP TABLE IF EXISTS inventory"])
        .status();
    tps
}

fn main() {
    let a = args();
    if a.embedded {
        for rate in [100_000, 500_000, 1_000_000, 1_500_000, 2_000_000] {
            for flushes in [Flushes::Inline, Flushes::One, Flushes::Two] {
                let s = embedded_run(&a.dir, a.zero_fill, rate, flushes, a.secs);
                println!(
                    "embedded {rate:>9} records/s offered, {flushes:?} in flight: {:>10.0} durable \
                     records/s, {:>6} fdatasyncs, commit p50 {} us p99 {} us p999 {} us, batch p99 {} us",
                    s.durable_per_s,
                    s.flushes,
                    s.commit_us[0],
                    s.commit_us[1],
                    s.commit_us[2],
                    s.flush_us[1]
                );
            }
        }
        embedded_closed_run(&a.dir, a.zero_fill, 4096, a.secs);
        let _ = std::fs::remove_dir_all(&a.dir);
    }
    if a.commit {
        commit_vs_floor(&a.dir, a.zero_fill, a.rate, a.rounds, a.secs);
    }
    if let Some(n) = a.recovery {
        embedded_recovery(&a.dir, n);
    }
    let mut best_pg = None;
    if a.postgres {
        let mut best: f64 = 0.0;
        for batch in [1_000, 5_000, 20_000] {
            best = best.max(postgres_run(&a.url, 2, batch, a.secs));
        }
        best_pg = Some(best);
    }
    if a.baseline {
        let hot = baseline(&a.url, a.secs.max(5), 1);
        let spread = baseline(&a.url, a.secs.max(5), 1000);
        if let Some(pg) = best_pg {
            println!(
                "ratio postgres log / baseline: {:.1}x (hot SKU), {:.1}x (1000 SKUs)",
                pg / hot,
                pg / spread
            );
        }
    }
}
