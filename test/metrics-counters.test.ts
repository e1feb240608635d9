/**
 * The counters behind `/metrics`, without sockets: the shared layout (one row per thread, summed
 * at read), a worker attaching from the buffer alone, counts past Int32's range, a grown pool's
 * segments summed, a reused slot starting from zero without anyone clearing a cell, cumulative
 * histogram buckets, and listener outcomes per row.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PoolCounters } from '../src/metrics/pool-counters.js';
import { histogramQuantile } from '../src/metrics/traffic-view.js';
import { CONNECT_SECONDS_BOUNDS, CONNECTION_OUTCOMES, ListenerTrafficCounters, SlotCell, TrafficSegment } from '../src/shared-state/traffic-counters.js';

describe('traffic segment', () => {
  test('each thread writes its own row; readers sum the rows; a worker attaches from the buffer alone', () => {
    const segment = TrafficSegment.create(3, 8);
    const attached = TrafficSegment.attach(segment.buffer);
    assert.equal(attached.rows, 3);
    assert.equal(attached.capacity, 8);
    const writers = [0, 1, 2].map((row) => attached.writer(row));
    writers[0]!.connected(5, 0.0003);
    writers[1]!.connected(5, 0.002);
    writers[2]!.connected(6, 0.5);
    writers[1]!.addBytes(5, 100, 250);
    writers[2]!.addBytes(5, 1, 2);
    writers[0]!.connectFailed(5, 'timeout');
    writers[2]!.connectFailed(5, 'refused');
    writers[2]!.connectFailed(5, 'error');
    writers[1]!.retried();
    writers[2]!.retried();
    assert.equal(segment.sumSlot(5, SlotCell.CONNECTIONS), 2);
    assert.equal(segment.sumSlot(6, SlotCell.CONNECTIONS), 1);
    assert.equal(segment.sumSlot(5, SlotCell.BYTES_TO_BACKEND), 101);
    assert.equal(segment.sumSlot(5, SlotCell.BYTES_TO_CLIENT), 252);
    assert.equal(segment.sumSlot(5, SlotCell.FAILED_TIMEOUT), 1);
    assert.equal(segment.sumSlot(5, SlotCell.FAILED_REFUSED), 1);
    assert.equal(segment.sumSlot(5, SlotCell.FAILED_ERROR), 1);
    assert.equal(segment.retries(), 2);
    assert.equal(segment.slotCellOfRow(1, 5, SlotCell.CONNECTIONS), 1);
    assert.equal(segment.slotCellOfRow(2, 5, SlotCell.CONNECTIONS), 0);
    // Neighbouring slots and rows are untouched.
    assert.equal(segment.sumSlot(4, SlotCell.CONNECTIONS), 0);
    assert.equal(segment.sumSlot(7, SlotCell.BYTES_TO_CLIENT), 0);
    assert.throws(() => segment.writer(3), RangeError);
  });

  test('bytes past 2 GiB and past 4 GiB count exactly (Float64 cells, no Int32 wrap)', () => {
    const segment = TrafficSegment.create(2, 1);
    const writer = segment.writer(1);
    for (let i = 0; i < 5; i++) writer.addBytes(0, 2 ** 31 - 1, 2 ** 32);
    assert.equal(segment.sumSlot(0, SlotCell.BYTES_TO_BACKEND), 5 * (2 ** 31 - 1));
    assert.equal(segment.sumSlot(0, SlotCell.BYTES_TO_CLIENT), 5 * 2 ** 32);
  });

  test('a connect time lands in the first bucket whose bound holds it (bounds are inclusive, as Prometheus `le`)', () => {
    const counters = new PoolCounters(1, 4);
    const writer = counters.segment.writer(0);
    writer.connected(0, CONNECT_SECONDS_BOUNDS[0]!); // exactly on the first bound
    writer.connected(0, 0.0007); // between 0.0005 and 0.001
    writer.connected(0, 60); // past the last bound: +Inf only
    const histogram = counters.connectSeconds(0);
    assert.deepEqual(histogram.bounds, CONNECT_SECONDS_BOUNDS);
    assert.equal(histogram.counts.length, CONNECT_SECONDS_BOUNDS.length + 1);
    assert.equal(histogram.counts[0], 1);
    assert.equal(histogram.counts[CONNECT_SECONDS_BOUNDS.indexOf(0.0005)], 1);
    assert.equal(histogram.counts[CONNECT_SECONDS_BOUNDS.indexOf(0.001)], 2);
    assert.equal(histogram.counts[CONNECT_SECONDS_BOUNDS.length - 1], 2);
    assert.equal(histogram.counts[CONNECT_SECONDS_BOUNDS.length], 3);
    assert.equal(histogram.count, 3);
    assert.ok(Math.abs(histogram.sum - (0.0001 + 0.0007 + 60)) < 1e-9);
    // Rank 1.5 of 3 falls in (0.0005, 0.001], linearly half way: 0.00075.
    assert.ok(Math.abs(histogramQuantile(histogram, 0.5)! - 0.00075) < 1e-12);
  });
});

describe('pool counters', () => {
  test('a backend new to a slot counts from zero; the cells keep what its predecessor counted and are never cleared', () => {
    const counters = new PoolCounters(2, 4);
    counters.assign(1, 'old');
    const worker1 = counters.segment.writer(1);
    worker1.connected(1, 0.001);
    worker1.addBytes(1, 10, 20);
    counters.checkFailed(1);
    counters.ejected(1);
    assert.equal(counters.count(1, SlotCell.CONNECTIONS), 1);
    assert.equal(counters.ownerOf(1), 'old');

    counters.assign(1, 'new');
    assert.equal(counters.ownerOf(1), 'new');
    assert.equal(counters.segment.sumSlot(1, SlotCell.CONNECTIONS), 1, 'the cell still holds the old count');
    const fresh = counters.backendTotals(1, 0);
    assert.equal(fresh.connections, 0);
    assert.equal(fresh.bytesToBackend, 0);
    assert.equal(fresh.bytesToClient, 0);
    assert.equal(fresh.connectSeconds.count, 0);
    assert.deepEqual(fresh.connectSeconds.counts, new Array(CONNECT_SECONDS_BOUNDS.length + 1).fill(0));
    assert.equal(counters.checkFailuresOf(1), 0);
    assert.equal(counters.ejectionsOf(1), 0);
    counters.segment.writer(0).connected(1, 0.002);
    assert.equal(counters.backendTotals(1, 1).connections, 1);
    assert.equal(counters.backendTotals(1, 1).active, 1);
  });

  test('a grown pool writes into a larger segment; counts from the old one stay in the totals', () => {
    const counters = new PoolCounters(2, 2);
    counters.assign(1, 'a');
    const before = counters.segment;
    before.writer(0).connected(1, 0.001);
    counters.grow(8);
    assert.notEqual(counters.segment, before);
    assert.equal(counters.capacity, 8);
    // A worker that has not seen the new segment yet still adds to the old one: both count.
    before.writer(1).connected(1, 0.001);
    counters.segment.writer(1).connected(1, 0.001);
    counters.assign(6, 'b');
    counters.segment.writer(0).addBytes(6, 5, 7);
    assert.equal(counters.count(1, SlotCell.CONNECTIONS), 3);
    assert.equal(counters.count(6, SlotCell.BYTES_TO_CLIENT), 7);
    counters.grow(4); // never shrinks
    assert.equal(counters.capacity, 8);
  });

  test('table rebuilds are counted', () => {
    const counters = new PoolCounters(1, 2);
    assert.equal(counters.rebuilds(), 0);
    counters.tableRebuilt();
    counters.tableRebuilt();
    assert.equal(counters.rebuilds(), 2);
  });
});

test('listener counters: one cell per outcome and row, summed at read', () => {
  const counters = ListenerTrafficCounters.create(2);
  const attached = ListenerTrafficCounters.attach(counters.buffer, 2);
  attached.writer(0).ended('ok');
  attached.writer(1).ended('ok');
  attached.writer(1).ended('rejected_max_connections');
  assert.equal(counters.ended('ok'), 2);
  assert.equal(counters.ended('rejected_max_connections'), 1);
  for (const outcome of CONNECTION_OUTCOMES) if (outcome !== 'ok' && outcome !== 'rejected_max_connections') assert.equal(counters.ended(outcome), 0, outcome);
});
