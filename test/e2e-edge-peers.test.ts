/**
 * PROXY protocol against real peers on loopback (scripts/test-peers.sh installs them):
 *
 * - HAProxy in front of ringlb with `send-proxy-v2` and with `send-proxy`: clients connect to
 *   HAProxy from 127.0.0.x; ringlb's access log names that client, and its maglev pool places each
 *   client exactly where a direct connection from the same address lands.
 * - nginx (stream module) as a backend with `listen … proxy_protocol`, logging
 *   `$proxy_protocol_addr`: with ringlb's `sendProxyProtocol` v1 and v2, nginx logs the original
 *   client's address (and refuses nothing: the header is one it parses).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { closed, connectError, openClient, readLine } from './helpers/clients.js';
import { startRinglb, TempDir, type RinglbProcess } from './helpers/ringlb-process.js';

/** Resolves once `port` accepts a connection (a peer finished starting); bounded in tries and time. */
async function acceptsConnections(port: number, peer: ChildProcess, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (let attempt = 0; attempt < 200; attempt++) {
    if (peer.exitCode !== null) throw new Error(`${what} exited with ${peer.exitCode}`);
    if ((await connectError({ port })) === undefined) return;
    if (performance.now() > deadline) break;
    // connectError resolves at once with ECONNREFUSED: wait for the peer's next event-loop turn.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what} never accepted on 127.0.0.1:${port}`);
}

function spawnPeer(t: TestContext, command: string, args: readonly string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  return { child, output: () => output };
}

async function haproxyInFront(t: TestContext, temp: TempDir, ringlbPort: number, sendProxy: 'send-proxy' | 'send-proxy-v2'): Promise<number> {
  const port = await closedPort();
  const config = join(temp.path, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      '  maxconn 100',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 30s',
      '  timeout server 30s',
      'listen front',
      `  bind 127.0.0.1:${port}`,
      `  server ringlb 127.0.0.1:${ringlbPort} ${sendProxy}`,
      '',
    ].join('\n'),
  );
  const { child, output } = spawnPeer(t, '/usr/sbin/haproxy', ['-db', '-f', config]);
  await acceptsConnections(port, child, `haproxy (${output()})`);
  return port;
}

async function namedBackends(t: TestContext, names: readonly string[]): Promise<NamedBackend[]> {
  const backends = await Promise.all(names.map((name) => startNamedBackend(name)));
  t.after(() => Promise.all(backends.map((backend) => backend.close())));
  return backends;
}

/** Connect from `localAddress`, read the backend's greeting, close. */
async function greeting(port: number, localAddress: string): Promise<{ name: string; localPort: number }> {
  const socket = await openClient({ port, localAddress });
  try {
    const name = await readLine(socket);
    const localPort = socket.localPort!;
    socket.end();
    await closed(socket);
    return { name, localPort };
  } finally {
    socket.destroy();
  }
}

async function ringlbFor(t: TestContext, config: unknown, listeners: readonly string[]): Promise<{ ringlb: RinglbProcess; ports: Map<string, number>; temp: TempDir }> {
  const temp = new TempDir();
  t.after(() => temp.remove());
  const started = await startRinglb(temp.writeJson(config), listeners);
  t.after(() => started.ringlb.kill());
  return { ...started, temp };
}

