import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import type { RinglbConfig } from '../src/config/types.js';
import { createBalancer, type BalancePolicy } from '../src/core/index.js';
import { planReload, sampleClients, SAMPLE_CLIENT_COUNT } from '../src/config/reload-plan.js';
import { formatPlan, runDiffCommand } from '../src/config/plan-report.js';
import { sourceKeyHash } from '../src/core/index.js';

type RawBackend = { address: string; weight?: number; id?: string; state?: string };

function config(pools: Array<{ name: string; balance: BalancePolicy; backends: RawBackend[]; [key: string]: unknown }>, extra: Record<string, unknown> = {}): RinglbConfig {
  const result = validateConfig({
    listeners: pools.map((pool) => ({ name: pool.name, bind: '127.0.0.1:0', pool: pool.name })),
    pools,
    ...extra,
  });
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.config;
}

function backends(count: number, firstPort = 9001): RawBackend[] {
  return Array.from({ length: count }, (_, i) => ({ address: `127.0.0.1:${firstPort + i}` }));
}

function onePool(balance: BalancePolicy, list: RawBackend[], extra: Record<string, unknown> = {}): RinglbConfig {
  return config([{ name: 'app', balance, backends: list, ...extra }]);
}

/** Owner id of each of `count` evenly spread 32-bit keys, from the core's homeSlot (health ignored). */
function owners(cfg: RinglbConfig, count: number): string[] {
  const pool = cfg.pools[0];
  const balancer = createBalancer({ policy: pool.balance, maxBackends: pool.backends.length });
  balancer.setBackends(pool.backends);
  const result: string[] = [];
  const step = Math.floor(0x1_0000_0000 / count);
  for (let i = 0; i < count; i++) {
    result.push(balancer.idOf(balancer.homeSlot((i * step + 12345) >>> 0)) as string);
  }
  return result;
}

/** The plan of the only pool of two one-pool configs. */
function poolPlan(before: RinglbConfig, after: RinglbConfig) {
  return planReload(before, after).pools[0];
}

/** Share of the documented sample clients whose backend differs between two one-pool configs' tables. */
function movedOnSamples(before: RinglbConfig, after: RinglbConfig): number {
  const table = (cfg: RinglbConfig) => {
    const pool = cfg.pools[0];
    const balancer = createBalancer({ policy: pool.balance, maglevTableSize: pool.maglev.tableSize, ringPointsPerWeight: pool.ringHash.pointsPerWeight, maxBackends: pool.backends.length });
    balancer.setBackends(pool.backends);
    const port = pool.hashKey === 'source_ip_port';
    return (ip: string, p: number) => balancer.idOf(balancer.homeSlot(sourceKeyHash(ip, p, port)));
  };
  const [a, b] = [table(before), table(after)];
  let moved = 0;
  for (const client of sampleClients()) if (a(client.ip, client.port) !== b(client.ip, client.port)) moved += 1;
  return moved / SAMPLE_CLIENT_COUNT;
}

const N = 10;
const SAMPLES = 100_000;

