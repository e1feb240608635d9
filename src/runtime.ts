/**
 * `Ringlb`: the running process, built from one validated config and changed only by diffs.
 *
 * It owns pools and listeners by name, the registry (every non-static pool's membership), the
 * registration store and the admin server. `reload(config)` applies a new, already validated
 * config as a diff (ARCHITECTURE.md "Reload never drops established connections"):
 *
 * - listeners: new ones open (all of them bind before anything else changes; if one cannot bind,
 *   the reload is refused and nothing changed); removed ones stop accepting and their connections
 *   drain until they end or `drainTimeoutMs`; a changed bind is remove + add; maxConnections and
 *   idleTimeoutMs apply in place to new connections.
 * - pools: a new policy, hash key, maglev table size or ring points per weight gets a fresh
 *   BackendPool (listeners switch to it; connections opened before keep the old pool until they
 *   end); other setting changes are absorbed in place; membership changes of static pools go
 *   through the registry's diff like any discovery update; a changed discovery restarts the
 *   pool's source; unchanged pools are not touched at all.
 * - admin: a changed bind or token restarts the admin server.
 *
 * Capacity: a pool's balancer has a fixed number of slots (backend-pool.ts `slotCapacity`). A set
 * that outgrows it (a big discovery answer) gets a fresh pool with twice the slots it needs; its
 * tables are identical (they depend on ids and weights only), its backends that were up stay up,
 * and the old pool drains like a replaced one.
 */
import { AdminServer } from './admin/server.js';
import type { Backend, BackendSource } from './backend.js';
import type { ListenerConfig, PoolConfig, RinglbConfig } from './config/types.js';
import type { RebuildReport } from './core/types.js';
import type { DiscoverySource } from './discovery/index.js';
import type { Logger } from './log.js';
import { HealthCheckScheduler } from './health/scheduler.js';
import { BackendPool, slotCapacity } from './proxy/backend-pool.js';
import { Listener, type ListenerStats } from './proxy/listener.js';
import { logPoolUpdated, Registry } from './registry/registry.js';
import { REGISTRATION_BATCH_MS, RegistrationStore } from './registry/registration-store.js';
import { RuntimeAdminApi } from './runtime-admin.js';

export interface RinglbOptions {
  readonly logger: Logger;
  /** Balancer implementation for every pool; default is the core's default (WASM). */
  readonly coreImplementation?: 'wasm' | 'reference';
}

export interface DrainResult {
  /** Connections still open at the deadline and cut. */
  readonly forced: number;
  readonly elapsedMs: number;
}

export interface ReloadSummary {
  readonly listenersAdded: readonly string[];
  readonly listenersRemoved: readonly string[];
  /** Listeners whose bind changed: a new socket took over, the old one drains. */
  readonly listenersRebound: readonly string[];
  readonly poolsChanged: readonly string[];
  readonly poolsUnchanged: readonly string[];
}

export type ReloadResult = { readonly ok: true; readonly summary: ReloadSummary } | { readonly ok: false; readonly errors: readonly string[] };

/** Extra time for the first check round to start: the scheduler spreads first checks over up to 1 s. */
const WARMING_SPREAD_MS = 1000;

const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

/** Errors a refused reload logs (all are counted in `errorCount`); `ringlb check` lists them. */
const MAX_LOGGED_RELOAD_ERRORS = 100;

/** What a reload does to one pool. */
type PoolPlan = 'add' | 'remove' | 'replace' | 'update' | 'unchanged';

export class Ringlb {
  readonly #logger: Logger;
  readonly #coreImplementation: 'wasm' | 'reference' | undefined;
  readonly #pools = new Map<string, BackendPool>();
  readonly #listeners = new Map<string, Listener>();
  /** Removed listeners and replaced pools whose connections are still draining. */
  readonly #retiredListeners = new Set<Listener>();
  readonly #retiredPools = new Set<BackendPool>();
  /** One for every pool: its concurrency cap is process-wide (1000 backends never open 1000 sockets at once). */
  readonly #checks = new HealthCheckScheduler();
  /** Registration bursts are batched: one table rebuild per pool per window, not one per PUT. */
  readonly #store = new RegistrationStore({ batchMs: REGISTRATION_BATCH_MS });
  readonly #registry: Registry;
  #admin: AdminServer | null = null;
  #config: RinglbConfig | null = null;
  #started = false;
  #stopping = false;
  /** Reloads run one at a time (a SIGHUP during a reload waits for it). */
  #reloading: Promise<unknown> = Promise.resolve();

