// One API call over fetch: auth, JSON, per-attempt timeout, typed errors, and the retry rules
// (reads retry freely; writes only with an Idempotency-Key, and an attempt whose outcome is
// unknown only when sending it again cannot apply it twice).
import {
  BodyTimeoutError,
  ConnectionError,
  FlashsaleError,
  IdempotencyInProgressError,
  NotLeaderError,
  ProblemError,
  RateLimitedError,
  RequestTimeoutError,
  UnavailableError,
  problemBody,
  problemError,
} from "./errors.js";
import { DEFAULT_RETRY, backoffDelayMs, parseRetryAfter, sleep, type RetryPolicy } from "./retry.js";

/** What the client needs to reach the server. */
export interface TransportOptions {
  /** The server, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  baseUrl: string;
  /** Admin or storefront token, or a buyer JWT: sent as `Authorization: Bearer …`. */
  token: string;
  /** Per-attempt timeout in ms. Default 10 s. */
  timeoutMs?: number;
  /** Retry policy; fields left out take `DEFAULT_RETRY`'s. */
  retry?: Partial<RetryPolicy>;
  /** The fetch to use (default: the platform's `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Called before each retry, for logs and metrics. */
  onRetry?: (info: RetryInfo) => void;
}

/** What `onRetry` is told. */
export interface RetryInfo {
  /** `GET /v1/skus/tee`, say. */
  request: string;
  /** The attempt that failed (1-based). */
  attempt: number;
  /** How long the client waits before the next one, in ms. */
  delayMs: number;
  /** Why the attempt failed. */
  error: FlashsaleError;
  /** The Idempotency-Key sent with every attempt of a write. */
  idempotencyKey: string | undefined;
}

/** One call as the resource classes describe it. */
export interface Call {
  method: "GET" | "POST" | "PUT";
  /** The path with its parameters already encoded, e.g. `/v1/skus/tee`. */
  path: string;
  /** Query parameters; undefined ones are left out. */
  query?: Record<string, string | number | undefined>;
  /** The JSON body, if any. */
  body?: unknown;
  /** Required for writes (POST, PUT): sent on every attempt. */
  idempotencyKey?: string;
  /**
   * For writes: whether an attempt whose outcome is unknown (timeout, broken connection, 502,
   * 504) may be sent again: true when the server dedupes the key or the call is idempotent by
   * nature. Attempts the server answered "not done" (503, 429, 408, in progress) are always
   * retried.
   */
  replaySafe?: boolean;
  /** Aborts the call, retries included. */
  signal?: AbortSignal;
  /** Extra request headers. */
  headers?: Record<string, string>;
}

/** A 2xx answer. */
export interface Answer<T> {
  status: number;
  body: T;
  headers: Headers;
}

/** How a failed attempt bears on a retry. */
type Outcome = "not-applied" | "unknown" | "final";

/** The library's User-Agent. */
const USER_AGENT = "flashsale-client-ts/0.1.0";

/** Sends calls to one server with one credential. */
export class Transport {
  readonly #base: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #fetch: typeof fetch;
  readonly #onRetry: ((info: RetryInfo) => void) | undefined;

