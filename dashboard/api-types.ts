/**
 * The admin API as the page reads it (/work/prompts/s13 contract, docs/admin-api.md): only the
 * fields the dashboard uses. The server's own types live with its routes; these describe the JSON
 * on the wire, which is the contract between the two.
 */
export type BackendStatus = 'up' | 'down' | 'drain' | 'maint' | 'pending';
export type AdminState = 'active' | 'drain' | 'maint';

export interface StatusBackend {
  readonly id: string;
  readonly address: string;
  readonly weight: number;
  readonly configuredWeight: number;
  readonly state: AdminState;
  readonly override: { readonly state?: AdminState; readonly weight?: number; readonly at: string } | null;
  readonly status: BackendStatus;
  readonly healthy: boolean;
  readonly routable: boolean;
  readonly flags: readonly string[];
  readonly lastCheck: { readonly ok: boolean; readonly at: string; readonly durationMs: number; readonly reason?: string | null } | null;
  readonly activeConnections: number;
  readonly totalConnections: number;
  readonly connectSeconds: { readonly p50: number | null; readonly p90: number | null; readonly p99: number | null } | null;
  readonly ejections: number;
  readonly slowStartPercent: number;
  readonly keyShare: number | null;
}

export interface StatusPool {
  readonly name: string;
  readonly balance: string;
  readonly panic: boolean;
  readonly tableSize: number | null;
  readonly lastRebuild: { readonly at: string; readonly movedShare: number } | null;
  readonly backends: readonly StatusBackend[];
}

export interface StatusListener {
  readonly name: string;
  readonly bind: string;
  readonly pool: string;
  readonly activeConnections: number;
  readonly connections: Readonly<Record<string, number>>;
}

export interface Status {
  readonly version: string;
  readonly pid: number;
  readonly startedAt: string;
  readonly workers: number;
  readonly config: { readonly path: string | null; readonly loadedAt: string };
  readonly listeners: readonly StatusListener[];
  readonly pools: readonly StatusPool[];
}

export interface TableRun {
  readonly start: number;
  readonly end: number;
  readonly backend: string;
}

export interface PoolTable {
  readonly pool: string;
  readonly balance: string;
  readonly size: number;
  readonly backends: readonly { readonly id: string; readonly share: number }[];
  readonly ring?: readonly TableRun[];
  readonly strip?: readonly TableRun[];
  readonly truncated?: boolean;
}

/** `GET /v1/config`: the pool settings the preview needs to build the same tables ringlb runs. */
export interface ConfigView {
  readonly path: string | null;
  readonly loadedAt: string;
  readonly config: { readonly pools: readonly unknown[] };
}

/** One event of `GET /v1/events` (src/events/types.ts `RinglbEvent`). */
export type { RinglbEvent } from '../src/events/types.js';
