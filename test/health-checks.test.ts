/**
 * Active health checks (src/health/checks.ts) against real loopback peers: node servers, a stalled
 * listener, a real redis-server and a node:http server. No network mocks.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { HealthCheckConfig } from '../src/config/types.js';
import { excerpt, MAX_REPLY_BYTES, runHealthCheck } from '../src/health/checks.js';
import type { CheckTarget } from '../src/health/types.js';
import { closedPort, startNamedBackend, startStalledBackend, type NamedBackend, type StalledBackend } from './helpers/backends.js';

const HOST = '127.0.0.1';
/** Short, so timeout cases stay fast; generous enough for loopback on a loaded CI machine. */
const TIMEOUT_MS = 300;
/** Scheduling slack allowed on top of timeoutMs before a check counts as unbounded. */
const TIMEOUT_SLACK_MS = 150;

function checkConfig(overrides: Partial<HealthCheckConfig> = {}): HealthCheckConfig {
  return {
    type: 'tcp',
    intervalMs: 1000,
    timeoutMs: TIMEOUT_MS,
    jitter: 0,
    rise: 2,
    fall: 3,
    unhealthyIntervalMs: 1000,
    port: null,
    send: null,
    expect: null,
    http: null,
    initialHealthy: false,
    ...overrides,
  };
}

const text = (value: string): Uint8Array => Buffer.from(value, 'latin1');
const substring = (value: string | Uint8Array) =>
  ({ kind: 'substring', bytes: typeof value === 'string' ? text(value) : value }) as const;
const regex = (source: string) => ({ kind: 'regex', source }) as const;
const target = (port: number): CheckTarget => ({ host: HOST, port });

/**
 * A TCP peer whose per-connection behaviour is given by the test; tracks open connections (its
 * side) so tests can prove the checker closed every socket.
 */
interface ScriptedPeer {
  readonly port: number;
  accepted(): number;
  open(): number;
  /** Resolves once no connection is open on the peer's side; rejects after timeoutMs (default 2 s). */
  drained(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

async function startScriptedPeer(onConnection: (socket: Socket) => void): Promise<ScriptedPeer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let drainWaiters: Array<() => void> = [];
  const server: Server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0) {
        for (const resolve of drainWaiters) resolve();
        drainWaiters = [];
      }
    });
    onConnection(socket);
  });
  server.listen({ host: HOST, port: 0 });
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    open: () => sockets.size,
    drained: (timeoutMs = 2000) =>
      sockets.size === 0
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`${sockets.size} connection(s) still open on the peer after ${timeoutMs} ms`)),
              timeoutMs,
            );
            drainWaiters.push(() => {
              clearTimeout(timer);
              resolve();
            });
          }),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

interface RedisServer {
  readonly port: number;
  stop(): Promise<void>;
}

/** A real redis-server on a free loopback port, no persistence; resolves once it accepts connections. */
async function startRedis(): Promise<RedisServer> {
  const port = await closedPort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--loglevel', 'notice'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const deadline = setTimeout(() => reject(new Error(`redis-server not ready within 5 s:\n${output}`)), 5000);
      child.on('error', (error) => {
        clearTimeout(deadline);
        reject(error);
      });
      child.on('exit', (code) => {
        clearTimeout(deadline);
        reject(new Error(`redis-server exited (${code}):\n${output}`));
      });
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        if (output.includes('Ready to accept connections')) {
          clearTimeout(deadline);
          resolve();
        }
      });
    });
  } catch (error) {
    await stop();
    throw error;
  }
  child.stdout!.resume();
  return { port, stop };
}

/** Node's open TCP handles (client sockets and servers), from process.getActiveResourcesInfo(). */
function openTcpHandles(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap' || name === 'TCPWrap').length;
}

/** Waits (bounded, yielding to the event loop) until the handle count is back to `baseline`. */
async function tcpHandlesBackTo(baseline: number, timeoutMs = 2000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (openTcpHandles() > baseline && Date.now() < deadline) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  return openTcpHandles();
}

