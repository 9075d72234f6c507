// Reservation endpoints: hold (idempotent by key), read, list a buyer's, extend the hold,
// confirm after payment, cancel.
import { keyOf, type ReadOptions, type WriteOptions } from "./options.js";
import type { Transport } from "./transport.js";
import { allItems } from "./page.js";
import type { ListReservationsQuery, Reservation, ReservationPage, ReserveRequest } from "./types.js";

/** `client.reservations`. */
export class Reservations {
  readonly #t: Transport;
  constructor(transport: Transport) {
    this.#t = transport;
  }

  /**
   * `POST /v1/reservations`: holds every line or none. Every attempt carries the same
   * Idempotency-Key, so a retry after a timeout returns the original reservation (same id)
   * instead of holding twice.
   */
  async create(request: ReserveRequest, options?: WriteOptions): Promise<Reservation> {
    const answer = await this.#t.send<Reservation>({
      method: "POST",
      path: "/v1/reservations",
      body: request,
      idempotencyKey: keyOf(options),
      replaySafe: true,
      signal: options?.signal,
    });
    return answer.body;
  }

  /** `GET /v1/reservations/{id}`. */
  async get(id: string, options?: ReadOptions): Promise<Reservation> {
    return (await this.#t.send<Reservation>({ method: "GET", path: resPath(id), signal: options?.signal })).body;
  }

  /**
   * `GET /v1/reservations?buyer=&status=&sku=&limit=&cursor=`: one page of a buyer's
   * reservations, newest first. A page may hold fewer than `limit` items (even none) while
   * `next_cursor` is not null; `listAll` follows the cursors.
   */
  async list(query: ListReservationsQuery, options?: ReadOptions): Promise<ReservationPage> {
    const answer = await this.#t.send<ReservationPage>({
      method: "GET",
      path: "/v1/reservations",
      query: { ...query },
      signal: options?.signal,
    });
    return answer.body;
  }

  /** Every reservation of the query, newest first, page after page. */
  listAll(
    query: Omit<ListReservationsQuery, "cursor">,
    options?: ReadOptions,
  ): AsyncGenerator<Reservation, void, undefined> {
    return allItems((cursor) => this.list({ ...query, cursor }, options));
  }

  /**
   * `POST /v1/reservations/{id}/extend {ttl_s}`: the hold ends `ttlS` seconds from now (never
   * earlier than it did), within the SKUs' `max_hold_s` and `max_extensions` (else
   * `InvalidError` with `limit` and `limitName`). Sent with an Idempotency-Key (given or
   * created), so it is retried like other writes (503, timeouts, broken connections): the
   * server answers a retry of an extension it made with the reservation, without extending it
   * again (ADR 0015).
   */
  async extend(id: string, ttlS: number, options?: WriteOptions): Promise<Reservation> {
    const answer = await this.#t.send<Reservation>({
      method: "POST",
      path: `${resPath(id)}/extend`,
      body: { ttl_s: ttlS },
      idempotencyKey: keyOf(options),
      replaySafe: true,
      signal: options?.signal,
    });
    return answer.body;
  }

  /**
   * `POST /v1/reservations/{id}/confirm {payment_ref}` (storefront): the order is made.
   * Confirming again with the same `paymentRef` returns the same order, so it is retried.
   */
  async confirm(id: string, paymentRef: string, options?: WriteOptions): Promise<Reservation> {
    const answer = await this.#t.send<Reservation>({
      method: "POST",
      path: `${resPath(id)}/confirm`,
      body: { payment_ref: paymentRef },
      idempotencyKey: keyOf(options),
      replaySafe: true,
      signal: options?.signal,
    });
    return answer.body;
  }

  /** `POST /v1/reservations/{id}/cancel`: releases the hold (cancelling again is a no-op). */
  async cancel(id: string, options?: WriteOptions): Promise<Reservation> {
    const answer = await this.#t.send<Reservation>({
      method: "POST",
      path: `${resPath(id)}/cancel`,
      body: {},
      idempotencyKey: keyOf(options),
      replaySafe: true,
      signal: options?.signal,
    });
    return answer.body;
  }
}

/** `/v1/reservations/{id}`, encoded. */
function resPath(id: string): string {
  return `/v1/reservations/${encodeURIComponent(id)}`;
}
