/**
 * BackendQueues (src/proxy/backend-queue.ts) against a pool of places that counts like the real one:
 * FIFO admission on a local release, admission on another thread's release only when the shared
 * epoch moved (at the next poll), expiry at the deadline, the size bound, removal of a waiter that
 * went, a recheck after a reload raised the limit, and waiters of a backend taken out choose again. Timers are mocked (t.mock.timers), the
 * clock is the mocked Date.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { BackendQueues, LocalQueueDepth, POLL_MS, type PlaceSource, type QueuedConnection } from '../src/proxy/backend-queue.js';

class Places implements PlaceSource {
  active = new Int32Array(4);
  epoch = 0;
  constructor(public limit: number) {}
  tryAcquire(slot: number): boolean {
    if (this.active[slot]! >= this.limit) return false;
    this.active[slot]! += 1;
    return true;
  }
  releasedEpoch(): number {
    return this.epoch;
  }
  unroutable = new Set<number>();
  isRoutable(slot: number): boolean {
    return !this.unroutable.has(slot);
  }
  /** A place freed in another thread: only the epoch tells. */
  releaseElsewhere(slot: number): void {
    this.active[slot]! -= 1;
    this.epoch += 1;
  }
}

class Waiter implements QueuedConnection {
  queuePrevious: QueuedConnection | null = null;
  queueNext: QueuedConnection | null = null;
  slotPrevious = null;
  slotNext = null;
  queueDeadline = 0;
  admittedTo = -1;
  timedOut = false;
  gone = false;
  constructor(readonly name: string) {}
  admitted(slot: number): void {
    this.admittedTo = slot;
  }
  queueTimedOut(): void {
    this.timedOut = true;
  }
  backendGone(): void {
    this.gone = true;
  }
  forceClose(): void {}
}

function setup(t: TestContext, limit: number): { places: Places; depth: LocalQueueDepth; queues: BackendQueues } {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 });
  const places = new Places(limit);
  const depth = new LocalQueueDepth();
  const queues = new BackendQueues(places, depth, () => Date.now());
  return { places, depth, queues };
}

test('a local release admits the first waiter at once, in arrival order', (t) => {
  const { places, depth, queues } = setup(t, 1);
  assert.equal(places.tryAcquire(0), true);
  const first = new Waiter('first');
  const second = new Waiter('second');
  assert.equal(queues.enqueue(0, first, 10, 1000), true);
  assert.equal(queues.enqueue(0, second, 10, 1000), true);
  assert.equal(depth.of(0), 2);
  places.active[0]! -= 1;
  queues.released(0);
  assert.equal(first.admittedTo, 0);
  assert.equal(second.admittedTo, -1, 'one place, one waiter');
  assert.equal(depth.of(0), 1);
  assert.equal(queues.waiting, 1);
});

test('a release in another thread admits at the next poll, once the epoch moved', (t) => {
  const { places, queues } = setup(t, 1);
  places.tryAcquire(2);
  const waiter = new Waiter('w');
  queues.enqueue(2, waiter, 10, 1000);
  t.mock.timers.tick(POLL_MS);
  assert.equal(waiter.admittedTo, -1, 'still full');
  places.releaseElsewhere(2);
  assert.equal(waiter.admittedTo, -1, 'nothing runs before the poll');
  t.mock.timers.tick(POLL_MS);
  assert.equal(waiter.admittedTo, 2);
  assert.equal(queues.waiting, 0);
});

test('a waiter expires at its deadline; the size bound refuses one more; a waiter that went is removed', (t) => {
  const { places, depth, queues } = setup(t, 1);
  places.tryAcquire(1);
  const early = new Waiter('early');
  const gone = new Waiter('gone');
  assert.equal(queues.enqueue(1, early, 2, 100), true);
  assert.equal(queues.enqueue(1, gone, 2, 100), true);
  assert.equal(queues.enqueue(1, new Waiter('over'), 2, 100), false, 'size 2 holds two');
  queues.remove(1, gone);
  queues.remove(1, gone); // twice: a no-op
  assert.equal(depth.of(1), 1);
  t.mock.timers.tick(95);
  assert.equal(early.timedOut, false);
  t.mock.timers.tick(10);
  assert.equal(early.timedOut, true);
  assert.equal(gone.timedOut, false);
  assert.equal(depth.of(1), 0);
  assert.equal(queues.waiting, 0);
});

test('a reload that raises the limit lets waiters go at the recheck', (t) => {
  const { places, queues } = setup(t, 1);
  places.tryAcquire(3);
  const a = new Waiter('a');
  const b = new Waiter('b');
  queues.enqueue(3, a, 10, 1000);
  queues.enqueue(3, b, 10, 1000);
  places.limit = 3;
  queues.recheck();
  assert.deepEqual([a.admittedTo, b.admittedTo], [3, 3]);
});

test('waiters of a backend that stops being routable choose again at the next poll', (t) => {
  const { places, depth, queues } = setup(t, 1);
  places.tryAcquire(0);
  places.tryAcquire(1);
  const onZero = new Waiter('zero');
  const onOne = new Waiter('one');
  queues.enqueue(0, onZero, 10, 1000);
  queues.enqueue(1, onOne, 10, 1000);
  places.unroutable.add(0);
  t.mock.timers.tick(POLL_MS);
  assert.equal(onZero.gone, true);
  assert.equal(onOne.gone, false, 'the other backend is still worth waiting for');
  assert.equal(depth.of(0), 0);
  assert.equal(queues.waiting, 1);
});
