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
 *   the base is empty there is no panic. While backends present at the pool's creation are still
 *   pending their first check, panic is not entered at all: otherwise the first backend found dead
 *   would be the whole base (one dead of three, the two others pending, is not 0% healthy).
 * - Health and routing are two facts: a backend is healthy when no flag is set; it is routable when
 *   its eligibility bit is set, because it is healthy or because panic routes to it. Both are
 *   reported (stats, `backendStatus`), and an outage (no healthy backend, none pending) is logged
 *   once, with its recovery, even when panic keeps routing.
 * - Panic routes over every `active` backend, whatever its health flags; drain and maint stay
 *   excluded even in panic (an operator's decision outranks a guess that health checks are wrong).
 * - Slow start (slow-start.ts) ramps a backend whenever it becomes eligible, except the first time
 *   for a backend present when the pool was created (process start). A backend added later
 *   (reload, discovery) ramps on its first eligibility too.
 */
import { encodeProxyHeaderLocal } from '../proxy/proxy-protocol.js';
import type { Backend, BackendState, BackendFailureReason } from '../backend.js';
import type { PoolConfig } from '../config/types.js';
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
import { NO_EVENTS, type EventSink, type RinglbEventInput } from '../events/types.js';
import { OutlierDetector } from './outlier.js';
import type { CheckResult, EligibilityTarget, ScheduledCheck } from './types.js';

export type { EligibilityTarget } from './types.js';

import { SlowStart } from './slow-start.js';

export { SLOW_START_INITIAL_PERMILLE } from './slow-start.js';

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
  readonly balancer: EligibilityTarget;
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
  /** Ids the previous health owner had found down: with active checks they start down, not up or pending. */
  readonly downIds?: ReadonlySet<string>;
  /**
   * Where a slot's checks connect, asked before every check (the pool's resolved address of a
   * backend name); default the backend's host as written.
   */
  readonly connectHostOf?: (slot: number) => string;
  /** Where health transitions, ejections and panic are published; default none. */
  readonly events?: EventSink;
  /** Where failed checks and ejections are counted per slot (`/metrics`); kept by the pool, so they outlive this owner. */
  readonly counters?: HealthCounters;
}

export interface HealthCounters {
  checkFailed(slot: number): void;
  ejected(slot: number): void;
}

/** Why a backend takes new connections: it is healthy, or panic routes to it although it is not. */
export type RoutableBecause = 'healthy' | 'panic';

/** One backend's health and routing, as two separate facts. */
export interface BackendStatus {
  /** No health or admin flag set. */
  readonly healthy: boolean;
  /** The set flags, e.g. `failed_active_check`, `ejected_outlier`, `pending_first_check`, `drain`, `maint`. */
  readonly flags: readonly string[];
  /** New connections may be sent to it now. */
  readonly routable: boolean;
  /** null when not routable. */
  readonly routableBecause: RoutableBecause | null;
}

/** One active check's outcome as the admin status shows it. */
export interface LastCheck {
  readonly ok: boolean;
  /** Wall-clock end of the check (epoch ms). */
  readonly at: number;
  readonly durationMs: number;
  /** `ok`, `ECONNREFUSED`, `timeout`, `HTTP 503`, ... (checks.ts). */
  readonly reason: string;
}

/** What the admin status shows of one backend beyond its flags. */
export interface BackendHealthDetail {
  readonly lastCheck: LastCheck | null;
  readonly ejections: number;
  /** The slow-start scale in force, 0..1000 (1000 when not ramping). */
  readonly weightScalePermille: number;
}

/** Counters for metrics (monotonic) and gauges (current). */
export interface PoolHealthStats {
  readonly backends: number;
  /** Backends with no flag set. */
  readonly healthy: number;
  /** Backends new connections may go to: the healthy ones, or in panic every `active` one. */
  readonly routable: number;
  readonly ejected: number;
  readonly panic: boolean;
  readonly panicsEntered: number;
  readonly ejections: number;
  readonly checksPassed: number;
  readonly checksFailed: number;
  readonly wentDown: number;
  readonly cameUp: number;
  readonly connectFailures: number;
  /** Established connections failed by the backend (reset, response timeout), reported to outlier detection. */
  readonly establishedFailures: number;
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
  /** The last active check's result and when it ended; null before the first (or without checks). */
  lastCheck: LastCheck | null;
  /** Times outlier detection ejected it while in this pool (monotonic, for status). */
  ejections: number;
}

