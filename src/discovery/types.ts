/**
 * The contract between discovery sources (file, DNS, etcd) and the registry that owns a pool's
 * membership. A source only reports FULL backend sets; the registry diffs each set against the
 * current one and rebuilds only pools that changed (ARCHITECTURE.md "Diff, don't rebuild").
 * Modelled on Pingora's `ServiceDiscovery` (one required method) and linkerd's change streams.
 */
import type { Backend, BackendSource } from '../backend.js';

/** The sources that run as a `DiscoverySource` (static and registration pools have none). */
export type DiscoveryKind = Extract<BackendSource, 'file' | 'dns' | 'etcd'>;

/** A change stream of FULL backend sets. The registry diffs each set against the current one. */
export interface DiscoverySource {
  readonly kind: DiscoveryKind;
  /** For logs: `file backends.json`, `dns SRV _app._tcp.svc.test`, `etcd /ringlb/app/`. */
  readonly description: string;
  /**
   * Begin; `onUpdate` gets the whole current set whenever it may have changed (the first one as
   * soon as known). Call at most once.
   */
  start(listener: DiscoveryListener): void;
  /** Idempotent; releases every timer, watcher, socket and client. No listener call follows. */
  stop(): Promise<void>;
}

export interface DiscoveryListener {
  /**
   * The whole current set, sorted by id, never empty because of a failure (a failure is
   * `onError`). A source may repeat an unchanged set (always after `onRecovered`).
   */
  onUpdate(backends: readonly Backend[]): void;
  /**
   * The source cannot reach its registry / read its file, or what it read was refused (bad JSON,
   * bad entry, empty DNS answer). The registry keeps the last known set. Called once per outage
   * (not per retry); `onRecovered` when it works again (a full resync follows via `onUpdate`).
   */
  onError(error: Error): void;
  onRecovered?(): void;
  /**
   * One entry was skipped while the others apply (etcd: a key with a bad value). Not an outage:
   * no `onRecovered` follows. Called once per bad value, not per resync.
   */
  onInvalidEntry?(error: Error): void;
}
