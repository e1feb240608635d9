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
  type BackendChange,
  type BackendView,
  type ChangeOrigin,
  type ConfigView,
  type LookupResult,
  type PoolView,
  type PreviewRequest,
  type PreviewResult,
  type RegisterOutcome,
  type RegistrationRequest,
  type StatusBackendView,
  type StatusView,
  type TableView,
} from './api.js';
import type { Backend, BackendSource } from '../backend.js';
import type { RinglbConfig } from '../config/types.js';
import type { BalancerImplementation } from '../core/index.js';
import { KEYED_POLICIES } from '../core/types.js';
import type { TrafficView } from '../metrics/traffic-view.js';
import type { BackendPool } from '../proxy/backend-pool.js';
import type { RegistrationStore } from '../discovery/registration-store.js';
import type { BackendOverride } from '../registry/backend-overrides.js';
import { configAsJson } from './config-view.js';
import { previewChange, unknownIdIssues } from './preview.js';
import { backendStatusOf, poolStatus, tableView, type PoolStatusSources } from './status-view.js';

/** What the admin view needs from the runtime; pools are looked up by name on every call (a reload may replace them). */
export interface AdminRuntimeView {
  poolNames(): readonly string[];
  pool(name: string): BackendPool | undefined;
  sourceOf(name: string): BackendSource;
  readonly store: RegistrationStore;
  /** version, pid, start time (epoch ms) and data-plane threads (1 when the main thread carries the connections). */
  process(): { readonly version: string; readonly pid: number; readonly startedAt: number; readonly workers: number };
  /** The config in force, the file it came from (null when an embedder passed it) and when it was applied (epoch ms). */
  configInForce(): { readonly config: RinglbConfig; readonly path: string | null; readonly loadedAt: number } | null;
  listeners(): readonly { readonly name: string; readonly bind: string; readonly pool: string; readonly activeConnections: number }[];
  /** The set the pool's source reports, before admin overrides; undefined for an unknown pool. */
  configuredBackends(pool: string): readonly Backend[] | undefined;
  override(pool: string, id: string): BackendOverride | undefined;
  /** Applies a runtime override and resolves once it is in force in every thread; false for an unknown backend. */
  changeBackend(pool: string, id: string, change: BackendChange, origin: ChangeOrigin): Promise<boolean>;
  /** Process-wide traffic totals (`Ringlb.traffic`); absent in a view built without one (the status then shows 0 / null / {}). */
  readonly traffic?: TrafficView;
  /** The core the scratch tables of a preview are built in (the pools' own); default WASM. */
  readonly implementation?: BalancerImplementation;
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

  status(): StatusView {
    const running = this.#runtime.process();
    const source = this.#runtime.configInForce();
    const traffic = this.#runtime.traffic;
    return {
      version: running.version,
      pid: running.pid,
      startedAt: new Date(running.startedAt).toISOString(),
      workers: running.workers,
      config: { path: source?.path ?? null, loadedAt: new Date(source?.loadedAt ?? running.startedAt).toISOString() },
      listeners: this.#runtime.listeners().map((listener) => ({
        name: listener.name,
        bind: listener.bind,
        pool: listener.pool,
        activeConnections: listener.activeConnections,
        connections: traffic?.listener(listener.name)?.connections ?? {},
      })),
      pools: this.#runtime.poolNames().map((name) => poolStatus(this.#pool(name), this.#statusSources(name))),
    };
  }

  table(poolName: string): TableView {
    const pool = this.#pool(poolName);
    const view = tableView(pool);
    if (view === null) {
      throw AdminError.conflict(`pool "${poolName}" uses ${pool.policy}, which has no table; tables belong to ring_hash and maglev`);
    }
    return view;
  }

  async changeBackend(poolName: string, id: string, change: BackendChange, origin: ChangeOrigin): Promise<StatusBackendView | undefined> {
    this.#pool(poolName);
    if (!(await this.#runtime.changeBackend(poolName, id, change, origin))) return undefined;
    // Looked up again: a reload queued before the change may have replaced the pool meanwhile.
    return backendStatusOf(this.#pool(poolName), id, this.#statusSources(poolName));
  }

  preview(poolName: string, request: PreviewRequest): PreviewResult {
    const pool = this.#pool(poolName);
    const inForce = pool.backends;
    const issues = unknownIdIssues(request, new Set(inForce.map((backend) => backend.id)));
    if (issues.length > 0) throw AdminError.invalidBody(issues);
    let next: readonly Backend[];
    if (request.kind === 'set') next = request.backends;
    else {
      const removed = new Set(request.remove);
      next = inForce
        .filter((backend) => !removed.has(backend.id))
        .map((backend) => {
          const weight = request.weights.get(backend.id);
          return weight === undefined ? backend : { ...backend, weight };
        });
    }
    return previewChange(pool, next, this.#runtime.implementation);
  }

  configInForce(): ConfigView {
    const source = this.#runtime.configInForce();
    if (source === null) throw new AdminError(503, 'ringlb has not started');
    return { path: source.path, loadedAt: new Date(source.loadedAt).toISOString(), config: configAsJson(source.config) };
  }

  #statusSources(poolName: string): PoolStatusSources {
    const pool = this.#pool(poolName);
    return {
      configured: this.#runtime.configuredBackends(poolName) ?? pool.backends,
      overrideOf: (id) => this.#runtime.override(poolName, id),
      traffic: this.#runtime.traffic,
    };
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
