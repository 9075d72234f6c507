//! High availability on the Postgres log (`serve --ha`): nodes on one schema form a group;
//! the holder of the lease leads (its engine writes the log, fenced by the lease epoch), the
//! others stand by and take over when the lease lapses. See `docs/adr/0021-ha-lease-and-fencing.md` and
//! `docs/ha.md`.
//!
//! - [`state`]: what the node knows of its group (read by the HTTP API);
//! - [`switch`]: the engine behind the API, present only while leading (a standby's reads
//!   answer from its followed state);
//! - [`follow`]: a standby's live copy of the state, tailing the log;
//! - [`node`]: the controller: joining, the lease, promotion and step-down;
//! - [`term`]: what a leader runs besides its engine, and the API's slots for it;
//! - [`services`]: those services: event delivery and the waiting room (ADR 0027);
//! - [`shard_http`]: with `--http-runtime shards` (the default), HTTP served on the leader's shard executors.

pub mod follow;
pub mod node;
pub mod services;
pub mod shard_http;
pub mod state;
pub mod switch;
pub mod term;

pub use node::{HaConfig, HaNode};
pub use state::{ClusterState, ClusterView, NodeRole};
pub use switch::SwitchEngine;
pub use term::{Slot, TermHook, TermServices};
