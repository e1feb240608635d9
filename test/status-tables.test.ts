/**
 * The pieces under the status API, without HTTP: table ownership read from a core snapshot (golden
 * strips and arcs on hand-made tables; per-backend transfers whose sum is the core's own moved
 * share on random changes, so the breakdown never disagrees with `ringlb diff`), the override
 * rules (what a report keeps and what it ends), and the config in force as JSON.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { configAsJson } from '../src/admin/config-view.js';
import { tableOwnership, tableTransfer, MAX_TABLE_RUNS } from '../src/admin/table-ownership.js';
import type { Backend } from '../src/backend.js';
import { isHostPort, parseHostPort } from '../src/config/host-port.js';
import { validateConfig } from '../src/config/load.js';
import { createBalancer, xorshift32, type BalancePolicy } from '../src/core/index.js';
import { BackendOverrides } from '../src/registry/backend-overrides.js';

const ids = ['a', 'b', 'c'];
const idOf = (slot: number): string | undefined => ids[slot];

describe('table ownership', () => {
  test('maglev: runs of consecutive entries, merged, as fractions of M; entries and shares per backend', () => {
    const ownership = tableOwnership('maglev', { slots: Int32Array.from([0, 1, 1, 0, 0, 2, 1]), positions: new Uint32Array(0) }, idOf)!;
    assert.equal(ownership.size, 7);
    assert.deepEqual(
      ownership.runs.map((run) => [run.start * 7, run.end * 7, run.backend]),
      [[0, 1, 'a'], [1, 3, 'b'], [3, 5, 'a'], [5, 6, 'c'], [6, 7, 'b']],
    );
    assert.deepEqual(ownership.owners.get('a'), { count: 3, share: 3 / 7 });
    assert.deepEqual(ownership.owners.get('b'), { count: 3, share: 3 / 7 });
    assert.deepEqual(ownership.owners.get('c'), { count: 1, share: 1 / 7 });
    assert.equal(ownership.truncated, false);
  });

  test('ring: a point owns the keys after the previous point up to its own position; keys past the last point wrap to the first', () => {
    const positions = Uint32Array.from([99, 2 ** 31 - 1, 3_000_000_000]);
    const ownership = tableOwnership('ring_hash', { slots: Int32Array.from([0, 1, 0]), positions }, idOf)!;
    assert.equal(ownership.size, 3);
    assert.deepEqual(
      ownership.runs.map((run) => [run.start * 2 ** 32, run.end * 2 ** 32, run.backend]),
      [[0, 100, 'a'], [100, 2 ** 31, 'b'], [2 ** 31, 2 ** 32, 'a']],
    );
    assert.equal(ownership.owners.get('a')!.count, 2);
    assert.equal(ownership.owners.get('b')!.share, (2 ** 31 - 100) / 2 ** 32);
    assert.equal(ownership.owners.get('a')!.share + ownership.owners.get('b')!.share, 1);
  });

  test(`at most ${MAX_TABLE_RUNS} runs are listed, and the answer says so`, () => {
    const slots = Int32Array.from({ length: 10_007 }, (_, entry) => entry % 2);
    const ownership = tableOwnership('maglev', { slots, positions: new Uint32Array(0) }, idOf)!;
    assert.equal(ownership.runs.length, MAX_TABLE_RUNS);
    assert.equal(ownership.truncated, true);
    assert.equal(ownership.owners.get('a')!.count + ownership.owners.get('b')!.count, 10_007, 'shares count the whole table');
  });

  test('policies without a table have no ownership', () => {
    for (const policy of ['round_robin', 'random', 'least_connections', 'least_time'] as const) {
      assert.equal(tableOwnership(policy, { slots: new Int32Array(0), positions: new Uint32Array(0) }, idOf), null);
    }
  });

  for (const policy of ['maglev', 'ring_hash'] as BalancePolicy[]) {
    test(`${policy}: on 40 random changes Σ gained = Σ lost = the core's moved share, and shares before/after sum to 1`, () => {
      let seed = policy === 'maglev' ? 0x1234_5678 : 0x0bad_cafe;
      const next = (bound: number): number => {
        seed = xorshift32(seed);
        return (seed >>> 0) % bound;
      };
      for (let round = 0; round < 40; round++) {
        const balancer = createBalancer({ policy, maglevTableSize: 1009, ringPointsPerWeight: 40, maxBackends: 64 });
        const before = Array.from({ length: 2 + next(10) }, (_, index) => ({ id: `b${index}`, weight: 1 + next(5) }));
        balancer.setBackends(before);
        const oldSnapshot = balancer.tableSnapshot();
        const oldIds = new Map(before.map((backend) => [balancer.slotOf(backend.id), backend.id]));
        // Remove some, reweight some, add some.
        const after = before
          .filter(() => next(4) !== 0)
          .map((backend) => (next(3) === 0 ? { ...backend, weight: 1 + next(5) } : backend))
          .concat(Array.from({ length: next(3) }, (_, index) => ({ id: `n${round}-${index}`, weight: 1 + next(5) })));
        if (after.length === 0) after.push({ id: 'only', weight: 1 });
        const report = balancer.setBackends(after);
        const transfers = tableTransfer(
          policy,
          { snapshot: oldSnapshot, idOf: (slot) => oldIds.get(slot) },
          { snapshot: balancer.tableSnapshot(), idOf: (slot) => balancer.idOf(slot) },
        )!;
        const sum = (field: 'before' | 'after' | 'gained' | 'lost'): number => [...transfers.values()].reduce((total, t) => total + t[field], 0);
        assert.ok(Math.abs(sum('gained') - report.movedShare) < 1e-9, `round ${round}: Σ gained ${sum('gained')} vs core ${report.movedShare}`);
        assert.ok(Math.abs(sum('lost') - report.movedShare) < 1e-9, `round ${round}: Σ lost`);
        assert.ok(Math.abs(sum('before') - 1) < 1e-9 && Math.abs(sum('after') - 1) < 1e-9);
      }
    });
  }
});

function backend(id: string, port: number, weight = 1, state: Backend['state'] = 'active'): Backend {
  const address = parseHostPort(`127.0.0.1:${port}`, { purpose: 'connect' });
  assert.ok(isHostPort(address));
  return { id, address, weight, state };
}

describe('backend overrides', () => {
  const configured = [backend('a', 9001), backend('b', 9002, 2)];

  test('an override applies over the reported set; a report that leaves the backend as it was keeps it', () => {
    const overrides = new BackendOverrides();
    const set = overrides.set('p', configured, 'a', { state: 'drain', weight: 5 }, 1000)!;
    assert.deepEqual(set.backends.map((b) => [b.id, b.state, b.weight]), [['a', 'drain', 5], ['b', 'active', 2]]);
    assert.equal(overrides.get('p', 'a'), undefined, 'nothing changes before commit');
    set.commit();
    assert.deepEqual(overrides.get('p', 'a'), { state: 'drain', weight: 5, at: 1000 });
    assert.equal(overrides.configured('p'), configured);

    // b changes, a does not: a's override stays.
    const report = [backend('a', 9001), backend('b', 9002, 3)];
    const kept = overrides.resolve('p', report);
    assert.deepEqual(kept.released, []);
    assert.deepEqual(kept.backends.map((b) => [b.id, b.state, b.weight]), [['a', 'drain', 5], ['b', 'active', 3]]);
    kept.commit();
    assert.equal(overrides.configured('p'), report);
  });

  for (const [what, changed] of [
    ['address', backend('a', 9009)],
    ['weight', backend('a', 9001, 4)],
    ['state', backend('a', 9001, 1, 'maint')],
  ] as const) {
    test(`a report that changes the backend's ${what} ends its override; one that drops it ends it too`, () => {
      const overrides = new BackendOverrides();
      overrides.set('p', configured, 'a', { weight: 7 }, 1)!.commit();
      const resolved = overrides.resolve('p', [changed, configured[1]!]);
      assert.deepEqual(resolved.released, ['a']);
      assert.equal(resolved.backends[0], changed);
      resolved.commit();
      assert.equal(overrides.get('p', 'a'), undefined);
      assert.equal(overrides.configured('p'), undefined, 'a pool without overrides is not tracked');

      overrides.set('p', configured, 'a', { weight: 7 }, 1)!.commit();
      assert.deepEqual(overrides.resolve('p', [configured[1]!]).released, ['a']);
    });
  }

  test('a field set to what the source says is no override; fields merge across changes; unknown ids are refused', () => {
    const overrides = new BackendOverrides();
    overrides.set('p', configured, 'b', { state: 'drain' }, 1)!.commit();
    overrides.set('p', configured, 'b', { weight: 9 }, 2)!.commit();
    assert.deepEqual(overrides.get('p', 'b'), { state: 'drain', weight: 9, at: 2 });
    overrides.set('p', configured, 'b', { weight: 2 }, 3)!.commit();
    assert.deepEqual(overrides.get('p', 'b'), { state: 'drain', at: 3 });
    overrides.set('p', configured, 'b', { state: 'active' }, 4)!.commit();
    assert.equal(overrides.get('p', 'b'), undefined);
    assert.equal(overrides.set('p', configured, 'zz', { state: 'drain' }, 5), undefined);
    overrides.set('p', configured, 'a', { state: 'maint' }, 6)!.commit();
    overrides.forgetPool('p');
    assert.equal(overrides.get('p', 'a'), undefined);
  });
});

describe('the config in force as JSON', () => {
  test('addresses as text, bytes and matchers in the file form, the admin token redacted', () => {
    const result = validateConfig({
      admin: { bind: '127.0.0.1:9901', token: 'secret-token-0123456789' },
      listeners: [{ name: 'p', bind: '127.0.0.1:8080', pool: 'p' }],
      pools: [
        {
          name: 'p',
          healthCheck: { type: 'send_expect', send: 'PING\r\n', expect: { regex: '^\\+PONG' } },
          backends: [{ address: '127.0.0.1:9001' }],
        },
        { name: 'q', healthCheck: { type: 'send_expect', send: { hex: '00ff' }, expect: 'ok' }, backends: [{ address: '[::1]:9002' }] },
      ],
    });
    if (!result.ok) assert.fail(JSON.stringify(result.issues));
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const json = configAsJson(result.config) as any;
    assert.equal(json.admin.token, '<redacted>');
    assert.equal(json.admin.bind, '127.0.0.1:9901');
    assert.ok(!JSON.stringify(json).includes('secret-token'));
    assert.equal(json.listeners[0].bind, '127.0.0.1:8080');
    assert.equal(json.pools[0].backends[0].address, '127.0.0.1:9001');
    assert.equal(json.pools[1].backends[0].address, '[::1]:9002');
    assert.deepEqual(json.pools[0].healthCheck.send, { hex: Buffer.from('PING\r\n').toString('hex') });
    assert.deepEqual(json.pools[0].healthCheck.expect, { regex: '^\\+PONG' });
    assert.deepEqual(json.pools[1].healthCheck.send, { hex: '00ff' });
    assert.deepEqual(json.pools[1].healthCheck.expect, { hex: Buffer.from('ok').toString('hex') });
    // What it prints is a config the loader takes again, meaning the same.
    const again = validateConfig(json);
    assert.ok(again.ok || again.issues.every((issue) => issue.path === 'admin.token'), JSON.stringify(again.ok ? [] : again.issues));
  });
});
