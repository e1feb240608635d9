/**
 * The facts of one pool that every thread shares (ARCHITECTURE.md "All cores: one control plane,
 * many data planes"): Int32 cells in one SharedArrayBuffer, each with one writer.
 *
 * | cells                         | written by                                   | read by                     |
 * |-------------------------------|----------------------------------------------|-----------------------------|
 * | eligible[slot], scale[slot]   | the main thread's health owner (PoolHealth)  | workers, at their next pick |
 * | health epoch                  | the same writer, after each eligible/scale   | workers, once per pick      |
 * | active[slot], active total    | each worker, for the connections it holds    | workers (load-aware picks), main (admin, slot reuse) |
 * | ledger[worker][slot]          | that worker (its share of active[slot])      | main, when the worker died  |
 * | spilled[slot]                 | workers (bounded load passed a full home)    | main (admin)                |
 * | successes[slot]               | workers (a connect succeeded)                | main's outlier detector     |
 * | connect-time EWMA, its stamp  | workers (least_time: after each connect)     | workers, before each pick   |
 * | released epoch                | workers releasing a slot of a pool with maxConnectionsPerBackend | workers with queued connections (poll) |
 * | queued[slot]                  | each worker, for the connections it queues   | workers (queue.size), main (metrics, status) |
 * | queue ledger[worker][slot]    | that worker (its share of queued[slot])      | main, when the worker died  |
 *
 * Sized for the largest slot capacity a pool can have, so a pool that grows keeps its buffer and no
 * count ever has to move: untouched pages of a SharedArrayBuffer cost no memory.
 */
import { MAX_MAX_BACKENDS } from '../core/options.js';

const EPOCH = 0;
const ACTIVE_TOTAL = 1;
/** Moves on every release of a pool with per-backend limits: workers with queued connections poll it. */
const RELEASED = 2;
const HEADER_CELLS = 4;
const SLOTS = MAX_MAX_BACKENDS;
/** Two Float64 arrays of SLOTS cells at the start of the buffer. */
const FLOAT_BYTES = SLOTS * 16;
/** Every slot starts eligible at full weight, as a fresh balancer does. */
const FULL_SCALE = 1000;

export class SharedPoolState {
  /** What a worker needs to attach: pass it in a message (a SharedArrayBuffer is shared, not copied). */
  readonly buffer: SharedArrayBuffer;
  readonly workers: number;
  readonly #cells: Int32Array;
  readonly #eligible: Int32Array;
  readonly #scale: Int32Array;
  /** Per-slot process-wide active counts; a worker copies a prefix into its balancer per load-aware pick. */
  readonly active: Int32Array;
  readonly #spilled: Int32Array;
  readonly #successes: Int32Array;
  /** Connections waiting for each slot (backend queues), every worker's summed by Atomics.add. */
  readonly queued: Int32Array;
  readonly #ledger: Int32Array;
  readonly #queueLedger: Int32Array;
  /** least_time's peak-EWMA connect time per slot (µs, -1 = never sampled) and its sample time. */
  readonly connectTimes: Float64Array;
  readonly connectTimeStamps: Float64Array;

  private constructor(buffer: SharedArrayBuffer, workers: number) {
    this.buffer = buffer;
    this.workers = workers;
    // Float64 cells first (8-byte alignment), then the Int32 cells.
    this.connectTimes = new Float64Array(buffer, 0, SLOTS);
    this.connectTimeStamps = new Float64Array(buffer, SLOTS * 8, SLOTS);
    this.#cells = new Int32Array(buffer, FLOAT_BYTES, HEADER_CELLS);
    let offset = FLOAT_BYTES + HEADER_CELLS * 4;
    const section = (cells: number): Int32Array => {
      const view = new Int32Array(buffer, offset, cells);
      offset += cells * 4;
      return view;
    };
    this.#eligible = section(SLOTS);
    this.#scale = section(SLOTS);
    this.active = section(SLOTS);
    this.#spilled = section(SLOTS);
    this.#successes = section(SLOTS);
    this.queued = section(SLOTS);
    this.#ledger = section(SLOTS * workers);
    this.#queueLedger = section(SLOTS * workers);
  }

  /** Main thread, once per pool; `initSlots` then readies the slots in use. */
  static create(workers: number): SharedPoolState {
    const buffer = new SharedArrayBuffer(FLOAT_BYTES + (HEADER_CELLS + SLOTS * (6 + 2 * workers)) * 4);
    return new SharedPoolState(buffer, workers);
  }