  constructor(options: RinglbOptions) {
    this.#logger = options.logger;
    this.#coreImplementation = options.coreImplementation;
    this.#registry = new Registry({
      logger: this.#logger,
      store: this.#store,
      host: {
        currentBackends: (name) => this.#pools.get(name)?.backends,
        applyBackends: (name, backends) => this.#applyBackends(name, backends),
      },
    });
  }

  /**
   * Build every pool, start discovery and the admin server, warm pools with active checks, then
   * bind every listener. If a bind fails, everything started is stopped again and the error is
   * thrown: a half-started balancer never serves.
   */
  async start(config: RinglbConfig): Promise<void> {
    if (this.#started) throw new Error('ringlb: start() called twice');
    this.#started = true;
    this.#config = config;
    for (const poolConfig of config.pools) this.#pools.set(poolConfig.name, this.#createPool(poolConfig, config));
    // After every pool is built: a check result can only land on a pool that exists. Checks start
    // before the listeners bind, so pending backends get their first verdict as early as possible.
    for (const pool of this.#pools.values()) pool.startHealthChecks(this.#checks);
    for (const listenerConfig of config.listeners) {
      const pool = this.#pools.get(listenerConfig.pool);
      if (pool === undefined) throw new Error(`listener ${listenerConfig.name}: unknown pool ${listenerConfig.pool}`);
      this.#listeners.set(listenerConfig.name, this.#createListener(listenerConfig, pool));
    }
    try {
      for (const poolConfig of config.pools) await this.#registry.watch(poolConfig.name, discoveryOf(poolConfig));
      if (config.admin != null) await this.#startAdmin(config);
      await this.#warm(config);
      for (const [name, listener] of this.#listeners) {
        const address = await listener.listen();
        this.#logger.info({ listener: name, pool: listener.pool.name, address }, 'listener ready');
      }
    } catch (error) {
      this.stopListening();
      this.stopHealth();
      await this.#registry.stop();
      await this.#admin?.close();
      this.#store.close();
      throw error;
    }
  }

  pool(name: string): BackendPool | undefined {
    return this.#pools.get(name);
  }

  /** Bound address of a listener (`127.0.0.1:43121`), for embedders and tests. */
  listenerAddress(name: string): string | undefined {
    return this.#listeners.get(name)?.address();
  }

  /** Bound address of the admin server, or undefined when none runs. */
  adminAddress(): string | undefined {
    return this.#admin?.address ?? undefined;
  }

  /** The config currently applied. */
  get config(): RinglbConfig | null {
    return this.#config;
  }

  /** The registration store behind `registration` pools (embedders may register directly). */
  get registrations(): RegistrationStore {
    return this.#store;
  }

  /** Discovery type feeding a pool. */
  sourceOf(pool: string): BackendSource {
    return this.#registry.sourceOf(pool);
  }

  stats(): Record<string, ListenerStats> {
    const out: Record<string, ListenerStats> = {};
    for (const [name, listener] of this.#listeners) out[name] = listener.stats();
    return out;
  }

  /**
   * Applies `next` (validated) as a diff against the running config. Refused — with nothing
   * changed — when a discovery source refuses its options or a new listener cannot bind. Logs
   * `config reloaded` or `config reload refused`.
   */
  reload(next: RinglbConfig): Promise<ReloadResult> {
    const run = this.#reloading.then(() => this.#reload(next));
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  /**
   * Logs a config that failed validation as refused (the caller validated; nothing changes).
   * `errorCount` counts every error when the caller passes only the first ones.
   */
  refuseReload(errors: readonly string[], errorCount = errors.length): void {
    // One log line of 200,000 errors would be a 20 MB write on the main thread: log the first ones and the count.
    const logged = errors.length > MAX_LOGGED_RELOAD_ERRORS ? errors.slice(0, MAX_LOGGED_RELOAD_ERRORS) : errors;
    this.#logger.error({ errors: logged, errorCount }, 'config reload refused');
  }

  /** Stop active checks, ejection and slow-start timers; eligibility stays as it was last set. */
  stopHealth(): void {
    this.#checks.stop();
    for (const pool of this.#pools.values()) pool.stop();
    for (const pool of this.#retiredPools) pool.stop();
  }

  /** Close every listening socket now; open connections are untouched. */
  stopListening(): void {
    for (const listener of this.#listeners.values()) listener.stopListening();
  }

  /**
   * Graceful stop: refuse new connections at once, let open ones finish, and cut whatever is still
   * open after `timeoutMs`. Discovery and the admin server stop too.
   */
  async drain(timeoutMs: number): Promise<DrainResult> {
    const startedAt = performance.now();
    this.#stopping = true;
    this.stopListening();
    // Nothing new is routed from here on, so health no longer matters; open connections keep flowing.
    this.stopHealth();
    const stopping = Promise.all([this.#registry.stop(), this.#admin?.close()]).catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'stopping discovery or admin failed');
    });
    this.#store.close();
    const listeners = [...this.#listeners.values(), ...this.#retiredListeners];
    const allIdle = Promise.all(listeners.map((l) => l.whenIdle()));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(resolve, timeoutMs, 'deadline');
    });
    const winner = await Promise.race([allIdle.then(() => 'idle' as const), deadline]);
    clearTimeout(timer);
    let forced = 0;
    if (winner === 'deadline') {
      for (const listener of listeners) forced += listener.closeAllConnections();
      await allIdle;
    }
    await stopping;
    return { forced, elapsedMs: Math.round(performance.now() - startedAt) };
  }

  /** Stop at once: no listening, every connection cut. */
  async close(): Promise<void> {
    await this.drain(0);
  }

  // --- building blocks -------------------------------------------------------------------------

  #createPool(poolConfig: PoolConfig, config: RinglbConfig, extra: { capacity?: number; healthyIds?: ReadonlySet<string> } = {}): BackendPool {
    return new BackendPool({
      config: poolConfig,
      logger: this.#logger.child({ pool: poolConfig.name }),
      implementation: this.#coreImplementation,
      drainTimeoutMs: config.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
      ...extra,
    });
  }

  #createListener(listenerConfig: ListenerConfig, pool: BackendPool): Listener {
    return new Listener(listenerConfig, pool, this.#logger.child({ listener: listenerConfig.name }));
  }

  async #startAdmin(config: RinglbConfig): Promise<void> {
    const admin = config.admin!;
    const runtime = this;
    const server = new AdminServer({
      bind: admin.bind,
      token: admin.token,
      logger: this.#logger.child({ component: 'admin' }),
      api: new RuntimeAdminApi({
        poolNames: () => [...runtime.#pools.keys()],
        pool: (name) => runtime.#pools.get(name),
        sourceOf: (name) => runtime.#registry.sourceOf(name),
        store: runtime.#store,
      }),
    });
    const address = await server.listen();
    this.#admin = server;
    this.#logger.info({ address }, 'admin ready');
  }

  /**
   * Envoy's cluster warming: a pool whose backends start pending (active checks, initialHealthy
   * false) waits for its first check round before the listeners bind, so the first clients are
   * not refused with `no_backend`. Bounded by the check timeout plus the first-check spread.
   */
  async #warm(config: RinglbConfig): Promise<void> {
    const warming = config.pools.filter(
      (pool) => pool.healthCheck !== null && !pool.healthCheck.initialHealthy && (this.#pools.get(pool.name)?.backends.length ?? 0) > 0,
    );
    if (warming.length === 0) return;
    const boundMs = warming.reduce((longest, pool) => Math.max(longest, pool.healthCheck!.timeoutMs), 0) + WARMING_SPREAD_MS;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, boundMs);
    });
    await Promise.all(
      warming.map(async (poolConfig) => {
        const pool = this.#pools.get(poolConfig.name)!;
        await Promise.race([pool.health.whenSettled(), deadline]);
        const stats = pool.health.stats();
        this.#logger.info({ pool: poolConfig.name, eligible: stats.eligible, total: stats.backends }, 'pool warmed');
      }),
    );
    clearTimeout(timer);
  }

  /** The registry's (and reload's) way to change a pool's set; grows the pool when slots run out. */
  #applyBackends(name: string, backends: readonly Backend[]): RebuildReport {
    const pool = this.#pools.get(name);
    if (pool === undefined) throw new Error(`unknown pool ${name}`);
    try {
      return pool.setBackends(backends);
    } catch (error) {
      // SlotTable refuses a set with fewer free slots than new backends (slots of removed
      // backends stay reserved while they drain), changing nothing. Anything else is rethrown.
      const capacity = slotCapacity(pool.config, backends.length + pool.backends.length);
      if (!(error instanceof RangeError) || !/free/.test(error.message) || capacity <= pool.capacity) throw error;
      return this.#growPool(pool, backends, capacity);
    }
  }

  #growPool(old: BackendPool, backends: readonly Backend[], capacity: number): RebuildReport {
    const config = this.#config!;
    const fresh = this.#createPool({ ...old.config, backends: old.backends }, config, { capacity, healthyIds: eligibleIds(old) });
    const report = fresh.setBackends(backends);
    this.#swapPool(old, fresh);
    this.#logger.info({ pool: old.name, from: old.capacity, to: capacity }, 'pool grown: more backend slots');
    return report;
  }

  /** Listeners switch to `fresh`; `old` drains its connections and stops checking. */
  #swapPool(old: BackendPool, fresh: BackendPool): void {
    this.#pools.set(fresh.name, fresh);
    for (const listener of this.#listeners.values()) if (listener.pool === old) listener.setPool(fresh);
    if (!this.#stopping) fresh.startHealthChecks(this.#checks);
    this.#retirePool(old);
  }

  #retirePool(pool: BackendPool): void {
    pool.retire();
    // Pools retired earlier whose connections all ended are dropped here (no event tells us sooner).
    for (const retired of this.#retiredPools) if (retired.openConnections() === 0) this.#retiredPools.delete(retired);
    if (pool.openConnections() > 0) this.#retiredPools.add(pool);
  }

  /** A removed listener: no new connections; open ones run until they end or drainTimeoutMs. */
  #retireListener(listener: Listener, drainTimeoutMs: number): void {
    listener.stopListening();
    this.#retiredListeners.add(listener);
    const timer = setTimeout(() => {
      const cut = listener.closeAllConnections();
      if (cut > 0) this.#logger.info({ listener: listener.listenerName, cut, drainTimeoutMs }, 'drain deadline: connections cut');
    }, drainTimeoutMs);
    timer.unref();
    void listener.whenIdle().then(() => {
      clearTimeout(timer);
      this.#retiredListeners.delete(listener);
    });
  }

  // --- reload ---------------------------------------------------------------------------------

  async #reload(next: RinglbConfig): Promise<ReloadResult> {
    const current = this.#config;
    if (current === null || this.#stopping) return this.#refuse(['$: ringlb is not running']);

    // Phase 1: everything that can fail, with nothing changed yet.
    const currentPools = new Map(current.pools.map((pool) => [pool.name, pool]));
    const nextPools = new Map(next.pools.map((pool) => [pool.name, pool]));
    const plans = new Map<string, PoolPlan>();
    for (const pool of next.pools) plans.set(pool.name, planPool(currentPools.get(pool.name), pool));
    for (const pool of current.pools) if (!nextPools.has(pool.name)) plans.set(pool.name, 'remove');

    const sources = new Map<string, DiscoverySource | null>();
    const errors: string[] = [];
    next.pools.forEach((pool, index) => {
      const plan = plans.get(pool.name)!;
      const before = currentPools.get(pool.name);
      if (plan === 'unchanged' || (before !== undefined && sameJson(discoveryOf(before), discoveryOf(pool)))) return;
      try {
        sources.set(pool.name, this.#registry.prepareSource(discoveryOf(pool)));
      } catch (error) {
        errors.push(`pools[${index}].discovery: ${error instanceof Error ? error.message : String(error)}`);
      }
    });

    // New pools are built now (not yet checked or watched) so new listeners bind with their pool.
    const newPools = new Map<string, { pool: BackendPool; report: RebuildReport }>();
    if (errors.length === 0) {
      for (const poolConfig of next.pools) {
        if (plans.get(poolConfig.name) !== 'add') continue;
        const pool = this.#createPool({ ...poolConfig, backends: [] }, next, { capacity: slotCapacity(poolConfig) });
        newPools.set(poolConfig.name, { pool, report: pool.setBackends(poolConfig.backends) });
      }
    }

    const currentListeners = new Map(current.listeners.map((listener) => [listener.name, listener]));
    const nextListenerNames = new Set(next.listeners.map((listener) => listener.name));
    const opened = new Map<string, Listener>();
    if (errors.length === 0) {
      for (const [index, listenerConfig] of next.listeners.entries()) {
        const before = currentListeners.get(listenerConfig.name);
        if (before !== undefined && before.bind.text === listenerConfig.bind.text) continue;
        // A replaced pool is swapped in below; until then the old one serves (and later drains).
        const pool = newPools.get(listenerConfig.pool)?.pool ?? this.#pools.get(listenerConfig.pool)!;
        const listener = this.#createListener(listenerConfig, pool);
        opened.set(listenerConfig.name, listener);
        try {
          // The old listener still holds its address, so moving a listener onto an address
          // another listener gives up in the same reload is refused (EADDRINUSE): do it in two reloads.
          await listener.listen();
        } catch (error) {
          errors.push(`listeners[${index}].bind: ${error instanceof Error ? error.message : String(error)}`);
          break;
        }
      }
    }
    if (errors.length > 0) {
      for (const listener of opened.values()) listener.stopListening();
      for (const { pool } of newPools.values()) pool.stop();
      await Promise.all([...sources.values()].map((source) => source?.stop()));
      return this.#refuse(errors);
    }

    // Phase 2: apply. Nothing below is expected to fail.
    this.#config = next;
    const drainTimeoutMs = next.drainTimeoutMs;
    const changedPools: string[] = [];
    const unchangedPools: string[] = [];
    for (const poolConfig of next.pools) {
      const plan = plans.get(poolConfig.name)!;
      if (plan === 'unchanged') {
        unchangedPools.push(poolConfig.name);
        continue;
      }
      changedPools.push(poolConfig.name);
      const before = currentPools.get(poolConfig.name);
      const discoveryChanged = before === undefined || !sameJson(discoveryOf(before), discoveryOf(poolConfig));
      if (plan === 'add') {
        const { pool, report } = newPools.get(poolConfig.name)!;
        this.#pools.set(poolConfig.name, pool);
        pool.startHealthChecks(this.#checks);
        logPoolUpdated(this.#logger, poolConfig.name, 'config', report, poolConfig.backends.length);
      } else if (plan === 'replace') {
        const old = this.#pools.get(poolConfig.name)!;
        // A discovery pool keeps the set its source reported until the source says otherwise.
        const keepSet = !discoveryChanged && discoveryOf(poolConfig).type !== 'static';
        const backends = keepSet ? old.backends : discoveryOf(poolConfig).type === 'static' ? poolConfig.backends : old.backends;
        const fresh = this.#createPool({ ...poolConfig, backends: [] }, next, {
          capacity: slotCapacity(poolConfig, Math.max(backends.length, poolConfig.backends.length)),
          healthyIds: eligibleIds(old),
        });
        const report = fresh.setBackends(backends);
        this.#swapPool(old, fresh);
        const oldIds = new Set(old.backends.map((b) => b.id));
        const newIds = new Set(backends.map((b) => b.id));
        logPoolUpdated(
          this.#logger,
          poolConfig.name,
          'config',
          {
            added: backends.filter((b) => !oldIds.has(b.id)).map((b) => b.id),
            removed: old.backends.filter((b) => !newIds.has(b.id)).map((b) => b.id),
            reweighted: [],
            buildMs: report.buildMs,
            // Another policy or table shape: old and new tables are not comparable, every key is re-placed.
            movedShare: 1,
          },
          backends.length,
        );
      } else if (plan === 'update') {
        const pool = this.#pools.get(poolConfig.name)!;
        pool.reconfigure(poolConfig, this.#stopping ? null : this.#checks);
        const applied = discoveryOf(poolConfig).type === 'static' && this.#registry.update(poolConfig.name, 'config', poolConfig.backends);
        if (!applied) logPoolUpdated(this.#logger, poolConfig.name, 'config', emptyReport([]), pool.backends.length);
      }
      if (plan !== 'remove' && discoveryChanged) {
        await this.#registry.watch(poolConfig.name, discoveryOf(poolConfig), sources.get(poolConfig.name) ?? null);
      }
    }
    for (const pool of this.#pools.values()) pool.drainTimeoutMs = drainTimeoutMs;

    // Listeners: add, remove, update in place, and point each at its (possibly new) pool.
    const added: string[] = [];
    const removed: string[] = [];
    const rebound: string[] = [];
    for (const [name, listener] of this.#listeners) {
      if (!nextListenerNames.has(name) || opened.has(name)) {
        this.#listeners.delete(name);
        this.#retireListener(listener, drainTimeoutMs);
        if (!opened.has(name)) removed.push(name);
      }
    }
    for (const listenerConfig of next.listeners) {
      const pool = this.#pools.get(listenerConfig.pool)!;
      const fresh = opened.get(listenerConfig.name);
      if (fresh !== undefined) {
        fresh.setPool(pool);
        this.#listeners.set(listenerConfig.name, fresh);
        if (!currentListeners.has(listenerConfig.name)) added.push(listenerConfig.name);
        else rebound.push(listenerConfig.name);
        this.#logger.info({ listener: listenerConfig.name, pool: pool.name, address: fresh.address() }, 'listener ready');
        continue;
      }
      const listener = this.#listeners.get(listenerConfig.name)!;
      listener.updateLimits(listenerConfig);
      if (listener.pool !== pool) listener.setPool(pool);
    }

    // Removed pools go last: no listener refers to them any more.
    for (const [name, plan] of plans) {
      if (plan !== 'remove') continue;
      changedPools.push(name);
      await this.#registry.unwatch(name);
      const pool = this.#pools.get(name);
      this.#pools.delete(name);
      if (pool !== undefined) this.#retirePool(pool);
      this.#logger.info({ pool: name }, 'pool removed');
    }

    if (!sameJson(current.admin ?? null, next.admin ?? null)) await this.#restartAdmin(next);
    if (current.log.level !== next.log.level) {
      // pino children keep the level they were created with; a level change needs a restart.
      this.#logger.warn({ from: current.log.level, to: next.log.level }, 'log.level changes apply after a restart');
    }

    const summary: ReloadSummary = { listenersAdded: added, listenersRemoved: removed, listenersRebound: rebound, poolsChanged: changedPools, poolsUnchanged: unchangedPools };
    this.#logger.info(summary, 'config reloaded');
    return { ok: true, summary };
  }

  async #restartAdmin(next: RinglbConfig): Promise<void> {
    const old = this.#admin;
    this.#admin = null;
    await old?.close();
    if (next.admin == null) return;
    try {
      await this.#startAdmin(next);
    } catch (error) {
      // The rest of the reload stands; the admin API stays down until a reload fixes its bind.
      this.#logger.error({ err: error instanceof Error ? error.message : String(error) }, 'admin restart failed');
    }
  }

  #refuse(errors: readonly string[]): ReloadResult {
    this.refuseReload(errors);
    return { ok: false, errors };
  }
}

/** Discovery of a pool, static when a hand-built config leaves it out. */
function discoveryOf(pool: PoolConfig): NonNullable<PoolConfig['discovery']> {
  return pool.discovery ?? { type: 'static' };
}

/** Settings a balancer cannot absorb: its tables or key hashing are built from them. */
function needsFreshPool(before: PoolConfig, after: PoolConfig): boolean {
  return (
    before.balance !== after.balance ||
    before.hashKey !== after.hashKey ||
    before.maglev.tableSize !== after.maglev.tableSize ||
    before.ringHash.pointsPerWeight !== after.ringHash.pointsPerWeight
  );
}

function planPool(before: PoolConfig | undefined, after: PoolConfig): PoolPlan {
  if (before === undefined) return 'add';
  if (sameJson(before, after)) return 'unchanged';
  return needsFreshPool(before, after) ? 'replace' : 'update';
}

function eligibleIds(pool: BackendPool): Set<string> {
  const ids = new Set<string>();
  for (const backend of pool.backends) {
    const slot = pool.balancer.slotOf(backend.id);
    if (slot >= 0 && pool.balancer.isEligible(slot)) ids.add(backend.id);
  }
  return ids;
}

function emptyReport(added: readonly string[]): Pick<RebuildReport, 'added' | 'removed' | 'reweighted' | 'buildMs' | 'movedShare'> {
  return { added, removed: [], reweighted: [], buildMs: 0, movedShare: 0 };
}

/** Deep equality of config values as JSON (HostPort by its fields, check bytes by content). */
function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, bytesAsHex) === JSON.stringify(b, bytesAsHex);
}

function bytesAsHex(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value;
}
