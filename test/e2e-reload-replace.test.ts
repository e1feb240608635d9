/**
 * Every kind of pool replacement by reload, end to end with health checks (in-process Ringlb, real
 * backends and clients on 127.0.0.1): balance, hashKey, maglev.tableSize on maglev,
 * ringHash.pointsPerWeight on ring_hash, and growth past the slot capacity. For each:
 * - the reload applies whole: the pool is rebuilt in place and the admin token, changed in the
 *   same reload, changes too; nothing is logged at error level;
 * - what the old pool knew carries over: a backend that was down before the reload is still down
 *   the moment the reload returns (a fresh pool would have believed it up);
 * - long-lived connections opened before the reload still flow after drainTimeoutMs has passed
 *   (only backends that left the set drain);
 * - killing a backend after the reload gets it marked down: the checks run on the rebuilt pool.
 * And a registration pool growing past 256 slots keeps its connections to backends still registered.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Socket } from 'node:net';
import { validateConfig } from '../src/config/load.js';
import type { Backend } from '../src/backend.js';
import type { RinglbConfig } from '../src/config/types.js';
import { Ringlb } from '../src/runtime.js';
import { AdminClient } from './helpers/admin-client.js';
import { LogCapture } from './helpers/log-capture.js';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { openClient, readLine, whichBackend } from './helpers/clients.js';


/** Short, so the test can let it pass; a cut connection would show within it. */
const DRAIN_TIMEOUT_MS = 300;
const CLIENTS = 8;

interface Kind {
  readonly name: string;
  readonly before: Record<string, unknown>;
  readonly after: Record<string, unknown>;
  /** Extra backends in the new config (growth). */
  readonly extraBackends?: number;
  /** Health check settings changed in the same reload (a new health owner starts from the old one's verdicts). */
  readonly healthAfter?: Record<string, unknown>;
  readonly reason: RegExp;
}

const KINDS: readonly Kind[] = [
  {
    name: 'balance (and health check settings)',
    before: { balance: 'round_robin' },
    after: { balance: 'maglev' },
    healthAfter: { rise: 2, initialHealthy: true },
    reason: /^balance round_robin → maglev$/,
  },
  { name: 'hashKey', before: { balance: 'maglev' }, after: { balance: 'maglev', hashKey: 'source_ip_port' }, reason: /^hashKey changed/ },
  { name: 'maglev.tableSize', before: { balance: 'maglev' }, after: { balance: 'maglev', maglev: { tableSize: 1021 } }, reason: /^maglev\.tableSize changed$/ },
  {
    name: 'ringHash.pointsPerWeight',
    before: { balance: 'ring_hash' },
    after: { balance: 'ring_hash', ringHash: { pointsPerWeight: 40 } },
    reason: /^ringHash\.pointsPerWeight changed$/,
  },
  { name: 'growth past the slot capacity', before: { balance: 'least_connections' }, after: { balance: 'least_connections' }, extraBackends: 300, reason: /the pool grows$/ },
];