  constructor(options: TransportOptions) {
    if (!options.baseUrl) throw new TypeError("baseUrl is required");
    if (!options.token) throw new TypeError("token is required");
    this.#base = options.baseUrl.replace(/\/+$/, "");
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    if (!(this.#retry.maxAttempts >= 1)) throw new RangeError("retry.maxAttempts must be at least 1");
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("no fetch: Node.js 18 or later is required");
    this.#fetch = f;
    this.#onRetry = options.onRetry;
  }

  /** Sends `call`, retrying as its kind allows; the parsed 2xx body, or a typed error. */
  async send<T>(call: Call): Promise<Answer<T>> {
    const isWrite = call.method !== "GET";
    if (isWrite && !call.idempotencyKey) {
      // Writes never go out (let alone again) without a key: a bug in this library if seen.
      throw new TypeError(`${call.method} ${call.path} needs an Idempotency-Key`);
    }
    const label = `${call.method} ${call.path}`;
    for (let attempt = 1; ; attempt++) {
      let error: FlashsaleError;
      let outcome: Outcome;
      try {
        return await this.#attempt<T>(call);
      } catch (e) {
        if (!(e instanceof FlashsaleError)) throw e;
        error = e;
        outcome = classify(e);
      }
      const retryable =
        outcome === "not-applied" || (outcome === "unknown" && (!isWrite || call.replaySafe === true));
      const retryAfterMs = error instanceof ProblemError ? error.retryAfterMs : undefined;
      if (
        !retryable ||
        attempt >= this.#retry.maxAttempts ||
        (retryAfterMs ?? 0) > this.#retry.maxRetryAfterMs
      ) {
        throw error;
      }
      const delayMs = backoffDelayMs(this.#retry, attempt, retryAfterMs);
      this.#onRetry?.({ request: label, attempt, delayMs, error, idempotencyKey: call.idempotencyKey });
      await sleep(delayMs, call.signal);
    }
  }

  /** One attempt: a 2xx body, or a thrown FlashsaleError (or the caller's abort reason). */
  async #attempt<T>(call: Call): Promise<Answer<T>> {
    const url = new URL(this.#base + call.path);
    for (const [k, v] of Object.entries(call.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#token}`,
      accept: "application/json, application/problem+json",
      "user-agent": USER_AGENT,
      ...call.headers,
    };
    if (call.body !== undefined) headers["content-type"] = "application/json";
    if (call.idempotencyKey) headers["idempotency-key"] = call.idempotencyKey;

    if (call.signal?.aborted) throw call.signal.reason;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#timeoutMs);
    const onAbort = () => controller.abort(call.signal?.reason);
    call.signal?.addEventListener("abort", onAbort, { once: true });
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, {
        method: call.method,
        headers,
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
        signal: controller.signal,
        redirect: "error",
      });
      text = await response.text();
    } catch (e) {
      if (call.signal?.aborted) throw call.signal.reason;
      if (timedOut) throw new RequestTimeoutError(this.#timeoutMs);
      throw new ConnectionError(`${call.method} ${url.pathname}: ${describe(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
      call.signal?.removeEventListener("abort", onAbort);
    }

    if (response.ok) {
      let body: T;
      try {
        body = (text === "" ? undefined : JSON.parse(text)) as T;
      } catch (e) {
        throw new ConnectionError(`${call.method} ${url.pathname}: answer is not JSON`, { cause: e });
      }
      return { status: response.status, body, headers: response.headers };
    }
    throw problemError(
      response.status,
      problemBody(text, response.statusText),
      parseRetryAfter(response.headers.get("retry-after")),
    );
  }
}

/** How a failed attempt bears on a retry. */
function classify(e: FlashsaleError): Outcome {
  if (e instanceof RequestTimeoutError) return "unknown";
  if (e instanceof ConnectionError) return refused(e) ? "not-applied" : "unknown";
  if (
    e instanceof UnavailableError ||
    e instanceof NotLeaderError ||
    e instanceof RateLimitedError ||
    e instanceof IdempotencyInProgressError ||
    e instanceof BodyTimeoutError
  ) {
    return "not-applied";
  }
  if (e instanceof ProblemError) {
    if (e.status === 503) return "not-applied"; // A proxy's 503: nothing reached the server.
    if (e.status === 502 || e.status === 504) return "unknown";
  }
  return "final";
}

/** Whether the connection was never made (so the request was never sent). */
function refused(e: ConnectionError): boolean {
  const code = errorCode(e.cause);
  return code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
}

/** The `code` of an error or of the error it wraps (undici puts it on `cause`). */
function errorCode(e: unknown): string | undefined {
  for (let cur = e, depth = 0; cur && depth < 4; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string") return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A short description of a fetch failure, with the system error code when there is one. */
function describe(e: unknown): string {
  const code = errorCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  return code ? `${msg} (${code})` : msg;
}
