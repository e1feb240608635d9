/**
 * What the admin HTTP routes need from the running balancer. The runtime implements `AdminApi`;
 * the routes (src/admin/pool-routes.ts) only translate HTTP to these calls and back.
 *
 * One writer per fact (docs/ARCHITECTURE.md): the admin API never writes into a balancer. A
 * registration goes to the registration store, which emits the pool's new set to the registry
 * like any other discovery source; a lookup only reads.
 *
 * Every method may return a value or a promise (an etcd-backed implementation may need I/O).
 * Expected refusals are thrown as `AdminError` (status + message); anything else thrown is a bug,
 * answered with 500 and logged.
 */
import type { Backend, BackendSource, BackendState, HostPort } from '../backend.js';
import type { BalancePolicy } from '../core/types.js';

/**
 * Health and routing are separate facts: in panic a dead backend is `healthy: false` and
 * `routable: true` with `routableBecause: "panic"`.
 */
export interface BackendHealthView {
  /** No health or admin flag set: checks pass (or none are configured), not ejected, not pending, active. */
  readonly healthy: boolean;
  /**
   * One string per set flag: `failed_active_check`, `ejected_outlier`, `pending_first_check`,
   * `drain`, `maint`; empty when healthy.
   */
  readonly flags: readonly string[];
  /** New connections may go to it now. */
  readonly routable: boolean;
  /** `healthy`, or `panic` (unhealthy, but the pool is in panic and routes to it); null when not routable. */
  readonly routableBecause: 'healthy' | 'panic' | null;
}

export interface BackendView {
  readonly id: string;
  /** `host:port` as written (config) or registered. */
  readonly address: string;
  readonly weight: number;
  readonly state: BackendState;
  readonly health: BackendHealthView;
  readonly source: BackendSource;
  readonly activeConnections: number;
  /** Bounded load (hashBalanceFactor): connections sent elsewhere because this backend, their home, was full. */
  readonly spilled: number;
  /** Registrations: ms until the TTL expires (0 when due); null when the entry never expires or is not a registration. */
  readonly ttlRemainingMs: number | null;
}

export interface PoolView {
  readonly name: string;
  readonly balance: BalancePolicy;
  readonly source: BackendSource;
  /** Backends in the set. */
  readonly backends: number;
  /** How many are healthy (no flag set). */
  readonly healthy: number;
  /** How many take new connections now: the healthy ones, or in panic every `active` one. */
  readonly routable: number;
  /** The pool routes over unhealthy backends because too few are healthy (panicThreshold). */
  readonly panic: boolean;
}

/** A validated registration body (the route parsed the address and filled defaults). */
export interface RegistrationRequest {
  readonly address: HostPort;
  /** Integer 0..10000; default 1. */
  readonly weight: number;
  /** null = registered until deregistered (no heartbeat needed). */
  readonly ttlMs: number | null;
}

/** `created` → HTTP 201; `renewed` (the id was registered already; address/weight may have changed) → 200. */
export type RegisterOutcome = 'created' | 'renewed';

export interface LookupResult {
  readonly backendId: string;
  readonly address: string;
  /** Core slot of the backend (diagnostics). */
  readonly slot: number;
}

export type Awaitable<T> = T | Promise<T>;

// --- status and control (GET /v1/status, /v1/pools/{pool}/table, PATCH, preview, /v1/config) ---
// Times are ISO 8601 strings, durations ms unless the name says seconds, shares 0..1.

/** One word for a UI: `maint` and `drain` (admin) first, then `pending` (no check verdict yet), `down`, `up`. */
export type BackendStatusWord = 'up' | 'down' | 'drain' | 'maint' | 'pending';

/** A runtime (admin) override in force; a field it leaves to the config is absent. */
export interface OverrideView {
  readonly state?: BackendState;
  readonly weight?: number;
  /** When it was last changed. */
  readonly at: string;
}

