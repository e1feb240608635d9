/**
 * Honest state under panic (issue 7), in process with real loopback backends, real active checks
 * and the real admin API over HTTP:
 *
 * - In panic a dead backend is reported `healthy: false` and `routable: true` because of panic
 *   (never as healthy), the pool view says how many are healthy and how many routable, and the
 *   outage (every backend down) is logged once, with its recovery, although panic keeps routing.
 * - At start-up, a pool with one dead backend of three does not enter panic while the two others
 *   are still pending their first check.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import type { RinglbConfig } from '../src/config/types.js';
import { Ringlb } from '../src/runtime.js';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { whichBackend } from './helpers/clients.js';
import { LogCapture } from './helpers/log-capture.js';

function configOf(raw: unknown): RinglbConfig {
  const result = validateConfig(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.config;
}

async function getJson(ringlb: Ringlb, path: string): Promise<Record<string, unknown>> {
  const response = await fetch(`http://${ringlb.adminAddress()!}${path}`);
  assert.equal(response.status, 200, `GET ${path}`);
  return (await response.json()) as Record<string, unknown>;
}

function portOf(ringlb: Ringlb, listener: string): number {
  const address = ringlb.listenerAddress(listener)!;
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/**
 * A send_expect target that holds every check's reply until `release()`: its first check stays
 * pending for as long as the test needs (no timing guess).
 */
async function heldBackend(t: TestContext): Promise<{ port: number; release(): void }> {
  let released = false;
  const waiting = new Set<Socket>();
  const open = new Set<Socket>();
  const server: Server = createServer((socket) => {
    open.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      waiting.delete(socket);
      open.delete(socket);
    });
    socket.once('data', () => {
      if (released) socket.end('pong');
      else waiting.add(socket);
    });
  });
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  t.after(async () => {
    // Every socket, held or not yet: a test that failed before release() must still end.
    server.close();
    for (const socket of open) socket.destroy();
    if (server.listening || open.size > 0) await once(server, 'close');
  });
  return {
    port: (server.address() as AddressInfo).port,
    release() {
      released = true;
      for (const socket of waiting) socket.end('pong');
      waiting.clear();
    },
  };
}

/**
 * Listener `in` on pool `p`, which panics below half of its backends healthy: the set-up both
 * tests share. Returns the config and a Ringlb (closed after the test) that logs into `log`.
 */
function panicPool(
  t: TestContext,
  backends: ReadonlyArray<{ id: string; address: string }>,
  healthCheck: Record<string, unknown>,
  settings: Record<string, unknown> = {},
): { config: RinglbConfig; ringlb: Ringlb; log: LogCapture } {
  const log = new LogCapture();
  const config = configOf({
    listeners: [{ name: 'in', bind: '127.0.0.1:0', pool: 'p' }],
    pools: [{ name: 'p', panicThreshold: 0.5, backends, healthCheck }],
    ...settings,
  });
  const ringlb = new Ringlb({ logger: log.logger() });
  t.after(() => ringlb.close());
  return { config, ringlb, log };
}

