// Errors the client throws: a ProblemError subclass per documented problem `type`, and
// transport errors (connection failures, timeouts) for requests that got no answer.
import type { ProblemType } from "./types.js";

/** Prefix of every problem `type` the server sends. */
export const PROBLEM_BASE = "https://flashsale.dev/problems/";

/** The root of every error this client throws. */
export class FlashsaleError extends Error {
  override name = "FlashsaleError";
}

/** The request got no HTTP answer: the connection failed or broke (`cause` is fetch's error). */
export class ConnectionError extends FlashsaleError {
  override name = "ConnectionError";
}

/** No answer within the client's per-attempt `timeoutMs`. */
export class RequestTimeoutError extends FlashsaleError {
  override name = "RequestTimeoutError";
  /** The per-attempt timeout that elapsed, in ms. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * An error answer (`application/problem+json`, RFC 9457). The server's documented types have a
 * subclass each (`SoldOutError`, …); an undocumented type (or a non-problem error body from a
 * proxy, as `about:blank`) is a plain `ProblemError` with the same fields.
 */
export class ProblemError extends FlashsaleError {
  override name = "ProblemError";
  /** The problem `type` URI (`https://flashsale.dev/problems/sold-out`), or `about:blank`. */
  readonly type: string;
  /** The HTTP status. */
  readonly status: number;
  /** The short, stable summary of the type. */
  readonly title: string;
  /** What happened in this case. */
  readonly detail: string;
  /** The `Retry-After` header in ms, when the server sent one. */
  readonly retryAfterMs: number | undefined;
  /** The whole body, with the type's extension members. */
  readonly body: Readonly<Record<string, unknown>>;

  constructor(status: number, body: Record<string, unknown>, retryAfterMs?: number) {
    const type = typeof body.type === "string" ? body.type : "about:blank";
    const title = typeof body.title === "string" ? body.title : `HTTP ${status}`;
    const detail = typeof body.detail === "string" ? body.detail : "";
    super(detail ? `${title}: ${detail}` : title);
    this.type = type;
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.retryAfterMs = retryAfterMs;
    this.body = body;
  }

  /** The type's last path segment (`sold-out`), or the whole type if it is not the server's. */
  get typeSuffix(): string {
    return this.type.startsWith(PROBLEM_BASE) ? this.type.slice(PROBLEM_BASE.length) : this.type;
  }

  /** A string extension member, if present. */
  protected str(member: string): string | undefined {
    const v = this.body[member];
    return typeof v === "string" ? v : undefined;
  }

