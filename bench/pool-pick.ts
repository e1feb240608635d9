/**
 * Pick through a BackendPool (the data plane's call since the balancer is private to the pool)
 * against the same pick on a balancer built with the same options, per policy at 100 backends:
 * the pool's `pick` is a thin forward that V8 should inline, so the two columns should match
 * within noise. Each iteration runs PICKS_PER_ITERATION picks over varying keys (tinybench's timer
 * costs tens of ns per iteration); ns per pick is the median.
 *
 *   npm run build && node dist/bench/pool-pick.js [--time 300]
 */
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { createBalancer } from '../src/core/index.js';
import { BALANCE_POLICIES, type BalancePolicy } from '../src/core/types.js';
import { balancerOptionsOf, slotCapacity } from '../src/config/reload-plan.js';
import { validateConfig } from '../src/config/load.js';
import { createRootLogger } from '../src/log.js';
import { BackendPool } from '../src/proxy/backend-pool.js';

const PICKS_PER_ITERATION = 1000;
const BACKENDS = 100;
const KEY_COUNT = 1 << 16;

const { values } = parseArgs({ options: { time: { type: 'string', default: '300' } } });
const timeMs = Number(values.time);

const keys = new Uint32Array(KEY_COUNT);
for (let i = 0; i < KEY_COUNT; i++) keys[i] = Math.imul(i + 1, 0x9e3779b1) >>> 0;

const logger = createRootLogger({ level: 'silent' });
const bench = new Bench({ time: timeMs, warmupTime: 100 });
const pools: BackendPool[] = [];

interface Picker {
  pick(keyHash: number, tried: ArrayLike<number> | undefined, triedCount: number): number;
}

function addTask(name: string, picker: Picker): void {
  let offset = 0;
  let sink = 0;
  bench.add(name, () => {
    const start = offset;
    offset = (offset + PICKS_PER_ITERATION) & (KEY_COUNT - 1);
    for (let i = 0; i < PICKS_PER_ITERATION; i++) sink ^= picker.pick(keys[(start + i) & (KEY_COUNT - 1)]!, undefined, 0);
    if (sink === 0x7fffffff) console.log('unreachable');
  });
}

for (const policy of BALANCE_POLICIES) {
  const backends = Array.from({ length: BACKENDS }, (_, i) => ({ address: `10.1.${i >> 8}.${i & 255}:8080`, weight: 1 + (i % 4) }));
  const result = validateConfig({ listeners: [{ name: 'l', bind: '127.0.0.1:0', pool: 'p' }], pools: [{ name: 'p', balance: policy, backends }] });
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  const config = result.config.pools[0]!;
  const pool = new BackendPool({ config, logger });
  pools.push(pool);
  const balancer = createBalancer(balancerOptionsOf(config, slotCapacity(config)));
  balancer.setBackends(config.backends.map((b) => ({ id: b.id, weight: b.weight })));
  addTask(`${policy} balancer`, balancer);
  addTask(`${policy} pool`, pool);
}

bench.runSync();
for (const pool of pools) pool.stop();

const nsPerPick = new Map<string, number>();
for (const task of bench.tasks) {
  if (task.result.state !== 'completed') throw new Error(`task ${task.name} did not complete: ${task.result.state}`);
  nsPerPick.set(task.name, (task.result.latency.p50 * 1e6) / PICKS_PER_ITERATION);
}
console.log(`pick at ${BACKENDS} backends, median ns per pick (${PICKS_PER_ITERATION} picks per iteration, ${timeMs} ms per task)`);
console.table(
  BALANCE_POLICIES.map((policy: BalancePolicy) => {
    const direct = nsPerPick.get(`${policy} balancer`)!;
    const viaPool = nsPerPick.get(`${policy} pool`)!;
    return { policy, 'balancer ns': direct.toFixed(1), 'pool ns': viaPool.toFixed(1), 'pool / balancer': (viaPool / direct).toFixed(2) };
  }),
);
