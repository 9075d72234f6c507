// The client: one server, one credential, the API's resources.
import { Orders } from "./orders.js";
import { Reservations } from "./reservations.js";
import { Skus } from "./skus.js";
import { Transport, type TransportOptions } from "./transport.js";

/** Options of `FlashsaleClient`. */
export type ClientOptions = TransportOptions;

/**
 * A flashsale API client. Reads retry freely on 503, 429, timeouts and connection errors;
 * writes carry an Idempotency-Key on every attempt and retry only as the call allows (see
 * README). Error answers are thrown as typed `ProblemError`s (`SoldOutError`, …).
 */
export class FlashsaleClient {
  /** SKUs: get, list, listAll, put (admin), restock (admin). */
  readonly skus: Skus;
  /** Reservations: create, get, list, listAll, extend, confirm, cancel. */
  readonly reservations: Reservations;
  /** Orders: get, list, listAll. */
  readonly orders: Orders;

  constructor(options: ClientOptions) {
    const transport = new Transport(options);
    this.skus = new Skus(transport);
    this.reservations = new Reservations(transport);
    this.orders = new Orders(transport);
  }
}
