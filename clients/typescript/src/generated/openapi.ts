// Generated from docs/openapi.yaml by scripts/generate.mjs (openapi-typescript): do not edit.
// Regenerate with `npm run generate`; CI fails when this file and the spec disagree.

export type paths = {
    "/v1/skus/{sku}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sku: components["parameters"]["Sku"];
            };
            cookie?: never;
        };
        /** A SKU's settings and stock counts (any token). */
        get: operations["getSku"];
        /**
         * Create or replace a SKU (admin).
         * @description Replaces the SKU's settings. `stock` is the total ever sellable (available + reserved +
         *     sold); lowering it below the units already reserved or sold is refused with 409
         *     `invalid-state` (a valid request that the SKU's state does not allow). A
         *     `sale_ends_at` not after `sale_starts_at` is 422 `invalid` (compared to the
         *     millisecond, as times are kept).
         */
        put: operations["putSku"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/skus/{sku}/restock": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sku: components["parameters"]["Sku"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Add units to a SKU's stock (admin).
         * @description **Idempotency.** With an `Idempotency-Key`, a retry of a restock that succeeded (same
         *     key, same `qty`, same admin token) returns 200 and the SKU as it is now, adding no
         *     stock, also after a restart: the SKU keeps the keys of its latest 64 keyed restocks, in
         *     the log (a retry of an older one adds again). Keys are scoped per caller as on
         *     `POST /v1/reservations` (ADR 0015). The same key with another `qty` is 409
         *     `idempotency-mismatch`. Without a key, every request adds stock.
         */
        post: operations["restock"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/skus": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** SKUs ordered by id, one page at a time (any token). */
        get: operations["listSkus"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/reservations": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * A buyer's reservations, newest first, one page at a time (storefront, admin or that buyer).
         * @description Lists the reservations of one buyer, newest first (by `created_at`, then by id), each
         *     one whole: a reservation whose lines live on several shards appears once, with all its
         *     lines, exactly as `GET /v1/reservations/{id}` shows it.
         *
         *     Who may ask: a storefront or admin token for any `buyer` (`buyer` is then required, 422
         *     without it); a buyer JWT only for itself (`buyer` may be omitted; another buyer is 403
         *     `forbidden`). A partner token is 403.
         *
         *     Retention: confirmed reservations are listed as long as the server keeps them (always,
         *     today); released and expired ones for the server's retention of settled reservations
         *     (24 hours by default), after which they are forgotten and no longer listed (as
         *     `GET /v1/reservations/{id}` then answers 404).
         *
         *     Paging: a page holds at most `limit` items and may hold fewer, even none, while
         *     `next_cursor` is not null (a page stops after examining a bounded number of
         *     reservations, which matters with the `status` and `sku` filters). Keep asking with
         *     `cursor` = `next_cursor` until it is null. A reservation made after the first page is
         *     not listed by later pages (they continue towards older ones). A cursor is only valid
         *     for the same endpoint and the same `buyer`, `status` and `sku`; any other cursor is
         *     400 `malformed`.
         */
        get: operations["listReservations"];
        put?: never;
        /**
         * Hold stock for a buyer, every line or none (storefront, admin or buyer JWT).
         * @description Returns once the hold is durable. With an `Idempotency-Key`, a repeated request with the
         *     same key and body returns the original reservation (same id, in its current state),
         *     whatever happened in between; the same key with another body is refused (409
         *     `idempotency-mismatch`). Keys are kept at least for the reservation TTL.
         *
         *     Keys are scoped per caller, as payment APIs scope them per account: the scope is the
         *     storefront (or admin) credential that sent the request, or the buyer of a buyer JWT.
         *     The same key sent by two callers names two independent requests, so no caller can
         *     probe or block another caller's keys. A credential's scope follows the token itself: a
         *     rotated token starts a new scope, so retry a request with the token that first sent it.
         *
         *     While the first request with a key is still in progress, a duplicate waits (bounded)
         *     for its outcome and returns it, or gets 409 `idempotency-in-progress` with
         *     `Retry-After`; it never sees a partial reservation. Retry it after the hint with the
         *     same key and body.
         */
        post: operations["reserve"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/reservations/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["ReservationId"];
            };
            cookie?: never;
        };
        /** A reservation's current view (storefront, admin or its buyer). */
        get: operations["getReservation"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/reservations/{id}/confirm": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["ReservationId"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Turn a held reservation into an order (storefront or admin). */
        post: operations["confirm"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/reservations/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["ReservationId"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Release a held reservation (storefront, admin or its buyer). */
        post: operations["cancel"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/reservations/{id}/extend": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["ReservationId"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Move a held reservation's expiry later (storefront, admin or its buyer).
         * @description Sets `expires_at` to now + `ttl_s`, or keeps it if that is earlier (an extension never
         *     shortens a hold). Returns once the new expiry is durable; a reservation spanning several
         *     shards is extended on all of them or on none.
         *
         *     Bounds, per SKU (see `PutSku`), the strictest of the reservation's lines applies: the
         *     hold may not end more than `max_hold_s` after `created_at`, and a reservation may be
         *     extended at most `max_extensions` times. Past either, the answer is 422 `invalid`
         *     naming the limit (`limit`, and `sku`: the line whose SKU sets it) and nothing changes.
         *     A reservation that is not held (confirmed, released, expired) is 409 `invalid-state`.
         *
         *     **Idempotency.** With an `Idempotency-Key`, a retry of an extension that succeeded
         *     (same key, same `ttl_s`, same caller) returns 200 and the reservation as it is now,
         *     without extending it again or counting another extension (so the same `expires_at` and
         *     `extensions` as the first answer, unless something else changed it since), also after a
         *     restart: the key is kept with the reservation, in the log. Keys are scoped per caller as
         *     on `POST /v1/reservations` (ADR 0015). The same key with another `ttl_s` is 409
         *     `idempotency-mismatch`. A reservation keeps the keys of its extensions only, so at most
         *     `max_extensions` of them. Without a key, repeating a request that succeeded counts as
         *     another extension: use the returned `expires_at` and `extensions` to tell.
         */
        post: operations["extend"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/orders": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * A buyer's orders, newest first, one page at a time (storefront, admin or that buyer).
         * @description Lists the orders of one buyer, newest first (by `created_at`, then by id), each one
         *     whole (every line, whichever shard holds it), exactly as `GET /v1/orders/{order_id}`
         *     shows it. Orders are kept (and listed) as long as the server runs on its log. Who may
         *     ask, paging and cursors are as for `GET /v1/reservations`.
         */
        get: operations["listOrders"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/orders/{order_id}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                order_id: string;
            };
            cookie?: never;
        };
        /** An order (storefront, admin or its buyer). */
        get: operations["getOrder"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/cluster": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * This node's view of its high-availability group (admin; servers run with `--ha`).
         * @description `role` is `leader` on the node holding the lease, else `standby`. `epoch` is the lease
         *     epoch (bumped by every takeover), `leader_url` the leader's advertised URL (null while
         *     no node holds a live lease), `log_position` the durable log's end (the sum over shards
         *     of their last sequence number) and `lag` the records this node's state is behind it (0
         *     on the leader; on a standby, the committed records its copy of the state has not
         *     applied yet; with `--ha-follow false`, the records it would replay at a takeover). A
         *     server started without `--ha` answers 404. A standby answers the reads of SKUs,
         *     reservations, orders and buyer lists from its copy (marked `Flashsale-Role: standby`
         *     and `Flashsale-Lag-Records`) once it has caught up with the log, and every other `/v1`
         *     request (and `/ready`) with 503 `not-leader` naming `leader_url`.
         */
        get: operations["getCluster"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/webhooks": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The webhook endpoints (admin), without secrets. */
        get: operations["listWebhooks"];
        put?: never;
        /**
         * Register a webhook endpoint (admin); answers its signing secret, shown only here.
         * @description The endpoint receives the events committed from now on whose type it subscribes to
         *     (`["*"]` = all, also when mixed with names), signed per Standard Webhooks 1.0.
         *     Targets must be http(s); loopback, private and link-local addresses (also through
         *     DNS) are refused with 422 unless the server runs with `--webhook-allow-private`. At
         *     most 1000 endpoints (409 `invalid-state` beyond).
         */
        post: operations["createWebhook"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/webhooks/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        /** One webhook endpoint (admin), without its secret. */
        get: operations["getWebhook"];
        put?: never;
        post?: never;
        /** Remove a webhook endpoint (admin); its delivery stops. */
        delete: operations["deleteWebhook"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/webhooks/{id}/deliveries": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        /** The endpoint's last 1000 delivery attempts, newest first (admin). */
        get: operations["webhookDeliveries"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/webhooks/{id}/replay": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Re-deliver the endpoint's dead letters, in order, in the background (admin).
         * @description An event is dead-lettered after its retry period (`--webhook-retry-period-s`, default
         *     24 h of exponential backoff with jitter). A replayed letter that fails again for a
         *     whole retry period is dead again.
         */
        post: operations["replayWebhook"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/health": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** 200 while the process is alive. */
        get: operations["health"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** 200 when checkouts can be accepted (every shard's log writable), else 503. */
        get: operations["ready"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Prometheus text format.
         * @description `flashsale_http_requests_total{route,status}`,
         *     `flashsale_http_request_duration_seconds{route}` (histogram) and
         *     `flashsale_http_request_duration_quantile_seconds{route,quantile}`,
         *     `flashsale_http_connections_open|accepted_total|refused_total`,
         *     `flashsale_http_rate_limited_total{scope}`, `flashsale_reservations_total{outcome}`
         *     (held, confirmed, released, expired), `flashsale_sold_out_rejections_total`,
         *     `flashsale_log_batches_total`, `flashsale_log_records_total`,
         *     `flashsale_log_batch_size_records` and `flashsale_log_commit_latency_seconds`
         *     (histograms), `flashsale_log_writable`; per-SKU stock with bounded cardinality:
         *     `flashsale_sku_stock_units{sku,state}` for the `--metrics-top-skus` busiest SKUs
         *     (default 20), `flashsale_sku_stock_other_units{state}` for the rest,
         *     `flashsale_stock_units{state}` and `flashsale_skus` for all; the stock stream's
         *     `flashsale_stream_*`; `flashsale_build_info{version,profile,os,arch} 1`; the process's
         *     `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
         *     `process_cpu_seconds_total`, `process_start_time_seconds`; per event destination
         *     (`kind` = webhook or amqp, `destination` = endpoint id or `amqp`):
         *     `flashsale_events_delivered_total`, `flashsale_events_attempts_total`,
         *     `flashsale_events_failures_total`, `flashsale_events_dead_letters_total`,
         *     `flashsale_events_lag_events` and `flashsale_events_lag_seconds`. Durations are in seconds.
         *     docs/grafana/flashsale.json charts them.
         */
        get: operations["metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/dashboard": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The live operator dashboard, or its sign-in page without a session.
         * @description Plain HTML with its scripts and style sheet embedded in the binary
         *     (`/dashboard/assets/…`). With a valid session cookie (see `POST /dashboard/session`)
         *     this is the dashboard, fed by `GET /dashboard/events`; without one, a form that takes
         *     the admin token. Both are 200; the page carries its own Content-Security-Policy
         *     (`script-src 'self'`, `connect-src 'self'`, no inline code) and `Vary: Cookie`.
         */
        get: operations["dashboardPage"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/dashboard/assets/{asset}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One of the dashboard's embedded files. */
        get: operations["dashboardAsset"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/dashboard/session": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Exchange the admin token for the dashboard's session cookie.
         * @description A browser cannot put a bearer token on a page load or an `EventSource`, so the
         *     dashboard signs in once: an admin token in the body buys a cookie
         *     `flashsale_dashboard` (`HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=28800`)
         *     that authorises `GET /dashboard` and `GET /dashboard/events` only — never the API.
         *     The cookie is signed with a key derived from the admin tokens: it survives a restart
         *     with the same tokens and ends when they change.
         */
        post: operations["dashboardSignIn"];
        /** End the dashboard session (clears the cookie). */
        delete: operations["dashboardSignOut"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/dashboard/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The dashboard's live feed, as server-sent events (one per second).
         * @description `text/event-stream`: a `retry: 2000` line, then one `data:` event per second (the
         *     latest sample at once if there is one), each a JSON object: `at`, `interval_s`,
         *     `reservations_per_s`, `sold_out_per_s`, `requests_per_s`, `http_p50_ms`,
         *     `http_p99_ms` and `commit_p99_ms` (over the last interval; `null` when unknown),
         *     `log_writable`, `http_connections`, `stream_subscribers`, `dashboard_streams`,
         *     `skus` (`shown`: the 25 busiest SKUs, most reserved plus sold first, each
         *     `{sku, total, available, reserved, sold}`; `others` and `all`: sums with `count`),
         *     `errors` (the latest 20 problems answered but `sold-out`, newest first: `at`,
         *     `status`, `type`, `method`, `path`, `detail`) and `errors_total`. A slow reader
         *     skips to the latest event. Takes the session cookie only (a bearer token is refused:
         *     scripts read `/metrics`). At most 16 streams are open at once; a stream ends after
         *     3600 events and the browser reconnects.
         */
        get: operations["dashboardEvents"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/queues/{queue}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                queue: components["parameters"]["Queue"];
            };
            cookie?: never;
        };
        /** A queue's configuration and counts (admin or storefront). */
        get: operations["getQueue"];
        /**
         * Create or change a waiting-room queue (admin).
         * @description A queue guards its SKUs: a reservation with a line of one of them needs the buyer's
         *     pass of this queue (`Flashsale-Pass`). Buyers join from `prequeue_opens_at` (or
         *     `starts_at`); everyone who joined before `starts_at` is shuffled uniformly at the start,
         *     then later buyers follow in arrival order (`fifo`) or are drawn at random (`random`).
         *     Admission runs at `admit_per_s`, at most `max_active` live passes, and never more idle
         *     passes than unclaimed units × `overbooking_pct` / 100. A SKU belongs to one queue.
         *     After the start, `skus`, `starts_at`, `prequeue_opens_at` and `method` stay; rates,
         *     caps and lifetimes may change. Errors name the `field`.
         */
        put: operations["putQueue"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/queues/{queue}/join": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                queue: components["parameters"]["Queue"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Join a queue and get a ticket (storefront for `buyer`, or a buyer JWT for itself).
         * @description Joining again returns the same ticket. A buyer JWT may send `{}` (or no body). The answer says when to poll next
         *     (`poll_after_ms`): the server spreads polls so that a queue's waiting buyers stay under
         *     5,000 polls per second together.
         */
        post: operations["joinQueue"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/queues/{queue}/tickets/{ticket}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                queue: components["parameters"]["Queue"];
                ticket: string;
            };
            cookie?: never;
        };
        /**
         * Poll a ticket (answered from the waiting room, never from a shard).
         * @description `waiting` (with `position` in fifo order, `eta_s` and `poll_after_ms`), `admitted`
         *     (with the `pass` for `Flashsale-Pass` and `pass_expires_at`), `sold_out` (nothing of
         *     the queue's SKUs is unclaimed now; the ticket keeps its place and turns `waiting` again
         *     if units return), `spent` (a reservation with the pass was confirmed) or `expired`.
         *     A buyer JWT sees only its own tickets (others are 404).
         */
        get: operations["getTicket"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
};
export type webhooks = {
    "reservation.held": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Stock was held for a buyer (per shard part of a multi-shard reservation, `partial` true). */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: components["requestBodies"]["EventDelivery"];
            responses: {
                /** @description Any 2xx acknowledges; anything else (redirects included) is retried. */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "reservation.confirmed": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A held reservation became an order (`order_id`, `payment_ref`, and the order's `buyer`, `lines` and `total_cents`). */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: components["requestBodies"]["ReservationConfirmedDelivery"];
            responses: {
                /** @description Any 2xx acknowledges. */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "reservation.released": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A held reservation was cancelled or rolled back (`reason`). */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: components["requestBodies"]["EventDelivery"];
            responses: {
                /** @description Any 2xx acknowledges. */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "reservation.expired": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A held reservation's TTL passed. */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: components["requestBodies"]["EventDelivery"];
            responses: {
                /** @description Any 2xx acknowledges. */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "sku.updated": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A SKU was created, its settings replaced (`change` = settings) or restocked (`change` = restocked). */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: components["requestBodies"]["EventDelivery"];
            responses: {
                /** @description Any 2xx acknowledges. */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "sku.sold_out": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A SKU's available units went from above zero to zero (once per sell-out; a restock or release and another sell-out emits again). */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody: components["requestBodies"]["SkuSoldOutDelivery"];
            responses: {
                /** @description Any 2xx acknowledges. */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
};
export type components = {
    schemas: {
        SkuId: string;
        /**
         * Format: date-time
         * @description RFC 3339 in UTC (`2026-11-21T10:00:00Z`): upper-case `T` and `Z`, no other offset, a
         *     year from 1970 to 9999, no leap second (`:60`), at most 9 fraction digits (kept to the
         *     millisecond). Anything else is 422 `invalid`. Responses always carry milliseconds
         *     (`2026-11-21T10:00:00.000Z`).
         */
        Time: string;
        /** @description Pass as `cursor` for the next page; null on the last page. */
        NextCursor: string | null;
        PutSku: {
            /**
             * @description 1..200 characters (Unicode scalar values), no control characters, not only white
             *     space; stored without leading and trailing white space.
             */
            name: string;
            price_cents: number;
            stock: number;
            per_buyer_limit?: number | null;
            sale_starts_at?: components["schemas"]["Time"] | null;
            sale_ends_at?: components["schemas"]["Time"] | null;
            /** @default 600 */
            reservation_ttl_s?: number | null;
            /**
             * @description Longest a reservation with a line of this SKU may be held, counted from its
             *     `created_at`, extensions included. Default (absent or null): the larger of
             *     `reservation_ttl_s` and 3600. Below `reservation_ttl_s` is 422 `invalid`.
             */
            max_hold_s?: number | null;
            /** @description Most times a reservation with a line of this SKU may be extended. Default (absent or null) 3. */
            max_extensions?: number | null;
        };
        Sku: {
            sku: components["schemas"]["SkuId"];
            name: string;
            price_cents: number;
            /** @description available + reserved + sold */
            total: number;
            available: number;
            reserved: number;
            sold: number;
            per_buyer_limit: number | null;
            sale_starts_at: components["schemas"]["Time"] | null;
            sale_ends_at: components["schemas"]["Time"] | null;
            reservation_ttl_s: number;
            /** @description Longest hold from `created_at`, extensions included. */
            max_hold_s: number;
            /** @description Most extensions of one reservation. */
            max_extensions: number;
        };
        ReserveRequest: {
            /**
             * @description 1..128 printable ASCII characters without spaces. Required with a storefront or
             *     admin token (422 without it); with a buyer JWT it may be omitted and must equal
             *     `sub` if given.
             */
            buyer?: string;
            /** @description No SKU twice (two lines naming the same SKU are 422, whatever their `qty`). */
            lines: {
                sku: components["schemas"]["SkuId"];
                qty: number;
            }[];
            /**
             * @description How long to hold, in seconds. The cart rule: a reservation's hold is the shortest
             *     hold of its lines, so without `ttl_s` it is the smallest `reservation_ttl_s` of its
             *     lines' SKUs, and `ttl_s` may be at most that (above it is 422 `invalid`, naming
             *     `sku` and its `limit`). `POST /v1/reservations/{id}/extend` moves it later, within
             *     the lines' `max_hold_s` and `max_extensions`.
             */
            ttl_s?: number | null;
        };
        Line: {
            sku: components["schemas"]["SkuId"];
            qty: number;
            unit_price_cents: number;
        };
        Reservation: {
            id: string;
            /** @enum {unknown} */
            status: "held" | "confirmed" | "released" | "expired";
            buyer: string;
            lines: components["schemas"]["Line"][];
            /** @description Sum of qty × unit price, exact. */
            total_cents: number;
            created_at: components["schemas"]["Time"];
            expires_at: components["schemas"]["Time"];
            order_id: string | null;
            /** @enum {unknown} */
            release_reason: "cancelled" | "expired" | "aborted" | null;
            /** @description How many times the hold was extended. */
            extensions: number;
        };
        Order: {
            id: string;
            reservation_id: string;
            buyer: string;
            lines: components["schemas"]["Line"][];
            /** @description Sum of qty × unit price, exact. */
            total_cents: number;
            payment_ref: string;
            created_at: components["schemas"]["Time"];
        };
        Cluster: {
            node_id: string;
            /** @enum {unknown} */
            role: "leader" | "standby";
            epoch: number;
            leader_url: string | null;
            log_position: number;
            lag: number;
        };
        /** @enum {unknown} */
        EventType: "reservation.held" | "reservation.confirmed" | "reservation.released" | "reservation.expired" | "sku.updated" | "sku.sold_out";
        WebhookCreate: {
            /**
             * Format: uri
             * @description http(s) URL of the receiver (at most 1000 characters).
             */
            url: string;
            events: ("*" | "reservation.held" | "reservation.confirmed" | "reservation.released" | "reservation.expired" | "sku.updated" | "sku.sold_out")[];
        };
        Webhook: {
            id: string;
            url: string;
            events: string[];
            created_at: components["schemas"]["Time"];
            /** @description Events waiting for a replay. */
            dead_letters: number;
        };
        WebhookCreated: components["schemas"]["Webhook"] & {
            /** @description Standard Webhooks signing secret; shown only in this answer. */
            secret: string;
        };
        Delivery: {
            event_id: string;
            type: string;
            attempt: number;
            at: components["schemas"]["Time"];
            status: number | null;
            /** @enum {unknown} */
            outcome: "delivered" | "failed" | "dead_lettered";
            error: string | null;
            duration_ms: number;
        };
        /** @description The body of every webhook request and AMQP message. `id` is `evt_<shard>_<seq>`, its position in the log: the same across retries and restarts (deduplicate on it). */
        Event: {
            /** @description `evt_<shard>_<seq>`; a `sku.sold_out` that the same log record caused is `evt_<shard>_<seq>_<n>` (n = 1, 2, … in line order). */
            id: string;
            type: components["schemas"]["EventType"];
            timestamp: components["schemas"]["Time"];
            data: Record<string, never>;
        };
        /** @description The order. `buyer`, `lines`, `total_cents` and `partial` are absent only for a reservation held before the events ledger started (a data dir whose log was compacted before this version; see docs/events.md). */
        ReservationConfirmedData: {
            reservation_id: string;
            order_id: string;
            payment_ref: string;
            buyer?: string;
            /** @description This shard's lines of the reservation (all of them unless `partial`). */
            lines?: {
                sku: string;
                qty: number;
                unit_price_cents: number;
            }[];
            /** @description Sum of qty × unit_price_cents over `lines`. */
            total_cents?: number;
            /** @description Part of a reservation spanning several shards: each part has its own confirmed event with its lines. */
            partial?: boolean;
        };
        SkuSoldOutData: {
            sku: string;
            /** @description Total units. */
            stock: number;
            /** @description Units held (not yet confirmed or released). */
            reserved: number;
            /** @description Units of orders; reserved + sold = stock. */
            sold: number;
        };
        /** @description RFC 9457 problem details. Extension members depend on the type. */
        Problem: {
            /** @enum {string} */
            type: "https://flashsale.dev/problems/malformed" | "https://flashsale.dev/problems/unauthenticated" | "https://flashsale.dev/problems/forbidden" | "https://flashsale.dev/problems/sale-not-open" | "https://flashsale.dev/problems/not-found" | "https://flashsale.dev/problems/method-not-allowed" | "https://flashsale.dev/problems/timeout" | "https://flashsale.dev/problems/sold-out" | "https://flashsale.dev/problems/invalid-state" | "https://flashsale.dev/problems/idempotency-mismatch" | "https://flashsale.dev/problems/idempotency-in-progress" | "https://flashsale.dev/problems/too-large" | "https://flashsale.dev/problems/invalid" | "https://flashsale.dev/problems/buyer-limit" | "https://flashsale.dev/problems/rate-limited" | "https://flashsale.dev/problems/internal" | "https://flashsale.dev/problems/unavailable" | "https://flashsale.dev/problems/not-leader" | "https://flashsale.dev/problems/pass-required" | "https://flashsale.dev/problems/pass-invalid" | "https://flashsale.dev/problems/queue-closed";
            title: string;
            status: number;
            detail: string;
            /** @description sold-out, buyer-limit, sale-not-open, not-found (SKU), invalid-state (SKU) */
            sku?: string;
            /** @description sold-out — units available when refused */
            available?: number;
            /** @description buyer-limit — the SKU's per-buyer limit; invalid — the limit a `ttl_s` or an extension went past (seconds, or a count for `max_extensions`) */
            limit?: number;
            /** @description invalid — which limit: `reservation_ttl_s`, `max_hold_s` or `max_extensions` */
            limit_name?: string;
            /** @description buyer-limit — units the buyer holds or bought */
            already?: number;
            /** @description sale-not-open */
            sale_starts_at?: string | null;
            /** @description sale-not-open */
            sale_ends_at?: string | null;
            /** @description not-found / invalid-state — the reservation or order */
            id?: string;
            /** @description not-leader — where the leader serves (null while none holds the lease) */
            leader_url?: string | null;
            /** @description invalid-state — the reservation's status now */
            reservation_status?: string;
            /** @description rate-limited */
            retry_after_s?: number;
            /** @description too-large */
            limit_bytes?: number;
            /** @description malformed — where the JSON failed */
            line?: number;
            /** @description malformed — where the JSON failed */
            column?: number;
            /** @description pass-required, queue-closed, not-found (queue) */
            queue?: string;
            /** @description pass-invalid — forged, expired, spent, other-buyer, other-queue, several-queues or in-use */
            reason?: string;
            /** @description invalid (queue configuration) — the field at fault */
            field?: string;
            /** @description queue-closed — when joins open */
            opens_at?: string;
        };
        JoinQueue: {
            /** @description Required with a storefront or admin token; a buyer JWT joins for its `sub`. */
            buyer?: string;
        };
        Ticket: {
            ticket: string;
            queue: string;
            buyer: string;
            /** @enum {string} */
            status: "waiting" | "admitted" | "sold_out" | "spent" | "expired";
            /** @description Place in line (1 = next), fifo order only. */
            position?: number;
            eta_s?: number;
            poll_after_ms?: number;
            pass?: string;
            pass_expires_at?: string;
            /** @description When the ticket was admitted (admitted tickets). */
            admitted_at?: string;
            /** @description Place in the queue's admission order, 1 = admitted first (admitted tickets; what fairness is measured against). */
            admission?: number;
        };
        Queue: {
            queue: string;
            skus: string[];
            prequeue_opens_at?: string;
            starts_at: string;
            admit_per_s: number;
            max_active: number;
            pass_ttl_s: number;
            /** @enum {string} */
            method: "fifo" | "random";
            overbooking_pct: number;
            /** @enum {string} */
            status: "scheduled" | "open" | "sold_out";
            /** @description Unclaimed units of the queue's SKUs (absent until known). */
            unclaimed?: number;
            joined: number;
            waiting: number;
            /** @description Live passes (neither spent nor expired). */
            admitted: number;
            /** @description Live passes holding a reservation. */
            holding: number;
            spent: number;
            expired: number;
        };
        /** @description `prequeue_opens_at` must not be after `starts_at` (else 422 naming the field). A SKU belongs to one queue. `null` or absent optional fields take their defaults. */
        PutQueue: {
            skus: components["schemas"]["SkuId"][];
            prequeue_opens_at?: components["schemas"]["Time"] | null;
            starts_at: components["schemas"]["Time"];
            admit_per_s: number;
            /** @default 1000 */
            max_active?: number | null;
            /** @default 120 */
            pass_ttl_s?: number | null;
            /** @enum {string} */
            method: "fifo" | "random";
            /** @default 100 */
            overbooking_pct?: number | null;
        };
    };
    responses: {
        /** @description `malformed`: the body or query is not valid for the endpoint; `detail` (and `line`, `column`) say where. Unknown fields are refused. */
        Malformed: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `unauthenticated`: missing or invalid token (with `WWW-Authenticate: Bearer`). */
        Unauthenticated: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `forbidden`: the token's role may not do this. */
        Forbidden: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `forbidden` (wrong role, or a buyer JWT reserving for another buyer), `sale-not-open` (outside the SKU's sale window; names `sku`, `sale_starts_at`, `sale_ends_at`), `pass-required` (a line names a queued SKU and no `Flashsale-Pass` came; names `queue`) or `pass-invalid` (the pass is forged, expired, spent, another buyer's, of another queue, or holds a reservation already; `reason` says which: `forged`, `expired`, `spent`, `other-buyer`, `other-queue`, `several-queues`, `in-use`). A retry with the `Idempotency-Key` of a reservation already made is answered with that reservation (201) instead, whatever its pass says now; a pass a new leader has not checked yet after a restart or takeover answers `503 unavailable` with `Retry-After`. */
        ForbiddenOrSaleNotOpen: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `not-found`: unknown SKU, reservation, order or path. */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `method-not-allowed`: the path exists with other methods (listed in `Allow`). */
        MethodNotAllowed: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `timeout`: the request body did not arrive within the body timeout; the connection is closed. */
        Timeout: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `sold-out` (not enough stock; names the `sku` and its `available`), `idempotency-mismatch` (this caller used the Idempotency-Key with another body) or `idempotency-in-progress` (this caller's first request with the key is still in progress; retry after `Retry-After` seconds with the same key and body). */
        ReserveConflict: {
            headers: {
                /** @description With `idempotency-in-progress` only; seconds to wait before retrying. */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `invalid-state` (the total would exceed 10^12; names `sku`) or `idempotency-mismatch` (this caller used the Idempotency-Key with another `qty`). */
        RestockConflict: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `invalid-state` (the reservation is not held; names `id` and `reservation_status`) or `idempotency-mismatch` (this caller used the Idempotency-Key with another `ttl_s`). */
        ExtendConflict: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `invalid-state`: a valid request that the resource's current state does not allow. A reservation: confirm after release or expiry, cancel after confirm, extend unless held (names `id` and `reservation_status`). A SKU: a stock below the units already reserved or sold, or a restock beyond 10^12 units (names `sku`). */
        InvalidState: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `too-large`: the body is above the limit (`limit_bytes`); the connection is closed. */
        TooLarge: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `invalid`: well-formed but invalid (qty ≤ 0, empty lines, duplicate SKU lines, more than 32 lines, bad ids, names or times, no `buyer` with a storefront or admin token, a sale ending before it starts, a value beyond its limit: `detail` names the field and the limit). */
        Invalid: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `rate-limited`: per-IP (or per-buyer) token bucket empty, or too many open connections from this address (the connection is then closed); see `Retry-After`. */
        RateLimited: {
            headers: {
                "Retry-After": components["headers"]["RetryAfter"];
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `buyer-limit` (the SKU's per-buyer limit would be exceeded; names `sku`, `limit`, `already`) or `rate-limited` (with `Retry-After`). */
        BuyerLimitOrRateLimited: {
            headers: {
                "Retry-After": components["headers"]["RetryAfter"];
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `internal`: a server bug (e.g. an engine invariant broken, or a stored money value beyond 2^53 − 1). `detail` is generic; the cause is logged, never shown. */
        Internal: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `unavailable`: the log cannot be made durable right now or the engine is saturated (nothing was acknowledged), or the connection cap is reached; or `not-leader`: this node is a standby of a high-availability group (`serve --ha`), `leader_url` names the leader. See `Retry-After`. */
        Unavailable: {
            headers: {
                "Retry-After": components["headers"]["RetryAfter"];
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `queue-closed`: the queue takes no joins yet (names `queue` and `opens_at`) or holds its most tickets. */
        QueueClosed: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
    };
    parameters: {
        Sku: components["schemas"]["SkuId"];
        ReservationId: string;
        WebhookId: string;
        /**
         * @description The `next_cursor` of the previous page of the same list (same endpoint, `buyer` and
         *     filters); omitted or empty for the first page. Opaque; any other value is 400
         *     `malformed`.
         */
        Cursor: string;
        Queue: string;
    };
    requestBodies: {
        /** @description Headers `webhook-id` (= `id`), `webhook-timestamp` (Unix s) and `webhook-signature: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>" keyed with the base64-decoded part of the secret after `whsec_`>` (Standard Webhooks 1.0). */
        EventDelivery: {
            content: {
                "application/json": components["schemas"]["Event"];
            };
        };
        /** @description A `reservation.confirmed` event (headers as for every event). */
        ReservationConfirmedDelivery: {
            content: {
                "application/json": components["schemas"]["Event"] & {
                    data?: components["schemas"]["ReservationConfirmedData"];
                };
            };
        };
        /** @description A `sku.sold_out` event (headers as for every event). */
        SkuSoldOutDelivery: {
            content: {
                "application/json": components["schemas"]["Event"] & {
                    data?: components["schemas"]["SkuSoldOutData"];
                };
            };
        };
    };
    headers: {
        /** @description Path of the created resource. */
        Location: string;
        /** @description Seconds to wait before retrying. */
        RetryAfter: number;
        /**
         * @description `standby` when a standby of a high-availability group (`serve --ha`) answered this read
         *     from its own copy of the state, which follows the leader's log; absent on a leader and
         *     on a single node. The other headers of such an answer are as usual (a 404 of a standby
         *     may be its lag: the leader may know the resource already).
         */
        FlashsaleRole: "standby";
        /**
         * @description With `Flashsale-Role: standby`: how many committed log records the answering standby
         *     had not applied yet at its last look at the log's end (0: it had applied all of them).
         */
        FlashsaleLagRecords: number;
    };
    pathItems: never;
};
export type $defs = Record<string, never>;
export interface operations {
    getSku: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sku: components["parameters"]["Sku"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The SKU. */
            200: {
                headers: {
                    "Flashsale-Role": components["headers"]["FlashsaleRole"];
                    "Flashsale-Lag-Records": components["headers"]["FlashsaleLagRecords"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Sku"];
                };
            };
            401: components["responses"]["Unauthenticated"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    putSku: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sku: components["parameters"]["Sku"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PutSku"];
            };
        };
        responses: {
            /** @description Updated. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Sku"];
                };
            };
            /** @description Created. */
            201: {
                headers: {
                    Location: components["headers"]["Location"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Sku"];
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            408: components["responses"]["Timeout"];
            409: components["responses"]["RestockConflict"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    restock: {
        parameters: {
            query?: never;
            header?: {
                /** @description Makes a retry of this restock answer without adding stock again. */
                "Idempotency-Key"?: string;
            };
            path: {
                sku: components["parameters"]["Sku"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /**
                     * @description The SKU's total after the restock must stay at most 10^12; beyond it the
                     *     restock is refused with 409 `invalid-state` (naming `sku`).
                     */
                    qty: number;
                };
            };
        };
        responses: {
            /** @description The SKU after the restock. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Sku"];
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            408: components["responses"]["Timeout"];
            409: components["responses"]["InvalidState"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    listSkus: {
        parameters: {
            query?: {
                limit?: number;
                /**
                 * @description The `next_cursor` of the previous page: the id of its last SKU. The page lists the
                 *     SKUs whose ids sort after it (byte order), whether or not that SKU still exists;
                 *     empty means from the start. Anything else is 400 `malformed`.
                 */
                cursor?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page. */
            200: {
                headers: {
                    "Flashsale-Role": components["headers"]["FlashsaleRole"];
                    "Flashsale-Lag-Records": components["headers"]["FlashsaleLagRecords"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["Sku"][];
                        /** @description Pass as `cursor` for the next page; null on the last page. */
                        next_cursor: string | null;
                    };
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    listReservations: {
        parameters: {
            query?: {
                /** @description The buyer. Required with a storefront or admin token; with a buyer JWT, omitted or equal to `sub`. */
                buyer?: string;
                /** @description Only reservations in this status. */
                status?: "held" | "confirmed" | "released" | "expired";
                /** @description Only reservations with a line of this SKU. */
                sku?: components["schemas"]["SkuId"];
                limit?: number;
                /**
                 * @description The `next_cursor` of the previous page of the same list (same endpoint, `buyer` and
                 *     filters); omitted or empty for the first page. Opaque; any other value is 400
                 *     `malformed`.
                 */
                cursor?: components["parameters"]["Cursor"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page. */
            200: {
                headers: {
                    "Flashsale-Role": components["headers"]["FlashsaleRole"];
                    "Flashsale-Lag-Records": components["headers"]["FlashsaleLagRecords"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["Reservation"][];
                        next_cursor: components["schemas"]["NextCursor"];
                    };
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    reserve: {
        parameters: {
            query?: never;
            header?: {
                "Idempotency-Key"?: string;
                /**
                 * @description The buyer's waiting-room pass (the `pass` of its admitted ticket). Needed when a line
                 *     names a SKU of a queue; one held reservation per pass at a time; a confirm spends it,
                 *     a cancel or an expiry frees it while the pass lives.
                 */
                "Flashsale-Pass"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ReserveRequest"];
            };
        };
        responses: {
            /** @description Held. */
            201: {
                headers: {
                    Location: components["headers"]["Location"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Reservation"];
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["ForbiddenOrSaleNotOpen"];
            404: components["responses"]["NotFound"];
            408: components["responses"]["Timeout"];
            409: components["responses"]["ReserveConflict"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["BuyerLimitOrRateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    getReservation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["ReservationId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The reservation. */
            200: {
                headers: {
                    "Flashsale-Role": components["headers"]["FlashsaleRole"];
                    "Flashsale-Lag-Records": components["headers"]["FlashsaleLagRecords"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Reservation"];
                };
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    confirm: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["ReservationId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /**
                     * @description The payment provider's reference: 1..256 printable ASCII characters,
                     *     spaces only between others (no control characters, no leading or
                     *     trailing space). Confirming again with the same reference returns the
                     *     same order.
                     */
                    payment_ref: string;
                };
            };
        };
        responses: {
            /** @description Confirmed; `status` is `confirmed` and `order_id` is set. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Reservation"];
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            408: components["responses"]["Timeout"];
            409: components["responses"]["InvalidState"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    cancel: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["ReservationId"];
            };
            cookie?: never;
        };
        /** @description Empty, or an empty JSON object. */
        requestBody?: {
            content: {
                "application/json": Record<string, never>;
            };
        };
        responses: {
            /** @description Released; `status` is `released`. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Reservation"];
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            408: components["responses"]["Timeout"];
            409: components["responses"]["InvalidState"];
            413: components["responses"]["TooLarge"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    extend: {
        parameters: {
            query?: never;
            header?: {
                /** @description Makes a retry of this extension answer without extending again. */
                "Idempotency-Key"?: string;
            };
            path: {
                id: components["parameters"]["ReservationId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /** @description Seconds from now. */
                    ttl_s: number;
                };
            };
        };
        responses: {
            /** @description Extended; the reservation with its new `expires_at`. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Reservation"];
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            408: components["responses"]["Timeout"];
            409: components["responses"]["ExtendConflict"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    listOrders: {
        parameters: {
            query?: {
                /** @description The buyer. Required with a storefront or admin token; with a buyer JWT, omitted or equal to `sub`. */
                buyer?: string;
                limit?: number;
                /**
                 * @description The `next_cursor` of the previous page of the same list (same endpoint, `buyer` and
                 *     filters); omitted or empty for the first page. Opaque; any other value is 400
                 *     `malformed`.
                 */
                cursor?: components["parameters"]["Cursor"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page. */
            200: {
                headers: {
                    "Flashsale-Role": components["headers"]["FlashsaleRole"];
                    "Flashsale-Lag-Records": components["headers"]["FlashsaleLagRecords"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["Order"][];
                        next_cursor: components["schemas"]["NextCursor"];
                    };
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    getOrder: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                order_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The order. */
            200: {
                headers: {
                    "Flashsale-Role": components["headers"]["FlashsaleRole"];
                    "Flashsale-Lag-Records": components["headers"]["FlashsaleLagRecords"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Order"];
                };
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    getCluster: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The node's view. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Cluster"];
                };
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
        };
    };
    listWebhooks: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Every endpoint. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["Webhook"][];
                    };
                };
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    createWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["WebhookCreate"];
            };
        };
        responses: {
            /** @description The endpoint, with its secret. */
            201: {
                headers: {
                    Location: components["headers"]["Location"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookCreated"];
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            408: components["responses"]["Timeout"];
            409: components["responses"]["InvalidState"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    getWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The endpoint. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Webhook"];
                };
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    deleteWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Removed. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    webhookDeliveries: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Recent attempts. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["Delivery"][];
                    };
                };
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    replayWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: components["parameters"]["WebhookId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description How many dead letters are being re-delivered. */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        replaying: number;
                    };
                };
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    health: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Alive. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @constant */
                        status?: "ok";
                    };
                };
            };
        };
    };
    ready: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @constant */
                        status?: "ready";
                    };
                };
            };
            503: components["responses"]["Unavailable"];
        };
    };
    metrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Metrics. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
        };
    };
    dashboardPage: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The dashboard or the sign-in page. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/html": string;
                };
            };
        };
    };
    dashboardAsset: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                asset: "dashboard.js" | "login.js" | "dashboard.css" | "favicon.svg";
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The file. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/javascript": string;
                    "text/css": string;
                    "image/svg+xml": string;
                };
            };
            404: components["responses"]["NotFound"];
        };
    };
    dashboardSignIn: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /** @description An admin token. */
                    token: string;
                };
            };
        };
        responses: {
            /** @description Signed in; the session cookie is set. */
            204: {
                headers: {
                    /** @description The session cookie. */
                    "Set-Cookie"?: string;
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            408: components["responses"]["Timeout"];
            413: components["responses"]["TooLarge"];
            429: components["responses"]["RateLimited"];
        };
    };
    dashboardSignOut: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Signed out. */
            204: {
                headers: {
                    /** @description The cleared session cookie (`Max-Age=0`). */
                    "Set-Cookie"?: string;
                    [name: string]: unknown;
                };
                content?: never;
            };
        };
    };
    dashboardEvents: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The event stream. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": string;
                };
            };
            401: components["responses"]["Unauthenticated"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    getQueue: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                queue: components["parameters"]["Queue"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The queue. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Queue"];
                };
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
        };
    };
    putQueue: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                queue: components["parameters"]["Queue"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PutQueue"];
            };
        };
        responses: {
            /** @description Changed. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Queue"];
                };
            };
            /** @description Created. */
            201: {
                headers: {
                    Location: components["headers"]["Location"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Queue"];
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            408: components["responses"]["Timeout"];
            409: components["responses"]["InvalidState"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    joinQueue: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                queue: components["parameters"]["Queue"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["JoinQueue"];
            };
        };
        responses: {
            /** @description The buyer's ticket. */
            202: {
                headers: {
                    Location: components["headers"]["Location"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Ticket"];
                };
            };
            400: components["responses"]["Malformed"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            408: components["responses"]["Timeout"];
            409: components["responses"]["QueueClosed"];
            413: components["responses"]["TooLarge"];
            422: components["responses"]["Invalid"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
            503: components["responses"]["Unavailable"];
        };
    };
    getTicket: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                queue: components["parameters"]["Queue"];
                ticket: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The ticket. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Ticket"];
                };
            };
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            500: components["responses"]["Internal"];
        };
    };
}
