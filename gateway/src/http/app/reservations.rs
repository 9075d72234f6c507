//! The reservation endpoints: reserve (with an optional, caller-scoped `Idempotency-Key`),
//! read, confirm (storefront or admin, after payment) and cancel.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use flashsale_engine::{CommandError, ReservationView, ReserveRequest};
use flashsale_protocol::{BuyerId, IdempotencyKey, KeyOwner, ReservationId, ScopedKey};
use flashsale_waiting_room::PassError;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use hyper::StatusCode;

use super::access::{check_owner, forbid_partner, require};
use super::body::RequestBody;
use super::response::{encoded, json_bytes};
use super::{Answer, App, Caller};
use crate::auth::Role;
use crate::http::inventory::Inventory;
use crate::http::problem::{sold_out_response, Problem, ProblemKind};
use crate::http::rate_limit::retry_after_s;
use crate::http::wire::{
    parse_json, write_reservation_id, CancelBody, ConfirmBody, ExtendBody, ReservationOut,
    ReserveBody,
};

impl<E: Inventory> App<E> {
    /// `POST /v1/reservations`: 201 with `Location` once the hold is durable.
    pub(super) async fn reserve<B: RequestBody>(
        &self,
        caller: &Caller,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        forbid_partner(caller)?;
        let idempotency_key = idempotency_key(headers)?;
        let raw = self.read_body(headers, body).await?;
        let req = ReserveBody::parse(&raw)?;
        let lines = req.validated_lines()?;
        let ttl_ms = req.ttl_ms()?;
        let buyer = acting_buyer(caller, req.buyer()?)?;
        self.check_buyer_rate(&buyer)?;
        let idempotency_key = match idempotency_key {
            Some(key) => Some(ScopedKey::new(key_owner(caller)?, key)),
            None => None,
        };
        let request = ReserveRequest {
            buyer,
            lines,
            idempotency_key,
            ttl_ms,
        };
        // A line of a queued SKU needs the buyer's pass (checked and marked in use here).
        let queues = self.room()?;
        let guard = match &queues {
            Some(q) => {
                let skus: Vec<_> = request.lines.iter().map(|(s, _)| s.clone()).collect();
                match q.begin_hold(&skus, pass_header(headers)?, &request.buyer) {
                    Ok(guard) => guard,
                    Err(refused) => return self.retry_of_passed(&request, refused).await,
                }
            }
            None => None,
        };
        let reserved = self.inventory.reserve(request).await;
        let view = match (guard, reserved, &queues) {
            (Some(g), Ok(view), Some(q)) => {
                // The hold is durable in the engine: answer it. The room's record of it is
                // not awaited (ADR 0034): if a crash loses it, the restart's pass check finds
                // the reservation among the buyer's held ones before the pass can hold again.
                if let Err(e) = q.hold_placed(g, view.id, view.expires_at_ms) {
                    tracing::warn!(error = %e, reservation = %view.id, "waiting room: hold not logged yet");
                }
                view
            }
            (Some(g), Err(e), Some(q)) => {
                q.hold_failed(g);
                return Err(e.into());
            }
            // The answer of a sale's end, reused while the SKU and its count stay the same:
            // the same response as the problem's (ADR 0061), answered as such here.
            (_, Err(CommandError::SoldOut { sku, available }), _) => {
                return Ok(sold_out_response(&sku, available));
            }
            (_, r, _) => r?,
        };
        created(&view)
    }

    /// A keyed reservation whose pass was refused because it is taken (`in-use`), still being
    /// checked after a restart, spent or expired may be a retry of the reservation that took it: then the original is the
    /// answer (an `Idempotency-Key` retry returns the original, pass or not). Anything else
    /// keeps the pass's refusal. Nothing is reserved here.
    async fn retry_of_passed(&self, request: &ReserveRequest, refused: PassError) -> Answer {
        let taken = matches!(
            refused,
            PassError::InUse | PassError::Checking | PassError::Spent | PassError::Expired
        );
        if request.idempotency_key.is_none() || !taken {
            return Err(refused.into());
        }
        match self.inventory.replay(request).await? {
            Some(view) => created(&view),
            None => Err(refused.into()),
        }
    }

