/**
 * The registry: the one writer of every non-static pool's membership (ARCHITECTURE.md "One writer
 * per fact"). It subscribes each such pool to its source — a file, DNS or etcd `DiscoverySource`,
 * or the `RegistrationStore` fed by the admin API — and every FULL set a source reports is diffed
 * against the pool's current set: an unchanged set costs nothing ("Diff, don't rebuild"); a
 * changed one goes through the host's `applyBackends` (BackendPool.setBackends: one table build,
 * removed backends drain) and is logged once as `pool updated` with what moved.
 *
 * A failing source never empties a pool: the sources themselves keep the last good set and retry
 * with backoff; they tell us once per outage (`discovery error`) and once on recovery
 * (`discovery recovered`), after which they resync the full set.
 *
 * The registry never caches a pool object: a reload may remove a pool and add one of the same
 * name, so every update asks the host for the pool by name.
 */
import type { Backend, BackendSource } from '../backend.js';
import type { DiscoveryConfig } from '../config/types.js';
import type { RebuildReport } from '../core/types.js';
import { createDiscoverySource, sameBackendSet, sortById, type DiscoveryOptions, type DiscoverySource } from '../discovery/index.js';
import type { Logger } from '../log.js';
import type { RegistrationStore } from '../discovery/registration-store.js';
import { publishSetChange } from '../events/membership.js';
import { NO_EVENTS, type EventSink } from '../events/types.js';

/** What the registry needs from the runtime. */
export interface RegistryHost {
  /** The pool's current set, or undefined when the pool no longer exists. */
  currentBackends(pool: string): readonly Backend[] | undefined;
  /**
   * Apply a new set (the runtime may build a bigger pool when the set outgrows the slots). Throws
   * when the set cannot be applied; the pool then keeps its current set.
   */
  applyBackends(pool: string, backends: readonly Backend[]): RebuildReport;
  /**
   * The set the pool runs (admin overrides applied), when it differs from what sources report.
   * Events describe this set: a report that ends an override changes what runs, not what was
   * reported (a drained backend whose config weight changed goes back to active). Absent: the
   * reported set is the set that runs.
   */
  runningBackends?(pool: string): readonly Backend[] | undefined;
}

export interface RegistryOptions {
  readonly logger: Logger;
  readonly store: RegistrationStore;
  readonly host: RegistryHost;
  /** Builds a source from discovery options; default `createDiscoverySource` (tests inject fakes). */
  readonly createSource?: (options: DiscoveryOptions) => DiscoverySource;
  /** Where applied set changes are published (backend_added, …); default none. */
  readonly events?: EventSink;
}

/** Where a `pool updated` line's set came from: a discovery type, or `config` (reload of a static pool). */
export type UpdateOrigin = BackendSource | 'config';

interface Subscription {
  readonly type: DiscoveryConfig['type'];
  readonly source: DiscoverySource | null;
}

/** The contract's `pool updated` line. Shared with the runtime, which logs reloads the same way. */
export function logPoolUpdated(
  logger: Logger,
  pool: string,
  source: UpdateOrigin,
  report: Pick<RebuildReport, 'added' | 'removed' | 'reweighted' | 'buildMs' | 'movedShare'>,
  backends: number,
): void {
  logger.info(
    {
      pool,
      source,
      added: report.added,
      removed: report.removed,
      reweighted: report.reweighted,
      buildMs: Math.round(report.buildMs * 1000) / 1000,
      movedShare: Math.round(report.movedShare * 1e6) / 1e6,
      backends,
    },
    'pool updated',
  );
}

export class Registry {
  readonly #logger: Logger;
  readonly #store: RegistrationStore;
  readonly #host: RegistryHost;
  readonly #createSource: (options: DiscoveryOptions) => DiscoverySource;
  readonly #events: EventSink;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #unsubscribeStore: () => void;
  #stopped = false;

