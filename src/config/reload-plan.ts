/**
 * The reload planner: (current config, next config) → what a reload does, decided once.
 * `ringlb diff` prints this plan (config/plan-report.ts) and `Ringlb.reload` executes it
 * (runtime.ts), so what an operator previews is what happens (ARCHITECTURE.md "Preview and reload
 * are one plan"). Pure: no I/O, no clock besides the core's own build timer; it builds scratch
 * balancers to measure what moves.
 *
 * Per pool the action is:
 * - `add` / `remove`: the pool is new / gone.
 * - `replace`: a setting the pool's tables or key hashing are built from changed — `balance`; for
 *   the keyed policies (ring_hash, maglev) `hashKey`; for maglev `maglev.tableSize`; for ring_hash
 *   `ringHash.pointsPerWeight` — or the set outgrows the pool's free slots. The runtime rebuilds
 *   the pool's balancer in place (same slots, same health owner, same connections).
 * - `update`: anything else (other settings, membership, weights, states). A setting the policy
 *   ignores (maglev.tableSize on ring_hash, pointsPerWeight on maglev, hashKey on round_robin)
 *   lands here: it is listed, moves nothing, and rebuilds nothing.
 * - `unchanged`: the pool's config is identical (list order of backends included).
 *
 * Moved share (0..1) of a pool that stays:
 * - `update` of a keyed policy: computed by the core from the old and new tables entry by entry
 *   (RebuildReport.movedShare; docs/core.md "Moved share").
 * - `replace` where old or new policy is keyed: old and new tables are not comparable entry by
 *   entry, so both are built and SAMPLE_CLIENT_COUNT fixed sample clients (`sampleClients()`) are
 *   looked up in each, each with the key its pool's hashKey makes of it; the share is the fraction
 *   whose backend id differs. A non-keyed policy maps no client to a backend, so on a keyed ↔
 *   non-keyed change every client loses its home: 1.
 * - weighted (non-keyed) policies, `update` or `replace` between two of them: connections are not
 *   keyed, so the share is the traffic share that changes hands, ½ Σ |Δ weight share| (the core's
 *   measure for those policies).
 */
import { redactHeaderValues } from './alerts.js';
import { createBalancer, sourceKeyHash, xorshift32, type Balancer, type BalancePolicy, type BalancerImplementation, type BalancerOptions } from '../core/index.js';
import { KEYED_POLICIES } from '../core/types.js';
import type { Backend, BackendState } from '../backend.js';
import type { ListenerConfig, PoolConfig, RinglbConfig } from './types.js';

/** Clients sampled to measure what moves on a replace: 10,000 keep the error under ±1.5 % (3σ). */
export const SAMPLE_CLIENT_COUNT = 10_000;
/** Seed of the sample clients' xorshift32 sequence; fixed so preview, reload and tests agree. */
const SAMPLE_SEED = 0x5eed_0001;

export interface SampleClient {
  readonly ip: string;
  readonly port: number;
}

let samples: readonly SampleClient[] | null = null;

/**
 * The fixed sample: client i has IPv4 address and port from the xorshift32 sequence seeded with
 * SAMPLE_SEED (two draws per client). Built once per process.
 */
export function sampleClients(): readonly SampleClient[] {
  if (samples !== null) return samples;
  const out: SampleClient[] = [];
  let state = SAMPLE_SEED;
  for (let i = 0; i < SAMPLE_CLIENT_COUNT; i++) {
    state = xorshift32(state);
    const address = state;
    state = xorshift32(state);
    out.push({ ip: `${address >>> 24}.${(address >>> 16) & 255}.${(address >>> 8) & 255}.${address & 255}`, port: 1024 + (state % 64512) });
  }
  samples = out;
  return out;
}

