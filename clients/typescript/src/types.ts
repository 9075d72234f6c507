// Friendly names for the API's schemas, all taken from the generated file (docs/openapi.yaml).
import type { components, operations } from "./generated/openapi.js";

type Schemas = components["schemas"];

/** A SKU's settings and stock counts (`GET /v1/skus/{sku}`). */
export type Sku = Schemas["Sku"];
/** The body of `PUT /v1/skus/{sku}` (admin). */
export type PutSkuRequest = Schemas["PutSku"];
/** The body of `POST /v1/reservations`. */
export type ReserveRequest = Schemas["ReserveRequest"];
/** One line of a reservation or order, with the unit price it was held at. */
export type Line = Schemas["Line"];
/** A reservation's view; `status` is `held`, `confirmed`, `released` or `expired`. */
export type Reservation = Schemas["Reservation"];
/** A reservation's status. */
export type ReservationStatus = Reservation["status"];
/** An order (a confirmed reservation). */
export type Order = Schemas["Order"];
/** An RFC 9457 problem body as the server sends it. */
export type ProblemBody = Schemas["Problem"];
/** The stable problem `type` URIs the API documents. */
export type ProblemType = ProblemBody["type"];
/** A page of SKUs (`GET /v1/skus`). */
export type SkuPage =
  operations["listSkus"]["responses"][200]["content"]["application/json"];
/** Query of `GET /v1/skus`. */
export type ListSkusQuery = NonNullable<operations["listSkus"]["parameters"]["query"]>;
/** Query of `GET /v1/reservations` (a buyer's reservations, newest first). */
export type ListReservationsQuery = NonNullable<operations["listReservations"]["parameters"]["query"]>;
/** A page of reservations. */
export type ReservationPage =
  operations["listReservations"]["responses"][200]["content"]["application/json"];
/** Query of `GET /v1/orders` (a buyer's orders, newest first). */
export type ListOrdersQuery = NonNullable<operations["listOrders"]["parameters"]["query"]>;
/** A page of orders. */
export type OrderPage = operations["listOrders"]["responses"][200]["content"]["application/json"];
