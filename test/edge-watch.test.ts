/**
 * EdgeWatch on real shared listener counters (two thread rows, written as two workers would), read
 * by hand at chosen clock values: which events an episode of refusals or of descriptor exhaustion
 * produces, that their counts add up to the counter, and that the log gets one process-wide line
 * per interval, not one per thread. The end-to-end side (CLI, SSE, webhooks, workers) is in
 * e2e-edge-events.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import { EdgeWatch } from '../src/events/edge-watch.js';
import { ListenerEdge, REFUSAL_LOG_INTERVAL_MS } from '../src/proxy/listener-edge.js';
import type { RinglbEventInput } from '../src/events/types.js';
import { ListenerTrafficCounters } from '../src/shared-state/traffic-counters.js';
import { LogCapture } from './helpers/log-capture.js';

const INTERVAL_MS = 1000;
const LOG_INTERVAL_MS = 3000;

function setup(listeners = new Map<string, ListenerTrafficCounters>([['edge', ListenerTrafficCounters.create(2)]])) {
  const published: RinglbEventInput[] = [];
  const capture = new LogCapture();
  let now = 0;
  const watch = new EdgeWatch({
    events: { publish: (event) => published.push(event) },
    logger: capture.logger('info'),
    listeners: () => listeners,
    intervalMs: INTERVAL_MS,
    logIntervalMs: LOG_INTERVAL_MS,
    now: () => now,
  });
  const counters = listeners.get('edge')!;
  const threads = [counters.writer(0), counters.writer(1)];
  /** One interval passes, then the watch reads. */
  const tick = (): RinglbEventInput[] => {
    now += INTERVAL_MS;
    const before = published.length;
    watch.read();
    return published.slice(before);
  };
  return { published, capture, watch, counters, threads, tick, listeners };
}

const summaryLines = (capture: LogCapture, msg: string) => capture.lines.filter((line) => line.msg === msg && line.processWide === true);

