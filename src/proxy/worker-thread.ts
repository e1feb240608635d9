/**
 * A data-plane worker thread (ARCHITECTURE.md "All cores"): its own sockets of every listener (one
 * member of each listener's `reusePort` group), its own connections, and a replica of each pool.
 * It holds no config of its own and makes no decision but "which slot" per connection: everything
 * arrives from the main thread (worker-protocol.ts), which stays the one writer of every fact.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AccessLog } from '../access-log/access-log.js';
import { DEFAULT_ACCESS_LOG } from '../access-log/settings.js';
import type { BackendFailureReason } from '../backend.js';
import { createRootLogger } from '../log.js';
import { SharedListenerState, SharedPoolState } from '../shared-state/pool-state.js';
import { LoopDelayCells } from '../shared-state/loop-delay.js';
import { ListenerTrafficCounters } from '../shared-state/traffic-counters.js';
import { SourceLimits } from '../shared-state/source-limits.js';
import { Listener, type SourceLimitsProvider } from './listener.js';
import { needsSourceLimits } from './listener-edge.js';
import { PoolReplica } from './pool-replica.js';
import type { FailureItem, FromWorker, ToWorker, WorkerStart } from './worker-protocol.js';

const start = workerData as WorkerStart;
const port = parentPort!;
const logger = createRootLogger({ level: start.logLevel, base: { worker: start.index } });
/** This worker's own access-log stream: its own file descriptor, its own sampling generator. */
const accessLog = new AccessLog(start.accessLog ?? DEFAULT_ACCESS_LOG, { worker: start.index, fd: start.accessLogFd ?? 1 });
LoopDelayCells.attach(start.loopDelay).sample(1 + start.index);

const pools = new Map<number, PoolReplica>();
const poolIds = new Map<PoolReplica, number>();
/** Pools the main thread stopped: dropped once their connections ended. */
const forgotten = new Set<number>();
const listeners = new Map<number, Listener>();

function send(message: FromWorker): void {
  port.postMessage(message);
}

// Connect failures go to the one outlier detector in batches (one message per turn, not per failure:
// an outage fails many connects at once).
let failures: FailureItem[] = [];
function reportFailure(pool: PoolReplica, slot: number, backendId: string, reason: BackendFailureReason): void {
  const poolId = poolIds.get(pool);
  if (poolId === undefined) return;
  if (failures.length === 0) setImmediate(flushFailures);
  failures.push({ poolId, slot, backendId, reason });
}
function flushFailures(): void {
  const items = failures;
  failures = [];
  send({ type: 'failures', items });
}

function poolOf(poolId: number): PoolReplica {
  const pool = pools.get(poolId);
  if (pool === undefined) throw new Error(`worker ${start.index}: unknown pool id ${poolId}`);
  return pool;
}

/** Pools the main thread stopped or removed (retired) go once this worker holds none of their connections. */
function dropIdlePools(): void {
  for (const [poolId, pool] of pools) {
    if (!forgotten.has(poolId) && !pool.retired) continue;
    if (pool.openConnections > 0) continue;
    pool.stop();
    pools.delete(poolId);
    poolIds.delete(pool);
    forgotten.delete(poolId);
  }
}
// Removed pools are rare (a reload, shutdown): a slow sweep is enough, and must not keep us alive.
setInterval(dropIdlePools, 1000).unref();

/**
 * Listeners whose socket is still opening (a host name to bind waits for its lookup). An update
 * that arrives meanwhile applies to the listener at once; a stop waits here and is carried out
 * once the socket opened, or a socket would open after its stop and accept for good.
 */
const opening = new Map<number, Promise<unknown>>();
/** Each listener's per-source counts, attached once from the main thread's buffer (by listener id). */
const sourceLimits = new Map<number, SourceLimits>();

/** The listener's provider: its shared counts when the config sets a per-source limit. */
function sourceLimitsOf(listenerId: number, buffer: SharedArrayBuffer | null): SourceLimitsProvider {
  if (buffer !== null && !sourceLimits.has(listenerId)) sourceLimits.set(listenerId, SourceLimits.attach(buffer));
  return (config) => (needsSourceLimits(config) ? (sourceLimits.get(listenerId) ?? null) : null);
}
const stopWhenOpen = new Set<number>();

