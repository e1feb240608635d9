/**
 * The bounds of event delivery, in process (so the counters can be read): a dead alert receiver
 * costs a bounded queue and delays nothing else, refusals and rate limits are told apart, and the
 * SSE stream caps its clients, drops a client that does not read, keeps idle streams alive and ends
 * them when the admin server closes. Real sockets everywhere: a real Ringlb with real backends, a
 * real HTTP receiver, real HTTP clients. Where a test publishes on the bus itself it plays the
 * producer; what is checked is what the bus, the stream and the dispatcher did with it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { AdminServer } from '../src/admin/server.js';
import { RuntimeAdminApi } from '../src/admin/runtime-api.js';
import { parseHostPort } from '../src/config/load.js';
import { validateConfig } from '../src/config/load.js';
import type { RinglbConfig } from '../src/config/types.js';
import { EventBus, RETAINED_EVENTS } from '../src/events/bus.js';
import { EventStream } from '../src/events/sse.js';
import type { HostPort } from '../src/backend.js';
import { Ringlb } from '../src/runtime.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { openClient, readLine } from './helpers/clients.js';
import { EventReceiver, openEvents, SseReader } from './helpers/events.js';
import { LogCapture } from './helpers/log-capture.js';
import { parseMetrics, scrapeText } from './helpers/metrics.js';

const TOKEN = 'delivery-test-token-0123456789';
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function configOf(raw: unknown): RinglbConfig {
  const result = validateConfig(raw);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

async function started<T extends { close(): Promise<void> | void }>(value: Promise<T>): Promise<T> {
  const resolved = await value;
  cleanups.push(() => resolved.close());
  return resolved;
}

/** Polls a condition the code under test reaches asynchronously (a socket closing on the server side); bounded. */
async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('alert webhooks under failure', () => {
  test('a receiver that never answers: its tiny queue drops the oldest (counted) and connections keep flowing', async () => {
    const hanging = await started(EventReceiver.start([], 'hang'));
    const backend: NamedBackend = await started(startNamedBackend('a'));
    const log = new LogCapture();
    const ringlb = new Ringlb({ logger: log.logger() });
    const config = configOf({
      workers: 1,
      alerts: { webhooks: [{ name: 'dead', url: hanging.url, events: ['reload'], queueSize: 2, timeoutMs: 60_000, headers: { 'X-Api-Key': 'never-logged-7731' } }] },
      admin: { bind: '127.0.0.1:0' },
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', backends: [{ id: 'a', address: backend.address }] }],
    });
    await ringlb.start(config);
    cleanups.push(() => ringlb.close());
    const port = Number(ringlb.listenerAddress('web')!.split(':')[1]);

    const RELOADS = 12;
    for (let i = 0; i < RELOADS; i++) assert.equal((await ringlb.reload(config)).ok, true);
    // The first reload's event is in flight (the receiver holds it), two wait, the rest were dropped oldest first.
    await hanging.waitForPosts(() => true, 'the one POST in flight', 5000);
    assert.deepEqual(ringlb.alertStats(), [{ receiver: 'dead', delivered: 0, failed: 0, dropped: RELOADS - 3, retries: 0, queued: 3 }]);
    const exposed = parseMetrics((await scrapeText(ringlb.adminAddress()!)).text).filter((sample) => sample.name.startsWith('ringlb_alerts_'));
    assert.deepEqual(
      Object.fromEntries(exposed.map((sample) => [`${sample.name}{${sample.labels.receiver}}`, sample.value])),
      {
        'ringlb_alerts_delivered_total{dead}': 0,
        'ringlb_alerts_failed_total{dead}': 0,
        'ringlb_alerts_dropped_total{dead}': RELOADS - 3,
        'ringlb_alerts_retries_total{dead}': 0,
        'ringlb_alerts_queued{dead}': 3,
      },
      'the same counts in /metrics',
    );

    // The data plane does not wait for alerts: 50 connections, each greeted by the backend.
    for (let i = 0; i < 50; i++) {
      const socket = await openClient({ port });
      try {
        assert.equal(await readLine(socket), 'a');
      } finally {
        socket.destroy();
      }
    }
    assert.equal(hanging.posts.length, 1, 'one delivery at a time: nothing more was sent while the first hangs');
    assert.ok(hanging.openSockets <= 1, 'a dead receiver holds one socket at most');

    // Full-queue drops are logged, rate-limited (once here), never with the header.
    const warnings = log.lines.filter((line) => line.msg === 'alert webhook failing');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.receiver, 'dead');
    assert.ok(!JSON.stringify(log.lines).includes('never-logged-7731'));

    // Stopping drops what is still queued (counted), and aborts the request in flight.
    await ringlb.close();
    assert.deepEqual(ringlb.alertStats(), [{ receiver: 'dead', delivered: 0, failed: 0, dropped: RELOADS, retries: 0, queued: 0 }]);
  });

  test('429 is retried after its Retry-After, another 4xx is not (failed), 2xx counts as delivered; a reload keeps the counters', async () => {
    // 429 with Retry-After: 1 (retried a second later), then 404 (given up), then 200 for the next event.
    const receiver = await started(EventReceiver.start([{ status: 429, headers: { 'retry-after': '1' } }, 404]));
    const log = new LogCapture();
    const ringlb = new Ringlb({ logger: log.logger() });
    const backend = await started(startNamedBackend('a'));
    const raw = {
      workers: 1,
      alerts: { webhooks: [{ name: 'r', url: receiver.url, events: ['reload'], maxRetries: 3 }] },
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', backends: [{ id: 'a', address: backend.address }] }],
    };
    await ringlb.start(configOf(raw));
    cleanups.push(() => ringlb.close());
    await ringlb.reload(configOf(raw));
    await receiver.waitForPosts((post) => post.answer === 404, 'the 404', 5000);
    await until(() => ringlb.alertStats()[0]!.failed === 1, 'the 404 counted as failed');
    const waitedMs = receiver.posts[1]!.at - receiver.posts[0]!.at;
    assert.ok(waitedMs >= 950, `retried ${waitedMs} ms after the 429, Retry-After said 1 s`);
    // A changed receiver (timeout) is replaced; its counters stay (Prometheus counters never go back).
    const changed = configOf({ ...raw, alerts: { webhooks: [{ ...raw.alerts.webhooks[0], timeoutMs: 4000 }] } });
    await ringlb.reload(changed);
    await receiver.waitForPosts((post) => post.answer === 200, 'the second reload delivered', 5000);
    assert.deepEqual(
      receiver.posts.map((post) => [post.event.id, post.answer]),
      [
        [receiver.posts[0]!.event.id, 429],
        [receiver.posts[0]!.event.id, 404],
        [receiver.posts[2]!.event.id, 200],
      ],
    );
    await until(() => ringlb.alertStats()[0]!.delivered === 1, 'delivered counted');
    assert.deepEqual(ringlb.alertStats(), [{ receiver: 'r', delivered: 1, failed: 1, dropped: 0, retries: 1, queued: 0 }]);
  });
});

