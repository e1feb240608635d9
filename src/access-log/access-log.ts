/**
 * The access log of one thread (the main thread when it carries connections, or one data-plane
 * worker): its own stream, apart from the operational log (log.ts). It has no level of its own to
 * filter by: `log.level: "warn"` does not silence it and `log.access.enabled: false` does not
 * silence health events. Lines are pino JSON at a fixed `info` with the fields they always had.
 *
 * Whole lines, never interleaved across threads: every line is one write(2) (SonicBoom in sync
 * mode, as the operational log) to the process's one access-log descriptor, which the main thread
 * opens with O_APPEND and hands to every thread by number (output.ts). A reopen (SIGUSR1) or a new
 * output is a new descriptor given to `configure`.
 *
 * Sampling costs one xorshift32 step per connection (a per-thread generator, no allocation):
 * a connection not drawn writes no connect, open or close line, unless it fails (outcomes other
 * than `ok` and `drained` are always written).
 *
 * Open-connection lines (Envoy's `access_log_flush_interval`) are found by sweeping each listener's
 * list of connections: a sweep starts every quarter interval, visits at most SWEEP_BATCH connections
 * per event-loop turn (10,000 connections take 20 turns, never one long burst), and a connection
 * writes a line when its last line (or its accept) is at least an interval old. So each long-lived
 * connection writes one line every interval to 1.25 intervals.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { xorshift32, normalizeSeed } from '../core/prng.js';
import { DEFAULT_ACCESS_LOG, type AccessLogSettings } from './settings.js';

/** Connections visited per event-loop turn by the open-connection sweep. */
const SWEEP_BATCH = 512;
/** A sweep starts every interval / SWEEPS_PER_INTERVAL: a line is at most a quarter interval late. */
const SWEEPS_PER_INTERVAL = 4;

/** What a listener lends the sweep: its open connections, visited a batch at a time. */
export interface OpenConnectionList {
  /** Start a sweep at the newest connection. */
  beginOpenSweep(): void;
  /**
   * Visit up to `budget` connections from where the sweep stands; each writes its open line if it
   * is due. Returns how many were visited (fewer than budget: this list's sweep is done).
   */
  continueOpenSweep(budget: number, nowMs: number, intervalMs: number): number;
}

export interface AccessLogOptions {
  /** `worker` field of every line (0 for the main thread). */
  readonly worker: number;
  /** The output descriptor (output.ts), owned by the main thread; never closed here. */
  readonly fd: number;
  /** Lines go here instead of `fd` (embedders and tests, in the main thread only). */
  readonly destination?: DestinationStream;
  /** Lines for stdout (descriptor 1) go here instead (an embedder's logger stream, in the main thread only). */
  readonly stdout?: DestinationStream;
}

/**
 * Writes to `fd`: SonicBoom in sync mode, one write(2) per line (retrying EAGAIN on a non-blocking
 * pipe, as the operational log's). It is dropped, never destroyed, when the descriptor changes:
 * the main thread closes descriptors, once no thread writes to them.
 */
function writerTo(fd: number): DestinationStream {
  return pino.destination({ dest: fd, sync: true });
}

export class AccessLog {
  #settings: AccessLogSettings = DEFAULT_ACCESS_LOG;
  /** Numbers below it are kept (sample × 2^32); checked per connection. */
  #sampleBelow = 2 ** 32;
  #random: number;
  readonly #override: DestinationStream | undefined;
  readonly #stdout: DestinationStream | undefined;
  #fd: number;
  #output: DestinationStream;
  readonly #root: Logger;
  readonly #lists = new Set<OpenConnectionList>();
  #sweepTimer: NodeJS.Timeout | null = null;
  /** Lists still being swept (a sweep in progress); empty when none runs. */
  #sweeping: OpenConnectionList[] = [];
  #sweepImmediate: NodeJS.Immediate | null = null;

