/**
 * Health flip vs table build (issue 3: "a flip must not rebuild tables: show flip time ≪ build time").
 * For maglev (M = 65537) and ring_hash (160 points per weight unit) at 100 and 1000 backends, on the
 * WASM core through the public WasmBalancer API:
 *   - flip:  setEligible(slot, false/true), what the health owner does on a state change;
 *   - scale: setWeightScale(slot, permille), what slow start does a few times per second;
 *   - build: setBackends alternating the full set and the set minus one backend (a real rebuild).
 * random is listed too: its setWeightScale is the one O(n) case (scaled prefix sums).
 * A flip or scale iteration runs OPS_PER_ITERATION calls (tinybench's timer overhead is tens of ns),
 * so the table reports ns per call. Ends by checking that flips and scale changes built no table
 * (buildCount) and that WASM memory stayed flat.
 *
 *   npm run build && node dist/bench/health-flip.js [--time 300]
 */
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import type { BalancePolicy, CoreBackend } from '../src/core/types.js';
import { WasmBalancer } from '../src/core/wasm-balancer.js';

const OPS_PER_ITERATION = 1000;
const SIZES = [100, 1000] as const;
const POLICIES: readonly BalancePolicy[] = ['maglev', 'ring_hash', 'random'];

const { values } = parseArgs({ options: { time: { type: 'string', default: '300' } } });
const timeMs = Number(values.time);
if (!Number.isFinite(timeMs) || timeMs <= 0) throw new RangeError(`--time must be a positive number of ms, got ${values.time}`);

function backends(count: number): CoreBackend[] {
  return Array.from({ length: count }, (_, i) => ({ id: `10.3.${i >> 8}.${i & 255}:8080`, weight: 1 + (i % 4) }));
}

type Operation = 'flip' | 'scale' | 'build';
interface Case {
  readonly policy: BalancePolicy;
  readonly backends: number;
  readonly balancer: WasmBalancer;
}

const bench = new Bench({ time: timeMs, warmupTime: 100, iterations: 5 });
const meta = new Map<string, { readonly key: string; readonly operation: Operation }>();
const cases = new Map<string, Case>();
/** Balancers that only flip and scale: their build count and memory must not move. */
const flipOnly: { balancer: WasmBalancer; builds: number; bytes: number }[] = [];

for (const policy of POLICIES) {
  for (const count of SIZES) {
    const key = `${policy} ${count}`;
    const full = backends(count);
    const fewer = full.slice(1);
    const options = { policy, maxBackends: count };

    const flipping = new WasmBalancer(options);
    flipping.setBackends(full);
    cases.set(key, { policy, backends: count, balancer: flipping });
    let flipCursor = 0;
    meta.set(`${key} flip`, { key, operation: 'flip' });
    bench.add(`${key} flip`, () => {
      for (let i = 0; i < OPS_PER_ITERATION; i++) {
        const slot = flipCursor++ % count;
        flipping.setEligible(slot, false);
        flipping.setEligible(slot, true);
      }
    });

    const scaling = new WasmBalancer(options);
    scaling.setBackends(full);
    let scaleCursor = 0;
    meta.set(`${key} scale`, { key, operation: 'scale' });
    bench.add(`${key} scale`, () => {
      for (let i = 0; i < OPS_PER_ITERATION; i++) {
        scaleCursor++;
        // Ramp steps of 10% from 100 to 1000, like a slow-start window sampled a few times a second.
        scaling.setWeightScale(scaleCursor % count, 100 + (scaleCursor % 10) * 100);
      }
    });

    const building = new WasmBalancer(options);
    building.setBackends(full);
    let toggle = false;
    meta.set(`${key} build`, { key, operation: 'build' });
    bench.add(`${key} build`, () => {
      toggle = !toggle;
      building.setBackends(toggle ? fewer : full);
    });

    for (const balancer of [flipping, scaling]) flipOnly.push({ balancer, builds: balancer.buildCount(), bytes: balancer.memoryBytes() });
  }
}

bench.runSync();

interface Row {
  policy: string;
  backends: number;
  flipNs: number;
  scaleNs: number;
  buildMs: number;
}
const rows = new Map<string, Row>();
for (const task of bench.tasks) {
  const info = meta.get(task.name);
  const result = task.result;
  if (info === undefined || result.state !== 'completed') throw new Error(`task ${task.name} did not complete: ${result.state}`);
  const item = cases.get(info.key);
  if (item === undefined) throw new Error(`no case ${info.key}`);
  const row = rows.get(info.key) ?? { policy: item.policy, backends: item.backends, flipNs: 0, scaleNs: 0, buildMs: 0 };
  const medianMs = result.latency.p50;
  // A flip iteration is OPS_PER_ITERATION × (false + true): 2 flips per loop turn.
  if (info.operation === 'flip') row.flipNs = (medianMs * 1e6) / (OPS_PER_ITERATION * 2);
  if (info.operation === 'scale') row.scaleNs = (medianMs * 1e6) / OPS_PER_ITERATION;
  if (info.operation === 'build') row.buildMs = medianMs;
  rows.set(info.key, row);
}

console.log(`health flip vs table build, WASM core, medians (${timeMs} ms per task; maglev M = 65537, ring 160 points per weight unit)`);
console.table(
  [...rows.values()].map((row) => ({
    policy: row.policy,
    backends: row.backends,
    'flip ns': row.flipNs.toFixed(1),
    'setWeightScale ns': row.scaleNs.toFixed(1),
    'build ms': row.buildMs.toFixed(3),
    'build / flip': Math.round((row.buildMs * 1e6) / row.flipNs).toLocaleString('en-US'),
    'build / scale': Math.round((row.buildMs * 1e6) / row.scaleNs).toLocaleString('en-US'),
  })),
);
const rebuilt = flipOnly.filter(({ balancer, builds }) => balancer.buildCount() !== builds).length;
const grown = flipOnly.filter(({ balancer, bytes }) => balancer.memoryBytes() !== bytes).length;
console.log(`no-rebuild: ${rebuilt === 0 ? 'OK' : 'FAILED'} — flips and scale changes built ${rebuilt === 0 ? 'no' : 'some'} table (buildCount)`);
console.log(`heap-flat: ${grown === 0 ? 'OK' : 'FAILED'} — WASM linear memory unchanged across flips and scale changes (${grown} grew)`);
if (rebuilt > 0 || grown > 0) process.exitCode = 1;
