/**
 * Backend host names are resolved off the hot path (issue 7): in process, with real loopback
 * backends, the real runtime and real health checks.
 *
 * - A `localhost:PORT` backend: connections and health checks make no `dns.lookup` at all (the
 *   spy is proven live by one connect by name of our own).
 * - An injected resolver is asked once for a name however many connections go through.
 * - A changed answer is picked up on `resolveIntervalMs` and logged old → new; an open connection
 *   keeps flowing to the old address; a failed resolution keeps the last good address (logged).
 */
import assert from 'node:assert/strict';
import dns from 'node:dns';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import type { RinglbConfig } from '../src/config/types.js';
import type { ResolvedAddress, ResolveHost } from '../src/discovery/name-resolver.js';
import { Ringlb } from '../src/runtime.js';
import { startNamedBackend } from './helpers/backends.js';
import { openClient, readLine, whichBackend } from './helpers/clients.js';
import { LogCapture } from './helpers/log-capture.js';

function configOf(raw: unknown): RinglbConfig {
  const result = validateConfig(raw);
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.config;
}

async function startRinglb(t: TestContext, config: RinglbConfig, log: LogCapture, resolveHost?: ResolveHost): Promise<Ringlb> {
  const ringlb = new Ringlb({ logger: log.logger(), resolveHost });
  t.after(() => ringlb.close());
  await ringlb.start(config);
  return ringlb;
}

