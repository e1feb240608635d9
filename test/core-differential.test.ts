/**
 * Differential test: the WASM core against the plain TypeScript reference on seeded random backend
 * sets, weights, health, slow-start weight scales, load, connect times, keys, retries and (hash
 * policies) bounded-load factors with the spill counts they produce, for every policy. Any difference in
 * a pick, a table or a moved share fails with the seed and step that produced it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BALANCE_POLICIES, KEYED_POLICIES, type BalancePolicy, type CoreBackend } from '../src/core/types.js';
import { balancerPair, makeBackends, randomInt, shuffled, testRandom } from './helpers/core.js';

const SEEDS_PER_POLICY = 12;
const ROUNDS = 5;
const PICKS_PER_ROUND = 400;
const MAGLEV_SIZES = [7, 251, 4099, 65537];
/** hashBalanceFactor per round (0 = off); 101 is the tightest bound, so it spills the most. */
const BALANCE_FACTORS = [0, 101, 125, 150, 300];

/**
 * Up to 40 of a pool of ids, 10% weight 0; one set in five carries heavy weights (ring_hash: up to
 * 60, enough to exceed the point cap now and then without building million-point reference rings on
 * every round; the dedicated cap case below covers full-range weights).
 */
function randomSet(random: () => number, maxBackends: number, heaviest: number, alwaysHeavy: boolean): CoreBackend[] {
  const pool = makeBackends(maxBackends + 8, () => 0, `10.${randomInt(random, 3)}`);
  const count = randomInt(random, Math.min(maxBackends, 40)) + (random() < 0.1 ? 0 : 1);
  const heavy = alwaysHeavy || random() < 0.2;
  return shuffled(pool, random)
    .slice(0, count)
    .map(({ id }) => ({ id, weight: random() < 0.1 ? 0 : heavy ? randomInt(random, heaviest + 1) : randomInt(random, 10) + 1 }));
}

/** Slow-start scales: mostly anywhere in 0..1000, with the edges 0 and 1000 often. */
function randomScale(random: () => number): number {
  const draw = random();
  return draw < 0.15 ? 0 : draw < 0.35 ? 1000 : randomInt(random, 1001);
}

/** Spills counted across runs: the bounded-load cases must actually spill, or they test nothing. */
let spillsSeen = 0;

