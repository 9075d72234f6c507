// @flashsale/client: a typed client of the flashsale HTTP API (Node.js 18+, fetch only).
export { FlashsaleClient, type ClientOptions } from "./client.js";
export * from "./errors.js";
export { newIdempotencyKey, type ReadOptions, type WriteOptions } from "./options.js";
export { allItems, type Page } from "./page.js";
export { DEFAULT_RETRY, backoffDelayMs, parseRetryAfter, type RetryPolicy } from "./retry.js";
export type { RetryInfo, TransportOptions } from "./transport.js";
export type * from "./types.js";
export type { components, operations, paths } from "./generated/openapi.js";
export type { Orders } from "./orders.js";
export type { Reservations } from "./reservations.js";
export type { Skus } from "./skus.js";
