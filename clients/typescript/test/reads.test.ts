// Storefront reads and holds through the client, against a real `flashsale serve`: a buyer's
// reservations and orders page by page, `ttl_s`, extensions and their limits, buyer JWTs.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, it } from "node:test";

import {
  FlashsaleClient,
  ForbiddenError,
  InvalidError,
  InvalidStateError,
  type Reservation,
} from "@flashsale/client";
import { ADMIN, SHOP, Server } from "./support/server.js";

/** The HS256 secret the server is started with (≥ 32 bytes). */
const JWT_SECRET = "ts-client-test-jwt-secret-0123456789abcdef";

let server: Server;
let admin: FlashsaleClient;
let shop: FlashsaleClient;

before(async () => {
  server = await Server.start(["--jwt-secret", JWT_SECRET]);
  admin = new FlashsaleClient({ baseUrl: server.url, token: ADMIN });
  shop = new FlashsaleClient({ baseUrl: server.url, token: SHOP });
  await admin.skus.put("l-a", { name: "A", price_cents: 300, stock: 100, reservation_ttl_s: 600 });
  await admin.skus.put("l-b", { name: "B", price_cents: 700, stock: 100, reservation_ttl_s: 120 });
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

/** A buyer JWT (HS256) for `sub`, valid for an hour. */
function buyerJwt(sub: string): string {
  const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${head}.${createHmac("sha256", JWT_SECRET).update(head).digest("base64url")}`;
}

describe("lists", () => {
  it("a buyer's reservations, newest first, filtered, every page once", async () => {
    const made: Reservation[] = [];
    for (let i = 0; i < 5; i++) {
      made.push(await shop.reservations.create({ buyer: "lena", lines: [{ sku: i % 2 ? "l-b" : "l-a", qty: 1 }] }));
    }
    await shop.reservations.create({ buyer: "otto", lines: [{ sku: "l-a", qty: 1 }] });
    await shop.reservations.cancel(made[0]!.id);

    const all: string[] = [];
    for await (const r of shop.reservations.listAll({ buyer: "lena", limit: 2 })) all.push(r.id);
    assert.deepEqual(all, made.map((r) => r.id).reverse(), "newest first, each once, only lena's");

    const firstPage = await shop.reservations.list({ buyer: "lena", limit: 2 });
    assert.ok(firstPage.items.length <= 2);
    assert.notEqual(firstPage.next_cursor, null);

    const held: string[] = [];
    for await (const r of shop.reservations.listAll({ buyer: "lena", status: "held" })) held.push(r.id);
    assert.deepEqual(held.sort(), made.slice(1).map((r) => r.id).sort());

    const withB: string[] = [];
    for await (const r of shop.reservations.listAll({ buyer: "lena", sku: "l-b" })) withB.push(r.id);
    assert.deepEqual(withB.sort(), [made[1]!.id, made[3]!.id].sort());
  });

  it("a buyer's orders, newest first", async () => {
    const a = await shop.reservations.create({ buyer: "ivy", lines: [{ sku: "l-a", qty: 2 }, { sku: "l-b", qty: 1 }] });
    const b = await shop.reservations.create({ buyer: "ivy", lines: [{ sku: "l-a", qty: 1 }] });
    const oa = (await shop.reservations.confirm(a.id, "pay_ivy_1")).order_id!;
    const ob = (await shop.reservations.confirm(b.id, "pay_ivy_2")).order_id!;
    const ids: string[] = [];
    for await (const o of shop.orders.listAll({ buyer: "ivy", limit: 1 })) ids.push(o.id);
    assert.deepEqual(ids, [ob, oa]);
    const page = await shop.orders.list({ buyer: "ivy" });
    assert.equal(page.items.find((o) => o.id === oa)?.total_cents, 2 * 300 + 700);
    assert.deepEqual((await shop.orders.list({ buyer: "nobody" })).items, []);
  });

  it("a buyer JWT lists its own, and is forbidden another buyer's", async () => {
    await shop.reservations.create({ buyer: "jo", lines: [{ sku: "l-a", qty: 1 }] });
    const jo = new FlashsaleClient({ baseUrl: server.url, token: buyerJwt("jo") });
    const mine = await jo.reservations.list({});
    assert.ok(mine.items.length >= 1);
    assert.ok(mine.items.every((r) => r.buyer === "jo"));
    await assert.rejects(jo.reservations.list({ buyer: "lena" }), ForbiddenError);
    await assert.rejects(jo.orders.list({ buyer: "lena" }), ForbiddenError);
  });
});

describe("holds", () => {
  it("ttl_s sets the hold; above the SKU's reservation_ttl_s is an InvalidError naming the limit", async () => {
    const r = await shop.reservations.create({ buyer: "kim", lines: [{ sku: "l-a", qty: 1 }], ttl_s: 30 });
    const holdS = (Date.parse(r.expires_at) - Date.parse(r.created_at)) / 1000;
    assert.ok(Math.abs(holdS - 30) <= 1, `held ${holdS} s`);
    // The cart rule: the shortest hold of the lines (l-b allows 120 s).
    await assert.rejects(
      shop.reservations.create({ buyer: "kim", lines: [{ sku: "l-a", qty: 1 }, { sku: "l-b", qty: 1 }], ttl_s: 600 }),
      (e: unknown) => {
        assert.ok(e instanceof InvalidError, String(e));
        assert.equal(e.status, 422);
        assert.equal(e.sku, "l-b");
        assert.equal(e.limit, 120);
        return true;
      },
    );
  });

  it("extend moves the hold, up to max_extensions; not once it is confirmed", async () => {
    await admin.skus.put("l-ext", { name: "E", price_cents: 100, stock: 10, reservation_ttl_s: 600, max_extensions: 2 });
    const r = await shop.reservations.create({ buyer: "lou", lines: [{ sku: "l-ext", qty: 1 }], ttl_s: 60 });
    const once = await shop.reservations.extend(r.id, 300);
    assert.equal(once.extensions, 1);
    assert.ok(Date.parse(once.expires_at) >= Date.parse(r.created_at) + 299_000);
    assert.equal((await shop.reservations.extend(r.id, 300)).extensions, 2);
    await assert.rejects(shop.reservations.extend(r.id, 300), (e: unknown) => {
      assert.ok(e instanceof InvalidError, String(e));
      assert.equal(e.limitName, "max_extensions");
      assert.equal(e.limit, 2);
      return true;
    });
    await shop.reservations.confirm(r.id, "pay_lou");
    await assert.rejects(shop.reservations.extend(r.id, 300), (e: unknown) => {
      assert.ok(e instanceof InvalidStateError);
      assert.equal(e.reservationStatus, "confirmed");
      return true;
    });
  });
});
