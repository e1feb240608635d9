/**
 * The main thread's handle on a listener whose sockets live in the data-plane workers: one
 * `reusePort` socket per worker (src/control/workers.ts). The runtime drives it exactly like an
 * in-thread `Listener` (both are a `ListenerHandle`); its figures are the process-wide shared ones.
 */
import type { ListenerConfig } from '../config/types.js';
import type { BackendPool } from '../proxy/backend-pool.js';
import { formatPeer } from '../proxy/connection.js';
import type { ListenerHandle, ListenerStats, SourceLimitsProvider } from '../proxy/listener.js';
import type { SharedListenerState } from '../shared-state/pool-state.js';
import type { ListenerTrafficCounters } from '../shared-state/traffic-counters.js';
import type { WorkerSupervisor } from './workers.js';

export class ThreadedListener implements ListenerHandle {
  readonly listenerName: string;
  pool: BackendPool;
  #config: ListenerConfig;
  readonly #supervisor: WorkerSupervisor;
  readonly #id: number;
  readonly #state: SharedListenerState;
  #port = 0;
  #closing: Promise<void> | null = null;
  readonly #sourceLimits: SourceLimitsProvider;

  constructor(config: ListenerConfig, pool: BackendPool, supervisor: WorkerSupervisor, traffic: ListenerTrafficCounters, sourceLimits: SourceLimitsProvider) {
    this.listenerName = config.name;
    this.pool = pool;
    this.#config = config;
    this.#supervisor = supervisor;
    this.#sourceLimits = sourceLimits;
    this.#id = supervisor.createListener(config, pool, traffic, sourceLimits(config)?.buffer ?? null);
    this.#state = supervisor.listenerState(this.#id);
  }

  get config(): ListenerConfig {
    return this.#config;
  }

  async listen(): Promise<string> {
    try {
      this.#port = await this.#supervisor.listen(this.#id);
    } catch (error) {
      throw new Error(`listener ${this.listenerName}: cannot listen on ${this.#config.bind.text}: ${error instanceof Error ? error.message : String(error)}`);
    }
    return this.address();
  }

  address(): string {
    return this.#port === 0 ? this.#config.bind.text : formatPeer(this.#config.bind.host, this.#port);
  }

  stats(): ListenerStats {
    return { accepted: this.#state.accepted(), active: this.#state.active(), rejectedMaxConnections: this.#state.rejected() };
  }

  setPool(pool: BackendPool): void {
    this.pool = pool;
    this.#supervisor.updateListener(this.#id, this.#config, pool);
  }

  updateLimits(config: ListenerConfig): void {
    this.#config = config;
    this.#supervisor.updateListener(this.#id, config, this.pool, this.#sourceLimits(config)?.buffer ?? null);
  }

  stopListening(): void {
    void this.close();
  }

  close(): Promise<void> {
    return (this.#closing ??= this.#supervisor.stopListener(this.#id));
  }

  whenIdle(): Promise<void> {
    return this.#supervisor.whenListenerIdle(this.#id);
  }

  closeAllConnections(): number {
    const open = this.#state.active();
    this.#supervisor.cutListener(this.#id);
    return open;
  }
}
