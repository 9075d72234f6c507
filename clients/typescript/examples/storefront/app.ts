// The example storefront: catalog, cart, checkout as one multi-line reservation held for 10
// minutes, a simulated payment, then confirm (or cancel), and "my orders" from the list
// endpoint. Pages are HTML; the same routes answer JSON to `Accept: application/json`.
import express, { type NextFunction, type Request, type Response } from "express";

import {
  BuyerLimitError,
  ConnectionError,
  FlashsaleClient,
  InvalidError,
  InvalidStateError,
  NotFoundError,
  ProblemError,
  RequestTimeoutError,
  SaleNotOpenError,
  SoldOutError,
  UnavailableError,
  type Reservation,
} from "@flashsale/client";

import { CartStore } from "./cart.js";
import { PaymentSimulator } from "./payment.js";
import * as views from "./views.js";

/** What the storefront needs. */
export interface StorefrontOptions {
  /** A client with the storefront token. */
  client: FlashsaleClient;
  /** The payment provider (simulated). */
  payments?: PaymentSimulator;
  /** How long checkout holds the items, in s (each SKU's `reservation_ttl_s` must allow it). */
  holdTtlS?: number;
  /** Most carts kept in memory. */
  maxCarts?: number;
}

/** A cart line with its SKU's name and price. */
export interface PricedLine {
  sku: string;
  name: string;
  qty: number;
  unit_price_cents: number;
  line_total_cents: number;
}

/** A cart with prices, as the cart page shows it. */
export interface PricedCart {
  lines: PricedLine[];
  total_cents: number;
}

/** Buyer ids as the API takes them. */
const BUYER = /^[\x21-\x7e]{1,128}$/;

/** The Express app. */
export function createStorefront(options: StorefrontOptions): express.Express {
  const { client } = options;
  const payments = options.payments ?? new PaymentSimulator();
  const holdTtlS = options.holdTtlS ?? 600;
  const carts = new CartStore(options.maxCarts);
  const app = express();
  app.disable("x-powered-by");
  app.use(express.urlencoded({ extended: false, limit: "8kb" }));
  app.use(express.json({ limit: "8kb" }));

  app.get("/", async (req, res) => {
    const page = await client.skus.list({ limit: 100 });
    reply(req, res, 200, { skus: page.items }, () => views.catalogPage(buyerOf(req), page.items));
  });

  app.post("/login", (req, res) => {
    const buyer = String(req.body?.buyer ?? "");
    if (!BUYER.test(buyer)) throw new HttpError(422, "bad-buyer", "a buyer id is 1..128 printable characters, no spaces");
    res.cookie("buyer", buyer, { httpOnly: true, sameSite: "lax", path: "/" });
    seeOther(req, res, "/", { buyer });
  });

  app.post("/logout", (req, res) => {
    res.clearCookie("buyer", { path: "/" });
    seeOther(req, res, "/", {});
  });

  app.get("/cart", async (req, res) => {
    const buyer = mustBuyer(req);
    const cart = await price(client, carts.get(buyer).lines);
    reply(req, res, 200, cart, () => views.cartPage(buyer, cart));
  });

  app.post("/cart/lines", async (req, res) => {
    const buyer = mustBuyer(req);
    const sku = String(req.body?.sku ?? "");
    const qty = Number(req.body?.qty ?? 1);
    if (!Number.isSafeInteger(qty) || qty < 0 || qty > 1_000_000) {
      throw new HttpError(422, "bad-qty", "qty is a whole number from 0 (remove) to 1000000");
    }
    await client.skus.get(sku); // an unknown SKU is a 404 here, not at checkout
    try {
      carts.setQty(buyer, sku, qty);
    } catch (e) {
      if (e instanceof RangeError) throw new HttpError(422, "cart-full", e.message);
      throw e;
    }
    const cart = await price(client, carts.get(buyer).lines);
    seeOther(req, res, "/cart", cart);
  });

  // Checkout: the whole cart as one reservation, all lines or none, held for holdTtlS.
  app.post("/checkout", async (req, res) => {
    const buyer = mustBuyer(req);
    const cart = carts.get(buyer);
    if (cart.lines.length === 0) throw new HttpError(422, "empty-cart", "the cart is empty");
    const reservation = await client.reservations.create(
      { buyer, lines: cart.lines, ttl_s: holdTtlS },
      { idempotencyKey: cart.checkoutKey },
    );
    seeOther(req, res, `/checkout/${reservation.id}`, { reservation }, 201);
  });

  app.get("/checkout/:id", async (req, res) => {
    const buyer = mustBuyer(req);
    const reservation = await ownReservation(client, buyer, req.params.id!);
    reply(req, res, 200, { reservation }, () => views.paymentPage(buyer, reservation));
  });

  // The payment page takes longer: hold the items for another holdTtlS from now.
  app.post("/checkout/:id/extend", async (req, res) => {
    const buyer = mustBuyer(req);
    const { id } = await ownReservation(client, buyer, req.params.id!);
    const reservation = await client.reservations.extend(id, holdTtlS);
    seeOther(req, res, `/checkout/${id}`, { reservation });
  });

  app.post("/checkout/:id/cancel", async (req, res) => {
    const buyer = mustBuyer(req);
    const { id } = await ownReservation(client, buyer, req.params.id!);
    const reservation = await client.reservations.cancel(id);
    seeOther(req, res, "/cart", { reservation });
  });

  // Pay, then confirm (the order is made) or, if the payment fails, cancel (the stock returns).
  app.post("/checkout/:id/pay", async (req, res) => {
    const buyer = mustBuyer(req);
    const held = await ownReservation(client, buyer, req.params.id!);
    if (held.status !== "held") {
      throw new HttpError(409, "not-held", `reservation ${held.id} is ${held.status}`, { reservation: held });
    }
    const charge = await payments.charge(held.id, held.total_cents, String(req.body?.card ?? ""));
    if (charge.status === "declined") {
      const reservation = await client.reservations.cancel(held.id);
      throw new HttpError(402, "payment-declined", `${charge.reason}; your items were released`, { reservation });
    }
    let reservation: Reservation;
    try {
      reservation = await client.reservations.confirm(held.id, charge.paymentRef);
    } catch (e) {
      if (e instanceof InvalidStateError) {
        // The hold ended while paying: nothing was sold, so the money goes back.
        await payments.refund(charge.paymentRef);
        throw new HttpError(409, "hold-expired", "your hold ended before the payment; you were refunded", {
          payment_ref: charge.paymentRef,
          refunded: true,
        });
      }
      throw e;
    }
    carts.clear(buyer);
    seeOther(req, res, `/orders/${reservation.order_id}`, { reservation, order_id: reservation.order_id });
  });

  // "My orders": the API's list of the buyer's orders, newest first, a page at a time.
  app.get("/orders", async (req, res) => {
    const buyer = mustBuyer(req);
    const cursor = typeof req.query.cursor === "string" && req.query.cursor ? req.query.cursor : undefined;
    const page = await client.orders.list({ buyer, limit: 20, cursor });
    reply(req, res, 200, { orders: page.items, next_cursor: page.next_cursor }, () =>
      views.ordersPage(buyer, page.items, page.next_cursor),
    );
  });

  app.get("/orders/:id", async (req, res) => {
    const buyer = mustBuyer(req);
    const order = await client.orders.get(req.params.id!);
    if (order.buyer !== buyer) throw new HttpError(404, "not-found", "no such order");
    reply(req, res, 200, { order }, () => views.orderPage(buyer, order));
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toHttpError(err);
    if (e.status >= 500) console.error("storefront:", err);
    reply(req, res, e.status, { error: e.code, detail: e.message, ...e.extra }, () =>
      views.errorPage(buyerOf(req), e.code, e.message),
    );
  });
  return app;
}

