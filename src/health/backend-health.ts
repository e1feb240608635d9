/**
 * One backend's health: one flag bit per cause, and the rise/fall hysteresis of its active checks.
 *
 * Modelled on Envoy's `HEALTH_FLAG_ENUM_VALUES`: each producer owns exactly one bit (the active
 * checker FAILED_ACTIVE_CHECK and PENDING_FIRST_CHECK, outlier detection EJECTED_OUTLIER, config /
 * admin DRAIN and MAINT), and a backend is eligible when no bit is set. Producers never read or
 * clear each other's bits, so a drained backend that fails its checks and recovers is still
 * drained, and an ejection ending does not make a backend whose checks fail eligible.
 */

export const HealthFlag = {
  /** Active checks failed `fall` times in a row (cleared after `rise` passes). */
  FAILED_ACTIVE_CHECK: 1 << 0,
  /** Ejected by outlier detection (consecutive connect failures seen by the proxy). */
  EJECTED_OUTLIER: 1 << 1,
  /** Administrative drain: no new connections, open ones keep flowing. */
  DRAIN: 1 << 2,
  /** Administrative maintenance: no new connections and no active checks. */
  MAINT: 1 << 3,
  /** Active checks are configured and none has reported yet (initialHealthy: false). */
  PENDING_FIRST_CHECK: 1 << 4,
} as const;
export type HealthFlagBit = (typeof HealthFlag)[keyof typeof HealthFlag];

/** Flags set by an operator (config now, admin API later), as opposed to by observed health. */
export const ADMIN_FLAGS = HealthFlag.DRAIN | HealthFlag.MAINT;

/** Names of the set bits, for logs and stats (`['failed_active_check', 'drain']`). */
export function flagNames(flags: number): string[] {
  const names: string[] = [];
  for (const [name, bit] of Object.entries(HealthFlag)) if ((flags & bit) !== 0) names.push(name.toLowerCase());
  return names;
}

/** Where a backend's active checks stand. */
export type CheckVerdict = 'pending' | 'up' | 'down';

/**
 * Rise/fall hysteresis over active check results (HAProxy `rise`/`fall`): an `up` backend goes
 * `down` after `fall` consecutive failures, a `down` one comes `up` after `rise` consecutive
 * passes; a result that agrees with the verdict resets the opposite streak. A `pending` backend
 * (never checked) is decided by its first result alone, as Envoy does for a new host: a pass makes it
 * `up` at once (waiting `rise` × interval for a backend that was never seen failing would only delay
 * start-up), a failure makes it `down` (from where it needs `rise` passes).
 *
 * `record` returns the new verdict only when it changed, so callers log transitions and nothing else.
 */
export class CheckHysteresis {
  readonly #rise: number;
  readonly #fall: number;
  #verdict: CheckVerdict;
  /** Consecutive results that disagree with the verdict. */
  #streak = 0;

  constructor(rise: number, fall: number, initial: CheckVerdict) {
    if (!Number.isInteger(rise) || rise < 1) throw new RangeError(`rise must be an integer ≥ 1, got ${rise}`);
    if (!Number.isInteger(fall) || fall < 1) throw new RangeError(`fall must be an integer ≥ 1, got ${fall}`);
    this.#rise = rise;
    this.#fall = fall;
    this.#verdict = initial;
  }

  get verdict(): CheckVerdict {
    return this.#verdict;
  }

  /** Feeds one result; returns the new verdict on a transition, otherwise null. */
  record(ok: boolean): CheckVerdict | null {
    if (this.#verdict === 'pending') return this.#become(ok ? 'up' : 'down');
    const agrees = ok === (this.#verdict === 'up');
    if (agrees) {
      this.#streak = 0;
      return null;
    }
    this.#streak += 1;
    const needed = this.#verdict === 'up' ? this.#fall : this.#rise;
    if (this.#streak < needed) return null;
    return this.#become(ok ? 'up' : 'down');
  }

  #become(verdict: CheckVerdict): CheckVerdict {
    this.#verdict = verdict;
    this.#streak = 0;
    return verdict;
  }
}

/** A backend's flag word. `set` reports whether eligibility (no flag set) changed. */
export class BackendHealth {
  #flags: number;

  constructor(initialFlags = 0) {
    this.#flags = initialFlags;
  }

  get flags(): number {
    return this.#flags;
  }

  get eligible(): boolean {
    return this.#flags === 0;
  }

  has(flag: HealthFlagBit): boolean {
    return (this.#flags & flag) !== 0;
  }

  /** Sets or clears one producer's bit; true when the backend's eligibility flipped. */
  set(flag: HealthFlagBit, on: boolean): boolean {
    const before = this.#flags === 0;
    this.#flags = on ? this.#flags | flag : this.#flags & ~flag;
    return before !== (this.#flags === 0);
  }
}
