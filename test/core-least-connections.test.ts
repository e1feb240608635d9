/**
 * least_connections: fewest active/(weight × scale) wins; ties go through smooth weighted round robin
 * over the tied slots (nginx ngx_http_upstream_get_least_conn_peer), so idle backends still share by
 * weight. Pinned with exact counts on both the WASM core and the reference.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createBalancer } from '../src/core/index.js';
import type { Balancer, BalancerOptions, CoreBackend } from '../src/core/types.js';

const IMPLEMENTATIONS = ['wasm', 'reference'] as const;

function forEachImplementation(name: string, body: (make: (options: BalancerOptions) => Balancer) => void): void {
  for (const implementation of IMPLEMENTATIONS) {
    it(`${name} (${implementation})`, () => body((options) => createBalancer(options, implementation)));
  }
}

function leastConnections(make: (options: BalancerOptions) => Balancer, backends: readonly CoreBackend[]): Balancer {
  const balancer = make({ policy: 'least_connections' });
  balancer.setBackends(backends);
  return balancer;
}

/** Short connections: each one closes before the next opens, so every backend stays at 0 active. */
function sequentialShortPicks(balancer: Balancer, count: number, tried: readonly number[] = []): string[] {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const slot = balancer.pick(0, tried, tried.length);
    assert.ok(slot >= 0, `pick ${i} found no slot`);
    balancer.acquire(slot);
    ids.push(balancer.idOf(slot) ?? '-');
    balancer.release(slot);
  }
  return ids;
}

function tally(ids: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const id of ids) counts[id] = (counts[id] ?? 0) + 1;
  return counts;
}

const WEIGHTED: readonly CoreBackend[] = [{ id: 'a', weight: 2 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }];
const EQUAL: readonly CoreBackend[] = [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }];

describe('least_connections: ties by smooth weighted round robin', () => {
  forEachImplementation('idle backends with weights 2,1,1 split 400 short connections 200/100/100', (make) => {
    const balancer = leastConnections(make, WEIGHTED);
    const ids = sequentialShortPicks(balancer, 400);
    assert.deepEqual(tally(ids), { a: 200, b: 100, c: 100 });
    // nginx's SWRR sequence for 2,1,1 (current weights return to 0 every 4 picks).
    assert.equal(ids.slice(0, 8).join(''), 'abcaabca');
  });

  forEachImplementation('equal idle backends share exactly evenly', (make) => {
    const balancer = leastConnections(make, EQUAL);
    const ids = sequentialShortPicks(balancer, 300);
    assert.deepEqual(tally(ids), { a: 100, b: 100, c: 100 });
    // Round robin in identity order: every window of three holds each backend once.
    for (let i = 0; i + 3 <= ids.length; i++) assert.equal([...ids.slice(i, i + 3)].sort().join(''), 'abc', `picks ${i}..${i + 2}`);
  });

  forEachImplementation('held connections: the least loaded per weight wins whatever the tie-break state', (make) => {
    const balancer = leastConnections(make, WEIGHTED);
    const [a, b, c] = ['a', 'b', 'c'].map((id) => balancer.slotOf(id));
    sequentialShortPicks(balancer, 3); // leave the current weights mid-cycle
    balancer.acquire(a);
    balancer.acquire(a);
    balancer.acquire(c);
    // active/weight: a 2/2, b 0/1, c 1/1 → b alone is least loaded.
    assert.equal(balancer.pick(0), b);
    balancer.acquire(b);
    // Now all three sit at 1 per weight: the tie splits 2:1:1 over whole cycles.
    const picks: string[] = [];
    for (let i = 0; i < 4; i++) picks.push(balancer.idOf(balancer.pick(0)) ?? '-');
    assert.deepEqual(tally(picks), { a: 2, b: 1, c: 1 });
    // Held connections accumulate in weight proportion.
    const filled = leastConnections(make, WEIGHTED);
    for (let i = 0; i < 400; i++) filled.acquire(filled.pick(0));
    assert.deepEqual(['a', 'b', 'c'].map((id) => filled.activeConnections(filled.slotOf(id))), [200, 100, 100]);
    filled.release(filled.slotOf('c'));
    assert.equal(filled.pick(0), filled.slotOf('c'));
  });

  forEachImplementation('an ineligible slot is outside the tie: the rest split by their weights', (make) => {
    const balancer = leastConnections(make, [...WEIGHTED, { id: 'd', weight: 3 }]);
    balancer.setEligible(balancer.slotOf('d'), false);
    assert.deepEqual(tally(sequentialShortPicks(balancer, 400)), { a: 200, b: 100, c: 100 });
    // The ineligible slot also cannot win on load: b and c tie at 1 per weight, a (0/2) is ineligible.
    balancer.setEligible(balancer.slotOf('a'), false);
    balancer.acquire(balancer.slotOf('b'));
    balancer.acquire(balancer.slotOf('c'));
    const picks: string[] = [];
    for (let i = 0; i < 100; i++) picks.push(balancer.idOf(balancer.pick(0)) ?? '-');
    assert.deepEqual(tally(picks), { b: 50, c: 50 });
  });

  forEachImplementation('a tried slot is outside the tie: retries split the rest by weight', (make) => {
    const balancer = leastConnections(make, WEIGHTED);
    assert.deepEqual(tally(sequentialShortPicks(balancer, 300, [balancer.slotOf('b')])), { a: 200, c: 100 });
    assert.deepEqual(tally(sequentialShortPicks(balancer, 300, [balancer.slotOf('a')])), { b: 150, c: 150 });
    // Retries only moved current weight between the tied slots (their sum stays 0, as in SWRR), so
    // untried picks resume the 2:1:1 cycle exactly.
    assert.deepEqual(tally(sequentialShortPicks(balancer, 400)), { a: 200, b: 100, c: 100 });
    const all = ['a', 'b', 'c'].map((id) => balancer.slotOf(id));
    assert.equal(balancer.pick(0, all, all.length), -1, 'every slot tried: nothing left');
  });

  forEachImplementation('slow start scales the tie-break weights: 2,1,1 with a at 500‰ splits evenly', (make) => {
    const balancer = leastConnections(make, WEIGHTED);
    balancer.setWeightScale(balancer.slotOf('a'), 500);
    assert.deepEqual(tally(sequentialShortPicks(balancer, 300)), { a: 100, b: 100, c: 100 });
    balancer.setWeightScale(balancer.slotOf('a'), 0);
    assert.deepEqual(tally(sequentialShortPicks(balancer, 200)), { b: 100, c: 100 });
  });
});
