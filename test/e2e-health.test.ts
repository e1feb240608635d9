/**
 * Fault detection and failover end to end: the CLI as a child process, real loopback backends
 * (named echo servers, redis-server, node:http), clients over 127.0.0.x. Every wait is on a log line
 * or a socket event; every loop is bounded in count. Intervals are 100 ms so each scenario takes a
 * few seconds.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { startClientLoop } from './helpers/client-loop.js';
import { closed, openClient, readLine, whichBackend } from './helpers/clients.js';
import { configOf, type RawHealthCheck, type RawPool } from './helpers/config.js';
import { startRinglb, TempDir, type LogLine, type RinglbProcess } from './helpers/ringlb-process.js';

const INTERVAL_MS = 100;
const FAST_CHECK: RawHealthCheck = { intervalMs: INTERVAL_MS, timeoutMs: 100, jitter: 0, rise: 2, fall: 2 };

const temp = new TempDir();
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.remove();
});

async function backendsNamed(...names: string[]): Promise<NamedBackend[]> {
  const started = await Promise.all(names.map((name) => startNamedBackend(name)));
  for (const backend of started) cleanups.push(() => backend.close());
  return started;
}

/** Restart a closed named backend on its old port (the address in ringlb's config). */
async function restart(backend: NamedBackend): Promise<NamedBackend> {
  const again = await startNamedBackend(backend.name, { port: backend.port });
  cleanups.push(() => again.close());
  return again;
}

async function run(pools: RawPool[]): Promise<{ ringlb: RinglbProcess; port: (name: string) => number }> {
  const { ringlb, ports } = await startRinglb(
    temp.writeJson(configOf(pools)),
    pools.map((pool) => pool.name),
  );
  cleanups.push(() => ringlb.kill());
  return { ringlb, port: (name) => ports.get(name)! };
}

const is = (msg: string, id?: string) => (line: LogLine) => line.msg === msg && (id === undefined || line.id === id);

/** Waits for `msg` about backend `id` among lines written after index `since`. */
function waitFor(ringlb: RinglbProcess, msg: string, id: string | undefined, since: number, timeoutMs = 5000): Promise<LogLine> {
  return ringlb.waitForLine(is(msg, id), timeoutMs, `"${msg}"${id ? ` for ${id}` : ''}`, since);
}

async function allUp(ringlb: RinglbProcess, ids: readonly string[]): Promise<void> {
  for (const id of ids) await waitFor(ringlb, 'backend up', id, 0);
}

describe('failover with a continuous client', () => {
  test('a killed backend costs 0 client connections, is detected within fall × interval + timeout, and gets traffic within rise × interval of its return', async (t) => {
    const [a, b, c] = (await backendsNamed('a', 'b', 'c')) as [NamedBackend, NamedBackend, NamedBackend];
    const { ringlb, port } = await run([
      { name: 'web', balance: 'round_robin', healthCheck: FAST_CHECK, backends: [a, b, c].map((x) => ({ id: x.name, address: x.address })) },
    ]);
    await allUp(ringlb, ['a', 'b', 'c']);
    // 20 connections per second for at most 6 s.
    const loop = startClientLoop(port('web'), 120, 50);
    // Scenario pacing, not a wait for a result: let the client run a while before the kill.
    await delay(1000);
    const since = ringlb.lines.length;
    const killedAt = Date.now();
    await b.close();
    const detected = await ringlb.waitForLine(
      (l) => (l.msg === 'backend down' || l.msg === 'backend ejected') && l.id === 'b',
      5000,
      'b detected',
      since,
    );
    const detectionMs = Number(detected.time) - killedAt;
    await delay(1500);
    const sinceReturn = ringlb.lines.length;
    const returnedAt = Date.now();
    await restart(b);
    await waitFor(ringlb, 'backend up', 'b', sinceReturn);
    const firstBack = await ringlb.waitForLine(
      (l) => l.msg === 'connection closed' && l.backend === b.address && l.outcome === 'ok' && Number(l.time) > returnedAt,
      5000,
      'traffic to b again',
      sinceReturn,
    );
    const backMs = Number(firstBack.time) - Number(firstBack.durationMs) - returnedAt;
    await delay(500); // traffic keeps flowing over all three for a moment
    loop.stop();
    const result = await loop.done;

    assert.equal(result.failed, 0, `failed connections: ${JSON.stringify(result.connections.filter((x) => x.error))}`);
    assert.ok(result.connections.length >= 50, `only ${result.connections.length} connections`);
    // fall × interval + timeout, plus one interval of scheduling slack.
    assert.ok(detectionMs <= 2 * INTERVAL_MS + 100 + INTERVAL_MS, `detection took ${detectionMs} ms`);
    // No connection that started after the detection line tried the dead backend (attempts = 1).
    const detectedAt = Number(detected.time);
    const retriedLate = ringlb
      .accessLines()
      .filter((l) => Number(l.time) - Number(l.durationMs) > detectedAt + 5 && Number(l.time) < returnedAt && Number(l.attempts) > 1);
    assert.deepEqual(retriedLate, []);
    // rise × interval, plus one interval of slack and three client gaps (round robin over three).
    assert.ok(backMs <= 2 * INTERVAL_MS + INTERVAL_MS + 3 * 50 + 100, `traffic again after ${Math.round(backMs)} ms`);
    t.diagnostic(`${result.connections.length} connections, detection ${detectionMs} ms, traffic again after ${Math.round(backMs)} ms`);
  });
});


