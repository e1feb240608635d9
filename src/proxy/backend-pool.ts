/**
 * One pool at run time: its Balancer (the WASM core behind the `Balancer` contract), where each
 * slot's backend lives, and the per-pool connect settings. The data plane asks a pool three
 * things per connection: the key hash of a client, a slot, and that slot's address.
 *
 * Slot → address tables are plain arrays indexed by slot, rebuilt only when membership changes
 * (control plane), so the hot path reads them with no lookup by string.
 */
import type { Socket } from 'node:net';
import { createBalancer } from '../core/index.js';
import { sourceKeyHash } from '../core/key-hash.js';
import type { Balancer, BalancePolicy, RebuildReport } from '../core/types.js';
import type { BackendConfig, PoolConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { PoolHealth, type CheckScheduler } from '../health/pool-health.js';

/** Policies whose pick depends on the client's key; the others ignore it, so we skip hashing. */
const KEYED_POLICIES: ReadonlySet<BalancePolicy> = new Set<BalancePolicy>(['ring_hash', 'maglev']);

/**
 * Slot capacity of a pool's balancer. Fixed for the balancer's life, so leave room for backends
 * added by a later reload; a pool that starts larger gets twice its size.
 */
const MIN_SLOT_CAPACITY = 256;

/** Why a connect attempt failed, as passed to the (future) passive health hook. */
export type ConnectFailureReason = 'timeout' | 'refused' | 'error';

export interface BackendPoolOptions {
  readonly config: PoolConfig;
  readonly logger: Logger;
  /** Which Balancer implementation to build; default is the core's default (WASM). */
  readonly implementation?: 'wasm' | 'reference';
}

function slotCapacity(config: PoolConfig): number {
  const wanted = Math.max(MIN_SLOT_CAPACITY, config.backends.length * 2);
  // Every Maglev slot must be able to own a table entry, so a small (test) table caps the slots.
  return config.balance === 'maglev' ? Math.min(wanted, config.maglev.tableSize) : wanted;
}

export class BackendPool {
  readonly name: string;
  readonly balancer: Balancer;
  readonly connectTimeoutMs: number;
  /** Extra attempts after the first one. */
  readonly retries: number;
  /** False for policies that ignore the key: no address parsing per connection at all. */
  readonly usesClientKey: boolean;
  /** Sole writer of the balancer's eligibility bits and weight scales. */
  readonly health: PoolHealth;
  readonly #includePort: boolean;
  readonly #logger: Logger;
  #hostBySlot: string[] = [];
  #portBySlot: number[] = [];
  #addressBySlot: string[] = [];

  constructor(options: BackendPoolOptions) {
    const { config } = options;
    this.name = config.name;
    this.connectTimeoutMs = config.connectTimeoutMs;
    this.retries = config.retries;
    this.usesClientKey = KEYED_POLICIES.has(config.balance);
    this.#includePort = config.hashKey === 'source_ip_port';
    this.#logger = options.logger;
    const capacity = slotCapacity(config);
    this.balancer = createBalancer(
      {
        policy: config.balance,
        ringPointsPerWeight: config.ringHash.pointsPerWeight,
        maglevTableSize: config.maglev.tableSize,
        maxBackends: capacity,
      },
      options.implementation,
    );
    this.health = new PoolHealth({ config, balancer: this.balancer, capacity, logger: options.logger });
    this.setBackends(config.backends);
  }

  /**
   * Replace the membership (start-up now, hot reload later). Eligibility is the health owner's:
   * it learns the new slots here (new backends start pending or eligible, per the health config).
   * Connections already open keep their socket; only new picks see the new set.
   */
  setBackends(backends: readonly BackendConfig[]): RebuildReport {
    const report = this.balancer.setBackends(backends.map((b) => ({ id: b.id, weight: b.weight })));
    const hosts: string[] = [];
    const ports: number[] = [];
    const addresses: string[] = [];
    for (const backend of backends) {
      const slot = report.slots.get(backend.id);
      if (slot === undefined) throw new Error(`pool ${this.name}: core returned no slot for backend ${backend.id}`);
      hosts[slot] = backend.address.host;
      ports[slot] = backend.address.port;
      addresses[slot] = backend.address.text;
    }
    this.#hostBySlot = hosts;
    this.#portBySlot = ports;
    this.#addressBySlot = addresses;
    this.health.setBackends(backends.map((backend) => ({ slot: report.slots.get(backend.id)!, backend })));
    this.#logger.info(
      { backends: backends.length, changed: report.changed, buildMs: report.buildMs },
      'pool backends set',
    );
    return report;
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
    this.health.startChecks(scheduler);
  }

  /**
   * Passive health: a connect attempt to `slot` failed. Feeds outlier detection at once, so after
   * `consecutiveFailures` the next connections do not even try this backend.
   */
  reportConnectFailure(slot: number, reason: ConnectFailureReason): void {
    this.health.reportConnectFailure(slot, reason);
  }

  /** Passive health: a connect to `slot` succeeded (resets its failure streak; one store). */
  reportConnectSuccess(slot: number): void {
    this.health.reportConnectSuccess(slot);
  }
}
