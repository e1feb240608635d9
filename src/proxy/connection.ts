/**
 * One proxied connection's life, from accept to the access-log line:
 *
 *   key hash (once) → pick → connect (timeout) ─ error/timeout → pick again, attempt+1, never a
 *   tried slot while an untried eligible one exists ─→ forward both ways (a FIN passes on as a FIN, a
 *   reset as a reset) → close → release, log.
 *
 * The client socket arrives paused (`pauseOnConnect`), so its bytes wait in the kernel until an
 * upstream is connected: nothing is buffered by us, nothing is lost, and a retry resends nothing.
 *
 * Per-connection cost is kept to one object, thirteen handlers bound once here, two sockets and one
 * timer (connect, then the inactivity sampler, which after the first FIN of either side samples at
 * the half-close timeout: client-fin / server-fin); one more only when needed: a response timer
 * between the client's first bytes and the backend's first (only with the pool's responseTimeoutMs). Per chunk the response watch costs
 * one integer compare. A connection's verdict for outlier detection is reported once, at its end.
 * No `stream.pipe`: it adds eight listeners and closures per direction and runs its bookkeeping per chunk and at close, for what the six forwarding handlers
 * below do. Measured (bench/RESULTS.md "Data plane, issue 8"): ~230 µs of CPU per proxied connection
 * on this 2-core box, about half of it in the kernel (loopback TCP); against the pipe() version the
 * CPU per connection, request and GB moved within this machine's noise (0.71×–1.07× per request over
 * two runs; an A/A run read 0.74×), so the gain is not proven yet. Per chunk we do one write() and its return check, nothing
 * more: byte counts come from the sockets' own counters (read at close, and by the listener's
 * flush every few seconds for `/metrics`), and the idle timeout samples those counters instead of
 * re-arming a timer on every read and write (see IDLE_TICKS). The metrics counters cost a few
 * Float64 adds per connection into this thread's row (shared-state/traffic-counters.ts; measured
 * in bench/RESULTS.md "Metrics counters").
 * The listener's edge (listener-edge.ts) is paid only where configured: allow/deny and per-source
 * limits cost a peer-address read and integer compares at accept; a PROXY protocol listener adds a
 * header reader and its two handlers to its own connections, and a pool that sends a header one
 * more write at connect (bench/RESULTS.md "PROXY protocol": 1.19–1.26× the CPU per short connection, bench/edge-cost.ts).
 * Nor do we resolve names: the pool hands out an IP literal per slot (backend names are resolved
 * off the hot path, discovery/name-resolver.ts), so `net.connect` makes no `dns.lookup`.
 */
import type { AccessLog } from '../access-log/access-log.js';
import type { BackendFailureReason, ConnectFailureReason } from '../backend.js';
import type { Logger } from '../log.js';
import type { PoolTrafficWriter } from '../shared-state/traffic-counters.js';
import type { QueuedConnection } from './backend-queue.js';
import type { SlotConnection } from './slot-connections.js';
import { isOutOfFileDescriptors } from './fd-exhaustion.js';
import { connectUpstream, type ProxySocket } from './handle-socket.js';
import type { EdgeRefusal, ListenerEdge } from './listener-edge.js';
import { encodeProxyHeaderV1, encodeProxyHeaderV2, ProxyHeaderReader, type ProxyHeaderStep } from './proxy-protocol.js';
import { nextUniqueId } from './unique-id.js';

export type ConnectionOutcome =
  | 'ok'
  | 'no_backend'
  | 'connect_failed'
  | 'idle_timeout'
  /** The client's error ended the connection; a client reset (error ECONNRESET) reached the backend as a reset. */
  | 'client_error'
  /** The backend's error ended the connection; a backend reset (error ECONNRESET) reached the client as a reset. */
  | 'upstream_error'
  | 'rejected_max_connections'
  /** This process ran out of file descriptors (EMFILE/ENFILE) for the upstream socket, or at accept (fd-exhaustion.ts). */
  | 'rejected_no_fds'
  | 'drained'
  /** Refused by the listener's edge (listener-edge.ts): allow/deny, per-source limits, PROXY protocol. */
  | EdgeRefusal
  /** The client sent bytes and the backend sent none within the pool's `responseTimeoutMs` (a backend failure). */
  | 'response_timeout'
  /** The client half-closed (FIN), then nothing moved either way for the listener's `clientFinTimeoutMs`. */
  | 'client_fin_timeout'
  /** The backend half-closed (FIN), then nothing moved either way for the pool's `serverFinTimeoutMs`. */
  | 'server_fin_timeout'
  /** The chosen backend was at its `maxConnections` and its queue was full. */
  | 'queue_full'
  /** The chosen backend was at its `maxConnections` and no slot freed within `queue.timeoutMs`. */
  | 'queue_timeout';

/**
 * What a connection asks of its pool, a few thin forwards per connection: the main thread's
 * `BackendPool` (one data plane in the main thread) and a worker thread's `PoolReplica` both answer.
 */
