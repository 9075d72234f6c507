// SKU endpoints: read and list (any token), create/replace and restock (admin).
import { keyOf, type ReadOptions, type WriteOptions } from "./options.js";
import { allItems } from "./page.js";
import type { Transport } from "./transport.js";
import type { ListSkusQuery, PutSkuRequest, Sku, SkuPage } from "./types.js";

/** `client.skus`. */
export class Skus {
  readonly #t: Transport;
  constructor(transport: Transport) {
    this.#t = transport;
  }

  /** `GET /v1/skus/{sku}`. */
  async get(sku: string, options?: ReadOptions): Promise<Sku> {
    return (await this.#t.send<Sku>({ method: "GET", path: skuPath(sku), signal: options?.signal })).body;
  }

  /** `GET /v1/skus?limit=&cursor=`: one page, ordered by id. */
  async list(query: ListSkusQuery = {}, options?: ReadOptions): Promise<SkuPage> {
    const answer = await this.#t.send<SkuPage>({
      method: "GET",
      path: "/v1/skus",
      query: { limit: query.limit, cursor: query.cursor },
      signal: options?.signal,
    });
    return answer.body;
  }

  /** Every SKU, page after page (`limit` per page). */
  listAll(query: Omit<ListSkusQuery, "cursor"> = {}, options?: ReadOptions): AsyncGenerator<Sku, void, undefined> {
    return allItems((cursor) => this.list({ ...query, cursor }, options));
  }

  /**
   * `PUT /v1/skus/{sku}` (admin): creates or replaces it. `created` tells 201 from 200.
   * Retried on every transient failure: a PUT applied twice leaves the same SKU.
   */
  async put(sku: string, body: PutSkuRequest, options?: WriteOptions): Promise<{ sku: Sku; created: boolean }> {
    const answer = await this.#t.send<Sku>({
      method: "PUT",
      path: skuPath(sku),
      body,
      idempotencyKey: keyOf(options),
      replaySafe: true,
      signal: options?.signal,
    });
    return { sku: answer.body, created: answer.status === 201 };
  }

  /**
   * `POST /v1/skus/{sku}/restock {qty}` (admin). Sent with an Idempotency-Key (given or
   * created), so it is retried like other writes (503, timeouts, broken connections): the
   * server answers a retry of a restock it made with the SKU, adding nothing (it keeps the
   * keys of a SKU's latest 64 keyed restocks; ADR 0015).
   */
  async restock(sku: string, qty: number, options?: WriteOptions): Promise<Sku> {
    const answer = await this.#t.send<Sku>({
      method: "POST",
      path: `${skuPath(sku)}/restock`,
      body: { qty },
      idempotencyKey: keyOf(options),
      replaySafe: true,
      signal: options?.signal,
    });
    return answer.body;
  }
}

/** `/v1/skus/{sku}`, encoded. */
function skuPath(sku: string): string {
  return `/v1/skus/${encodeURIComponent(sku)}`;
}
