// Order endpoints: read one, list a buyer's (storefront, admin or that buyer).
import type { ReadOptions } from "./options.js";
import { allItems } from "./page.js";
import type { Transport } from "./transport.js";
import type { ListOrdersQuery, Order, OrderPage } from "./types.js";

/** `client.orders`. */
export class Orders {
  readonly #t: Transport;
  constructor(transport: Transport) {
    this.#t = transport;
  }

  /** `GET /v1/orders/{order_id}`. */
  async get(orderId: string, options?: ReadOptions): Promise<Order> {
    const path = `/v1/orders/${encodeURIComponent(orderId)}`;
    return (await this.#t.send<Order>({ method: "GET", path, signal: options?.signal })).body;
  }

  /** `GET /v1/orders?buyer=&limit=&cursor=`: one page of a buyer's orders, newest first. */
  async list(query: ListOrdersQuery, options?: ReadOptions): Promise<OrderPage> {
    const answer = await this.#t.send<OrderPage>({
      method: "GET",
      path: "/v1/orders",
      query: { ...query },
      signal: options?.signal,
    });
    return answer.body;
  }

  /** Every order of the buyer, newest first, page after page. */
  listAll(query: Omit<ListOrdersQuery, "cursor">, options?: ReadOptions): AsyncGenerator<Order, void, undefined> {
    return allItems((cursor) => this.list({ ...query, cursor }, options));
  }
}
