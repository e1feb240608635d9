/**
 * HealthCheckScheduler (src/health/scheduler.ts): timing under node:test MockTimers with a runner
 * the test resolves by hand (first-check spread, interval from the end of the previous check,
 * unhealthy interval, jitter bounds, concurrency cap and FIFO order, remove/stop), then a short run
 * with real timers and real checks over loopback.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { HealthCheckConfig } from '../src/config/types.js';
import {
  DEFAULT_MAX_CONCURRENT_CHECKS,
  FIRST_CHECK_SPREAD_CAP_MS,
  HealthCheckScheduler,
  type CheckRunner,
} from '../src/health/scheduler.js';
import type { CheckResult, CheckTarget, ScheduledCheck } from '../src/health/types.js';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';

function checkConfig(overrides: Partial<HealthCheckConfig> = {}): HealthCheckConfig {
  return {
    type: 'tcp',
    intervalMs: 100,
    timeoutMs: 50,
    jitter: 0,
    rise: 2,
    fall: 3,
    unhealthyIntervalMs: 400,
    port: null,
    send: null,
    expect: null,
    http: null,
    initialHealthy: false,
    ...overrides,
  };
}

const PASS: CheckResult = { ok: true, reason: 'ok', durationMs: 1 };
const FAIL: CheckResult = { ok: false, reason: 'ECONNREFUSED', durationMs: 1 };

/** One call of the fake runner: the test settles it when it wants the check to end. */
interface PendingCheck {
  readonly port: number;
  readonly signal: AbortSignal;
  /** Resolved by the test or by an abort. */
  settled: boolean;
  resolve(result: CheckResult): void;
}

/** A runner whose checks end only when the test says so (aborts end them with 'aborted'). */
class ManualRunner {
  readonly calls: PendingCheck[] = [];
  #running = 0;
  maxRunning = 0;

