/**
 * Hold: HELD long-lived connections open through one ringlb at once (issue 8 §4). Each echoes one
 * byte when opened and one more after the hold, so a refused, reset or silently dropped connection
 * is counted, not missed. Reports ringlb's RSS and open fds from /proc before, at HELD held and
 * after closing, RSS per held connection, how long opening and closing took, and the longest round
 * trip of a probe connection that ping-pongs through ringlb the whole time (an event-loop stall).
 *
 * Open files: ringlb needs 2 fds per connection, the backend and each holder 1. Every child is
 * spawned through `prlimit --nofile=N:N` (util-linux; it execs the command, so the pid is the
 * child's own); raising the hard limit above the parent's needs CAP_SYS_RESOURCE, which root in a container
 * may lack: then the bench holds as many as the hard limit allows and says so. A second,
 * short start with a limit too low for maxConnections checks that ringlb warns at start.
 *
 * Backends, holders and ringlb run in child processes; every loop is bounded in count and time.
 *
 *   npm run build && node dist/bench/hold-connections.js        (or: npm run bench:hold)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BenchRun, freePort, JsonLines, machineLine, openSocket, withTimeout } from './loopback-load.js';

const HOLDERS = 2;
/** The figure (issue 8 §4); `--held N` asks for fewer (or more). */
const WANTED = wantedFromArgs(10_000);
/** Connects in flight per holder: two holders keep at most 200 in ringlb's accept queue (backlog 511). */
const IN_FLIGHT = 100;
/** How long the connections stay open, idle, between the opening echo and the second one. */
const HOLD_MS = 3_000;
/** fds ringlb's start-up check reserves besides 2 per connection (src/cli.ts warnIfFileDescriptorsShort). */
const RINGLB_FD_RESERVE = 64;
/** What ringlb's own rule asks for WANTED held plus the probe, or the hard limit if that is lower. */
const RINGLB_NOFILE = Math.min(2 * (WANTED + 1) + RINGLB_FD_RESERVE, hardOpenFilesLimit());
/**
 * As many as ringlb's own rule says RINGLB_NOFILE holds (maxConnections is HELD + 1: the probe),
 * at most WANTED. Without CAP_SYS_RESOURCE the hard limit cannot be raised, and below 2 × 10,001 +
 * 64 = 20,066 fds one process cannot hold 10,000 proxied connections.
 */
const HELD = Math.min(WANTED, Math.floor((RINGLB_NOFILE - RINGLB_FD_RESERVE) / 2) - 1);
/** The backend holds 1 fd per connection, each holder 1 per its share; 1,024 for everything else. */
const PEER_NOFILE = Math.min(HELD + 1_024, hardOpenFilesLimit());
/** A limit below what maxConnections needs (2 × (HELD + 1) + 64): start-up must warn (src/cli.ts warnIfFileDescriptorsShort). */
const SHORT_NOFILE = Math.min(1_024, 2 * (HELD + 1) + RINGLB_FD_RESERVE - 1);
const PING_BYTES = 64;
const WARNING_TEXT = 'file descriptor limit is below what maxConnections needs';
/** How long to wait for that warning once ringlb listens (it comes within milliseconds when it comes at all). */
const WARNING_WAIT_MS = 3000;

const CLI_PATH = fileURLToPath(new URL('../src/cli.js', import.meta.url));

/** Echo backend: reports its port, then `{ open }` each time its open count reaches a watched value. */
const BACKEND_SOURCE = `
const net = require('node:net');
const watched = new Set(process.argv.slice(1).map(Number));
let open = 0;
const report = () => { if (watched.has(open)) process.stdout.write(JSON.stringify({ open }) + '\\n'); };
const server = net.createServer((s) => {
  open += 1;
  report();
  s.on('error', () => s.destroy());
  s.on('close', () => { open -= 1; report(); });
  s.pipe(s);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
`;

/**
 * Opens COUNT connections to PORT, IN_FLIGHT at a time, each echoing one byte before the next
 * opens; reports `{ opened, echoed, failed, ms }`. On stdin 'verify' writes one more byte on each and
 * reports how many echoed and how many closed or failed since opening; on 'close' destroys all and
 * reports `{ closed }`. A connection that errs or closes early is counted, never retried.
 */
