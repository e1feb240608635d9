/**
 * Refusals at the listener's edge as events, end to end: the real CLI, real loopback clients, a
 * real SSE client on `GET /v1/events` and a real alert receiver (node:http on port 0). A denied
 * source is one `refusals_started` and, once it stops, one `refusals_stopped`, on the stream and at
 * a receiver subscribed to those types; a per-source rate flood's events add up to the counter in
 * /metrics; with two worker threads the operational log has one summary (from the main thread,
 * with the process-wide count), not one per worker. Every wait is on an arrival (an SSE message, a
 * POST, a closed socket); descriptor exhaustion's events are in e2e-fd-exhaustion.test.ts.
 */
import assert from 'node:assert/strict';
import { after, describe, test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import type { RinglbEvent } from '../src/events/types.js';
import { Ringlb } from '../src/runtime.js';
import { startNamedBackend } from './helpers/backends.js';
import { closed, openClient } from './helpers/clients.js';
import { EventReceiver, SseReader, type ReceivedEvent, type SseMessage } from './helpers/events.js';
import { LogCapture } from './helpers/log-capture.js';
import { scrape } from './helpers/metrics.js';
import { startRinglb, TempDir, type RinglbProcess } from './helpers/ringlb-process.js';
import { workersTest } from './helpers/workers.js';

const TOKEN = 'edge-events-token-0123456789';
/**
 * The watcher reads every second (EDGE_WATCH_MS): an event follows its refusals within two reads.
 * The margin covers a loaded 2-core machine running other suites.
 */
const EVENT_BOUND_MS = 2 * 1000 + 8000;
/** refusals_stopped comes after 10 s without a refusal (one log interval), read once a second. */
const STOP_BOUND_MS = 10_000 + EVENT_BOUND_MS;
const RATE_MESSAGE = 'connections refused: source over connectionRatePerSource';

const temp = new TempDir();
after(() => temp.remove());

interface Started {
  readonly ringlb: RinglbProcess;
  readonly port: number;
  readonly admin: string;
  readonly events: SseReader;
}

async function run(t: TestContext, config: Record<string, unknown>): Promise<Started> {
  const backend = await startNamedBackend('a');
  t.after(() => backend.close());
  const file = temp.writeJson({
    admin: { bind: '127.0.0.1:0', token: TOKEN },
    pools: [{ name: 'p', backends: [{ address: backend.address }] }],
    log: { level: 'info' },
    ...config,
  });
  const { ringlb, ports } = await startRinglb(file, ['edge']);
  t.after(() => ringlb.kill());
  const admin = String((await ringlb.waitForLine((line) => line.msg === 'admin ready')).address);
  const workers = typeof config.workers === 'number' ? config.workers : 1;
  if (workers > 1) await ringlb.waitForLine((line) => line.msg === 'data-plane workers ready' && line.workers === workers);
  const events = await SseReader.open(admin, { token: TOKEN });
  t.after(() => events.close());
  return { ringlb, port: ports.get('edge')!, admin, events };
}

/** One client of a rate-limited listener: served (the backend's greeting arrives) or refused (closed first). */
async function tryClient(port: number): Promise<'served' | 'refused'> {
  const socket = await openClient({ port });
  try {
    return await new Promise((resolve) => {
      socket.once('data', () => resolve('served'));
      // Clients here allow half-open: a refusal may be a FIN ('end') as well as a reset ('close').
      socket.once('end', () => resolve('refused'));
      socket.once('close', () => resolve('refused'));
    });
  } finally {
    socket.destroy();
  }
}

/** One client ringlb refuses: connected, then closed by ringlb. */
async function refused(port: number): Promise<void> {
  const socket = await openClient({ port });
  try {
    await closed(socket);
  } finally {
    socket.destroy();
  }
}

const about = (type: string, outcome: string) => (message: SseMessage) => message.json.type === type && message.json.listener === 'edge' && message.json.outcome === outcome;

/** Counts of an episode's `refusals_started` and `refusals` events, in order. */
function episodeCounts(messages: readonly SseMessage[], outcome: string): number[] {
  return messages.filter((m) => (m.json.type === 'refusals_started' || m.json.type === 'refusals') && m.json.outcome === outcome).map((m) => Number(m.json.count));
}

async function metric(admin: string, outcome: string): Promise<number> {
  return (await scrape(admin, TOKEN)).value('ringlb_listener_connections_total', { listener: 'edge', outcome }) ?? 0;
}

describe('edge refusals as events', () => {
  test('a denied source: refusals_started on the stream and at the receiver, then refusals_stopped; counts add up to /metrics', { timeout: 60_000 }, async (t) => {
    const receiver = await EventReceiver.start();
    t.after(() => receiver.close());
    const { port, admin, events } = await run(t, {
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', deny: ['127.0.0.1/32'] }],
      alerts: { webhooks: [{ name: 'ops', url: receiver.url, events: ['refusals_started', 'refusals_stopped'] }] },
    });
    const N = 12;
    for (let i = 0; i < N; i++) await refused(port);

    const [started] = await events.waitFor(about('refusals_started', 'denied'), 'refusals_started on the stream', EVENT_BOUND_MS);
    assert.equal(started!.event, 'refusals_started', 'the SSE event name is the type');
    assert.equal(typeof started!.json.total, 'number');
    // One episode, unless the machine stalled for a whole read between two clients: then several,
    // and the last one's stop carries the total.
    const [stopped] = await events.waitFor((m) => about('refusals_stopped', 'denied')(m) && m.json.total === N, 'refusals_stopped on the stream', STOP_BOUND_MS);
    assert.equal(stopped!.json.listener, 'edge');
    assert.deepEqual(
      episodeCounts(events.messages, 'denied').reduce((sum, count) => sum + count, 0),
      N,
      'started + summaries count every refusal once',
    );
    assert.equal(await metric(admin, 'denied'), N);

    await receiver.waitForPosts((post) => post.event.type === 'refusals_stopped' && post.event.total === N, 'refusals_stopped at the receiver', STOP_BOUND_MS);
    const delivered = receiver.delivered();
    // Subscribed types only (no per-interval summaries), started and stopped in turn.
    delivered.forEach((event: ReceivedEvent, index) => assert.equal(event.type, index % 2 === 0 ? 'refusals_started' : 'refusals_stopped', JSON.stringify(delivered)));
    assert.ok(delivered.every((event) => event.listener === 'edge' && event.outcome === 'denied'), JSON.stringify(delivered));
  });

  for (const workers of [1, 2]) {
    const define = (name: string, fn: (t: TestContext) => Promise<void>): void => (workers === 1 ? void test(name, { timeout: 60_000 }, fn) : workersTest(name, fn, { timeout: 60_000 }));
    define(`workers ${workers}: a per-source rate flood: summaries each interval add up to /metrics; one process-wide summary line, not one per worker`, async (t) => {
      const { ringlb, port, admin, events } = await run(t, {
        workers,
        listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', connectionRatePerSource: { rate: 1, burst: 1 } }],
      });
      // Flood until the stream has carried `refusals_started`, then 200 clients more: those are
      // counted after the read that started the episode, so they come as a `refusals` event (the
      // rest, published at the stop; progress events otherwise wait 10 s). Bounded: it stops
      // when the wait fails too.
      let refusedClients = 0;
      let attempts = 0;
      let stopAfter = Number.POSITIVE_INFINITY;
      const flood = (async () => {
        while (attempts < stopAfter) {
          const fates = await Promise.all(Array.from({ length: 10 }, () => tryClient(port)));
          refusedClients += fates.filter((fate) => fate === 'refused').length;
          attempts += fates.length;
        }
      })();
      try {
        await events.waitFor(about('refusals_started', 'rejected_source_rate'), 'refusals_started during the flood', 2 * EVENT_BOUND_MS);
        stopAfter = attempts + 200;
      } finally {
        stopAfter = Math.min(stopAfter, attempts + 200);
        await flood;
      }
      const [stopped] = await events.waitFor((m) => about('refusals_stopped', 'rejected_source_rate')(m) && m.json.total === refusedClients, 'refusals_stopped with every refusal', STOP_BOUND_MS);
      const total = await metric(admin, 'rejected_source_rate');
      assert.equal(total, refusedClients, `${refusedClients} of ${attempts} clients were refused`);
      assert.equal(stopped!.json.total, total);
      const counts = episodeCounts(events.messages, 'rejected_source_rate');
      assert.ok(counts.length >= 2 && counts.every((count) => count > 0), JSON.stringify(counts));
      assert.equal(counts.reduce((sum, count) => sum + count, 0), total, 'the events count every refusal exactly once');
      for (const summary of events.messages.filter((m) => m.json.type === 'refusals')) assert.ok(Number(summary.json.intervalMs) > 0);

      // The log: the main thread's summary lines carry the process-wide count (they add up to the
      // counter); a worker writes only the first refusal of its quiet period, with the client.
      await ringlb.waitForLine((line) => line.msg === RATE_MESSAGE && line.processWide === true && line.total === total, EVENT_BOUND_MS, 'the last summary line');
      const lines = ringlb.lines.filter((line) => line.msg === RATE_MESSAGE);
      const summaries = lines.filter((line) => line.processWide === true);
      const firsts = lines.filter((line) => line.processWide !== true);
      assert.ok(summaries.every((line) => line.worker === undefined), 'summaries come from the main thread');
      assert.equal(summaries.reduce((sum, line) => sum + Number(line.count), 0), total, 'summaries add up to the counter');
      // One line per log interval (10 s): a flood of a few seconds has one, at its end.
      assert.ok(summaries.length >= 1);
      if (summaries.length > 1) for (const line of summaries.slice(0, -1)) assert.ok(Number(line.intervalMs) >= 10_000, 'never two within one interval');
      assert.ok(firsts.length >= 1 && firsts.length <= workers, `first-refusal lines: at most one per thread (${firsts.length})`);
      assert.ok(firsts.every((line) => line.count === 1 && String(line.client).startsWith('127.0.0.1')), JSON.stringify(firsts));
      if (workers > 1) assert.ok(firsts.every((line) => typeof line.worker === 'number'));
    });
  }

  test('in process, intervals shortened (RinglbOptions.edgeWatch): a flood over several log intervals writes one line per interval, adding up', { timeout: 60_000 }, async (t) => {
    const backend = await startNamedBackend('a');
    t.after(() => backend.close());
    const INTERVAL_MS = 100;
    const LOG_INTERVAL_MS = 400;
    const capture = new LogCapture();
    const ringlb = new Ringlb({ logger: capture.logger('info'), edgeWatch: { intervalMs: INTERVAL_MS, logIntervalMs: LOG_INTERVAL_MS } });
    const events: RinglbEvent[] = [];
    const waiters = new Set<() => void>();
    const unsubscribe = ringlb.events.subscribe((published) => {
      events.push(published.event);
      for (const wake of waiters) wake();
    });
    t.after(unsubscribe);
    /** Resolves once an event published so far or later satisfies `predicate` (the test's timeout bounds it). */
    const eventArrived = (predicate: (event: RinglbEvent) => boolean): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (!events.some(predicate)) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      });
    const result = validateConfig({
      workers: 1,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', connectionRatePerSource: { rate: 1, burst: 1 } }],
      pools: [{ name: 'p', backends: [{ address: backend.address }] }],
    });
    assert.ok(result.ok, JSON.stringify(result));
    await ringlb.start(result.config);
    t.after(() => ringlb.close());
    const port = Number(ringlb.listenerAddress('edge')!.split(':').at(-1));
    const summaryLines = () => capture.lines.filter((line) => line.msg === RATE_MESSAGE && line.processWide === true);
    // Flood until two summary lines were written while refusals went on (so at least one log
    // interval passed between them), then stop.
    let refusedClients = 0;
    let flooding = true;
    const flood = (async () => {
      while (flooding) {
        const fates = await Promise.all(Array.from({ length: 10 }, () => tryClient(port)));
        refusedClients += fates.filter((fate) => fate === 'refused').length;
      }
    })();
    try {
      await capture.waitForLine(() => summaryLines().length >= 2, 30_000, 'two summary lines during the flood');
    } finally {
      flooding = false;
      await flood;
    }
    // The stop comes one quiet read after the flood.
    await eventArrived((event) => event.type === 'refusals_stopped' && event.total === refusedClients);
    const total = ringlb.traffic.listener('edge')!.connections['rejected_source_rate'];
    assert.equal(total, refusedClients);
    const lines = summaryLines();
    assert.equal(lines.reduce((sum, line) => sum + Number(line.count), 0), total, 'the lines count every refusal once');
    // Every line but the last (written when the refusals stopped) closes a whole log interval.
    for (const line of lines.slice(0, -1)) assert.ok(Number(line.intervalMs) >= LOG_INTERVAL_MS, JSON.stringify(line));
    const summaries = events.filter((event) => event.type === 'refusals');
    // Progress events are as rare as the lines, though the counters are read every INTERVAL_MS.
    assert.ok(summaries.length >= 1 && summaries.length <= lines.length, `events (${summaries.length}), lines (${lines.length})`);
    for (const summary of summaries.slice(0, -1)) assert.ok(Number(summary.intervalMs) >= LOG_INTERVAL_MS, JSON.stringify(summary));
    const counted = events.filter((event) => event.type === 'refusals_started' || event.type === 'refusals').reduce((sum, event) => sum + (event.count ?? 0), 0);
    assert.equal(counted, total);
  });
});
