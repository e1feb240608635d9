/**
 * Backend-id ↔ slot assignment, shared by the WASM and reference balancers so both see the same
 * slots. A slot is stable for as long as its backend stays in the set. A removed backend's slot is
 * not reused within the same setBackends call, nor while it still has active connections (draining
 * connections will still call release(slot) on it).
 */
import { backendIdLength, MAX_BACKEND_ID_LENGTH, MAX_WEIGHT } from '../backend.js';
import { backendIdentity, type BackendIdentity } from './hash.js';
import type { CoreBackend } from './types.js';

export interface SlotChange {
  readonly changed: boolean;
  readonly slots: ReadonlyMap<string, number>;
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly reweighted: readonly string[];
  /** Slots that now hold a new backend (write identity + weight, reset per-slot state). */
  readonly addedSlots: readonly number[];
  /** Slots whose backend left the set. */
  readonly removedSlots: readonly number[];
  /** Slots whose backend stays with a new weight. */
  readonly reweightedSlots: readonly number[];
}

export class SlotTable {
  readonly capacity: number;
  readonly #idBySlot: (string | undefined)[];
  readonly #slotById = new Map<string, number>();
  readonly #weightBySlot: Int32Array;
  readonly #identityBySlot: (BackendIdentity | undefined)[];

  constructor(capacity: number) {
    this.capacity = capacity;
    this.#idBySlot = new Array<string | undefined>(capacity).fill(undefined);
    this.#identityBySlot = new Array<BackendIdentity | undefined>(capacity).fill(undefined);
    this.#weightBySlot = new Int32Array(capacity);
  }

  slotOf(id: string): number {
    return this.#slotById.get(id) ?? -1;
  }

  idOf(slot: number): string | undefined {
    return this.#idBySlot[slot];
  }

  weightOf(slot: number): number {
    return this.#weightBySlot[slot];
  }

  identityOf(slot: number): BackendIdentity | undefined {
    return this.#identityBySlot[slot];
  }

  /**
   * Validates the whole new set first (nothing changes on error), then diffs and assigns slots.
   * `activeConnections(slot)` tells which free slots still drain connections.
   */
  apply(backends: readonly CoreBackend[], activeConnections: (slot: number) => number): SlotChange {
    const next = validateBackends(backends);
    const added: string[] = [];
    const reweighted: string[] = [];
    const reweightedSlots: number[] = [];
    for (const [id, weight] of next) {
      const slot = this.#slotById.get(id);
      if (slot === undefined) added.push(id);
      else if (this.#weightBySlot[slot] !== weight) {
        reweighted.push(id);
        reweightedSlots.push(slot);
      }
    }
    const removed: string[] = [];
    const removedSlots: number[] = [];
    for (const [id, slot] of this.#slotById) {
      if (!next.has(id)) {
        removed.push(id);
        removedSlots.push(slot);
      }
    }
    if (added.length === 0 && removed.length === 0 && reweighted.length === 0) {
      return { changed: false, slots: new Map(this.#slotById), added, removed, reweighted, addedSlots: [], removedSlots: [], reweightedSlots: [] };
    }

    // Identities of kept backends are cached; a 64-bit collision between two distinct ids would make
    // the table order ambiguous, so it is refused (probability ~n²/2^65).
    const identities = new Map<string, BackendIdentity>();
    const seen = new Map<string, string>();
    for (const id of next.keys()) {
      const slot = this.#slotById.get(id);
      const identity = (slot === undefined ? undefined : this.#identityBySlot[slot]) ?? backendIdentity(id);
      const key = `${identity.hi}:${identity.lo}`;
      const other = seen.get(key);
      if (other !== undefined) {
        throw new RangeError(`backend ids ${JSON.stringify(other)} and ${JSON.stringify(id)} collide in the 64-bit identity hash; rename one`);
      }
      seen.set(key, id);
      identities.set(id, identity);
    }

    // Free = unoccupied before this call (so no slot removed now is reused now) and not draining.
    const addedSlots: number[] = [];
    for (let slot = 0; slot < this.capacity && addedSlots.length < added.length; slot++) {
      if (this.#idBySlot[slot] === undefined && activeConnections(slot) === 0) addedSlots.push(slot);
    }
    if (addedSlots.length < added.length) {
      throw new RangeError(
        `backend set needs ${added.length} new slots but only ${addedSlots.length} are free ` +
          `(maxBackends ${this.capacity}; slots of removed backends stay reserved while they drain)`,
      );
    }

    for (let i = 0; i < removed.length; i++) {
      const slot = removedSlots[i];
      this.#slotById.delete(removed[i]);
      this.#idBySlot[slot] = undefined;
      this.#identityBySlot[slot] = undefined;
      this.#weightBySlot[slot] = 0;
    }
    for (let i = 0; i < added.length; i++) {
      const id = added[i];
      const slot = addedSlots[i];
      this.#slotById.set(id, slot);
      this.#idBySlot[slot] = id;
      this.#identityBySlot[slot] = identities.get(id);
      this.#weightBySlot[slot] = next.get(id) ?? 0;
    }
    for (let i = 0; i < reweighted.length; i++) {
      this.#weightBySlot[reweightedSlots[i]] = next.get(reweighted[i]) ?? 0;
    }
    return { changed: true, slots: new Map(this.#slotById), added, removed, reweighted, addedSlots, removedSlots, reweightedSlots };
  }
}

/** Checks shape, id and weight of every backend; returns id → weight in input order. */
export function validateBackends(backends: readonly CoreBackend[]): Map<string, number> {
  if (!Array.isArray(backends)) throw new TypeError('backends must be an array');
  const result = new Map<string, number>();
  backends.forEach((backend: CoreBackend, index: number) => {
    if (typeof backend !== 'object' || backend === null) throw new TypeError(`backends[${index}] must be an object`);
    const { id, weight } = backend;
    // `id.length` (UTF-16 units) is never below the code-point count: only a long id pays for the count.
    const tooLong = typeof id === 'string' && id.length > MAX_BACKEND_ID_LENGTH && backendIdLength(id) > MAX_BACKEND_ID_LENGTH;
    if (typeof id !== 'string' || id.length === 0 || tooLong) {
      throw new TypeError(`backends[${index}].id must be a non-empty string of at most ${MAX_BACKEND_ID_LENGTH} characters`);
    }
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
      throw new RangeError(`backends[${index}].weight must be an integer in 0..${MAX_WEIGHT}, got ${String(weight)}`);
    }
    if (result.has(id)) throw new RangeError(`backends[${index}].id ${JSON.stringify(id)} is a duplicate`);
    result.set(id, weight);
  });
  return result;
}
