/**
 * The side-by-side comparison of issue 8 §4: ringlb beside HAProxy (`nbthread 2`, mode tcp) and
 * nginx stream (`worker_processes auto`, `reuseport`), each in front of the same backends, driven
 * by the tools users already trust rather than by our own client:
 *
 *   bulk 1 / 4   iperf3 -t 3 (-P 4) through the proxy to one iperf3 server, Gbit/s
 *   connect      wrk with `Connection: close` (one TCP connection per request), connections/s
 *   keep-alive   wrk --latency on kept-alive connections, p50 / p99
 *
 * Beside each figure, the proxy's CPU per unit of work: user + system of every process and thread
 * of the proxy (nginx master and workers) from /proc, around the scenario. Targets are measured in
 * interleaved, rotated rounds after one warm-up round (bench/loopback-load.ts); medians are
 * reported, with ratios against HAProxy and the targets.
 *
 * Needs haproxy, nginx with the stream module, iperf3 and wrk; when root, missing ones are installed
 * with apt-get (Debian: haproxy nginx-light libnginx-mod-stream iperf3 wrk). CI does not run it.
 * Every load runs on 127.0.0.1, every scenario is bounded in time, every process it starts is
 * killed in the finally. Node 24 (for ringlb) comes from `npm exec --package=node@24` when it resolves.
 *
 *   npm run bench:side-by-side [-- --rounds 3]
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import {
  BenchRun,
  firstJsonLine,
  freePort,
  machineLine,
  measureRounds,
  median,
  processCpuMicros,
  processTree,
  roundsFromArgs,
  haproxyTcpConfig,
  HTTP_BACKEND_SOURCE,
  runTool,
} from './loopback-load.js';

/** Seconds per scenario: long enough that a 10 ms clock tick is noise, short enough for ≤ 6 min. */
const SCENARIO_SECONDS = 3;
/** A tool that has not finished this long after its own duration is killed and the run fails. */
const TOOL_GRACE_MS = 20_000;
const WRK_THREADS = 2;
const WRK_CONNECT_CONNECTIONS = 16;
const WRK_KEEPALIVE_CONNECTIONS = 16;

const HAPROXY_PATH = '/usr/sbin/haproxy';
const NGINX_PATH = '/usr/sbin/nginx';
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const TOOLS: ReadonlyArray<{ readonly path: string; readonly packages: readonly string[] }> = [
  { path: HAPROXY_PATH, packages: ['haproxy'] },
  { path: NGINX_PATH, packages: ['nginx-light'] },
  { path: NGINX_STREAM_MODULE, packages: ['libnginx-mod-stream'] },
  { path: '/usr/bin/iperf3', packages: ['iperf3'] },
  { path: '/usr/bin/wrk', packages: ['wrk'] },
];

interface Ports {
  readonly iperf: number;
  readonly http: number;
}

/** A proxy under test: its two listening ports and the pid at the root of its process tree. */
interface Target extends Ports {
  readonly pid: number;
}

interface Result {
  bulk1Gbits: number;
  bulk4Gbits: number;
  connectsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Proxy CPU, ms per GB carried (1 and 4 streams), µs per new connection, µs per keep-alive request. */
  cpuMsPerGB1: number;
  cpuMsPerGB4: number;
  cpuPerConnection: number;
  cpuPerRequest: number;
}

/** Installs what is missing with apt-get when root; otherwise names what to install and stops. */
function ensureTools(): void {
  const missing = TOOLS.filter((tool) => !existsSync(tool.path)).flatMap((tool) => tool.packages);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`missing tools; install them: apt-get install ${missing.join(' ')}`);
  console.error(`installing ${missing.join(' ')} with apt-get`);
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    timeout: 300_000,
  });
}

