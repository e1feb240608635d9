/**
 * Runs every backend's active check on its own interval, with jitter, never overlapping for one
 * backend, under a global cap on checks in flight. Pure scheduling: results go to each check's
 * `onResult`; nothing is logged here (the health state owner logs transitions only).
 *
 * Timing of one check (all timers unref()'d: the scheduler never keeps a process alive):
 * - first run: a random delay in [0, min(intervalMs, FIRST_CHECK_SPREAD_CAP_MS)) after `add`, so a
 *   pool of many backends does not fire all its first checks in the same millisecond (HAProxy
 *   spreads first checks over the interval; Envoy has `initial_jitter`). Capped at 1 s so a backend
 *   that starts "pending" does not wait a long interval for its first verdict.
 * - next runs: `isDown() ? unhealthyIntervalMs : intervalMs`, scaled by
 *   `1 + jitter × (2r − 1)` (r uniform in [0, 1)), i.e. interval ± jitter × interval, measured from
 *   the END of the previous check (HAProxy and Envoy do the same), so a slow check stretches the
 *   period instead of overlapping the next one.
 * - waiting for a slot: when `maxConcurrent` checks are in flight, a due check waits in a FIFO
 *   queue; its interval starts when it has run, so a queue delay never causes a burst.
 */
import type { CheckResult, CheckTarget, ScheduledCheck } from './types.js';
import type { HealthCheckConfig } from '../config/types.js';
import { runHealthCheck } from './checks.js';

/** Default cap on checks in flight across all pools: 1000 backends never open 1000 sockets at once. */
export const DEFAULT_MAX_CONCURRENT_CHECKS = 32;

/** Upper bound of the random delay before a backend's first check (see the module comment). */
export const FIRST_CHECK_SPREAD_CAP_MS = 1000;

export type CheckRunner = (target: CheckTarget, config: HealthCheckConfig, signal: AbortSignal) => Promise<CheckResult>;

export interface HealthCheckSchedulerOptions {
  /** Checks in flight at most, all keys together; default DEFAULT_MAX_CONCURRENT_CHECKS. */
  readonly maxConcurrent?: number;
  /** Uniform [0, 1) source for the first-check spread and the jitter; default Math.random (tests pin it). */
  readonly random?: () => number;
  /** Runs one check; default runHealthCheck (tests substitute a controllable runner). */
  readonly run?: CheckRunner;
}

/** Where one key is in its cycle. */
type Phase = 'waiting' | 'queued' | 'running';

interface Entry {
  readonly check: ScheduledCheck;
  phase: Phase;
  /** Set while waiting for the next run. */
  timer: NodeJS.Timeout | null;
  /** Set while running: aborting it ends the check at once (remove/stop). */
  controller: AbortController | null;
  /** Removed (or stopped): a result arriving later is dropped and nothing is rescheduled. */
  removed: boolean;
}

export class HealthCheckScheduler {
  readonly #maxConcurrent: number;
  readonly #random: () => number;
  readonly #run: CheckRunner;
  readonly #entries = new Map<string, Entry>();
  /** Due checks waiting for a slot; a Set iterates in insertion order, so it is a FIFO with O(1) removal. */
  readonly #queue = new Set<Entry>();
  #inFlight = 0;
  #stopped = false;
  /** Resolvers of `idle()` promises, called when the last in-flight check settles. */
  #idleWaiters: Array<() => void> = [];

