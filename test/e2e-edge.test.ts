/**
 * The listener's edge end to end (ringlb run, real sockets on loopback): PROXY protocol in (v1, v2,
 * split byte by byte, bytes after the header, LOCAL, untrusted senders, slow and malformed headers),
 * the header ringlb sends to backends (v1 text exact; v2 addresses and a UNIQUE_ID per connection),
 * the header's client as the hash key and the access-log client, allow/deny with 127.0.0.x and ::1
 * sources, and per-source connection and rate limits with two sources (one limited, the other not),
 * in one thread and with two worker threads (process-wide counts). Every refusal is an access-log
 * outcome of its own and a count in `ringlb_listener_connections_total`.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { closed, openClient, readLine } from './helpers/clients.js';
import { scrapeUntil } from './helpers/metrics.js';
import { writeFileSync } from 'node:fs';
import { runCli, startRinglb, TempDir, type LogLine, type RinglbProcess } from './helpers/ringlb-process.js';
import { workersTest } from './helpers/workers.js';

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A v2 PROXY TCP4 header written by hand (the spec's layout), optionally LOCAL. */
function v2Header(source: [string, number], destination: [string, number], local = false): Buffer {
  if (local) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const header = Buffer.alloc(28);
  V2_SIGNATURE.copy(header);
  header[12] = 0x21;
  header[13] = 0x11;
  header.writeUInt16BE(12, 14);
  Buffer.from(source[0].split('.').map(Number)).copy(header, 16);
  Buffer.from(destination[0].split('.').map(Number)).copy(header, 20);
  header.writeUInt16BE(source[1], 24);
  header.writeUInt16BE(destination[1], 26);
  return header;
}

/** A backend that keeps every connection's bytes and answers `ok\n` once a line arrived. */
interface RecordingBackend {
  readonly address: string;
  /** Bytes each connection sent, in accept order. */
  readonly received: Buffer[];
  close(): Promise<void>;
}

async function startRecordingBackend(t: TestContext): Promise<RecordingBackend> {
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const index = received.push(Buffer.alloc(0)) - 1;
    sockets.add(socket);
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      received[index] = Buffer.concat([received[index]!, chunk]);
      if (!answered && chunk.includes(0x0a)) {
        answered = true;
        socket.write('ok\n');
      }
    });
    socket.on('end', () => socket.end());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const backend = {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  t.after(() => backend.close());
  return backend;
}

async function namedBackends(t: TestContext, names: readonly string[]): Promise<NamedBackend[]> {
  const backends = await Promise.all(names.map((name) => startNamedBackend(name)));
  t.after(() => Promise.all(backends.map((backend) => backend.close())));
  return backends;
}

interface Started {
  readonly ringlb: RinglbProcess;
  readonly port: number;
  readonly admin: string;
}

async function run(t: TestContext, config: Record<string, unknown>): Promise<Started> {
  const temp = new TempDir();
  t.after(() => temp.remove());
  const { ringlb, ports } = await startRinglb(temp.writeJson({ admin: { bind: '127.0.0.1:0' }, ...config }), ['edge']);
  t.after(() => ringlb.kill());
  const admin = String((await ringlb.waitForLine((line) => line.msg === 'admin ready')).address);
  const workers = typeof config.workers === 'number' ? config.workers : 1;
  if (workers > 1) await ringlb.waitForLine((line) => line.msg === 'data-plane workers ready' && line.workers === workers);
  return { ringlb, port: ports.get('edge')!, admin };
}

/** Connect from `localAddress`, send `bytes` (as one write, or byte by byte), read one line back. */
async function exchange(port: number, bytes: Buffer, options: { localAddress?: string; host?: string; byteByByte?: boolean } = {}): Promise<{ line: string; localPort: number }> {
  const socket = await openClient({ port, localAddress: options.localAddress, host: options.host });
  try {
    const localPort = socket.localPort!;
    if (options.byteByByte === true) {
      for (const byte of bytes) {
        // Each byte its own segment: wait until the kernel took it before the next.
        await new Promise<void>((resolve, reject) => socket.write(Buffer.from([byte]), (error) => (error ? reject(error) : resolve())));
      }
    } else {
      socket.write(bytes);
    }
    const line = await readLine(socket);
    socket.end();
    await closed(socket);
    return { line, localPort };
  } finally {
    socket.destroy();
  }
}

