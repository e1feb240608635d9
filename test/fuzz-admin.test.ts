/**
 * Fuzzing the admin API (issue 10) against a real ringlb (the CLI as a child process, admin on
 * 127.0.0.1:0 with a token): random methods, paths (the routes' own shapes with random, encoded,
 * dot-segment and very long parts), query strings, headers (auth, content type and length, chunked,
 * random), and bodies (JSON the routes accept, JSON they refuse, non-JSON, invalid UTF-8, huge,
 * chunked, truncated). Requests are written on raw sockets, so what node's HTTP client would refuse
 * to send is sent too.
 *
 * Every answer must be a 2xx or 4xx status (a 1xx is skipped); never a 5xx, never a connection
 * closed without an answer, except where the client itself ended the request early (a truncated
 * body, then a half-close: there is nothing left to answer). ringlb must still run afterwards and
 * answer `/healthz` and `/v1/status`.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { adminAddress } from './helpers/admin-client.js';
import { budgetMs, fuzz, runs } from './helpers/fuzz.js';
import { startRinglb, TempDir, type RinglbProcess } from './helpers/ringlb-process.js';

const TOKEN = 'fuzz-token-0123456789abcdef';
const temp = new TempDir();
let ringlb: RinglbProcess | undefined;
let host = '127.0.0.1';
let port = 0;

before(async () => {
  const file = temp.writeJson({
    admin: { bind: '127.0.0.1:0', token: TOKEN },
    listeners: [
      { name: 'app', bind: '127.0.0.1:0', pool: 'app' },
      { name: 'static', bind: '127.0.0.1:0', pool: 'static' },
    ],
    pools: [
      { name: 'app', balance: 'maglev', discovery: { type: 'registration' } },
      {
        name: 'static',
        balance: 'ring_hash',
        // Backends nobody listens on: health checks fail quietly, which is all the admin routes need.
        healthCheck: { type: 'tcp', intervalMs: 60_000 },
        backends: [{ address: '127.0.0.1:1', id: 'one' }, { address: '127.0.0.1:2', id: 'two' }, { address: '127.0.0.1:3', id: 'three', weight: 3 }],
      },
      { name: 'rr', balance: 'round_robin', backends: [{ address: '127.0.0.1:4' }] },
    ],
    // debug: every admin request is logged with its status, which the regression tests wait for.
    log: { level: 'debug' },
  });
  ringlb = (await startRinglb(file, ['app', 'static'])).ringlb;
  const address = await adminAddress(ringlb);
  const colon = address.lastIndexOf(':');
  host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  port = Number(address.slice(colon + 1));
});

after(async () => {
  await ringlb?.kill();
  temp.remove();
});

interface RawRequest {
  readonly method: string;
  readonly target: string;
  readonly version: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /** How the body goes out: as is after a Content-Length (or none), chunked, or cut short and the socket half-closed. */
  readonly framing: 'length' | 'none' | 'chunked' | 'badChunked' | 'truncated' | 'wrongLength';
  /** Authorization: the right token, none, or a wrong one. */
  readonly auth: 'token' | 'none' | 'wrong';
}

interface RawAnswer {
  /** The final (non-1xx) status, or null when the connection closed without one. */
  readonly status: number | null;
  readonly head: string;
  /** The connection closed before all of the request had been written: the server stopped reading it. */
  readonly cutWhileSending: boolean;
}

