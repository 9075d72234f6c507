//! A Postgres schema of a test's own on the shared local server (`postgres@127.0.0.1:5432/test`),
//! dropped (with the waiting room's `<schema>_queues`) when the guard goes. Uses `psql`.

use std::process::Command;

/// The local test database.
pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A unique schema name; the schema is dropped on drop.
pub struct PgSchema(pub String);

impl PgSchema {
    /// A fresh name tagged `tag` (the server creates the schema). Fails the test if Postgres
    /// does not answer.
    pub fn new(tag: &str) -> PgSchema {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("lg_{tag}_{}_{nanos}", std::process::id());
        assert_eq!(psql("SELECT 1"), "1", "Postgres at {PG_URL} must be up");
        PgSchema(name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-Atqc"])
            .arg(format!(
                "DROP SCHEMA IF EXISTS {0} CASCADE; DROP SCHEMA IF EXISTS {0}_queues CASCADE",
                self.0
            ))
            .output();
    }
}

/// Runs `sql` with `psql` on the test database; panics on failure; returns trimmed output.
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
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
