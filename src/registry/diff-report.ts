/**
 * The disruption report: what a config change does, per pool, before (or as) it is applied.
 * `ringlb diff OLD.json NEW.json` prints it; a reload logs the same per-pool facts.
 *
 * The share of the key space that moves is not estimated: it is computed by the core itself. A
 * balancer is built with the old backend set, then given the new set; the core compares the old
 * and new tables (maglev entry by entry, ring_hash over the 2^32 circle, weighted policies as the
 * total variation distance of weight shares — docs/core.md "Moved share") and reports it in
 * `RebuildReport.movedShare`, along with the build time. Because tables depend only on ids and
 * weights (never on list order), a reordered list reports 0 and "no change".
 *
 * Backend `state` (active/drain/maint) and health never enter the tables: a state change is listed
 * but moves no table entry (its keys go elsewhere only while it is ineligible).
 */
import type { Backend, BackendState } from '../backend.js';
import type { BalancerImplementation } from '../core/index.js';
import { createBalancer } from '../core/index.js';
import { formatIssues, loadConfigFile } from '../config/load.js';
import type { ListenerConfig, PoolConfig, RinglbConfig } from '../config/types.js';
import type { BalancePolicy, BalancerOptions } from '../core/types.js';

export interface BackendSummary {
  readonly id: string;
  readonly address: string;
  readonly weight: number;
}

export interface ValueChange<T> {
  readonly id: string;
  readonly from: T;
  readonly to: T;
}

export interface PoolDiff {
  readonly name: string;
  /** `added`/`removed`: the whole pool; `changed`: anything differs; `unchanged`: nothing does. */
  readonly kind: 'added' | 'removed' | 'changed' | 'unchanged';
  /** Policy of the new pool (the old one for a removed pool). */
  readonly balance: BalancePolicy;
  readonly added: readonly BackendSummary[];
  readonly removed: readonly BackendSummary[];
  readonly reweighted: readonly ValueChange<number>[];
  /** Same id, new address: the id keeps its keys (tables depend on ids), connections go to the new address. */
  readonly readdressed: readonly ValueChange<string>[];
  /** Eligibility only; no table entry moves. */
  readonly stateChanged: readonly ValueChange<BackendState>[];
  /** Other pool settings, as `key: old → new` lines (balance, hashKey, healthCheck, ...). */
  readonly settings: readonly string[];
  /** The pool's tables are (re)built: new pool, membership or weight change, policy or table parameters changed. */
  readonly rebuild: boolean;
  /**
   * Every key is re-placed regardless of membership: the policy, its table parameters or the hash
   * key changed, so old and new tables are not comparable entry by entry.
   */
  readonly fullRebuild: boolean;
  /** Wall time of the new table's build in ms (measured by the core); null when nothing is built. */
  readonly buildMs: number | null;
  /** Share 0..1 of the key space whose backend changes; null for an added or removed pool. */
  readonly movedShare: number | null;
}

export interface ListenerChange {
  readonly name: string;
  readonly changes: readonly string[];
}

export interface ConfigDiff {
  readonly listeners: {
    readonly added: readonly ListenerConfig[];
    readonly removed: readonly ListenerConfig[];
    readonly changed: readonly ListenerChange[];
  };
  /** Pools of the new config in its order, then removed pools. */
  readonly pools: readonly PoolDiff[];
  /** Top-level settings (`log.level`, `drainTimeoutMs`, and any the lead adds). */
  readonly settings: readonly string[];
  readonly changed: boolean;
}

export interface DiffOptions {
  /** The core the tables are built in; default the WASM core (what ringlb runs). */
  readonly implementation?: BalancerImplementation;
}

/** Pool keys compared by the backend diff or the table parameters; everything else is a "setting". */
const TABLE_KEYS = new Set(['name', 'backends', 'balance', 'ringHash', 'maglev']);
const HASH_POLICIES: ReadonlySet<BalancePolicy> = new Set(['ring_hash', 'maglev']);

