/**
 * Slow start (issue 3): setWeightScale on every policy, for both the WASM core and the reference.
 * Weighted policies scale the weight; ring_hash/maglev admit a per-mille share of a ramping backend's
 * keys, chosen by a fixed per-key, per-backend hash, so the admitted set grows monotonically.
 * Health flips and scale changes build no table (buildCount stays put).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backendIdentity, compareIdentity, slowStartAdmitHash } from '../src/core/hash.js';
import { BALANCE_POLICIES, type Balancer, type BalancerOptions, type CoreBackend } from '../src/core/types.js';
import { WasmBalancer } from '../src/core/wasm-balancer.js';
import { IMPLEMENTATIONS, makeBackends, shuffled, spreadKey, testRandom, type TestableBalancer } from './helpers/core.js';


function forEachImplementation(name: string, body: (make: (options: BalancerOptions) => TestableBalancer) => void): void {
  for (const [implementation, make] of Object.entries(IMPLEMENTATIONS)) it(`${name} (${implementation})`, () => body(make));
}

function countPicks(balancer: Balancer, picks: number, key: (i: number) => number = () => 0): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < picks; i++) {
    const id = balancer.idOf(balancer.pick(key(i))) ?? '-';
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** nginx's smooth weighted round robin replayed independently, over backends in identity order. */
function nginxSequence(weights: ReadonlyMap<string, number>, picks: number): string {
  const ids = [...weights.keys()]
    .map((id) => ({ id, ...backendIdentity(id) }))
    .sort((a, b) => compareIdentity(a.hi, a.lo, b.hi, b.lo))
    .map(({ id }) => id);
  const current = new Map(ids.map((id) => [id, 0]));
  let sequence = '';
  for (let i = 0; i < picks; i++) {
    let best = '';
    let total = 0;
    for (const id of ids) {
      const value = (current.get(id) ?? 0) + (weights.get(id) ?? 0);
      current.set(id, value);
      total += weights.get(id) ?? 0;
      if (best === '' || value > (current.get(best) ?? 0)) best = id;
    }
    current.set(best, (current.get(best) ?? 0) - total);
    sequence += best;
  }
  return sequence;
}

