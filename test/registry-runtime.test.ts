/**
 * The registry and the runtime's live changes, in process with real loopback sockets: the
 * registry's diff (unchanged sets cost nothing, one `pool updated` per change, source errors
 * logged once), removed backends draining (open connections flow, then are cut at
 * drainTimeoutMs), pools growing past their slot capacity, reload as a diff (a replaced pool keeps
 * old connections, a bind failure refuses everything), and start-up warming.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import type { Backend } from '../src/backend.js';
import type { RinglbConfig } from '../src/config/types.js';
import type { RebuildReport } from '../src/core/types.js';
import type { DiscoveryListener, DiscoverySource } from '../src/discovery/types.js';
import { RegistrationStore } from '../src/discovery/registration-store.js';
import { Registry } from '../src/registry/registry.js';
import { Ringlb } from '../src/runtime.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { closed, openClient, readLine, whichBackend } from './helpers/clients.js';
import { LogCapture } from './helpers/log-capture.js';

function configOf(raw: unknown): RinglbConfig {
  const result = validateConfig(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.config;
}

function hostPort(text: string): Backend['address'] {
  const [host, port] = text.split(':') as [string, string];
  return { host, port: Number(port), text };
}

function backend(address: string, id = address, weight = 1): Backend {
  return { id, address: hostPort(address), weight, state: 'active' };
}

async function startBackends(t: TestContext, names: readonly string[]): Promise<NamedBackend[]> {
  const backends = await Promise.all(names.map((name) => startNamedBackend(name)));
  t.after(() => Promise.all(backends.map((b) => b.close())));
  return backends;
}

async function startRinglb(t: TestContext, config: RinglbConfig, log: LogCapture): Promise<Ringlb> {
  const ringlb = new Ringlb({ logger: log.logger() });
  await ringlb.start(config);
  t.after(() => ringlb.close());
  return ringlb;
}

function portOf(ringlb: Ringlb, listener: string): number {
  const address = ringlb.listenerAddress(listener)!;
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** Send a line and read the echo (the connection still flows end to end). */
async function echoes(socket: import('node:net').Socket, text: string): Promise<boolean> {
  socket.write(`${text}\n`);
  return (await readLine(socket)) === text;
}

// ---------------------------------------------------------------------------------------------

