/**
 * The admin HTTP server over real HTTP on 127.0.0.1:0. The AdminApi behind it is a small in-memory
 * implementation (the runtime's stand-in): a RegistrationStore for the `app` pool, a static pool,
 * and a real balancer per pool for lookups.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { isLoopbackHost } from '../src/admin/access.js';
import {
  AdminError,
  type AdminApi,
  type BackendView,
  type LookupResult,
  type PoolView,
  type RegistrationRequest,
} from '../src/admin/api.js';
import { AdminServer, type AdminServerOptions } from '../src/admin/server.js';
import { textResponse } from '../src/admin/router.js';
import { parseHostPort } from '../src/config/host-port.js';
import type { Backend, HostPort } from '../src/backend.js';
import { createBalancer, sourceKeyHash, type Balancer } from '../src/core/index.js';
import { RegistrationStore } from '../src/registry/registration-store.js';

const TOKEN = 's3cret-token-for-tests';
const silent = pino({ level: 'silent' });

function hostPort(text: string): HostPort {
  const parsed = parseHostPort(text, { allowPortZero: true });
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed;
}

/** The runtime's stand-in: pool `app` (maglev, registration discovery) and `fixed` (round_robin, static). */
class InMemoryAdminApi implements AdminApi {
  readonly store = new RegistrationStore();
  readonly #balancers = new Map<string, Balancer>();
  readonly #static: Backend[] = [
    { id: 'one', address: hostPort('127.0.0.1:9101'), weight: 1, state: 'active' },
    { id: 'two', address: hostPort('127.0.0.1:9102'), weight: 2, state: 'drain' },
  ];
  /** Set by a test to make the next call fail like a bug would. */
  failNext = false;

  constructor() {
    this.store.addPool('app');
    this.#balancers.set('app', createBalancer({ policy: 'maglev', maglevTableSize: 251 }, 'reference'));
    const fixed = createBalancer({ policy: 'round_robin' }, 'reference');
    fixed.setBackends(this.#static);
    this.#balancers.set('fixed', fixed);
    // What the registry does with a source's emit: rebuild that pool's table.
    this.store.onChange((pool, backends) => this.#balancers.get(pool)?.setBackends(backends));
  }

  listPools(): PoolView[] {
    return ['app', 'fixed'].map((name) => {
      const backends = this.listBackends(name);
      return {
        name,
        balance: this.#balancer(name).policy,
        source: name === 'app' ? 'registration' : 'static',
        backends: backends.length,
        eligible: backends.filter((b) => b.health.eligible).length,
      };
    });
  }

  listBackends(pool: string): BackendView[] {
    this.#maybeFail();
    const balancer = this.#balancer(pool);
    const backends = pool === 'app' ? this.store.backends('app') : this.#static;
    return backends.map((backend) => ({
      id: backend.id,
      address: backend.address.text,
      weight: backend.weight,
      state: backend.state,
      health: { eligible: backend.state === 'active', flags: backend.state === 'active' ? [] : ['drained'] },
      source: pool === 'app' ? 'registration' : 'static',
      activeConnections: balancer.activeConnections(balancer.slotOf(backend.id)),
      ttlRemainingMs: pool === 'app' ? (this.store.ttlRemainingMs(pool, backend.id) ?? null) : null,
    }));
  }

  getBackend(pool: string, id: string): BackendView | undefined {
    return this.listBackends(pool).find((backend) => backend.id === id);
  }

  register(pool: string, id: string, request: RegistrationRequest): 'created' | 'renewed' {
    this.#registrationPool(pool);
    const result = this.store.register(pool, id, request);
    if (!result.ok) throw AdminError.conflict(result.message);
    return result.outcome;
  }

  deregister(pool: string, id: string): boolean {
    this.#registrationPool(pool);
    return this.store.deregister(pool, id);
  }

  lookup(pool: string, ip: string, port: number): LookupResult | null {
    const balancer = this.#balancer(pool);
    if (balancer.policy !== 'maglev' && balancer.policy !== 'ring_hash') {
      throw AdminError.conflict(`pool "${pool}" balances with ${balancer.policy}; lookup needs ring_hash or maglev`);
    }
    // maglev's pick reads the table and the health bitmap only: no state changes.
    const slot = balancer.pick(sourceKeyHash(ip, port, false));
    if (slot < 0) return null;
    const id = balancer.idOf(slot) as string;
    return { backendId: id, address: this.store.get(pool, id)?.address.text ?? '?', slot };
  }

  #balancer(pool: string): Balancer {
    const balancer = this.#balancers.get(pool);
    if (balancer === undefined) throw AdminError.unknownPool(pool);
    return balancer;
  }

  #registrationPool(pool: string): void {
    this.#balancer(pool);
    if (!this.store.hasPool(pool)) throw AdminError.conflict(`pool "${pool}" uses static discovery, not registration`);
  }

  #maybeFail(): void {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('simulated bug');
    }
  }
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  readonly json: Record<string, unknown>;
}