describe('diff report: moved share computed by the core', () => {
  test('ring_hash: removing 1 of N moves exactly the removed backend\'s arcs', () => {
    const before = onePool('ring_hash', backends(N));
    const after = onePool('ring_hash', backends(N).slice(0, N - 1));
    const removal = poolPlan(before, after);
    assert.equal(removal.action, 'update');
    assert.deepEqual(removal.removed, [{ id: '127.0.0.1:9010', address: '127.0.0.1:9010', weight: 1 }]);
    assert.equal(removal.rebuild, true);
    const moved = removal.movedShare as number;
    assert.ok(Math.abs(moved - 1 / N) < 0.03, `moved ${moved}`);
    // The share is exactly the removed backend's part of the circle: adding it back moves the same arcs.
    assert.equal(poolPlan(after, before).movedShare, moved);
    // Key by key (Pingora's test_ketama style): a key moves if and only if the removed backend owned it.
    const old = owners(before, SAMPLES);
    const now = owners(after, SAMPLES);
    let movedKeys = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const keyMoved = old[i] !== now[i];
      assert.equal(keyMoved, old[i] === '127.0.0.1:9010', `key ${i}`);
      if (keyMoved) movedKeys++;
    }
    assert.ok(Math.abs(movedKeys / SAMPLES - moved) < 0.01, `sampled ${movedKeys / SAMPLES} vs core ${moved}`);
  });

  test('maglev: removing 1 of N moves within a few percent of 1/N, matching a key-by-key count', () => {
    const before = onePool('maglev', backends(N));
    const after = onePool('maglev', backends(N).slice(1));
    const diff = poolPlan(before, after);
    const moved = diff.movedShare as number;
    assert.ok(moved >= 1 / N - 0.005 && moved < 1 / N + 0.03, `moved ${moved}`);
    const old = owners(before, SAMPLES);
    const now = owners(after, SAMPLES);
    let movedKeys = 0;
    for (let i = 0; i < SAMPLES; i++) {
      if (old[i] === '127.0.0.1:9001') assert.notEqual(now[i], old[i], 'every key of the removed backend moves');
      if (old[i] !== now[i]) movedKeys++;
    }
    assert.ok(Math.abs(movedKeys / SAMPLES - moved) < 0.01, `sampled ${movedKeys / SAMPLES} vs core ${moved}`);
    assert.match(formatPlan(planReload(before, after)), /^pool app \(maglev\): rebuild, built in \d+\.\d\d ms, 1\d\.\d\d% of the key space moves$/m);
  });

  test('a reordered list (and a repeated diff) is "no change": 0%, no rebuild', () => {
    for (const balance of ['ring_hash', 'maglev', 'round_robin'] as const) {
      const list = backends(5).map((b, i) => ({ ...b, weight: i + 1 }));
      const before = onePool(balance, list);
      const after = onePool(balance, [...list].reverse());
      const plan = planReload(before, after);
      assert.equal(plan.changed, false);
      assert.deepEqual(
        { action: plan.pools[0].action, rebuild: plan.pools[0].rebuild, moved: plan.pools[0].movedShare, ms: plan.pools[0].buildMs },
        { action: 'unchanged', rebuild: false, moved: 0, ms: null },
      );
      assert.equal(formatPlan(plan), `pool app (${balance}): no change\nno change`);
    }
  });

  test('a table setting the policy reads replaces the pool, with the share measured on the sample clients', () => {
    const list = backends(4);
    const policy = poolPlan(onePool('maglev', list), onePool('ring_hash', list));
    assert.deepEqual([policy.action, policy.rebuild, policy.movedMeasure], ['replace', true, 'keys']);
    assert.deepEqual(policy.settings, [{ key: 'balance', from: 'maglev', to: 'ring_hash' }]);
    // Independent count: the same sample clients looked up in tables built here.
    const share = movedOnSamples(onePool('maglev', list), onePool('ring_hash', list));
    assert.equal(policy.movedShare, share);
    assert.ok(share > 0.3 && share < 0.95, `two unrelated tables of 4 backends agree on about ¼ of the keys: ${share}`);
    assert.match(
      formatPlan(planReload(onePool('maglev', list), onePool('ring_hash', list))),
      /^pool app \(ring_hash\): rebuilt in place \(balance maglev → ring_hash\), built in \d+\.\d\d ms, \d+\.\d\d% of the key space moves; connections stay unless their backend left\n {2}~ balance: "maglev" → "ring_hash"$/m,
    );
    const hashKey = poolPlan(onePool('maglev', list), onePool('maglev', list, { hashKey: 'source_ip_port' }));
    assert.equal(hashKey.action, 'replace');
    assert.equal(hashKey.movedShare, movedOnSamples(onePool('maglev', list), onePool('maglev', list, { hashKey: 'source_ip_port' })));
    assert.deepEqual(hashKey.settings, [{ key: 'hashKey', from: 'source_ip', to: 'source_ip_port' }]);
    const table = poolPlan(onePool('maglev', list), onePool('maglev', list, { maglev: { tableSize: 251 } }));
    assert.deepEqual([table.action, table.settings], ['replace', [{ key: 'maglev.tableSize', from: 65537, to: 251 }]]);
    assert.deepEqual(table.capacity, { from: 256, to: 251 });
    // keyed → weighted: no client keeps a fixed backend.
    const affinity = poolPlan(onePool('maglev', list), onePool('round_robin', list));
    assert.deepEqual([affinity.action, affinity.movedMeasure, affinity.movedShare], ['replace', 'affinity', 1]);
    // weighted → weighted, same weights: the traffic share does not change.
    const weighted = poolPlan(onePool('round_robin', list), onePool('least_connections', list));
    assert.deepEqual([weighted.action, weighted.movedMeasure, weighted.movedShare], ['replace', 'traffic', 0]);
  });

  test('a setting the policy ignores changes nothing: no replace, 0% moved', () => {
    const list = backends(4);
    const cases: Array<[BalancePolicy, Record<string, unknown>, string]> = [
      ['ring_hash', { maglev: { tableSize: 251 } }, 'maglev.tableSize is ignored by ring_hash'],
      ['maglev', { ringHash: { pointsPerWeight: 40 } }, 'ringHash.pointsPerWeight is ignored by maglev'],
      ['round_robin', { hashKey: 'source_ip_port' }, 'hashKey is ignored by round_robin'],
      ['least_connections', { hashKey: 'source_ip_port', maglev: { tableSize: 251 } }, 'hashKey, maglev.tableSize are ignored by least_connections'],
      ['random', { hashBalanceFactor: 150 }, 'hashBalanceFactor is ignored by random'],
    ];
    for (const [balance, extra, reason] of cases) {
      const plan = planReload(onePool(balance, list), onePool(balance, list, extra));
      const pool = plan.pools[0];
      assert.deepEqual([pool.action, pool.reason, pool.rebuild, pool.movedShare, pool.buildMs], ['update', reason, false, 0, null], balance);
      assert.match(formatPlan(plan), new RegExp(`^pool app \\(${balance}\\): changed, tables untouched \\(0% of keys move\\); ${reason}$`, 'm'));
    }
  });

  test('hashBalanceFactor set, changed or removed on a hash pool: a setting change applied in place, no rebuild, 0% moved', () => {
    const list = backends(4);
    for (const balance of ['ring_hash', 'maglev'] as const) {
      const steps: Array<[Record<string, unknown>, Record<string, unknown>, number | undefined, number | undefined]> = [
        [{}, { hashBalanceFactor: 125 }, undefined, 125],
        [{ hashBalanceFactor: 125 }, { hashBalanceFactor: 200 }, 125, 200],
        [{ hashBalanceFactor: 200 }, {}, 200, undefined],
      ];
      for (const [from, to, before, after] of steps) {
        const plan = planReload(onePool(balance, list, from), onePool(balance, list, to));
        const pool = plan.pools[0];
        assert.deepEqual([pool.action, pool.reason, pool.rebuild, pool.movedShare], ['update', 'applied in place', false, 0], `${balance} ${before} → ${after}`);
        assert.deepEqual(pool.settings, [{ key: 'hashBalanceFactor', from: before, to: after }]);
        assert.match(formatPlan(plan), /hashBalanceFactor/);
      }
    }
  });

  test('changed settings are listed key by key with full values, never shortened', () => {
    const list = backends(2);
    const check = { type: 'http', intervalMs: 1000, rise: 2, http: { path: '/a-rather-long-health-check-path/that/goes/on/and/on/past/eighty/characters/of/text' } };
    const before = onePool('maglev', list, { healthCheck: check });
    const after = onePool('maglev', list, { healthCheck: { ...check, rise: 3, http: { path: `${check.http.path}/v2` } } });
    const plan = planReload(before, after);
    assert.deepEqual(plan.pools[0].settings, [
      { key: 'healthCheck.rise', from: 2, to: 3 },
      { key: 'healthCheck.http.path', from: check.http.path, to: `${check.http.path}/v2` },
    ]);
    const text = formatPlan(plan);
    assert.match(text, /^ {2}~ healthCheck\.rise: 2 → 3$/m);
    assert.ok(text.includes(`  ~ healthCheck.http.path: "${check.http.path}" → "${check.http.path}/v2"`), text);
    assert.ok(!text.includes('...'), text);
    // A whole object appearing is one change with its full value.
    const added = planReload(onePool('maglev', list), before).pools[0].settings;
    assert.equal(added.length, 1);
    assert.equal(added[0].key, 'healthCheck');
    assert.equal(added[0].from, null);
    assert.equal((added[0].to as { http: { path: string } }).http.path, check.http.path);
    // The admin token never appears in the preview.
    const admin = (token: string) => ({ ...before, admin: { bind: before.listeners[0].bind, token } });
    assert.deepEqual(planReload(admin('old-secret'), admin('new-secret')).settings, [{ key: 'admin.token', from: '<redacted>', to: '<redacted>' }]);
  });

  test('a reweight: weighted policies report ½Σ|Δshare|; ring moves part of the space', () => {
    const list = backends(4);
    const heavier = list.map((b, i) => (i === 0 ? { ...b, weight: 3 } : b));
    const rr = poolPlan(onePool('round_robin', list), onePool('round_robin', heavier));
    assert.deepEqual(rr.reweighted, [{ id: '127.0.0.1:9001', from: 1, to: 3 }]);
    // Shares ¼,¼,¼,¼ → ½,⅙,⅙,⅙: ½(¼ + 3·1/12) = ¼.
    assert.ok(Math.abs((rr.movedShare as number) - 0.25) < 1e-9, String(rr.movedShare));
    assert.match(formatPlan(planReload(onePool('round_robin', list), onePool('round_robin', heavier))), /25\.00% of the traffic share shifts\n {2}~ 127\.0\.0\.1:9001: weight 1 → 3/);
    const ring = poolPlan(onePool('ring_hash', list), onePool('ring_hash', heavier));
    // The heavier backend gains about ½ − ¼ of the circle; every other key stays.
    assert.ok(Math.abs((ring.movedShare as number) - 0.25) < 0.05, String(ring.movedShare));
  });

  test('state and address changes move no table entry', () => {
    const list: RawBackend[] = backends(3).map((b, i) => ({ ...b, id: `b${i}` }));
    const changed = list.map((b, i) => (i === 0 ? { ...b, state: 'drain' } : i === 1 ? { ...b, address: '127.0.0.1:9999' } : b));
    const diff = poolPlan(onePool('maglev', list), onePool('maglev', changed));
    assert.deepEqual(diff.stateChanged, [{ id: 'b0', from: 'active', to: 'drain' }]);
    assert.deepEqual(diff.readdressed, [{ id: 'b1', from: '127.0.0.1:9002', to: '127.0.0.1:9999' }]);
    assert.deepEqual([diff.action, diff.rebuild, diff.movedShare], ['update', false, 0]);
    const text = formatPlan(planReload(onePool('maglev', list), onePool('maglev', changed)));
    assert.match(text, /changed, tables untouched \(0% of keys move\)/);
    assert.match(text, /b0: state active → drain \(eligibility only; no table change\)/);
    assert.match(text, /b1: address 127\.0\.0\.1:9002 → 127\.0\.0\.1:9999 \(keeps its keys\)/);
  });

  test('listeners, pools added and removed, global settings', () => {
    const before = config(
      [
        { name: 'app', balance: 'maglev', backends: backends(2) },
        { name: 'old', balance: 'round_robin', backends: backends(1, 9100) },
      ],
      { drainTimeoutMs: 30_000 },
    );
    const after = config([
      { name: 'app', balance: 'maglev', backends: backends(2), connectTimeoutMs: 500 },
      { name: 'new', balance: 'ring_hash', backends: backends(2, 9200) },
    ]);
    const moved = { ...after, listeners: after.listeners.map((l) => (l.name === 'app' ? { ...l, maxConnections: 5 } : l)) };
    const diff = planReload(before, moved);
    assert.deepEqual(diff.listeners.added.map((l) => l.name), ['new']);
    assert.deepEqual(diff.listeners.removed.map((l) => l.name), ['old']);
    assert.deepEqual(diff.listeners.updated.map((l) => [l.name, l.changes]), [['app', [{ key: 'maxConnections', from: 10000, to: 5 }]]]);
    assert.deepEqual(diff.listeners.rebound, []);
    assert.deepEqual(diff.pools.map((p) => [p.name, p.action]), [
      ['app', 'update'],
      ['new', 'add'],
      ['old', 'remove'],
    ]);
    assert.equal(diff.pools[1].movedShare, null);
    assert.ok((diff.pools[1].buildMs as number) >= 0);
    const text = formatPlan(diff);
    assert.match(text, /^listener new: added \(127\.0\.0\.1:0 → pool new\)$/m);
    assert.match(text, /^listener old: removed \(stops accepting; its connections drain\)$/m);
    assert.match(text, /^pool app \(maglev\): changed, tables untouched \(0% of keys move\)\n {2}~ connectTimeoutMs: 3000 → 500$/m);
    assert.match(text, /^pool new \(ring_hash\): added with 2 backends, built in \d+\.\d\d ms\n {2}\+ 127\.0\.0\.1:9200 weight 1/m);
    assert.match(text, /^pool old \(round_robin\): removed/m);
    assert.match(text, /3 of 3 pools changed$/);
    assert.deepEqual(planReload(before, { ...before, drainTimeoutMs: 5 }).settings, [{ key: 'drainTimeoutMs', from: 30000, to: 5 }]);
  });

  test('workers and log.level: listed as top-level settings that apply after a restart; the others apply on reload', () => {
    const before = onePool('maglev', backends(2));
    const after = config([{ name: 'app', balance: 'maglev', backends: backends(2) }], { workers: 4, drainTimeoutMs: 5, log: { level: 'debug' } });
    const plan = planReload(before, after);
    assert.equal(plan.changed, true);
    assert.deepEqual(plan.settings, [
      { key: 'log.level', from: 'info', to: 'debug', appliesAfterRestart: true },
      { key: 'drainTimeoutMs', from: 30000, to: 5 },
      { key: 'workers', from: 'auto', to: 4, appliesAfterRestart: true },
    ]);
    const text = formatPlan(plan);
    assert.match(text, /^config: workers: "auto" → 4 \(applies after a restart; a reload keeps the running value\)$/m);
    assert.match(text, /^config: log\.level: "info" → "debug" \(applies after a restart; a reload keeps the running value\)$/m);
    assert.match(text, /^config: drainTimeoutMs: 30000 → 5$/m);
    assert.equal(formatPlan(planReload(after, after)), 'pool app (maglev): no change\nno change');
  });
});

