/** Behaviour of each policy, pinned on small cases, for both the WASM core and the reference. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backendIdentity } from '../src/core/hash.js';
import { createBalancer, SlotCapacityError } from '../src/core/index.js';
import { RING_MAX_POINTS } from '../src/core/options.js';
import { BALANCE_POLICIES, type Balancer, type BalancerOptions } from '../src/core/types.js';
import { makeBackends, spreadKey } from './helpers/core.js';

const IMPLEMENTATIONS = ['wasm', 'reference'] as const;

/** Both implementations expose these diagnostics beyond the Balancer interface. */
type TestableBalancer = Balancer & {
  tableSnapshot(): { readonly slots: Int32Array; readonly positions: Uint32Array };
  connectTimeEwma(slot: number): number;
};

function forEachImplementation(name: string, body: (make: (options: BalancerOptions) => TestableBalancer) => void): void {
  for (const implementation of IMPLEMENTATIONS) {
    it(`${name} (${implementation})`, () => body((options) => createBalancer(options, implementation) as TestableBalancer));
  }
}

function idsOf(balancer: Balancer, slots: Iterable<number>): string {
  return Array.from(slots, (slot) => balancer.idOf(slot) ?? '-').join('');
}

describe('round_robin (smooth weighted, nginx)', () => {
  forEachImplementation('weights 5,1,1 give a a b a c a a', (make) => {
    const balancer = make({ policy: 'round_robin' });
    balancer.setBackends([{ id: 'a', weight: 5 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }]);
    const picks = Array.from({ length: 14 }, () => balancer.pick(0));
    assert.equal(idsOf(balancer, picks), 'aabacaaaabacaa');
  });

  forEachImplementation('skips an ineligible peer and spreads over the rest', (make) => {
    const balancer = make({ policy: 'round_robin' });
    balancer.setBackends([{ id: 'a', weight: 2 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }]);
    balancer.setEligible(balancer.slotOf('a'), false);
    assert.equal(idsOf(balancer, Array.from({ length: 6 }, () => balancer.pick(0))).split('').sort().join(''), 'bbbccc');
  });
});

describe('maglev', () => {
  forEachImplementation('golden assignment on a size-7 table', (make) => {
    const balancer = make({ policy: 'maglev', maglevTableSize: 7, maxBackends: 3 });
    balancer.setBackends([{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }]);
    assert.equal(idsOf(balancer, balancer.tableSnapshot().slots), 'cabbcab');
    balancer.setBackends([{ id: 'a', weight: 2 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }]);
    assert.equal(idsOf(balancer, balancer.tableSnapshot().slots), 'cabacab');
  });

  it('the size-7 golden table is what Maglev §3.4 listing 1 gives (independent replay)', () => {
    const size = 7;
    const backends = ['a', 'b', 'c']
      .map((id) => ({ id, ...backendIdentity(id) }))
      .sort((x, y) => (x.hi !== y.hi ? x.hi - y.hi : x.lo - y.lo));
    const next = backends.map(() => 0);
    const table: string[] = new Array<string>(size).fill('');
    let filled = 0;
    while (filled < size) {
      for (let i = 0; i < backends.length && filled < size; i++) {
        const { lo, hi, id } = backends[i];
        const permutation = (j: number): number => (lo % size + j * ((hi % (size - 1)) + 1)) % size;
        while (table[permutation(next[i])] !== '') next[i]++;
        table[permutation(next[i])] = id;
        next[i]++;
        filled++;
      }
    }
    assert.equal(table.join(''), 'cabbcab');
  });

  forEachImplementation('weights 1:2 fill about one and two thirds of 65537 entries (as Envoy)', (make) => {
    const balancer = make({ policy: 'maglev' });
    balancer.setBackends([{ id: 'one', weight: 1 }, { id: 'two', weight: 2 }]);
    const counts = new Map<string, number>();
    for (const slot of balancer.tableSnapshot().slots) counts.set(balancer.idOf(slot) ?? '-', (counts.get(balancer.idOf(slot) ?? '-') ?? 0) + 1);
    assert.ok(Math.abs((counts.get('one') ?? 0) - 21846) <= 2, `one: ${counts.get('one')}`);
    assert.ok(Math.abs((counts.get('two') ?? 0) - 43691) <= 2, `two: ${counts.get('two')}`);
  });

  forEachImplementation('every backend with weight > 0 owns at least one entry', (make) => {
    const balancer = make({ policy: 'maglev', maglevTableSize: 7, maxBackends: 4 });
    balancer.setBackends([{ id: 'big', weight: 10000 }, { id: 'x', weight: 1 }, { id: 'y', weight: 1 }, { id: 'zero', weight: 0 }]);
    const { slots } = balancer.tableSnapshot();
    for (const id of ['big', 'x', 'y']) assert.ok(slots.includes(balancer.slotOf(id)), `${id} owns an entry`);
    assert.ok(!slots.includes(balancer.slotOf('zero')), 'weight 0 owns nothing');
  });
});

