//! The route table: every endpoint the HTTP API serves, and matching a request onto it.
//!
//! The table is data ([`ROUTES`]) so that the OpenAPI document can be checked against it.

use hyper::Method;

/// One endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteId {
    /// `PUT /v1/skus/{sku}`: create or replace a SKU (admin).
    PutSku,
    /// `POST /v1/skus/{sku}/restock`: add stock (admin).
    Restock,
    /// `GET /v1/skus/{sku}`: one SKU's view.
    GetSku,
    /// `GET /v1/skus`: the SKU list, paginated.
    ListSkus,
    /// `POST /v1/reservations`: hold stock for a buyer.
    Reserve,
    /// `GET /v1/reservations/{id}`: a reservation's view.
    GetReservation,
    /// `GET /v1/reservations`: a buyer's reservations, paginated.
    ListReservations,
    /// `POST /v1/reservations/{id}/confirm`: turn a reservation into an order.
    Confirm,
    /// `POST /v1/reservations/{id}/cancel`: release a reservation.
    Cancel,
    /// `POST /v1/reservations/{id}/extend`: move a held reservation's expiry later.
    Extend,
    /// `GET /v1/orders/{order_id}`: an order's view.
    GetOrder,
    /// `GET /v1/cluster`: this node's view of its high-availability group (admin).
    Cluster,
    /// `GET /v1/orders`: a buyer's orders, paginated.
    ListOrders,
    /// `POST /v1/webhooks`: register a webhook endpoint (admin).
    CreateWebhook,
    /// `GET /v1/webhooks`: the webhook endpoints (admin).
    ListWebhooks,
    /// `GET /v1/webhooks/{id}`: one webhook endpoint (admin).
    GetWebhook,
    /// `DELETE /v1/webhooks/{id}`: remove a webhook endpoint (admin).
    DeleteWebhook,
    /// `GET /v1/webhooks/{id}/deliveries`: recent delivery attempts (admin).
    WebhookDeliveries,
    /// `POST /v1/webhooks/{id}/replay`: re-deliver the dead letters (admin).
    ReplayWebhook,
    /// `GET /health`: liveness.
    Health,
    /// `GET /ready`: readiness (log writable).
    Ready,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /dashboard`: the operator dashboard (or its sign-in page).
    DashboardPage,
    /// `GET /dashboard/assets/{asset}`: the dashboard's embedded scripts and style sheet.
    DashboardAsset,
    /// `POST /dashboard/session`: exchange the admin token for a session cookie.
    DashboardSignIn,
    /// `DELETE /dashboard/session`: end the session.
    DashboardSignOut,
    /// `GET /dashboard/events`: the dashboard's server-sent events.
    DashboardEvents,
    /// `PUT /v1/queues/{queue}`: create or change a waiting-room queue (admin).
    PutQueue,
    /// `GET /v1/queues/{queue}`: a queue's configuration and counts (admin, storefront).
    GetQueue,
    /// `POST /v1/queues/{queue}/join`: a buyer joins a queue and gets a ticket.
    JoinQueue,
    /// `GET /v1/queues/{queue}/tickets/{ticket}`: poll a ticket.
    GetTicket,
}

/// A route's method, path template and metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// Which endpoint.
    pub id: RouteId,
    /// Its HTTP method, upper case.
    pub method: &'static str,
    /// Its path template, with `{name}` placeholders as in the OpenAPI document.
    pub path: &'static str,
    /// Short name used as the `route` label in `/metrics` and in logs.
    pub name: &'static str,
}

/// Every route the router serves, in a fixed order (the index is [`RouteId::index`]).
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        id: RouteId::PutSku,
        method: "PUT",
        path: "/v1/skus/{sku}",
        name: "put_sku",
    },
    RouteSpec {
        id: RouteId::Restock,
        method: "POST",
        path: "/v1/skus/{sku}/restock",
        name: "restock",
    },
    RouteSpec {
        id: RouteId::GetSku,
        method: "GET",
        path: "/v1/skus/{sku}",
        name: "get_sku",
    },
    RouteSpec {
        id: RouteId::ListSkus,
        method: "GET",
        path: "/v1/skus",
        name: "list_skus",
    },
    RouteSpec {
        id: RouteId::Reserve,
        method: "POST",
        path: "/v1/reservations",
        name: "reserve",
    },
    RouteSpec {
        id: RouteId::GetReservation,
        method: "GET",
        path: "/v1/reservations/{id}",
        name: "get_reservation",
    },
    RouteSpec {
        id: RouteId::ListReservations,
        method: "GET",
        path: "/v1/reservations",
        name: "list_reservations",
    },
    RouteSpec {
        id: RouteId::Confirm,
        method: "POST",
        path: "/v1/reservations/{id}/confirm",
        name: "confirm",
    },
    RouteSpec {
        id: RouteId::Cancel,
        method: "POST",
        path: "/v1/reservations/{id}/cancel",
        name: "cancel",
    },
    RouteSpec {
        id: RouteId::Extend,
        method: "POST",
        path: "/v1/reservations/{id}/extend",
        name: "extend",
    },
    RouteSpec {
        id: RouteId::GetOrder,
        method: "GET",
        path: "/v1/orders/{order_id}",
        name: "get_order",
    },
    RouteSpec {
        id: RouteId::Cluster,
        method: "GET",
        path: "/v1/cluster",
        name: "cluster",
    },
    RouteSpec {
        id: RouteId::ListOrders,
        method: "GET",
        path: "/v1/orders",
        name: "list_orders",
    },
    RouteSpec {
        id: RouteId::CreateWebhook,
        method: "POST",
        path: "/v1/webhooks",
        name: "create_webhook",
    },
    RouteSpec {
        id: RouteId::ListWebhooks,
        method: "GET",
        path: "/v1/webhooks",
        name: "list_webhooks",
    },
    RouteSpec {
        id: RouteId::GetWebhook,
        method: "GET",
        path: "/v1/webhooks/{id}",
        name: "get_webhook",
    },
    RouteSpec {
        id: RouteId::DeleteWebhook,
        method: "DELETE",
        path: "/v1/webhooks/{id}",
        name: "delete_webhook",
    },
    RouteSpec {
        id: RouteId::WebhookDeliveries,
        method: "GET",
        path: "/v1/webhooks/{id}/deliveries",
        name: "webhook_deliveries",
    },
    RouteSpec {
        id: RouteId::ReplayWebhook,
        method: "POST",
        path: "/v1/webhooks/{id}/replay",
        name: "replay_webhook",
    },
    RouteSpec {
        id: RouteId::Health,
        method: "GET",
        path: "/health",
        name: "health",
    },
    RouteSpec {
        id: RouteId::Ready,
        method: "GET",
        path: "/ready",
        name: "ready",
    },
    RouteSpec {
        id: RouteId::Metrics,
        method: "GET",
        path: "/metrics",
        name: "metrics",
    },
    RouteSpec {
        id: RouteId::DashboardPage,
        method: "GET",
        path: "/dashboard",
        name: "dashboard",
    },
    RouteSpec {
        id: RouteId::DashboardAsset,
        method: "GET",
        path: "/dashboard/assets/{asset}",
        name: "dashboard_asset",
    },
    RouteSpec {
        id: RouteId::DashboardSignIn,
        method: "POST",
        path: "/dashboard/session",
        name: "dashboard_sign_in",
    },
    RouteSpec {
        id: RouteId::DashboardSignOut,
        method: "DELETE",
        path: "/dashboard/session",
        name: "dashboard_sign_out",
    },
    RouteSpec {
        id: RouteId::DashboardEvents,
        method: "GET",
        path: "/dashboard/events",
        name: "dashboard_events",
    },
    RouteSpec {
        id: RouteId::PutQueue,
        method: "PUT",
        path: "/v1/queues/{queue}",
        name: "put_queue",
    },
    RouteSpec {
        id: RouteId::GetQueue,
        method: "GET",
        path: "/v1/queues/{queue}",
        name: "get_queue",
    },
    RouteSpec {
        id: RouteId::JoinQueue,
        method: "POST",
        path: "/v1/queues/{queue}/join",
        name: "join_queue",
    },
    RouteSpec {
        id: RouteId::GetTicket,
        method: "GET",
        path: "/v1/queues/{queue}/tickets/{ticket}",
        name: "get_ticket",
    },
];

/// Number of routes (metrics keep one slot per route plus one for unmatched requests).
pub const ROUTE_COUNT: usize = 31;

impl RouteId {
    /// Position of this route in [`ROUTES`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The route's table entry.
    pub fn spec(self) -> &'static RouteSpec {
        &ROUTES[self.index()]
    }

    /// The route's metrics label.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// A request matched onto a route, with its one path parameter (if the route has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched<'a> {
    /// The route.
    pub route: RouteId,
    /// The `{…}` segment of the path, raw (not yet validated).
    pub param: Option<&'a str>,
    /// A second `{…}` segment (e.g. the ticket of `/v1/queues/{queue}/tickets/{ticket}`).
    pub param2: Option<&'a str>,
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No route has this path.
    NotFound,
    /// The path exists but not with this method; the allowed methods are listed.
    MethodNotAllowed(Vec<&'static str>),
}

/// Matches `method path` onto the table. The path must not contain the query string.
pub fn resolve<'a>(method: &Method, path: &'a str) -> Result<Matched<'a>, Miss> {
    // The endpoint a sale's load hits (every buyer's reservation, and its sold-out answer)
    // is matched before the table is scanned (ADR 0061); the table gives the same match.
    if *method == Method::POST && path == RouteId::Reserve.spec().path {
        return Ok(Matched {
            route: RouteId::Reserve,
            param: None,
            param2: None,
        });
    }
    scan(method, path)
}

/// Matches `method path` onto the table, route after route.
fn scan<'a>(method: &Method, path: &'a str) -> Result<Matched<'a>, Miss> {
    let mut allowed: Vec<&'static str> = Vec::new();
    for spec in ROUTES {
        if let Some((param, param2)) = match_template(spec.path, path) {
            if spec.method == method.as_str() {
                return Ok(Matched {
                    route: spec.id,
                    param,
                    param2,
                });
            }
            allowed.push(spec.method);
        }
    }
    if allowed.is_empty() {
        Err(Miss::NotFound)
    } else {
        allowed.dedup();
        Err(Miss::MethodNotAllowed(allowed))
    }
}

/// The placeholder segments of a matched path: the first and the second, if any.
type Params<'a> = (Option<&'a str>, Option<&'a str>);

/// Matches `path` against `template`; `Some(params)` on a match (the placeholder segments).
fn match_template<'a>(template: &str, path: &'a str) -> Option<Params<'a>> {
    // Without a placeholder, matching segment by segment is string equality (ADR 0043).
    if !template.as_bytes().contains(&b'{') {
        return (template == path).then_some((None, None));
    }
    let mut params: Params<'a> = (None, None);
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) => {
                if ts.starts_with('{') {
                    if ps.is_empty() {
                        return None;
                    }
                    if params.0.is_none() {
                        params.0 = Some(ps);
                    } else {
                        params.1 = Some(ps);
                    }
                } else if ts != ps {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_shortcut_is_the_tables_match() {
        let spec = ROUTES.iter().find(|r| r.id == RouteId::Reserve).unwrap();
        assert_eq!((spec.method, spec.path), ("POST", "/v1/reservations"));
        for (method, path) in [
            (Method::POST, "/v1/reservations"),
            (Method::GET, "/v1/reservations"),
            (Method::POST, "/v1/reservations/"),
            (Method::POST, "/v1/reservations/r_1/confirm"),
            (Method::PUT, "/v1/reservations"),
        ] {
            assert_eq!(
                resolve(&method, path),
                scan(&method, path),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn table_index_matches_route_ids() {
        assert_eq!(ROUTES.len(), ROUTE_COUNT);
        for (i, spec) in ROUTES.iter().enumerate() {
            assert_eq!(spec.id.index(), i, "{spec:?}");
        }
    }

    #[test]
    fn every_route_resolves() {
        let cases = [
            ("PUT", "/v1/skus/tee", RouteId::PutSku, Some("tee")),
            (
                "POST",
                "/v1/skus/tee/restock",
                RouteId::Restock,
                Some("tee"),
            ),
            ("GET", "/v1/skus/tee", RouteId::GetSku, Some("tee")),
            ("GET", "/v1/skus", RouteId::ListSkus, None),
            ("POST", "/v1/reservations", RouteId::Reserve, None),
            (
                "GET",
                "/v1/reservations/res_1",
                RouteId::GetReservation,
                Some("res_1"),
            ),
            (
                "POST",
                "/v1/reservations/res_1/confirm",
                RouteId::Confirm,
                Some("res_1"),
            ),
            (
                "POST",
                "/v1/reservations/res_1/cancel",
                RouteId::Cancel,
                Some("res_1"),
            ),
            ("GET", "/v1/orders/ord_1", RouteId::GetOrder, Some("ord_1")),
            ("POST", "/v1/webhooks", RouteId::CreateWebhook, None),
            ("GET", "/v1/webhooks", RouteId::ListWebhooks, None),
            (
                "GET",
                "/v1/webhooks/wh_1",
                RouteId::GetWebhook,
                Some("wh_1"),
            ),
            (
                "DELETE",
                "/v1/webhooks/wh_1",
                RouteId::DeleteWebhook,
                Some("wh_1"),
            ),
            (
                "GET",
                "/v1/webhooks/wh_1/deliveries",
                RouteId::WebhookDeliveries,
                Some("wh_1"),
            ),
            (
                "POST",
                "/v1/webhooks/wh_1/replay",
                RouteId::ReplayWebhook,
                Some("wh_1"),
            ),
            ("GET", "/health", RouteId::Health, None),
            ("GET", "/ready", RouteId::Ready, None),
            ("GET", "/metrics", RouteId::Metrics, None),
            ("GET", "/dashboard", RouteId::DashboardPage, None),
            (
                "GET",
                "/dashboard/assets/dashboard.js",
                RouteId::DashboardAsset,
                Some("dashboard.js"),
            ),
            ("POST", "/dashboard/session", RouteId::DashboardSignIn, None),
            (
                "DELETE",
                "/dashboard/session",
                RouteId::DashboardSignOut,
                None,
            ),
            ("GET", "/dashboard/events", RouteId::DashboardEvents, None),
            ("PUT", "/v1/queues/q1", RouteId::PutQueue, Some("q1")),
            ("GET", "/v1/queues/q1", RouteId::GetQueue, Some("q1")),
            ("POST", "/v1/queues/q1/join", RouteId::JoinQueue, Some("q1")),
        ];
        for (m, p, route, param) in cases {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            let want = Matched {
                route,
                param,
                param2: None,
            };
            assert_eq!(resolve(&method, p), Ok(want), "{m} {p}");
        }
        assert_eq!(
            resolve(&Method::GET, "/v1/queues/q1/tickets/tkt_3"),
            Ok(Matched {
                route: RouteId::GetTicket,
                param: Some("q1"),
                param2: Some("tkt_3"),
            })
        );
    }

    #[test]
    fn misses_are_told_apart() {
        assert_eq!(resolve(&Method::GET, "/v1/nope"), Err(Miss::NotFound));
        assert_eq!(resolve(&Method::GET, "/v1/skus/"), Err(Miss::NotFound));
        assert_eq!(resolve(&Method::GET, "/v1/skus/a/b"), Err(Miss::NotFound));
        assert_eq!(
            resolve(&Method::GET, "/v1/skus/a/restock"),
            Err(Miss::MethodNotAllowed(vec!["POST"]))
        );
        assert_eq!(
            resolve(&Method::DELETE, "/v1/skus/a"),
            Err(Miss::MethodNotAllowed(vec!["PUT", "GET"]))
        );
        assert_eq!(
            resolve(&Method::POST, "/health"),
            Err(Miss::MethodNotAllowed(vec!["GET"]))
        );
    }
}
