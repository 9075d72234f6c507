//! The Rust client of the flashsale HTTP API: one connection pool, one bearer token, one
//! server or the nodes of an HA group; each call one request answered with a typed value
//! ([`Reply`] of a [`types`] struct) or one clear error ([`ApiError`], with a typed
//! [`Problem`] for the server's error answers).
//!
//! The typed calls in [`calls`] build the paths, query strings and bodies of the contract's
//! endpoints (SKUs, reservations with `ttl_s` and `extend`, orders, a buyer's lists, the HA
//! cluster view) from validated ids; [`ApiClient::get`] and [`ApiClient::send`] reach any
//! endpoint with untyped JSON. With several servers the client follows the leader: after
//! `503 not-leader` a read, a keyed write or an idempotent write is sent again to the
//! `leader_url` the answer names (bounded, see [`ApiClient`]).
//!
//! The admin CLI (`flashsale sku|reservation|order …`) and the load generator's set-up and
//! checks are built on it. Error messages name the CLI's `--server` and `--token` flags.

mod api;
pub mod calls;
pub mod problem;
pub mod types;

pub use api::{
    encode, split_servers, Answer, ApiClient, ApiError, Reply, MAX_REDIRECTS, MAX_SERVERS,
    NO_LEADER_BACKOFF,
};
pub use calls::{new_idempotency_key, ListQuery, NewReservation, SkuSettings, MAX_PAGE};
pub use problem::{Problem, ProblemKind, PROBLEM_TYPE_BASE};
pub use types::{
    Cluster, Line, Order, Page, ReleaseReason, Reservation, ReservationStatus, Role, Sku,
};