async function listen(message: Extract<ToWorker, { type: 'listen' }>): Promise<void> {
  // Asked twice (a replacement joining while its group opened): one socket is enough.
  const pending = opening.get(message.listenerId);
  if (pending !== undefined) await pending;
  const held = listeners.get(message.listenerId);
  if (held !== undefined) {
    send({ type: 'listening', requestId: message.requestId, port: held.boundPort() });
    return;
  }
  const config = { ...message.config, bind: { ...message.config.bind, port: message.port } };
  const listener = new Listener(
    config,
    poolOf(message.poolId),
    logger.child({ listener: config.name }),
    accessLog,
    { worker: start.index, shared: SharedListenerState.attach(message.state, start.workers) },
    {
      outcomes: ListenerTrafficCounters.attach(message.traffic, start.workers).writer(start.index),
      flushMs: start.trafficFlushMs,
      sourceLimits: sourceLimitsOf(message.listenerId, message.sourceLimits ?? null),
    },
  );
  listeners.set(message.listenerId, listener);
  const opened = listener.listen();
  opening.set(message.listenerId, opened.catch(() => undefined));
  try {
    await opened;
  } catch (error) {
    listeners.delete(message.listenerId);
    opening.delete(message.listenerId);
    send({ type: 'listen-failed', requestId: message.requestId, error: error instanceof Error ? error.message : String(error) });
    if (stopWhenOpen.delete(message.listenerId)) stopListener(message.listenerId);
    return;
  }
  opening.delete(message.listenerId);
  send({ type: 'listening', requestId: message.requestId, port: listener.boundPort() });
  if (stopWhenOpen.delete(message.listenerId)) stopListener(message.listenerId);
}

function stopListener(listenerId: number): void {
  const listener = listeners.get(listenerId);
  if (listener === undefined) {
    send({ type: 'listener-closed', listenerId });
    send({ type: 'listener-idle', listenerId });
    return;
  }
  if (opening.has(listenerId)) {
    stopWhenOpen.add(listenerId);
    return;
  }
  void listener.close().then(() => send({ type: 'listener-closed', listenerId }));
  void listener.whenIdle().then(() => {
    listeners.delete(listenerId);
    sourceLimits.delete(listenerId);
    send({ type: 'listener-idle', listenerId });
  });
}

function onMessage(message: ToWorker): void {
  switch (message.type) {
    case 'pool': {
      // A snapshot this worker cannot apply is a bug, but killing the worker would only replay the
      // same snapshot to its replacement: keep serving from the previous one and say so.
      try {
        const existing = pools.get(message.poolId);
        if (existing !== undefined) {
          existing.apply(message.snapshot);
          // A removed pool none of our connections holds goes now, not at the next sweep.
          if (existing.retired) dropIdlePools();
          return;
        }
        const state = SharedPoolState.attach(message.state, start.workers);
        const pool = new PoolReplica(message.snapshot, state, start.index, logger.child({ pool: message.snapshot.name }), reportFailure);
        pools.set(message.poolId, pool);
        poolIds.set(pool, message.poolId);
      } catch (error) {
        logger.error({ pool: message.snapshot.name, err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error) }, 'pool snapshot not applied');
      }
      return;
    }
    case 'forget-pool':
      forgotten.add(message.poolId);
      dropIdlePools();
      return;
    case 'listen':
      void listen(message);
      return;
    case 'listener-update': {
      const listener = listeners.get(message.listenerId);
      if (listener === undefined) return;
      if (message.sourceLimits != null && !sourceLimits.has(message.listenerId)) sourceLimits.set(message.listenerId, SourceLimits.attach(message.sourceLimits));
      listener.updateLimits({ ...message.config, bind: listener.config.bind });
      listener.setPool(poolOf(message.poolId));
      return;
    }
    case 'listener-stop':
      stopListener(message.listenerId);
      return;
    case 'listener-cut':
      listeners.get(message.listenerId)?.closeAllConnections();
      return;
    case 'table': {
      const table = pools.get(message.poolId)?.tableSnapshot();
      send({ type: 'table', requestId: message.requestId, slots: table?.slots ?? null, positions: table?.positions ?? null });
      return;
    }
    case 'access-log':
      accessLog.configure(message.settings, message.fd);
      send({ type: 'access-log-applied', requestId: message.requestId });
      return;
    case 'sync':
      send({ type: 'synced', requestId: message.requestId });
      return;
    case 'census':
      send({ type: 'census', requestId: message.requestId, pools: pools.size, listeners: listeners.size });
      return;
    case 'crash-for-test':
      if (!start.testHooks) {
        logger.warn('crash-for-test ignored: RINGLB_TEST_HOOKS is not set');
        return;
      }
      setImmediate(() => {
        throw new Error(`injected fault in worker ${start.index} (RINGLB_TEST_HOOKS)`);
      });
      return;
  }
}

port.on('message', onMessage);
send({ type: 'ready' });
