/**
 * The disruption preview, computed in the browser: `measureChange` from the reload planner, the
 * function `ringlb diff`, the admin preview and a reload all use, building scratch tables in the
 * same WASM core (build/release.wasm, driven by src/core/wasm-balancer.ts). The page only supplies
 * the sets: the pool's backends with the weights in force, and the same set with the operator's
 * edits.
 */
import type { Backend } from '../src/backend.js';
import { measureChange, slotCapacity } from '../src/config/reload-plan.js';
import type { PoolConfig } from '../src/config/types.js';
import { KEYED_POLICIES, type BalancePolicy } from '../src/core/types.js';
import type { StatusBackend } from './api-types.js';

export interface ProposedChange {
  /** New weights by backend id (ids not listed keep theirs). */
  readonly weights: ReadonlyMap<string, number>;
  readonly removed: ReadonlySet<string>;
}

export interface PreviewOutcome {
  readonly movedShare: number;
  /** `keys` for ring_hash/maglev (the key space), `traffic` for the weighted policies. */
  readonly measure: 'keys' | 'traffic';
  /** False when the proposal equals the set in force. */
  readonly changed: boolean;
}

/**
 * The pool's config in force, as `GET /v1/config` lists it; the settings its tables are built from
 * (balance, hashKey, ringHash.pointsPerWeight, maglev.tableSize) are checked, since the preview
 * is only as right as they are. Returns an error text instead when they are missing.
 */
export function poolConfigFrom(config: unknown, pool: string): PoolConfig | string {
  const pools = (config as { pools?: unknown } | null)?.pools;
  if (!Array.isArray(pools)) return '/v1/config lists no pools';
  const found = pools.find((candidate) => (candidate as { name?: unknown } | null)?.name === pool) as Record<string, unknown> | undefined;
  if (found === undefined) return `pool ${pool} is not in /v1/config`;
  const ring = found.ringHash as { pointsPerWeight?: unknown } | undefined;
  const maglev = found.maglev as { tableSize?: unknown } | undefined;
  if (typeof found.balance !== 'string' || typeof found.hashKey !== 'string' || typeof ring?.pointsPerWeight !== 'number' || typeof maglev?.tableSize !== 'number') {
    return `pool ${pool} in /v1/config lacks balance, hashKey, ringHash.pointsPerWeight or maglev.tableSize`;
  }
  return found as unknown as PoolConfig;
}

/** What moving from the set in force to the proposal moves, as `ringlb diff` would print it. */
export function previewChange(pool: PoolConfig, inForce: readonly StatusBackend[], change: ProposedChange): PreviewOutcome {
  const oldSet = inForce.map(toBackend);
  const newSet = oldSet
    .filter((backend) => !change.removed.has(backend.id))
    .map((backend) => ({ ...backend, weight: change.weights.get(backend.id) ?? backend.weight }));
  const before = { ...pool, backends: oldSet };
  const after = { ...pool, backends: newSet };
  // The capacity `ringlb diff` gives a pool it derives from a config (reload-plan.ts planPool).
  const measured = measureChange(before, after, oldSet, newSet, slotCapacity(before, oldSet.length));
  return {
    movedShare: measured.movedShare,
    measure: KEYED_POLICIES.has(pool.balance as BalancePolicy) ? 'keys' : 'traffic',
    changed: measured.rebuild,
  };
}

/** The planner's Backend: only id and weight enter the tables; the address is carried as text. */
function toBackend(backend: StatusBackend): Backend {
  const colon = backend.address.lastIndexOf(':');
  return {
    id: backend.id,
    address: { host: backend.address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(backend.address.slice(colon + 1)), text: backend.address },
    weight: backend.weight,
    state: backend.state,
  };
}