const HOLDER_SOURCE = `
const net = require('node:net');
const [port, count, inFlight] = process.argv.slice(1).map(Number);
const held = [];
let started = 0, echoed = 0, failed = 0, droppedAfterOpen = 0, settled = 0;
const startedAt = performance.now();
function settle() {
  settled += 1;
  if (settled === count) process.stdout.write(JSON.stringify({ opened: held.length, echoed, failed, ms: performance.now() - startedAt }) + '\\n');
  else openOne();
}
function openOne() {
  if (started === count) return;
  started += 1;
  const s = net.connect(port, '127.0.0.1');
  let state = 'opening';
  s.on('error', () => {});
  s.on('close', () => {
    if (state === 'opening') { state = 'failed'; failed += 1; settle(); }
    else if (state === 'held') { state = 'dropped'; droppedAfterOpen += 1; }
  });
  s.once('data', () => {
    if (state !== 'opening') return;
    state = 'held';
    s.state = () => state;
    held.push(s);
    echoed += 1;
    settle();
  });
  s.write('x');
}
for (let i = 0; i < inFlight; i += 1) openOne();
process.stdin.setEncoding('utf8');
process.stdin.on('data', (command) => {
  if (command.startsWith('verify')) {
    let answered = 0, reechoed = 0;
    const live = held.filter((s) => s.state() === 'held');
    const done = () => { answered += 1; if (answered === live.length) process.stdout.write(JSON.stringify({ reechoed, dropped: droppedAfterOpen }) + '\\n'); };
    if (live.length === 0) done();
    for (const s of live) {
      s.once('data', () => { reechoed += 1; done(); });
      s.once('close', done);
      s.write('y');
    }
  } else if (command.startsWith('close')) {
    for (const s of held) s.destroy();
    process.stdout.write(JSON.stringify({ closed: held.length }) + '\\n');
  }
});
`;

interface Sample {
  rssKiB: number;
  fds: number;
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
  return { rssKiB, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** Ping-pong through ringlb; `longestSince()` is the longest round trip (ms) since the last call. */
async function startProbe(port: number): Promise<{ longestSince: () => number; stop: () => void }> {
  const socket = await openSocket(port);
  const ping = Buffer.alloc(PING_BYTES, 0x70);
  let longest = 0;
  let received = 0;
  let sentAt = performance.now();
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received < PING_BYTES) return;
    received -= PING_BYTES;
    longest = Math.max(longest, performance.now() - sentAt);
    sentAt = performance.now();
    socket.write(ping);
  });
  socket.write(ping);
  await withTimeout(once(socket, 'data'), 'first probe echo');
  return {
    longestSince: () => {
      // A round trip still outstanding counts for as long as it has waited so far.
      const value = Math.max(longest, performance.now() - sentAt);
      longest = 0;
      return value;
    },
    stop: () => socket.destroy(),
  };
}

function ringlbConfig(listenPort: number, backendPort: number): object {
  return {
    listeners: [{ name: 'held', bind: `127.0.0.1:${listenPort}`, pool: 'echo', maxConnections: HELD + 1 }],
    pools: [{ name: 'echo', balance: 'round_robin', backends: [{ address: `127.0.0.1:${backendPort}` }] }],
    log: { level: 'warn', access: { enabled: false } },
  };
}

/** ringlb through `prlimit --nofile=limit:limit`, once it accepts on listenPort. */
function startLimitedRinglb(run: BenchRun, limit: number, listenPort: number, backendPort: number): Promise<ChildProcess> {
  return run.startProcess(
    'prlimit',
    [`--nofile=${limit}:${limit}`, process.execPath, CLI_PATH, 'run', '--config'],
    `hold-${limit}.json`,
    JSON.stringify(ringlbConfig(listenPort, backendPort)),
    [listenPort],
  );
}

/** Children this bench spawns itself (through prlimit), killed in main's finally. */
const limitedChildren: ChildProcess[] = [];

