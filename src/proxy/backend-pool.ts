/**
 * One pool at run time: its Balancer (the WASM core behind the `Balancer` contract), where each
 * slot's backend lives, and the per-pool connect settings. The data plane asks a pool three
 * things per connection: the key hash of a client, a slot, and that slot's address.
 *
 * Slot → address tables are plain arrays indexed by slot, rebuilt only when membership changes
 * (control plane), so the hot path reads them with no lookup by string.
 */
import type { Socket } from 'node:net';
import type { Backend, ConnectFailureReason } from '../backend.js';
import { createBalancer } from '../core/index.js';
import { sourceKeyHash } from '../core/key-hash.js';
import type { Balancer, BalancePolicy, RebuildReport } from '../core/types.js';
import type { PoolConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { PoolHealth, type CheckScheduler } from '../health/pool-health.js';

/** Policies whose pick depends on the client's key; the others ignore it, so we skip hashing. */
const KEYED_POLICIES: ReadonlySet<BalancePolicy> = new Set<BalancePolicy>(['ring_hash', 'maglev']);

/**
 * Slot capacity of a pool's balancer. Fixed for the balancer's life, so leave room for backends
 * added later (reload, discovery); a pool that starts larger gets twice its size. A set that
 * outgrows it anyway gets a fresh, bigger pool from the runtime (see `Ringlb`, "capacity").
 */
export const MIN_SLOT_CAPACITY = 256;

/**
 * What the pool needs from a connection to drain it: intrusive per-slot list links (no Set churn
 * per connection) and a way to cut it. `ProxyConnection` implements it.
 */
export interface SlotConnection {
  slotPrevious: SlotConnection | null;
  slotNext: SlotConnection | null;
  forceClose(): void;
}

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
}

/** Capacity a pool needs for `backends` backends: room to double, bounded by maglev's table. */
export function slotCapacity(config: PoolConfig, backends: number = config.backends.length): number {
  const wanted = Math.max(MIN_SLOT_CAPACITY, backends * 2);
  // Every Maglev slot must be able to own a table entry, so a small (test) table caps the slots.
  return config.balance === 'maglev' ? Math.min(wanted, config.maglev.tableSize) : wanted;
}

export class BackendPool {
  readonly name: string;
  readonly balancer: Balancer;
  readonly capacity: number;
  /** The config this pool was built from; `reconfigure` replaces it for settings it can absorb. */
  #config: PoolConfig;
  connectTimeoutMs: number;
  /** Extra attempts after the first one. */
  retries: number;
  /** Connections to a removed backend are cut this long after its removal. */
  drainTimeoutMs: number;
  /** False for policies that ignore the key: no address parsing per connection at all. */
  readonly usesClientKey: boolean;
  readonly #includePort: boolean;
  readonly #logger: Logger;
  #health: PoolHealth;
  /** Indexed by slot; a removed backend's entries stay until its slot is reused (draining connections log it). */
  readonly #hostBySlot: string[] = [];
  readonly #portBySlot: number[] = [];
  readonly #addressBySlot: string[] = [];
  /** Head of each slot's list of connections holding it (acquired, not yet released). */
  readonly #connectionsBySlot: (SlotConnection | null)[];
  /** Drain deadline per removed slot that still had connections when its backend left. */
  readonly #drainTimers: (NodeJS.Timeout | undefined)[];
  #backends: readonly Backend[] = [];
  #retired = false;

