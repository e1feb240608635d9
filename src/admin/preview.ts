/**
 * The disruption preview (`POST /v1/pools/{pool}/preview`): what a proposed set would move in a
 * running pool, applying nothing. The overall moved share is the reload planner's
 * (`measureChange`, config/reload-plan.ts), the very function `ringlb diff` and a reload use, so
 * the three never disagree (ARCHITECTURE.md "Preview and reload are one plan"). The per-backend
 * breakdown compares the pool's table in force with a scratch table of the proposed set
 * (table-ownership.ts); for the policies without a table it is the weight shares.
 */
import type { Backend } from '../backend.js';
import { balancerOptionsOf, measureChange, slotCapacity } from '../config/reload-plan.js';
import { createBalancer, type BalancerImplementation } from '../core/index.js';
import type { BackendPool } from '../proxy/backend-pool.js';
import { formatPath } from '../config/issues.js';
import type { AdminIssue, PreviewRequest, PreviewResult } from './api.js';
import { tableTransfer, type ShareTransfer } from './table-ownership.js';

const NOTHING: ShareTransfer = { before: 0, after: 0, gained: 0, lost: 0 };

export function previewChange(pool: BackendPool, next: readonly Backend[], implementation: BalancerImplementation | undefined): PreviewResult {
  const inForce = pool.backends;
  const measured = measureChange(pool.config, pool.config, inForce, next, pool.capacity, { implementation });
  const transfers = tableTransfers(pool, next, implementation) ?? weightTransfers(inForce, next);
  // Every backend of either set is listed, those owning nothing before and after (weight 0) too.
  const ids = [...new Set([...inForce.map((b) => b.id), ...next.map((b) => b.id), ...transfers.keys()])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    pool: pool.name,
    balance: pool.policy,
    movedShare: measured.movedShare,
    backends: ids.map((id) => {
      const transfer = transfers.get(id) ?? NOTHING;
      return { id, before: round(transfer.before), after: round(transfer.after), gained: round(transfer.gained), lost: round(transfer.lost) };
    }),
  };
}

/** Hash policies: the table in force against a scratch table of `next` (ids and weights only, like every table). */
function tableTransfers(pool: BackendPool, next: readonly Backend[], implementation: BalancerImplementation | undefined): Map<string, ShareTransfer> | null {
  if (pool.policy !== 'maglev' && pool.policy !== 'ring_hash') return null;
  const scratch = createBalancer(balancerOptionsOf(pool.config, Math.max(1, slotCapacity(pool.config, next.length))), implementation);
  scratch.setBackends(next.map((backend) => ({ id: backend.id, weight: backend.weight })));
  return tableTransfer(
    pool.policy,
    { snapshot: pool.tableSnapshot(), idOf: (slot) => pool.idOf(slot) },
    { snapshot: scratch.tableSnapshot(), idOf: (slot) => scratch.idOf(slot) },
  );
}

/** Weighted policies spread connections by weight: each backend's share of the total, before and after. */
function weightTransfers(before: readonly Backend[], after: readonly Backend[]): Map<string, ShareTransfer> {
  const shares = (set: readonly Backend[]): Map<string, number> => {
    const total = set.reduce((sum, backend) => sum + backend.weight, 0);
    return new Map(set.map((backend) => [backend.id, total === 0 ? 0 : backend.weight / total]));
  };
  const old = shares(before);
  const next = shares(after);
  const transfers = new Map<string, ShareTransfer>();
  for (const id of new Set([...old.keys(), ...next.keys()])) {
    const from = old.get(id) ?? 0;
    const to = next.get(id) ?? 0;
    transfers.set(id, { before: from, after: to, gained: Math.max(0, to - from), lost: Math.max(0, from - to) });
  }
  return transfers;
}

/** Float sums over thousands of runs: 12 digits are exact enough and stable to print. */
function round(share: number): number {
  return Math.round(share * 1e12) / 1e12;
}

/** Ids in a preview body's changes that the pool does not have (→ 400 with their paths). */
export function unknownIdIssues(request: PreviewRequest, known: ReadonlySet<string>): AdminIssue[] {
  if (request.kind !== 'changes') return [];
  const issues: AdminIssue[] = [];
  for (const id of request.weights.keys()) {
    if (!known.has(id)) issues.push({ path: formatPath(['weights', id]), message: `the pool has no backend "${id}"` });
  }
  request.remove.forEach((id, index) => {
    if (!known.has(id)) issues.push({ path: `remove[${index}]`, message: `the pool has no backend "${id}"` });
  });
  return issues;
}