function portOf(ringlb: Ringlb, listener: string): number {
  const address = ringlb.listenerAddress(listener)!;
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** Counts `dns.lookup` calls by host name: what `net.connect` calls for a host that is not an IP literal. */
function spyOnLookup(t: TestContext): Map<string, number> {
  const calls = new Map<string, number>();
  const original = dns.lookup;
  const spy = function (this: unknown, hostname: string, ...rest: unknown[]): unknown {
    calls.set(hostname, (calls.get(hostname) ?? 0) + 1);
    return (original as (...args: unknown[]) => unknown).call(this, hostname, ...rest);
  };
  dns.lookup = spy as typeof dns.lookup;
  t.after(() => {
    dns.lookup = original;
  });
  return calls;
}

/** Condition polling with a deadline, for counters that have no event (a health check ran). */
async function waitUntil(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A server that greets with `<name>\n` and echoes, on one loopback address. */
async function greeter(t: TestContext, name: string, host: string, port: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    if (server.listening) {
      server.close();
      await once(server, 'close');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return server;
}

/**
 * One port with a server on 127.0.0.1 and another on ::1, so a name's answer can move between
 * them while the backend's `name:port` stays the same (traffic stays on loopback).
 */
async function dualStackPair(t: TestContext): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const v4 = await greeter(t, 'v4', '127.0.0.1', 0);
    const port = (v4.address() as AddressInfo).port;
    try {
      await greeter(t, 'v6', '::1', port);
      return port;
    } catch {
      v4.close(); // the port is taken on ::1; try another
    }
  }
  throw new Error('no port free on both 127.0.0.1 and ::1 in 20 attempts');
}

describe('backend names are resolved off the hot path', () => {
  test('a localhost backend: connections and health checks make no dns.lookup', async (t) => {
    const backend = await startNamedBackend('named');
    t.after(() => backend.close());
    const log = new LogCapture();
    const config = configOf({
      listeners: [{ name: 'in', bind: '127.0.0.1:0', pool: 'p' }],
      pools: [
        {
          name: 'p',
          backends: [{ address: `localhost:${backend.port}` }],
          healthCheck: { type: 'tcp', intervalMs: 50, timeoutMs: 1000 },
        },
      ],
    });
    const lookups = spyOnLookup(t);
    const ringlb = await startRinglb(t, config, log);
    const resolved = await log.waitFor('backend name resolved', { host: 'localhost' });
    assert.equal(resolved.address, '127.0.0.1');
    const pool = ringlb.pool('p')!;
    const checksBefore = pool.health.stats().checksPassed;
    const port = portOf(ringlb, 'in');
    const connections = 100;
    for (let i = 0; i < connections; i += 1) assert.equal(await whichBackend({ port }), 'named');
    await waitUntil(() => pool.health.stats().checksPassed >= checksBefore + 3, 'three more health checks');
    assert.equal(lookups.get('localhost') ?? 0, 0, `${connections} connections and the checks looked up "localhost"`);
    assert.equal(backend.accepted() >= connections + 3, true);

    // The spy is live: a connect by name of our own goes through it.
    const direct = connect({ host: 'localhost', port: backend.port });
    await once(direct, 'connect');
    direct.destroy();
    assert.ok((lookups.get('localhost') ?? 0) >= 1, 'the dns.lookup spy saw no connect by name: it is not wired');
  });

  test('an injected resolver is asked once for a name, however many connections go through', async (t) => {
    const backend = await startNamedBackend('counted');
    t.after(() => backend.close());
    let asked = 0;
    const resolveHost: ResolveHost = async (name) => {
      assert.equal(name, 'backend.test');
      asked += 1;
      return [{ address: '127.0.0.1', family: 4 }];
    };
    const config = configOf({
      listeners: [{ name: 'in', bind: '127.0.0.1:0', pool: 'p' }],
      pools: [{ name: 'p', resolveIntervalMs: 0, backends: [{ address: `backend.test:${backend.port}` }] }],
    });
    const lookups = spyOnLookup(t);
    const ringlb = await startRinglb(t, config, new LogCapture(), resolveHost);
    const port = portOf(ringlb, 'in');
    for (let i = 0; i < 200; i += 1) assert.equal(await whichBackend({ port }), 'counted');
    assert.equal(asked, 1);
    assert.equal(lookups.get('backend.test') ?? 0, 0);
  });

  test('a changed answer is picked up on the interval; open connections keep theirs; a failure keeps the last address', async (t) => {
    const port = await dualStackPair(t);
    let answer: readonly ResolvedAddress[] | Error = [{ address: '127.0.0.1', family: 4 }];
    const resolveHost: ResolveHost = async () => {
      if (answer instanceof Error) throw answer;
      return answer;
    };
    const log = new LogCapture();
    const config = configOf({
      listeners: [{ name: 'in', bind: '127.0.0.1:0', pool: 'p' }],
      pools: [{ name: 'p', resolveIntervalMs: 50, backends: [{ address: `moving.test:${port}` }] }],
    });
    const ringlb = await startRinglb(t, config, log, resolveHost);
    const listenerPort = portOf(ringlb, 'in');
    assert.equal(await whichBackend({ port: listenerPort }), 'v4');

    const open: Socket = await openClient({ port: listenerPort });
    // Closing ringlb at the end resets this client: expected, not a test failure.
    open.on('error', () => open.destroy());
    t.after(() => open.destroy());
    assert.equal(await readLine(open), 'v4');

    let from = log.lines.length;
    answer = [{ address: '::1', family: 6 }];
    const changed = await log.waitFor('backend address changed', { host: 'moving.test' }, 10_000, from);
    assert.equal(changed.from, '127.0.0.1');
    assert.equal(changed.to, '::1');
    assert.equal(await whichBackend({ port: listenerPort }), 'v6');
    open.write('still here\n');
    assert.equal(await readLine(open), 'still here', 'the open connection keeps its backend socket');

    from = log.lines.length;
    answer = Object.assign(new Error('getaddrinfo ENOTFOUND moving.test'), { code: 'ENOTFOUND' });
    const failed = await log.waitFor('backend name does not resolve: keeping the last address', { host: 'moving.test' }, 10_000, from);
    assert.equal(failed.error, 'ENOTFOUND');
    assert.equal(failed.keeping, '::1');
    assert.equal(await whichBackend({ port: listenerPort }), 'v6');

    from = log.lines.length;
    answer = [{ address: '127.0.0.1', family: 4 }];
    await log.waitFor('backend name resolves again', { host: 'moving.test' }, 10_000, from);
    const back = await log.waitFor('backend address changed', { host: 'moving.test' }, 10_000, from);
    assert.equal(back.from, '::1');
    assert.equal(back.to, '127.0.0.1');
    assert.equal(await whichBackend({ port: listenerPort }), 'v4');
    assert.equal(
      log.lines.filter((line) => line.msg === 'backend name does not resolve: keeping the last address').length,
      1,
      'a failure streak is logged once, not once per interval',
    );
  });
});
