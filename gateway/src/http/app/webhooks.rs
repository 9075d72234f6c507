//! The webhook endpoints (admin only): register (`POST /v1/webhooks` → 201 with the signing
//! secret), list, show, delete, the recent delivery attempts, and the replay of dead letters.

use flashsale_events::{CreateError, EventService, EventsError};
use hyper::header::HeaderMap;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::access::require;
use super::body::RequestBody;
use super::response::{json, set_location};
use super::{Answer, App, Caller};
use crate::auth::Role;
use crate::http::inventory::Inventory;
use crate::http::json::parse_json;
use crate::http::problem::{Problem, ProblemKind};

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWebhookBody {
    url: String,
    events: Vec<String>,
}

/// Answer of `GET /v1/webhooks`.
#[derive(Serialize)]
struct WebhookList {
    items: Vec<flashsale_events::EndpointView>,
}

/// Answer of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Serialize)]
struct DeliveryList {
    items: Vec<flashsale_events::dest::DeliveryRecord>,
}

/// Answer of `POST /v1/webhooks/{id}/replay`.
#[derive(Serialize)]
struct Replay {
    replaying: usize,
}

impl<E: Inventory> App<E> {
    /// The events service, or 404 when this server runs none (503 while its slot is empty:
    /// a high-availability node between terms).
    fn events(&self) -> Result<EventService, Problem> {
        let slot = self
            .events
            .as_ref()
            .ok_or_else(|| Problem::not_found("webhooks are not enabled on this server"))?;
        slot.get().ok_or_else(|| {
            let mut p = Problem::new(
                ProblemKind::Unavailable,
                "event delivery is not running on this node right now; retry",
            );
            p.retry_after_s = Some(1);
            p
        })
    }

    /// The problem of a state write refused because this node no longer leads.
    fn store_problem(&self, what: &str, e: &EventsError) -> Problem {
        match e {
            EventsError::Fenced { .. } => Problem::not_leader(None),
            e => Problem::internal(format!("{what}: {e}")),
        }
    }

    /// `POST /v1/webhooks`: 201 with the endpoint and its secret (shown only here).
    pub(super) async fn create_webhook<B: RequestBody>(
        &self,
        caller: &Caller,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        require(caller, &[Role::Admin])?;
        let events = self.events()?;
        let body = self.read_body(headers, body).await?;
        let req = parse_json::<CreateWebhookBody>(&body)?;
        let view = events
            .create(&req.url, &req.events)
            .await
            .map_err(|e| match e {
                CreateError::Target(t) => {
                    Problem::invalid(format!("url: {t}")).with("field", "url")
                }
                CreateError::Events(u) => Problem::invalid(format!(
                    "events: {u}; give [\"*\"] or a non-empty list of reservation.held, \
                 reservation.confirmed, reservation.released, reservation.expired, \
                 sku.updated, sku.sold_out"
                ))
                .with("field", "events"),
                CreateError::TooMany => Problem::new(ProblemKind::InvalidState, e.to_string()),
                CreateError::Store(s) => self.store_problem("storing the endpoint", &s),
            })?;
        let mut res = json(StatusCode::CREATED, &view)?;
        set_location(&mut res, &format!("/v1/webhooks/{}", view.id));
        Ok(res)
    }

    /// `GET /v1/webhooks`.
    pub(super) fn list_webhooks(&self, caller: &Caller) -> Answer {
        require(caller, &[Role::Admin])?;
        let items = self.events()?.list();
        json(StatusCode::OK, &WebhookList { items })
    }

    /// `GET /v1/webhooks/{id}`.
    pub(super) fn get_webhook(&self, caller: &Caller, id: &str) -> Answer {
        require(caller, &[Role::Admin])?;
        let view = self.events()?.get(id).ok_or_else(|| unknown(id))?;
        json(StatusCode::OK, &view)
    }

    /// `DELETE /v1/webhooks/{id}`: 204.
    pub(super) async fn delete_webhook(&self, caller: &Caller, id: &str) -> Answer {
        require(caller, &[Role::Admin])?;
        let deleted = self
            .events()?
            .delete(id)
            .await
            .map_err(|e| self.store_problem("deleting the endpoint", &e))?;
        if !deleted {
            return Err(unknown(id));
        }
        let mut res = hyper::Response::new(super::ResBody::default());
        *res.status_mut() = StatusCode::NO_CONTENT;
        Ok(res)
    }

    /// `GET /v1/webhooks/{id}/deliveries`: the recent attempts, newest first.
    pub(super) fn webhook_deliveries(&self, caller: &Caller, id: &str) -> Answer {
        require(caller, &[Role::Admin])?;
        let items = self.events()?.deliveries(id).ok_or_else(|| unknown(id))?;
        json(StatusCode::OK, &DeliveryList { items })
    }

    /// `POST /v1/webhooks/{id}/replay`: 202 with how many dead letters are re-delivered.
    pub(super) fn replay_webhook(&self, caller: &Caller, id: &str) -> Answer {
        require(caller, &[Role::Admin])?;
        let replaying = self.events()?.replay(id).ok_or_else(|| unknown(id))?;
        json(StatusCode::ACCEPTED, &Replay { replaying })
    }
}

/// 404 for an unknown endpoint id.
fn unknown(id: &str) -> Problem {
    Problem::not_found(format!("no webhook endpoint {id}")).with("id", id)
}
