/**
 * `etcd` discovery: every key under a prefix is one backend (etcd v3 API via the `etcd3` gRPC
 * client).
 *
 * Key `/ringlb/app/b1` with value `{"address":"10.0.0.7:9001","weight":1,"state":"active"}` is
 * the backend with id `b1` (the key after the prefix; a value's own `"id"` wins). Values are
 * validated like config backends; a bad value is skipped and reported with `onInvalidEntry`
 * naming the key, and the other keys apply. Two keys claiming the same id: the first key in
 * byte order wins, the other is reported.
 *
 * Consistency (the etcd v3 "get, then watch from revision + 1" pattern, as in Kubernetes'
 * reflector list-then-watch): one range read of the prefix gives the full set and its store
 * revision R; the watch starts at R + 1, so no change between the read and the watch is missed
 * or applied twice. Each watch response (one etcd transaction may change many keys) is applied
 * as a whole and reported as one set.
 *
 * Failures: when the watch stream breaks or a read fails, the watcher is dropped and a full
 * resync (read + new watch) is tried at once, then with exponential backoff (default 1 s → 30 s).
 * `onError` is called once when a resync fails (a watch blip that resyncs at once is silent),
 * the last set stays, and the first successful resync calls `onRecovered` and `onUpdate` with the
 * full current set. Services registering with a lease (`registerWithLease`) vanish from the set
 * when they die: their keys are deleted by etcd when the lease expires, which the watch reports.
 */
import { createRequire } from 'node:module';
import type { Etcd3, IOptions, IKeyValue, IWatchResponse, Lease, Watcher } from 'etcd3';
import type { Backend, BackendState } from '../backend.js';
import { describe as describeValue, parseBackendEntry, sameBackendSet, sortById } from './backend-entries.js';
import { Backoff } from './backoff.js';

/**
 * etcd3 (and gRPC under it) is loaded on first use: importing it costs ~200 ms of start-up and
 * memory that a ringlb without an etcd pool should not pay. It is CommonJS, so a synchronous
 * require keeps the source's constructor synchronous.
 */
const requireFromHere = createRequire(import.meta.url);
function etcd3Module(): typeof import('etcd3') {
  return requireFromHere('etcd3') as typeof import('etcd3');
}
import type { DiscoveryListener, DiscoverySource } from './types.js';

export interface EtcdSourceOptions {
  /** Client URLs of the etcd cluster, e.g. `["http://127.0.0.1:2379"]`. */
  readonly endpoints: readonly string[];
  /** Key prefix; every key under it is one backend. End it with `/` so `/app/` ≠ `/app2/`. */
  readonly prefix: string;
  /**
   * Deadline of each read (not of the watch stream); default 3000. A hung etcd (accepting, not
   * answering) then counts as unreachable instead of stalling the resync forever. (etcd3 1.1.2
   * declares a `dialTimeout` option but never reads it, so the deadline is set per call.)
   */
  readonly requestTimeoutMs?: number;
  /** Retry backoff after a failed resync; defaults 1000 → 30000. */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
}

/** The JSON value services write under the prefix. */
export interface EtcdBackendValue {
  readonly address: string;
  readonly weight?: number;
  readonly state?: BackendState;
  /** Default: the key after the prefix. */
  readonly id?: string;
}

export const DEFAULT_ETCD_REQUEST_TIMEOUT_MS = 3000;

export function createEtcdSource(options: EtcdSourceOptions): DiscoverySource {
  return new EtcdSource(options);
}

/**
 * Registers a backend under `prefix + id` attached to a new lease of `ttlSeconds`, which the
 * client keeps alive (etcd3 sends a keepalive every ttl/3) for as long as it runs. A service that
 * dies stops renewing and etcd deletes the key when the lease expires; a clean shutdown calls
 * `lease.revoke()` to remove it at once. Note that etcd3's `client.close()` does NOT stop a lease's
 * keepalives (the pool reconnects on demand): to let a key expire while the process lives on,
 * call `lease.release()`. etcd rounds a TTL up to its minimum (about 2 s with
 * default election settings). Listen to the lease's `lost` event to re-register after a long
 * partition.
 */
