//! The HTTP checkout API (hyper 1.x): storefronts and admins call it; see `docs/openapi.yaml`.
//!
//! - [`routes`]: the route table and matcher (the OpenAPI sync test reads [`routes::ROUTES`]).
//! - [`app`]: request → response: credentials (`app/access.rs`), body limits (`app/body.rs`),
//!   pagination, and one handler file per resource (`app/skus.rs`, `app/reservations.rs`, …).
//! - [`server`]: sockets: the accept loop, connection caps ([`per_ip`] per address), idle
//!   connections ([`idle`]), timeouts, graceful drain (the phase each connection follows:
//!   `phase.rs`).
//! - [`on_shards`]: the default (`serve --http-runtime shards`, ADR 0047): HTTP/1.1 and h2c
//!   served on the shard executors themselves, one `SO_REUSEPORT` listener each (ADR 0045);
//!   [`server`] serves with `--http-runtime tokio` and accepts for `--ha`.
//! - [`json`]: request bodies are JSON objects (never serde's positional arrays).
//! - [`queue_wire`], [`queue_problem`]: the waiting room's JSON and problems.
//! - [`problem`], [`wire`], [`jwt`], [`rate_limit`], [`metrics`], [`inventory`]: one concept each;
//!   [`process`] (build and process metrics) and [`stock_metrics`] (per-SKU stock, top N) add
//!   to `/metrics`; [`recent`] keeps the latest problems for the dashboard.

pub mod app;
pub mod idle;
pub mod inventory;
pub mod json;
pub mod jwt;
pub mod metrics;
pub mod on_shards;
pub mod per_ip;
mod phase;
pub mod problem;
pub mod process;
pub mod queue_problem;
pub mod queue_wire;
pub mod rate_limit;
pub mod recent;
pub mod routes;
pub mod server;
mod shard_timer;
pub mod stock_metrics;
#[cfg(test)]
mod test_support;
pub mod wire;

pub use app::{ApiConfig, App, Caller};
pub use inventory::Inventory;
pub use server::{serve, ServerConfig};