/** Connect from `localAddress` (optionally send bytes) and wait until ringlb closes the connection. */
async function refusedFrom(port: number, options: { localAddress?: string; host?: string; send?: Buffer } = {}): Promise<number> {
  const socket = await openClient({ port, localAddress: options.localAddress, host: options.host });
  try {
    const localPort = socket.localPort!;
    if (options.send !== undefined) socket.write(options.send);
    await closed(socket);
    return localPort;
  } finally {
    socket.destroy();
  }
}

function closeLine(ringlb: RinglbProcess, predicate: (line: LogLine) => boolean, what: string): Promise<LogLine> {
  return ringlb.waitForLine((line) => line.msg === 'connection closed' && predicate(line), 10_000, what);
}

describe('edge config', () => {
  test('CIDRs that do not parse and a burst window past 600 s are refused with their JSON paths', () => {
    const result = validateConfig({
      listeners: [
        {
          name: 'edge',
          bind: '127.0.0.1:0',
          pool: 'p',
          allow: ['10.0.0.0/8', '10.0.0.0/33'],
          deny: ['not-an-ip'],
          proxyProtocol: { trustedSources: ['::1/129'] },
          connectionRatePerSource: { rate: 1, burst: 601 },
        },
      ],
      pools: [{ name: 'p', sendProxyProtocol: 'v3', backends: [{ address: '127.0.0.1:1' }] }],
    });
    assert.equal(result.ok, false);
    const paths = result.ok ? [] : result.issues.map((issue) => issue.path).sort();
    assert.deepEqual(paths, [
      'listeners[0].allow[1]',
      'listeners[0].connectionRatePerSource.burst',
      'listeners[0].deny[0]',
      'listeners[0].proxyProtocol.trustedSources[0]',
      'pools[0].sendProxyProtocol',
    ]);
  });

  test('defaults: accept any, timeout 3000 ms, burst 1; absent settings stay absent', () => {
    const result = validateConfig({
      listeners: [
        { name: 'edge', bind: '127.0.0.1:0', pool: 'p', proxyProtocol: { trustedSources: ['127.0.0.1'] }, connectionRatePerSource: { rate: 5 } },
        { name: 'plain', bind: '127.0.0.1:0', pool: 'p' },
      ],
      pools: [{ name: 'p', backends: [{ address: '127.0.0.1:1' }] }],
    });
    assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
    assert.deepEqual(result.config.listeners[0]!.proxyProtocol, { accept: 'any', trustedSources: ['127.0.0.1'], timeoutMs: 3000 });
    assert.deepEqual(result.config.listeners[0]!.connectionRatePerSource, { rate: 5, burst: 1 });
    assert.equal('proxyProtocol' in result.config.listeners[1]!, false);
    assert.equal('sendProxyProtocol' in result.config.pools[0]!, false);
  });
});

