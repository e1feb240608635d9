/**
 * Contracts of the health subsystem, shared by the checkers/scheduler (checks.ts, scheduler.ts)
 * and the health state owner (pool-health.ts and friends).
 */
import type { Balancer } from '../core/types.js';
import type { HealthCheckConfig } from '../config/types.js';

/** Outcome of one active check. `reason` is what a transition log line shows. */
export interface CheckResult {
  readonly ok: boolean;
  /** 'ok', 'ECONNREFUSED', 'timeout', 'expect mismatch', 'HTTP 503', ... */
  readonly reason: string;
  /** Wall time of the check in ms. */
  readonly durationMs: number;
}

export interface CheckTarget {
  /** The host as written (a name or an IP literal); the default HTTP Host header. */
  readonly host: string;
  readonly port: number;
  /**
   * Where to connect, read at every check: the address the pool resolved `host` to (an IP
   * literal), so checks make no name lookup and follow a changed answer. Default `host`.
   */
  readonly connectHost?: string;
  /**
   * Written first by `send_expect` and `http` checks when the pool sends PROXY protocol (a backend
   * listening with it refuses a request without one): a v2 LOCAL header or v1 `PROXY UNKNOWN`, what
   * HAProxy's `check-send-proxy` sends. `tcp` checks only connect and need none.
   */
  readonly proxyHeader?: Uint8Array;
}

/** One backend's entry in the scheduler. */
export interface ScheduledCheck {
  /** Unique key within the scheduler, e.g. `${pool}/${backendId}`. */
  readonly key: string;
  readonly target: CheckTarget;
  readonly config: HealthCheckConfig;
  /** Asked before scheduling each next check: true → use unhealthyIntervalMs. */
  isDown(): boolean;
  /** Every result, in order; checks of one key never overlap. */
  onResult(result: CheckResult): void;
}

/**
 * What the health owner writes and reads on a pool's balancer: eligibility bits and weight scales
 * (one writer). A pool whose connections live in worker threads hands it a target that also
 * mirrors each write into shared memory.
 */
export type EligibilityTarget = Pick<Balancer, 'idOf' | 'isEligible' | 'setEligible' | 'setWeightScale' | 'weightScale'>;
