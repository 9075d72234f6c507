// Carts of the example storefront: in memory, one per buyer, bounded in count and size.
import { randomUUID } from "node:crypto";

/** One line of a cart. */
export interface CartLine {
  sku: string;
  qty: number;
}

/** A buyer's cart. */
export interface Cart {
  lines: CartLine[];
  /**
   * The Idempotency-Key of this cart's checkout: a double-clicked "checkout" (or a retry after a
   * crash) holds once. A changed cart gets a new key, since it is another request.
   */
  checkoutKey: string;
}

/** Most lines in a cart: the API's bound on a reservation's lines. */
export const MAX_LINES = 32;

/** In-memory carts; the oldest is forgotten beyond `maxCarts`. */
export class CartStore {
  readonly #carts = new Map<string, Cart>();
  readonly #maxCarts: number;

  constructor(maxCarts = 10_000) {
    this.#maxCarts = maxCarts;
  }

  /** The buyer's cart (empty if none). */
  get(buyer: string): Cart {
    return this.#carts.get(buyer) ?? { lines: [], checkoutKey: randomUUID() };
  }

  /** Sets the quantity of `sku` (0 removes it); throws a RangeError past MAX_LINES. */
  setQty(buyer: string, sku: string, qty: number): Cart {
    const lines = this.get(buyer).lines.filter((l) => l.sku !== sku);
    if (qty > 0) lines.push({ sku, qty });
    if (lines.length > MAX_LINES) throw new RangeError(`a cart holds at most ${MAX_LINES} lines`);
    const cart = { lines, checkoutKey: randomUUID() };
    this.#carts.delete(buyer);
    this.#carts.set(buyer, cart);
    while (this.#carts.size > this.#maxCarts) {
      const oldest = this.#carts.keys().next().value;
      if (oldest === undefined) break;
      this.#carts.delete(oldest);
    }
    return cart;
  }

  /** Empties the buyer's cart (after an order). */
  clear(buyer: string): void {
    this.#carts.delete(buyer);
  }
}
