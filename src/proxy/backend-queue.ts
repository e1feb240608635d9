/**
 * Backend queues (HAProxy server `maxconn` with `maxqueue` / `timeout queue`): a connection whose
 * backend already holds `maxConnectionsPerBackend` connections waits here, in one FIFO per backend
 * slot, until a place on that backend frees, the queue timeout passes, or the client goes.
 *
 * One `BackendQueues` per pool and data-plane thread (the main thread's `BackendPool`, or a worker's
 * `PoolReplica`). The limit is process-wide (the active counts are shared, and a place is taken by
 * compare-and-swap: pool-state.ts `tryAcquire`), so a place freed in one worker must wake a
 * connection queued in another. No message per release: every release of a limited pool bumps a
 * shared "released" epoch, and a thread with queued connections
 *   - admits at once on its own releases (`released`), and
 *   - polls the epoch every POLL_MS while its queue is non-empty (`#tick`), admitting when it moved.
 * So a queued connection waits at most about POLL_MS (plus event-loop delay) after a place frees in
 * another thread; test/e2e-backend-queue.test.ts measures it. The same tick expires waiters.
 * `queue.size` bounds the waiters of a backend in every thread together (`QueueDepth`). Waiters of
 * a backend that stopped being routable choose again at the next tick (HAProxy's redispatch).
 *
 * Cost: nothing for pools without a limit (the connection never calls in). Queued connections are
 * intrusive list nodes (no allocation per waiter); the timer exists only while someone waits.
 */

import type { SlotConnection } from './slot-connections.js';

/** What a queue needs of a waiting connection; `ProxyConnection` implements it. */
export interface QueuedConnection extends SlotConnection {
  queuePrevious: QueuedConnection | null;
  queueNext: QueuedConnection | null;
  /** performance.now() after which the connection stops waiting. */
  queueDeadline: number;
  /** A place on `slot` was taken for it (acquired and linked): connect now. */
  admitted(slot: number): void;
  /** queue.timeoutMs passed without a place. */
  queueTimedOut(): void;
  /** The backend it waits for stopped taking new connections (ejected, down, drained): choose again. */
  backendGone(): void;
}

/**
 * The pool's count of waiting connections per slot, in every thread: a worker's `SharedPoolState`
 * (with its ledger, so a dead worker's waiters leave the count), or `LocalQueueDepth`.
 */
export interface QueueDepth {
  /** Count one more waiter for `slot` unless `size` already wait; false (nothing counted) when full. */
  tryQueue(slot: number, size: number): boolean;
  unqueue(slot: number): void;
}

/** One data plane in the main thread: the depth is this thread's alone. */
export class LocalQueueDepth implements QueueDepth {
  #depth = new Int32Array(0);

