/**
 * `AdminApi` over the running pools: what the admin HTTP routes (src/admin/pool-routes.ts) read
 * and the registrations they write. Reads come from the live pools (membership and active
 * connections from the pool, health from its PoolHealth, TTLs from the store); writes
 * only go to the RegistrationStore, which feeds the registry like any other source — the admin API
 * never writes into a balancer (ARCHITECTURE.md "One writer per fact").
 */
import {
  AdminError,
  type AdminApi,
  type BackendView,
  type LookupResult,
  type PoolView,
  type RegisterOutcome,
  type RegistrationRequest,
} from './api.js';
import type { Backend, BackendSource } from '../backend.js';
import { KEYED_POLICIES } from '../core/types.js';
import type { BackendPool } from '../proxy/backend-pool.js';
import type { RegistrationStore } from '../discovery/registration-store.js';

/** What the admin view needs from the runtime; pools are looked up by name on every call (a reload may replace them). */
export interface AdminRuntimeView {
  poolNames(): readonly string[];
  pool(name: string): BackendPool | undefined;
  sourceOf(name: string): BackendSource;
  readonly store: RegistrationStore;
}

/** A backend the health owner does not know (cannot happen for a backend of the current set). */
const NOT_TRACKED = { healthy: false, flags: [], routable: false, routableBecause: null } as const;

export class RuntimeAdminApi implements AdminApi {
  readonly #runtime: AdminRuntimeView;

  constructor(runtime: AdminRuntimeView) {
    this.#runtime = runtime;
  }

  listPools(): readonly PoolView[] {
    return this.#runtime.poolNames().map((name) => {
      const pool = this.#pool(name);
      const stats = pool.health.stats();
      return {
        name,
        balance: pool.policy,
        source: this.#runtime.sourceOf(name),
        backends: pool.backends.length,
        healthy: stats.healthy,
        routable: stats.routable,
        panic: stats.panic,
      };
    });
  }

  listBackends(poolName: string): readonly BackendView[] {
    const pool = this.#pool(poolName);
    const source = this.#runtime.sourceOf(poolName);
    return pool.backends.map((backend) => this.#view(poolName, pool, source, backend));
  }

  /** One backend's view without building the others' (a GET per backend must not cost O(backends) views). */
  getBackend(poolName: string, id: string): BackendView | undefined {
    const pool = this.#pool(poolName);
    const backend = pool.backends.find((candidate) => candidate.id === id);
    if (backend === undefined) return undefined;
    return this.#view(poolName, pool, this.#runtime.sourceOf(poolName), backend);
  }

  #view(poolName: string, pool: BackendPool, source: BackendSource, backend: Backend): BackendView {
    const slot = pool.slotOf(backend.id);
    return {
      id: backend.id,
      address: backend.address.text,
      weight: backend.weight,
      state: backend.state,
      health: pool.health.backendStatus(backend.id) ?? NOT_TRACKED,
      source,
      activeConnections: slot >= 0 ? pool.activeConnections(slot) : 0,
      spilled: slot >= 0 ? pool.spilledConnections(slot) : 0,
      ttlRemainingMs: source === 'registration' ? (this.#runtime.store.ttlRemainingMs(poolName, backend.id) ?? null) : null,
    };
  }

  /** Answers once the change is applied (the store batches bursts into one rebuild), so a lookup right after sees it. */
  async register(poolName: string, id: string, request: RegistrationRequest): Promise<RegisterOutcome> {
    this.#registrationPool(poolName);
    const result = this.#runtime.store.register(poolName, id, request);
    if (!result.ok) throw AdminError.conflict(result.message);
    await this.#runtime.store.settled();
    return result.outcome;
  }

  async deregister(poolName: string, id: string): Promise<boolean> {
    this.#registrationPool(poolName);
    const removed = this.#runtime.store.deregister(poolName, id);
    await this.#runtime.store.settled();
    return removed;
  }

  /**
   * The pool's pick for this client's key, as a new connection would get it. Hash picks have no
   * side effects (no cursor, no counters: acquire is a separate call), so asking changes nothing.
   */
  lookup(poolName: string, ip: string, port: number): LookupResult | null {
    const pool = this.#pool(poolName);
    if (!KEYED_POLICIES.has(pool.policy)) {
      throw AdminError.conflict(`pool "${poolName}" uses ${pool.policy}, which maps no client to a fixed backend; lookups need ring_hash or maglev`);
    }
    const found = pool.lookup(ip, port);
    if (found === undefined) return null;
    return { backendId: found.backendId, address: pool.addressOf(found.slot), slot: found.slot };
  }

  #pool(name: string): BackendPool {
    const pool = this.#runtime.pool(name);
    if (pool === undefined) throw AdminError.unknownPool(name);
    return pool;
  }

  #registrationPool(name: string): BackendPool {
    const pool = this.#pool(name);
    const source = this.#runtime.sourceOf(name);
    if (source !== 'registration') throw AdminError.conflict(`pool "${name}" uses ${source} discovery, not registration`);
    return pool;
  }
}