interface CallOptions {
  readonly method?: string;
  readonly token?: string | null;
  readonly authorization?: string;
  readonly body?: unknown;
  readonly rawBody?: string | Buffer;
  readonly headers?: Record<string, string>;
  /** Send the body with chunked transfer-encoding (no Content-Length). */
  readonly chunked?: boolean;
}

/** One HTTP request with node:http (no keep-alive, so nothing outlives the test). */
async function call(address: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const url = new URL(`http://${address}${path}`);
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? TOKEN : options.token;
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  else if (token !== null) headers.authorization = `Bearer ${token}`;
  let payload: string | Buffer | undefined = options.rawBody;
  if (options.body !== undefined) {
    payload = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  if (payload !== undefined && options.chunked !== true) headers['content-length'] = String(Buffer.byteLength(payload));
  const req = httpRequest({
    host: url.hostname,
    port: url.port,
    path: `${url.pathname}${url.search}`,
    method: options.method ?? 'GET',
    headers,
    agent: false,
  });
  req.on('error', () => undefined);
  if (payload !== undefined) req.write(payload);
  req.end();
  const [response] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  let json: Record<string, unknown> = {};
  if ((response.headers['content-type'] ?? '').startsWith('application/json')) json = JSON.parse(text) as Record<string, unknown>;
  return { status: response.statusCode ?? 0, headers: response.headers, text, json };
}

/** Writes raw bytes on a fresh socket and reads everything the server sends until it closes. */
async function rawExchange(address: string, bytes: string, keepOpenAfterWrite = false): Promise<string> {
  const { port } = hostPort(address);
  const socket = connect({ host: '127.0.0.1', port });
  try {
    await once(socket, 'connect');
    if (keepOpenAfterWrite) socket.write(bytes);
    else socket.end(bytes);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(socket, 'close');
    return Buffer.concat(chunks).toString('latin1');
  } finally {
    socket.destroy();
  }
}

async function startServer(api: AdminApi, extra: Partial<AdminServerOptions> = {}): Promise<{ server: AdminServer; address: string }> {
  const server = new AdminServer({ bind: hostPort('127.0.0.1:0'), token: TOKEN, api, logger: silent, ...extra });
  const address = await server.listen();
  return { server, address };
}

describe('admin binding rules', () => {
  test('isLoopbackHost', () => {
    for (const host of ['127.0.0.1', '127.8.9.10', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) {
      assert.equal(isLoopbackHost(host), true, host);
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '::ffff:10.0.0.1', 'fe80::1']) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });

  test('a non-loopback bind without a token is refused at construction; with a token it is allowed', () => {
    const api = new InMemoryAdminApi();
    assert.throws(
      () => new AdminServer({ bind: hostPort('0.0.0.0:9901'), token: null, api, logger: silent }),
      /not a loopback address and has no token/,
    );
    assert.doesNotThrow(() => new AdminServer({ bind: hostPort('0.0.0.0:9901'), token: TOKEN, api, logger: silent }));
    assert.throws(() => new AdminServer({ bind: hostPort('127.0.0.1:0'), token: '', api, logger: silent }), /empty/);
    api.store.close();
  });

  test('a loopback bind without a token serves without auth', async () => {
    const api = new InMemoryAdminApi();
    const { server, address } = await startServer(api, { token: null });
    try {
      assert.match(address, /^127\.0\.0\.1:\d+$/);
      const reply = await call(address, '/healthz', { token: null });
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.json, { status: 'ok' });
    } finally {
      await server.close();
      api.store.close();
    }
  });

  test('listen on an address in use rejects', async () => {
    const api = new InMemoryAdminApi();
    const first = await startServer(api);
    const second = new AdminServer({ bind: hostPort(first.address), token: TOKEN, api, logger: silent });
    try {
      await assert.rejects(second.listen(), /EADDRINUSE/);
    } finally {
      await second.close();
      await first.server.close();
      api.store.close();
    }
  });
});

