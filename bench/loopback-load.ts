/**
 * The loopback-load harness the proxy benches share (bench/proxy-load.ts, bench/name-resolution.ts):
 * child processes that report their ports, ringlb started from a config as the CLI runs it, the
 * connect scenario, and one measuring method (one warm-up round, then rounds interleaved and rotated,
 * reported as medians). Each bench file keeps its own scenario and output; this module prints nothing.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const CONNECT_COUNT = 5000;
export const CONNECT_CONCURRENCY = 8;
/** Any single measurement taking longer than this aborts the run (bounded in time). */
export const SCENARIO_TIMEOUT_MS = 120_000;
/** How long a child may take to report its ports, or ringlb to accept on its listeners. */
const START_TIMEOUT_MS = 10_000;

const CLI_PATH = fileURLToPath(new URL('../src/cli.js', import.meta.url));

/** `--rounds N` (1..20) from the command line, `defaultRounds` without it. */
export function roundsFromArgs(defaultRounds: number): number {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: String(defaultRounds) }, baseline: { type: 'string' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds must be 1..20');
  return rounds;
}

/** The first line of a bench's report: the machine and the method. */
export function machineLine(rounds: number): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `node ${process.version}, ${cpus().length} × ${cpu}; median of ${rounds} rounds after 1 warm-up round`;
}

/**
 * The child processes and scratch directory of one bench run, so that `close()` (in a finally)
 * leaves nothing behind whichever step failed.
 */
export class BenchRun {
  readonly #dir = mkdtempSync(join(tmpdir(), 'ringlb-bench-'));
  readonly #children: ChildProcess[] = [];

  /** A Node child whose stdout the bench reads and whose stderr shows in the bench's own; stdin only if asked. */
  spawnNode(args: string[], stdin: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
    const child = spawn(process.execPath, args, { stdio: [stdin, 'pipe', 'inherit'] });
    this.#children.push(child);
    return child;
  }

  /**
   * ringlb running `config` as the CLI does. A bench runs it at log level warn (no access log), so
   * there is no `listener ready` line to read: the config binds `listenPorts` (from freePort) and
   * this waits until each of them accepts a connection. The access log has its own switch since
   * issue 9 (`log.level` no longer silences it): at level warn it is turned off here too, when the
   * build (a `--baseline` may be older) knows `log.access`.
   */
  async startRinglb(config: object, listenPorts: readonly number[], cliPath: string = CLI_PATH): Promise<ChildProcess> {
    const log = (config as { log?: { level?: string; access?: unknown } }).log;
    const quiet = log?.level === 'warn' && log.access === undefined && this.#acceptsAccessLog(cliPath);
    const effective = quiet ? { ...config, log: { ...log, access: { enabled: false } } } : config;
    return await this.startProcess(process.execPath, [cliPath, 'run', '--config'], `ringlb-bench-${this.#children.length}.json`, JSON.stringify(effective), listenPorts);
  }

  readonly #accessLogKnown = new Map<string, boolean>();

  /** Whether the build at `cliPath` accepts `log.access` (asked of its `ringlb check` once). */
  #acceptsAccessLog(cliPath: string): boolean {
    let known = this.#accessLogKnown.get(cliPath);
    if (known === undefined) {
      const file = join(this.#dir, 'access-log-check.json');
      writeFileSync(
        file,
        JSON.stringify({
          log: { access: { enabled: false } },
          listeners: [{ name: 'probe', bind: '127.0.0.1:1', pool: 'probe' }],
          pools: [{ name: 'probe', backends: [{ address: '127.0.0.1:2' }] }],
        }),
      );
      try {
        execFileSync(process.execPath, [cliPath, 'check', '--config', file], { stdio: 'ignore', timeout: 30_000 });
        known = true;
      } catch {
        known = false;
      }
      this.#accessLogKnown.set(cliPath, known);
    }
    return known;
  }

