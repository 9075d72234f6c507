//! High availability in the API: `GET /v1/cluster` (admin) and the standby's refusal of
//! `/ready` and `/v1` requests with `503 not-leader` naming the leader.

use hyper::StatusCode;

use super::access::require;
use super::response::json;
use super::{Answer, App, Caller};
use crate::auth::Role;
use crate::http::inventory::Inventory;
use crate::http::problem::Problem;

impl<E: Inventory> App<E> {
    /// `503 not-leader` (with the leader's URL) unless this node leads or runs without HA.
    pub(super) fn check_leader(&self) -> Result<(), Problem> {
        match &self.cluster {
            Some(c) if !c.is_leader() => Err(Problem::not_leader(c.leader_url().as_deref())),
            _ => Ok(()),
        }
    }

    /// `GET /v1/cluster`: `{node_id, role, epoch, leader_url, log_position, lag}`; 404 on a
    /// server started without `--ha`.
    pub(super) fn cluster_view(&self, caller: &Caller) -> Answer {
        require(caller, &[Role::Admin])?;
        match &self.cluster {
            Some(c) => json(StatusCode::OK, &c.view()),
            None => Err(Problem::not_found(
                "this server runs without --ha: it is not part of a group",
            )),
        }
    }
}