describe('ring_hash', () => {
  forEachImplementation('fixed keys before/after removing b: only the keys b owned move', (make) => {
    const balancer = make({ policy: 'ring_hash', ringPointsPerWeight: 4 });
    balancer.setBackends([{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }]);
    const keys = Array.from({ length: 12 }, (_, index) => spreadKey(index));
    const before = idsOf(balancer, keys.map((key) => balancer.homeSlot(key)));
    assert.equal(before, 'bcabcbaabcba');
    const report = balancer.setBackends([{ id: 'a', weight: 1 }, { id: 'c', weight: 1 }]);
    const after = idsOf(balancer, keys.map((key) => balancer.homeSlot(key)));
    assert.equal(after, 'acaacaaaacaa');
    // Moved: exactly the keys b owned (positions 0, 3, 5, 8, 10); a and c keep all of theirs.
    const moved = keys.map((_, i) => (before[i] !== after[i] ? i : -1)).filter((i) => i >= 0);
    assert.deepEqual(moved, [0, 3, 5, 8, 10]);
    for (const i of moved) assert.equal(before[i], 'b');
    assert.ok(Math.abs(report.movedShare - 0.4743) < 1e-4, `movedShare ${report.movedShare}`);
  });

  forEachImplementation('walks clockwise past an ineligible backend to the next one', (make) => {
    const balancer = make({ policy: 'ring_hash' });
    balancer.setBackends(makeBackends(5, () => 1));
    const { slots } = balancer.tableSnapshot();
    balancer.setEligible(slots[0], false);
    // The key just at the first point's position is owned by it; the pick moves to the next distinct backend.
    const position = balancer.tableSnapshot().positions[0];
    let index = 1;
    while (slots[index] === slots[0]) index++;
    assert.equal(balancer.homeSlot(position), slots[0]);
    assert.equal(balancer.pick(position), slots[index]);
  });

  forEachImplementation('caps the ring at 2^20 points, every weighted backend keeping one', (make) => {
    const balancer = make({ policy: 'ring_hash', maxBackends: 200 });
    balancer.setBackends(makeBackends(200, (index) => (index === 0 ? 1 : 10000)));
    const { slots } = balancer.tableSnapshot();
    assert.ok(slots.length <= RING_MAX_POINTS + 200, `points ${slots.length}`);
    assert.ok(slots.length >= RING_MAX_POINTS - 200);
    assert.equal(slots.filter((slot) => slot === balancer.slotOf(makeBackends(1, () => 1)[0].id)).length, 1);
  });
});

