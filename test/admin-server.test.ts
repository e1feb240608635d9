/**
 * The admin HTTP API over real HTTP on 127.0.0.1:0, answered by the real implementation
 * (`RuntimeAdminApi`) over a running `Ringlb` with real loopback backends: pool `app` (maglev,
 * registration discovery) and pool `fixed` (round_robin, static: `one` active, `two` draining).
 * Changes that go through the registry are awaited on its `pool updated` log line, never a sleep.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { isLoopbackHost } from '../src/admin/access.js';
import type { AdminApi, BackendView, LookupResult, PoolView } from '../src/admin/api.js';
import { AdminServer, type AdminServerOptions } from '../src/admin/server.js';
import { textResponse } from '../src/admin/router.js';
import { parseHostPort } from '../src/config/host-port.js';
import { validateConfig } from '../src/config/load.js';
import type { HostPort } from '../src/backend.js';
import type { RinglbConfig } from '../src/config/types.js';
import { RuntimeAdminApi } from '../src/admin/runtime-api.js';
import { Ringlb } from '../src/runtime.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { openClient, readLine, whichBackend } from './helpers/clients.js';
import { LogCapture, type LogLine } from './helpers/log-capture.js';

const TOKEN = 's3cret-token-for-tests';
const silent = pino({ level: 'silent' });

function hostPort(text: string): HostPort {
  const parsed = parseHostPort(text, { purpose: 'bind' });
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed;
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** A running ringlb with the admin API, its real backends and its log. */
class Fixture {
  readonly log = new LogCapture();
  readonly ringlb = new Ringlb({ logger: this.log.logger() });
  backends = new Map<string, NamedBackend>();

  async start(): Promise<void> {
    for (const name of ['one', 'two', 'a', 'b', 'c']) this.backends.set(name, await startNamedBackend(name));
    const raw = {
      admin: { bind: '127.0.0.1:0', token: TOKEN },
      listeners: [
        { name: 'app', bind: '127.0.0.1:0', pool: 'app' },
        { name: 'fixed', bind: '127.0.0.1:0', pool: 'fixed' },
      ],
      pools: [
        { name: 'app', balance: 'maglev', maglev: { tableSize: 251 }, discovery: { type: 'registration' } },
        {
          name: 'fixed',
          backends: [
            { id: 'one', address: this.backend('one').address },
            { id: 'two', address: this.backend('two').address, weight: 2, state: 'drain' },
          ],
        },
      ],
      log: { level: 'info' },
    };
    const result = validateConfig(raw);
    if (!result.ok) assert.fail(JSON.stringify(result.issues));
    await this.ringlb.start(result.config as RinglbConfig);
  }

  backend(name: string): NamedBackend {
    const backend = this.backends.get(name);
    if (backend === undefined) throw new Error(`no backend ${name}`);
    return backend;
  }

  get adminAddress(): string {
    const address = this.ringlb.adminAddress();
    if (address === undefined) throw new Error('no admin server');
    return address;
  }

  listenerPort(name: string): number {
    return portOf(this.ringlb.listenerAddress(name)!);
  }

  /** The same implementation the runtime serves, for a second server with test-only routes. */
  adminApi(): AdminApi {
    const ringlb = this.ringlb;
    return new RuntimeAdminApi(ringlb.adminView());
  }

  /** Resolves when the registry has applied a set to `pool` that satisfies `predicate`. */
  poolUpdated(pool: string, predicate: (line: LogLine) => boolean, since: number): Promise<LogLine> {
    return this.log.waitForLine((line) => line.msg === 'pool updated' && line.pool === pool && predicate(line), 10_000, `pool updated ${pool}`, since);
  }

  async close(): Promise<void> {
    await this.ringlb.close();
    await Promise.all([...this.backends.values()].map((backend) => backend.close()));
  }
}

const includes = (field: string, id: string) => (line: LogLine): boolean => Array.isArray(line[field]) && (line[field] as unknown[]).includes(id);

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

const fixture = new Fixture();
before(() => fixture.start());
after(() => fixture.close());

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
    const api = fixture.adminApi();
    assert.throws(
      () => new AdminServer({ bind: hostPort('0.0.0.0:9901'), token: null, api, logger: silent }),
      /not a loopback address and has no token/,
    );
    assert.doesNotThrow(() => new AdminServer({ bind: hostPort('0.0.0.0:9901'), token: TOKEN, api, logger: silent }));
    assert.throws(() => new AdminServer({ bind: hostPort('127.0.0.1:0'), token: '', api, logger: silent }), /empty/);
  });

  test('a loopback bind without a token serves without auth', async () => {
    const { server, address } = await startServer(fixture.adminApi(), { token: null });
    try {
      assert.match(address, /^127\.0\.0\.1:\d+$/);
      const reply = await call(address, '/healthz', { token: null });
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.json, { status: 'ok' });
    } finally {
      await server.close();
    }
  });

  test('listen on an address in use rejects', async () => {
    const api = fixture.adminApi();
    const first = await startServer(api);
    const second = new AdminServer({ bind: hostPort(first.address), token: TOKEN, api, logger: silent });
    try {
      await assert.rejects(second.listen(), /EADDRINUSE/);
    } finally {
      await second.close();
      await first.server.close();
    }
  });
});

