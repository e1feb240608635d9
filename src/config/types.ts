import type { BalancePolicy } from '../core/types.js';

/** `host:port` parsed once at load; IPv6 written as `[::1]:port`. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
  /** Canonical text form, as written in the config (`127.0.0.1:9001`, `[::1]:9001`). */
  readonly text: string;
}

export type HashKey = 'source_ip' | 'source_ip_port';

export interface ListenerConfig {
  readonly name: string;
  readonly bind: HostPort;
  readonly pool: string;
  /** Default 10000. */
  readonly maxConnections: number;
  /** Default 3600000 (1 h, as Envoy tcp_proxy); 0 disables. */
  readonly idleTimeoutMs: number;
}

export interface BackendConfig {
  /** Stable identity; defaults to `address.text`. */
  readonly id: string;
  readonly address: HostPort;
  /** Integer 0..10000, default 1. */
  readonly weight: number;
}

export interface PoolConfig {
  readonly name: string;
  /** Default round_robin. */
  readonly balance: BalancePolicy;
  /** Default source_ip. */
  readonly hashKey: HashKey;
  /** Default 3000. */
  readonly connectTimeoutMs: number;
  /** Extra attempts on other backends; default 2. */
  readonly retries: number;
  readonly ringHash: { readonly pointsPerWeight: number };
  readonly maglev: { readonly tableSize: number };
  readonly backends: readonly BackendConfig[];
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface RinglbConfig {
  readonly listeners: readonly ListenerConfig[];
  readonly pools: readonly PoolConfig[];
  readonly log: { readonly level: LogLevel };
  /** Default 30000. */
  readonly drainTimeoutMs: number;
}

/** One problem in a config, located by its JSON path (`pools[0].balance`). */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}