  constructor(options: BackendPoolOptions) {
    const { config } = options;
    this.name = config.name;
    this.#config = config;
    this.connectTimeoutMs = config.connectTimeoutMs;
    this.retries = config.retries;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.usesClientKey = KEYED_POLICIES.has(config.balance);
    this.#includePort = config.hashKey === 'source_ip_port';
    this.#logger = options.logger;
    const capacity = options.capacity ?? slotCapacity(config);
    this.capacity = capacity;
    this.#connectionsBySlot = new Array<SlotConnection | null>(capacity).fill(null);
    this.#drainTimers = new Array<NodeJS.Timeout | undefined>(capacity).fill(undefined);
    this.balancer = createBalancer(
      {
        policy: config.balance,
        ringPointsPerWeight: config.ringHash.pointsPerWeight,
        maglevTableSize: config.maglev.tableSize,
        maxBackends: capacity,
      },
      options.implementation,
    );
    this.#health = this.#createHealth(config, options.healthyIds);
    this.setBackends(config.backends);
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
    const previousSlots = new Map<string, number>();
    for (const backend of this.#backends) previousSlots.set(backend.id, this.balancer.slotOf(backend.id));
    const report = this.balancer.setBackends(backends.map((b) => ({ id: b.id, weight: b.weight })));
    for (const backend of backends) {
      const slot = report.slots.get(backend.id);
      if (slot === undefined) throw new Error(`pool ${this.name}: core returned no slot for backend ${backend.id}`);
      this.#hostBySlot[slot] = backend.address.host;
      this.#portBySlot[slot] = backend.address.port;
      this.#addressBySlot[slot] = backend.address.text;
    }
    this.#backends = backends;
    this.#health.setBackends(backends.map((backend) => ({ slot: report.slots.get(backend.id)!, backend })));
    for (const id of report.removed) {
      const slot = previousSlots.get(id);
      if (slot !== undefined && slot >= 0) this.#startDrain(slot);
    }
    this.#logger.debug({ backends: backends.length, changed: report.changed, buildMs: report.buildMs }, 'pool backends set');
    return report;
  }

  /**
   * Settings a running pool absorbs in place (the runtime builds a fresh pool for policy, hash
   * key and table parameters). Health settings get a fresh health owner over the same slots;
   * backends that are up now stay up (no pending round), the rest start over.
   */
  reconfigure(config: PoolConfig, scheduler: CheckScheduler | null): void {
    const previous = this.#config;
    this.#config = config;
    this.connectTimeoutMs = config.connectTimeoutMs;
    this.retries = config.retries;
    const healthChanged =
      JSON.stringify([previous.healthCheck, previous.outlierDetection, previous.panicThreshold, previous.slowStartMs], bytesAsHex) !==
      JSON.stringify([config.healthCheck, config.outlierDetection, config.panicThreshold, config.slowStartMs], bytesAsHex);
    if (!healthChanged) return;
    const healthyIds = new Set<string>();
    for (const backend of this.#backends) {
      const slot = this.balancer.slotOf(backend.id);
      if (slot >= 0 && this.balancer.isEligible(slot)) healthyIds.add(backend.id);
    }
    this.#health.stop();
    this.#health = this.#createHealth(config, healthyIds);
    this.#health.setBackends(this.#backends.map((backend) => ({ slot: this.balancer.slotOf(backend.id), backend })));
    if (scheduler !== null && !this.#retired) this.#health.startChecks(scheduler);
  }

  /**
   * The pool is being replaced (policy change, capacity) or removed: no new picks reach it; its
   * checks stop and every connection it still holds is cut after `drainTimeoutMs`.
   */
  retire(): void {
    if (this.#retired) return;
    this.#retired = true;
    this.#health.stop();
    for (let slot = 0; slot < this.capacity; slot++) this.#startDrain(slot);
  }

  /** Cut every connection now (shutdown deadline). Returns how many were cut. */
  closeAllConnections(): number {
    let cut = 0;
    for (let slot = 0; slot < this.capacity; slot++) cut += this.#cutSlot(slot);
    return cut;
  }

  /** Connections holding a slot of this pool (acquired and not released). */
  openConnections(): number {
    let open = 0;
    for (let slot = 0; slot < this.capacity; slot++) {
      for (let connection = this.#connectionsBySlot[slot]; connection !== null; connection = connection.slotNext) open += 1;
    }
    return open;
  }

  /** Stops timers (health, drains); connections are left alone. */
  stop(): void {
    this.#health.stop();
    for (let slot = 0; slot < this.capacity; slot++) this.#clearDrain(slot);
  }

  /**
   * Hot path: a connection attempt to `slot` begins. Counts it in the core and links the
   * connection into the slot's list (three field writes, no allocation).
   */
  acquire(slot: number, connection: SlotConnection): void {
    this.balancer.acquire(slot);
    const head = this.#connectionsBySlot[slot];
    connection.slotPrevious = null;
    connection.slotNext = head;
    if (head !== null) head.slotPrevious = connection;
    this.#connectionsBySlot[slot] = connection;
  }

  /** Hot path: that attempt failed, or its connection closed. */
  release(slot: number, connection: SlotConnection): void {
    this.balancer.release(slot);
    if (connection.slotPrevious !== null) connection.slotPrevious.slotNext = connection.slotNext;
    else if (this.#connectionsBySlot[slot] === connection) this.#connectionsBySlot[slot] = connection.slotNext;
    if (connection.slotNext !== null) connection.slotNext.slotPrevious = connection.slotPrevious;
    connection.slotPrevious = null;
    connection.slotNext = null;
    // The last draining connection is gone: the slot may be reused, so its deadline must not fire.
    if (this.#connectionsBySlot[slot] === null && this.#drainTimers[slot] !== undefined) this.#clearDrain(slot);
  }

  #startDrain(slot: number): void {
    if (this.#connectionsBySlot[slot] === null || this.#drainTimers[slot] !== undefined) return;
    const timer = setTimeout(() => {
      this.#drainTimers[slot] = undefined;
      const cut = this.#cutSlot(slot);
      if (cut > 0) this.#logger.info({ backend: this.addressOf(slot), cut, drainTimeoutMs: this.drainTimeoutMs }, 'drain deadline: connections cut');
    }, this.drainTimeoutMs);
    // A drain deadline alone must not keep a stopping process alive.
    timer.unref();
    this.#drainTimers[slot] = timer;
  }

  #clearDrain(slot: number): void {
    const timer = this.#drainTimers[slot];
    if (timer !== undefined) clearTimeout(timer);
    this.#drainTimers[slot] = undefined;
  }

  #cutSlot(slot: number): number {
    let cut = 0;
    // forceClose destroys sockets; the unlink happens later, from their close events.
    for (let connection = this.#connectionsBySlot[slot]; connection !== null; ) {
      const next: SlotConnection | null = connection.slotNext;
      connection.forceClose();
      cut += 1;
      connection = next;
    }
    return cut;
  }

  #createHealth(config: PoolConfig, healthyIds: ReadonlySet<string> | undefined): PoolHealth {
    return new PoolHealth({ config, balancer: this.balancer, capacity: this.capacity, logger: this.#logger, healthyIds });
  }
  /**
   * The key a hash policy places this client by: integers parsed from the source address inside
   * `sourceKeyHash` (IPv4-mapped IPv6 folds onto IPv4), never a string into WASM. 0 for policies
   * that ignore it, so round_robin and friends never touch the peer address.
   */
  keyHashOf(client: Socket): number {
    if (!this.usesClientKey) return 0;
    return sourceKeyHash(client.remoteAddress, client.remotePort, this.#includePort);
  }

  hostOf(slot: number): string {
    return this.#hostBySlot[slot]!;
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

  /** Key hash of a client given as text (admin lookups; never the hot path). */
  keyHashOfAddress(ip: string, port: number): number {
    return sourceKeyHash(ip, port, this.#includePort);
  }

  /**
   * Passive health: a connect attempt to `slot` failed. Feeds outlier detection at once, so after
   * `consecutiveFailures` the next connections do not even try this backend.
   */
  reportConnectFailure(slot: number, reason: ConnectFailureReason): void {
    this.#health.reportConnectFailure(slot, reason);
  }

  /** Passive health: a connect to `slot` succeeded (resets its failure streak; one store). */
  reportConnectSuccess(slot: number): void {
    this.#health.reportConnectSuccess(slot);
  }
}

/** JSON replacer: check bytes (Uint8Array) compare by content. */
function bytesAsHex(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value;
}
