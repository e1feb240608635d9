/**
 * The shared-memory layout of one pool and one listener (src/shared-state/pool-state.ts): what a
 * worker attaches to is the same memory the main thread created, each worker's share of the counts
 * is kept apart so a dead worker's share can be taken off, and limits hold across workers. Real
 * worker threads read and write the same SharedArrayBuffer in the last test.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { SharedListenerState, SharedPoolState } from '../src/shared-state/pool-state.js';

describe('shared pool state', () => {
  test('the slots a pool readies start eligible at full scale, with no connections and no estimate', () => {
    const state = SharedPoolState.create(2);
    state.initSlots(0, 256);
    assert.equal(state.eligible(0), true);
    assert.equal(state.eligible(255), true);
    // Slots beyond are readied when the pool grows (only touched pages cost memory).
    state.initSlots(256, 512);
    assert.equal(state.eligible(511), true);
    assert.equal(state.scale(7), 1000);
    assert.equal(state.activeTotal(), 0);
    assert.equal(state.connectTimes[3], -1);
  });

  test('health writes move the epoch; an attached view sees them', () => {
    const main = SharedPoolState.create(2);
    const worker = SharedPoolState.attach(main.buffer, 2);
    const epoch = worker.healthEpoch();
    main.publishEligible(3, false);
    assert.notEqual(worker.healthEpoch(), epoch);
    assert.equal(worker.eligible(3), false);
    const next = worker.healthEpoch();
    main.publishScale(3, 250);
    assert.notEqual(worker.healthEpoch(), next);
    assert.equal(worker.scale(3), 250);
  });

  test("counts are process-wide; a dead worker's share is taken off and no other", () => {
    const state = SharedPoolState.create(3);
    for (let i = 0; i < 4; i++) state.acquire(0, 1);
    for (let i = 0; i < 3; i++) state.acquire(1, 1);
    state.acquire(1, 2);
    state.acquire(2, 2);
    state.release(0, 1);
    assert.equal(state.activeOf(1), 6);
    assert.equal(state.activeOf(2), 2);
    assert.equal(state.activeTotal(), 8);
    assert.equal(state.forgetWorker(1, 256), 4);
    assert.equal(state.activeOf(1), 3);
    assert.equal(state.activeOf(2), 1);
    assert.equal(state.activeTotal(), 4);
    // Forgetting twice takes nothing more.
    assert.equal(state.forgetWorker(1, 256), 0);
    assert.equal(state.activeTotal(), 4);
  });

  test('a slot given to a new backend forgets spills and connect times of the old one', () => {
    const state = SharedPoolState.create(1);
    state.noteSpill(4);
    state.connectTimes[4] = 900;
    state.connectTimeStamps[4] = 12;
    state.resetSlot(4);
    assert.equal(state.spilledOf(4), 0);
    assert.equal(state.connectTimes[4], -1);
    assert.equal(state.connectTimeStamps[4], 0);
  });
});

describe('shared listener state', () => {
  test('maxConnections holds for the whole process; refused ones are counted', () => {
    const state = SharedListenerState.create(2);
    assert.equal(state.tryOpen(0, 3), true);
    assert.equal(state.tryOpen(1, 3), true);
    assert.equal(state.tryOpen(1, 3), true);
    assert.equal(state.tryOpen(0, 3), false);
    assert.deepEqual([state.active(), state.accepted(), state.rejected()], [3, 3, 1]);
    state.close(1);
    assert.equal(state.tryOpen(0, 3), true);
    assert.deepEqual([state.activeOf(0), state.activeOf(1)], [2, 1]);
    assert.equal(state.forgetWorker(0), 2);
    assert.equal(state.active(), 1);
  });

  test('two threads counting at once lose no update', async () => {
    const state = SharedPoolState.create(2);
    const source = `
      const { workerData, parentPort } = require('node:worker_threads');
      const active = new Int32Array(workerData.buffer, workerData.offset, 1);
      for (let i = 0; i < 100000; i++) { Atomics.add(active, 0, 1); Atomics.sub(active, 0, 1); Atomics.add(active, 0, 1); }
      parentPort.postMessage('done');`;
    const offset = state.active.byteOffset + 5 * 4;
    const run = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const worker = new Worker(source, { eval: true, workerData: { buffer: state.buffer, offset } });
        worker.once('message', () => void worker.terminate().then(() => resolve()));
        worker.once('error', reject);
      });
    await Promise.all([run(), run()]);
    assert.equal(state.activeOf(5), 200_000);
  });
});
