/**
 * The admin connection cap (src/admin/connection-guard.ts) over real sockets, with a cap of 3: a
 * connection whose whole request is being answered is never cut; at the cap a newcomer evicts the
 * oldest connection that holds no complete request (idle keep-alive, or still sending headers),
 * and is refused only when every open connection is busy. Each eviction and refusal is counted.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { RuntimeAdminApi } from '../src/admin/runtime-api.js';
import { jsonResponse } from '../src/admin/router.js';
import { AdminServer } from '../src/admin/server.js';
import { parseHostPort } from '../src/config/host-port.js';
import type { HostPort } from '../src/backend.js';
import { Ringlb } from '../src/runtime.js';
import { LogCapture } from './helpers/log-capture.js';

const log = new LogCapture();
const sockets: Socket[] = [];
after(() => {
  for (const socket of sockets) socket.destroy();
});

function bind(): HostPort {
  const parsed = parseHostPort('127.0.0.1:0', { purpose: 'bind' });
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed;
}

/** A raw client that sends `text` and collects what comes back; `closed` resolves when the connection ends. */
async function rawClient(port: number, text: string): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  socket.on('error', () => undefined);
  let data = '';
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await once(socket, 'connect');
  socket.write(text);
  return { socket, received: () => data, closed };
}

/** Resolves once `text` has arrived on the client (bounded). */
async function waitForText(client: { socket: Socket; received: () => string }, text: string): Promise<void> {
  if (client.received().includes(text)) return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${JSON.stringify(text)} within 5 s; got ${JSON.stringify(client.received())}`)), 5000);
    const onData = (): void => {
      if (!client.received().includes(text)) return;
      clearTimeout(timer);
      client.socket.removeListener('data', onData);
      resolve();
    };
    client.socket.on('data', onData);
  });
}

test('cap 3: busy connections are kept, idle and slow ones evicted oldest first, a newcomer refused only when all are busy', { timeout: 30_000 }, async () => {
  const ringlb = new Ringlb({ logger: log.logger() });
  const server = new AdminServer({ bind: bind(), token: null, api: new RuntimeAdminApi(ringlb.adminView()), logger: log.logger(), limits: { maxConnections: 3 } });
  // A handler that answers when the test says so: a request that arrived whole and is in progress.
  const holds: Array<() => void> = [];
  let entered: () => void = () => undefined;
  server.route('GET', '/hold', async () => {
    await new Promise<void>((resolve) => {
      holds.push(resolve);
      entered();
    });
    return jsonResponse(200, { held: true });
  });
  const address = await server.listen();
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  try {
    const HOLD = 'GET /hold HTTP/1.1\r\nHost: x\r\n\r\n';
    const busy = [];
    for (let i = 0; i < 3; i++) {
      const inHandler = new Promise<void>((resolve) => (entered = resolve));
      busy.push(await rawClient(port, HOLD));
      await inHandler;
    }
    // All three busy: the fourth is refused (closed without an answer).
    const refused = await rawClient(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await refused.closed;
    assert.equal(refused.received(), '');
    assert.deepEqual(server.connectionCounts(), { evicted: 0, refused: 1, open: 3 });

    // The first busy one is answered and stays open, idle (keep-alive).
    holds.shift()!();
    await waitForText(busy[0]!, '{"held":true}');
    // A slow client arrives: the idle one is evicted (oldest without a complete request).
    const slow = await rawClient(port, 'GET /healthz HTTP/1.1\r\nHo');
    await busy[0]!.closed;
    assert.equal(server.connectionCounts().evicted, 1);
    // A fresh request evicts the slow one and is answered; the two busy ones are untouched.
    const fresh = await rawClient(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await slow.closed;
    await waitForText(fresh, '"status":"ok"');
    assert.match(fresh.received(), /^HTTP\/1\.1 200 /);
    const { evicted, refused: refusedCount } = server.connectionCounts();
    assert.deepEqual({ evicted, refused: refusedCount }, { evicted: 2, refused: 1 });
    assert.equal(busy[1]!.socket.destroyed || busy[2]!.socket.destroyed, false, 'busy connections kept');
    const line = await log.waitForLine((l) => l.msg === 'admin connection cap reached: slow or idle connections evicted', 5000, 'cap line');
    assert.equal(line.maxConnections, 3);

    for (const release of holds.splice(0)) release();
    await waitForText(busy[1]!, '{"held":true}');
    await waitForText(busy[2]!, '{"held":true}');
  } finally {
    for (const release of holds.splice(0)) release();
    await server.close();
  }
});
