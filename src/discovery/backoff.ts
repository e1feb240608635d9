/**
 * Retry delays after a registry failure: exponential (×2), from `minMs` up to `maxMs`, reset on
 * success. Defaults 1 s → 30 s, the same cap as gRPC's connection backoff (grpc/doc
 * connection-backoff.md, MAX_BACKOFF = 120 s there; 30 s keeps a recovered registry's changes
 * under a minute away). No jitter: each ringlb process has its own timer phase already, and
 * deterministic delays keep tests exact.
 */
export interface BackoffOptions {
  /** First delay; default 1000. */
  readonly minMs?: number;
  /** Cap; default 30000. */
  readonly maxMs?: number;
}

export const DEFAULT_RETRY_MIN_MS = 1000;
export const DEFAULT_RETRY_MAX_MS = 30000;

export class Backoff {
  readonly #minMs: number;
  readonly #maxMs: number;
  #nextMs: number;

  constructor(options: BackoffOptions = {}) {
    this.#minMs = options.minMs ?? DEFAULT_RETRY_MIN_MS;
    this.#maxMs = Math.max(this.#minMs, options.maxMs ?? DEFAULT_RETRY_MAX_MS);
    this.#nextMs = this.#minMs;
  }

  /** The delay before the next retry; doubles the one after it. */
  next(): number {
    const delay = this.#nextMs;
    this.#nextMs = Math.min(this.#maxMs, this.#nextMs * 2);
    return delay;
  }

  reset(): void {
    this.#nextMs = this.#minMs;
  }
}
