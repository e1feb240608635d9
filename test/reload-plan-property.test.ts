/**
 * Property: the preview is the reload. One running Ringlb (in-process, real listeners, real
 * backends on 127.0.0.1 so active checks pass) is reloaded through a seeded random sequence of
 * configs; for every (current, next) pair:
 * - the plan `ringlb diff` would print (`planReload(current, next)`, `formatPlan`) equals the plan the
 *   reload executed (build times aside), and the reload is applied whole (every pool's policy,
 *   set and settings are the next config's);
 * - the moved share each pool's `pool updated` line logs equals the preview's;
 * - the share measured in the live tables — the backend each of 10,000 clients maps to, asked of
 *   the running pool before and after the reload — equals the preview's: exactly for a replaced
 *   keyed pool (the planner counts the same documented sample clients, reload-plan.ts), within
 *   sampling error for an updated one (the planner reports the core's exact table comparison).
 *   Weighted pools are measured on the live backend sets' weight shares.
 * Policies, hashKey, maglev.tableSize, ringHash.pointsPerWeight, hashBalanceFactor (ignored ones
 * included), backend sets, weights and health checks all vary.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import { planReload, sampleClients, weightShareShift, type ReloadPlan } from '../src/config/reload-plan.js';
import type { Backend } from '../src/backend.js';
import type { RinglbConfig } from '../src/config/types.js';
import { BALANCE_POLICIES } from '../src/core/index.js';
import { KEYED_POLICIES } from '../src/core/types.js';
import type { BackendPool } from '../src/proxy/backend-pool.js';
import { formatPlan } from '../src/config/plan-report.js';
import { Ringlb } from '../src/runtime.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { testRandom } from './helpers/core.js';
import { LogCapture, type LogLine } from './helpers/log-capture.js';

const STEPS = 80;
const SEED = 20261202;

function randomConfig(random: () => number, servers: readonly NamedBackend[]): RinglbConfig {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const pools: unknown[] = [];
  for (const name of ['p0', 'p1', 'p2']) {
    // p0 always exists; the others come and go.
    if (name !== 'p0' && random() < 0.25) continue;
    const ids = Array.from({ length: 12 }, (_, i) => `b${i}`).filter(() => random() < 0.5);
    if (ids.length === 0) ids.push('b0');
    const healthCheck = random() < 0.5 ? undefined : { type: 'tcp', intervalMs: pick([2000, 3000]), timeoutMs: 1000, rise: pick([1, 2]), initialHealthy: true };
    const hashBalanceFactor = pick([undefined, 125, 150]);
    pools.push({
      name,
      ...(healthCheck === undefined ? {} : { healthCheck }),
      ...(hashBalanceFactor === undefined ? {} : { hashBalanceFactor }),
      balance: pick(BALANCE_POLICIES),
      hashKey: pick(['source_ip', 'source_ip_port']),
      maglev: { tableSize: pick([251, 1021, 65537]) },
      ringHash: { pointsPerWeight: pick([4, 40, 160]) },
      backends: ids.map((id) => ({ id, address: pick(servers).address, weight: 1 + Math.floor(random() * 4) })),
    });
  }
  const result = validateConfig({
    listeners: pools.map((pool) => ({ name: `l-${(pool as { name: string }).name}`, bind: '127.0.0.1:0', pool: (pool as { name: string }).name })),
    pools,
    drainTimeoutMs: 1000,
  });
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.config;
}

/** The backend id each sample client lands on in the pool's live table (health ignored). */
function liveHomes(pool: BackendPool): (string | undefined)[] {
  return sampleClients().map((client) => pool.homeIdOf(client.ip, client.port));
}

/** The plan without build times (they are measured, so they differ run to run). */
function timeless(plan: ReloadPlan): unknown {
  return { ...plan, pools: plan.pools.map((pool) => ({ ...pool, buildMs: pool.buildMs === null ? null : 'built' })) };
}

function timelessText(text: string): string {
  return text.replace(/built in \d+\.\d\d ms/g, 'built in N ms');
}

