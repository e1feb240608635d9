/**
 * The `workers` setting resolved on a given Node and machine (src/config/workers.ts): which Node
 * versions have reusePort, what 'auto' asks for, when one worker runs instead and the one warning
 * that says so. Versions and parallelism are passed in, so every case runs the same on any host.
 */
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, test } from 'node:test';
import { planWorkers, REUSE_PORT_MIN_NODE, supportsReusePort } from '../src/config/workers.js';

describe('supportsReusePort', () => {
  // [version, has reusePort]: 22.12.0 and 23.1.0 are the first releases of their lines with it.
  const VERSIONS: ReadonlyArray<readonly [string, boolean]> = [
    ['20.20.2', false],
    ['22.9.0', false], // 9 < 12 as numbers, although "9" > "12" as text
    ['22.11.0', false],
    ['22.12.0', true],
    ['22.21.1', true],
    ['23.0.0', false],
    ['23.0.9', false],
    ['23.1.0', true],
    ['24.11.1', true],
    ['25.0.0', true],
    ['100.0.0', true],
    ['v24.11.1', true], // as `node -v` prints it
    ['22.12.0-pre', true],
  ];
  for (const [version, expected] of VERSIONS) {
    test(`${version}: ${expected ? 'has' : 'lacks'} reusePort`, () => {
      assert.equal(supportsReusePort(version), expected);
    });
  }

  test('REUSE_PORT_MIN_NODE is the first version that has it', () => {
    assert.equal(REUSE_PORT_MIN_NODE, '22.12.0');
    assert.equal(supportsReusePort(REUSE_PORT_MIN_NODE), true);
  });

  test('without an argument, the running Node is judged', () => {
    assert.equal(supportsReusePort(), supportsReusePort(process.versions.node));
  });

  test('text that is not a version is refused, not guessed', () => {
    for (const bad of ['', '24', '24.1', 'node 24.1.0', 'latest']) {
      assert.throws(() => supportsReusePort(bad), { name: 'TypeError', message: /not a Node version/ }, bad);
    }
  });
});

describe('planWorkers', () => {
  test('Node 20.20.2, workers 4: one worker, and the warning names both versions', () => {
    assert.deepEqual(planWorkers(4, { nodeVersion: '20.20.2' }), {
      requested: 4,
      wanted: 4,
      count: 1,
      warning: 'workers: 4 needs Node ≥ 22.12 for reusePort; Node 20.20.2 runs 1 worker (Node 24 LTS recommended)',
    });
  });

  test("Node 20.20.2, 'auto' on 2 CPUs: the issue's example warning, word for word", () => {
    assert.deepEqual(planWorkers('auto', { nodeVersion: '20.20.2', parallelism: 2 }), {
      requested: 'auto',
      wanted: 2,
      count: 1,
      warning: 'workers: auto (2) needs Node ≥ 22.12 for reusePort; Node 20.20.2 runs 1 worker (Node 24 LTS recommended)',
    });
  });

  // [version, count that runs for workers: 4]
  const COUNTS: ReadonlyArray<readonly [string, number]> = [
    ['20.20.2', 1],
    ['22.11.0', 1],
    ['22.12.0', 4],
    ['23.0.0', 1],
    ['23.1.0', 4],
    ['24.11.1', 4],
  ];
  for (const [nodeVersion, count] of COUNTS) {
    test(`Node ${nodeVersion}, workers 4: ${count} run${count === 1 ? ', with a warning naming it' : ', no warning'}`, () => {
      const plan = planWorkers(4, { nodeVersion });
      assert.equal(plan.wanted, 4);
      assert.equal(plan.count, count);
      if (count === 4) assert.equal(plan.warning, null);
      else assert.match(plan.warning ?? '', new RegExp(`^workers: 4 needs Node ≥ 22\\.12 for reusePort; Node ${nodeVersion.replaceAll('.', '\\.')} runs 1 worker `));
    });
  }

  test("'auto' with parallelism 1 wants 1 and never warns, on any Node", () => {
    for (const nodeVersion of ['20.20.2', '22.11.0', '23.0.0', '24.11.1']) {
      assert.deepEqual(planWorkers('auto', { nodeVersion, parallelism: 1 }), { requested: 'auto', wanted: 1, count: 1, warning: null }, nodeVersion);
    }
  });

  test("'auto' with parallelism 4: 4 where reusePort exists, else 1 with a warning", () => {
    assert.deepEqual(planWorkers('auto', { nodeVersion: '24.11.1', parallelism: 4 }), { requested: 'auto', wanted: 4, count: 4, warning: null });
    const old = planWorkers('auto', { nodeVersion: '22.11.0', parallelism: 4 });
    assert.equal(old.wanted, 4);
    assert.equal(old.count, 1);
    assert.match(old.warning ?? '', /^workers: auto \(4\) needs Node ≥ 22\.12 for reusePort; Node 22\.11\.0 runs 1 worker/);
  });

  test('an explicit 1 never warns, on any Node', () => {
    for (const nodeVersion of ['20.20.2', '22.11.0', '22.12.0', '23.0.0', '23.1.0', '24.11.1']) {
      assert.deepEqual(planWorkers(1, { nodeVersion }), { requested: 1, wanted: 1, count: 1, warning: null }, nodeVersion);
    }
  });

  test("'auto' is held to the schema's maximum of 256", () => {
    assert.equal(planWorkers('auto', { nodeVersion: '24.11.1', parallelism: 512 }).count, 256);
  });

  test("absent (a hand-built config) is 'auto', the schema's default", () => {
    assert.deepEqual(planWorkers(undefined, { nodeVersion: '24.11.1', parallelism: 3 }), planWorkers('auto', { nodeVersion: '24.11.1', parallelism: 3 }));
  });

  test("without options: the running Node and os.availableParallelism()", () => {
    const plan = planWorkers('auto');
    assert.equal(plan.wanted, Math.min(availableParallelism(), 256));
    assert.equal(plan.count, supportsReusePort() ? plan.wanted : 1);
    assert.equal(plan.warning === null, plan.count === plan.wanted);
  });

  test('counts the loader refuses are refused here too (a hand-built config)', () => {
    for (const bad of [0, -1, 2.5, 257, Number.NaN]) {
      assert.throws(() => planWorkers(bad, { nodeVersion: '24.11.1' }), RangeError, String(bad));
    }
    assert.throws(() => planWorkers('auto', { nodeVersion: '24.11.1', parallelism: 0 }), RangeError);
  });
});