/** An error answer of the storefront: status, a stable code, a message for the buyer. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** What the buyer is told for an error of the API (the client's typed errors). */
function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof SoldOutError) {
    return new HttpError(409, "sold-out", `only ${err.available ?? 0} left of ${err.sku}`, {
      sku: err.sku,
      available: err.available,
    });
  }
  if (err instanceof BuyerLimitError) {
    return new HttpError(409, "buyer-limit", `at most ${err.limit} of ${err.sku} per buyer`, { sku: err.sku, limit: err.limit });
  }
  if (err instanceof SaleNotOpenError) return new HttpError(403, "sale-not-open", `${err.sku} is not on sale now`);
  if (err instanceof NotFoundError) return new HttpError(404, "not-found", err.detail);
  if (err instanceof InvalidStateError) return new HttpError(409, "invalid-state", err.detail);
  if (err instanceof InvalidError) return new HttpError(422, "invalid", err.detail, { limit: err.limit, limit_name: err.limitName });
  if (err instanceof UnavailableError || err instanceof ConnectionError || err instanceof RequestTimeoutError) {
    return new HttpError(503, "try-again", "the shop is busy; please try again");
  }
  if (err instanceof ProblemError) return new HttpError(502, err.typeSuffix, err.message);
  return new HttpError(500, "internal", "something went wrong");
}

/** The signed-in buyer (the `buyer` cookie: a demo login without password). */
function buyerOf(req: Request): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [k, v] = part.trim().split("=", 2);
    if (k === "buyer" && v) {
      const buyer = decodeURIComponent(v);
      if (BUYER.test(buyer)) return buyer;
    }
  }
  return undefined;
}

/** The signed-in buyer, or a 401. */
function mustBuyer(req: Request): string {
  const buyer = buyerOf(req);
  if (!buyer) throw new HttpError(401, "sign-in", "sign in first");
  return buyer;
}

/** The buyer's own reservation (another buyer's looks unknown). */
async function ownReservation(client: FlashsaleClient, buyer: string, id: string): Promise<Reservation> {
  const r = await client.reservations.get(id);
  if (r.buyer !== buyer) throw new HttpError(404, "not-found", "no such reservation");
  return r;
}

/** The cart's lines with current names and prices. */
async function price(client: FlashsaleClient, lines: { sku: string; qty: number }[]): Promise<PricedCart> {
  const priced = await Promise.all(
    lines.map(async ({ sku, qty }) => {
      const s = await client.skus.get(sku);
      return { sku, name: s.name, qty, unit_price_cents: s.price_cents, line_total_cents: s.price_cents * qty };
    }),
  );
  return { lines: priced, total_cents: priced.reduce((t, l) => t + l.line_total_cents, 0) };
}

/** Whether the caller asked for JSON. */
function wantsJson(req: Request): boolean {
  return req.accepts(["html", "json"]) === "json";
}

/** Answers JSON or HTML. */
function reply(req: Request, res: Response, status: number, json: unknown, html: () => string): void {
  if (wantsJson(req)) res.status(status).json(json);
  else res.status(status).type("html").send(html());
}

/** After a form post: 303 to `location` for a browser, `status` with JSON for an API caller. */
function seeOther(req: Request, res: Response, location: string, json: unknown, status = 200): void {
  if (wantsJson(req)) res.status(status).location(location).json(json);
  else res.redirect(303, location);
}