export interface ConnectionPool {
  readonly name: string;
  /** How long one connect attempt may take. */
  readonly connectTimeoutMs: number;
  /** Extra attempts after the first one. */
  readonly retries: number;
  /** The client sent bytes, the backend nothing for this long: close, a backend failure; 0 disables. */
  readonly responseTimeoutMs: number;
  /** The backend sent its FIN: the connection may live at most this much longer; 0 disables. */
  readonly serverFinTimeoutMs: number;
  /** The client's key for hash policies (integers, never a string into WASM); 0 for the others. */
  keyHashOf(client: ProxySocket): number;
  /** The same key for a client named by a PROXY protocol header rather than by the socket. */
  keyHashOfPeer(address: string | undefined, port: number | undefined): number;
  /** Write a PROXY protocol header to the backend before any client byte; null = none. */
  readonly sendProxyProtocol: 'v1' | 'v2' | null;
  /** A slot for this attempt, never one of the first `triedCount` of `tried` while another is left; -1 when none. */
  pick(keyHash: number, tried: ArrayLike<number> | undefined, triedCount: number): number;
  /** An attempt to `slot` begins: counted, and linked for the slot's drain. */
  acquire(slot: number, connection: SlotConnection): void;
  /** Connections each backend may hold at once, process-wide; 0: no limit (then only `acquire` is used). */
  readonly maxConnectionsPerBackend: number;
  /** The policy places a client by its key (ring_hash, maglev): a full backend is waited for, never swapped. */
  readonly hashesClients: boolean;
  /** `acquire`, only while `slot` holds fewer than maxConnectionsPerBackend (in every thread); false when full. */
  tryAcquire(slot: number, connection: SlotConnection): boolean;
  /** Wait for a place on `slot` (`admitted` or `queueTimedOut` follows); false when its queue is full. */
  enqueue(slot: number, connection: QueuedConnection): boolean;
  /** The connection stops waiting for `slot` (it ended); a no-op when it does not wait there. */
  leaveQueue(slot: number, connection: QueuedConnection): void;
  /** That attempt failed, or its connection closed. */
  release(slot: number, connection: SlotConnection): void;
  /** Where `slot` connects: an IP literal once its name resolved. */
  hostOf(slot: number): string;
  portOf(slot: number): number;
  /** 4, 6, or 0 for a name that never resolved. */
  familyOf(slot: number): number;
  /** `host:port` as configured, for logs. */
  addressOf(slot: number): string;
  observeConnectTime(slot: number, micros: number, nowMs: number): void;
  /** Passive health: a connection to `slot` ended without a backend failure (ends the slot's failure streak). */
  reportConnectSuccess(slot: number): void;
  /** Passive health: a connect attempt failed, or the backend reset or left unanswered an established connection. */
  reportConnectFailure(slot: number, reason: BackendFailureReason): void;
  /** This thread's row of the pool's traffic counters (read per use: a pool that grows swaps it). */
  readonly traffic: PoolTrafficWriter;
}

/** What every connection of one listener shares; built once per listener. */
export interface ListenerContext {
  readonly listenerName: string;
  /**
   * The pool new connections use. A reload may replace it; a connection reads it once, at accept,
   * and keeps that pool for its whole life (its slot and counters live there).
   */
  readonly pool: ConnectionPool;
  /** 0 disables the idle timeout. */
  readonly idleTimeoutMs: number;
  /** The client sent its FIN: the connection may live at most this much longer; 0 disables. */
  readonly clientFinTimeoutMs: number;
  /** This thread's access log: enabled, sampling, onConnect (access-log/access-log.ts). */
  readonly accessLog: AccessLog;
  /** Access-log lines of this listener, bound to { listener, pool }; rebound with the pool, read at accept. */
  readonly accessLines: Logger;
  /** The operational log (debug lines of failed attempts). */
  readonly logger: Logger;
  /** PROXY protocol, allow/deny and per-source limits in force for new connections; null = none set. */
  readonly edge: ListenerEdge | null;
  /** Called exactly once per connection, after both sockets have closed. */
  connectionFinished(connection: ProxyConnection): void;
  /** An upstream socket could not be opened for lack of file descriptors: the listener backs off accepting. */
  outOfFileDescriptors(): void;
}

function noop(): void {}

/**
 * The idle timeout is checked by sampling, not re-armed per chunk: `socket.setTimeout` refreshes
 * its timer on every read and every write, which cost up to a third of bulk throughput in
 * bench/proxy-load.ts. Instead one timer ticks every idleTimeoutMs / IDLE_TICKS and compares the
 * bytes read by both sockets (every byte moved is read by one of them) with the last tick; after
 * IDLE_TICKS quiet ticks in a row the connection is closed. So a silent connection closes after
 * between idleTimeoutMs and idleTimeoutMs × (1 + 1/IDLE_TICKS) of silence.
 */
const IDLE_TICKS = 4;

/**
 * FINs passed on per event-loop turn; the rest wait, in order, for the next turns. When thousands of
 * clients close at once (a load generator exits, a NAT box drops its table) libuv hands all their
 * FINs to one loop phase, and passing each on (a shutdown whose loopback TCP work runs inline)
 * stalled every other connection for hundreds of ms (bench/mass-close.ts). Deferring a FIN by a
 * turn changes nothing a peer can see: it still follows every byte written before it.
 */
const ENDS_PER_TURN = 256;
/**
 * The count resets on the turn after it reaches this, not on every turn: with a setImmediate per
 * turn that passes a FIN on, bench/proxy-load.ts showed +8 % and +12 % CPU per connection in two
 * runs (near this machine's noise, but we need not pay it). A turn can start with
 * up to RESET_AFTER - 1 ends already counted, so its budget is ENDS_PER_TURN minus at most that.
 */
const RESET_AFTER = 16;
const pendingEnds: ProxySocket[] = [];
let pendingEndsHead = 0;
let endsSinceReset = 0;
let endTurnScheduled = false;

function scheduleEndTurn(): void {
  if (endTurnScheduled) return;
  endTurnScheduled = true;
  setImmediate(nextEndTurn);
}

/**
 * Pass a FIN on. When the socket's peer has already sent its own FIN and nothing waits in our write
 * buffer, both directions are done and a close says the same as a shutdown followed by the close
 * that comes anyway: one syscall less per connection (the second FIN of every connection that ends
 * with both sides closing, e.g. HTTP `Connection: close`). Data already written still leaves first.
 */
