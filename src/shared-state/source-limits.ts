/**
 * Per-source limits of one listener, process-wide across worker threads: open connections per
 * client address (`maxConnectionsPerSource`) and new connections per second with a burst
 * (`connectionRatePerSource`). With reusePort the kernel spreads one client's connections over every
 * worker, so the counts live in shared memory, written with Atomics by whichever thread accepts.
 *
 * Fixed memory, no locks, no per-source allocation: a count-min sketch. Each source (its address
 * hash, the same integer the hash policies use) maps to one cell in each of ROWS rows; a cell counts
 * every source that maps to it, so a source's estimate is the smallest of its cells and is never
 * below its true count. A source is limited only when every one of its cells is over the limit: a
 * well-behaved client is refused only if, in every row, it shares its cell with heavy sources
 * (with 2 rows of 65,536 cells and 1,000 heavy sources, about 2 in 10,000 clients).
 *
 * A source's own decisions are serialised by a lock on its first cell (see `#lock`).
 *
 * The rate is GCRA (the generic cell rate algorithm, a token bucket kept as one number): each cell
 * holds a theoretical arrival time; a connection at `now` is allowed when max(tat, now) + interval
 * stays within now + burst × interval, and moves the time on by one interval. One Int32 per cell,
 * updated by compare-and-swap, in microseconds modulo 2^32 (differences are read wrap-aware and stay
 * far below the 35 minutes a wrap allows: the burst window is capped, and idle cells are reset by
 * `sweep`).
 */
import { fmix32 } from '../core/hash.js';

export const SOURCE_ROWS = 2;
export const SOURCE_CELLS_PER_ROW = 65536;
const CELLS = SOURCE_ROWS * SOURCE_CELLS_PER_ROW;
const MASK = SOURCE_CELLS_PER_ROW - 1;
/** A rate cell nobody used lately (an arrival time of exactly 0 is stored as 1). */
const IDLE = 0;
/** The longest burst window a rate may have (burst / rate), well inside the 2^31 µs a difference can span. */
export const MAX_BURST_WINDOW_MS = 10 * 60 * 1000;
/** Rate cells quiet for longer than this are reset to idle by `sweep`. */
const IDLE_AFTER_MICROS = 60_000_000;
const SPIN_LIMIT = 1_000_000;

/** Microseconds on a clock every thread shares (each thread's performance.now() has its own origin). */
export function sharedClockMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000) | 0;
}