describe('HAProxy in front of ringlb (PROXY protocol in)', () => {
  for (const sendProxy of ['send-proxy-v2', 'send-proxy'] as const) {
    test(`${sendProxy}: the access log and the maglev pool see the original 127.0.0.x client`, async (t) => {
      const backends = await namedBackends(t, ['a', 'b', 'c', 'd']);
      const pool = { name: 'p', balance: 'maglev', backends: backends.map((b) => ({ address: b.address })) };
      const { ringlb, ports, temp } = await ringlbFor(
        t,
        {
          workers: 1,
          listeners: [
            { name: 'behind', bind: '127.0.0.1:0', pool: 'p', proxyProtocol: { accept: sendProxy === 'send-proxy' ? 'v1' : 'v2', trustedSources: ['127.0.0.1/32'] } },
            { name: 'direct', bind: '127.0.0.1:0', pool: 'p' },
          ],
          pools: [pool],
        },
        ['behind', 'direct'],
      );
      const front = await haproxyInFront(t, temp, ports.get('behind')!, sendProxy);
      const placed = new Set<string>();
      for (let host = 2; host <= 13; host++) {
        const source = `127.0.0.${host}`;
        const viaHaproxy = await greeting(front, source);
        const direct = await greeting(ports.get('direct')!, source);
        assert.equal(viaHaproxy.name, direct.name, `${source}: through HAProxy as directly`);
        placed.add(direct.name);
        const line = await ringlb.waitForLine(
          (l) => l.msg === 'connection closed' && l.listener === 'behind' && l.client === `${source}:${viaHaproxy.localPort}`,
          10_000,
          `access line of ${source}:${viaHaproxy.localPort}`,
        );
        assert.equal(line.outcome, 'ok');
      }
      // Hashed by HAProxy's own address (127.0.0.1) every client would share one backend.
      assert.ok(placed.size >= 2, `12 sources on ${placed.size} backend(s)`);
    });
  }
});

async function nginxBackend(t: TestContext, temp: TempDir): Promise<{ port: number; log: string }> {
  const port = await closedPort();
  const log = join(temp.path, 'nginx-stream.log');
  const config = join(temp.path, 'nginx.conf');
  writeFileSync(
    config,
    [
      'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
      'daemon off;',
      'master_process off;',
      `pid ${join(temp.path, 'nginx.pid')};`,
      `error_log ${join(temp.path, 'nginx-error.log')} warn;`,
      'events { worker_connections 64; }',
      'stream {',
      "  log_format pp '$proxy_protocol_addr:$proxy_protocol_port $remote_addr';",
      `  access_log ${log} pp;`,
      '  server {',
      `    listen 127.0.0.1:${port} proxy_protocol;`,
      '    proxy_protocol_timeout 5s;',
      "    return 'hello\\n';",
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const { child, output } = spawnPeer(t, '/usr/sbin/nginx', ['-p', temp.path, '-c', config]);
  await acceptsConnections(port, child, `nginx (${output()})`);
  return { port, log };
}

/** Lines nginx has written to `path` so far. */
function linesOf(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((line) => line !== '') : [];
}

async function waitForLogLine(path: string, wanted: string): Promise<string[]> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const lines = linesOf(path);
    if (lines.some((line) => line.startsWith(wanted))) return lines;
    if (performance.now() > deadline) throw new Error(`nginx never logged ${wanted}; it logged ${JSON.stringify(lines)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('nginx behind ringlb (PROXY protocol out)', () => {
  for (const version of ['v1', 'v2'] as const) {
    test(`${version}: nginx logs the original client as $proxy_protocol_addr`, async (t) => {
      const temp = new TempDir();
      t.after(() => temp.remove());
      const nginx = await nginxBackend(t, temp);
      const { ports } = await ringlbFor(
        t,
        {
          workers: 1,
          listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'p' }],
          pools: [
            {
              name: 'p',
              sendProxyProtocol: version,
              // A connect-only check: nginx with proxy_protocol accepts it (and logs nothing for it).
              healthCheck: { type: 'tcp', intervalMs: 1000 },
              backends: [{ address: `127.0.0.1:${nginx.port}` }],
            },
          ],
        },
        ['edge'],
      );
      for (const source of ['127.0.0.2', '127.0.0.3']) {
        const { name, localPort } = await greeting(ports.get('edge')!, source);
        assert.equal(name, 'hello');
        const lines = await waitForLogLine(nginx.log, `${source}:${localPort} `);
        const line = lines.find((l) => l.startsWith(`${source}:${localPort} `))!;
        // nginx's own peer is ringlb (127.0.0.1); the header named the client.
        assert.equal(line, `${source}:${localPort} 127.0.0.1`);
      }
    });
  }
});
