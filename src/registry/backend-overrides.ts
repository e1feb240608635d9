/**
 * Runtime overrides of a backend's state and weight, set by the admin API (HAProxy's
 * `set server <b>/<s> state|weight`): they sit between the set a pool's source reports (the
 * config, a discovery source, registrations: the *configured* set) and the set the pool runs.
 *
 * An override lasts until the source changes that backend: when a reported set gives the backend
 * another address, weight or state than it had when the override was set, or drops it, the
 * override ends and the reported backend applies as is. A report that leaves the backend as it was
 * (an unrelated reload, a discovery resync) keeps it. This module only decides; the runtime hands
 * the resulting set to the pool through the same path every membership change takes
 * (BackendPool.setBackends), so the pool's health owner applies a state and the core rebuilds for
 * a weight, as for a reload.
 *
 * A pool without overrides is not tracked at all: its configured set is the set it runs.
 */
import type { Backend, BackendState } from '../backend.js';

/** What an admin set on one backend; a field the override leaves alone is absent. */
export interface BackendOverride {
  readonly state?: BackendState;
  readonly weight?: number;
  /** When it was last changed (epoch ms). */
  readonly at: number;
}

export interface OverrideChange {
  readonly state?: BackendState;
  readonly weight?: number;
}

/** A set computed from a report and the overrides, not yet adopted: `commit` after the pool took it. */
export interface ResolvedSet {
  /** The set the pool should run: configured backends with their overrides applied. */
  readonly backends: readonly Backend[];
  /** Ids whose override the report ended (the source changed or dropped the backend). */
  readonly released: readonly string[];
  commit(): void;
}

interface OverrideEntry {
  readonly override: BackendOverride;
  /** The backend as the source reported it when the override was set: a report that differs ends it. */
  readonly basis: Backend;
}

interface PoolOverrides {
  readonly configured: readonly Backend[];
  readonly byId: ReadonlyMap<string, OverrideEntry>;
}

export class BackendOverrides {
  readonly #pools = new Map<string, PoolOverrides>();

  /** The set the pool's source last reported, while the pool has overrides; undefined when it has none. */
  configured(pool: string): readonly Backend[] | undefined {
    return this.#pools.get(pool)?.configured;
  }

  get(pool: string, id: string): BackendOverride | undefined {
    return this.#pools.get(pool)?.byId.get(id)?.override;
  }

  /** The source reported `configured` for `pool`: overrides of backends it changed or dropped end. */
  resolve(pool: string, configured: readonly Backend[]): ResolvedSet {
    const current = this.#pools.get(pool);
    const byId = new Map<string, OverrideEntry>();
    const released: string[] = [];
    if (current !== undefined) {
      const reported = new Map(configured.map((backend) => [backend.id, backend]));
      for (const [id, entry] of current.byId) {
        const now = reported.get(id);
        if (now !== undefined && sameBackend(now, entry.basis)) byId.set(id, entry);
        else released.push(id);
      }
    }
    return this.#resolved(pool, configured, byId, released);
  }

  /**
   * An admin changes backend `id` of `pool`, whose source reports `configured`. A field set to what
   * the source says is no override (it is dropped), so `{"state": "active"}` on a backend the
   * config lists as active returns it to the config. Undefined when `configured` has no such id.
   */
  set(pool: string, configured: readonly Backend[], id: string, change: OverrideChange, at: number): ResolvedSet | undefined {
    const basis = configured.find((backend) => backend.id === id);
    if (basis === undefined) return undefined;
    const byId = new Map(this.#pools.get(pool)?.byId ?? []);
    const previous = byId.get(id)?.override;
    const state = change.state ?? previous?.state;
    const weight = change.weight ?? previous?.weight;
    const override: BackendOverride = {
      ...(state !== undefined && state !== basis.state ? { state } : {}),
      ...(weight !== undefined && weight !== basis.weight ? { weight } : {}),
      at,
    };
    if (override.state === undefined && override.weight === undefined) byId.delete(id);
    else byId.set(id, { override, basis });
    return this.#resolved(pool, configured, byId, []);
  }

  /** The pool is gone (reload): its overrides go with it; a pool added later by that name starts clean. */
  forgetPool(pool: string): void {
    this.#pools.delete(pool);
  }

  #resolved(pool: string, configured: readonly Backend[], byId: ReadonlyMap<string, OverrideEntry>, released: readonly string[]): ResolvedSet {
    const backends = byId.size === 0 ? configured : configured.map((backend) => applyOverride(backend, byId.get(backend.id)?.override));
    return {
      backends,
      released,
      commit: () => {
        if (byId.size === 0) this.#pools.delete(pool);
        else this.#pools.set(pool, { configured, byId });
      },
    };
  }
}

function applyOverride(backend: Backend, override: BackendOverride | undefined): Backend {
  if (override === undefined) return backend;
  return { ...backend, state: override.state ?? backend.state, weight: override.weight ?? backend.weight };
}

/** The facts an override is set over: a change of any of them is the source changing the backend. */
function sameBackend(a: Backend, b: Backend): boolean {
  return a.address.text === b.address.text && a.weight === b.weight && a.state === b.state;
}
