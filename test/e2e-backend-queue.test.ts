/**
 * Per-backend maxConnections with HAProxy-style queues (issue 10), through the real CLI against
 * real backends, with one data-plane thread and with `workers: 2` (Node with reusePort):
 * - a full backend: the next connection waits (queue depth 1 in /metrics and /v1/status) and is
 *   served when the place frees; how long it waited after the free is printed;
 * - a full queue ends a connection at once (`queue_full`), a queue timeout ends it (`queue_timeout`);
 * - round_robin takes another backend with room; maglev keeps the key's backend and waits for it;
 *   a waiter whose backend is drained chooses again;
 * - a reload that raises the limit lets waiting connections go at once.
 *
 * With two workers the kernel spreads connections over both (reusePort), so in some rounds the
 * waiting connection sits in the other worker than the one that frees the place: there only the
 * shared "released" epoch can wake it (backend-queue.ts). Six rounds make a round without such a
 * crossing unlikely (1 in 64 if the kernel spread them evenly); a missed wake-up fails the round's
 * 10 s wait.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { AdminClient, adminAddress } from './helpers/admin-client.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { readLine } from './helpers/clients.js';
import { scrape, scrapeUntil } from './helpers/metrics.js';
import { startRinglb, TempDir, type RinglbProcess } from './helpers/ringlb-process.js';
import { MULTI_WORKER, NO_REUSE_PORT } from './helpers/workers.js';

const temp = new TempDir();
after(() => temp.remove());

interface Started {
  readonly ringlb: RinglbProcess;
  readonly port: number;
  readonly admin: string;
}

function configOf(workers: number, pool: Record<string, unknown>): Record<string, unknown> {
  return {
    workers,
    admin: { bind: '127.0.0.1:0' },
    log: { level: 'info' },
    listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app' }],
    pools: [{ name: 'app', ...pool }],
  };
}

async function run(workers: number, pool: Record<string, unknown>): Promise<Started & { readonly configFile: string }> {
  const configFile = temp.writeJson(configOf(workers, pool));
  const { ringlb, ports } = await startRinglb(configFile, ['app']);
  try {
    return { ringlb, port: ports.get('app')!, admin: await adminAddress(ringlb), configFile };
  } catch (error) {
    await ringlb.kill();
    throw error;
  }
}

/** A client socket closed after the test whatever happens. */
function client(t: { after(fn: () => void): void }, port: number): Socket {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  return socket;
}

function closedWithin(socket: Socket, ms: number): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve(0);
    const timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - start);
    });
  });
}

const depthOf = (admin: string, backend: string) => async () => (await scrape(admin)).value('ringlb_backend_queue_depth', { pool: 'app', backend }) ?? 0;