class FakeSource implements DiscoverySource {
  readonly kind = 'file' as const;
  readonly description = 'fake';
  listener: DiscoveryListener | null = null;
  stopped = false;
  start(listener: DiscoveryListener): void {
    this.listener = listener;
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
}

describe('Registry', () => {
  function harness(): { registry: Registry; source: FakeSource; applied: Backend[][]; log: LogCapture; store: RegistrationStore } {
    const log = new LogCapture();
    const source = new FakeSource();
    const applied: Backend[][] = [];
    let current: readonly Backend[] = [];
    const store = new RegistrationStore();
    const registry = new Registry({
      logger: log.logger(),
      store,
      createSource: () => source,
      host: {
        currentBackends: (pool) => (pool === 'app' ? current : undefined),
        applyBackends: (_pool, backends): RebuildReport => {
          applied.push([...backends]);
          const before = new Set(current.map((b) => b.id));
          const after = new Set(backends.map((b) => b.id));
          current = backends;
          return {
            changed: true,
            slots: new Map(),
            added: [...after].filter((id) => !before.has(id)),
            removed: [...before].filter((id) => !after.has(id)),
            reweighted: [],
            buildMs: 0.5,
            movedShare: 0.25,
          };
        },
      },
    });
    return { registry, source, applied, log, store };
  }

  test('a changed set is applied and logged once; the same set again (any order) costs nothing', async () => {
    const { registry, source, applied, log } = harness();
    await registry.watch('app', { type: 'file', path: '/nowhere.json' });
    assert.equal(registry.sourceOf('app'), 'file');
    source.listener!.onUpdate([backend('127.0.0.1:2'), backend('127.0.0.1:1')]);
    assert.equal(applied.length, 1);
    assert.deepEqual(applied[0].map((b) => b.id), ['127.0.0.1:1', '127.0.0.1:2'], 'sorted by id');
    const line = await log.waitFor('pool updated');
    assert.deepEqual(
      { pool: line.pool, source: line.source, added: line.added, removed: line.removed, movedShare: line.movedShare, backends: line.backends },
      { pool: 'app', source: 'file', added: ['127.0.0.1:1', '127.0.0.1:2'], removed: [], movedShare: 0.25, backends: 2 },
    );
    source.listener!.onUpdate([backend('127.0.0.1:1'), backend('127.0.0.1:2')]);
    assert.equal(applied.length, 1, 'an unchanged set is not applied');
    source.listener!.onUpdate([backend('127.0.0.1:1', '127.0.0.1:1', 3), backend('127.0.0.1:2')]);
    assert.equal(applied.length, 2, 'a weight change is applied');
    assert.equal(log.count('pool updated'), 2);
    await registry.stop();
    assert.equal(source.stopped, true);
  });

  test('errors and recoveries are logged; a replaced subscription is ignored', async () => {
    const { registry, source, applied, log } = harness();
    await registry.watch('app', { type: 'file', path: '/nowhere.json' });
    const first = source.listener!;
    first.onError(new Error('file gone'));
    const error = await log.waitFor('discovery error');
    assert.deepEqual([error.pool, error.source, error.err, error.level], ['app', 'file', 'file gone', 'warn']);
    first.onRecovered!();
    await log.waitFor('discovery recovered', { pool: 'app', source: 'file' });
    await registry.watch('app', { type: 'static' });
    assert.equal(source.stopped, true);
    assert.equal(registry.sourceOf('app'), 'static');
    first.onUpdate([backend('127.0.0.1:1')]);
    assert.equal(applied.length, 0, 'a stopped source cannot change the pool');
    await registry.stop();
  });

  test('registration pools follow the store', async () => {
    const { registry, applied, store } = harness();
    await registry.watch('app', { type: 'registration' });
    assert.equal(registry.sourceOf('app'), 'registration');
    store.register('app', 'web-1', { address: hostPort('127.0.0.1:7001'), weight: 1, ttlMs: null });
    assert.deepEqual(applied.at(-1)?.map((b) => b.id), ['web-1']);
    store.register('app', 'web-1', { address: hostPort('127.0.0.1:7001'), weight: 1, ttlMs: null });
    assert.equal(applied.length, 1, 'a renewal that changes nothing is not applied');
    store.deregister('app', 'web-1');
    assert.deepEqual(applied.at(-1), []);
    await registry.stop();
    store.close();
  });
});

describe('runtime: live membership', () => {
  test('a removed backend drains: its open connection flows, new ones go elsewhere, then it is cut at drainTimeoutMs', async (t) => {
    const [a, b] = await startBackends(t, ['a', 'b']);
    const log = new LogCapture();
    const ringlb = await startRinglb(
      t,
      configOf({
        // One thread: the drain deadline's log line comes from the thread holding the connection,
        // and this test reads the main thread's log (worker threads write theirs to stdout).
        workers: 1,
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }],
        pools: [{ name: 'app', discovery: { type: 'registration' } }],
        admin: { bind: '127.0.0.1:0' },
        drainTimeoutMs: 400,
      }),
      log,
    );
    await log.waitFor('admin ready');
    const port = portOf(ringlb, 'web');
    ringlb.registrations.register('app', 'a', { address: hostPort(a.address), weight: 1, ttlMs: null });
    await log.waitFor('pool updated', { pool: 'app', source: 'registration' });
    const held = await openClient({ port });
    // Teardown closes the backends first: the reset that reaches this client then is expected.
    held.on('error', () => undefined);
    t.after(() => held.destroy());
    assert.equal(await readLine(held), 'a');

    ringlb.registrations.register('app', 'b', { address: hostPort(b.address), weight: 1, ttlMs: null });
    ringlb.registrations.deregister('app', 'a');
    // The runtime's store batches changes: both land in one update once the window closes.
    await ringlb.registrations.settled();
    const updates = log.lines.filter((line) => line.msg === 'pool updated');
    assert.deepEqual(updates.at(-1)?.removed, ['a']);
    for (let i = 0; i < 5; i++) assert.equal(await whichBackend({ port }), 'b');
    assert.equal(await echoes(held, 'still flowing'), true, 'the drained connection keeps flowing');

    const cutAt = performance.now();
    await closed(held, 5000);
    await log.waitFor('drain deadline: connections cut', { cut: 1 });
    assert.ok(performance.now() - cutAt < 2000);
    assert.equal(a.open(), 0);
  });

  test('a set larger than the slot capacity grows the pool in place; routing continues', async (t) => {
    const [a] = await startBackends(t, ['a']);
    const log = new LogCapture();
    const ringlb = await startRinglb(
      t,
      configOf({
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }],
        pools: [{ name: 'app', balance: 'ring_hash', ringHash: { pointsPerWeight: 4 }, discovery: { type: 'registration' } }],
        admin: { bind: '127.0.0.1:0' },
      }),
      log,
    );
    const capacity = ringlb.pool('app')!.capacity;
    const first = ringlb.pool('app');
    // Weight 0 keeps the unreachable fillers out of every pick; only `a` takes traffic.
    for (let i = 0; i <= capacity; i++) {
      ringlb.registrations.register('app', `filler-${String(i).padStart(4, '0')}`, { address: hostPort(`127.0.0.1:${10000 + i}`), weight: 0, ttlMs: null });
    }
    ringlb.registrations.register('app', 'a', { address: hostPort(a.address), weight: 1, ttlMs: null });
    const grown = await log.waitFor('pool grown: more backend slots', { pool: 'app' });
    assert.ok((grown.to as number) > capacity);
    // Rebuilt in place: the same pool (health, connections) with more slots.
    assert.equal(ringlb.pool('app'), first);
    assert.equal(ringlb.pool('app')!.capacity, grown.to);
    assert.equal(ringlb.pool('app')!.backends.length, capacity + 2);
    assert.equal(await whichBackend({ port: portOf(ringlb, 'web') }), 'a');
  });

  test('start-up warming: a pool with pending checks binds its listener after the first round', async (t) => {
    const [a] = await startBackends(t, ['a']);
    const log = new LogCapture();
    const ringlb = await startRinglb(
      t,
      configOf({
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }],
        pools: [{ name: 'app', backends: [{ address: a.address }], healthCheck: { intervalMs: 60000, timeoutMs: 500 } }],
      }),
      log,
    );
    const warmed = log.lines.findIndex((line) => line.msg === 'pool warmed');
    const ready = log.lines.findIndex((line) => line.msg === 'listener ready');
    assert.ok(warmed >= 0 && warmed < ready, 'warmed before the listener binds');
    assert.deepEqual([log.lines[warmed].healthy, log.lines[warmed].routable, log.lines[warmed].total], [1, 1, 1]);
    assert.equal(await whichBackend({ port: portOf(ringlb, 'web') }), 'a', 'the first client is served');
  });
});

