/**
 * Backends that fail without dying (issue 10), through the real CLI against real backends:
 * - a frozen backend (SIGSTOP: its kernel still completes handshakes) under 200 connections/s is
 *   ejected by response timeouts, while the two healthy ones keep serving and the listener never
 *   fills;
 * - a backend that answers and then resets mid-stream is ejected (resets count);
 * - a half-closed connection to a frozen backend ends after the client-fin timeout, and one whose
 *   backend finished while the client stays ends after the server-fin timeout;
 * - those are inactivity timeouts (as HAProxy's): a reply streaming to a client that half-closed,
 *   and an upload to a backend that half-closed, run three times the timeout and are not cut.
 * Each runs with one data-plane thread, and with `workers: 2` where this Node has reusePort.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { adminAddress } from './helpers/admin-client.js';
import { startHalfClosingBackend, startNamedBackend, startResettingBackend } from './helpers/backends.js';
import { readLine } from './helpers/clients.js';
import { request, startFreezableBackend, type FreezableBackend } from './helpers/freezable-backend.js';
import { scrape, scrapeUntil } from './helpers/metrics.js';
import { startRinglb, TempDir, type RinglbProcess } from './helpers/ringlb-process.js';
import { MULTI_WORKER, NO_REUSE_PORT } from './helpers/workers.js';

const temp = new TempDir();
after(() => temp.remove());

const MODES: ReadonlyArray<{ readonly workers: number }> = [{ workers: 1 }, { workers: 2 }];

function skipUnlessRunnable(t: { skip(message: string): void }, workers: number): boolean {
  if (workers > 1 && !MULTI_WORKER) {
    t.skip(NO_REUSE_PORT);
    return true;
  }
  return false;
}

async function run(config: Record<string, unknown>): Promise<{ ringlb: RinglbProcess; port: number; admin: string }> {
  const { ringlb, ports } = await startRinglb(temp.writeJson(config), ['app']);
  try {
    return { ringlb, port: ports.get('app')!, admin: await adminAddress(ringlb) };
  } catch (error) {
    await ringlb.kill();
    throw error;
  }
}

/** Chunks sent 100 ms apart: ten times more often than the 1000 ms half-close timeouts below, 3 s in all. */
const TRICKLE_CHUNKS = 30;
const TRICKLE_EVERY_MS = 100;
const TRICKLE_FIN_TIMEOUT_MS = 1000;

/** Sends `chunk` TRICKLE_CHUNKS times, TRICKLE_EVERY_MS apart, then ends (or destroys, if the socket closed). */
function trickle(socket: Socket, chunk: string): Promise<void> {
  return new Promise((resolve) => {
    let sent = 0;
    const timer = setInterval(() => {
      if (socket.destroyed) {
        clearInterval(timer);
        resolve();
        return;
      }
      socket.write(chunk);
      if (++sent === TRICKLE_CHUNKS) {
        clearInterval(timer);
        socket.end();
        resolve();
      }
    }, TRICKLE_EVERY_MS);
  });
}

/** After the client's request (one line), streams its reply slowly, then ends. */
async function startTricklingBackend(): Promise<{ address: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.once('data', () => void trickle(socket, 'x'.repeat(100)));
    socket.resume();
  });
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A client of a startHalfClosingBackend through ringlb, once it has read the greeting and the backend's FIN; its own side stays open. */
async function connectPastBackendFin(t: { after(fn: () => void): void }, port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  const ended = new Promise<void>((resolve) => socket.once('end', resolve));
  assert.equal(await readLine(socket), 'hc');
  socket.resume(); // readLine leaves the socket paused; the FIN is read after the line
  await ended;
  return socket;
}

