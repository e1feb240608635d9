/**
 * `TrafficView` over the running process: process-wide totals per backend and listener, summed
 * from the shared counters when asked (no message to any worker). `/metrics` and `/v1/status`
 * read the same numbers through it.
 *
 * Which backends are reported: every backend of the current set, plus a removed one while
 * connections to it still drain; once drained it leaves (bounded label sets). Listeners: the ones
 * configured, plus a removed or rebound one while its connections drain.
 */
import type { Backend } from '../backend.js';
import type { BackendPool } from '../proxy/backend-pool.js';
import { CONNECTION_OUTCOMES, type ListenerTrafficCounters } from '../shared-state/traffic-counters.js';
import type { BackendTrafficTotals, ListenerTrafficTotals, TrafficView } from './traffic-view.js';

/** What the runtime shows this view; asked on every read (a reload may replace pools and listeners). */
export interface TrafficSource {
  /** Current pools first, then removed ones whose connections still drain. */
  pools(): Iterable<BackendPool>;
  /** Every listener name with counters, and its open connections (every thread, every socket of that name). */
  listeners(): Iterable<{ readonly name: string; readonly active: number; readonly outcomes: ListenerTrafficCounters }>;
}

/** A backend a pool reports: in the current set, or removed and still draining. */
export interface ReportedBackend {
  readonly id: string;
  readonly slot: number;
  /** The backend as the set holds it; null for a removed one whose connections drain. */
  readonly member: Backend | null;
}

export class RuntimeTraffic implements TrafficView {
  readonly #source: TrafficSource;

  constructor(source: TrafficSource) {
    this.#source = source;
  }

  /** The pools to report, each name once (a current pool hides a removed one of the same name). */
  pools(): BackendPool[] {
    const seen = new Set<string>();
    const pools: BackendPool[] = [];
    for (const pool of this.#source.pools()) {
      if (seen.has(pool.name)) continue;
      seen.add(pool.name);
      pools.push(pool);
    }
    return pools;
  }

  /** O(1) for a backend of the set (a status page asks once per backend); a draining one costs a scan of the pool's slots. */
  backend(poolName: string, backendId: string): BackendTrafficTotals | undefined {
    const pool = this.pools().find((candidate) => candidate.name === poolName);
    if (pool === undefined) return undefined;
    let slot = pool.slotOf(backendId);
    if (slot < 0) slot = reportedBackends(pool).find((backend) => backend.id === backendId)?.slot ?? -1;
    if (slot < 0) return undefined;
    return pool.counters.backendTotals(slot, pool.activeConnections(slot));
  }

  listener(name: string): ListenerTrafficTotals | undefined {
    for (const listener of this.listeners()) if (listener.name === name) return listener.totals;
    return undefined;
  }

  listeners(): { readonly name: string; readonly totals: ListenerTrafficTotals }[] {
    const out: { name: string; totals: ListenerTrafficTotals }[] = [];
    for (const listener of this.#source.listeners()) {
      const connections: Record<string, number> = {};
      for (const outcome of CONNECTION_OUTCOMES) connections[outcome] = listener.outcomes.ended(outcome);
      out.push({ name: listener.name, totals: { active: listener.active, connections } });
    }
    return out;
  }

  /** Per listener name: times a thread stopped accepting for lack of file descriptors. */
  listenerAcceptPauses(): { readonly name: string; readonly pauses: number }[] {
    return [...this.#source.listeners()].map((listener) => ({ name: listener.name, pauses: listener.outcomes.acceptPauses() }));
  }
}

/**
 * The backends `pool` reports: its set, then every slot whose last backend left but still holds
 * connections (a removed backend draining). O(capacity), at scrape time only.
 */
export function reportedBackends(pool: BackendPool): ReportedBackend[] {
  const reported: ReportedBackend[] = [];
  const inSet = new Set<string>();
  for (const backend of pool.backends) {
    const slot = pool.slotOf(backend.id);
    if (slot < 0) continue;
    inSet.add(backend.id);
    reported.push({ id: backend.id, slot, member: backend });
  }
  const counters = pool.counters;
  const capacity = Math.min(pool.capacity, counters.capacity);
  for (let slot = 0; slot < capacity; slot++) {
    const owner = counters.ownerOf(slot);
    if (owner === undefined || inSet.has(owner) || pool.idOf(slot) !== undefined) continue;
    if (pool.activeConnections(slot) > 0) reported.push({ id: owner, slot, member: null });
  }
  return reported;
}