describe('runDiffCommand', () => {
  test('prints the report (exit 0) or every config issue (exit 2)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringlb-diff-'));
    try {
      const raw = (list: RawBackend[]) =>
        JSON.stringify({ listeners: [{ name: 'web', bind: '127.0.0.1:8080', pool: 'app' }], pools: [{ name: 'app', balance: 'ring_hash', backends: list }] });
      const oldPath = join(dir, 'old.json');
      const newPath = join(dir, 'new.json');
      const badPath = join(dir, 'bad.json');
      await writeFile(oldPath, raw(backends(4)));
      await writeFile(newPath, raw(backends(3)));
      await writeFile(badPath, '{"listeners": [], "pools": [{"name": "app", "balance": "magelv", "backends": []}]}');

      const printed: string[] = [];
      assert.equal(runDiffCommand(oldPath, newPath, (text) => printed.push(text)), 0);
      assert.match(printed.join('\n'), /^pool app \(ring_hash\): rebuild, built in \d+\.\d\d ms, \d+\.\d\d% of the key space moves\n {2}- 127\.0\.0\.1:9004 weight 1 \(drains\)\n1 of 1 pool changed$/);

      const same: string[] = [];
      assert.equal(runDiffCommand(oldPath, oldPath, (text) => same.push(text)), 0);
      assert.equal(same.join('\n'), 'pool app (ring_hash): no change\nno change');

      const bad: string[] = [];
      assert.equal(runDiffCommand(oldPath, badPath, (text) => bad.push(text)), 2);
      assert.match(bad.join('\n'), new RegExp(`^${badPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: pools\\[0\\]\\.balance: must be one of .*did you mean "maglev"\\?`, 'm'));
      const missing: string[] = [];
      assert.equal(runDiffCommand(join(dir, 'nope.json'), newPath, (text) => missing.push(text)), 2);
      assert.match(missing.join('\n'), /cannot read config file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
