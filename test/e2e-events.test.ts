/**
 * Events end to end: the CLI as a child process, real echo backends, a real alert receiver
 * (node:http) and a real SSE client reading `GET /v1/events` with the bearer token. Every wait is
 * on an arrival (a log line, a POST, an SSE message), bounded by limits computed from the config.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { openClient, readLine } from './helpers/clients.js';
import { EventReceiver, openEvents, SseReader, type ReceivedEvent } from './helpers/events.js';
import { startRinglb, TempDir, type LogLine, type RinglbProcess } from './helpers/ringlb-process.js';
import { workersTest } from './helpers/workers.js';

const TOKEN = 'events-test-token-0123456789';
const SECRET = 'Bearer receiver-secret-4f2a9c';

const CHECK = { intervalMs: 200, timeoutMs: 200, jitter: 0, rise: 2, fall: 2 };
/**
 * A kill is seen by the next `fall` checks: at most `fall` intervals plus one timeout (a check in
 * flight). The margin covers a loaded 2-core machine and the delivery itself (one local POST).
 */
const MARGIN_MS = 2000;
const DOWN_BOUND_MS = CHECK.intervalMs * CHECK.fall + CHECK.timeoutMs + MARGIN_MS;
/** A restarted backend needs `rise` passing checks at the unhealthy interval (= intervalMs here). */
const UP_BOUND_MS = CHECK.intervalMs * CHECK.rise + CHECK.timeoutMs + MARGIN_MS;
/** Retries back off up to 500 ms, then 1000 ms (full jitter), and each attempt is one local POST. */
const TWO_RETRIES_BOUND_MS = 500 + 1000 + MARGIN_MS;

const temp = new TempDir();
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.remove();
});

async function backend(name: string, port = 0): Promise<NamedBackend> {
  const started = await startNamedBackend(name, { port });
  cleanups.push(() => started.close());
  return started;
}

async function receiver(...args: Parameters<typeof EventReceiver.start>): Promise<EventReceiver> {
  const started = await EventReceiver.start(...args);
  cleanups.push(() => started.close());
  return started;
}

async function run(config: unknown, listeners: readonly string[]): Promise<{ ringlb: RinglbProcess; admin: string; file: string; ports: Map<string, number> }> {
  const file = temp.writeJson(config);
  const { ringlb, ports } = await startRinglb(file, listeners);
  cleanups.push(() => ringlb.kill());
  const ready = await ringlb.waitForLine((line) => line.msg === 'admin ready', 10_000, 'admin ready');
  return { ringlb, admin: String(ready.address), file, ports };
}

async function sse(admin: string, options: { lastEventId?: string; query?: string } = {}): Promise<SseReader> {
  const reader = await SseReader.open(admin, { token: TOKEN, ...options });
  cleanups.push(() => reader.close());
  return reader;
}

const about = (type: string, backendId?: string) => (event: ReceivedEvent) => event.type === type && (backendId === undefined || event.backend === backendId);

function waitLine(ringlb: RinglbProcess, msg: string, id: string, since = 0): Promise<LogLine> {
  return ringlb.waitForLine((line) => line.msg === msg && line.id === id, 10_000, `"${msg}" for ${id}`, since);
}

