/**
 * The health owner of one pool: the only writer of its balancer's eligibility bits and weight scales.
 *
 * Producers (active checks via the scheduler, outlier detection fed by the proxy, the config's
 * backend `state`) each set their own flag bit on a `BackendHealth`; this module derives
 * eligibility, decides panic mode, and pushes the result to the core with `setEligible` (one bit,
 * never a table rebuild: tables depend on membership and weights only, so keys of healthy backends
 * never move) and `setWeightScale` (slow start). Only transitions are logged.
 *
 * Decisions (documented for users in the README's health section):
 * - Panic base: the pool's `active` backends (not drain, not maint) whose state is known, i.e. not
 *   pending their first check. Envoy divides healthy hosts by all hosts; we leave out backends an
 *   operator took out on purpose (draining half a pool for a deploy must not trigger panic) and
 *   backends never checked yet (process start with `initialHealthy: false` is not an outage). When
 *   the base is empty there is no panic.
 * - Panic routes over every `active` backend, whatever its health flags; drain and maint stay
 *   excluded even in panic (an operator's decision outranks a guess that health checks are wrong).
 * - Slow start ramps a backend's scale from 10% to 100% linearly over slowStartMs whenever it
 *   becomes eligible, except the first time for a backend present when the pool was created
 *   (process start). A backend added later (reload, discovery) ramps on its first eligibility too.
 *   The ramp is updated by one timer every max(50, slowStartMs / 20) ms while any backend ramps.
 */
import type { Backend, BackendState, ConnectFailureReason } from '../backend.js';
import type { PoolConfig } from '../config/types.js';
import type { Balancer } from '../core/types.js';
import type { Logger } from '../log.js';
import {
  ADMIN_FLAGS,
  BackendHealth,
  CheckHysteresis,
  HealthFlag,
  flagNames,
  type CheckVerdict,
  type HealthFlagBit,
} from './backend-health.js';
import { OutlierDetector } from './outlier.js';
import type { CheckResult, ScheduledCheck } from './types.js';

/** Scale a recovered backend starts at (HAProxy's slowstart also starts above zero). */
export const SLOW_START_INITIAL_PERMILLE = 100;
const FULL_SCALE_PERMILLE = 1000;
/** Ramp updates: at least every 50 ms apart, at most 20 steps per window. */
const SLOW_START_MIN_STEP_MS = 50;
const SLOW_START_STEPS = 20;

/** What the pool's scheduler needs from us; a `HealthCheckScheduler` satisfies it. */
export interface CheckScheduler {
  add(check: ScheduledCheck): void;
  remove(key: string): void;
}

/** A backend of the pool and the slot the core gave it. */
export interface SlottedBackend {
  readonly slot: number;
  readonly backend: Backend;
}

export interface PoolHealthOptions {
  readonly config: PoolConfig;
  readonly balancer: Balancer;
  /** Slot capacity of the balancer. */
  readonly capacity: number;
  /** Pool's child logger. */
  readonly logger: Logger;
  /** Monotonic milliseconds; default performance.now (tests inject one). */
  readonly now?: () => number;
  /**
   * Ids known to be up already (the pool got a new health owner for new settings): on their first
   * `setBackends` they start up instead of pending, so a settings reload costs no pending round.
   */
  readonly healthyIds?: ReadonlySet<string>;
}

/** Counters for metrics (monotonic) and gauges (current). */
export interface PoolHealthStats {
  readonly backends: number;
  readonly eligible: number;
  readonly ejected: number;
  readonly panic: boolean;
  readonly panicsEntered: number;
  readonly ejections: number;
  readonly checksPassed: number;
  readonly checksFailed: number;
  readonly wentDown: number;
  readonly cameUp: number;
  readonly connectFailures: number;
  /** Per backend id: its flag names (empty = eligible by health). */
  readonly flags: Readonly<Record<string, readonly string[]>>;
}

interface SlotHealth {
  readonly slot: number;
  readonly id: string;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  state: BackendState;
  readonly health: BackendHealth;
  /** null when the pool has no active checks. */
  readonly hysteresis: CheckHysteresis | null;
  /** Scheduler key while its checks are scheduled. */
  checkKey: string | null;
  /** Present when the pool was created: its first eligibility is start-up, not a recovery. */
  readonly atStart: boolean;
  everEligible: boolean;
  /** Slow start begin (ms, `now()` clock), or NaN when not ramping. */
  rampStartedAt: number;
}

