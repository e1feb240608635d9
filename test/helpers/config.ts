/** Raw (file-shaped) configs for end-to-end tests: every listener binds 127.0.0.1:0. */

export interface RawBackend {
  readonly address: string;
  readonly id?: string;
  readonly weight?: number;
  readonly state?: 'active' | 'drain' | 'maint';
}

/** File-shaped health keys (see schema/ringlb.schema.json). */
export interface RawHealthCheck {
  readonly type?: 'tcp' | 'send_expect' | 'http';
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly jitter?: number;
  readonly rise?: number;
  readonly fall?: number;
  readonly unhealthyIntervalMs?: number;
  readonly port?: number;
  readonly send?: string | { readonly hex: string };
  readonly expect?: string | { readonly hex: string } | { readonly regex: string };
  readonly http?: { readonly path?: string; readonly host?: string; readonly expectStatus?: readonly [number, number] };
  readonly initialHealthy?: boolean;
}

export interface RawOutlierDetection {
  readonly consecutiveFailures?: number;
  readonly baseEjectionMs?: number;
  readonly maxEjectionMs?: number;
  readonly maxEjectionPercent?: number;
}

export interface RawPool {
  readonly name: string;
  readonly balance?: string;
  readonly hashKey?: string;
  readonly connectTimeoutMs?: number;
  readonly retries?: number;
  readonly backends: readonly RawBackend[];
  readonly healthCheck?: RawHealthCheck;
  readonly outlierDetection?: RawOutlierDetection;
  readonly panicThreshold?: number;
  readonly slowStartMs?: number;
}

export interface RawListener {
  readonly name: string;
  readonly bind?: string;
  readonly pool: string;
  readonly maxConnections?: number;
  readonly idleTimeoutMs?: number;
}

export interface RawConfig {
  readonly listeners: readonly RawListener[];
  readonly pools: readonly RawPool[];
  readonly log?: { readonly level?: string };
  readonly drainTimeoutMs?: number;
}

/** One listener named like its pool, bound to an ephemeral loopback port. */
export function listenerFor(pool: RawPool, extra: Partial<RawListener> = {}): RawListener {
  return { name: pool.name, bind: '127.0.0.1:0', pool: pool.name, ...extra };
}

export function configOf(pools: readonly RawPool[], extra: Partial<RawConfig> = {}): RawConfig {
  return {
    listeners: pools.map((pool) => listenerFor(pool)),
    pools,
    log: { level: 'info' },
    ...extra,
  };
}