describe('health transitions as events', () => {
  test('a killed backend is one `down` at the receiver and on the stream within the check bounds; restarted, one `up`; retries, refusals and replay', async () => {
    const ops = await receiver();
    // 500 twice, then 200: the first event is delivered on the third attempt.
    const flaky = await receiver([500, 500]);
    // Refuses everything with 400: no retry.
    const refusing = await receiver([], 400);
    const [a, b] = [await backend('a'), await backend('b')];
    const pool = { name: 'web', healthCheck: CHECK, backends: [a, b].map((x) => ({ id: x.name, address: x.address })) };
    const { ringlb, admin } = await run(
      {
        admin: { bind: '127.0.0.1:0', token: TOKEN },
        alerts: {
          webhooks: [
            { name: 'ops', url: ops.url, headers: { Authorization: SECRET } },
            { name: 'flaky', url: flaky.url, events: ['down', 'up'] },
            { name: 'refusing', url: refusing.url, events: ['down'], maxRetries: 3 },
          ],
        },
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
        pools: [pool],
        log: { level: 'info' },
      },
      ['web'],
    );
    await waitLine(ringlb, 'backend up', 'a');
    await waitLine(ringlb, 'backend up', 'b');

    const stream = await sse(admin, { query: 'types=down,up' });

    const killedAt = Date.now();
    await b.close();
    const [down] = await ops.waitForPosts((post) => about('down', 'b')(post.event), 'down for b at ops', DOWN_BOUND_MS);
    const downMs = Date.now() - killedAt;
    assert.ok(downMs <= DOWN_BOUND_MS, `down after ${downMs} ms, bound ${DOWN_BOUND_MS}`);
    assert.equal(down!.event.cause, 'failed_active_check');
    assert.equal(down!.event.source, 'health');
    assert.equal(down!.event.pool, 'web');
    assert.equal(down!.event.address, b.address);
    assert.match(String(down!.event.message), /ECONNREFUSED/);
    assert.match(down!.event.time, /^\d{4}-\d\d-\d\dT/);
    assert.equal(down!.headers.authorization, SECRET, 'configured headers are sent');
    assert.equal(down!.headers['content-type'], 'application/json');
    assert.equal(down!.headers['user-agent'], 'ringlb');
    const [streamed] = await stream.waitFor((m) => about('down', 'b')(m.json), 'down for b on the stream', DOWN_BOUND_MS);
    assert.equal(streamed!.event, 'down');
    assert.equal(streamed!.id, String(down!.event.id), 'the SSE id is the event id');
    assert.deepEqual(streamed!.json, down!.event, 'the stream and the webhook carry the same JSON');

    const restartedAt = Date.now();
    await backend('b', b.port);
    await ops.waitForPosts((post) => about('up', 'b')(post.event), 'up for b at ops', UP_BOUND_MS);
    const upMs = Date.now() - restartedAt;
    assert.ok(upMs <= UP_BOUND_MS, `up after ${upMs} ms, bound ${UP_BOUND_MS}`);
    const [upStreamed] = await stream.waitFor((m) => about('up', 'b')(m.json), 'up for b on the stream', UP_BOUND_MS);
    assert.equal(upStreamed!.json.cause, 'failed_active_check');

    // Exactly one of each: events arrive in order, so a duplicate down would have come before the up.
    const healthAtOps = ops.delivered().filter((e) => e.type === 'down' || e.type === 'up');
    assert.deepEqual(healthAtOps.map((e) => `${e.type} ${String(e.backend)}`), ['down b', 'up b']);
    assert.deepEqual(stream.messages.map((m) => `${m.event} ${String(m.json.backend)}`), ['down b', 'up b'], 'the filter passed down and up only');

    // The flaky receiver got the down three times (500, 500, 200), then the up once.
    const flakyPosts = await flaky.waitForPosts((post) => post.answer === 200, 'two deliveries at flaky', TWO_RETRIES_BOUND_MS + UP_BOUND_MS, 2);
    assert.deepEqual(
      flaky.posts.map((post) => `${post.event.type} ${post.event.id} ${String(post.answer)}`),
      [`down ${down!.event.id} 500`, `down ${down!.event.id} 500`, `down ${down!.event.id} 200`, `up ${flakyPosts[1]!.event.id} 200`],
    );
    // A 400 is the receiver refusing this event: one attempt, no retry, though maxRetries is 3.
    assert.deepEqual(refusing.posts.map((post) => `${post.event.type} ${String(post.answer)}`), ['down 400']);
    await ringlb.waitForLine((line) => line.msg === 'alert webhook failing' && line.receiver === 'refusing', 5000, 'refusing logged');

    // Replay: Last-Event-ID n gets every retained event after n, in order.
    const replay = await sse(admin, { lastEventId: String(down!.event.id - 1) });
    const replayed = await replay.waitFor(() => true, 'replayed events', 5000, 2);
    assert.equal(replayed[0]!.json.id, down!.event.id);
    assert.ok(replayed.some((m) => about('up', 'b')(m.json)));
    const all = await sse(admin, { lastEventId: '0' });
    await all.waitFor((m) => about('up', 'b')(m.json), 'the whole history up to the up', 5000);
    const ids = all.messages.map((m) => m.json.id);
    assert.equal(ids[0], 1, 'Last-Event-ID 0 replays from the first event');
    assert.deepEqual([...ids].sort((x, y) => x - y), ids, 'ids ascend');
    // Start-up (pending → up for a and b) was not news: the whole history holds one down and one up.
    assert.deepEqual(all.messages.filter((m) => m.event === 'up' || m.event === 'down').map((m) => `${m.event} ${String(m.json.backend)}`), ['down b', 'up b']);

    // Headers are secrets: never in a log line.
    assert.ok(!ringlb.lines.some((line) => JSON.stringify(line).includes('receiver-secret')), 'the header value is never logged');
  });

  test('reload applied and refused are events, with the membership and weight changes a reload made', async () => {
    const [a, b] = [await backend('a'), await backend('b')];
    const config = (webhookUrl: string, backends: Array<{ id: string; address: string; weight?: number }>) => ({
      admin: { bind: '127.0.0.1:0', token: TOKEN },
      alerts: { webhooks: [{ name: 'ops', url: webhookUrl, events: ['reload'] }] },
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', backends }],
      log: { level: 'info' },
    });
    const ops = await receiver();
    const { ringlb, admin, file } = await run(config(ops.url, [{ id: 'a', address: a.address }]), ['web']);
    const stream = await sse(admin);

    writeFileSync(file, JSON.stringify(config(ops.url, [{ id: 'a', address: a.address, weight: 300 }, { id: 'b', address: b.address }])));
    ringlb.child.kill('SIGHUP');
    const [applied] = await stream.waitFor((m) => m.event === 'reload', 'reload applied', 10_000);
    assert.equal(applied!.json.result, 'applied');
    const changes = stream.messages.filter((m) => m.event !== 'reload').map((m) => m.json);
    assert.deepEqual(
      changes.map((e) => [e.type, e.backend, e.source]),
      // Per backend, in id order (the order of the set).
      [
        ['weight_changed', 'a', 'config'],
        ['backend_added', 'b', 'config'],
      ],
    );
    assert.equal(changes[0]!.weight, 300);
    assert.equal(changes[0]!.previousWeight, 1);
    assert.equal(changes[1]!.address, b.address);
    assert.ok(applied!.json.id > changes[1]!.id, 'the reload is announced once everything it changed was');

    // An invalid file: refused with the JSON path of the problem, nothing changed.
    const bad = config('ftp://127.0.0.1/alerts', [{ id: 'a', address: a.address }]);
    writeFileSync(file, JSON.stringify(bad));
    ringlb.child.kill('SIGHUP');
    const [refused] = await stream.waitFor((m) => m.event === 'reload' && m.json.result === 'refused', 'reload refused', 10_000);
    assert.match(String(refused!.json.message), /alerts\.webhooks\[0\]\.url/);
    // The receiver of the config in force (ops) gets both reloads.
    const posts = await ops.waitForPosts((post) => post.event.type === 'reload', 'both reloads at ops', 5000, 2);
    assert.deepEqual(posts.map((post) => post.event.result), ['applied', 'refused']);
    assert.equal(applied!.json.message, 'pools changed: web');

    // A reload that changes no pool says what it did change.
    const limited = { ...config(ops.url, [{ id: 'a', address: a.address, weight: 300 }, { id: 'b', address: b.address }]), drainTimeoutMs: 1234 };
    writeFileSync(file, JSON.stringify(limited));
    ringlb.child.kill('SIGHUP');
    const [settings] = await stream.waitFor((m) => m.event === 'reload' && m.json.result === 'applied' && m.json.id > applied!.json.id, 'settings-only reload', 10_000);
    assert.equal(settings!.json.message, 'settings changed: drainTimeoutMs');
  });
});