  /**
   * `command ...args <config file>` with `configText` written to that file in the scratch directory,
   * once each of `listenPorts` accepts a connection (a proxy started without a ready line to read).
   */
  async startProcess(command: string, args: string[], configName: string, configText: string, listenPorts: readonly number[]): Promise<ChildProcess> {
    const configFile = join(this.#dir, configName);
    writeFileSync(configFile, configText);
    const child = this.spawnProcess(command, [...args, configFile]);
    await this.waitListening(command, listenPorts, child);
    return child;
  }

  /** The run's scratch directory (removed by `close()`), for a proxy's pid file or prefix. */
  get scratchDirectory(): string {
    return this.#dir;
  }

  /** Any command (a backend such as `iperf3 -s`), its stderr shown in the bench's own unless `stderr` says 'ignore'. */
  spawnProcess(command: string, args: string[], stderr: 'inherit' | 'ignore' = 'inherit'): ChildProcess {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', stderr] });
    this.#children.push(child);
    return child;
  }

  /** Resolves once each of `ports` accepts a connection; rejects if `child` exits first or after 10 s. */
  async waitListening(what: string, ports: readonly number[], child?: ChildProcess): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (const port of ports) {
      for (;;) {
        if (child !== undefined && child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode})`);
        try {
          (await openSocket(port)).destroy();
          break;
        } catch {
          if (Date.now() > deadline) throw new Error(`${what} did not start listening within 10 s`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    }
  }

  /**
   * Kills every child and every descendant of it: nginx's workers outlive a SIGKILLed master and
   * would keep listening, so the whole tree is read first and then killed.
   */
  close(): void {
    const pids = this.#children.flatMap((child) => (child.pid === undefined || child.exitCode !== null ? [] : processTree(child.pid)));
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** The first line of the child's stdout that parses as JSON (a child prints its ports so). */
export async function firstJsonLine<T>(child: ChildProcess): Promise<T> {
  child.stdout!.setEncoding('utf8');
  let buffer = '';
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not report its ports within 10 s')), START_TIMEOUT_MS);
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
        clearTimeout(timer);
        resolve(value as T);
      }
    });
  });
}

/** A free loopback port: bound to 0, read, closed. (Racy in theory; fine for a one-machine bench.) */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  server.close();
  await once(server, 'close');
  return port;
}

export async function openSocket(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  return socket;
}

/** `promise`, or a rejection naming `what` after SCENARIO_TIMEOUT_MS. */
export function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} exceeded ${SCENARIO_TIMEOUT_MS} ms`)), SCENARIO_TIMEOUT_MS);
    }),
  ]);
}

/**
 * Connections per second: connect, send `first` (one byte by default), wait for the echo, close;
 * CONNECT_COUNT connections, CONNECT_CONCURRENCY at a time.
 */
export async function connectRate(port: number, first: string | Buffer = 'x'): Promise<number> {
  let started = 0;
  const one = async (): Promise<void> => {
    const socket = await openSocket(port);
    socket.write(first);
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

/**
 * `measure` on every target: one warm-up round (JIT, socket buffers, TIME_WAIT steady state), not
 * counted, then `rounds` rounds, each in a rotated order so that drift and position in the round
 * hit every target alike. Returns each target's results in round order.
 */
export async function measureRounds<Target, Result>(
  targets: ReadonlyArray<readonly [string, Target]>,
  rounds: number,
  measure: (name: string, target: Target) => Promise<Result>,
): Promise<Map<string, Result[]>> {
  const results = new Map<string, Result[]>(targets.map(([name]) => [name, []]));
  for (const [name, target] of targets) await measure(name, target);
  for (let round = 0; round < rounds; round += 1) {
    for (let i = 0; i < targets.length; i += 1) {
      const [name, target] = targets[(i + round) % targets.length]!;
      results.get(name)!.push(await measure(name, target));
    }
  }
  return results;
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux almost always). */
const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/**
 * CPU time (user + system, all threads) a process has used so far, in µs, from /proc/<pid>/stat.
 * Resolution is one clock tick (10 ms at USER_HZ 100): scenarios measured with it must run long
 * enough that a tick is noise.
 */
export function processCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces: state is field 3,
  // utime field 14, stime field 15 (proc(5)).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / CLOCK_TICKS_PER_SECOND;
}

/** The user part of `processCpuMicros` (utime only), in µs. */
export function processUserMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) * 1_000_000) / CLOCK_TICKS_PER_SECOND;
}