describe('honest state under panic', () => {
  test('a dead backend in panic is unhealthy and routable because of panic; the outage is logged once, and its end', async (t) => {
    const backends: NamedBackend[] = [await startNamedBackend('a'), await startNamedBackend('b')];
    t.after(() => Promise.all(backends.map((backend) => backend.close())));
    const { config, ringlb, log } = panicPool(
      t,
      backends.map((backend) => ({ id: backend.name, address: backend.address })),
      { type: 'tcp', intervalMs: 50, timeoutMs: 1000, rise: 1, fall: 1 },
      { admin: { bind: '127.0.0.1:0' } },
    );
    await ringlb.start(config);

    const healthy = (await getJson(ringlb, '/v1/pools')).pools as Array<Record<string, unknown>>;
    assert.deepEqual(healthy, [{ name: 'p', balance: 'round_robin', source: 'static', backends: 2, healthy: 2, routable: 2, panic: false }]);

    const ports = backends.map((backend) => backend.port);
    for (const backend of backends) await backend.close();
    const outage = await log.waitFor('pool has no healthy backend', { pool: 'p' });
    assert.equal(outage.panic, true);
    assert.equal(outage.routable, 2);
    await log.waitFor('pool in panic: routing over every active backend, healthy or not', { pool: 'p' });

    const pools = (await getJson(ringlb, '/v1/pools')).pools as Array<Record<string, unknown>>;
    assert.deepEqual(pools, [{ name: 'p', balance: 'round_robin', source: 'static', backends: 2, healthy: 0, routable: 2, panic: true }]);
    const views = (await getJson(ringlb, '/v1/pools/p/backends')).backends as Array<Record<string, unknown>>;
    for (const view of views) {
      assert.deepEqual(view.health, { healthy: false, flags: ['failed_active_check'], routable: true, routableBecause: 'panic' }, `backend ${String(view.id)}`);
    }
    const stats = ringlb.pool('p')!.health.stats();
    assert.deepEqual([stats.healthy, stats.routable, stats.panic], [0, 2, true]);

    // One backend comes back on its port: the outage ends (logged once), panic ends, and it is healthy.
    const revived = await startNamedBackend('a', { port: ports[0] });
    t.after(() => revived.close());
    const recovery = await log.waitFor('pool has healthy backends again', { pool: 'p' });
    assert.equal(recovery.healthy, 1);
    await log.waitFor('pool left panic', { pool: 'p' });
    const a = (await getJson(ringlb, '/v1/pools/p/backends/a')).health;
    assert.deepEqual(a, { healthy: true, flags: [], routable: true, routableBecause: 'healthy' });
    const b = (await getJson(ringlb, '/v1/pools/p/backends/b')).health;
    assert.deepEqual(b, { healthy: false, flags: ['failed_active_check'], routable: false, routableBecause: null });
    assert.equal(await whichBackend({ port: portOf(ringlb, 'in') }), 'a');
    assert.equal(log.count('pool has no healthy backend'), 1, 'the outage is logged once, not per check');
  });

  test('at start-up, one dead backend of three does not enter panic while the others are pending', async (t) => {
    const held = [await heldBackend(t), await heldBackend(t)];
    const dead = await closedPort();
    const { config, ringlb, log } = panicPool(
      t,
      [
        { id: 'dead', address: `127.0.0.1:${dead}` },
        { id: 'held-1', address: `127.0.0.1:${held[0]!.port}` },
        { id: 'held-2', address: `127.0.0.1:${held[1]!.port}` },
      ],
      { type: 'send_expect', send: 'ping', expect: 'pong', intervalMs: 100, timeoutMs: 20_000, rise: 1, fall: 1 },
    );
    // start() waits for the first check round (warming), which the held backends hold back.
    const started = ringlb.start(config);

    const down = await log.waitFor('backend down', { pool: 'p', id: 'dead' });
    assert.equal(down.reason, 'ECONNREFUSED');
    const pool = ringlb.pool('p')!;
    assert.equal(pool.health.pendingCount(), 2, 'the two live backends are still pending');
    let stats = pool.health.stats();
    assert.equal(stats.panic, false, 'one dead backend must not be the whole panic base');
    assert.equal(log.count('pool in panic: routing over every active backend, healthy or not'), 0);
    assert.equal(log.count('pool has no healthy backend'), 0, 'not an outage while backends are pending');
    assert.equal(log.count('pool has no routable backend: new connections fail'), 0, 'warming is not an outage either');

    for (const backend of held) backend.release();
    await started;
    await log.waitFor('backend up', { pool: 'p', id: 'held-1' });
    await log.waitFor('backend up', { pool: 'p', id: 'held-2' });
    stats = pool.health.stats();
    assert.deepEqual([stats.healthy, stats.routable, stats.panic, stats.panicsEntered], [2, 2, false, 0]);
    assert.equal(log.count('pool in panic: routing over every active backend, healthy or not'), 0);
    assert.equal(log.count('pool has no routable backend: new connections fail'), 0, 'no false outage at any point of the start');
  });
});