/** One changed setting, by its full path inside its object (`healthCheck.rise`), with whole values. */
export interface SettingChange {
  readonly key: string;
  /** JSON-shaped (host:port as text, bytes as hex); undefined when the key is absent on that side. */
  readonly from: unknown;
  readonly to: unknown;
  /** Set (true) on a top-level setting read only at start (SETTINGS_READ_AT_START): a reload keeps the old value. */
  readonly appliesAfterRestart?: true;
}

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

export type PoolAction = 'add' | 'remove' | 'replace' | 'update' | 'unchanged';

export interface PoolPlan {
  readonly name: string;
  readonly action: PoolAction;
  /** Why this action, in words (`balance changed`, `maglev.tableSize is ignored by ring_hash`). */
  readonly reason: string;
  /** Changed settings the policy does not use (`maglev.tableSize` under ring_hash): they change nothing. */
  readonly ignoredSettings: readonly string[];
  /** Policy of the new pool (the old one for a removed pool). */
  readonly balance: BalancePolicy;
  readonly added: readonly BackendSummary[];
  readonly removed: readonly BackendSummary[];
  readonly reweighted: readonly ValueChange<number>[];
  /** Same id, new address: the id keeps its keys (tables depend on ids); new connections go to the new address. */
  readonly readdressed: readonly ValueChange<string>[];
  /** Eligibility only; no table entry moves. */
  readonly stateChanged: readonly ValueChange<BackendState>[];
  /** Every other changed pool setting, including the table settings. */
  readonly settings: readonly SettingChange[];
  /** The pool's discovery changed: its source restarts. */
  readonly discoveryChanged: boolean;
  /** The backend set the pool runs with after the reload (for a discovery pool: its live set). */
  readonly backends: readonly Backend[];
  /** Slot capacity before → after; differs only for a pool that grows. null for add/remove. */
  readonly capacity: { readonly from: number; readonly to: number } | null;
  /** Tables are (re)built. */
  readonly rebuild: boolean;
  /** Wall time of the new table's build in ms (measured by the core); null when nothing is built. */
  readonly buildMs: number | null;
  /** Share 0..1 that moves (module comment); null for an added or removed pool. */
  readonly movedShare: number | null;
  /**
   * What `movedShare` counts: `keys` (keyed policies), `traffic` (weight share of the others), or
   * `affinity` (keyed ↔ non-keyed: every client loses or gains its fixed backend; always 1).
   */
  readonly movedMeasure: MovedMeasure;
}

export type MovedMeasure = 'keys' | 'traffic' | 'affinity';

export interface ListenerPlan {
  readonly name: string;
  readonly config: ListenerConfig;
  readonly changes: readonly SettingChange[];
}

export interface ReloadPlan {
  readonly listeners: {
    readonly added: readonly ListenerConfig[];
    readonly removed: readonly ListenerConfig[];
    /** The bind changed: a new socket takes over, the old one drains. */
    readonly rebound: readonly ListenerPlan[];
    /** Pool, limits or timeouts changed: applied in place. */
    readonly updated: readonly ListenerPlan[];
  };
  /** Pools of the next config in its order, then removed pools. */
  readonly pools: readonly PoolPlan[];
  /** Top-level settings (`drainTimeoutMs`, `admin.bind`, `admin.token` redacted; `workers` and `log.level` apply after a restart). */
  readonly settings: readonly SettingChange[];
  readonly changed: boolean;
}

/** What the running process knows about a pool that its config does not say. */
export interface LivePool {
  /** The set the pool runs with now (a discovery pool's config lists none). */
  readonly backends: readonly Backend[];
  readonly capacity: number;
  /** Slots a new backend may take now: not occupied, not held by draining connections. */
  readonly freeSlots: number;
}

export interface PlanOptions {
  /** The core the scratch tables are built in; default the WASM core (what ringlb runs). */
  readonly implementation?: BalancerImplementation;
  /** Live facts of a running pool; absent (ringlb diff) → derived from the current config. */
  readonly live?: (pool: string) => LivePool | undefined;
}

