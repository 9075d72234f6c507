// The client against a real `flashsale serve`: SKUs, reservations, orders, typed problems.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  FlashsaleClient,
  InvalidError,
  InvalidStateError,
  NotFoundError,
  ProblemError,
  SoldOutError,
  UnauthenticatedError,
  BuyerLimitError,
  IdempotencyMismatchError,
  newIdempotencyKey,
} from "@flashsale/client";
import { ADMIN, SHOP, Server } from "./support/server.js";

let server: Server;
let admin: FlashsaleClient;
let shop: FlashsaleClient;

before(async () => {
  server = await Server.start();
  admin = new FlashsaleClient({ baseUrl: server.url, token: ADMIN });
  shop = new FlashsaleClient({ baseUrl: server.url, token: SHOP });
});

after(async () => {
  assert.equal(await server.stop(), 0, "the server drains and exits 0");
});

describe("skus", () => {
  it("put creates then replaces; get and list read it back", async () => {
    const first = await admin.skus.put("c-tee", { name: "Tee", price_cents: 1999, stock: 10 });
    assert.equal(first.created, true);
    assert.equal(first.sku.available, 10);
    const second = await admin.skus.put("c-tee", { name: "Tee shirt", price_cents: 2099, stock: 12 });
    assert.equal(second.created, false);
    assert.equal(second.sku.name, "Tee shirt");
    const read = await shop.skus.get("c-tee");
    assert.deepEqual(
      { price_cents: read.price_cents, total: read.total, available: read.available },
      { price_cents: 2099, total: 12, available: 12 },
    );
    const restocked = await admin.skus.restock("c-tee", 3);
    assert.equal(restocked.total, 15);
  });

  it("listAll follows the cursors over several pages", async () => {
    for (let i = 0; i < 5; i++) {
      await admin.skus.put(`c-page-${i}`, { name: `Page ${i}`, price_cents: 100, stock: 1 });
    }
    const ids: string[] = [];
    for await (const sku of shop.skus.listAll({ limit: 2 })) ids.push(sku.sku);
    for (let i = 0; i < 5; i++) assert.ok(ids.includes(`c-page-${i}`), `c-page-${i} listed`);
    assert.equal(new Set(ids).size, ids.length, "no SKU twice");
    assert.deepEqual(ids, [...ids].sort(), "ordered by id");
  });

  it("an unknown SKU is a NotFoundError naming it", async () => {
    await assert.rejects(shop.skus.get("c-nope"), (e: unknown) => {
      assert.ok(e instanceof NotFoundError);
      assert.ok(e instanceof ProblemError);
      assert.equal(e.status, 404);
      assert.equal(e.type, "https://flashsale.dev/problems/not-found");
      assert.equal(e.typeSuffix, "not-found");
      return true;
    });
  });

  it("a storefront token may not put a SKU; a bad token is unauthenticated", async () => {
    await assert.rejects(shop.skus.put("c-x", { name: "X", price_cents: 1, stock: 1 }), (e: unknown) => {
      assert.ok(e instanceof ProblemError);
      assert.equal(e.typeSuffix, "forbidden");
      return true;
    });
    const stranger = new FlashsaleClient({ baseUrl: server.url, token: "wrong" });
    await assert.rejects(stranger.skus.get("c-tee"), UnauthenticatedError);
  });
});