/** Connects until `stream` shows an ejection (each connect to the dead backend fails once); bounded. */
async function connectUntilEjected(port: number, stream: SseReader, maxConnections: number): Promise<void> {
  for (let i = 0; i < maxConnections && !stream.messages.some((m) => m.event === 'ejected'); i++) {
    const socket = await openClient({ port });
    try {
      // Retries take it to the live backend: the client never sees the failure.
      assert.equal(await readLine(socket), 'alive');
    } finally {
      socket.destroy();
    }
  }
}

async function ejectionScenario(workers: number | 'auto'): Promise<void> {
  const alive = await backend('alive');
  const deadPort = await closedPort();
  const config = (baseEjectionMs: number) => ({
    admin: { bind: '127.0.0.1:0', token: TOKEN },
    workers,
    listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
    pools: [
      {
        name: 'web',
        balance: 'round_robin',
        retries: 2,
        outlierDetection: { consecutiveFailures: 2, baseEjectionMs, maxEjectionPercent: 50 },
        backends: [
          { id: 'alive', address: alive.address },
          { id: 'dead', address: `127.0.0.1:${deadPort}` },
        ],
      },
    ],
    log: { level: 'info' },
  });
  const { ringlb, admin, ports, file } = await run(config(60_000), ['web']);
  const stream = await sse(admin);
  // Round robin sends every other connection to `dead` first: 2 failures need about 4 connections; 40 is the bound.
  await connectUntilEjected(ports.get('web')!, stream, 40);
  const [ejected] = await stream.waitFor((m) => m.event === 'ejected', 'ejected', 10_000);
  assert.equal(ejected!.json.backend, 'dead');
  assert.equal(ejected!.json.source, 'outlier');
  assert.equal(ejected!.json.cause, 'consecutive_connect_failures');
  assert.ok(Date.parse(String(ejected!.json.until)) > Date.now() + 30_000, 'until: the ejection ends in about 60 s');
  const [down] = await stream.waitFor((m) => m.event === 'down', 'down', 5000);
  assert.equal(down!.json.cause, 'ejected_outlier');
  assert.ok(down!.json.id > ejected!.json.id);
  // More failures while ejected (none: it is not picked) or more connections raise no second ejection.
  await connectUntilEjected(ports.get('web')!, stream, 4);
  assert.equal(stream.messages.filter((m) => m.event === 'ejected' || m.event === 'down').length, 2);

  // New outlier settings get a new health owner, which does not carry the ejection over: the
  // backend is routable again, and the stream says so rather than showing it down for good.
  writeFileSync(file, JSON.stringify(config(30_000)));
  ringlb.child.kill('SIGHUP');
  const [up] = await stream.waitFor((m) => m.event === 'up', 'up after the reload', 10_000);
  assert.deepEqual([up!.json.backend, up!.json.cause, up!.json.source], ['dead', 'config', 'config']);
  await stream.waitFor((m) => m.event === 'reload', 'reload applied', 10_000);
}

