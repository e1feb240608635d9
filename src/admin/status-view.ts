/**
 * The status of a running pool as `GET /v1/status` shows it, read from the facts' owners: the set
 * and table from the pool, flags, last check, ejections and slow start from its health owner,
 * overrides and configured weights from the runtime, traffic totals from the `TrafficView`
 * (summed from shared counters at read time: reading never messages a worker). Reads only.
 */
import type { Backend } from '../backend.js';
import { histogramQuantile, type TrafficView } from '../metrics/traffic-view.js';
import type { BackendPool, TableRebuild } from '../proxy/backend-pool.js';
import type { BackendOverride } from '../registry/backend-overrides.js';
import type { BackendStatusWord, OverrideView, StatusBackendView, StatusPoolView, TableView } from './api.js';
import { tableOwnership, type TableOwnership } from './table-ownership.js';

/** What a pool's status needs besides the pool. */
export interface PoolStatusSources {
  /** The set the pool's source reports (weights before admin overrides). */
  readonly configured: readonly Backend[];
  readonly overrideOf: (id: string) => BackendOverride | undefined;
  readonly traffic: TrafficView | undefined;
}

/** A backend the health owner does not track (cannot happen for a backend of the current set). */
const NOT_TRACKED = { healthy: false, flags: [] as readonly string[], routable: false } as const;

/**
 * Ownership per pool, kept until its tables change: a dashboard polls the status every few
 * seconds, and reading a 65,537-entry table each time would cost ~1 ms per pool on the main
 * thread. The key is the pool's `lastRebuild` record, which the pool replaces on every table
 * change after its first build (a state-only change keeps the tables, and the record).
 */
const ownershipCache = new WeakMap<BackendPool, { readonly key: TableRebuild | null; readonly ownership: TableOwnership | null }>();

function ownershipOf(pool: BackendPool): TableOwnership | null {
  const key = pool.lastRebuild;
  const cached = ownershipCache.get(pool);
  if (cached !== undefined && cached.key === key) return cached.ownership;
  const ownership = tableOwnership(pool.policy, pool.tableSnapshot(), (slot) => pool.idOf(slot));
  ownershipCache.set(pool, { key, ownership });
  return ownership;
}

export function poolStatus(pool: BackendPool, sources: PoolStatusSources): StatusPoolView {
  const ownership = ownershipOf(pool);
  const configured = new Map(sources.configured.map((backend) => [backend.id, backend]));
  const lastRebuild = pool.lastRebuild;
  return {
    name: pool.name,
    balance: pool.policy,
    panic: pool.health.panic,
    tableSize: tableSizeOf(pool, ownership),
    // Rounded as the planner rounds it: the core sums per slot, and the last float bits depend on slot order.
    lastRebuild: lastRebuild === null ? null : { at: new Date(lastRebuild.at).toISOString(), movedShare: Math.round(lastRebuild.movedShare * 1e12) / 1e12 },
    backends: pool.backends.map((backend) => backendStatus(pool, backend, configured.get(backend.id), sources, ownership)),
  };
}

/** One backend, as in `poolStatus` (the PATCH answer); undefined when the pool has no such id. */
export function backendStatusOf(pool: BackendPool, id: string, sources: PoolStatusSources): StatusBackendView | undefined {
  const backend = pool.backends.find((candidate) => candidate.id === id);
  if (backend === undefined) return undefined;
  const ownership = ownershipOf(pool);
  return backendStatus(pool, backend, sources.configured.find((candidate) => candidate.id === id), sources, ownership);
}

/** Ownership per backend and the strip (maglev) or ring arcs; null for a policy without a table. */
export function tableView(pool: BackendPool): TableView | null {
  const ownership = ownershipOf(pool);
  if (ownership === null) return null;
  const countKey = pool.policy === 'maglev' ? 'entries' : 'points';
  const ids = pool.backends.map((backend) => backend.id).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    pool: pool.name,
    balance: pool.policy,
    size: tableSizeOf(pool, ownership)!,
    backends: ids.map((id) => {
      const owner = ownership.owners.get(id);
      return { id, share: owner?.share ?? 0, [countKey]: owner?.count ?? 0 };
    }),
    [pool.policy === 'maglev' ? 'strip' : 'ring']: ownership.runs,
    truncated: ownership.truncated,
  };
}

function tableSizeOf(pool: BackendPool, ownership: TableOwnership | null): number | null {
  if (ownership === null) return null;
  // An empty maglev pool has no table yet, but its M is known.
  return pool.policy === 'maglev' ? pool.config.maglev.tableSize : ownership.size;
}

function backendStatus(
  pool: BackendPool,
  backend: Backend,
  configured: Backend | undefined,
  sources: PoolStatusSources,
  ownership: TableOwnership | null,
): StatusBackendView {
  const slot = pool.slotOf(backend.id);
  const health = pool.health.backendStatus(backend.id) ?? NOT_TRACKED;
  const detail = pool.health.backendDetail(backend.id);
  const traffic = sources.traffic?.backend(pool.name, backend.id);
  const histogram = traffic?.connectSeconds;
  const override = sources.overrideOf(backend.id);
  return {
    id: backend.id,
    address: backend.address.text,
    weight: backend.weight,
    configuredWeight: configured?.weight ?? backend.weight,
    state: backend.state,
    override: override === undefined ? null : overrideView(override),
    status: statusWord(backend, health),
    healthy: health.healthy,
    routable: health.routable,
    flags: health.flags,
    lastCheck:
      detail?.lastCheck == null
        ? null
        : {
            ok: detail.lastCheck.ok,
            at: new Date(detail.lastCheck.at).toISOString(),
            durationMs: Math.round(detail.lastCheck.durationMs * 1000) / 1000,
            reason: detail.lastCheck.reason,
          },
    activeConnections: slot >= 0 ? pool.activeConnections(slot) : 0,
    totalConnections: traffic?.connections ?? 0,
    connectSeconds:
      histogram === undefined || histogram.count === 0
        ? null
        : { p50: histogramQuantile(histogram, 0.5), p90: histogramQuantile(histogram, 0.9), p99: histogramQuantile(histogram, 0.99) },
    // The pool's count (also `ringlb_backend_ejections_total`): it outlives a health owner replaced by a settings reload.
    ejections: slot >= 0 ? pool.counters.ejectionsOf(slot) : 0,
    failures: { resets: traffic?.resets ?? 0, responseTimeouts: traffic?.responseTimeouts ?? 0 },
    queueDepth: slot >= 0 ? pool.queueDepth(slot) : 0,
    slowStartPercent: (detail?.weightScalePermille ?? 1000) / 10,
    keyShare: ownership === null ? null : (ownership.owners.get(backend.id)?.share ?? 0),
  };
}

/** Admin states first (an operator's decision outranks health), then pending, down, up. */
function statusWord(backend: Backend, health: { readonly healthy: boolean; readonly flags: readonly string[] }): BackendStatusWord {
  if (backend.state === 'maint') return 'maint';
  if (backend.state === 'drain') return 'drain';
  if (health.flags.includes('pending_first_check')) return 'pending';
  return health.healthy ? 'up' : 'down';
}

function overrideView(override: BackendOverride): OverrideView {
  return {
    ...(override.state !== undefined ? { state: override.state } : {}),
    ...(override.weight !== undefined ? { weight: override.weight } : {}),
    at: new Date(override.at).toISOString(),
  };
}