describe('tcp check', () => {
  let backend: NamedBackend;
  let stalled: StalledBackend;
  before(async () => {
    backend = await startNamedBackend('tcp-ok');
    stalled = await startStalledBackend('tcp-stalled');
  });
  after(async () => {
    await backend.close();
    await stalled.close();
  });

  it('passes once connected, and closes the socket at once', async () => {
    const result = await runHealthCheck(target(backend.port), checkConfig());
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: true, reason: 'ok' });
    assert.ok(result.durationMs >= 0 && result.durationMs < TIMEOUT_MS, `durationMs ${result.durationMs}`);
    assert.equal(backend.accepted(), 1);
  });

  it('fails with ECONNREFUSED on a closed port', async () => {
    const result = await runHealthCheck(target(await closedPort()), checkConfig());
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: false, reason: 'ECONNREFUSED' });
  });

  it('fails with timeout when the connect hangs, within timeoutMs', async () => {
    const result = await runHealthCheck(target(stalled.port), checkConfig());
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: false, reason: 'timeout' });
    assert.ok(result.durationMs >= TIMEOUT_MS - 5, `durationMs ${result.durationMs} < timeout`);
    assert.ok(result.durationMs < TIMEOUT_MS + TIMEOUT_SLACK_MS, `durationMs ${result.durationMs} unbounded`);
  });

  it('checks config.port instead of the traffic port when set', async () => {
    const refused = await closedPort();
    const viaCheckPort = await runHealthCheck(target(refused), checkConfig({ port: backend.port }));
    assert.equal(viaCheckPort.ok, true);
    const viaTrafficPort = await runHealthCheck(target(backend.port), checkConfig({ port: refused }));
    assert.equal(viaTrafficPort.reason, 'ECONNREFUSED');
  });

  it('reports aborted without connecting when the signal is already aborted', async () => {
    const before = backend.accepted();
    const result = await runHealthCheck(target(backend.port), checkConfig(), AbortSignal.abort());
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: false, reason: 'aborted' });
    assert.equal(backend.accepted(), before);
  });

  it('ends promptly with aborted when the signal fires mid-check', async () => {
    const controller = new AbortController();
    const running = runHealthCheck(target(stalled.port), checkConfig({ timeoutMs: 10_000 }), controller.signal);
    controller.abort();
    const result = await running;
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: false, reason: 'aborted' });
    assert.ok(result.durationMs < 1000, `durationMs ${result.durationMs}`);
  });
});

describe('IPv6 targets', () => {
  it('tcp and http checks reach [::1], with the Host header bracketed', async (t) => {
    const server = createHttpServer((req, res) => res.end(req.headers.host ?? ''));
    server.on('error', () => {});
    server.listen({ host: '::1', port: 0 });
    const [event] = await Promise.race([once(server, 'listening').then(() => ['listening']), once(server, 'error').then(() => ['error'])]);
    if (event === 'error') {
      t.skip('no IPv6 loopback on this machine');
      return;
    }
    try {
      const port = (server.address() as AddressInfo).port;
      const hosts: string[] = [];
      server.on('request', (req) => hosts.push(req.headers.host ?? ''));
      assert.equal((await runHealthCheck({ host: '::1', port }, checkConfig())).ok, true);
      const http = await runHealthCheck(
        { host: '::1', port },
        checkConfig({ type: 'http', http: { path: '/', host: null, expectStatus: [200, 200] } }),
      );
      assert.equal(http.ok, true, http.reason);
      assert.deepEqual(hosts, [`[::1]:${port}`]);
    } finally {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    }
  });
});

describe('send_expect check against redis-server', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  it('PING → +PONG passes', async () => {
    const config = checkConfig({ type: 'send_expect', send: text('PING\r\n'), expect: substring('+PONG') });
    const result = await runHealthCheck(target(redis.port), config);
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: true, reason: 'ok' });
  });

  it('an unexpected reply on a connection the peer keeps open is an expect mismatch with the excerpt', async () => {
    // Redis answers an unknown command with -ERR and keeps the connection open: the deadline ends
    // the check, and the reason shows what came back rather than a bare timeout.
    const config = checkConfig({ type: 'send_expect', send: text('NOSUCHCOMMAND\r\n'), expect: substring('+PONG') });
    const result = await runHealthCheck(target(redis.port), config);
    assert.equal(result.ok, false);
    assert.match(result.reason, /^expect mismatch: got "-ERR unknown command/);
  });

  it('a regex expect matches over the reply text (INFO replication)', async () => {
    const config = checkConfig({
      type: 'send_expect',
      send: text('INFO replication\r\n'),
      expect: regex('role:(master|slave)\\r\\n'),
    });
    const result = await runHealthCheck(target(redis.port), config);
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: true, reason: 'ok' });
  });
});

