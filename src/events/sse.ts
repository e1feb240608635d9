/**
 * `GET /v1/events`: the event bus as Server-Sent Events (WHATWG HTML §9.2), per
 * /work/prompts/s13/api-contract.md: `id: <n>\nevent: <type>\ndata: <RinglbEvent JSON>\n\n` per
 * event, `Last-Event-ID` replays every retained event with a larger id, `: keepalive` every 15 s.
 *
 * Bounded in every direction, so a client can never cost the balancer more than a fixed amount:
 * - at most `maxClients` streams (64 by default; 503 beyond);
 * - a client that does not read is dropped once its unsent output passes `maxBufferedBytes` (node
 *   keeps what the kernel did not take in the response's buffer: without a bound, one stuck
 *   dashboard tab would hold every event ever published);
 * - one keepalive timer for all clients, unref'd.
 *
 * The stream outlives admin server restarts (a reload that changes `admin.bind`): the server ends its
 * open streams when it closes (AdminServer), and clients reconnect with `Last-Event-ID`.
 */
import type { ServerResponse } from 'node:http';
import { AdminError } from '../admin/api.js';
import { type AdminRequest, type AdminResponse, type RouteTable } from '../admin/router.js';
import type { EventBus, PublishedEvent } from './bus.js';
import { EVENT_TYPES, type RinglbEventType } from './types.js';

export const DEFAULT_MAX_EVENT_CLIENTS = 64;
/** 15 s, as api-contract.md says: well under the 60 s idle timeouts common in proxies in between. */
export const DEFAULT_KEEPALIVE_MS = 15_000;
/**
 * Unsent bytes a client may fall behind by, beyond what the kernel took: well above a burst (a
 * replay of all 256 retained events is about 100 KB, written at once while the socket's send buffer
 * may still be small), and about 1,500 events of lag. 64 clients hold at most 32 MiB.
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 512 * 1024;

export interface EventStreamOptions {
  readonly bus: EventBus;
  readonly maxClients?: number;
  readonly keepaliveMs?: number;
  readonly maxBufferedBytes?: number;
}

interface Client {
  readonly response: ServerResponse;
  /** null = every type. */
  readonly types: ReadonlySet<string> | null;
}

/**
 * Streams allowed beside an admin connection cap of `maxConnections`: at most half of it (and at
 * most DEFAULT_MAX_EVENT_CLIENTS). A stream holds its connection for as long as it is open and
 * the cap never evicts it (it is a request being answered), so with 64 streams allowed and
 * `maxConnections: 30`, 30 open dashboards locked every other client (/metrics) out.
 */
export function eventStreamCap(maxConnections: number): number {
  return Math.min(DEFAULT_MAX_EVENT_CLIENTS, Math.floor(maxConnections / 2));
}

export class EventStream {
  readonly #bus: EventBus;
  #maxClients: number;
  readonly #keepaliveMs: number;
  readonly #maxBufferedBytes: number;
  readonly #clients = new Set<Client>();
  #unsubscribe: (() => void) | null = null;
  #keepalive: NodeJS.Timeout | null = null;
  /** Clients dropped because they did not read (for tests and logs). */
  #dropped = 0;

