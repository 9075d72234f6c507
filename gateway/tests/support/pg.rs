//! The shared Postgres of the tests (`postgres@127.0.0.1:5432/test`): a schema of one test's own,
//! dropped with its guard, and `psql` for queries. Shared by the gateway's and the load
//! generator's tests (`loadgen/tests/support/mod.rs` includes this file).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// The shared Postgres of the tests (a test that needs it fails when it is unreachable).
pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A Postgres schema of one test's own (`<prefix>_<pid>_<nanos>`), dropped with the guard together
/// with the waiting room's `<schema>_queues`; the drop fails the test when Postgres refuses it
/// (unless the test is already failing).
pub struct PgSchema {
    /// The schema's name.
    name: String,
}

impl PgSchema {
    /// A fresh schema name starting with `prefix` (the server creates the schema). Fails the
    /// test at once when Postgres does not answer.
    pub fn new(prefix: &str) -> PgSchema {
        assert_eq!(
            psql("SELECT 1"),
            "1",
            "Postgres at {DATABASE_URL} must be up"
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        PgSchema {
            name: format!("{prefix}_{}_{nanos}", std::process::id()),
        }
    }

    /// The schema's name, for `--database-schema`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-Atqc"])
            .arg(format!(
                "SET client_min_messages = warning; \
                 DROP SCHEMA IF EXISTS {0} CASCADE; DROP SCHEMA IF EXISTS {0}_queues CASCADE",
                self.name
            ))
            .output();
        if std::thread::panicking() {
            return;
        }
        let out = out.expect("run psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `sql` with `psql` on the test database; panics on failure; returns the trimmed output.
pub fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-Atqc",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
