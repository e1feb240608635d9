/** For PoolHealth tests: a check scheduler that only records what was scheduled; results are fed by hand. */
import type { CheckScheduler } from '../../src/health/pool-health.js';
import type { CheckResult, ScheduledCheck } from '../../src/health/types.js';

export class RecordingScheduler implements CheckScheduler {
  readonly checks = new Map<string, ScheduledCheck>();
  add(check: ScheduledCheck): void {
    this.checks.set(check.key, check);
  }
  remove(key: string): void {
    this.checks.delete(key);
  }
  /** Delivers `result` `times` times to the check of backend `id` in pool `p`. */
  feed(id: string, result: CheckResult, times = 1): void {
    for (let i = 0; i < times; i++) this.checks.get(`p/${id}`)!.onResult(result);
  }
}
