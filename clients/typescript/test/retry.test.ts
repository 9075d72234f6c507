// Retries through a fault-injecting proxy in front of a real `flashsale serve`: 503s, lost
// answers, late answers, Retry-After, and writes that must not be sent twice.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";

import {
  ConnectionError,
  FlashsaleClient,
  ProblemError,
  RequestTimeoutError,
  UnavailableError,
  type RetryInfo,
} from "@flashsale/client";
import { FaultProxy } from "./support/proxy.js";
import { ADMIN, SHOP, Server } from "./support/server.js";

const UNAVAILABLE = {
  type: "https://flashsale.dev/problems/unavailable",
  title: "Unavailable",
  status: 503,
  detail: "injected by the test proxy",
};

let server: Server;
let proxy: FaultProxy;
let admin: FlashsaleClient;
let retries: RetryInfo[];

/** A storefront client through the proxy, with short delays so the tests stay fast. */
function shop(timeoutMs = 5000): FlashsaleClient {
  return new FlashsaleClient({
    baseUrl: proxy.url,
    token: SHOP,
    timeoutMs,
    retry: { baseDelayMs: 10, maxDelayMs: 50 },
    onRetry: (info) => retries.push(info),
  });
}

before(async () => {
  server = await Server.start();
  proxy = await FaultProxy.start(server.url);
  admin = new FlashsaleClient({ baseUrl: server.url, token: ADMIN });
});

after(async () => {
  await proxy.stop();
  assert.equal(await server.stop(), 0);
});

beforeEach(() => {
  proxy.seen.length = 0;
  proxy.plan = () => ({ kind: "forward" });
  retries = [];
});

describe("writes retry with their Idempotency-Key", () => {
  it("a 503 first, then the reservation: one hold, the same key on both attempts", async () => {
    await admin.skus.put("r-503", { name: "R", price_cents: 100, stock: 5 });
    proxy.plan = (i) => (i === 0 ? { kind: "answer", status: 503, body: UNAVAILABLE } : { kind: "forward" });
    const res = await shop().reservations.create({ buyer: "ann", lines: [{ sku: "r-503", qty: 2 }] });
    assert.equal(res.status, "held");
    assert.equal(proxy.seen.length, 2);
    const [a, b] = proxy.seen;
    assert.ok(a!.idempotencyKey, "the first attempt carries a key");
    assert.equal(b!.idempotencyKey, a!.idempotencyKey, "the retry carries the same key");
    assert.equal(b!.body, a!.body);
    assert.equal(retries.length, 1);
    assert.ok(retries[0]!.error instanceof UnavailableError);
    assert.equal((await admin.skus.get("r-503")).reserved, 2);
  });

  it("an answer lost after the server held: the retry returns the same reservation, held once", async () => {
    await admin.skus.put("r-lost", { name: "R", price_cents: 100, stock: 5 });
    proxy.plan = (i) => (i === 0 ? { kind: "drop-after-forward" } : { kind: "forward" });
    const res = await shop().reservations.create({ buyer: "ben", lines: [{ sku: "r-lost", qty: 3 }] });
    assert.equal(proxy.seen.length, 2);
    assert.ok(retries[0]!.error instanceof ConnectionError, `first failure: ${String(retries[0]?.error)}`);
    const sku = await admin.skus.get("r-lost");
    assert.equal(sku.reserved, 3, "not held twice");
    assert.equal((await admin.reservations.get(res.id)).status, "held");
  });

  it("an answer later than the timeout: the retry returns the same reservation, held once", async () => {
    await admin.skus.put("r-slow", { name: "R", price_cents: 100, stock: 5 });
    proxy.plan = (i) => (i === 0 ? { kind: "delay-after-forward", delayMs: 1500 } : { kind: "forward" });
    const res = await shop(300).reservations.create({ buyer: "cat", lines: [{ sku: "r-slow", qty: 1 }] });
    assert.ok(retries[0]!.error instanceof RequestTimeoutError);
    assert.equal(proxy.seen[1]!.idempotencyKey, proxy.seen[0]!.idempotencyKey);
    assert.equal((await admin.skus.get("r-slow")).reserved, 1);
    assert.match(res.id, /^res_/);
  });

  it("confirm and cancel retry after a lost answer and give the outcome of the first", async () => {
    await admin.skus.put("r-conf", { name: "R", price_cents: 100, stock: 5 });
    const client = shop();
    const a = await client.reservations.create({ buyer: "dan", lines: [{ sku: "r-conf", qty: 1 }] });
    const b = await client.reservations.create({ buyer: "dan", lines: [{ sku: "r-conf", qty: 1 }] });
    proxy.seen.length = 0;
    proxy.plan = (i) => (i === 0 ? { kind: "drop-after-forward" } : { kind: "forward" });
    const confirmed = await client.reservations.confirm(a.id, "pay_r1");
    assert.equal(confirmed.status, "confirmed");
    assert.equal(proxy.seen.length, 2);
    proxy.seen.length = 0;
    const released = await client.reservations.cancel(b.id);
    assert.equal(released.status, "released");
    assert.equal(proxy.seen.length, 2);
    const sku = await admin.skus.get("r-conf");
    assert.deepEqual([sku.sold, sku.reserved, sku.available], [1, 0, 4]);
  });

  it("a restock whose answer was lost is sent again with its key and applied once; also after a 503", async () => {
    await admin.skus.put("r-restock", { name: "R", price_cents: 100, stock: 5 });
    const viaProxy = new FlashsaleClient({
      baseUrl: proxy.url,
      token: ADMIN,
      retry: { baseDelayMs: 10, maxDelayMs: 50 },
    });
    proxy.plan = (i) => (i === 0 ? { kind: "drop-after-forward" } : { kind: "forward" });
    assert.equal((await viaProxy.skus.restock("r-restock", 10)).total, 15);
    assert.equal(proxy.seen.length, 2, "retried");
    assert.equal(proxy.seen[1]!.idempotencyKey, proxy.seen[0]!.idempotencyKey);
    assert.equal((await admin.skus.get("r-restock")).total, 15, "applied once");

    proxy.seen.length = 0;
    proxy.plan = (i) => (i === 0 ? { kind: "answer", status: 503, body: UNAVAILABLE } : { kind: "forward" });
    assert.equal((await viaProxy.skus.restock("r-restock", 10)).total, 25);
    assert.equal(proxy.seen.length, 2);
  });

  it("an extension whose answer was lost or late is sent again with its key and counted once", async () => {
    await admin.skus.put("r-ext", { name: "R", price_cents: 100, stock: 5 });
    const res = await shop().reservations.create({ buyer: "eve", lines: [{ sku: "r-ext", qty: 1 }] });
    proxy.seen.length = 0;
    proxy.plan = (i) => (i === 0 ? { kind: "drop-after-forward" } : { kind: "forward" });
    const once = await shop().reservations.extend(res.id, 900);
    assert.equal(proxy.seen.length, 2, "retried");
    assert.equal(proxy.seen[1]!.idempotencyKey, proxy.seen[0]!.idempotencyKey);
    assert.equal(once.extensions, 1);
    proxy.seen.length = 0;
    proxy.plan = (i) => (i === 0 ? { kind: "delay-after-forward", delayMs: 1500 } : { kind: "forward" });
    const twice = await shop(300).reservations.extend(res.id, 1200);
    assert.equal(proxy.seen.length, 2, "retried after the timeout");
    assert.equal(twice.extensions, 2);
    assert.equal((await admin.reservations.get(res.id)).extensions, 2, "each extension counted once");
  });

  it("gives up after maxAttempts and throws the last error", async () => {
    proxy.plan = () => ({ kind: "answer", status: 503, body: UNAVAILABLE });
    const client = new FlashsaleClient({
      baseUrl: proxy.url,
      token: SHOP,
      retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
    });
    await assert.rejects(client.reservations.create({ buyer: "eve", lines: [{ sku: "x", qty: 1 }] }), UnavailableError);
    assert.equal(proxy.seen.length, 3);
    assert.equal(new Set(proxy.seen.map((s) => s.idempotencyKey)).size, 1, "one key for all attempts");
  });
});