export class SourceLimits {
  readonly buffer: SharedArrayBuffer;
  readonly #open: Int32Array;
  readonly #arrival: Int32Array;
  /** One lock per first-row cell. */
  readonly #locks: Int32Array;

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#open = new Int32Array(buffer, 0, CELLS);
    this.#arrival = new Int32Array(buffer, CELLS * 4, CELLS);
    this.#locks = new Int32Array(buffer, CELLS * 8, SOURCE_CELLS_PER_ROW);
  }

  /** Main thread, once per listener that sets a per-source limit (1.25 MiB, paged in as sources appear). */
  static create(): SourceLimits {
    return new SourceLimits(new SharedArrayBuffer(CELLS * 8 + SOURCE_CELLS_PER_ROW * 4));
  }

  static attach(buffer: SharedArrayBuffer): SourceLimits {
    return new SourceLimits(buffer);
  }

  /**
   * A connection from the source with address hash `sourceHash` opens, unless the source already
   * holds `max` (every cell at or over it). True: counted, call `release` when it closes.
   */
  tryOpen(sourceHash: number, max: number): boolean {
    const first = sourceHash & MASK;
    const second = SOURCE_CELLS_PER_ROW + (fmix32(sourceHash ^ 0x9e3779b9) & MASK);
    this.#lock(first);
    try {
      if (Math.min(Atomics.load(this.#open, first), Atomics.load(this.#open, second)) >= max) return false;
      Atomics.add(this.#open, first, 1);
      Atomics.add(this.#open, second, 1);
      return true;
    } finally {
      Atomics.store(this.#locks, first, 0);
    }
  }

  release(sourceHash: number): void {
    Atomics.sub(this.#open, sourceHash & MASK, 1);
    Atomics.sub(this.#open, SOURCE_CELLS_PER_ROW + (fmix32(sourceHash ^ 0x9e3779b9) & MASK), 1);
  }

  /** The source's open connections as the sketch estimates them (never below the truth). */
  openEstimate(sourceHash: number): number {
    return Math.min(
      Atomics.load(this.#open, sourceHash & MASK),
      Atomics.load(this.#open, SOURCE_CELLS_PER_ROW + (fmix32(sourceHash ^ 0x9e3779b9) & MASK)),
    );
  }

  /**
   * A new connection from the source at `nowMicros` (`sharedClockMicros()`) within `perSecond` with
   * bursts of `burst`: true when allowed (and counted); a refused one consumes nothing.
   */
  tryRate(sourceHash: number, perSecond: number, burst: number, nowMicros: number): boolean {
    const interval = Math.max(1, Math.round(1_000_000 / perSecond));
    const window = Math.min(burst * interval, MAX_BURST_WINDOW_MS * 1000);
    const first = sourceHash & MASK;
    const second = SOURCE_CELLS_PER_ROW + (fmix32(sourceHash ^ 0x9e3779b9) & MASK);
    this.#lock(first);
    try {
      // Over the limit only when every cell is (count-min): decide on both, then move both on.
      if (!this.#allows(first, interval, window, nowMicros) && !this.#allows(second, interval, window, nowMicros)) return false;
      this.#advance(first, interval, window, nowMicros);
      this.#advance(second, interval, window, nowMicros);
      return true;
    } finally {
      Atomics.store(this.#locks, first, 0);
    }
  }

  /**
   * Decisions of one source read both its cells and then write both: two threads deciding for the
   * same source in between would each see the other's cell not yet written and both pass the limit.
   * Every connection of a source shares its first-row cell, so a lock on that cell serialises them
   * (held for a few loads and adds; another source's writes to the second cell only raise what we
   * read, which errs towards refusing, never admitting). A lock still taken after SPIN_LIMIT tries
   * (a thread terminated inside it) is broken rather than waited on forever.
   */
  #lock(cell: number): void {
    for (let spins = 0; Atomics.compareExchange(this.#locks, cell, 0, 1) !== 0; spins++) {
      if (spins >= SPIN_LIMIT) {
        Atomics.store(this.#locks, cell, 1);
        return;
      }
    }
  }

  #allows(cell: number, interval: number, window: number, now: number): boolean {
    const arrival = Atomics.load(this.#arrival, cell);
    const base = arrival === IDLE || ((now - arrival) | 0) > 0 ? now : arrival;
    return ((base + interval - now) | 0) <= window;
  }

  /** max(tat, now) + interval, capped at the window so a cell shared with a flood cannot run away. */
  #advance(cell: number, interval: number, window: number, now: number): void {
    for (;;) {
      const arrival = Atomics.load(this.#arrival, cell);
      const base = arrival === IDLE || ((now - arrival) | 0) > 0 ? now : arrival;
      let next = ((base - now) | 0) + interval > window ? (now + window) | 0 : (base + interval) | 0;
      if (next === IDLE) next = 1;
      if (Atomics.compareExchange(this.#arrival, cell, arrival, next) === arrival) return;
    }
  }

  /** Main thread, about once a minute: cells whose arrival time is long past become idle (no wrap-around). */
  sweep(nowMicros: number): void {
    const arrival = this.#arrival;
    for (let cell = 0; cell < CELLS; cell++) {
      const value = arrival[cell]!;
      if (value !== IDLE && ((nowMicros - value) | 0) > IDLE_AFTER_MICROS) Atomics.compareExchange(arrival, cell, value, IDLE);
    }
  }
}
