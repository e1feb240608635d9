/**
 * The connections holding each slot of one pool, for drains: when a backend leaves the set, the
 * connections still open to it run until they end or until the drain deadline cuts them. Both data
 * planes use it: the main thread's `BackendPool` and a worker thread's `PoolReplica` (each worker
 * drains its own connections).
 *
 * Intrusive per-slot lists (three field writes per link, no Set churn per connection).
 */
import type { Logger } from '../log.js';

/** What a drain needs from a connection: list links and a way to cut it. `ProxyConnection` implements it. */
export interface SlotConnection {
  slotPrevious: SlotConnection | null;
  slotNext: SlotConnection | null;
  forceClose(): void;
}

export class SlotConnections {
  /** Head of each slot's list of connections holding it (acquired, not yet released). */
  readonly #heads: (SlotConnection | null)[];
  /** Drain deadline per removed slot that still had connections when its backend left. */
  readonly #drainTimers: (NodeJS.Timeout | undefined)[];
  readonly #logger: Logger;
  /** Names a slot in the drain log line. */
  readonly #describe: (slot: number) => string;

  constructor(capacity: number, logger: Logger, describe: (slot: number) => string) {
    this.#heads = new Array<SlotConnection | null>(capacity).fill(null);
    this.#drainTimers = new Array<NodeJS.Timeout | undefined>(capacity).fill(undefined);
    this.#logger = logger;
    this.#describe = describe;
  }

  /** Lists only ever grow: a pool that shrinks leaves unused tails. */
  ensureCapacity(capacity: number): void {
    for (let slot = this.#heads.length; slot < capacity; slot++) {
      this.#heads.push(null);
      this.#drainTimers.push(undefined);
    }
  }

  get capacity(): number {
    return this.#heads.length;
  }

  /** Hot path: `connection` now holds `slot`. */
  link(slot: number, connection: SlotConnection): void {
    const head = this.#heads[slot]!;
    connection.slotPrevious = null;
    connection.slotNext = head;
    if (head !== null) head.slotPrevious = connection;
    this.#heads[slot] = connection;
  }

  /** Hot path: `connection` released `slot`. */
  unlink(slot: number, connection: SlotConnection): void {
    if (connection.slotPrevious !== null) connection.slotPrevious.slotNext = connection.slotNext;
    else if (this.#heads[slot] === connection) this.#heads[slot] = connection.slotNext;
    if (connection.slotNext !== null) connection.slotNext.slotPrevious = connection.slotPrevious;
    connection.slotPrevious = null;
    connection.slotNext = null;
    // The last draining connection is gone: the slot may be reused, so its deadline must not fire.
    if (this.#heads[slot] === null && this.#drainTimers[slot] !== undefined) this.clearDrain(slot);
  }

  has(slot: number): boolean {
    return this.#heads[slot] !== null;
  }

  /** The slot's backend left: its connections are cut `timeoutMs` from now unless they end first. */
  startDrain(slot: number, timeoutMs: number): void {
    if (slot >= this.#heads.length || this.#heads[slot] === null || this.#drainTimers[slot] !== undefined) return;
    const timer = setTimeout(() => {
      this.#drainTimers[slot] = undefined;
      const cut = this.cutSlot(slot);
      if (cut > 0) this.#logger.info({ backend: this.#describe(slot), cut, drainTimeoutMs: timeoutMs }, 'drain deadline: connections cut');
    }, timeoutMs);
    // A drain deadline alone must not keep a stopping process alive.
    timer.unref();
    this.#drainTimers[slot] = timer;
  }

  clearDrain(slot: number): void {
    const timer = this.#drainTimers[slot];
    if (timer !== undefined) clearTimeout(timer);
    this.#drainTimers[slot] = undefined;
  }

  clearAllDrains(): void {
    for (let slot = 0; slot < this.#heads.length; slot++) this.clearDrain(slot);
  }

  /** Cut every connection of `slot` now; the unlinks come later, from their close events. */
  cutSlot(slot: number): number {
    let cut = 0;
    for (let connection = this.#heads[slot] ?? null; connection !== null; ) {
      const next: SlotConnection | null = connection.slotNext;
      connection.forceClose();
      cut += 1;
      connection = next;
    }
    return cut;
  }

  cutAll(): number {
    let cut = 0;
    for (let slot = 0; slot < this.#heads.length; slot++) cut += this.cutSlot(slot);
    return cut;
  }

  /** Connections linked now (O(open connections); admin and retirement, never per connection). */
  count(): number {
    let open = 0;
    for (let slot = 0; slot < this.#heads.length; slot++) {
      for (let connection = this.#heads[slot] ?? null; connection !== null; connection = connection.slotNext) open += 1;
    }
    return open;
  }
}