describe("reads and Retry-After", () => {
  it("a read retries a lost answer", async () => {
    await admin.skus.put("r-read", { name: "R", price_cents: 100, stock: 5 });
    proxy.plan = (i) => (i < 2 ? { kind: "drop-after-forward" } : { kind: "forward" });
    assert.equal((await shop().skus.get("r-read")).available, 5);
    assert.equal(proxy.seen.length, 3);
    assert.equal(proxy.seen[0]!.idempotencyKey, undefined, "reads carry no key");
  });

  it("waits at least Retry-After before the next attempt", async () => {
    proxy.plan = (i) =>
      i === 0
        ? { kind: "answer", status: 503, body: UNAVAILABLE, headers: { "retry-after": "1" } }
        : { kind: "forward" };
    const started = performance.now();
    await assert.rejects(shop().skus.get("r-none"), (e: unknown) => e instanceof ProblemError && e.status === 404);
    assert.ok(performance.now() - started >= 1000, "waited the server's hint");
    assert.equal(retries[0]!.delayMs, 1000);
  });

  it("a Retry-After beyond maxRetryAfterMs is thrown, with the hint, not waited for", async () => {
    proxy.plan = () => ({ kind: "answer", status: 503, body: UNAVAILABLE, headers: { "retry-after": "120" } });
    await assert.rejects(shop().skus.get("r-none"), (e: unknown) => {
      assert.ok(e instanceof UnavailableError);
      assert.equal(e.retryAfterMs, 120_000);
      return true;
    });
    assert.equal(proxy.seen.length, 1);
  });

  it("an unknown problem type from a proxy is a plain ProblemError, not retried", async () => {
    proxy.plan = () => ({
      kind: "answer",
      status: 451,
      body: { type: "https://proxy.example/blocked", title: "Blocked", status: 451, detail: "by policy" },
    });
    await assert.rejects(shop().skus.get("r-none"), (e: unknown) => {
      assert.equal((e as object).constructor, ProblemError);
      assert.equal((e as ProblemError).type, "https://proxy.example/blocked");
      assert.equal((e as ProblemError).status, 451);
      return true;
    });
    assert.equal(proxy.seen.length, 1);
  });

  it("a refused connection is a ConnectionError after the retries", async () => {
    const port = await freePortNobodyListensOn();
    const closed = new FlashsaleClient({
      baseUrl: `http://127.0.0.1:${port}`,
      token: SHOP,
      retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
      onRetry: (info) => retries.push(info),
    });
    await assert.rejects(closed.skus.get("x"), ConnectionError);
    assert.equal(retries.length, 1);
  });

  it("the caller's AbortSignal stops the retries", async () => {
    proxy.plan = () => ({ kind: "answer", status: 503, body: UNAVAILABLE, headers: { "retry-after": "5" } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user gave up")), 100);
    await assert.rejects(shop().skus.get("r-none", { signal: controller.signal }), /user gave up/);
    assert.equal(proxy.seen.length, 1);
  });
});

/** A loopback port that was free a moment ago and has no listener now. */
async function freePortNobodyListensOn(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