describe('runtime: reload', () => {
  const base = (a: NamedBackend, b: NamedBackend, extra: Record<string, unknown> = {}): unknown => ({
    listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }],
    pools: [
      { name: 'app', balance: 'round_robin', backends: [{ address: a.address }, { address: b.address }], ...extra },
      { name: 'other', backends: [{ address: b.address }] },
    ],
    drainTimeoutMs: 5000,
  });

  test('a policy change rebuilds the pool in place; an open connection keeps flowing; the other pool is untouched', async (t) => {
    const [a, b] = await startBackends(t, ['a', 'b']);
    const log = new LogCapture();
    const ringlb = await startRinglb(t, configOf(base(a, b)), log);
    const port = portOf(ringlb, 'web');
    const held = await openClient({ port });
    // Teardown closes the backends first: the reset that reaches this client then is expected.
    held.on('error', () => undefined);
    t.after(() => held.destroy());
    await readLine(held);
    const before = ringlb.pool('app');
    const other = ringlb.pool('other');

    const result = await ringlb.reload(configOf(base(a, b, { balance: 'maglev' })));
    assert.equal(result.ok, true);
    const reloaded = await log.waitFor('config reloaded');
    assert.deepEqual(
      [reloaded.listenersAdded, reloaded.listenersRemoved, reloaded.poolsChanged, reloaded.poolsUnchanged],
      [[], [], ['app'], ['other']],
    );
    const updated = await log.waitFor('pool updated', { pool: 'app', source: 'config' });
    // round_robin → maglev: no client had a fixed backend before, so every one gets a new home.
    assert.equal(updated.movedShare, 1);
    assert.equal(ringlb.pool('app'), before, 'the pool object (health, connections) stays');
    assert.equal(ringlb.pool('other'), other, 'unchanged pools are untouched');
    assert.equal(ringlb.pool('app')!.policy, 'maglev');
    assert.equal(await echoes(held, 'after reload'), true);
    assert.equal(portOf(ringlb, 'web'), port, 'the listener kept its socket');
  });

  test('a membership change drains the removed backend; a listener is added and one removed', async (t) => {
    const [a, b] = await startBackends(t, ['a', 'b']);
    const log = new LogCapture();
    const ringlb = await startRinglb(t, configOf(base(a, b)), log);
    const next = base(a, b) as { listeners: object[]; pools: { backends: object[] }[] };
    next.pools[0].backends = [{ address: b.address }];
    next.listeners = [{ name: 'web2', bind: '127.0.0.1:0', pool: 'app' }];
    const result = await ringlb.reload(configOf(next));
    assert.deepEqual(result.ok ? [result.summary.listenersAdded, result.summary.listenersRemoved] : result.errors, [['web2'], ['web']]);
    const updated = await log.waitFor('pool updated', { pool: 'app' });
    assert.deepEqual(updated.removed, [a.address]);
    assert.equal(ringlb.listenerAddress('web'), undefined);
    for (let i = 0; i < 3; i++) assert.equal(await whichBackend({ port: portOf(ringlb, 'web2') }), 'b');
  });

  test('a listener that cannot bind refuses the whole reload: nothing changes', async (t) => {
    const [a, b] = await startBackends(t, ['a', 'b']);
    const blocker = createServer().listen({ host: '127.0.0.1', port: 0 });
    await once(blocker, 'listening');
    t.after(() => blocker.close());
    const taken = (blocker.address() as AddressInfo).port;
    const log = new LogCapture();
    const ringlb = await startRinglb(t, configOf(base(a, b)), log);
    const before = ringlb.pool('app');
    const next = base(a, b, { balance: 'maglev' }) as { listeners: object[] };
    next.listeners = [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }, { name: 'clash', bind: `127.0.0.1:${taken}`, pool: 'app' }];
    const result = await ringlb.reload(configOf(next));
    assert.equal(result.ok, false);
    const refused = await log.waitFor('config reload refused');
    assert.match(String((refused.errors as string[])[0]), /^listeners\[1\]\.bind: /);
    assert.equal(refused.level, 'error');
    assert.equal(ringlb.pool('app'), before);
    assert.equal(ringlb.pool('app')!.policy, 'round_robin');
    assert.equal(ringlb.listenerAddress('clash'), undefined);
    assert.equal(log.count('config reloaded'), 0);
  });
});
