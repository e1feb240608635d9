/**
 * The `registration` discovery source: services register themselves (admin API `PUT
 * /v1/pools/{pool}/backends/{id}`) with a TTL and renew it by heartbeat; an entry whose TTL runs
 * out is removed, which the runtime turns into a drain (existing connections continue).
 *
 * Like every discovery source, the store emits a pool's FULL backend set on every change (never a
 * delta), so the registry can diff it against the current set the same way for all sources.
 * A heartbeat that changes nothing (same address and weight) emits nothing: renewals every
 * second from hundreds of services must not cost a diff each.
 *
 * Bursts are batched (`batchMs`): a change marks its pool, and the pool emits once when the batch
 * window closes, so 500 services registering at once cost one table rebuild per window instead of
 * 500 (each rebuild of a 65,537-entry Maglev table takes milliseconds on the main thread, which is
 * also the data plane's thread). `settled()` resolves once every change made so far has been
 * emitted, which is when the admin API answers: a lookup after a PUT's answer sees the new set.
 *
 * Expiry uses ONE timer per store, armed for the earliest deadline and unref'd (it never keeps the
 * process alive), instead of one timer per entry: a heartbeat only moves a number, in O(1) (the
 * timer is re-armed only when a deadline moves earlier). When the timer fires, one O(entries) sweep
 * removes every entry that is due and finds the next deadline; sweeps run at most every
 * `MIN_SWEEP_INTERVAL_MS`, so an entry may outlive its TTL by that much.
 */
import { performance } from 'node:perf_hooks';
import type { Backend, HostPort } from '../backend.js';

export interface RegistrationInput {
  readonly address: HostPort;
  /** Integer 0..10000. */
  readonly weight: number;
  /** Milliseconds until the entry expires unless renewed; null = never expires. */
  readonly ttlMs: number | null;
}

export interface RegistrationEntry {
  readonly id: string;
  readonly address: HostPort;
  readonly weight: number;
  readonly ttlMs: number | null;
  /** Clock time (see `RegistrationStoreOptions.now`) at which the entry expires; null = never. */
  readonly expiresAt: number | null;
}

/** Receives the pool's complete set, sorted by id, after every change. */
export type RegistrationListener = (pool: string, backends: readonly Backend[]) => void;

export type RegisterResult =
  | { readonly ok: true; readonly outcome: 'created' | 'renewed' }
  | { readonly ok: false; readonly reason: 'unknown-pool' | 'pool-full'; readonly message: string };

export interface RegistrationStoreOptions {
  /** Monotonic clock in ms; default `performance.now`. Tests pass a mocked clock. */
  readonly now?: () => number;
  /** Most registrations one pool may hold (bounds memory against a runaway client); default 4096. */
  readonly maxEntriesPerPool?: number;
  /**
   * Batch window: a pool's changes are emitted together this many ms after the first of them.
   * 0 (default) emits each change at once, synchronously; the runtime uses `REGISTRATION_BATCH_MS`.
   */
  readonly batchMs?: number;
}

/** Default bound on registrations per pool. */
export const DEFAULT_MAX_REGISTRATIONS_PER_POOL = 4096;

/**
 * The runtime's batch window: a registration is applied (and its PUT answered) at most this much
 * later, plus the rebuild itself; a burst costs about one rebuild per window and pool.
 */
export const REGISTRATION_BATCH_MS = 25;

/** `settled()` callers resumed per event loop turn after a batch (see #releaseSettledWaiters). */
const WAITERS_RELEASED_PER_TURN = 16;

/** Expiry sweeps are at least this far apart: each is O(entries), so heartbeats cannot make them quadratic. */
export const MIN_SWEEP_INTERVAL_MS = 25;

export class RegistrationStore {
  readonly #pools = new Map<string, Map<string, RegistrationEntry>>();
  readonly #listeners = new Set<RegistrationListener>();
  readonly #now: () => number;
  readonly #maxEntriesPerPool: number;
  readonly #batchMs: number;
  #timer: NodeJS.Timeout | undefined;
  /** Deadline the timer is armed for (Infinity = not armed). */
  #timerDeadline = Number.POSITIVE_INFINITY;
  /** When the last expiry sweep ran (clock ms). */
  #lastSweepAt = Number.NEGATIVE_INFINITY;
  /** Pools with changes not yet emitted, and the timer that will emit them. */
  readonly #unemitted = new Set<string>();
  #batchTimer: NodeJS.Timeout | undefined;
  /** `settled()` callers waiting for the batch in progress. */
  #settledWaiters: (() => void)[] = [];
  #closed = false;