function proxySuite(workers: number, define: (name: string, fn: (t: TestContext) => Promise<void>) => void): void {
  define(`workers ${workers}: v1 in, v1 out: the backend gets the header's client and destination, then the client's bytes`, async (t) => {
    const backend = await startRecordingBackend(t);
    const { ringlb, port, admin } = await run(t, {
      workers,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', proxyProtocol: { accept: 'v1', trustedSources: ['127.0.0.1/32'] } }],
      pools: [{ name: 'p', sendProxyProtocol: 'v1', backends: [{ address: backend.address }] }],
    });
    // Header and payload in one write: the bytes after the header arrive with it.
    const { line } = await exchange(port, Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\nhello\n', 'latin1'));
    assert.equal(line, 'ok');
    assert.equal(backend.received[0]!.toString('latin1'), 'PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\nhello\n');
    const access = await closeLine(ringlb, (l) => l.client === '192.0.2.7:5555', 'the header client in the access log');
    assert.equal(access.outcome, 'ok');
    // Counted in the bytes to the backend: our header (44) + the payload (6); the client's header is not forwarded.
    await scrapeUntil(admin, (s) => s.sum('ringlb_backend_bytes_total', { direction: 'to_backend' }) === 50, 'bytes to the backend: header + payload');
  });

  define(`workers ${workers}: v2 in byte by byte, v2 out: addresses, original destination and a fresh UNIQUE_ID each`, async (t) => {
    const backend = await startRecordingBackend(t);
    const { port } = await run(t, {
      workers,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', proxyProtocol: { accept: 'v2', trustedSources: ['127.0.0.0/8'] } }],
      pools: [{ name: 'p', sendProxyProtocol: 'v2', backends: [{ address: backend.address }] }],
    });
    const header = v2Header(['203.0.113.9', 40000], ['198.51.100.2', 8443]);
    assert.equal((await exchange(port, Buffer.concat([header, Buffer.from('one\n')]), { byteByByte: true })).line, 'ok');
    assert.equal((await exchange(port, Buffer.concat([header, Buffer.from('two\n')]))).line, 'ok');
    const ids: string[] = [];
    for (const [index, payload] of ['one\n', 'two\n'].entries()) {
      const bytes = backend.received[index]!;
      assert.deepEqual(bytes.subarray(0, 12), V2_SIGNATURE);
      assert.equal(bytes[12], 0x21, 'version 2, PROXY');
      assert.equal(bytes[13], 0x11, 'TCP over IPv4');
      const length = bytes.readUInt16BE(14);
      assert.equal(length, 12 + 3 + 16, 'addresses and one 16-byte TLV');
      assert.deepEqual([...bytes.subarray(16, 20)], [203, 0, 113, 9]);
      assert.deepEqual([...bytes.subarray(20, 24)], [198, 51, 100, 2]);
      assert.equal(bytes.readUInt16BE(24), 40000);
      assert.equal(bytes.readUInt16BE(26), 8443);
      assert.equal(bytes[28], 0x05, 'PP2_TYPE_UNIQUE_ID');
      assert.equal(bytes.readUInt16BE(29), 16);
      ids.push(bytes.subarray(31, 47).toString('hex'));
      assert.equal(bytes.subarray(16 + length).toString('latin1'), payload, 'the client bytes follow the header untouched');
    }
    assert.notEqual(ids[0], ids[1], 'a UNIQUE_ID per connection');
  });

  define(`workers ${workers}: LOCAL keeps the connection's own address; untrusted, slow and malformed headers are closed with their outcomes`, async (t) => {
    const [backend] = await namedBackends(t, ['a']);
    const { ringlb, port, admin } = await run(t, {
      workers,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', proxyProtocol: { trustedSources: ['127.0.0.1', '127.0.0.2'], timeoutMs: 300 } }],
      pools: [{ name: 'p', backends: [{ address: backend!.address }] }],
    });
    const local = await exchange(port, Buffer.concat([v2Header(['0.0.0.0', 0], ['0.0.0.0', 0], true), Buffer.from('x\n')]));
    assert.equal(local.line, 'a');
    await closeLine(ringlb, (l) => l.client === `127.0.0.1:${local.localPort}` && l.outcome === 'ok', 'LOCAL served as itself');

    const untrusted = await refusedFrom(port, { localAddress: '127.0.0.3' });
    await closeLine(ringlb, (l) => l.client === `127.0.0.3:${untrusted}` && l.outcome === 'proxy_untrusted', 'untrusted sender refused');

    const slow = await refusedFrom(port, { localAddress: '127.0.0.2', send: Buffer.from('PROX') });
    await closeLine(ringlb, (l) => l.client === `127.0.0.2:${slow}` && l.outcome === 'proxy_header_timeout', 'slow header timed out');

    const malformed = await refusedFrom(port, { send: Buffer.from('GET / HTTP/1.1\r\n\r\n') });
    const line = await closeLine(ringlb, (l) => l.client === `127.0.0.1:${malformed}` && l.outcome === 'proxy_header_invalid', 'malformed header closed');
    assert.match(String(line.error), /PROXY protocol header/);
    assert.equal(backend!.accepted(), 1, 'only the LOCAL connection reached the backend');

    await scrapeUntil(
      admin,
      (s) =>
        s.value('ringlb_listener_connections_total', { listener: 'edge', outcome: 'proxy_untrusted' }) === 1 &&
        s.value('ringlb_listener_connections_total', { listener: 'edge', outcome: 'proxy_header_timeout' }) === 1 &&
        s.value('ringlb_listener_connections_total', { listener: 'edge', outcome: 'proxy_header_invalid' }) === 1,
      'one of each refusal counted',
    );
    await ringlb.waitForLine((l) => l.msg === 'connections refused: PROXY protocol from an untrusted source' && l.count === 1, 10_000, 'refusal warning');
  });

  define(`workers ${workers}: a hash policy places connections by the header's client, not by the sender`, async (t) => {
    const backends = await namedBackends(t, ['a', 'b', 'c']);
    const { port } = await run(t, {
      workers,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', proxyProtocol: { accept: 'v1', trustedSources: ['127.0.0.1'] } }],
      pools: [{ name: 'p', balance: 'maglev', backends: backends.map((b) => ({ address: b.address })) }],
    });
    const seen = new Map<string, string>();
    for (let i = 1; i <= 24; i++) {
      const client = `10.1.${i}.${i}`;
      const header = Buffer.from(`PROXY TCP4 ${client} 10.0.0.1 ${1000 + i} 80\r\nhi\n`, 'latin1');
      const first = (await exchange(port, header)).line;
      const again = (await exchange(port, Buffer.from(`PROXY TCP4 ${client} 10.0.0.1 ${2000 + i} 80\r\nhi\n`, 'latin1'))).line;
      assert.equal(again, first, `${client} keeps its backend`);
      seen.set(client, first);
    }
    // One sender, 24 header clients: hashed by the sender they would all share one backend.
    assert.equal(new Set(seen.values()).size, 3, JSON.stringify([...seen]));
  });
}

function sourceSuite(workers: number, define: (name: string, fn: (t: TestContext) => Promise<void>) => void): void {
  define(`workers ${workers}: allow/deny with 127.0.0.x sources: deny wins, others are served`, async (t) => {
    const [backend] = await namedBackends(t, ['a']);
    const { ringlb, port, admin } = await run(t, {
      workers,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', allow: ['127.0.0.0/29'], deny: ['127.0.0.3/32'] }],
      pools: [{ name: 'p', backends: [{ address: backend!.address }] }],
    });
    assert.equal((await exchange(port, Buffer.from('x\n'), { localAddress: '127.0.0.2' })).line, 'a');
    const denied = await refusedFrom(port, { localAddress: '127.0.0.3' });
    await closeLine(ringlb, (l) => l.client === `127.0.0.3:${denied}` && l.outcome === 'denied', 'deny wins over allow');
    const outside = await refusedFrom(port, { localAddress: '127.0.0.9' });
    await closeLine(ringlb, (l) => l.client === `127.0.0.9:${outside}` && l.outcome === 'denied', 'outside allow');
    assert.equal(backend!.accepted(), 1);
    await scrapeUntil(admin, (s) => s.value('ringlb_listener_connections_total', { listener: 'edge', outcome: 'denied' }) === 2, 'denials counted');
  });

  define(`workers ${workers}: maxConnectionsPerSource is process-wide: the limited source is refused, another is served`, async (t) => {
    const [backend] = await namedBackends(t, ['a']);
    const { ringlb, port, admin } = await run(t, {
      workers,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', maxConnectionsPerSource: 3 }],
      pools: [{ name: 'p', backends: [{ address: backend!.address }] }],
    });
    const held: Socket[] = [];
    t.after(() => held.forEach((socket) => socket.destroy()));
    for (let i = 0; i < 3; i++) {
      const socket = await openClient({ port, localAddress: '127.0.0.2' });
      held.push(socket);
      assert.equal(await readLine(socket), 'a');
    }
    // With two workers the kernel spreads these over both: each is refused only if the count is shared.
    for (let i = 0; i < 6; i++) {
      const refused = await refusedFrom(port, { localAddress: '127.0.0.2' });
      await closeLine(ringlb, (l) => l.client === `127.0.0.2:${refused}` && l.outcome === 'rejected_source_limit', 'over the per-source limit');
    }
    assert.equal((await exchange(port, Buffer.from('x\n'), { localAddress: '127.0.0.3' })).line, 'a', 'another source is unaffected');
    // A held connection ends: its source may open one again.
    held.pop()!.end();
    await closeLine(ringlb, (l) => String(l.client).startsWith('127.0.0.2:') && l.outcome === 'ok', 'held connection closed');
    assert.equal((await exchange(port, Buffer.from('x\n'), { localAddress: '127.0.0.2' })).line, 'a');
    await scrapeUntil(admin, (s) => s.value('ringlb_listener_connections_total', { listener: 'edge', outcome: 'rejected_source_limit' }) === 6, 'limit refusals counted');
  });

  define(`workers ${workers}: connectionRatePerSource: a burst, then refusals for that source only`, async (t) => {
    const [backend] = await namedBackends(t, ['a']);
    const { ringlb, port, admin } = await run(t, {
      workers,
      // One token per 100 s: no token comes back during the test.
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', connectionRatePerSource: { rate: 0.01, burst: 4 } }],
      pools: [{ name: 'p', backends: [{ address: backend!.address }] }],
    });
    for (let i = 0; i < 4; i++) assert.equal((await exchange(port, Buffer.from('x\n'), { localAddress: '127.0.0.2' })).line, 'a');
    for (let i = 0; i < 4; i++) {
      const refused = await refusedFrom(port, { localAddress: '127.0.0.2' });
      await closeLine(ringlb, (l) => l.client === `127.0.0.2:${refused}` && l.outcome === 'rejected_source_rate', 'over the rate');
    }
    for (let i = 0; i < 4; i++) assert.equal((await exchange(port, Buffer.from('x\n'), { localAddress: '127.0.0.3' })).line, 'a');
    await scrapeUntil(admin, (s) => s.value('ringlb_listener_connections_total', { listener: 'edge', outcome: 'rejected_source_rate' }) === 4, 'rate refusals counted');
  });
}

describe('health checks of a pool that sends PROXY protocol', () => {
  for (const [version, preamble] of [
    ['v2', Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])])],
    ['v1', Buffer.from('PROXY UNKNOWN\r\n', 'latin1')],
  ] as const) {
    test(`${version}: a send_expect check sends a header without a client first (${version === 'v2' ? 'LOCAL' : 'UNKNOWN'}), then its payload`, async (t) => {
      const backend = await startRecordingBackend(t);
      const { ringlb } = await run(t, {
        workers: 1,
        listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p' }],
        pools: [
          {
            name: 'p',
            sendProxyProtocol: version,
            healthCheck: { type: 'send_expect', send: 'PING\n', expect: 'ok', intervalMs: 100, rise: 1 },
            backends: [{ address: backend.address }],
          },
        ],
      });
      await ringlb.waitForLine((l) => l.msg === 'backend up', 10_000, 'the check passes');
      assert.deepEqual(backend.received[0]!.subarray(0, preamble.length), preamble);
      assert.equal(backend.received[0]!.subarray(preamble.length).toString('latin1'), 'PING\n');
    });
  }

  test('v2: an http check writes the LOCAL header before its request', async (t) => {
    const preamble = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
    const backend = await startRecordingBackend(t);
    const { ringlb } = await run(t, {
      workers: 1,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p' }],
      pools: [{ name: 'p', sendProxyProtocol: 'v2', healthCheck: { type: 'http', intervalMs: 100, initialHealthy: true }, backends: [{ address: backend.address }] }],
    });
    // The recording backend answers "ok\n", not HTTP: the check fails, which is not what this pins.
    await ringlb.waitForLine((l) => l.msg === 'backend down', 10_000, 'the first check ran');
    const first = backend.received[0]!;
    assert.deepEqual(first.subarray(0, preamble.length), preamble);
    assert.match(first.subarray(preamble.length).toString('latin1'), /^GET \/ HTTP\/1\.1\r\n/);
  });
});

