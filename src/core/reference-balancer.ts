/**
 * Plain TypeScript implementation of every policy, written for clarity rather than speed. It uses
 * the same hashes, PRNG, table-build order and tie-breaks as the WASM core (assembly/), so the
 * differential test (test/core-differential.test.ts) can demand identical picks, tables and moved
 * shares. It is also the baseline in the benchmarks.
 */
import { compareIdentity, maglevProbeHash, ringPointHash, slowStartAdmitHash } from './hash.js';
import {
  DEFAULT_CONNECT_MICROS,
  EWMA_TAU_MS,
  MAGLEV_PROBES,
  RANDOM_DRAWS,
  RING_MAX_POINTS,
  RING_WALK_LIMIT,
  checkBalanceFactor,
  checkWeightScale,
  FULL_WEIGHT_SCALE,
  resolveBalancerOptions,
  type ResolvedBalancerOptions,
} from './options.js';
import { normalizeSeed, xorshift32 } from './prng.js';
import { SlotTable } from './slot-table.js';
import type { BalancePolicy, Balancer, BalancerOptions, CoreBackend, RebuildReport, SlotPlacement } from './types.js';

interface RingPoint {
  readonly hash: number;
  readonly slot: number;
}

/** One published table: everything a pick reads, built from membership and weights only. */
interface Table {
  /** Slots with weight > 0, sorted by identity (hi, lo). */
  readonly order: number[];
  readonly weightBySlot: Int32Array;
  readonly hiBySlot: Uint32Array;
  readonly loBySlot: Uint32Array;
  readonly totalWeight: number;
  /** random: prefix[i] = Σ weight of order[0..i]. */
  readonly prefix: number[];
  readonly maglev: Int32Array;
  readonly ring: RingPoint[];
}

export class ReferenceBalancer implements Balancer {
  readonly policy: BalancePolicy;
  readonly options: ResolvedBalancerOptions;
  readonly #slots: SlotTable;
  readonly #active: Int32Array;
  readonly #ewma: Float64Array;
  readonly #ewmaStampMs: Float64Array;
  /** nginx current_weight in weight × per-mille units (exact integers in a double up to 2^53). */
  readonly #swrrCurrent: Float64Array;
  readonly #eligible: Uint8Array;
  /** Slow-start weight scale per slot, per mille. */
  readonly #weightScale: Int32Array;
  /** Slots whose scale is below full; 0 keeps every pick on its unscaled path. */
  #rampingSlots = 0;
  /** random: running Σ weight × scale over the table order, and its total. */
  #scaledPrefix: number[] = [];
  #scaledTotal = 0;
  #table: Table;
  #rng: number;
  #builds = 0;
  /** hashBalanceFactor in percent; 0 = no bound. */
  #balanceFactor = 0;
  /** Picks turned away from each (home) slot because it was full. */
  readonly #spilled: Uint32Array;
  #lastSpill = -1;
  #countSpills = true;

  constructor(options: BalancerOptions) {
    this.options = resolveBalancerOptions(options);
    this.policy = this.options.policy;
    const capacity = this.options.maxBackends;
    this.#slots = new SlotTable(capacity);
    this.#active = new Int32Array(capacity);
    this.#ewma = new Float64Array(capacity).fill(-1);
    this.#ewmaStampMs = new Float64Array(capacity);
    this.#swrrCurrent = new Float64Array(capacity);
    this.#eligible = new Uint8Array(capacity).fill(1);
    this.#weightScale = new Int32Array(capacity).fill(FULL_WEIGHT_SCALE);
    this.#spilled = new Uint32Array(capacity);
    this.#rng = normalizeSeed(this.options.randomSeed);
    this.#table = this.#buildTable();
  }