export function diffPools(oldPool: PoolConfig | undefined, newPool: PoolConfig | undefined, options: DiffOptions = {}): PoolDiff {
  if (oldPool === undefined && newPool === undefined) throw new TypeError('diffPools needs at least one pool');
  if (oldPool === undefined || newPool === undefined) {
    const pool = (newPool ?? oldPool) as PoolConfig;
    const isAdded = newPool !== undefined;
    const backends = pool.backends.map(summary);
    return {
      name: pool.name,
      kind: isAdded ? 'added' : 'removed',
      balance: pool.balance,
      added: isAdded ? backends : [],
      removed: isAdded ? [] : backends,
      reweighted: [],
      readdressed: [],
      stateChanged: [],
      settings: [],
      rebuild: isAdded,
      fullRebuild: false,
      buildMs: isAdded ? buildOnce(pool, options) : null,
      movedShare: null,
    };
  }

  const before = new Map(oldPool.backends.map((backend) => [backend.id, backend]));
  const after = new Map(newPool.backends.map((backend) => [backend.id, backend]));
  const added = newPool.backends.filter((backend) => !before.has(backend.id)).map(summary);
  const removed = oldPool.backends.filter((backend) => !after.has(backend.id)).map(summary);
  const reweighted: ValueChange<number>[] = [];
  const readdressed: ValueChange<string>[] = [];
  const stateChanged: ValueChange<BackendState>[] = [];
  for (const next of newPool.backends) {
    const previous = before.get(next.id);
    if (previous === undefined) continue;
    if (previous.weight !== next.weight) reweighted.push({ id: next.id, from: previous.weight, to: next.weight });
    if (previous.address.text !== next.address.text) {
      readdressed.push({ id: next.id, from: previous.address.text, to: next.address.text });
    }
    if (previous.state !== next.state) stateChanged.push({ id: next.id, from: previous.state, to: next.state });
  }

  const settings = settingChanges(oldPool, newPool);
  const hashPolicy = HASH_POLICIES.has(newPool.balance);
  const fullRebuild =
    oldPool.balance !== newPool.balance ||
    (newPool.balance === 'ring_hash' && oldPool.ringHash.pointsPerWeight !== newPool.ringHash.pointsPerWeight) ||
    (newPool.balance === 'maglev' && oldPool.maglev.tableSize !== newPool.maglev.tableSize) ||
    // Another hash key hashes every client differently: all keys land somewhere new.
    (hashPolicy && oldPool.hashKey !== newPool.hashKey);
  if (oldPool.balance !== newPool.balance) settings.unshift(`balance: ${oldPool.balance} → ${newPool.balance}`);
  if (oldPool.ringHash.pointsPerWeight !== newPool.ringHash.pointsPerWeight) {
    settings.push(`ringHash.pointsPerWeight: ${oldPool.ringHash.pointsPerWeight} → ${newPool.ringHash.pointsPerWeight}`);
  }
  if (oldPool.maglev.tableSize !== newPool.maglev.tableSize) {
    settings.push(`maglev.tableSize: ${oldPool.maglev.tableSize} → ${newPool.maglev.tableSize}`);
  }

  let buildMs: number | null;
  let movedShare: number;
  let rebuild: boolean;
  if (fullRebuild) {
    buildMs = buildOnce(newPool, options);
    movedShare = 1;
    rebuild = true;
  } else {
    const balancer = createBalancer(balancerOptions(newPool, oldPool.backends.length + newPool.backends.length), options.implementation);
    balancer.setBackends(oldPool.backends);
    const report = balancer.setBackends(newPool.backends);
    rebuild = report.changed;
    buildMs = report.changed ? report.buildMs : null;
    movedShare = report.changed ? report.movedShare : 0;
  }

  // List order is not meaningful (ARCHITECTURE "Determinism"): a reordered list is unchanged.
  const changed =
    rebuild ||
    added.length + removed.length + reweighted.length + readdressed.length + stateChanged.length + settings.length > 0;
  return {
    name: newPool.name,
    kind: changed ? 'changed' : 'unchanged',
    balance: newPool.balance,
    added,
    removed,
    reweighted,
    readdressed,
    stateChanged,
    settings,
    rebuild,
    fullRebuild,
    buildMs,
    movedShare,
  };
}

