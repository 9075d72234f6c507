//! The Rust client of the flashsale HTTP API: one connection pool, one bearer token, each call
//! one request answered with the API's JSON ([`Answer`]) or one clear error ([`ApiError`]).
//!
//! [`ApiClient::get`] and [`ApiClient::send`] reach any endpoint; the typed calls in [`calls`]
//! build the paths, query strings and bodies of the contract's endpoints (SKUs, reservations
//! with `ttl_s` and `extend`, orders, and a buyer's lists) from validated ids. The admin CLI
//! (`flashsale sku|reservation|order …`) is built on it. Error messages name the CLI's
//! `--server` and `--token` flags, the only way users set them today.

mod api;
pub mod calls;

pub use api::{encode, Answer, ApiClient, ApiError};
pub use calls::{ListQuery, ReservationStatusFilter};
