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
 *
 *   npm run build && node dist/bench/proxy-load.js [--rounds 5]
 */
import { once } from 'node:events';
import {
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
  roundsFromArgs,
  withTimeout,
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

/** ringlb at log level warn, as it would run under load (no access log), with maglev pools. */
async function startRinglb(run: BenchRun, backends: Ports): Promise<Ports> {
  const ports: Ports = { echo: await freePort(), sink: await freePort() };
  await run.startRinglb(
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
  );
  return ports;
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
}

async function measure(target: string, ports: Ports): Promise<Result> {
  const bulkMiBs = await withTimeout(bulk(ports.sink), `${target} bulk`);
  const connectsPerSecond = await withTimeout(connectRate(ports.echo), `${target} connect`);
  const { p50, p99 } = await withTimeout(latency(ports.echo), `${target} latency`);
  return { bulkMiBs, connectsPerSecond, p50, p99 };
}

async function main(): Promise<void> {
  const rounds = roundsFromArgs(5);
  const run = new BenchRun();
  try {
    const backends = await firstJsonLine<Ports>(run.spawnNode(['-e', BACKENDS_SOURCE]));
    const naive = await firstJsonLine<Ports>(run.spawnNode(['-e', NAIVE_PROXY_SOURCE, String(backends.echo), String(backends.sink)]));
    const ringlb = await startRinglb(run, backends);

    const targets: Array<[string, Ports]> = [
      ['direct', backends],
      ['naive pipe()', naive],
      ['ringlb', ringlb],
    ];
    const results = await measureRounds(targets, rounds, measure);
    const summary = new Map<string, Result>();
    for (const [name, list] of results) {
      summary.set(name, {
        bulkMiBs: median(list.map((r) => r.bulkMiBs)),
        connectsPerSecond: median(list.map((r) => r.connectsPerSecond)),
        p50: median(list.map((r) => r.p50)),
        p99: median(list.map((r) => r.p99)),
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
    console.log(machineLine(rounds));
    console.log(
      `bulk ${BULK_BYTES / 1024 / 1024} MiB one way; connect ${CONNECT_COUNT} × ${CONNECT_CONCURRENCY} concurrent; latency ${PING_COUNT} × ${PING_BYTES} B`,
    );
    console.log('ratios are vs the naive pipe() proxy, higher is better (latency: naive / target)\n');
    console.log(`| ${header.join(' | ')} |`);
    console.log(`|${header.map(() => '---').join('|')}|`);
    for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  } finally {
    run.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
