/**
 * `admin.limits` through the real CLI over real sockets: the connection cap, the header deadline,
 * the body and header size limits each hold with the configured value; a reload that changes them
 * applies them to the running admin listener without rebinding it or cutting a request in flight;
 * `ringlb check` refuses a headers deadline past the request deadline with its JSON path and
 * `ringlb diff` lists a changed limit.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { AdminClient, adminAddress } from './helpers/admin-client.js';
import { scrape } from './helpers/metrics.js';
import { runCli, startRinglb, TempDir } from './helpers/ringlb-process.js';

const temp = new TempDir();
const sockets: Socket[] = [];
after(() => {
  for (const socket of sockets) socket.destroy();
  temp.remove();
});

function configWith(limits: Record<string, number>): Record<string, unknown> {
  return {
    admin: { bind: '127.0.0.1:0', limits },
    listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app' }],
    pools: [{ name: 'app', balance: 'maglev', discovery: { type: 'registration' } }],
    log: { level: 'info' },
    workers: 1,
  };
}

interface RawClient {
  readonly socket: Socket;
  received(): string;
  /** Resolves once `text` has arrived (fails after `timeoutMs`, a bound for a hung test, not a measurement). */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  readonly closed: Promise<void>;
}

/** A raw connection to `address` that sends `text` (may be a partial request) and collects the answer. */
async function rawClient(address: string, text: string): Promise<RawClient> {
  const colon = address.lastIndexOf(':');
  const socket = connect({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)) });
  sockets.push(socket);
  socket.on('error', () => undefined); // an evicted or cut socket may read a reset
  let data = '';
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await once(socket, 'connect');
  if (text !== '') socket.write(text);
  const has = (wanted: string | RegExp): boolean => (typeof wanted === 'string' ? data.includes(wanted) : wanted.test(data));
  return {
    socket,
    received: () => data,
    closed,
    waitFor: (wanted, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        if (has(wanted)) return resolve();
        const timer = setTimeout(() => reject(new Error(`no ${String(wanted)} within ${timeoutMs} ms; got ${JSON.stringify(data)}`)), timeoutMs);
        const onData = (): void => {
          if (!has(wanted)) return;
          clearTimeout(timer);
          socket.removeListener('data', onData);
          resolve();
        };
        socket.on('data', onData);
      }),
  };
}

/** A registration PUT whose body is padded to `bodyBytes` (an unknown key the route refuses with 400 once it has read it). */
function registrationWithBody(bodyBytes: number, extraHeaders = ''): string {
  const prefix = '{"address":"127.0.0.1:9","padding":"';
  const body = `${prefix}${'x'.repeat(bodyBytes - prefix.length - 2)}"}`;
  return `PUT /v1/pools/app/backends/b1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${extraHeaders}Connection: close\r\n\r\n${body}`;
}

/** A GET whose headers total about `headerBytes` (one long header). */
function getWithHeaders(headerBytes: number): string {
  return `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Padding: ${'p'.repeat(headerBytes)}\r\nConnection: close\r\n\r\n`;
}

const PARTIAL_HEADERS = 'GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ';

/**
 * Sends a partial header and waits until ringlb answers 408 and closes. Returns the ms it took:
 * callers compare it with the default deadline (5 s) with a wide margin, to tell which deadline cut.
 */