describe('slow start: weighted policies', () => {
  forEachImplementation('round_robin: a at 50% of 5 against 1,1 gives the exact nginx sequence of 2.5,1,1', (make) => {
    const balancer = make({ policy: 'round_robin' });
    balancer.setBackends([{ id: 'a', weight: 5 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }]);
    assert.equal(balancer.weightScale(balancer.slotOf('a')), 1000, 'every slot starts at full scale');
    balancer.setWeightScale(balancer.slotOf('a'), 500);
    const sequence = Array.from({ length: 18 }, () => balancer.idOf(balancer.pick(0))).join('');
    assert.equal(sequence, nginxSequence(new Map([['a', 2500], ['b', 1000], ['c', 1000]]), 18));
    assert.equal(sequence, 'abcaabacaabcaabaca'); // 5 a, 2 b, 2 c in every 9 picks, smoothly spread
  });

  forEachImplementation('round_robin: weight-1 backends ramp too (per-mille units, no rounding to 0)', (make) => {
    const balancer = make({ policy: 'round_robin' });
    balancer.setBackends([{ id: 'new', weight: 1 }, { id: 'old', weight: 1 }]);
    balancer.setWeightScale(balancer.slotOf('new'), 100);
    const counts = countPicks(balancer, 1100);
    assert.equal(counts.get('new'), 100);
    assert.equal(counts.get('old'), 1000);
  });

  forEachImplementation('random: shares follow the scaled weights; back at 1000 the picks are unscaled again', (make) => {
    const balancer = make({ policy: 'random', randomSeed: 777 });
    const backends = [{ id: 'a', weight: 1 }, { id: 'b', weight: 2 }, { id: 'c', weight: 3 }, { id: 'd', weight: 4 }];
    balancer.setBackends(backends);
    balancer.setWeightScale(balancer.slotOf('d'), 250);
    const picks = 100_000;
    const counts = countPicks(balancer, picks);
    // Effective weights 1, 2, 3, 1 (of 7). σ of a share at n = 100k is ≤ 0.0016: ±0.01 is > 6σ.
    for (const [id, weight] of [['a', 1], ['b', 2], ['c', 3], ['d', 1]] as const) {
      assert.ok(Math.abs((counts.get(id) ?? 0) / picks - weight / 7) < 0.01, `${id}: ${counts.get(id)}`);
    }
    // At 1000 nothing changes: same seed, same picks as a balancer that never ramped.
    const ramped = make({ policy: 'random', randomSeed: 4242 });
    const plain = make({ policy: 'random', randomSeed: 4242 });
    ramped.setBackends(backends);
    plain.setBackends(backends);
    ramped.setWeightScale(0, 300);
    ramped.setWeightScale(0, 1000);
    for (let i = 0; i < 2000; i++) assert.equal(ramped.pick(0), plain.pick(0));
  });

  forEachImplementation('least_connections: active / (weight × scale) decides', (make) => {
    const balancer = make({ policy: 'least_connections' });
    balancer.setBackends([{ id: 'ramping', weight: 1 }, { id: 'steady', weight: 1 }]);
    balancer.setWeightScale(balancer.slotOf('ramping'), 500);
    for (let i = 0; i < 300; i++) balancer.acquire(balancer.pick(0));
    assert.ok(Math.abs(balancer.activeConnections(balancer.slotOf('ramping')) - 100) <= 1);
    assert.ok(Math.abs(balancer.activeConnections(balancer.slotOf('steady')) - 200) <= 1);
  });

  forEachImplementation('least_time: cost is divided by the scaled weight', (make) => {
    const balancer = make({ policy: 'least_time', randomSeed: 3 });
    balancer.setBackends([{ id: 'ramping', weight: 1 }, { id: 'steady', weight: 1 }]);
    balancer.setWeightScale(balancer.slotOf('ramping'), 100);
    // Equal connect times; two backends, so both are always the two choices: the steady one wins
    // while (steadyActive + 1) × 0.1 < rampingActive + 1... i.e. it carries ≈ 10× the connections.
    for (let i = 0; i < 1100; i++) balancer.acquire(balancer.pick(0));
    const ramping = balancer.activeConnections(balancer.slotOf('ramping'));
    assert.ok(ramping >= 95 && ramping <= 105, `ramping backend holds ${ramping} of 1100`);
  });

  for (const policy of BALANCE_POLICIES) {
    forEachImplementation(`${policy}: a scale of 0 acts like weight 0; the health bit is kept apart`, (make) => {
      const balancer = make({ policy, randomSeed: 9, maglevTableSize: 251, ringPointsPerWeight: 10 });
      balancer.setBackends(makeBackends(4, () => 1));
      balancer.setWeightScale(2, 0);
      for (let i = 0; i < 400; i++) assert.notEqual(balancer.pick(spreadKey(i)), 2);
      assert.equal(balancer.isEligible(2), true, 'the scale does not touch the health bit');
      const others = [0, 1, 3];
      assert.equal(balancer.pick(5, others, others.length), -1, 'a zero-scale slot is not even a fallback');
      balancer.setEligible(2, false);
      balancer.setWeightScale(2, 1000);
      assert.equal(balancer.pick(5, others, others.length), -1, 'a full scale does not override health');
      balancer.setEligible(2, true);
      assert.equal(balancer.pick(5, others, others.length), 2);
    });
  }
});

describe('slow start: ring_hash and maglev admit a growing, fixed share of the keys', () => {
  const KEYS = 200_000;
  for (const policy of ['ring_hash', 'maglev'] as const) {
    forEachImplementation(`${policy}: admitted share ≈ scale, monotone, other keys never move, 1000 = no scaling`, (make) => {
      const options = { policy, ringPointsPerWeight: 40 };
      const balancer = make(options);
      const backends = makeBackends(10, () => 1);
      balancer.setBackends(backends);
      const ramping = balancer.slotOf(backends[3].id);
      const full = Array.from({ length: KEYS }, (_, i) => balancer.pick(spreadKey(i)));
      const ownKeys = full.filter((slot) => slot === ramping).length;
      assert.ok(ownKeys > KEYS / 20, `the ramping backend owns ${ownKeys} keys`);

      const admittedAt = (permille: number): Set<number> => {
        balancer.setWeightScale(ramping, permille);
        const admitted = new Set<number>();
        for (let i = 0; i < KEYS; i++) {
          const slot = balancer.pick(spreadKey(i));
          if (slot === ramping) {
            assert.equal(full[i], ramping, `key ${i} was not the ramping backend's`);
            admitted.add(i);
          } else if (full[i] !== ramping) {
            assert.equal(slot, full[i], `key ${i} of another backend moved`);
          }
        }
        return admitted;
      };
      let previous = new Set<number>();
      for (const permille of [100, 300, 600, 900]) {
        const admitted = admittedAt(permille);
        // σ of the share over ≈ 20k keys is ≤ 0.0036; ±0.02 is > 5σ.
        const share = admitted.size / ownKeys;
        assert.ok(Math.abs(share - permille / 1000) < 0.02, `scale ${permille}: admitted ${share.toFixed(4)}`);
        for (const key of previous) assert.ok(admitted.has(key), `key ${key} admitted earlier was dropped at ${permille}`);
        previous = admitted;
      }
      assert.equal(admittedAt(1000).size, ownKeys);
      for (let i = 0; i < KEYS; i += 7) assert.equal(balancer.pick(spreadKey(i)), full[i]);
    });

    forEachImplementation(`${policy}: the admitted keys are the documented hash's, in any process`, (make) => {
      const backends = makeBackends(6, () => 2);
      const first = make({ policy, maglevTableSize: 4099 });
      const second = make({ policy, maglevTableSize: 4099, maxBackends: 64 });
      first.setBackends(backends);
      second.setBackends(makeBackends(3, () => 1, '10.9'));
      second.setBackends(shuffled(backends, testRandom(5))); // different slots, same identities
      const id = backends[2].id;
      const threshold = Math.floor((450 * 65536) / 1000);
      const homes = Array.from({ length: 20_000 }, (_, i) => first.pick(spreadKey(i)));
      first.setWeightScale(first.slotOf(id), 450);
      second.setWeightScale(second.slotOf(id), 450);
      for (let i = 0; i < homes.length; i++) {
        const key = spreadKey(i);
        assert.equal(first.idOf(first.pick(key)), second.idOf(second.pick(key)), `key ${key}`);
        if (first.idOf(homes[i]) === id) {
          const admitted = slowStartAdmitHash(key, backendIdentity(id).lo) < threshold;
          assert.equal(first.idOf(first.pick(key)) === id, admitted, `key ${key}`);
        }
      }
    });

    forEachImplementation(`${policy}: a lone ramping backend still serves every key (fallback scan)`, (make) => {
      const balancer = make({ policy, maglevTableSize: 251 });
      balancer.setBackends([{ id: 'only', weight: 1 }, { id: 'down', weight: 1 }]);
      balancer.setEligible(balancer.slotOf('down'), false);
      balancer.setWeightScale(balancer.slotOf('only'), 100);
      for (let i = 0; i < 2000; i++) assert.equal(balancer.pick(spreadKey(i)), balancer.slotOf('only'));
    });
  }
});

