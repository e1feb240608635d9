/**
 * One listener: a `net.Server` bound to one address, feeding one pool.
 *
 * `allowHalfOpen: true` so a client's FIN is passed on rather than answered with ours (half-close),
 * and `pauseOnConnect: true` so a new client's bytes stay in the kernel until its upstream is
 * connected (see connection.ts). The connection limit is checked on accept: over it, the socket is
 * destroyed at once and counted.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { AccessLog, OpenConnectionList } from '../access-log/access-log.js';
import type { ListenerConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { SharedListenerState } from '../shared-state/pool-state.js';
import { DEFAULT_TRAFFIC_FLUSH_MS, ListenerTrafficCounters, type ListenerTrafficWriter } from '../shared-state/traffic-counters.js';
import { formatPeer, logRejectedConnection, ProxyConnection, type ConnectionPool, type ListenerContext } from './connection.js';
import { acceptQueueOf, closeWhenAcceptQueueEmpty } from './accept-queue.js';
import { AcceptBackoff, acceptWatermark, CONTROL_PLANE_RESERVE, isOutOfFileDescriptors, MAX_PAUSE_MS, openFilesSoftLimit } from './fd-exhaustion.js';
import { descriptorOf, HandleServer, listeningFd, type ProxySocket } from './handle-socket.js';
import { ListenerEdge, type EdgeRefusal } from './listener-edge.js';
import type { SourceLimits } from '../shared-state/source-limits.js';

/** The listener's process-wide per-source counts, when its config sets a per-source limit (else null). */
export type SourceLimitsProvider = (config: ListenerConfig) => SourceLimits | null;
const NO_SOURCE_LIMITS: SourceLimitsProvider = () => null;

/**
 * How long a closing listener may keep accepting to empty its accept queue. Clients keep arriving
 * while it waits; past this it closes anyway (and says how many the kernel reset).
 */
const ACCEPT_QUEUE_DRAIN_MS = 2000;

export interface ListenerStats {
  readonly accepted: number;
  readonly active: number;
  readonly rejectedMaxConnections: number;
}

/**
 * What the runtime drives a listener by: an in-thread `Listener`, or the main thread's
 * `ThreadedListener` over one socket per data-plane worker.
 */
export interface ListenerHandle {
  readonly listenerName: string;
  readonly pool: ConnectionPool;
  readonly config: ListenerConfig;
  /** Bind and listen; resolves with the bound address (port 0 becomes the real port). */
  listen(): Promise<string>;
  address(): string;
  stats(): ListenerStats;
  /** Reload: new connections use `pool`; open ones finish on theirs. */
  setPool(pool: ConnectionPool): void;
  /** Reload, same bind: limits for connections accepted from now on. */
  updateLimits(config: ListenerConfig): void;
  /** Stop accepting now. */
  stopListening(): void;
  /** Stop accepting; resolves once the listening socket(s) closed. */
  close(): Promise<void>;
  /** Resolves when no connection is open (after a stop). */
  whenIdle(): Promise<void>;
  /** Cut every open connection; returns how many were open. */
  closeAllConnections(): number;
}

/** A listener in one of several worker threads: one socket of a `reusePort` group, counted process-wide. */
export interface WorkerListenerOptions {
  readonly worker: number;
  readonly shared: SharedListenerState;
}

/** Where a listener counts its connections' outcomes, and how often open connections flush their bytes. */
export interface ListenerCounting {
  readonly outcomes: ListenerTrafficWriter;
  /** Default DEFAULT_TRAFFIC_FLUSH_MS. */
  readonly flushMs?: number;
  /** Where per-source limits count (shared by every thread); default none (a config setting one then fails). */
  readonly sourceLimits?: SourceLimitsProvider;
}

const PAUSE_MESSAGE = 'out of file descriptors: listener stops accepting for a while';