async function headerDeadline(address: string): Promise<number> {
  const started = performance.now();
  const slow = await rawClient(address, PARTIAL_HEADERS);
  await slow.closed;
  assert.match(slow.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
  return performance.now() - started;
}

describe('admin.limits at start', () => {
  const limits = { maxConnections: 4, headersTimeoutMs: 500, maxBodyBytes: 2048, maxHeaderBytes: 4096 };

  test('cap 4: four slowloris sockets cannot keep a fifth client from GET /v1/status; the evictions are counted', { timeout: 60_000 }, async (t) => {
    // The default 5 s header deadline: the slow sockets must still be open when the fifth arrives.
    const { ringlb } = await startRinglb(temp.writeJson(configWith({ maxConnections: 4 })), ['app']);
    t.after(() => ringlb.kill());
    const address = await adminAddress(ringlb);

    // Four connections that never finish their headers: exactly the cap.
    const slow = await Promise.all(Array.from({ length: 4 }, () => rawClient(address, PARTIAL_HEADERS)));
    const fifth = await rawClient(address, 'GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await fifth.waitFor('"pools"');
    assert.match(fifth.received(), /^HTTP\/1\.1 200 /);
    // The oldest slow one made room.
    await Promise.race(slow.map((client) => client.closed));
    for (const socket of slow) socket.socket.destroy();

    const metrics = await scrape(address);
    assert.ok(metrics.sum('ringlb_admin_connections_closed_total', { reason: 'evicted' }) >= 1, 'an eviction was counted');
    assert.equal(metrics.sum('ringlb_admin_connections_closed_total', { reason: 'refused' }), 0);
    const cap = await ringlb.waitForLine((l) => l.msg === 'admin connection cap reached: slow or idle connections evicted', 10_000, 'cap line');
    assert.equal(cap.maxConnections, 4);
  });

  test('cap 6: event streams may take at most 3 connections (503 beyond), so /v1/status and /metrics stay reachable', { timeout: 60_000 }, async (t) => {
    const { ringlb } = await startRinglb(temp.writeJson(configWith({ maxConnections: 6 })), ['app']);
    t.after(() => ringlb.kill());
    const address = await adminAddress(ringlb);
    const stream = 'GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n';
    const streams = await Promise.all(Array.from({ length: 3 }, () => rawClient(address, stream)));
    await Promise.all(streams.map((client) => client.waitFor(': ringlb events')));
    const fourth = await rawClient(address, stream);
    await fourth.closed;
    assert.match(fourth.received(), /^HTTP\/1\.1 503 /);
    assert.match(fourth.received(), /at most 3/);
    for (let i = 0; i < 3; i++) {
      const status = await rawClient(address, 'GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await status.closed;
      assert.match(status.received(), /^HTTP\/1\.1 200 /);
    }
    const metrics = await scrape(address);
    assert.equal(metrics.sum('ringlb_admin_connections_closed_total', { reason: 'refused' }), 0);
    for (const client of streams) client.socket.destroy();
  });

  test('a reload lowering the cap to 4 ends event streams above its 2, so other clients still get in', { timeout: 60_000 }, async (t) => {
    const file = temp.writeJson(configWith({ maxConnections: 6 }));
    const { ringlb } = await startRinglb(file, ['app']);
    t.after(() => ringlb.kill());
    const address = await adminAddress(ringlb);
    const streams = await Promise.all(Array.from({ length: 3 }, () => rawClient(address, 'GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n')));
    await Promise.all(streams.map((client) => client.waitFor(': ringlb events')));
    const since = ringlb.lines.length;
    writeFileSync(file, JSON.stringify(configWith({ maxConnections: 4 })));
    ringlb.child.kill('SIGHUP');
    await ringlb.waitForLine((l) => l.msg === 'admin limits applied', 10_000, 'admin limits applied', since);
    await Promise.race(streams.map((client) => client.closed));
    const status = await rawClient(address, 'GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await status.closed;
    assert.match(status.received(), /^HTTP\/1\.1 200 /);
    for (const client of streams) client.socket.destroy();
  });

  test('headersTimeoutMs 500: a partial header gets 408 and the socket is closed; bodies over 2048 bytes 413, headers over 4096 bytes 431', { timeout: 60_000 }, async (t) => {
    const { ringlb } = await startRinglb(temp.writeJson(configWith(limits)), ['app']);
    t.after(() => ringlb.kill());
    const address = await adminAddress(ringlb);

    const elapsed = await headerDeadline(address);
    t.diagnostic(`408 after ${Math.round(elapsed)} ms`);
    // 500 ms plus at most one 250 ms sweep; the default deadline would be 5000 ms. 4000 leaves a loaded machine room.
    assert.ok(elapsed < 4000, `408 after ${Math.round(elapsed)} ms: the configured deadline (500 ms), not the default (5000 ms)`);

    const big = await rawClient(address, registrationWithBody(3000));
    await big.closed;
    assert.match(big.received(), /^HTTP\/1\.1 413 /);
    assert.match(big.received(), /body of 3000 bytes exceeds the limit of 2048 bytes/);
    // Under the limit the body is read: the route answers about its content.
    const small = await rawClient(address, registrationWithBody(1500));
    await small.closed;
    assert.match(small.received(), /^HTTP\/1\.1 400 /);
    assert.match(small.received(), /padding/);

    const bigHeaders = await rawClient(address, getWithHeaders(6000));
    await bigHeaders.closed;
    assert.match(bigHeaders.received(), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    const smallHeaders = await rawClient(address, getWithHeaders(2000));
    await smallHeaders.closed;
    assert.match(smallHeaders.received(), /^HTTP\/1\.1 200 /);
    assert.equal(ringlb.child.exitCode, null, ringlb.stderr);
  });
});

describe('admin.limits on reload', () => {
  test('a reload applies changed limits in place: same listener, a keep-alive socket and a request in flight survive, the new limits hold', { timeout: 60_000 }, async (t) => {
    const before = { keepAliveTimeoutMs: 60_000 };
    const file = temp.writeJson(configWith(before));
    const { ringlb } = await startRinglb(file, ['app']);
    t.after(() => ringlb.kill());
    const address = await adminAddress(ringlb);

    // Defaults in force: a 3000-byte body and 6000 bytes of headers are read.
    const body = await rawClient(address, registrationWithBody(3000));
    await body.closed;
    assert.match(body.received(), /^HTTP\/1\.1 400 /);
    const headers = await rawClient(address, getWithHeaders(6000));
    await headers.closed;
    assert.match(headers.received(), /^HTTP\/1\.1 200 /);

    // A keep-alive connection that has been answered once, and a request whose body is half sent.
    const keepAlive = await rawClient(address, 'GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n');
    await keepAlive.waitFor('"pools"');
    const registration = '{"address":"127.0.0.1:9"}';
    const inFlight = await rawClient(
      address,
      `PUT /v1/pools/app/backends/b1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${registration.length}\r\nConnection: close\r\n\r\n${registration.slice(0, 10)}`,
    );

    const limits = { keepAliveTimeoutMs: 30_000, headersTimeoutMs: 500, maxBodyBytes: 2048 };
    const since = ringlb.lines.length;
    writeFileSync(file, JSON.stringify(configWith(limits)));
    ringlb.child.kill('SIGHUP');
    const applied = await ringlb.waitForLine((l) => l.msg === 'admin limits applied', 10_000, 'admin limits applied', since);
    assert.equal((applied.limits as Record<string, number>).maxBodyBytes, 2048);
    await ringlb.waitForLine((l) => l.msg === 'config reloaded', 10_000, 'config reloaded', since);
    assert.equal(ringlb.lines.slice(since).filter((l) => l.msg === 'admin ready' || l.msg === 'admin listening').length, 0, 'the admin listener was not restarted');

    // The request in flight completes on its connection; the keep-alive connection still serves.
    inFlight.socket.write(registration.slice(10));
    await inFlight.closed;
    assert.match(inFlight.received(), /^HTTP\/1\.1 20[01] /);
    keepAlive.socket.write('GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await keepAlive.closed;
    assert.equal(keepAlive.received().match(/HTTP\/1\.1 200 /g)?.length, 2, 'both requests answered on the one connection');

    // The new limits hold.
    const bigBody = await rawClient(address, registrationWithBody(3000));
    await bigBody.closed;
    assert.match(bigBody.received(), /^HTTP\/1\.1 413 /);
    const elapsed = await headerDeadline(address);
    t.diagnostic(`408 after ${Math.round(elapsed)} ms`);
    // The sweep keeps the interval it started with (1 s at the 5 s default): 500 ms + 1 s, far below 5 s.
    assert.ok(elapsed < 4000, `408 after ${Math.round(elapsed)} ms: the reloaded deadline (500 ms), not the old one (5000 ms)`);
    assert.equal(ringlb.child.exitCode, null, ringlb.stderr);
  });

  test('a reload that changes maxHeaderBytes restarts the admin listener (Node takes it only at createServer); the new limit holds', { timeout: 30_000 }, async (t) => {
    const file = temp.writeJson(configWith({}));
    const { ringlb } = await startRinglb(file, ['app']);
    t.after(() => ringlb.kill());
    const address = await adminAddress(ringlb);
    const headers = await rawClient(address, getWithHeaders(6000));
    await headers.closed;
    assert.match(headers.received(), /^HTTP\/1\.1 200 /);
    const since = ringlb.lines.length;
    writeFileSync(file, JSON.stringify(configWith({ maxHeaderBytes: 4096 })));
    ringlb.child.kill('SIGHUP');
    // Bound to port 0: the new listener has a port of its own.
    const ready = await ringlb.waitForLine((l) => l.msg === 'admin ready', 10_000, 'admin ready again', since);
    const restarted = String(ready.address);
    await ringlb.waitForLine((l) => l.msg === 'config reloaded', 10_000, 'config reloaded', since);
    assert.equal(ringlb.lines.slice(since).filter((l) => l.msg === 'admin limits applied').length, 0, 'not applied in place');
    const bigHeaders = await rawClient(restarted, getWithHeaders(6000));
    await bigHeaders.closed;
    assert.match(bigHeaders.received(), /^HTTP\/1\.1 431 /);
    const admin = new AdminClient(restarted);
    t.after(() => admin.close());
    assert.equal((await admin.request('GET', '/v1/status')).status, 200, 'the restarted listener serves');
  });

  test('a reload with headersTimeoutMs above requestTimeoutMs is refused naming the path; the admin listener keeps running', { timeout: 30_000 }, async (t) => {
    const file = temp.writeJson(configWith({}));
    const { ringlb } = await startRinglb(file, ['app']);
    t.after(() => ringlb.kill());
    const address = await adminAddress(ringlb);
    const since = ringlb.lines.length;
    writeFileSync(file, JSON.stringify(configWith({ headersTimeoutMs: 20_000 })));
    ringlb.child.kill('SIGHUP');
    const refused = await ringlb.waitForLine((l) => l.msg === 'config reload refused', 10_000, 'config reload refused', since);
    assert.match(JSON.stringify(refused), /admin\.limits\.headersTimeoutMs/);
    const admin = new AdminClient(address);
    t.after(() => admin.close());
    assert.equal((await admin.request('GET', '/v1/status')).status, 200, 'the admin listener keeps running with the old limits');
  });
});

describe('admin.limits in the CLI', () => {
  test('ringlb check: headersTimeoutMs above requestTimeoutMs → exit 2 naming admin.limits.headersTimeoutMs', async () => {
    const { status, stderr } = await runCli(['check', '--config', temp.writeJson(configWith({ headersTimeoutMs: 6000, requestTimeoutMs: 5000 }))]);
    assert.equal(status.code, 2, stderr);
    assert.match(stderr, /admin\.limits\.headersTimeoutMs: must not exceed admin\.limits\.requestTimeoutMs \(5000\), got 6000/);
  });

  test('ringlb diff lists a changed limit like any other setting', async () => {
    const { status, stdout, stderr } = await runCli(['diff', temp.writeJson(configWith({})), temp.writeJson(configWith({ maxConnections: 64 }))]);
    assert.notEqual(status.code, 2, stderr);
    assert.match(stdout, /^config: admin\.limits\.maxConnections: 1024 → 64$/m);
  });
});