describe('EdgeWatch: refusals', () => {
  test('counts before the watch starts are the baseline, not news', () => {
    const { watch, threads, tick } = setup();
    for (let i = 0; i < 5; i++) threads[0]!.ended('denied');
    watch.read(true);
    assert.deepEqual(tick(), []);
  });

  test('started, the rest when they stop, stopped: counts of both threads add up to the counter', () => {
    const { watch, threads, tick, counters } = setup();
    watch.read(true);
    threads[0]!.ended('denied');
    threads[1]!.ended('denied');
    threads[1]!.ended('denied');
    assert.deepEqual(tick(), [{ type: 'refusals_started', listener: 'edge', outcome: 'denied', count: 3, total: 3 }]);
    // Progress waits for the log interval (3 reads here), or for the stop.
    for (let i = 0; i < 4; i++) threads[i % 2]!.ended('denied');
    assert.deepEqual(tick(), []);
    threads[1]!.ended('denied');
    assert.deepEqual(tick(), []);
    // Quiet: the progress goes out at the log's pace; the stop waits a whole quiet log interval.
    assert.deepEqual(tick(), [{ type: 'refusals', listener: 'edge', outcome: 'denied', count: 5, total: 8, intervalMs: 3 * INTERVAL_MS }]);
    assert.deepEqual(tick(), []);
    assert.deepEqual(tick(), [{ type: 'refusals_stopped', listener: 'edge', outcome: 'denied', total: 8 }]);
    assert.equal(counters.ended('denied'), 8);
    // Quiet stays quiet; a new episode starts again.
    assert.deepEqual(tick(), []);
    threads[0]!.ended('denied');
    assert.deepEqual(tick(), [{ type: 'refusals_started', listener: 'edge', outcome: 'denied', count: 1, total: 9 }]);
  });

  test('a long flood: one refusals event per log interval, not per read', () => {
    const { watch, threads, tick } = setup();
    watch.read(true);
    const events: RinglbEventInput[] = [];
    for (let interval = 0; interval < 7; interval++) {
      threads[interval % 2]!.ended('rejected_source_rate');
      threads[interval % 2]!.ended('rejected_source_rate');
      events.push(...tick());
    }
    for (let read = 0; read < 3; read++) events.push(...tick());
    assert.deepEqual(
      events.map((event) => [event.type, event.count ?? null, event.total]),
      [
        ['refusals_started', 2, 2],
        ['refusals', 6, 8],
        ['refusals', 6, 14],
        ['refusals_stopped', null, 14],
      ],
    );
  });

  test('outcomes are episodes of their own; rejected_max_connections is watched, rejected_no_fds is not a refusal episode', () => {
    const { watch, threads, tick } = setup();
    watch.read(true);
    threads[0]!.ended('rejected_source_rate');
    threads[1]!.ended('rejected_max_connections');
    threads[1]!.ended('ok');
    const events = tick();
    assert.deepEqual(
      events.filter((event) => event.type === 'refusals_started').map((event) => event.outcome),
      ['rejected_source_rate', 'rejected_max_connections'],
    );
    threads[0]!.ended('rejected_source_rate');
    assert.deepEqual(tick(), []);
    assert.deepEqual(tick(), []);
    assert.deepEqual(
      tick().map((event) => `${event.type} ${event.outcome}`),
      ['refusals rejected_source_rate', 'refusals_stopped rejected_max_connections'],
    );
  });

  test('the log: one line per log interval with the process-wide count, the rest when they stop', () => {
    const { watch, threads, tick, capture } = setup();
    watch.read(true);
    // 6 intervals of refusals from both threads (LOG_INTERVAL_MS is 3 intervals), then quiet.
    for (let interval = 0; interval < 6; interval++) {
      threads[0]!.ended('rejected_source_rate');
      threads[1]!.ended('rejected_source_rate');
      tick();
    }
    for (let read = 0; read < 3; read++) tick();
    const lines = summaryLines(capture, 'connections refused: source over connectionRatePerSource');
    // Read 1 starts the episode; reads 4 and 7 (3 s apart) write the lines; the stop (read 9) has nothing left.
    assert.deepEqual(
      lines.map((line) => [line.count, line.total, line.intervalMs]),
      [
        [8, 8, 3000],
        [4, 12, 3000],
      ],
    );
    assert.ok(lines.every((line) => line.worker === undefined && line.listener === 'edge'));
  });

  test('a source refused every other read (a probe outside the allow list) is one episode, not a pair per probe', () => {
    const { watch, threads, tick } = setup();
    watch.read(true);
    const events: RinglbEventInput[] = [];
    for (let read = 0; read < 12; read++) {
      if (read % 2 === 0) threads[0]!.ended('denied');
      events.push(...tick());
    }
    for (let read = 0; read < 3; read++) events.push(...tick());
    const types = events.map((event) => event.type);
    assert.equal(types[0], 'refusals_started');
    assert.equal(types.at(-1), 'refusals_stopped');
    assert.ok(types.slice(1, -1).every((type) => type === 'refusals'), types.join(', '));
    assert.equal(events.filter((event) => event.type !== 'refusals_stopped').reduce((sum, event) => sum + (event.count ?? 0), 0), 6);
  });

  test('a listener that appears after the start counts from zero; one that leaves is forgotten', () => {
    const listeners = new Map<string, ListenerTrafficCounters>([['edge', ListenerTrafficCounters.create(2)]]);
    const { watch, tick } = setup(listeners);
    watch.read(true);
    const added = ListenerTrafficCounters.create(1);
    added.writer(0).ended('denied');
    listeners.set('added', added);
    assert.deepEqual(tick(), [{ type: 'refusals_started', listener: 'added', outcome: 'denied', count: 1, total: 1 }]);
    listeners.delete('added');
    assert.deepEqual(tick(), []);
  });
});

