/**
 * Bounded-load consistent hashing (issue 8 §3, `hashBalanceFactor`) on ring_hash and maglev, for the
 * WASM core and the reference alike. A slot takes one more connection while
 *   active × 100 × Σ pickable weight < factor × (Σ active + 1) × weight
 * (docs/core.md). The candidate order a full home spills along is replayed here independently from
 * the published table (ring walk / Maglev probes, then identity order), and the load of a hot key is
 * replayed with the formula above, so each test pins exact picks, not just a bound.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backendIdentity, compareIdentity, maglevProbeHash } from '../src/core/hash.js';
import { MAGLEV_PROBES, RING_WALK_LIMIT } from '../src/core/options.js';
import type { BalancerOptions, CoreBackend } from '../src/core/types.js';
import { WasmBalancer } from '../src/core/wasm-balancer.js';
import { IMPLEMENTATIONS, makeBackends, spreadKey, type TestableBalancer } from './helpers/core.js';


const HASH_POLICIES = ['ring_hash', 'maglev'] as const;

function forEachCase(name: string, body: (make: (options: BalancerOptions) => TestableBalancer, policy: (typeof HASH_POLICIES)[number]) => void): void {
  for (const policy of HASH_POLICIES) {
    for (const [implementation, make] of Object.entries(IMPLEMENTATIONS)) it(`${policy}: ${name} (${implementation})`, () => body(make, policy));
  }
}

function options(policy: (typeof HASH_POLICIES)[number]): BalancerOptions {
  return { policy, maxBackends: 16, maglevTableSize: 251, ringPointsPerWeight: 40, randomSeed: 1 };
}

/**
 * Distinct slots in the order a pick considers them for `key` (health ignored): the ring walk
 * (bounded by RING_WALK_LIMIT) or the Maglev probes, then every backend in identity order from
 * key mod n. Rebuilt from the published table and the documented hashes, not from the pick.
 */
function candidateOrder(balancer: TestableBalancer, policy: (typeof HASH_POLICIES)[number], backends: readonly CoreBackend[], key: number): number[] {
  const order: number[] = [];
  const add = (slot: number): void => {
    if (!order.includes(slot)) order.push(slot);
  };
  const table = balancer.tableSnapshot();
  if (policy === 'ring_hash') {
    let start = table.positions.findIndex((position) => position >= key);
    if (start < 0) start = 0;
    for (let step = 0; step < Math.min(RING_WALK_LIMIT, table.slots.length); step++) add(table.slots[(start + step) % table.slots.length]);
  } else {
    for (let probe = 0; probe < MAGLEV_PROBES; probe++) add(table.slots[(probe === 0 ? key : maglevProbeHash(key, probe)) % table.slots.length]);
  }
  const byIdentity = backends
    .filter((backend) => backend.weight > 0)
    .map((backend) => ({ slot: balancer.slotOf(backend.id), identity: backendIdentity(backend.id) }))
    .sort((a, b) => compareIdentity(a.identity.hi, a.identity.lo, b.identity.hi, b.identity.lo));
  for (let i = 0; i < byIdentity.length; i++) add(byIdentity[(key % byIdentity.length + i) % byIdentity.length].slot);
  return order;
}

/** The bound, written out once more from docs/core.md: may `slot` take one more connection? */
function withinBound(factor: number, active: readonly number[], weights: readonly number[], slot: number): boolean {
  const total = active.reduce((sum, count) => sum + count, 0);
  const totalWeight = weights.reduce((sum, weight) => sum + weight, 0);
  return active[slot] < Math.ceil(((factor / 100) * (total + 1) * weights[slot]) / totalWeight - 1e-9);
}