  constructor(options: RegistryOptions) {
    this.#logger = options.logger;
    this.#store = options.store;
    this.#host = options.host;
    this.#createSource = options.createSource ?? createDiscoverySource;
    this.#events = options.events ?? NO_EVENTS;
    this.#unsubscribeStore = this.#store.onChange((pool, backends) => {
      if (this.#subscriptions.get(pool)?.type === 'registration') this.update(pool, 'registration', backends);
    });
  }

  /**
   * Builds (does not start) the source for `discovery`: null for static and registration. Throws a
   * TypeError for options the source refuses, so a reload can refuse before changing anything.
   */
  prepareSource(discovery: DiscoveryConfig): DiscoverySource | null {
    if (discovery.type === 'static' || discovery.type === 'registration') return null;
    return this.#createSource(discovery);
  }

  /**
   * Subscribes `pool` to its discovery (replacing any earlier subscription, which is stopped).
   * `prepared` is a source from `prepareSource` for this discovery; built here when absent.
   */
  async watch(pool: string, discovery: DiscoveryConfig, prepared?: DiscoverySource | null): Promise<void> {
    await this.unwatch(pool);
    if (discovery.type === 'static' || this.#stopped) {
      await prepared?.stop();
      return;
    }
    if (discovery.type === 'registration') {
      this.#subscriptions.set(pool, { type: 'registration', source: null });
      this.#store.addPool(pool);
      return;
    }
    const source = prepared ?? this.#createSource(discovery);
    const subscription: Subscription = { type: discovery.type, source };
    this.#subscriptions.set(pool, subscription);
    const current = (): boolean => this.#subscriptions.get(pool) === subscription;
    const origin = discovery.type;
    source.start({
      onUpdate: (backends) => {
        if (current()) this.update(pool, origin, backends);
      },
      onError: (error) => {
        if (current()) this.#logger.warn({ pool, source: origin, err: error.message }, 'discovery error');
      },
      onRecovered: () => {
        if (current()) this.#logger.info({ pool, source: origin }, 'discovery recovered');
      },
      onInvalidEntry: (error) => {
        if (current()) this.#logger.warn({ pool, source: origin, err: error.message }, 'discovery entry skipped');
      },
    });
    this.#logger.info({ pool, source: origin, description: source.description }, 'discovery started');
  }

  /** Ends `pool`'s subscription (its set stays as it is). */
  async unwatch(pool: string): Promise<void> {
    const subscription = this.#subscriptions.get(pool);
    if (subscription === undefined) return;
    this.#subscriptions.delete(pool);
    if (subscription.type === 'registration') this.#store.removePool(pool);
    await subscription.source?.stop();
  }

  /** The discovery type feeding `pool` (static when none). */
  sourceOf(pool: string): BackendSource {
    return this.#subscriptions.get(pool)?.type ?? 'static';
  }

  /**
   * Diffs `backends` against the pool's current set and applies it when different. Returns true
   * when something was applied (and logged as `pool updated`).
   */
  update(pool: string, origin: UpdateOrigin, backends: readonly Backend[]): boolean {
    const current = this.#host.currentBackends(pool);
    if (current === undefined) return false;
    const next = sortById(backends);
    if (sameBackendSet(sortById(current), next)) return false;
    const runningBefore = this.#host.runningBackends?.(pool) ?? current;
    let report: RebuildReport;
    try {
      report = this.#host.applyBackends(pool, next);
    } catch (error) {
      // The pool keeps routing on its current set; the next report from the source tries again.
      this.#logger.error({ pool, source: origin, err: error instanceof Error ? error.message : String(error) }, 'pool update refused');
      return false;
    }
    logPoolUpdated(this.#logger, pool, origin, report, next.length);
    publishSetChange(this.#events, pool, origin, runningBefore, this.#host.runningBackends?.(pool) ?? next);
    return true;
  }

  /** Stops every source; the store keeps its entries (it is closed by its owner). Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribeStore();
    const pools = [...this.#subscriptions.keys()];
    await Promise.all(pools.map((pool) => this.unwatch(pool)));
  }
}