  constructor(options: HealthCheckSchedulerOptions = {}) {
    const maxConcurrent = options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT_CHECKS;
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
      throw new RangeError(`HealthCheckScheduler: maxConcurrent must be an integer ≥ 1, got ${maxConcurrent}`);
    }
    this.#maxConcurrent = maxConcurrent;
    this.#random = options.random ?? Math.random;
    this.#run = options.run ?? runHealthCheck;
  }

  /** Keys scheduled (waiting, queued or running). */
  get size(): number {
    return this.#entries.size;
  }

  /** Checks running now (≤ maxConcurrent). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Due checks waiting for a free slot. */
  get queued(): number {
    return this.#queue.size;
  }

  /** Schedules a new key; its first check runs after the first-check spread. */
  add(check: ScheduledCheck): void {
    if (this.#stopped) throw new Error(`HealthCheckScheduler: add("${check.key}") after stop()`);
    if (this.#entries.has(check.key)) throw new Error(`HealthCheckScheduler: key "${check.key}" is already scheduled`);
    const entry: Entry = { check, phase: 'waiting', timer: null, controller: null, removed: false };
    this.#entries.set(check.key, entry);
    const spread = Math.min(check.config.intervalMs, FIRST_CHECK_SPREAD_CAP_MS);
    this.#wait(entry, Math.floor(this.#random() * spread));
  }

  /** Unschedules a key (unknown keys are ignored). A check in flight is aborted and its result dropped. */
  remove(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#cancel(entry);
  }

  /** Cancels every timer and aborts every check in flight; the scheduler cannot be reused. */
  stop(): void {
    this.#stopped = true;
    for (const entry of this.#entries.values()) this.#cancel(entry);
    this.#entries.clear();
  }

  /** Resolves once no check is in flight (at once if none is): e.g. after stop(), before exit. */
  idle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #cancel(entry: Entry): void {
    entry.removed = true;
    if (entry.timer !== null) clearTimeout(entry.timer);
    entry.timer = null;
    this.#queue.delete(entry);
    entry.controller?.abort();
  }

  #wait(entry: Entry, delayMs: number): void {
    entry.phase = 'waiting';
    entry.timer = setTimeout(() => this.#due(entry), delayMs);
    entry.timer.unref();
  }

  #due(entry: Entry): void {
    entry.timer = null;
    if (entry.removed) return;
    entry.phase = 'queued';
    this.#queue.add(entry);
    this.#pump();
  }

  /** Starts queued checks, oldest first, while slots are free. */
  #pump(): void {
    while (this.#inFlight < this.#maxConcurrent && this.#queue.size > 0) {
      const entry = this.#queue.values().next().value as Entry;
      this.#queue.delete(entry);
      this.#start(entry);
    }
  }

  #start(entry: Entry): void {
    entry.phase = 'running';
    const controller = new AbortController();
    entry.controller = controller;
    this.#inFlight += 1;
    const { target, config } = entry.check;
    let running: Promise<CheckResult>;
    try {
      running = this.#run(target, config, controller.signal);
    } catch (error) {
      // runHealthCheck never throws; a substituted runner might. Count it as a failed check.
      running = Promise.resolve({ ok: false, reason: error instanceof Error ? error.message : 'error', durationMs: 0 });
    }
    running
      .catch((error: unknown): CheckResult => ({ ok: false, reason: error instanceof Error ? error.message : 'error', durationMs: 0 }))
      .then((result) => this.#settle(entry, result));
  }

  #settle(entry: Entry, result: CheckResult): void {
    entry.controller = null;
    this.#inFlight -= 1;
    try {
      if (!entry.removed) {
        // onResult must not throw: if it does, the error surfaces as an unhandled rejection (a bug
        // in the caller), but the schedule below still continues.
        entry.check.onResult(result);
      }
    } finally {
      if (!entry.removed) this.#wait(entry, this.#nextDelay(entry.check));
      this.#pump();
      if (this.#inFlight === 0) this.#wakeIdle();
    }
  }

  /** interval × (1 + jitter × (2r − 1)), from the end of the check that just finished. */
  #nextDelay(check: ScheduledCheck): number {
    const { intervalMs, unhealthyIntervalMs, jitter } = check.config;
    const interval = check.isDown() ? unhealthyIntervalMs : intervalMs;
    return Math.max(0, Math.round(interval * (1 + jitter * (2 * this.#random() - 1))));
  }

  #wakeIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
