/**
 * Traffic counters in shared memory (ARCHITECTURE.md "All cores"): what the data plane counts per
 * connection, summed by the main thread only when someone reads them (`/metrics`, `/v1/status`).
 *
 * | cells                                   | written by                                 | read by                 |
 * |-----------------------------------------|--------------------------------------------|-------------------------|
 * | pool row[thread]: retries, then per slot: connections, connect failures (3 reasons), bytes both ways, connect-time sum, resets, response timeouts, queued, connect-time buckets | the thread holding the connection (row = its index; 0 without workers) | main, at scrape |
 * | listener row[thread]: connections ended, per outcome; accept pauses; paused now | the thread that accepted the connection (that paused) | main, at scrape and every EDGE_WATCH_MS (src/events/edge-watch.ts) |
 *
 * Float64 cells, one row per data-plane thread, so every cell has one writer and a plain `+=`
 * (no atomics: JavaScript has no Float64 atomics, and an aligned 8-byte store is one instruction
 * on x86-64 and arm64, so a reader sees the value before or after an add, never half of it).
 * Float64 counts integers exactly up to 2^53: 9 PB of bytes per backend and thread, where Int32
 * would wrap at 2 GiB. A worker that dies leaves its row as it was, and its replacement (same
 * index) adds on: finished counts never leave the totals.
 *
 * Per connection the data plane adds to 3 cells at connect (count, bucket, seconds sum), 2 per
 * byte flush (every TRAFFIC_FLUSH_MS and at close), 1 per failed attempt and 1 per outcome:
 * integers into typed arrays, no allocation.
 */
import type { ConnectFailureReason } from '../backend.js';

/**
 * Upper bounds (seconds) of `ringlb_backend_connect_seconds`: loopback and LAN connects take
 * 0.1–1 ms, so the low end is finer than prom-client's defaults (which start at 5 ms).
 */
export const CONNECT_SECONDS_BOUNDS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BOUNDS = Float64Array.from(CONNECT_SECONDS_BOUNDS);
/** Finite buckets plus +Inf. */
const BUCKETS = CONNECT_SECONDS_BOUNDS.length + 1;

/** Cells of one slot, in a row. */
export const SlotCell = {
  CONNECTIONS: 0,
  FAILED_TIMEOUT: 1,
  FAILED_REFUSED: 2,
  FAILED_ERROR: 3,
  BYTES_TO_BACKEND: 4,
  BYTES_TO_CLIENT: 5,
  CONNECT_SECONDS_SUM: 6,
  /** Established connections the backend reset (HAProxy `observe layer4`). */
  RESETS: 7,
  /** Established connections the backend left unanswered past the pool's responseTimeoutMs. */
  RESPONSE_TIMEOUTS: 8,
  /** Connections that waited in the backend's queue (maxConnections), whatever came of it. */
  QUEUED: 9,
  /** BUCKETS non-cumulative counts follow (the reader makes them cumulative). */
  BUCKET_0: 10,
} as const;
export const SLOT_CELLS = SlotCell.BUCKET_0 + BUCKETS;
/** One cell before the rows: the segment's slot capacity, so a worker attaches without being told. */
const HEADER_CELLS = 1;
/** Per-pool cells at the start of each row. */
const POOL_RETRIES = 0;
const POOL_CELLS = 1;

/** Bytes of long-lived connections reach the counters at least this often (the issue asks for ≤ 10 s). */
export const DEFAULT_TRAFFIC_FLUSH_MS = 5000;

/**
 * The access-log outcomes (`ConnectionOutcome` in src/proxy/connection.ts), in the order of a
 * listener row's cells. Not imported from there: connection.ts imports the writers below. The
 * listener passes a `ConnectionOutcome` where a `CountedOutcome` is expected, so an outcome added
 * there and not here fails to compile.
 */
export const CONNECTION_OUTCOMES = [
  'ok',
  'no_backend',
  'connect_failed',
  'idle_timeout',
  'client_error',
  'upstream_error',
  'rejected_max_connections',
  'rejected_no_fds',
  'drained',
  // The listener's edge (src/proxy/listener-edge.ts): refused before any backend work.
  'denied',
  'rejected_source_limit',
  'rejected_source_rate',
  'proxy_untrusted',
  'proxy_header_invalid',
  'proxy_header_timeout',
  /** The client sent bytes; the backend sent none within the pool's responseTimeoutMs. */
  'response_timeout',
  /** The client sent its FIN, then nothing moved for the listener's clientFinTimeoutMs. */
  'client_fin_timeout',
  /** The backend sent its FIN, then nothing moved for the pool's serverFinTimeoutMs. */
  'server_fin_timeout',
  /** The chosen backend was at maxConnections and its queue was full. */
  'queue_full',
  /** The chosen backend was at maxConnections and no slot freed within queue.timeoutMs. */
  'queue_timeout',
] as const;
export type CountedOutcome = (typeof CONNECTION_OUTCOMES)[number];

