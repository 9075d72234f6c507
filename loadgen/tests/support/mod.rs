//! Test support: an in-process fake server following the HTTP contract.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fake_server;
pub mod real_server;
