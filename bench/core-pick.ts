/**
 * Pick latency per policy, WASM core vs the TypeScript reference, side by side in one run, at 10 /
 * 100 / 1000 backends. A tinybench iteration costs tens of ns of timer overhead, so each iteration
 * runs PICKS_PER_ITERATION picks over varying keys and the table reports ns per pick (median).
 * Ends with a heap-flat check: the WASM linear memory of every balancer must not have grown.
 *
 *   npm run build && node dist/bench/core-pick.js [--time 300]
 */
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { ReferenceBalancer } from '../src/core/reference-balancer.js';
import { BALANCE_POLICIES, type Balancer, type BalancePolicy } from '../src/core/types.js';
import { WasmBalancer } from '../src/core/wasm-balancer.js';

const PICKS_PER_ITERATION = 1000;
const SIZES = [10, 100, 1000] as const;
const KEY_COUNT = 1 << 16;

const { values } = parseArgs({ options: { time: { type: 'string', default: '300' } } });
const timeMs = Number(values.time);

const keys = new Uint32Array(KEY_COUNT);
for (let i = 0; i < KEY_COUNT; i++) keys[i] = Math.imul(i + 1, 0x9e3779b1) >>> 0;

function backends(count: number): { id: string; weight: number }[] {
  // Mixed weights 1..4 so every policy exercises its weighted path.
  return Array.from({ length: count }, (_, i) => ({ id: `10.1.${i >> 8}.${i & 255}:8080`, weight: 1 + (i % 4) }));
}

function prepare(balancer: Balancer, count: number): Balancer {
  balancer.setBackends(backends(count));
  // Some load and connect-time history so least_* compare real numbers.
  for (let slot = 0; slot < count; slot++) {
    for (let c = slot % 3; c > 0; c--) balancer.acquire(slot);
    balancer.observeConnectTime(slot, 200 + ((slot * 37) % 500), 0);
  }
  return balancer;
}

interface Row {
  policy: BalancePolicy;
  backends: number;
  wasmNs: number;
  referenceNs: number;
}

const wasmBalancers: WasmBalancer[] = [];
const bench = new Bench({ time: timeMs, warmupTime: 100 });
const names = new Map<string, { policy: BalancePolicy; backends: number; implementation: 'wasm' | 'reference' }>();
for (const policy of BALANCE_POLICIES) {
  for (const count of SIZES) {
    const options = { policy, maxBackends: count, randomSeed: 1 };
    const wasm = new WasmBalancer(options);
    wasmBalancers.push(wasm);
    for (const [implementation, balancer] of [['wasm', prepare(wasm, count)], ['reference', prepare(new ReferenceBalancer(options), count)]] as const) {
      const name = `${policy} ${count} ${implementation}`;
      names.set(name, { policy, backends: count, implementation });
      let offset = 0;
      let sink = 0;
      bench.add(name, () => {
        const start = offset;
        offset = (offset + PICKS_PER_ITERATION) & (KEY_COUNT - 1);
        for (let i = 0; i < PICKS_PER_ITERATION; i++) sink ^= balancer.pick(keys[(start + i) & (KEY_COUNT - 1)]);
        if (sink === 0x7fffffff) console.log('unreachable');
      });
    }
  }
}

const memoryBefore = wasmBalancers.map((balancer) => balancer.memoryBytes());
bench.runSync();
const memoryAfter = wasmBalancers.map((balancer) => balancer.memoryBytes());

const rows = new Map<string, Row>();
for (const task of bench.tasks) {
  const meta = names.get(task.name);
  const result = task.result;
  if (meta === undefined || result.state !== 'completed') throw new Error(`task ${task.name} did not complete: ${result.state}`);
  const nsPerPick = (result.latency.p50 * 1e6) / PICKS_PER_ITERATION;
  const key = `${meta.policy} ${meta.backends}`;
  const row = rows.get(key) ?? { policy: meta.policy, backends: meta.backends, wasmNs: 0, referenceNs: 0 };
  if (meta.implementation === 'wasm') row.wasmNs = nsPerPick;
  else row.referenceNs = nsPerPick;
  rows.set(key, row);
}

console.log(`pick, median ns per pick (${PICKS_PER_ITERATION} picks per iteration, ${timeMs} ms per task)`);
console.table(
  [...rows.values()].map((row) => ({
    policy: row.policy,
    backends: row.backends,
    'wasm ns': row.wasmNs.toFixed(1),
    'reference ns': row.referenceNs.toFixed(1),
    'reference / wasm': (row.referenceNs / row.wasmNs).toFixed(2),
  })),
);
const grown = memoryAfter.filter((bytes, i) => bytes !== memoryBefore[i]).length;
console.log(`heap-flat: ${grown === 0 ? 'OK' : 'FAILED'} — WASM linear memory of ${wasmBalancers.length} balancers unchanged across all picks (${grown} grew)`);
if (grown > 0) process.exitCode = 1;