  /** A number extension member, if present. */
  protected num(member: string): number | undefined {
    const v = this.body[member];
    return typeof v === "number" ? v : undefined;
  }
}

/** 400 `malformed`: the body or query is not valid JSON for the endpoint. */
export class MalformedError extends ProblemError {
  override name = "MalformedError";
}
/** 401 `unauthenticated`: missing or invalid token. */
export class UnauthenticatedError extends ProblemError {
  override name = "UnauthenticatedError";
}
/** 403 `forbidden`: the token's role may not do this. */
export class ForbiddenError extends ProblemError {
  override name = "ForbiddenError";
}
/** 403 `sale-not-open`: outside the SKU's sale window. */
export class SaleNotOpenError extends ProblemError {
  override name = "SaleNotOpenError";
  /** The SKU whose sale is not open. */
  get sku(): string | undefined {
    return this.str("sku");
  }
  /** Its sale start, RFC 3339, or undefined when it has none. */
  get saleStartsAt(): string | undefined {
    return this.str("sale_starts_at");
  }
  /** Its sale end, RFC 3339, or undefined when it has none. */
  get saleEndsAt(): string | undefined {
    return this.str("sale_ends_at");
  }
}
/** 404 `not-found`: unknown SKU, reservation, order or path. */
export class NotFoundError extends ProblemError {
  override name = "NotFoundError";
  /** The unknown SKU, when a SKU was not found. */
  get sku(): string | undefined {
    return this.str("sku");
  }
  /** The unknown reservation or order id, when one was not found. */
  get id(): string | undefined {
    return this.str("id");
  }
}
/** 405 `method-not-allowed`. */
export class MethodNotAllowedError extends ProblemError {
  override name = "MethodNotAllowedError";
}
/** 408 `timeout`: the server did not receive the request body in time (nothing was done). */
export class BodyTimeoutError extends ProblemError {
  override name = "BodyTimeoutError";
}
/** 409 `sold-out`: not enough stock of `sku`; `available` units were left. */
export class SoldOutError extends ProblemError {
  override name = "SoldOutError";
  /** The SKU that ran out. */
  get sku(): string | undefined {
    return this.str("sku");
  }
  /** Units of it available when the request was refused. */
  get available(): number | undefined {
    return this.num("available");
  }
}
/** 409 `invalid-state`: the resource's current state refuses this (e.g. confirm after expiry). */
export class InvalidStateError extends ProblemError {
  override name = "InvalidStateError";
  /** The reservation's id, for a reservation. */
  get id(): string | undefined {
    return this.str("id");
  }
  /** The reservation's status now, for a reservation. */
  get reservationStatus(): string | undefined {
    return this.str("reservation_status");
  }
  /** The SKU, for a SKU. */
  get sku(): string | undefined {
    return this.str("sku");
  }
}
/** 409 `idempotency-mismatch`: the Idempotency-Key was used with another body. */
export class IdempotencyMismatchError extends ProblemError {
  override name = "IdempotencyMismatchError";
}
/** 409 `idempotency-in-progress`: the first request with the key is still running (retried). */
export class IdempotencyInProgressError extends ProblemError {
  override name = "IdempotencyInProgressError";
}
/** 413 `too-large`: the body is above the server's limit. */
export class TooLargeError extends ProblemError {
  override name = "TooLargeError";
  /** The server's body limit in bytes. */
  get limitBytes(): number | undefined {
    return this.num("limit_bytes");
  }
}
/** 422 `invalid`: well-formed but invalid; `detail` names the field and the limit. */
export class InvalidError extends ProblemError {
  override name = "InvalidError";
  /** For a `ttl_s` or an extension past a limit: the limit (seconds, or a count). */
  get limit(): number | undefined {
    return this.num("limit");
  }
  /** Which limit: `reservation_ttl_s`, `max_hold_s` or `max_extensions`. */
  get limitName(): string | undefined {
    return this.str("limit_name");
  }
  /** The SKU whose setting is the limit. */
  get sku(): string | undefined {
    return this.str("sku");
  }
}
/** 429 `buyer-limit`: the SKU's per-buyer limit would be exceeded. */
export class BuyerLimitError extends ProblemError {
  override name = "BuyerLimitError";
  /** The SKU whose limit was reached. */
  get sku(): string | undefined {
    return this.str("sku");
  }
  /** Its per-buyer limit. */
  get limit(): number | undefined {
    return this.num("limit");
  }
  /** Units the buyer already holds or bought. */
  get already(): number | undefined {
    return this.num("already");
  }
}
/** 429 `rate-limited`: a token bucket is empty; see `retryAfterMs` (retried). */
export class RateLimitedError extends ProblemError {
  override name = "RateLimitedError";
}
/** 500 `internal`: a server bug; `detail` is generic. */
export class InternalError extends ProblemError {
  override name = "InternalError";
}
/** 503 `unavailable`: nothing was acknowledged; retry later (retried). */
export class UnavailableError extends ProblemError {
  override name = "UnavailableError";
}
/** 503 `not-leader`: a standby answered; `leaderUrl` names the leader (retried). */
export class NotLeaderError extends ProblemError {
  override name = "NotLeaderError";
  /** The leader's URL, if the standby knows it. */
  get leaderUrl(): string | undefined {
    return this.str("leader_url");
  }
}
/** 403 `pass-required`: a line's SKU is behind a waiting room; join its queue first. */
export class PassRequiredError extends ProblemError {
  override name = "PassRequiredError";
}
/** 403 `pass-invalid`: the `Flashsale-Pass` is forged, expired, spent, another buyer's or in use. */
export class PassInvalidError extends ProblemError {
  override name = "PassInvalidError";
  /** Why: forged, expired, spent, other-buyer, other-queue, several-queues or in-use. */
  get reason(): string | undefined {
    return this.str("reason");
  }
}
/** 409 `queue-closed`: the queue does not take joins yet (`opens_at`) or any more. */
export class QueueClosedError extends ProblemError {
  override name = "QueueClosedError";
  /** When joins open, if they have not yet. */
  get opensAt(): string | undefined {
    return this.str("opens_at");
  }
}

/** A constructor of a problem class. */
type ProblemClass = new (
  status: number,
  body: Record<string, unknown>,
  retryAfterMs?: number,
) => ProblemError;

/**
 * One class per type of the spec: a `Record` over the generated `ProblemType`, so a type
 * added to docs/openapi.yaml does not compile here until it has its class.
 */
const DOCUMENTED: Record<ProblemType, ProblemClass> = {
  "https://flashsale.dev/problems/malformed": MalformedError,
  "https://flashsale.dev/problems/unauthenticated": UnauthenticatedError,
  "https://flashsale.dev/problems/forbidden": ForbiddenError,
  "https://flashsale.dev/problems/sale-not-open": SaleNotOpenError,
  "https://flashsale.dev/problems/not-found": NotFoundError,
  "https://flashsale.dev/problems/method-not-allowed": MethodNotAllowedError,
  "https://flashsale.dev/problems/timeout": BodyTimeoutError,
  "https://flashsale.dev/problems/sold-out": SoldOutError,
  "https://flashsale.dev/problems/invalid-state": InvalidStateError,
  "https://flashsale.dev/problems/idempotency-mismatch": IdempotencyMismatchError,
  "https://flashsale.dev/problems/idempotency-in-progress": IdempotencyInProgressError,
  "https://flashsale.dev/problems/too-large": TooLargeError,
  "https://flashsale.dev/problems/invalid": InvalidError,
  "https://flashsale.dev/problems/buyer-limit": BuyerLimitError,
  "https://flashsale.dev/problems/rate-limited": RateLimitedError,
  "https://flashsale.dev/problems/internal": InternalError,
  "https://flashsale.dev/problems/unavailable": UnavailableError,
  "https://flashsale.dev/problems/not-leader": NotLeaderError,
  "https://flashsale.dev/problems/pass-required": PassRequiredError,
  "https://flashsale.dev/problems/pass-invalid": PassInvalidError,
  "https://flashsale.dev/problems/queue-closed": QueueClosedError,
};

/** Types the contract names that this spec version does not list yet. */
const CONTRACT_ONLY: Record<string, ProblemClass> = {};

/** The typed error for an error answer's status, body and `Retry-After` (in ms). */
export function problemError(
  status: number,
  body: Record<string, unknown>,
  retryAfterMs?: number,
): ProblemError {
  const type = typeof body.type === "string" ? body.type : "";
  const cls =
    (DOCUMENTED as Record<string, ProblemClass | undefined>)[type] ?? CONTRACT_ONLY[type] ?? ProblemError;
  return new cls(status, body, retryAfterMs);
}

/** The body as a problem: its JSON object, or an `about:blank` problem built from the text. */
export function problemBody(text: string, statusText: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    if (v !== null && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // Not JSON: e.g. a proxy's HTML error page.
  }
  return { type: "about:blank", title: statusText || "error", detail: text.slice(0, 200) };
}