/** Writes `request` on a fresh connection and reads up to the final status line; the socket is destroyed after. */
function send(request: RawRequest, timeoutMs = 20_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let received = '';
    let settled = false;
    let allWritten = false;
    const finish = (status: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status, head: received.slice(0, 400), cutWhileSending: !allWritten });
    };
    const timer = setTimeout(() => {
      settled = true;
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${describeRequest(request)}; got ${JSON.stringify(received.slice(0, 200))}`));
    }, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      for (const match of received.matchAll(/^HTTP\/\d\.\d (\d{3})[^\r\n]*\r\n/gm)) {
        const status = Number(match[1]);
        if (status >= 200) return finish(status);
      }
    });
    // The server may answer (413, 400) and close before the whole body is written: EPIPE/ECONNRESET here is expected.
    socket.on('error', () => finish(null));
    socket.on('close', () => finish(null));
    socket.on('connect', () => {
      const lines = [`${request.method} ${request.target} ${request.version}`, `host: ${host}:${port}`];
      if (request.auth === 'token') lines.push(`authorization: Bearer ${TOKEN}`);
      else if (request.auth === 'wrong') lines.push(`authorization: Bearer ${TOKEN.slice(1)}x`);
      for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
      const body = request.body;
      switch (request.framing) {
        case 'length':
          lines.push(`content-length: ${body.length}`);
          break;
        case 'wrongLength':
          // Declares less than it sends: the rest is read as the next request on this connection.
          lines.push(`content-length: ${Math.floor(body.length / 2)}`);
          break;
        case 'truncated':
          lines.push(`content-length: ${body.length + 10}`);
          break;
        case 'chunked':
        case 'badChunked':
          lines.push('transfer-encoding: chunked');
          break;
        case 'none':
          break;
      }
      socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
      if (request.framing === 'chunked') {
        for (let at = 0; at < body.length; at += 4096) {
          const piece = body.subarray(at, at + 4096);
          socket.write(`${piece.length.toString(16)}\r\n`);
          socket.write(piece);
          socket.write('\r\n');
        }
        socket.write('0\r\n\r\n');
      } else if (request.framing === 'badChunked') {
        socket.write(`zz\r\n${body.toString('latin1')}\r\n`, 'latin1');
      } else if (request.framing === 'truncated') {
        socket.end(body);
      } else if (request.framing !== 'none') {
        socket.write(body);
      }
      // Callbacks run in write order: this one runs once everything above has reached the kernel.
      socket.write('', () => {
        allWritten = true;
      });
    });
  });
}

function describeRequest(request: RawRequest): string {
  const headers = request.headers.map(([name, value]) => `${name}: ${value.slice(0, 60)}`).join(' | ');
  return `${request.method} ${request.target.slice(0, 200)}${request.target.length > 200 ? `… (${request.target.length} chars)` : ''} ${request.version} auth=${request.auth} framing=${request.framing} body=${request.body.length} bytes ${JSON.stringify(request.body.subarray(0, 120).toString('latin1'))} headers=[${headers}]`;
}

// --- generators ----------------------------------------------------------------------------------

const METHOD = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH') },
  { weight: 2, arbitrary: fc.constantFrom('OPTIONS', 'TRACE', 'CONNECT', 'PROPFIND', 'PURGE', 'MKCOL', 'get', 'Put', 'SEARCH', 'QUERY') },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,12}$/) },
);

/** URL segments: names that exist, random text (percent-encoded or raw), dot segments, encodings of "/" and NUL, very long ones. */
const SEGMENT = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('app', 'static', 'rr', 'one', 'two', 'three', 'nope', '127.0.0.1:9001', 'web-1') },
  { weight: 2, arbitrary: fc.constantFrom('.', '..', '%2e', '%2E%2e', '%2F', '%2f..%2f', '%00', '%', '%zz', '%ff', '%C0%AF', '~', '*', '', '?', '#', ';x=1') },
  { weight: 2, arbitrary: fc.string({ maxLength: 20 }).map((text) => encodeURIComponent(text)) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }).map((text) => encodeURIComponent(text)) },
  { weight: 1, arbitrary: fc.stringMatching(/^[!$&'()*+,;=:@A-Za-z0-9._~-]{1,16}$/) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 20_000 }).map((length) => 'a'.repeat(length)) },
);

const ROUTE_SHAPES = [
  ['healthz'], ['metrics'], ['v1', 'status'], ['v1', 'config'], ['v1', 'events'], ['v1', 'pools'],
  ['v1', 'pools', ':s'], ['v1', 'pools', ':s', 'backends'], ['v1', 'pools', ':s', 'backends', ':s'], ['v1', 'pools', ':s', 'lookup'],
  ['v1', 'pools', ':s', 'table'], ['v1', 'pools', ':s', 'preview'], ['assets', ':s', ':s'], [], [':s'], [':s', ':s', ':s'],
];

const QUERY = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 2, arbitrary: fc.tuple(fc.oneof(fc.constantFrom('127.0.0.1', '::1', '10.0.0.1', '999.1.1.1', '', 'x'), fc.string({ maxLength: 10 })), fc.oneof(fc.constantFrom('0', '80', '65535', '65536', '-1', 'x'), fc.string({ maxLength: 5 }))).map(([ip, port]) => `?ip=${encodeURIComponent(ip)}&port=${encodeURIComponent(port)}`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((text) => `?${encodeURIComponent(text).replace(/%3D/g, '=').replace(/%26/g, '&')}`) },
  { weight: 1, arbitrary: fc.constantFrom('?', '?ip', '?ip=&ip=1.2.3.4', '?since=5', '?token=x', '?%', '?a=%zz') },
);

const TARGET = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...ROUTE_SHAPES), fc.array(SEGMENT, { minLength: 3, maxLength: 3 }), QUERY, fc.boolean()).map(([shape, fills, query, trailingSlash]) => {
    let fill = 0;
    const path = `/${shape.map((part) => (part === ':s' ? fills[fill++ % fills.length]! : part)).join('/')}${trailingSlash ? '/' : ''}`;
    return path + query;
  }) },
  { weight: 1, arbitrary: fc.constantFrom('*', 'http://127.0.0.1/v1/status', '//v1//status', '/v1/./status', '/v1/../v1/status', 'v1/status', '/%', '/\\..\\', '/v1/status#frag') },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((text) => `/${text.replace(/[\s\r\n]/g, '')}`) },
);

const REGISTRATION = fc.record(
  {
    address: fc.oneof(fc.constantFrom('127.0.0.1:9001', '[::1]:9002', 'localhost:9003', '6380', 'host:0', '1.2.3.4:65536', ''), fc.string({ maxLength: 20 })),
    weight: fc.oneof(fc.integer({ min: -5, max: 20_000 }), fc.constant(0.5), fc.string({ maxLength: 3 })),
    ttlMs: fc.oneof(fc.integer({ min: -1, max: 10 ** 10 }), fc.constant(null)),
    state: fc.constantFrom('active', 'drain', 'maint', 'down', 1),
  },
  { requiredKeys: [] },
);
const PATCH_BODY = fc.record({ state: fc.constantFrom('active', 'drain', 'maint', 'bogus', null), weight: fc.oneof(fc.integer({ min: -1, max: 10_001 }), fc.double()) }, { requiredKeys: [] });
const PREVIEW_BODY = fc.oneof(
  fc.record({ backends: fc.array(fc.record({ address: fc.constantFrom('127.0.0.1:1', '127.0.0.1:5', 'x', '[::1]:7'), weight: fc.integer({ min: 0, max: 300 }), id: fc.constantFrom('one', 'two', 'z', '') }, { requiredKeys: ['address'] }), { maxLength: 20 }) }, { requiredKeys: [] }),
  fc.record({ weights: fc.dictionary(fc.constantFrom('one', 'two', 'three', 'x'), fc.integer({ min: -1, max: 10_001 })), remove: fc.array(fc.constantFrom('one', 'two', 'three', '', 'zz')) }, { requiredKeys: [] }),
);

const BODY = fc.oneof(
  { weight: 3, arbitrary: fc.constant(Buffer.alloc(0)) },
  { weight: 4, arbitrary: fc.oneof(REGISTRATION, PATCH_BODY, PREVIEW_BODY).map((value) => Buffer.from(JSON.stringify(value))) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value) => Buffer.from(JSON.stringify(value) ?? 'null')) },
  { weight: 1, arbitrary: fc.oneof(REGISTRATION, PREVIEW_BODY).map((value) => JSON.stringify(value)).chain((text) => fc.nat(text.length).map((cut) => Buffer.from(text.slice(0, cut)))) },
  { weight: 1, arbitrary: fc.constantFrom('{"weight": 1, "weight": 2}', '{', '[]', 'null', '"x"', '{"a":' + '['.repeat(5000), '\uFEFF{}', 'nan').map((text) => Buffer.from(text)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)) },
  // Over the 64 KiB limit (413) and well over it (the server must not buffer it).
  { weight: 1, arbitrary: fc.constantFrom(70 * 1024, 300 * 1024, 2 * 1024 * 1024).map((size) => Buffer.from(`{"address": "${'a'.repeat(size)}"}`)) },
);

const HEADER_NAME = fc.oneof(
  fc.constantFrom('content-type', 'accept', 'expect', 'connection', 'content-encoding', 'x-forwarded-for', 'origin', 'cookie', 'last-event-id', 'if-none-match', 'range', 'upgrade', 'authorization'),
  fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}$/),
);
const HEADER_VALUE = fc.oneof(
  fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/jsonx', '', '100-continue', 'close', 'keep-alive', 'gzip', 'websocket', '*/*', 'Bearer', 'Basic Zm9vOmJhcg==', `Bearer ${TOKEN} x`, '0'),
  fc.stringMatching(/^[\x20-\x7e]{0,40}$/).map((value) => value.trim()),
  fc.integer({ min: 100, max: 12_000 }).map((length) => 'v'.repeat(length)),
);

const REQUEST: fc.Arbitrary<RawRequest> = fc.record({
  method: METHOD,
  target: TARGET,
  version: fc.oneof({ weight: 10, arbitrary: fc.constant('HTTP/1.1') }, { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.x', 'http/1.1', '') }),
  headers: fc.tuple(
    fc.oneof({ weight: 3, arbitrary: fc.constant<Array<[string, string]>>([['content-type', 'application/json']]) }, { weight: 1, arbitrary: fc.constant<Array<[string, string]>>([]) }),
    fc.array(fc.tuple(HEADER_NAME, HEADER_VALUE), { maxLength: 4 }),
  ).map(([base, extra]) => [...base, ...extra]),
  body: BODY,
  framing: fc.oneof({ weight: 8, arbitrary: fc.constant('length' as const) }, { weight: 1, arbitrary: fc.constantFrom('none' as const, 'chunked' as const, 'badChunked' as const, 'truncated' as const, 'wrongLength' as const) }),
  auth: fc.oneof({ weight: 8, arbitrary: fc.constant('token' as const) }, { weight: 1, arbitrary: fc.constantFrom('none' as const, 'wrong' as const) }),
});

/** The server still answers: /healthz and /v1/status with the token are 200. */
async function assertStillServing(): Promise<void> {
  for (const target of ['/healthz', '/v1/status']) {
    const answer = await send({ method: 'GET', target, version: 'HTTP/1.1', headers: [], body: Buffer.alloc(0), framing: 'none', auth: 'token' });
    assert.equal(answer.status, 200, `GET ${target} after fuzzing: ${answer.head}`);
  }
  assert.equal(ringlb!.child.exitCode, null, `ringlb exited; stderr: ${ringlb!.stderr}`);
}

describe('admin API fuzzing', () => {
  test('random requests get a 2xx or 4xx, never a 5xx or silence; ringlb keeps serving', { timeout: 900_000 }, async (t) => {
    let checked = 0;
    await fuzz(
      t,
      fc.asyncProperty(REQUEST, async (request) => {
        const answer = await send(request);
        const context = describeRequest(request);
        if (answer.status === null) {
          // Only a request the client cut short itself may end without an answer, or one whose body
          // the server stopped reading past its lingering bound (2 s or 8 MiB, server.ts) because
          // the client was still sending: a server need not read an unbounded body to the end.
          const excused = request.framing === 'truncated' || (answer.cutWhileSending && request.body.length > 64 * 1024);
          assert.ok(excused, `connection closed without an answer: ${context}; ringlb stderr: ${ringlb!.stderr.slice(-2000)}`);
        } else {
          assert.ok(answer.status >= 200 && answer.status < 500, `status ${answer.status} for ${context}: ${answer.head}`);
        }
        // Every so often, and so after any case that could have hurt it: the server still answers.
        if (++checked % 50 === 0) await assertStillServing();
      }),
      { numRuns: runs(1500), timeMs: budgetMs(15_000) },
    );
    await assertStillServing();
    const failures = ringlb!.lines.filter((line) => line.msg === 'admin: handler failed' || line.msg === 'admin: cannot send response');
    assert.deepEqual(failures, [], 'no handler failed (a 500 logged with its stack)');
  });
});

/** Each case a fuzz run found, pinned: the request, and the status it must get now. */
describe('admin API: requests the fuzzer found', () => {
  const plain = (method: string, target: string, body = '{}'): RawRequest => ({
    method, target, version: 'HTTP/1.1', headers: [['content-type', 'application/json']], body: Buffer.from(body), framing: 'length', auth: 'token',
  });

  test('a client gone mid-body is a 400 logged at debug, not a handler failure logged with its stack', async () => {
    for (const target of ['/v1/pools/one/preview', '/v1/pools/app/backends/gone']) {
      const since = ringlb!.lines.length;
      const method = target.endsWith('preview') ? 'POST' : 'PUT';
      const answer = await send({ ...plain(method, target, '{"backends": ['), framing: 'truncated' });
      assert.equal(answer.status, null, 'nobody is left to answer');
      const logged = await ringlb!.waitForLine((line) => line.msg === 'admin request' && line.path === target, 10_000, `admin request ${target}`, since);
      assert.equal(logged.status, 400, JSON.stringify(logged));
      assert.deepEqual(ringlb!.lines.slice(since).filter((line) => line.msg === 'admin: handler failed'), []);
    }
  });

  test('CONNECT (node destroyed the socket without an answer) gets 405, with or without the token', async () => {
    for (const request of [plain('CONNECT', '*'), plain('CONNECT', '127.0.0.1:80'), { ...plain('CONNECT', '/v1/status'), auth: 'none' as const }]) {
      const answer = await send(request);
      assert.equal(answer.status, 405, `${describeRequest(request)}: ${answer.head}`);
    }
    await assertStillServing();
  });

  test('an answer given before the body was read reaches the client (the server read and dropped the rest; it closed with RST before)', async () => {
    const big = Buffer.from(`{"address": "${'a'.repeat(2 * 1024 * 1024)}"}`);
    const cases: Array<[RawRequest, number]> = [
      [{ ...plain('GET', '/healthz'), body: big.subarray(0, 300 * 1024), framing: 'chunked' }, 200],
      [{ ...plain('PUT', '/v1/pools/app/backends/x'), body: big }, 413],
      [{ ...plain('PUT', '/v1/pools/app/backends/x'), body: big, headers: [['content-type', 'text/plain']] }, 415],
      [{ ...plain('OPTIONS', '/v1/status'), body: big, version: 'http/1.1' }, 400],
      [{ ...plain('GET', '*'), body: big.subarray(0, 300 * 1024), framing: 'chunked' }, 400],
      // An Expect other than 100-continue: node's own 417 was lost to the reset of the unread body.
      [{ ...plain('GET', '/healthz?'), headers: [['content-type', 'application/json'], ['expect', ''], ['connection', 'close']], body: Buffer.from('{"ttlMs":null,"state":"down"}') }, 417],
      [{ ...plain('PUT', '/v1/pools/app/backends/x'), headers: [['content-type', 'application/json'], ['expect', 'something-else']] }, 417],
      // A bad method: node's parser reported each later chunk again, and the second report destroyed the socket.
      [{ ...plain('Put', '/'), body: big.subarray(0, 70 * 1024) }, 400],
    ];
    for (const [request, status] of cases) {
      const answer = await send(request);
      assert.equal(answer.status, status, `${describeRequest(request)}: ${answer.head}`);
    }
    await assertStillServing();
  });
});
