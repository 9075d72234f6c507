//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;

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
