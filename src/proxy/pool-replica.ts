/**
 * A worker thread's copy of one pool (ARCHITECTURE.md "All cores"): what its connections ask a
 * pool per connection, answered from shared facts and a local balancer.
 *
 * - Tables: built here from the main thread's snapshot, with every backend pinned to the slot the
 *   main thread's balancer gave it. Tables depend only on ids, weights and slots, so every thread's
 *   tables are identical (test/workers.test.ts compares them) and each key goes to the same slot.
 * - Eligibility and weight scales: written once, by the main thread's health owner, into the
 *   pool's shared state; a pick first compares the health epoch (one atomic load) and, when it
 *   moved, copies the changed bits into the local balancer. No rebuild, nothing lost in a queue.
 * - Active connections: counted process-wide in shared memory. Policies that read load
 *   (least_connections, least_time, bounded-load hashing) copy the counts into the local balancer
 *   before each pick (one memcpy of 4 bytes per slot); the others never read them.
 * - Passive health: a failed connect goes to the main thread's outlier detector (`onFailure`);
 *   a success bumps a shared sequence number (no message per connection).
 * - Drains: each worker cuts its own connections to a backend that left, at the pool's deadline.
 */
import type { BackendFailureReason } from '../backend.js';
import { balancerOptionsOf } from '../config/reload-plan.js';
import type { PoolConfig } from '../config/types.js';
import { createBalancer } from '../core/index.js';
import { sourceKeyHash } from '../core/key-hash.js';
import { KEYED_POLICIES, type Balancer, type BalancerOptions } from '../core/types.js';
import type { Logger } from '../log.js';
import { SharedPoolState } from '../shared-state/pool-state.js';
import { TrafficSegment, type PoolTrafficWriter } from '../shared-state/traffic-counters.js';
import type { PoolSnapshot } from './backend-pool.js';
import type { ConnectionPool } from './connection.js';
import type { ProxySocket } from './handle-socket.js';
import { BackendQueues, type PlaceSource, type QueueDepth, type QueuedConnection } from './backend-queue.js';
import { SlotConnections, type SlotConnection } from './slot-connections.js';

export type FailureReport = (pool: PoolReplica, slot: number, backendId: string, reason: BackendFailureReason) => void;

/** A fresh balancer's state: every slot eligible at full weight. */
const FULL_SCALE = 1000;