describe('EdgeWatch: descriptor exhaustion', () => {
  test('exhausted at the first pause; recovered only once no thread is paused and an interval was quiet', () => {
    const { watch, threads, tick, capture } = setup();
    watch.read(true);
    threads[0]!.ended('rejected_no_fds');
    threads[0]!.acceptPaused();
    // The other worker follows the pause (fd-exhaustion.ts): paused, nothing refused there.
    threads[1]!.acceptPaused();
    assert.deepEqual(tick(), [{ type: 'fds_exhausted', listener: 'edge', outcome: 'rejected_no_fds', count: 1, total: 1, pauses: 2 }]);
    threads[1]!.ended('rejected_no_fds');
    assert.deepEqual(tick(), [], 'still exhausted: no second event');
    threads[0]!.acceptResumed();
    assert.deepEqual(tick(), [], 'a thread still paused');
    threads[1]!.acceptResumed();
    // Not yet: the last refusal was 2 reads ago, and recovery waits a whole log interval (3 reads).
    assert.deepEqual(tick(), []);
    assert.deepEqual(tick(), [{ type: 'fds_recovered', listener: 'edge', outcome: 'rejected_no_fds', total: 2, pauses: 2 }]);
    const warnings = summaryLines(capture, 'out of file descriptors: clients refused');
    assert.deepEqual(
      warnings.map((line) => line.refused),
      [1, 1],
      'one warning at the start, the rest when it is over',
    );
    assert.equal(capture.lines.filter((line) => line.msg === 'file descriptors available again: listener accepting').length, 1);
  });

  test('a refusal without a pause (the accept queue reset at a pause) is exhaustion too', () => {
    const { watch, threads, tick } = setup();
    watch.read(true);
    threads[1]!.ended('rejected_no_fds');
    assert.deepEqual(tick().map((event) => event.type), ['fds_exhausted']);
    assert.deepEqual(tick(), []);
    assert.deepEqual(tick(), []);
    assert.deepEqual(tick().map((event) => event.type), ['fds_recovered']);
  });

  test('refusals every other read keep one episode: no exhausted/recovered pair per burst', () => {
    const { watch, threads, tick } = setup();
    watch.read(true);
    const events: RinglbEventInput[] = [];
    for (let read = 0; read < 12; read++) {
      if (read % 2 === 0) threads[0]!.ended('rejected_no_fds');
      events.push(...tick());
    }
    for (let read = 0; read < 3; read++) events.push(...tick());
    assert.deepEqual(events.map((event) => event.type), ['fds_exhausted', 'fds_recovered']);
  });
});

describe("a thread's own refusal lines (ListenerEdge.noteRefusal)", () => {
  test('the first refusal after a quiet interval is written at once with the client; the rest only counted', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const result = validateConfig({ listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', deny: ['127.0.0.1/32'] }], pools: [{ name: 'p', backends: [{ address: '127.0.0.1:1' }] }] });
    assert.ok(result.ok, JSON.stringify(result));
    const capture = new LogCapture();
    const edge = ListenerEdge.of(result.config.listeners[0]!, null, capture.logger('info'))!;
    const lines = () => capture.lines.filter((line) => line.msg === 'connections refused: source denied (allow/deny)');
    for (let i = 0; i < 100; i++) edge.noteRefusal('denied', '127.0.0.1');
    assert.deepEqual(lines().map((line) => [line.client, line.count]), [['127.0.0.1', 1]]);
    // Refusals go on through the next interval: still loud, nothing written.
    t.mock.timers.tick(REFUSAL_LOG_INTERVAL_MS);
    edge.noteRefusal('denied', '127.0.0.2');
    t.mock.timers.tick(REFUSAL_LOG_INTERVAL_MS);
    edge.noteRefusal('denied', '127.0.0.3');
    assert.equal(lines().length, 1);
    // A whole interval without one: the next is written again.
    t.mock.timers.tick(REFUSAL_LOG_INTERVAL_MS);
    t.mock.timers.tick(REFUSAL_LOG_INTERVAL_MS);
    edge.noteRefusal('denied', '127.0.0.4');
    assert.deepEqual(lines().map((line) => line.client), ['127.0.0.1', '127.0.0.4']);
  });
});
