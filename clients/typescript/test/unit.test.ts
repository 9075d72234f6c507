// Pure parts: backoff, Retry-After, problem typing. No server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  DEFAULT_RETRY,
  ProblemError,
  SoldOutError,
  UnavailableError,
  NotLeaderError,
  backoffDelayMs,
  parseRetryAfter,
  problemError,
} from "@flashsale/client";

describe("backoffDelayMs", () => {
  it("doubles the ceiling per attempt up to maxDelayMs, with full jitter", () => {
    const p = { ...DEFAULT_RETRY, baseDelayMs: 100, maxDelayMs: 1000 };
    const top = () => 0.999999;
    assert.equal(backoffDelayMs(p, 1, undefined, top), 99);
    assert.equal(backoffDelayMs(p, 2, undefined, top), 199);
    assert.equal(backoffDelayMs(p, 3, undefined, top), 399);
    assert.equal(backoffDelayMs(p, 10, undefined, top), 999);
    assert.equal(backoffDelayMs(p, 3, undefined, () => 0), 0);
    const draws = Array.from({ length: 200 }, () => backoffDelayMs(p, 4));
    assert.ok(draws.every((d) => d >= 0 && d < 800));
    assert.ok(new Set(draws).size > 50, "jittered");
  });

  it("never waits less than the server's Retry-After", () => {
    assert.equal(backoffDelayMs(DEFAULT_RETRY, 1, 2000, () => 0.5), 2000);
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    assert.equal(parseRetryAfter("2"), 2000);
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter("soon"), undefined);
    const now = Date.parse("2026-11-21T10:00:00Z");
    assert.equal(parseRetryAfter("Sat, 21 Nov 2026 10:00:03 GMT", now), 3000);
    assert.equal(parseRetryAfter("Sat, 21 Nov 2026 09:00:00 GMT", now), 0);
  });
});

describe("problemError", () => {
  it("maps each documented type to its class, and keeps extension members", () => {
    const e = problemError(409, {
      type: "https://flashsale.dev/problems/sold-out",
      title: "Sold out",
      status: 409,
      detail: "only 1 left",
      sku: "tee",
      available: 1,
    });
    assert.ok(e instanceof SoldOutError);
    assert.equal(e.sku, "tee");
    assert.equal(e.available, 1);
    assert.ok(problemError(503, { type: "https://flashsale.dev/problems/unavailable" }) instanceof UnavailableError);
    const nl = problemError(503, { type: "https://flashsale.dev/problems/not-leader", leader_url: "http://a:1" });
    assert.ok(nl instanceof NotLeaderError);
    assert.equal(nl.leaderUrl, "http://a:1");
  });

  it("an unknown type is still a typed ProblemError", () => {
    const e = problemError(418, { type: "https://example.com/teapot", title: "Teapot", status: 418, detail: "no" });
    assert.equal(e.constructor, ProblemError);
    assert.equal(e.type, "https://example.com/teapot");
    assert.equal(e.typeSuffix, "https://example.com/teapot");
    assert.equal(e.status, 418);
    assert.equal(e.message, "Teapot: no");
  });
});
