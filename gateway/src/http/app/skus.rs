//! The SKU endpoints: `PUT /v1/skus/{sku}` and restock (admin), one SKU and the SKU list (any
//! token).

use flashsale_protocol::SkuId;
use hyper::header::HeaderMap;
use hyper::StatusCode;

use super::access::require;
use super::body::RequestBody;
use super::pagination::{encode_cursor, parse_list_query};
use super::response::{json, set_location};
use super::{Answer, App, Caller};
use crate::auth::Role;
use crate::http::inventory::Inventory;
use crate::http::problem::Problem;
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
        let mut res = json(status, &SkuJson::from(&view));
        if created {
            set_location(&mut res, &format!("/v1/skus/{}", view.sku));
        }
        Ok(res)
    }

    /// `POST /v1/skus/{sku}/restock`: adds `qty` units.
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
        let view = self.inventory.restock(sku, qty).await?;
        Ok(json(StatusCode::OK, &SkuJson::from(&view)))
    }

    /// `GET /v1/skus/{sku}`.
    pub(super) async fn get_sku(&self, param: &str) -> Answer {
        let view = self.inventory.sku(path_sku(param)?).await?;
        Ok(json(StatusCode::OK, &SkuJson::from(&view)))
    }

    /// `GET /v1/skus?limit=&cursor=`: one page, ordered by id; `next_cursor` when it is full.
    pub(super) async fn list_skus(&self, query: Option<&str>) -> Answer {
        let (after, limit) = parse_list_query(query)?;
        let views = self.inventory.list_skus(after, limit).await?;
        let next_cursor = if views.len() == limit {
            views.last().map(|v| encode_cursor(&v.sku))
        } else {
            None
        };
        let page = SkuPage {
            items: views.iter().map(SkuJson::from).collect(),
            next_cursor,
        };
        Ok(json(StatusCode::OK, &page))
    }
}

/// The SKU named in the path; an impossible id is unknown (404).
fn path_sku(param: &str) -> Result<SkuId, Problem> {
    SkuId::new(param).map_err(|_| Problem::not_found(format!("unknown SKU {param}")))
}
