import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { parseHostPort } from '../src/config/host-port.js';
import type { Backend, HostPort } from '../src/backend.js';
import { MIN_SWEEP_INTERVAL_MS, RegistrationStore } from '../src/discovery/registration-store.js';

function address(text: string): HostPort {
  const parsed = parseHostPort(text, { purpose: 'connect' });
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed;
}

interface Emitted {
  readonly pool: string;
  /** `id@address*weight` per backend, in emitted order. */
  readonly set: string[];
}

/** A store on mocked time (setTimeout and Date, starting at 0) that records every emit. */
function storeOnMockedTime(t: TestContext, options: { maxEntriesPerPool?: number; batchMs?: number } = {}) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  const store = new RegistrationStore({ now: () => Date.now(), ...options });
  t.after(() => store.close());
  const emitted: Emitted[] = [];
  store.onChange((pool, backends: readonly Backend[]) => {
    emitted.push({ pool, set: backends.map((b) => `${b.id}@${b.address.text}*${b.weight}`) });
  });
  return { store, emitted };
}

describe('RegistrationStore', () => {
  test('register creates, emits the full sorted set; a same-value renewal emits nothing', (t) => {
    const { store, emitted } = storeOnMockedTime(t);
    store.addPool('app');
    assert.deepEqual(store.register('app', 'b', { address: address('127.0.0.1:9002'), weight: 1, ttlMs: 1000 }), {
      ok: true,
      outcome: 'created',
    });
    assert.deepEqual(store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 2, ttlMs: 1000 }), {
      ok: true,
      outcome: 'created',
    });
    assert.deepEqual(emitted, [
      { pool: 'app', set: ['b@127.0.0.1:9002*1'] },
      { pool: 'app', set: ['a@127.0.0.1:9001*2', 'b@127.0.0.1:9002*1'] },
    ]);
    const renewed = store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 2, ttlMs: 1000 });
    assert.deepEqual(renewed, { ok: true, outcome: 'renewed' });
    assert.equal(emitted.length, 2, 'a heartbeat that changes nothing emits nothing');
    const backends = store.backends('app');
    assert.deepEqual(
      backends.map((b) => [b.id, b.state]),
      [
        ['a', 'active'],
        ['b', 'active'],
      ],
    );
  });

  test('a renewal with a new weight or address emits', (t) => {
    const { store, emitted } = storeOnMockedTime(t);
    store.addPool('app');
    store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 1000 });
    store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 5, ttlMs: 1000 });
    store.register('app', 'a', { address: address('127.0.0.1:9009'), weight: 5, ttlMs: 1000 });
    assert.deepEqual(
      emitted.map((e) => e.set),
      [['a@127.0.0.1:9001*1'], ['a@127.0.0.1:9001*5'], ['a@127.0.0.1:9009*5']],
    );
  });

  test('an entry expires at its TTL, not before; heartbeats keep it alive', (t) => {
    const { store, emitted } = storeOnMockedTime(t);
    store.addPool('app');
    store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 1000 });
    store.register('app', 'b', { address: address('127.0.0.1:9002'), weight: 1, ttlMs: 1000 });
    // a heartbeats every 600 ms (well inside its TTL); b never does.
    t.mock.timers.tick(600);
    assert.equal(store.renew('app', 'a'), true);
    assert.equal(store.ttlRemainingMs('app', 'a'), 1000);
    assert.equal(store.ttlRemainingMs('app', 'b'), 400);
    t.mock.timers.tick(399);
    assert.equal(store.entries('app').length, 2, 'b is still registered 1 ms before its deadline');
    t.mock.timers.tick(1);
    assert.deepEqual(emitted.at(-1), { pool: 'app', set: ['a@127.0.0.1:9001*1'] });
    t.mock.timers.tick(600);
    store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 1000 });
    t.mock.timers.tick(999);
    assert.equal(store.get('app', 'a')?.id, 'a');
    t.mock.timers.tick(1);
    assert.deepEqual(emitted.at(-1), { pool: 'app', set: [] });
    assert.equal(store.ttlRemainingMs('app', 'a'), undefined);
  });

  test('entries due together are removed in one sweep and the pool emits once', (t) => {
    const { store, emitted } = storeOnMockedTime(t);
    store.addPool('app');
    store.addPool('other');
    for (const id of ['a', 'b', 'c']) {
      store.register('app', id, { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 500 });
    }
    store.register('other', 'x', { address: address('127.0.0.1:9005'), weight: 1, ttlMs: 500 });
    store.register('app', 'forever', { address: address('127.0.0.1:9009'), weight: 1, ttlMs: null });
    const before = emitted.length;
    t.mock.timers.tick(500);
    assert.deepEqual(emitted.slice(before), [
      { pool: 'app', set: ['forever@127.0.0.1:9009*1'] },
      { pool: 'other', set: [] },
    ]);
    t.mock.timers.tick(86_400_000);
    assert.equal(store.ttlRemainingMs('app', 'forever'), null, 'ttlMs null never expires');
  });

  test('the timer follows the earliest deadline when a shorter TTL arrives later', (t) => {
    const { store, emitted } = storeOnMockedTime(t);
    store.addPool('app');
    store.register('app', 'slow', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 10_000 });
    t.mock.timers.tick(100);
    store.register('app', 'fast', { address: address('127.0.0.1:9002'), weight: 1, ttlMs: 200 });
    t.mock.timers.tick(200);
    assert.deepEqual(emitted.at(-1)?.set, ['slow@127.0.0.1:9001*1']);
    t.mock.timers.tick(9_699);
    assert.equal(store.entries('app').length, 1);
    t.mock.timers.tick(1);
    assert.equal(store.entries('app').length, 0);
  });

  test('deregister emits; unknown ids and pools are refused without emitting', (t) => {
    const { store, emitted } = storeOnMockedTime(t);
    store.addPool('app');
    store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 1000 });
    assert.equal(store.deregister('app', 'a'), true);
    assert.deepEqual(emitted.at(-1), { pool: 'app', set: [] });
    const count = emitted.length;
    assert.equal(store.deregister('app', 'a'), false);
    assert.equal(store.deregister('nope', 'a'), false);
    assert.equal(store.renew('app', 'a'), false);
    const refused = store.register('nope', 'a', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 1000 });
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.reason, 'unknown-pool');
    assert.equal(emitted.length, count);
    // The deregistered entry's deadline must not fire anything later.
    t.mock.timers.tick(5000);
    assert.equal(emitted.length, count);
  });

  test('a pool holds at most maxEntriesPerPool registrations; renewals still pass', (t) => {
    const { store } = storeOnMockedTime(t, { maxEntriesPerPool: 2 });
    store.addPool('app');
    const input = { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 1000 };
    assert.equal(store.register('app', 'a', input).ok, true);
    assert.equal(store.register('app', 'b', input).ok, true);
    const full = store.register('app', 'c', input);
    assert.equal(!full.ok && full.reason, 'pool-full');
    assert.equal(store.register('app', 'a', input).ok, true);
  });

  test('removePool forgets the pool and its deadlines; close stops the timer', (t) => {
    const { store, emitted } = storeOnMockedTime(t);
    store.addPool('app');
    store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 1000 });
    store.removePool('app');
    assert.equal(store.hasPool('app'), false);
    const count = emitted.length;
    t.mock.timers.tick(2000);
    assert.equal(emitted.length, count);
    store.close();
    assert.throws(() => store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 1 }), /closed/);
  });

  test('batched: a burst emits each pool once when the window closes; settled() resolves after that emit', async (t) => {
    const { store, emitted } = storeOnMockedTime(t, { batchMs: 25 });
    store.addPool('app');
    store.addPool('other');
    let settled = false;
    for (let i = 0; i < 500; i++) {
      store.register('app', `svc-${String(i).padStart(3, '0')}`, { address: address(`127.0.0.1:${20000 + i}`), weight: 1, ttlMs: null });
      void store.settled().then(() => (settled = true));
    }
    store.register('other', 'x', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: null });
    store.deregister('app', 'svc-000');
    assert.equal(emitted.length, 0, 'nothing is emitted inside the window');
    t.mock.timers.tick(24);
    assert.equal(emitted.length, 0);
    t.mock.timers.tick(1);
    assert.deepEqual(
      emitted.map((e) => [e.pool, e.set.length]),
      [
        ['app', 499],
        ['other', 1],
      ],
    );
    assert.equal(emitted[0].set[0], 'svc-001@127.0.0.1:20001*1', 'the emitted set is the state at the end of the window');
    await Promise.resolve();
    assert.equal(settled, true);
    let settledAgain = false;
    void store.settled().then(() => (settledAgain = true));
    await Promise.resolve();
    assert.equal(settledAgain, true, 'nothing waiting: settled at once');
  });

  test('batched: the window is not extended by later changes (bounded delay)', (t) => {
    const { store, emitted } = storeOnMockedTime(t, { batchMs: 25 });
    store.addPool('app');
    for (let ms = 0; ms < 100; ms += 5) {
      store.register('app', `svc-${ms}`, { address: address('127.0.0.1:9001'), weight: 1, ttlMs: null });
      t.mock.timers.tick(5);
    }
    // Changes every 5 ms for 100 ms: one emit per 25 ms window, none delayed past its window.
    assert.equal(emitted.length, 4);
    assert.deepEqual(
      emitted.map((e) => e.set.length),
      [5, 10, 15, 20],
    );
  });

  test('close releases settled() waiters of a batch that will never be emitted', async (t) => {
    const { store, emitted } = storeOnMockedTime(t, { batchMs: 25 });
    store.addPool('app');
    store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: null });
    const waiting = store.settled();
    store.close();
    await waiting;
    t.mock.timers.tick(100);
    assert.equal(emitted.length, 0);
  });

  test('heartbeats do not re-arm the timer; expiry sweeps are at least MIN_SWEEP_INTERVAL_MS apart', (t) => {
    const { store, emitted } = storeOnMockedTime(t);
    store.addPool('app');
    const input = (ttlMs: number) => ({ address: address('127.0.0.1:9001'), weight: 1, ttlMs });
    store.register('app', 'a', input(100));
    store.register('app', 'b', input(101));
    t.mock.timers.tick(100);
    assert.deepEqual(emitted.at(-1)?.set, ['b@127.0.0.1:9001*1'], 'a expired at its deadline');
    // b is due 1 ms after that sweep: it goes in the next sweep, MIN_SWEEP_INTERVAL_MS later, not sooner.
    t.mock.timers.tick(MIN_SWEEP_INTERVAL_MS - 1);
    assert.equal(store.get('app', 'b')?.id, 'b');
    t.mock.timers.tick(1);
    assert.equal(store.get('app', 'b'), undefined);
    assert.deepEqual(emitted.at(-1)?.set, []);
  });

  test('bad ttlMs is a programming error', (t) => {
    const { store } = storeOnMockedTime(t);
    store.addPool('app');
    assert.throws(
      () => store.register('app', 'a', { address: address('127.0.0.1:9001'), weight: 1, ttlMs: 0 }),
      RangeError,
    );
    assert.throws(() => new RegistrationStore({ maxEntriesPerPool: 0 }), RangeError);
    assert.throws(() => new RegistrationStore({ batchMs: -1 }), RangeError);
  });
});