export async function registerWithLease(client: Etcd3, prefix: string, id: string, value: EtcdBackendValue, ttlSeconds: number): Promise<Lease> {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new TypeError(`registerWithLease: ttlSeconds must be a positive integer, got ${ttlSeconds}`);
  const lease = client.lease(ttlSeconds);
  try {
    await lease.put(`${prefix}${id}`).value(JSON.stringify(value));
  } catch (error) {
    await lease.revoke().catch(() => undefined);
    throw error;
  }
  return lease;
}

type EtcdPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/**
 * One attempt per call, no circuit breaker. etcd3's defaults (3 retries, then a per-host breaker
 * that refuses calls for 5 s) would add up to 5 s to every recovery on top of our own backoff;
 * this source owns retry timing in one place. Implements cockatiel's IPolicy shape, which is all
 * etcd3 calls (`execute`).
 */
function passThroughPolicy(): EtcdPolicy {
  const noEvent = () => ({ dispose: () => undefined });
  return {
    _altReturn: undefined as never,
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
  };
}

class EtcdSource implements DiscoverySource {
  readonly kind = 'etcd';
  readonly description: string;
  readonly #prefix: string;
  readonly #client: Etcd3;
  readonly #backoff: Backoff;
  #listener: DiscoveryListener | null = null;
  #stopped = false;
  /** Bumped on every resync; callbacks of an older watcher compare it and do nothing. */
  #generation = 0;
  #watcher: Watcher | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #syncing: Promise<void> | null = null;
  /** Valid backends by full key, with the revision that wrote them. */
  #byKey = new Map<string, { readonly backend: Backend; readonly modRevision: string }>();
  /** Bad values already reported, as key → mod_revision, so a resync does not repeat them. */
  #reportedInvalid = new Map<string, string>();
  #lastSet: readonly Backend[] | null = null;
  #failing = false;
  /** Why the last watch was lost, for the error message if the resync fails too. */
  #lastWatchError: Error | null = null;