describe('ejections as events', () => {
  test('passive connect failures eject a backend: `ejected` (until, cause) then `down` (ejected_outlier)', async () => {
    await ejectionScenario(1);
  });

  workersTest('workers: 2 — failures seen in worker threads reach the one detector and raise `ejected`', async () => {
    await ejectionScenario(2);
  });
});

describe('membership from registration', () => {
  test('a service registering and deregistering is backend_added / backend_removed with source registration', async () => {
    const { admin } = await run(
      {
        admin: { bind: '127.0.0.1:0', token: TOKEN },
        listeners: [{ name: 'reg', bind: '127.0.0.1:0', pool: 'reg' }],
        pools: [{ name: 'reg', balance: 'maglev', discovery: { type: 'registration' }, backends: [] }],
      },
      ['reg'],
    );
    const stream = await sse(admin);
    const service = await backend('svc');
    const call = async (method: string, body?: unknown): Promise<number> => {
      const response = await fetch(`http://${admin}/v1/pools/reg/backends/svc-1`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      await response.arrayBuffer();
      return response.status;
    };
    assert.equal(await call('PUT', { address: service.address, weight: 3 }), 201);
    const [added] = await stream.waitFor((m) => m.event === 'backend_added', 'backend_added', 5000);
    assert.deepEqual(
      { pool: added!.json.pool, backend: added!.json.backend, address: added!.json.address, weight: added!.json.weight, source: added!.json.source },
      { pool: 'reg', backend: 'svc-1', address: service.address, weight: 3, source: 'registration' },
    );
    // A renewal that changes nothing is no news; a new weight is.
    assert.equal(await call('PUT', { address: service.address, weight: 3 }), 200);
    assert.equal(await call('PUT', { address: service.address, weight: 5 }), 200);
    const [reweighted] = await stream.waitFor((m) => m.event === 'weight_changed', 'weight_changed', 5000);
    assert.equal(reweighted!.json.previousWeight, 3);
    assert.equal(await call('DELETE'), 204);
    await stream.waitFor((m) => m.event === 'backend_removed', 'backend_removed', 5000);
    assert.deepEqual(stream.messages.map((m) => m.event), ['backend_added', 'weight_changed', 'backend_removed']);
  });
});

describe('runtime overrides on the stream', () => {
  test('PATCH drain and a weight: state_changed and weight_changed from source admin, once each', async () => {
    const [a, b] = [await backend('a'), await backend('b')];
    const { admin } = await run(
      {
        admin: { bind: '127.0.0.1:0', token: TOKEN },
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
        pools: [{ name: 'web', balance: 'maglev', backends: [{ id: 'a', address: a.address }, { id: 'b', address: b.address }] }],
      },
      ['web'],
    );
    const stream = await sse(admin);
    const response = await fetch(`http://${admin}/v1/pools/web/backends/a`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'drain', weight: 4 }),
    });
    await response.arrayBuffer();
    assert.equal(response.status, 200);
    await stream.waitFor((m) => m.event === 'weight_changed', 'weight_changed', 5000);
    assert.deepEqual(
      stream.messages.map((m) => [m.event, m.json.backend, m.json.source, m.json.from ?? m.json.previousWeight, m.json.to ?? m.json.weight]),
      [
        ['state_changed', 'a', 'admin', 'active', 'drain'],
        ['weight_changed', 'a', 'admin', 1, 4],
      ],
    );
  });

  test('a reload that ends an admin override reports what changed in force: weight from the override, the state it undid', async () => {
    const [a, b] = [await backend('a'), await backend('b')];
    const config = (weights: { a: number; b: number }) => ({
      admin: { bind: '127.0.0.1:0', token: TOKEN },
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', balance: 'maglev', backends: [{ id: 'a', address: a.address, weight: weights.a }, { id: 'b', address: b.address, weight: weights.b }] }],
    });
    const { ringlb, admin, file } = await run(config({ a: 1, b: 1 }), ['web']);
    const patch = async (id: string, body: unknown) => {
      const response = await fetch(`http://${admin}/v1/pools/web/backends/${id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      await response.arrayBuffer();
      assert.equal(response.status, 200);
    };
    await patch('a', { state: 'drain', weight: 4 });
    await patch('b', { weight: 3 });
    const stream = await sse(admin);

    // a: the config's weight 1 -> 2 ends a's override (drain, weight 4); b: 1 -> 3 ends b's, whose
    // weight in force was 3 already.
    writeFileSync(file, JSON.stringify(config({ a: 2, b: 3 })));
    ringlb.child.kill('SIGHUP');
    await stream.waitFor((m) => m.event === 'reload', 'reload applied', 10_000);
    assert.deepEqual(
      stream.messages.map((m) => [m.event, m.json.backend, m.json.source, m.json.from ?? m.json.previousWeight, m.json.to ?? m.json.weight]),
      [
        ['weight_changed', 'a', 'config', 4, 2],
        ['state_changed', 'a', 'config', 'drain', 'active'],
        ['reload', undefined, 'config', undefined, undefined],
      ],
    );
  });
});

describe('GET /v1/events through the admin server', () => {
  test('needs the token; bad filters and ids are 400 with the reason', async () => {
    await backend('x');
    const x = await backend('y');
    const { admin } = await run(
      {
        admin: { bind: '127.0.0.1:0', token: TOKEN },
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
        pools: [{ name: 'web', backends: [{ address: x.address }] }],
      },
      ['web'],
    );
    const bodyOf = async (response: import('node:http').IncomingMessage): Promise<Record<string, unknown>> => {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    };
    const noToken = await openEvents(admin);
    assert.equal(noToken.statusCode, 401);
    await bodyOf(noToken);
    const badType = await openEvents(admin, { token: TOKEN, query: 'types=down,sideways' });
    assert.equal(badType.statusCode, 400);
    assert.deepEqual(Object.keys(await bodyOf(badType)).sort(), ['error', 'path']);
    const badId = await openEvents(admin, { token: TOKEN, lastEventId: 'yesterday' });
    assert.equal(badId.statusCode, 400);
    assert.equal((await bodyOf(badId)).path, 'headers.last-event-id');
    const ok = await openEvents(admin, { token: TOKEN });
    assert.equal(ok.statusCode, 200);
    assert.match(String(ok.headers['content-type']), /^text\/event-stream/);
    ok.destroy();
  });
});