describe('random (weighted)', () => {
  forEachImplementation('shares stay within 1 point of the weights over 100k picks', (make) => {
    const balancer = make({ policy: 'random', randomSeed: 12345 });
    balancer.setBackends([{ id: 'a', weight: 1 }, { id: 'b', weight: 2 }, { id: 'c', weight: 3 }, { id: 'd', weight: 4 }]);
    const counts = new Map<string, number>();
    const picks = 100_000;
    for (let i = 0; i < picks; i++) {
      const id = balancer.idOf(balancer.pick(0)) ?? '-';
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    // σ of a share at n = 100k is ≤ 0.0016, so ±0.01 is > 6σ.
    for (const [id, weight] of [['a', 1], ['b', 2], ['c', 3], ['d', 4]] as const) {
      assert.ok(Math.abs((counts.get(id) ?? 0) / picks - weight / 10) < 0.01, `${id}: ${counts.get(id)}`);
    }
  });
});

describe('least_connections', () => {
  forEachImplementation('equal backends share evenly; active/weight decides', (make) => {
    const balancer = make({ policy: 'least_connections' });
    balancer.setBackends([{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }]);
    assert.equal(idsOf(balancer, [balancer.pick(0), balancer.pick(0), balancer.pick(0)]).split('').sort().join(''), 'abc');
    const weighted = make({ policy: 'least_connections' });
    weighted.setBackends([{ id: 'heavy', weight: 2 }, { id: 'light', weight: 1 }]);
    for (let i = 0; i < 300; i++) weighted.acquire(weighted.pick(0));
    assert.equal(weighted.activeConnections(weighted.slotOf('heavy')), 200);
    assert.equal(weighted.activeConnections(weighted.slotOf('light')), 100);
    weighted.release(weighted.slotOf('light'));
    assert.equal(weighted.pick(0), weighted.slotOf('light'));
  });
});

describe('least_time (P2C on peak EWMA)', () => {
  forEachImplementation('peak EWMA: a slower sample replaces, a faster one decays in with exp(-Δt/τ)', (make) => {
    const balancer = make({ policy: 'least_time', randomSeed: 1 });
    balancer.setBackends([{ id: 'a', weight: 1 }]);
    assert.equal(balancer.connectTimeEwma(0), -1);
    balancer.observeConnectTime(0, 100, 0);
    balancer.observeConnectTime(0, 200, 1000);
    assert.equal(balancer.connectTimeEwma(0), 200);
    balancer.observeConnectTime(0, 100, 11_000);
    assert.ok(Math.abs(balancer.connectTimeEwma(0) - (200 * Math.exp(-1) + 100 * (1 - Math.exp(-1)))) < 1e-9);
  });

  forEachImplementation('a fast backend wins most connections over a slow one', (make) => {
    const balancer = make({ policy: 'least_time', randomSeed: 99 });
    balancer.setBackends(makeBackends(4, () => 1));
    for (let slot = 0; slot < 4; slot++) balancer.observeConnectTime(slot, slot === 0 ? 500 : 50_000, 0);
    let fast = 0;
    for (let i = 0; i < 1000; i++) if (balancer.pick(0) === 0) fast++;
    // P2C: the fast backend wins whenever it is one of the two draws: 1 - (3/4 × 2/3) = 1/2.
    assert.ok(fast > 420 && fast < 580, `fast picked ${fast} times`);
  });
});

describe('eligibility, tried slots and weight 0 (every policy)', () => {
  for (const policy of BALANCE_POLICIES) {
    forEachImplementation(`${policy}: tried and ineligible slots are skipped; -1 only when nothing is left`, (make) => {
      const balancer = make({ policy, randomSeed: 5, maglevTableSize: 251, ringPointsPerWeight: 10 });
      balancer.setBackends([...makeBackends(6, () => 1), { id: 'zero', weight: 0 }]);
      const zero = balancer.slotOf('zero');
      for (let key = 0; key < 200; key++) assert.notEqual(balancer.pick(spreadKey(key)), zero);
      const all = [0, 1, 2, 3, 4, 5];
      for (let keep = 0; keep < 6; keep++) {
        const tried = all.filter((slot) => slot !== keep);
        for (let key = 0; key < 20; key++) assert.equal(balancer.pick(spreadKey(key), tried, tried.length), keep);
      }
      assert.equal(balancer.pick(1, all, all.length), -1);
      balancer.setEligible(2, false);
      balancer.setEligible(4, false);
      const tried = [0, 1, 3];
      for (let key = 0; key < 50; key++) assert.equal(balancer.pick(spreadKey(key), tried, tried.length), 5);
      for (const slot of all) balancer.setEligible(slot, false);
      assert.equal(balancer.pick(7), -1);
      balancer.setEligible(3, true);
      assert.equal(balancer.pick(7), 3);
    });
  }
});

describe('membership and validation', () => {
  forEachImplementation('an unchanged set rebuilds nothing; slots are stable; draining slots are not reused', (make) => {
    const balancer = make({ policy: 'maglev', maxBackends: 3, maglevTableSize: 251 });
    const first = balancer.setBackends([{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }]);
    assert.equal(first.changed, true);
    assert.deepEqual([...first.added], ['a', 'b']);
    assert.equal(balancer.setBackends([{ id: 'b', weight: 1 }, { id: 'a', weight: 1 }]).changed, false);
    balancer.acquire(balancer.slotOf('a'));
    const drained = balancer.setBackends([{ id: 'b', weight: 1 }, { id: 'c', weight: 1 }]);
    assert.deepEqual([...drained.removed], ['a']);
    assert.equal(balancer.idOf(0), undefined);
    assert.equal(drained.slots.get('c'), 2, 'slot 0 still drains a connection and slot 1 holds b');
    assert.throws(
      () => balancer.setBackends([{ id: 'b', weight: 1 }, { id: 'c', weight: 1 }, { id: 'd', weight: 1 }]),
      (error: unknown) => error instanceof SlotCapacityError && error instanceof RangeError && /only 0 are free/.test(error.message),
    );
    balancer.release(0);
    assert.equal(balancer.setBackends([{ id: 'b', weight: 1 }, { id: 'c', weight: 1 }, { id: 'd', weight: 1 }]).slots.get('d'), 0);
    const reweighted = balancer.setBackends([{ id: 'b', weight: 3 }, { id: 'c', weight: 1 }, { id: 'd', weight: 1 }]);
    assert.deepEqual([...reweighted.reweighted], ['b']);
  });

  forEachImplementation('a balancer taking over a pool keeps each backend\'s slot and never reuses a reserved one', (make) => {
    const balancer = make({ policy: 'ring_hash', maxBackends: 8, ringPointsPerWeight: 4 });
    // The old pool: a at 5, b at 2; slots 0 and 3 still hold draining connections or a removed backend.
    const reserved = new Set([0, 2, 3, 5]);
    const report = balancer.setBackends(
      [{ id: 'a', weight: 1 }, { id: 'b', weight: 2 }, { id: 'c', weight: 1 }, { id: 'd', weight: 1 }],
      { slots: new Map([['a', 5], ['b', 2]]), reserved: (slot) => reserved.has(slot) },
    );
    assert.deepEqual([report.slots.get('a'), report.slots.get('b'), report.slots.get('c'), report.slots.get('d')], [5, 2, 1, 4]);
    // A pinned slot that is taken falls back to a free one; too few free slots is a SlotCapacityError.
    const other = make({ policy: 'round_robin', maxBackends: 3 });
    other.setBackends([{ id: 'x', weight: 1 }]);
    const placed = other.setBackends([{ id: 'x', weight: 1 }, { id: 'y', weight: 1 }], { slots: new Map([['y', 0]]), reserved: () => false });
    assert.equal(placed.slots.get('y'), 1);
    assert.throws(
      () => other.setBackends([{ id: 'x', weight: 1 }, { id: 'y', weight: 1 }, { id: 'z', weight: 1 }, { id: 'w', weight: 1 }], { slots: new Map(), reserved: (slot) => slot === 2 }),
      SlotCapacityError,
    );
  });

  forEachImplementation('bad input gets a clear error', (make) => {
    assert.throws(() => make({ policy: 'maglev', maglevTableSize: 65536 }), /must be a prime number/);
    assert.throws(() => make({ policy: 'nope' as 'maglev' }), /policy must be one of/);
    assert.throws(() => make({ policy: 'ring_hash', ringPointsPerWeight: 0 }), /ringPointsPerWeight/);
    const balancer = make({ policy: 'round_robin', maxBackends: 4 });
    assert.throws(() => balancer.setBackends([{ id: 'a', weight: 10001 }]), /backends\[0\]\.weight must be an integer in 0\.\.10000/);
    assert.throws(() => balancer.setBackends([{ id: 'a', weight: 1 }, { id: 'a', weight: 2 }]), /backends\[1\]\.id "a" is a duplicate/);
    assert.throws(() => balancer.setBackends([{ id: '', weight: 1 }]), /non-empty string/);
    assert.throws(() => balancer.setBackends(makeBackends(5, () => 1)), /maxBackends 4/);
    assert.throws(() => balancer.release(0), /without a matching acquire/);
    assert.throws(() => balancer.acquire(4), /slot must be an integer in 0\.\.3/);
    assert.throws(() => balancer.observeConnectTime(0, -1, 0), /connect time/);
    assert.equal(balancer.pick(0), -1, 'an empty pool picks nothing');
  });
});