export class Listener implements ListenerContext, ListenerHandle, OpenConnectionList {
  readonly listenerName: string;
  /** Where new connections go; `setPool` swaps it (reload), open connections keep theirs. */
  pool: ConnectionPool;
  /** Read by each connection when its upstream connects; `updateLimits` changes it for new ones. */
  idleTimeoutMs: number;
  /** Read by each connection at the client's FIN; `updateLimits` changes it. */
  clientFinTimeoutMs: number;
  readonly accessLog: AccessLog;
  /** Bound to { listener, pool }; rebound when `setPool` changes the pool. */
  accessLines: Logger;
  #config: ListenerConfig;
  readonly #logger: Logger;
  /** A handle server (IP-literal binds, handle-socket.ts) or `net.Server`; null until `listen()`. */
  #server: Server | HandleServer | null = null;
  #maxConnections: number;
  #accepted = 0;
  #active = 0;
  #rejected = 0;
  /** Head of the intrusive list of open connections (for drain). */
  #head: ProxyConnection | null = null;
  #idleWaiters: Array<() => void> = [];
  /** The next connection the access log's open-line sweep visits; null when no sweep runs. */
  #sweepCursor: ProxyConnection | null = null;
  #closing = false;
  /** Set by stopListening/close: a pause for lack of descriptors must not listen again. */
  #acceptStopped = false;
  /** The address bound by the first listen: a pause closes the socket, the resume binds this port again. */
  #boundAddress: string | null = null;
  /** Pending resume while accepting is paused for lack of file descriptors (fd-exhaustion.ts). */
  #resumeTimer: NodeJS.Timeout | null = null;
  readonly #backoff = new AcceptBackoff();
  /** A client whose descriptor is at least this is refused: the process is nearly out (fd-exhaustion.ts). */
  readonly #fdWatermark = acceptWatermark(openFilesSoftLimit());
  #pausedAt = 0;
  /** Clients refused for lack of descriptors since the last pause line (that line says how many). */
  #refusedNoFdsSinceLine = 0;
  /** This thread's pauses (one thread), or the last process-wide pause count this worker acted on. */
  #fdPauses = 0;
  readonly #inWorker: WorkerListenerOptions | undefined;
  readonly #outcomes: ListenerTrafficWriter;
  readonly #flushMs: number;
  /** Flushes open connections' bytes into the counters; runs while connections are open. */
  #flushTimer: NodeJS.Timeout | null = null;
  /** PROXY protocol, allow/deny, per-source limits for new connections (ListenerContext); null = none. */
  edge: ListenerEdge | null;
  readonly #sourceLimits: SourceLimitsProvider;

