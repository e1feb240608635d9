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
 * - pools: what happens to each is decided by the reload planner (config/reload-plan.ts), the
 *   same plan `ringlb diff` prints; this file only executes it. A `replace` (policy, keyed hash
 *   key, table shape, growth) rebuilds the pool's balancer in place: same BackendPool, same slot
 *   per backend, same health owner and checks, and connections keep flowing unless their backend
 *   left the set. An `update` is absorbed in place; membership changes of static pools go through
 *   the registry's diff like any discovery update; a changed discovery restarts the pool's
 *   source; unchanged pools are not touched at all.
 * - admin: a changed bind or token restarts the admin server; changed `admin.limits` alone apply
 *   to the running one in place (no rebind, no connection cut).
 *
 * Whole or nothing: everything that can fail (planning, discovery options, building new pools and
 * rebuilt balancers, binding new listeners) runs before anything changes; a failure refuses the
 * reload with nothing changed.
 *
 * Capacity: a pool's balancer has a fixed number of slots (backend-pool.ts `slotCapacity`). A set
 * that outgrows it (a big discovery answer) gets its balancer rebuilt in place with twice the slots
 * it needs; tables are identical (they depend on ids and weights only), and health and
 * connections stay as they are.
 */
import { AccessLog } from './access-log/access-log.js';
import { closeOutput, isFileOutput, openOutput } from './access-log/output.js';
import { accessLogSettingsOf, type AccessLogSettings } from './access-log/settings.js';
import { AdminServer } from './admin/server.js';
import { DashboardAssets } from './admin/dashboard-assets.js';
import { DEFAULT_ADMIN_LIMITS } from './admin/limits.js';
import { discoveryOf, measureChange, planReload, type LivePool, type PoolPlan, type ReloadPlan } from './config/reload-plan.js';
import type { Backend, BackendSource } from './backend.js';
import type { ListenerConfig, PoolConfig, RinglbConfig } from './config/types.js';
import { SlotCapacityError, type RebuildReport } from './core/index.js';
import type { DiscoverySource } from './discovery/index.js';
import type { ResolveHost } from './discovery/name-resolver.js';
import { destinationOf, type DestinationStream, type Logger } from './log.js';
import { HealthCheckScheduler } from './health/scheduler.js';
import { BackendPool, slotCapacity, type PreparedRebuild } from './proxy/backend-pool.js';
import { Listener, type ListenerHandle, type ListenerStats } from './proxy/listener.js';
import { planWorkers, REUSE_PORT_MIN_NODE } from './config/workers.js';
import { ThreadedListener } from './control/threaded-listener.js';
import { WorkerSupervisor } from './control/workers.js';
import { logPoolUpdated, Registry } from './registry/registry.js';
import { REGISTRATION_BATCH_MS, RegistrationStore } from './discovery/registration-store.js';
import { RuntimeAdminApi, type AdminRuntimeView } from './admin/runtime-api.js';
import type { BackendChange, ChangeOrigin } from './admin/api.js';
import { EventBus } from './events/bus.js';
import { publishSetChange } from './events/membership.js';
import { eventStreamCap, EventStream } from './events/sse.js';
import type { EventSink } from './events/types.js';
import { AlertDispatcher, type ReceiverStats } from './events/webhooks.js';
import { EdgeWatch } from './events/edge-watch.js';
import type { TrafficView } from './metrics/traffic-view.js';
import { BackendOverrides, type ResolvedSet } from './registry/backend-overrides.js';
import { ringlbVersion } from './version.js';
import { LoopDelayCells } from './shared-state/loop-delay.js';
import { ListenerTrafficCounters } from './shared-state/traffic-counters.js';
import { sharedClockMicros, SourceLimits } from './shared-state/source-limits.js';
import { needsSourceLimits } from './proxy/listener-edge.js';

/** How often the main thread sweeps per-source rate cells (source-limits.ts: about once a minute). */
const SOURCE_LIMITS_SWEEP_MS = 60_000;
import { RuntimeTraffic } from './metrics/runtime-traffic.js';
import { installMetricsRoute, PrometheusExporter } from './metrics/prometheus.js';

export interface RinglbOptions {
  readonly logger: Logger;
  /** Balancer implementation for every pool; default is the core's default (WASM). */
  readonly coreImplementation?: 'wasm' | 'reference';
  /** How pools resolve backend host names (off the hot path); default getaddrinfo. Tests inject one. */
  readonly resolveHost?: ResolveHost;
  /**
   * Access lines of connections this thread carries go here instead of `log.access.output`
   * (embedders, tests). Without it, an output of `stdout` (the default) in this thread means the
   * stream `logger` writes to, where access lines went before they had a stream of their own.
   * Data-plane worker threads always write to the configured output.
   */
  readonly accessLogDestination?: DestinationStream;
  /** Honour the test-only worker fault hook (`crashWorkerForTest`); default RINGLB_TEST_HOOKS=1. */
  readonly testHooks?: boolean;
  /**
   * How often open connections add their bytes to the traffic counters (ms); default 5000. Tests
   * shorten it to see a long-lived connection's bytes without waiting.
   */
  readonly trafficFlushMs?: number;
  /**
   * How often the main thread reads the listener counters for `refusals_*` / `fds_*` events (ms,
   * default EDGE_WATCH_MS) and how often it may write a summary line per listener and outcome (ms,
   * default REFUSAL_LOG_INTERVAL_MS). Tests shorten them.
   */
  readonly edgeWatch?: { readonly intervalMs?: number; readonly logIntervalMs?: number };
  /**
   * Also receives every event as its producer publishes it (before the bus numbers it), for an
   * embedder; the runtime's own bus (`Ringlb.events`) feeds the SSE stream and alert webhooks.
   */
  readonly events?: EventSink;
}

/** Where a config came from, for `GET /v1/config` and the status. */
export interface ConfigSource {
  /** The file it was read from; absent when an embedder passes a config it built. */
  readonly path?: string;
}

/** Start-up waits at most this long for backend names' first answers; a slower name connects by name until it resolves. */
const RESOLVE_AT_START_BOUND_MS = 5000;

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