describe('all backends down', () => {
  test('connections fail fast with no_backend and one warn line; traffic resumes when one returns, without a restart', async () => {
    const [a, b] = (await backendsNamed('a', 'b')) as [NamedBackend, NamedBackend];
    const { ringlb, port } = await run([
      {
        name: 'web',
        panicThreshold: 0,
        connectTimeoutMs: 500,
        healthCheck: { ...FAST_CHECK, fall: 1 },
        backends: [a, b].map((x) => ({ id: x.name, address: x.address })),
      },
    ]);
    await allUp(ringlb, ['a', 'b']);
    const since = ringlb.lines.length;
    await Promise.all([a.close(), b.close()]);
    await waitFor(ringlb, 'pool has no routable backend: new connections fail', undefined, since);
    for (let i = 0; i < 5; i++) {
      const startedAt = performance.now();
      const client = await openClient({ port: port('web') });
      await closed(client, 2000);
      assert.ok(performance.now() - startedAt < 500, 'closed before one connect timeout');
    }
    const lines = await ringlb.waitForAccessLines(5);
    assert.deepEqual(lines.slice(-5).map((l) => l.outcome), Array(5).fill('no_backend'));
    assert.equal(ringlb.lines.filter(is('pool has no routable backend: new connections fail')).length, 1, 'one warn, not one per connection');
    const sinceReturn = ringlb.lines.length;
    await restart(a);
    await waitFor(ringlb, 'backend up', 'a', sinceReturn);
    await waitFor(ringlb, 'pool has routable backends again', undefined, sinceReturn);
    assert.equal(await whichBackend({ port: port('web') }), 'a');
  });
});

describe('send_expect and http checks against real peers', () => {
  test('redis-server answers PING with +PONG and is up; a peer answering garbage is down', async (t) => {
    const redisPort = await closedPort();
    const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(async () => {
      if (redis.exitCode === null) {
        redis.kill('SIGTERM');
        await once(redis, 'exit');
      }
    });
    await waitForOutput(redis, /Ready to accept connections/);
    const garbage = await startGarbagePeer();
    cleanups.push(() => new Promise<void>((resolve) => garbage.close(() => resolve())));
    const garbagePort = (garbage.address() as AddressInfo).port;
    const { ringlb, port } = await run([
      {
        name: 'redis',
        healthCheck: { ...FAST_CHECK, type: 'send_expect', send: 'PING\r\n', expect: '+PONG' },
        backends: [
          { id: 'redis', address: `127.0.0.1:${redisPort}` },
          { id: 'garbage', address: `127.0.0.1:${garbagePort}` },
        ],
      },
    ]);
    await waitFor(ringlb, 'backend up', 'redis', 0);
    const down = await waitFor(ringlb, 'backend down', 'garbage', 0);
    assert.match(String(down.reason), /expect mismatch/);
    t.diagnostic(`garbage peer down: ${String(down.reason)}`);
    // Every connection now goes to redis.
    for (let i = 0; i < 4; i++) {
      const client = await openClient({ port: port('redis') });
      client.write('PING\r\n');
      assert.equal(await readLine(client), '+PONG\r');
      client.destroy();
    }
  });

  test('http check on a separate port: 200 is up, 503 is down with the status as reason, 200 again is up', async () => {
    const [a] = (await backendsNamed('a')) as [NamedBackend];
    let status = 200;
    const http: HttpServer = createHttpServer((request, response) => {
      response.statusCode = request.url === '/healthz' && request.headers.host === 'svc' ? status : 404;
      response.end('ok');
    });
    http.listen({ host: '127.0.0.1', port: 0 });
    await once(http, 'listening');
    cleanups.push(() => new Promise<void>((resolve) => http.close(() => resolve())));
    const { ringlb } = await run([
      {
        name: 'web',
        healthCheck: {
          ...FAST_CHECK,
          type: 'http',
          port: (http.address() as AddressInfo).port,
          http: { path: '/healthz', host: 'svc', expectStatus: [200, 299] },
        },
        backends: [{ id: 'a', address: a.address }],
      },
    ]);
    await waitFor(ringlb, 'backend up', 'a', 0);
    const since = ringlb.lines.length;
    status = 503;
    const down = await waitFor(ringlb, 'backend down', 'a', since);
    assert.equal(down.reason, 'HTTP 503');
    status = 200;
    await waitFor(ringlb, 'backend up', 'a', since);
  });
});