function passFin(socket: ProxySocket): void {
  if (socket.readableEnded && socket.writableLength === 0 && !socket.destroyed) socket.destroy();
  else socket.end();
}

function endSoon(socket: ProxySocket): void {
  if (endsSinceReset < ENDS_PER_TURN && pendingEndsHead === pendingEnds.length) {
    endsSinceReset += 1;
    if (endsSinceReset >= RESET_AFTER) scheduleEndTurn();
    passFin(socket);
    return;
  }
  pendingEnds.push(socket);
  scheduleEndTurn();
}

function nextEndTurn(): void {
  endTurnScheduled = false;
  endsSinceReset = 0;
  let endsThisTurn = 0;
  while (pendingEndsHead < pendingEnds.length && endsThisTurn < ENDS_PER_TURN) {
    endsThisTurn += 1;
    const socket = pendingEnds[pendingEndsHead]!;
    pendingEnds[pendingEndsHead] = undefined as unknown as ProxySocket; // let a closed socket go
    pendingEndsHead += 1;
    passFin(socket);
  }
  endsSinceReset = endsThisTurn;
  if (pendingEndsHead === pendingEnds.length) {
    pendingEnds.length = 0;
    pendingEndsHead = 0;
  } else {
    scheduleEndTurn();
  }
}

/**
 * A peer that resets (RST) is answered by resetting the other side, so the far end can tell a cut
 * from a complete reply: a FIN would read as "the server finished sending" and a truncated
 * response would pass as whole. (A FIN is passed on as a FIN by end(): half-close is untouched.)
 */
function isReset(error: NodeJS.ErrnoException): boolean {
  return error.code === 'ECONNRESET';
}

/**
 * Reset a socket (RST), or only destroy it once we have ended it: libuv refuses to reset a socket
 * whose shutdown (our FIN) was requested (EINVAL), and Node then never closes its handle nor emits
 * 'close' — the connection would never finish. Our FIN has already told the peer we are done
 * sending; the close that follows is all there is left to say.
 */