describe('slow start: lifecycle, validation and cost', () => {
  forEachImplementation('a staying backend keeps its scale; a (re)assigned slot starts at 1000', (make) => {
    const balancer = make({ policy: 'round_robin', maxBackends: 2 });
    balancer.setBackends([{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }]);
    balancer.setWeightScale(balancer.slotOf('a'), 200);
    balancer.setWeightScale(balancer.slotOf('b'), 300);
    balancer.setBackends([{ id: 'a', weight: 3 }, { id: 'b', weight: 1 }]);
    assert.equal(balancer.weightScale(balancer.slotOf('a')), 200, 'reweighting keeps the ramp');
    const slotB = balancer.slotOf('b');
    balancer.setBackends([{ id: 'a', weight: 3 }]);
    balancer.setBackends([{ id: 'a', weight: 3 }, { id: 'c', weight: 1 }]);
    assert.equal(balancer.slotOf('c'), slotB);
    assert.equal(balancer.weightScale(slotB), 1000, 'c inherits b\'s slot, not its ramp');
  });

  forEachImplementation('bad scales get a clear error', (make) => {
    const balancer = make({ policy: 'maglev', maxBackends: 4, maglevTableSize: 251 });
    for (const bad of [-1, 1001, 1.5, Number.NaN]) {
      assert.throws(() => balancer.setWeightScale(0, bad), /weight scale must be an integer per mille in 0\.\.1000/);
    }
    assert.throws(() => balancer.setWeightScale(4, 500), /slot must be an integer in 0\.\.3/);
  });

  for (const policy of BALANCE_POLICIES) {
    forEachImplementation(`${policy}: health flips and scale changes rebuild nothing`, (make) => {
      const balancer = make({ policy, maglevTableSize: 4099, ringPointsPerWeight: 16 });
      balancer.setBackends(makeBackends(20, (i) => 1 + (i % 3)));
      const builds = balancer.buildCount();
      const table = balancer.tableSnapshot();
      for (let i = 0; i < 1000; i++) {
        balancer.setEligible(i % 20, (i & 1) === 0);
        balancer.setWeightScale((i * 7) % 20, i % 1001);
      }
      assert.equal(balancer.buildCount(), builds);
      assert.deepEqual(balancer.tableSnapshot(), table);
    });
  }
});

describe('slow start: WASM memory stays flat', () => {
  for (const policy of BALANCE_POLICIES) {
    it(`${policy}: 100k scale changes interleaved with picks allocate nothing`, () => {
      const balancer = new WasmBalancer({ policy, maglevTableSize: 4099, ringPointsPerWeight: 16, randomSeed: 2 });
      const backends: CoreBackend[] = makeBackends(30, (i) => 1 + (i % 4));
      balancer.setBackends(backends);
      const baseline = balancer.memoryBytes();
      for (let i = 0; i < 100_000; i++) {
        balancer.setWeightScale(i % 30, (i * 37) % 1001);
        balancer.pick(spreadKey(i));
      }
      assert.equal(balancer.memoryBytes(), baseline);
    });
  }
});