/** `node ...args` through `prlimit --nofile=limit:limit`, stdin and stdout piped. */
function spawnLimitedNode(limit: number, args: string[]): ChildProcess {
  const child = spawn('prlimit', [`--nofile=${limit}:${limit}`, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  limitedChildren.push(child);
  return child;
}

/** Does ringlb warn at start when its open-files limit cannot hold maxConnections? */
async function warnsWhenShort(run: BenchRun, backendPort: number): Promise<{ logged: boolean; line: string }> {
  const listenPort = await freePort();
  const ringlb = await startLimitedRinglb(run, SHORT_NOFILE, listenPort, backendPort);
  try {
    // The warning is logged once ringlb has started, after `listener ready`, so the listener being up
    // does not mean it was written yet: read lines until it comes, or give up after a bounded wait.
    const lines = new JsonLines(ringlb.stdout!);
    const isWarning = (line: unknown): boolean => typeof line === 'object' && line !== null && String((line as { msg?: unknown }).msg).includes(WARNING_TEXT);
    let found: unknown;
    const deadline = Date.now() + WARNING_WAIT_MS;
    while (found === undefined && Date.now() < deadline) {
      const line = await lines.nextWithin(Math.max(1, deadline - Date.now()));
      if (line !== undefined && isWarning(line)) found = line;
    }
    ringlb.kill('SIGTERM');
    await withTimeout(once(ringlb.stdout!, 'end'), 'ringlb exit');
    return { logged: found !== undefined, line: found === undefined ? '' : JSON.stringify(found) };
  } finally {
    ringlb.kill('SIGKILL');
  }
}

/** Connections holder `index` opens: HELD split as evenly as integers allow. */
function shareOf(index: number): number {
  return Math.floor(HELD / HOLDERS) + (index < HELD % HOLDERS ? 1 : 0);
}

/** The hard RLIMIT_NOFILE this process runs under, which a child without CAP_SYS_RESOURCE cannot exceed. */
function hardOpenFilesLimit(): number {
  const match = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  if (match === null || match[1] === 'unlimited') return Number.MAX_SAFE_INTEGER;
  return Number(match[1]);
}

function wantedFromArgs(defaultCount: number): number {
  const { values } = parseArgs({ options: { held: { type: 'string', default: String(defaultCount) } } });
  const count = Number(values.held);
  if (!Number.isInteger(count) || count < HOLDERS || count > 100_000) throw new Error('--held must be an integer 2..100000');
  return count;
}

const kib = (value: number): string => `${(value / 1024).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const run = new BenchRun();
  try {
    // The backend's watched counts: 1 (only the probe) and HELD + 1 (the probe and every held one).
    const backend = spawnLimitedNode(PEER_NOFILE, ['-e', BACKEND_SOURCE, '1', String(HELD + 1)]);
    const backendLines = new JsonLines(backend.stdout!);
    const { port: backendPort } = await backendLines.next<{ port: number }>('backend start');

    const warning = await warnsWhenShort(run, backendPort);

    const listenPort = await freePort();
    const ringlb = await startLimitedRinglb(run, RINGLB_NOFILE, listenPort, backendPort);
    const ringlbLines = new JsonLines(ringlb.stdout!);
    const pid = ringlb.pid!;
    const probe = await startProbe(listenPort);
    // Counts reported so far came from start-up check connections; only those after this matter.
    backendLines.drain();
    const before = sample(pid);
    probe.longestSince();

    const openStarted = performance.now();
    const holders = Array.from({ length: HOLDERS }, (_, index) =>
      spawnLimitedNode(PEER_NOFILE, ['-e', HOLDER_SOURCE, String(listenPort), String(shareOf(index)), String(IN_FLIGHT)]),
    );
    const holderLines = holders.map((holder) => new JsonLines(holder.stdout!));
    const opened = await Promise.all(
      holderLines.map((lines) => lines.next<{ opened: number; echoed: number; failed: number; ms: number }>('holders open')),
    );
    const openMs = performance.now() - openStarted;
    const openStall = probe.longestSince();
    const echoedOnOpen = opened.reduce((sum, h) => sum + h.echoed, 0);
    const failedOnOpen = opened.reduce((sum, h) => sum + h.failed, 0);
    if (echoedOnOpen === HELD) await backendLines.next<{ open: number }>('backend sees every held connection');
    const atPeak = sample(pid);

    await withTimeout(new Promise((resolve) => setTimeout(resolve, HOLD_MS)), 'hold');
    const idleStall = probe.longestSince();
    for (const holder of holders) holder.stdin!.write('verify\n');
    const verified = await Promise.all(holderLines.map((lines) => lines.next<{ reechoed: number; dropped: number }>('verify')));
    const reechoed = verified.reduce((sum, h) => sum + h.reechoed, 0);
    const dropped = verified.reduce((sum, h) => sum + h.dropped, 0);
    const verifyStall = probe.longestSince();

    backendLines.drain();
    const closeStarted = performance.now();
    for (const holder of holders) holder.stdin!.write('close\n');
    await Promise.all(holderLines.map((lines) => lines.next<{ closed: number }>('close')));
    for (;;) if ((await backendLines.next<{ open: number }>('backend sees every close')).open === 1) break;
    const closeMs = performance.now() - closeStarted;
    const closeStall = probe.longestSince();
    // ringlb may still hold client-side fds after the backend saw its upstream close; no event tells
    // this process when they are gone, so /proc is read every 20 ms (bounded by withTimeout).
    await withTimeout(
      (async () => {
        while (sample(pid).fds > before.fds) await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      'ringlb releases its fds',
    );
    const releasedMs = performance.now() - closeStarted;
    const after = sample(pid);
    probe.stop();
    const startWarnings = ringlbLines.drain().filter((line) => String((line as { msg?: unknown }).msg).includes(WARNING_TEXT)).length;

    console.log(machineLine(1).replace('median of 1 rounds after 1 warm-up round', 'one run'));
    console.log(`${HELD} connections held through one ringlb process (${HOLDERS} holder processes, ${IN_FLIGHT} connects in flight each, held ${HOLD_MS / 1000} s)`);
    console.log(`open files: ringlb ${RINGLB_NOFILE}, backend and holders ${PEER_NOFILE} (prlimit --nofile)`);
    if (HELD < WANTED) console.log(`asked for ${WANTED}: ringlb's limit of ${RINGLB_NOFILE} open files holds at most ${HELD} (2 each + ${RINGLB_FD_RESERVE}), and the hard limit cannot be raised here`);
    console.log('');
    console.log('| figure | value |');
    console.log('|---|---|');
    console.log(`| connections echoed on open / refused or reset | ${echoedOnOpen} / ${failedOnOpen} |`);
    console.log(`| echoed again after the hold / dropped while held | ${reechoed} / ${dropped} |`);
    console.log(`| opening ${HELD} (wall) | ${(openMs / 1000).toFixed(2)} s (${Math.round(HELD / (openMs / 1000))} conn/s) |`);
    console.log(`| closing ${HELD}: until the backend saw every close / until ringlb's fds were back to ${before.fds} | ${(closeMs / 1000).toFixed(2)} s / ${(releasedMs / 1000).toFixed(2)} s |`);
    console.log(`| ringlb RSS before / at ${HELD} held / after closing (fds released) | ${kib(before.rssKiB)} / ${kib(atPeak.rssKiB)} / ${kib(after.rssKiB)} |`);
    console.log(`| RSS per held connection | ${(((atPeak.rssKiB - before.rssKiB) * 1024) / HELD / 1024).toFixed(2)} KiB |`);
    console.log(`| ringlb open fds before / held / after | ${before.fds} / ${atPeak.fds} / ${after.fds} |`);
    console.log(`| longest probe round trip: opening / idle hold / echo on all at once / closing | ${openStall.toFixed(1)} / ${idleStall.toFixed(1)} / ${verifyStall.toFixed(1)} / ${closeStall.toFixed(1)} ms |`);
    console.log(`| start-up warning at nofile ${SHORT_NOFILE} / at ${RINGLB_NOFILE} | ${warning.logged ? 'logged' : 'NOT logged'} / ${startWarnings > 0 ? 'logged' : 'none'} |`);
    if (warning.logged) console.log(`\nwarning line: ${warning.line}`);
    if (echoedOnOpen !== HELD || reechoed !== HELD || dropped !== 0 || !warning.logged) process.exitCode = 1;
  } finally {
    for (const child of limitedChildren) child.kill('SIGKILL');
    run.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