describe('send_expect check against scripted peers', () => {
  const peers: ScriptedPeer[] = [];
  const peer = async (onConnection: (socket: Socket) => void): Promise<ScriptedPeer> => {
    const started = await startScriptedPeer(onConnection);
    peers.push(started);
    return started;
  };
  after(async () => {
    for (const started of peers) await started.close();
  });

  it('a peer answering garbage and closing fails at once with the excerpt', async () => {
    const garbage = await peer((socket) => socket.once('data', () => socket.end('HTTP/1.0 400 Bad Request\r\n\r\n')));
    const config = checkConfig({ type: 'send_expect', send: text('PING\r\n'), expect: substring('+PONG') });
    const result = await runHealthCheck(target(garbage.port), config);
    assert.equal(result.ok, false);
    assert.equal(result.reason, 'expect mismatch: got "HTTP/1.0 400 Bad Request\\r\\n\\r\\n"');
    assert.ok(result.durationMs < TIMEOUT_MS, 'the close ends the check before the timeout');
  });

  it('a peer closing without an answer fails at once', async () => {
    const silent = await peer((socket) => socket.once('data', () => socket.end()));
    const config = checkConfig({ type: 'send_expect', send: text('PING\r\n'), expect: substring('+PONG') });
    const result = await runHealthCheck(target(silent.port), config);
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: false, reason: 'expect mismatch: closed without a reply' });
  });

  it('a silent peer that keeps the connection open times out within timeoutMs', async () => {
    const mute = await peer(() => {});
    const config = checkConfig({ type: 'send_expect', send: text('PING\r\n'), expect: substring('+PONG') });
    const result = await runHealthCheck(target(mute.port), config);
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: false, reason: 'timeout' });
    assert.ok(result.durationMs < TIMEOUT_MS + TIMEOUT_SLACK_MS, `durationMs ${result.durationMs}`);
  });

  it('finds a match split across chunks (one byte per write)', async () => {
    const trickle = await peer((socket) => {
      socket.setNoDelay(true);
      socket.once('data', () => {
        const reply = Buffer.from('noise +PONG\r\n');
        let index = 0;
        const next = (): void => {
          if (index === reply.length || socket.destroyed) return;
          socket.write(reply.subarray(index, index + 1));
          index += 1;
          // A macrotask between bytes so each byte leaves in its own segment (correctness does not
          // depend on it: coalesced bytes must match too).
          setTimeout(next, 1);
        };
        next();
      });
    });
    const config = checkConfig({ type: 'send_expect', send: text('PING\r\n'), expect: substring('+PONG') });
    const result = await runHealthCheck(target(trickle.port), config);
    assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: true, reason: 'ok' });
  });

  it('sends binary ({"hex": ...}) payloads byte-exact and matches binary replies', async () => {
    const request = Buffer.from('00ff1080', 'hex');
    let seen: Buffer | null = null;
    const binary = await peer((socket) =>
      socket.once('data', (chunk: Buffer) => {
        seen = chunk;
        socket.write(chunk.equals(request) ? Buffer.from('deadbeef', 'hex') : Buffer.from('00', 'hex'));
      }),
    );
    const ok = await runHealthCheck(
      target(binary.port),
      checkConfig({ type: 'send_expect', send: request, expect: substring(Buffer.from('beef', 'hex')) }),
    );
    assert.equal(ok.ok, true, ok.reason);
    assert.deepEqual(seen, request);
    const mismatch = await runHealthCheck(
      target(binary.port),
      checkConfig({ type: 'send_expect', send: request, expect: substring(Buffer.from('cafe', 'hex')) }),
    );
    assert.equal(mismatch.reason, 'expect mismatch: got "\\xde\\xad\\xbe\\xef"');
  });

  it('with send null, only reads (a banner check)', async () => {
    const banner = await peer((socket) => socket.write('220 smtp.example ESMTP ready\r\n'));
    const ok = await runHealthCheck(target(banner.port), checkConfig({ type: 'send_expect', expect: regex('^220 ') }));
    assert.equal(ok.ok, true, ok.reason);
    const mismatch = await runHealthCheck(target(banner.port), checkConfig({ type: 'send_expect', expect: regex('^421 ') }));
    assert.match(mismatch.reason, /^expect mismatch: got "220 smtp/);
  });

  it('caps the bytes it keeps: a chatty peer without a match fails once 16 KiB arrived', async () => {
    const chatty = await peer((socket) => {
      // Writes far more than the cap, in one go; the checker must stop at MAX_REPLY_BYTES.
      socket.on('error', () => {});
      socket.write(Buffer.alloc(MAX_REPLY_BYTES * 8, 'x'));
    });
    const result = await runHealthCheck(target(chatty.port), checkConfig({ type: 'send_expect', expect: substring('+PONG') }));
    assert.equal(result.ok, false);
    assert.match(result.reason, new RegExp(`^expect mismatch: no match in the first ${MAX_REPLY_BYTES} bytes, got "x{40}"…$`));
    assert.ok(result.durationMs < TIMEOUT_MS, 'the cap ends the check, not the timeout');
  });
});