const OUTCOME_CELL: Readonly<Record<CountedOutcome, number>> = Object.fromEntries(CONNECTION_OUTCOMES.map((outcome, index) => [outcome, index])) as Record<
  CountedOutcome,
  number
>;

/**
 * One pool's counters for `capacity` slots and `rows` threads. A pool that grows gets a new,
 * larger segment (`PoolTraffic.grow` in src/metrics/pool-traffic.ts); the old one keeps what was
 * counted into it (a worker may still add to it until it learns the new one) and readers sum both.
 */
export class TrafficSegment {
  readonly buffer: SharedArrayBuffer;
  readonly rows: number;
  readonly capacity: number;
  readonly cells: Float64Array;
  readonly #rowCells: number;

  private constructor(buffer: SharedArrayBuffer, rows: number, capacity: number) {
    this.buffer = buffer;
    this.rows = rows;
    this.capacity = capacity;
    this.#rowCells = POOL_CELLS + capacity * SLOT_CELLS;
    this.cells = new Float64Array(buffer, HEADER_CELLS * 8);
  }

  static create(rows: number, capacity: number): TrafficSegment {
    const buffer = new SharedArrayBuffer((HEADER_CELLS + rows * (POOL_CELLS + capacity * SLOT_CELLS)) * 8);
    new Float64Array(buffer, 0, HEADER_CELLS)[0] = capacity;
    return new TrafficSegment(buffer, rows, capacity);
  }

  /** A worker, from the buffer the main thread sent. */
  static attach(buffer: SharedArrayBuffer): TrafficSegment {
    const capacity = new Float64Array(buffer, 0, HEADER_CELLS)[0]!;
    const rows = (buffer.byteLength / 8 - HEADER_CELLS) / (POOL_CELLS + capacity * SLOT_CELLS);
    return new TrafficSegment(buffer, rows, capacity);
  }