describe("reservations and orders", () => {
  it("hold, confirm, then read the order", async () => {
    await admin.skus.put("c-mug", { name: "Mug", price_cents: 850, stock: 5 });
    await admin.skus.put("c-cap", { name: "Cap", price_cents: 1200, stock: 5 });
    const held = await shop.reservations.create({
      buyer: "alice",
      lines: [
        { sku: "c-mug", qty: 2 },
        { sku: "c-cap", qty: 1 },
      ],
    });
    assert.equal(held.status, "held");
    assert.equal(held.total_cents, 2 * 850 + 1200);
    assert.equal((await shop.skus.get("c-mug")).reserved, 2);

    const confirmed = await shop.reservations.confirm(held.id, "pay_c1");
    assert.equal(confirmed.status, "confirmed");
    assert.ok(confirmed.order_id);
    const again = await shop.reservations.confirm(held.id, "pay_c1");
    assert.equal(again.order_id, confirmed.order_id, "confirming again with the same payment_ref is the same order");

    const order = await shop.orders.get(confirmed.order_id!);
    assert.equal(order.reservation_id, held.id);
    assert.equal(order.buyer, "alice");
    assert.equal(order.payment_ref, "pay_c1");
    assert.equal(order.total_cents, held.total_cents);
    assert.equal((await shop.skus.get("c-mug")).sold, 2);
  });

  it("cancel releases the hold; cancelling again is a no-op; confirm after it is InvalidStateError", async () => {
    await admin.skus.put("c-pen", { name: "Pen", price_cents: 150, stock: 3 });
    const held = await shop.reservations.create({ buyer: "bob", lines: [{ sku: "c-pen", qty: 3 }] });
    const released = await shop.reservations.cancel(held.id);
    assert.equal(released.status, "released");
    assert.equal(released.release_reason, "cancelled");
    assert.equal((await shop.reservations.cancel(held.id)).status, "released");
    assert.equal((await shop.skus.get("c-pen")).available, 3);
    await assert.rejects(shop.reservations.confirm(held.id, "pay_late"), (e: unknown) => {
      assert.ok(e instanceof InvalidStateError);
      assert.equal(e.status, 409);
      assert.equal(e.id, held.id);
      assert.equal(e.reservationStatus, "released");
      return true;
    });
  });

  it("sold out is a SoldOutError naming the SKU and what is left", async () => {
    await admin.skus.put("c-rare", { name: "Rare", price_cents: 99900, stock: 2 });
    await shop.reservations.create({ buyer: "carol", lines: [{ sku: "c-rare", qty: 1 }] });
    await assert.rejects(
      shop.reservations.create({ buyer: "dave", lines: [{ sku: "c-rare", qty: 2 }] }),
      (e: unknown) => {
        assert.ok(e instanceof SoldOutError, `got ${String(e)}`);
        assert.equal(e.status, 409);
        assert.equal(e.sku, "c-rare");
        assert.equal(e.available, 1);
        assert.match(e.message, /Sold out/i);
        return true;
      },
    );
  });

  it("the same Idempotency-Key returns the same reservation; with another body it is a mismatch", async () => {
    await admin.skus.put("c-idem", { name: "Idem", price_cents: 500, stock: 10 });
    const key = newIdempotencyKey();
    const body = { buyer: "erin", lines: [{ sku: "c-idem", qty: 2 }] };
    const first = await shop.reservations.create(body, { idempotencyKey: key });
    const second = await shop.reservations.create(body, { idempotencyKey: key });
    assert.equal(second.id, first.id);
    assert.equal((await shop.skus.get("c-idem")).reserved, 2, "held once");
    await assert.rejects(
      shop.reservations.create({ ...body, lines: [{ sku: "c-idem", qty: 3 }] }, { idempotencyKey: key }),
      IdempotencyMismatchError,
    );
    const other = await shop.reservations.create(body);
    assert.notEqual(other.id, first.id, "a fresh key per call without one");
  });

  it("the per-buyer limit is a BuyerLimitError; an empty cart is an InvalidError", async () => {
    await admin.skus.put("c-lim", { name: "Limited", price_cents: 100, stock: 10, per_buyer_limit: 1 });
    await shop.reservations.create({ buyer: "frank", lines: [{ sku: "c-lim", qty: 1 }] });
    await assert.rejects(
      shop.reservations.create({ buyer: "frank", lines: [{ sku: "c-lim", qty: 1 }] }),
      (e: unknown) => {
        assert.ok(e instanceof BuyerLimitError);
        assert.equal(e.sku, "c-lim");
        assert.equal(e.limit, 1);
        assert.equal(e.already, 1);
        return true;
      },
    );
    await assert.rejects(shop.reservations.create({ buyer: "frank", lines: [] }), (e: unknown) => {
      assert.ok(e instanceof InvalidError);
      assert.equal(e.status, 422);
      return true;
    });
  });

  it("an unknown reservation or order is a NotFoundError", async () => {
    await assert.rejects(shop.reservations.get("res_0000000000000000"), NotFoundError);
    await assert.rejects(shop.orders.get("ord_0000000000000000"), NotFoundError);
  });
});