export function diffConfigs(oldConfig: RinglbConfig, newConfig: RinglbConfig, options: DiffOptions = {}): ConfigDiff {
  const oldListeners = new Map(oldConfig.listeners.map((listener) => [listener.name, listener]));
  const newListeners = new Map(newConfig.listeners.map((listener) => [listener.name, listener]));
  const changedListeners: ListenerChange[] = [];
  for (const next of newConfig.listeners) {
    const previous = oldListeners.get(next.name);
    if (previous === undefined) continue;
    const changes = objectChanges(previous, next, new Set(['name']));
    if (changes.length > 0) changedListeners.push({ name: next.name, changes });
  }
  const listeners = {
    added: newConfig.listeners.filter((listener) => !oldListeners.has(listener.name)),
    removed: oldConfig.listeners.filter((listener) => !newListeners.has(listener.name)),
    changed: changedListeners,
  };

  const oldPools = new Map(oldConfig.pools.map((pool) => [pool.name, pool]));
  const newNames = new Set(newConfig.pools.map((pool) => pool.name));
  const pools = [
    ...newConfig.pools.map((pool) => diffPools(oldPools.get(pool.name), pool, options)),
    ...oldConfig.pools.filter((pool) => !newNames.has(pool.name)).map((pool) => diffPools(pool, undefined, options)),
  ];
  const settings = objectChanges(oldConfig, newConfig, new Set(['listeners', 'pools']));
  const changed =
    listeners.added.length + listeners.removed.length + listeners.changed.length + settings.length > 0 ||
    pools.some((pool) => pool.kind !== 'unchanged');
  return { listeners, pools, settings, changed };
}

/** The report as text: one block per pool, listeners and global settings first. No trailing newline. */
export function formatDiff(diff: ConfigDiff): string {
  const lines: string[] = [];
  for (const listener of diff.listeners.added) lines.push(`listener ${listener.name}: added (${describeListener(listener)})`);
  for (const listener of diff.listeners.removed) {
    lines.push(`listener ${listener.name}: removed (stops accepting; its connections drain)`);
  }
  for (const listener of diff.listeners.changed) lines.push(`listener ${listener.name}: ${listener.changes.join('; ')}`);
  for (const setting of diff.settings) lines.push(`config: ${setting}`);

  for (const pool of diff.pools) {
    lines.push(`pool ${pool.name} (${pool.balance}): ${poolHeadline(pool)}`);
    for (const backend of pool.added) lines.push(`  + ${describeBackend(backend)}`);
    for (const backend of pool.removed) {
      lines.push(`  - ${describeBackend(backend)}${pool.kind === 'removed' ? '' : ' (drains)'}`);
    }
    for (const change of pool.reweighted) lines.push(`  ~ ${change.id}: weight ${change.from} → ${change.to}`);
    for (const change of pool.readdressed) lines.push(`  ~ ${change.id}: address ${change.from} → ${change.to} (keeps its keys)`);
    for (const change of pool.stateChanged) {
      lines.push(`  ~ ${change.id}: state ${change.from} → ${change.to} (eligibility only; no table change)`);
    }
    for (const setting of pool.settings) lines.push(`  ~ ${setting}`);
  }

  const changedPools = diff.pools.filter((pool) => pool.kind !== 'unchanged').length;
  lines.push(
    diff.changed
      ? `${changedPools} of ${diff.pools.length} ${diff.pools.length === 1 ? 'pool' : 'pools'} changed`
      : 'no change',
  );
  return lines.join('\n');
}

/**
 * `ringlb diff OLD.json NEW.json`: prints the report without touching anything. Returns the exit
 * code: 0 (with or without changes), 2 when either config is invalid (all issues printed).
 */
export function runDiffCommand(oldPath: string, newPath: string, out: (text: string) => void, options: DiffOptions = {}): number {
  const oldResult = loadConfigFile(oldPath);
  const newResult = loadConfigFile(newPath);
  if (!oldResult.ok) out(formatIssues(oldResult.issues, oldPath));
  if (!newResult.ok) out(formatIssues(newResult.issues, newPath));
  if (!oldResult.ok || !newResult.ok) return 2;
  out(formatDiff(diffConfigs(oldResult.config, newResult.config, options)));
  return 0;
}