  /**
   * Main thread, for the slots a pool can use now (at creation, and the new ones when it grows):
   * eligible at full scale with no estimate, as a fresh balancer's. Only these pages are touched:
   * the buffer is sized for 65,536 slots, and untouched pages cost no memory.
   */
  initSlots(from: number, to: number): void {
    this.#eligible.fill(1, from, to);
    this.#scale.fill(FULL_SCALE, from, to);
    this.connectTimes.fill(-1, from, to);
  }

  /** A worker, from the buffer the main thread sent. */
  static attach(buffer: SharedArrayBuffer, workers: number): SharedPoolState {
    return new SharedPoolState(buffer, workers);
  }

  // --- the health owner (main thread) ---------------------------------------------------------

  publishEligible(slot: number, eligible: boolean): void {
    Atomics.store(this.#eligible, slot, eligible ? 1 : 0);
    Atomics.add(this.#cells, EPOCH, 1);
  }

  publishScale(slot: number, permille: number): void {
    Atomics.store(this.#scale, slot, permille);
    Atomics.add(this.#cells, EPOCH, 1);
  }

  // --- workers ----------------------------------------------------------------------------------

  /** Changes with every eligibility or scale write: a worker re-reads them when it moved. */
  healthEpoch(): number {
    return Atomics.load(this.#cells, EPOCH);
  }

  eligible(slot: number): boolean {
    return Atomics.load(this.#eligible, slot) === 1;
  }

  scale(slot: number): number {
    return Atomics.load(this.#scale, slot);
  }

  acquire(worker: number, slot: number): void {
    Atomics.add(this.active, slot, 1);
    Atomics.add(this.#cells, ACTIVE_TOTAL, 1);
    Atomics.add(this.#ledger, worker * SLOTS + slot, 1);
  }

  release(worker: number, slot: number): void {
    Atomics.sub(this.active, slot, 1);
    Atomics.sub(this.#cells, ACTIVE_TOTAL, 1);
    Atomics.sub(this.#ledger, worker * SLOTS + slot, 1);
  }

  /**
   * Acquire only while the slot holds fewer than `limit` connections in every thread: a
   * compare-and-swap, so two workers racing for the last place cannot both get it. A limit of 0
   * (a reload removed it while connections waited) always acquires.
   */
  tryAcquire(worker: number, slot: number, limit: number): boolean {
    if (limit <= 0) {
      this.acquire(worker, slot);
      return true;
    }
    const active = this.active;
    for (;;) {
      const now = Atomics.load(active, slot);
      if (now >= limit) return false;
      if (Atomics.compareExchange(active, slot, now, now + 1) === now) break;
    }
    Atomics.add(this.#cells, ACTIVE_TOTAL, 1);
    Atomics.add(this.#ledger, worker * SLOTS + slot, 1);
    return true;
  }

  /** A slot of a pool with per-backend limits was released: queued connections elsewhere may go. */
  noteReleased(): void {
    Atomics.add(this.#cells, RELEASED, 1);
  }

  releasedEpoch(): number {
    return Atomics.load(this.#cells, RELEASED);
  }

  queuedOf(slot: number): number {
    return Atomics.load(this.queued, slot);
  }

  /**
   * Worker `worker` takes a place in `slot`'s queue while fewer than `size` wait in every thread:
   * one atomic add, given back when over (two racing for the last place may both refuse, never
   * both take it).
   */
  tryQueue(worker: number, slot: number, size: number): boolean {
    if (Atomics.add(this.queued, slot, 1) >= size) {
      Atomics.sub(this.queued, slot, 1);
      return false;
    }
    Atomics.add(this.#queueLedger, worker * SLOTS + slot, 1);
    return true;
  }

  /** Worker `worker`'s connection left `slot`'s queue (admitted, timed out or gone). */
  unqueue(worker: number, slot: number): void {
    Atomics.sub(this.queued, slot, 1);
    Atomics.sub(this.#queueLedger, worker * SLOTS + slot, 1);
  }

  noteSpill(slot: number): void {
    Atomics.add(this.#spilled, slot, 1);
  }

  noteSuccess(slot: number): void {
    Atomics.add(this.#successes, slot, 1);
  }

  // --- readers ---------------------------------------------------------------------------------

  activeTotal(): number {
    return Atomics.load(this.#cells, ACTIVE_TOTAL);
  }

  activeOf(slot: number): number {
    return Atomics.load(this.active, slot);
  }

  spilledOf(slot: number): number {
    return Atomics.load(this.#spilled, slot);
  }

  /** A sequence that moves on every successful connect to the slot (outlier streaks end there). */
  successesOf(slot: number): number {
    return Atomics.load(this.#successes, slot);
  }

  /**
   * Main thread: a slot is given to a new backend; what was learnt of the old one starts over, as
   * the core's `resetSlot` does in every thread's balancer: eligible, full scale, no spill, no
   * estimate. Health then writes what differs for the new backend (it compares with the balancer).
   */
  resetSlot(slot: number): void {
    Atomics.store(this.#spilled, slot, 0);
    this.connectTimes[slot] = -1;
    this.connectTimeStamps[slot] = 0;
    Atomics.store(this.#eligible, slot, 1);
    Atomics.store(this.#scale, slot, FULL_SCALE);
    Atomics.add(this.#cells, EPOCH, 1);
  }

  /**
   * Main thread, when worker `worker` died: its connections died with it, so its share of every
   * count goes. Returns how many connections it held.
   */
  forgetWorker(worker: number, capacity: number): number {
    let lost = 0;
    const row = worker * SLOTS;
    for (let slot = 0; slot < capacity; slot++) {
      // Its queued connections died with it too: the depth gauge must not keep them.
      const waiting = Atomics.exchange(this.#queueLedger, row + slot, 0);
      if (waiting !== 0) Atomics.sub(this.queued, slot, waiting);
      const held = Atomics.exchange(this.#ledger, row + slot, 0);
      if (held === 0) continue;
      Atomics.sub(this.active, slot, held);
      Atomics.sub(this.#cells, ACTIVE_TOTAL, held);
      lost += held;
    }
    return lost;
  }
}

/**
 * One listener's process-wide counters: open connections (maxConnections holds for the process,
 * not per worker), accepted and refused ones, and each worker's share of the open ones.
 */
export class SharedListenerState {
  readonly buffer: SharedArrayBuffer;
  readonly workers: number;
  readonly #cells: Int32Array;

  private constructor(buffer: SharedArrayBuffer, workers: number) {
    this.buffer = buffer;
    this.workers = workers;
    this.#cells = new Int32Array(buffer);
  }

  static create(workers: number): SharedListenerState {
    return new SharedListenerState(new SharedArrayBuffer((LISTENER_HEADER + workers) * 4), workers);
  }

  static attach(buffer: SharedArrayBuffer, workers: number): SharedListenerState {
    return new SharedListenerState(buffer, workers);
  }

  /** A worker accepted a connection: true when it may serve it (the process is under `max`). */
  tryOpen(worker: number, max: number): boolean {
    if (Atomics.add(this.#cells, LISTENER_ACTIVE, 1) >= max) {
      Atomics.sub(this.#cells, LISTENER_ACTIVE, 1);
      Atomics.add(this.#cells, LISTENER_REJECTED, 1);
      return false;
    }
    Atomics.add(this.#cells, LISTENER_ACCEPTED, 1);
    Atomics.add(this.#cells, LISTENER_HEADER + worker, 1);
    return true;
  }

  close(worker: number): void {
    Atomics.sub(this.#cells, LISTENER_ACTIVE, 1);
    Atomics.sub(this.#cells, LISTENER_HEADER + worker, 1);
  }

  active(): number {
    return Atomics.load(this.#cells, LISTENER_ACTIVE);
  }

  accepted(): number {
    return Atomics.load(this.#cells, LISTENER_ACCEPTED);
  }

  rejected(): number {
    return Atomics.load(this.#cells, LISTENER_REJECTED);
  }

  /**
   * A worker ran out of file descriptors and paused accepting: the count others compare with what
   * they saw last, so each of them pauses too (descriptors are the process's, not the thread's).
   * Returns the count including this pause.
   */
  fdPaused(): number {
    return Atomics.add(this.#cells, LISTENER_FD_PAUSES, 1) + 1;
  }

  /** Pauses for lack of file descriptors so far (only a worker that saw the exhaustion itself counts one). */
  fdPauses(): number {
    return Atomics.load(this.#cells, LISTENER_FD_PAUSES);
  }

  /** Open connections of one worker. */
  activeOf(worker: number): number {
    return Atomics.load(this.#cells, LISTENER_HEADER + worker);
  }

  /** Main thread, when worker `worker` died: its connections are gone. */
  forgetWorker(worker: number): number {
    const held = Atomics.exchange(this.#cells, LISTENER_HEADER + worker, 0);
    if (held !== 0) Atomics.sub(this.#cells, LISTENER_ACTIVE, held);
    return held;
  }
}

const LISTENER_ACTIVE = 0;
const LISTENER_ACCEPTED = 1;
const LISTENER_REJECTED = 2;
/** Pauses of accepting for lack of file descriptors (src/proxy/fd-exhaustion.ts), by any worker. */
const LISTENER_FD_PAUSES = 3;
const LISTENER_HEADER = 4;