describe('outlier detection without active checks', () => {
  test('a refusing backend is ejected after N failures, retried after the ejection time; maxEjectionPercent caps ejections', async () => {
    const [a, b] = (await backendsNamed('a', 'b')) as [NamedBackend, NamedBackend];
    const [x, y] = [await closedPort(), await closedPort()];
    const { ringlb, port } = await run([
      {
        name: 'web',
        retries: 3,
        outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 400, maxEjectionMs: 2000, maxEjectionPercent: 25 },
        backends: [
          { id: 'a', address: a.address },
          { id: 'b', address: b.address },
          { id: 'x', address: `127.0.0.1:${x}` },
          { id: 'y', address: `127.0.0.1:${y}` },
        ],
      },
    ]);
    // Sequential clients, 10 ms apart, until a dead backend has been ejected, returned by the timer
    // and ejected again (bounded: 400 connections, about 4 s).
    let ejectedAgain: LogLine | undefined;
    for (let i = 0; i < 400 && ejectedAgain === undefined; i++) {
      assert.match(await whichBackend({ port: port('web') }), /^[ab]$/);
      ejectedAgain = ringlb.lines.find((l) => l.msg === 'backend ejected' && l.ejections === 2);
      await delay(10);
    }
    assert.ok(ejectedAgain, 'a second ejection within 400 connections');
    const events = ringlb.lines.filter((l) => l.msg === 'backend ejected' || l.msg === 'backend ejection ended');
    // Never more than one (25% of 4) ejected at once.
    let ejected = 0;
    for (const event of events) {
      ejected += event.msg === 'backend ejected' ? 1 : -1;
      assert.ok(ejected <= 1, `two ejected at once: ${JSON.stringify(events)}`);
    }
    const first = events[0]!;
    assert.equal(first.msg, 'backend ejected');
    assert.equal(first.failures, 2);
    assert.equal(first.ejectionMs, 400);
    const ended = events.find((l) => l.msg === 'backend ejection ended' && l.id === first.id)!;
    assert.equal(ended.by, 'timer');
    assert.ok(Number(ended.time) - Number(first.time) >= 395, 'ejected for the ejection time');
    assert.equal(ejectedAgain.ejectionMs, 800, 'second ejection: base × 2');
  });
});

describe('panic threshold', () => {
  test('3 of 4 down with threshold 0.5: traffic spreads over all four, retries rescue every client; threshold 0: only the healthy one', async () => {
    const [a] = (await backendsNamed('a')) as [NamedBackend];
    const dead = [await closedPort(), await closedPort(), await closedPort()];
    const backends = [{ id: 'a', address: a.address }, ...dead.map((p, i) => ({ id: `dead${i}`, address: `127.0.0.1:${p}` }))];
    const common = {
      retries: 3,
      healthCheck: { ...FAST_CHECK, fall: 1 },
      outlierDetection: { consecutiveFailures: 0 },
      backends,
    };
    const { ringlb, port } = await run([
      { name: 'panic', panicThreshold: 0.5, ...common },
      { name: 'strict', panicThreshold: 0, ...common },
    ]);
    await ringlb.waitForLine((l) => l.msg === 'pool in panic: routing over every active backend, healthy or not' && l.pool === 'panic', 5000, 'panic');
    await ringlb.waitForLine(
      (l) => l.msg === 'backend down' && l.pool === 'strict' && ringlb.lines.filter((m) => m.msg === 'backend down' && m.pool === 'strict').length === 3,
      5000,
      'strict: three down',
    );
    for (const pool of ['panic', 'strict']) {
      for (let i = 0; i < 20; i++) assert.equal(await whichBackend({ port: port(pool) }), 'a');
    }
    const lines = await ringlb.waitForAccessLines(40);
    const attemptsOf = (listener: string): number[] => lines.filter((l) => l.listener === listener).map((l) => Number(l.attempts));
    const panicRetried = attemptsOf('panic').filter((n) => n > 1).length;
    assert.ok(panicRetried >= 10, `in panic most first picks land on a dead backend (${panicRetried}/20 retried)`);
    assert.deepEqual(attemptsOf('strict'), Array(20).fill(1));
    assert.ok(ringlb.lines.every((l) => !(l.msg?.startsWith('pool in panic') && l.pool === 'strict')));
  });
});