for (const { workers } of MODES) {
  describe(`backends that fail without dying (workers: ${workers})`, () => {
    test('a frozen backend under 200 connections/s is ejected; the healthy two keep serving and the listener never fills', { timeout: 60_000 }, async (t) => {
      if (skipUnlessRunnable(t, workers)) return;
      const backends: FreezableBackend[] = [];
      try {
        for (const name of ['a', 'b', 'c']) backends.push(await startFreezableBackend(name));
        const [a, b, frozen] = backends as [FreezableBackend, FreezableBackend, FreezableBackend];
        const { ringlb, port, admin } = await run({
          workers,
          admin: { bind: '127.0.0.1:0' },
          log: { level: 'info' },
          // Small enough that connections held by the frozen backend would fill it within the run.
          listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app', maxConnections: 150 }],
          pools: [
            {
              name: 'app',
              balance: 'round_robin',
              responseTimeoutMs: 300,
              outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 60_000 },
              backends: backends.map((backend) => ({ id: backend.name, address: backend.address })),
            },
          ],
        });
        t.after(() => ringlb.kill());
        for (let i = 0; i < 6; i++) assert.match(await request(port, 5000), /^[abc]$/);

        await frozen.freeze();
        // 200 connections/s for 3 s: 600 requests, each given 3 s for its reply.
        const RATE_GAP_MS = 5;
        const COUNT = 600;
        const results: Array<{ startedAt: number; reply: string | null; error: string | null }> = [];
        const pending: Promise<void>[] = [];
        const loopStart = Date.now();
        for (let i = 0; i < COUNT && Date.now() - loopStart < 10_000; i++) {
          const record = { startedAt: Date.now(), reply: null as string | null, error: null as string | null };
          results.push(record);
          pending.push(
            request(port, 3000).then(
              (reply) => void (record.reply = reply),
              (error: Error) => void (record.error = error.message),
            ),
          );
          await new Promise((resolve) => setTimeout(resolve, RATE_GAP_MS));
        }
        const ejected = await ringlb.waitForLine((line) => line.msg === 'backend ejected' && line.id === 'c', 10_000, 'c ejected');
        await Promise.all(pending);
        assert.equal(ejected.lastFailure, 'response_timeout', 'the streak that ejected it ended with a response timeout');

        // The verdict reaches every thread at its next pick; connections started a moment after
        // the ejection line must all have been served by the healthy two.
        const ejectedAt = Number(ejected.time);
        const afterEjection = results.filter((r) => r.startedAt > ejectedAt + 100);
        assert.ok(afterEjection.length > 100, `enough requests after the ejection (${afterEjection.length} of ${results.length})`);
        const failedAfter = afterEjection.filter((r) => r.error !== null);
        assert.deepEqual(failedAfter, [], 'no request failed after the frozen backend was ejected');
        assert.ok(afterEjection.every((r) => r.reply === 'a' || r.reply === 'b'));
        const failedOnHealthy = ringlb.accessLines().filter((line) => line.outcome !== 'ok' && (line.backend === a.address || line.backend === b.address));
        assert.deepEqual(failedOnHealthy, [], 'no failed connection on a healthy backend');

        const scraped = await scrapeUntil(admin, (s) => (s.value('ringlb_backend_ejections_total', { pool: 'app', backend: 'c' }) ?? 0) >= 1, 'c ejection counted');
        assert.ok(scraped.sum('ringlb_backend_response_timeouts_total', { backend: 'c' }) >= 3);
        assert.equal(scraped.sum('ringlb_backend_response_timeouts_total', { backend: 'a' }) + scraped.sum('ringlb_backend_response_timeouts_total', { backend: 'b' }), 0);
        assert.equal(scraped.sum('ringlb_listener_connections_total', { listener: 'app', outcome: 'rejected_max_connections' }), 0, 'the listener never filled');
        assert.ok(scraped.sum('ringlb_listener_connections_total', { listener: 'app', outcome: 'response_timeout' }) >= 3);
        console.log(`# frozen backend: ${results.length} requests, ${results.filter((r) => r.error !== null).length} failed before the ejection, ejected after ${ejectedAt - loopStart} ms`);
      } finally {
        for (const backend of backends) backend.thaw();
        await Promise.all(backends.map((backend) => backend.close()));
      }
    });

    test('a backend that answers, then resets mid-stream, is ejected (resets count)', { timeout: 30_000 }, async (t) => {
      if (skipUnlessRunnable(t, workers)) return;
      const resetting = await startResettingBackend('r');
      const healthy = await startNamedBackend('h');
      t.after(() => Promise.all([resetting.close(), healthy.close()]));
      const { ringlb, port, admin } = await run({
        workers,
        admin: { bind: '127.0.0.1:0' },
        log: { level: 'info' },
        listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app' }],
        pools: [
          {
            name: 'app',
            balance: 'round_robin',
            outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 60_000 },
            backends: [
              { id: 'r', address: resetting.address },
              { id: 'h', address: healthy.address },
            ],
          },
        ],
      });
      t.after(() => ringlb.kill());
      // Each client reads the greeting (the backend answered), then sends a byte: r resets, h echoes.
      let resets = 0;
      for (let i = 0; i < 40 && resets < 3; i++) {
        const socket = connect({ host: '127.0.0.1', port });
        socket.on('error', () => {}); // the reset, passed on to us
        try {
          const greeting = await readLine(socket);
          const ended = new Promise((resolve) => socket.once('close', resolve)); // not once(): it rejects on the reset's 'error'
          socket.write('x');
          if (greeting === 'r') {
            await ended;
            resets += 1;
          }
        } finally {
          socket.destroy();
        }
      }
      assert.equal(resets, 3, 'three connections to the resetting backend were cut');
      const ejected = await ringlb.waitForLine((line) => line.msg === 'backend ejected' && line.id === 'r', 10_000, 'r ejected');
      assert.equal(ejected.lastFailure, 'reset');
      const scraped = await scrapeUntil(admin, (s) => s.sum('ringlb_backend_resets_total', { backend: 'r' }) >= 3, 'resets counted');
      assert.equal(scraped.value('ringlb_backend_ejections_total', { pool: 'app', backend: 'r' }), 1);
      assert.equal(scraped.sum('ringlb_backend_resets_total', { backend: 'h' }), 0);
      const status = (await (await fetch(`http://${admin}/v1/status`)).json()) as {
        pools: Array<{ backends: Array<{ id: string; failures: { resets: number; responseTimeouts: number }; ejections: number }> }>;
      };
      const r = status.pools[0]!.backends.find((backend) => backend.id === 'r')!;
      assert.equal(r.failures.resets, scraped.sum('ringlb_backend_resets_total', { backend: 'r' }), '/v1/status reads the same count as /metrics');
      assert.equal(r.failures.responseTimeouts, 0);
      assert.equal(r.ejections, 1);
      // Ejected: every new connection goes to h.
      for (let i = 0; i < 4; i++) {
        const socket = connect({ host: '127.0.0.1', port });
        try {
          assert.equal(await readLine(socket), 'h');
        } finally {
          socket.destroy();
        }
      }
    });

    test('a half-closed connection to a frozen backend ends after clientFinTimeoutMs', { timeout: 30_000 }, async (t) => {
      if (skipUnlessRunnable(t, workers)) return;
      const frozen = await startFreezableBackend('f');
      try {
        const { ringlb, port, admin } = await run({
          workers,
          admin: { bind: '127.0.0.1:0' },
          log: { level: 'info' },
          listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app', clientFinTimeoutMs: 400 }],
          pools: [{ name: 'app', backends: [{ id: 'f', address: frozen.address }] }],
        });
        t.after(() => ringlb.kill());
        await frozen.freeze();
        const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
        try {
          await once(socket, 'connect');
          let errorCode: string | undefined;
          socket.on('error', (error: NodeJS.ErrnoException) => (errorCode = error.code));
          socket.on('data', () => {});
          // Not events.once: it rejects on the 'error' (the reset) that comes before 'close'.
          const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
          // The client gives up and half-closes, as the probe's clients did.
          socket.end('ping\n');
          const finAt = performance.now();
          await closed;
          const heldMs = performance.now() - finAt;
          assert.ok(heldMs >= 350 && heldMs < 5000, `closed ${Math.round(heldMs)} ms after the client's FIN`);
          assert.equal(errorCode, 'ECONNRESET', 'a reset: the client must not read the cut as a complete reply');
        } finally {
          socket.destroy();
        }
        const [line] = await ringlb.waitForAccessLines(1);
        assert.equal(line!.outcome, 'client_fin_timeout');
        const scraped = await scrape(admin);
        assert.equal(scraped.sum('ringlb_listener_connections_total', { listener: 'app', outcome: 'client_fin_timeout' }), 1);
        // Not the backend's fault on its own: no response timeout configured, nothing ejected.
        assert.equal(scraped.sum('ringlb_backend_ejections_total', { backend: 'f' }), 0);
      } finally {
        frozen.thaw();
        await frozen.close();
      }
    });

    test('the backend half-closed and the client never finishes: closed after serverFinTimeoutMs', { timeout: 30_000 }, async (t) => {
      if (skipUnlessRunnable(t, workers)) return;
      const backend = await startHalfClosingBackend('hc');
      t.after(() => backend.close());
      const { ringlb, port, admin } = await run({
        workers,
        admin: { bind: '127.0.0.1:0' },
        log: { level: 'info' },
        listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app' }],
        pools: [{ name: 'app', serverFinTimeoutMs: 400, backends: [{ id: 'hc', address: backend.address }] }],
      });
      t.after(() => ringlb.kill());
      const socket = await connectPastBackendFin(t, port);
      // We keep our side open, as a client that never finishes. After serverFinTimeoutMs of silence
      // ringlb cuts both sides: a reset to the backend (which never had our FIN), a close to us (we
      // had its FIN already, so we would learn of the cut only by writing).
      const line = await ringlb.waitForLine((l) => l.msg === 'connection closed', 5000, 'access line');
      assert.equal(line.outcome, 'server_fin_timeout');
      assert.ok(Number(line.durationMs) >= 400 && Number(line.durationMs) < 5000, `closed after ${line.durationMs} ms`);
      assert.equal(await backend.ended, 'reset', 'the backend learns the stream was cut');
      const scraped = await scrape(admin);
      assert.equal(scraped.value('ringlb_listener_active_connections', { listener: 'app' }), 0, 'its place under maxConnections is free');
      assert.equal(scraped.sum('ringlb_listener_connections_total', { listener: 'app', outcome: 'server_fin_timeout' }), 1);
    });

    test('a reply streaming to a half-closed client outlives clientFinTimeoutMs (inactivity, not a deadline)', { timeout: 30_000 }, async (t) => {
      if (skipUnlessRunnable(t, workers)) return;
      const backend = await startTricklingBackend();
      t.after(() => backend.close());
      const { ringlb, port } = await run({
        workers,
        admin: { bind: '127.0.0.1:0' },
        log: { level: 'info' },
        listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app', clientFinTimeoutMs: TRICKLE_FIN_TIMEOUT_MS }],
        pools: [{ name: 'app', backends: [{ id: 's', address: backend.address }] }],
      });
      t.after(() => ringlb.kill());
      const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      socket.on('error', () => {});
      t.after(() => socket.destroy());
      let received = 0;
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
      const ended = once(socket, 'end');
      // The request and the FIN at once, as `nc -N` or an HTTP/1.0 client sends them.
      socket.end('GET /big\n');
      await ended;
      assert.equal(received, TRICKLE_CHUNKS * 100, 'the whole reply arrived');
      const line = await ringlb.waitForLine((l) => l.msg === 'connection closed', 5000, 'access line');
      assert.equal(line.outcome, 'ok');
      assert.ok(Number(line.durationMs) > TRICKLE_FIN_TIMEOUT_MS * 2, `it ran ${line.durationMs} ms`);
    });

    test('an upload to a backend that half-closed outlives serverFinTimeoutMs', { timeout: 30_000 }, async (t) => {
      if (skipUnlessRunnable(t, workers)) return;
      const backend = await startHalfClosingBackend('hc');
      t.after(() => backend.close());
      const { ringlb, port } = await run({
        workers,
        admin: { bind: '127.0.0.1:0' },
        log: { level: 'info' },
        listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app' }],
        pools: [{ name: 'app', serverFinTimeoutMs: TRICKLE_FIN_TIMEOUT_MS, backends: [{ id: 'hc', address: backend.address }] }],
      });
      t.after(() => ringlb.kill());
      const socket = await connectPastBackendFin(t, port); // from here on only our upload moves
      await trickle(socket, 'y'.repeat(100));
      assert.equal((await backend.received).length, TRICKLE_CHUNKS * 100, 'the backend received the whole upload');
      const line = await ringlb.waitForLine((l) => l.msg === 'connection closed', 5000, 'access line');
      assert.equal(line.outcome, 'ok');
    });
  });
}
