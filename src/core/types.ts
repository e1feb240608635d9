/**
 * The contract between the data plane (src/proxy) and the balancing core (src/core).
 * Only src/core touches WASM memory or exports; everyone else sees `Balancer`.
 */

export const BALANCE_POLICIES = [
  'round_robin',
  'random',
  'least_connections',
  'least_time',
  'ring_hash',
  'maglev',
] as const;
export type BalancePolicy = (typeof BALANCE_POLICIES)[number];

/**
 * Policies whose pick depends on the client's key, so a client has a fixed backend (the others
 * ignore the key: no hashing per connection, and nothing for an admin lookup to answer).
 */
export const KEYED_POLICIES: ReadonlySet<BalancePolicy> = new Set<BalancePolicy>(['ring_hash', 'maglev']);

export interface CoreBackend {
  /** Stable identity (default: the address). Tables depend on it, never on list order. */
  readonly id: string;
  /** Integer 0..MAX_WEIGHT. */
  readonly weight: number;
}

/**
 * Where a balancer built to take over from another one (a pool whose policy or capacity changes in
 * place) puts its backends: each id in `slots` gets that slot if it is free, and slots for which
 * `reserved(slot)` is true are never given to another backend (the old balancer's draining slots).
 */
export interface SlotPlacement {
  readonly slots: ReadonlyMap<string, number>;
  readonly reserved: (slot: number) => boolean;
}

export interface BalancerOptions {
  readonly policy: BalancePolicy;
  /** ring_hash: points per weight unit (ketama/nginx: 160). */
  readonly ringPointsPerWeight?: number;
  /** maglev: prime table size (Maglev paper §5.3 / Envoy / Katran default 65537). */
  readonly maglevTableSize?: number;
  /** Slot capacity; fixed for the life of the balancer. */
  readonly maxBackends?: number;
  /** Seed for the random/least_time generator (tests pass one for reproducibility). */
  readonly randomSeed?: number;
}

export interface RebuildReport {
  /** False when the new set equals the current one (nothing was rebuilt). */
  readonly changed: boolean;
  /** Slot of every backend id in the new set. Slots are stable for ids that stay. */
  readonly slots: ReadonlyMap<string, number>;
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly reweighted: readonly string[];
  /** Wall time of the table build in milliseconds. */
  readonly buildMs: number;
  /**
   * Hash policies: share (0..1) of the key space whose owner changed, computed by comparing the
   * old and new tables. Other policies: share of total weight that changed hands.
   */
  readonly movedShare: number;
}

export interface Balancer {
  readonly policy: BalancePolicy;
  /**
   * Replace the membership (control plane, rare). Builds off the hot path and publishes at once.
   * `placement` (a balancer taking over a pool's slots) pins the slot of each listed id.
   */
  setBackends(backends: readonly CoreBackend[], placement?: SlotPlacement): RebuildReport;
  /** Slot of a backend id, or -1. */
  slotOf(id: string): number;
  /** Backend id held by a slot, or undefined when the slot is free. */
  idOf(slot: number): string | undefined;
  /** Health owner flips one bit; never rebuilds tables. */
  setEligible(slot: number, eligible: boolean): void;
  isEligible(slot: number): boolean;
  /**
   * Slow start (health owner, a few times per second per ramping backend, never per connection):
   * scales the slot's weight to `permille` / 1000 (integer 0..1000; RangeError otherwise). Every slot
   * starts at 1000 and returns to 1000 when it is (re)assigned to a backend; a backend that stays in
   * the set keeps its scale across setBackends. Weighted policies use weight × permille / 1000;
   * ring_hash/maglev admit only a permille-sized, fixed subset of the keys that land on the slot
   * (docs/core.md). 0 acts like weight 0. Rebuilds no table, allocates nothing.
   */
  setWeightScale(slot: number, permille: number): void;
  /** The slot's current weight scale in per mille (1000 = full weight). */
  weightScale(slot: number): number;
  /**
   * Per connection (hot path). Returns a slot or -1 when no eligible backend is left.
   * `tried` holds the slots this connection already tried (attempt = triedCount); a slot in it is
   * never returned while an untried eligible slot exists.
   */
  pick(keyHash: number, tried?: ArrayLike<number>, triedCount?: number): number;
  /**
   * Bounded-load hashing for ring_hash and maglev (control plane, at start and on reload):
   * `factor` percent (101..10000) of the weighted mean of active connections caps each backend;
   * a key whose home is full goes to its next candidate in probe order. 0 turns it off. Rebuilds
   * nothing; other policies ignore it. RangeError for anything else.
   */
  setHashBalanceFactor(factor: number): void;
  /** Picks that passed over `slot` as a key's full home (bounded load); 0 when never full. */
  spilledConnections(slot: number): number;
  /** The pick a first attempt would get now, without side effects (admin lookups, hash policies). */
  peek(keyHash: number): number;
  /**
   * A connection attempt to slot begins (active += 1). Counted from the pick, not the established
   * connection, so a burst of new connections sees its own in-flight connects.
   */
  acquire(slot: number): void;
  /** That attempt failed, or its connection closed (active -= 1). */
  release(slot: number): void;
  /** Feed a successful connect time (microseconds) into the slot's peak EWMA. `nowMs` is a monotonic clock. */
  observeConnectTime(slot: number, micros: number, nowMs: number): void;
  activeConnections(slot: number): number;
  /**
   * Worker threads (ARCHITECTURE.md "All cores"), before a load-aware pick and before a set change:
   * replace the per-slot active counts with the process-wide ones (`counts[slot]` for every slot
   * below `counts.length`) and their sum `total`. One memcpy; allocates nothing.
   */
  loadActiveCounts(counts: Int32Array, total: number): void;
  /** After a pick: the full home it passed over (bounded load), or -1. */
  lastSpilledHome(): number;
  /**
   * Worker threads share least_time's connect-time estimates: replace the per-slot peak EWMAs and
   * their sample times with the process-wide ones (a prefix of `counts.length` slots). One memcpy each.
   */
  loadConnectTimes(ewma: Float64Array, stamps: Float64Array): void;
  /** The slot's peak-EWMA connect time in µs, or -1 when never sampled. */
  connectTimeEwma(slot: number): number;
  /** When (`nowMs` of `observeConnectTime`) the slot's estimate was last sampled. */
  connectTimeStamp(slot: number): number;
  /** Active table for tests/diagnostics: maglev entries (slot per entry) or ring points (position, slot); empty for other policies. */
  tableSnapshot(): { readonly slots: Int32Array; readonly positions: Uint32Array };
  /** For diagnostics and tests: the slot owning maglev table entry / ring position for a key, ignoring health. */
  homeSlot(keyHash: number): number;
}