describe('slow start', () => {
  test("a recovered backend's share grows over the window", async (t) => {
    const [a, b] = (await backendsNamed('a', 'b')) as [NamedBackend, NamedBackend];
    const { ringlb, port } = await run([
      {
        name: 'web',
        slowStartMs: 2000,
        healthCheck: { ...FAST_CHECK, fall: 1, rise: 1 },
        backends: [a, b].map((x) => ({ id: x.name, address: x.address })),
      },
    ]);
    await allUp(ringlb, ['a', 'b']);
    assert.equal(ringlb.lines.filter(is('backend slow start')).length, 0, 'no ramp at process start');
    const since = ringlb.lines.length;
    await b.close();
    await waitFor(ringlb, 'backend down', 'b', since);
    await restart(b);
    // The ramp's own start, as ringlb logged it: reading the line can lag under load, and a
    // window counted from the read would see more of the ramp than it should.
    const rampStart = Number((await waitFor(ringlb, 'backend slow start', 'b', since)).time);
    // Four windows of 500 ms, connections back to back (bounded: 400 per window).
    const shares: number[] = [];
    for (let window = 1; window <= 4; window++) {
      const names: string[] = [];
      while (Date.now() - rampStart < window * 500 && names.length < 400) names.push(await whichBackend({ port: port('web') }));
      shares.push(names.filter((n) => n === 'b').length / names.length);
    }
    // After the window the ramp is over: equal weights again, so round robin alternates exactly.
    // (A wall-clock bound on the last ramp window's share flaked on a loaded machine; this one is exact.)
    while (Date.now() - rampStart < 2000 + 250) await whichBackend({ port: port('web') });
    const after: string[] = [];
    for (let i = 0; i < 100; i++) after.push(await whichBackend({ port: port('web') }));
    const shareAfter = after.filter((n) => n === 'b').length / after.length;
    t.diagnostic(`share of b per 500 ms window: ${shares.map((s) => s.toFixed(2)).join(', ')}; after the ramp: ${shareAfter.toFixed(2)}`);
    assert.ok(shares[0]! < 0.3, `first window ${shares[0]}`);
    assert.ok(shares[3]! > shares[0]! + 0.1, `grows: ${shares.join(', ')}`);
    assert.ok(shares.every((share, i) => i === 0 || share >= shares[i - 1]! - 0.05), `never falls back: ${shares.join(', ')}`);
    assert.ok(Math.abs(shareAfter - 0.5) <= 0.02, `full weight after the ramp: ${shareAfter}`);
  });
});

describe('drain, maint and hash keys', () => {
  test('drain and maint take no connections (maint is not checked); keys of healthy backends stay, and return home on recovery', async () => {
    const [a, b, c, d, m] = (await backendsNamed('a', 'b', 'c', 'd', 'm')) as NamedBackend[] as [NamedBackend, NamedBackend, NamedBackend, NamedBackend, NamedBackend];
    const { ringlb, port } = await run([
      {
        name: 'web',
        balance: 'maglev',
        healthCheck: { ...FAST_CHECK, fall: 1 },
        outlierDetection: { consecutiveFailures: 0 },
        backends: [
          ...[a, b, c].map((x) => ({ id: x.name, address: x.address })),
          { id: 'd', address: d.address, state: 'drain' as const },
          { id: 'm', address: m.address, state: 'maint' as const },
        ],
      },
    ]);
    await allUp(ringlb, ['a', 'b', 'c', 'd']);
    const sources = Array.from({ length: 24 }, (_, i) => `127.0.0.${i + 1}`);
    const homes = async (): Promise<string[]> => {
      const names: string[] = [];
      for (const localAddress of sources) names.push(await whichBackend({ port: port('web'), localAddress }));
      return names;
    };
    const before = await homes();
    assert.ok(before.every((n) => ['a', 'b', 'c'].includes(n)), `drain/maint took a connection: ${before.join(',')}`);
    assert.equal(d.accepted() > 0, true, 'drain is still health checked (tcp connects)');
    assert.equal(m.accepted(), 0, 'maint is neither checked nor used');
    assert.ok(before.includes('b'), 'some key lives on b');
    const since = ringlb.lines.length;
    await b.close();
    await waitFor(ringlb, 'backend down', 'b', since);
    const during = await homes();
    for (let i = 0; i < sources.length; i++) {
      if (before[i] !== 'b') assert.equal(during[i], before[i], `key of ${sources[i]} moved off a healthy backend`);
      else assert.notEqual(during[i], 'b');
    }
    await restart(b);
    await waitFor(ringlb, 'backend up', 'b', since);
    assert.deepEqual(await homes(), before, 'every key back home');
  });
});

/** Resolves when the child's stdout shows `pattern` (bounded by a timeout). */
function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${text}`)), timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (pattern.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}: ${text}`));
    });
  });
}

/** Accepts TCP and answers anything with garbage (a protocol peer that is alive but wrong). */
async function startGarbagePeer(): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.on('data', () => socket.write('-ERR who are you\r\n'));
  });
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  return server;
}
