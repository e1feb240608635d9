/**
 * The backend vocabulary every layer shares: what a backend is, its bounds, where it comes from and
 * why a connect to it failed. One definition each, so config, discovery, registry, health, proxy,
 * core and admin cannot drift apart.
 *
 * This module imports nothing (test/module-graph.test.ts checks it): it sits below every other
 * module, so importing it can never close an import cycle.
 */

/** `host:port` parsed once at load (src/config/host-port.ts); IPv6 written as `[::1]:port`. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
  /** Canonical text form, as written in the config (`127.0.0.1:9001`, `[::1]:9001`). */
  readonly text: string;
}

/**
 * Administrative states (HAProxy `set server state`): `drain` takes no new connections while
 * existing ones keep flowing; `maint` takes no new connections and is not health checked.
 */
export const BACKEND_STATES = ['active', 'drain', 'maint'] as const;
export type BackendState = (typeof BACKEND_STATES)[number];

/** Highest weight a backend may carry; 0 means "never picked". The config schema's `backend.weight` maximum. */
export const MAX_WEIGHT = 10000;

/** Longest backend id, in Unicode code points (`backendIdLength`). The config schema's `backend.id` maxLength. */
export const MAX_BACKEND_ID_LENGTH = 256;

/**
 * Length of a backend id as the config schema's `maxLength` counts it (ajv: code points, not UTF-16
 * units), so every other edge accepts exactly the ids a config may hold. Control plane only.
 */
export function backendIdLength(id: string): number {
  let codePoints = 0;
  for (let i = 0; i < id.length; i++, codePoints++) {
    // A high surrogate followed by a low one is one code point (an astral character).
    const unit = id.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < id.length) {
      const next = id.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
  }
  return codePoints;
}

/**
 * One backend, as the config lists it, a discovery source reports it or the registration API
 * stores it; validated by the same rules wherever it comes from.
 */
export interface Backend {
  /** Stable identity (default: the address text); the hash tables key on it, never on list order. */
  readonly id: string;
  readonly address: HostPort;
  /** Integer 0..MAX_WEIGHT, default 1. */
  readonly weight: number;
  /** Default active. */
  readonly state: BackendState;
}

/** Where a pool's backends come from: the pool's `"discovery": {"type": ...}` (absent = static). */
export type BackendSource = 'static' | 'file' | 'registration' | 'dns' | 'etcd';

/** Why a connect attempt to a backend failed (the proxy reports it, outlier detection counts it). */
export type ConnectFailureReason = 'timeout' | 'refused' | 'error';

/**
 * What passive outlier detection counts against a backend (HAProxy `observe layer4`): a failed
 * connect, an established connection the backend reset, or a backend silent past the pool's
 * `responseTimeoutMs` after the client sent bytes. Errors that are ours (EMFILE, ENFILE,
 * EADDRNOTAVAIL on connect) are never reported.
 */
export type BackendFailureReason = ConnectFailureReason | 'reset' | 'response_timeout';
