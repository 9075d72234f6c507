//! High availability in the API: `GET /v1/cluster` (admin), the standby's refusal of
//! `/ready` and `/v1` writes with `503 not-leader` naming the leader, and its reads answered
//! from its followed state, marked `Flashsale-Role: standby` and `Flashsale-Lag-Records`.

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, StatusCode};

use super::access::require;
use super::response::json;
use super::{Answer, App, Caller};
use crate::auth::Role;
use crate::http::inventory::Inventory;
use crate::http::problem::Problem;
use crate::http::routes::RouteId;

/// Header naming the role of the node that answered a read (`standby`; absent on a leader).
pub const ROLE_HEADER: HeaderName = HeaderName::from_static("flashsale-role");
/// Header with the records the answering standby's state is behind the log's end.
pub const LAG_HEADER: HeaderName = HeaderName::from_static("flashsale-lag-records");

/// The reads a standby answers from its followed state.
fn is_standby_read(route: RouteId) -> bool {
    matches!(
        route,
        RouteId::GetSku
            | RouteId::ListSkus
            | RouteId::GetReservation
            | RouteId::GetOrder
            | RouteId::ListReservations
            | RouteId::ListOrders
    )
}

/// Marks a standby's answer with its role and lag.
pub(super) fn mark_standby(headers: &mut HeaderMap, lag: u64) {
    headers.insert(ROLE_HEADER, HeaderValue::from_static("standby"));
    headers.insert(LAG_HEADER, HeaderValue::from(lag));
}

impl<E: Inventory> App<E> {
    /// `503 not-leader` (with the leader's URL) unless this node leads or runs without HA.
    pub(super) fn check_leader(&self) -> Result<(), Problem> {
        match &self.cluster {
            Some(c) if !c.is_leader() => Err(Problem::not_leader(c.leader_url().as_deref())),
            _ => Ok(()),
        }
    }

    /// `Some(lag)` if this node stands by and answers `route` from its followed state (a read,
    /// once the state has caught up with the log); `None`: lead or refuse as usual.
    pub(super) fn standby_read(&self, route: RouteId) -> Option<u64> {
        let c = self.cluster.as_ref()?;
        (is_standby_read(route) && !c.is_leader() && self.inventory.serves_standby_reads())
            .then(|| c.view().lag)
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