export interface StatusBackendView {
  readonly id: string;
  readonly address: string;
  /** In force, an admin override included. */
  readonly weight: number;
  /** What the config or discovery says. */
  readonly configuredWeight: number;
  /** In force, an admin override included. */
  readonly state: BackendState;
  readonly override: OverrideView | null;
  readonly status: BackendStatusWord;
  readonly healthy: boolean;
  readonly routable: boolean;
  readonly flags: readonly string[];
  readonly lastCheck: { readonly ok: boolean; readonly at: string; readonly durationMs: number; readonly reason: string } | null;
  readonly activeConnections: number;
  /** From the TrafficView; 0 without one. */
  readonly totalConnections: number;
  /** From the TrafficView's connect-time histogram; null without one or before a connection. */
  readonly connectSeconds: { readonly p50: number | null; readonly p90: number | null; readonly p99: number | null } | null;
  readonly ejections: number;
  /** What outlier detection counted besides connect failures: established connections the backend reset, replies missing past responseTimeoutMs (TrafficView; 0 without one). */
  readonly failures: { readonly resets: number; readonly responseTimeouts: number };
  /** Connections waiting for a place on it now (maxConnectionsPerBackend), every thread's. */
  readonly queueDepth: number;
  /** Slow-start ramp in force, 100 when not ramping. */
  readonly slowStartPercent: number;
  /** Share of the table it owns (ring_hash, maglev); null for other policies. */
  readonly keyShare: number | null;
}

export interface StatusPoolView {
  readonly name: string;
  readonly balance: BalancePolicy;
  readonly panic: boolean;
  /** maglev M, ring points; null for policies without a table. */
  readonly tableSize: number | null;
  readonly lastRebuild: { readonly at: string; readonly movedShare: number } | null;
  readonly backends: readonly StatusBackendView[];
}

export interface StatusListenerView {
  readonly name: string;
  /** The bound address (the configured one before it is bound). */
  readonly bind: string;
  readonly pool: string;
  readonly activeConnections: number;
  /** Connections per access-log outcome, from the TrafficView; {} without one. */
  readonly connections: Readonly<Record<string, number>>;
}

export interface StatusView {
  readonly version: string;
  readonly pid: number;
  readonly startedAt: string;
  /** Data-plane threads: 1 when the main thread carries the connections. */
  readonly workers: number;
  readonly config: { readonly path: string | null; readonly loadedAt: string };
  readonly listeners: readonly StatusListenerView[];
  readonly pools: readonly StatusPoolView[];
}

export interface TableRunView {
  readonly start: number;
  readonly end: number;
  readonly backend: string;
}

/** `GET /v1/pools/{pool}/table`: `entries` and `strip` for maglev, `points` and `ring` for ring_hash. */
export interface TableView {
  readonly pool: string;
  readonly balance: BalancePolicy;
  readonly size: number;
  readonly backends: readonly { readonly id: string; readonly share: number; readonly entries?: number; readonly points?: number }[];
  readonly strip?: readonly TableRunView[];
  readonly ring?: readonly TableRunView[];
  /** More than MAX_TABLE_RUNS runs: only the first ones are listed. */
  readonly truncated: boolean;
}

/** A validated PATCH body: at least one field. */
export interface BackendChange {
  readonly state?: BackendState;
  readonly weight?: number;
}

/** Who asked, for the log line (`admin` and the client's address). */
export interface ChangeOrigin {
  readonly remoteAddress: string;
}

/** A validated preview body: a whole proposed set, or changes to the set in force. */
export type PreviewRequest =
  | { readonly kind: 'set'; readonly backends: readonly Backend[] }
  | { readonly kind: 'changes'; readonly weights: ReadonlyMap<string, number>; readonly remove: readonly string[] };

export interface PreviewResult {
  readonly pool: string;
  readonly balance: BalancePolicy;
  /** As `ringlb diff` computes it (config/reload-plan.ts measureChange). */
  readonly movedShare: number;
  readonly backends: readonly { readonly id: string; readonly before: number; readonly after: number; readonly gained: number; readonly lost: number }[];
}