describe('admin server', () => {
  // A second server over the same real implementation, with a small body limit and test-only
  // routes; the registration and lookup tests below use the runtime's own admin server.
  let server: AdminServer;
  let address: string;
  const store = () => fixture.ringlb.registrations;

  before(async () => {
    ({ server, address } = await startServer(fixture.adminApi(), { limits: { maxBodyBytes: 1024 } }));
    server.route('GET', '/metrics', () => textResponse(200, 'text/plain; version=0.0.4', 'ringlb_up 1\n'));
    server.route('GET', '/v1/boom', () => {
      throw new TypeError('a bug');
    });
  });
  after(async () => {
    await server.close();
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
      assert.equal(backend.headers.allow, 'GET, HEAD, PUT, DELETE, PATCH');
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
      assert.equal((await call(address, '/healthz')).status, 200);
      assert.equal((await call(address, '/v1/pools/app/backends')).status, 200);
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
      assert.equal(store().get('app', 'a'), undefined);
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
      assert.equal(store().get('app', 'a'), undefined, 'nothing invalid was registered');
    });
  });

  describe('registration API (the runtime\'s own admin server)', () => {
    const admin = (): string => fixture.adminAddress;

    test('register → 201 with Location, renew → 200, read it back from the pool, deregister → 204, then 404', async () => {
      const path = '/v1/pools/app/backends/web-1';
      const since = fixture.log.lines.length;
      const created = await call(admin(), path, { method: 'PUT', body: { address: fixture.backend('a').address, weight: 3, ttlMs: 60_000 } });
      assert.equal(created.status, 201);
      assert.equal(created.headers.location, path);
      assert.deepEqual(created.json, {
        pool: 'app',
        id: 'web-1',
        outcome: 'created',
        address: fixture.backend('a').address,
        weight: 3,
        ttlMs: 60_000,
      });
      await fixture.poolUpdated('app', includes('added', 'web-1'), since);
      const renewed = await call(admin(), path, { method: 'PUT', body: { address: fixture.backend('a').address, weight: 3, ttlMs: 60_000 } });
      assert.equal(renewed.status, 200);
      assert.equal(renewed.json.outcome, 'renewed');

      const one = await call(admin(), path);
      assert.equal(one.status, 200);
      assert.deepEqual({ ...one.json, ttlRemainingMs: typeof one.json.ttlRemainingMs }, {
        id: 'web-1',
        address: fixture.backend('a').address,
        weight: 3,
        state: 'active',
        health: { healthy: true, flags: [], routable: true, routableBecause: 'healthy' },
        source: 'registration',
        activeConnections: 0,
        spilled: 0,
        ttlRemainingMs: 'number',
      });
      const remaining = one.json.ttlRemainingMs as number;
      assert.ok(remaining > 50_000 && remaining <= 60_000, `ttlRemainingMs ${remaining}`);

      // The registered backend is the pool's: a client through the app listener reaches it.
      assert.equal(await whichBackend({ port: fixture.listenerPort('app') }), 'a');

      const list = await call(admin(), '/v1/pools/app/backends');
      assert.equal(list.status, 200);
      assert.deepEqual(
        (list.json.backends as BackendView[]).map((b) => [b.id, b.address, b.weight]),
        [['web-1', fixture.backend('a').address, 3]],
      );

      const beforeDelete = fixture.log.lines.length;
      const gone = await call(admin(), path, { method: 'DELETE' });
      assert.equal(gone.status, 204);
      assert.equal(gone.text, '');
      await fixture.poolUpdated('app', includes('removed', 'web-1'), beforeDelete);
      const missing = await call(admin(), path);
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.json, { error: 'pool "app" has no backend "web-1"', path });
      assert.equal((await call(admin(), path, { method: 'DELETE' })).status, 404);
    });

    test('weight defaults to 1; no ttlMs = never expires', async () => {
      const path = '/v1/pools/app/backends/permanent';
      const since = fixture.log.lines.length;
      const reply = await call(admin(), path, { method: 'PUT', body: { address: '[::1]:9202' } });
      assert.equal(reply.status, 201);
      assert.equal(reply.json.weight, 1);
      assert.equal(reply.json.ttlMs, null);
      await fixture.poolUpdated('app', includes('added', 'permanent'), since);
      assert.equal((await call(admin(), path)).json.ttlRemainingMs, null);
      const beforeDelete = fixture.log.lines.length;
      assert.equal((await call(admin(), path, { method: 'DELETE' })).status, 204);
      await fixture.poolUpdated('app', includes('removed', 'permanent'), beforeDelete);
    });

    test('ids are percent-decoded; control characters are refused', async () => {
      const id = '127.0.0.1:9203 blue';
      const path = `/v1/pools/app/backends/${encodeURIComponent(id)}`;
      const since = fixture.log.lines.length;
      assert.equal((await call(admin(), path, { method: 'PUT', body: { address: '127.0.0.1:9203' } })).status, 201);
      assert.equal(fixture.ringlb.registrations.get('app', id)?.address.text, '127.0.0.1:9203');
      await fixture.poolUpdated('app', includes('added', id), since);
      assert.equal((await call(admin(), path)).json.id, id);
      const beforeDelete = fixture.log.lines.length;
      assert.equal((await call(admin(), path, { method: 'DELETE' })).status, 204);
      await fixture.poolUpdated('app', includes('removed', id), beforeDelete);
      const control = await call(admin(), '/v1/pools/app/backends/a%0Ab', { method: 'PUT', body: { address: '127.0.0.1:9203' } });
      assert.equal(control.status, 400);
      assert.equal(fixture.ringlb.registrations.get('app', 'a\nb'), undefined);
    });

    test('unknown pool → 404; a static pool → 409 with the reason', async () => {
      const unknown = await call(admin(), '/v1/pools/nope/backends/a', { method: 'PUT', body: { address: '127.0.0.1:9001' } });
      assert.equal(unknown.status, 404);
      assert.deepEqual(unknown.json, { error: 'unknown pool "nope"', path: '/v1/pools/nope/backends/a' });
      assert.equal((await call(admin(), '/v1/pools/nope/backends')).status, 404);
      assert.equal((await call(admin(), '/v1/pools/nope/backends/a')).status, 404);
      const fixed = await call(admin(), '/v1/pools/fixed/backends/a', { method: 'PUT', body: { address: '127.0.0.1:9001' } });
      assert.equal(fixed.status, 409);
      assert.deepEqual(fixed.json, { error: 'pool "fixed" uses static discovery, not registration', path: '/v1/pools/fixed/backends/a' });
      assert.equal((await call(admin(), '/v1/pools/fixed/backends/one', { method: 'DELETE' })).status, 409);
      assert.equal((await call(admin(), '/v1/pools/fixed/backends/one')).status, 200, 'the refused DELETE removed nothing');
    });

    test('GET /v1/pools and a static pool: state, the health flag of a drained backend, live connections', async () => {
      const pools = await call(admin(), '/v1/pools');
      assert.equal(pools.status, 200);
      assert.deepEqual(
        (pools.json.pools as PoolView[]).map((p) => [p.name, p.balance, p.source, p.backends, p.healthy, p.routable, p.panic]),
        [
          ['app', 'maglev', 'registration', 0, 0, 0, false],
          // The drained backend is neither healthy (flag drain) nor routable.
          ['fixed', 'round_robin', 'static', 2, 1, 1, false],
        ],
      );
      const two = await call(admin(), '/v1/pools/fixed/backends/two');
      assert.deepEqual(two.json, {
        id: 'two',
        address: fixture.backend('two').address,
        weight: 2,
        state: 'drain',
        health: { healthy: false, flags: ['drain'], routable: false, routableBecause: null },
        source: 'static',
        activeConnections: 0,
        spilled: 0,
        ttlRemainingMs: null,
      });
      // A connection held open through the listener is counted on the backend it reached.
      const client: Socket = await openClient({ port: fixture.listenerPort('fixed') });
      try {
        assert.equal(await readLine(client), 'one', 'a draining backend takes no new connection');
        const one = await call(admin(), '/v1/pools/fixed/backends/one');
        assert.equal(one.json.activeConnections, 1);
        assert.deepEqual(one.json.health, { healthy: true, flags: [], routable: true, routableBecause: 'healthy' });
      } finally {
        client.destroy();
      }
    });

    test('a registration with a short TTL leaves the pool without a heartbeat', async () => {
      const path = '/v1/pools/app/backends/short';
      const since = fixture.log.lines.length;
      assert.equal((await call(admin(), path, { method: 'PUT', body: { address: '127.0.0.1:9204', ttlMs: 150 } })).status, 201);
      await fixture.poolUpdated('app', includes('added', 'short'), since);
      await fixture.poolUpdated('app', includes('removed', 'short'), since);
      assert.equal((await call(admin(), path)).status, 404);
    });
  });

  describe('lookup (the runtime\'s own admin server)', () => {
    const admin = (): string => fixture.adminAddress;

    before(async () => {
      const since = fixture.log.lines.length;
      for (const id of ['a', 'b', 'c']) {
        const reply = await call(admin(), `/v1/pools/app/backends/${id}`, { method: 'PUT', body: { address: fixture.backend(id).address } });
        assert.equal(reply.status, 201);
      }
      // Registrations may be applied in one rebuild or several: wait until all three are in.
      await fixture.poolUpdated('app', (line) => line.backends === 3, since);
    });

    test('names the backend a new connection from that client reaches, and changes nothing', async () => {
      const reply = await call(admin(), '/v1/pools/app/lookup?ip=127.0.0.1');
      assert.equal(reply.status, 200);
      assert.equal(reply.json.ip, '127.0.0.1');
      assert.equal(reply.json.port, 0);
      const backend = reply.json.backend as LookupResult;
      assert.equal(backend.address, fixture.backend(backend.backendId).address);
      // hashKey source_ip: every connection from 127.0.0.1 lands where the lookup said.
      for (let i = 0; i < 3; i++) assert.equal(await whichBackend({ port: fixture.listenerPort('app') }), backend.backendId);
      assert.deepEqual((await call(admin(), '/v1/pools/app/lookup?ip=127.0.0.1&port=5555')).json.backend, backend, 'the port is ignored with source_ip');
      const v6 = await call(admin(), `/v1/pools/app/lookup?ip=${encodeURIComponent('2001:db8::1')}`);
      assert.equal(v6.status, 200);
      assert.ok(['a', 'b', 'c'].includes((v6.json.backend as LookupResult).backendId));
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
        const reply = await call(admin(), `/v1/pools/app/lookup${query}`);
        assert.equal(reply.status, 400, query);
        assert.equal(reply.json.path, path, query);
      }
    });

    test('unknown pool → 404; a non-hash pool → 409', async () => {
      assert.equal((await call(admin(), '/v1/pools/nope/lookup?ip=10.0.0.1')).status, 404);
      const reply = await call(admin(), '/v1/pools/fixed/lookup?ip=10.0.0.1');
      assert.equal(reply.status, 409);
      assert.match(String(reply.json.error), /lookups need ring_hash or maglev/);
    });
  });
});