/**
 * Top-level settings the process reads once at start. `workers`: the number of data-plane
 * workers is fixed for the process's life; a reload changes what they serve, not how many run.
 * `log.level`: pino child loggers keep the level they were created with (runtime.ts warns on reload).
 */
export const SETTINGS_READ_AT_START: ReadonlySet<string> = new Set(['workers', 'log.level']);

/** What a secret (`admin.token`) shows as in a plan. */
export const REDACTED = '<redacted>';

export function planReload(current: RinglbConfig, next: RinglbConfig, options: PlanOptions = {}): ReloadPlan {
  const listeners = planListeners(current.listeners, next.listeners);
  const currentPools = new Map(current.pools.map((pool) => [pool.name, pool]));
  const nextNames = new Set(next.pools.map((pool) => pool.name));
  const pools = [
    ...next.pools.map((pool) => planPool(currentPools.get(pool.name), pool, options)),
    ...current.pools.filter((pool) => !nextNames.has(pool.name)).map((pool) => planPool(pool, undefined, options)),
  ];
  const settings = settingChanges(current, next, new Set(['listeners', 'pools'])).map(redact).map(markReadAtStart);
  const changed =
    listeners.added.length + listeners.removed.length + listeners.rebound.length + listeners.updated.length + settings.length > 0 ||
    pools.some((pool) => pool.action !== 'unchanged');
  return { listeners, pools, settings, changed };
}

/**
 * Slot capacity of a pool's balancer. Fixed for the balancer's life, so leave room for backends
 * added later (reload, discovery); a pool that starts larger gets twice its size. A set that
 * outgrows it anyway gets its balancer rebuilt in place with more slots (`prepareRebuild`).
 */
export const MIN_SLOT_CAPACITY = 256;

/** Capacity a pool needs for `backends` backends: room to double, bounded by maglev's table. */
export function slotCapacity(config: PoolConfig, backends: number = config.backends.length): number {
  const wanted = Math.max(MIN_SLOT_CAPACITY, backends * 2);
  // Every Maglev slot must be able to own a table entry, so a small (test) table caps the slots.
  return config.balance === 'maglev' ? Math.min(wanted, config.maglev.tableSize) : wanted;
}

/** Options of the balancer a pool with `config` and `capacity` slots runs. */
export function balancerOptionsOf(config: PoolConfig, capacity: number): BalancerOptions {
  return {
    policy: config.balance,
    ringPointsPerWeight: config.ringHash.pointsPerWeight,
    maglevTableSize: config.maglev.tableSize,
    maxBackends: capacity,
  };
}

/**
 * The table settings that changed and that the new policy reads, in words; empty when the pool's
 * tables and key hashing can stay.
 */
export function tableSettingReasons(before: PoolConfig, after: PoolConfig): string[] {
  const reasons: string[] = [];
  if (before.balance !== after.balance) reasons.push(`balance ${before.balance} → ${after.balance}`);
  else {
    if (KEYED_POLICIES.has(after.balance) && before.hashKey !== after.hashKey) reasons.push('hashKey changed: every client hashes anew');
    if (after.balance === 'maglev' && before.maglev.tableSize !== after.maglev.tableSize) reasons.push('maglev.tableSize changed');
    if (after.balance === 'ring_hash' && before.ringHash.pointsPerWeight !== after.ringHash.pointsPerWeight) {
      reasons.push('ringHash.pointsPerWeight changed');
    }
  }
  return reasons;
}

function ignoredSettings(before: PoolConfig, after: PoolConfig): string[] {
  if (before.balance !== after.balance) return [];
  const ignored: string[] = [];
  if (!KEYED_POLICIES.has(after.balance) && before.hashKey !== after.hashKey) ignored.push('hashKey');
  if (!KEYED_POLICIES.has(after.balance) && before.hashBalanceFactor !== after.hashBalanceFactor) ignored.push('hashBalanceFactor');
  if (after.balance !== 'maglev' && before.maglev.tableSize !== after.maglev.tableSize) ignored.push('maglev.tableSize');
  if (after.balance !== 'ring_hash' && before.ringHash.pointsPerWeight !== after.ringHash.pointsPerWeight) ignored.push('ringHash.pointsPerWeight');
  return ignored;
}

