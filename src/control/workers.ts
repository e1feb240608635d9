/**
 * The main thread's side of the data-plane worker threads (ARCHITECTURE.md "All cores: one control
 * plane, many data planes"): it starts them, tells them every change (pool snapshots, listeners),
 * hands their passive-health reports to the pools' outlier detectors, and replaces a worker that
 * dies. Workers own sockets and connections; everything else stays here.
 *
 * Listening: each listener is a `reusePort` group with one socket per worker, so the kernel spreads
 * new connections over the workers with no hand-off. The group's port is settled first by a plain
 * (exclusive) probe bind in this thread: port 0 becomes a real port every worker then joins, and an
 * address another process holds is refused as it would be without reusePort, instead of being
 * silently shared with that process.
 *
 * A worker that dies (an uncaught exception) is logged with its stack and replaced at once; its own
 * connections die with it (the kernel closes its sockets), its share of every shared count is taken
 * off, and the other workers keep serving. Connections waiting in the dead worker's accept queue
 * are reset by the kernel unless `net.ipv4.tcp_migrate_req` is 1 (Linux ≥ 5.14), which moves them
 * to another socket of the group.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Worker } from 'node:worker_threads';
import type { ListenerConfig, LogLevel } from '../config/types.js';
import { DEFAULT_ACCESS_LOG, type AccessLogSettings } from '../access-log/settings.js';
import type { Logger } from '../log.js';
import type { BackendPool, PoolSharing } from '../proxy/backend-pool.js';
import type { FromWorker, ToWorker, WorkerStart } from '../proxy/worker-protocol.js';
import { SharedListenerState, SharedPoolState } from '../shared-state/pool-state.js';
import { DEFAULT_TRAFFIC_FLUSH_MS, type ListenerTrafficCounters } from '../shared-state/traffic-counters.js';
import { LoopDelayCells } from '../shared-state/loop-delay.js';

export interface WorkerSupervisorOptions {
  readonly count: number;
  readonly logLevel: LogLevel;
  /** Access-log settings at start (default: the defaults); `configureAccessLog` changes them. */
  readonly accessLog?: AccessLogSettings;
  /** The access log's output descriptor (access-log/output.ts), owned by the caller; default stdout. */
  readonly accessLogFd?: number;
  readonly logger: Logger;
  /** Honour the test-only fault hook (`crashForTest`). */
  readonly testHooks: boolean;
  /** The worker's module; default dist/src/proxy/worker-thread.js (tests pass one that fails). */
  readonly workerUrl?: URL;
  /** Where workers write their event-loop delay (row 1 + index); default: nowhere read. */
  readonly loopDelay?: LoopDelayCells;
  /** How often workers flush open connections' bytes into the counters; default DEFAULT_TRAFFIC_FLUSH_MS. */
  readonly trafficFlushMs?: number;
}

interface WorkerSlot {
  worker: Worker;
  ready: boolean;
  /** Resolves when the worker said `ready`; rejects when it exited before. */
  readonly started: Promise<void>;
}

interface PoolEntry {
  readonly id: number;
  readonly pool: BackendPool;
  readonly state: SharedPoolState;
  forgotten: boolean;
}

interface ListenerGroup {
  readonly id: number;
  config: ListenerConfig;
  poolId: number;
  port: number;
  readonly state: SharedListenerState;
  readonly traffic: ListenerTrafficCounters;
  /** Per-source limits (src/shared-state/source-limits.ts) once the config set one; kept for the group's life. */
  sourceLimits: SharedArrayBuffer | null;
  /** Set once every worker's socket is open; replacements join only live groups. */
  listening: boolean;
  stopped: boolean;
  /** Workers (by index) whose socket has closed / whose connections have all ended, after stop. */
  readonly closedBy: Set<number>;
  readonly idleBy: Set<number>;
  closedWaiters: Array<() => void>;
  idleWaiters: Array<() => void>;
}

type Pending = { resolve: (message: FromWorker) => void; reject: (error: Error) => void; worker: number };

