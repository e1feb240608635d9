/**
 * Mass close: HELD connections are open through ringlb, then the process holding them exits, so the
 * kernel closes them all in the same instant. How long does ringlb's event loop stall meanwhile?
 *
 * A probe connection through ringlb ping-pongs 64 bytes the whole time; its longest round trip from
 * the holder's exit until the backend has seen every held connection close is the stall (a quiet
 * round trip is ~0.1 ms, so the figure is the stall to within that). Run with the access log off
 * (level warn) and on (level info, one line per connection, written to a pipe this process drains).
 *
 * Backends, the holder and ringlb run in child processes; every loop is bounded in count and time.
 *
 *   npm run build && node dist/bench/mass-close.js [--rounds 3] [--baseline /tmp/base/dist/src/cli.js]
 */
import { once } from 'node:events';
import { baselineFromArgs, BenchRun, firstJsonLine, freePort, JsonLines, machineLine, median, openSocket, roundsFromArgs, withTimeout } from './loopback-load.js';

const HELD = 9_800;
const PING_BYTES = 64;

/**
 * Echo backend that reports on stdout when its open connections reach HELD + 1 (the probe and every
 * held one), and when, after that, they are down to 1 (the probe). Only after the peak: ringlb's
 * start-up check connection may close after the probe opened.
 */
const BACKEND_SOURCE = `
const net = require('node:net');
const HELD = ${HELD};
let open = 0;
let peaked = false;
const server = net.createServer((s) => {
  open += 1;
  if (open === HELD + 1 && !peaked) { peaked = true; process.stdout.write(JSON.stringify({ open }) + '\\n'); }
  s.on('error', () => s.destroy());
  s.on('close', () => { open -= 1; if (open === 1 && peaked) process.stdout.write(JSON.stringify({ open }) + '\\n'); });
  s.pipe(s);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
`;

/**
 * Opens HELD connections (one byte there and back on each), 100 in flight at a time so that the
 * listen backlog never overflows, says so, and exits on any stdin input.
 */
const HOLDER_SOURCE = `
const net = require('node:net');
const port = Number(process.argv[1]);
const held = [];
let started = 0;
let ready = 0;
function openOne() {
  if (started === ${HELD}) return;
  started += 1;
  const s = net.connect(port, '127.0.0.1');
  held.push(s);
  s.on('error', (e) => { console.error('holder:', e.message); process.exit(1); });
  s.once('data', () => {
    ready += 1;
    if (ready === ${HELD}) process.stdout.write(JSON.stringify({ ready }) + '\\n');
    else openOne();
  });
  s.write('x');
}
for (let i = 0; i < 100; i += 1) openOne();
process.stdin.once('data', () => process.exit(0));
`;

/** Ping-pong on `port` until `stop` resolves; the longest round trip (ms) seen after `armed()` was called. */
async function probe(port: number, stop: Promise<unknown>): Promise<{ arm: () => void; longest: Promise<number> }> {
  const socket = await openSocket(port);
  const ping = Buffer.alloc(PING_BYTES, 0x70);
  let armed = false;
  let longest = 0;
  let received = 0;
  let sentAt = 0;
  let stopped = false;
  void stop.then(() => (stopped = true));
  const done = new Promise<number>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received < PING_BYTES) return;
      received -= PING_BYTES;
      const rtt = performance.now() - sentAt;
      if (armed && rtt > longest) longest = rtt;
      if (stopped) {
        socket.destroy();
        resolve(longest);
        return;
      }
      sentAt = performance.now();
      socket.write(ping);
    });
  });
  sentAt = performance.now();
  socket.write(ping);
  return { arm: () => (armed = true), longest: done };
}

async function oneRound(run: BenchRun, cliPath: string | undefined, level: 'warn' | 'info'): Promise<number> {
  const backend = run.spawnNode(['-e', BACKEND_SOURCE]);
  const backendLines = new JsonLines(backend.stdout!);
  const { port: backendPort } = await backendLines.next<{ port: number }>('echo backend port');
  const listenPort = await freePort();
  const ringlb = await run.startRinglb(
    {
      listeners: [{ name: 'held', bind: `127.0.0.1:${listenPort}`, pool: 'echo', maxConnections: HELD + 10 }],
      pools: [{ name: 'echo', balance: 'maglev', backends: [{ address: `127.0.0.1:${backendPort}` }] }],
      log: { level },
    },
    [listenPort],
    cliPath,
  );
  ringlb.stdout!.resume(); // the access log at level info: read and dropped
  try {
    const holder = run.spawnNode(['-e', HOLDER_SOURCE, String(listenPort)], 'pipe');
    const holderLines = new JsonLines(holder.stdout!);
    const allClosed = withTimeout(
      (async () => {
        for (;;) if ((await backendLines.next<{ open: number }>('backend open count')).open === 1) return;
      })(),
      'mass close',
    );
    // If a step before `await allClosed` throws, its rejection must not end the process before the
    // finally below has stopped ringlb and the backend.
    allClosed.catch(() => {});
    // The probe opens first, so the backend's count HELD + 1 means every held connection is through.
    const { arm, longest } = await probe(listenPort, allClosed);
    await holderLines.next('holder connects');
    arm();
    holder.stdin!.write('exit\n');
    await once(holder, 'exit');
    await allClosed;
    return await longest;
  } finally {
    ringlb.kill('SIGKILL');
    backend.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const rounds = roundsFromArgs(3);
  const baseline = baselineFromArgs();
  const run = new BenchRun();
  const targets: Array<[string, string | undefined]> = [['ringlb', undefined]];
  if (baseline !== undefined) targets.push(['ringlb baseline', baseline]);
  try {
    console.log(machineLine(rounds).replace(' after 1 warm-up round', ''));
    console.log(`${HELD} held connections closed at once (the holder exits); longest probe round trip, ms\n`);
    console.log('| target | access log off | access log on |');
    console.log('|---|---|---|');
    const results = new Map<string, { off: number[]; on: number[] }>(targets.map(([name]) => [name, { off: [], on: [] }]));
    for (let round = 0; round < rounds; round += 1) {
      for (const [name, cliPath] of targets) {
        results.get(name)!.off.push(await oneRound(run, cliPath, 'warn'));
        results.get(name)!.on.push(await oneRound(run, cliPath, 'info'));
      }
    }
    for (const [name, { off, on }] of results) console.error(name, off.map((v) => v.toFixed(1)).join(" "), "|", on.map((v) => v.toFixed(1)).join(" "));
    for (const [name, { off, on }] of results) console.log(`| ${name} | ${median(off).toFixed(1)} | ${median(on).toFixed(1)} |`);
  } finally {
    run.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
