/**
 * `ringlb diff OLD.json NEW.json` as a child process: the disruption preview. Removing one of N
 * backends moves about 1/N of the key space (ring_hash: exactly the removed backend's share of the
 * ring, checked here against the core's own ring sampled in-process; maglev: within a few percent
 * of 1/N), a reordered list is "no change", and a bad config exits 2 naming the problem.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createBalancer } from '../src/core/index.js';
import { runCli, TempDir } from './helpers/ringlb-process.js';

const N = 10;
const REMOVED = 'b3';

const temp = new TempDir();
after(() => temp.remove());

interface Backend {
  readonly id: string;
  readonly address: string;
}

const BACKENDS: readonly Backend[] = Array.from({ length: N }, (_, index) => ({ id: `b${index}`, address: `127.0.0.1:${9001 + index}` }));

function configWith(backends: readonly Backend[]): unknown {
  return {
    listeners: [
      { name: 'm', bind: '127.0.0.1:0', pool: 'm' },
      { name: 'r', bind: '127.0.0.1:0', pool: 'r' },
    ],
    pools: [
      { name: 'm', balance: 'maglev', backends },
      { name: 'r', balance: 'ring_hash', backends },
    ],
  };
}

/** The `N.NN%` of a pool's headline, as a share 0..1; throws when the pool line is missing. */
function movedShareOf(report: string, pool: string): number {
  const line = report.split('\n').find((text) => text.startsWith(`pool ${pool} (`));
  assert.ok(line !== undefined, `no line for pool ${pool} in:\n${report}`);
  const match = /(\d+(?:\.\d+)?)% of the key space moves/.exec(line);
  assert.ok(match !== null, `no moved share in ${JSON.stringify(line)}`);
  return Number(match[1]) / 100;
}

async function diff(oldConfig: unknown, newConfig: unknown): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { status, stdout, stderr } = await runCli(['diff', temp.writeJson(oldConfig), temp.writeJson(newConfig)]);
  return { code: status.code, stdout, stderr };
}

/**
 * The removed backend's share of the ring, measured independently of the diff: sample keys spread
 * evenly over the 2^32 circle (Weyl sequence with the golden-ratio step) and count those whose home
 * is the removed backend, in a ring built in this process by the same core.
 */
function sampledRingShare(ids: readonly string[], removed: string, samples = 200_000): number {
  const balancer = createBalancer({ policy: 'ring_hash', ringPointsPerWeight: 160, maxBackends: 64 });
  balancer.setBackends(ids.map((id) => ({ id, weight: 1 })));
  const slot = balancer.slotOf(removed);
  let home = 0;
  let key = 0;
  for (let sample = 0; sample < samples; sample += 1) {
    key = (key + 0x9e3779b9) >>> 0;
    if (balancer.homeSlot(key) === slot) home += 1;
  }
  return home / samples;
}