  tryQueue(slot: number, size: number): boolean {
    if (slot >= this.#depth.length) {
      const grown = new Int32Array(Math.max(slot + 1, this.#depth.length * 2));
      grown.set(this.#depth);
      this.#depth = grown;
    }
    if (this.#depth[slot]! >= size) return false;
    this.#depth[slot]! += 1;
    return true;
  }

  unqueue(slot: number): void {
    this.#depth[slot]! -= 1;
  }

  of(slot: number): number {
    return this.#depth[slot] ?? 0;
  }
}

/** Where a queue takes places: its pool. */
export interface PlaceSource {
  /** Acquire `slot` for `connection` if it is below its limit (process-wide); false when full. */
  tryAcquire(slot: number, connection: QueuedConnection): boolean;
  /** A number that moves whenever a place on any slot of the pool frees (in any thread). */
  releasedEpoch(): number;
  /** New connections may go to `slot` now (healthy, or panic routes to it). */
  isRoutable(slot: number): boolean;
}

/**
 * How often a thread with queued connections looks for places freed in other threads, and for
 * expired waiters. 5 ms: a queued connection waits that much longer at most, for an atomic load and
 * a scan of the waiting slots 200 times a second, and only while something waits.
 */
export const POLL_MS = 5;

export class BackendQueues {
  readonly #places: PlaceSource;
  readonly #depth: QueueDepth;
  #heads: (QueuedConnection | null)[] = [];
  #tails: (QueuedConnection | null)[] = [];
  /** This thread's waiters per slot (the shared depth sums every thread's). */
  #lengths = new Int32Array(0);
  #waiting = 0;
  #timer: NodeJS.Timeout | null = null;
  #seenEpoch = 0;

  readonly #now: () => number;

  /** `now`: monotonic ms, default performance.now (tests inject one with mocked timers). */
  constructor(places: PlaceSource, depth: QueueDepth, now: () => number = () => performance.now()) {
    this.#places = places;
    this.#depth = depth;
    this.#now = now;
  }

  /** Connections waiting in this thread. */
  get waiting(): number {
    return this.#waiting;
  }

  /** This thread's waiters for `slot`. */
  lengthOf(slot: number): number {
    return this.#lengths[slot] ?? 0;
  }

  /** Queue `connection` for `slot`; false (nothing changed) when `size` connections already wait for it in every thread. */
  enqueue(slot: number, connection: QueuedConnection, size: number, timeoutMs: number): boolean {
    this.#ensure(slot + 1);
    if (!this.#depth.tryQueue(slot, size)) return false;
    connection.queueDeadline = this.#now() + timeoutMs;
    connection.queueNext = null;
    connection.queuePrevious = this.#tails[slot]!;
    if (connection.queuePrevious !== null) connection.queuePrevious.queueNext = connection;
    else this.#heads[slot] = connection;
    this.#tails[slot] = connection;
    this.#lengths[slot]! += 1;
    if (this.#waiting++ === 0) {
      this.#seenEpoch = this.#places.releasedEpoch();
      this.#timer = setInterval(this.#tick, POLL_MS);
    }
    return true;
  }

  /** `connection` stops waiting for `slot` (admitted, timed out, or gone); a no-op when it is not queued there. */
  remove(slot: number, connection: QueuedConnection): void {
    if (connection.queuePrevious === null && this.#heads[slot] !== connection) return;
    if (connection.queuePrevious !== null) connection.queuePrevious.queueNext = connection.queueNext;
    else this.#heads[slot] = connection.queueNext;
    if (connection.queueNext !== null) connection.queueNext.queuePrevious = connection.queuePrevious;
    else this.#tails[slot] = connection.queuePrevious;
    connection.queuePrevious = null;
    connection.queueNext = null;
    this.#lengths[slot]! -= 1;
    this.#depth.unqueue(slot);
    if (--this.#waiting === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** A place on `slot` freed in this thread: its first waiter takes it now (no poll delay). */
  released(slot: number): void {
    if (this.#waiting === 0 || (this.#lengths[slot] ?? 0) === 0) return;
    this.#admit(slot);
  }

  /** Limits may have changed (a reload): every slot's waiters take the places there are now. */
  recheck(): void {
    for (let slot = 0; slot < this.#heads.length && this.#waiting > 0; slot++) if (this.#lengths[slot]! > 0) this.#admit(slot);
  }

  /** Every waiter leaves as timed out (the pool stops). */
  clear(): void {
    for (let slot = 0; slot < this.#heads.length; slot++) {
      let waiter: QueuedConnection | null = this.#heads[slot] ?? null;
      while (waiter !== null) {
        const next = waiter.queueNext;
        this.remove(slot, waiter);
        waiter.queueTimedOut();
        waiter = next;
      }
    }
  }

  #admit(slot: number): void {
    for (let waiter: QueuedConnection | null = this.#heads[slot] ?? null; waiter !== null; waiter = this.#heads[slot]!) {
      if (!this.#places.tryAcquire(slot, waiter)) return;
      this.remove(slot, waiter);
      waiter.admitted(slot);
    }
  }

  #tick = (): void => {
    const epoch = this.#places.releasedEpoch();
    const moved = epoch !== this.#seenEpoch;
    this.#seenEpoch = epoch;
    const now = this.#now();
    for (let slot = 0; slot < this.#heads.length && this.#waiting > 0; slot++) {
      if (this.#lengths[slot] === 0) continue;
      if (!this.#places.isRoutable(slot)) {
        // HAProxy `option redispatch` for queued connections: a backend taken out (ejected, down,
        // drained, removed) will not free a place worth waiting for; its waiters choose again.
        for (let waiter = this.#heads[slot] ?? null; waiter !== null; waiter = this.#heads[slot] ?? null) {
          this.remove(slot, waiter);
          waiter.backendGone();
        }
        continue;
      }
      if (moved) this.#admit(slot);
      // FIFO with one timeout per pool: the oldest waiter expires first (a reload that shortens
      // the timeout lets later ones pass earlier ones by at most the difference).
      for (let waiter: QueuedConnection | null = this.#heads[slot] ?? null; waiter !== null && waiter.queueDeadline <= now; waiter = this.#heads[slot]!) {
        this.remove(slot, waiter);
        waiter.queueTimedOut();
      }
    }
  };

  #ensure(capacity: number): void {
    if (capacity <= this.#heads.length) return;
    const lengths = new Int32Array(capacity);
    lengths.set(this.#lengths);
    this.#lengths = lengths;
    while (this.#heads.length < capacity) {
      this.#heads.push(null);
      this.#tails.push(null);
    }
  }
}