function planPool(before: PoolConfig | undefined, after: PoolConfig | undefined, options: PlanOptions): PoolPlan {
  if (before === undefined && after === undefined) throw new TypeError('planPool needs at least one pool');
  if (before === undefined || after === undefined) return planAddOrRemove(before, after, options);

  const live = options.live?.(before.name);
  const oldSet = live?.backends ?? before.backends;
  const discoveryChanged = !sameJson(discoveryOf(before), discoveryOf(after));
  // A discovery pool keeps the set its source reported until the (new) source says otherwise.
  const newSet = discoveryOf(after).type === 'static' ? after.backends : oldSet;
  const diff = diffBackends(oldSet, newSet);
  const settings = settingChanges(before, after, new Set(['name', 'backends']));
  const capacity = live?.capacity ?? slotCapacity(before, oldSet.length);
  const freeSlots = live?.freeSlots ?? capacity - oldSet.length;
  const base = { name: after.name, balance: after.balance, ...diff, settings, discoveryChanged, backends: newSet, ignoredSettings: ignoredSettings(before, after) };

  // List order is not meaningful (ARCHITECTURE.md "Determinism"): a reordered list is unchanged.
  if (sameJson({ ...before, backends: [] }, { ...after, backends: [] }) && diff.added.length + diff.removed.length + diff.reweighted.length + diff.readdressed.length + diff.stateChanged.length === 0) {
    return { ...base, action: 'unchanged', reason: 'same config', capacity: null, rebuild: false, buildMs: null, movedShare: 0, movedMeasure: measureOf(after.balance) };
  }

  const reasons = tableSettingReasons(before, after);
  // Slots of removed backends are not reused by the same change (slot-table.ts), so added backends need free ones.
  const grows = diff.added.length > freeSlots;
  if (grows) reasons.push(`${diff.added.length} new backends, ${freeSlots} free slots: the pool grows`);
  if (reasons.length === 0) {
    const ignored = base.ignoredSettings;
    const measured = measureChange(before, after, oldSet, newSet, capacity, options);
    return {
      ...base,
      action: 'update',
      reason: ignored.length > 0 ? `${ignored.join(', ')} ${ignored.length === 1 ? 'is' : 'are'} ignored by ${after.balance}` : 'applied in place',
      capacity: null,
      ...measured,
      movedMeasure: measureOf(after.balance),
    };
  }
  const needed = oldSet.length + diff.added.length;
  let nextCapacity = Math.max(capacity, slotCapacity(after, needed));
  if (after.balance === 'maglev') nextCapacity = Math.min(nextCapacity, after.maglev.tableSize);
  const measured = measureChange(before, after, oldSet, newSet, nextCapacity, options);
  const tablesChange = tableSettingReasons(before, after).length > 0;
  return {
    ...base,
    action: 'replace',
    reason: reasons.join('; '),
    capacity: { from: capacity, to: nextCapacity },
    rebuild: true,
    buildMs: measured.buildMs,
    movedShare: measured.movedShare,
    movedMeasure:
      tablesChange && KEYED_POLICIES.has(before.balance) !== KEYED_POLICIES.has(after.balance) ? 'affinity' : measureOf(after.balance),
  };
}

/**
 * What changing a pool from (`before`, `oldSet`) to (`after`, `newSet`) moves (module comment):
 * the core's table comparison when the tables stay comparable, the sample clients when they do
 * not. `capacity` is the slot capacity of the pool after the change.
 */
export function measureChange(
  before: PoolConfig,
  after: PoolConfig,
  oldSet: readonly Backend[],
  newSet: readonly Backend[],
  capacity: number,
  options: Pick<PlanOptions, 'implementation'> = {},
): { rebuild: boolean; buildMs: number | null; movedShare: number } {
  if (tableSettingReasons(before, after).length === 0) return measureUpdate(after, oldSet, newSet, capacity, options);
  return { rebuild: true, ...measureReplace(before, after, oldSet, newSet, options) };
}