function runSeed(policy: BalancePolicy, seed: number, flavour: 'release' | 'debug', heaviest = policy === 'ring_hash' ? 60 : 10_000, alwaysHeavy = false): void {
  const random = testRandom(seed);
  const maglevTableSize = MAGLEV_SIZES[randomInt(random, MAGLEV_SIZES.length)];
  const maxBackends = policy === 'maglev' ? Math.min(64, maglevTableSize) : 64;
  const options = { policy, maxBackends, maglevTableSize, ringPointsPerWeight: [1, 7, 160][randomInt(random, 3)], randomSeed: seed };
  const { wasm, reference } = balancerPair(options, flavour);
  const setScale = (slot: number, permille: number): void => {
    wasm.setWeightScale(slot, permille);
    reference.setWeightScale(slot, permille);
    assert.equal(wasm.weightScale(slot), reference.weightScale(slot));
  };
  let now = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const where = `policy ${policy} seed ${seed} round ${round}`;
    const backends = randomSet(random, maxBackends, heaviest, alwaysHeavy);
    let expected;
    try {
      expected = reference.setBackends(backends);
    } catch (error) {
      // A set that cannot fit (draining slots) must be refused by both, identically.
      assert.throws(() => wasm.setBackends(backends), { message: (error as Error).message }, where);
      continue;
    }
    const actual = wasm.setBackends(backends);
    assert.equal(actual.changed, expected.changed, where);
    assert.deepEqual([...actual.slots], [...expected.slots], where);
    assert.equal(actual.movedShare, expected.movedShare, `${where}: moved share`);
    const wasmTable = wasm.tableSnapshot();
    const referenceTable = reference.tableSnapshot();
    assert.deepEqual(wasmTable.slots, referenceTable.slots, `${where}: table`);
    assert.deepEqual(wasmTable.positions, referenceTable.positions, `${where}: ring positions`);

    if (KEYED_POLICIES.has(policy)) {
      const factor = BALANCE_FACTORS[randomInt(random, BALANCE_FACTORS.length)];
      wasm.setHashBalanceFactor(factor);
      reference.setHashBalanceFactor(factor);
    }
    const slots = [...expected.slots.values()];
    for (let slot = 0; slot < maxBackends; slot++) {
      const eligible = random() < 0.75;
      wasm.setEligible(slot, eligible);
      reference.setEligible(slot, eligible);
    }
    // Every other round, a few slots ramp (slow start): random scales, some 0, some back at 1000.
    if (round % 2 === 1) {
      for (let i = randomInt(random, 4); i > 0; i--) setScale(randomInt(random, maxBackends), randomScale(random));
    }
    const tried: number[] = [];
    for (let step = 0; step < PICKS_PER_ROUND; step++) {
      const key = (random() * 2 ** 32) >>> 0;
      const retry = random() < 0.3 && slots.length > 0;
      tried.length = 0;
      if (retry) for (let i = randomInt(random, 4) + 1; i > 0; i--) tried.push(slots[randomInt(random, slots.length)]);
      const picked = reference.pick(key, tried, tried.length);
      assert.equal(wasm.pick(key, tried, tried.length), picked, `${where} step ${step}: pick(${key}, [${tried.join(',')}])`);
      assert.equal(wasm.homeSlot(key), reference.homeSlot(key), `${where} step ${step}: homeSlot`);
      if (picked >= 0) {
        const action = random();
        if (action < 0.5) {
          wasm.acquire(picked);
          reference.acquire(picked);
        } else if (action < 0.7 && reference.activeConnections(picked) > 0) {
          wasm.release(picked);
          reference.release(picked);
        }
        if (random() < 0.3) {
          now += randomInt(random, 5000);
          const micros = randomInt(random, 100_000);
          wasm.observeConnectTime(picked, micros, now);
          reference.observeConnectTime(picked, micros, now);
          assert.equal(wasm.connectTimeEwma(picked), reference.connectTimeEwma(picked), `${where}: ewma`);
        }
      }
      if (random() < 0.02) {
        const slot = randomInt(random, maxBackends);
        const eligible = random() < 0.5;
        wasm.setEligible(slot, eligible);
        reference.setEligible(slot, eligible);
      }
      if (random() < 0.01) setScale(randomInt(random, maxBackends), randomScale(random));
    }
    for (let slot = 0; slot < maxBackends; slot++) {
      assert.equal(wasm.spilledConnections(slot), reference.spilledConnections(slot), `${where}: spilled on slot ${slot}`);
      spillsSeen += reference.spilledConnections(slot);
    }
  }
}

describe('WASM core ≡ TypeScript reference', () => {
  for (const policy of BALANCE_POLICIES) {
    it(`${policy}: ${SEEDS_PER_POLICY} seeds × ${ROUNDS} rebuilds × ${PICKS_PER_ROUND} picks`, () => {
      spillsSeen = 0;
      for (let seed = 1; seed <= SEEDS_PER_POLICY; seed++) runSeed(policy, seed * 7919, 'release');
      if (KEYED_POLICIES.has(policy)) assert.ok(spillsSeen > 100, `${policy}: only ${spillsSeen} spills`);
    });
  }

  it('ring_hash with full-range weights (ring scaled down to the point cap)', () => {
    runSeed('ring_hash', 31337, 'release', 10_000, true);
  });

  it('the debug build (assertions on) agrees too', () => {
    for (const policy of BALANCE_POLICIES) runSeed(policy, 424242, 'debug');
  });
});