const CRASH_BURST = 5;
const CRASH_WINDOW_MS = 10_000;
const CRASH_BACKOFF_MS = 1000;

/** dist/src/control → dist/src/proxy/worker-thread.js. */
const WORKER_PATH = new URL('../proxy/worker-thread.js', import.meta.url);

export class WorkerSupervisor {
  readonly count: number;
  readonly #logLevel: LogLevel;
  /** Current access-log settings: what a replacement worker starts with. */
  #accessLog: AccessLogSettings;
  #accessLogFd: number;
  readonly #logger: Logger;
  readonly #testHooks: boolean;
  readonly #workerUrl: URL;
  readonly #loopDelay: SharedArrayBuffer;
  readonly #trafficFlushMs: number;
  readonly #workers: WorkerSlot[] = [];
  readonly #pools = new Map<number, PoolEntry>();
  readonly #poolIds = new Map<BackendPool, number>();
  readonly #listeners = new Map<number, ListenerGroup>();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  /** Recent death times (performance.now) per worker index. */
  readonly #deaths: number[][] = [];
  #stopping = false;
  /** Every first worker was ready: from here on a worker that exits is replaced. */
  #running = false;
  /** Resolvers waiting for the next replacement worker to be ready (tests). */
  #replacedWaiters: Array<(index: number) => void> = [];

  constructor(options: WorkerSupervisorOptions) {
    this.count = options.count;
    this.#logLevel = options.logLevel;
    this.#accessLog = options.accessLog ?? DEFAULT_ACCESS_LOG;
    this.#accessLogFd = options.accessLogFd ?? 1;
    this.#logger = options.logger;
    this.#testHooks = options.testHooks;
    this.#workerUrl = options.workerUrl ?? WORKER_PATH;
    this.#loopDelay = (options.loopDelay ?? LoopDelayCells.create(options.count)).buffer;
    this.#trafficFlushMs = options.trafficFlushMs ?? DEFAULT_TRAFFIC_FLUSH_MS;
  }

  /**
   * Starts every worker; resolves when all are ready. A worker that exits before it is ready fails
   * the start (and stops the others): what kills a new worker would kill each replacement too.
   */
  async start(): Promise<void> {
    for (let index = 0; index < this.count; index++) this.#workers.push(this.#spawn(index));
    try {
      await Promise.all(this.#workers.map((slot) => slot.started));
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.#running = true;
    this.#logger.info({ workers: this.count }, 'data-plane workers ready');
    if (readMigrateRequests() === '0') {
      this.#logger.info(
        { sysctl: 'net.ipv4.tcp_migrate_req', value: 0 },
        'connections waiting in the accept queue of a worker that dies are reset; net.ipv4.tcp_migrate_req=1 (Linux >= 5.14) moves them to the other workers',
      );
    }
  }

  /** What a pool needs to run with its connections in the workers. */
  sharingFor(): PoolSharing {
    const state = SharedPoolState.create(this.count);
    return {
      state,
      publish: (pool) => this.#publish(pool, state),
      forget: (pool) => this.#forget(pool),
    };
  }

  #publish(pool: BackendPool, state: SharedPoolState): void {
    let id = this.#poolIds.get(pool);
    if (id === undefined) {
      // Retired after its entry was swept: no worker holds a replica of it any more.
      if (pool.retired) return;
      id = this.#nextId++;
      this.#poolIds.set(pool, id);
      this.#pools.set(id, { id, pool, state, forgotten: false });
    }
    const message: ToWorker = { type: 'pool', poolId: id, snapshot: pool.snapshot(), state: state.buffer };
    for (const slot of this.#workers) if (slot.ready) slot.worker.postMessage(message);
    // After sending: a pool retired with no connection left must reach the workers as retired
    // under its own id (then they drop it) before it is swept here.
    this.#sweepPools();
  }

  /** Pools stopped or removed whose last connection has ended are no longer anyone's concern. */
  #sweepPools(): void {
    for (const [id, entry] of this.#pools) {
      if ((entry.forgotten || entry.pool.retired) && entry.pool.openConnections() === 0) {
        this.#pools.delete(id);
        this.#poolIds.delete(entry.pool);
      }
    }
  }

