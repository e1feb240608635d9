/**
 * Slow start of one pool: the only writer of its balancer's weight scales.
 *
 * A backend that becomes eligible again ramps its scale from 10% to 100% linearly over
 * `slowStartMs` (HAProxy `slowstart`, Envoy `slow_start_config`), so a cold cache or JIT is not
 * handed its full share at once. Which flips start a ramp is the health owner's decision
 * (pool-health.ts: not a backend's first eligibility at process start); this module only ramps.
 * One timer, every max(50, slowStartMs / 20) ms, updates every ramping backend while any ramps.
 */
import type { EligibilityTarget } from './types.js';
import type { Logger } from '../log.js';

/** Scale a recovered backend starts at (HAProxy's slowstart also starts above zero). */
export const SLOW_START_INITIAL_PERMILLE = 100;
/** A slot's scale when it is not ramping (the core's contract for a new slot). */
export const FULL_SCALE_PERMILLE = 1000;
/** Ramp updates: at least every 50 ms apart, at most 20 steps per window. */
const SLOW_START_MIN_STEP_MS = 50;
const SLOW_START_STEPS = 20;

/** What a ramp is logged as. */
export interface RampSubject {
  readonly address: string;
  readonly id: string;
}

export interface SlowStartOptions {
  readonly balancer: EligibilityTarget;
  /** Slot capacity of the balancer. */
  readonly capacity: number;
  /** The ramp window; 0 disables slow start. */
  readonly windowMs: number;
  readonly logger: Logger;
  /** Monotonic milliseconds (the health owner's clock). */
  readonly now: () => number;
}

export class SlowStart {
  #balancer: EligibilityTarget;
  readonly #windowMs: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** Ramp begin per slot (ms, `now()` clock), NaN when the slot is not ramping. */
  #startedAt: Float64Array;
  /** Who ramps in each slot, for the log lines; set while ramping. */
  readonly #subjects: (RampSubject | undefined)[];
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(options: SlowStartOptions) {
    this.#balancer = options.balancer;
    this.#windowMs = options.windowMs;
    this.#logger = options.logger;
    this.#now = options.now;
    this.#startedAt = new Float64Array(options.capacity).fill(Number.NaN);
    this.#subjects = new Array<RampSubject | undefined>(options.capacity).fill(undefined);
  }

  /**
   * The pool rebuilt its balancer in place (same slot per backend, possibly more slots): ramps in
   * progress continue on the new one. The caller copies the current scales over.
   */
  adoptBalancer(balancer: EligibilityTarget, capacity: number): void {
    this.#balancer = balancer;
    if (capacity <= this.#startedAt.length) return;
    const startedAt = new Float64Array(capacity).fill(Number.NaN);
    startedAt.set(this.#startedAt);
    this.#startedAt = startedAt;
    for (let slot = this.#subjects.length; slot < capacity; slot++) this.#subjects.push(undefined);
  }

  /** A slot got a (new) backend: full scale, not ramping. */
  reset(slot: number): void {
    this.#startedAt[slot] = Number.NaN;
    this.#subjects[slot] = undefined;
    this.#balancer.setWeightScale(slot, FULL_SCALE_PERMILLE);
  }

  /** The backend in `slot` became eligible and should ramp (no-op when slow start is off). */
  start(slot: number, subject: RampSubject): void {
    const windowMs = this.#windowMs;
    if (windowMs <= 0 || this.#stopped) return;
    this.#startedAt[slot] = this.#now();
    this.#subjects[slot] = subject;
    this.#balancer.setWeightScale(slot, SLOW_START_INITIAL_PERMILLE);
    this.#logger.info({ backend: subject.address, id: subject.id, slowStartMs: windowMs }, 'backend slow start');
    if (this.#timer === null) {
      const stepMs = Math.max(SLOW_START_MIN_STEP_MS, Math.floor(windowMs / SLOW_START_STEPS));
      this.#timer = setInterval(() => this.#step(), stepMs);
      this.#timer.unref();
    }
  }

  /** The backend in `slot` lost eligibility (or left): its ramp ends at full scale. */
  stop(slot: number): void {
    if (Number.isNaN(this.#startedAt[slot]!)) return;
    this.#startedAt[slot] = Number.NaN;
    this.#subjects[slot] = undefined;
    this.#balancer.setWeightScale(slot, FULL_SCALE_PERMILLE);
  }

  /** The slot's backend left the pool: its ramp is dropped (the slot's next backend gets `reset`). */
  forget(slot: number): void {
    this.#startedAt[slot] = Number.NaN;
    this.#subjects[slot] = undefined;
  }

  /** Clears the timer; scales stay as they are. */
  close(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #step(): void {
    const windowMs = this.#windowMs;
    const now = this.#now();
    let ramping = 0;
    for (let slot = 0; slot < this.#startedAt.length; slot++) {
      const startedAt = this.#startedAt[slot]!;
      if (Number.isNaN(startedAt)) continue;
      const progress = (now - startedAt) / windowMs;
      if (progress >= 1) {
        const subject = this.#subjects[slot]!;
        this.stop(slot);
        this.#logger.debug({ backend: subject.address, id: subject.id }, 'backend slow start done');
        continue;
      }
      ramping += 1;
      const permille = Math.round(SLOW_START_INITIAL_PERMILLE + (FULL_SCALE_PERMILLE - SLOW_START_INITIAL_PERMILLE) * progress);
      this.#balancer.setWeightScale(slot, permille);
    }
    if (ramping === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}
