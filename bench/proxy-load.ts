/**
 * Loopback load through ringlb, side by side with a direct connection and a ten-line Node
 * `pipe()` proxy (the floor a userspace Node proxy can hope to match), in one run:
 *
 *   bulk      256 MiB one way into a sink backend, MiB/s
 *   connect   5000 × (connect, send 1 byte, read the echo, close), 8 concurrent, connections/s
 *   latency   20000 ping-pongs of 64 bytes on one kept-alive connection, p50 / p99 µs
 *
 * Backends, the naive proxy and ringlb each run in their own child process; this process is the
 * client only, so no two parties share an event loop. Every loop is bounded in count and time.
 * Beside each figure, the proxy's CPU per unit of work (user + system from /proc/<pid>/stat around
 * the scenario): per connection, per ping-pong request, per GB. On a shared 2-core box throughput
 * follows CPU per unit, and CPU per unit is the steadier figure of the two.
 *
 * `--baseline <path>/dist/src/cli.js` runs a second ringlb from another build (the unchanged code)
 * in the same rounds, so a data-plane change is measured as a ratio against its own baseline.
 *
 *   npm run build && node dist/bench/proxy-load.js [--rounds 5] [--baseline /tmp/base/dist/src/cli.js]
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import {
  baselineFromArgs,
  BenchRun,
  CONNECT_CONCURRENCY,
  CONNECT_COUNT,
  connectRate,
  firstJsonLine,
  freePort,
  machineLine,
  measureRounds,
  median,
  openSocket,
  processCpuMicros,
  roundsFromArgs,
  withTimeout,
  haproxyTcpConfig,
} from './loopback-load.js';

const BULK_BYTES = 256 * 1024 * 1024;
const BULK_CHUNK = 64 * 1024;
const PING_COUNT = 20_000;
const PING_BYTES = 64;

/** Backends: an echo server and a sink (counts bytes, answers "done" after the client's FIN). */
const BACKENDS_SOURCE = `
const net = require('node:net');
const echo = net.createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
const sink = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => s.destroy());
  s.on('data', () => {});
  s.on('end', () => s.end('done'));
});
echo.listen(0, '127.0.0.1', () => sink.listen(0, '127.0.0.1', () =>
  process.stdout.write(JSON.stringify({ echo: echo.address().port, sink: sink.address().port }) + '\\n')));
`;

/** The floor: the ten-line pipe proxy everyone writes first. Args: listen port → target port, twice. */
const NAIVE_PROXY_SOURCE = `
const net = require('node:net');
const out = {};
const [echoTarget, sinkTarget] = process.argv.slice(1).map(Number);
for (const [name, target] of [['echo', echoTarget], ['sink', sinkTarget]]) {
  const server = net.createServer((c) => {
    const u = net.connect(target, '127.0.0.1');
    c.pipe(u); u.pipe(c);
    c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
  });
  server.listen(0, '127.0.0.1', () => { out[name] = server.address().port; if (out.echo && out.sink) process.stdout.write(JSON.stringify(out) + '\\n'); });
}
`;

interface Ports {
  readonly echo: number;
  readonly sink: number;
}

/** A target: its ports, and the pid of the proxy process whose CPU is measured (none for direct). */
interface Target extends Ports {
  readonly pid?: number;
}

/** Where Debian installs haproxy (`apt-get install haproxy`); the bench runs it only if it is there. */
const HAPROXY_PATH = '/usr/sbin/haproxy';

/**
 * HAProxy with 2 threads (`nbthread 2`, as in issue 8's comparison), mode tcp, one backend per
 * listener, in the foreground (`-db`) as a child of this bench, so its pid is the one measured.
 */
async function startHaproxy(run: BenchRun, backends: Ports): Promise<Target> {
  const ports: Ports = { echo: await freePort(), sink: await freePort() };
  const config = haproxyTcpConfig({ echo: [ports.echo, backends.echo], sink: [ports.sink, backends.sink] });
  const child = await run.startProcess(HAPROXY_PATH, ['-db', '-f'], 'haproxy.cfg', config, [ports.echo, ports.sink]);
  return { ...ports, pid: child.pid! };
}

