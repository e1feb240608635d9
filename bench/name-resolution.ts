/**
 * Connections/s through ringlb to one echo backend written two ways, side by side in one run:
 *
 *   by-ip     pool backend `127.0.0.1:PORT`
 *   by-name   pool backend `localhost:PORT` (resolved off the hot path: issue 7)
 *
 * and, as the baseline that shows what a lookup per connection costs, a naive pipe() proxy that
 * connects by `127.0.0.1` and by `localhost` (Node then calls dns.lookup, i.e. getaddrinfo on
 * libuv's thread pool, for every connection: what ringlb did before).
 *
 * Each connection: connect, send 1 byte, read the echo, close; CONNECT_CONCURRENCY at a time.
 * Backend, naive proxy and ringlb each run in their own child process; this process is the client.
 * Rounds are interleaved and rotated; every loop is bounded in count and time.
 *
 *   npm run build && node dist/bench/name-resolution.js [--rounds 7]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CONNECT_COUNT = 5000;
const CONNECT_CONCURRENCY = 8;
/** Any single measurement taking longer than this aborts the run. */
const SCENARIO_TIMEOUT_MS = 120_000;
const CLI_PATH = fileURLToPath(new URL('../src/cli.js', import.meta.url));

const ECHO_SOURCE = `
const net = require('node:net');
const echo = net.createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
echo.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: echo.address().port }) + '\\n'));
`;

/** Two naive pipe() proxies to the echo port: one connects by IP, one by name. */
const NAIVE_PROXY_SOURCE = `
const net = require('node:net');
const target = Number(process.argv[1]);
const out = {};
for (const [name, host] of [['ip', '127.0.0.1'], ['name', 'localhost']]) {
  const server = net.createServer((c) => {
    const u = net.connect(target, host);
    c.pipe(u); u.pipe(c);
    c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
  });
  server.listen(0, '127.0.0.1', () => { out[name] = server.address().port; if (out.ip && out.name) process.stdout.write(JSON.stringify(out) + '\\n'); });
}
`;

function spawnNode(args: string[]): ChildProcess {
  return spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
}

async function firstJsonLine<T>(child: ChildProcess): Promise<T> {
  child.stdout!.setEncoding('utf8');
  let buffer = '';
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not report its ports within 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
    child.stdout!.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      resolve(JSON.parse(buffer.slice(0, newline)) as T);
    });
  });
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

async function openSocket(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  return socket;
}

/** ringlb (log level warn, no access log) with one listener per way of writing the backend. */
async function startRinglb(echoPort: number, dir: string): Promise<{ child: ChildProcess; byIp: number; byName: number }> {
  const byIp = await freePort();
  const byName = await freePort();
  const configFile = join(dir, 'ringlb-bench.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      listeners: [
        { name: 'by-ip', bind: `127.0.0.1:${byIp}`, pool: 'by-ip' },
        { name: 'by-name', bind: `127.0.0.1:${byName}`, pool: 'by-name' },
      ],
      pools: [
        { name: 'by-ip', balance: 'round_robin', backends: [{ address: `127.0.0.1:${echoPort}` }] },
        { name: 'by-name', balance: 'round_robin', backends: [{ address: `localhost:${echoPort}` }] },
      ],
      log: { level: 'warn' },
    }),
  );
  const child = spawnNode([CLI_PATH, 'run', '--config', configFile]);
  const deadline = Date.now() + 10_000;
  for (const port of [byIp, byName]) {
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
  return { child, byIp, byName };
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
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, worker)).finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`connect scenario exceeded ${SCENARIO_TIMEOUT_MS} ms`)), SCENARIO_TIMEOUT_MS);
    }),
  ]);
  return CONNECT_COUNT / ((performance.now() - startedAt) / 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds must be 1..20');
  const dir = mkdtempSync(join(tmpdir(), 'ringlb-bench-'));
  const children: ChildProcess[] = [];
  try {
    const echoChild = spawnNode(['-e', ECHO_SOURCE]);
    children.push(echoChild);
    const { port: echoPort } = await firstJsonLine<{ port: number }>(echoChild);
    const naiveChild = spawnNode(['-e', NAIVE_PROXY_SOURCE, String(echoPort)]);
    children.push(naiveChild);
    const naive = await firstJsonLine<{ ip: number; name: number }>(naiveChild);
    const ringlb = await startRinglb(echoPort, dir);
    children.push(ringlb.child);

    const targets: Array<[string, number]> = [
      ['ringlb, backend 127.0.0.1:PORT', ringlb.byIp],
      ['ringlb, backend localhost:PORT', ringlb.byName],
      ['naive pipe(), connect 127.0.0.1', naive.ip],
      ['naive pipe(), connect localhost', naive.name],
    ];
    const results = new Map<string, number[]>(targets.map(([name]) => [name, []]));
    for (const [, port] of targets) await connectRate(port); // warm-up, not counted
    for (let round = 0; round < rounds; round += 1) {
      for (let i = 0; i < targets.length; i += 1) {
        const [name, port] = targets[(i + round) % targets.length]!;
        results.get(name)!.push(await connectRate(port));
      }
    }
    const rate = new Map([...results].map(([name, list]) => [name, median(list)]));
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    console.log(`node ${process.version}, ${cpus().length} × ${cpu}; median of ${rounds} rounds after 1 warm-up round`);
    console.log(`connect ${CONNECT_COUNT} × ${CONNECT_CONCURRENCY} concurrent (connect, 1 byte echoed, close)\n`);
    console.log('| target | connections/s | by name / by IP |');
    console.log('|---|---|---|');
    for (const [name, value] of rate) {
      const pairOf = name.replace('localhost:PORT', '127.0.0.1:PORT').replace('connect localhost', 'connect 127.0.0.1');
      const ratio = pairOf === name ? '' : (value / rate.get(pairOf)!).toFixed(3);
      console.log(`| ${name} | ${value.toFixed(0)} | ${ratio} |`);
    }
  } finally {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
