/**
 * The admin HTTP listener (node:http): JSON in and out, bearer-token auth, a small router that later
 * features add routes to (`server.route('GET', '/metrics', handler)`), and the registration API
 * routes installed at construction (pool-routes.ts).
 *
 * Robustness against a bad client: malformed HTTP gets a bare 400 from the `clientError` hook,
 * every request and its headers have deadlines (requestTimeout/headersTimeout), idle keep-alive
 * sockets are closed after keepAliveTimeoutMs, headers and bodies are size-limited (bodies while
 * streaming), connections are capped (connection-guard.ts) — all from config `admin.limits`
 * (limits.ts), changeable in place by `setLimits` — and any exception in a handler becomes a 500
 * with a logged stack — it never reaches the process.
 *
 * Errors are always `{"error": "<what is wrong>", "path": "<where>"}`; `path` is the JSON path of
 * the bad body field (`weight`, `$` for the whole body), `query.<name>` for a query parameter, or
 * the request path for auth/route/resource errors.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { HostPort } from '../backend.js';
import type { Logger } from '../log.js';
import { BearerToken, isLoopbackHost } from './access.js';
import { AdminConnectionGuard, type AdminConnectionCounts } from './connection-guard.js';
import { AdminError, type AdminApi } from './api.js';
import { installPoolRoutes } from './pool-routes.js';
import { installStatusRoutes } from './status-routes.js';
import { adminLimitsProblem, DEFAULT_ADMIN_LIMITS, type AdminLimits } from './limits.js';
import { readJsonBody } from './request-body.js';
import { TurnBudget } from './turn-budget.js';
import {
  jsonResponse,
  Router,
  type AdminHandler,
  type AdminRequest,
  type AdminResponse,
  type HttpMethod,
  type RouteTable,
} from './router.js';

export interface AdminServerOptions {
  readonly bind: HostPort;
  /** null = no auth, allowed only on a loopback bind. */
  readonly token: string | null;
  readonly api: AdminApi;
  readonly logger: Logger;
  /** Config `admin.limits`; a key left out takes its default (DEFAULT_ADMIN_LIMITS). */
  readonly limits?: Partial<AdminLimits>;
  /** Served before the token check (the dashboard's page and code); absent: none. */
  readonly publicFiles?: PublicFiles;
}

/** Files anyone who reaches the listener may load, token or not: they must hold no data. */
export interface PublicFiles {
  /** The response for a public file, or undefined when `path` is none (auth and routing apply). */
  serve(method: string, path: string, headers: IncomingHttpHeaders): Promise<AdminResponse> | undefined;
}

/** See TurnBudget: 8 small handlers are well under a millisecond of one loop turn. */
const ADMIN_REQUESTS_PER_TURN = 8;

export class AdminServer implements RouteTable {
  readonly #router = new Router();
  readonly #server: Server;
  readonly #bind: HostPort;
  readonly #token: BearerToken | null;
  readonly #logger: Logger;
  #limits: AdminLimits;
  readonly #publicFiles: PublicFiles | null;
  /** Handlers started per event loop turn: a burst of requests must not hold up the data plane. */
  readonly #budget = new TurnBudget(ADMIN_REQUESTS_PER_TURN);
  #address: string | null = null;
  #closing: Promise<void> | undefined;
  /** Open streaming responses (SSE): ended on close, or `server.close()` would wait for them forever. */
  readonly #streams = new Set<ServerResponse>();
  readonly #guard: AdminConnectionGuard;
  /** Sockets answered 400/408 by `clientError` and now lingering (reading and dropping) until they close. */
  readonly #lingering = new WeakSet<Socket>();

