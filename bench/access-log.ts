/**
 * What the access log costs, and what sampling saves (issue 9): ringlb (`workers: 1`, one thread, so
 * the figures are one event loop's) proxies short connections at a fixed rate with the access log
 *
 *   off       log.access.enabled false (twice: the two differ only by noise, an A/A pair)
 *   on        every connection, to a file
 *   sampled   log.access.sample 0.01, to a file (failures would still all be written; none occur here)
 *
 * Each connection: connect, send 1 byte, read the echo, close. The client paces connections at
 * RATE per second for CONNECTIONS in all (at most MAX_IN_FLIGHT at once), so every target does the
 * same work in the same time and CPU per connection compares like with like. Per target and round:
 * the proxy's CPU (user + system, /proc/<pid>/stat) per connection, and the access-log bytes
 * written per second and per connection (the file's growth). Targets run in separate processes, in
 * rotated order, one warm-up round first; medians reported.
 *
 *   npm run build && node dist/bench/access-log.js [--rounds 5]
 */
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BenchRun, firstJsonLine, freePort, machineLine, measureRounds, median, openSocket, processCpuMicros, roundsFromArgs, withTimeout } from './loopback-load.js';

/** Connections per second the client opens: the issue's figure was ~300 KB/s at 1,300/s. */
const RATE = 1000;
const CONNECTIONS = 5000;
const MAX_IN_FLIGHT = 64;

const ECHO_SOURCE = `
const net = require('node:net');
const echo = net.createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
echo.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: echo.address().port }) + '\\n'));
`;

interface Target {
  readonly port: number;
  readonly pid: number;
  /** The access-log file, or null when the log is off. */
  readonly file: string | null;
}

interface Measurement {
  readonly cpuMicrosPerConnection: number;
  readonly bytesPerSecond: number;
  readonly bytesPerConnection: number;
  readonly connectionsPerSecond: number;
}

async function oneConnection(port: number): Promise<void> {
  const socket = await openSocket(port);
  try {
    socket.write('x');
    await once(socket, 'data');
  } finally {
    socket.destroy();
  }
}

/** CONNECTIONS connections at RATE per second; resolves when all have ended. */
async function paced(port: number): Promise<void> {
  const startedAt = performance.now();
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < CONNECTIONS; i++) {
    const due = startedAt + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    const connection: Promise<void> = oneConnection(port).finally(() => inFlight.delete(connection));
    inFlight.add(connection);
  }
  await Promise.all(inFlight);
}

function fileBytes(file: string | null): number {
  if (file === null) return 0;
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

async function measure(target: Target): Promise<Measurement> {
  const cpuBefore = processCpuMicros(target.pid);
  const bytesBefore = fileBytes(target.file);
  const startedAt = performance.now();
  await withTimeout(paced(target.port), 'paced connections');
  const seconds = (performance.now() - startedAt) / 1000;
  // Lines are written when both sockets closed, which can follow the client's close by a moment.
  await sleep(200);
  const cpu = processCpuMicros(target.pid) - cpuBefore;
  const bytes = fileBytes(target.file) - bytesBefore;
  return {
    cpuMicrosPerConnection: cpu / CONNECTIONS,
    bytesPerSecond: bytes / seconds,
    bytesPerConnection: bytes / CONNECTIONS,
    connectionsPerSecond: CONNECTIONS / seconds,
  };
}

async function startTarget(run: BenchRun, echoPort: number, name: string, access: object | null): Promise<Target> {
  const port = await freePort();
  const file = access === null ? null : join(run.scratchDirectory, `access-${name}.log`);
  const child = await run.startRinglb(
    {
      workers: 1,
      log: { level: 'warn', access: access === null ? { enabled: false } : { ...access, output: file } },
      listeners: [{ name: 'echo', bind: `127.0.0.1:${port}`, pool: 'echo' }],
      pools: [{ name: 'echo', backends: [{ address: `127.0.0.1:${echoPort}` }] }],
    },
    [port],
  );
  return { port, pid: child.pid!, file };
}

async function main(): Promise<void> {
  const rounds = roundsFromArgs(3);
  const run = new BenchRun();
  try {
    const { port: echoPort } = await firstJsonLine<{ port: number }>(run.spawnNode(['-e', ECHO_SOURCE]));
    const targets: Array<[string, Target]> = [
      ['off', await startTarget(run, echoPort, 'off', null)],
      // A second identical target: the spread between the two is this machine's noise (A/A).
      ['off (again)', await startTarget(run, echoPort, 'off-again', null)],
      ['on', await startTarget(run, echoPort, 'on', { enabled: true, sample: 1 })],
      ['sampled 0.01', await startTarget(run, echoPort, 'sampled', { enabled: true, sample: 0.01 })],
    ];
    const results = await measureRounds(targets, rounds, (_name, target) => measure(target));
    console.log(machineLine(rounds));
    console.log(`${CONNECTIONS} connections at ${RATE}/s (connect, 1 byte echoed, close), ringlb workers 1, access log to a file`);
    console.log('');
    console.log('| access log | connections/s | CPU µs / connection | log bytes/s | log bytes / connection |');
    console.log('|---|---:|---:|---:|---:|');
    for (const [name] of targets) {
      const list = results.get(name)!;
      const pick = (f: (m: Measurement) => number): number => median(list.map(f));
      console.log(
        `| ${name} | ${pick((m) => m.connectionsPerSecond).toFixed(0)} | ${pick((m) => m.cpuMicrosPerConnection).toFixed(0)} | ${pick((m) => m.bytesPerSecond).toFixed(0)} | ${pick((m) => m.bytesPerConnection).toFixed(1)} |`,
      );
    }
    console.log('');
    console.log(`CPU µs per connection, every round: ${targets.map(([name]) => `${name} ${results.get(name)!.map((m) => m.cpuMicrosPerConnection.toFixed(0)).join('/')}`).join('; ')}`);
  } finally {
    run.close();
  }
}

await main();