  constructor(options: EtcdSourceOptions) {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new TypeError('etcd discovery: endpoints must be a non-empty list like ["http://127.0.0.1:2379"]');
    }
    for (const endpoint of options.endpoints) {
      if (typeof endpoint !== 'string' || !/^https?:\/\/[^/\s]+\/?$/.test(endpoint)) {
        throw new TypeError(`etcd discovery: endpoint ${JSON.stringify(endpoint)} must be a URL like http://127.0.0.1:2379`);
      }
    }
    if (typeof options.prefix !== 'string' || options.prefix === '') {
      throw new TypeError('etcd discovery: prefix must be a non-empty string like "/ringlb/app/"');
    }
    this.#prefix = options.prefix;
    this.#backoff = new Backoff({ minMs: options.retryMinMs, maxMs: options.retryMaxMs });
    const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_ETCD_REQUEST_TIMEOUT_MS;
    if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs < 1) {
      throw new TypeError(`etcd discovery: requestTimeoutMs must be a positive integer (ms), got ${JSON.stringify(options.requestTimeoutMs)}`);
    }
    const policy = passThroughPolicy();
    this.#client = new (etcd3Module().Etcd3)({
      hosts: [...options.endpoints],
      // Streams (the watch) live as long as they work; unary calls get a deadline.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
      faultHandling: { host: () => policy, global: policy },
    });
    this.description = `etcd ${options.prefix}`;
  }

  start(listener: DiscoveryListener): void {
    if (this.#listener !== null) throw new Error(`${this.description}: start() called twice`);
    this.#listener = listener;
    this.#resync();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#generation += 1;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#dropWatcher();
    await this.#syncing;
    this.#client.close();
  }

  #resync(): void {
    if (this.#stopped) return;
    this.#syncing = this.#syncOnce().finally(() => {
      this.#syncing = null;
    });
  }

  /** Full read + new watch from the read's revision + 1. */
  async #syncOnce(): Promise<void> {
    this.#generation += 1;
    const generation = this.#generation;
    let response;
    try {
      response = await this.#client.getAll().prefix(this.#prefix).exec();
    } catch (error) {
      if (generation === this.#generation) this.#failed(error as Error);
      return;
    }
    if (generation !== this.#generation) return;

    this.#byKey = new Map();
    const seen = new Set<string>();
    for (const kv of response.kvs) {
      const key = kv.key.toString('utf8');
      seen.add(key);
      this.#applyPut(key, kv);
    }
    for (const key of [...this.#reportedInvalid.keys()]) if (!seen.has(key)) this.#reportedInvalid.delete(key);
    this.#watch(BigInt(response.header.revision) + 1n, generation);

    this.#backoff.reset();
    const recovered = this.#failing;
    this.#failing = false;
    if (recovered) this.#listener?.onRecovered?.();
    this.#publish(recovered);
  }

  #watch(fromRevision: bigint, generation: number): void {
    // watcher() (not create()) so the handlers are attached before anything can be emitted, and
    // so a stream that dies before it is established still reaches 'disconnected'.
    const watcher = this.#client.watch().prefix(this.#prefix).startRevision(fromRevision.toString()).watcher();
    this.#watcher = watcher;
    watcher.on('data', (response: IWatchResponse) => {
      if (generation !== this.#generation || response.events.length === 0) return;
      for (const event of response.events) {
        const key = event.kv.key.toString('utf8');
        if (event.type === 'Delete') {
          this.#byKey.delete(key);
          this.#reportedInvalid.delete(key);
        } else {
          this.#applyPut(key, event.kv);
        }
      }
      this.#publish(false);
    });
    const lost = (error: Error): void => {
      if (generation !== this.#generation) return;
      this.#dropWatcher();
      // Resync at once: a broken stream to a healthy cluster (leader change, proxy timeout)
      // recovers without an error; a dead cluster makes this read fail, which reports it.
      this.#lastWatchError = error;
      this.#resync();
    };
    watcher.on('disconnected', lost);
    // e.g. "required revision has been compacted": only a fresh read can continue.
    watcher.on('error', lost);
  }

  #dropWatcher(): void {
    const watcher = this.#watcher;
    this.#watcher = null;
    watcher?.removeAllListeners('data');
    // The watcher's handlers are generation-checked; cancel() may reject once the client is closed.
    watcher?.cancel().catch(() => undefined);
  }

  #applyPut(key: string, kv: IKeyValue): void {
    const suffix = key.startsWith(this.#prefix) ? key.slice(this.#prefix.length) : key;
    let value: unknown;
    const text = kv.value.toString('utf8');
    try {
      value = JSON.parse(text);
    } catch {
      this.#byKey.delete(key);
      this.#reportInvalid(key, kv.mod_revision, `${key}: value is not JSON: ${describeValue(text)}`);
      return;
    }
    const result = parseBackendEntry(value, key, suffix === '' ? undefined : suffix);
    if ('errors' in result) {
      this.#byKey.delete(key);
      this.#reportInvalid(key, kv.mod_revision, result.errors.join('; '));
      return;
    }
    this.#reportedInvalid.delete(key);
    this.#byKey.set(key, { backend: result.backend, modRevision: kv.mod_revision });
  }

  #reportInvalid(key: string, modRevision: string, message: string): void {
    if (this.#reportedInvalid.get(key) === modRevision) return;
    this.#reportedInvalid.set(key, modRevision);
    this.#listener?.onInvalidEntry?.(new Error(`${this.description}: ${message}; key skipped`));
  }

  /** Reports the current set when it changed, or always on a recovery. */
  #publish(force: boolean): void {
    if (this.#stopped) return;
    const byId = new Map<string, Backend>();
    const keys = [...this.#byKey.keys()].sort();
    for (const key of keys) {
      const { backend, modRevision } = this.#byKey.get(key) as { backend: Backend; modRevision: string };
      if (byId.has(backend.id)) {
        this.#reportInvalid(key, modRevision, `${key}: duplicate backend id "${backend.id}" (a key before it in byte order has it)`);
        continue;
      }
      byId.set(backend.id, backend);
    }
    const set = sortById([...byId.values()]);
    if (!force && this.#lastSet !== null && sameBackendSet(this.#lastSet, set)) return;
    this.#lastSet = set;
    this.#listener?.onUpdate(set);
  }

  #failed(error: Error): void {
    if (this.#stopped) return;
    if (!this.#failing) {
      this.#failing = true;
      const cause = this.#lastWatchError ?? error;
      this.#listener?.onError(new Error(`${this.description}: cannot reach etcd (${error.message}); keeping the last set`, { cause }));
    }
    this.#lastWatchError = null;
    const delay = this.#backoff.next();
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#resync();
    }, delay);
  }
}