  constructor(config: ListenerConfig, pool: ConnectionPool, logger: Logger, accessLog: AccessLog, inWorker?: WorkerListenerOptions, counting?: ListenerCounting) {
    this.#inWorker = inWorker;
    // A worker started later (a replacement, a reload) follows only pauses from now on.
    this.#fdPauses = inWorker?.shared.fdPauses() ?? 0;
    this.#outcomes = counting?.outcomes ?? ListenerTrafficCounters.create(1).writer(0);
    this.#outcomes.acceptResumed();
    this.#flushMs = counting?.flushMs ?? DEFAULT_TRAFFIC_FLUSH_MS;
    this.#sourceLimits = counting?.sourceLimits ?? NO_SOURCE_LIMITS;
    this.edge = ListenerEdge.of(config, this.#sourceLimits(config), logger);
    this.#config = config;
    this.listenerName = config.name;
    this.pool = pool;
    this.idleTimeoutMs = config.idleTimeoutMs;
    this.clientFinTimeoutMs = config.clientFinTimeoutMs ?? 0;
    this.#maxConnections = config.maxConnections;
    this.#logger = logger;
    this.accessLog = accessLog;
    this.accessLines = accessLog.linesFor(config.name, pool.name);
    accessLog.track(this);
  }

  /** Bind and listen. Resolves with the bound address (port 0 becomes the real port). */
  async listen(): Promise<string> {
    try {
      await this.#open(this.#config.bind.port);
    } catch (error) {
      this.accessLog.untrack(this);
      throw new Error(`listener ${this.listenerName}: cannot listen on ${this.#config.bind.text}: ${(error as Error).message}`);
    }
    return this.address();
  }

  /** Binds a listening socket on `port` (the first time, and again after a pause for lack of descriptors). */
  #open(port: number): Promise<void> {
    const { host } = this.#config.bind;
    // Each worker's socket joins one reusePort group: the kernel spreads new connections over them.
    const reusePort = this.#inWorker !== undefined;
    const opened = (server: Server | HandleServer): void => {
      this.#server = server;
      this.#boundAddress = this.address();
    };
    if (HandleServer.canBind(host, reusePort)) {
      const server = new HandleServer(this.#onConnection, this.#onServerError);
      try {
        server.listen(host, port, reusePort);
      } catch (error) {
        return Promise.reject(error as Error);
      }
      opened(server);
      return Promise.resolve();
    }
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, this.#onConnection);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(reusePort ? { host, port, reusePort: true } : { host, port }, () => {
        server.removeListener('error', reject);
        // Accept errors (EMFILE, ENFILE…) are reported on the server; they must never crash us.
        server.on('error', this.#onServerError);
        opened(server);
        resolve();
      });
    });
  }

  /** The bound `host:port` (IPv6 in brackets), or the configured one when not listening. */
  address(): string {
    const info = (this.#server?.address() ?? null) as AddressInfo | null;
    if (info === null) return this.#boundAddress ?? this.#config.bind.text;
    return formatPeer(info.address, info.port);
  }

  /** Process-wide figures (every worker's) when this is one worker's socket. */
  stats(): ListenerStats {
    const shared = this.#inWorker?.shared;
    if (shared !== undefined) return { accepted: shared.accepted(), active: shared.active(), rejectedMaxConnections: shared.rejected() };
    return { accepted: this.#accepted, active: this.#active, rejectedMaxConnections: this.#rejected };
  }

  /** The operational log (ListenerContext: a connection's debug lines). */
  get logger(): Logger {
    return this.#logger;
  }

  /** Connections open in this thread. */
  get openConnections(): number {
    return this.#active;
  }

  get config(): ListenerConfig {
    return this.#config;
  }

  /** Reload: new connections use `pool`; open ones finish on the pool they started with. */
  setPool(pool: ConnectionPool): void {
    if (pool.name !== this.pool.name) this.accessLines = this.accessLog.linesFor(this.listenerName, pool.name);
    this.pool = pool;
  }

  /**
   * Reload, same bind: maxConnections, idleTimeoutMs and the edge (PROXY protocol, allow/deny,
   * per-source limits) apply to connections accepted from now on (the limit is checked on accept;
   * the idle timeout is read when a connection's upstream connects; open ones keep their edge).
   */
  updateLimits(config: ListenerConfig): void {
    this.#config = config;
    this.#maxConnections = config.maxConnections;
    this.idleTimeoutMs = config.idleTimeoutMs;
    // Built before it is swapped in: a connection reads the edge once, at accept.
    this.edge = ListenerEdge.of(config, this.#sourceLimits(config), this.#logger);
    this.clientFinTimeoutMs = config.clientFinTimeoutMs ?? 0;
  }

  /** Stop accepting: the listening socket closes now, so new connections are refused. */
  stopListening(): void {
    this.#closing = true;
    this.#stopAccepting();
    if (this.#active === 0) this.accessLog.untrack(this);
    if (this.#server?.listening === true) this.#server.close();
  }

  /**
   * Stop accepting without resetting a connection: the socket keeps accepting (and serving) until its
   * accept queue reads empty, then closes in that turn (src/proxy/accept-queue.ts), at most
   * `ACCEPT_QUEUE_DRAIN_MS` later. Resolves once the socket is closed: libuv closes the handle in the
   * loop's close phase, after the current turn.
   */
  async close(): Promise<void> {
    this.#stopAccepting();
    const server = this.#server;
    if (server?.listening === true) {
      const left = await closeWhenAcceptQueueEmpty(listeningFd(server), () => server.close(), ACCEPT_QUEUE_DRAIN_MS);
      if (left > 0) {
        this.#logger.warn({ reset: left }, 'listener closed with connections still queued: the kernel resets them');
      }
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** The bound port, or the configured one when not listening. */
  boundPort(): number {
    const info = (this.#server?.address() ?? null) as AddressInfo | null;
    if (info === null && this.#boundAddress !== null) return Number(this.#boundAddress.slice(this.#boundAddress.lastIndexOf(':') + 1));
    return info?.port ?? this.#config.bind.port;
  }

  /** Resolves when no connection is open. */
  whenIdle(): Promise<void> {
    if (this.#active === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Cut every open connection (drain deadline passed). Returns how many were cut. */
  closeAllConnections(): number {
    let cut = 0;
    for (let connection = this.#head; connection !== null; ) {
      const next: ProxyConnection | null = connection.next;
      connection.forceClose();
      cut += 1;
      connection = next;
    }
    return cut;
  }

  beginOpenSweep(): void {
    this.#sweepCursor = this.#head;
  }

  continueOpenSweep(budget: number, nowMs: number, intervalMs: number): number {
    let visited = 0;
    let connection = this.#sweepCursor;
    while (connection !== null && visited < budget) {
      connection.reportIfOpenFor(nowMs, intervalMs);
      connection = connection.next;
      visited += 1;
    }
    this.#sweepCursor = connection;
    return visited;
  }

  connectionFinished(connection: ProxyConnection): void {
    // The sweep resumes after a connection that ends between two of its turns.
    if (this.#sweepCursor === connection) this.#sweepCursor = connection.next;
    if (connection.previous !== null) connection.previous.next = connection.next;
    else this.#head = connection.next;
    if (connection.next !== null) connection.next.previous = connection.previous;
    connection.previous = null;
    connection.next = null;
    this.#active -= 1;
    this.#outcomes.ended(connection.outcome);
    if (this.#inWorker !== undefined) this.#inWorker.shared.close(this.#inWorker.worker);
    if (this.#active === 0 && this.#flushTimer !== null) {
      clearInterval(this.#flushTimer);
      this.#flushTimer = null;
    }
    if (this.#active === 0 && this.#closing) this.accessLog.untrack(this);
    if (this.#active === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  #onConnection = (client: ProxySocket): void => {
    // The edge first, before any count or backend work: a denied or over-limit source costs a
    // peer-address read, a few integer compares and the close.
    const edge = this.edge;
    let sourceHash = -1;
    if (edge !== null) {
      const address = client.remoteAddress;
      if (address === undefined) {
        // The peer reset before we asked (getpeername fails on a reset socket): no source to judge,
        // and no refusal to count. Front balancers' health checks do this every second, and counting
        // them as `denied`/`proxy_untrusted` raised false alarms.
        this.#outcomes.ended('client_error');
        if (this.accessLog.enabled) logRejectedConnection(this.accessLines, client, 'client_error');
        client.destroy();
        return;
      }
      if (edge.proxyProtocol !== null) {
        // The client is named by the header (ProxyConnection reads it); only the sender is checked here.
        if (!edge.proxyProtocol.trusted.matches(address)) {
          this.#refuse(client, 'proxy_untrusted', edge);
          return;
        }
      } else {
        const hash = edge.sourceHashOf(address);
        const refusal = edge.admit(address, hash);
        if (refusal !== null) {
          this.#refuse(client, refusal, edge);
          return;
        }
        if (edge.countsOpenPerSource) sourceHash = hash;
      }
    }
    const inWorker = this.#inWorker;
    // Another worker ran out of descriptors (they are the process's): pause too, after serving this
    // client, which already holds its descriptor. One integer load per accept.
    if (inWorker !== undefined && inWorker.shared.fdPauses() !== this.#fdPauses) this.#pauseAccepting('another worker ran out', false);
    if (descriptorOf(client) >= this.#fdWatermark) {
      this.#outcomes.ended('rejected_no_fds');
      if (this.accessLog.enabled) logRejectedConnection(this.accessLines, client, 'rejected_no_fds');
      client.destroy();
      this.#refusedNoFdsSinceLine += 1;
      this.#pauseAccepting(`descriptor limit near (${this.#fdWatermark + CONTROL_PLANE_RESERVE}, ${CONTROL_PLANE_RESERVE} kept for the control plane)`);
      return;
    }
    if (inWorker !== undefined ? !inWorker.shared.tryOpen(inWorker.worker, this.#maxConnections) : this.#active >= this.#maxConnections) {
      this.#rejected += 1;
      this.#outcomes.ended('rejected_max_connections');
      if (this.accessLog.enabled) logRejectedConnection(this.accessLines, client);
      if (sourceHash >= 0) edge!.release(sourceHash);
      client.destroy();
      return;
    }
    this.#accepted += 1;
    this.#active += 1;
    // One timer per listener while it has connections, not one per connection.
    if (this.#flushTimer === null) {
      this.#flushTimer = setInterval(this.#flushTraffic, this.#flushMs);
      this.#flushTimer.unref();
    }
    const connection = new ProxyConnection(this, client);
    connection.next = this.#head;
    if (this.#head !== null) this.#head.previous = connection;
    this.#head = connection;
    connection.start(sourceHash);
  };

  /** Refused by the edge at accept: counted, one access line, one summarised warning, closed at once. */
  #refuse(client: ProxySocket, outcome: EdgeRefusal, edge: ListenerEdge): void {
    this.#outcomes.ended(outcome);
    if (this.accessLog.enabled) logRejectedConnection(this.accessLines, client, outcome);
    edge.noteRefusal(outcome, client.remoteAddress);
    client.destroy();
  }

  /** Open connections add the bytes they moved since the last flush (O(open connections) every flushMs). */
  #flushTraffic = (): void => {
    for (let connection = this.#head; connection !== null; connection = connection.next) connection.flushTraffic();
  };

  #onServerError = (error: NodeJS.ErrnoException): void => {
    // A bind failure is reported once, by listen()'s rejection; only errors of a live listener
    // are handled here.
    if (this.#server?.listening !== true) return;
    // libuv reports EMFILE/ENFILE at accept only when its reserve descriptor is gone too (see
    // fd-exhaustion.ts): descriptors are out, whatever the clients' fate.
    if (isOutOfFileDescriptors(error.code)) {
      this.#pauseAccepting(error.code!);
      return;
    }
    this.#logger.error({ error: error.code ?? error.message }, 'listener accept failed');
  };

  /** ListenerContext: a connection of ours could not open its upstream socket (EMFILE/ENFILE); it counts itself. */
  outOfFileDescriptors(): void {
    this.#refusedNoFdsSinceLine += 1;
    this.#pauseAccepting('EMFILE/ENFILE on upstream connect');
  }

  /**
   * Stops accepting for a growing interval (AcceptBackoff): closes the listening socket, the only
   * way to keep libuv from accepting (fd-exhaustion.ts). Connections already open are untouched.
   * Clients still in the accept queue are reset by the kernel at the close: counted (read first
   * from /proc; that reading needs a descriptor itself, so it is best effort) and logged.
   * `seenHere` false: following another worker's pause (not counted again process-wide).
   */
  #pauseAccepting(cause: string, seenHere = true): void {
    const server = this.#server;
    if (this.#acceptStopped || this.#resumeTimer !== null || server === null) return;
    const queued = acceptQueueOf(listeningFd(server));
    for (let i = 0; i < (queued ?? 0); i++) this.#outcomes.ended('rejected_no_fds');
    server.close();
    this.#server = null;
    const shared = this.#inWorker?.shared;
    if (shared === undefined) this.#fdPauses += 1;
    else this.#fdPauses = seenHere ? shared.fdPaused() : shared.fdPauses();
    this.#outcomes.acceptPaused();
    this.#pausedAt = performance.now();
    const pauseMs = this.#backoff.next(this.#pausedAt);
    // The thread that ran out warns; one following it (another worker's pause) only informs: the
    // process-wide warning, with every thread's count, is the main thread's (src/events/edge-watch.ts).
    const fields = { cause, pauseMs, refused: this.#refusedNoFdsSinceLine + (queued ?? 0), queuedReset: queued, open: this.#active };
    if (seenHere) this.#logger.warn(fields, PAUSE_MESSAGE);
    else this.#logger.info(fields, PAUSE_MESSAGE);
    this.#refusedNoFdsSinceLine = 0;
    this.#scheduleResume(pauseMs);
  }

  #scheduleResume(pauseMs: number): void {
    this.#resumeTimer = setTimeout(this.#resumeAccepting, pauseMs);
  }

  #resumeAccepting = (): void => {
    this.#resumeTimer = null;
    if (this.#acceptStopped) return;
    const port = this.boundPort();
    this.#open(port).then(
      () => {
        if (this.#acceptStopped) {
          this.#server?.close();
          return;
        }
        this.#outcomes.acceptResumed();
        this.#logger.info(
          { pausedMs: Math.round(performance.now() - this.#pausedAt), open: this.#active },
          'listener accepting again',
        );
      },
      (error: NodeJS.ErrnoException) => {
        if (this.#acceptStopped) return;
        // Still out of descriptors (the socket itself needs one): wait longer. Anything else (the
        // port taken meanwhile) is logged and retried at the longest pause.
        const pauseMs = isOutOfFileDescriptors(error.code) ? this.#backoff.next(performance.now()) : MAX_PAUSE_MS;
        if (!isOutOfFileDescriptors(error.code)) {
          this.#logger.error({ error: error.code ?? error.message, retryMs: pauseMs }, 'listener cannot listen again after a pause');
        }
        this.#scheduleResume(pauseMs);
      },
    );
  };

  #stopAccepting(): void {
    this.#acceptStopped = true;
    this.#outcomes.acceptResumed();
    if (this.#resumeTimer !== null) {
      clearTimeout(this.#resumeTimer);
      this.#resumeTimer = null;
    }
  }
}
