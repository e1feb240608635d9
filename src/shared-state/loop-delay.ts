/**
 * Event-loop delay of every thread (main and each data-plane worker), for `/metrics`: each thread
 * samples its own loop with `monitorEventLoopDelay` and, every window, writes what it saw into its
 * row of one SharedArrayBuffer (one writer per row); the main thread reads the rows at scrape
 * time. A stalled data plane shows here even when the main thread (which answers the scrape) is idle.
 *
 * | cells of row[thread]                 | written by            | read by         |
 * |--------------------------------------|-----------------------|-----------------|
 * | p50, p99, max (seconds), window end  | that thread, per window | main, at scrape |
 *
 * Row 0 is the main thread, row 1 + i is worker i.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

const P50 = 0;
const P99 = 1;
const MAX = 2;
/** Number of windows written so far: 0 means "no window yet" (the reader then shows nothing). */
const WINDOWS = 3;
const ROW_CELLS = 4;

/** Each figure covers this much time: short enough to show a stall, long enough to hold many samples. */
export const LOOP_DELAY_WINDOW_MS = 5000;
/** monitorEventLoopDelay's timer resolution (its default is 10 ms). */
const RESOLUTION_MS = 10;

export interface LoopDelayWindow {
  readonly p50Seconds: number;
  readonly p99Seconds: number;
  readonly maxSeconds: number;
}

export class LoopDelayCells {
  readonly buffer: SharedArrayBuffer;
  readonly rows: number;
  readonly #cells: Float64Array;

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#cells = new Float64Array(buffer);
    this.rows = this.#cells.length / ROW_CELLS;
  }

  /** Main thread: one row for itself and one per worker. */
  static create(workers: number): LoopDelayCells {
    return new LoopDelayCells(new SharedArrayBuffer((1 + workers) * ROW_CELLS * 8));
  }

  static attach(buffer: SharedArrayBuffer): LoopDelayCells {
    return new LoopDelayCells(buffer);
  }

  /** The last full window of thread `row`, or null before its first one. */
  read(row: number): LoopDelayWindow | null {
    const at = row * ROW_CELLS;
    if (this.#cells[at + WINDOWS] === 0) return null;
    return { p50Seconds: this.#cells[at + P50]!, p99Seconds: this.#cells[at + P99]!, maxSeconds: this.#cells[at + MAX]! };
  }

  /**
   * Samples this thread's loop into row `row` every `windowMs`; returns the stop function. The
   * timer is unref'd: sampling never keeps a process or worker alive.
   */
  sample(row: number, windowMs: number = LOOP_DELAY_WINDOW_MS): () => void {
    if (row < 0 || row >= this.rows) throw new RangeError(`loop delay row ${row} outside 0..${this.rows - 1}`);
    const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    histogram.enable();
    const at = row * ROW_CELLS;
    const cells = this.#cells;
    const timer = setInterval(() => {
      // The histogram is in nanoseconds; it also counts the resolution timer's own period, which
      // monitorEventLoopDelay already subtracts.
      cells[at + P50] = histogram.percentile(50) / 1e9;
      cells[at + P99] = histogram.percentile(99) / 1e9;
      cells[at + MAX] = histogram.max / 1e9;
      cells[at + WINDOWS]! += 1;
      histogram.reset();
    }, windowMs);
    timer.unref();
    return () => {
      clearInterval(timer);
      histogram.disable();
    };
  }
}