export type ReloadResult =
  | { readonly ok: true; readonly summary: ReloadSummary; /** The plan this reload executed. */ readonly plan: ReloadPlan }
  | { readonly ok: false; readonly errors: readonly string[] };

/** Extra time for the first check round to start: the scheduler spreads first checks over up to 1 s. */
const WARMING_SPREAD_MS = 1000;

const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

/** A graceful stop waits at most this long for alert webhooks to send what is queued. */
const ALERT_FLUSH_MS = 2000;

/** Errors a refused reload logs (all are counted in `errorCount`); `ringlb check` lists them. */
const MAX_LOGGED_RELOAD_ERRORS = 100;

export class Ringlb {
  readonly #logger: Logger;
  readonly #coreImplementation: 'wasm' | 'reference' | undefined;
  readonly #resolveHost: ResolveHost | undefined;
  readonly #pools = new Map<string, BackendPool>();
  readonly #listeners = new Map<string, ListenerHandle>();
  /** Removed listeners and replaced pools whose connections are still draining. */
  readonly #retiredListeners = new Set<ListenerHandle>();
  /** Data-plane worker threads; null when this thread carries the connections (`workers` 1, or Node < 22.12). */
  #workers: WorkerSupervisor | null = null;
  /** This thread's access log when it carries the connections (no worker threads); null otherwise. */
  #accessLog: AccessLog | null = null;
  /** The access log's output descriptor, the process's one (access-log/output.ts); -1 before start. */
  #accessLogFd = -1;
  readonly #accessLogDestination: DestinationStream | undefined;
  readonly #testHooks: boolean;
  readonly #retiredPools = new Set<BackendPool>();
  /** One for every pool: its concurrency cap is process-wide (1000 backends never open 1000 sockets at once). */
  readonly #checks = new HealthCheckScheduler();
  /** Registration bursts are batched: one table rebuild per pool per window, not one per PUT. */
  readonly #store = new RegistrationStore({ batchMs: REGISTRATION_BATCH_MS });
  readonly #registry: Registry;
  /** Events of every producer (health, registry, reload, admin); SSE clients and alert webhooks subscribe. */
  readonly #bus: EventBus;
  /** What producers publish to: the bus, and an embedder's sink when one was given. */
  readonly #events: EventSink;
  readonly #eventStream: EventStream;
  readonly #alerts: AlertDispatcher;
  /** Turns the shared listener counters' refusals and descriptor exhaustion into events and summary lines. */
  readonly #edgeWatch: EdgeWatch;
  #admin: AdminServer | null = null;
  #config: RinglbConfig | null = null;
  /** The file the config in force came from and when it was applied (epoch ms). */
  #configOrigin: { readonly path: string | null; readonly loadedAt: number } | null = null;
  readonly #startedAt = Date.now();
  /** Admin overrides of backend state and weight, applied over every set a pool's source reports. */
  readonly #overrides = new BackendOverrides();
  #started = false;
  #stopping = false;
  /** Reloads run one at a time (a SIGHUP during a reload waits for it). */
  #reloading: Promise<unknown> = Promise.resolve();
  readonly #trafficFlushMs: number | undefined;
  /** Connections ended per listener name, every thread's; kept by name so a rebound listener keeps counting. */
  readonly #listenerTraffic = new Map<string, ListenerTrafficCounters>();
  readonly #traffic: RuntimeTraffic;
  /** Event-loop delay of every thread; sized once the worker count is known (start). */
  #loopDelay: LoopDelayCells = LoopDelayCells.create(0);
  #stopLoopSampling: (() => void) | null = null;
  #exporter: PrometheusExporter | null = null;
  readonly #reloads = { applied: 0, refused: 0 };
  /**
   * Per-source limits by listener name (src/shared-state/source-limits.ts), created here when a
   * listener's config first sets one and attached by every data-plane thread; kept by name so a
   * rebound listener keeps its counts. The main thread sweeps them (SOURCE_LIMITS_SWEEP_MS).
   */
  readonly #sourceLimits = new Map<string, SourceLimits>();
  #sourceLimitsSweep: NodeJS.Timeout | null = null;