export class PoolReplica implements ConnectionPool, PlaceSource {
  readonly name: string;
  connectTimeoutMs = 0;
  retries = 0;
  sendProxyProtocol: 'v1' | 'v2' | null = null;
  responseTimeoutMs = 0;
  serverFinTimeoutMs = 0;
  maxConnectionsPerBackend = 0;
  hashesClients = false;
  #queueSize = 0;
  #queueTimeoutMs = 0;
  /** Made at the first queued connection (most pools never queue). */
  #queues: BackendQueues | null = null;
  /** This worker's view of the shared queue depth (its own ledger row). */
  readonly #queueDepth: QueueDepth = {
    tryQueue: (slot, size) => this.#state.tryQueue(this.#worker, slot, size),
    unqueue: (slot) => this.#state.unqueue(this.#worker, slot),
  };
  readonly #worker: number;
  readonly #state: SharedPoolState;
  readonly #logger: Logger;
  readonly #onFailure: FailureReport;
  #balancer: Balancer | null = null;
  #balancerKey = '';
  #capacity = 0;
  #seenEpoch = -1;
  /** The shared estimates' prefix for this capacity (made once per balancer, not per pick). */
  #activeCounts: Int32Array | null = null;
  #connectTimes: Float64Array | null = null;
  #connectTimeStamps: Float64Array | null = null;
  /** What the local balancer holds now, to write only what changed when the epoch moves. */
  #eligibleNow = new Int8Array(0);
  #scaleNow = new Int32Array(0);
  #loadAware = false;
  /** least_time: connect-time estimates are process-wide too. */
  #sharesConnectTimes = false;
  #bounded = false;
  #usesClientKey = false;
  #includePort = false;
  #connectHosts: readonly string[] = [];
  #families: readonly number[] = [];
  #ports: readonly number[] = [];
  #addresses: readonly string[] = [];
  #idBySlot: (string | undefined)[] = [];
  readonly #connections: SlotConnections;
  #drainTimeoutMs = 30_000;
  #retired = false;
  #open = 0;
  /** This worker's row of the pool's traffic counters; a grown pool sends a new buffer. */
  traffic!: PoolTrafficWriter;
  #trafficBuffer: SharedArrayBuffer | null = null;

  constructor(snapshot: PoolSnapshot, state: SharedPoolState, worker: number, logger: Logger, onFailure: FailureReport) {
    this.name = snapshot.name;
    this.#state = state;
    this.#worker = worker;
    this.#logger = logger;
    this.#onFailure = onFailure;
    this.#connections = new SlotConnections(snapshot.capacity, logger, (slot) => this.addressOf(slot));
    this.apply(snapshot);
  }

  /** Takes the main thread's latest view of the pool; applying the same snapshot twice changes nothing. */
  apply(snapshot: PoolSnapshot): void {
    const config = snapshot.config;
    const options = balancerOptionsOf(config, snapshot.capacity);
    const previousIds = new Map<string, number>();
    for (let slot = 0; slot < this.#idBySlot.length; slot++) {
      const id = this.#idBySlot[slot];
      if (id !== undefined) previousIds.set(id, slot);
    }
    const key = balancerKey(options);
    if (this.#balancer === null || key !== this.#balancerKey) this.#replaceBalancer(options, key, snapshot.capacity);
    const balancer = this.#balancer!;
    balancer.setHashBalanceFactor(config.hashBalanceFactor ?? 0);
    const pinned = new Map(snapshot.backends.map((backend) => [backend.id, backend.slot]));
    const report = balancer.setBackends(
      snapshot.backends.map((backend) => ({ id: backend.id, weight: backend.weight })),
      { slots: pinned, reserved: () => false },
    );
    for (const [id, slot] of report.slots) {
      if (pinned.get(id) !== slot) throw new Error(`pool ${this.name}: backend ${id} got slot ${slot} here but ${pinned.get(id)} in the main thread`);
    }
    if (report.changed && config.balance === 'round_robin') {
      // Each worker starts its rotation `worker` steps further on: workers that all began at the
      // same backend would send the first connections of every worker there together.
      for (let step = 0; step < this.#worker; step++) balancer.pick(0, undefined, 0);
    }
    // The core resets a slot it gives to a new backend (eligible, full scale) and clears a freed
    // one: the copies of what it holds follow, and the next pick copies the shared bits again. Else
    // a reused slot whose new backend is as ineligible as the old one looked unchanged and was picked.
    for (let slot = 0; slot < this.#capacity; slot++) {
      this.#eligibleNow[slot] = balancer.isEligible(slot) ? 1 : 0;
      this.#scaleNow[slot] = balancer.weightScale(slot);
    }
    this.#seenEpoch = -1;
    this.#idBySlot = new Array<string | undefined>(snapshot.capacity);
    for (const backend of snapshot.backends) this.#idBySlot[backend.slot] = backend.id;
    this.#connectHosts = snapshot.connectHosts;
    this.#families = snapshot.families;
    this.#ports = snapshot.ports;
    this.#addresses = snapshot.addresses;
    this.connectTimeoutMs = config.connectTimeoutMs;
    this.retries = config.retries;
    this.sendProxyProtocol = config.sendProxyProtocol ?? null;
    this.responseTimeoutMs = config.responseTimeoutMs ?? 0;
    this.serverFinTimeoutMs = config.serverFinTimeoutMs ?? 0;
    this.maxConnectionsPerBackend = config.maxConnectionsPerBackend ?? 0;
    this.#queueSize = config.queue?.size ?? 0;
    this.#queueTimeoutMs = config.queue?.timeoutMs ?? 1;
    // A reload that raised or removed the limit lets waiting connections go now.
    this.#queues?.recheck();
    // A grown pool's new segment is larger; a snapshot arrives as a new object over the same memory.
    if (snapshot.traffic.byteLength !== this.#trafficBuffer?.byteLength) {
      this.#trafficBuffer = snapshot.traffic;
      this.traffic = TrafficSegment.attach(snapshot.traffic).writer(this.#worker);
    }
    this.#drainTimeoutMs = snapshot.drainTimeoutMs;
    this.#usesClientKey = KEYED_POLICIES.has(config.balance);
    this.hashesClients = this.#usesClientKey;
    this.#includePort = config.hashKey === 'source_ip_port';
    this.#bounded = this.#usesClientKey && (config.hashBalanceFactor ?? 0) > 0;
    this.#loadAware = config.balance === 'least_connections' || config.balance === 'least_time' || this.#bounded;
    this.#sharesConnectTimes = config.balance === 'least_time';
    this.#connections.ensureCapacity(snapshot.capacity);
    for (const [id, slot] of previousIds) if (!pinned.has(id)) this.#connections.startDrain(slot, this.#drainTimeoutMs);
    if (snapshot.retired && !this.#retired) {
      this.#retired = true;
      for (let slot = 0; slot < this.#connections.capacity; slot++) this.#connections.startDrain(slot, this.#drainTimeoutMs);
    }
  }

  #replaceBalancer(options: BalancerOptions, key: string, capacity: number): void {
    // Replicas always run the WASM core: the reference twin is the main thread's test double.
    this.#balancer = createBalancer(options);
    this.#balancerKey = key;
    this.#capacity = capacity;
    // Nothing placed yet: the set is applied with pinned slots right after.
    this.#idBySlot = [];
    this.#eligibleNow = new Int8Array(capacity).fill(1);
    this.#activeCounts = this.#state.active.subarray(0, capacity);
    this.#connectTimes = this.#state.connectTimes.subarray(0, capacity);
    this.#connectTimeStamps = this.#state.connectTimeStamps.subarray(0, capacity);
    this.#scaleNow = new Int32Array(capacity).fill(FULL_SCALE);
    this.#seenEpoch = -1;
  }

  get retired(): boolean {
    return this.#retired;
  }

  /** Connections of this worker holding a slot of this pool. */
  get openConnections(): number {
    return this.#open;
  }

  /** Tests and diagnostics: the local balancer's table, to compare across threads. */
  tableSnapshot(): { readonly slots: Int32Array; readonly positions: Uint32Array } | undefined {
    return this.#balancer?.tableSnapshot();
  }

  cutAll(): number {
    return this.#connections.cutAll();
  }

  stop(): void {
    this.#connections.clearAllDrains();
    this.#queues?.clear();
  }

  // --- per connection (ConnectionPool) -----------------------------------------------------------

  keyHashOf(client: ProxySocket): number {
    if (!this.#usesClientKey) return 0;
    return sourceKeyHash(client.remoteAddress, client.remotePort, this.#includePort);
  }

  keyHashOfPeer(address: string | undefined, port: number | undefined): number {
    if (!this.#usesClientKey) return 0;
    return sourceKeyHash(address, port, this.#includePort);
  }

  pick(keyHash: number, tried: ArrayLike<number> | undefined, triedCount: number): number {
    const state = this.#state;
    const balancer = this.#balancer!;
    if (state.healthEpoch() !== this.#seenEpoch) this.#syncHealth();
    if (this.#loadAware) balancer.loadActiveCounts(this.#activeCounts!, state.activeTotal());
    if (this.#sharesConnectTimes) balancer.loadConnectTimes(this.#connectTimes!, this.#connectTimeStamps!);
    const slot = balancer.pick(keyHash, tried, triedCount);
    if (this.#bounded) {
      const home = balancer.lastSpilledHome();
      if (home >= 0) state.noteSpill(home);
    }
    return slot;
  }

  /**
   * The epoch is read before the bits: a write that lands while we copy bumps it again, so the
   * next pick copies once more. Writes only what changed (a flip costs the core O(1); a scale
   * change on a random pool recomputes its prefix sums).
   */
  #syncHealth(): void {
    const state = this.#state;
    const balancer = this.#balancer!;
    this.#seenEpoch = state.healthEpoch();
    const eligibleNow = this.#eligibleNow;
    const scaleNow = this.#scaleNow;
    for (let slot = 0; slot < this.#capacity; slot++) {
      const eligible = state.eligible(slot) ? 1 : 0;
      if (eligible !== eligibleNow[slot]) {
        eligibleNow[slot] = eligible;
        balancer.setEligible(slot, eligible === 1);
      }
      const scale = state.scale(slot);
      if (scale !== scaleNow[slot]) {
        scaleNow[slot] = scale;
        balancer.setWeightScale(slot, scale);
      }
    }
  }

  acquire(slot: number, connection: SlotConnection): void {
    this.#state.acquire(this.#worker, slot);
    this.#open += 1;
    this.#connections.link(slot, connection);
  }

  /** Limited pools: a place only while the slot is below its limit in every worker (compare-and-swap). */
  tryAcquire(slot: number, connection: SlotConnection): boolean {
    if (!this.#state.tryAcquire(this.#worker, slot, this.maxConnectionsPerBackend)) return false;
    this.#open += 1;
    this.#connections.link(slot, connection);
    return true;
  }

  enqueue(slot: number, connection: QueuedConnection): boolean {
    this.#queues ??= new BackendQueues(this, this.#queueDepth);
    return this.#queues.enqueue(slot, connection, this.#queueSize, this.#queueTimeoutMs);
  }

  leaveQueue(slot: number, connection: QueuedConnection): void {
    this.#queues?.remove(slot, connection);
  }

  releasedEpoch(): number {
    return this.#state.releasedEpoch();
  }

  /** Queue ticks: the shared eligibility as the next pick would see it. */
  isRoutable(slot: number): boolean {
    if (this.#state.healthEpoch() !== this.#seenEpoch) this.#syncHealth();
    return this.#idBySlot[slot] !== undefined && this.#balancer!.isEligible(slot);
  }

  release(slot: number, connection: SlotConnection): void {
    this.#state.release(this.#worker, slot);
    this.#open -= 1;
    this.#connections.unlink(slot, connection);
    if (this.maxConnectionsPerBackend > 0) {
      // Other workers' queued connections see the epoch move at their next poll; ours go now.
      this.#state.noteReleased();
      this.#queues?.released(slot);
    }
  }

  hostOf(slot: number): string {
    return this.#connectHosts[slot]!;
  }

  portOf(slot: number): number {
    return this.#ports[slot]!;
  }

  familyOf(slot: number): number {
    return this.#families[slot]!;
  }

  addressOf(slot: number): string {
    return this.#addresses[slot] ?? `slot ${slot}`;
  }

  /**
   * least_time: the sample updates the process-wide estimate (read in, updated, written back), so
   * every worker avoids a slow backend once any worker met it. Two workers updating one slot at the
   * same instant may lose one sample of the average; nothing else depends on it.
   */
  observeConnectTime(slot: number, micros: number, nowMs: number): void {
    const balancer = this.#balancer!;
    if (!this.#sharesConnectTimes) {
      balancer.observeConnectTime(slot, micros, nowMs);
      return;
    }
    balancer.loadConnectTimes(this.#connectTimes!, this.#connectTimeStamps!);
    balancer.observeConnectTime(slot, micros, nowMs);
    this.#state.connectTimes[slot] = balancer.connectTimeEwma(slot);
    this.#state.connectTimeStamps[slot] = balancer.connectTimeStamp(slot);
  }

  reportConnectSuccess(slot: number): void {
    this.#state.noteSuccess(slot);
  }

  reportConnectFailure(slot: number, reason: BackendFailureReason): void {
    const id = this.#idBySlot[slot];
    if (id !== undefined) this.#onFailure(this, slot, id, reason);
  }
}

function balancerKey(options: BalancerOptions): string {
  return `${options.policy}/${options.maxBackends}/${options.maglevTableSize}/${options.ringPointsPerWeight}`;
}