  constructor(options: RegistrationStoreOptions = {}) {
    this.#now = options.now ?? (() => performance.now());
    const max = options.maxEntriesPerPool ?? DEFAULT_MAX_REGISTRATIONS_PER_POOL;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxEntriesPerPool must be a positive integer, got ${max}`);
    this.#maxEntriesPerPool = max;
    const batchMs = options.batchMs ?? 0;
    if (!Number.isFinite(batchMs) || batchMs < 0) throw new RangeError(`batchMs must be a non-negative number, got ${batchMs}`);
    this.#batchMs = batchMs;
  }

  /** Subscribes to set changes; returns the unsubscribe function. */
  onChange(listener: RegistrationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Declares a pool that uses registration discovery (idempotent). It starts empty. */
  addPool(pool: string): void {
    if (!this.#pools.has(pool)) this.#pools.set(pool, new Map());
  }

  /** Forgets a pool (its discovery changed on reload, or it was removed). Emits nothing: the pool's owner decides what replaces the set. */
  removePool(pool: string): void {
    this.#pools.delete(pool);
    this.#unemitted.delete(pool);
    // The timer may now fire for nothing; its sweep re-arms for what is left.
  }

  hasPool(pool: string): boolean {
    return this.#pools.has(pool);
  }

  pools(): string[] {
    return [...this.#pools.keys()];
  }

  /**
   * Registers `id` or renews it. A renewal resets the TTL to `now + ttlMs`; if the address or
   * weight changed it also emits the new set.
   */
  register(pool: string, id: string, input: RegistrationInput): RegisterResult {
    this.#assertOpen();
    if (input.ttlMs !== null && !(Number.isFinite(input.ttlMs) && input.ttlMs > 0)) {
      throw new RangeError(`ttlMs must be a positive number or null, got ${input.ttlMs}`);
    }
    const entries = this.#pools.get(pool);
    if (entries === undefined) {
      return { ok: false, reason: 'unknown-pool', message: `pool "${pool}" does not use registration discovery` };
    }
    const previous = entries.get(id);
    if (previous === undefined && entries.size >= this.#maxEntriesPerPool) {
      return {
        ok: false,
        reason: 'pool-full',
        message: `pool "${pool}" already holds ${entries.size} registrations (the limit); deregister some first`,
      };
    }
    const entry: RegistrationEntry = {
      id,
      address: input.address,
      weight: input.weight,
      ttlMs: input.ttlMs,
      expiresAt: input.ttlMs === null ? null : this.#now() + input.ttlMs,
    };
    entries.set(id, entry);
    this.#armFor(entry.expiresAt);
    const changed =
      previous === undefined || previous.address.text !== entry.address.text || previous.weight !== entry.weight;
    if (changed) this.#changed(pool);
    return { ok: true, outcome: previous === undefined ? 'created' : 'renewed' };
  }

  /** Heartbeat without a body: extends the TTL by the entry's own ttlMs. False when not registered. */
  renew(pool: string, id: string): boolean {
    this.#assertOpen();
    const entries = this.#pools.get(pool);
    const entry = entries?.get(id);
    if (entries === undefined || entry === undefined) return false;
    if (entry.ttlMs !== null) {
      const expiresAt = this.#now() + entry.ttlMs;
      entries.set(id, { ...entry, expiresAt });
      this.#armFor(expiresAt);
    }
    return true;
  }

  /** Removes `id` and emits the new set; false when it was not registered. */
  deregister(pool: string, id: string): boolean {
    this.#assertOpen();
    const entries = this.#pools.get(pool);
    if (entries === undefined || !entries.delete(id)) return false;
    this.#changed(pool);
    return true;
  }

  get(pool: string, id: string): RegistrationEntry | undefined {
    return this.#pools.get(pool)?.get(id);
  }

  /** The pool's entries sorted by id (empty for an unknown pool). */
  entries(pool: string): RegistrationEntry[] {
    const entries = this.#pools.get(pool);
    return entries === undefined ? [] : sortedById([...entries.values()]);
  }

  /** The pool's current set as backends (what the last emit carried). */
  backends(pool: string): Backend[] {
    const entries = this.#pools.get(pool);
    return entries === undefined ? [] : toBackends(entries);
  }

  /** Ms until `id` expires (0 when due), null when it never expires, undefined when not registered. */
  ttlRemainingMs(pool: string, id: string): number | null | undefined {
    const entry = this.get(pool, id);
    if (entry === undefined) return undefined;
    if (entry.expiresAt === null) return null;
    return Math.max(0, Math.ceil(entry.expiresAt - this.#now()));
  }

  /**
   * Resolves once every change made so far has been emitted to the listeners (at once when none
   * is waiting), i.e. when the registry has applied it.
   */
  settled(): Promise<void> {
    if (this.#unemitted.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#settledWaiters.push(resolve));
  }

  /** Stops the expiry timer and the batch (unemitted changes are dropped); later calls that change state throw. */
  close(): void {
    this.#closed = true;
    this.#clearTimer();
    if (this.#batchTimer !== undefined) clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    this.#unemitted.clear();
    this.#releaseSettledWaiters();
  }

  /** Removes every due entry; each pool that lost entries emits once. Runs from the timer (and tests). */
  expireDue(): void {
    if (this.#closed) return;
    const now = this.#now();
    this.#lastSweepAt = now;
    let earliest = Number.POSITIVE_INFINITY;
    for (const [pool, entries] of this.#pools) {
      let removed = false;
      for (const [id, entry] of entries) {
        if (entry.expiresAt === null) continue;
        if (entry.expiresAt <= now) {
          entries.delete(id);
          removed = true;
        } else if (entry.expiresAt < earliest) {
          earliest = entry.expiresAt;
        }
      }
      if (removed) this.#changed(pool);
    }
    this.#clearTimer();
    this.#armFor(earliest);
  }

  /**
   * Makes sure the one timer fires by `deadline` (null or Infinity: never). O(1): the timer only
   * moves earlier here; a timer that fires early finds nothing due and re-arms from its sweep.
   */
  #armFor(deadline: number | null): void {
    if (this.#closed || deadline === null || deadline === Number.POSITIVE_INFINITY || deadline >= this.#timerDeadline) return;
    this.#clearTimer();
    this.#timerDeadline = deadline;
    const fireAt = Math.max(deadline, this.#lastSweepAt + MIN_SWEEP_INTERVAL_MS);
    const delay = Math.max(0, Math.ceil(fireAt - this.#now()));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerDeadline = Number.POSITIVE_INFINITY;
      this.expireDue();
    }, delay);
    this.#timer.unref();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDeadline = Number.POSITIVE_INFINITY;
  }

  /** A pool's set changed: emit now (no batching) or when the batch window closes. */
  #changed(pool: string): void {
    if (this.#batchMs === 0) {
      const entries = this.#pools.get(pool);
      if (entries !== undefined) this.#emit(pool, entries);
      return;
    }
    this.#unemitted.add(pool);
    // The window opens with the first change and is not extended by later ones: the delay is bounded.
    this.#batchTimer ??= setTimeout(() => this.#emitBatch(), this.#batchMs);
  }

  #emitBatch(): void {
    this.#batchTimer = undefined;
    const pools = [...this.#unemitted];
    this.#unemitted.clear();
    try {
      for (const pool of pools) {
        const entries = this.#pools.get(pool);
        if (entries !== undefined) this.#emit(pool, entries);
      }
    } finally {
      this.#releaseSettledWaiters();
    }
  }

  #releaseSettledWaiters(): void {
    const waiters = this.#settledWaiters;
    this.#settledWaiters = [];
    // Each waiter is an admin request that answers when released: release them a few per event
    // loop turn, so that 500 answers are not written in one go while connections wait for the loop.
    const releaseFrom = (start: number): void => {
      const end = Math.min(waiters.length, start + WAITERS_RELEASED_PER_TURN);
      for (let i = start; i < end; i++) waiters[i]!();
      if (end < waiters.length) setImmediate(releaseFrom, end);
    };
    releaseFrom(0);
  }

  #emit(pool: string, entries: ReadonlyMap<string, RegistrationEntry>): void {
    const backends = toBackends(entries);
    for (const listener of this.#listeners) listener(pool, backends);
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('registration store is closed');
  }
}

function sortedById<T extends { readonly id: string }>(items: T[]): T[] {
  // Code-unit order, not localeCompare: the same order in every process and locale.
  return items.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function toBackends(entries: ReadonlyMap<string, RegistrationEntry>): Backend[] {
  return sortedById([...entries.values()]).map((entry) => ({
    id: entry.id,
    address: entry.address,
    weight: entry.weight,
    state: 'active' as const,
  }));
}