describe('PROXY protocol: broken senders', () => {
  test('60 trusted senders of mangled headers are each closed as proxy_header_invalid; a good header is still served', async (t) => {
    const [backend] = await namedBackends(t, ['a']);
    const { ringlb, port, admin } = await run(t, {
      workers: 1,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', proxyProtocol: { trustedSources: ['127.0.0.1'], timeoutMs: 2000 } }],
      pools: [{ name: 'p', backends: [{ address: backend!.address }] }],
    });
    const good = Buffer.concat([v2Header(['192.0.2.1', 1], ['192.0.2.2', 2]), Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n')]);
    // xorshift32 with a fixed seed: the same mangled inputs every run.
    let state = 0x2545f491;
    const next = (): number => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state >>> 0;
    };
    const cases: Buffer[] = [];
    for (let i = 0; i < 60; i++) {
      const v1 = i % 2 === 0;
      const base = v1 ? Buffer.from(good.subarray(28)) : Buffer.from(good.subarray(0, 28));
      // Change one byte the format fixes (the v2 signature, the v1 "PROXY " prefix): certainly invalid.
      const at = next() % (v1 ? 6 : 12);
      base[at] = (base[at]! + 1 + (next() % 254)) & 0xff;
      cases.push(Buffer.concat([base, Buffer.from('tail')]));
    }
    for (const bytes of cases) await refusedFrom(port, { send: bytes });
    await scrapeUntil(admin, (s) => s.value('ringlb_listener_connections_total', { listener: 'edge', outcome: 'proxy_header_invalid' }) === 60, 'every mangled header refused');
    assert.equal(backend!.accepted(), 0, 'nothing reached the backend');
    assert.equal((await exchange(port, Buffer.concat([good.subarray(0, 28), Buffer.from('x\n')]))).line, 'a');
    assert.equal(ringlb.child.exitCode, null);
  });
});

describe('PROXY protocol in and out (ringlb run)', () => {
  proxySuite(1, (name, fn) => test(name, fn));
  proxySuite(2, (name, fn) => workersTest(name, fn));
});

describe('allow/deny and per-source limits (ringlb run)', () => {
  sourceSuite(1, (name, fn) => test(name, fn));
  sourceSuite(2, (name, fn) => workersTest(name, fn));

  test('clients that reset at once (a front balancer\'s health checks) are client errors, never denied or untrusted', async (t) => {
    const [backend] = await namedBackends(t, ['a']);
    const { admin, port } = await run(t, {
      workers: 1,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', allow: ['127.0.0.1'] }],
      pools: [{ name: 'p', backends: [{ address: backend!.address }] }],
    });
    const RESETS = 30;
    for (let i = 0; i < RESETS; i++) {
      const socket = await openClient({ port });
      socket.on('error', () => {});
      const gone = closed(socket);
      socket.resetAndDestroy();
      await gone;
    }
    // Some resets reach ringlb after it read the peer's address (served, then client_error), some
    // before (nothing to judge): either way none is a refusal of an allowed source.
    const scraped = await scrapeUntil(
      admin,
      (s) => s.sum('ringlb_listener_connections_total', { listener: 'edge' }) === RESETS,
      `${RESETS} connections ended`,
    );
    assert.equal(scraped.sum('ringlb_listener_connections_total', { listener: 'edge', outcome: 'denied' }), 0);
  });

  test('IPv6: deny ::1 on a [::1] listener', async (t) => {
    const [backend] = await namedBackends(t, ['a']);
    const temp = new TempDir();
    t.after(() => temp.remove());
    const { ringlb, ports } = await startRinglb(
      temp.writeJson({
        workers: 1,
        listeners: [
          { name: 'edge', bind: '[::1]:0', pool: 'p', deny: ['::1/128'] },
          { name: 'open', bind: '[::1]:0', pool: 'p', deny: ['::2/127'] },
        ],
        pools: [{ name: 'p', backends: [{ address: backend!.address }] }],
      }),
      ['edge', 'open'],
    );
    t.after(() => ringlb.kill());
    const refused = await refusedFrom(ports.get('edge')!, { host: '::1' });
    await closeLine(ringlb, (l) => l.client === `[::1]:${refused}` && l.outcome === 'denied', 'IPv6 denied');
    assert.equal((await exchange(ports.get('open')!, Buffer.from('x\n'), { host: '::1' })).line, 'a');
  });
});

function reloadSuite(workers: number, define: (name: string, fn: (t: TestContext) => Promise<void>) => void): void {
  define(`workers ${workers}: a reload adds deny and a per-source cap for new connections; an open one keeps flowing; ringlb diff shows both`, async (t) => {
    const [backend] = await namedBackends(t, ['a']);
    const temp = new TempDir();
    t.after(() => temp.remove());
    const before = {
      workers,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p' }],
      pools: [{ name: 'p', backends: [{ address: backend!.address }] }],
    };
    const after = {
      ...before,
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p', deny: ['127.0.0.3'], maxConnectionsPerSource: 1 }],
    };
    const preview = await runCli(['diff', temp.writeJson(before), temp.writeJson(after)]);
    assert.equal(preview.status.code, 0, preview.stderr);
    assert.match(preview.stdout, /deny/);
    assert.match(preview.stdout, /maxConnectionsPerSource/);

    const path = temp.writeJson(before);
    const { ringlb, ports } = await startRinglb(path, ['edge']);
    t.after(() => ringlb.kill());
    if (workers > 1) await ringlb.waitForLine((line) => line.msg === 'data-plane workers ready' && line.workers === workers);
    const port = ports.get('edge')!;
    const held = await openClient({ port, localAddress: '127.0.0.3' });
    t.after(() => held.destroy());
    assert.equal(await readLine(held), 'a');

    writeFileSync(path, JSON.stringify(after));
    const since = ringlb.lines.length;
    ringlb.child.kill('SIGHUP');
    const outcome = await ringlb.waitForLine((l) => l.msg === 'config reloaded' || l.msg === 'config reload refused', 10_000, 'reload', since);
    // `config reloaded` is logged once every worker has applied the update (runtime: sync first).
    assert.equal(outcome.msg, 'config reloaded', JSON.stringify(outcome));

    held.write('still here\n');
    assert.equal(await readLine(held), 'still here', 'the open connection keeps flowing');
    const denied = await refusedFrom(port, { localAddress: '127.0.0.3' });
    await closeLine(ringlb, (l) => l.client === `127.0.0.3:${denied}` && l.outcome === 'denied', 'denied after the reload');
    const first = await openClient({ port, localAddress: '127.0.0.4' });
    t.after(() => first.destroy());
    assert.equal(await readLine(first), 'a');
    const second = await refusedFrom(port, { localAddress: '127.0.0.4' });
    await closeLine(ringlb, (l) => l.client === `127.0.0.4:${second}` && l.outcome === 'rejected_source_limit', 'the new cap applies');
  });
}

describe('reload (ringlb run)', () => {
  reloadSuite(1, (name, fn) => test(name, fn));
  reloadSuite(2, (name, fn) => workersTest(name, fn));
});
