//! `flashsale-loadgen`: a crowd of simulated buyers (10K–100K keep-alive HTTP/1.1 connections)
//! and stock-stream subscribers against any server speaking the flashsale contract, with
//! coordinated-omission-free latencies, an oversell check and JSON / HTML reports.
//!
//! It is a pure client: it knows the HTTP contract (`../shared/CONTRACT.md`), not the engine.

#![warn(missing_docs)]

pub mod api;
pub mod chaos;
pub mod check;
pub mod cli;
pub mod conn;
pub mod fdlimit;
pub mod follow;
pub mod ledger;
pub mod metrics;
pub mod progress;
pub mod queue;
pub mod report;
pub mod request;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod source_addrs;
pub mod target;
pub mod units;
pub mod zipf;
