/**
 * Cost of bounded load (hashBalanceFactor, issue 8 §3) on the WASM core's pick: ring_hash and maglev
 * at 10 / 100 / 1000 backends, each without the factor (the baseline) and with factor 125, over two
 * loads: `even` (every backend near the mean, so the home is within its bound and the check is one
 * comparison) and `skewed` (a tenth of the backends hold 3× the mean, so their keys spill and the
 * pick walks on). 1000 picks over spread keys per tinybench iteration; median ns per pick; the
 * factor's cost is the ratio to the baseline on the same table and load. Ends with a heap-flat
 * check: no WASM memory growth.
 *
 *   npm run build && node dist/bench/bounded-pick.js [--time 300]
 */
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { WasmBalancer } from '../src/core/wasm-balancer.js';

const PICKS_PER_ITERATION = 1000;
const SIZES = [10, 100, 1000] as const;
const POLICIES = ['ring_hash', 'maglev'] as const;
const LOADS = ['even', 'skewed'] as const;
const FACTOR = 125;
const KEY_COUNT = 1 << 16;
/** Mean active connections per weight unit. */
const MEAN = 20;

const { values } = parseArgs({ options: { time: { type: 'string', default: '300' } } });
const timeMs = Number(values.time);

const keys = new Uint32Array(KEY_COUNT);
for (let i = 0; i < KEY_COUNT; i++) keys[i] = Math.imul(i + 1, 0x9e3779b1) >>> 0;

function prepare(policy: (typeof POLICIES)[number], count: number, load: (typeof LOADS)[number], factor: number): WasmBalancer {
  const balancer = new WasmBalancer({ policy, maxBackends: count, randomSeed: 1 });
  // Mixed weights 1..4, as bench/core-pick.ts; each backend holds its weighted share (± 1), and in
  // `skewed` every tenth holds 3× that, above 125 % of the mean.
  balancer.setBackends(Array.from({ length: count }, (_, i) => ({ id: `10.1.${i >> 8}.${i & 255}:8080`, weight: 1 + (i % 4) })));
  for (let slot = 0; slot < count; slot++) {
    const share = MEAN * (1 + (slot % 4)) + (slot % 3) - 1;
    const held = load === 'skewed' && slot % 10 === 0 ? 3 * share : share;
    for (let c = 0; c < held; c++) balancer.acquire(slot);
  }
  balancer.setHashBalanceFactor(factor);
  return balancer;
}

const balancers: WasmBalancer[] = [];
const bench = new Bench({ time: timeMs, warmupTime: 100 });
for (const policy of POLICIES) {
  for (const count of SIZES) {
    for (const load of LOADS) {
      for (const factor of [0, FACTOR]) {
        const balancer = prepare(policy, count, load, factor);
        balancers.push(balancer);
        let offset = 0;
        let sink = 0;
        bench.add(`${policy}|${count}|${load}|${factor}`, () => {
          const start = offset;
          offset = (offset + PICKS_PER_ITERATION) & (KEY_COUNT - 1);
          for (let i = 0; i < PICKS_PER_ITERATION; i++) sink ^= balancer.pick(keys[(start + i) & (KEY_COUNT - 1)]!);
          if (sink === 0x7fffffff) console.log('unreachable');
        });
      }
    }
  }
}

const memoryBefore = balancers.map((balancer) => balancer.memoryBytes());
bench.runSync();
const memoryAfter = balancers.map((balancer) => balancer.memoryBytes());

const nsByTask = new Map<string, number>();
for (const task of bench.tasks) {
  const result = task.result;
  if (result.state !== 'completed') throw new Error(`task ${task.name} did not complete: ${result.state}`);
  nsByTask.set(task.name, (result.latency.p50 * 1e6) / PICKS_PER_ITERATION);
}

console.log(`| policy | backends | load | no factor ns | factor ${FACTOR} ns | ratio |`);
console.log('|---|---|---|---|---|---|');
for (const policy of POLICIES) {
  for (const count of SIZES) {
    for (const load of LOADS) {
      const plain = nsByTask.get(`${policy}|${count}|${load}|0`)!;
      const bounded = nsByTask.get(`${policy}|${count}|${load}|${FACTOR}`)!;
      console.log(`| ${policy} | ${count} | ${load} | ${plain.toFixed(1)} | ${bounded.toFixed(1)} | ${(bounded / plain).toFixed(2)} |`);
    }
  }
}
const grown = memoryAfter.filter((bytes, i) => bytes !== memoryBefore[i]).length;
console.log(`\nWASM memory: ${grown === 0 ? 'flat' : `${grown} balancers grew`} over ${balancers.length} balancers`);
if (grown > 0) process.exitCode = 1;