describe('reload planner: the preview is the reload', () => {
  test(`${STEPS} random reloads: applied plan = previewed plan; logged share = previewed = measured in the live tables`, async (t) => {
    const started = performance.now();
    const servers = await Promise.all(['s0', 's1', 's2'].map((name) => startNamedBackend(name)));
    const log = new LogCapture();
    const lines = log.lines;
    const logger = log.logger();
    const ringlb = new Ringlb({ logger });
    try {
      const random = testRandom(SEED); // seeded, so a failing step can be replayed
      let current = randomConfig(random, servers);
      await ringlb.start(current);
      const counts = { replace: 0, update: 0, unchanged: 0, add: 0, remove: 0, ignoredOnly: 0 };
      for (let step = 0; step < STEPS; step++) {
        const next = randomConfig(random, servers);
        // Half the steps change one pool a little (a setting, one backend): the common reload.
        const target = step % 2 === 0 ? next : nudge(current, random);
        const preview = planReload(current, target);
        const before = new Map(current.pools.map((pool) => [pool.name, { pool: ringlb.pool(pool.name)!, homes: liveHomes(ringlb.pool(pool.name)!), backends: ringlb.pool(pool.name)!.backends }]));
        const since = lines.length;

        const result = await ringlb.reload(target);
        const context = `step ${step}\n${timelessText(formatPlan(preview))}`;
        assert.ok(result.ok, `${context}\n${JSON.stringify(result)}`);
        assert.deepEqual(timeless(result.plan), timeless(preview), context);
        assert.equal(timelessText(formatPlan(result.plan)), timelessText(formatPlan(preview)), context);
        assert.equal(ringlb.config, target);
        const logged = lines.slice(since);
        assert.equal(logged.filter((line) => line.msg === 'config reloaded').length, 1, context);
        assert.deepEqual(logged.filter((line) => line.level === 50), [], `errors logged: ${context}`);

        for (const plan of preview.pools) {
          counts[plan.action] += 1;
          if (plan.action === 'update' && plan.ignoredSettings.length > 0) counts.ignoredOnly += 1;
          const poolContext = `${context}\npool ${plan.name}: ${plan.action} (${plan.reason})`;
          if (plan.action === 'remove') {
            assert.equal(ringlb.pool(plan.name), undefined, poolContext);
            continue;
          }
          const pool = ringlb.pool(plan.name)!;
          const config = target.pools.find((p) => p.name === plan.name)!;
          // Applied whole: policy, settings and set are the next config's.
          assert.equal(pool.policy, config.balance, poolContext);
          if (plan.action === 'update' || plan.action === 'replace') assert.equal(pool.config, config, poolContext);
          assert.deepEqual(pool.backends.map((b) => b.id).sort(), config.backends.map((b) => b.id).sort(), poolContext);
          assert.equal(pool.health.stats().backends, config.backends.length, poolContext);
          if (plan.action === 'add' || plan.action === 'unchanged') continue;

          const previous = before.get(plan.name)!;
          assert.equal(pool, previous.pool, `the pool object stays (health, connections): ${poolContext}`);
          // The reload logs the preview's share (rounded to 6 decimals, as logged).
          const updated = logged.filter((line) => line.msg === 'pool updated' && line.pool === plan.name);
          assert.equal(updated.length, 1, poolContext);
          assert.ok(Math.abs((updated[0]!.movedShare as number) - plan.movedShare!) < 1e-6, `${poolContext}: logged ${String(updated[0]!.movedShare)}, previewed ${plan.movedShare}`);

          // Measured in the live tables.
          const oldPolicy = current.pools.find((p) => p.name === plan.name)!.balance;
          if (plan.movedMeasure === 'affinity') {
            assert.equal(plan.movedShare, 1, poolContext);
            assert.notEqual(KEYED_POLICIES.has(oldPolicy), KEYED_POLICIES.has(config.balance), poolContext);
          } else if (plan.movedMeasure === 'traffic') {
            assert.ok(Math.abs(weightShareShift(previous.backends, pool.backends) - plan.movedShare!) < 1e-9, poolContext);
          } else {
            const after = liveHomes(pool);
            let moved = 0;
            for (let i = 0; i < after.length; i++) if (after[i] !== previous.homes[i]) moved += 1;
            const measured = moved / after.length;
            if (plan.action === 'replace' && oldPolicy !== config.balance) {
              assert.equal(measured, plan.movedShare, `${poolContext}: measured ${measured}`);
            } else if (plan.action === 'replace') {
              // Same policy, another table shape or hash key: the planner counts the same sample clients.
              assert.equal(measured, plan.movedShare, `${poolContext}: measured ${measured}`);
            } else {
              assert.ok(Math.abs(measured - plan.movedShare!) < 0.02, `${poolContext}: measured ${measured}, previewed ${plan.movedShare}`);
            }
          }
        }
        current = target;
      }
      t.diagnostic(`plans: ${JSON.stringify(counts)}; ${(performance.now() - started).toFixed(0)} ms`);
      assert.ok(counts.replace >= 5 && counts.update >= 5 && counts.ignoredOnly >= 1, JSON.stringify(counts));
    } finally {
      await ringlb.close();
      await Promise.all(servers.map((server) => server.close()));
    }
  });
});

/** `current` with one pool changed a little: one setting (often one its policy ignores) or one backend. */
function nudge(current: RinglbConfig, random: () => number): RinglbConfig {
  const index = Math.floor(random() * current.pools.length);
  const pool = current.pools[index]!;
  const kinds = ['tableSize', 'points', 'hashKey', 'factor', 'weight', 'drop', 'health'] as const;
  const kind = kinds[Math.floor(random() * kinds.length)]!;
  let changed = pool;
  if (kind === 'tableSize') changed = { ...pool, maglev: { tableSize: pool.maglev.tableSize === 1021 ? 251 : 1021 } };
  else if (kind === 'points') changed = { ...pool, ringHash: { pointsPerWeight: pool.ringHash.pointsPerWeight === 40 ? 4 : 40 } };
  else if (kind === 'hashKey') changed = { ...pool, hashKey: pool.hashKey === 'source_ip' ? 'source_ip_port' : 'source_ip' };
  else if (kind === 'factor') changed = { ...pool, hashBalanceFactor: pool.hashBalanceFactor === 125 ? 200 : 125 };
  else if (kind === 'weight') changed = { ...pool, backends: pool.backends.map((b, i): Backend => (i === 0 ? { ...b, weight: b.weight === 4 ? 1 : b.weight + 1 } : b)) };
  else if (kind === 'drop' && pool.backends.length > 1) changed = { ...pool, backends: pool.backends.slice(1) };
  else if (pool.healthCheck !== null) changed = { ...pool, healthCheck: { ...pool.healthCheck, rise: pool.healthCheck.rise === 1 ? 2 : 1 } };
  return { ...current, pools: current.pools.map((p, i) => (i === index ? changed : p)) };
}
