/**
 * Table build time (setBackends that changes membership), WASM core vs the TypeScript reference,
 * side by side in one run, at 10 / 100 / 1000 backends. Each iteration alternates between the full
 * set and the set minus one backend, so every call rebuilds. Both implementations share the same
 * TypeScript slot diff (src/core/slot-table.ts); the difference is the table build itself.
 *
 *   npm run build && node dist/bench/core-build.js [--time 500]
 */
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { ReferenceBalancer } from '../src/core/reference-balancer.js';
import type { Balancer, BalancePolicy } from '../src/core/types.js';
import { WasmBalancer } from '../src/core/wasm-balancer.js';

const SIZES = [10, 100, 1000] as const;
const POLICIES: readonly BalancePolicy[] = ['maglev', 'ring_hash', 'round_robin'];

const { values } = parseArgs({ options: { time: { type: 'string', default: '500' } } });
const timeMs = Number(values.time);

function backends(count: number): { id: string; weight: number }[] {
  return Array.from({ length: count }, (_, i) => ({ id: `10.2.${i >> 8}.${i & 255}:8080`, weight: 1 + (i % 4) }));
}

const bench = new Bench({ time: timeMs, warmupTime: 100, iterations: 5 });
const meta = new Map<string, { policy: BalancePolicy; backends: number; implementation: 'wasm' | 'reference' }>();
const wasmBalancers: WasmBalancer[] = [];
for (const policy of POLICIES) {
  for (const count of SIZES) {
    const full = backends(count);
    const fewer = full.slice(1);
    const options = { policy, maxBackends: count };
    const wasm = new WasmBalancer(options);
    wasmBalancers.push(wasm);
    for (const [implementation, balancer] of [['wasm', wasm], ['reference', new ReferenceBalancer(options)]] as [string, Balancer][]) {
      balancer.setBackends(full);
      let toggle = false;
      const name = `${policy} ${count} ${implementation}`;
      meta.set(name, { policy, backends: count, implementation: implementation as 'wasm' | 'reference' });
      bench.add(name, () => {
        toggle = !toggle;
        balancer.setBackends(toggle ? fewer : full);
      });
    }
  }
}

const memoryBefore = wasmBalancers.map((balancer) => balancer.memoryBytes());
bench.runSync();
const memoryAfter = wasmBalancers.map((balancer) => balancer.memoryBytes());

const rows = new Map<string, { policy: string; backends: number; wasm: number; reference: number }>();
for (const task of bench.tasks) {
  const info = meta.get(task.name);
  const result = task.result;
  if (info === undefined || result.state !== 'completed') throw new Error(`task ${task.name} did not complete: ${result.state}`);
  const key = `${info.policy} ${info.backends}`;
  const row = rows.get(key) ?? { policy: info.policy, backends: info.backends, wasm: 0, reference: 0 };
  row[info.implementation] = result.latency.p50;
  rows.set(key, row);
}
console.log(`table build, median ms per rebuild (${timeMs} ms per task; maglev M = 65537, ring 160 points per weight unit)`);
console.table(
  [...rows.values()].map((row) => ({
    policy: row.policy,
    backends: row.backends,
    'wasm ms': row.wasm.toFixed(3),
    'reference ms': row.reference.toFixed(3),
    'wasm / reference': (row.wasm / row.reference).toFixed(2),
  })),
);
const grown = memoryAfter.filter((bytes, i) => bytes !== memoryBefore[i]).length;
console.log(`heap-flat: ${grown === 0 ? 'OK' : 'FAILED'} — WASM linear memory unchanged across all rebuilds (${grown} grew)`);
if (grown > 0) process.exitCode = 1;