/** `pid` and all its descendants (every thread's children, from /proc), parents first; [] if it is gone. */
export function processTree(pid: number): number[] {
  const tree: number[] = [];
  const pending = [pid];
  while (pending.length > 0) {
    const current = pending.shift()!;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${current}/task`);
    } catch {
      continue; // exited meanwhile
    }
    tree.push(current);
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${current}/task/${task}/children`, 'utf8').trim();
        if (children !== '') pending.push(...children.split(' ').map(Number));
      } catch {
        // The thread exited meanwhile.
      }
    }
  }
  return tree;
}

/** `--baseline <dist/src/cli.js of another build>`: also run that ringlb, side by side (undefined without it). */
export function baselineFromArgs(): string | undefined {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, baseline: { type: 'string' } } });
  return values.baseline;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Lines of JSON from a child's stdout, one at a time, in order (non-JSON lines skipped). */
export class JsonLines {
  readonly #waiting: Array<(value: unknown) => void> = [];
  readonly #lines: unknown[] = [];
  #buffer = '';

  constructor(stream: NodeJS.ReadableStream) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let newline: number;
      while ((newline = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch {
          continue;
        }
        const waiter = this.#waiting.shift();
        if (waiter !== undefined) waiter(value);
        else this.#lines.push(value);
      }
    });
  }

  /** The next line, or a rejection naming `what` after SCENARIO_TIMEOUT_MS. */
  next<T = unknown>(what: string): Promise<T> {
    if (this.#lines.length > 0) return Promise.resolve(this.#lines.shift() as T);
    return withTimeout(new Promise<T>((resolve) => this.#waiting.push(resolve as (value: unknown) => void)), what);
  }

  /** The next line, or undefined when none comes within `ms` (the wait is then withdrawn). */
  nextWithin(ms: number): Promise<unknown> {
    if (this.#lines.length > 0) return Promise.resolve(this.#lines.shift());
    return new Promise((resolve) => {
      const waiter = (value: unknown): void => {
        clearTimeout(timer);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        resolve(undefined);
      }, ms);
      this.#waiting.push(waiter);
    });
  }

  /** Every line received so far and not yet taken by next(). */
  drain(): unknown[] {
    return this.#lines.splice(0);
  }
}

/**
 * HAProxy's config for the side-by-side runs: 2 threads (`nbthread 2`, as in issue 8's comparison),
 * mode tcp, one listener per entry of `listeners` (name → [listen port, backend port]).
 */
export function haproxyTcpConfig(listeners: Readonly<Record<string, readonly [number, number]>>): string {
  const lines = ['global', '  nbthread 2', 'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 60s', '  timeout server 60s'];
  for (const [name, [listen, backend]] of Object.entries(listeners)) {
    lines.push(`listen ${name}`, `  bind 127.0.0.1:${listen}`, `  server ${name} 127.0.0.1:${backend}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The HTTP backend wrk talks to, in its own process: a 13-byte answer, keep-alive unless the client
 * asked to close. `http.Server`'s default keepAliveTimeout (5 s) outlives a scenario.
 */
export const HTTP_BACKEND_SOURCE = `
const http = require('node:http');
const body = Buffer.from('hello, ringlb');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ http: server.address().port }) + '\\n'));
`;

/** Stdout of `command`, failing the run on a non-zero exit or after `timeoutMs` (the child is killed). */
export function runTool(command: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} exceeded ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.trim() || stdout.slice(-500)}`));
    });
  });
}