    /// Takes a token from `buyer`'s bucket, or answers 429 when it is empty.
    fn check_buyer_rate(&self, buyer: &BuyerId) -> Result<(), Problem> {
        if let Some(limiter) = &self.buyer_limiter {
            if let Err(wait) = limiter.check(buyer, Instant::now()) {
                self.metrics
                    .rate_limited_buyer
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Problem::rate_limited("buyer", retry_after_s(wait)));
            }
        }
        Ok(())
    }

    /// `GET /v1/reservations/{id}`; another buyer's reservation looks unknown (404).
    pub(super) async fn get_reservation(&self, caller: &Caller, param: &str) -> Answer {
        let id = path_reservation(param)?;
        forbid_partner(caller)?;
        let view = self.inventory.reservation(id).await?;
        check_owner(caller, &view.buyer, || format!("unknown reservation {id}"))?;
        reservation_answer(StatusCode::OK, &view)
    }

    /// `POST /v1/reservations/{id}/confirm` `{payment_ref}`: storefronts and admins only.
    pub(super) async fn confirm<B: RequestBody>(
        &self,
        caller: &Caller,
        param: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        if matches!(caller, Caller::Buyer(_)) {
            return Err(Problem::new(
                ProblemKind::Forbidden,
                "buyer tokens cannot confirm: the storefront confirms after payment",
            ));
        }
        require(caller, &[Role::Admin, Role::Storefront])?;
        let id = path_reservation(param)?;
        let body = self.read_body(headers, body).await?;
        let payment_ref = parse_json::<ConfirmBody>(&body)?.payment_ref()?;
        let queues = self.room()?;
        let view = self.inventory.confirm(id, payment_ref).await?;
        if let Some(q) = &queues {
            // Done in the engine: answer it; the journal retries the room's record.
            if let Err(e) = q.confirmed(id) {
                tracing::warn!(error = %e, reservation = %id, "waiting room: pass not updated in the log yet");
            }
        }
        reservation_answer(StatusCode::OK, &view)
    }

    /// `POST /v1/reservations/{id}/cancel` with an empty body or `{}`.
    pub(super) async fn cancel<B: RequestBody>(
        &self,
        caller: &Caller,
        param: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        forbid_partner(caller)?;
        let id = path_reservation(param)?;
        let body = self.read_body(headers, body).await?;
        if !body.iter().all(u8::is_ascii_whitespace) {
            parse_json::<CancelBody>(&body)?;
        }
        if let Caller::Buyer(_) = caller {
            let view = self.inventory.reservation(id).await?;
            check_owner(caller, &view.buyer, || format!("unknown reservation {id}"))?;
        }
        let queues = self.room()?;
        let view = self.inventory.cancel(id).await?;
        if let Some(q) = &queues {
            // Done in the engine: answer it; the journal retries the room's record.
            if let Err(e) = q.released(id) {
                tracing::warn!(error = %e, reservation = %id, "waiting room: pass not updated in the log yet");
            }
        }
        reservation_answer(StatusCode::OK, &view)
    }

    /// `POST /v1/reservations/{id}/extend` `{ttl_s}`: storefronts, admins, or its buyer.
    pub(super) async fn extend<B: RequestBody>(
        &self,
        caller: &Caller,
        param: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        forbid_partner(caller)?;
        let id = path_reservation(param)?;
        let raw = self.read_body(headers, body).await?;
        let ttl_ms = parse_json::<ExtendBody>(&raw)?.ttl_ms()?;
        // Scoped as a reservation's key (ADR 0015): a retry with it is answered, not redone.
        let key = match idempotency_key(headers)? {
            Some(key) => Some(ScopedKey::new(key_owner(caller)?, key)),
            None => None,
        };
        if let Caller::Buyer(_) = caller {
            let view = self.inventory.reservation(id).await?;
            check_owner(caller, &view.buyer, || format!("unknown reservation {id}"))?;
        }
        let view = self.inventory.extend(id, ttl_ms, key).await?;
        reservation_answer(StatusCode::OK, &view)
    }
}

/// The path of reservations; a reservation's `Location` is this and its id.
const RESERVATIONS_PATH: &str = "/v1/reservations/";

