//! What a node of a high-availability group knows about the group, shared between its HA
//! controller (which writes it) and the HTTP API (`/ready`, `503 not-leader`,
//! `GET /v1/cluster`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// A node's role in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Holds the lease and serves reservations.
    Leader,
    /// Stands by: refuses writes with `503 not-leader`, takes over when the lease is free.
    Standby,
}

/// The body of `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    /// This node's id (`--node-id`).
    pub node_id: String,
    /// This node's role.
    pub role: NodeRole,
    /// The lease epoch: this node's while it leads, else the last one it saw.
    pub epoch: u64,
    /// The leader's advertised URL, if a node holds a live lease.
    pub leader_url: Option<String>,
    /// The durable log's end (the sum over shards of their last sequence number).
    pub log_position: u64,
    /// Records this node's state is behind `log_position`: 0 on the leader; on a standby,
    /// the records it would replay at a takeover (the log past the last snapshots).
    pub lag: u64,
}

/// Shared, always-current cluster state of this node.
#[derive(Debug)]
pub struct ClusterState {
    /// Fast path of the request hot path: whether this node serves writes now.
    leading: AtomicBool,
    /// The end of the lease by this node's clock, in ms since `origin`: past it a leader
    /// answers `503 not-leader` at once, even before its controller has run (a process
    /// resumed after a pause).
    lease_deadline_ms: AtomicU64,
    origin: Instant,
    view: Mutex<ClusterView>,
}

impl ClusterState {
    /// A node starting as a standby, knowing nothing of the group yet.
    pub fn new(node_id: &str) -> ClusterState {
        ClusterState {
            leading: AtomicBool::new(false),
            lease_deadline_ms: AtomicU64::new(0),
            origin: Instant::now(),
            view: Mutex::new(ClusterView {
                node_id: node_id.to_string(),
                role: NodeRole::Standby,
                epoch: 0,
                leader_url: None,
                log_position: 0,
                lag: 0,
            }),
        }
    }

    /// Whether this node leads (and its engine serves): its role, and its lease not past
    /// its end by the local clock.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
            && self.ms_since_origin(Instant::now()) < self.lease_deadline_ms.load(Ordering::Acquire)
    }

    /// Sets the end of this node's lease (local clock), as of its last successful renewal.
    pub fn set_lease_deadline(&self, deadline: Instant) {
        self.lease_deadline_ms
            .store(self.ms_since_origin(deadline), Ordering::Release);
    }

    fn ms_since_origin(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    /// A copy of the current view.
    pub fn view(&self) -> ClusterView {
        match self.view.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The leader's URL as last seen (for `503 not-leader`). None while this node's own
    /// lease has lapsed but its controller has not stepped down yet (a process resumed after
    /// a pause): the view would still name this node, which is not serving.
    pub fn leader_url(&self) -> Option<String> {
        let view = self.view();
        if view.role == NodeRole::Leader && !self.is_leader() {
            return None;
        }
        view.leader_url
    }

    /// Changes the view with `f`; the leading flag follows the role.
    pub fn update(&self, f: impl FnOnce(&mut ClusterView)) {
        let mut guard = match self.view.lock() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        };
        f(&mut guard);
        self.leading
            .store(guard.role == NodeRole::Leader, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leading_flag_follows_the_role() {
        let s = ClusterState::new("n1");
        assert!(!s.is_leader());
        s.set_lease_deadline(Instant::now() + std::time::Duration::from_secs(60));
        s.update(|v| {
            v.role = NodeRole::Leader;
            v.epoch = 3;
        });
        assert!(s.is_leader());
        assert_eq!(s.view().epoch, 3);
        let json = serde_json::to_value(s.view()).unwrap_or_default();
        assert_eq!(json["role"], "leader");
        s.update(|v| v.leader_url = Some("http://me".into()));
        assert_eq!(s.leader_url().as_deref(), Some("http://me"));
        s.set_lease_deadline(Instant::now());
        assert!(!s.is_leader(), "a lapsed lease is not leading");
        assert_eq!(s.leader_url(), None, "a lapsed leader does not name itself");
        s.set_lease_deadline(Instant::now() + std::time::Duration::from_secs(60));
        s.update(|v| v.role = NodeRole::Standby);
        assert!(!s.is_leader());
    }
}