describe('alert webhooks at a graceful stop', () => {
  test('drain gives queued events a bounded chance to leave: an event retried after a 500 is still delivered', async () => {
    const receiver = await started(EventReceiver.start([500]));
    const backend = await started(startNamedBackend('a'));
    const ringlb = new Ringlb({ logger: new LogCapture().logger() });
    const config = configOf({
      workers: 1,
      alerts: { webhooks: [{ name: 'r', url: receiver.url, events: ['reload'] }] },
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', backends: [{ id: 'a', address: backend.address }] }],
    });
    await ringlb.start(config);
    cleanups.push(() => ringlb.close());
    await ringlb.reload(config);
    // Stop at once: the event is queued or in its first attempt, and its retry comes after a backoff.
    await ringlb.drain(10_000);
    assert.deepEqual(receiver.posts.map((post) => post.answer), [500, 200]);
    assert.deepEqual(ringlb.alertStats(), [{ receiver: 'r', delivered: 1, failed: 0, dropped: 0, retries: 1, queued: 0 }]);
  });
});

describe('the event stream', () => {
  async function hub(options: { maxClients?: number; keepaliveMs?: number; maxBufferedBytes?: number } = {}, requestTimeoutMs?: number) {
    const log = new LogCapture();
    const bus = new EventBus({ logger: log.logger() });
    const stream = new EventStream({ bus, ...options });
    // The admin API of a runtime that was never started: only /v1/events is asked for here.
    const idle = new Ringlb({ logger: log.logger() });
    const server = new AdminServer({
      bind: parseHostPort('127.0.0.1:0', { purpose: 'bind' }) as HostPort,
      token: TOKEN,
      logger: log.logger(),
      api: new RuntimeAdminApi(idle.adminView()),
      ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs, headersTimeoutMs: requestTimeoutMs / 2 }),
    });
    stream.install(server);
    const address = await server.listen();
    cleanups.push(async () => {
      stream.close();
      await server.close();
    });
    return { bus, stream, server, address };
  }

  test('retains the last 256 events: Last-Event-ID 0 replays them, a larger id replays the rest', async () => {
    const { bus, address } = await hub();
    for (let i = 0; i < 300; i++) bus.publish({ type: 'reload', result: 'applied', message: `#${i + 1}` });
    const all = await started(SseReader.open(address, { token: TOKEN, lastEventId: '0' }));
    const replayed = await all.waitFor(() => true, 'the retained events', 5000, RETAINED_EVENTS);
    assert.deepEqual(
      replayed.map((m) => m.json.id),
      Array.from({ length: RETAINED_EVENTS }, (_, i) => 300 - RETAINED_EVENTS + 1 + i),
    );
    const tail = await started(SseReader.open(address, { token: TOKEN, lastEventId: '298' }));
    assert.deepEqual((await tail.waitFor(() => true, 'two events', 5000, 2)).map((m) => m.id), ['299', '300']);
    // An id from before a restart (larger than any published here) replays everything retained.
    const afterRestart = await started(SseReader.open(address, { token: TOKEN, lastEventId: '100000' }));
    assert.equal((await afterRestart.waitFor(() => true, 'the retained events', 5000, RETAINED_EVENTS))[0]!.json.id, 300 - RETAINED_EVENTS + 1);
    // Live events follow the replay on the same stream.
    bus.publish({ type: 'panic_entered', pool: 'web' });
    const [live] = await tail.waitFor((m) => m.event === 'panic_entered', 'the live event', 5000);
    assert.equal(live!.json.id, 301);
  });

  test('at most maxClients streams (503 beyond); a closed one frees its place', async () => {
    const { stream, address } = await hub({ maxClients: 2 });
    const first = await started(SseReader.open(address, { token: TOKEN }));
    await started(SseReader.open(address, { token: TOKEN }));
    const refused = await openEvents(address, { token: TOKEN });
    assert.equal(refused.statusCode, 503);
    const chunks: Buffer[] = [];
    for await (const chunk of refused) chunks.push(chunk as Buffer);
    assert.match(Buffer.concat(chunks).toString('utf8'), /too many event stream clients \(at most 2\)/);
    first.close();
    await until(() => stream.clientCount === 1, 'the closed client to leave');
    const again = await started(SseReader.open(address, { token: TOKEN }));
    assert.equal(again.response.statusCode, 200);
  });

  test('a burst of requests in one turn gets exactly maxClients streams, and 503 for the rest', async () => {
    const { address } = await hub({ maxClients: 2 });
    const responses = await Promise.all([1, 2, 3, 4, 5].map(() => openEvents(address, { token: TOKEN })));
    cleanups.push(() => {
      for (const response of responses) response.destroy();
    });
    assert.deepEqual(responses.map((response) => response.statusCode).sort(), [200, 200, 503, 503, 503]);
  });

  test('a client that does not read is dropped once its unsent output passes the bound; a reading client gets everything', async () => {
    const { bus, stream, address } = await hub();
    const reader = await started(SseReader.open(address, { token: TOKEN }));
    const [host, port] = address.split(':') as [string, string];
    const stuck = connect({ host, port: Number(port) });
    cleanups.push(() => void stuck.destroy());
    stuck.on('error', () => undefined);
    await once(stuck, 'connect');
    stuck.write(`GET /v1/events HTTP/1.1\r\nhost: ${address}\r\nauthorization: Bearer ${TOKEN}\r\n\r\n`);
    // Never read: the kernel buffers fill, then node's, then the bound is hit.
    stuck.pause();
    await until(() => stream.clientCount === 2, 'the stuck client to be attached');
    const padding = 'x'.repeat(2000);
    let published = 0;
    // 20 KB per turn, so the reader (in this process) keeps up; at most 40 MB in total: far beyond
    // loopback socket buffers plus the bound, and bounded.
    while (stream.droppedClients === 0 && published < 20_000) {
      for (let i = 0; i < 10; i++) bus.publish({ type: 'reload', result: 'refused', message: padding });
      published += 10;
      await nextTurn();
    }
    assert.equal(stream.droppedClients, 1, `dropped after ${published} events`);
    assert.equal(stream.clientCount, 1, 'the reader is still attached');
    await reader.waitFor(() => true, 'every event at the reader', 30_000, published);
    assert.equal(reader.messages.length, published);
  });

  test('`: keepalive` comments keep an idle stream alive, past the request timeout; closing the admin server ends open streams', async () => {
    // The server's request timeout (200 ms) bounds receiving a request, not a response that streams.
    const { server, address } = await hub({ keepaliveMs: 50 }, 200);
    const reader = await started(SseReader.open(address, { token: TOKEN }));
    // 12 keepalives at 50 ms: the stream lived 600 ms, three request timeouts.
    await until(() => reader.comments.filter((comment) => comment === 'keepalive').length >= 12, '12 keepalive comments');
    assert.equal(reader.ended, false);
    const closing = server.close();
    await reader.waitForEnd(5000);
    await closing;
  });
});