  setBackends(backends: readonly CoreBackend[], placement?: SlotPlacement): RebuildReport {
    const change = this.#slots.apply(backends, (slot) => this.#active[slot], placement);
    if (!change.changed) {
      return { changed: false, slots: change.slots, added: [], removed: [], reweighted: [], buildMs: 0, movedShare: 0 };
    }
    for (const slot of change.removedSlots) this.#storeScale(slot, FULL_WEIGHT_SCALE);
    for (const slot of change.addedSlots) {
      this.#spilled[slot] = 0;
      this.#ewma[slot] = -1;
      this.#ewmaStampMs[slot] = 0;
      this.#storeScale(slot, FULL_WEIGHT_SCALE);
      this.#eligible[slot] = 1;
    }
    const started = performance.now();
    const next = this.#buildTable();
    const movedShare = this.#movedShare(this.#table, next);
    this.#table = next;
    this.#builds++;
    this.#swrrCurrent.fill(0);
    this.#computeScaledPrefix();
    const buildMs = performance.now() - started;
    return { changed: true, slots: change.slots, added: change.added, removed: change.removed, reweighted: change.reweighted, buildMs, movedShare };
  }

  slotOf(id: string): number {
    return this.#slots.slotOf(id);
  }

  idOf(slot: number): string | undefined {
    return this.#slots.idOf(slot);
  }

  setEligible(slot: number, eligible: boolean): void {
    this.#checkSlot(slot);
    this.#eligible[slot] = eligible ? 1 : 0;
  }

  isEligible(slot: number): boolean {
    this.#checkSlot(slot);
    return this.#eligible[slot] === 1;
  }

  setWeightScale(slot: number, permille: number): void {
    this.#checkSlot(slot);
    this.#storeScale(slot, checkWeightScale(permille));
    this.#computeScaledPrefix();
  }

  weightScale(slot: number): number {
    this.#checkSlot(slot);
    return this.#weightScale[slot];
  }

  #storeScale(slot: number, permille: number): void {
    if (this.#weightScale[slot] < FULL_WEIGHT_SCALE) this.#rampingSlots--;
    if (permille < FULL_WEIGHT_SCALE) this.#rampingSlots++;
    this.#weightScale[slot] = permille;
  }