function planAddOrRemove(before: PoolConfig | undefined, after: PoolConfig | undefined, options: PlanOptions): PoolPlan {
  const pool = (after ?? before) as PoolConfig;
  const isAdded = after !== undefined;
  const backends = isAdded ? pool.backends : (options.live?.(pool.name)?.backends ?? pool.backends);
  const summaries = byId(backends.map(summary));
  return {
    name: pool.name,
    action: isAdded ? 'add' : 'remove',
    reason: isAdded ? 'new pool' : 'not in the new config',
    ignoredSettings: [],
    balance: pool.balance,
    added: isAdded ? summaries : [],
    removed: isAdded ? [] : summaries,
    reweighted: [],
    readdressed: [],
    stateChanged: [],
    settings: [],
    discoveryChanged: isAdded,
    backends: isAdded ? pool.backends : [],
    capacity: null,
    rebuild: isAdded,
    buildMs: isAdded ? buildInto(pool, pool.backends, slotCapacity(pool), options).report.buildMs : null,
    movedShare: null,
    movedMeasure: measureOf(pool.balance),
  };
}

function measureOf(policy: BalancePolicy): MovedMeasure {
  return KEYED_POLICIES.has(policy) ? 'keys' : 'traffic';
}

/** Same policy and table settings: the core compares old and new tables (or weight shares). */
function measureUpdate(
  pool: PoolConfig,
  oldSet: readonly Backend[],
  newSet: readonly Backend[],
  capacity: number,
  options: PlanOptions,
): { rebuild: boolean; buildMs: number | null; movedShare: number } {
  // Old and new ids together always fit (a removed backend's slot is not reused in the same call).
  let slots = Math.max(capacity, oldSet.length + newSet.length, 1);
  if (pool.balance === 'maglev') slots = Math.min(slots, pool.maglev.tableSize);
  const { balancer } = buildInto(pool, oldSet, slots, options);
  const report = balancer.setBackends(newSet.map(coreBackend));
  // Rounded: the core sums per slot, and slot order (so the last float bits) depends on set history.
  return { rebuild: report.changed, buildMs: report.changed ? report.buildMs : null, movedShare: report.changed ? roundShare(report.movedShare) : 0 };
}

function measureReplace(
  before: PoolConfig,
  after: PoolConfig,
  oldSet: readonly Backend[],
  newSet: readonly Backend[],
  options: PlanOptions,
): { buildMs: number; movedShare: number } {
  const oldKeyed = KEYED_POLICIES.has(before.balance);
  const newKeyed = KEYED_POLICIES.has(after.balance);
  const built = buildInto(after, newSet, Math.max(1, slotCapacity(after, newSet.length)), options);
  if (!oldKeyed && !newKeyed) {
    return { buildMs: built.report.buildMs, movedShare: roundShare(weightShareShift(oldSet, newSet)) };
  }
  if (oldKeyed !== newKeyed) return { buildMs: built.report.buildMs, movedShare: 1 };
  const old = buildInto(before, oldSet, Math.max(1, slotCapacity(before, oldSet.length)), options).balancer;
  const oldPort = before.hashKey === 'source_ip_port';
  const newPort = after.hashKey === 'source_ip_port';
  let moved = 0;
  for (const client of sampleClients()) {
    const from = homeId(old, sourceKeyHash(client.ip, client.port, oldPort));
    const to = homeId(built.balancer, sourceKeyHash(client.ip, client.port, newPort));
    if (from !== to) moved += 1;
  }
  return { buildMs: built.report.buildMs, movedShare: moved / SAMPLE_CLIENT_COUNT };
}

function roundShare(share: number): number {
  return Math.round(share * 1e12) / 1e12;
}

