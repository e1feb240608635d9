/**
 * The health state machine without sockets: rise/fall hysteresis, one bit per cause, outlier
 * ejection and its cap, panic, slow start — driven by hand-fed check results and mocked timers
 * (t.mock.timers), against the reference balancer.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { createBalancer } from '../src/core/index.js';
import type { Balancer } from '../src/core/types.js';
import type { Backend } from '../src/backend.js';
import type { HealthCheckConfig, PoolConfig } from '../src/config/types.js';
import { BackendHealth, CheckHysteresis, HealthFlag } from '../src/health/backend-health.js';
import { OutlierDetector } from '../src/health/outlier.js';
import { PoolHealth, SLOW_START_INITIAL_PERMILLE } from '../src/health/pool-health.js';
import type { CheckResult } from '../src/health/types.js';
import { LogCapture } from './helpers/log-capture.js';
import { RecordingScheduler } from './helpers/recording-scheduler.js';

const PASS: CheckResult = { ok: true, reason: 'ok', durationMs: 1 };
const REFUSED: CheckResult = { ok: false, reason: 'ECONNREFUSED', durationMs: 1 };

describe('CheckHysteresis', () => {
  test('up → down only after `fall` consecutive failures; a pass resets the streak', () => {
    const h = new CheckHysteresis(2, 3, 'up');
    assert.deepEqual([false, false, true, false, false].map((ok) => h.record(ok)), [null, null, null, null, null]);
    assert.equal(h.record(false), 'down');
    assert.equal(h.verdict, 'down');
    assert.equal(h.record(false), null, 'only transitions are reported');
  });

  test('down → up only after `rise` consecutive passes; a failure resets the streak', () => {
    const h = new CheckHysteresis(2, 3, 'down');
    assert.deepEqual([true, false, true].map((ok) => h.record(ok)), [null, null, null]);
    assert.equal(h.record(true), 'up');
    assert.equal(h.record(true), null);
  });

  test('pending is decided by the first result alone', () => {
    const up = new CheckHysteresis(5, 5, 'pending');
    assert.equal(up.record(true), 'up');
    const down = new CheckHysteresis(5, 5, 'pending');
    assert.equal(down.record(false), 'down');
    assert.equal(down.record(true), null, 'from down it needs rise passes');
  });

  test('rejects rise/fall below 1', () => {
    assert.throws(() => new CheckHysteresis(0, 1, 'up'), /rise must be an integer/);
    assert.throws(() => new CheckHysteresis(1, 1.5, 'up'), /fall must be an integer/);
  });
});

describe('BackendHealth', () => {
  test('flags are independent; eligible iff none is set; set reports eligibility flips only', () => {
    const health = new BackendHealth();
    assert.equal(health.set(HealthFlag.DRAIN, true), true);
    assert.equal(health.set(HealthFlag.FAILED_ACTIVE_CHECK, true), false, 'already ineligible');
    assert.equal(health.set(HealthFlag.DRAIN, false), false, 'still failing its checks');
    assert.equal(health.has(HealthFlag.FAILED_ACTIVE_CHECK), true);
    assert.equal(health.set(HealthFlag.FAILED_ACTIVE_CHECK, false), true);
    assert.equal(health.eligible, true);
    assert.equal(health.set(HealthFlag.EJECTED_OUTLIER, false), false, 'clearing a clear bit changes nothing');
  });
});

describe('OutlierDetector', () => {
  function detector(t: TestContext, poolSize: number, maxEjectionPercent = 50) {
    t.mock.timers.reset(); // a test may build two detectors
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let now = 0;
    const events: string[] = [];
    const outlier = new OutlierDetector({
      config: { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 2500, maxEjectionPercent },
      capacity: 8,
      poolSize: () => poolSize,
      now: () => now,
      events: {
        ejected: (slot, ms, failures, count) => events.push(`eject ${slot} ${ms}ms after ${failures} (#${count})`),
        returned: (slot, by) => events.push(`return ${slot} by ${by}`),
      },
    });
    const advance = (ms: number): void => {
      now += ms;
      t.mock.timers.tick(ms);
    };
    return { outlier, events, advance };
  }

  test('N consecutive failures eject; a success in between resets the count', (t) => {
    const { outlier, events } = detector(t, 4);
    outlier.reportFailure(0);
    outlier.reportFailure(0);
    outlier.reportSuccess(0);
    outlier.reportFailure(0);
    outlier.reportFailure(0);
    assert.deepEqual(events, []);
    outlier.reportFailure(0);
    assert.deepEqual(events, ['eject 0 1000ms after 3 (#1)']);
    outlier.reportFailure(0);
    assert.equal(events.length, 1, 'failures while ejected neither extend nor count');
    outlier.stop();
  });

  test('ejection time = base × times ejected, capped; ends by timer or by an active check', (t) => {
    const { outlier, events, advance } = detector(t, 4);
    const fail3 = (): void => [0, 1, 2].forEach(() => outlier.reportFailure(0));
    fail3();
    advance(999);
    assert.equal(outlier.isEjected(0), true);
    advance(1);
    assert.equal(outlier.isEjected(0), false);
    fail3();
    outlier.endEjection(0);
    fail3();
    assert.deepEqual(events, [
      'eject 0 1000ms after 3 (#1)',
      'return 0 by timer',
      'eject 0 2000ms after 3 (#2)',
      'return 0 by active_check',
      'eject 0 2500ms after 3 (#3)',
    ]);
    outlier.stop();
  });

  test('the multiplier decays after maxEjectionMs without an ejection', (t) => {
    const { outlier, events, advance } = detector(t, 4);
    const fail3 = (): void => [0, 1, 2].forEach(() => outlier.reportFailure(0));
    fail3();
    advance(1000);
    advance(2500);
    fail3();
    assert.equal(events.at(-1), 'eject 0 1000ms after 3 (#1)');
    outlier.stop();
  });

  test('maxEjectionPercent caps ejections (rounded down, but one may always be ejected); 0 never ejects', (t) => {
    const { outlier, events } = detector(t, 3, 50);
    assert.equal(outlier.maxEjected(), 1);
    for (const slot of [0, 1]) for (let i = 0; i < 3; i++) outlier.reportFailure(slot);
    assert.deepEqual(events, ['eject 0 1000ms after 3 (#1)']);
    outlier.endEjection(0);
    outlier.reportFailure(1);
    assert.equal(events.at(-1), 'eject 1 1000ms after 4 (#1)', 'ejected at its next failure once the cap frees');
    outlier.stop();
    const none = detector(t, 3, 0);
    for (let i = 0; i < 5; i++) none.outlier.reportFailure(0);
    assert.deepEqual(none.events, []);
  });
});

// --- PoolHealth ---------------------------------------------------------------------------------

function backend(id: string, state: Backend['state'] = 'active', weight = 1): Backend {
  return { id, address: { host: '127.0.0.1', port: 1, text: id }, weight, state };
}

const TCP_CHECK: HealthCheckConfig = {
  type: 'tcp', intervalMs: 100, timeoutMs: 50, jitter: 0, rise: 2, fall: 2, unhealthyIntervalMs: 100,
  port: null, send: null, expect: null, http: null, initialHealthy: false,
};

function poolConfig(backends: Backend[], extra: Partial<PoolConfig> = {}): PoolConfig {
  return {
    name: 'p', balance: 'round_robin', hashKey: 'source_ip', connectTimeoutMs: 100, retries: 2,
    ringHash: { pointsPerWeight: 160 }, maglev: { tableSize: 65537 }, backends,
    healthCheck: TCP_CHECK,
    outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 10000, maxEjectionPercent: 50 },
    panicThreshold: 0, slowStartMs: 0, resolveIntervalMs: 0,
    ...extra,
  };
}

interface Harness {
  readonly health: PoolHealth;
  readonly balancer: Balancer;
  readonly scheduler: RecordingScheduler;
  readonly logs: Array<{ level: string; msg: string; id?: string; reason?: string }>;
  eligible(): string[];
  advance(ms: number): void;
}

function harness(t: TestContext, config: PoolConfig): Harness {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  let now = 0;
  const capture = new LogCapture();
  const logs = capture.lines as Harness['logs'];
  const logger = capture.logger('debug');
  const balancer = createBalancer({ policy: config.balance, maxBackends: 16, randomSeed: 1 }, 'reference');
  const health = new PoolHealth({ config, balancer, capacity: 16, logger, now: () => now });
  const report = balancer.setBackends(config.backends.map((b) => ({ id: b.id, weight: b.weight })));
  health.setBackends(config.backends.map((b) => ({ slot: report.slots.get(b.id)!, backend: b })));
  const scheduler = new RecordingScheduler();
  health.startChecks(scheduler);
  t.after(() => health.stop());
  return {
    health,
    balancer,
    scheduler,
    logs,
    eligible: () => config.backends.filter((b) => balancer.isEligible(balancer.slotOf(b.id))).map((b) => b.id),
    advance: (ms) => {
      now += ms;
      t.mock.timers.tick(ms);
    },
  };
}

const messages = (h: Harness): string[] => h.logs.filter((l) => l.level !== 'debug').map((l) => `${l.level} ${l.msg}${l.id ? ` ${l.id}` : ''}${l.reason ? ` (${l.reason})` : ''}`);

describe('PoolHealth', () => {
  test('pending backends take no traffic until their first pass; maint is never checked; drain is checked but not eligible', (t) => {
    const h = harness(t, poolConfig([backend('a'), backend('b', 'drain'), backend('m', 'maint')]));
    assert.deepEqual([...h.scheduler.checks.keys()], ['p/a', 'p/b']);
    assert.deepEqual(h.eligible(), []);
    h.scheduler.feed('a', PASS);
    h.scheduler.feed('b', PASS);
    assert.deepEqual(h.eligible(), ['a']);
    assert.deepEqual(h.health.stats().flags, { a: [], b: ['drain'], m: ['maint'] });
  });

  test('rise/fall over real results, only transitions logged with the reason', (t) => {
    const h = harness(t, poolConfig([backend('a'), backend('b')]));
    h.scheduler.feed('a', PASS, 3);
    h.scheduler.feed('b', PASS);
    h.scheduler.feed('a', REFUSED);
    assert.deepEqual(h.eligible(), ['a', 'b'], 'one failure is below fall = 2');
    h.scheduler.feed('a', REFUSED, 3);
    assert.deepEqual(h.eligible(), ['b']);
    h.scheduler.feed('a', PASS);
    assert.deepEqual(h.eligible(), ['b'], 'one pass is below rise = 2');
    h.scheduler.feed('a', PASS, 4);
    assert.deepEqual(h.eligible(), ['a', 'b']);
    assert.deepEqual(messages(h), [
      'info backend up a (ok)',
      'info backend up b (ok)',
      'warn backend down a (ECONNREFUSED)',
      'info backend up a (ok)',
    ]);
    assert.equal(h.scheduler.checks.get('p/a')!.isDown(), false);
  });

  test('all down: one warn for the pool, one info when a backend returns', (t) => {
    const h = harness(t, poolConfig([backend('a'), backend('b')], { healthCheck: { ...TCP_CHECK, initialHealthy: true } }));
    assert.deepEqual(h.eligible(), ['a', 'b']);
    h.scheduler.feed('a', REFUSED, 2);
    h.scheduler.feed('b', REFUSED, 5);
    assert.equal(h.balancer.pick(0), -1);
    h.scheduler.feed('b', PASS, 2);
    assert.deepEqual(messages(h), [
      'warn backend down a (ECONNREFUSED)',
      'warn backend down b (ECONNREFUSED)',
      // Two facts: no backend is healthy (health), and none takes connections (routing; panic is off).
      'warn pool has no healthy backend',
      'warn pool has no routable backend: new connections fail',
      'info backend up b (ok)',
      'info pool has healthy backends again',
      'info pool has routable backends again',
    ]);
  });

  test('outlier ejection flips eligibility; a passing active check ends it; flags stay independent', (t) => {
    const h = harness(t, poolConfig([backend('a'), backend('b'), backend('c'), backend('d')]));
    for (const id of ['a', 'b', 'c', 'd']) h.scheduler.feed(id, PASS);
    const slotA = h.balancer.slotOf('a');
    for (let i = 0; i < 3; i++) h.health.reportConnectFailure(slotA, 'refused');
    assert.deepEqual(h.eligible(), ['b', 'c', 'd']);
    assert.deepEqual(h.health.stats().flags.a, ['ejected_outlier']);
    h.scheduler.feed('a', REFUSED, 2); // active check fails too: two bits
    h.scheduler.feed('a', PASS); // ends the ejection, but the active-check bit stays until rise
    assert.deepEqual(h.health.stats().flags.a, ['failed_active_check']);
    assert.deepEqual(h.eligible(), ['b', 'c', 'd']);
    h.scheduler.feed('a', PASS);
    assert.deepEqual(h.eligible(), ['a', 'b', 'c', 'd']);
  });

  test('panic: below the threshold every active backend is used (drain/maint never); leaves panic on recovery', (t) => {
    const config = poolConfig([backend('a'), backend('b'), backend('c'), backend('d'), backend('x', 'drain')], {
      panicThreshold: 0.5,
      healthCheck: { ...TCP_CHECK, initialHealthy: true, fall: 1, rise: 1 },
    });
    const h = harness(t, config);
    h.scheduler.feed('a', REFUSED);
    assert.equal(h.health.panic, false, '3 of 4 is above 0.5');
    h.scheduler.feed('b', REFUSED);
    assert.equal(h.health.panic, false, '2 of 4 is not below 0.5');
    h.scheduler.feed('c', REFUSED);
    assert.equal(h.health.panic, true);
    assert.deepEqual(h.eligible(), ['a', 'b', 'c', 'd']);
    h.scheduler.feed('c', PASS);
    assert.equal(h.health.panic, false);
    assert.deepEqual(h.eligible(), ['c', 'd']);
    assert.equal(h.health.stats().panicsEntered, 1);
    assert.equal(messages(h).filter((m) => m.includes('panic')).length, 2);
  });

  test('panic threshold 0: only healthy backends', (t) => {
    const h = harness(t, poolConfig([backend('a'), backend('b'), backend('c'), backend('d')], {
      panicThreshold: 0,
      healthCheck: { ...TCP_CHECK, initialHealthy: true, fall: 1 },
    }));
    for (const id of ['a', 'b', 'c']) h.scheduler.feed(id, REFUSED);
    assert.deepEqual(h.eligible(), ['d']);
  });

  test('pending backends are outside the panic base: start-up is not a panic', (t) => {
    const h = harness(t, poolConfig([backend('a'), backend('b'), backend('c')], { panicThreshold: 0.5 }));
    assert.equal(h.health.panic, false);
    h.scheduler.feed('a', PASS);
    assert.equal(h.health.panic, false, '1 of 1 known backends is healthy');
    h.scheduler.feed('b', REFUSED);
    h.scheduler.feed('c', REFUSED);
    assert.equal(h.health.panic, true, '1 of 3 known');
  });

  test('slow start ramps a recovered backend 10% → 100% on a timer; not at process start', (t) => {
    const h = harness(t, poolConfig([backend('a'), backend('b')], {
      slowStartMs: 1000,
      healthCheck: { ...TCP_CHECK, fall: 1, rise: 1 },
    }));
    const slotA = h.balancer.slotOf('a');
    h.scheduler.feed('a', PASS);
    h.scheduler.feed('b', PASS);
    assert.equal(h.balancer.weightScale(slotA), 1000, 'first eligibility at start: no ramp');
    h.scheduler.feed('a', REFUSED);
    h.scheduler.feed('a', PASS);
    assert.equal(h.balancer.weightScale(slotA), SLOW_START_INITIAL_PERMILLE);
    const seen: number[] = [];
    for (let i = 0; i < 21; i++) {
      h.advance(50);
      seen.push(h.balancer.weightScale(slotA));
    }
    assert.deepEqual(seen.slice(0, 4), [145, 190, 235, 280]);
    assert.equal(seen.at(-1), 1000);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!);
  });
});