/// Characters of a reservation id as shown (`res_` and 16 hex digits).
const ID_CHARS: usize = 20;

/// `201 Created` with the reservation and its `Location`. The body is written straight from
/// the view into a buffer of its exact size; the `Location` is written into one buffer of its
/// exact size, which becomes the header's bytes as it is (no second copy); the header map is
/// sized for every header the answer gets (ADR 0064).
fn created(view: &ReservationView) -> Answer {
    let mut res = reservation_answer(StatusCode::CREATED, view)?;
    let mut path = Vec::with_capacity(RESERVATIONS_PATH.len() + ID_CHARS);
    path.extend_from_slice(RESERVATIONS_PATH.as_bytes());
    write_reservation_id(&mut path, view.id);
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(path)) {
        res.headers_mut().insert(LOCATION, v);
    }
    Ok(res)
}

/// The reservation `view` as an `application/json` answer with `status`, written by
/// [`ReservationOut::write_json`] (the bytes `serde_json` writes for it).
fn reservation_answer(status: StatusCode, view: &ReservationView) -> Answer {
    let out = ReservationOut::new(view)?;
    let body = encoded(|buf| out.write_json(buf))
        .map_err(|e| Problem::internal(format!("cannot encode the response: {e}")))?;
    Ok(json_bytes(status, body))
}

/// `Idempotency-Key`, named once: a lookup by a `HeaderName` skips parsing the name per
/// request (ADR 0064).
static IDEMPOTENCY_KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// `Flashsale-Pass`, named once (see [`IDEMPOTENCY_KEY_HEADER`]).
static PASS_HEADER: HeaderName = HeaderName::from_static("flashsale-pass");

/// The `Flashsale-Pass` header, if sent (a value that is not text cannot be a pass).
fn pass_header(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    match headers.get(&PASS_HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| Problem::from(PassError::Forged)),
    }
}

/// The `Idempotency-Key` header, if sent (422 if it is not a valid key).
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(v) = headers.get(&IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| Problem::invalid("Idempotency-Key must be printable ASCII"))?;
    IdempotencyKey::new(s)
        .map(Some)
        .map_err(|e| Problem::invalid(e.to_string()))
}

/// The buyer a reservation is for: a buyer JWT's `sub` (the body may only repeat it), else the
/// body's `buyer`, which storefronts and admins must send.
pub(super) fn acting_buyer(
    caller: &Caller,
    body_buyer: Option<BuyerId>,
) -> Result<BuyerId, Problem> {
    match (caller, body_buyer) {
        (Caller::Buyer(sub), None) => Ok(sub.clone()),
        (Caller::Buyer(sub), Some(b)) if &b == sub => Ok(b),
        (Caller::Buyer(_), Some(_)) => Err(Problem::new(
            ProblemKind::Forbidden,
            "buyer in the body differs from the token's sub",
        )),
        (_, Some(b)) => Ok(b),
        (_, None) => Err(Problem::invalid(
            "buyer is required with a storefront token",
        )),
    }
}

/// The scope of the caller's idempotency keys: its credential, or the buyer of a buyer JWT.
pub(super) fn key_owner(caller: &Caller) -> Result<KeyOwner, Problem> {
    match caller {
        Caller::Admin(c) | Caller::Storefront(c) => Ok(KeyOwner::Credential(c.0)),
        Caller::Buyer(b) => Ok(KeyOwner::Buyer(b.clone())),
        Caller::Partner => Err(Problem::internal("partner reached reserve")),
    }
}