  constructor(options: RinglbOptions) {
    this.#logger = options.logger;
    this.#coreImplementation = options.coreImplementation;
    this.#resolveHost = options.resolveHost;
    this.#accessLogDestination = options.accessLogDestination;
    this.#testHooks = options.testHooks ?? process.env['RINGLB_TEST_HOOKS'] === '1';
    const bus = new EventBus({ logger: this.#logger.child({ component: 'events' }) });
    const embedder = options.events;
    this.#bus = bus;
    this.#events =
      embedder === undefined
        ? bus
        : {
            publish(event) {
              bus.publish(event);
              embedder.publish(event);
            },
          };
    this.#eventStream = new EventStream({ bus });
    this.#alerts = new AlertDispatcher({ bus, logger: this.#logger.child({ component: 'alerts' }) });
    this.#trafficFlushMs = options.trafficFlushMs;
    this.#edgeWatch = new EdgeWatch({
      events: this.#events,
      logger: this.#logger,
      listeners: () => this.#listenerTraffic,
      intervalMs: options.edgeWatch?.intervalMs,
      logIntervalMs: options.edgeWatch?.logIntervalMs,
    });
    this.#traffic = new RuntimeTraffic({
      pools: () => [...this.#pools.values(), ...[...this.#retiredPools].filter((pool) => pool.openConnections() > 0)],
      listeners: () => this.#listenerTotals(),
    });
    this.#registry = new Registry({
      logger: this.#logger,
      store: this.#store,
      events: this.#events,
      host: {
        // The registry diffs what sources report against what they reported, not against admin overrides.
        currentBackends: (name) => this.#configuredBackends(name),
        applyBackends: (name, backends) => this.#applyReported(name, backends),
        runningBackends: (name) => this.#pools.get(name)?.backends,
      },
    });
  }

  /**
   * Build every pool, start discovery and the admin server, warm pools with active checks, then
   * bind every listener. If a bind fails, everything started is stopped again and the error is
   * thrown: a half-started balancer never serves.
   */
  async start(config: RinglbConfig, origin: ConfigSource = {}): Promise<void> {
    if (this.#started) throw new Error('ringlb: start() called twice');
    this.#started = true;
    this.#config = config;
    this.#configOrigin = { path: origin.path ?? null, loadedAt: Date.now() };
    const accessLog = accessLogSettingsOf(config.log);
    try {
      this.#accessLogFd = openOutput(accessLog.output);
    } catch (error) {
      throw new Error(`log.access.output: ${error instanceof Error ? error.message : String(error)}`);
    }
    // Before any check runs: a backend found down at start-up (pending → down) is news.
    this.#alerts.configure(config.alerts);
    try {
      await this.#startWorkers(config);
    } catch (error) {
      closeOutput(this.#accessLogFd);
      throw error;
    }
    if (this.#workers === null) {
      this.#accessLog = new AccessLog(accessLog, {
        worker: 0,
        fd: this.#accessLogFd,
        destination: this.#accessLogDestination,
        stdout: destinationOf(this.#logger),
      });
    }
    for (const poolConfig of config.pools) this.#pools.set(poolConfig.name, this.#createPool(poolConfig, config));
    await this.#resolveNames();
    // After every pool is built: a check result can only land on a pool that exists. Checks start
    // before the listeners bind, so pending backends get their first verdict as early as possible.
    for (const pool of this.#pools.values()) pool.startHealthChecks(this.#checks);
    for (const listenerConfig of config.listeners) {
      const pool = this.#pools.get(listenerConfig.pool);
      if (pool === undefined) throw new Error(`listener ${listenerConfig.name}: unknown pool ${listenerConfig.pool}`);
      this.#listeners.set(listenerConfig.name, this.#createListener(listenerConfig, pool));
    }
    this.#edgeWatch.start();
    try {
      for (const poolConfig of config.pools) await this.#registry.watch(poolConfig.name, discoveryOf(poolConfig));
      // close()/drain() may come while start() awaits (a signal during warming): from then on
      // nothing more may open, or a socket would outlive the stop and keep the process alive.
      if (this.#stopping) return;
      if (config.admin != null) await this.#startAdmin(config);
      await this.#warm(config);
      for (const [name, listener] of this.#listeners) {
        if (this.#stopping) return;
        const address = await listener.listen();
        this.#logger.info({ listener: name, pool: listener.pool.name, address }, 'listener ready');
      }
    } catch (error) {
      await this.stopListening();
      this.stopHealth();
      await this.#registry.stop();
      await this.#admin?.close();
      this.#store.close();
      this.#closeEvents();
      await this.#workers?.stop();
      this.#closeAccessLog();
      this.#stopLoopSampling?.();
      throw error;
    }
  }

  /**
   * `workers` above 1 on a Node with reusePort: the data plane moves to that many worker threads,
   * started before any pool exists so that every pool's first snapshot reaches them all.
   */
  async #startWorkers(config: RinglbConfig): Promise<void> {
    const plan = planWorkers(config.workers);
    if (plan.warning !== null) this.#logger.warn({ workers: plan.requested, node: process.versions.node, needs: REUSE_PORT_MIN_NODE }, plan.warning);
    this.#loopDelay = LoopDelayCells.create(plan.count <= 1 ? 0 : plan.count);
    this.#stopLoopSampling = this.#loopDelay.sample(0);
    if (plan.count <= 1) return;
    const workers = new WorkerSupervisor({
      count: plan.count,
      logLevel: config.log.level,
      accessLog: accessLogSettingsOf(config.log),
      accessLogFd: this.#accessLogFd,
      logger: this.#logger.child({ component: 'workers' }),
      testHooks: this.#testHooks,
      loopDelay: this.#loopDelay,
      trafficFlushMs: this.#trafficFlushMs,
    });
    this.#workers = workers;
    await workers.start();
  }

  /** The event bus: embedders may subscribe or publish (the admin PATCH route publishes through it). */
  get events(): EventBus {
    return this.#bus;
  }

  /** Delivery counters of every alert webhook (for metrics: `ringlb_alerts_*_total{receiver}`). */
  alertStats(): ReceiverStats[] {
    return this.#alerts.stats();
  }

  /** Data-plane threads running (0 when this thread carries the connections). */
  get workerCount(): number {
    return this.#workers?.count ?? 0;
  }

  /** The supervisor of the data-plane threads, for tests and diagnostics; null without threads. */
  get workers(): WorkerSupervisor | null {
    return this.#workers;
  }

  /**
   * Test-only fault hook (RINGLB_TEST_HOOKS=1): worker `index` throws an uncaught exception.
   * Resolves with its index once its replacement serves every listener.
   */
  crashWorkerForTest(index: number): Promise<number> {
    if (!this.#testHooks) return Promise.reject(new Error('test hooks are off (RINGLB_TEST_HOOKS=1 turns them on)'));
    if (this.#workers === null) return Promise.reject(new Error('no data-plane worker threads run'));
    return this.#workers.crashForTest(index);
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

  /** Process-wide traffic totals per backend and listener (summed from shared counters when read): `/metrics`, `/v1/status`. */
  get traffic(): TrafficView {
    return this.#traffic;
  }

  /** Every listener name with counters: its open connections over every socket of that name (a rebound one drains). */
  #listenerTotals(): { name: string; active: number; outcomes: ListenerTrafficCounters }[] {
    const active = new Map<string, number>();
    for (const listener of [...this.#listeners.values(), ...this.#retiredListeners]) {
      active.set(listener.listenerName, (active.get(listener.listenerName) ?? 0) + listener.stats().active);
    }
    // A listener removed from the config leaves once its connections have drained.
    for (const name of this.#listenerTraffic.keys()) if (!active.has(name)) this.#listenerTraffic.delete(name);
    return [...this.#listenerTraffic].map(([name, outcomes]) => ({ name, active: active.get(name) ?? 0, outcomes }));
  }

  #listenerCounters(name: string): ListenerTrafficCounters {
    let counters = this.#listenerTraffic.get(name);
    if (counters === undefined) {
      counters = ListenerTrafficCounters.create(Math.max(1, this.workerCount));
      this.#listenerTraffic.set(name, counters);
    }
    return counters;
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
  reload(next: RinglbConfig, origin: ConfigSource = {}): Promise<ReloadResult> {
    const run = this.#reloading.then(() => this.#reload(next, origin));
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  /**
   * Logrotate (SIGUSR1): the access-log file's path is opened again and every thread switches to
   * it, so after a rename new lines go to a new file; the old descriptor closes once none writes to
   * it. Logs `access log reopened`, or `access log reopen failed` (the old file stays in use).
   * Queued with reloads, so the two never interleave. Resolves with true when reopened.
   */
  reopenAccessLog(): Promise<boolean> {
    const run = this.#reloading.then(() => this.#reopenAccessLog());
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  async #reopenAccessLog(): Promise<boolean> {
    const config = this.#config;
    if (config === null || this.#stopping) return false;
    const settings = accessLogSettingsOf(config.log);
    // stdout and stderr have no path to open again.
    if (!isFileOutput(settings.output)) {
      this.#logger.info({ output: settings.output }, 'access log reopened');
      return true;
    }
    let fd: number;
    try {
      fd = openOutput(settings.output);
    } catch (error) {
      this.#logger.error({ output: settings.output, error: error instanceof Error ? error.message : String(error) }, 'access log reopen failed');
      return false;
    }
    await this.#switchAccessLog(settings, fd);
    this.#logger.info({ output: settings.output }, 'access log reopened');
    return true;
  }

  /** Every thread writes to `fd` with `settings` from now on; then the previous descriptor closes. */
  async #switchAccessLog(settings: AccessLogSettings, fd: number): Promise<void> {
    const previous = this.#accessLogFd;
    this.#accessLogFd = fd;
    this.#accessLog?.configure(settings, fd);
    await this.#workers?.configureAccessLog(settings, fd);
    if (previous !== fd) closeOutput(previous);
  }

  #closeAccessLog(): void {
    this.#accessLog?.close();
    if (this.#accessLogFd >= 0) closeOutput(this.#accessLogFd);
    this.#accessLogFd = -1;
  }

  /**
   * Logs a config that failed validation as refused (the caller validated; nothing changes).
   * `errorCount` counts every error when the caller passes only the first ones.
   */
  refuseReload(errors: readonly string[], errorCount = errors.length): void {
    // One log line of 200,000 errors would be a 20 MB write on the main thread: log the first ones and the count.
    const logged = errors.length > MAX_LOGGED_RELOAD_ERRORS ? errors.slice(0, MAX_LOGGED_RELOAD_ERRORS) : errors;
    this.#logger.error({ errors: logged, errorCount }, 'config reload refused');
    const more = errorCount > 1 ? ` (and ${errorCount - 1} more)` : '';
    this.#events.publish({ type: 'reload', result: 'refused', source: 'config', message: `${errors[0] ?? 'refused'}${more}` });
    this.#reloads.refused += 1;
  }

  /** Stop active checks, ejection and slow-start timers; eligibility stays as it was last set. */
  stopHealth(): void {
    this.#checks.stop();
    for (const pool of this.#pools.values()) pool.stop();
    for (const pool of this.#retiredPools) pool.stop();
  }

  /** Close every listening socket now; open connections are untouched. Resolves once every socket is closed. */
  async stopListening(): Promise<void> {
    await Promise.all([...this.#listeners.values()].map((listener) => listener.close()));
  }

  /**
   * Graceful stop: refuse new connections at once, let open ones finish, and cut whatever is still
   * open after `timeoutMs`. Discovery and the admin server stop too.
   */
  async drain(timeoutMs: number): Promise<DrainResult> {
    const startedAt = performance.now();
    this.#stopping = true;
    if (this.#sourceLimitsSweep !== null) clearInterval(this.#sourceLimitsSweep);
    this.#sourceLimitsSweep = null;
    const closing = this.stopListening();
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
    await closing;
    await stopping;
    // The last events (a backend down just before the stop) get what is left of the drain time, at most ALERT_FLUSH_MS.
    await this.#alerts.flush(Math.min(ALERT_FLUSH_MS, timeoutMs - (performance.now() - startedAt)));
    this.#closeEvents();
    await this.#workers?.stop();
    this.#closeAccessLog();
    this.#stopLoopSampling?.();
    this.#stopLoopSampling = null;
    return { forced, elapsedMs: Math.round(performance.now() - startedAt) };
  }

  /** SSE streams end; webhook deliveries in flight are aborted (queued events count as dropped). */
  #closeEvents(): void {
    this.#edgeWatch.stop();
    this.#eventStream.close();
    this.#alerts.close();
  }

  /** Stop at once: no listening, every connection cut. */
  async close(): Promise<void> {
    await this.drain(0);
  }

  // --- admin: status and runtime overrides -----------------------------------------------------

  /** What the admin API reads and asks of this runtime (`RuntimeAdminApi`); pools are looked up by name on every call. */
  adminView(): AdminRuntimeView {
    return {
      poolNames: () => [...this.#pools.keys()],
      pool: (name) => this.#pools.get(name),
      sourceOf: (name) => this.#registry.sourceOf(name),
      store: this.#store,
      process: () => ({ version: ringlbVersion(), pid: process.pid, startedAt: this.#startedAt, workers: Math.max(1, this.workerCount) }),
      configInForce: () => (this.#config === null || this.#configOrigin === null ? null : { config: this.#config, ...this.#configOrigin }),
      listeners: () =>
        [...this.#listeners].map(([name, listener]) => ({
          name,
          bind: listener.address(),
          pool: listener.pool.name,
          activeConnections: listener.stats().active,
        })),
      configuredBackends: (name) => this.#configuredBackends(name),
      override: (pool, id) => this.#overrides.get(pool, id),
      changeBackend: (pool, id, change, origin) => this.changeBackend(pool, id, change, origin),
      traffic: this.#traffic,
      implementation: this.#coreImplementation,
    };
  }

  /**
   * A runtime override of one backend's state and/or weight (HAProxy's `set server`), for every
   * pool whatever its source. The override joins the set the pool's source reports, and the
   * result goes to the pool like any membership change: a state to its health owner (drain and
   * maint take no new connections, open ones keep flowing), a weight through a table rebuild.
   * Queued behind a reload in progress; resolves once every worker runs it. False when the pool
   * or backend is unknown (or ringlb is stopping).
   */
  changeBackend(poolName: string, id: string, change: BackendChange, origin: ChangeOrigin): Promise<boolean> {
    const run = this.#reloading.then(() => this.#changeBackend(poolName, id, change, origin));
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  async #changeBackend(poolName: string, id: string, change: BackendChange, origin: ChangeOrigin): Promise<boolean> {
    const pool = this.#pools.get(poolName);
    const reported = this.#configuredBackends(poolName);
    const before = pool?.backends.find((backend) => backend.id === id);
    if (pool === undefined || reported === undefined || before === undefined || this.#stopping) return false;
    const resolved = this.#overrides.set(poolName, reported, id, change, Date.now());
    if (resolved === undefined) return false;
    const wanted = resolved.backends.find((backend) => backend.id === id) ?? before;
    // A PATCH to what is in force already changes nothing in the pool (no rebuild, no event).
    const report = wanted.state !== before.state || wanted.weight !== before.weight ? this.#applyBackends(poolName, resolved.backends) : null;
    resolved.commit();
    const after = pool.backends.find((backend) => backend.id === id) ?? before;
    this.#logger.info(
      {
        pool: poolName,
        id,
        backend: after.address.text,
        source: 'admin',
        remote: origin.remoteAddress,
        state: { from: before.state, to: after.state },
        weight: { from: before.weight, to: after.weight },
        ...(report?.changed === true ? { movedShare: Math.round(report.movedShare * 1e6) / 1e6 } : {}),
      },
      'backend changed by admin',
    );
    // In force in every thread before anyone hears of it.
    await this.#workers?.sync();
    const subject = { pool: poolName, backend: id, address: after.address.text, source: 'admin' };
    if (before.state !== after.state) this.#events.publish({ type: 'state_changed', ...subject, from: before.state, to: after.state });
    if (before.weight !== after.weight) this.#events.publish({ type: 'weight_changed', ...subject, weight: after.weight, previousWeight: before.weight });
    return true;
  }

  /** The set a pool's source last reported (before admin overrides); undefined for an unknown pool. */
  #configuredBackends(name: string): readonly Backend[] | undefined {
    const pool = this.#pools.get(name);
    if (pool === undefined) return undefined;
    return this.#overrides.configured(name) ?? pool.backends;
  }

  /** A source reported a new set: overrides of backends it changed end, the others stay on top of it. */
  #applyReported(name: string, reported: readonly Backend[]): RebuildReport {
    const resolved = this.#overrides.resolve(name, reported);
    const report = this.#applyBackends(name, resolved.backends);
    resolved.commit();
    this.#logOverridesEnded(name, resolved.released);
    return report;
  }

  #logOverridesEnded(pool: string, ids: readonly string[]): void {
    for (const id of ids) this.#logger.info({ pool, id }, 'admin override ended: the config or discovery changed the backend');
  }

  // --- building blocks -------------------------------------------------------------------------

  /**
   * Backend names get their first answer before checks start and listeners bind, so the first
   * connections and checks already connect to an IP literal. Bounded: a name still unanswered
   * connects by name until its answer arrives (logged by the pool).
   */
  async #resolveNames(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, RESOLVE_AT_START_BOUND_MS);
    });
    await Promise.race([Promise.all([...this.#pools.values()].map((pool) => pool.whenResolved())), bound]);
    clearTimeout(timer);
  }

  #createPool(poolConfig: PoolConfig, config: RinglbConfig, extra: { capacity?: number; healthyIds?: ReadonlySet<string> } = {}): BackendPool {
    return new BackendPool({
      sharing: this.#workers?.sharingFor(),
      config: poolConfig,
      logger: this.#logger.child({ pool: poolConfig.name }),
      implementation: this.#coreImplementation,
      drainTimeoutMs: config.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
      resolveHost: this.#resolveHost,
      events: this.#events,
      ...extra,
    });
  }

  #createListener(listenerConfig: ListenerConfig, pool: BackendPool): ListenerHandle {
    const outcomes = this.#listenerCounters(listenerConfig.name);
    if (this.#workers !== null) return new ThreadedListener(listenerConfig, pool, this.#workers, outcomes, this.#sourceLimitsFor);
    return new Listener(listenerConfig, pool, this.#logger.child({ worker: 0, listener: listenerConfig.name }), this.#accessLog!, undefined, {
      outcomes: outcomes.writer(0),
      flushMs: this.#trafficFlushMs,
      sourceLimits: this.#sourceLimitsFor,
    });
  }

  /** A listener's shared per-source counts when its config sets a per-source limit (created once per name). */
  #sourceLimitsFor = (config: ListenerConfig): SourceLimits | null => {
    if (!needsSourceLimits(config)) return null;
    let limits = this.#sourceLimits.get(config.name);
    if (limits === undefined) {
      limits = SourceLimits.create();
      this.#sourceLimits.set(config.name, limits);
    }
    if (this.#sourceLimitsSweep === null) {
      // Rate cells of quiet sources go idle before the shared microsecond clock can wrap on them.
      this.#sourceLimitsSweep = setInterval(() => {
        const now = sharedClockMicros();
        // A listener gone from the config (and done draining) gives its 1.25 MiB back.
        const names = new Set([...this.#listeners.values(), ...this.#retiredListeners].map((listener) => listener.listenerName));
        for (const [name, each] of this.#sourceLimits) {
          if (names.has(name)) each.sweep(now);
          else this.#sourceLimits.delete(name);
        }
      }, SOURCE_LIMITS_SWEEP_MS);
      this.#sourceLimitsSweep.unref();
    }
    return limits;
  };

  async #startAdmin(config: RinglbConfig): Promise<void> {
    const admin = config.admin!;
    const server = new AdminServer({
      bind: admin.bind,
      token: admin.token,
      ...(admin.limits === undefined ? {} : { limits: admin.limits }),
      logger: this.#logger.child({ component: 'admin' }),
      publicFiles: new DashboardAssets(),
      api: new RuntimeAdminApi(this.adminView()),
    });
    this.#eventStream.install(server);
    this.#eventStream.maxClients = eventStreamCap(server.limits.maxConnections);
    this.#exporter ??= new PrometheusExporter({
      traffic: this.#traffic,
      reloads: () => this.#reloads,
      loopDelay: this.#loopDelay,
      workerCount: () => this.workerCount,
      alerts: () => this.#alerts.stats(),
      adminConnections: () => this.#admin?.connectionCounts() ?? null,
    });
    installMetricsRoute(server, this.#exporter);
    const address = await server.listen();
    if (this.#stopping) {
      // Stopped while binding: drain() found no admin server to close, so this one closes itself.
      await server.close();
      return;
    }
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
        this.#logger.info({ pool: poolConfig.name, healthy: stats.healthy, routable: stats.routable, total: stats.backends }, 'pool warmed');
      }),
    );
    clearTimeout(timer);
  }

  /** The registry's way to change a pool's set; grows the pool in place when slots run out. */
  #applyBackends(name: string, backends: readonly Backend[]): RebuildReport {
    const pool = this.#pools.get(name);
    if (pool === undefined) throw new Error(`unknown pool ${name}`);
    try {
      return pool.setBackends(backends);
    } catch (error) {
      // SlotTable refuses a set with fewer free slots than new backends (slots of removed
      // backends stay reserved while they drain), changing nothing. Anything else is rethrown.
      const capacity = slotCapacity(pool.config, backends.length + pool.backends.length);
      if (!(error instanceof SlotCapacityError) || capacity <= pool.capacity) throw error;
      return this.#growPool(pool, backends, capacity);
    }
  }

  /** Same policy, more slots: the balancer is rebuilt in place; health and connections stay. */
  #growPool(pool: BackendPool, backends: readonly Backend[], capacity: number): RebuildReport {
    const before = pool.backends;
    const from = pool.capacity;
    const prepared = pool.prepareRebuild(pool.config, backends, capacity);
    // Tables depend on ids and weights only, so what moves is what the same change moves in a pool with room.
    const measured = measureChange(pool.config, pool.config, before, backends, capacity, { implementation: this.#coreImplementation });
    pool.commitRebuild(prepared, this.#stopping ? null : this.#checks, measured.movedShare);
    this.#logger.info({ pool: pool.name, from, to: pool.capacity }, 'pool grown: more backend slots');
    return { ...rebuildReportOf(before, backends, prepared), movedShare: measured.movedShare };
  }

  #retirePool(pool: BackendPool): void {
    pool.retire();
    // Pools retired earlier whose connections all ended are dropped here (no event tells us sooner).
    for (const retired of this.#retiredPools) if (retired.openConnections() === 0) this.#retiredPools.delete(retired);
    if (pool.openConnections() > 0) this.#retiredPools.add(pool);
  }

  /** A removed listener: no new connections; open ones run until they end or drainTimeoutMs. */
  /** Resolves once the listener's sockets are closed (new connections are refused). */
  #retireListener(listener: ListenerHandle, drainTimeoutMs: number): Promise<void> {
    const closed = listener.close();
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
    return closed;
  }

  // --- reload ---------------------------------------------------------------------------------

  /** What the running process knows about a pool beyond its config, for the planner. */
  #livePool(name: string): LivePool | undefined {
    const pool = this.#pools.get(name);
    if (pool === undefined) return undefined;
    // The set its source reported: a plan compares configs, and an override stays unless the config changes its backend.
    return { backends: this.#configuredBackends(name)!, capacity: pool.capacity, freeSlots: pool.freeSlots() };
  }

  async #reload(next: RinglbConfig, origin: ConfigSource): Promise<ReloadResult> {
    const current = this.#config;
    if (current === null || this.#stopping) return this.#refuse(['$: ringlb is not running']);

    // Phase 1: everything that can fail, with nothing changed yet.
    let plan: ReloadPlan;
    try {
      plan = planReload(current, next, { implementation: this.#coreImplementation, live: (name) => this.#livePool(name) });
    } catch (error) {
      return this.#refuse([`$: ${error instanceof Error ? error.message : String(error)}`]);
    }
    const nextIndex = new Map(next.pools.map((pool, index) => [pool.name, index]));
    const nextPools = new Map(next.pools.map((pool) => [pool.name, pool]));
    const errors: string[] = [];
    const accessLogBefore = accessLogSettingsOf(current.log);
    const accessLogNext = accessLogSettingsOf(next.log);
    const accessLogChanged = JSON.stringify(accessLogBefore) !== JSON.stringify(accessLogNext);
    // A new output is opened now, so a path that cannot be opened refuses the reload.
    let accessLogFd = this.#accessLogFd;
    if (accessLogNext.output !== accessLogBefore.output) {
      try {
        accessLogFd = openOutput(accessLogNext.output);
      } catch (error) {
        errors.push(`log.access.output: ${error instanceof Error ? error.message : String(error)}`);
      }
    }

    const sources = new Map<string, DiscoverySource | null>();
    for (const poolPlan of plan.pools) {
      if (poolPlan.action === 'remove' || poolPlan.action === 'unchanged' || !poolPlan.discoveryChanged) continue;
      try {
        sources.set(poolPlan.name, this.#registry.prepareSource(discoveryOf(nextPools.get(poolPlan.name)!)));
      } catch (error) {
        errors.push(`pools[${nextIndex.get(poolPlan.name)}].discovery: ${error instanceof Error ? error.message : String(error)}`);
      }
    }

    // New pools are built now (not yet checked or watched) so new listeners bind with their pool.
    const newPools = new Map<string, { pool: BackendPool; report: RebuildReport }>();
    for (const poolPlan of errors.length === 0 ? plan.pools : []) {
      if (poolPlan.action !== 'add') continue;
      const poolConfig = nextPools.get(poolPlan.name)!;
      try {
        const pool = this.#createPool({ ...poolConfig, backends: [] }, next, { capacity: slotCapacity(poolConfig) });
        newPools.set(poolPlan.name, { pool, report: pool.setBackends(poolConfig.backends) });
      } catch (error) {
        errors.push(`pools[${nextIndex.get(poolPlan.name)}]: ${error instanceof Error ? error.message : String(error)}`);
      }
    }

    const opened = new Map<string, ListenerHandle>();
    const toOpen = [...plan.listeners.added, ...plan.listeners.rebound.map((listener) => listener.config)];
    for (const listenerConfig of errors.length === 0 ? toOpen : []) {
      const pool = newPools.get(listenerConfig.pool)?.pool ?? this.#pools.get(listenerConfig.pool)!;
      const listener = this.#createListener(listenerConfig, pool);
      opened.set(listenerConfig.name, listener);
      try {
        // The old listener still holds its address, so moving a listener onto an address
        // another listener gives up in the same reload is refused (EADDRINUSE): do it in two reloads.
        await listener.listen();
      } catch (error) {
        const index = next.listeners.findIndex((l) => l.name === listenerConfig.name);
        errors.push(`listeners[${index}].bind: ${error instanceof Error ? error.message : String(error)}`);
        break;
      }
    }
    // Rebuilt balancers last, after every await: a discovery update landing while listeners bind
    // would make an earlier one stale. A discovery pool keeps its live set (plan: "keep the set").
    const rebuilds = new Map<string, { prepared: PreparedRebuild; overrides: ResolvedSet; movedShare: number }>();
    for (const poolPlan of errors.length === 0 ? plan.pools : []) {
      if (poolPlan.action !== 'replace') continue;
      const poolConfig = nextPools.get(poolPlan.name)!;
      const pool = this.#pools.get(poolPlan.name)!;
      const reported = discoveryOf(poolConfig).type === 'static' ? poolPlan.backends : this.#configuredBackends(poolPlan.name)!;
      const overrides = this.#overrides.resolve(poolPlan.name, reported);
      try {
        const prepared = pool.prepareRebuild(poolConfig, overrides.backends, poolPlan.capacity!.to);
        rebuilds.set(poolPlan.name, { prepared, overrides, movedShare: poolPlan.movedShare ?? prepared.report.movedShare });
      } catch (error) {
        errors.push(`pools[${nextIndex.get(poolPlan.name)}]: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (errors.length > 0) {
      if (accessLogFd !== this.#accessLogFd) closeOutput(accessLogFd);
      for (const listener of opened.values()) listener.stopListening();
      for (const { pool } of newPools.values()) pool.stop();
      await Promise.all([...sources.values()].map((source) => source?.stop()));
      return this.#refuse(errors);
    }

    // Phase 2: apply the plan. Nothing below is expected to fail.
    this.#config = next;
    this.#configOrigin = { path: origin.path ?? null, loadedAt: Date.now() };
    const drainTimeoutMs = next.drainTimeoutMs;
    const scheduler = this.#stopping ? null : this.#checks;
    for (const pool of this.#pools.values()) pool.setDrainTimeout(drainTimeoutMs);
    // Rebuilt balancers go in first, with no await since they were prepared.
    for (const [name, { prepared, overrides, movedShare }] of rebuilds) {
      const pool = this.#pools.get(name)!;
      const before = pool.backends;
      pool.commitRebuild(prepared, scheduler, movedShare);
      overrides.commit();
      this.#logOverridesEnded(name, overrides.released);
      publishSetChange(this.#events, name, 'config', before, pool.backends);
    }
    for (const poolPlan of plan.pools) {
      const poolConfig = nextPools.get(poolPlan.name);
      if (poolConfig === undefined || poolPlan.action === 'unchanged') continue;
      if (poolPlan.action === 'add') {
        const { pool, report } = newPools.get(poolPlan.name)!;
        pool.setDrainTimeout(drainTimeoutMs);
        this.#pools.set(poolPlan.name, pool);
        if (scheduler !== null) pool.startHealthChecks(scheduler);
        logPoolUpdated(this.#logger, poolPlan.name, 'config', report, poolConfig.backends.length);
        publishSetChange(this.#events, poolPlan.name, 'config', [], pool.backends);
      } else if (poolPlan.action === 'replace') {
        const pool = this.#pools.get(poolPlan.name)!;
        logPoolUpdated(this.#logger, poolPlan.name, 'config', planReport(poolPlan), pool.backends.length);
      } else if (poolPlan.action === 'update') {
        const pool = this.#pools.get(poolPlan.name)!;
        pool.reconfigure(poolConfig, scheduler);
        const applied = discoveryOf(poolConfig).type === 'static' && this.#registry.update(poolConfig.name, 'config', poolConfig.backends);
        if (!applied) logPoolUpdated(this.#logger, poolPlan.name, 'config', planReport(poolPlan), pool.backends.length);
      }
      if (poolPlan.discoveryChanged) await this.#registry.watch(poolPlan.name, discoveryOf(poolConfig), sources.get(poolPlan.name) ?? null);
    }

    // Listeners: retire removed and rebound ones, add the new sockets, update the rest in place.
    const retiring: Promise<void>[] = [];
    for (const listenerConfig of plan.listeners.removed) {
      const listener = this.#listeners.get(listenerConfig.name)!;
      this.#listeners.delete(listenerConfig.name);
      retiring.push(this.#retireListener(listener, drainTimeoutMs));
    }
    for (const [name, fresh] of opened) {
      const old = this.#listeners.get(name);
      if (old !== undefined) retiring.push(this.#retireListener(old, drainTimeoutMs));
      fresh.setPool(this.#pools.get(fresh.pool.name === '' ? '' : nextListener(next, name).pool)!);
      this.#listeners.set(name, fresh);
      this.#logger.info({ listener: name, pool: fresh.pool.name, address: fresh.address() }, 'listener ready');
    }
    for (const listenerPlan of plan.listeners.updated) {
      const listener = this.#listeners.get(listenerPlan.name)!;
      listener.updateLimits(listenerPlan.config);
      const pool = this.#pools.get(listenerPlan.config.pool)!;
      if (listener.pool !== pool) listener.setPool(pool);
    }

    // Removed pools go last: no listener refers to them any more.
    for (const poolPlan of plan.pools) {
      if (poolPlan.action !== 'remove') continue;
      await this.#registry.unwatch(poolPlan.name);
      const pool = this.#pools.get(poolPlan.name);
      this.#pools.delete(poolPlan.name);
      this.#overrides.forgetPool(poolPlan.name);
      if (pool !== undefined) {
        this.#retirePool(pool);
        publishSetChange(this.#events, poolPlan.name, 'config', pool.backends, []);
      }
      this.#logger.info({ pool: poolPlan.name }, 'pool removed');
    }

    const adminChanges = plan.settings.filter((setting) => setting.key === 'admin' || setting.key.startsWith('admin.'));
    if (adminChanges.some((setting) => !isAdminLimitsKey(setting.key))) await this.#restartAdmin(next);
    else if (adminChanges.length > 0) await this.#applyAdminLimits(next);
    this.#alerts.configure(next.alerts);
    if (current.workers !== next.workers) {
      this.#logger.warn({ from: current.workers, to: next.workers }, 'workers changes apply after a restart');
    }
    if (accessLogChanged) await this.#switchAccessLog(accessLogNext, accessLogFd);
    if (current.log.level !== next.log.level) {
      // pino children keep the level they were created with; a level change needs a restart.
      this.#logger.warn({ from: current.log.level, to: next.log.level }, 'log.level changes apply after a restart');
    }

    // `config reloaded` means done: removed listeners refuse, and every worker runs the new config.
    await Promise.all(retiring);
    await this.#workers?.sync();

    const summary: ReloadSummary = {
      listenersAdded: plan.listeners.added.map((l) => l.name),
      listenersRemoved: plan.listeners.removed.map((l) => l.name),
      listenersRebound: plan.listeners.rebound.map((l) => l.name),
      poolsChanged: plan.pools.filter((p) => p.action !== 'unchanged').map((p) => p.name),
      poolsUnchanged: plan.pools.filter((p) => p.action === 'unchanged').map((p) => p.name),
    };
    // Every cause, as `ringlb diff` lists them: the setting keys that changed and the backend changes by count.
    const pools = plan.pools.map((p) => ({
      name: p.name,
      action: p.action,
      reason: p.reason,
      settings: p.settings.map((change) => change.key),
      backends: { added: p.added.length, removed: p.removed.length, reweighted: p.reweighted.length, readdressed: p.readdressed.length, stateChanged: p.stateChanged.length },
      movedShare: p.movedShare,
    }));
    this.#logger.info({ ...summary, pools }, 'config reloaded');
    const changed = reloadMessage(plan, summary);
    this.#events.publish({ type: 'reload', result: 'applied', source: 'config', message: changed });
    this.#reloads.applied += 1;
    return { ok: true, summary, plan };
  }

  /**
   * Limits change in place (AdminServer.setLimits): the listener keeps its socket and its
   * connections. A new maxHeaderBytes is the exception: only a new listener takes it.
   */
  async #applyAdminLimits(next: RinglbConfig): Promise<void> {
    const limits = next.admin?.limits ?? DEFAULT_ADMIN_LIMITS;
    // None runs when its last restart failed (bind in use): try again, as any admin change does.
    if (this.#admin === null || !this.#admin.appliesInPlace(limits)) return this.#restartAdmin(next);
    this.#eventStream.maxClients = eventStreamCap(limits.maxConnections);
    this.#admin.setLimits(limits);
    this.#logger.info({ limits }, 'admin limits applied');
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

/**
 * The `reload` event's message: what changed, by area (the plan has the details). A reload that
 * only changed admin limits or a listener said "no pool changed", as if nothing had.
 */
function reloadMessage(plan: ReloadPlan, summary: ReloadSummary): string {
  const parts: string[] = [];
  if (summary.poolsChanged.length > 0) parts.push(`pools changed: ${summary.poolsChanged.join(', ')}`);
  const listeners = [
    ...summary.listenersAdded.map((name) => `${name} added`),
    ...summary.listenersRemoved.map((name) => `${name} removed`),
    ...summary.listenersRebound.map((name) => `${name} rebound`),
    ...plan.listeners.updated.map((listener) => `${listener.name} updated`),
  ];
  if (listeners.length > 0) parts.push(`listeners: ${listeners.join(', ')}`);
  if (plan.settings.length > 0) parts.push(`settings changed: ${plan.settings.map((setting) => setting.key).join(', ')}`);
  return parts.length === 0 ? 'nothing changed' : parts.join('; ');
}

/** `admin.limits` or one of its keys: applied in place, unlike bind and token. */
function isAdminLimitsKey(key: string): boolean {
  return key === 'admin.limits' || key.startsWith('admin.limits.');
}

function nextListener(config: RinglbConfig, name: string): ListenerConfig {
  return config.listeners.find((listener) => listener.name === name)!;
}

/** A pool's `pool updated` fields from its plan (replaced pools, and updates the registry did not apply). */
function planReport(plan: PoolPlan): Pick<RebuildReport, 'added' | 'removed' | 'reweighted' | 'buildMs' | 'movedShare'> {
  return {
    added: plan.added.map((b) => b.id),
    removed: plan.removed.map((b) => b.id),
    reweighted: plan.reweighted.map((b) => b.id),
    buildMs: plan.buildMs ?? 0,
    movedShare: plan.movedShare ?? 0,
  };
}

/** Added/removed/reweighted ids between two sets, for a pool whose balancer was rebuilt from empty. */
function rebuildReportOf(before: readonly Backend[], after: readonly Backend[], prepared: PreparedRebuild): RebuildReport {
  const old = new Map(before.map((b) => [b.id, b.weight]));
  const ids = new Set(after.map((b) => b.id));
  return {
    changed: true,
    slots: prepared.report.slots,
    added: after.filter((b) => !old.has(b.id)).map((b) => b.id),
    removed: before.filter((b) => !ids.has(b.id)).map((b) => b.id),
    reweighted: after.filter((b) => old.has(b.id) && old.get(b.id) !== b.weight).map((b) => b.id),
    buildMs: prepared.report.buildMs,
    movedShare: prepared.report.movedShare,
  };
}