  constructor(options: EventStreamOptions) {
    this.#bus = options.bus;
    this.#maxClients = options.maxClients ?? DEFAULT_MAX_EVENT_CLIENTS;
    this.#keepaliveMs = options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  }

  /** Installs `GET /v1/events` on an admin server. */
  install(routes: RouteTable): void {
    routes.route('GET', '/v1/events', (request) => this.#open(request));
  }

  /**
   * Streams allowed from now on (admin.limits changed). Streams above a lowered cap end now (their
   * clients reconnect with Last-Event-ID and get 503 until there is room): the connection cap never
   * evicts a stream, so 40 open ones under a new cap of 32 refused every other admin client.
   */
  set maxClients(count: number) {
    this.#maxClients = count;
    let over = this.#clients.size - count;
    for (const client of [...this.#clients].reverse()) {
      if (over-- <= 0) break;
      client.response.end();
      this.#remove(client);
    }
  }

  get clientCount(): number {
    return this.#clients.size;
  }

  /** Clients dropped so far because their unsent output passed the bound. */
  get droppedClients(): number {
    return this.#dropped;
  }

  /** Ends every stream (shutdown). */
  close(): void {
    for (const client of [...this.#clients]) client.response.end();
    this.#detach();
  }

  #open(request: AdminRequest): AdminResponse {
    const types = parseTypes(request.query.get('types'));
    const lastId = parseLastEventId(request.headers['last-event-id']);
    if (this.#clients.size >= this.#maxClients) {
      throw new AdminError(503, `too many event stream clients (at most ${this.#maxClients}); retry later`, request.path);
    }
    return {
      status: 200,
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        // A buffering reverse proxy (nginx) would hold events back: ask it not to.
        'x-accel-buffering': 'no',
        // Ending the stream ends the connection: a closing admin server waits for no idle socket.
        connection: 'close',
      },
      stream: (response) => this.#attach(response, types, lastId),
    };
  }

  #attach(response: ServerResponse, types: ReadonlySet<string> | null, lastId: number | null): void {
    const client: Client = { response, types };
    // Requests admitted in one turn all pass the check in #open before any attaches: check again.
    // Nothing is sent yet, so the answer can still be the 503 the others get.
    if (this.#clients.size >= this.#maxClients) {
      const body = `${JSON.stringify({ error: `too many event stream clients (at most ${this.#maxClients}); retry later`, path: '/v1/events' })}\n`;
      response.statusCode = 503;
      response.setHeader('content-type', 'application/json; charset=utf-8');
      response.setHeader('content-length', Buffer.byteLength(body));
      response.end(body);
      return;
    }
    this.#clients.add(client);
    response.on('close', () => this.#remove(client));
    response.on('error', () => this.#remove(client));
    response.flushHeaders();
    // An SSE comment first: clients see the stream is open before the first event.
    response.write(': ringlb events\n\n');
    // An id above the newest one was given by an earlier process (ids start over at 1): everything
    // retained here is news to that client.
    const after = lastId === null ? null : lastId > this.#bus.lastId ? 0 : lastId;
    if (after !== null) for (const published of this.#bus.since(after)) this.#send(client, published);
    if (this.#unsubscribe === null) this.#unsubscribe = this.#bus.subscribe((published) => this.#broadcast(published));
    if (this.#keepalive === null) {
      this.#keepalive = setInterval(() => this.#writeKeepalive(), this.#keepaliveMs);
      this.#keepalive.unref();
    }
  }

  #broadcast(published: PublishedEvent): void {
    // One frame for every client (the JSON has no newline, so it is one `data:` line).
    const frame = frameOf(published);
    for (const client of this.#clients) this.#send(client, published, frame);
  }

  #send(client: Client, published: PublishedEvent, frame = frameOf(published)): void {
    if (client.types !== null && !client.types.has(published.event.type)) return;
    this.#write(client, frame);
  }

  #writeKeepalive(): void {
    for (const client of this.#clients) this.#write(client, ': keepalive\n\n');
  }

  #write(client: Client, frame: string): void {
    const response = client.response;
    if (response.destroyed || response.writableEnded) return;
    if (response.writableLength > this.#maxBufferedBytes) {
      // Not reading: drop it rather than buffer without bound. It may reconnect with Last-Event-ID.
      this.#dropped += 1;
      this.#remove(client);
      response.destroy();
      return;
    }
    response.write(frame);
  }

  #remove(client: Client): void {
    if (!this.#clients.delete(client)) return;
    if (this.#clients.size === 0) this.#detach();
  }

  #detach(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#keepalive !== null) clearInterval(this.#keepalive);
    this.#keepalive = null;
  }
}

function frameOf(published: PublishedEvent): string {
  return `id: ${published.event.id}\nevent: ${published.event.type}\ndata: ${published.json}\n\n`;
}

/** `?types=down,up`: null when absent; 400 naming the unknown type otherwise. */
function parseTypes(text: string | null): ReadonlySet<string> | null {
  if (text === null) return null;
  const names = text.split(',').map((name) => name.trim()).filter((name) => name !== '');
  if (names.length === 0) throw new AdminError(400, `types must list event types separated by commas: ${EVENT_TYPES.join(', ')}`, 'query.types');
  for (const name of names) {
    if (!EVENT_TYPES.includes(name as RinglbEventType)) {
      throw new AdminError(400, `unknown event type "${name}"; known: ${EVENT_TYPES.join(', ')}`, 'query.types');
    }
  }
  return new Set(names);
}

/** The `Last-Event-ID` header: a non-negative integer, or null when absent (no replay). */
function parseLastEventId(header: string | string[] | undefined): number | null {
  if (header === undefined) return null;
  const text = Array.isArray(header) ? header[0]! : header;
  if (!/^\d{1,15}$/.test(text.trim())) {
    throw new AdminError(400, `Last-Event-ID must be a non-negative integer (an event id), got "${text.slice(0, 40)}"`, 'headers.last-event-id');
  }
  return Number(text.trim());
}

