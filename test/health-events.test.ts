/**
 * What the health owner publishes, driven by hand-fed check results and reported connect failures
 * (as test/health-state.test.ts does) into a real EventBus: only news (pending → up is start-up, not
 * news; pending → down is), one `down` per outage whatever its causes, `up` only when every observed
 * failure cleared, panic entered and left, and every event published after the eligibility bit it
 * reports was written.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import type { Backend } from '../src/backend.js';
import { createBalancer } from '../src/core/index.js';
import type { HealthCheckConfig, PoolConfig } from '../src/config/types.js';
import { EventBus } from '../src/events/bus.js';
import type { RinglbEvent } from '../src/events/types.js';
import { PoolHealth } from '../src/health/pool-health.js';
import type { CheckResult } from '../src/health/types.js';
import { LogCapture } from './helpers/log-capture.js';
import { RecordingScheduler } from './helpers/recording-scheduler.js';

const PASS: CheckResult = { ok: true, reason: 'ok', durationMs: 1 };
const REFUSED: CheckResult = { ok: false, reason: 'ECONNREFUSED', durationMs: 1 };

const CHECK: HealthCheckConfig = {
  type: 'tcp', intervalMs: 100, timeoutMs: 50, jitter: 0, rise: 2, fall: 2, unhealthyIntervalMs: 100,
  port: null, send: null, expect: null, http: null, initialHealthy: false,
};

function backend(id: string): Backend {
  return { id, address: { host: '127.0.0.1', port: 1, text: `127.0.0.1:${id}` }, weight: 1, state: 'active' };
}

function poolConfig(ids: string[], extra: Partial<PoolConfig> = {}): PoolConfig {
  return {
    name: 'p', balance: 'round_robin', hashKey: 'source_ip', connectTimeoutMs: 100, retries: 2,
    ringHash: { pointsPerWeight: 160 }, maglev: { tableSize: 65537 }, backends: ids.map(backend),
    healthCheck: CHECK,
    outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 1000, maxEjectionMs: 10000, maxEjectionPercent: 100 },
    panicThreshold: 0, slowStartMs: 0, resolveIntervalMs: 0,
    ...extra,
  };
}

function harness(t: TestContext, config: PoolConfig) {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  const logger = new LogCapture().logger('debug');
  const balancer = createBalancer({ policy: config.balance, maxBackends: 16, randomSeed: 1 }, 'reference');
  const bus = new EventBus({ logger });
  const events: RinglbEvent[] = [];
  /** Each event with whether its backend was routable when it was published. */
  const routableAtPublish: boolean[] = [];
  bus.subscribe(({ event }) => {
    events.push(event);
    routableAtPublish.push(event.backend === undefined ? true : balancer.isEligible(balancer.slotOf(event.backend)));
  });
  const health = new PoolHealth({ config, balancer, capacity: 16, logger, events: bus });
  const report = balancer.setBackends(config.backends.map((b) => ({ id: b.id, weight: b.weight })));
  health.setBackends(config.backends.map((b) => ({ slot: report.slots.get(b.id)!, backend: b })));
  const scheduler = new RecordingScheduler();
  health.startChecks(scheduler);
  t.after(() => health.stop());
  const slot = (id: string) => report.slots.get(id)!;
  return {
    health,
    scheduler,
    events,
    routableAtPublish,
    slot,
    /** `type backend cause` per event. */
    news: () => events.map((e) => [e.type, e.backend, e.cause].filter((x) => x !== undefined).join(' ')),
    advance: (ms: number) => t.mock.timers.tick(ms),
  };
}

describe('health events', () => {
  test('start-up is not news: pending → up publishes nothing, pending → down publishes `down`', (t) => {
    const h = harness(t, poolConfig(['a', 'b']));
    h.scheduler.feed('a', PASS);
    h.scheduler.feed('b', REFUSED);
    assert.deepEqual(h.news(), ['down b failed_active_check']);
    assert.equal(h.events[0]!.message, 'ECONNREFUSED');
    assert.equal(h.events[0]!.source, 'health');
    h.scheduler.feed('b', PASS, 2);
    assert.deepEqual(h.news(), ['down b failed_active_check', 'up b failed_active_check']);
  });

  test('one outage is one `down` whatever its causes; `up` only when checks pass and the ejection ended', (t) => {
    const h = harness(t, poolConfig(['a', 'b']));
    h.scheduler.feed('a', PASS);
    h.scheduler.feed('b', PASS);
    // Passive failures eject b first; then its checks fail too: still one down.
    h.health.reportConnectFailure(h.slot('b'), 'refused');
    h.health.reportConnectFailure(h.slot('b'), 'refused');
    h.scheduler.feed('b', REFUSED, 5);
    assert.deepEqual(h.news(), ['ejected b consecutive_connect_failures', 'down b ejected_outlier']);
    const ejected = h.events[0]!;
    assert.equal(ejected.source, 'outlier');
    assert.ok(Date.parse(ejected.until!) > Date.now() - 1, 'until is a time');
    // The ejection ends by its timer while checks still fail: unejected, but not up.
    h.advance(1000);
    assert.deepEqual(h.news().slice(2), ['unejected b timer']);
    // Checks pass `rise` times: up.
    h.scheduler.feed('b', PASS, 2);
    assert.deepEqual(h.news().slice(2), ['unejected b timer', 'up b failed_active_check']);
    assert.equal(h.events.filter((e) => e.type === 'down').length, 1);
  });

  test('a `down` is published after the backend stopped being routable; an `up` once it is routable again', (t) => {
    const h = harness(t, poolConfig(['a', 'b']));
    h.scheduler.feed('a', PASS);
    h.scheduler.feed('b', PASS);
    h.scheduler.feed('b', REFUSED, 2);
    h.scheduler.feed('b', PASS, 2);
    assert.deepEqual(h.news(), ['down b failed_active_check', 'up b failed_active_check']);
    assert.deepEqual(h.routableAtPublish, [false, true]);
  });

  test('panic entered and left are news of the pool, after the down that caused them', (t) => {
    const h = harness(t, poolConfig(['a', 'b', 'c', 'd'], { panicThreshold: 0.5 }));
    for (const id of ['a', 'b', 'c', 'd']) h.scheduler.feed(id, PASS);
    h.scheduler.feed('a', REFUSED, 2);
    h.scheduler.feed('b', REFUSED, 2);
    h.scheduler.feed('c', REFUSED, 2);
    assert.deepEqual(h.news(), ['down a failed_active_check', 'down b failed_active_check', 'down c failed_active_check', 'panic_entered']);
    assert.equal(h.events[3]!.pool, 'p');
    assert.match(h.events[3]!.message!, /1 of 4 active backends healthy/);
    h.scheduler.feed('c', PASS, 2);
    assert.deepEqual(h.news().slice(4), ['up c failed_active_check', 'panic_left']);
  });
});
