/**
 * The admin listener's limits (config `admin.limits`): what one slow or greedy client may cost it.
 * The defaults are the schema's (schema/ringlb.schema.json `admin.limits`; test/config.test.ts
 * checks that they agree) and what the admin server ran with before they were configurable.
 * Imports nothing: the config types depend on it.
 */
export interface AdminLimits {
  /** Open connections at most; at the cap slow or idle ones are evicted (connection-guard.ts). */
  readonly maxConnections: number;
  /** The request line and headers must arrive within this (408 otherwise); at most requestTimeoutMs, as Node requires. */
  readonly headersTimeoutMs: number;
  /** The whole request, headers and body, must arrive within this (408 otherwise). */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection closes after this. */
  readonly keepAliveTimeoutMs: number;
  /** Request bodies larger than this are refused while streaming (413). */
  readonly maxBodyBytes: number;
  /** Request line plus headers larger than this are refused (431); Node's `maxHeaderSize`. */
  readonly maxHeaderBytes: number;
}

export const DEFAULT_ADMIN_LIMITS: AdminLimits = Object.freeze({
  // Above a registration burst (hundreds of services PUT at once: e2e-reload tests 500 in parallel,
  // each held until its change is applied), and far below a production fd limit.
  maxConnections: 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  // Node's own default.
  keepAliveTimeoutMs: 5_000,
  // A registration body is ~100 bytes; 64 KiB leaves room for other routes (a config sent for preview).
  maxBodyBytes: 64 * 1024,
  // Node's default --max-http-header-size (16 KiB), written out so that the flag does not change the admin listener.
  maxHeaderBytes: 16 * 1024,
});

/** Why `limits` cannot be applied, or null. The config cross-checks report the same rule with its JSON path. */
export function adminLimitsProblem(limits: AdminLimits): string | null {
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    return `headersTimeoutMs (${limits.headersTimeoutMs}) must not exceed requestTimeoutMs (${limits.requestTimeoutMs}): the headers are part of the request (Node refuses it too)`;
  }
  return null;
}