  constructor(options: AdminServerOptions) {
    if (options.token === null && !isLoopbackHost(options.bind.host)) {
      // The config validator rejects this too; refusing here keeps a wiring mistake from exposing
      // an unauthenticated registration API to the network.
      throw new Error(
        `admin listener ${options.bind.text} is not a loopback address and has no token; set admin.token or bind 127.0.0.1`,
      );
    }
    this.#bind = options.bind;
    this.#token = options.token === null ? null : new BearerToken(options.token);
    this.#logger = options.logger;
    const limits: AdminLimits = { ...DEFAULT_ADMIN_LIMITS, ...options.limits };
    const problem = adminLimitsProblem(limits);
    if (problem !== null) throw new RangeError(`admin limits: ${problem}`);
    this.#limits = limits;
    this.#publicFiles = options.publicFiles ?? null;
    this.#server = createServer(
      {
        requestTimeout: limits.requestTimeoutMs,
        headersTimeout: limits.headersTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        maxHeaderSize: limits.maxHeaderBytes,
        // node enforces both timeouts from a periodic sweep, every 30 s by default, so a slow
        // client could hold a socket 30 s past its deadline; sweep at least every second. The
        // interval is fixed at creation: a reload that shortens headersTimeoutMs keeps this one.
        connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 2))),
      },
      (request, response) => void this.#handle(request, response),
    );
    this.#guard = new AdminConnectionGuard(this.#server, limits.maxConnections, this.#logger);
    this.#server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
      // Malformed request line/headers, header overflow, or a timeout. Answer once if we still can.
      this.#logger.debug({ err: error.code ?? error.message }, 'admin: client error');
      // node's parser reports an error again for every later chunk of the same broken request:
      // the socket was answered and lingers, and its timer ends it.
      if (this.#lingering.has(socket)) return;
      if (socket.writable && !socket.writableEnded) {
        const status = clientErrorStatus(error.code);
        socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
        // Linger as for an unread body (lingerForBody): a close with unread input is an RST that can
        // take the 400 with it. The socket ends when the client closes, or after LINGER_MS.
        this.#lingering.add(socket);
        const timer = setTimeout(() => socket.destroy(), LINGER_MS);
        socket.once('close', () => clearTimeout(timer));
        socket.resume();
        return;
      }
      socket.destroy();
    });
    // node destroys a CONNECT request's socket without a word when nobody listens for 'connect'
    // (found by test/fuzz-admin.test.ts): say that the admin API is no proxy.
    this.#server.on('connect', (request: IncomingMessage, socket: Socket) => {
      const body = JSON.stringify({ error: 'CONNECT is not allowed: the admin API is not a proxy', path: request.url ?? '' });
      socket.on('error', () => socket.destroy());
      socket.end(`HTTP/1.1 405 Method Not Allowed\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    // An Expect other than 100-continue: node answers 417 itself when nobody listens, but closes
    // with the body unread, and the reset could lose the answer (found by test/fuzz-admin.test.ts).
    this.#server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
      const path = (request.url ?? '/').split('?', 1)[0]!;
      const result = jsonResponse(417, { error: `Expect: ${JSON.stringify(request.headers.expect ?? '')} is not supported (only 100-continue)`, path });
      const bodyLeftUnread = !request.complete;
      void (bodyLeftUnread && !request.destroyed ? lingerForBody(request) : Promise.resolve()).then(() => this.#send(request, response, result, bodyLeftUnread));
    });
    installPoolRoutes(this, options.api);
    installStatusRoutes(this, options.api);
  }

  /**
   * Adds a route. `pattern` is `/literal/:param/...`; handlers return a response or throw
   * `AdminError`. Auth applies to every route.
   */
  route(method: HttpMethod, pattern: string, handler: AdminHandler): this {
    this.#router.add(method, pattern, handler);
    return this;
  }

  get limits(): AdminLimits {
    return this.#limits;
  }

  /**
   * Applies new limits to the running listener (a reload): no rebind, no connection cut. Node reads
   * `requestTimeout` and `headersTimeout` at every sweep, so they bind open connections too;
   * `keepAliveTimeout` is read when a response ends, the body limit when a handler reads a body, the
   * connection cap at the next connection. `maxHeaderBytes` is not among them: Node documents
   * `maxHeaderSize` only as a `createServer` option, so a change to it needs a new listener
   * (`appliesInPlace`). Throws, changing nothing, when the limits contradict each other or change
   * maxHeaderBytes (the config cross-checks refuse the first before a reload gets here).
   */
  setLimits(limits: AdminLimits): void {
    const problem = adminLimitsProblem(limits);
    if (problem !== null) throw new RangeError(`admin limits: ${problem}`);
    if (!this.appliesInPlace(limits)) throw new RangeError('admin limits: maxHeaderBytes changes need a new listener');
    this.#server.requestTimeout = limits.requestTimeoutMs;
    this.#server.headersTimeout = limits.headersTimeoutMs;
    this.#server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    this.#guard.maxConnections = limits.maxConnections;
    this.#limits = limits;
  }

  /** Whether setLimits can apply `limits` to this listener (every key but maxHeaderBytes can). */
  appliesInPlace(limits: AdminLimits): boolean {
    return limits.maxHeaderBytes === this.#limits.maxHeaderBytes;
  }

  /** Connections evicted or refused by the cap so far, and open now (for /metrics). */
  connectionCounts(): AdminConnectionCounts {
    return this.#guard.counts();
  }

  /** Starts listening; resolves with the bound address (`127.0.0.1:40123`, `[::1]:40123`). */
  async listen(): Promise<string> {
    if (this.#address !== null) return this.#address;
    this.#server.listen({ host: this.#bind.host, port: this.#bind.port });
    await Promise.race([
      once(this.#server, 'listening'),
      once(this.#server, 'error').then(([error]) => {
        throw error;
      }),
    ]);
    const info = this.#server.address() as AddressInfo;
    this.#address = info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
    this.#logger.info({ address: this.#address, auth: this.#token !== null }, 'admin listening');
    return this.#address;
  }

  /** Bound address, or null before listen(). */
  get address(): string | null {
    return this.#address;
  }

  /**
   * Stops accepting, closes idle keep-alive sockets at once, and lets requests in flight finish
   * (their sockets close after the response). Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    if (!this.#server.listening) {
      this.#closing = Promise.resolve();
      return this.#closing;
    }
    this.#closing = new Promise<void>((resolve, reject) => {
      this.#server.close((error) => (error === undefined ? resolve() : reject(error)));
      this.#server.closeIdleConnections();
      for (const stream of this.#streams) stream.end();
    });
    return this.#closing;
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    await this.#budget.admit();
    const started = performance.now();
    const method = request.method ?? 'GET';
    const rawUrl = request.url ?? '/';
    const queryStart = rawUrl.indexOf('?');
    const path = queryStart < 0 ? rawUrl : rawUrl.slice(0, queryStart);
    let result: AdminResponse;
    try {
      result = await this.#dispatch(request, method, path, queryStart < 0 ? '' : rawUrl.slice(queryStart + 1));
    } catch (error) {
      result = this.#errorResponse(error, method, path);
    }
    // An answer to a request whose body was not read (413, 415, a GET with a body): read and drop
    // the rest briefly first. Closing a socket with unread input makes the kernel send RST, and the
    // client's kernel may then discard our answer before the client reads it (found by
    // test/fuzz-admin.test.ts; nginx's lingering_close does the same).
    const bodyLeftUnread = !request.complete;
    if (bodyLeftUnread && !request.destroyed) await lingerForBody(request);
    try {
      this.#send(request, response, result, bodyLeftUnread);
    } catch (error) {
      // E.g. a header value node refuses; never let one response take the process down.
      this.#logger.error({ err: error, method, path }, 'admin: cannot send response');
      response.destroy();
    }
    const level = result.status >= 500 ? 'error' : result.status === 401 ? 'warn' : 'debug';
    this.#logger[level](
      { method, path, status: result.status, ms: Math.round((performance.now() - started) * 100) / 100 },
      'admin request',
    );
  }

  async #dispatch(request: IncomingMessage, method: string, path: string, queryText: string): Promise<AdminResponse> {
    const publicFile = this.#publicFiles?.serve(method, path, request.headers);
    if (publicFile !== undefined) return await publicFile;
    if (this.#token !== null) {
      const verdict = this.#token.check(request.headers.authorization);
      if (verdict !== 'ok') {
        // RFC 6750 §3: no credentials → no error code; wrong credentials → invalid_token.
        const challenge = verdict === 'missing' ? 'Bearer realm="ringlb"' : 'Bearer realm="ringlb", error="invalid_token"';
        return jsonResponse(
          401,
          { error: verdict === 'missing' ? 'missing bearer token' : 'invalid bearer token', path },
          { 'www-authenticate': challenge },
        );
      }
    }
    if (!path.startsWith('/')) throw new AdminError(400, 'request target must be an absolute path', path);
    const match = this.#router.match(method, path);
    if (match.kind === 'not-found') throw new AdminError(404, `no route for ${method} ${path}`, path);
    if (match.kind === 'method-not-allowed') {
      return jsonResponse(
        405,
        { error: `${method} is not allowed here; allowed: ${match.allowed.join(', ')}`, path },
        { allow: match.allowed.join(', ') },
      );
    }
    const adminRequest: AdminRequest = {
      method: (method === 'HEAD' ? 'GET' : method) as HttpMethod,
      path,
      params: match.params,
      query: new URLSearchParams(queryText),
      headers: request.headers,
      remoteAddress: request.socket.remoteAddress ?? 'unknown',
      json: () => readJsonBody(request, this.#limits.maxBodyBytes, path),
    };
    return await match.handler(adminRequest);
  }

  #errorResponse(error: unknown, method: string, path: string): AdminResponse {
    if (error instanceof AdminError) {
      const body = { error: error.message, path: error.path ?? path };
      return jsonResponse(error.status, error.issues === undefined ? body : { ...body, issues: error.issues });
    }
    // A bug in a handler or the AdminApi implementation: log it in full, tell the client little.
    this.#logger.error({ err: error, method, path }, 'admin: handler failed');
    return jsonResponse(500, { error: 'internal error (logged)', path });
  }

  #send(request: IncomingMessage, response: ServerResponse, result: AdminResponse, bodyLeftUnread: boolean): void {
    if (response.headersSent || response.destroyed) return;
    response.statusCode = result.status;
    response.setHeader('cache-control', 'no-store');
    for (const [name, value] of Object.entries(result.headers ?? {})) response.setHeader(name, value);
    // The body was not (fully) read, e.g. after a 413/415: close rather than parse the rest of it
    // as the next request.
    if (bodyLeftUnread || !request.complete || this.#closing !== undefined) response.setHeader('connection', 'close');
    if (result.stream !== undefined && request.method !== 'HEAD' && this.#closing === undefined) {
      this.#streams.add(response);
      response.on('close', () => this.#streams.delete(response));
      result.stream(response);
    } else if (result.body === undefined) {
      response.end();
    } else {
      response.setHeader('content-length', Buffer.byteLength(result.body));
      response.end(result.body);
    }
  }
}

/**
 * The status `clientError` answers a broken request with: 408 for a missed deadline, 431 for
 * headers over maxHeaderBytes (what node's own clientError handler sends), 400 for the rest.
 */
function clientErrorStatus(code: string | undefined): string {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return '408 Request Timeout';
  if (code === 'HPE_HEADER_OVERFLOW') return '431 Request Header Fields Too Large';
  return '400 Bad Request';
}

/** Lingering: how long and how much of an unwanted request body is read and dropped before the answer. */
const LINGER_MS = 2_000;
const LINGER_BYTES = 8 * 1024 * 1024;

/** Reads and drops the rest of `request` until it ends, LINGER_BYTES have passed, or LINGER_MS. */
function lingerForBody(request: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    let dropped = 0;
    const done = (): void => {
      clearTimeout(timer);
      request.removeListener('data', onData);
      request.removeListener('end', done);
      request.removeListener('close', done);
      request.removeListener('error', done);
      request.pause();
      resolve();
    };
    const onData = (chunk: Buffer): void => {
      dropped += chunk.length;
      if (dropped > LINGER_BYTES) done();
    };
    const timer = setTimeout(done, LINGER_MS);
    request.on('data', onData);
    request.once('end', done);
    request.once('close', done);
    request.once('error', done);
    request.resume();
  });
}