describe('ringlb diff', () => {
  test(`removing 1 of ${N}: ring_hash moves exactly the removed share, maglev about 1/N; the report lists it and exits 0`, async (t) => {
    const without = BACKENDS.filter((backend) => backend.id !== REMOVED);
    const removal = await diff(configWith(BACKENDS), configWith(without));
    assert.equal(removal.code, 0, removal.stderr);
    const report = removal.stdout;
    assert.match(report, new RegExp(`^  - ${REMOVED}\\b.*\\(drains\\)$`, 'm'), report);
    assert.match(report, /2 of 2 pools changed/);

    const maglev = movedShareOf(report, 'm');
    const ring = movedShareOf(report, 'r');
    // Maglev moves slightly more than 1/N (the paper's §3.4 "minimal disruption" is approximate).
    assert.ok(maglev >= 1 / N - 0.005 && maglev <= 1 / N + 0.03, `maglev moved ${maglev}`);
    // Ring: the removed backend's arcs and nothing else. 160 points per weight keep a share within
    // about ±25% of 1/N; the exact figure is checked against the sampled ring below.
    assert.ok(ring > 0.5 / N && ring < 1.5 / N, `ring moved ${ring}`);
    const sampled = sampledRingShare(BACKENDS.map((b) => b.id), REMOVED);
    // 200 000 evenly spread keys: sampling error well below 0.2 percentage points.
    assert.ok(Math.abs(ring - sampled) < 0.003, `diff says ${ring}, the ring gives ${REMOVED} ${sampled}`);

    // Adding it back moves exactly the same ring arcs back (the report prints two decimals).
    const restore = await diff(configWith(without), configWith(BACKENDS));
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(movedShareOf(restore.stdout, 'r'), ring);
    assert.match(restore.stdout, new RegExp(`^  \\+ ${REMOVED}\\b`, 'm'));
    t.diagnostic(`maglev ${(maglev * 100).toFixed(2)}%, ring ${(ring * 100).toFixed(2)}% (sampled ${(sampled * 100).toFixed(2)}%)`);
  });

  test('a reordered backend list is "no change" and 0% moved', async () => {
    const reordered = [...BACKENDS].reverse();
    const { code, stdout, stderr } = await diff(configWith(BACKENDS), configWith(reordered));
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^pool m \(maglev\): no change$/m);
    assert.match(stdout, /^pool r \(ring_hash\): no change$/m);
    assert.equal(stdout.trim().split('\n').at(-1), 'no change');
    assert.doesNotMatch(stdout, /% of the key space moves/);
  });

  test('a reweight moves part of the keys; a state change moves none', async () => {
    const reweighted = BACKENDS.map((backend) => (backend.id === 'b0' ? { ...backend, weight: 2 } : backend));
    const heavier = await diff(configWith(BACKENDS), configWith(reweighted));
    assert.equal(heavier.code, 0, heavier.stderr);
    assert.match(heavier.stdout, /~ b0: weight 1 → 2/);
    const share = movedShareOf(heavier.stdout, 'r');
    assert.ok(share > 0 && share < 0.2, `ring reweight moved ${share}`);

    const drained = BACKENDS.map((backend) => (backend.id === 'b0' ? { ...backend, state: 'drain' } : backend));
    const drain = await diff(configWith(BACKENDS), configWith(drained));
    assert.equal(drain.code, 0, drain.stderr);
    assert.match(drain.stdout, /~ b0: state active → drain/);
    assert.doesNotMatch(drain.stdout, /\d% of the key space moves/);
  });

  test('settings: each changed key with its full old and new value; a setting the policy ignores moves nothing', async () => {
    const longPath = `/health/${'segment/'.repeat(12)}ready`;
    const withHealth = (rise: number, path: string, tableSize: number): unknown => {
      const base = configWith(BACKENDS) as { pools: Array<Record<string, unknown>> };
      base.pools[0] = { ...base.pools[0], healthCheck: { type: 'http', rise, http: { path } } };
      base.pools[1] = { ...base.pools[1], maglev: { tableSize } };
      return base;
    };
    const { code, stdout, stderr } = await diff(withHealth(2, longPath, 65537), withHealth(3, `${longPath}/v2`, 1021));
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^ {2}~ healthCheck\.rise: 2 → 3$/m);
    assert.ok(stdout.includes(`  ~ healthCheck.http.path: "${longPath}" → "${longPath}/v2"`), stdout);
    assert.doesNotMatch(stdout, /\.\.\./);
    // maglev.tableSize on a ring_hash pool: listed, nothing rebuilt, nothing moves.
    assert.match(stdout, /^pool r \(ring_hash\): changed, tables untouched \(0% of keys move\); maglev\.tableSize is ignored by ring_hash\n {2}~ maglev\.tableSize: 65537 → 1021$/m);
    assert.match(stdout, /^pool m \(maglev\): changed, tables untouched \(0% of keys move\)$/m);
  });

  test('a bad NEW config → exit 2 with the problem on stderr, nothing on stdout', async () => {
    const bad = { listeners: [{ name: 'm', bind: '127.0.0.1:0', pool: 'm' }], pools: [{ name: 'm', balance: 'maglev', backends: [{ address: '127.0.0.1:9001', weight: -1 }] }] };
    const { code, stdout, stderr } = await diff(configWith(BACKENDS), bad);
    assert.equal(code, 2, `stdout: ${stdout}\nstderr: ${stderr}`);
    assert.match(stderr, /pools\[0\]\.backends\[0\]\.weight/);
    assert.doesNotMatch(stdout, /no change|pools changed/);
    const missing = await runCli(['diff', temp.writeJson(configWith(BACKENDS)), `${temp.path}/does-not-exist.json`]);
    assert.equal(missing.status.code, 2, missing.stderr);
    assert.match(missing.stderr, /does-not-exist\.json/);
    const usage = await runCli(['diff', temp.writeJson(configWith(BACKENDS))]);
    assert.equal(usage.status.code, 2, usage.stderr);
  });
});
