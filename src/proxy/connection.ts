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
 * Per-connection cost is kept to one object, thirteen handlers bound once here, two sockets and at
 * most two timers (connect, then idle). No `stream.pipe`: it adds eight listeners and closures per
 * direction and runs its bookkeeping per chunk and at close, for what the six forwarding handlers
 * below do. Measured (bench/RESULTS.md "Data plane, issue 8"): ~230 µs of CPU per proxied connection
 * on this 2-core box, about half of it in the kernel (loopback TCP); against the pipe() version the
 * CPU per connection, request and GB moved within this machine's noise (0.71×–1.07× per request over
 * two runs; an A/A run read 0.74×), so the gain is not proven yet. Per chunk we do one write() and its return check, nothing
 * more: byte counts come from the sockets' own counters (read at close, and by the listener's
 * flush every few seconds for `/metrics`), and the idle timeout samples those counters instead of
 * re-arming a timer on every read and write (see IDLE_TICKS). The metrics counters cost a few
 * Float64 adds per connection into this thread's row (shared-state/traffic-counters.ts; measured
 * in bench/RESULTS.md "Metrics counters").
 * Nor do we resolve names: the pool hands out an IP literal per slot (backend names are resolved
 * off the hot path, discovery/name-resolver.ts), so `net.connect` makes no `dns.lookup`.
 */
import type { AccessLog } from '../access-log/access-log.js';
import type { ConnectFailureReason } from '../backend.js';
import type { Logger } from '../log.js';
import type { PoolTrafficWriter } from '../shared-state/traffic-counters.js';
import type { SlotConnection } from './slot-connections.js';
import { isOutOfFileDescriptors } from './fd-exhaustion.js';
import { connectUpstream, type ProxySocket } from './handle-socket.js';

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
  | 'drained';

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
  /** The client's key for hash policies (integers, never a string into WASM); 0 for the others. */
  keyHashOf(client: ProxySocket): number;
  /** A slot for this attempt, never one of the first `triedCount` of `tried` while another is left; -1 when none. */
  pick(keyHash: number, tried: ArrayLike<number> | undefined, triedCount: number): number;
  /** An attempt to `slot` begins: counted, and linked for the slot's drain. */
  acquire(slot: number, connection: SlotConnection): void;
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
  /** Passive health: a connect succeeded (ends the slot's failure streak). */
  reportConnectSuccess(slot: number): void;
  /** Passive health: a connect attempt failed. */
  reportConnectFailure(slot: number, reason: ConnectFailureReason): void;
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
  /** This thread's access log: enabled, sampling, onConnect (access-log/access-log.ts). */
  readonly accessLog: AccessLog;
  /** Access-log lines of this listener, bound to { listener, pool }; rebound with the pool, read at accept. */
  readonly accessLines: Logger;
  /** The operational log (debug lines of failed attempts). */
  readonly logger: Logger;
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

function failureReasonOf(error: NodeJS.ErrnoException): ConnectFailureReason {
  return error.code === 'ECONNREFUSED' ? 'refused' : 'error';
}

export class ProxyConnection implements SlotConnection {
  /** Intrusive list links, owned by the listener (no Set churn per connection). */
  previous: ProxyConnection | null = null;
  next: ProxyConnection | null = null;
  /** Intrusive links of the pool's per-slot list, set while this connection holds a slot (drain). */
  slotPrevious: SlotConnection | null = null;
  slotNext: SlotConnection | null = null;

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
  readonly #keyHash: number;
  #upstream: ProxySocket | null = null;
  #slot = -1;
  /** Slots already tried; allocated only when a first attempt fails (rare). */
  #tried: Int32Array | null = null;
  #attempts = 0;
  #connectStartedAt = 0;
  #connected = false;
  /** Connect timeout while connecting, then the idle sampler; one timer object at a time. */
  #timer: NodeJS.Timeout | null = null;
  #bytesAtLastTick = 0;
  #quietTicks = 0;
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
    if (this.#logEnabled) {
      // Read now: after close the handle is gone and Node can no longer ask the kernel.
      this.#clientAddress = client.remoteAddress;
      this.#clientPort = client.remotePort;
    }
    this.#keyHash = this.#pool.keyHashOf(client);
    client.on('error', this.#onClientError);
    client.on('close', this.#onClientClose);
  }

  /** Begin the first attempt. Separate from the constructor so the listener can link us first. */
  start(): void {
    this.#attempt();
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
    // Counted from the pick, not from the established connection: a burst of new connections
    // must see each other's in-flight connects, or least_connections sends the whole burst to
    // one backend. Released on failure or close. The pool also links us into the slot's list, so a
    // removed backend's connections can be cut at its drain deadline.
    pool.acquire(slot, this);
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
    // Outlier detection counts consecutive failures: a success ends the streak.
    pool.reportConnectSuccess(this.#slot);
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
    // Paused since accept (pauseOnConnect sets readableFlowing to false, so a 'data' listener alone
    // does not start it): bytes held in the kernel since accept flow now.
    client.resume();
    if (this.#sampled && this.#context.accessLog.onConnect) this.#writeConnectLine(now);
  };

  // Backpressure as pipe() does it: a write the peer cannot take yet (write() false) pauses the
  // reading side until the writing side drains. A FIN is passed on as a FIN (end()): half-close.
  #onClientData = (chunk: Buffer): void => {
    if (!this.#upstream!.write(chunk)) this.#client.pause();
  };

  #onUpstreamDrain = (): void => {
    this.#client.resume();
  };

  #onClientEnd = (): void => {
    endSoon(this.#upstream!);
  };

  #onUpstreamData = (chunk: Buffer): void => {
    if (!this.#client.write(chunk)) this.#upstream!.pause();
  };

  #onClientDrain = (): void => {
    this.#upstream!.resume();
  };

  #onUpstreamEnd = (): void => {
    endSoon(this.#client);
  };

  #onConnectTimeout = (): void => {
    if (!this.#connected && this.#upstream !== null) this.#failAttempt('timeout', 'timeout');
  };

  #onIdleTick = (): void => {
    const upstream = this.#upstream;
    if (upstream === null) return;
    const bytes = this.#client.bytesRead + upstream.bytesRead;
    if (bytes !== this.#bytesAtLastTick) {
      this.#bytesAtLastTick = bytes;
      this.#quietTicks = 0;
    } else if (++this.#quietTicks >= IDLE_TICKS) {
      this.#destroy('idle_timeout');
      return;
    }
    this.#timer!.refresh();
  };

