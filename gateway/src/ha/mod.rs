//! High availability on the Postgres log (`serve --ha`): nodes on one schema form a group;
//! the holder of the lease leads (its engine writes the log, fenced by the lease epoch), the
//! others stand by and take over when the lease lapses. See `docs/adr/0021-ha-lease-and-fencing.md` and
//! `docs/ha.md`.
//!
//! - [`state`]: what the node knows of its group (read by the HTTP API);
//! - [`switch`]: the engine behind the API, present only while leading;
//! - [`node`]: the controller: joining, the lease, promotion and step-down.

pub mod node;
pub mod state;
pub mod switch;

pub use node::{HaConfig, HaNode};
pub use state::{ClusterState, ClusterView, NodeRole};
pub use switch::SwitchEngine;
