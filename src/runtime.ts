/**
 * `Ringlb`: the running process's data plane, built from one validated config.
 *
 * It owns pools (by name) and listeners (by name) so that a later hot reload can diff a new config
 * against them (add/remove listeners, `pool.setBackends` for membership changes) and an admin
 * server can read `stats()`. Nothing here parses or validates config: that happened at the edge.
 */
import type { RinglbConfig } from './config/types.js';
import type { Logger } from './log.js';
import { HealthCheckScheduler } from './health/scheduler.js';
import { BackendPool } from './proxy/backend-pool.js';
import { Listener, type ListenerStats } from './proxy/listener.js';

export interface RinglbOptions {
  readonly logger: Logger;
  /** Balancer implementation for every pool; default is the core's default (WASM). */
  readonly coreImplementation?: 'wasm' | 'reference';
}

export interface DrainResult {
  /** Connections still open at the deadline and cut. */
  readonly forced: number;
  readonly elapsedMs: number;
}

export class Ringlb {
  readonly #logger: Logger;
  readonly #coreImplementation: 'wasm' | 'reference' | undefined;
  readonly #pools = new Map<string, BackendPool>();
  readonly #listeners = new Map<string, Listener>();
  /** One for every pool: its concurrency cap is process-wide (1000 backends never open 1000 sockets at once). */
  readonly #checks = new HealthCheckScheduler();
  #started = false;

  constructor(options: RinglbOptions) {
    this.#logger = options.logger;
    this.#coreImplementation = options.coreImplementation;
  }

  /**
   * Build every pool, then bind every listener. If a bind fails, the listeners already bound are
   * closed again and the error is thrown: a half-started balancer never serves.
   */
  async start(config: RinglbConfig): Promise<void> {
    if (this.#started) throw new Error('ringlb: start() called twice');
    this.#started = true;
    for (const poolConfig of config.pools) {
      const pool = new BackendPool({
        config: poolConfig,
        logger: this.#logger.child({ pool: poolConfig.name }),
        implementation: this.#coreImplementation,
      });
      this.#pools.set(poolConfig.name, pool);
    }
    // After every pool is built: a check result can only land on a pool that exists. Checks start
    // before the listeners bind, so pending backends get their first verdict as early as possible.
    for (const pool of this.#pools.values()) pool.startHealthChecks(this.#checks);
    for (const listenerConfig of config.listeners) {
      const pool = this.#pools.get(listenerConfig.pool);
      if (pool === undefined) {
        throw new Error(`listener ${listenerConfig.name}: unknown pool ${listenerConfig.pool}`);
      }
      const logger = this.#logger.child({ listener: listenerConfig.name });
      this.#listeners.set(listenerConfig.name, new Listener(listenerConfig, pool, logger));
    }
    try {
      for (const [name, listener] of this.#listeners) {
        const address = await listener.listen();
        this.#logger.info({ listener: name, pool: listener.pool.name, address }, 'listener ready');
      }
    } catch (error) {
      this.stopListening();
      this.stopHealth();
      throw error;
    }
  }

  pool(name: string): BackendPool | undefined {
    return this.#pools.get(name);
  }

  /** Bound address of a listener (`127.0.0.1:43121`), for embedders and tests. */
  listenerAddress(name: string): string | undefined {
    return this.#listeners.get(name)?.address();
  }

  stats(): Record<string, ListenerStats> {
    const out: Record<string, ListenerStats> = {};
    for (const [name, listener] of this.#listeners) out[name] = listener.stats();
    return out;
  }

  /** Stop active checks, ejection and slow-start timers; eligibility stays as it was last set. */
  stopHealth(): void {
    this.#checks.stop();
    for (const pool of this.#pools.values()) pool.health.stop();
  }

  /** Close every listening socket now; open connections are untouched. */
  stopListening(): void {
    for (const listener of this.#listeners.values()) listener.stopListening();
  }

  /**
   * Graceful stop: refuse new connections at once, let open ones finish, and cut whatever is still
   * open after `timeoutMs`.
   */
  async drain(timeoutMs: number): Promise<DrainResult> {
    const startedAt = performance.now();
    this.stopListening();
    // Nothing new is routed from here on, so health no longer matters; open connections keep flowing.
    this.stopHealth();
    const allIdle = Promise.all([...this.#listeners.values()].map((l) => l.whenIdle()));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(resolve, timeoutMs, 'deadline');
    });
    const winner = await Promise.race([allIdle.then(() => 'idle' as const), deadline]);
    clearTimeout(timer);
    let forced = 0;
    if (winner === 'deadline') {
      for (const listener of this.#listeners.values()) forced += listener.closeAllConnections();
      await allIdle;
    }
    return { forced, elapsedMs: Math.round(performance.now() - startedAt) };
  }

  /** Stop at once: no listening, every connection cut. */
  async close(): Promise<void> {
    await this.drain(0);
  }
}