describe('admin server lifecycle', () => {
  test('close() closes idle keep-alive sockets and resolves promptly', async () => {
    const { server, address } = await startServer(fixture.adminApi(), { limits: { keepAliveTimeoutMs: 60_000 } });
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
    }
  });

  test('limits whose headers deadline passes the request deadline are refused at construction and by setLimits, which then changes nothing', async () => {
    const api = fixture.adminApi();
    assert.throws(
      () => new AdminServer({ bind: hostPort('127.0.0.1:0'), token: TOKEN, api, logger: silent, limits: { headersTimeoutMs: 2000, requestTimeoutMs: 1000 } }),
      /admin limits: headersTimeoutMs \(2000\) must not exceed requestTimeoutMs \(1000\)/,
    );
    const { server, address } = await startServer(api, { limits: { maxBodyBytes: 2048 } });
    try {
      const before = server.limits;
      assert.throws(() => server.setLimits({ ...before, headersTimeoutMs: 20_000 }), RangeError);
      assert.deepEqual(server.limits, before);
      // A lowered body limit applies to the next request on the running listener.
      server.setLimits({ ...before, maxBodyBytes: 1024 });
      const body = JSON.stringify({ address: '127.0.0.1:9', padding: 'x'.repeat(1500) });
      const answer = await rawExchange(
        address,
        `PUT /v1/pools/reg/backends/b1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        true,
      );
      assert.match(answer, /^HTTP\/1\.1 413 /);
      assert.match(answer, /exceeds the limit of 1024 bytes/);
    } finally {
      await server.close();
    }
  });

  test('a client that never finishes its headers gets 408 and is disconnected', async () => {
    const { server, address } = await startServer(fixture.adminApi(), { limits: { headersTimeoutMs: 200, requestTimeoutMs: 300 } });
    try {
      const started = Date.now();
      const answer = await rawExchange(address, 'GET /healthz HTTP/1.1\r\nhost: x\r\n', true);
      assert.match(answer, /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - started < 5_000);
    } finally {
      await server.close();
    }
  });
});
