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
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BULK_BYTES = 256 * 1024 * 1024;
const BULK_CHUNK = 64 * 1024;
const CONNECT_COUNT = 5000;
const CONNECT_CONCURRENCY = 8;
const PING_COUNT = 20_000;
const PING_BYTES = 64;
/** Any single measurement taking longer than this aborts the run (bounded in time). */
const SCENARIO_TIMEOUT_MS = 120_000;

const CLI_PATH = fileURLToPath(new URL('../src/cli.js', import.meta.url));

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

async function firstJsonLine<T>(child: ChildProcess, predicate: (value: unknown) => T | undefined): Promise<T> {
  child.stdout!.setEncoding('utf8');
  let buffer = '';
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not report its ports within 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
    child.stdout!.on('data', (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch {
          continue;
        }
        const found = predicate(value);
        if (found !== undefined) {
          clearTimeout(timer);
          resolve(found);
        }
      }
    });
  });
}

function spawnNode(args: string[]): ChildProcess {
  return spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
}

/** A free loopback port: bound to 0, read, closed. (Racy in theory; fine for a one-machine bench.) */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * ringlb at log level warn, as it would run under load (no access log). With no `listener ready`
 * line to read, the bench picks the ports and waits until both accept connections.
 */
async function startRinglbProcess(backends: Ports, dir: string): Promise<{ child: ChildProcess; ports: Ports }> {
  const ports: Ports = { echo: await freePort(), sink: await freePort() };
  const configFile = join(dir, 'ringlb-bench.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      listeners: [
        { name: 'echo', bind: `127.0.0.1:${ports.echo}`, pool: 'echo' },
        { name: 'sink', bind: `127.0.0.1:${ports.sink}`, pool: 'sink', idleTimeoutMs: 0 },
      ],
      pools: [
        { name: 'echo', balance: 'maglev', backends: [{ address: `127.0.0.1:${backends.echo}` }] },
        { name: 'sink', balance: 'maglev', backends: [{ address: `127.0.0.1:${backends.sink}` }] },
      ],
      log: { level: 'warn' },
    }),
  );
  const child = spawnNode([CLI_PATH, 'run', '--config', configFile]);
  const deadline = Date.now() + 10_000;
  for (const port of [ports.echo, ports.sink]) {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`ringlb exited (${child.exitCode})`);
      try {
        (await openSocket(port)).destroy();
        break;
      } catch {
        if (Date.now() > deadline) throw new Error('ringlb did not start listening within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }
  return { child, ports };
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} exceeded ${SCENARIO_TIMEOUT_MS} ms`)), SCENARIO_TIMEOUT_MS);
    }),
  ]);
}

async function openSocket(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  return socket;
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

/** Connections per second: connect, one byte there and back, close; CONNECT_CONCURRENCY at a time. */
async function connectRate(port: number): Promise<number> {
  let started = 0;
  const one = async (): Promise<void> => {
    const socket = await openSocket(port);
    socket.write('x');
    await once(socket, 'data');
    socket.destroy();
  };
  const worker = async (): Promise<void> => {
    while (started < CONNECT_COUNT) {
      started += 1;
      await one();
    }
  };
  const startedAt = performance.now();
  await Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, worker));
  return CONNECT_COUNT / ((performance.now() - startedAt) / 1000);
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

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds must be 1..20');
  const dir = mkdtempSync(join(tmpdir(), 'ringlb-bench-'));
  const children: ChildProcess[] = [];
  try {
    const backendsChild = spawnNode(['-e', BACKENDS_SOURCE]);
    children.push(backendsChild);
    const backends = await firstJsonLine(backendsChild, (v) => v as Ports);
    const naiveChild = spawnNode(['-e', NAIVE_PROXY_SOURCE, String(backends.echo), String(backends.sink)]);
    children.push(naiveChild);
    const naive = await firstJsonLine(naiveChild, (v) => v as Ports);
    const ringlb = await startRinglbProcess(backends, dir);
    children.push(ringlb.child);

    const targets: Array<[string, Ports]> = [
      ['direct', backends],
      ['naive pipe()', naive],
      ['ringlb', ringlb.ports],
    ];
    const results = new Map<string, Result[]>(targets.map(([name]) => [name, []]));
    // One warm-up round (JIT, socket buffers, TIME_WAIT steady state), not counted.
    for (const [name, ports] of targets) await measure(name, ports);
    for (let round = 0; round < rounds; round += 1) {
      // Interleaved and rotated each round, so drift and position in the round hit every target alike.
      for (let i = 0; i < targets.length; i += 1) {
        const [name, ports] = targets[(i + round) % targets.length]!;
        results.get(name)!.push(await measure(name, ports));
      }
    }
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
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    console.log(`node ${process.version}, ${cpus().length} × ${cpu}; median of ${rounds} rounds after 1 warm-up round`);
    console.log(
      `bulk ${BULK_BYTES / 1024 / 1024} MiB one way; connect ${CONNECT_COUNT} × ${CONNECT_CONCURRENCY} concurrent; latency ${PING_COUNT} × ${PING_BYTES} B`,
    );
    console.log('ratios are vs the naive pipe() proxy, higher is better (latency: naive / target)\n');
    console.log(`| ${header.join(' | ')} |`);
    console.log(`|${header.map(() => '---').join('|')}|`);
    for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  } finally {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