function poolHeadline(pool: PoolDiff): string {
  const build = pool.buildMs === null ? '' : `, built in ${pool.buildMs.toFixed(2)} ms`;
  switch (pool.kind) {
    case 'added':
      return `added with ${pool.added.length} ${plural(pool.added.length, 'backend')}${build}`;
    case 'removed':
      return `removed (its listeners must go too; connections drain)`;
    case 'unchanged':
      return 'no change';
    case 'changed': {
      if (!pool.rebuild) return 'changed, tables untouched (0% of keys move)';
      // Hash policies map keys; the others spread connections by weight (docs/core.md "Moved share").
      const moved = HASH_POLICIES.has(pool.balance)
        ? `${formatPercent(pool.movedShare ?? 0)} of the key space moves`
        : `${formatPercent(pool.movedShare ?? 0)} of the traffic share shifts`;
      return pool.fullRebuild ? `full rebuild${build}: every key is re-placed (100%)` : `rebuild${build}, ${moved}`;
    }
  }
}

function formatPercent(share: number): string {
  const percent = share * 100;
  if (percent === 0) return '0%';
  if (percent < 0.01) return '<0.01%';
  return `${percent.toFixed(2)}%`;
}

function plural(count: number, word: string): string {
  return count === 1 ? word : `${word}s`;
}

function summary(backend: Backend): BackendSummary {
  return { id: backend.id, address: backend.address.text, weight: backend.weight };
}

function describeBackend(backend: BackendSummary): string {
  const name = backend.id === backend.address ? backend.id : `${backend.id} (${backend.address})`;
  return `${name} weight ${backend.weight}`;
}

function describeListener(listener: ListenerConfig): string {
  return `${listener.bind.text} → pool ${listener.pool}`;
}

/** Builds the pool's tables once in the core and returns the build time (ms). */
function buildOnce(pool: PoolConfig, options: DiffOptions): number {
  const balancer = createBalancer(balancerOptions(pool, pool.backends.length), options.implementation);
  return balancer.setBackends(pool.backends).buildMs;
}

/**
 * Slot capacity: old and new sets together (a removed backend's slot is not reused within the same
 * setBackends), at least 1, and for maglev at most the table size (the core requires it).
 */
function balancerOptions(pool: PoolConfig, slotsNeeded: number): BalancerOptions {
  let maxBackends = Math.max(1, slotsNeeded);
  if (pool.balance === 'maglev') maxBackends = Math.min(maxBackends, pool.maglev.tableSize);
  return {
    policy: pool.balance,
    ringPointsPerWeight: pool.ringHash.pointsPerWeight,
    maglevTableSize: pool.maglev.tableSize,
    maxBackends,
  };
}

function settingChanges(oldPool: PoolConfig, newPool: PoolConfig): string[] {
  return objectChanges(oldPool, newPool, TABLE_KEYS);
}

/**
 * `key: old → new` for every top-level key (except `skip`) whose value differs. Compared as JSON
 * (host:port objects by their text) so that keys added to the config types later are covered too.
 */
function objectChanges(before: object, after: object, skip: ReadonlySet<string>): string[] {
  const a = before as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((key) => !skip.has(key));
  const changes: string[] = [];
  for (const key of keys) {
    const from = toJson(a[key]);
    const to = toJson(b[key]);
    if (from !== to) changes.push(`${key}: ${shorten(from)} → ${shorten(to)}`);
  }
  return changes;
}

function toJson(value: unknown): string {
  if (value === undefined) return 'unset';
  return JSON.stringify(value, (_key, inner: unknown) => {
    if (inner instanceof Uint8Array) return Buffer.from(inner).toString('hex');
    // HostPort: show it as written.
    if (typeof inner === 'object' && inner !== null && 'text' in inner && 'port' in inner && 'host' in inner) {
      return (inner as { text: string }).text;
    }
    return inner;
  });
}

function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
