/**
 * Races between the control plane (main thread) and the data-plane workers (issue 8 §2), each a
 * defect found in review: the scenario that broke, in-process (`Ringlb` with `workers: 2`), real
 * loopback backends and clients. Skipped on a Node without reusePort (Node 20).
 */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import type { RinglbConfig } from '../src/config/types.js';
import { supportsReusePort } from '../src/config/workers.js';
import { Ringlb } from '../src/runtime.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { whichBackend } from './helpers/clients.js';
import { LogCapture } from './helpers/log-capture.js';

const MULTI = supportsReusePort();
const WORKERS = 2;
/** backend-pool.ts SLOT_REUSE_DELAY_MS: a removed backend's slot is not given away before. */
const SLOT_REUSE_DELAY_MS = 2000;

function workersTest(name: string, fn: (t: TestContext) => Promise<void>): void {
  test(name, async (t) => {
    if (!MULTI) {
      t.skip(`Node ${process.versions.node} has no reusePort`);
      return;
    }
    await fn(t);
  });
}

async function startBackends(t: TestContext, names: readonly string[]): Promise<NamedBackend[]> {
  const backends = await Promise.all(names.map((name) => startNamedBackend(name)));
  t.after(() => Promise.all(backends.map((backend) => backend.close())));
  return backends;
}

function configOf(pool: object): RinglbConfig {
  const result = validateConfig({
    workers: WORKERS,
    log: { level: 'silent' },
    listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
    pools: [{ name: 'web', balance: 'round_robin', ...pool }],
  });
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.config;
}

async function startInProcess(t: TestContext, config: RinglbConfig): Promise<{ ringlb: Ringlb; port: number }> {
  const ringlb = new Ringlb({ logger: new LogCapture().logger('silent'), testHooks: true });
  await ringlb.start(config);
  t.after(() => ringlb.close());
  assert.equal(ringlb.workerCount, WORKERS);
  const address = ringlb.listenerAddress('web')!;
  return { ringlb, port: Number(address.slice(address.lastIndexOf(':') + 1)) };
}

/** `count` connections one after another: the backend that greeted each. */
async function backendsOfConnections(port: number, count: number): Promise<string[]> {
  const names: string[] = [];
  for (let index = 0; index < count; index += 1) names.push(await whichBackend({ port }));
  return names;
}

workersTest('a slot reused by a new backend carries its own eligibility to every worker, not the old owner\'s', async (t) => {
  // Defect: the core makes a reused slot eligible again (resetSlot) when a worker applies the new
  // set, but the replica's copy of the shared bits still said "ineligible" (the old owner's), so
  // the main thread's "the new backend is ineligible too" looked like no change: the worker routed
  // to a backend in maint.
  const [a, b, c] = await startBackends(t, ['a', 'b', 'c']);
  const { ringlb, port } = await startInProcess(
    t,
    configOf({ backends: [{ id: 'a', address: a!.address, state: 'maint' }, { id: 'c', address: c!.address }] }),
  );
  const pool = ringlb.pool('web')!;
  const slotOfA = pool.slotOf('a');
  // Every worker picks (and so copies a's "ineligible" bit) at least once: 20 new source ports.
  assert.deepEqual(new Set(await backendsOfConnections(port, 20)), new Set(['c']));

  let result = await ringlb.reload(configOf({ backends: [{ id: 'c', address: c!.address }] }));
  assert.ok(result.ok, JSON.stringify(result));
  // The removed backend's slot is held for a fixed time (no connection counts on it then).
  await delay(SLOT_REUSE_DELAY_MS + 200);
  result = await ringlb.reload(configOf({ backends: [{ id: 'b', address: b!.address, state: 'maint' }, { id: 'c', address: c!.address }] }));
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(pool.slotOf('b'), slotOfA, 'b took the slot a left (the scenario needs the reuse)');
  assert.equal(pool.isRoutable(slotOfA), false);

  const names = await backendsOfConnections(port, 20);
  assert.deepEqual(new Set(names), new Set(['c']), `b is in maint: ${JSON.stringify(names)}`);
  assert.equal(b!.accepted(), 0);
});