function resetOrDestroy(socket: ProxySocket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

/**
 * A number that moves whenever bytes move: read from either peer, or taken by the kernel from
 * either write queue. Reads alone miss a slow reader under backpressure: the upstream is paused
 * while the client drains one 64 KiB read, which at 2 KB/s takes longer than the 30 s half-close
 * timeout, and the download was cut although bytes kept flowing to the client.
 */
function progressOf(client: ProxySocket, upstream: ProxySocket): number {
  return client.bytesRead + upstream.bytesRead + client.writableLength + upstream.writableLength;
}

function failureReasonOf(error: NodeJS.ErrnoException): ConnectFailureReason {
  return error.code === 'ECONNREFUSED' ? 'refused' : 'error';
}

/**
 * A connect error that is ours, not the backend's: no file descriptor (EMFILE, ENFILE), no local
 * port (EADDRNOTAVAIL), no memory for a socket (ENOBUFS). It is counted and retried like any failed
 * attempt, but never reported to outlier detection: a process out of fds once ejected a healthy
 * backend for 30 s.
 */
function isLocalError(error: NodeJS.ErrnoException): boolean {
  const code = error.code;
  return code === 'EMFILE' || code === 'ENFILE' || code === 'EADDRNOTAVAIL' || code === 'ENOBUFS';
}

/**
 * Slots a limited pool's connection looks at for a backend with room before it queues (its
 * earlier failed ones, the full ones). One array per thread, used synchronously: no allocation.
 */
const excludedScratch = new Int32Array(64);

/** Response timeout states (an Int-like field, compared once per chunk). */
const RESPONSE_NOT_WATCHED = 0;
/** Connected, responseTimeoutMs set, the client has sent nothing yet. */
const RESPONSE_BEFORE_REQUEST = 1;
/** The client sent bytes; the backend has sent none yet; the timer runs. */
const RESPONSE_AWAITED = 2;

export class ProxyConnection implements QueuedConnection {
  /** Intrusive list links, owned by the listener (no Set churn per connection). */
  previous: ProxyConnection | null = null;
  next: ProxyConnection | null = null;
  /** Intrusive links of the pool's per-slot list, set while this connection holds a slot (drain). */
  slotPrevious: SlotConnection | null = null;
  slotNext: SlotConnection | null = null;
  /** Backend queue links and deadline (backend-queue.ts), used only while this connection waits. */
  queuePrevious: QueuedConnection | null = null;
  queueNext: QueuedConnection | null = null;
  queueDeadline = 0;
  /** The slot this connection waits for in its backend's queue; -1 when not waiting. */
  #queuedSlot = -1;

  readonly #context: ListenerContext;
  readonly #pool: ConnectionPool;
  /** The listener's access lines at accept: they name the pool this connection uses, whatever a reload does later. */
  readonly #lines: Logger;
  readonly #client: ProxySocket;
  readonly #startedAt: number;
  /** The access log was on at accept: the client's address was read then. */
  readonly #logEnabled: boolean;
  /** Drawn by the access log's sampling at accept: connect, open and successful close lines are written. */
  readonly #sampled: boolean;
  /** When this connection's last access line was written (its accept at first), for open lines. */
  #lastLineAt: number;
  #keyHash = 0;
  /** The edge this connection was accepted under (a reload's new one applies to later connections). */
  readonly #edge: ListenerEdge | null;
  /** The source's key in the per-source open count, or -1 when this connection holds no count there. */
  #sourceHash = -1;
  /**
   * Set while the PROXY protocol header is awaited (a trusted source of a listener that accepts it):
   * the reader and its two socket handlers, made only for such connections (arrow fields would cost
   * every connection two more closures).
   */
  #header: { readonly reader: ProxyHeaderReader; readonly onData: (chunk: Buffer) => void; readonly onEnd: () => void } | null = null;
  /** Client bytes read with the PROXY header, written upstream first (before any later read). */
  #earlyData: Buffer | null = null;
  /** The original destination a PROXY header named (sent on upstream); null = this socket's own. */
  #destinationAddress: string | null = null;
  #destinationPort = 0;
  #upstream: ProxySocket | null = null;
  #slot = -1;
  /** Slots already tried; allocated only when a first attempt fails (rare). */
  #tried: Int32Array | null = null;
  #attempts = 0;
  #connectStartedAt = 0;
  #connected = false;
  /** Connect timeout while connecting, then the inactivity sampler; one timer object at a time. */
  #timer: NodeJS.Timeout | null = null;
  #bytesAtLastTick = 0;
  #quietTicks = 0;
  /** What the sampler ends a silent connection with: idle, or the half-close timeout of the side that sent the first FIN. */
  #quietOutcome: 'idle_timeout' | 'client_fin_timeout' | 'server_fin_timeout' = 'idle_timeout';
  /** Armed by the client's first bytes while the pool has a responseTimeoutMs; cleared by the backend's first. */
  #responseTimer: NodeJS.Timeout | null = null;
  #responseState = RESPONSE_NOT_WATCHED;
  /** Sockets of ours not yet closed (the client, plus the live upstream attempt). */
  #openSockets = 1;
  #outcome: ConnectionOutcome | null = null;
  /** Why the last attempt or the connection failed (errno code or 'timeout'), for the access log. */
  #error: string | null = null;
  /** The backend of the last failed attempt, so a connect_failed line names where it tried. */
  #lastFailedSlot = -1;
  #clientAddress: string | undefined;
  #clientPort: number | undefined;
  /** Bytes already added to the pool's traffic counters (flushTraffic adds what moved since). */
  #countedToBackend = 0;
  #countedToClient = 0;

  constructor(context: ListenerContext, client: ProxySocket) {
    this.#context = context;
    this.#pool = context.pool;
    this.#lines = context.accessLines;
    this.#client = client;
    this.#startedAt = performance.now();
    this.#lastLineAt = this.#startedAt;
    // Checked once: when the access log is off, we never build the peer address string or the log
    // object. A connection not sampled still reads its address: if it fails, its line is written.
    this.#logEnabled = context.accessLog.enabled;
    this.#sampled = this.#logEnabled && context.accessLog.sample();
    this.#edge = context.edge;
    if (this.#logEnabled || this.#edge !== null || this.#pool.sendProxyProtocol !== null) {
      // Read now: after close the handle is gone and Node can no longer ask the kernel.
      this.#clientAddress = client.remoteAddress;
      this.#clientPort = client.remotePort;
    }
    client.on('error', this.#onClientError);
    client.on('close', this.#onClientClose);
  }

  /**
   * Begin: the first attempt, or first the PROXY protocol header when the listener takes one (the
   * listener refused untrusted sources already). `sourceHash` is the per-source open count this
   * connection holds (-1: none), released when it closes. Separate from the constructor so the
   * listener can link us first.
   */
  start(sourceHash: number): void {
    this.#sourceHash = sourceHash;
    const proxyProtocol = this.#edge?.proxyProtocol ?? null;
    if (proxyProtocol === null) {
      this.#keyHash = this.#pool.keyHashOf(this.#client);
      this.#attempt();
      return;
    }
    const header = {
      reader: new ProxyHeaderReader(proxyProtocol.accept),
      onData: (chunk: Buffer): void => this.#onHeaderData(chunk),
      onEnd: (): void => this.#onHeaderEnd(),
    };
    this.#header = header;
    this.#timer = setTimeout(() => this.#onHeaderTimeout(), proxyProtocol.timeoutMs);
    const client = this.#client;
    client.on('end', header.onEnd);
    client.on('data', header.onData);
    client.resume();
  }

  #onHeaderData(chunk: Buffer): void {
    const header = this.#header!;
    const step: ProxyHeaderStep = header.reader.push(chunk);
    if (step.kind === 'more') return;
    const client = this.#client;
    client.pause();
    client.removeListener('data', header.onData);
    client.removeListener('end', header.onEnd);
    this.#header = null;
    clearTimeout(this.#timer!);
    this.#timer = null;
    if (step.kind === 'invalid') {
      this.#error = step.reason;
      this.#refuse('proxy_header_invalid');
      return;
    }
    const { header: parsed, rest } = step;
    // LOCAL (the front proxy's own check) and UNKNOWN name no client: the socket's own addresses stand.
    if (parsed.source !== null) {
      this.#clientAddress = parsed.source.ip;
      this.#clientPort = parsed.source.port;
    }
    if (parsed.destination !== null) {
      this.#destinationAddress = parsed.destination.ip;
      this.#destinationPort = parsed.destination.port;
    }
    // A copy: the read buffer is the socket's (and the reader's concat is sized for the header).
    if (rest.length > 0) this.#earlyData = Buffer.from(rest);
    const edge = this.#edge!;
    const sourceHash = edge.sourceHashOf(this.#clientAddress);
    const refusal = edge.admit(this.#clientAddress, sourceHash);
    if (refusal !== null) {
      this.#refuse(refusal);
      return;
    }
    if (edge.countsOpenPerSource) this.#sourceHash = sourceHash;
    this.#keyHash = this.#pool.keyHashOfPeer(this.#clientAddress, this.#clientPort);
    this.#attempt();
  }

  /** The client ended (FIN) before its header was complete. */
  #onHeaderEnd(): void {
    this.#error = 'end of stream before the PROXY header was complete';
    this.#refuse('proxy_header_invalid');
  }

  #onHeaderTimeout(): void {
    this.#timer = null;
    this.#refuse('proxy_header_timeout');
  }

  /** The edge refused this connection after accept (PROXY header, or its client): closed at once. */
  #refuse(outcome: EdgeRefusal): void {
    this.#edge?.noteRefusal(outcome, this.#clientAddress);
    this.#destroy(outcome);
  }

  /** How the connection ended (`ok` while it runs without a failure); the listener counts it. */
  get outcome(): ConnectionOutcome {
    return this.#outcome ?? 'ok';
  }

  /**
   * Adds the bytes moved since the last flush to the backend's counters: the listener calls this
   * every few seconds for open connections, and the connection once more when it closes, so a
   * connection that lives for days shows its bytes while it runs. Two subtractions and two adds.
   */
  flushTraffic(): void {
    const upstream = this.#upstream;
    if (!this.#connected || upstream === null || this.#slot < 0) return;
    const toBackend = upstream.bytesWritten;
    const toClient = this.#client.bytesWritten;
    if (toBackend === this.#countedToBackend && toClient === this.#countedToClient) return;
    this.#pool.traffic.addBytes(this.#slot, toBackend - this.#countedToBackend, toClient - this.#countedToClient);
    this.#countedToBackend = toBackend;
    this.#countedToClient = toClient;
  }

  /** Drain deadline passed (shutdown, a removed listener or backend): cut this connection now. */
  forceClose(): void {
    // A reset, not a FIN: a client that half-closes or only writes would read a FIN as "the
    // server finished sending" and keep going; RST tells both peers the connection is gone.
    this.#outcome ??= 'drained';
    resetOrDestroy(this.#client);
    if (this.#upstream !== null) resetOrDestroy(this.#upstream);
    this.#destroy('drained');
  }

  #attempt(): void {
    const pool = this.#pool;
    const slot = pool.pick(this.#keyHash, this.#tried ?? undefined, this.#attempts);
    if (slot < 0) {
      this.#destroy(this.#attempts === 0 ? 'no_backend' : 'connect_failed');
      return;
    }
    if (pool.maxConnectionsPerBackend > 0) {
      this.#attemptWithinLimit(slot);
      return;
    }
    // Counted from the pick, not from the established connection: a burst of new connections
    // must see each other's in-flight connects, or least_connections sends the whole burst to
    // one backend. Released on failure or close. The pool also links us into the slot's list, so a
    // removed backend's connections can be cut at its drain deadline.
    pool.acquire(slot, this);
    this.#connectTo(slot);
  }

  /**
   * A pool with maxConnectionsPerBackend (HAProxy server `maxconn`): take a place on the chosen
   * backend, or, when the policy does not hash, on another eligible one with room; else wait in the
   * chosen backend's queue (a hash policy keeps the key's backend: its cache, its sessions).
   */
  #attemptWithinLimit(chosen: number): void {
    const pool = this.#pool;
    if (pool.tryAcquire(chosen, this)) {
      this.#connectTo(chosen);
      return;
    }
    if (!pool.hashesClients) {
      const other = this.#otherBackendWithRoom(chosen);
      if (other >= 0) {
        this.#connectTo(other);
        return;
      }
    }
    if (!pool.enqueue(chosen, this)) {
      this.#lastFailedSlot = chosen;
      this.#error ??= 'queue_full';
      this.#destroy('queue_full');
      return;
    }
    this.#queuedSlot = chosen;
    pool.traffic.queued(chosen);
  }

  /** Picks again past full backends (and those already tried) until one has room; -1 when none. */
  #otherBackendWithRoom(full: number): number {
    const pool = this.#pool;
    const excluded = excludedScratch;
    let count = 0;
    const tried = this.#tried;
    for (let i = 0; i < this.#attempts && tried !== null; i++) excluded[count++] = tried[i]!;
    excluded[count++] = full;
    while (count < excluded.length) {
      const slot = pool.pick(this.#keyHash, excluded, count);
      if (slot < 0) return -1;
      // The balancer hands back an excluded slot only when no other is left.
      for (let i = 0; i < count; i++) if (excluded[i] === slot) return -1;
      if (pool.tryAcquire(slot, this)) return slot;
      excluded[count++] = slot;
    }
    return -1;
  }

  /** backend-queue.ts: a place on `slot` was taken for this connection; connect now. */
  admitted(slot: number): void {
    this.#queuedSlot = -1;
    this.#connectTo(slot);
  }

  /** backend-queue.ts: the backend waited for was taken out; pick again (the wait so far is not counted as an attempt). */
  backendGone(): void {
    this.#queuedSlot = -1;
    this.#attempt();
  }

  /** backend-queue.ts: no place freed within queue.timeoutMs. */
  queueTimedOut(): void {
    this.#lastFailedSlot = this.#queuedSlot;
    this.#queuedSlot = -1;
    this.#error ??= 'queue_timeout';
    this.#destroy('queue_timeout');
  }

  /** The connect attempt to `slot`, whose place this connection holds (acquired and linked). */
  #connectTo(slot: number): void {
    const pool = this.#pool;
    if (this.#attempts > 0) pool.traffic.retried();
    this.#slot = slot;
    this.#attempts += 1;
    this.#connectStartedAt = performance.now();
    // An IP literal (names are resolved off the hot path by the pool): net.connect makes no lookup.
    const upstream = connectUpstream(pool.hostOf(slot), pool.portOf(slot), pool.familyOf(slot));
    this.#upstream = upstream;
    this.#openSockets += 1;
    if (this.#timer === null) this.#timer = setTimeout(this.#onConnectTimeout, pool.connectTimeoutMs);
    else this.#timer.refresh(); // a retry: same duration, no new timer object
    upstream.on('error', this.#onUpstreamError);
    upstream.on('close', this.#onUpstreamClose);
    upstream.once('connect', this.#onUpstreamConnect);
  }

  #onUpstreamConnect = (): void => {
    const upstream = this.#upstream!;
    const pool = this.#pool;
    this.#connected = true;
    const now = performance.now();
    const connectMs = now - this.#connectStartedAt;
    pool.traffic.connected(this.#slot, connectMs / 1000);
    // Fed at connect, not at close: least_time should learn a slow backend before the
    // connections it is slowing down finish.
    pool.observeConnectTime(this.#slot, Math.round(connectMs * 1000), now);
    // No success reported yet: a backend that accepts and then resets or stays silent (SIGSTOP: the
    // kernel still completes handshakes) would end its own failure streak with every connect, and
    // never be ejected. A connection's verdict is reported once, at its end (#socketClosed).
    if (pool.responseTimeoutMs > 0) this.#responseState = RESPONSE_BEFORE_REQUEST;
    clearTimeout(this.#timer!);
    const idleTimeoutMs = this.#context.idleTimeoutMs;
    this.#timer = idleTimeoutMs > 0 ? setTimeout(this.#onIdleTick, Math.max(1, Math.ceil(idleTimeoutMs / IDLE_TICKS))) : null;
    const client = this.#client;
    // Forwarded by hand, not by pipe(): pipe() adds eight listeners and closures per direction and
    // runs its own bookkeeping per chunk; ours are the six handlers below, bound once per
    // connection.
    client.on('data', this.#onClientData);
    client.on('end', this.#onClientEnd);
    upstream.on('drain', this.#onUpstreamDrain);
    upstream.on('data', this.#onUpstreamData);
    upstream.on('end', this.#onUpstreamEnd);
    client.on('drain', this.#onClientDrain);
    // Before any client byte: the PROXY header for the backend, then what came with ours.
    if (pool.sendProxyProtocol !== null) upstream.write(this.#proxyHeaderFor(pool.sendProxyProtocol));
    if (this.#earlyData !== null) {
      upstream.write(this.#earlyData);
      this.#earlyData = null;
    }
    // Paused since accept (pauseOnConnect sets readableFlowing to false, so a 'data' listener alone
    // does not start it): bytes held in the kernel since accept flow now.
    client.resume();
    if (this.#sampled && this.#context.accessLog.onConnect) this.#writeConnectLine(now);
  };

  // Backpressure as pipe() does it: a write the peer cannot take yet (write() false) pauses the
  // reading side until the writing side drains. A FIN is passed on as a FIN (end()): half-close.
  #onClientData = (chunk: Buffer): void => {
    if (this.#responseState === RESPONSE_BEFORE_REQUEST) this.#awaitResponse();
    if (!this.#upstream!.write(chunk)) this.#client.pause();
  };

  #onUpstreamDrain = (): void => {
    this.#client.resume();
  };

  #onClientEnd = (): void => {
    if (this.#quietOutcome === 'idle_timeout') this.#halfClosed(this.#context.clientFinTimeoutMs, 'client_fin_timeout');
    endSoon(this.#upstream!);
  };

  #onUpstreamData = (chunk: Buffer): void => {
    if (this.#responseState !== RESPONSE_NOT_WATCHED) this.#responseArrived();
    if (!this.#client.write(chunk)) this.#upstream!.pause();
  };

  #onClientDrain = (): void => {
    this.#upstream!.resume();
  };

  #onUpstreamEnd = (): void => {
    // A backend that ends without a byte has answered too (an empty reply is a reply).
    if (this.#responseState !== RESPONSE_NOT_WATCHED) this.#responseArrived();
    if (this.#quietOutcome === 'idle_timeout') this.#halfClosed(this.#pool.serverFinTimeoutMs, 'server_fin_timeout');
    endSoon(this.#client);
  };

  /**
   * The header naming this connection's client (the one a PROXY header named, else the socket's
   * peer) and the address it connected to. v2 adds a UNIQUE_ID (unique-id.ts). Only pools that
   * send one pay for it: a few small objects and the header bytes, once per connection.
   */
  #proxyHeaderFor(version: 'v1' | 'v2'): Buffer {
    const client = this.#client;
    const source = { ip: this.#clientAddress ?? '', port: this.#clientPort ?? 0 };
    const destination =
      this.#destinationAddress !== null
        ? { ip: this.#destinationAddress, port: this.#destinationPort }
        : { ip: client.localAddress ?? '', port: client.localPort ?? 0 };
    return version === 'v1' ? encodeProxyHeaderV1(source, destination) : encodeProxyHeaderV2(source, destination, nextUniqueId());
  }

  /**
   * One side sent its FIN first: from now on the connection may stay silent at most `timeoutMs`
   * (HAProxy's `timeout client-fin` / `server-fin`, inactivity timeouts of the half-closed side).
   * Without it a client that gave up and half-closed on a frozen backend held its place under
   * maxConnections until the idle timeout (1 h), and the listener filled. Inactivity, not a
   * deadline: a client that sent its request and its FIN (`nc -N`, HTTP/1.0 clients) while the
   * backend streams a long reply keeps it as long as bytes move. The idle sampler itself switches to
   * the shorter period, so a half-closed connection costs no second timer.
   */
  #halfClosed(timeoutMs: number, outcome: 'client_fin_timeout' | 'server_fin_timeout'): void {
    if (timeoutMs <= 0) return;
    const idleTimeoutMs = this.#context.idleTimeoutMs;
    if (idleTimeoutMs > 0 && idleTimeoutMs <= timeoutMs) return; // the idle timeout ends it first anyway
    this.#quietOutcome = outcome;
    this.#quietTicks = 0;
    this.#bytesAtLastTick = progressOf(this.#client, this.#upstream!);
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#onIdleTick, Math.max(1, Math.ceil(timeoutMs / IDLE_TICKS)));
  }

  /** The client's first bytes on a pool with responseTimeoutMs: the backend must answer in time. */
  #awaitResponse(): void {
    this.#responseState = RESPONSE_AWAITED;
    this.#responseTimer = setTimeout(this.#onResponseTimeout, this.#pool.responseTimeoutMs);
  }

  /** The backend's first byte (or FIN): nothing more to watch for this connection. */
  #responseArrived(): void {
    this.#responseState = RESPONSE_NOT_WATCHED;
    if (this.#responseTimer !== null) {
      clearTimeout(this.#responseTimer);
      this.#responseTimer = null;
    }
  }

  /**
   * The backend took the client's bytes and said nothing for responseTimeoutMs: a frozen or wedged
   * backend. Counted against it (outlier detection), and the client is reset: a FIN would read as a
   * complete, empty reply.
   */
  #onResponseTimeout = (): void => {
    this.#responseTimer = null;
    if (this.#responseState !== RESPONSE_AWAITED || this.#slot < 0) return;
    this.#responseState = RESPONSE_NOT_WATCHED;
    this.#error ??= 'response_timeout';
    this.#backendFailed('response_timeout');
    resetOrDestroy(this.#client);
    this.#destroy('response_timeout');
  };

  /** An established connection failed by the backend: counted per kind, and reported to outlier detection. */
  #backendFailed(reason: 'reset' | 'response_timeout'): void {
    if (this.#outcome !== null) return; // already ending for another reason
    this.#pool.traffic.establishedFailed(this.#slot, reason);
    this.#pool.reportConnectFailure(this.#slot, reason);
  }

  #onConnectTimeout = (): void => {
    if (!this.#connected && this.#upstream !== null) this.#failAttempt('timeout', 'timeout');
  };

  #onIdleTick = (): void => {
    const upstream = this.#upstream;
    if (upstream === null) return;
    const bytes = progressOf(this.#client, upstream);
    if (bytes !== this.#bytesAtLastTick) {
      this.#bytesAtLastTick = bytes;
      this.#quietTicks = 0;
    } else if (++this.#quietTicks >= IDLE_TICKS) {
      const outcome = this.#quietOutcome;
      if (outcome !== 'idle_timeout') {
        // A half-closed stream cut short: a reset to whichever side has not had our FIN, so that
        // neither mistakes the truncated stream for a finished one (a FIN would read as "done").
        this.#error ??= outcome;
        resetOrDestroy(this.#client);
        resetOrDestroy(upstream);
      }
      this.#destroy(outcome);
      return;
    }
    this.#timer!.refresh();
  };

  #onUpstreamError = (error: NodeJS.ErrnoException): void => {
    if (this.#connected) {
      this.#error ??= error.code ?? error.message;
      if (isReset(error)) {
        this.#backendFailed('reset');
        resetOrDestroy(this.#client);
      }
      this.#destroy('upstream_error');
    } else if (isOutOfFileDescriptors(error.code)) {
      this.#refuseForLackOfDescriptors(error.code!);
    } else {
      this.#failAttempt(failureReasonOf(error), error.code ?? error.message, !isLocalError(error));
    }
  };

  #onUpstreamClose = (): void => {
    this.#socketClosed();
  };

  #onClientError = (error: NodeJS.ErrnoException): void => {
    this.#error ??= error.code ?? error.message;
    const upstream = this.#upstream;
    if (isReset(error) && this.#connected && upstream !== null) resetOrDestroy(upstream);
    this.#destroy('client_error');
  };

  #onClientClose = (): void => {
    // Gone while its PROXY header was awaited: the header never came.
    if (this.#header !== null) this.#destroy('proxy_header_invalid');
    // A client that goes away before any upstream connected (a drain, or an error) ends the
    // attempt too; destroying a closed socket is a no-op otherwise.
    if (!this.#connected && (this.#upstream !== null || this.#queuedSlot >= 0)) this.#destroy(this.#outcome ?? 'client_error');
    this.#socketClosed();
  };

  /** A connect attempt failed or timed out: discard its socket, then try another backend. */
  #failAttempt(reason: ConnectFailureReason, detail: string, backendsFault = true): void {
    const pool = this.#pool;
    this.#error = detail;
    this.#lastFailedSlot = this.#slot;
    if (this.#context.logger.isLevelEnabled('debug')) {
      this.#context.logger.debug({ pool: pool.name, backend: pool.addressOf(this.#slot), attempt: this.#attempts, error: detail }, 'connect attempt failed');
    }
    this.#discardUpstream();
    // Counted while the slot is held: once released, the slot may go to another backend.
    pool.traffic.connectFailed(this.#slot, reason);
    pool.release(this.#slot, this);
    if (backendsFault) pool.reportConnectFailure(this.#slot, reason);
    // Sized once: a reload changing `retries` applies to connections accepted after it.
    const tried = (this.#tried ??= new Int32Array(pool.retries + 1));
    tried[this.#attempts - 1] = this.#slot;
    this.#slot = -1;
    if (this.#client.destroyed) return; // closed meanwhile; #onClientClose finishes us
    if (this.#attempts >= tried.length) {
      this.#destroy('connect_failed');
      return;
    }
    this.#attempt();
  }

  /**
   * The upstream socket could not be opened because this process (EMFILE) or the system (ENFILE) is
   * out of descriptors. Not the backend's fault: no connect failure is counted against it nor
   * reported to outlier detection (that once ejected a healthy backend), and no other backend is
   * tried (it would fail the same way). The client is refused, counted and logged; the listener
   * pauses accepting.
   */
  #refuseForLackOfDescriptors(code: string): void {
    this.#discardUpstream();
    this.#error = code;
    this.#lastFailedSlot = this.#slot;
    this.#pool.release(this.#slot, this);
    this.#slot = -1;
    this.#context.outOfFileDescriptors();
    this.#destroy('rejected_no_fds');
  }

  /** A connect attempt that will not be used: its socket goes, and nothing it says later reaches us. */
  #discardUpstream(): void {
    const failed = this.#upstream!;
    failed.removeListener('error', this.#onUpstreamError);
    failed.removeListener('close', this.#onUpstreamClose);
    failed.removeListener('connect', this.#onUpstreamConnect);
    failed.on('error', noop);
    failed.destroy();
    this.#upstream = null;
    this.#openSockets -= 1;
  }

  /** Any terminal condition: the first one named is the outcome; both sockets go at once. */
  #destroy(outcome: ConnectionOutcome): void {
    this.#outcome ??= outcome;
    this.#clearTimers();
    if (this.#queuedSlot >= 0) {
      this.#pool.leaveQueue(this.#queuedSlot, this);
      this.#queuedSlot = -1;
    }
    this.#client.destroy();
    this.#upstream?.destroy();
  }

  #socketClosed(): void {
    this.#openSockets -= 1;
    if (this.#openSockets !== 0) return;
    this.#clearTimers();
    if (this.#slot >= 0) {
      // The last bytes go in before the slot is released (then it may go to another backend).
      this.flushTraffic();
      // The connection's verdict for outlier detection: one that ended without any failure ends the
      // backend's failure streak. Others that are not the backend's fault (client errors, idle and
      // fin timeouts, drains) say nothing either way.
      if (this.#connected && this.#outcome === null) this.#pool.reportConnectSuccess(this.#slot);
      this.#pool.release(this.#slot, this);
    }
    if (this.#sourceHash >= 0) {
      this.#edge!.release(this.#sourceHash);
      this.#sourceHash = -1;
    }
    // Counts first, line second: whoever reads the line (a client retrying against maxConnections,
    // another worker thread) finds the connection's slot and its place under the limit free.
    // Idle waiters run later (promise jobs), after the line is written.
    this.#context.connectionFinished(this);
    if (this.#logEnabled && this.#context.accessLog.enabled && (this.#sampled || isFailure(this.#outcome ?? 'ok'))) this.#writeAccessLog();
  }

  #clearTimers(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#responseTimer !== null) {
      clearTimeout(this.#responseTimer);
      this.#responseTimer = null;
    }
  }

  /**
   * Open-connection sweep (access-log.ts): an open line if this connection's last line is at least
   * `intervalMs` old. Bytes are the sockets' own counters so far, as at close.
   */
  reportIfOpenFor(nowMs: number, intervalMs: number): void {
    if (!this.#sampled || this.#outcome !== null || nowMs - this.#lastLineAt < intervalMs) return;
    this.#lastLineAt = nowMs;
    const client = this.#client;
    this.#lines.info(
      {
        event: 'open',
        client: formatPeer(this.#clientAddress, this.#clientPort),
        backend: this.#slot >= 0 ? this.#pool.addressOf(this.#slot) : null,
        attempts: this.#attempts,
        bytesIn: client.bytesRead,
        bytesOut: client.bytesWritten,
        durationMs: Math.round((nowMs - this.#startedAt) * 1000) / 1000,
      },
      'connection open',
    );
  }

  #writeConnectLine(nowMs: number): void {
    this.#lastLineAt = nowMs;
    this.#lines.info(
      {
        event: 'connect',
        client: formatPeer(this.#clientAddress, this.#clientPort),
        backend: this.#pool.addressOf(this.#slot),
        attempts: this.#attempts,
        connectMs: Math.round((nowMs - this.#connectStartedAt) * 1000) / 1000,
        durationMs: Math.round((nowMs - this.#startedAt) * 1000) / 1000,
      },
      'connection established',
    );
  }

  #writeAccessLog(): void {
    const client = this.#client;
    const pool = this.#pool;
    this.#lines.info(
      {
        event: 'close',
        client: formatPeer(this.#clientAddress, this.#clientPort),
        backend: this.#slot >= 0 ? pool.addressOf(this.#slot) : this.#lastFailedSlot >= 0 ? pool.addressOf(this.#lastFailedSlot) : null,
        attempts: this.#attempts,
        bytesIn: client.bytesRead,
        bytesOut: client.bytesWritten,
        durationMs: Math.round((performance.now() - this.#startedAt) * 1000) / 1000,
        outcome: this.#outcome ?? 'ok',
        // Omitted (undefined) on success; pino drops undefined fields.
        error: this.#outcome === null ? undefined : (this.#error ?? undefined),
      },
      'connection closed',
    );
  }
}

/** Access-log form of a peer: `1.2.3.4:5678`, `[::1]:5678`. */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return 'unknown';
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Failures are written whatever the sampling: every outcome but a completed connection (`ok`) and
 * one cut by a drain the operator asked for (`drained`).
 */
export function isFailure(outcome: ConnectionOutcome): boolean {
  return outcome !== 'ok' && outcome !== 'drained';
}

/** Log line for a connection refused at accept (a failure: never sampled out); it never becomes a ProxyConnection. */
export function logRejectedConnection(accessLines: Logger, client: ProxySocket, outcome: ConnectionOutcome = 'rejected_max_connections'): void {
  accessLines.info(
    {
      event: 'close',
      client: formatPeer(client.remoteAddress, client.remotePort),
      backend: null,
      attempts: 0,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      outcome,
    },
    'connection closed',
  );
}
