/** Raw (file-shaped) configs for end-to-end tests: every listener binds 127.0.0.1:0. */

export interface RawBackend {
  readonly address: string;
  readonly id?: string;
  readonly weight?: number;
}

export interface RawPool {
  readonly name: string;
  readonly balance?: string;
  readonly hashKey?: string;
  readonly connectTimeoutMs?: number;
  readonly retries?: number;
  readonly backends: readonly RawBackend[];
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
