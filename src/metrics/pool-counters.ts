/**
 * One pool's counters as the main thread reads them: traffic counted by the data plane (shared
 * segments, src/shared-state/traffic-counters.ts) and the control-plane facts counted here (health
 * check failures and ejections per backend, table rebuilds). Owned by the `BackendPool`, which
 * outlives reloads that rebuild its tables (runtime.ts "replace"), so no reload resets a count of a
 * backend that stays.
 *
 * Counts belong to a backend, not to a slot: a slot given to another backend (its old one left and
 * drained) starts from zero. The data plane's cells are never written by this thread, so a reused
 * slot is not cleared: the main thread notes the slot's totals at that moment (`#baseline`) and
 * reports the difference. One writer per cell, and no race with a worker still adding.
 */
import type { ConnectFailureReason } from '../backend.js';
import { CONNECT_SECONDS_BOUNDS, SLOT_CELLS, SlotCell, TrafficSegment } from '../shared-state/traffic-counters.js';
import type { BackendTrafficTotals, HistogramTotals } from './traffic-view.js';

const FAILURE_CELLS: Readonly<Record<ConnectFailureReason, number>> = {
  timeout: SlotCell.FAILED_TIMEOUT,
  refused: SlotCell.FAILED_REFUSED,
  error: SlotCell.FAILED_ERROR,
};

export class PoolCounters {
  /** Data-plane threads writing: the workers, or 1 (the main thread). */
  readonly rows: number;
  /** Oldest first; the last one is where threads write now. */
  readonly #segments: TrafficSegment[] = [];
  #baseline: Float64Array;
  /** Backend id whose counts each slot holds now; stays after the backend left, until the slot is reused. */
  readonly #owners: (string | undefined)[] = [];
  #checkFailures: Float64Array;
  #ejections: Float64Array;
  #rebuilds = 0;

  constructor(rows: number, capacity: number) {
    this.rows = rows;
    this.#segments.push(TrafficSegment.create(rows, capacity));
    this.#baseline = new Float64Array(capacity * SLOT_CELLS);
    this.#checkFailures = new Float64Array(capacity);
    this.#ejections = new Float64Array(capacity);
  }

  /** The segment data-plane threads write into now (sent to workers in the pool snapshot). */
  get segment(): TrafficSegment {
    return this.#segments[this.#segments.length - 1]!;
  }

  get capacity(): number {
    return this.segment.capacity;
  }

  /**
   * The pool has more slots (a rebuild grew it): a larger segment for every thread. The old one
   * stays and is summed: a worker adds to it until its replica applies the new snapshot.
   */
  grow(capacity: number): void {
    if (capacity <= this.capacity) return;
    this.#segments.push(TrafficSegment.create(this.rows, capacity));
    this.#baseline = grown(this.#baseline, capacity * SLOT_CELLS);
    this.#checkFailures = grown(this.#checkFailures, capacity);
    this.#ejections = grown(this.#ejections, capacity);
  }

  /** `slot` now holds backend `id` (new to the set): its counts start from zero. */
  assign(slot: number, id: string): void {
    this.#owners[slot] = id;
    for (let cell = 0; cell < SLOT_CELLS; cell++) this.#baseline[slot * SLOT_CELLS + cell] = this.#total(slot, cell);
    this.#checkFailures[slot] = 0;
    this.#ejections[slot] = 0;
  }

  /** The backend whose counts `slot` holds (the current one, or the last one that left it). */
  ownerOf(slot: number): string | undefined {
    return this.#owners[slot];
  }

  // --- control-plane facts (the pool's health owner and the pool write them) ---------------------

  checkFailed(slot: number): void {
    this.#checkFailures[slot]! += 1;
  }

  ejected(slot: number): void {
    this.#ejections[slot]! += 1;
  }

  /** The table changed after the pool's first build (what it moved is the pool's `lastRebuild`). */
  tableRebuilt(): void {
    this.#rebuilds += 1;
  }

  // --- readers ----------------------------------------------------------------------------------

  /** Table changes after the first build. */
  rebuilds(): number {
    return this.#rebuilds;
  }

  checkFailuresOf(slot: number): number {
    return this.#checkFailures[slot] ?? 0;
  }

  ejectionsOf(slot: number): number {
    return this.#ejections[slot] ?? 0;
  }

  /** Retries of the pool's connections, ever (a pool-wide count: no reset with slots). */
  retries(): number {
    let sum = 0;
    for (const segment of this.#segments) sum += segment.retries();
    return sum;
  }

  /** `cell` of the backend in `slot`, since it got the slot. */
  count(slot: number, cell: number): number {
    return this.#total(slot, cell) - (this.#baseline[slot * SLOT_CELLS + cell] ?? 0);
  }

  connectFailures(slot: number, reason: ConnectFailureReason): number {
    return this.count(slot, FAILURE_CELLS[reason]);
  }

  connectSeconds(slot: number): HistogramTotals {
    const counts: number[] = [];
    let cumulative = 0;
    for (let bucket = 0; bucket <= CONNECT_SECONDS_BOUNDS.length; bucket++) {
      cumulative += this.count(slot, SlotCell.BUCKET_0 + bucket);
      counts.push(cumulative);
    }
    return { bounds: CONNECT_SECONDS_BOUNDS, counts, sum: this.count(slot, SlotCell.CONNECT_SECONDS_SUM), count: cumulative };
  }

  /** Everything `TrafficView.backend` answers for the backend in `slot`; `active` is the pool's live count. */
  backendTotals(slot: number, active: number): BackendTrafficTotals {
    return {
      connections: this.count(slot, SlotCell.CONNECTIONS),
      active,
      connectFailures: {
        timeout: this.count(slot, SlotCell.FAILED_TIMEOUT),
        refused: this.count(slot, SlotCell.FAILED_REFUSED),
        error: this.count(slot, SlotCell.FAILED_ERROR),
      },
      resets: this.count(slot, SlotCell.RESETS),
      responseTimeouts: this.count(slot, SlotCell.RESPONSE_TIMEOUTS),
      queued: this.count(slot, SlotCell.QUEUED),
      bytesToBackend: this.count(slot, SlotCell.BYTES_TO_BACKEND),
      bytesToClient: this.count(slot, SlotCell.BYTES_TO_CLIENT),
      connectSeconds: this.connectSeconds(slot),
    };
  }

  #total(slot: number, cell: number): number {
    let sum = 0;
    for (const segment of this.#segments) sum += segment.sumSlot(slot, cell);
    return sum;
  }
}

function grown(cells: Float64Array, length: number): Float64Array {
  const next = new Float64Array(length);
  next.set(cells);
  return next;
}