  constructor(settings: AccessLogSettings, options: AccessLogOptions) {
    this.#override = options.destination;
    this.#stdout = options.stdout;
    this.#fd = options.fd;
    this.#output = this.#writerFor(options.fd);
    this.#random = normalizeSeed(Math.imul(options.worker + 1, 0x9e3779b9) ^ process.pid);
    // The lines are written through a stable front, so an output changed on reload needs no new
    // pino instance and no new child per listener.
    const front: DestinationStream = { write: (line: string) => this.#output.write(line) };
    this.#root = pino(
      {
        level: 'info',
        base: { pid: process.pid, worker: options.worker },
        formatters: { level: (label) => ({ level: label }) },
      },
      front,
    );
    this.configure(settings, options.fd);
  }

  get enabled(): boolean {
    return this.#settings.enabled;
  }

  get onConnect(): boolean {
    return this.#settings.onConnect;
  }

  get settings(): AccessLogSettings {
    return this.#settings;
  }

  /** One draw per connection: whether its connect, open and successful close lines are written. */
  sample(): boolean {
    const below = this.#sampleBelow;
    if (below >= 2 ** 32) return true;
    if (below === 0) return false;
    this.#random = xorshift32(this.#random);
    return this.#random < below;
  }

  /** A listener's lines: bound to its name and pool once (pino caches the bindings). */
  linesFor(listener: string, pool: string): Logger {
    return this.#root.child({ listener, pool });
  }

  /** Apply settings and the output descriptor (start, reload, reopen); the previous descriptor is the main thread's to close. */
  configure(settings: AccessLogSettings, fd: number = this.#fd): void {
    if (fd !== this.#fd) {
      this.#fd = fd;
      this.#output = this.#writerFor(fd);
    }
    const intervalChanged = settings.openConnectionsIntervalMs !== this.#settings.openConnectionsIntervalMs || settings.enabled !== this.#settings.enabled;
    this.#settings = settings;
    this.#sampleBelow = Math.floor(Math.min(1, Math.max(0, settings.sample)) * 2 ** 32);
    if (intervalChanged || this.#sweepTimer === null) this.#restartSweeps();
  }

  /** Lists whose connections get open lines; a listener adds itself while it may hold connections. */
  track(list: OpenConnectionList): void {
    this.#lists.add(list);
  }

  untrack(list: OpenConnectionList): void {
    this.#lists.delete(list);
    const index = this.#sweeping.indexOf(list);
    if (index >= 0) this.#sweeping.splice(index, 1);
  }

  /** Stop the sweeps (the thread's data plane is ending); the descriptor is the main thread's. */
  close(): void {
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    if (this.#sweepImmediate !== null) clearImmediate(this.#sweepImmediate);
    this.#sweepImmediate = null;
    this.#sweeping = [];
  }

  #writerFor(fd: number): DestinationStream {
    if (this.#override !== undefined) return this.#override;
    if (fd === 1 && this.#stdout !== undefined) return this.#stdout;
    return writerTo(fd);
  }

  #restartSweeps(): void {
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    const intervalMs = this.#settings.openConnectionsIntervalMs;
    if (intervalMs <= 0 || !this.#settings.enabled) return;
    this.#sweepTimer = setInterval(this.#startSweep, Math.max(1, Math.floor(intervalMs / SWEEPS_PER_INTERVAL)));
    // Open lines must never keep a stopping process alive.
    this.#sweepTimer.unref();
  }

  #startSweep = (): void => {
    // A sweep still running (a very large list, a busy loop) is finished before the next starts.
    if (this.#sweeping.length > 0 || this.#lists.size === 0) return;
    for (const list of this.#lists) {
      list.beginOpenSweep();
      this.#sweeping.push(list);
    }
    this.#sweepBatch();
  };

  #sweepBatch = (): void => {
    this.#sweepImmediate = null;
    const intervalMs = this.#settings.openConnectionsIntervalMs;
    if (intervalMs <= 0 || !this.#settings.enabled) {
      this.#sweeping = [];
      return;
    }
    const nowMs = performance.now();
    let budget = SWEEP_BATCH;
    while (budget > 0 && this.#sweeping.length > 0) {
      const list = this.#sweeping[this.#sweeping.length - 1]!;
      const visited = list.continueOpenSweep(budget, nowMs, intervalMs);
      budget -= visited;
      if (budget > 0) this.#sweeping.pop(); // it ran out before the budget did: this list is done
    }
    if (this.#sweeping.length > 0) this.#sweepImmediate = setImmediate(this.#sweepBatch);
  };
}
