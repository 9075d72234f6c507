// Per-call options and the Idempotency-Key every write carries.
import { randomUUID } from "node:crypto";

/** Options of a read. */
export interface ReadOptions {
  /** Aborts the call, retries included. */
  signal?: AbortSignal;
}

/** Options of a write. */
export interface WriteOptions extends ReadOptions {
  /**
   * The Idempotency-Key sent with every attempt (1..255 printable ASCII characters). Pass one
   * you stored with the cart to make a retry after a crash of your own process return the
   * original result; without it the client creates one per call (`newIdempotencyKey`).
   */
  idempotencyKey?: string;
}

/** A fresh Idempotency-Key: a random UUID. */
export function newIdempotencyKey(): string {
  return randomUUID();
}

/** The caller's key, or a fresh one. */
export function keyOf(options: WriteOptions | undefined): string {
  return options?.idempotencyKey ?? newIdempotencyKey();
}