/// The reservation named in the path; an impossible id is unknown (404).
fn path_reservation(param: &str) -> Result<ReservationId, Problem> {
    ReservationId::parse(param)
        .map_err(|_| Problem::not_found(format!("unknown reservation {param}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::http::app::cluster::mark_standby;
    use crate::http::app::response::add_security_headers;
    use crate::http::app::{full, ResBody};
    use crate::http::test_support::seen;
    use flashsale_engine::ReservationStatus;
    use flashsale_protocol::{Line, OrderId, ReleaseReason, SkuId};
    use hyper::header::CONTENT_TYPE;
    use hyper::Response;

    /// The answer as built before ADR 0064 (the general path): `serde_json` over
    /// [`ReservationOut`], a map grown header by header, `Location` formatted.
    fn general_answer(
        status: StatusCode,
        view: &ReservationView,
        location: bool,
    ) -> Response<ResBody> {
        let body = serde_json::to_vec(&ReservationOut::new(view).unwrap()).unwrap();
        let mut res = Response::new(full(body));
        *res.status_mut() = status;
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if location {
            let path = format!("/v1/reservations/{}", view.id);
            res.headers_mut()
                .insert(LOCATION, HeaderValue::from_str(&path).unwrap());
        }
        res
    }

    /// Views of every status, one and several lines, escaped buyers and extreme values.
    fn views() -> Vec<ReservationView> {
        let line = |sku: &str, qty, unit_price_cents| Line {
            sku: SkuId::new(sku).unwrap(),
            qty,
            unit_price_cents,
        };
        let held = ReservationView {
            id: ReservationId::compose(0, 1),
            status: ReservationStatus::Held,
            buyer: BuyerId::new("b123456789").unwrap(),
            lines: vec![line("hot", 1, 1500)],
            created_at_ms: 1_795_255_200_205,
            expires_at_ms: 1_795_255_800_205,
            order: None,
            release_reason: None,
            extensions: 0,
        };
        vec![
            held.clone(),
            ReservationView {
                id: ReservationId(u64::MAX),
                buyer: BuyerId::new(r#"q"u\o/te~"#).unwrap(),
                lines: vec![line("a", 2, 0), line("B.c-d_9", 1_000_000, 19_999)],
                ..held.clone()
            },
            ReservationView {
                id: ReservationId(0),
                status: ReservationStatus::Confirmed,
                order: Some(OrderId(u64::MAX)),
                extensions: u32::MAX,
                created_at_ms: 0,
                expires_at_ms: u64::MAX,
                ..held.clone()
            },
            ReservationView {
                status: ReservationStatus::Released,
                release_reason: Some(ReleaseReason::Cancelled),
                order: Some(OrderId::compose(3, 0xabc)),
                ..held.clone()
            },
            ReservationView {
                status: ReservationStatus::Expired,
                release_reason: Some(ReleaseReason::Expired),
                lines: vec![line("x", u32::MAX, 1)],
                ..held
            },
        ]
    }

    /// The 201 of a reservation and every other reservation answer are, head and body, the
    /// general path's bytes: status, each header in the same order, the body; also once the
    /// security headers (every answer) and a standby's headers are added.
    #[test]
    fn reservation_answers_are_the_general_paths_bytes() {
        for v in views() {
            for (status, location) in [(StatusCode::CREATED, true), (StatusCode::OK, false)] {
                let got = if location {
                    created(&v).unwrap()
                } else {
                    reservation_answer(status, &v).unwrap()
                };
                let want = general_answer(status, &v, location);
                let mut got_secured = if location {
                    created(&v).unwrap()
                } else {
                    reservation_answer(status, &v).unwrap()
                };
                let mut want_secured = general_answer(status, &v, location);
                add_security_headers(got_secured.headers_mut());
                add_security_headers(want_secured.headers_mut());
                let mut got_standby = created(&v).unwrap();
                let mut want_standby = general_answer(StatusCode::CREATED, &v, true);
                for h in [got_standby.headers_mut(), want_standby.headers_mut()] {
                    add_security_headers(h);
                    mark_standby(h, 7);
                }
                assert_eq!(seen(got), seen(want), "{v:?}");
                assert_eq!(seen(got_secured), seen(want_secured), "{v:?}");
                assert_eq!(seen(got_standby), seen(want_standby), "{v:?}");
            }
        }
    }

    /// A created answer's header map is sized for every header it gets: adding the security
    /// headers and a standby's two does not grow it (no reallocation of its tables).
    #[test]
    fn a_created_answers_headers_fit_its_map() {
        let v = &views()[0];
        let mut res = created(v).unwrap();
        let capacity = res.headers().capacity();
        add_security_headers(res.headers_mut());
        mark_standby(res.headers_mut(), 1);
        assert_eq!(res.headers().len(), 9);
        assert_eq!(res.headers().capacity(), capacity);
    }
}