/**
 * The flags that make a backend `down` for the event stream: what health observed. Admin flags are
 * `state_changed` news of their own, and pending is not a verdict (pending → up is start-up, not news).
 */
const OBSERVED_FAILURES = HealthFlag.FAILED_ACTIVE_CHECK | HealthFlag.EJECTED_OUTLIER;

export class PoolHealth {
  readonly #config: PoolConfig;
  #balancer: EligibilityTarget;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #outlier: OutlierDetector;
  readonly #bySlot: (SlotHealth | undefined)[] = [];
  readonly #byId = new Map<string, SlotHealth>();
  #scheduler: CheckScheduler | null = null;
  #created = false;
  #panic = false;
  #noneEligibleWarned = false;
  /** Every backend is known down (none healthy, none pending): logged once until one recovers. */
  #outage = false;
  readonly #slowStart: SlowStart;
  #stopped = false;
  readonly #healthyIds: ReadonlySet<string>;
  readonly #downIds: ReadonlySet<string>;
  readonly #connectHostOf: ((slot: number) => string) | undefined;
  readonly #events: EventSink;
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
  /** Established connections the backend reset or left unanswered past responseTimeoutMs. */
  #establishedFailures = 0;
  /** The kind of each slot's latest reported failure (names an ejection's cause; rare writes). */
  readonly #lastFailureReason: BackendFailureReason[] = [];
  readonly #counters: HealthCounters | undefined;
  /** Pool lines (#pushAll) held back while a flip is published ahead of its own line; null when not holding. */
  #heldLines: Array<() => void> | null = null;