/** Backend id whose table entry a key lands on, ignoring health; undefined for an empty table. */
export function homeId(balancer: Balancer, keyHash: number): string | undefined {
  const slot = balancer.homeSlot(keyHash);
  return slot < 0 ? undefined : balancer.idOf(slot);
}

/** ½ Σ |Δ weight share| over the ids of both sets. */
export function weightShareShift(oldSet: readonly Backend[], newSet: readonly Backend[]): number {
  const total = (set: readonly Backend[]) => set.reduce((sum, b) => sum + b.weight, 0);
  const oldTotal = total(oldSet);
  const newTotal = total(newSet);
  if (oldTotal === 0 || newTotal === 0) return oldTotal === newTotal ? 0 : 1;
  const shares = new Map<string, number>();
  for (const b of oldSet) shares.set(b.id, b.weight / oldTotal);
  for (const b of newSet) shares.set(b.id, (shares.get(b.id) ?? 0) - b.weight / newTotal);
  let sum = 0;
  for (const delta of shares.values()) sum += Math.abs(delta);
  return sum / 2;
}

function buildInto(pool: PoolConfig, set: readonly Backend[], capacity: number, options: PlanOptions) {
  const balancer = createBalancer(balancerOptionsOf(pool, capacity), options.implementation);
  const report = balancer.setBackends(set.map(coreBackend));
  return { balancer, report };
}

function coreBackend(backend: Backend): { id: string; weight: number } {
  return { id: backend.id, weight: backend.weight };
}

function diffBackends(oldSet: readonly Backend[], newSet: readonly Backend[]) {
  const before = new Map(oldSet.map((backend) => [backend.id, backend]));
  const after = new Set(newSet.map((backend) => backend.id));
  const reweighted: ValueChange<number>[] = [];
  const readdressed: ValueChange<string>[] = [];
  const stateChanged: ValueChange<BackendState>[] = [];
  for (const next of newSet) {
    const previous = before.get(next.id);
    if (previous === undefined) continue;
    if (previous.weight !== next.weight) reweighted.push({ id: next.id, from: previous.weight, to: next.weight });
    if (previous.address.text !== next.address.text) readdressed.push({ id: next.id, from: previous.address.text, to: next.address.text });
    if (previous.state !== next.state) stateChanged.push({ id: next.id, from: previous.state, to: next.state });
  }
  // By id: the live set of a pool is in the registry's order, the config's in the file's.
  return {
    added: byId(newSet.filter((backend) => !before.has(backend.id)).map(summary)),
    removed: byId(oldSet.filter((backend) => !after.has(backend.id)).map(summary)),
    reweighted: byId(reweighted),
    readdressed: byId(readdressed),
    stateChanged: byId(stateChanged),
  };
}

