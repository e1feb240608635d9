/**
 * Per-source limits in shared memory (src/shared-state/source-limits.ts): open connections and a
 * GCRA rate per client address, exact for one source, never limiting a source that merely shares one
 * cell with a heavy one, and exact across real worker threads racing on the same source.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { sharedClockMicros, SOURCE_CELLS_PER_ROW, SourceLimits } from '../src/shared-state/source-limits.js';

const SOURCE = 0x0a000001;

describe('open connections per source', () => {
  test('the limit holds exactly; a release makes room again', () => {
    const limits = SourceLimits.create();
    for (let i = 0; i < 3; i++) assert.equal(limits.tryOpen(SOURCE, 3), true);
    assert.equal(limits.tryOpen(SOURCE, 3), false);
    assert.equal(limits.openEstimate(SOURCE), 3, 'a refusal leaves no count behind');
    limits.release(SOURCE);
    assert.equal(limits.tryOpen(SOURCE, 3), true);
  });

  test('a source sharing one row\'s cell with a source at its limit is not limited (count-min)', () => {
    const limits = SourceLimits.create();
    const neighbour = SOURCE + SOURCE_CELLS_PER_ROW; // same first-row cell, another second-row cell
    for (let i = 0; i < 5; i++) assert.equal(limits.tryOpen(SOURCE, 5), true);
    assert.equal(limits.tryOpen(SOURCE, 5), false);
    assert.equal(limits.tryOpen(neighbour, 5), true);
    assert.equal(limits.openEstimate(neighbour), 1);
  });
});

describe('connection rate per source (GCRA)', () => {
  test('a burst, then one per interval; a refused connection consumes nothing', () => {
    const limits = SourceLimits.create();
    const now = sharedClockMicros();
    for (let i = 0; i < 5; i++) assert.equal(limits.tryRate(SOURCE, 10, 5, now), true, `burst ${i}`);
    assert.equal(limits.tryRate(SOURCE, 10, 5, now), false);
    assert.equal(limits.tryRate(SOURCE, 10, 5, now + 50_000), false, 'half an interval later');
    assert.equal(limits.tryRate(SOURCE, 10, 5, now + 100_000), true, 'one interval later: one more');
    assert.equal(limits.tryRate(SOURCE, 10, 5, now + 100_000), false);
    assert.equal(limits.tryRate(SOURCE + 1, 10, 5, now), true, 'another source has its own budget');
  });

  test('after a sweep, a source idle for 40 minutes (past the 32-bit clock wrap) gets its whole burst', () => {
    const limits = SourceLimits.create();
    const now = sharedClockMicros();
    for (let i = 0; i < 3; i++) limits.tryRate(SOURCE, 1, 3, now);
    limits.sweep((now + 70_000_000) | 0);
    const later = (now + 40 * 60 * 1_000_000) | 0;
    for (let i = 0; i < 3; i++) assert.equal(limits.tryRate(SOURCE, 1, 3, later), true, `burst ${i}`);
    assert.equal(limits.tryRate(SOURCE, 1, 3, later), false);
  });
});

describe('across worker threads', () => {
  const WORKER_SOURCE = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then(({ SourceLimits, sharedClockMicros }) => {
      const limits = SourceLimits.attach(workerData.buffer);
      const go = new Int32Array(workerData.go);
      Atomics.add(go, 1, 1);
      Atomics.notify(go, 1);
      Atomics.wait(go, 0, 0);
      // Churn at the limit: each thread wants up to 30 of the source's 50, opening and releasing.
      let held = 0;
      let overLimit = 0;
      for (let i = 0; i < 200000; i++) {
        if (held < 30 && (i & 3) !== 3) {
          if (limits.tryOpen(${SOURCE}, 50)) {
            held += 1;
            if (limits.openEstimate(${SOURCE}) > 50) overLimit += 1;
          }
        } else if (held > 0) {
          limits.release(${SOURCE});
          held -= 1;
        }
      }
      let rated = 0;
      for (let i = 0; i < 2000; i++) if (limits.tryRate(${SOURCE}, 0.01, 5, sharedClockMicros())) rated += 1;
      parentPort.postMessage({ held, overLimit, rated });
    });
  `;

  test('two threads churning one source at its limit never pass it, and admit exactly the burst', async () => {
    const limits = SourceLimits.create();
    const go = new SharedArrayBuffer(8);
    const module = new URL('../src/shared-state/source-limits.js', import.meta.url).href;
    const workers = [0, 1].map(() => new Worker(WORKER_SOURCE, { eval: true, workerData: { buffer: limits.buffer, go, module } }));
    try {
      const results = workers.map((worker) => once(worker, 'message'));
      // Released together once both are ready, so they race on the same cells.
      const gate = new Int32Array(go);
      const giveUpAt = performance.now() + 10_000;
      while (Atomics.load(gate, 1) < 2) {
        assert.ok(performance.now() < giveUpAt, 'both threads ready within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      const counts = (await Promise.all(results)).map(([message]) => message as { held: number; overLimit: number; rated: number });
      assert.equal(counts[0]!.overLimit + counts[1]!.overLimit, 0, `never above 50: ${JSON.stringify(counts)}`);
      assert.equal(limits.openEstimate(SOURCE), counts[0]!.held + counts[1]!.held, 'the count is what the threads hold');
      assert.equal(counts[0]!.rated + counts[1]!.rated, 5, JSON.stringify(counts));
    } finally {
      await Promise.all(workers.map((worker) => worker.terminate()));
    }
  });
});
