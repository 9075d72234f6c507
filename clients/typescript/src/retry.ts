// When and how long to wait before another attempt: exponential backoff with full jitter,
// never shorter than the server's Retry-After.

/** How the client retries. Every delay is in ms. */
export interface RetryPolicy {
  /** Attempts in all, the first included (1 = never retry). Default 5. */
  maxAttempts: number;
  /** The backoff before the second attempt, before jitter. Default 100 ms. */
  baseDelayMs: number;
  /** The largest backoff (before jitter), doubling stops there. Default 2000 ms. */
  maxDelayMs: number;
  /** A `Retry-After` longer than this is not waited for: the error is thrown. Default 30 s. */
  maxRetryAfterMs: number;
}

/** The default policy: 5 attempts, 100 ms doubling up to 2 s, Retry-After up to 30 s. */
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 2000,
  maxRetryAfterMs: 30_000,
};

/**
 * The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed: a uniform
 * draw ("full jitter") from [0, min(maxDelayMs, baseDelayMs · 2^(attempt−1))], raised to the
 * server's `Retry-After` when it sent one. `random` returns [0, 1).
 */
export function backoffDelayMs(
  policy: RetryPolicy,
  attempt: number,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.floor(random() * ceiling);
  return Math.max(jittered, retryAfterMs ?? 0);
}

/**
 * A `Retry-After` header in ms: delay-seconds (`2`) or an HTTP date; undefined when absent
 * or unreadable. `now` is the current time in ms since the epoch.
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
