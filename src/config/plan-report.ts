/**
 * The disruption report: `ringlb diff OLD.json NEW.json` prints the reload plan
 * (config/reload-plan.ts) that a reload from OLD to NEW would execute — the same plan object, so
 * the preview never disagrees with the reload. Every changed setting is printed by its full path
 * with both values whole (`healthCheck.rise: 2 → 3`); nothing is shortened.
 *
 * Backend `state` (active/drain/maint) and health never enter the tables: a state change is listed
 * but moves no table entry (its keys go elsewhere only while it is ineligible).
 */
import { formatIssues, loadConfigFile } from './load.js';
import { planReload, REDACTED, type PlanOptions, type PoolPlan, type ReloadPlan, type SettingChange } from './reload-plan.js';
import { formatPercent } from './share-text.js';
import type { ListenerConfig } from './types.js';

/** The plan as text: listeners and global settings first, then one block per pool. No trailing newline. */
export function formatPlan(plan: ReloadPlan): string {
  const lines: string[] = [];
  for (const listener of plan.listeners.added) lines.push(`listener ${listener.name}: added (${describeListener(listener)})`);
  for (const listener of plan.listeners.removed) {
    lines.push(`listener ${listener.name}: removed (stops accepting; its connections drain)`);
  }
  for (const listener of plan.listeners.rebound) {
    lines.push(`listener ${listener.name}: rebound (a new socket takes over; the old one's connections drain): ${listener.changes.map(formatSetting).join('; ')}`);
  }
  for (const listener of plan.listeners.updated) lines.push(`listener ${listener.name}: ${listener.changes.map(formatSetting).join('; ')}`);
  for (const setting of plan.settings) lines.push(`config: ${formatSetting(setting)}`);

  for (const pool of plan.pools) {
    lines.push(`pool ${pool.name} (${pool.balance}): ${poolHeadline(pool)}`);
    for (const backend of pool.added) lines.push(`  + ${describeBackend(backend)}`);
    for (const backend of pool.removed) {
      lines.push(`  - ${describeBackend(backend)}${pool.action === 'remove' ? '' : ' (drains)'}`);
    }
    for (const change of pool.reweighted) lines.push(`  ~ ${change.id}: weight ${change.from} → ${change.to}`);
    for (const change of pool.readdressed) lines.push(`  ~ ${change.id}: address ${change.from} → ${change.to} (keeps its keys)`);
    for (const change of pool.stateChanged) {
      lines.push(`  ~ ${change.id}: state ${change.from} → ${change.to} (eligibility only; no table change)`);
    }
    for (const setting of pool.settings) lines.push(`  ~ ${formatSetting(setting)}`);
    // Slot capacity is internal; only growth (more backends than free slots) is worth a line.
    if (pool.capacity !== null && pool.capacity.to > pool.capacity.from) lines.push(`  ~ slot capacity: ${pool.capacity.from} → ${pool.capacity.to} (more new backends than free slots)`);
  }

  const changedPools = plan.pools.filter((pool) => pool.action !== 'unchanged').length;
  lines.push(
    plan.changed
      ? `${changedPools} of ${plan.pools.length} ${plan.pools.length === 1 ? 'pool' : 'pools'} changed`
      : 'no change',
  );
  return lines.join('\n');
}

/**
 * `ringlb diff OLD.json NEW.json`: prints the plan without touching anything. Returns the exit
 * code: 0 (with or without changes), 2 when either config is invalid (all issues printed).
 */
export function runDiffCommand(oldPath: string, newPath: string, out: (text: string) => void, options: PlanOptions = {}): number {
  const oldResult = loadConfigFile(oldPath);
  const newResult = loadConfigFile(newPath);
  if (!oldResult.ok) out(formatIssues(oldResult.issues, oldPath));
  if (!newResult.ok) out(formatIssues(newResult.issues, newPath));
  if (!oldResult.ok || !newResult.ok) return 2;
  out(formatPlan(planReload(oldResult.config, newResult.config, options)));
  return 0;
}

/** `key: old → new`, values as JSON in full (`unset` for an absent key). */
export function formatSetting(change: SettingChange): string {
  if (change.from === REDACTED && change.to === REDACTED) return `${change.key}: changed (not shown)`;
  const when = change.appliesAfterRestart === true ? ' (applies after a restart; a reload keeps the running value)' : '';
  return `${change.key}: ${formatValue(change.from)} → ${formatValue(change.to)}${when}`;
}

function formatValue(value: unknown): string {
  return value === undefined ? 'unset' : JSON.stringify(value);
}

function poolHeadline(pool: PoolPlan): string {
  const build = pool.buildMs === null ? '' : `, built in ${pool.buildMs.toFixed(2)} ms`;
  switch (pool.action) {
    case 'add':
      return `added with ${pool.added.length} ${plural(pool.added.length, 'backend')}${build}`;
    case 'remove':
      return `removed (its listeners must go too; connections drain)`;
    case 'unchanged':
      return 'no change';
    case 'update': {
      const note = pool.ignoredSettings.length === 0 ? '' : `; ${pool.reason}`;
      if (!pool.rebuild) return `changed, tables untouched (0% of keys move)${note}`;
      return `rebuild${build}, ${movedText(pool)}${note}`;
    }
    case 'replace':
      return `rebuilt in place (${pool.reason})${build}, ${movedText(pool)}; connections stay unless their backend left`;
  }
}

/** Hash policies map keys; the others spread connections by weight (reload-plan.ts "Moved share"). */
function movedText(pool: PoolPlan): string {
  const share = formatPercent(pool.movedShare ?? 0);
  if (pool.movedMeasure === 'affinity') return `client affinity starts over: every client is placed anew (${share})`;
  return pool.movedMeasure === 'keys' ? `${share} of the key space moves` : `${share} of the traffic share shifts`;
}

function plural(count: number, word: string): string {
  return count === 1 ? word : `${word}s`;
}

function describeBackend(backend: { id: string; address: string; weight: number }): string {
  const name = backend.id === backend.address ? backend.id : `${backend.id} (${backend.address})`;
  return `${name} weight ${backend.weight}`;
}

function describeListener(listener: ListenerConfig): string {
  return `${listener.bind.text} → pool ${listener.pool}`;
}