export interface ConfigView {
  /** Absolute path of the file it was loaded from; null for a config an embedder passed in. */
  readonly path: string | null;
  readonly loadedAt: string;
  /** The config in force as JSON (addresses as `host:port` text), the admin token as `<redacted>`. */
  readonly config: unknown;
}

export interface AdminApi {
  listPools(): Awaitable<readonly PoolView[]>;
  /** Throws `AdminError.unknownPool` for a pool that does not exist. */
  listBackends(pool: string): Awaitable<readonly BackendView[]>;
  /** undefined when the pool exists but has no backend with that id (→ 404); throws for an unknown pool. */
  getBackend(pool: string, id: string): Awaitable<BackendView | undefined>;
  /**
   * Registers `id` or renews its TTL (heartbeat). Throws `AdminError.unknownPool`, or
   * `AdminError.conflict` when the pool does not use registration discovery, or when the store is full.
   */
  register(pool: string, id: string, request: RegistrationRequest): Awaitable<RegisterOutcome>;
  /**
   * Removes a registration; the backend drains (existing connections continue). False when the id is
   * not registered (→ 404). Throws like `register` for a pool without registration discovery.
   */
  deregister(pool: string, id: string): Awaitable<boolean>;
  /**
   * Which backend a new connection from `ip`:`port` would go to now, health considered. Must not
   * change any balancer state (no pick counters, no round-robin cursor): only hash policies answer;
   * other policies throw `AdminError.conflict`. null when no backend is eligible.
   */
  lookup(pool: string, ip: string, port: number): Awaitable<LookupResult | null>;
  /** Everything `GET /v1/status` shows. */
  status(): Awaitable<StatusView>;
  /** Throws `AdminError.unknownPool`, or `AdminError.conflict` for a policy without a table. */
  table(pool: string): Awaitable<TableView>;
  /**
   * A runtime override of a backend's state and/or weight, answered once it is in force in every
   * thread. undefined for an unknown backend (→ 404); throws `AdminError.unknownPool`.
   */
  changeBackend(pool: string, id: string, change: BackendChange, origin: ChangeOrigin): Awaitable<StatusBackendView | undefined>;
  /** What a change of the pool's set would move, applying nothing. Throws 404 / 400 (unknown ids in the body). */
  preview(pool: string, request: PreviewRequest): Awaitable<PreviewResult>;
  /** The config in force and where it came from. */
  configInForce(): Awaitable<ConfigView>;
}

/** One problem in a request body, located by its JSON path (`weight`, `$` for the whole body). */
export interface AdminIssue {
  readonly path: string;
  readonly message: string;
}

/** An expected refusal with its HTTP status; `path` locates the problem (default: the request path). */
export class AdminError extends Error {
  readonly status: number;
  readonly path: string | undefined;
  /** Every problem found (a body with several bad fields); the response lists them under `issues`. */
  readonly issues: readonly AdminIssue[] | undefined;

  constructor(status: number, message: string, path?: string, issues?: readonly AdminIssue[]) {
    super(message);
    this.name = 'AdminError';
    this.status = status;
    this.path = path;
    this.issues = issues;
  }

  /** 400 for a body that fails validation: the first issue (document order) is the message and path. */
  static invalidBody(issues: readonly AdminIssue[]): AdminError {
    const first = issues[0] ?? { path: '$', message: 'is invalid' };
    return new AdminError(400, first.message, first.path, issues);
  }

  static unknownPool(pool: string): AdminError {
    return new AdminError(404, `unknown pool "${pool}"`);
  }

  static unknownBackend(pool: string, id: string): AdminError {
    return new AdminError(404, `pool "${pool}" has no backend "${id}"`);
  }

  /** 409: the request is well formed but the pool's configuration does not allow it. */
  static conflict(message: string): AdminError {
    return new AdminError(409, message);
  }
}
