/**
 * The admin server's connection cap, made so that slow clients cannot hold it.
 *
 * A plain cap (net.Server `maxConnections`) is exactly what slowloris needs: open as many
 * connections as the cap, send a header byte now and then, and every other client — the operator,
 * Prometheus — is refused until the header deadline (headersTimeout) cuts them. Here, when the cap
 * is reached, a new connection evicts the oldest connection that holds no complete request: one
 * still sending its request (headers or body), or an idle keep-alive one. Only when every open
 * connection has a whole request being answered (handlers are fast; an event stream is a
 * logged-in operator) is the newcomer refused. A slow client therefore holds a connection only
 * until enough others arrive, and a request that arrived whole is never cut. Deadlines stay
 * Node's (headersTimeout, requestTimeout, keepAliveTimeout in server.ts): they bound one slow
 * connection, the eviction bounds many.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';

/** At most one "cap reached" line this often; it carries the counts since the last one. */
const LOG_INTERVAL_MS = 10_000;

export interface AdminConnectionCounts {
  /** Connections closed to make room: they held no complete request. */
  readonly evicted: number;
  /** New connections closed at once: every open one was answering a complete request. */
  readonly refused: number;
  readonly open: number;
}

/** Per open connection: the request it is on, if any (a socket carries one request at a time). */
interface Held {
  request: IncomingMessage | null;
}

export class AdminConnectionGuard {
  #max: number;
  readonly #logger: Logger;
  /** Insertion order is age order: the first evictable one is the oldest. */
  readonly #open = new Map<Socket, Held>();
  #evicted = 0;
  #refused = 0;
  #evictedSinceLine = 0;
  #refusedSinceLine = 0;
  #lastLineAt = Number.NEGATIVE_INFINITY;

  constructor(server: Server, maxConnections: number, logger: Logger) {
    this.#max = maxConnections;
    this.#logger = logger;
    server.on('connection', this.#onConnection);
    server.on('request', this.#onRequest);
  }

  /**
   * A new cap (a reload). Open connections stay even above it: the next newcomers evict the
   * evictable ones, so the count falls to the cap as idle and slow connections are displaced.
   */
  set maxConnections(max: number) {
    this.#max = max;
  }

  counts(): AdminConnectionCounts {
    return { evicted: this.#evicted, refused: this.#refused, open: this.#open.size };
  }

  #onConnection = (socket: Socket): void => {
    if (this.#open.size >= this.#max && !this.#evictOne()) {
      this.#refused += 1;
      this.#refusedSinceLine += 1;
      this.#report();
      socket.destroy();
      return;
    }
    this.#open.set(socket, { request: null });
    socket.once('close', () => this.#open.delete(socket));
  };

  #onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const held = this.#open.get(request.socket);
    if (held === undefined) return;
    held.request = request;
    response.once('close', () => {
      if (held.request === request) held.request = null;
    });
  };

  /** Closes the oldest connection without a complete request; false when there is none. */
  #evictOne(): boolean {
    for (const [socket, held] of this.#open) {
      if (held.request !== null && held.request.complete) continue;
      this.#open.delete(socket);
      socket.destroy();
      this.#evicted += 1;
      this.#evictedSinceLine += 1;
      this.#report();
      return true;
    }
    return false;
  }

  #report(): void {
    const now = performance.now();
    if (now - this.#lastLineAt < LOG_INTERVAL_MS) return;
    this.#lastLineAt = now;
    this.#logger.warn(
      { maxConnections: this.#max, evicted: this.#evictedSinceLine, refused: this.#refusedSinceLine },
      'admin connection cap reached: slow or idle connections evicted',
    );
    this.#evictedSinceLine = 0;
    this.#refusedSinceLine = 0;
  }
}