  #computeScaledPrefix(): void {
    const table = this.#table;
    let total = 0;
    this.#scaledPrefix = table.order.map((slot) => (total += table.weightBySlot[slot] * this.#weightScale[slot]));
    this.#scaledTotal = total;
  }

  /** Slow start on hash policies: a ramping slot admits a key only below its admit threshold. */
  #admits(slot: number, key: number): boolean {
    const scale = this.#weightScale[slot];
    if (scale >= FULL_WEIGHT_SCALE) return true;
    return slowStartAdmitHash(key, this.#table.loBySlot[slot]) < Math.floor((scale * 65536) / FULL_WEIGHT_SCALE);
  }

  setHashBalanceFactor(factor: number): void {
    this.#balanceFactor = checkBalanceFactor(factor);
  }

  loadActiveCounts(counts: Int32Array, total: number): void {
    this.#active.set(counts.length > this.#active.length ? counts.subarray(0, this.#active.length) : counts);
    // The reference sums the counts at each bound check, so the total is implied.
    void total;
  }

  lastSpilledHome(): number {
    return this.#lastSpill;
  }

  loadConnectTimes(ewma: Float64Array, stamps: Float64Array): void {
    const slots = Math.min(ewma.length, this.#ewma.length);
    this.#ewma.set(ewma.subarray(0, slots));
    this.#ewmaStampMs.set(stamps.subarray(0, slots));
  }

  connectTimeStamp(slot: number): number {
    return this.#ewmaStampMs[slot];
  }

  spilledConnections(slot: number): number {
    this.#checkSlot(slot);
    return this.#spilled[slot];
  }

  peek(keyHash: number): number {
    this.#countSpills = false;
    try {
      return this.pick(keyHash);
    } finally {
      this.#countSpills = true;
    }
  }

  /**
   * Bounded load (Mirrokni, Thorup, Zadimoghaddam 2016): a slot takes one more connection while
   * active < ceil(factor/100 × (Σ active + 1) × weight / Σ pickable weight), i.e. without division
   * active × 100 × W < factor × (Σ active + 1) × weight. Same formula as the core (docs/core.md).
   */
  #withinBound(slot: number): boolean {
    const table = this.#table;
    let pickableWeight = 0;
    for (const s of table.order) if (this.#eligible[s] === 1 && this.#weightScale[s] > 0) pickableWeight += table.weightBySlot[s];
    let total = 0;
    for (const count of this.#active) total += count;
    return this.#active[slot] * 100 * pickableWeight < this.#balanceFactor * (total + 1) * table.weightBySlot[slot];
  }

  acquire(slot: number): void {
    this.#checkSlot(slot);
    this.#active[slot]++;
  }

  release(slot: number): void {
    this.#checkSlot(slot);
    if (this.#active[slot] === 0) throw new RangeError(`release(${slot}) without a matching acquire`);
    this.#active[slot]--;
  }

  activeConnections(slot: number): number {
    this.#checkSlot(slot);
    return this.#active[slot];
  }

  observeConnectTime(slot: number, micros: number, nowMs: number): void {
    this.#checkSlot(slot);
    if (!Number.isFinite(micros) || micros < 0) throw new RangeError(`connect time must be a finite number ≥ 0, got ${micros}`);
    if (!Number.isFinite(nowMs)) throw new RangeError(`nowMs must be finite, got ${nowMs}`);
    if (this.#ewma[slot] < 0) {
      this.#ewma[slot] = micros;
      this.#ewmaStampMs[slot] = nowMs;
      return;
    }
    const elapsed = Math.max(0, nowMs - this.#ewmaStampMs[slot]);
    this.#ewmaStampMs[slot] = nowMs;
    if (micros > this.#ewma[slot]) {
      this.#ewma[slot] = micros; // peak: a slower sample replaces the estimate at once (Finagle PeakEwma)
    } else {
      const decay = Math.exp(-elapsed / EWMA_TAU_MS);
      this.#ewma[slot] = this.#ewma[slot] * decay + micros * (1 - decay);
    }
  }

  /** Tables built by setBackends (tests: a health flip or a scale change builds nothing). */
  buildCount(): number {
    return this.#builds;
  }

  /** Current peak-EWMA connect time of a slot in microseconds, or -1 when never sampled. */
  connectTimeEwma(slot: number): number {
    this.#checkSlot(slot);
    return this.#ewma[slot];
  }

  homeSlot(keyHash: number): number {
    const table = this.#table;
    if (table.order.length === 0) return -1;
    const key = keyHash >>> 0;
    if (this.policy === 'maglev') return table.maglev[key % table.maglev.length];
    if (this.policy === 'ring_hash') return table.ring[this.#ringIndex(key)].slot;
    return -1;
  }

  /** Active table for tests/diagnostics: maglev entries (slot per entry) or ring points (position, slot). */
  tableSnapshot(): { readonly slots: Int32Array; readonly positions: Uint32Array } {
    const table = this.#table;
    if (this.policy === 'maglev') return { slots: table.order.length > 0 ? Int32Array.from(table.maglev) : new Int32Array(0), positions: new Uint32Array(0) };
    if (this.policy === 'ring_hash') {
      return { slots: Int32Array.from(table.ring, (point) => point.slot), positions: Uint32Array.from(table.ring, (point) => point.hash) };
    }
    return { slots: new Int32Array(0), positions: new Uint32Array(0) };
  }

  pick(keyHash: number, tried?: ArrayLike<number>, triedCount: number = tried?.length ?? 0): number {
    this.#lastSpill = -1;
    const usable = (slot: number): boolean => {
      // A scale of 0 acts like weight 0: never picked, not even by the fallback scan.
      if (this.#eligible[slot] === 0 || this.#weightScale[slot] === 0) return false;
      for (let i = 0; i < triedCount && tried !== undefined; i++) if (tried[i] === slot) return false;
      return true;
    };
    const key = keyHash >>> 0;
    const table = this.#table;
    const n = table.order.length;
    if (n === 0) return -1;
    const scanFrom = (start: number): number => {
      for (let t = 0; t < n; t++) {
        const slot = table.order[(start + t) % n];
        if (usable(slot)) return slot;
      }
      return -1;
    };
    // Bounded load: a pick that passed over a full home counts against that home.
    const spill = (home: number, slot: number): number => {
      if (home >= 0 && this.#countSpills) {
        this.#spilled[home]++;
        this.#lastSpill = home;
      }
      return slot;
    };
    // Every probed candidate full: identity order from `start` to the first one within its bound,
    // else the home anyway. No usable candidate at all: the plain fallback scan.
    const boundedFallback = (home: number, start: number): number => {
      if (home < 0) return scanFrom(start);
      for (let t = 0; t < n; t++) {
        const slot = table.order[(start + t) % n];
        if (usable(slot) && this.#withinBound(slot)) return spill(home, slot);
      }
      return home;
    };
    switch (this.policy) {
      case 'round_robin': {
        // nginx ngx_http_upstream_get_peer (smooth weighted round robin) over usable peers.
        let best = -1;
        let total = 0;
        for (const slot of table.order) {
          if (!usable(slot)) continue;
          // Effective weight = weight × scale (per-mille units): scaling every weight by 1000 leaves
          // the sequence unchanged, and a weight-1 backend still ramps.
          const weight = table.weightBySlot[slot] * this.#weightScale[slot];
          this.#swrrCurrent[slot] += weight;
          total += weight;
          if (best < 0 || this.#swrrCurrent[slot] > this.#swrrCurrent[best]) best = slot;
        }
        if (best >= 0) this.#swrrCurrent[best] -= total;
        return best;
      }
      case 'random': {
        let index = 0;
        const scaled = this.#rampingSlots > 0;
        if (scaled && this.#scaledTotal === 0) return scanFrom(0);
        for (let draw = 0; draw < RANDOM_DRAWS; draw++) {
          if (scaled) {
            // While some slot ramps: r / 2^32 × Σ(weight × scale) in the scaled prefix sums.
            const target = Math.floor((this.#nextRandom() * this.#scaledTotal) / 0x1_0000_0000);
            index = this.#scaledPrefix.findIndex((sum) => sum > target);
          } else {
            const target = this.#nextRandom() % table.totalWeight;
            index = table.prefix.findIndex((sum) => sum > target);
          }
          if (usable(table.order[index])) return table.order[index];
        }
        return scanFrom(index);
      }
      case 'least_connections': {
        // nginx least_conn (ngx_http_upstream_get_least_conn_peer): fewest active/(weight × scale),
        // compared by cross-multiplication (no division; doubles are exact below 2^53: active <
        // 9·10^8 at the largest weight × scale, 10^7). Ties go through smooth weighted round robin
        // over the tied slots only, so idle backends still share by weight; the policy is fixed per
        // instance, so it reuses round_robin's current weights.
        const scaled = (s: number): number => table.weightBySlot[s] * this.#weightScale[s];
        let best = -1;
        let first = 0; // order index of the first minimal slot: earlier slots cannot tie
        for (let i = 0; i < n; i++) {
          const slot = table.order[i];
          if (!usable(slot)) continue;
          if (best < 0 || this.#active[slot] * scaled(best) < this.#active[best] * scaled(slot)) {
            best = slot;
            first = i;
          }
        }
        if (best < 0) return -1;
        let winner = -1;
        let total = 0;
        for (let i = first; i < n; i++) {
          const slot = table.order[i];
          if (!usable(slot) || this.#active[slot] * scaled(best) !== this.#active[best] * scaled(slot)) continue;
          const weight = scaled(slot);
          this.#swrrCurrent[slot] += weight;
          total += weight;
          if (winner < 0 || this.#swrrCurrent[slot] > this.#swrrCurrent[winner]) winner = slot;
        }
        this.#swrrCurrent[winner] -= total;
        return winner;
      }
      case 'least_time': {
        const first = this.#nextRandom() % n;
        let second = first;
        if (n > 1) {
          // Two distinct indices without a rejection loop (linkerd gen_pair).
          second = this.#nextRandom() % (n - 1);
          if (second >= first) second++;
        }
        const a = scanFrom(first);
        if (a < 0) return -1;
        const b = scanFrom(second);
        if (a === b) return a;
        const scaled = (s: number): number => (table.weightBySlot[s] * this.#weightScale[s]) / FULL_WEIGHT_SCALE;
        const costA = this.#loadCost(a) * scaled(b);
        const costB = this.#loadCost(b) * scaled(a);
        return costB < costA ? b : a;
      }
      case 'ring_hash': {
        const points = table.ring.length;
        const start = this.#ringIndex(key);
        const walk = Math.min(RING_WALK_LIMIT, points);
        let home = -1;
        for (let step = 0; step < walk; step++) {
          const slot = table.ring[(start + step) % points].slot;
          if (!usable(slot) || !this.#admits(slot, key)) continue;
          if (this.#balanceFactor === 0 || this.#withinBound(slot)) return spill(home, slot);
          if (home < 0) home = slot;
        }
        return boundedFallback(home, key % n);
      }
      case 'maglev': {
        const size = table.maglev.length;
        let home = -1;
        for (let probe = 0; probe < MAGLEV_PROBES; probe++) {
          const hash = probe === 0 ? key : maglevProbeHash(key, probe);
          const slot = table.maglev[hash % size];
          if (!usable(slot) || !this.#admits(slot, key)) continue;
          if (this.#balanceFactor === 0 || this.#withinBound(slot)) return spill(home, slot);
          if (home < 0) home = slot;
        }
        return boundedFallback(home, key % n);
      }
    }
  }

  #nextRandom(): number {
    this.#rng = xorshift32(this.#rng);
    return this.#rng;
  }

  /** Peak EWMA × (active + 1); an unsampled slot costs DEFAULT_CONNECT_MICROS. */
  #loadCost(slot: number): number {
    const ewma = this.#ewma[slot] < 0 ? DEFAULT_CONNECT_MICROS : this.#ewma[slot];
    return ewma * (this.#active[slot] + 1);
  }

  /** First ring point at or clockwise after `key` (wrapping to 0). */
  #ringIndex(key: number): number {
    const ring = this.#table.ring;
    let low = 0;
    let high = ring.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (ring[middle].hash < key) low = middle + 1;
      else high = middle;
    }
    return low === ring.length ? 0 : low;
  }

  #checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.options.maxBackends) {
      throw new RangeError(`slot must be an integer in 0..${this.options.maxBackends - 1}, got ${String(slot)}`);
    }
  }

  #buildTable(): Table {
    const capacity = this.options.maxBackends;
    const weightBySlot = new Int32Array(capacity);
    const hiBySlot = new Uint32Array(capacity);
    const loBySlot = new Uint32Array(capacity);
    const order: number[] = [];
    for (let slot = 0; slot < capacity; slot++) {
      const identity = this.#slots.identityOf(slot);
      const weight = this.#slots.weightOf(slot);
      if (identity === undefined || weight === 0) continue;
      weightBySlot[slot] = weight;
      hiBySlot[slot] = identity.hi;
      loBySlot[slot] = identity.lo;
      order.push(slot);
    }
    order.sort((a, b) => compareIdentity(hiBySlot[a], loBySlot[a], hiBySlot[b], loBySlot[b]));
    const prefix: number[] = [];
    let totalWeight = 0;
    for (const slot of order) {
      totalWeight += weightBySlot[slot];
      prefix.push(totalWeight);
    }
    const base = { order, weightBySlot, hiBySlot, loBySlot, totalWeight, prefix };
    return {
      ...base,
      maglev: this.policy === 'maglev' ? buildMaglev(base, this.options.maglevTableSize) : new Int32Array(0),
      ring: this.policy === 'ring_hash' ? buildRing(base, this.options.ringPointsPerWeight) : [],
    };
  }

  #movedShare(previous: Table, next: Table): number {
    const sameOwner = (a: number, b: number): boolean =>
      a >= 0 && b >= 0 && previous.hiBySlot[a] === next.hiBySlot[b] && previous.loBySlot[a] === next.loBySlot[b];
    if (previous.order.length === 0 || next.order.length === 0) {
      return previous.order.length === next.order.length ? 0 : 1;
    }
    if (this.policy === 'maglev') {
      let moved = 0;
      for (let entry = 0; entry < next.maglev.length; entry++) {
        if (!sameOwner(previous.maglev[entry], next.maglev[entry])) moved++;
      }
      return moved / next.maglev.length;
    }
    if (this.policy === 'ring_hash') return ringMovedShare(previous.ring, next.ring, sameOwner);
    // Weighted policies: total variation distance between the two weight distributions.
    let sum = 0;
    for (let slot = 0; slot < this.options.maxBackends; slot++) {
      const before = previous.weightBySlot[slot] / previous.totalWeight;
      const after = next.weightBySlot[slot] / next.totalWeight;
      if (before > 0 && after > 0 && sameOwner(slot, slot)) sum += Math.abs(after - before);
      else sum += before + after;
    }
    return sum / 2;
  }
}

type TableBase = Pick<Table, 'order' | 'weightBySlot' | 'hiBySlot' | 'loBySlot' | 'totalWeight'>;

/**
 * Maglev paper §3.4 pseudocode listing 1, weighted the way Envoy's MaglevTable does it: in round
 * `iteration` (1, 2, ...) a backend takes a turn only when iteration × weight ≥ its target, and each
 * turn raises its target by the largest weight. So the heaviest backend fills on every round, one of
 * a third of its weight every third round, and every backend fills once in round 1.
 * offset = identityLo mod M, skip = identityHi mod (M − 1) + 1.
 */
export function buildMaglev(base: TableBase, size: number): Int32Array {
  const table = new Int32Array(size).fill(-1);
  if (base.order.length === 0) return table;
  const maxWeight = Math.max(...base.order.map((slot) => base.weightBySlot[slot]));
  const entries = base.order.map((slot) => ({
    slot,
    offset: base.loBySlot[slot] % size,
    skip: (base.hiBySlot[slot] % (size - 1)) + 1,
    weight: base.weightBySlot[slot],
    next: 0,
    target: 0,
  }));
  let filled = 0;
  for (let iteration = 1; filled < size; iteration++) {
    for (const entry of entries) {
      if (filled === size) break;
      if (iteration * entry.weight < entry.target) continue;
      entry.target += maxWeight;
      let candidate = (entry.offset + entry.next * entry.skip) % size;
      while (table[candidate] !== -1) {
        entry.next++;
        candidate = (entry.offset + entry.next * entry.skip) % size;
      }
      table[candidate] = entry.slot;
      entry.next++;
      filled++;
    }
  }
  return table;
}

/**
 * Ketama-style ring: pointsPerWeight × weight points per backend at ringPointHash(identity, i),
 * scaled down to fit RING_MAX_POINTS (each weighted backend keeps ≥ 1 point). Points are generated
 * in identity order and stably sorted by position, so equal positions keep identity order.
 */
export function buildRing(base: TableBase, pointsPerWeight: number): RingPoint[] {
  const points: RingPoint[] = [];
  const scaled = pointsPerWeight * base.totalWeight > RING_MAX_POINTS;
  for (const slot of base.order) {
    const weight = base.weightBySlot[slot];
    const count = scaled ? Math.max(1, integerDivide(weight * RING_MAX_POINTS, base.totalWeight)) : weight * pointsPerWeight;
    for (let i = 0; i < count; i++) points.push({ hash: ringPointHash(base.hiBySlot[slot], base.loBySlot[slot], i), slot });
  }
  return points.sort((a, b) => a.hash - b.hash);
}

function integerDivide(dividend: number, divisor: number): number {
  return (dividend - (dividend % divisor)) / divisor;
}

/**
 * Share of the 2^32 key circle whose owner changed: walk the merged point positions; between two
 * consecutive positions both rings have a constant owner (the first point at or after the key).
 */
export function ringMovedShare(previous: readonly RingPoint[], next: readonly RingPoint[], sameOwner: (a: number, b: number) => boolean): number {
  let moved = 0;
  let i = 0;
  let j = 0;
  let segmentStart = 0; // first key of the current segment
  while (i < previous.length || j < next.length) {
    const a = i < previous.length ? previous[i].hash : 0x1_0000_0000;
    const b = j < next.length ? next[j].hash : 0x1_0000_0000;
    const boundary = Math.min(a, b);
    const ownerBefore = i < previous.length ? previous[i].slot : previous[0].slot;
    const ownerAfter = j < next.length ? next[j].slot : next[0].slot;
    if (!sameOwner(ownerBefore, ownerAfter)) moved += boundary - segmentStart + 1;
    segmentStart = boundary + 1;
    while (i < previous.length && previous[i].hash === boundary) i++;
    while (j < next.length && next[j].hash === boundary) j++;
  }
  // Keys after the last position wrap to the first point of each ring.
  if (segmentStart <= 0xffff_ffff && !sameOwner(previous[0].slot, next[0].slot)) moved += 0x1_0000_0000 - segmentStart;
  return moved / 0x1_0000_0000;
}