  readonly run: CheckRunner = (target, _config, signal) =>
    new Promise<CheckResult>((resolve) => {
      this.#running += 1;
      this.maxRunning = Math.max(this.maxRunning, this.#running);
      const call: PendingCheck = {
        port: target.port,
        signal,
        settled: false,
        resolve: (result) => {
          if (call.settled) return;
          call.settled = true;
          this.#running -= 1;
          resolve(result);
        },
      };
      signal.addEventListener('abort', () => call.resolve({ ok: false, reason: 'aborted', durationMs: 0 }), { once: true });
      this.calls.push(call);
    });

  get running(): number {
    return this.#running;
  }

  callsFor(port: number): PendingCheck[] {
    return this.calls.filter((call) => call.port === port);
  }

  last(): PendingCheck {
    const call = this.calls.at(-1);
    assert.ok(call, 'no check has run');
    return call;
  }
}

/** A scheduled check for port `port` that records results and reports `down` as isDown(). */
function scheduled(port: number, config: HealthCheckConfig = checkConfig()) {
  const results: CheckResult[] = [];
  const entry = {
    key: `pool/127.0.0.1:${port}`,
    target: { host: '127.0.0.1', port } satisfies CheckTarget,
    config,
    down: false,
    isDown(): boolean {
      return entry.down;
    },
    onResult(result: CheckResult): void {
      results.push(result);
    },
    results,
  };
  return entry satisfies ScheduledCheck;
}

/** Lets promise callbacks run (the scheduler settles through .then chains); setImmediate is not mocked. */
async function flush(): Promise<void> {
  for (let i = 0; i < 3; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** Mocks setTimeout only; the scheduler uses nothing else. */
function mockTimers(t: TestContext): { tick(ms: number): Promise<void> } {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  return {
    async tick(ms: number) {
      t.mock.timers.tick(ms);
      await flush();
    },
  };
}

describe('HealthCheckScheduler timing (mock timers)', () => {
  it('runs the first check after random × min(intervalMs, 1 s)', async (t) => {
    const clock = mockTimers(t);
    const runner = new ManualRunner();
    const scheduler = new HealthCheckScheduler({ run: runner.run, random: () => 0.5 });
    scheduler.add(scheduled(1, checkConfig({ intervalMs: 400 })));
    scheduler.add(scheduled(2, checkConfig({ intervalMs: 60_000 })));
    await clock.tick(199);
    assert.equal(runner.calls.length, 0);
    await clock.tick(1);
    assert.deepEqual(runner.calls.map((call) => call.port), [1]);
    // A long interval is capped: the first check is at most FIRST_CHECK_SPREAD_CAP_MS away.
    await clock.tick(FIRST_CHECK_SPREAD_CAP_MS / 2 - 200 - 1);
    assert.equal(runner.calls.length, 1);
    await clock.tick(1);
    assert.deepEqual(runner.calls.map((call) => call.port), [1, 2]);
    scheduler.stop();
  });

  it('measures the interval from the end of the previous check, so checks of one key never overlap', async (t) => {
    const clock = mockTimers(t);
    const runner = new ManualRunner();
    const scheduler = new HealthCheckScheduler({ run: runner.run, random: () => 0 });
    const check = scheduled(1);
    scheduler.add(check);
    await clock.tick(0);
    assert.equal(runner.calls.length, 1);
    // The check takes 10 intervals: nothing else starts meanwhile.
    await clock.tick(1000);
    assert.equal(runner.calls.length, 1);
    runner.last().resolve(PASS);
    await flush();
    assert.deepEqual(check.results, [PASS]);
    await clock.tick(99);
    assert.equal(runner.calls.length, 1);
    await clock.tick(1);
    assert.equal(runner.calls.length, 2);
    runner.last().resolve(FAIL);
    await flush();
    assert.deepEqual(check.results, [PASS, FAIL], 'every result, in order');
    assert.equal(runner.maxRunning, 1);
    scheduler.stop();
  });

  it('uses unhealthyIntervalMs while isDown() is true, intervalMs again once it is false', async (t) => {
    const clock = mockTimers(t);
    const runner = new ManualRunner();
    const scheduler = new HealthCheckScheduler({ run: runner.run, random: () => 0 });
    const check = scheduled(1, checkConfig({ intervalMs: 100, unhealthyIntervalMs: 400 }));
    scheduler.add(check);
    await clock.tick(0);
    check.down = true;
    runner.last().resolve(FAIL);
    await flush();
    await clock.tick(399);
    assert.equal(runner.calls.length, 1, 'not at intervalMs while down');
    await clock.tick(1);
    assert.equal(runner.calls.length, 2, 'at unhealthyIntervalMs');
    check.down = false;
    runner.last().resolve(PASS);
    await flush();
    await clock.tick(99);
    assert.equal(runner.calls.length, 2);
    await clock.tick(1);
    assert.equal(runner.calls.length, 3, 'back to intervalMs once up');
    scheduler.stop();
  });

  it('asks isDown() after onResult, so the result that marks a backend down already sets the next interval', async (t) => {
    const clock = mockTimers(t);
    const runner = new ManualRunner();
    const scheduler = new HealthCheckScheduler({ run: runner.run, random: () => 0 });
    const check = scheduled(1, checkConfig({ intervalMs: 100, unhealthyIntervalMs: 400 }));
    // The health owner's hysteresis flips inside onResult; isDown() must see the new verdict.
    check.onResult = (result) => {
      check.results.push(result);
      check.down = !result.ok;
    };
    scheduler.add(check);
    await clock.tick(0);
    runner.last().resolve(FAIL);
    await flush();
    await clock.tick(100);
    assert.equal(runner.calls.length, 1, 'the down interval applies at once');
    await clock.tick(300);
    assert.equal(runner.calls.length, 2);
    scheduler.stop();
  });

  it('jitter: interval × (1 + jitter × (2r − 1)), within interval ± jitter × interval', async (t) => {
    const clock = mockTimers(t);
    const runner = new ManualRunner();
    // r for the first-check spread, then one r per interval: 0 → −10 %, 0.5 → 0, 0.999 → ≈ +10 %.
    const draws = [0, 0, 0.5, 0.999, 0.25];
    const scheduler = new HealthCheckScheduler({ run: runner.run, random: () => draws.shift() ?? 0.5 });
    scheduler.add(scheduled(1, checkConfig({ intervalMs: 1000, jitter: 0.1 })));
    await clock.tick(0);
    for (const expectedMs of [900, 1000, 1100, 950]) {
      runner.last().resolve(PASS);
      await flush();
      const before = runner.calls.length;
      await clock.tick(expectedMs - 1);
      assert.equal(runner.calls.length, before, `not before ${expectedMs} ms`);
      await clock.tick(1);
      assert.equal(runner.calls.length, before + 1, `at ${expectedMs} ms`);
    }
    scheduler.stop();
  });

  it('with Math.random, 200 jittered intervals all fall within ±jitter', async (t) => {
    const clock = mockTimers(t);
    const runner = new ManualRunner();
    const scheduler = new HealthCheckScheduler({ run: runner.run });
    const jitter = 0.2;
    // Bounds of interval × (1 + jitter × (2r − 1)) rounded to whole ms: [80, 120].
    const lowMs = 80;
    const highMs = 120;
    scheduler.add(scheduled(1, checkConfig({ intervalMs: 100, jitter })));
    await clock.tick(100); // the first check is due within [0, 100)
    assert.equal(runner.calls.length, 1);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i += 1) {
      runner.last().resolve(PASS);
      await flush();
      // Step to just below the lower bound, then 1 ms at a time up to the upper bound.
      const callsBefore: number = runner.calls.length;
      await clock.tick(lowMs - 1);
      assert.equal(runner.calls.length, callsBefore, `not before ${lowMs} ms`);
      let waited = lowMs - 1;
      while (runner.calls.length === callsBefore) {
        assert.ok(waited < highMs, `no check within ${highMs} ms`);
        await clock.tick(1);
        waited += 1;
      }
      seen.add(waited);
    }
    // Statistical sanity: 200 uniform draws over 41 possible values cover most of them.
    assert.ok(seen.size > 20, `only ${seen.size} distinct intervals`);
    scheduler.stop();
  });

  it('caps checks in flight; due checks wait in FIFO order and then run', async (t) => {
    const clock = mockTimers(t);
    const runner = new ManualRunner();
    const scheduler = new HealthCheckScheduler({ run: runner.run, random: () => 0, maxConcurrent: 3 });
    for (let port = 1; port <= 10; port += 1) scheduler.add(scheduled(port));
    await clock.tick(0);
    assert.deepEqual(runner.calls.map((call) => call.port), [1, 2, 3]);
    assert.equal(scheduler.inFlight, 3);
    assert.equal(scheduler.queued, 7);
    runner.callsFor(2)[0]!.resolve(PASS);
    await flush();
    assert.deepEqual(runner.calls.map((call) => call.port), [1, 2, 3, 4], 'the oldest waiting check takes the slot');
    // Run several rounds, ending checks in a scrambled order: the cap holds throughout and every
    // key keeps being checked.
    for (let round = 0; round < 50; round += 1) {
      const running = runner.calls.filter((call) => !call.settled);
      assert.equal(running.length, scheduler.inFlight);
      running[round % running.length]!.resolve(round % 3 === 0 ? FAIL : PASS);
      await clock.tick(100);
      assert.ok(scheduler.inFlight <= 3, `inFlight ${scheduler.inFlight}`);
    }
    assert.equal(runner.maxRunning, 3);
    for (let port = 1; port <= 10; port += 1) assert.ok(runner.callsFor(port).length >= 1, `port ${port} was checked`);
    scheduler.stop();
  });

  it('remove(): drops an in-flight result (aborting it), cancels the timer, and skips a queued check', async (t) => {
    const clock = mockTimers(t);
    const runner = new ManualRunner();
    const scheduler = new HealthCheckScheduler({ run: runner.run, random: () => 0, maxConcurrent: 1 });
    const running = scheduled(1);
    const queued = scheduled(2);
    const waiting = scheduled(3, checkConfig({ intervalMs: 100 }));
    scheduler.add(running);
    scheduler.add(queued);
    await clock.tick(0);
    assert.equal(scheduler.queued, 1);

    scheduler.remove(running.key);
    assert.equal(runner.callsFor(1)[0]!.signal.aborted, true, 'the in-flight check is aborted');
    runner.callsFor(1)[0]!.resolve(PASS);
    scheduler.remove(queued.key);
    await flush();
    assert.deepEqual(running.results, [], 'result of a removed key is dropped');
    assert.equal(runner.callsFor(2).length, 0, 'a removed queued check never runs');
    assert.equal(scheduler.size, 0);
    assert.equal(scheduler.inFlight, 0);

    scheduler.add(waiting);
    scheduler.remove(waiting.key);
    scheduler.remove('no/such-key');
    await clock.tick(10_000);
    assert.equal(runner.calls.length, 1, 'nothing runs after removal');

    // The same key can be scheduled again.
    scheduler.add(running);
    await clock.tick(0);
    assert.equal(runner.callsFor(1).length, 2);
    scheduler.stop();
  });

  it('stop(): aborts checks in flight, cancels every timer, refuses add; idle() resolves', async (t) => {
    const clock = mockTimers(t);
    const runner = new ManualRunner();
    const scheduler = new HealthCheckScheduler({ run: runner.run, random: () => 0, maxConcurrent: 2 });
    const checks = [1, 2, 3, 4].map((port) => scheduled(port));
    for (const check of checks) scheduler.add(check);
    await clock.tick(0);
    assert.equal(scheduler.inFlight, 2);
    scheduler.stop();
    assert.ok(runner.calls.every((call) => call.signal.aborted));
    await scheduler.idle();
    assert.equal(scheduler.inFlight, 0);
    assert.equal(scheduler.size, 0);
    await clock.tick(10_000);
    assert.equal(runner.calls.length, 2, 'nothing runs after stop');
    assert.ok(checks.every((check) => check.results.length === 0), 'aborted results are dropped');
    assert.throws(() => scheduler.add(scheduled(5)), /after stop\(\)/);
  });

  it('a runner that throws or rejects counts as a failed check and the schedule goes on', async (t) => {
    const clock = mockTimers(t);
    let calls = 0;
    const run: CheckRunner = () => {
      calls += 1;
      if (calls === 1) throw new Error('boom');
      return Promise.reject(new Error('bang'));
    };
    const scheduler = new HealthCheckScheduler({ run, random: () => 0 });
    const check = scheduled(1);
    scheduler.add(check);
    await clock.tick(0);
    await clock.tick(100);
    assert.deepEqual(
      check.results.map((result) => [result.ok, result.reason]),
      [
        [false, 'boom'],
        [false, 'bang'],
      ],
    );
    scheduler.stop();
  });
});

describe('HealthCheckScheduler contract', () => {
  it('rejects duplicate keys and a bad maxConcurrent', () => {
    const scheduler = new HealthCheckScheduler({ run: () => Promise.resolve(PASS) });
    scheduler.add(scheduled(1));
    assert.throws(() => scheduler.add(scheduled(1)), /key "pool\/127\.0\.0\.1:1" is already scheduled/);
    assert.equal(scheduler.size, 1);
    scheduler.stop();
    assert.throws(() => new HealthCheckScheduler({ maxConcurrent: 0 }), /maxConcurrent must be an integer ≥ 1/);
    assert.throws(() => new HealthCheckScheduler({ maxConcurrent: 1.5 }), RangeError);
    assert.equal(DEFAULT_MAX_CONCURRENT_CHECKS, 32);
  });

  it('its timers never keep the process alive (unref)', () => {
    const timersBefore = process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    const scheduler = new HealthCheckScheduler({ run: () => Promise.resolve(PASS), random: () => 0.99 });
    for (let port = 1; port <= 5; port += 1) scheduler.add(scheduled(port, checkConfig({ intervalMs: 60_000 })));
    const timersAfter = process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    assert.equal(timersAfter, timersBefore, 'getActiveResourcesInfo() lists only ref()ed timers');
    scheduler.stop();
  });
});

/** Rejects with a clear message if `promise` does not settle within `ms` (real timers). */
async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once the backend has no connection open (checked after each turn of the event loop). */
async function untilNoConnection(backend: NamedBackend): Promise<void> {
  while (backend.open() > 0) await new Promise((resolve) => setImmediate(resolve));
}

describe('HealthCheckScheduler with real checks (real timers, loopback)', () => {
  it('checks a live and a dead backend repeatedly with their own reasons, and leaves no socket open', async () => {
    const backend = await startNamedBackend('scheduled', { greet: false });
    const dead = await closedPort();
    const scheduler = new HealthCheckScheduler({ maxConcurrent: 1 });
    try {
      const config = checkConfig({ intervalMs: 10, unhealthyIntervalMs: 20, timeoutMs: 500 });
      const live = scheduled(backend.port, config);
      const down = scheduled(dead, config);
      down.down = true;
      const enough = 5;
      let resolveDone!: () => void;
      const done = new Promise<void>((resolve) => {
        resolveDone = resolve;
      });
      for (const check of [live, down]) {
        const record = check.onResult.bind(check);
        check.onResult = (result) => {
          record(result);
          if (live.results.length >= enough && down.results.length >= enough) resolveDone();
        };
        scheduler.add(check);
      }
      await withDeadline(done, 5000, `${enough} results per backend`);
      scheduler.stop();
      await scheduler.idle();
      await withDeadline(untilNoConnection(backend), 2000, 'the backend to see every check connection closed');
      assert.ok(live.results.every((result) => result.ok && result.reason === 'ok'));
      assert.ok(down.results.every((result) => !result.ok && result.reason === 'ECONNREFUSED'));
      assert.ok(backend.accepted() >= enough);
    } finally {
      scheduler.stop();
      await backend.close();
    }
  });
});