/** ringlb at log level warn, as it would run under load (no access log), with maglev pools. */
async function startRinglb(run: BenchRun, backends: Ports, cliPath?: string): Promise<Target> {
  const ports: Ports = { echo: await freePort(), sink: await freePort() };
  const child = await run.startRinglb(
    {
      listeners: [
        { name: 'echo', bind: `127.0.0.1:${ports.echo}`, pool: 'echo' },
        { name: 'sink', bind: `127.0.0.1:${ports.sink}`, pool: 'sink', idleTimeoutMs: 0 },
      ],
      pools: [
        { name: 'echo', balance: 'maglev', backends: [{ address: `127.0.0.1:${backends.echo}` }] },
        { name: 'sink', balance: 'maglev', backends: [{ address: `127.0.0.1:${backends.sink}` }] },
      ],
      log: { level: 'warn' },
    },
    [ports.echo, ports.sink],
    cliPath,
  );
  return { ...ports, pid: child.pid! };
}

/** MiB/s for BULK_BYTES written into the sink, measured until the sink confirms it saw the FIN. */
async function bulk(port: number): Promise<number> {
  const socket = await openSocket(port);
  const chunk = Buffer.alloc(BULK_CHUNK, 0x61);
  const startedAt = performance.now();
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', () => {});
    socket.once('end', () => resolve());
    socket.once('error', reject);
  });
  let sent = 0;
  while (sent < BULK_BYTES) {
    sent += BULK_CHUNK;
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  socket.end();
  await done;
  const seconds = (performance.now() - startedAt) / 1000;
  socket.destroy();
  return BULK_BYTES / (1024 * 1024) / seconds;
}

/** Round-trip times (µs) of PING_COUNT 64-byte ping-pongs on one connection: p50 and p99. */
async function latency(port: number): Promise<{ p50: number; p99: number }> {
  const socket = await openSocket(port);
  const ping = Buffer.alloc(PING_BYTES, 0x70);
  const samples = new Float64Array(PING_COUNT);
  let received = 0;
  let index = 0;
  let sentAt = 0;
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received < PING_BYTES) return; // a pong may arrive in pieces
      received -= PING_BYTES;
      samples[index] = (performance.now() - sentAt) * 1000;
      index += 1;
      if (index === PING_COUNT) {
        resolve();
        return;
      }
      sentAt = performance.now();
      socket.write(ping);
    });
    sentAt = performance.now();
    socket.write(ping);
  });
  socket.destroy();
  samples.sort();
  return { p50: samples[Math.floor(PING_COUNT * 0.5)]!, p99: samples[Math.floor(PING_COUNT * 0.99)]! };
}

interface Result {
  bulkMiBs: number;
  connectsPerSecond: number;
  p50: number;
  p99: number;
  /** Proxy CPU (µs) per GB of bulk, per connection, per ping-pong; NaN for the direct target. */
  cpuPerGB: number;
  cpuPerConnection: number;
  cpuPerRequest: number;
}

/** `scenario`'s result and the proxy CPU (µs) it cost, NaN without a proxy process. */
async function withCpu<T>(pid: number | undefined, scenario: Promise<T> | (() => Promise<T>)): Promise<[T, number]> {
  const before = pid === undefined ? NaN : processCpuMicros(pid);
  const value = await (typeof scenario === 'function' ? scenario() : scenario);
  const after = pid === undefined ? NaN : processCpuMicros(pid);
  return [value, after - before];
}

async function measure(name: string, target: Target): Promise<Result> {
  const [bulkMiBs, bulkCpu] = await withCpu(target.pid, () => withTimeout(bulk(target.sink), `${name} bulk`));
  const [connectsPerSecond, connectCpu] = await withCpu(target.pid, () => withTimeout(connectRate(target.echo), `${name} connect`));
  const [{ p50, p99 }, latencyCpu] = await withCpu(target.pid, () => withTimeout(latency(target.echo), `${name} latency`));
  return {
    bulkMiBs,
    connectsPerSecond,
    p50,
    p99,
    cpuPerGB: bulkCpu / (BULK_BYTES / 1e9),
    cpuPerConnection: connectCpu / CONNECT_COUNT,
    cpuPerRequest: latencyCpu / PING_COUNT,
  };
}