describe('admin server', () => {
  const api = new InMemoryAdminApi();
  let server: AdminServer;
  let address: string;

  before(async () => {
    ({ server, address } = await startServer(api, { maxBodyBytes: 1024 }));
    server.route('GET', '/metrics', () => textResponse(200, 'text/plain; version=0.0.4', 'ringlb_up 1\n'));
    server.route('GET', '/v1/boom', () => {
      throw new TypeError('a bug');
    });
  });
  after(async () => {
    await server.close();
    api.store.close();
  });

  describe('auth', () => {
    test('no token → 401 with a Bearer challenge', async () => {
      const reply = await call(address, '/v1/pools', { token: null });
      assert.equal(reply.status, 401);
      assert.equal(reply.headers['www-authenticate'], 'Bearer realm="ringlb"');
      assert.deepEqual(reply.json, { error: 'missing bearer token', path: '/v1/pools' });
    });

    test('wrong token, other scheme → 401; the right token in any scheme case → 200', async () => {
      const wrong = await call(address, '/v1/pools', { token: 'nope' });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.headers['www-authenticate'], 'Bearer realm="ringlb", error="invalid_token"');
      assert.equal((await call(address, '/v1/pools', { token: `${TOKEN}x` })).status, 401);
      assert.equal((await call(address, '/v1/pools', { authorization: `Basic ${TOKEN}` })).status, 401);
      assert.equal((await call(address, '/v1/pools', { authorization: `bearer ${TOKEN}` })).status, 200);
    });

    test('auth applies to unknown routes and added routes too (no route probing)', async () => {
      assert.equal((await call(address, '/nothing-here', { token: null })).status, 401);
      assert.equal((await call(address, '/metrics', { token: null })).status, 401);
    });
  });

  describe('routing', () => {
    test('unknown route → 404 naming the path', async () => {
      const reply = await call(address, '/v2/whatever');
      assert.equal(reply.status, 404);
      assert.deepEqual(reply.json, { error: 'no route for GET /v2/whatever', path: '/v2/whatever' });
    });

    test('wrong method → 405 with Allow', async () => {
      const reply = await call(address, '/v1/pools', { method: 'POST', body: {} });
      assert.equal(reply.status, 405);
      assert.equal(reply.headers.allow, 'GET, HEAD');
      const backend = await call(address, '/v1/pools/app/backends/x', { method: 'POST', body: {} });
      assert.equal(backend.status, 405);
      assert.equal(backend.headers.allow, 'GET, HEAD, PUT, DELETE');
    });

    test('a route added later (metrics-style text) is served', async () => {
      const reply = await call(address, '/metrics');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['content-type'], 'text/plain; version=0.0.4');
      assert.equal(reply.text, 'ringlb_up 1\n');
      assert.throws(() => server.route('GET', '/metrics', () => textResponse(200, 'text/plain', '')), /already registered/);
      assert.throws(() => server.route('GET', 'metrics', () => textResponse(200, 'text/plain', '')), /must start/);
    });

    test('a handler bug → 500 without details; the server keeps serving', async () => {
      const reply = await call(address, '/v1/boom');
      assert.equal(reply.status, 500);
      assert.deepEqual(reply.json, { error: 'internal error (logged)', path: '/v1/boom' });
      api.failNext = true;
      assert.equal((await call(address, '/v1/pools/app/backends')).status, 500);
      assert.equal((await call(address, '/healthz')).status, 200);
    });

    test('a malformed percent-encoding in a path segment → 400', async () => {
      const reply = await call(address, '/v1/pools/%E0%A4%A/backends');
      assert.equal(reply.status, 400);
      assert.match(String(reply.json.error), /not valid percent-encoded/);
    });

    test('malformed HTTP gets a bare 400 and the server keeps serving', async () => {
      const answer = await rawExchange(address, 'NOT HTTP AT ALL\r\n\r\n');
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request/);
      assert.equal((await call(address, '/healthz')).status, 200);
    });
  });

  describe('request bodies', () => {
    test('non-JSON content type → 415', async () => {
      const reply = await call(address, '/v1/pools/app/backends/a', {
        method: 'PUT',
        rawBody: 'address=127.0.0.1:9001',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(reply.status, 415);
      assert.equal(reply.json.path, '/v1/pools/app/backends/a');
      assert.match(String(reply.json.error), /application\/json/);
    });

    test('no Content-Length and not chunked → 411', async () => {
      const answer = await rawExchange(
        address,
        `PUT /v1/pools/app/backends/a HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n`,
      );
      assert.match(answer, /^HTTP\/1\.1 411 /);
    });

    test('a declared Content-Length over the limit → 413 before reading; a chunked body over it → 413 while streaming', async () => {
      const big = JSON.stringify({ address: '127.0.0.1:9001', padding: 'x'.repeat(2000) });
      const declared = await call(address, '/v1/pools/app/backends/a', {
        method: 'PUT',
        rawBody: big,
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(declared.status, 413);
      assert.equal(declared.headers.connection, 'close');
      const chunked = await call(address, '/v1/pools/app/backends/a', {
        method: 'PUT',
        rawBody: big,
        chunked: true,
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(chunked.status, 413);
      assert.match(String(chunked.json.error), /exceeds the limit of 1024 bytes/);
      assert.equal(api.store.get('app', 'a'), undefined);
    });

    test('bad JSON, empty body, non-object → 400 at $', async () => {
      const put = (rawBody: string): Promise<Reply> =>
        call(address, '/v1/pools/app/backends/a', { method: 'PUT', rawBody, headers: { 'content-type': 'application/json' } });
      const syntax = await put('{"address": ');
      assert.equal(syntax.status, 400);
      assert.equal(syntax.json.path, '$');
      assert.match(String(syntax.json.error), /not valid JSON/);
      assert.equal((await put('')).json.path, '$');
      const array = await put('[1]');
      assert.equal(array.status, 400);
      assert.deepEqual([array.json.path, array.json.error], ['$', 'must be an object (got an array)']);
    });

    test('each bad field → 400 with its JSON path; every issue is listed', async () => {
      const cases: Array<[unknown, string, RegExp]> = [
        [{}, 'address', /is required/],
        [{ address: 42 }, 'address', /must be a string/],
        [{ address: '127.0.0.1' }, 'address', /missing its port/],
        [{ address: '::1:9001' }, 'address', /brackets/],
        [{ address: '127.0.0.1:9001', weight: 10001 }, 'weight', /between 0 and 10000/],
        [{ address: '127.0.0.1:9001', weight: 1.5 }, 'weight', /must be an integer/],
        [{ address: '127.0.0.1:9001', ttlMs: 50 }, 'ttlMs', /between 100 and 86400000/],
        [{ address: '127.0.0.1:9001', ttlms: 1000 }, 'ttlms', /unknown key \(did you mean "ttlMs"\?/],
      ];
      for (const [body, path, message] of cases) {
        const reply = await call(address, '/v1/pools/app/backends/a', { method: 'PUT', body });
        assert.equal(reply.status, 400, JSON.stringify(body));
        assert.equal(reply.json.path, path, JSON.stringify(body));
        assert.match(String(reply.json.error), message, JSON.stringify(body));
      }
      const several = await call(address, '/v1/pools/app/backends/a', {
        method: 'PUT',
        body: { address: '127.0.0.1:9001', weight: -1, ttlMs: 1 },
      });
      assert.deepEqual(
        (several.json.issues as Array<{ path: string }>).map((issue) => issue.path),
        ['weight', 'ttlMs'],
      );
      assert.equal(api.store.get('app', 'a'), undefined, 'nothing invalid was registered');
    });
  });

  describe('registration API', () => {
    test('register → 201 with Location, renew → 200, read it back, deregister → 204, then 404', async () => {
      const path = '/v1/pools/app/backends/web-1';
      const created = await call(address, path, { method: 'PUT', body: { address: '127.0.0.1:9201', weight: 3, ttlMs: 60_000 } });
      assert.equal(created.status, 201);
      assert.equal(created.headers.location, path);
      assert.deepEqual(created.json, {
        pool: 'app',
        id: 'web-1',
        outcome: 'created',
        address: '127.0.0.1:9201',
        weight: 3,
        ttlMs: 60_000,
      });
      const renewed = await call(address, path, { method: 'PUT', body: { address: '127.0.0.1:9201', weight: 3, ttlMs: 60_000 } });
      assert.equal(renewed.status, 200);
      assert.equal(renewed.json.outcome, 'renewed');

      const one = await call(address, path);
      assert.equal(one.status, 200);
      assert.equal(one.json.id, 'web-1');
      assert.equal(one.json.source, 'registration');
      assert.deepEqual(one.json.health, { eligible: true, flags: [] });
      const remaining = one.json.ttlRemainingMs as number;
      assert.ok(remaining > 50_000 && remaining <= 60_000, `ttlRemainingMs ${remaining}`);

      const list = await call(address, '/v1/pools/app/backends');
      assert.equal(list.status, 200);
      assert.deepEqual(
        (list.json.backends as BackendView[]).map((b) => [b.id, b.address, b.weight]),
        [['web-1', '127.0.0.1:9201', 3]],
      );

      const gone = await call(address, path, { method: 'DELETE' });
      assert.equal(gone.status, 204);
      assert.equal(gone.text, '');
      const missing = await call(address, path);
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.json, { error: 'pool "app" has no backend "web-1"', path });
      assert.equal((await call(address, path, { method: 'DELETE' })).status, 404);
    });

    test('weight defaults to 1; no ttlMs = never expires', async () => {
      const path = '/v1/pools/app/backends/permanent';
      const reply = await call(address, path, { method: 'PUT', body: { address: '[::1]:9202' } });
      assert.equal(reply.status, 201);
      assert.equal(reply.json.weight, 1);
      assert.equal(reply.json.ttlMs, null);
      assert.equal((await call(address, path)).json.ttlRemainingMs, null);
      assert.equal((await call(address, path, { method: 'DELETE' })).status, 204);
    });

    test('ids are percent-decoded; control characters are refused', async () => {
      const path = `/v1/pools/app/backends/${encodeURIComponent('127.0.0.1:9203 blue')}`;
      assert.equal((await call(address, path, { method: 'PUT', body: { address: '127.0.0.1:9203' } })).status, 201);
      assert.equal(api.store.get('app', '127.0.0.1:9203 blue')?.address.text, '127.0.0.1:9203');
      assert.equal((await call(address, path, { method: 'DELETE' })).status, 204);
      const control = await call(address, '/v1/pools/app/backends/a%0Ab', { method: 'PUT', body: { address: '127.0.0.1:9203' } });
      assert.equal(control.status, 400);
    });

    test('unknown pool → 404; a static pool → 409 with the reason', async () => {
      const unknown = await call(address, '/v1/pools/nope/backends/a', { method: 'PUT', body: { address: '127.0.0.1:9001' } });
      assert.equal(unknown.status, 404);
      assert.deepEqual(unknown.json, { error: 'unknown pool "nope"', path: '/v1/pools/nope/backends/a' });
      assert.equal((await call(address, '/v1/pools/nope/backends')).status, 404);
      assert.equal((await call(address, '/v1/pools/nope/backends/a')).status, 404);
      const fixed = await call(address, '/v1/pools/fixed/backends/a', { method: 'PUT', body: { address: '127.0.0.1:9001' } });
      assert.equal(fixed.status, 409);
      assert.match(String(fixed.json.error), /static discovery/);
      assert.equal((await call(address, '/v1/pools/fixed/backends/one', { method: 'DELETE' })).status, 409);
    });

    test('GET /v1/pools and a static pool listing show state and health', async () => {
      const pools = await call(address, '/v1/pools');
      assert.equal(pools.status, 200);
      assert.deepEqual(
        (pools.json.pools as PoolView[]).map((p) => [p.name, p.balance, p.source]),
        [
          ['app', 'maglev', 'registration'],
          ['fixed', 'round_robin', 'static'],
        ],
      );
      const fixed = await call(address, '/v1/pools/fixed/backends/two');
      assert.equal(fixed.json.state, 'drain');
      assert.deepEqual(fixed.json.health, { eligible: false, flags: ['drained'] });
      assert.equal(fixed.json.ttlRemainingMs, null);
    });

    test('a registration with a short TTL disappears from the API without a heartbeat', async () => {
      const path = '/v1/pools/app/backends/short';
      assert.equal((await call(address, path, { method: 'PUT', body: { address: '127.0.0.1:9204', ttlMs: 150 } })).status, 201);
      const removed = new Promise<void>((resolve) => {
        const unsubscribe = api.store.onChange((pool, backends) => {
          if (pool === 'app' && !backends.some((b) => b.id === 'short')) {
            unsubscribe();
            resolve();
          }
        });
      });
      await removed;
      assert.equal((await call(address, path)).status, 404);
    });
  });

  describe('lookup', () => {
    before(async () => {
      for (const [id, port] of [['a', 9301], ['b', 9302], ['c', 9303]] as const) {
        await call(address, `/v1/pools/app/backends/${id}`, { method: 'PUT', body: { address: `127.0.0.1:${port}` } });
      }
    });

    test('maps a client to the backend its key lands on, consistently', async () => {
      const first = await call(address, '/v1/pools/app/lookup?ip=10.1.2.3&port=5555');
      assert.equal(first.status, 200);
      const backend = first.json.backend as LookupResult;
      assert.ok(['a', 'b', 'c'].includes(backend.backendId));
      assert.equal(first.json.ip, '10.1.2.3');
      assert.equal(first.json.port, 5555);
      const again = await call(address, '/v1/pools/app/lookup?ip=10.1.2.3&port=5555');
      assert.deepEqual(again.json.backend, backend);
      const v6 = await call(address, `/v1/pools/app/lookup?ip=${encodeURIComponent('2001:db8::1')}`);
      assert.equal(v6.status, 200);
      assert.equal(v6.json.port, 0);
    });

    test('bad parameters → 400 naming the parameter', async () => {
      const cases: Array<[string, string]> = [
        ['', 'query.ip'],
        ['?ip=10.1.2.300', 'query.ip'],
        ['?ip=example.com', 'query.ip'],
        ['?ip=10.1.2.3&port=70000', 'query.port'],
        ['?ip=10.1.2.3&port=-1', 'query.port'],
        ['?ip=10.1.2.3&port=5x', 'query.port'],
        ['?ip=10.1.2.3&ip=10.1.2.4', 'query.ip'],
        ['?ip=10.1.2.3&addr=1', 'query.addr'],
      ];
      for (const [query, path] of cases) {
        const reply = await call(address, `/v1/pools/app/lookup${query}`);
        assert.equal(reply.status, 400, query);
        assert.equal(reply.json.path, path, query);
      }
    });

    test('unknown pool → 404; a non-hash pool → 409', async () => {
      assert.equal((await call(address, '/v1/pools/nope/lookup?ip=10.0.0.1')).status, 404);
      const reply = await call(address, '/v1/pools/fixed/lookup?ip=10.0.0.1');
      assert.equal(reply.status, 409);
      assert.match(String(reply.json.error), /lookup needs ring_hash or maglev/);
    });
  });
});

describe('admin server lifecycle', () => {
  test('close() closes idle keep-alive sockets and resolves promptly', async () => {
    const api = new InMemoryAdminApi();
    const { server, address } = await startServer(api, { keepAliveTimeoutMs: 60_000 });
    const { port } = hostPort(address);
    const socket = connect({ host: '127.0.0.1', port });
    try {
      await once(socket, 'connect');
      socket.write(`GET /healthz HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\n\r\n`);
      await once(socket, 'data');
      const closed = once(socket, 'close');
      await server.close();
      await closed;
      await server.close();
    } finally {
      socket.destroy();
      api.store.close();
    }
  });

  test('a client that never finishes its headers gets 408 and is disconnected', async () => {
    const api = new InMemoryAdminApi();
    const { server, address } = await startServer(api, { headersTimeoutMs: 200, requestTimeoutMs: 300 });
    try {
      const started = Date.now();
      const answer = await rawExchange(address, 'GET /healthz HTTP/1.1\r\nhost: x\r\n', true);
      assert.match(answer, /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - started < 5_000);
    } finally {
      await server.close();
      api.store.close();
    }
  });
});
