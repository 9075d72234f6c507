//! Test support: an in-process fake server following the HTTP contract, a real server, and
//! hand-written chaos histories.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fake_server;
pub mod history;
/// The shared Postgres schema guard and `psql`, one file with the gateway's tests.
#[path = "../../../gateway/tests/support/pg.rs"]
pub mod pg_schema;
pub mod real_server;