  #onUpstreamError = (error: NodeJS.ErrnoException): void => {
    if (this.#connected) {
      this.#error ??= error.code ?? error.message;
      if (isReset(error)) resetOrDestroy(this.#client);
      this.#destroy('upstream_error');
    } else if (isOutOfFileDescriptors(error.code)) {
      this.#refuseForLackOfDescriptors(error.code!);
    } else {
      this.#failAttempt(failureReasonOf(error), error.code ?? error.message);
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
    // A client that goes away before any upstream connected (a drain, or an error) ends the
    // attempt too; destroying a closed socket is a no-op otherwise.
    if (!this.#connected && this.#upstream !== null) this.#destroy(this.#outcome ?? 'client_error');
    this.#socketClosed();
  };

  /** A connect attempt failed or timed out: discard its socket, then try another backend. */
  #failAttempt(reason: ConnectFailureReason, detail: string): void {
    const failed = this.#upstream!;
    const pool = this.#pool;
    this.#error = detail;
    this.#lastFailedSlot = this.#slot;
    if (this.#context.logger.isLevelEnabled('debug')) {
      this.#context.logger.debug({ pool: pool.name, backend: pool.addressOf(this.#slot), attempt: this.#attempts, error: detail }, 'connect attempt failed');
    }
    failed.removeListener('error', this.#onUpstreamError);
    failed.removeListener('close', this.#onUpstreamClose);
    failed.removeListener('connect', this.#onUpstreamConnect);
    failed.on('error', noop);
    failed.destroy();
    this.#upstream = null;
    this.#openSockets -= 1;
    // Counted while the slot is held: once released, the slot may go to another backend.
    pool.traffic.connectFailed(this.#slot, reason);
    pool.release(this.#slot, this);
    pool.reportConnectFailure(this.#slot, reason);
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
    const failed = this.#upstream!;
    failed.removeListener('error', this.#onUpstreamError);
    failed.removeListener('close', this.#onUpstreamClose);
    failed.removeListener('connect', this.#onUpstreamConnect);
    failed.on('error', noop);
    failed.destroy();
    this.#upstream = null;
    this.#openSockets -= 1;
    this.#error = code;
    this.#lastFailedSlot = this.#slot;
    this.#pool.release(this.#slot, this);
    this.#slot = -1;
    this.#context.outOfFileDescriptors();
    this.#destroy('rejected_no_fds');
  }

  /** Any terminal condition: the first one named is the outcome; both sockets go at once. */
  #destroy(outcome: ConnectionOutcome): void {
    this.#outcome ??= outcome;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#client.destroy();
    this.#upstream?.destroy();
  }

  #socketClosed(): void {
    this.#openSockets -= 1;
    if (this.#openSockets !== 0) return;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#slot >= 0) {
      // The last bytes go in before the slot is released (then it may go to another backend).
      this.flushTraffic();
      this.#pool.release(this.#slot, this);
    }
    // Counts first, line second: whoever reads the line (a client retrying against maxConnections,
    // another worker thread) finds the connection's slot and its place under the limit free.
    // Idle waiters run later (promise jobs), after the line is written.
    this.#context.connectionFinished(this);
    if (this.#logEnabled && this.#context.accessLog.enabled && (this.#sampled || isFailure(this.#outcome ?? 'ok'))) this.#writeAccessLog();
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
