//! The SKU endpoints: `PUT /v1/skus/{sku}` and restock (admin), one SKU and the SKU list (any
//! token).

use flashsale_protocol::limits::MAX_STOCK;
use flashsale_protocol::{ScopedKey, SkuId};
use hyper::header::HeaderMap;
use hyper::StatusCode;

use super::access::require;
use super::body::RequestBody;
use super::pagination::{encode_cursor, parse_list_query};
use super::reservations::{idempotency_key, key_owner};
use super::response::{json, set_location};
use super::{Answer, App, Caller};
use crate::auth::Role;
use crate::http::inventory::Inventory;
use crate::http::problem::{Problem, ProblemKind};
use crate::http::wire::{parse_json, PutSkuBody, RestockBody, SkuJson, SkuPage};

impl<E: Inventory> App<E> {
    /// `PUT /v1/skus/{sku}`: 201 with `Location` when created, 200 when replaced.
    pub(super) async fn put_sku<B: RequestBody>(
        &self,
        caller: &Caller,
        param: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        require(caller, &[Role::Admin])?;
        let sku = SkuId::new(param).map_err(|e| Problem::invalid(format!("sku in path: {e}")))?;
        let body = self.read_body(headers, body).await?;
        let spec = parse_json::<PutSkuBody>(&body)?.into_spec(sku)?;
        let (view, created) = self.inventory.upsert_sku(spec).await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut res = json(status, &SkuJson::try_from(&view)?)?;
        if created {
            set_location(&mut res, &format!("/v1/skus/{}", view.sku));
        }
        Ok(res)
    }

    /// `POST /v1/skus/{sku}/restock`: adds `qty` units; the SKU's total must stay within
    /// [`MAX_STOCK`], the bound `PUT` accepts, so a restocked SKU can always be re-PUT at its
    /// own total. A restock beyond it is valid in itself and refused by the SKU's state: 409
    /// `invalid-state`. This check reads the current total for a clear, early answer naming the
    /// total; it is not atomic with the restock, so concurrent restocks rely on the engine
    /// enforcing the same `protocol::limits::MAX_STOCK` (with the same 409) when it applies
    /// them.
    pub(super) async fn restock<B: RequestBody>(
        &self,
        caller: &Caller,
        param: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        require(caller, &[Role::Admin])?;
        let sku = path_sku(param)?;
        let body = self.read_body(headers, body).await?;
        let qty = parse_json::<RestockBody>(&body)?.qty()?;
        // Scoped as a reservation's key (ADR 0015): a retry with it adds nothing.
        let key = match idempotency_key(headers)? {
            Some(key) => Some(ScopedKey::new(key_owner(caller)?, key)),
            None => None,
        };
        let before = self.inventory.sku(sku.clone()).await?;
        if before.total.saturating_add(qty) > MAX_STOCK {
            return Err(Problem::new(
                ProblemKind::InvalidState,
                format!(
                    "restocking {qty} would bring the stock of {sku} to {}, above the maximum of \
                     {MAX_STOCK} units",
                    u128::from(before.total) + u128::from(qty)
                ),
            )
            .with("sku", sku.as_str()));
        }
        let view = self.inventory.restock(sku, qty, key).await?;
        json(StatusCode::OK, &SkuJson::try_from(&view)?)
    }

    /// `GET /v1/skus/{sku}`.
    pub(super) async fn get_sku(&self, param: &str) -> Answer {
        let view = self.inventory.sku(path_sku(param)?).await?;
        json(StatusCode::OK, &SkuJson::try_from(&view)?)
    }

    /// `GET /v1/skus?limit=&cursor=`: one page, ordered by id; `next_cursor` when it is full.
    /// The engine is asked for at most [`MAX_PAGE_LIMIT`](super::MAX_PAGE_LIMIT) SKUs after a
    /// cursor this server issued (anything else is refused before the engine is asked).
    pub(super) async fn list_skus(&self, query: Option<&str>) -> Answer {
        let (after, limit) = parse_list_query(query)?;
        let mut views = self.inventory.list_skus(after, limit).await?;
        views.truncate(limit);
        let next_cursor = if views.len() == limit {
            views.last().map(|v| encode_cursor(&v.sku))
        } else {
            None
        };
        let page = SkuPage {
            items: views
                .iter()
                .map(SkuJson::try_from)
                .collect::<Result<_, _>>()?,
            next_cursor,
        };
        json(StatusCode::OK, &page)
    }
}

/// The SKU named in the path; an impossible id is unknown (404).
fn path_sku(param: &str) -> Result<SkuId, Problem> {
    SkuId::new(param).map_err(|_| Problem::not_found(format!("unknown SKU {param}")))
}
