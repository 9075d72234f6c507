//! The order endpoint: `GET /v1/orders/{order_id}` (storefront, admin, or the order's buyer).

use flashsale_protocol::OrderId;
use hyper::StatusCode;

use super::access::{check_owner, forbid_partner};
use super::response::json;
use super::{Answer, App, Caller};
use crate::http::inventory::Inventory;
use crate::http::problem::Problem;
use crate::http::wire::OrderJson;

impl<E: Inventory> App<E> {
    /// `GET /v1/orders/{order_id}`; another buyer's order looks unknown (404).
    pub(super) async fn get_order(&self, caller: &Caller, param: &str) -> Answer {
        forbid_partner(caller)?;
        let id = OrderId::parse(param)
            .map_err(|_| Problem::not_found(format!("unknown order {param}")))?;
        let view = self.inventory.order(id).await?;
        check_owner(caller, &view.buyer, || format!("unknown order {id}"))?;
        json(StatusCode::OK, &OrderJson::try_from(&view)?)
    }
}
