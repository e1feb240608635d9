/**
 * One pool at run time: its Balancer (the WASM core behind the `Balancer` contract), where each
 * slot's backend lives, and the per-pool connect settings. The data plane asks a pool three
 * things per connection: the key hash of a client, a slot, and that slot's address.
 *
 * Slot → address tables are plain arrays indexed by slot, rebuilt only when membership changes
 * (control plane), so the hot path reads them with no lookup by string.
 *
 * The balancer is private: `commitRebuild` replaces it, so a caller holding it would pick from
 * stale tables, and only the health owner writes its bits. Callers ask the pool instead (`pick`,
 * `lookup`, `slotOf`, `activeConnections`, `policy` ...), each answer a thin forward.
 */
import { isIP } from 'node:net';
import type { Backend, BackendFailureReason } from '../backend.js';
import { createBalancer } from '../core/index.js';
import { sourceKeyHash } from '../core/key-hash.js';
import { KEYED_POLICIES, type BalancePolicy, type Balancer, type RebuildReport } from '../core/types.js';
import { balancerOptionsOf, healthSettingsChanged, slotCapacity } from '../config/reload-plan.js';
import type { PoolConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { NO_EVENTS, type EventSink } from '../events/types.js';
import { PoolHealth, type CheckScheduler, type EligibilityTarget } from '../health/pool-health.js';
import type { SharedPoolState } from '../shared-state/pool-state.js';
import type { PoolTrafficWriter } from '../shared-state/traffic-counters.js';
import { PoolCounters } from '../metrics/pool-counters.js';
import { BackendQueues, LocalQueueDepth, type PlaceSource, type QueuedConnection } from './backend-queue.js';
import { SlotConnections, type SlotConnection } from './slot-connections.js';
import type { ProxySocket } from './handle-socket.js';
import { isHostName, NameResolver, type ResolvedAddress, type ResolveHost } from '../discovery/name-resolver.js';

// The sizing rule lives with the planner, which decides when a pool grows.
export { MIN_SLOT_CAPACITY, slotCapacity } from '../config/reload-plan.js';

export type { SlotConnection } from './slot-connections.js';

/**
 * A pool whose connections live in worker threads (ARCHITECTURE.md "All cores"): the pool stays the
 * one writer of membership and eligibility, mirrors eligibility into `state`, reads the
 * process-wide counts from it, and calls `publish` after every change the workers' replicas must
 * learn (set, settings, addresses, retirement).
 */
export interface PoolSharing {
  readonly state: SharedPoolState;
  readonly publish: (pool: BackendPool) => void;
  /** The pool stopped (shutdown, a refused reload's new pool): replicas go once their connections end. */
  readonly forget: (pool: BackendPool) => void;
}

/** What a worker's replica of a pool is built from (`BackendPool.snapshot`); plain data for postMessage. */
export interface PoolSnapshot {
  readonly name: string;
  readonly config: PoolConfig;
  readonly capacity: number;
  readonly drainTimeoutMs: number;
  readonly retired: boolean;
  readonly backends: readonly { readonly id: string; readonly weight: number; readonly slot: number }[];
  /** By slot: where it connects (IP literal once resolved), the family, the port, the configured text. */
  readonly connectHosts: readonly string[];
  readonly families: readonly number[];
  readonly ports: readonly number[];
  readonly addresses: readonly string[];
  /** Where the replica's connections count their traffic (a larger one after the pool grew). */
  readonly traffic: SharedArrayBuffer;
}

/** Down by observation (the `down` / `up` events' sense), not by an operator's drain or maint. */
function isObservedDown(flags: readonly string[] | undefined): boolean {
  return flags !== undefined && (flags.includes('failed_active_check') || flags.includes('ejected_outlier'));
}

/** When the pool's tables last changed and the share of keys (or traffic) the change moved. */
export interface TableRebuild {
  /** Epoch ms. */
  readonly at: number;
  readonly movedShare: number;
}

/**
 * A slot whose backend left is not given to another backend for this long, even with no
 * connection counted on it: a worker may still pick it from its previous set until the change
 * reaches it (one message, well under a millisecond on an idle worker).
 */
const SLOT_REUSE_DELAY_MS = 2000;

export interface BackendPoolOptions {
  readonly config: PoolConfig;
  readonly logger: Logger;
  /** Which Balancer implementation to build; default is the core's default (WASM). */
  readonly implementation?: 'wasm' | 'reference';
  /** Slot capacity; default max(256, 2 × the config's backends), capped at the maglev table size. */
  readonly capacity?: number;
  /**
   * How long connections to a removed backend may keep running before they are cut (the config's
   * drainTimeoutMs); default 30000. Settable later (reload).
   */
  readonly drainTimeoutMs?: number;
  /** Backend ids known to be up (a pool rebuilt for new settings): they skip the pending state. */
  readonly healthyIds?: ReadonlySet<string>;
  /** How backend host names are resolved (off the hot path); default getaddrinfo (tests inject one). */
  readonly resolveHost?: ResolveHost;
  /** Set when worker threads carry the connections; absent when this thread does. */
  readonly sharing?: PoolSharing;
  /** Where the pool's health owner publishes transitions, ejections and panic; default none. */
  readonly events?: EventSink;
}

/**
 * Tables built for a pool's new table settings or capacity, not yet in use
 * (`BackendPool.prepareRebuild`); `BackendPool.commitRebuild` swaps them in. The balancer inside
 * stays private to this module, like the pool's own.
 */
export interface PreparedRebuild {
  readonly config: PoolConfig;
  readonly backends: readonly Backend[];
  readonly capacity: number;
  readonly report: RebuildReport;
}

class PreparedTables implements PreparedRebuild {
  constructor(
    readonly config: PoolConfig,
    readonly backends: readonly Backend[],
    readonly capacity: number,
    readonly report: RebuildReport,
    readonly balancer: Balancer,
    /** The pool's balancer when this was prepared: a commit after another swap is refused. */
    readonly replaces: Balancer,
  ) {}
}

export class BackendPool implements PlaceSource {
  readonly name: string;
  #balancer: Balancer;
  #capacity: number;
  readonly #implementation: 'wasm' | 'reference' | undefined;
  readonly #events: EventSink;
  /** The config this pool was built from; `reconfigure` replaces it for settings it can absorb. */
  #config: PoolConfig;
  #connectTimeoutMs: number;
  /** Extra attempts after the first one. */
  #retries: number;
  /** Connections to a removed backend are cut this long after its removal. */
  #drainTimeoutMs: number;
  /** False for policies that ignore the key: no address parsing per connection at all. */
  #usesClientKey: boolean;
  #includePort: boolean;
  readonly #logger: Logger;
  #health: PoolHealth;
  /** Indexed by slot; a removed backend's entries stay until its slot is reused (draining connections log it). */
  readonly #hostBySlot: string[] = [];
  /**
   * Where a slot connects: the IP literal its host resolved to (or the host itself when it is an
   * IP literal, or a name that never resolved), and that address's family (0 = unknown).
   */
  readonly #connectHostBySlot: string[] = [];
  readonly #familyBySlot: number[] = [];
  readonly #portBySlot: number[] = [];
  readonly #addressBySlot: string[] = [];
  /** Connections of this thread per slot, for drains (none when workers carry the connections). */
  readonly #connections: SlotConnections;
  readonly #sharing: PoolSharing | undefined;
  /** One data plane in this thread: connections queued for full backends (made at the first). */
  #queues: BackendQueues | null = null;
  /** Releases of slots while the pool has a per-backend limit (this thread's "released" epoch). */
  #releases = 0;
  readonly #queueDepth = new LocalQueueDepth();
  /** Shared mode: until when (performance.now) a removed backend's slot stays reserved. */
  #slotHeldUntil: Float64Array;
  /** Shared mode: scratch the process-wide counts are copied into before the balancer reads them. */
  #loadScratch: Int32Array;
  #backends: readonly Backend[] = [];
  /** The last change of the tables after the pool's first build (admin status); null before one. */
  #lastRebuild: TableRebuild | null = null;
  #built = false;
  #retired = false;
  /** True while `commitRebuild` changes several facts that workers must learn together. */
  #publishHeld = false;
  /** Shared mode: the success sequence of each slot when its last worker failure was counted. */
  readonly #successesSeen: number[] = [];
  readonly #resolver: NameResolver;
  /** Settles when every name of the last set has its first answer (or failed). */
  #resolving: Promise<void> = Promise.resolve();
  /** Traffic (written by whichever thread holds a connection) and control-plane counts, read by /metrics. */
  readonly #counters: PoolCounters;
  /** This thread's row of the traffic counters (used when this thread carries the connections). */
  #traffic: PoolTrafficWriter;

  constructor(options: BackendPoolOptions) {
    const { config } = options;
    this.name = config.name;
    this.#config = config;
    this.#connectTimeoutMs = config.connectTimeoutMs;
    this.#retries = config.retries;
    this.#drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.#usesClientKey = KEYED_POLICIES.has(config.balance);
    this.#includePort = config.hashKey === 'source_ip_port';
    this.#logger = options.logger;
    const capacity = options.capacity ?? slotCapacity(config);
    this.#capacity = capacity;
    this.#implementation = options.implementation;
    this.#events = options.events ?? NO_EVENTS;
    this.#connections = new SlotConnections(capacity, this.#logger, (slot) => this.addressOf(slot));
    this.#sharing = options.sharing;
    options.sharing?.state.initSlots(0, capacity);
    this.#slotHeldUntil = new Float64Array(options.sharing === undefined ? 0 : capacity);
    this.#loadScratch = new Int32Array(options.sharing === undefined ? 0 : capacity);
    this.#balancer = this.#createBalancer(config, capacity);
    this.#counters = new PoolCounters(options.sharing?.state.workers ?? 1, capacity);
    this.#traffic = this.#counters.segment.writer(0);
    this.#resolver = new NameResolver({
      resolve: options.resolveHost,
      intervalMs: config.resolveIntervalMs,
      logger: this.#logger,
      onChange: (name, address) => this.#onNameResolved(name, address),
    });
    this.#health = this.#createHealth(config, options.healthyIds);
    this.setBackends(config.backends);
  }

  /** The policy the pool balances by now (`commitRebuild` may change it). */
  get policy(): BalancePolicy {
    return this.#balancer.policy;
  }

  /** Per connection: how long one connect attempt may take. */
  get connectTimeoutMs(): number {
    return this.#connectTimeoutMs;
  }

  /** Per connection, at the client's first bytes: how long the backend may stay silent (0: off). */
  get responseTimeoutMs(): number {
    return this.#config.responseTimeoutMs ?? 0;
  }

  /** Per connection, at the backend's FIN: how long the connection may live on (0: off). */
  get serverFinTimeoutMs(): number {
    return this.#config.serverFinTimeoutMs ?? 0;
  }

  /** Per connection: each backend's cap (0: none); the queue (backend-queue.ts) holds the rest. */
  get maxConnectionsPerBackend(): number {
    return this.#config.maxConnectionsPerBackend ?? 0;
  }

  /** Per limited connection: hash policies wait for the key's backend instead of taking another. */
  get hashesClients(): boolean {
    return this.#usesClientKey;
  }

  /** Per connection: extra attempts after the first one. */
  get retries(): number {
    return this.#retries;
  }

  /** Connections to a backend that left the set are cut this long after it left (the config's drainTimeoutMs; reload sets it). */
  setDrainTimeout(ms: number): void {
    if (this.#drainTimeoutMs === ms) return;
    this.#drainTimeoutMs = ms;
    this.#publish();
  }

  get drainTimeoutMs(): number {
    return this.#drainTimeoutMs;
  }

  /** Set when worker threads carry this pool's connections. */
  get sharedState(): SharedPoolState | undefined {
    return this.#sharing?.state;
  }

  /** Slot capacity of the current balancer; `commitRebuild` may change it (grow, or a smaller maglev table). */
  get capacity(): number {
    return this.#capacity;
  }

  /** The pool's counters for /metrics and /v1/status (see metrics/pool-counters.ts). */
  get counters(): PoolCounters {
    return this.#counters;
  }

  /** Per connection: where this thread's connections count their traffic. */
  get traffic(): PoolTrafficWriter {
    return this.#traffic;
  }

  /** Sole writer of the balancer's eligibility bits and weight scales. */
  get health(): PoolHealth {
    return this.#health;
  }

  get config(): PoolConfig {
    return this.#config;
  }

  /** The current backend set, as last given to `setBackends`. */
  get backends(): readonly Backend[] {
    return this.#backends;
  }

  /**
   * Replace the membership (start-up, discovery, reload). Throws (changing nothing) when the set
   * is invalid for the core or needs more slots than are free; see `capacity`.
   *
   * Eligibility is the health owner's: it learns the new slots here (new backends start pending
   * or eligible, per the health config; removed ones stop being checked). Connections already
   * open keep their socket: a removed backend's slot stays reserved while connections hold it
   * (the core never reuses it before), and they are cut `drainTimeoutMs` after the removal.
   */
  setBackends(backends: readonly Backend[]): RebuildReport {
    this.#loadSharedCounts();
    const previousSlots = this.#slotsById();
    const report = this.#balancer.setBackends(backends.map((b) => ({ id: b.id, weight: b.weight })));
    this.#adoptSet(backends, report, previousSlots);
    if (report.changed && this.#built) {
      this.#lastRebuild = { at: Date.now(), movedShare: report.movedShare };
      this.#counters.tableRebuilt();
    }
    this.#built = true;
    return report;
  }

  /** The last table change since the pool was built (reload, discovery, admin weight); null when none. */
  get lastRebuild(): TableRebuild | null {
    return this.#lastRebuild;
  }

  /**
   * Builds, without touching the running pool, the balancer this pool would have with `config`'s
   * table settings (policy, maglev table, ring points) and `capacity` slots, holding `backends`.
   * Every backend that stays keeps its slot, and no slot the current balancer still uses (a
   * removed backend's, draining connections') goes to a new backend, so connections that hold a
   * slot now release it on the same slot number after the swap. Throws (changing nothing) when
   * the set is invalid for the core or does not fit.
   */
  prepareRebuild(config: PoolConfig, backends: readonly Backend[], capacity: number): PreparedRebuild {
    this.#loadSharedCounts();
    const current = this.#balancer;
    const currentCapacity = this.#capacity;
    // Fewer slots (a maglev table smaller than the old capacity) only when no slot beyond is in use.
    for (let slot = capacity; slot < currentCapacity; slot++) {
      if (current.idOf(slot) !== undefined || current.activeConnections(slot) > 0) {
        throw new RangeError(`pool ${this.name}: slot ${slot} is in use, so the pool cannot shrink to ${capacity} slots (maglev.tableSize bounds the slots)`);
      }
    }
    const balancer = this.#createBalancer(config, capacity);
    const report = balancer.setBackends(
      backends.map((b) => ({ id: b.id, weight: b.weight })),
      {
        slots: this.#slotsById(),
        reserved: (slot) => slot < currentCapacity && (current.idOf(slot) !== undefined || current.activeConnections(slot) > 0),
      },
    );
    return new PreparedTables(config, backends, capacity, report, balancer, current);
  }

  /**
   * Swaps in a prepared balancer (ARCHITECTURE.md "Reload never drops established connections").
   * The pool object, its health owner (flags, ejections, slow start, scheduled checks) and its
   * connections stay; active counts move to the new balancer slot by slot. Only connections to
   * backends that left the set drain (cut after drainTimeoutMs); the others run until they end.
   * Then the other settings of `prepared.config` apply as in `reconfigure`. `movedShare` is what
   * the change moved as its planner measured it (a table built from empty cannot say).
   */
  commitRebuild(prepared: PreparedRebuild, scheduler: CheckScheduler | null, movedShare: number = prepared.report.movedShare): void {
    if (!(prepared instanceof PreparedTables)) throw new TypeError(`pool ${this.name}: commitRebuild takes what prepareRebuild returned`);
    if (prepared.replaces !== this.#balancer) throw new Error(`pool ${this.name}: prepared rebuild is stale (the balancer changed since)`);
    const previous = this.#balancer;
    const previousSlots = this.#slotsById();
    const fresh = prepared.balancer;
    for (let slot = 0; slot < Math.min(this.#capacity, prepared.capacity); slot++) {
      for (let count = previous.activeConnections(slot); count > 0; count--) fresh.acquire(slot);
    }
    this.#connections.ensureCapacity(prepared.capacity);
    if (prepared.capacity > this.#capacity) this.#sharing?.state.initSlots(this.#capacity, prepared.capacity);
    if (this.#sharing !== undefined && prepared.capacity > this.#slotHeldUntil.length) {
      const held = new Float64Array(prepared.capacity);
      held.set(this.#slotHeldUntil);
      this.#slotHeldUntil = held;
      this.#loadScratch = new Int32Array(prepared.capacity);
    }
    this.#capacity = prepared.capacity;
    if (prepared.capacity > this.#counters.capacity) {
      this.#counters.grow(prepared.capacity);
      this.#traffic = this.#counters.segment.writer(0);
    }
    this.#counters.tableRebuilt();
    this.#balancer = fresh;
    this.#usesClientKey = KEYED_POLICIES.has(prepared.config.balance);
    this.#includePort = prepared.config.hashKey === 'source_ip_port';
    this.#health.adoptBalancer(this.#eligibilityTarget(fresh), this.#capacity);
    // Workers learn the rebuild once, whole: the new set with the new capacity alone would pair it
    // with the old table settings (a maglev table smaller than the old capacity is refused there).
    this.#publishHeld = true;
    try {
      this.#adoptSet(prepared.backends, prepared.report, previousSlots);
      this.reconfigure(prepared.config, scheduler);
    } finally {
      this.#publishHeld = false;
    }
    this.#lastRebuild = { at: Date.now(), movedShare };
    this.#publish();
  }

  /** Slot of every backend in the current set. */
  #slotsById(): Map<string, number> {
    const slots = new Map<string, number>();
    for (const backend of this.#backends) slots.set(backend.id, this.#balancer.slotOf(backend.id));
    return slots;
  }

  /** After the balancer placed `backends`: addresses by slot, health's view, drains of removed slots. */
  #adoptSet(backends: readonly Backend[], report: RebuildReport, previousSlots: ReadonlyMap<string, number>): void {
    for (const backend of backends) {
      const slot = report.slots.get(backend.id);
      if (slot === undefined) throw new Error(`pool ${this.name}: core returned no slot for backend ${backend.id}`);
      const host = backend.address.host;
      this.#hostBySlot[slot] = host;
      this.#portBySlot[slot] = backend.address.port;
      const resolved = isHostName(host) ? this.#resolver.addressOf(host) : undefined;
      this.#connectHostBySlot[slot] = resolved?.address ?? host;
      this.#familyBySlot[slot] = resolved?.family ?? isIP(host);
      this.#addressBySlot[slot] = backend.address.text;
      // A backend new to the set counts from zero, also in a slot another backend left.
      if (!previousSlots.has(backend.id)) this.#counters.assign(slot, backend.id);
    }
    this.#backends = backends;
    // New names resolve now, off the hot path; until a name's first answer its slot connects by name.
    this.#resolving = this.#resolver.track(backends.map((backend) => backend.address.host));
    if (this.#sharing !== undefined) {
      // A slot given to another backend starts over in shared memory as it did in the balancer
      // (eligible, full scale, no spill), before health writes what differs from that for the new one.
      for (const backend of backends) if (!previousSlots.has(backend.id)) this.#sharing.state.resetSlot(report.slots.get(backend.id)!);
    }
    this.#health.setBackends(backends.map((backend) => ({ slot: report.slots.get(backend.id)!, backend })));
    const staying = new Set(backends.map((backend) => backend.id));
    const heldUntil = performance.now() + SLOT_REUSE_DELAY_MS;
    for (const [id, slot] of previousSlots) {
      if (staying.has(id) || slot < 0) continue;
      this.#connections.startDrain(slot, this.#drainTimeoutMs);
      if (this.#sharing !== undefined) this.#slotHeldUntil[slot] = heldUntil;
    }
    this.#publish();
    this.#logger.debug({ backends: backends.length, changed: report.changed, buildMs: report.buildMs }, 'pool backends set');
  }

  /**
   * Settings a running pool absorbs in place (policy, hash key and table parameters go through
   * `prepareRebuild` / `commitRebuild`). Health settings get a new health owner over the same
   * slots, which starts from the old one's check verdicts: up stays up (no pending round), down
   * stays down; outlier ejections and slow-start ramps start over.
   */
  reconfigure(config: PoolConfig, scheduler: CheckScheduler | null): void {
    const previous = this.#config;
    this.#config = config;
    this.#connectTimeoutMs = config.connectTimeoutMs;
    this.#retries = config.retries;
    this.#resolver.setInterval(config.resolveIntervalMs);
    // Bounded load reads counts at pick time: a new factor applies to the next pick, no rebuild.
    this.#balancer.setHashBalanceFactor(config.hashBalanceFactor ?? 0);
    // A raised or removed per-backend limit lets waiting connections go now.
    this.#queues?.recheck();
    this.#publish();
    if (!healthSettingsChanged(previous, config)) return;
    // What the checks knew carries over: up stays up, down stays down (no pending round, no
    // dead backend believed up because the new settings say initialHealthy). Without checks
    // before, every backend that is eligible now counts as up.
    const verdicts = this.#health.checkVerdicts();
    const healthyNow = this.#health.healthyIds();
    const healthyIds = new Set<string>();
    const downIds = new Set<string>();
    for (const backend of this.#backends) {
      const verdict = verdicts.get(backend.id);
      const slot = this.#balancer.slotOf(backend.id);
      if (verdict === 'down') downIds.add(backend.id);
      // Healthy, not merely routable: a dead backend that panic routes to must not start out up.
      else if (verdict === 'up' || (verdict === undefined && slot >= 0 && healthyNow.has(backend.id))) healthyIds.add(backend.id);
    }
    const failing = this.#backends.filter((backend) => isObservedDown(this.#health.backendStatus(backend.id)?.flags));
    this.#health.stop();
    this.#health = this.#createHealth(config, healthyIds, downIds);
    this.#health.setBackends(this.#backends.map((backend) => ({ slot: this.#balancer.slotOf(backend.id), backend })));
    if (scheduler !== null && !this.#retired) this.#health.startChecks(scheduler);
    // A failure the new owner does not carry over (an ejection; failed checks when checks were
    // removed) ends here: say so, or the event stream would show the backend down for good.
    for (const backend of failing) {
      if (isObservedDown(this.#health.backendStatus(backend.id)?.flags)) continue;
      this.#events.publish({ type: 'up', pool: this.name, backend: backend.id, address: backend.address.text, cause: 'config', source: 'config', message: 'health settings changed' });
    }
  }

  /**
   * The pool is removed: no new picks reach it; its checks stop and every connection it still
   * holds is cut after `drainTimeoutMs` (a pool whose settings change is rebuilt in place instead).
   */
  retire(): void {
    if (this.#retired) return;
    this.#retired = true;
    this.#health.stop();
    this.#resolver.close();
    for (let slot = 0; slot < this.capacity; slot++) this.#connections.startDrain(slot, this.#drainTimeoutMs);
    this.#publish();
  }

  get retired(): boolean {
    return this.#retired;
  }

  /** Slots a new backend may take now: not held by a backend, not held by draining connections. */
  freeSlots(): number {
    this.#loadSharedCounts();
    let free = 0;
    for (let slot = 0; slot < this.#capacity; slot++) {
      if (this.#balancer.idOf(slot) === undefined && this.#balancer.activeConnections(slot) === 0) free += 1;
    }
    return free;
  }

  /** Connections holding a slot of this pool (acquired and not released). */
  openConnections(): number {
    return this.#sharing?.state.activeTotal() ?? this.#connections.count();
  }

  /**
   * Stops timers (health, drains); connections are left alone. Worker replicas of a stopped pool
   * go once their connections have ended.
   */
  stop(): void {
    this.#health.stop();
    this.#resolver.close();
    this.#connections.clearAllDrains();
    this.#queues?.clear();
    this.#sharing?.forget(this);
  }

  /**
   * Hot path: a connection attempt to `slot` begins. Counts it in the core and links the
   * connection into the slot's list (three field writes, no allocation).
   */
  acquire(slot: number, connection: SlotConnection): void {
    this.#balancer.acquire(slot);
    this.#connections.link(slot, connection);
  }

  /**
   * Hot path: the slot for a connection attempt, or -1 when no backend is routable. `tried` holds
   * the slots earlier attempts of this connection failed on (first `triedCount` entries). A thin
   * forward (numbers in, number out) that V8 inlines: the balancer stays private because
   * `commitRebuild` replaces it, and no caller may hold on to a stale one.
   */
  pick(keyHash: number, tried: ArrayLike<number> | undefined, triedCount: number): number {
    return this.#balancer.pick(keyHash, tried, triedCount);
  }

  /** Hot path: a connect to `slot` took `micros` (least_time's EWMA). */
  observeConnectTime(slot: number, micros: number, nowMs: number): void {
    this.#balancer.observeConnectTime(slot, micros, nowMs);
  }

  /** Slot of backend `id` in the current set, or -1. */
  slotOf(id: string): number {
    return this.#balancer.slotOf(id);
  }

  /** Id of the backend holding `slot`, or undefined for a free or draining slot. */
  idOf(slot: number): string | undefined {
    return this.#balancer.idOf(slot);
  }

  /** Connections holding `slot` now (acquired, not released), in every thread. */
  activeConnections(slot: number): number {
    return this.#sharing?.state.activeOf(slot) ?? this.#balancer.activeConnections(slot);
  }

  /**
   * The active table (maglev entries, or ring points and their positions; empty for other
   * policies): tests compare it with each worker's, and admin shows ownership from it.
   */
  tableSnapshot(): { readonly slots: Int32Array; readonly positions: Uint32Array } {
    return this.#balancer.tableSnapshot();
  }

  /** Bounded load: picks that passed over `slot` because it was a key's full home, in every thread. */
  spilledConnections(slot: number): number {
    return this.#sharing?.state.spilledOf(slot) ?? this.#balancer.spilledConnections(slot);
  }

  /** Whether new connections may go to `slot` now (healthy, or panic routes to it). */
  isRoutable(slot: number): boolean {
    return this.#balancer.isEligible(slot);
  }

  /**
   * The backend a hash policy sends this client to, as a new connection's first attempt would
   * get it; undefined when no backend is routable. A peek is a hash pick without side effects (no
   * cursor, no spill counted), so asking changes nothing. Admin lookups; never the hot path.
   */
  lookup(ip: string, port: number): { readonly slot: number; readonly backendId: string } | undefined {
    this.#loadSharedCounts();
    const slot = this.#balancer.peek(this.#keyHashOfAddress(ip, port));
    if (slot < 0) return undefined;
    const backendId = this.#balancer.idOf(slot);
    return backendId === undefined ? undefined : { slot, backendId };
  }

  /**
   * The backend this client's key maps to in the table, whatever its health (where keys live,
   * for measuring how many moved); undefined for an empty table.
   */
  homeIdOf(ip: string, port: number): string | undefined {
    const slot = this.#balancer.homeSlot(this.#keyHashOfAddress(ip, port));
    return slot < 0 ? undefined : this.#balancer.idOf(slot);
  }

  /** Hot path: that attempt failed, or its connection closed. */
  release(slot: number, connection: SlotConnection): void {
    this.#balancer.release(slot);
    this.#connections.unlink(slot, connection);
    if (this.#queues !== null) {
      this.#releases += 1;
      this.#queues.released(slot);
    }
  }

  /** Limited pools (this thread carries the connections): a place only below the backend's cap. */
  tryAcquire(slot: number, connection: SlotConnection): boolean {
    const limit = this.maxConnectionsPerBackend;
    if (limit > 0 && this.#balancer.activeConnections(slot) >= limit) return false;
    this.acquire(slot, connection);
    return true;
  }

  enqueue(slot: number, connection: QueuedConnection): boolean {
    const queue = this.#config.queue;
    this.#queues ??= new BackendQueues(this, this.#queueDepth);
    return this.#queues.enqueue(slot, connection, queue?.size ?? 0, queue?.timeoutMs ?? 1);
  }

  leaveQueue(slot: number, connection: QueuedConnection): void {
    this.#queues?.remove(slot, connection);
  }

  releasedEpoch(): number {
    return this.#releases;
  }

  /** Connections waiting for `slot` now, in every thread (`ringlb_backend_queue_depth`). */
  queueDepth(slot: number): number {
    return this.#sharing?.state.queuedOf(slot) ?? this.#queueDepth.of(slot);
  }

  /**
   * Shared mode: the balancer here never picks, but slot reuse (`setBackends`, `prepareRebuild`),
   * `freeSlots` and bounded-load lookups read its counts: copy the process-wide ones in, plus one
   * for each slot whose backend left less than SLOT_REUSE_DELAY_MS ago.
   */
  #loadSharedCounts(): void {
    const sharing = this.#sharing;
    if (sharing === undefined) return;
    const capacity = this.#capacity;
    const counts = this.#loadScratch;
    counts.set(sharing.state.active.subarray(0, capacity));
    let total = sharing.state.activeTotal();
    const now = performance.now();
    for (let slot = 0; slot < capacity; slot++) {
      if (this.#slotHeldUntil[slot]! > now) {
        counts[slot]! += 1;
        total += 1;
      }
    }
    this.#balancer.loadActiveCounts(counts.subarray(0, capacity), total);
  }

  #publish(): void {
    if (!this.#publishHeld) this.#sharing?.publish(this);
  }

  /**
   * Shared mode: what a worker's replica needs, as plain data. The slots are the ones this pool's
   * balancer assigned: replicas pin them, so every thread routes a key to the same slot.
   */
  snapshot(): PoolSnapshot {
    const capacity = this.#capacity;
    return {
      name: this.name,
      config: this.#config,
      capacity,
      drainTimeoutMs: this.#drainTimeoutMs,
      retired: this.#retired,
      backends: this.#backends.map((backend) => ({ id: backend.id, weight: backend.weight, slot: this.#balancer.slotOf(backend.id) })),
      connectHosts: this.#connectHostBySlot.slice(0, capacity),
      families: this.#familyBySlot.slice(0, capacity),
      ports: this.#portBySlot.slice(0, capacity),
      addresses: this.#addressBySlot.slice(0, capacity),
      traffic: this.#counters.segment.buffer,
    };
  }

  /**
   * Shared mode: a worker's connect to `slot` failed. `backendId` is who the worker meant: a slot
   * the set gave to another backend meanwhile is not blamed. A success on the slot (any worker)
   * since the last failure ends the streak first.
   */
  reportWorkerConnectFailure(slot: number, backendId: string, reason: BackendFailureReason): void {
    if (this.#balancer.idOf(slot) !== backendId) return;
    const successes = this.#sharing?.state.successesOf(slot) ?? 0;
    if (successes !== this.#successesSeen[slot]) {
      this.#successesSeen[slot] = successes;
      this.#health.reportConnectSuccess(slot);
    }
    this.#health.reportConnectFailure(slot, reason);
  }

  #eligibilityTarget(balancer: Balancer): EligibilityTarget {
    const state = this.#sharing?.state;
    if (state === undefined) return balancer;
    return {
      idOf: (slot) => balancer.idOf(slot),
      isEligible: (slot) => balancer.isEligible(slot),
      weightScale: (slot) => balancer.weightScale(slot),
      setEligible: (slot, eligible) => {
        balancer.setEligible(slot, eligible);
        state.publishEligible(slot, eligible);
      },
      setWeightScale: (slot, permille) => {
        balancer.setWeightScale(slot, permille);
        state.publishScale(slot, permille);
      },
    };
  }

  /** Key hash of a client given as text (admin lookups; never the hot path). */
  #keyHashOfAddress(ip: string, port: number): number {
    return sourceKeyHash(ip, port, this.#includePort);
  }

  #createBalancer(config: PoolConfig, capacity: number): Balancer {
    const balancer = createBalancer(balancerOptionsOf(config, capacity), this.#implementation);
    balancer.setHashBalanceFactor(config.hashBalanceFactor ?? 0);
    return balancer;
  }

  #createHealth(config: PoolConfig, healthyIds: ReadonlySet<string> | undefined, downIds?: ReadonlySet<string>): PoolHealth {
    return new PoolHealth({
      config,
      balancer: this.#eligibilityTarget(this.#balancer),
      capacity: this.#capacity,
      logger: this.#logger,
      healthyIds,
      downIds,
      connectHostOf: (slot) => this.#connectHostBySlot[slot]!,
      events: this.#events,
      counters: this.#counters,
    });
  }

  /** A backend name got its first or a new address: new connections and checks use it. O(backends), rare. */
  #onNameResolved(name: string, address: ResolvedAddress): void {
    for (const backend of this.#backends) {
      if (backend.address.host !== name) continue;
      const slot = this.#balancer.slotOf(backend.id);
      if (slot < 0) continue;
      this.#connectHostBySlot[slot] = address.address;
      this.#familyBySlot[slot] = address.family;
    }
    this.#publish();
  }

  /**
   * Settles when every backend name of the current set has its first answer or failed (start-up
   * waits for it, so the first connections and checks already skip the lookup).
   */
  whenResolved(): Promise<void> {
    return this.#resolving;
  }

  /** Re-resolves every backend name now (what the resolveIntervalMs timer does). */
  resolveNames(): Promise<void> {
    return this.#resolver.refresh();
  }

  /**
   * The key a hash policy places this client by: integers parsed from the source address inside
   * `sourceKeyHash` (IPv4-mapped IPv6 folds onto IPv4), never a string into WASM. 0 for policies
   * that ignore it, so round_robin and friends never touch the peer address.
   */
  keyHashOf(client: ProxySocket): number {
    if (!this.#usesClientKey) return 0;
    return sourceKeyHash(client.remoteAddress, client.remotePort, this.#includePort);
  }

  /** `keyHashOf` for a client named by a PROXY protocol header. */
  keyHashOfPeer(address: string | undefined, port: number | undefined): number {
    if (!this.#usesClientKey) return 0;
    return sourceKeyHash(address, port, this.#includePort);
  }

  /** Per connection: the PROXY protocol header its backend gets first (reload: new connections). */
  get sendProxyProtocol(): 'v1' | 'v2' | null {
    return this.#config.sendProxyProtocol ?? null;
  }

  /**
   * Hot path: where a connection to `slot` connects, an IP literal once the backend's name has
   * resolved (Node then makes no lookup); see discovery/name-resolver.ts.
   */
  hostOf(slot: number): string {
    return this.#connectHostBySlot[slot]!;
  }

  /** Hot path: the family of `hostOf(slot)`: 4, 6, or 0 for a name that never resolved. */
  familyOf(slot: number): number {
    return this.#familyBySlot[slot]!;
  }

  portOf(slot: number): number {
    return this.#portBySlot[slot]!;
  }

  /** `host:port` as written in the config; used for logs only. */
  addressOf(slot: number): string {
    return this.#addressBySlot[slot] ?? `slot ${slot}`;
  }

  /** Start this pool's active checks on the process-wide scheduler (no-op without healthCheck). */
  startHealthChecks(scheduler: CheckScheduler): void {
    this.#health.startChecks(scheduler);
  }

  /**
   * Passive health: a connect attempt to `slot` failed. Feeds outlier detection at once, so after
   * `consecutiveFailures` the next connections do not even try this backend.
   */
  reportConnectFailure(slot: number, reason: BackendFailureReason): void {
    this.#health.reportConnectFailure(slot, reason);
  }

  /** Passive health: a connect to `slot` succeeded (resets its failure streak; one store). */
  reportConnectSuccess(slot: number): void {
    this.#health.reportConnectSuccess(slot);
  }
}