async function main(): Promise<void> {
  const rounds = roundsFromArgs(5);
  const baseline = baselineFromArgs();
  const run = new BenchRun();
  try {
    const backends = await firstJsonLine<Ports>(run.spawnNode(['-e', BACKENDS_SOURCE]));
    const naiveChild = run.spawnNode(['-e', NAIVE_PROXY_SOURCE, String(backends.echo), String(backends.sink)]);
    const naive: Target = { ...(await firstJsonLine<Ports>(naiveChild)), pid: naiveChild.pid! };
    const ringlb = await startRinglb(run, backends);

    const targets: Array<[string, Target]> = [
      ['direct', backends],
      ['naive pipe()', naive],
      ['ringlb', ringlb],
    ];
    if (baseline !== undefined) targets.push(['ringlb baseline', await startRinglb(run, backends, baseline)]);
    if (existsSync(HAPROXY_PATH)) targets.push(['haproxy nbthread 2', await startHaproxy(run, backends)]);
    const results = await measureRounds(targets, rounds, measure);
    const summary = new Map<string, Result>();
    for (const [name, list] of results) {
      summary.set(name, {
        bulkMiBs: median(list.map((r) => r.bulkMiBs)),
        connectsPerSecond: median(list.map((r) => r.connectsPerSecond)),
        p50: median(list.map((r) => r.p50)),
        p99: median(list.map((r) => r.p99)),
        cpuPerGB: median(list.map((r) => r.cpuPerGB)),
        cpuPerConnection: median(list.map((r) => r.cpuPerConnection)),
        cpuPerRequest: median(list.map((r) => r.cpuPerRequest)),
      });
    }
    const floor = summary.get('naive pipe()')!;
    const rows = [...summary].map(([name, r]) => [
      name,
      `${r.bulkMiBs.toFixed(0)} (${(r.bulkMiBs / floor.bulkMiBs).toFixed(2)}×)`,
      `${r.connectsPerSecond.toFixed(0)} (${(r.connectsPerSecond / floor.connectsPerSecond).toFixed(2)}×)`,
      `${r.p50.toFixed(1)} (${(floor.p50 / r.p50).toFixed(2)}×)`,
      `${r.p99.toFixed(1)} (${(floor.p99 / r.p99).toFixed(2)}×)`,
    ]);
    const header = ['target', 'bulk MiB/s', 'connections/s', 'p50 µs', 'p99 µs'];
    // CPU: lower is better; the ratio is target / naive, so below 1 means cheaper than the floor.
    const cpuRows = [...summary]
      .filter(([, r]) => !Number.isNaN(r.cpuPerConnection))
      .map(([name, r]) => [
        name,
        `${(r.cpuPerGB / 1000).toFixed(0)} (${(r.cpuPerGB / floor.cpuPerGB).toFixed(2)}×)`,
        `${r.cpuPerConnection.toFixed(1)} (${(r.cpuPerConnection / floor.cpuPerConnection).toFixed(2)}×)`,
        `${r.cpuPerRequest.toFixed(1)} (${(r.cpuPerRequest / floor.cpuPerRequest).toFixed(2)}×)`,
      ]);
    const cpuHeader = ['proxy CPU', 'ms per GB', 'µs per connection', 'µs per request'];
    console.log(machineLine(rounds));
    console.log(
      `bulk ${BULK_BYTES / 1024 / 1024} MiB one way; connect ${CONNECT_COUNT} × ${CONNECT_CONCURRENCY} concurrent; latency ${PING_COUNT} × ${PING_BYTES} B`,
    );
    console.log('ratios are vs the naive pipe() proxy, higher is better (latency: naive / target)\n');
    console.log(`| ${header.join(' | ')} |`);
    console.log(`|${header.map(() => '---').join('|')}|`);
    for (const row of rows) console.log(`| ${row.join(' | ')} |`);
    console.log('\nproxy CPU (user + sys from /proc/<pid>/stat), lower is better; ratio target / naive\n');
    console.log(`| ${cpuHeader.join(' | ')} |`);
    console.log(`|${cpuHeader.map(() => '---').join('|')}|`);
    for (const row of cpuRows) console.log(`| ${row.join(' | ')} |`);
  } finally {
    run.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
