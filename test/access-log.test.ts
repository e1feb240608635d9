/**
 * The access log's own parts (src/access-log/access-log.ts): sampling rates and the open-connection
 * sweep's batching. The sweep is driven by its real timers; the list it sweeps is a plain array
 * standing in for a listener's connections, so 10,000 of them cost no sockets.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AccessLog, type OpenConnectionList } from '../src/access-log/access-log.js';
import { DEFAULT_ACCESS_LOG } from '../src/access-log/settings.js';
import { LogCapture } from './helpers/log-capture.js';

function accessLogWith(settings: Partial<typeof DEFAULT_ACCESS_LOG>, capture = new LogCapture()): AccessLog {
  return new AccessLog({ ...DEFAULT_ACCESS_LOG, ...settings }, { worker: 0, fd: 1, destination: { write: (line: string) => capture.write(line) } });
}

describe('sampling', () => {
  test('1 keeps every connection, 0 none', () => {
    const all = accessLogWith({ sample: 1 });
    const none = accessLogWith({ sample: 0 });
    for (let i = 0; i < 10_000; i++) {
      assert.equal(all.sample(), true);
      assert.equal(none.sample(), false);
    }
    all.close();
    none.close();
  });

  test('0.01 and 0.25 keep their share within 5 standard deviations over 200,000 draws', () => {
    for (const rate of [0.01, 0.25]) {
      const log = accessLogWith({ sample: rate });
      const draws = 200_000;
      let kept = 0;
      for (let i = 0; i < draws; i++) if (log.sample()) kept += 1;
      const mean = draws * rate;
      const sd = Math.sqrt(draws * rate * (1 - rate));
      assert.ok(Math.abs(kept - mean) < 5 * sd, `rate ${rate}: kept ${kept}, expected ${mean} ± ${5 * sd}`);
      log.close();
    }
  });

  test('a reload changes the rate at once', () => {
    const log = accessLogWith({ sample: 1 });
    log.configure({ ...log.settings, sample: 0 });
    for (let i = 0; i < 1000; i++) assert.equal(log.sample(), false);
    log.close();
  });
});

/** A listener's connection list as the sweep sees it: `count` connections, each due every interval. */
class ConnectionArray implements OpenConnectionList {
  readonly lastLineAt: Float64Array;
  cursor = -1;
  readonly calls: Array<{ budget: number; visited: number; afterATurn: boolean }> = [];
  /** Set by a setImmediate each call schedules: true at the next call when a loop turn passed between them. */
  #turnPassed = true;
  lines = 0;
  /** Called after each batch with the lines written so far. */
  onLines: (lines: number) => void = () => undefined;

  constructor(count: number, openedAt: number) {
    this.lastLineAt = new Float64Array(count).fill(openedAt);
  }

  beginOpenSweep(): void {
    this.cursor = 0;
  }

  continueOpenSweep(budget: number, nowMs: number, intervalMs: number): number {
    const afterATurn = this.#turnPassed;
    this.#turnPassed = false;
    setImmediate(() => {
      this.#turnPassed = true;
    });
    let visited = 0;
    while (this.cursor < this.lastLineAt.length && visited < budget) {
      if (nowMs - this.lastLineAt[this.cursor]! >= intervalMs) {
        this.lastLineAt[this.cursor] = nowMs;
        this.lines += 1;
      }
      this.cursor += 1;
      visited += 1;
    }
    this.calls.push({ budget, visited, afterATurn });
    this.onLines(this.lines);
    return visited;
  }
}

describe('open-connection sweep', () => {
  test('10,000 connections are visited at most 512 per event-loop turn, and each writes its line once per interval', async () => {
    const list = new ConnectionArray(10_000, performance.now());
    const log = accessLogWith({ openConnectionsIntervalMs: 100 });
    log.track(list);
    // Until every connection has written one line (due after 100 ms, swept every 25 ms).
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`only ${list.lines} lines within 5 s`)), 5000);
      list.onLines = (lines) => {
        if (lines < 10_000) return;
        clearTimeout(deadline);
        resolve();
      };
    });
    log.close();
    assert.equal(list.lines, 10_000, 'each connection wrote exactly one line in its first interval');
    assert.ok(list.calls.length >= Math.ceil(10_000 / 512), `${list.calls.length} calls`);
    for (const call of list.calls) assert.ok(call.budget <= 512 && call.visited <= 512, JSON.stringify(call));
    // Within a sweep, every batch after the first ran on a later turn of the event loop.
    let sweepCalls = 0;
    for (const call of list.calls) {
      if (sweepCalls > 0 && call.visited > 0) assert.equal(call.afterATurn, true, 'two batches ran in one turn');
      sweepCalls = call.visited < call.budget ? 0 : sweepCalls + 1;
    }
  });

  test('interval 0 and enabled false run no sweep; a reload starts and stops it (mocked timers)', (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'setImmediate'] });
    const list = new ConnectionArray(10, performance.now() - 1000); // every one already due
    const log = accessLogWith({ openConnectionsIntervalMs: 0 });
    log.track(list);
    t.mock.timers.tick(1000);
    assert.equal(list.calls.length, 0, 'a sweep ran with the interval 0');
    log.configure({ ...log.settings, openConnectionsIntervalMs: 100, enabled: false });
    t.mock.timers.tick(1000);
    assert.equal(list.calls.length, 0, 'a sweep ran with the access log off');
    log.configure({ ...log.settings, enabled: true });
    t.mock.timers.tick(25); // a quarter interval: the first sweep
    assert.equal(list.lines, 10);
    log.configure({ ...log.settings, openConnectionsIntervalMs: 0 });
    const calls = list.calls.length;
    t.mock.timers.tick(1000);
    assert.equal(list.calls.length, calls, 'a sweep ran after the interval was set to 0');
    log.close();
  });
});