  constructor(options: PoolHealthOptions) {
    this.#config = options.config;
    this.#balancer = options.balancer;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => performance.now());
    this.#healthyIds = options.healthyIds ?? new Set();
    this.#downIds = options.downIds ?? new Set();
    this.#connectHostOf = options.connectHostOf;
    this.#events = options.events ?? NO_EVENTS;
    this.#counters = options.counters;
    this.#slowStart = new SlowStart({
      balancer: options.balancer,
      capacity: options.capacity,
      windowMs: options.config.slowStartMs,
      logger: options.logger,
      now: this.#now,
    });
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
      const knownDown = atStart && check !== null && backend.state !== 'maint' && this.#downIds.has(backend.id);
      const pending = check !== null && !check.initialHealthy && backend.state !== 'maint' && !knownUp && !knownDown;
      const health = new BackendHealth(
        adminFlagsOf(backend.state) | (pending ? HealthFlag.PENDING_FIRST_CHECK : 0) | (knownDown ? HealthFlag.FAILED_ACTIVE_CHECK : 0),
      );
      const entry: SlotHealth = {
        slot,
        id: backend.id,
        address: backend.address.text,
        host: backend.address.host,
        port: backend.address.port,
        state: backend.state,
        health,
        hysteresis: check === null ? null : new CheckHysteresis(check.rise, check.fall, pending ? 'pending' : knownDown ? 'down' : 'up'),
        checkKey: null,
        atStart,
        everEligible: health.eligible,
        lastCheck: null,
        ejections: 0,
      };
      this.#bySlot[slot] = entry;
      this.#byId.set(backend.id, entry);
      // A new slot's scale is 1000 (core contract); a reused slot starts fresh as well.
      this.#slowStart.reset(slot);
      if (backend.state !== 'active') this.#logger.info({ backend: entry.address, id: entry.id, state: backend.state }, 'backend state from config');
      if (this.#scheduler !== null) this.#schedule(entry);
      if (!atStart && health.eligible) this.#slowStart.start(slot, entry);
    }
    for (const entry of [...this.#byId.values()]) if (!keep.has(entry.id)) this.#forget(entry);
    this.#pushAll(!atStart);
    this.#notifySettled();
  }

  /**
   * The pool swapped its balancer for one built with other table settings or more slots, with the
   * same slot per backend id (backend-pool.ts `rebuild`). Every fact this owner holds (flags,
   * hysteresis, ejections, slow-start ramps, scheduled checks) stays as it is: only the new
   * balancer's bits and scales are written, copied from the old one so not one pick sees a
   * different eligibility. Call before `setBackends` with the new set.
   */
  adoptBalancer(balancer: EligibilityTarget, capacity: number): void {
    const previous = this.#balancer;
    this.#outlier.grow(capacity);
    this.#slowStart.adoptBalancer(balancer, capacity);
    this.#balancer = balancer;
    for (const entry of this.#byId.values()) {
      if (balancer.idOf(entry.slot) !== entry.id) continue;
      balancer.setWeightScale(entry.slot, previous.weightScale(entry.slot));
      balancer.setEligible(entry.slot, previous.isEligible(entry.slot));
    }
  }

  /**
   * What active checks concluded per backend id (`up`, `down`, `pending`); empty without checks. A
   * new health owner for new health settings starts from it (BackendPool.reconfigure).
   */
  checkVerdicts(): Map<string, CheckVerdict> {
    const verdicts = new Map<string, CheckVerdict>();
    for (const entry of this.#byId.values()) if (entry.hysteresis !== null) verdicts.set(entry.id, entry.hysteresis.verdict);
    return verdicts;
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

  /**
   * Data plane, on every failed connect attempt and every established connection the backend
   * failed (reset, response timeout): rare path. Every kind counts toward one streak (Envoy's
   * consecutive_local_origin_failure counts connect failures alike; HAProxy `observe layer4` adds
   * the established ones); the last kind names the ejection's cause.
   */
  reportConnectFailure(slot: number, reason: BackendFailureReason): void {
    if (reason === 'reset' || reason === 'response_timeout') this.#establishedFailures += 1;
    else this.#connectFailures += 1;
    this.#lastFailureReason[slot] = reason;
    this.#outlier.reportFailure(slot);
  }

  /** Data plane, once per connection that ended without a backend failure (hot path: one typed-array store). */
  reportConnectSuccess(slot: number): void {
    this.#outlier.reportSuccess(slot);
  }

  /** Clears every timer and unschedules every check; the pool keeps its last eligibility. */
  stop(): void {
    this.#stopped = true;
    for (const entry of this.#byId.values()) this.#unschedule(entry);
    this.#scheduler = null;
    this.#outlier.stop();
    this.#slowStart.close();
  }

  stats(): PoolHealthStats {
    const flags: Record<string, readonly string[]> = {};
    let healthy = 0;
    let routable = 0;
    for (const entry of this.#byId.values()) {
      flags[entry.id] = flagNames(entry.health.flags);
      if (entry.health.eligible) healthy += 1;
      if (this.#balancer.isEligible(entry.slot)) routable += 1;
    }
    return {
      backends: this.#byId.size,
      healthy,
      routable,
      ejected: this.#outlier.ejectedCount,
      panic: this.#panic,
      panicsEntered: this.#panicsEntered,
      ejections: this.#ejections,
      checksPassed: this.#checksPassed,
      checksFailed: this.#checksFailed,
      wentDown: this.#wentDown,
      cameUp: this.#cameUp,
      connectFailures: this.#connectFailures,
      establishedFailures: this.#establishedFailures,
      flags,
    };
  }

  /** Health and routing of one backend; undefined for an id not in the pool. */
  backendStatus(id: string): BackendStatus | undefined {
    const entry = this.#byId.get(id);
    if (entry === undefined) return undefined;
    const healthy = entry.health.eligible;
    const routable = this.#balancer.isEligible(entry.slot);
    return { healthy, flags: flagNames(entry.health.flags), routable, routableBecause: routable ? (healthy ? 'healthy' : 'panic') : null };
  }

  /** Last check, ejections and slow-start scale of one backend; undefined for an id not in the pool. */
  backendDetail(id: string): BackendHealthDetail | undefined {
    const entry = this.#byId.get(id);
    if (entry === undefined) return undefined;
    return { lastCheck: entry.lastCheck, ejections: entry.ejections, weightScalePermille: this.#balancer.weightScale(entry.slot) };
  }

  /** Ids of the backends that are healthy now (not merely routed to by panic). */
  healthyIds(): Set<string> {
    const ids = new Set<string>();
    for (const entry of this.#byId.values()) if (entry.health.eligible) ids.add(entry.id);
    return ids;
  }

  /** Feeds one active check result (the scheduler calls this through the ScheduledCheck). */
  recordCheck(slot: number, result: CheckResult): void {
    const entry = this.#bySlot[slot];
    if (entry?.hysteresis == null) return;
    if (result.ok) this.#checksPassed += 1;
    else {
      this.#checksFailed += 1;
      this.#counters?.checkFailed(slot);
    }
    // Kept for the admin status: an operator asks "why is it down" between two transitions.
    entry.lastCheck = { ok: result.ok, at: Date.now(), durationMs: result.durationMs, reason: result.reason };
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
    const connectHostOf = this.#connectHostOf;
    const sendProxy = this.#config.sendProxyProtocol;
    const proxyHeader = sendProxy === undefined ? undefined : encodeProxyHeaderLocal(sendProxy);
    this.#scheduler.add({
      key,
      target:
        connectHostOf === undefined
          ? { host: entry.host, port: entry.port, proxyHeader }
          : {
              host: entry.host,
              port: entry.port,
              proxyHeader,
              get connectHost(): string {
                return connectHostOf(slot);
              },
            },
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
    if (this.#bySlot[entry.slot] === entry) this.#slowStart.forget(entry.slot);
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
      this.#setFlag(entry, HealthFlag.FAILED_ACTIVE_CHECK, false, true, { reason });
    } else {
      this.#wentDown += 1;
      this.#flipThenAnnounce(
        () => {
          // Failed first, then not pending: never a moment with neither bit (that would look eligible).
          this.#setFlag(entry, HealthFlag.FAILED_ACTIVE_CHECK, true, true, { reason });
          this.#setFlag(entry, HealthFlag.PENDING_FIRST_CHECK, false, true);
        },
        () => this.#logger.warn(fields, 'backend down'),
      );
    }
    this.#notifySettled();
  }

  #onEjected(slot: number, durationMs: number, failures: number, count: number): void {
    const entry = this.#bySlot[slot];
    if (entry === undefined) return;
    this.#ejections += 1;
    entry.ejections += 1;
    const last = this.#lastFailureReason[slot] ?? 'error';
    const established = last === 'reset' || last === 'response_timeout';
    const ejected: RinglbEventInput = {
      type: 'ejected',
      pool: this.#config.name,
      backend: entry.id,
      address: entry.address,
      // Connect failures keep their cause name (alerts match on it); failures of established
      // connections (HAProxy `observe layer4`) name the kind of the one that tipped the streak.
      cause: established ? `consecutive_failures_${last}` : 'consecutive_connect_failures',
      source: 'outlier',
      message: established
        ? `${failures} consecutive backend failures (last: ${last === 'reset' ? 'connection reset by the backend' : 'no response within responseTimeoutMs'}); ejection ${count}, for ${durationMs} ms`
        : `${failures} consecutive connect failures; ejection ${count}, for ${durationMs} ms`,
      until: new Date(Date.now() + durationMs).toISOString(),
    };
    this.#counters?.ejected(slot);
    this.#flipThenAnnounce(
      () => this.#setFlag(entry, HealthFlag.EJECTED_OUTLIER, true, true, { lead: ejected }),
      () =>
        this.#logger.warn(
          { backend: entry.address, id: entry.id, cause: 'outlier', failures, lastFailure: last, ejectionMs: durationMs, ejections: count },
          'backend ejected',
        ),
    );
  }

  /**
   * Publishes a flip that takes a backend out, then writes the line announcing it, then the pool
   * lines the flip caused (panic, outage): the same lines in the same order as before, but none
   * ahead of the flip. With data-plane worker threads the flip is a shared-memory write that the
   * workers read at their next pick, and another process reads our lines: "backend down" written
   * before the write let a client that reacted to it reach a worker still routing to the backend
   * (seen under load as a connection with attempts 2; test/e2e-workers.test.ts). A backend coming
   * back is announced as before: a line ahead of its flip only delays its first connections.
   */
  #flipThenAnnounce(flip: () => void, announce: () => void): void {
    const held: Array<() => void> = [];
    this.#heldLines = held;
    try {
      flip();
    } finally {
      this.#heldLines = null;
    }
    announce();
    for (const write of held) write();
  }

  /** A pool line of #pushAll: written now, or after the announcing line when a flip holds it. */
  #poolLine(write: () => void): void {
    if (this.#heldLines === null) write();
    else this.#heldLines.push(write);
  }

  #onEjectionEnded(slot: number, by: 'timer' | 'active_check'): void {
    const entry = this.#bySlot[slot];
    if (entry === undefined) return;
    this.#logger.info({ backend: entry.address, id: entry.id, cause: 'outlier', by }, 'backend ejection ended');
    const unejected: RinglbEventInput = { type: 'unejected', pool: this.#config.name, backend: entry.id, address: entry.address, cause: by, source: 'outlier' };
    this.#setFlag(entry, HealthFlag.EJECTED_OUTLIER, false, true, { lead: unejected });
  }

  /**
   * One producer's bit; on an eligibility flip, pushes the slot (or, if panic flipped, every slot).
   * `news.lead` (an ejection) and the `down`/`up` this flag causes are published once the bits are
   * written, so a subscriber that reacts to `down` never reaches a worker still routing there.
   */
  #setFlag(entry: SlotHealth, flag: HealthFlagBit, on: boolean, push: boolean, news: { reason?: string; lead?: RinglbEventInput } = {}): void {
    const wasEligible = entry.health.eligible;
    const wasFailing = (entry.health.flags & OBSERVED_FAILURES) !== 0;
    entry.health.set(flag, on);
    const isEligible = entry.health.eligible;
    const isFailing = (entry.health.flags & OBSERVED_FAILURES) !== 0;
    const published: RinglbEventInput[] = news.lead === undefined ? [] : [news.lead];
    if (wasFailing !== isFailing) {
      published.push({
        type: isFailing ? 'down' : 'up',
        pool: this.#config.name,
        backend: entry.id,
        address: entry.address,
        cause: flagNames(flag)[0],
        source: flag === HealthFlag.EJECTED_OUTLIER ? 'outlier' : 'health',
        ...(news.reason === undefined ? {} : { message: news.reason }),
      });
    }
    // Admin flags can change the panic base without flipping eligibility (e.g. drain on a down backend).
    if (wasEligible === isEligible && (flag & ADMIN_FLAGS) === 0 && flag !== HealthFlag.PENDING_FIRST_CHECK) {
      for (const event of published) this.#events.publish(event);
      return;
    }
    if (!wasEligible && isEligible) {
      if (!entry.atStart || entry.everEligible) this.#slowStart.start(entry.slot, entry);
      entry.everEligible = true;
    } else if (wasEligible && !isEligible) {
      this.#slowStart.stop(entry.slot);
    }
    if (push) this.#pushAll(true, published);
    else for (const event of published) this.#events.publish(event);
  }

  /**
   * Recomputes panic and pushes eligibility. O(backends), run only on a flip (rare). When panic did
   * not change, only slots whose bit differs are written — in practice the one that flipped.
   */
  #pushAll(logTransitions: boolean, news: readonly RinglbEventInput[] = []): void {
    const panic = this.#computePanic();
    let panicNews: RinglbEventInput | null = null;
    if (panic !== this.#panic) {
      this.#panic = panic;
      const { healthy, base } = this.#panicShare();
      // A new health owner (reconfigure) re-derives panic without logTransitions: the pool did not change state.
      if (logTransitions) {
        panicNews = {
          type: panic ? 'panic_entered' : 'panic_left',
          pool: this.#config.name,
          source: 'health',
          message: `${healthy} of ${base} active backends healthy; panic threshold ${this.#config.panicThreshold}`,
        };
      }
      if (panic) {
        this.#panicsEntered += 1;
        this.#poolLine(() =>
          this.#logger.warn(
            { eligible: healthy, of: base, panicThreshold: this.#config.panicThreshold },
            'pool in panic: routing over every active backend, healthy or not',
          ),
        );
      } else {
        this.#poolLine(() => this.#logger.info({ eligible: healthy, of: base, panicThreshold: this.#config.panicThreshold }, 'pool left panic'));
      }
    }
    let eligibleCount = 0;
    let healthyCount = 0;
    let pendingCount = 0;
    for (const entry of this.#byId.values()) {
      const eligible = panic ? (entry.health.flags & ADMIN_FLAGS) === 0 : entry.health.eligible;
      if (eligible) eligibleCount += 1;
      if (entry.health.eligible) healthyCount += 1;
      if (entry.health.has(HealthFlag.PENDING_FIRST_CHECK)) pendingCount += 1;
      if (this.#balancer.isEligible(entry.slot) !== eligible) this.#balancer.setEligible(entry.slot, eligible);
    }
    // The bits are written: now subscribers may hear of it (the flip's own news first, then the pool's).
    for (const event of news) this.#events.publish(event);
    if (panicNews !== null) this.#events.publish(panicNews);
    // The outage is a health fact, logged whether or not panic keeps routing: in panic, no
    // connection fails for lack of a backend, so this line is the only sign every backend is down.
    if (healthyCount === 0 && pendingCount === 0 && this.#byId.size > 0 && !this.#outage && logTransitions) {
      this.#outage = true;
      const fields = { backends: this.#byId.size, routable: eligibleCount, panic, flags: this.stats().flags };
      this.#poolLine(() => this.#logger.warn(fields, 'pool has no healthy backend'));
    } else if (healthyCount > 0 && this.#outage) {
      this.#outage = false;
      const fields = { healthy: healthyCount, of: this.#byId.size };
      this.#poolLine(() => this.#logger.info(fields, 'pool has healthy backends again'));
    }
    // Once per transition, not per connection: the access log says `no_backend` for each client.
    // Backends pending their first check are not an outage (start-up warming, a backend just added):
    // the line waits until every pending backend has its first verdict.
    if (eligibleCount === 0 && pendingCount === 0 && !this.#noneEligibleWarned && logTransitions) {
      this.#noneEligibleWarned = true;
      const fields = { backends: this.#byId.size, flags: this.stats().flags };
      this.#poolLine(() => this.#logger.warn(fields, 'pool has no routable backend: new connections fail'));
    } else if (eligibleCount > 0 && this.#noneEligibleWarned) {
      this.#noneEligibleWarned = false;
      this.#poolLine(() => this.#logger.info({ routable: eligibleCount }, 'pool has routable backends again'));
    }
  }

  /** A backend present at the pool's creation has not had its first check verdict yet. */
  #startPending(): boolean {
    for (const entry of this.#byId.values()) {
      if (entry.atStart && entry.health.has(HealthFlag.PENDING_FIRST_CHECK)) return true;
    }
    return false;
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
    if (threshold <= 0 || this.#startPending()) return false;
    const { healthy, base } = this.#panicShare();
    return base > 0 && healthy / base < threshold;
  }
}

function adminFlagsOf(state: BackendState): number {
  if (state === 'drain') return HealthFlag.DRAIN;
  if (state === 'maint') return HealthFlag.MAINT;
  return 0;
}
