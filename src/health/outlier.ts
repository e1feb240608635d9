/**
 * Passive outlier detection for one pool (Envoy's consecutive-5xx detector, applied to connects):
 * the proxy reports every connect attempt's outcome; `consecutiveFailures` failures in a row eject
 * the backend for baseEjectionMs × (times ejected), capped at maxEjectionMs. A success resets the
 * count. An ejection ends when its timer fires or when an active check passes (Envoy's
 * `successful_active_health_check_uneject_host`, default on).
 *
 * Per-connection cost: `reportSuccess` is one typed-array store; failures (rare) do the rest.
 *
 * Decisions where Envoy and HAProxy leave room (documented in the README's health section):
 * - Cap: at most max(1, floor(n × maxEjectionPercent / 100)) of the pool's n backends are ejected at
 *   once, so one backend may always be ejected unless the percent is 0 (Envoy likewise lets a
 *   2-host pool at 10% eject one host). A backend that reaches the threshold while the cap is full
 *   stays un-ejected and is retried for ejection on its next failure.
 * - Times ejected decays: if a backend stays un-ejected for maxEjectionMs, its next ejection counts
 *   as the first again (Envoy decrements the multiplier once per interval while the host is healthy;
 *   we have no interval timer, so we decay all at once, lazily, at the next ejection).
 * - Failures reported while a backend is ejected (panic mode still routes to it) neither extend
 *   nor count toward the next ejection.
 */
import type { OutlierDetectionConfig } from '../config/types.js';

export interface OutlierEvents {
  /** `slot` was ejected for `durationMs` after `failures` consecutive failures (its `count`-th ejection). */
  ejected(slot: number, durationMs: number, failures: number, count: number): void;
  /** The ejection of `slot` ended (`by` the timer or a passing active check). */
  returned(slot: number, by: 'timer' | 'active_check'): void;
}

export interface OutlierDetectorOptions {
  readonly config: OutlierDetectionConfig;
  /** Slot capacity of the pool's balancer (slots are 0..capacity-1). */
  readonly capacity: number;
  readonly events: OutlierEvents;
  /** Backends in the pool, for the ejection cap. */
  poolSize(): number;
  /** Monotonic milliseconds; default performance.now (tests inject one). */
  readonly now?: () => number;
}

export class OutlierDetector {
  readonly #config: OutlierDetectionConfig;
  readonly #events: OutlierEvents;
  readonly #poolSize: () => number;
  readonly #now: () => number;
  #consecutive: Int32Array;
  #timesEjected: Int32Array;
  /** When each slot last returned from an ejection (for the multiplier's decay); -Infinity if never. */
  #returnedAt: Float64Array;
  /** Ejection timer per ejected slot. */
  readonly #timers = new Map<number, NodeJS.Timeout>();

  constructor(options: OutlierDetectorOptions) {
    this.#config = options.config;
    this.#events = options.events;
    this.#poolSize = options.poolSize;
    this.#now = options.now ?? (() => performance.now());
    this.#consecutive = new Int32Array(options.capacity);
    this.#timesEjected = new Int32Array(options.capacity);
    this.#returnedAt = new Float64Array(options.capacity).fill(Number.NEGATIVE_INFINITY);
  }

  /**
   * The pool grew past its slot capacity (control plane, rare): streaks and ejection history of
   * every slot are kept; new slots start clean.
   */
  grow(capacity: number): void {
    if (capacity <= this.#consecutive.length) return;
    const consecutive = new Int32Array(capacity);
    consecutive.set(this.#consecutive);
    const timesEjected = new Int32Array(capacity);
    timesEjected.set(this.#timesEjected);
    const returnedAt = new Float64Array(capacity).fill(Number.NEGATIVE_INFINITY);
    returnedAt.set(this.#returnedAt);
    this.#consecutive = consecutive;
    this.#timesEjected = timesEjected;
    this.#returnedAt = returnedAt;
  }

  get enabled(): boolean {
    return this.#config.consecutiveFailures > 0;
  }

  /** Backends ejected now. */
  get ejectedCount(): number {
    return this.#timers.size;
  }

  isEjected(slot: number): boolean {
    return this.#timers.has(slot);
  }

  /** Hot path (once per established connection): resets the slot's failure streak. */
  reportSuccess(slot: number): void {
    this.#consecutive[slot] = 0;
  }

  /** A connect attempt to `slot` failed (error, refusal or timeout). */
  reportFailure(slot: number): void {
    if (!this.enabled || this.#timers.has(slot)) return;
    const failures = ++this.#consecutive[slot]!;
    if (failures < this.#config.consecutiveFailures || !this.#mayEjectAnother()) return;
    this.#eject(slot, failures);
  }

  /** A passing active check ends an ejection early; no-op when the slot is not ejected. */
  endEjection(slot: number): void {
    this.#return(slot, 'active_check');
  }

  /** The slot left the pool (membership change): forget it without an event. */
  forget(slot: number): void {
    const timer = this.#timers.get(slot);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(slot);
    this.#consecutive[slot] = 0;
    this.#timesEjected[slot] = 0;
    this.#returnedAt[slot] = Number.NEGATIVE_INFINITY;
  }

  /** Clears every ejection timer (shutdown); no events. */
  stop(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  /** The largest number of backends that may be ejected at once (see the module comment). */
  maxEjected(): number {
    const percent = this.#config.maxEjectionPercent;
    if (percent === 0) return 0;
    return Math.max(1, Math.floor((this.#poolSize() * percent) / 100));
  }

  #mayEjectAnother(): boolean {
    return this.#timers.size < this.maxEjected();
  }

  #eject(slot: number, failures: number): void {
    const { baseEjectionMs, maxEjectionMs } = this.#config;
    if (this.#now() - this.#returnedAt[slot]! >= maxEjectionMs) this.#timesEjected[slot] = 0;
    const count = ++this.#timesEjected[slot]!;
    const durationMs = Math.min(baseEjectionMs * count, maxEjectionMs);
    const timer = setTimeout(() => this.#return(slot, 'timer'), durationMs);
    // Ejections never keep the process alive: shutdown does not wait for them.
    timer.unref();
    this.#timers.set(slot, timer);
    this.#consecutive[slot] = 0;
    this.#events.ejected(slot, durationMs, failures, count);
  }

  #return(slot: number, by: 'timer' | 'active_check'): void {
    const timer = this.#timers.get(slot);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#timers.delete(slot);
    this.#returnedAt[slot] = this.#now();
    this.#events.returned(slot, by);
  }
}