function configOf(raw: unknown): RinglbConfig {
  const result = validateConfig(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.config;
}

async function echoes(socket: Socket, text: string): Promise<boolean> {
  socket.write(`${text}\n`);
  try {
    return (await readLine(socket, 5000)) === text;
  } catch {
    return false;
  }
}

function hostPort(text: string): Backend['address'] {
  const [host, port] = text.split(':') as [string, string];
  return { host, port: Number(port), text };
}

function routableById(ringlb: Ringlb, id: string): boolean {
  const pool = ringlb.pool('app')!;
  const slot = pool.slotOf(id);
  return slot >= 0 && pool.isRoutable(slot);
}

async function startBackends(t: TestContext, names: readonly string[]): Promise<NamedBackend[]> {
  const backends = await Promise.all(names.map((name) => startNamedBackend(name)));
  t.after(() => Promise.all(backends.map((backend) => backend.close())));
  return backends;
}

describe('reload: every kind of pool replacement applies whole, keeps health and connections', () => {
  for (const kind of KINDS) {
    test(kind.name, async (t) => {
      const [a, b, c] = await startBackends(t, ['a', 'b', 'c']);
      const deadPort = await closedPort();
      const log = new LogCapture();
      const version = (n: 1 | 2): unknown => ({
        admin: { bind: '127.0.0.1:0', token: n === 1 ? 'first-token-0123456789' : 'second-token-0123456789' },
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }],
        pools: [
          {
            name: 'app',
            ...(n === 1 ? kind.before : kind.after),
            backends: [
              { id: 'a', address: a!.address },
              { id: 'b', address: b!.address },
              { id: 'c', address: c!.address },
              { id: 'dead', address: `127.0.0.1:${deadPort}` },
              // Unreachable and out of rotation (weight 0, maint: never checked) — only slots.
              ...Array.from({ length: n === 2 ? (kind.extraBackends ?? 0) : 0 }, (_, i) => ({
                id: `filler-${i}`,
                address: `127.0.0.1:${deadPort}`,
                weight: 0,
                state: 'maint',
              })),
            ],
            healthCheck: { type: 'tcp', intervalMs: 100, unhealthyIntervalMs: 100, timeoutMs: 1000, rise: 1, fall: 1, ...(n === 2 ? kind.healthAfter : {}) },
          },
        ],
        drainTimeoutMs: DRAIN_TIMEOUT_MS,
      });
      const ringlb = new Ringlb({ logger: log.logger() });
      t.after(() => ringlb.close());
      await ringlb.start(configOf(version(1)));
      const port = Number(ringlb.listenerAddress('web')!.split(':').at(-1));
      // Warming settled every backend; `dead` failed its first check.
      assert.equal(routableById(ringlb, 'dead'), false);
      assert.equal(routableById(ringlb, 'a') && routableById(ringlb, 'b') && routableById(ringlb, 'c'), true);

      const held: Socket[] = [];
      t.after(() => held.forEach((socket) => socket.destroy()));
      const heldOn: string[] = [];
      for (let i = 0; i < CLIENTS; i++) {
        const socket = await openClient({ port, localAddress: `127.0.7.${i + 1}` });
        // Killing c below ends the connections it holds; that is expected, not a failure.
        socket.on('error', () => undefined);
        held.push(socket);
        heldOn.push(await readLine(socket));
      }
      const pool = ringlb.pool('app');
      const capacity = pool!.capacity;

      const since = log.lines.length;
      const result = await ringlb.reload(configOf(version(2)));
      assert.ok(result.ok, JSON.stringify(result));
      const poolPlan = result.plan.pools.find((p) => p.name === 'app')!;
      assert.equal(poolPlan.action, 'replace');
      assert.match(poolPlan.reason, kind.reason);
      // Rebuilt in place, and what the old pool knew holds at once: `dead` is still down.
      assert.equal(ringlb.pool('app'), pool);
      assert.equal(routableById(ringlb, 'dead'), false, 'a backend known down stays down through the reload');
      assert.deepEqual(ringlb.pool('app')!.health.stats().flags.dead, ['failed_active_check']);
      if (kind.extraBackends !== undefined) {
        assert.ok(ringlb.pool('app')!.capacity > capacity, `capacity ${ringlb.pool('app')!.capacity}`);
        assert.equal(ringlb.pool('app')!.backends.length, 4 + kind.extraBackends);
      }
      assert.equal(ringlb.pool('app')!.policy, (kind.after.balance as string) ?? 'round_robin');

      // The rest of the same reload applied too: the admin API answers the new token only.
      const adminReady = await log.waitForLine((l) => l.msg === 'admin ready', 10_000, 'admin ready', since);
      const admin = new AdminClient(String(adminReady.address), 'second-token-0123456789');
      t.after(() => admin.close());
      assert.equal((await admin.request('GET', '/v1/pools')).status, 200);
      assert.equal((await admin.request('GET', '/v1/pools', { token: 'first-token-0123456789' })).status, 401);

      // drainTimeoutMs passes (the condition under test is time itself); every old connection still flows.
      await delay(DRAIN_TIMEOUT_MS * 2);
      for (const [i, socket] of held.entries()) assert.equal(await echoes(socket, `after reload ${i}`), true, `connection ${i} to ${heldOn[i]}`);
      assert.deepEqual(log.lines.filter((l) => l.msg === 'drain deadline: connections cut'), []);
      assert.deepEqual(log.lines.filter((l) => (l.level as number) >= 50), [], 'errors logged');

      // Checks run on the rebuilt pool: a backend killed now is marked down.
      const killedAt = log.lines.length;
      await c!.close();
      await log.waitForLine((l) => l.msg === 'backend down' && l.id === 'c', 10_000, 'backend c down', killedAt);
      assert.equal(routableById(ringlb, 'c'), false);
      for (let i = 0; i < 6; i++) {
        const reached = await whichBackend({ port, localAddress: `127.0.8.${i + 1}` });
        assert.ok(reached === 'a' || reached === 'b', `reached ${reached}`);
      }
    });
  }

  test('a registration pool growing past 256 slots keeps connections to backends still registered', async (t) => {
    const [a, b] = await startBackends(t, ['a', 'b']);
    const deadPort = await closedPort();
    const log = new LogCapture();
    const ringlb = new Ringlb({ logger: log.logger() });
    t.after(() => ringlb.close());
    await ringlb.start(
      configOf({
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }],
        admin: { bind: '127.0.0.1:0' },
        pools: [{ name: 'app', balance: 'round_robin', discovery: { type: 'registration' }, healthCheck: { type: 'tcp', intervalMs: 100, timeoutMs: 1000, rise: 1, fall: 1 } }],
        drainTimeoutMs: DRAIN_TIMEOUT_MS,
      }),
    );
    const port = Number(ringlb.listenerAddress('web')!.split(':').at(-1));
    ringlb.registrations.register('app', 'a', { address: hostPort(a!.address), weight: 1, ttlMs: null });
    ringlb.registrations.register('app', 'b', { address: hostPort(b!.address), weight: 1, ttlMs: null });
    await log.waitForLine((l) => l.msg === 'backend up' && l.id === 'b', 10_000, 'b up', 0);
    await log.waitForLine((l) => l.msg === 'backend up' && l.id === 'a', 10_000, 'a up', 0);
    const held: Socket[] = [];
    t.after(() => held.forEach((socket) => socket.destroy()));
    for (let i = 0; i < 10; i++) {
      const socket = await openClient({ port });
      socket.on('error', () => undefined);
      held.push(socket);
      await readLine(socket);
    }
    const pool = ringlb.pool('app')!;
    const capacity = pool.capacity;
    for (let i = 0; i <= capacity; i++) {
      ringlb.registrations.register('app', `filler-${String(i).padStart(4, '0')}`, { address: hostPort(`127.0.0.1:${deadPort}`), weight: 0, ttlMs: null });
    }
    const grown = await log.waitForLine((l) => l.msg === 'pool grown: more backend slots', 10_000, 'pool grown', 0);
    assert.ok((grown.to as number) > capacity);
    assert.equal(ringlb.pool('app'), pool);
    await delay(DRAIN_TIMEOUT_MS * 2);
    for (const [i, socket] of held.entries()) assert.equal(await echoes(socket, `still ${i}`), true, `connection ${i}`);
    assert.deepEqual(log.lines.filter((l) => l.msg === 'drain deadline: connections cut'), []);
    // Health carried over: a and b stay up (no pending round), and checks still run: kill b.
    assert.equal(routableById(ringlb, 'a') && routableById(ringlb, 'b'), true);
    const killedAt = log.lines.length;
    await b!.close();
    await log.waitForLine((l) => l.msg === 'backend down' && l.id === 'b', 10_000, 'backend b down', killedAt);
    for (let i = 0; i < 4; i++) assert.equal(await whichBackend({ port }), 'a');
  });
});