describe('http check', () => {
  let server: HttpServer;
  let port: number;
  let status = 200;
  let bodyBytes = 2;
  const requests: Array<{ method: string; url: string; headers: IncomingHttpHeaders }> = [];
  before(async () => {
    server = createHttpServer((req, res) => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      res.writeHead(status, { 'content-type': 'text/plain', location: '/elsewhere' });
      res.end(Buffer.alloc(bodyBytes, 'b'));
    });
    server.listen({ host: HOST, port: 0 });
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  const httpConfig = (http: Partial<NonNullable<HealthCheckConfig['http']>> = {}): HealthCheckConfig =>
    checkConfig({ type: 'http', http: { path: '/healthz', host: null, expectStatus: [200, 399], ...http } });

  it('200 passes, then 503 fails with "HTTP 503"', async () => {
    status = 200;
    const up = await runHealthCheck(target(port), httpConfig());
    assert.deepEqual({ ok: up.ok, reason: up.reason }, { ok: true, reason: 'ok' });
    status = 503;
    const down = await runHealthCheck(target(port), httpConfig());
    assert.deepEqual({ ok: down.ok, reason: down.reason }, { ok: false, reason: 'HTTP 503' });
  });

  it('the status range is inclusive: 301 passes in [200, 399], fails in [200, 299]', async () => {
    status = 301;
    assert.equal((await runHealthCheck(target(port), httpConfig())).ok, true);
    assert.equal((await runHealthCheck(target(port), httpConfig({ expectStatus: [200, 301] }))).ok, true);
    const strict = await runHealthCheck(target(port), httpConfig({ expectStatus: [200, 299] }));
    assert.deepEqual({ ok: strict.ok, reason: strict.reason }, { ok: false, reason: 'HTTP 301' });
  });

  it('sends GET path with Host (default target, or http.host), Connection: close and the User-Agent', async () => {
    status = 200;
    requests.length = 0;
    await runHealthCheck(target(port), httpConfig());
    await runHealthCheck(target(port), httpConfig({ path: '/status?full=1', host: 'svc.internal' }));
    assert.equal(requests.length, 2);
    const [byTarget, byHost] = requests;
    assert.equal(byTarget!.method, 'GET');
    assert.equal(byTarget!.url, '/healthz');
    assert.equal(byTarget!.headers.host, `${HOST}:${port}`);
    assert.equal(byTarget!.headers.connection, 'close');
    assert.equal(byTarget!.headers['user-agent'], 'ringlb-health');
    assert.equal(byHost!.url, '/status?full=1');
    assert.equal(byHost!.headers.host, 'svc.internal');
  });

  it('a large body does not delay or break the verdict', async () => {
    status = 200;
    bodyBytes = 4 * 1024 * 1024;
    try {
      const result = await runHealthCheck(target(port), httpConfig());
      assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: true, reason: 'ok' });
    } finally {
      bodyBytes = 2;
    }
  });

  it('a non-HTTP peer fails with the parser error code', async () => {
    const garbage = await startScriptedPeer((socket) => socket.end('+PONG\r\n'));
    try {
      const result = await runHealthCheck(target(garbage.port), httpConfig());
      assert.equal(result.ok, false);
      assert.match(result.reason, /^HPE_/);
    } finally {
      await garbage.close();
    }
  });

  it('ECONNREFUSED and timeout like the other types', async () => {
    const refused = await runHealthCheck(target(await closedPort()), httpConfig());
    assert.equal(refused.reason, 'ECONNREFUSED');
    const mute = await startScriptedPeer(() => {});
    try {
      const result = await runHealthCheck(target(mute.port), httpConfig());
      assert.deepEqual({ ok: result.ok, reason: result.reason }, { ok: false, reason: 'timeout' });
      assert.ok(result.durationMs < TIMEOUT_MS + TIMEOUT_SLACK_MS, `durationMs ${result.durationMs}`);
    } finally {
      await mute.close();
    }
  });
});