export class PoolHealth {
  readonly #config: PoolConfig;
  readonly #balancer: Balancer;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #outlier: OutlierDetector;
  readonly #bySlot: (SlotHealth | undefined)[] = [];
  readonly #byId = new Map<string, SlotHealth>();
  #scheduler: CheckScheduler | null = null;
  #created = false;
  #panic = false;
  #noneEligibleWarned = false;
  #rampTimer: NodeJS.Timeout | null = null;
  #stopped = false;
  readonly #healthyIds: ReadonlySet<string>;
  /** Resolvers waiting for no backend to be pending (start-up warming). */
  #settledWaiters: Array<() => void> = [];
  // counters
  #panicsEntered = 0;
  #ejections = 0;
  #checksPassed = 0;
  #checksFailed = 0;
  #wentDown = 0;
  #cameUp = 0;
  #connectFailures = 0;

  constructor(options: PoolHealthOptions) {
    this.#config = options.config;
    this.#balancer = options.balancer;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => performance.now());
    this.#healthyIds = options.healthyIds ?? new Set();
    this.#outlier = new OutlierDetector({
      config: options.config.outlierDetection,
      capacity: options.capacity,
      poolSize: () => this.#byId.size,
      now: this.#now,
      events: {
        ejected: (slot, durationMs, failures, count) => this.#onEjected(slot, durationMs, failures, count),
        returned: (slot, by) => this.#onEjectionEnded(slot, by),
      },
    });
  }

  get panic(): boolean {
    return this.#panic;
  }

  /**
   * Sync with the pool's membership (the core already assigned slots). New backends start with
   * their admin flags and, with active checks and `initialHealthy: false`, pending; backends that
   * stay keep their health; removed ones are forgotten (their checks stop). A backend whose
   * address changed under the same id is a new backend for health (the new address is unproven).
   * The first non-empty call is the pool's creation (a discovery pool starts empty; its first set
   * counts as start-up, so it does not slow-start).
   */
  setBackends(backends: readonly SlottedBackend[]): void {
    const atStart = !this.#created;
    if (backends.length > 0) this.#created = true;
    const check = this.#config.healthCheck;
    const keep = new Set<string>();
    for (const { slot, backend } of backends) {
      keep.add(backend.id);
      const existing = this.#byId.get(backend.id);
      if (existing !== undefined && existing.slot === slot && existing.address === backend.address.text) {
        this.#setAdminState(existing, backend.state);
        continue;
      }
      if (existing !== undefined) this.#forget(existing);
      const knownUp = atStart && this.#healthyIds.has(backend.id);
      const pending = check !== null && !check.initialHealthy && backend.state !== 'maint' && !knownUp;
      const health = new BackendHealth(
        adminFlagsOf(backend.state) | (pending ? HealthFlag.PENDING_FIRST_CHECK : 0),
      );
      const entry: SlotHealth = {
        slot,
        id: backend.id,
        address: backend.address.text,
        host: backend.address.host,
        port: backend.address.port,
        state: backend.state,
        health,
        hysteresis: check === null ? null : new CheckHysteresis(check.rise, check.fall, pending ? 'pending' : 'up'),
        checkKey: null,
        atStart,
        everEligible: health.eligible,
        rampStartedAt: Number.NaN,
      };
      this.#bySlot[slot] = entry;
      this.#byId.set(backend.id, entry);
      // A new slot's scale is 1000 (core contract); a reused slot starts fresh as well.
      this.#balancer.setWeightScale(slot, FULL_SCALE_PERMILLE);
      if (backend.state !== 'active') this.#logger.info({ backend: entry.address, id: entry.id, state: backend.state }, 'backend state from config');
      if (this.#scheduler !== null) this.#schedule(entry);
      if (!atStart && health.eligible) this.#startRamp(entry);
    }
    for (const entry of [...this.#byId.values()]) if (!keep.has(entry.id)) this.#forget(entry);
    this.#pushAll(!atStart);
    this.#notifySettled();
  }

  /** Backends still waiting for their first check verdict (start-up warming reads it). */
  pendingCount(): number {
    let pending = 0;
    for (const entry of this.#byId.values()) if ((entry.health.flags & HealthFlag.PENDING_FIRST_CHECK) !== 0) pending += 1;
    return pending;
  }

  /** Resolves once no backend is pending its first check (at once when none is). */
  whenSettled(): Promise<void> {
    if (this.pendingCount() === 0) return Promise.resolve();
    return new Promise((resolve) => this.#settledWaiters.push(resolve));
  }

  #notifySettled(): void {
    if (this.#settledWaiters.length === 0 || this.pendingCount() > 0) return;
    const waiters = this.#settledWaiters;
    this.#settledWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Begin active checks (no-op without a healthCheck config). Maint backends are not checked. */
  startChecks(scheduler: CheckScheduler): void {
    if (this.#config.healthCheck === null || this.#stopped) return;
    this.#scheduler = scheduler;
    for (const entry of this.#byId.values()) this.#schedule(entry);
  }

  /** Data plane, on every failed connect attempt (rare path). */
  reportConnectFailure(slot: number, reason: ConnectFailureReason): void {
    void reason; // every kind counts (Envoy's consecutive_local_origin_failure counts all three)
    this.#connectFailures += 1;
    this.#outlier.reportFailure(slot);
  }

  /** Data plane, once per established upstream connection (hot path: one typed-array store). */
  reportConnectSuccess(slot: number): void {
    this.#outlier.reportSuccess(slot);
  }

  /** Clears every timer and unschedules every check; the pool keeps its last eligibility. */
  stop(): void {
    this.#stopped = true;
    for (const entry of this.#byId.values()) this.#unschedule(entry);
    this.#scheduler = null;
    this.#outlier.stop();
    if (this.#rampTimer !== null) clearInterval(this.#rampTimer);
    this.#rampTimer = null;
  }

  /** One backend's flag names, as in `stats().flags` (empty for an unknown id); O(1), for one-backend reads. */
  flagsOf(id: string): readonly string[] {
    const entry = this.#byId.get(id);
    return entry === undefined ? [] : flagNames(entry.health.flags);
  }

  stats(): PoolHealthStats {
    const flags: Record<string, readonly string[]> = {};
    let eligible = 0;
    for (const entry of this.#byId.values()) {
      flags[entry.id] = flagNames(entry.health.flags);
      if (this.#balancer.isEligible(entry.slot)) eligible += 1;
    }
    return {
      backends: this.#byId.size,
      eligible,
      ejected: this.#outlier.ejectedCount,
      panic: this.#panic,
      panicsEntered: this.#panicsEntered,
      ejections: this.#ejections,
      checksPassed: this.#checksPassed,
      checksFailed: this.#checksFailed,
      wentDown: this.#wentDown,
      cameUp: this.#cameUp,
      connectFailures: this.#connectFailures,
      flags,
    };
  }

  /** Feeds one active check result (the scheduler calls this through the ScheduledCheck). */
  recordCheck(slot: number, result: CheckResult): void {
    const entry = this.#bySlot[slot];
    if (entry?.hysteresis == null) return;
    if (result.ok) this.#checksPassed += 1;
    else this.#checksFailed += 1;
    const verdict = entry.hysteresis.record(result.ok);
    if (verdict !== null) this.#onVerdict(entry, verdict, result.reason);
    // Envoy's successful_active_health_check_uneject_host: a passing check ends an ejection.
    if (result.ok) this.#outlier.endEjection(slot);
  }

  // -------------------------------------------------------------------------------------------

  #schedule(entry: SlotHealth): void {
    const config = this.#config.healthCheck;
    if (config === null || this.#scheduler === null || entry.state === 'maint' || entry.checkKey !== null) return;
    const key = `${this.#config.name}/${entry.id}`;
    const slot = entry.slot;
    const hysteresis = entry.hysteresis!;
    this.#scheduler.add({
      key,
      target: { host: entry.host, port: entry.port },
      config,
      isDown: () => hysteresis.verdict !== 'up',
      onResult: (result) => this.recordCheck(slot, result),
    });
    entry.checkKey = key;
  }

  #unschedule(entry: SlotHealth): void {
    if (entry.checkKey === null) return;
    this.#scheduler?.remove(entry.checkKey);
    entry.checkKey = null;
  }

  #forget(entry: SlotHealth): void {
    this.#unschedule(entry);
    this.#outlier.forget(entry.slot);
    this.#byId.delete(entry.id);
    if (this.#bySlot[entry.slot] === entry) this.#bySlot[entry.slot] = undefined;
  }

  #setAdminState(entry: SlotHealth, state: BackendState): void {
    if (entry.state === state) return;
    this.#logger.info({ backend: entry.address, id: entry.id, from: entry.state, state }, 'backend state changed');
    const wasMaint = entry.state === 'maint';
    entry.state = state;
    this.#setFlag(entry, HealthFlag.DRAIN, state === 'drain', false);
    this.#setFlag(entry, HealthFlag.MAINT, state === 'maint', false);
    if (state === 'maint') this.#unschedule(entry);
    else if (wasMaint) this.#schedule(entry);
  }

  #onVerdict(entry: SlotHealth, verdict: CheckVerdict, reason: string): void {
    const fields = { backend: entry.address, id: entry.id, cause: 'active_check', reason };
    if (verdict === 'up') {
      this.#cameUp += 1;
      this.#logger.info(fields, 'backend up');
      this.#setFlag(entry, HealthFlag.PENDING_FIRST_CHECK, false, true);
      this.#setFlag(entry, HealthFlag.FAILED_ACTIVE_CHECK, false, true);
    } else {
      this.#wentDown += 1;
      this.#logger.warn(fields, 'backend down');
      // Failed first, then not pending: never a moment with neither bit (that would look eligible).
      this.#setFlag(entry, HealthFlag.FAILED_ACTIVE_CHECK, true, true);
      this.#setFlag(entry, HealthFlag.PENDING_FIRST_CHECK, false, true);
    }
    this.#notifySettled();
  }

  #onEjected(slot: number, durationMs: number, failures: number, count: number): void {
    const entry = this.#bySlot[slot];
    if (entry === undefined) return;
    this.#ejections += 1;
    this.#logger.warn(
      { backend: entry.address, id: entry.id, cause: 'outlier', failures, ejectionMs: durationMs, ejections: count },
      'backend ejected',
    );
    this.#setFlag(entry, HealthFlag.EJECTED_OUTLIER, true, true);
  }

  #onEjectionEnded(slot: number, by: 'timer' | 'active_check'): void {
    const entry = this.#bySlot[slot];
    if (entry === undefined) return;
    this.#logger.info({ backend: entry.address, id: entry.id, cause: 'outlier', by }, 'backend ejection ended');
    this.#setFlag(entry, HealthFlag.EJECTED_OUTLIER, false, true);
  }

  /** One producer's bit; on an eligibility flip, pushes the slot (or, if panic flipped, every slot). */
  #setFlag(entry: SlotHealth, flag: HealthFlagBit, on: boolean, push: boolean): void {
    const wasEligible = entry.health.eligible;
    entry.health.set(flag, on);
    const isEligible = entry.health.eligible;
    // Admin flags can change the panic base without flipping eligibility (e.g. drain on a down backend).
    if (wasEligible === isEligible && (flag & ADMIN_FLAGS) === 0 && flag !== HealthFlag.PENDING_FIRST_CHECK) return;
    if (!wasEligible && isEligible) {
      if (!entry.atStart || entry.everEligible) this.#startRamp(entry);
      entry.everEligible = true;
    } else if (wasEligible && !isEligible) {
      this.#stopRamp(entry);
    }
    if (push) this.#pushAll(true);
  }

  /**
   * Recomputes panic and pushes eligibility. O(backends), run only on a flip (rare). When panic did
   * not change, only slots whose bit differs are written — in practice the one that flipped.
   */
  #pushAll(logTransitions: boolean): void {
    const panic = this.#computePanic();
    if (panic !== this.#panic) {
      this.#panic = panic;
      const { healthy, base } = this.#panicShare();
      if (panic) {
        this.#panicsEntered += 1;
        this.#logger.warn(
          { eligible: healthy, of: base, panicThreshold: this.#config.panicThreshold },
          'pool in panic: routing over every active backend, healthy or not',
        );
      } else {
        this.#logger.info({ eligible: healthy, of: base, panicThreshold: this.#config.panicThreshold }, 'pool left panic');
      }
    }
    let eligibleCount = 0;
    for (const entry of this.#byId.values()) {
      const eligible = panic ? (entry.health.flags & ADMIN_FLAGS) === 0 : entry.health.eligible;
      if (eligible) eligibleCount += 1;
      if (this.#balancer.isEligible(entry.slot) !== eligible) this.#balancer.setEligible(entry.slot, eligible);
    }
    // Once per transition, not per connection: the access log says `no_backend` for each client.
    if (eligibleCount === 0 && !this.#noneEligibleWarned && logTransitions) {
      this.#noneEligibleWarned = true;
      this.#logger.warn({ backends: this.#byId.size, flags: this.stats().flags }, 'pool has no eligible backend: new connections fail');
    } else if (eligibleCount > 0 && this.#noneEligibleWarned) {
      this.#noneEligibleWarned = false;
      this.#logger.info({ eligible: eligibleCount }, 'pool has eligible backends again');
    }
  }

  #panicShare(): { healthy: number; base: number } {
    let healthy = 0;
    let base = 0;
    for (const entry of this.#byId.values()) {
      const flags = entry.health.flags;
      if ((flags & (ADMIN_FLAGS | HealthFlag.PENDING_FIRST_CHECK)) !== 0) continue;
      base += 1;
      if (flags === 0) healthy += 1;
    }
    return { healthy, base };
  }

  #computePanic(): boolean {
    const threshold = this.#config.panicThreshold;
    if (threshold <= 0) return false;
    const { healthy, base } = this.#panicShare();
    return base > 0 && healthy / base < threshold;
  }

  // --- slow start ----------------------------------------------------------------------------

  #startRamp(entry: SlotHealth): void {
    const windowMs = this.#config.slowStartMs;
    if (windowMs <= 0 || this.#stopped) return;
    entry.rampStartedAt = this.#now();
    this.#balancer.setWeightScale(entry.slot, SLOW_START_INITIAL_PERMILLE);
    this.#logger.info({ backend: entry.address, id: entry.id, slowStartMs: windowMs }, 'backend slow start');
    if (this.#rampTimer === null) {
      const stepMs = Math.max(SLOW_START_MIN_STEP_MS, Math.floor(windowMs / SLOW_START_STEPS));
      this.#rampTimer = setInterval(() => this.#stepRamps(), stepMs);
      this.#rampTimer.unref();
    }
  }

  #stopRamp(entry: SlotHealth): void {
    if (Number.isNaN(entry.rampStartedAt)) return;
    entry.rampStartedAt = Number.NaN;
    this.#balancer.setWeightScale(entry.slot, FULL_SCALE_PERMILLE);
  }

  #stepRamps(): void {
    const windowMs = this.#config.slowStartMs;
    const now = this.#now();
    let ramping = 0;
    for (const entry of this.#byId.values()) {
      if (Number.isNaN(entry.rampStartedAt)) continue;
      const progress = (now - entry.rampStartedAt) / windowMs;
      if (progress >= 1) {
        this.#stopRamp(entry);
        this.#logger.debug({ backend: entry.address, id: entry.id }, 'backend slow start done');
        continue;
      }
      ramping += 1;
      const permille = Math.round(SLOW_START_INITIAL_PERMILLE + (FULL_SCALE_PERMILLE - SLOW_START_INITIAL_PERMILLE) * progress);
      this.#balancer.setWeightScale(entry.slot, permille);
    }
    if (ramping === 0 && this.#rampTimer !== null) {
      clearInterval(this.#rampTimer);
      this.#rampTimer = null;
    }
  }
}

function adminFlagsOf(state: BackendState): number {
  if (state === 'drain') return HealthFlag.DRAIN;
  if (state === 'maint') return HealthFlag.MAINT;
  return 0;
}