  #forget(pool: BackendPool): void {
    const id = this.#poolIds.get(pool);
    if (id === undefined) return;
    const entry = this.#pools.get(id)!;
    if (entry.forgotten) return;
    entry.forgotten = true;
    this.#broadcast({ type: 'forget-pool', poolId: id });
    this.#sweepPools();
  }

  #poolId(pool: BackendPool): number {
    const id = this.#poolIds.get(pool);
    if (id === undefined) throw new Error(`pool ${pool.name} was never published to the workers`);
    return id;
  }

  // --- listeners ---------------------------------------------------------------------------------

  /** A new listener group; `listen` opens it. */
  createListener(config: ListenerConfig, pool: BackendPool, traffic: ListenerTrafficCounters, sourceLimits: SharedArrayBuffer | null = null): number {
    const id = this.#nextId++;
    this.#listeners.set(id, {
      id,
      config,
      poolId: this.#poolId(pool),
      port: config.bind.port,
      state: SharedListenerState.create(this.count),
      traffic,
      sourceLimits,
      listening: false,
      stopped: false,
      closedBy: new Set(),
      idleBy: new Set(),
      closedWaiters: [],
      idleWaiters: [],
    });
    return id;
  }

  listenerState(listenerId: number): SharedListenerState {
    return this.#group(listenerId).state;
  }

  /**
   * Opens one socket per worker on the listener's address; resolves with the bound port. A worker
   * being replaced (or dying meanwhile) is no failure: its replacement joins once ready, here or in
   * `#replay`, whichever comes second.
   */
  async listen(listenerId: number): Promise<number> {
    const group = this.#group(listenerId);
    group.port = await probePort(group.config.bind.host, group.config.bind.port);
    const opened: number[] = [];
    const joined: (WorkerSlot | undefined)[] = [];
    try {
      for (let index = 0; index < this.#workers.length; index++) {
        const slot = this.#workers[index]!;
        if (!slot.ready) continue;
        try {
          await this.#listenOn(index, group);
        } catch (error) {
          if (slot.ready) throw error;
          continue;
        }
        opened.push(index);
        joined[index] = slot;
      }
    } catch (error) {
      for (const index of opened) this.#post(index, { type: 'listener-stop', listenerId });
      this.#listeners.delete(listenerId);
      throw error;
    }
    group.listening = true;
    // A replacement that became ready while the group was opening found it not listening yet.
    for (let index = 0; index < this.#workers.length; index++) {
      const slot = this.#workers[index]!;
      if (slot.ready && joined[index] !== slot) void this.#join(index, group);
    }
    return group.port;
  }

  /** A worker that was not there when the group opened takes its socket; a failure is logged. */
  #join(index: number, group: ListenerGroup): Promise<void> {
    return this.#listenOn(index, group).catch((error: unknown) => {
      this.#logger.error({ worker: index, listener: group.config.name, err: error instanceof Error ? error.message : String(error) }, 'replacement worker cannot listen');
    });
  }

  async #listenOn(index: number, group: ListenerGroup): Promise<void> {
    const reply = await this.#request(index, (requestId) => ({
      type: 'listen',
      requestId,
      listenerId: group.id,
      config: group.config,
      poolId: group.poolId,
      port: group.port,
      state: group.state.buffer,
      traffic: group.traffic.buffer,
      sourceLimits: group.sourceLimits,
    }));
    if (reply.type === 'listen-failed') throw new Error(reply.error);
  }

  updateListener(listenerId: number, config: ListenerConfig, pool: BackendPool, sourceLimits: SharedArrayBuffer | null = null): void {
    const group = this.#group(listenerId);
    group.config = config;
    group.poolId = this.#poolId(pool);
    group.sourceLimits ??= sourceLimits;
    this.#broadcast({ type: 'listener-update', listenerId, config, poolId: group.poolId, sourceLimits: group.sourceLimits });
  }

  /** Every worker stops accepting on this listener; resolves when every socket has closed. */
  stopListener(listenerId: number): Promise<void> {
    const group = this.#listeners.get(listenerId);
    if (group === undefined) return Promise.resolve();
    if (!group.stopped) {
      group.stopped = true;
      this.#broadcast({ type: 'listener-stop', listenerId });
    }
    return this.#waitFor(group, 'closed');
  }

  /** Resolves when no worker has a connection of this (stopped) listener. */
  whenListenerIdle(listenerId: number): Promise<void> {
    const group = this.#listeners.get(listenerId);
    if (group === undefined) return Promise.resolve();
    return this.#waitFor(group, 'idle');
  }

  /** Cut every connection of this listener in every worker. */
  cutListener(listenerId: number): void {
    this.#broadcast({ type: 'listener-cut', listenerId });
  }

  #waitFor(group: ListenerGroup, what: 'closed' | 'idle'): Promise<void> {
    const done = what === 'closed' ? group.closedBy : group.idleBy;
    if (done.size >= this.#workers.length) return Promise.resolve();
    return new Promise((resolve) => (what === 'closed' ? group.closedWaiters : group.idleWaiters).push(resolve));
  }

  #settle(group: ListenerGroup): void {
    if (group.closedBy.size >= this.#workers.length && group.closedWaiters.length > 0) {
      const waiters = group.closedWaiters;
      group.closedWaiters = [];
      for (const resolve of waiters) resolve();
    }
    if (group.idleBy.size >= this.#workers.length) {
      const waiters = group.idleWaiters;
      group.idleWaiters = [];
      for (const resolve of waiters) resolve();
      // Closed and idle in every worker (in either order): nothing more will come for it.
      if (group.closedBy.size >= this.#workers.length) this.#listeners.delete(group.id);
    }
  }

  #group(listenerId: number): ListenerGroup {
    const group = this.#listeners.get(listenerId);
    if (group === undefined) throw new Error(`unknown listener id ${listenerId}`);
    return group;
  }

  /**
   * Resolves once every worker has applied everything sent to it before this call (a reload says
   * `config reloaded` only when the data plane runs the new config). A worker that dies meanwhile
   * is replaced with the current state, so it counts as applied.
   */
  async sync(): Promise<void> {
    await Promise.all(
      this.#workers.map((_, index) => this.#request(index, (requestId) => ({ type: 'sync', requestId })).catch(() => undefined)),
    );
  }

  /**
   * Every worker applies `settings` and writes to `fd` from now on. Resolves once each has answered,
   * so the caller may close the previous descriptor: a worker that is down meanwhile (not answering)
   * gets these with its replay, before any listener, so it never writes to the old one either.
   */
  async configureAccessLog(settings: AccessLogSettings, fd: number): Promise<void> {
    this.#accessLog = settings;
    this.#accessLogFd = fd;
    await Promise.all(
      this.#workers.map((_, index) => this.#request(index, (requestId) => ({ type: 'access-log', requestId, settings, fd })).catch(() => undefined)),
    );
  }

  // --- tests and diagnostics ------------------------------------------------------------------------

  /** The table of `pool` as worker `index` built it (tests compare it with the main thread's). */
  async tableOf(index: number, pool: BackendPool): Promise<{ slots: Int32Array | null; positions: Uint32Array | null }> {
    const poolId = this.#poolId(pool);
    const reply = await this.#request(index, (requestId) => ({ type: 'table', requestId, poolId }));
    if (reply.type !== 'table') throw new Error(`unexpected reply ${reply.type}`);
    return { slots: reply.slots, positions: reply.positions };
  }

  /** How many pool replicas and listeners worker `index` holds (tests: nothing leaks across reloads). */
  async census(index: number): Promise<{ pools: number; listeners: number }> {
    const reply = await this.#request(index, (requestId) => ({ type: 'census', requestId }));
    if (reply.type !== 'census') throw new Error(`unexpected reply ${reply.type}`);
    return { pools: reply.pools, listeners: reply.listeners };
  }

  /** Test-only fault hook: worker `index` throws an uncaught exception (needs RINGLB_TEST_HOOKS=1). */
  crashForTest(index: number): Promise<number> {
    const replaced = new Promise<number>((resolve) => this.#replacedWaiters.push(resolve));
    this.#post(index, { type: 'crash-for-test' });
    return replaced;
  }

  /** Terminates every worker (after the drain: their connections are gone or cut). */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#workers.map((slot) => slot.worker.terminate()));
    // Nothing will answer now: a request still waiting (a reload racing the stop) fails instead of
    // hanging its caller.
    for (const [requestId, pending] of this.#pending) {
      this.#pending.delete(requestId);
      pending.reject(new Error('data-plane workers stopped'));
    }
  }

  // --- workers ---------------------------------------------------------------------------------------

  #spawn(index: number): WorkerSlot {
    const start: WorkerStart = {
      index,
      workers: this.count,
      logLevel: this.#logLevel,
      accessLog: this.#accessLog,
      accessLogFd: this.#accessLogFd,
      testHooks: this.#testHooks,
      trafficFlushMs: this.#trafficFlushMs,
      loopDelay: this.#loopDelay,
    };
    const worker = new Worker(this.#workerUrl, { workerData: start });
    let markReady!: () => void;
    let markFailed!: (error: Error) => void;
    const started = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      markFailed = reject;
    });
    // A replacement that dies before it is ready is handled by its own exit (one more death).
    started.catch(() => undefined);
    const slot: WorkerSlot = { worker, ready: false, started };
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'ready') {
        slot.ready = true;
        markReady();
        return;
      }
      this.#onMessage(index, message);
    });
    worker.on('error', (error: Error) => {
      // The Error itself, not a copy of its fields: pino's err serializer then names its type (a plain
      // object was logged as type "Object").
      this.#logger.error({ worker: index, err: error }, 'data-plane worker crashed');
    });
    worker.on('exit', (code) => {
      if (!slot.ready) markFailed(new Error(`data-plane worker ${index} exited (code ${code}) before it was ready`));
      this.#onExit(index, slot, code);
    });
    return slot;
  }

  #onMessage(index: number, message: FromWorker): void {
    switch (message.type) {
      case 'failures':
        for (const item of message.items) this.#pools.get(item.poolId)?.pool.reportWorkerConnectFailure(item.slot, item.backendId, item.reason);
        return;
      case 'listening':
      case 'listen-failed':
      case 'synced':
      case 'access-log-applied':
      case 'census':
      case 'table': {
        const pending = this.#pending.get(message.requestId);
        if (pending === undefined) return;
        this.#pending.delete(message.requestId);
        pending.resolve(message);
        return;
      }
      case 'listener-closed':
      case 'listener-idle': {
        const group = this.#listeners.get(message.listenerId);
        if (group === undefined) return;
        (message.type === 'listener-closed' ? group.closedBy : group.idleBy).add(index);
        this.#settle(group);
        return;
      }
      case 'ready':
        return;
    }
  }

  #onExit(index: number, slot: WorkerSlot, code: number): void {
    if (this.#stopping || !this.#running || this.#workers[index] !== slot) return;
    // Until its replacement is spawned (at once, or CRASH_BACKOFF_MS later) nothing may be sent to
    // it: a request posted to a dead thread is never answered.
    slot.ready = false;
    for (const [requestId, pending] of this.#pending) {
      if (pending.worker !== index) continue;
      this.#pending.delete(requestId);
      pending.reject(new Error(`data-plane worker ${index} exited (code ${code})`));
    }
    // Its connections died with it: their counts go, so least-connections and limits stay true.
    let lostConnections = 0;
    for (const entry of this.#pools.values()) entry.state.forgetWorker(index, entry.pool.capacity);
    for (const group of this.#listeners.values()) lostConnections += group.state.forgetWorker(index);
    // A fault that kills every replacement at once must not become a busy respawn loop: after
    // CRASH_BURST deaths within CRASH_WINDOW_MS, the next replacement waits CRASH_BACKOFF_MS.
    const now = performance.now();
    const recent = (this.#deaths[index] ?? []).filter((at) => now - at < CRASH_WINDOW_MS);
    recent.push(now);
    this.#deaths[index] = recent;
    const delayMs = recent.length > CRASH_BURST ? CRASH_BACKOFF_MS : 0;
    const replace = (): void => {
      if (this.#stopping) return;
      const replacement = this.#spawn(index);
      this.#workers[index] = replacement;
      void replacement.started.then(
        () => {
          this.#replay(index);
          this.#logger.warn({ worker: index, code, lostConnections, replacedInMs: Math.round(performance.now() - now) }, 'data-plane worker replaced');
        },
        // Died before it was ready: its own exit replaces it in turn.
        () => undefined,
      );
    };
    if (delayMs === 0) replace();
    else {
      this.#logger.error({ worker: index, deaths: recent.length, windowMs: CRASH_WINDOW_MS, delayMs }, 'data-plane worker keeps dying: replacing it more slowly');
      setTimeout(replace, delayMs).unref();
    }
  }

  /** A new worker learns everything a live one knows: every pool, then every open listener. */
  #replay(index: number): void {
    const slot = this.#workers[index]!;
    // First: spawned before a reopen, it may hold a descriptor closed since (request 0: no one waits).
    slot.worker.postMessage({ type: 'access-log', requestId: 0, settings: this.#accessLog, fd: this.#accessLogFd } satisfies ToWorker);
    for (const entry of this.#pools.values()) {
      // A new worker holds no connection, so removed pools (draining elsewhere) mean nothing to it.
      if (entry.forgotten || entry.pool.retired) continue;
      slot.worker.postMessage({ type: 'pool', poolId: entry.id, snapshot: entry.pool.snapshot(), state: entry.state.buffer } satisfies ToWorker);
    }
    const joins: Promise<void>[] = [];
    for (const group of this.#listeners.values()) {
      // A stopped listener gets no socket here; the new worker holds none of its connections.
      if (group.stopped) {
        group.closedBy.add(index);
        group.idleBy.add(index);
        this.#settle(group);
        continue;
      }
      if (!group.listening) continue;
      joins.push(this.#join(index, group));
    }
    void Promise.all(joins).then(() => {
      const waiters = this.#replacedWaiters;
      this.#replacedWaiters = [];
      for (const resolve of waiters) resolve(index);
    });
  }

  #post(index: number, message: ToWorker): void {
    const slot = this.#workers[index];
    if (slot?.ready) slot.worker.postMessage(message);
  }

  #broadcast(message: ToWorker): void {
    for (let index = 0; index < this.#workers.length; index++) this.#post(index, message);
  }

  #request(index: number, build: (requestId: number) => ToWorker): Promise<FromWorker> {
    const requestId = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(requestId, { resolve, reject, worker: index });
      const slot = this.#workers[index];
      if (slot === undefined || !slot.ready) {
        this.#pending.delete(requestId);
        reject(new Error(`data-plane worker ${index} is not running`));
        return;
      }
      slot.worker.postMessage(build(requestId));
    });
  }
}

/** The sysctl's value, or undefined where it does not exist (not Linux, or a kernel before 5.14). */
function readMigrateRequests(): string | undefined {
  try {
    return readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Settles a listener's port with an exclusive bind in this thread (no reusePort): port 0 gets a
 * real port, and an address held by another socket fails here with EADDRINUSE, as it would
 * without reusePort. The probe closes before the workers bind; no client knows the port yet.
 */
function probePort(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, () => {
      const bound = (probe.address() as { port: number }).port;
      probe.close(() => resolve(bound));
    });
  });
}
