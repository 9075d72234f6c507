//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;

use flashsale_engine::log::{LogError, ShardLog};
use glommio::{LocalExecutorBuilder, Placement};

/// The test database (trust auth). Tests FAIL when it is unreachable.
pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `f` on a fresh glommio executor with a small io_memory (RLIMIT_MEMLOCK is 8 MiB).
pub fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 << 10)
        .spawn(f)
        .unwrap_or_else(|e| panic!("executor: {e}"))
        .join()
        .unwrap_or_else(|e| panic!("executor join: {e}"));
}

/// Runs `f` on a throwaway tokio runtime (for direct SQL checks).
pub fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio: {e}"))
        .block_on(f)
}

/// A connected client on the current tokio runtime.
pub async fn client() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("postgres at {PG_URL} unreachable: {e}"));
    tokio::spawn(conn);
    client
}

/// Runs one SQL statement returning a single i64.
pub fn query_i64(sql: &str) -> i64 {
    block_on(async {
        client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    })
}

/// Runs SQL statements.
pub fn execute(sql: &str) {
    block_on(async {
        client()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
}

/// A unique schema, dropped (with everything in it) when the guard goes away.
pub struct Schema(pub String);

impl Schema {
    pub fn new(tag: &str) -> Schema {
        let name = format!(
            "test_{tag}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        Schema(name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0);
        let _ = std::thread::spawn(move || execute(&sql)).join();
    }
}

/// The payload of test record `seq`: variable sizes so frames straddle block boundaries.
pub fn record(seq: u64) -> Vec<u8> {
    let n = 20 + (seq as usize * 7) % 300;
    let mut r = format!("record-{seq}-").into_bytes();
    r.resize(n, (seq % 251) as u8);
    r
}

/// Every record after `after`, as `(seq, bytes)`; checks replay's returned last seq.
pub async fn replay_all(
    log: &mut dyn ShardLog,
    after: u64,
) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let mut got = Vec::new();
    let mut apply = |seq: u64, rec: &[u8]| {
        got.push((seq, rec.to_vec()));
        Ok(())
    };
    let last = log.replay(after, &mut apply).await?;
    assert_eq!(last, got.last().map_or(after, |(s, _)| *s));
    Ok(got)
}

/// The records `range` should replay to.
pub fn expect(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
    range.map(|s| (s, record(s))).collect()
}

/// Appends the records of `range` and flushes them as one batch.
pub async fn append_flush(log: &mut dyn ShardLog, range: std::ops::RangeInclusive<u64>) {
    for s in range {
        log.append(s, &record(s));
    }
    log.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
}

/// Record bytes for `seq` in the segment-writing helpers: 1 to 57 bytes derived from `seq`.
pub fn varied_record(seq: u64) -> Vec<u8> {
    let len = 1 + (seq % 57) as usize;
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64) & 0xFF) as u8)
        .collect()
}

/// Writes segment files of records `1..=last` into `dir` as the embedded log lays them out
/// (`<first seq, 20 digits>.seg`, frames then zeros up to `pad` bytes past the data),
/// `per_segment` records per file. Returns (first seq, path) of each file, ascending.
pub fn write_segments(
    dir: &std::path::Path,
    last: u64,
    per_segment: u64,
    pad: usize,
) -> Vec<(u64, std::path::PathBuf)> {
    write_segments_of(dir, last, per_segment, pad, varied_record)
}

/// Like [`write_segments`], with the record bytes of each seq from `record`.
pub fn write_segments_of(
    dir: &std::path::Path,
    last: u64,
    per_segment: u64,
    pad: usize,
    record: impl Fn(u64) -> Vec<u8>,
) -> Vec<(u64, std::path::PathBuf)> {
    let mut out = Vec::new();
    let mut first = 1;
    while first <= last {
        let end = (first + per_segment - 1).min(last);
        let mut data = Vec::new();
        for seq in first..=end {
            flashsale_persistence::frame::encode_frame(seq, &record(seq), &mut data);
        }
        data.resize(data.len() + pad, 0);
        let path = dir.join(format!("{first:020}.seg"));
        std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((first, path));
        first = end + 1;
    }
    out
}
