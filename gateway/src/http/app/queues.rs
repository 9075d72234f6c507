//! The waiting room's endpoints: `PUT /v1/queues/{queue}` (admin), `POST
//! /v1/queues/{queue}/join` (storefront for a buyer, or a buyer JWT for itself) and `GET
//! /v1/queues/{queue}/tickets/{ticket}` (a poll: answered from the room, never a shard).

use std::sync::Arc;

use flashsale_protocol::queue::QueueId;
use hyper::header::HeaderMap;
use hyper::StatusCode;

use super::access::{check_owner, forbid_partner, require};
use super::body::RequestBody;
use super::reservations::acting_buyer;
use super::response::{json, set_location};
use super::{Answer, App, Caller};
use crate::auth::Role;
use crate::http::inventory::Inventory;
use crate::http::problem::{Problem, ProblemKind};
use crate::http::queue_wire::{parse_ticket, JoinBody, PutQueueBody, QueueJson, TicketJson};
use crate::http::wire::parse_json;
use crate::waiting_room::QueueService;

impl<E: Inventory> App<E> {
    /// The waiting room, or 404 when this server runs without one.
    fn queues(&self) -> Result<Arc<QueueService>, Problem> {
        self.room()?
            .ok_or_else(|| Problem::not_found("this server runs no waiting room"))
    }

    /// The waiting room if this server runs one (`None`: it does not); 503 while its slot is
    /// empty (a high-availability node between terms).
    pub(super) fn room(&self) -> Result<Option<Arc<QueueService>>, Problem> {
        match &self.queues {
            None => Ok(None),
            Some(slot) => slot.get().map(Some).ok_or_else(|| {
                let mut p = Problem::new(
                    ProblemKind::Unavailable,
                    "the waiting room is not loaded on this node right now; retry",
                );
                p.retry_after_s = Some(1);
                p
            }),
        }
    }

    /// `PUT /v1/queues/{queue}`: 201 with `Location` when created, 200 when changed.
    pub(super) async fn put_queue<B: RequestBody>(
        &self,
        caller: &Caller,
        param: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        require(caller, &[Role::Admin])?;
        let queues = self.queues()?;
        let queue = QueueId::new(param)
            .map_err(|e| Problem::invalid(format!("queue in path: {e}")).with("field", "queue"))?;
        let body = self.read_body(headers, body).await?;
        let spec = parse_json::<PutQueueBody>(&body)?.into_spec()?;
        let (created, view) = queues.configure(queue.clone(), spec).await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut res = json(status, &QueueJson::from(&view))?;
        if created {
            set_location(&mut res, &format!("/v1/queues/{queue}"));
        }
        Ok(res)
    }

    /// `GET /v1/queues/{queue}`: the configuration and counts (admin and storefront).
    pub(super) fn get_queue(&self, caller: &Caller, param: &str) -> Answer {
        require(caller, &[Role::Admin, Role::Storefront])?;
        let queue = path_queue(param)?;
        let view = self
            .queues()?
            .queue_view(&queue)
            .ok_or_else(|| Problem::not_found(format!("no queue {queue}")))?;
        json(StatusCode::OK, &QueueJson::from(&view))
    }

    /// `POST /v1/queues/{queue}/join`: 202 with the ticket (the same one on every join).
    pub(super) async fn join_queue<B: RequestBody>(
        &self,
        caller: &Caller,
        param: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        forbid_partner(caller)?;
        let queues = self.queues()?;
        let queue = path_queue(param)?;
        let body = self.read_body(headers, body).await?;
        let join = if body.iter().all(u8::is_ascii_whitespace) {
            JoinBody::default()
        } else {
            parse_json::<JoinBody>(&body)?
        };
        let buyer = acting_buyer(caller, join.buyer()?)?;
        let view = queues.join(&queue, &buyer).await?;
        let mut res = json(StatusCode::ACCEPTED, &TicketJson::new(&queue, &view))?;
        set_location(
            &mut res,
            &format!(
                "/v1/queues/{queue}/tickets/{}",
                TicketJson::new(&queue, &view).ticket
            ),
        );
        Ok(res)
    }

    /// `GET /v1/queues/{queue}/tickets/{ticket}`; another buyer's ticket looks unknown (404).
    pub(super) fn get_ticket(&self, caller: &Caller, param: &str, ticket: &str) -> Answer {
        forbid_partner(caller)?;
        let queues = self.queues()?;
        let queue = path_queue(param)?;
        let unknown = || format!("unknown ticket {ticket} in queue {queue}");
        let n = parse_ticket(ticket).ok_or_else(|| Problem::not_found(unknown()))?;
        let view = queues.ticket(&queue, n)?;
        check_owner(caller, &view.buyer, unknown)?;
        json(StatusCode::OK, &TicketJson::new(&queue, &view))
    }
}

/// The queue named in the path; an impossible name is unknown (404).
fn path_queue(param: &str) -> Result<QueueId, Problem> {
    QueueId::new(param).map_err(|_| Problem::not_found(format!("no queue {param}")))
}