for (const workers of [1, 2]) {
  describe(`backend queues (workers: ${workers})`, () => {
    const skip = (t: { skip(message: string): void }): boolean => {
      if (workers > 1 && !MULTI_WORKER) {
        t.skip(NO_REUSE_PORT);
        return true;
      }
      return false;
    };

    test('a full backend: the next connection waits, and is served when a place frees; a full queue ends one at once', { timeout: 90_000 }, async (t) => {
      if (skip(t)) return;
      const backend: NamedBackend = await startNamedBackend('q');
      t.after(() => backend.close());
      const { ringlb, port, admin } = await run(workers, {
        maxConnectionsPerBackend: 1,
        queue: { size: 1, timeoutMs: 10_000 },
        backends: [{ id: 'q', address: backend.address }],
      });
      t.after(() => ringlb.kill());
      const waits: number[] = [];
      let holder = client(t, port);
      assert.equal(await readLine(holder), 'q');
      for (let round = 0; round < 6; round++) {
        const waiter = client(t, port);
        await scrapeUntil(admin, (s) => s.value('ringlb_backend_queue_depth', { pool: 'app', backend: 'q' }) === 1, `round ${round}: one connection queued`);
        assert.equal(backend.open(), 1, 'the backend holds one connection, the limit');
        if (round === 0) {
          // The queue (size 1) is full: one more ends at once, without reaching the backend.
          const refused = client(t, port);
          await closedWithin(refused, 5000);
          const status = (await (await fetch(`http://${admin}/v1/status`)).json()) as { pools: Array<{ backends: Array<{ id: string; queueDepth: number }> }> };
          assert.equal(status.pools[0]!.backends.find((b) => b.id === 'q')!.queueDepth, 1, '/v1/status shows the queue');
        }
        const greeted = readLine(waiter, 10_000);
        const freedAt = performance.now();
        holder.destroy();
        assert.equal(await greeted, 'q', `round ${round}: the queued connection was served`);
        waits.push(performance.now() - freedAt);
        holder = waiter;
      }
      console.log(`# workers ${workers}: queued connection served ${waits.map((ms) => ms.toFixed(1)).join(', ')} ms after the place freed`);
      assert.ok(Math.max(...waits) < 2000, 'served promptly after the place freed');
      const scraped = await scrape(admin);
      assert.equal(scraped.sum('ringlb_listener_connections_total', { listener: 'app', outcome: 'queue_full' }), 1);
      assert.equal(scraped.value('ringlb_backend_queued_total', { pool: 'app', backend: 'q' }), 6);
      assert.equal(scraped.value('ringlb_backend_queue_depth', { pool: 'app', backend: 'q' }), 0);
      const full = ringlb.accessLines().filter((line) => line.outcome === 'queue_full');
      assert.equal(full.length, 1);
      assert.equal(full[0]!.backend, backend.address, 'the line names the full backend');
    });

    test('no place within queue.timeoutMs ends the connection (queue_timeout)', { timeout: 30_000 }, async (t) => {
      if (skip(t)) return;
      const backend = await startNamedBackend('q');
      t.after(() => backend.close());
      const { ringlb, port, admin } = await run(workers, {
        maxConnectionsPerBackend: 1,
        queue: { size: 10, timeoutMs: 300 },
        backends: [{ id: 'q', address: backend.address }],
      });
      t.after(() => ringlb.kill());
      const holder = client(t, port);
      assert.equal(await readLine(holder), 'q');
      const waiter = client(t, port);
      const waitedMs = await closedWithin(waiter, 5000);
      assert.ok(waitedMs >= 250, `ended after ${Math.round(waitedMs)} ms`);
      const line = await ringlb.waitForLine((l) => l.msg === 'connection closed' && l.outcome === 'queue_timeout', 5000, 'queue_timeout line');
      assert.equal(line.backend, backend.address);
      assert.equal((await scrape(admin)).sum('ringlb_listener_connections_total', { listener: 'app', outcome: 'queue_timeout' }), 1);
      assert.equal(await depthOf(admin, 'q')(), 0);
      assert.equal(backend.accepted(), 1, 'the timed-out connection never reached the backend');
    });

    test('round_robin takes another backend with room; maglev waits for the key’s backend', { timeout: 30_000 }, async (t) => {
      if (skip(t)) return;
      const x = await startNamedBackend('x');
      const y = await startNamedBackend('y');
      t.after(() => Promise.all([x.close(), y.close()]));
      // Weights 10:1: smooth round robin picks x twice in a row, so the second connection finds x full.
      const rr = await run(workers, {
        balance: 'round_robin',
        maxConnectionsPerBackend: 1,
        backends: [
          { id: 'x', address: x.address, weight: 10 },
          { id: 'y', address: y.address, weight: 1 },
        ],
      });
      t.after(() => rr.ringlb.kill());
      const first = client(t, rr.port);
      const second = client(t, rr.port);
      const names = [await readLine(first), await readLine(second)].sort();
      assert.deepEqual(names, ['x', 'y'], 'the full backend was passed over for the one with room');

      const mg = await run(workers, {
        balance: 'maglev',
        maxConnectionsPerBackend: 1,
        queue: { size: 5, timeoutMs: 10_000 },
        backends: [
          { id: 'x', address: x.address },
          { id: 'y', address: y.address },
        ],
      });
      t.after(() => mg.ringlb.kill());
      const home = client(t, mg.port);
      const homeName = await readLine(home);
      const other = homeName === 'x' ? 'y' : 'x';
      const sameKey = client(t, mg.port); // same source address: same key, same backend
      await scrapeUntil(mg.admin, (s) => s.value('ringlb_backend_queue_depth', { pool: 'app', backend: homeName }) === 1, 'queued for the key’s backend');
      assert.equal((await scrape(mg.admin)).value('ringlb_backend_queue_depth', { pool: 'app', backend: other }), 0);
      const greeted = readLine(sameKey, 10_000);
      home.destroy();
      assert.equal(await greeted, homeName, 'served by the key’s backend once it had room');

      // Redispatch: the key's backend full again, a connection waits for it, and the operator
      // drains it: the waiter chooses again and the key's next backend serves it.
      const again = client(t, mg.port); // sameKey still holds the home backend's one place
      await scrapeUntil(mg.admin, (s) => s.value('ringlb_backend_queue_depth', { pool: 'app', backend: homeName }) === 1, 'queued again');
      const redispatched = readLine(again, 10_000);
      const admin = new AdminClient(mg.admin);
      t.after(() => admin.close());
      const drained = await admin.request('PATCH', `/v1/pools/app/backends/${homeName}`, { body: { state: 'drain' } });
      assert.equal(drained.status, 200);
      assert.equal(await redispatched, other, 'the waiter went to the backend that still takes connections');
      assert.equal((await scrape(mg.admin)).value('ringlb_backend_queue_depth', { pool: 'app', backend: homeName }), 0);
    });

    test('a reload that raises maxConnectionsPerBackend lets the waiting connection go at once', { timeout: 30_000 }, async (t) => {
      if (skip(t)) return;
      const backend = await startNamedBackend('q');
      t.after(() => backend.close());
      const pool = { maxConnectionsPerBackend: 1, queue: { size: 5, timeoutMs: 20_000 }, backends: [{ id: 'q', address: backend.address }] };
      const { ringlb, port, admin, configFile } = await run(workers, pool);
      t.after(() => ringlb.kill());
      const holder = client(t, port);
      assert.equal(await readLine(holder), 'q');
      const waiter = client(t, port);
      await scrapeUntil(admin, (s) => s.value('ringlb_backend_queue_depth', { pool: 'app', backend: 'q' }) === 1, 'one connection queued');
      const greeted = readLine(waiter, 10_000);
      const since = ringlb.lines.length;
      writeFileSync(configFile, JSON.stringify(configOf(workers, { ...pool, maxConnectionsPerBackend: 2 })));
      ringlb.child.kill('SIGHUP');
      await ringlb.waitForLine((l) => l.msg === 'config reloaded', 10_000, 'config reloaded', since);
      assert.equal(await greeted, 'q', 'served while the first connection still holds its place');
      assert.equal(backend.open(), 2);
    });
  });
}