function byId<T extends { readonly id: string }>(items: T[]): T[] {
  return items.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function planListeners(current: readonly ListenerConfig[], next: readonly ListenerConfig[]): ReloadPlan['listeners'] {
  const before = new Map(current.map((listener) => [listener.name, listener]));
  const nextNames = new Set(next.map((listener) => listener.name));
  const rebound: ListenerPlan[] = [];
  const updated: ListenerPlan[] = [];
  for (const listener of next) {
    const previous = before.get(listener.name);
    if (previous === undefined) continue;
    const changes = settingChanges(previous, listener, new Set(['name']));
    if (changes.length === 0) continue;
    (previous.bind.text !== listener.bind.text ? rebound : updated).push({ name: listener.name, config: listener, changes });
  }
  return {
    added: next.filter((listener) => !before.has(listener.name)),
    removed: current.filter((listener) => !nextNames.has(listener.name)),
    rebound,
    updated,
  };
}

/** Discovery of a pool, static when a hand-built config leaves it out. */
export function discoveryOf(pool: PoolConfig): NonNullable<PoolConfig['discovery']> {
  return pool.discovery ?? { type: 'static' };
}

function summary(backend: Backend): BackendSummary {
  return { id: backend.id, address: backend.address.text, weight: backend.weight };
}

function markReadAtStart(change: SettingChange): SettingChange {
  return SETTINGS_READ_AT_START.has(change.key) ? { ...change, appliesAfterRestart: true } : change;
}

function redact(change: SettingChange): SettingChange {
  // Alert webhook headers are secrets (Authorization): a plan shows that they changed, not their values.
  if (change.key === 'alerts' || change.key.startsWith('alerts.')) return { ...change, from: redactHeaderValues(change.from), to: redactHeaderValues(change.to) };
  if (!/(^|\.)token$/.test(change.key)) return change;
  return { key: change.key, from: change.from === undefined ? undefined : REDACTED, to: change.to === undefined ? undefined : REDACTED };
}

/**
 * Every changed leaf of two config objects, by full path (`healthCheck.http.path`), both values
 * whole. Plain objects are walked; a value that is an object on one side only (null → a health
 * check) or an array is one change with both values. Keys in `skip` are left out at the top.
 */
export function settingChanges(before: object, after: object, skip: ReadonlySet<string> = new Set()): SettingChange[] {
  const changes: SettingChange[] = [];
  walk(toPlain(before), toPlain(after), '', changes, skip);
  return changes;
}

function walk(a: unknown, b: unknown, prefix: string, out: SettingChange[], skip: ReadonlySet<string>): void {
  if (isRecord(a) && isRecord(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    for (const key of keys) {
      if (prefix === '' && skip.has(key)) continue;
      walk(a[key], b[key], prefix === '' ? key : `${prefix}.${key}`, out, skip);
    }
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ key: prefix, from: a, to: b });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Whether a pool needs a new health owner: its check, outlier, panic or slow-start settings
 * changed (BackendPool.reconfigure). Check bytes compare by content.
 */
export function healthSettingsChanged(before: PoolConfig, after: PoolConfig): boolean {
  return !sameJson(
    // sendProxyProtocol too: send_expect and http checks write its header first (pool-health.ts).
    [before.healthCheck, before.outlierDetection, before.panicThreshold, before.slowStartMs, before.sendProxyProtocol ?? null],
    [after.healthCheck, after.outlierDetection, after.panicThreshold, after.slowStartMs, after.sendProxyProtocol ?? null],
  );
}

/**
 * JSON replacer for config values, in the form a config file writes them, so a diff names config
 * keys and values a reader recognises: host:port as written, check bytes as text (or `{"hex"}` when
 * they are not printable UTF-8), a send_expect matcher as `"text"`, `{"hex"}` or `{"regex"}`.
 * Equal bytes compare equal whichever way the file wrote them.
 */
function configValueAsJson(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return bytesAsWritten(value);
  if (typeof value !== 'object' || value === null) return value;
  if ('text' in value && 'port' in value && 'host' in value) return (value as { text: string }).text;
  const matcher = value as { kind?: unknown; bytes?: unknown; source?: unknown };
  if (matcher.kind === 'substring' && matcher.bytes instanceof Uint8Array) return bytesAsWritten(matcher.bytes);
  if (matcher.kind === 'regex' && typeof matcher.source === 'string') return { regex: matcher.source };
  return value;
}

const PRINTABLE_TEXT = /^[\t\r\n\x20-\x7e\u00a0-\uffff]*$/;

function bytesAsWritten(bytes: Uint8Array): string | { hex: string } {
  const text = Buffer.from(bytes).toString('utf8');
  // Round-trips and prints: show it as the text a config would hold; otherwise as hex.
  if (PRINTABLE_TEXT.test(text) && Buffer.from(text, 'utf8').equals(bytes)) return text;
  return { hex: Buffer.from(bytes).toString('hex') };
}

/** Config values as JSON shapes (`configValueAsJson`), undefined keys dropped. */
function toPlain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, configValueAsJson)) as unknown;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(toPlain(a)) === JSON.stringify(toPlain(b));
}