  /** The writer of row `row` (the thread's index; 0 when the main thread carries the connections). */
  writer(row: number): PoolTrafficWriter {
    if (row < 0 || row >= this.rows) throw new RangeError(`traffic row ${row} outside 0..${this.rows - 1}`);
    return new PoolTrafficWriter(this.cells, row * this.#rowCells, this.capacity);
  }

  /** Sum over every row of one slot's cell (main thread, at scrape). */
  sumSlot(slot: number, cell: number): number {
    if (slot >= this.capacity) return 0;
    const cells = this.cells;
    let sum = 0;
    for (let at = POOL_CELLS + slot * SLOT_CELLS + cell; at < cells.length; at += this.#rowCells) sum += cells[at]!;
    return sum;
  }

  /** One thread's share of a slot's cell (diagnostics and tests: which thread carried what). */
  slotCellOfRow(row: number, slot: number, cell: number): number {
    if (slot >= this.capacity || row >= this.rows) return 0;
    return this.cells[row * this.#rowCells + POOL_CELLS + slot * SLOT_CELLS + cell]!;
  }

  retries(): number {
    let sum = 0;
    for (let at = POOL_RETRIES; at < this.cells.length; at += this.#rowCells) sum += this.cells[at]!;
    return sum;
  }
}

/** What one data-plane thread adds to one pool's counters: a row's offset, nothing else. */
export class PoolTrafficWriter {
  readonly #cells: Float64Array;
  readonly #row: number;
  readonly capacity: number;

  constructor(cells: Float64Array, rowOffset: number, capacity: number) {
    this.#cells = cells;
    this.#row = rowOffset;
    this.capacity = capacity;
  }

  /** Hot path: a connect to `slot` succeeded after `seconds` (3 adds; ≤ 17 compares for the bucket). */
  connected(slot: number, seconds: number): void {
    const at = this.#row + POOL_CELLS + slot * SLOT_CELLS;
    const cells = this.#cells;
    let bucket = 0;
    while (bucket < BOUNDS.length && seconds > BOUNDS[bucket]!) bucket++;
    cells[at + SlotCell.CONNECTIONS]! += 1;
    cells[at + SlotCell.CONNECT_SECONDS_SUM]! += seconds;
    cells[at + SlotCell.BUCKET_0 + bucket]! += 1;
  }

  /** Hot path (failures only): a connect attempt to `slot` failed. */
  connectFailed(slot: number, reason: ConnectFailureReason): void {
    const cell = reason === 'timeout' ? SlotCell.FAILED_TIMEOUT : reason === 'refused' ? SlotCell.FAILED_REFUSED : SlotCell.FAILED_ERROR;
    this.#cells[this.#row + POOL_CELLS + slot * SLOT_CELLS + cell]! += 1;
  }

  /** Failures only: the backend reset an established connection, or left it unanswered. */
  establishedFailed(slot: number, reason: 'reset' | 'response_timeout'): void {
    this.#cells[this.#row + POOL_CELLS + slot * SLOT_CELLS + (reason === 'reset' ? SlotCell.RESETS : SlotCell.RESPONSE_TIMEOUTS)]! += 1;
  }

  /** A connection waits in `slot`'s queue (the backend is at its maxConnections). */
  queued(slot: number): void {
    this.#cells[this.#row + POOL_CELLS + slot * SLOT_CELLS + SlotCell.QUEUED]! += 1;
  }

  /** Bytes moved since the connection's last flush (periodic, and at close). */
  addBytes(slot: number, toBackend: number, toClient: number): void {
    const at = this.#row + POOL_CELLS + slot * SLOT_CELLS;
    this.#cells[at + SlotCell.BYTES_TO_BACKEND]! += toBackend;
    this.#cells[at + SlotCell.BYTES_TO_CLIENT]! += toClient;
  }

  /** A connection tries another backend after a failed attempt. */
  retried(): void {
    this.#cells[this.#row + POOL_RETRIES]! += 1;
  }
}

/**
 * Cells per thread row of a listener: one per outcome, then the pauses of accepting for lack of
 * file descriptors (src/proxy/fd-exhaustion.ts), each thread counting its own, then whether the
 * thread is paused right now (1 or 0): a pause can outlast the watcher's interval (up to
 * MAX_PAUSE_MS), and "accepting again" must not be announced while a thread still waits.
 */
const LISTENER_ROW_CELLS = CONNECTION_OUTCOMES.length + 2;
const ACCEPT_PAUSES_CELL = CONNECTION_OUTCOMES.length;
const ACCEPT_PAUSED_NOW_CELL = CONNECTION_OUTCOMES.length + 1;

/** One listener's counters: per thread, connections ended by outcome, and accept pauses. */
export class ListenerTrafficCounters {
  readonly buffer: SharedArrayBuffer;
  readonly rows: number;
  readonly #cells: Float64Array;

  private constructor(buffer: SharedArrayBuffer, rows: number) {
    this.buffer = buffer;
    this.rows = rows;
    this.#cells = new Float64Array(buffer);
  }

  static create(rows: number): ListenerTrafficCounters {
    return new ListenerTrafficCounters(new SharedArrayBuffer(rows * LISTENER_ROW_CELLS * 8), rows);
  }

  static attach(buffer: SharedArrayBuffer, rows: number): ListenerTrafficCounters {
    return new ListenerTrafficCounters(buffer, rows);
  }

  writer(row: number): ListenerTrafficWriter {
    if (row < 0 || row >= this.rows) throw new RangeError(`traffic row ${row} outside 0..${this.rows - 1}`);
    return new ListenerTrafficWriter(this.#cells, row * LISTENER_ROW_CELLS);
  }

  /** Main thread: connections ended with `outcome`, every thread's. */
  ended(outcome: CountedOutcome): number {
    let sum = 0;
    for (let at = OUTCOME_CELL[outcome]; at < this.#cells.length; at += LISTENER_ROW_CELLS) sum += this.#cells[at]!;
    return sum;
  }

  /** Main thread: times a thread stopped accepting for lack of file descriptors, every thread's. */
  acceptPauses(): number {
    let sum = 0;
    for (let at = ACCEPT_PAUSES_CELL; at < this.#cells.length; at += LISTENER_ROW_CELLS) sum += this.#cells[at]!;
    return sum;
  }

  /** Main thread: how many threads have stopped accepting for lack of file descriptors right now. */
  pausedThreads(): number {
    let sum = 0;
    for (let at = ACCEPT_PAUSED_NOW_CELL; at < this.#cells.length; at += LISTENER_ROW_CELLS) sum += this.#cells[at]!;
    return sum;
  }
}

export class ListenerTrafficWriter {
  readonly #cells: Float64Array;
  readonly #row: number;

  constructor(cells: Float64Array, rowOffset: number) {
    this.#cells = cells;
    this.#row = rowOffset;
  }

  /** Hot path: a connection ended (or was refused at accept) with `outcome`; one add. */
  ended(outcome: CountedOutcome): void {
    this.#cells[this.#row + OUTCOME_CELL[outcome]]! += 1;
  }

  /** This thread's listener stopped accepting for lack of file descriptors (rare: not the hot path). */
  acceptPaused(): void {
    this.#cells[this.#row + ACCEPT_PAUSES_CELL]! += 1;
    this.#cells[this.#row + ACCEPT_PAUSED_NOW_CELL] = 1;
  }

  /**
   * This thread's listener accepts again, or no longer exists (closed while paused; a new listener
   * on this row, a replaced worker's, starts here too, so a dead thread's pause does not linger).
   */
  acceptResumed(): void {
    this.#cells[this.#row + ACCEPT_PAUSED_NOW_CELL] = 0;
  }
}
