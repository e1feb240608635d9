/**
 * Messages between the main thread (control plane, src/control/workers.ts) and the data-plane
 * worker threads (worker-thread.ts). Plain data only; SharedArrayBuffers are shared, not copied.
 * Pools and listeners are named by ids the main thread assigns (a reload may replace a listener by
 * another of the same name: both live while the old one drains).
 */
import type { AccessLogSettings } from '../access-log/settings.js';
import type { BackendFailureReason } from '../backend.js';
import type { ListenerConfig, LogLevel } from '../config/types.js';
import type { PoolSnapshot } from './backend-pool.js';

/** `workerData` of every data-plane worker. */
export interface WorkerStart {
  readonly index: number;
  readonly workers: number;
  readonly logLevel: LogLevel;
  /** The access log's settings in force when this worker starts (a replacement gets the current ones); absent = defaults. */
  readonly accessLog?: AccessLogSettings;
  /** The access log's output descriptor, opened by the main thread (absent = stdout). */
  readonly accessLogFd?: number;
  /** Honour `crash-for-test` (RINGLB_TEST_HOOKS=1 in the main thread's environment). */
  readonly testHooks: boolean;
  /** Open connections flush their bytes into the traffic counters this often. */
  readonly trafficFlushMs: number;
  /** Every thread's event-loop delay (src/shared-state/loop-delay.ts); this worker writes row 1 + index. */
  readonly loopDelay: SharedArrayBuffer;
}

export type ToWorker =
  | { readonly type: 'pool'; readonly poolId: number; readonly snapshot: PoolSnapshot; readonly state: SharedArrayBuffer }
  /** The pool stopped: drop the replica once its connections have ended. */
  | { readonly type: 'forget-pool'; readonly poolId: number }
  | {
      readonly type: 'listen';
      readonly requestId: number;
      readonly listenerId: number;
      readonly config: ListenerConfig;
      readonly poolId: number;
      /** The port to bind: the one the group already holds (never 0 for a group's later members). */
      readonly port: number;
      readonly state: SharedArrayBuffer;
      /** The listener's outcome counters (src/shared-state/traffic-counters.ts). */
      readonly traffic: SharedArrayBuffer;
      /** Per-source limits (src/shared-state/source-limits.ts); null while the config sets none. */
      readonly sourceLimits?: SharedArrayBuffer | null;
    }
  | {
      readonly type: 'listener-update';
      readonly listenerId: number;
      readonly config: ListenerConfig;
      readonly poolId: number;
      readonly sourceLimits?: SharedArrayBuffer | null;
    }
  /** Stop accepting; answer `listener-closed`, later `listener-idle` when its last connection ended. */
  | { readonly type: 'listener-stop'; readonly listenerId: number }
  | { readonly type: 'listener-cut'; readonly listenerId: number }
  | { readonly type: 'table'; readonly requestId: number; readonly poolId: number }
  | { readonly type: 'crash-for-test' }
  /**
   * Access-log settings and output descriptor (a reload, a reopen on SIGUSR1, a replacement's replay);
   * answered with `access-log-applied` once this worker writes to `fd` only.
   */
  | { readonly type: 'access-log'; readonly requestId: number; readonly settings: AccessLogSettings; readonly fd: number }
  /** Tests and diagnostics: answered with how many pool replicas and listeners this worker holds. */
  | { readonly type: 'census'; readonly requestId: number }
  /** Answered with `synced` once every message sent before it has been applied (messages keep their order). */
  | { readonly type: 'sync'; readonly requestId: number };

export interface FailureItem {
  readonly poolId: number;
  readonly slot: number;
  readonly backendId: string;
  readonly reason: BackendFailureReason;
}

export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'failures'; readonly items: readonly FailureItem[] }
  | { readonly type: 'listening'; readonly requestId: number; readonly port: number }
  | { readonly type: 'listen-failed'; readonly requestId: number; readonly error: string }
  | { readonly type: 'listener-closed'; readonly listenerId: number }
  | { readonly type: 'listener-idle'; readonly listenerId: number }
  | { readonly type: 'table'; readonly requestId: number; readonly slots: Int32Array | null; readonly positions: Uint32Array | null }
  | { readonly type: 'synced'; readonly requestId: number }
  | { readonly type: 'access-log-applied'; readonly requestId: number }
  | { readonly type: 'census'; readonly requestId: number; readonly pools: number; readonly listeners: number };