describe('no socket leaks', () => {
  it('200 checks of every type leave no socket open on either side', async () => {
    const echo = await startScriptedPeer((socket) => socket.on('data', (chunk: Buffer) => socket.write(chunk)));
    // Reads (so it sees the checker's FIN and closes its side) but never answers.
    const mute = await startScriptedPeer((socket) => socket.resume());
    const http = createHttpServer((_req, res) => res.end('ok'));
    http.listen({ host: HOST, port: 0 });
    await once(http, 'listening');
    const httpPort = (http.address() as AddressInfo).port;
    const baseline = openTcpHandles();
    try {
      // Passing checks get a timeout they never reach even on a starved CPU (20 run at once): this
      // test is about sockets, and a pass turned into a timeout by scheduling would fail it for
      // nothing. The mute peer keeps a short one, so the timeout path is exercised too.
      const passTimeoutMs = 10_000;
      const configs: Array<[number, HealthCheckConfig, boolean]> = [
        [echo.port, checkConfig({ timeoutMs: passTimeoutMs }), true],
        [echo.port, checkConfig({ type: 'send_expect', timeoutMs: passTimeoutMs, send: text('PING\r\n'), expect: substring('PING') }), true],
        [mute.port, checkConfig({ type: 'send_expect', timeoutMs: 50, send: text('PING\r\n'), expect: substring('+PONG') }), false],
        [httpPort, checkConfig({ type: 'http', timeoutMs: passTimeoutMs, http: { path: '/', host: null, expectStatus: [200, 399] } }), true],
      ];
      // 200 checks, 20 at a time (10 rounds), every type in every round.
      for (let round = 0; round < 10; round += 1) {
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => {
            const [port, config, expected] = configs[i % configs.length]!;
            return runHealthCheck(target(port), config).then((result) => [result, expected] as const);
          }),
        );
        for (const [result, expected] of results) assert.equal(result.ok, expected, result.reason);
      }
      await echo.drained();
      await mute.drained();
      assert.equal(echo.open() + mute.open(), 0);
      // ≤: handles of earlier tests may still have been closing when the baseline was taken.
      const left = await tcpHandlesBackTo(baseline);
      assert.ok(left <= baseline, `client-side TCP handles: ${left} open, baseline ${baseline}`);
    } finally {
      await echo.close();
      await mute.close();
      http.closeAllConnections();
      http.close();
      await once(http, 'close');
    }
  });
});

describe('excerpt', () => {
  it('quotes, escapes control and high bytes, and marks truncation', () => {
    assert.equal(excerpt(Buffer.from('-ERR x\r\n'), 8), '"-ERR x\\r\\n"');
    assert.equal(excerpt(Buffer.from([0x00, 0x22, 0x5c, 0xff]), 4), '"\\x00\\"\\\\\\xff"');
    assert.equal(excerpt(Buffer.alloc(100, 'a'), 100), `"${'a'.repeat(40)}"…`);
  });
});
