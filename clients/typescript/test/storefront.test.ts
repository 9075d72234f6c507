// The example storefront end to end against a real `flashsale serve`: cart, checkout as one
// multi-line reservation held 10 minutes, extension, simulated payment, confirm or cancel,
// "my orders".
import assert from "node:assert/strict";
import type { Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import { FlashsaleClient, type Order, type Reservation } from "@flashsale/client";
import { createStorefront } from "../examples/storefront/app.js";
import { DECLINED_CARD } from "../examples/storefront/payment.js";
import { ADMIN, SHOP, Server } from "./support/server.js";

let server: Server;
let admin: FlashsaleClient;
let shop: HttpServer;
let shopUrl: string;

before(async () => {
  server = await Server.start();
  admin = new FlashsaleClient({ baseUrl: server.url, token: ADMIN });
  await admin.skus.put("s-tee", { name: "Tee shirt", price_cents: 1999, stock: 5, reservation_ttl_s: 900 });
  await admin.skus.put("s-mug", { name: "Mug", price_cents: 850, stock: 5, reservation_ttl_s: 900 });
  await admin.skus.put("s-flash", { name: "Flash deal", price_cents: 100, stock: 5, reservation_ttl_s: 60 });
  const client = new FlashsaleClient({ baseUrl: server.url, token: SHOP });
  shop = createStorefront({ client }).listen(0, "127.0.0.1");
  await new Promise((r) => shop.once("listening", r));
  shopUrl = `http://127.0.0.1:${(shop.address() as AddressInfo).port}`;
});

after(async () => {
  shop.closeAllConnections();
  await new Promise((r) => shop.close(r));
  assert.equal(await server.stop(), 0);
});

/** A JSON call to the storefront as `buyer`. */
async function call(
  buyer: string,
  method: string,
  path: string,
  body?: Record<string, unknown>,
): Promise<{ status: number; json: any }> {
  const res = await fetch(shopUrl + path, {
    method,
    headers: {
      accept: "application/json",
      cookie: `buyer=${buyer}`,
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: await res.json() };
}

describe("storefront checkout", () => {
  let reservation: Reservation;

  it("a two-line cart checks out as one reservation held for 10 minutes", async () => {
    assert.equal((await call("alice", "POST", "/cart/lines", { sku: "s-tee", qty: 2 })).status, 200);
    const cart = await call("alice", "POST", "/cart/lines", { sku: "s-mug", qty: 1 });
    assert.equal(cart.json.total_cents, 2 * 1999 + 850);

    const checkout = await call("alice", "POST", "/checkout");
    assert.equal(checkout.status, 201, JSON.stringify(checkout.json));
    reservation = checkout.json.reservation;
    assert.equal(reservation.status, "held");
    assert.equal(reservation.buyer, "alice");
    assert.deepEqual(reservation.lines.map((l) => [l.sku, l.qty]).sort(), [["s-mug", 1], ["s-tee", 2]]);
    const holdS = (Date.parse(reservation.expires_at) - Date.parse(reservation.created_at)) / 1000;
    assert.ok(Math.abs(holdS - 600) <= 1, `held ${holdS} s`);

    const again = await call("alice", "POST", "/checkout");
    assert.equal(again.json.reservation.id, reservation.id, "a double-clicked checkout holds once");
    assert.equal((await admin.skus.get("s-tee")).reserved, 2);
  });

  it("the payment page shows the hold, and may extend it", async () => {
    const page = await call("alice", "GET", `/checkout/${reservation.id}`);
    assert.equal(page.json.reservation.expires_at, reservation.expires_at);
    const extended = await call("alice", "POST", `/checkout/${reservation.id}/extend`);
    assert.equal(extended.status, 200, JSON.stringify(extended.json));
    assert.equal(extended.json.reservation.extensions, 1);
    assert.ok(extended.json.reservation.expires_at >= reservation.expires_at);
    assert.equal((await call("mallory", "GET", `/checkout/${reservation.id}`)).status, 404, "not another buyer's");
  });

  it("an approved payment confirms: the order is in 'my orders' and the stock is sold", async () => {
    const paid = await call("alice", "POST", `/checkout/${reservation.id}/pay`, { card: "4242 4242 4242 4242" });
    assert.equal(paid.status, 200, JSON.stringify(paid.json));
    const orderId: string = paid.json.order_id;
    assert.match(orderId, /^ord_/);
    assert.equal(paid.json.reservation.status, "confirmed");

    const mine = await call("alice", "GET", "/orders");
    const orders: Order[] = mine.json.orders;
    assert.deepEqual(orders.map((o) => o.id), [orderId]);
    assert.equal(orders[0]!.total_cents, 2 * 1999 + 850);
    assert.deepEqual((await call("bob", "GET", "/orders")).json.orders, [], "bob has none");
    assert.equal((await call("alice", "GET", `/orders/${orderId}`)).json.order.reservation_id, reservation.id);
    assert.equal((await call("alice", "GET", "/cart")).json.lines.length, 0, "the cart is emptied");
    const tee = await admin.skus.get("s-tee");
    assert.deepEqual([tee.sold, tee.reserved, tee.available], [2, 0, 3]);
  });

  it("a declined payment cancels: the hold is released and the stock returns", async () => {
    await call("bob", "POST", "/cart/lines", { sku: "s-mug", qty: 2 });
    const checkout = await call("bob", "POST", "/checkout");
    assert.equal(checkout.status, 201);
    assert.equal((await admin.skus.get("s-mug")).reserved, 2);
    const paid = await call("bob", "POST", `/checkout/${checkout.json.reservation.id}/pay`, { card: DECLINED_CARD });
    assert.equal(paid.status, 402);
    assert.equal(paid.json.error, "payment-declined");
    assert.equal(paid.json.reservation.status, "released");
    const mug = await admin.skus.get("s-mug");
    assert.deepEqual([mug.reserved, mug.available], [0, 4]);
  });

  it("sold out is told with what is left; a SKU whose hold is shorter than 10 minutes is refused", async () => {
    await call("carol", "POST", "/cart/lines", { sku: "s-tee", qty: 5 });
    const soldOut = await call("carol", "POST", "/checkout");
    assert.equal(soldOut.status, 409);
    assert.deepEqual([soldOut.json.error, soldOut.json.sku, soldOut.json.available], ["sold-out", "s-tee", 3]);

    await call("dora", "POST", "/cart/lines", { sku: "s-flash", qty: 1 });
    const short = await call("dora", "POST", "/checkout");
    assert.equal(short.status, 422, JSON.stringify(short.json));
    assert.equal(short.json.limit, 60);
    assert.equal((await admin.skus.get("s-flash")).reserved, 0);
  });

  it("the pages render as HTML", async () => {
    const res = await fetch(`${shopUrl}/orders`, { headers: { cookie: "buyer=alice", accept: "text/html" } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/html/);
    const html = await res.text();
    assert.match(html, /My orders/);
    assert.match(html, /ord_[0-9a-f]{16}/);
    const catalog = await (await fetch(shopUrl, { headers: { accept: "text/html" } })).text();
    assert.match(catalog, /Tee shirt/);
  });
});