describe('bounded-load hashing (hashBalanceFactor)', () => {
  forEachCase('one hot key on 4 equal backends: factor 125 caps each at 13 of 40, without it all 40 go home', (make, policy) => {
    const backends = makeBackends(4, () => 1);
    const key = spreadKey(7);
    const bounded = make(options(policy));
    bounded.setBackends(backends);
    bounded.setHashBalanceFactor(125);
    const plain = make(options(policy));
    plain.setBackends(backends);
    const held = new Map<number, number>();
    for (let i = 0; i < 40; i++) {
      const slot = bounded.pick(key);
      bounded.acquire(slot);
      held.set(slot, (held.get(slot) ?? 0) + 1);
      plain.acquire(plain.pick(key));
    }
    const counts = backends.map((backend) => bounded.activeConnections(bounded.slotOf(backend.id))).sort((a, b) => b - a);
    // The cap grows with the pool: ceil(1.25 × (T + 1) / 4) is 13 only from T = 38 on, so the home
    // and its first spill candidate reach 13, the third stops at 12, the last takes the rest.
    assert.ok(counts[0] <= 13);
    assert.deepEqual(counts, [13, 13, 12, 2]);
    const home = bounded.homeSlot(key);
    assert.equal(plain.activeConnections(home), 40);
    assert.equal(bounded.activeConnections(home), 13);
    assert.equal(bounded.spilledConnections(home), 27, 'every pick past the full home counts against the home');
    for (const backend of backends) {
      const slot = bounded.slotOf(backend.id);
      if (slot !== home) assert.equal(bounded.spilledConnections(slot), 0);
    }
  });

  forEachCase('a full home spills along the probe order: the j-th candidate takes the key once the first j−1 are full', (make, policy) => {
    const backends = makeBackends(5, () => 1);
    const balancer = make(options(policy));
    balancer.setBackends(backends);
    balancer.setHashBalanceFactor(125);
    for (let k = 0; k < 20; k++) {
      const key = spreadKey(100 + k);
      const order = candidateOrder(balancer, policy, backends, key);
      assert.equal(order[0], balancer.homeSlot(key));
      // With j backends holding 2 each and the rest none: 2 × 100 × 5 ≥ 125 × (2j + 1) for j ≤ 3, so
      // those j are full and the next candidate (empty) is within its bound.
      for (let full = 0; full <= 3; full++) {
        for (let i = 0; i < full; i++) balancer.acquire(order[i]), balancer.acquire(order[i]);
        assert.equal(balancer.pick(key), order[full], `key ${key}: ${full} full candidates`);
        for (let i = 0; i < full; i++) balancer.release(order[i]), balancer.release(order[i]);
      }
    }
  });

  forEachCase('weights: a hot key fills each backend to its weighted share, replayed pick by pick', (make, policy) => {
    const backends: CoreBackend[] = makeBackends(3, (index) => [3, 1, 2][index]);
    const balancer = make(options(policy));
    balancer.setBackends(backends);
    balancer.setHashBalanceFactor(150);
    const slots = backends.map((backend) => balancer.slotOf(backend.id));
    const weightBySlot: number[] = new Array<number>(16).fill(0);
    backends.forEach((backend, i) => (weightBySlot[slots[i]] = backend.weight));
    for (let k = 0; k < 6; k++) {
      const key = spreadKey(300 + k);
      const order = candidateOrder(balancer, policy, backends, key);
      const active: number[] = new Array<number>(16).fill(0);
      for (let i = 0; i < 60; i++) {
        const expected = order.find((slot) => withinBound(150, active, weightBySlot, slot)) ?? order[0];
        const picked = balancer.pick(key);
        assert.equal(picked, expected, `key ${key} pick ${i}`);
        balancer.acquire(picked);
        active[picked]++;
      }
      // 60 connections, factor 1.5: nobody above ceil(1.5 × 60 × w / 6).
      for (const slot of slots) assert.ok(active[slot] <= Math.ceil((1.5 * 60 * weightBySlot[slot]) / 6), `slot ${slot}: ${active[slot]}`);
      for (const slot of slots) for (let n = active[slot]; n > 0; n--) balancer.release(slot);
    }
  });

  forEachCase('an ineligible backend leaves the mean: 3 healthy of 4 take a hot key at most ceil(1.25 × 30 / 3) = 13 each', (make, policy) => {
    const backends = makeBackends(4, () => 1);
    const balancer = make(options(policy));
    balancer.setBackends(backends);
    balancer.setHashBalanceFactor(125);
    const key = spreadKey(11);
    const down = balancer.homeSlot(key);
    balancer.setEligible(down, false);
    for (let i = 0; i < 30; i++) balancer.acquire(balancer.pick(key));
    assert.equal(balancer.activeConnections(down), 0);
    const counts = backends.map((backend) => balancer.activeConnections(balancer.slotOf(backend.id)));
    assert.ok(Math.max(...counts) <= 13, `counts ${counts.join(',')}`);
    assert.equal(counts.reduce((sum, count) => sum + count, 0), 30);
  });

  forEachCase('every untried candidate full: the home takes the key anyway (never -1 while a backend is usable)', (make, policy) => {
    // The bound alone cannot fill every usable slot (Σ capacities ≥ factor/100 × (Σ active + 1) >
    // Σ active); a retry that excludes the only free one can.
    const backends = makeBackends(2, () => 1);
    const balancer = make(options(policy));
    balancer.setBackends(backends);
    balancer.setHashBalanceFactor(125);
    const key = spreadKey(3);
    const home = balancer.homeSlot(key);
    const other = backends.map((backend) => balancer.slotOf(backend.id)).find((slot) => slot !== home)!;
    balancer.acquire(home);
    balancer.acquire(home);
    // home: 2 × 100 × 2 = 400 ≥ 125 × 3 × 1 = 375, full; other: 0 < 375.
    assert.equal(balancer.pick(key), other);
    assert.equal(balancer.pick(key, [other], 1), home);
  });

  forEachCase('a factor change applies in place: no table build, and 0 sends every key home again', (make, policy) => {
    const backends = makeBackends(4, () => 1);
    const balancer = make(options(policy));
    balancer.setBackends(backends);
    const builds = balancer.buildCount();
    const key = spreadKey(5);
    const home = balancer.homeSlot(key);
    balancer.acquire(home);
    balancer.setHashBalanceFactor(125);
    assert.notEqual(balancer.pick(key), home);
    assert.equal(balancer.peek(key), balancer.pick(key), 'peek answers what the pick does');
    const spilled = balancer.spilledConnections(home);
    balancer.peek(key);
    assert.equal(balancer.spilledConnections(home), spilled, 'a peek counts no spill');
    balancer.setHashBalanceFactor(0);
    assert.equal(balancer.pick(key), home);
    assert.equal(balancer.buildCount(), builds);
  });

  forEachCase('factors outside 101..10000 (or not integers) are refused', (make, policy) => {
    const balancer = make(options(policy));
    for (const bad of [100, 1, -5, 10_001, 125.5, Number.NaN]) {
      assert.throws(() => balancer.setHashBalanceFactor(bad), RangeError, String(bad));
    }
  });

  for (const policy of HASH_POLICIES) {
    it(`${policy}: bounded picks allocate nothing in the core (memory flat over 100k picks)`, () => {
      const balancer = new WasmBalancer(options(policy));
      balancer.setBackends(makeBackends(8, (index) => index + 1));
      balancer.setHashBalanceFactor(110);
      const before = balancer.memoryBytes();
      for (let i = 0; i < 100_000; i++) {
        const slot = balancer.pick(spreadKey(i & 63));
        balancer.acquire(slot);
        if (i % 3 === 0) balancer.release(slot);
      }
      assert.equal(balancer.memoryBytes(), before);
    });
  }
});