/** Node 24's binary via the npm registry's `node@24` package, or undefined (offline, no npm): skipped then. */
function node24Path(): string | undefined {
  try {
    const path = execFileSync('npm', ['exec', '--yes', '--package=node@24', '--', 'node', '-p', 'process.execPath'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 120_000,
    }).trim();
    return existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU (µs) of `pid` and all its descendants, every thread, from /proc. Descendants matter for nginx,
 * whose workers do the proxying; /proc/<pid>/stat of the master counts only reaped children.
 */
function treeCpuMicros(pid: number): number {
  let total = 0;
  for (const member of processTree(pid)) {
    try {
      total += processCpuMicros(member);
    } catch {
      // Exited between listing and reading: its CPU is gone with it.
    }
  }
  return total;
}


/** How long iperf() retries while the server still reports the previous test as running. */
const IPERF_BUSY_RETRY_MS = 15_000;

/**
 * Bits per second and bytes received by the iperf3 server for `streams` parallel streams. The one
 * server runs one test at a time and may still be closing the previous test's streams (seen through
 * a proxy, which closes the backend side after the client side): "busy" is retried, bounded.
 */
async function iperf(port: number, streams: number): Promise<{ bitsPerSecond: number; bytes: number }> {
  const deadline = Date.now() + IPERF_BUSY_RETRY_MS;
  for (;;) {
    try {
      return await iperfOnce(port, streams);
    } catch (error) {
      if (!String(error).includes('busy') || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function iperfOnce(port: number, streams: number): Promise<{ bitsPerSecond: number; bytes: number }> {
  const args = ['-c', '127.0.0.1', '-p', String(port), '-t', String(SCENARIO_SECONDS), '-P', String(streams), '-J', '--connect-timeout', '5000'];
  const report = JSON.parse(await runTool('iperf3', args, SCENARIO_SECONDS * 1000 + TOOL_GRACE_MS)) as {
    error?: string;
    end: { sum_received: { bits_per_second: number; bytes: number } };
  };
  if (report.error !== undefined) throw new Error(`iperf3: ${report.error}`);
  return { bitsPerSecond: report.end.sum_received.bits_per_second, bytes: report.end.sum_received.bytes };
}

interface WrkReport {
  readonly requests: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** wrk's duration ("828.00us", "3.06ms", "1.2s") in ms. */
function wrkDurationMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (match === null) throw new Error(`unreadable wrk duration ${text}`);
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(match[1]) * scale;
}

/**
 * wrk against `port` for SCENARIO_SECONDS; with `close`, every request on its own connection.
 * Socket errors or non-2xx answers fail the run: a proxy that drops work must not look fast.
 */
async function wrk(port: number, connections: number, close: boolean): Promise<WrkReport> {
  const args = ['-t', String(WRK_THREADS), '-c', String(connections), '-d', `${SCENARIO_SECONDS}s`, '--latency', '--timeout', '5s'];
  if (close) args.push('-H', 'Connection: close');
  args.push(`http://127.0.0.1:${port}/`);
  const output = await runTool('wrk', args, SCENARIO_SECONDS * 1000 + TOOL_GRACE_MS);
  const requests = /(\d+) requests in/.exec(output);
  const perSecond = /Requests\/sec:\s+([\d.]+)/.exec(output);
  const p50 = /^\s+50%\s+(\S+)$/m.exec(output);
  const p99 = /^\s+99%\s+(\S+)$/m.exec(output);
  if (requests === null || perSecond === null || p50 === null || p99 === null) throw new Error(`unreadable wrk output:\n${output}`);
  const errors = /Socket errors: (.*)$/m.exec(output) ?? /Non-2xx or 3xx responses: (\d+)/.exec(output);
  if (errors !== null) throw new Error(`wrk saw errors through port ${port}: ${errors[0]}`);
  return { requests: Number(requests[1]), perSecond: Number(perSecond[1]), p50Ms: wrkDurationMs(p50[1]!), p99Ms: wrkDurationMs(p99[1]!) };
}

/** `scenario`'s result and the CPU (µs) the proxy's process tree spent during it. */
async function withCpu<T>(pid: number, scenario: () => Promise<T>): Promise<[T, number]> {
  const before = treeCpuMicros(pid);
  const value = await scenario();
  return [value, treeCpuMicros(pid) - before];
}

async function measure(_name: string, target: Target): Promise<Result> {
  const [bulk1, bulk1Cpu] = await withCpu(target.pid, () => iperf(target.iperf, 1));
  const [bulk4, bulk4Cpu] = await withCpu(target.pid, () => iperf(target.iperf, 4));
  const [connect, connectCpu] = await withCpu(target.pid, () => wrk(target.http, WRK_CONNECT_CONNECTIONS, true));
  const [keepAlive, keepAliveCpu] = await withCpu(target.pid, () => wrk(target.http, WRK_KEEPALIVE_CONNECTIONS, false));
  return {
    bulk1Gbits: bulk1.bitsPerSecond / 1e9,
    bulk4Gbits: bulk4.bitsPerSecond / 1e9,
    connectsPerSecond: connect.perSecond,
    p50Ms: keepAlive.p50Ms,
    p99Ms: keepAlive.p99Ms,
    cpuMsPerGB1: bulk1Cpu / 1000 / (bulk1.bytes / 1e9),
    cpuMsPerGB4: bulk4Cpu / 1000 / (bulk4.bytes / 1e9),
    cpuPerConnection: connectCpu / connect.requests,
    cpuPerRequest: keepAliveCpu / keepAlive.requests,
  };
}

async function newPorts(): Promise<Ports> {
  return { iperf: await freePort(), http: await freePort() };
}

const CLI_PATH = new URL('../src/cli.js', import.meta.url).pathname;

/**
 * Whether this build's config accepts top-level `workers` (issue 8 §2), asked of `ringlb check` on
 * `nodePath`: until worker threads land, the bench runs ringlb as one process only.
 */
function acceptsWorkers(run: BenchRun, nodePath: string): boolean {
  const file = `${run.scratchDirectory}/workers-check.json`;
  // Otherwise valid (check refuses empty listeners and pools), so only `workers` can fail it.
  writeFileSync(
    file,
    JSON.stringify({
      workers: 'auto',
      listeners: [{ name: 'probe', bind: '127.0.0.1:1', pool: 'probe' }],
      pools: [{ name: 'probe', balance: 'maglev', backends: [{ address: '127.0.0.1:2' }] }],
    }),
  );
  try {
    execFileSync(nodePath, [CLI_PATH, 'check', '--config', file], { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/** ringlb as users run it (`ringlb run`), log level warn; `workers` only when this build knows it. */
async function startRinglb(run: BenchRun, backends: Ports, nodePath: string, workers?: 'auto' | 1): Promise<Target> {
  const ports = await newPorts();
  const config = {
    ...(workers === undefined ? {} : { workers }),
    listeners: [
      { name: 'iperf', bind: `127.0.0.1:${ports.iperf}`, pool: 'iperf', idleTimeoutMs: 0 },
      { name: 'http', bind: `127.0.0.1:${ports.http}`, pool: 'http' },
    ],
    pools: [
      { name: 'iperf', balance: 'maglev', backends: [{ address: `127.0.0.1:${backends.iperf}` }] },
      { name: 'http', balance: 'maglev', backends: [{ address: `127.0.0.1:${backends.http}` }] },
    ],
    log: { level: 'warn', access: { enabled: false } },
  };
  const child = await run.startProcess(nodePath, [CLI_PATH, 'run', '--config'], `ringlb-${ports.http}.json`, JSON.stringify(config), [ports.iperf, ports.http]);
  return { ...ports, pid: child.pid! };
}

/** HAProxy 2 threads, mode tcp, in the foreground (`-db`) so that its pid is this bench's child. */
async function startHaproxy(run: BenchRun, backends: Ports): Promise<Target> {
  const ports = await newPorts();
  const config = haproxyTcpConfig({ iperf: [ports.iperf, backends.iperf], http: [ports.http, backends.http] });
  const child = await run.startProcess(HAPROXY_PATH, ['-db', '-f'], 'haproxy.cfg', config, [ports.iperf, ports.http]);
  return { ...ports, pid: child.pid! };
}

/**
 * nginx stream with a worker per core and `reuseport`, master in the foreground (`daemon off`);
 * pid file and error log in the run's scratch directory (`-p`), so nothing under /etc or /var is
 * touched. Its CPU is the master's plus every worker's.
 */
async function startNginx(run: BenchRun, backends: Ports): Promise<Target> {
  const ports = await newPorts();
  const config = [
    `load_module ${NGINX_STREAM_MODULE};`,
    'daemon off;',
    'worker_processes auto;',
    'pid nginx.pid;',
    // crit: at the end of every iperf3 test the server resets its streams, which nginx logs as error.
    'error_log stderr crit;',
    'events { worker_connections 16384; }',
    'stream {',
    `  server { listen 127.0.0.1:${ports.iperf} reuseport; proxy_pass 127.0.0.1:${backends.iperf}; proxy_timeout 60s; }`,
    `  server { listen 127.0.0.1:${ports.http} reuseport; proxy_pass 127.0.0.1:${backends.http}; proxy_timeout 60s; }`,
    '}',
    '',
  ].join('\n');
  const child = await run.startProcess(NGINX_PATH, ['-p', run.scratchDirectory, '-e', 'stderr', '-c'], 'nginx.conf', config, [ports.iperf, ports.http]);
  return { ...ports, pid: child.pid! };
}

/** The iperf3 server (bulk) and the Node HTTP server (wrk), each in its own process. */
async function startBackends(run: BenchRun): Promise<Ports> {
  const iperfPort = await freePort();
  // Its per-test report goes to a file: nobody reads its stdout pipe, which would fill and block it.
  // Stderr is dropped: every readiness probe (ours, and each proxy's through it) is a connection that
  // sends no test parameters, and iperf3 complains about each. A dead server fails the first iperf3 -c.
  run.spawnProcess('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort), '--logfile', `${run.scratchDirectory}/iperf3.log`], 'ignore');
  const { http } = await firstJsonLine<{ http: number }>(run.spawnNode(['-e', HTTP_BACKEND_SOURCE]));
  await run.waitListening('iperf3', [iperfPort]);
  return { iperf: iperfPort, http };
}

function summarize(list: Result[]): Result {
  const pick = (field: keyof Result): number => median(list.map((result) => result[field]));
  return {
    bulk1Gbits: pick('bulk1Gbits'),
    bulk4Gbits: pick('bulk4Gbits'),
    connectsPerSecond: pick('connectsPerSecond'),
    p50Ms: pick('p50Ms'),
    p99Ms: pick('p99Ms'),
    cpuMsPerGB1: pick('cpuMsPerGB1'),
    cpuMsPerGB4: pick('cpuMsPerGB4'),
    cpuPerConnection: pick('cpuPerConnection'),
    cpuPerRequest: pick('cpuPerRequest'),
  };
}

/**
 * Rows of the table: each figure, how to print it, and issue 8's target as a ratio vs HAProxy
 * (`higher`: the figure must be at least that ratio; otherwise at most). The throughput and latency
 * targets are set for `workers: auto`; a one-process ringlb is compared against them all the same.
 */
const ROWS: ReadonlyArray<{
  readonly label: string;
  readonly field: keyof Result;
  readonly format: (value: number) => string;
  readonly target?: { readonly ratio: number; readonly higher: boolean };
}> = [
  { label: 'bulk 1 stream, Gbit/s', field: 'bulk1Gbits', format: (v) => v.toFixed(2), target: { ratio: 1.0, higher: true } },
  { label: 'bulk 4 streams, Gbit/s', field: 'bulk4Gbits', format: (v) => v.toFixed(2), target: { ratio: 1.0, higher: true } },
  { label: 'new connections/s (Connection: close)', field: 'connectsPerSecond', format: (v) => v.toFixed(0), target: { ratio: 0.7, higher: true } },
  { label: 'keep-alive p50', field: 'p50Ms', format: (v) => `${(v * 1000).toFixed(0)} µs`, target: { ratio: 1.2, higher: false } },
  { label: 'keep-alive p99', field: 'p99Ms', format: (v) => `${(v * 1000).toFixed(0)} µs`, target: { ratio: 1.5, higher: false } },
  { label: 'proxy CPU per new connection', field: 'cpuPerConnection', format: (v) => `${v.toFixed(1)} µs`, target: { ratio: 1.6, higher: false } },
  { label: 'proxy CPU per keep-alive request', field: 'cpuPerRequest', format: (v) => `${v.toFixed(1)} µs`, target: { ratio: 1.25, higher: false } },
  { label: 'proxy CPU per GB, 1 stream', field: 'cpuMsPerGB1', format: (v) => `${v.toFixed(0)} ms`, target: { ratio: 1.0, higher: false } },
  { label: 'proxy CPU per GB, 4 streams', field: 'cpuMsPerGB4', format: (v) => `${v.toFixed(0)} ms`, target: { ratio: 1.0, higher: false } },
];

const HAPROXY_NAME = 'haproxy nbthread 2';

function printTable(summary: Map<string, Result>): void {
  const reference = summary.get(HAPROXY_NAME)!;
  const names = [...summary.keys()];
  const header = ['', ...names, 'target vs HAProxy'];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of ROWS) {
    const cells = names.map((name) => {
      const value = summary.get(name)![row.field];
      if (name === HAPROXY_NAME) return row.format(value);
      const ratio = value / reference[row.field];
      const met = row.target === undefined ? '' : (row.target.higher ? ratio >= row.target.ratio : ratio <= row.target.ratio) ? ' ✓' : ' ✗';
      return `${row.format(value)} (${ratio.toFixed(2)}×${name.startsWith('ringlb') ? met : ''})`;
    });
    const target = row.target === undefined ? '' : `${row.target.higher ? '≥' : '≤'} ${row.target.ratio}×`;
    console.log(`| ${row.label} | ${cells.join(' | ')} | ${target} |`);
  }
}

async function main(): Promise<void> {
  const rounds = roundsFromArgs(3);
  const startedAt = performance.now();
  ensureTools();
  const node24 = node24Path();
  const run = new BenchRun();
  // A signal (Ctrl-C) must not leave proxies and backends behind: close, then exit.
  const onSignal = (): void => {
    run.close();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const backends = await startBackends(run);
    // Node 20 has no reusePort: `workers` above 1 runs one worker there (issue 8 §2), so `auto` is
    // measured on Node 24 only.
    const workers = acceptsWorkers(run, process.execPath);
    const targets: Array<[string, Target]> = [[`ringlb ${process.version}`, await startRinglb(run, backends, process.execPath, workers ? 1 : undefined)]];
    if (node24 !== undefined) {
      const version = execFileSync(node24, ['-p', 'process.version'], { encoding: 'utf8' }).trim();
      targets.push([`ringlb ${version}`, await startRinglb(run, backends, node24, workers ? 1 : undefined)]);
      if (workers) targets.push([`ringlb ${version} workers auto`, await startRinglb(run, backends, node24, 'auto')]);
    }
    targets.push([HAPROXY_NAME, await startHaproxy(run, backends)]);
    targets.push([`nginx stream ×${availableParallelism()}`, await startNginx(run, backends)]);

    const results = await measureRounds(targets, rounds, measure);
    const summary = new Map([...results].map(([name, list]) => [name, summarize(list)]));
    console.log(machineLine(rounds));
    console.log(
      `each scenario ${SCENARIO_SECONDS} s: iperf3 -P 1 and -P 4; wrk -t${WRK_THREADS} -c${WRK_CONNECT_CONNECTIONS} with Connection: close; ` +
        `wrk -t${WRK_THREADS} -c${WRK_KEEPALIVE_CONNECTIONS} --latency keep-alive. ringlb ${workers ? 'workers 1 and auto' : 'one process (this build has no workers)'}.`,
    );
    console.log('(ratio vs HAProxy; ✓/✗ against issue 8 targets. Proxy CPU = user + sys of all its processes and threads, /proc)\n');
    printTable(summary);
    console.log(`\nwhole run ${((performance.now() - startedAt) / 1000).toFixed(0)} s`);
  } finally {
    run.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
