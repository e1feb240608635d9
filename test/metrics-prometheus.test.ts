/**
 * ringlb's `/metrics` read by a real Prometheus (issue 9 "Checked by a real Prometheus"): Debian's
 * `prometheus` as a child process on a free loopback port with a temporary TSDB, scraping ringlb's
 * admin server every second with the bearer token. The test drives a known number of connections
 * and asks Prometheus' HTTP API until `sum(ringlb_backend_connections_total)` equals it; then it
 * kills a backend and asks until that backend's `ringlb_backend_up` reads 0, within the health
 * check's bounds plus two scrape intervals.
 *
 * Data plane in two worker threads where this Node has reusePort (Node 24), else in one thread.
 * Waits are on Prometheus' own readiness line and on its query API (polled, bounded).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { get } from 'node:http';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import { Ringlb } from '../src/runtime.js';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { openClient, readToEnd } from './helpers/clients.js';
import { LogCapture } from './helpers/log-capture.js';
import { MULTI_WORKER } from './helpers/workers.js';

const TOKEN = 'prometheus-scrapes-with-this-token-42';
const SCRAPE_INTERVAL_MS = 1000;
/** Health check of the pool: a dead backend is down after FALL failed checks, each at most INTERVAL + TIMEOUT apart. */
const CHECK = { type: 'tcp', intervalMs: 250, timeoutMs: 250, fall: 2, rise: 1 } as const;
const CHECK_BOUND_MS = CHECK.fall * (CHECK.intervalMs + CHECK.timeoutMs);
/**
 * Prometheus sees a flip at its next scrape (≤ 1 interval) and answers queries from its head at
 * once; one more interval for a scrape in flight when the flip happened, and 3 s for this shared
 * 2-core machine (four suites build and test at once).
 */
const UP_BOUND_MS = CHECK_BOUND_MS + 2 * SCRAPE_INTERVAL_MS + 3000;

interface PrometheusVector {
  readonly status: string;
  readonly data: { readonly resultType: string; readonly result: readonly { readonly metric: Record<string, string>; readonly value: [number, string] }[] };
}

class Prometheus {
  readonly #child: ChildProcess;
  readonly #base: string;
  #output = '';

  constructor(child: ChildProcess, port: number) {
    this.#child = child;
    this.#base = `http://127.0.0.1:${port}`;
    child.stdout!.on('data', (chunk: Buffer) => (this.#output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.#output += chunk.toString()));
  }

  get output(): string {
    return this.#output;
  }

  /** Resolves on Prometheus' own "ready" log line; rejects when it exits first or after `timeoutMs`. */
  async ready(timeoutMs = 30_000): Promise<void> {
    const exited = once(this.#child, 'exit').then(([code]) => {
      throw new Error(`prometheus exited (${String(code)}) before it was ready:\n${this.#output}`);
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`prometheus not ready within ${timeoutMs} ms:\n${this.#output}`)), timeoutMs);
    });
    const readyLine = new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.#output.includes('Server is ready to receive web requests')) {
          this.#child.stderr!.removeListener('data', check);
          resolve();
        }
      };
      this.#child.stderr!.on('data', check);
      check();
    });
    try {
      await Promise.race([readyLine, exited, late]);
    } finally {
      clearTimeout(timer);
      exited.catch(() => undefined);
    }
  }

  async query(expression: string): Promise<PrometheusVector> {
    const response = await getJson(`${this.#base}/api/v1/query?query=${encodeURIComponent(expression)}`);
    const body = response.body as PrometheusVector;
    if (response.status !== 200 || body.status !== 'success') throw new Error(`query ${expression}: ${response.status} ${JSON.stringify(body)}`);
    return body;
  }

  async targets(): Promise<unknown> {
    return (await getJson(`${this.#base}/api/v1/targets`)).body;
  }

  /** Re-asks (every 200 ms) until the query's single value equals `expected`; returns ms waited. */
  async until(expression: string, expected: string, timeoutMs: number): Promise<number> {
    const started = performance.now();
    let last = 'no result';
    for (;;) {
      const result = (await this.query(expression)).data.result;
      last = JSON.stringify(result);
      if (result.length === 1 && result[0]!.value[1] === expected) return performance.now() - started;
      if (performance.now() - started > timeoutMs) {
        throw new Error(`${expression} was not ${expected} within ${timeoutMs} ms (last: ${last}); targets: ${JSON.stringify(await this.targets())}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = once(this.#child, 'exit');
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** GET a JSON document on a connection of its own (closed with the response: nothing outlives the test). */
function getJson(url: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: 10_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        try {
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch (error) {
          reject(error);
        }
      });
      response.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/** `prometheus` on a free loopback port scraping `target` every second with the token; stopped and its files removed after the test. */
async function startPrometheus(t: TestContext, target: string): Promise<Prometheus> {
  const directory = mkdtempSync(join(tmpdir(), 'ringlb-prometheus-'));
  const configFile = join(directory, 'prometheus.yml');
  writeFileSync(
    configFile,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 900ms',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: ringlb',
      '    authorization:',
      `      credentials: ${TOKEN}`,
      '    static_configs:',
      `      - targets: ['${target}']`,
      '',
    ].join('\n'),
  );
  // A port that was free a moment ago (Prometheus has no port 0); a clash fails start-up loudly.
  const port = await closedPort();
  const child = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(directory, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=info',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const prometheus = new Prometheus(child, port);
  t.after(async () => {
    await prometheus.stop();
    rmSync(directory, { recursive: true, force: true });
  });
  await prometheus.ready();
  return prometheus;
}

test('a real Prometheus scrapes /metrics with the bearer token: connection totals match, a killed backend reads up 0 within the check bounds', { timeout: 120_000 }, async (t) => {
  const workers = MULTI_WORKER ? 2 : 1;
  const backends: NamedBackend[] = await Promise.all(['a', 'b', 'c'].map((name) => startNamedBackend(name)));
  t.after(() => Promise.all(backends.map((backend) => backend.close())));
  const validated = validateConfig({
    workers,
    log: { level: 'warn' },
    admin: { bind: '127.0.0.1:0', token: TOKEN },
    listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
    pools: [{ name: 'web', balance: 'round_robin', healthCheck: CHECK, backends: backends.map((backend) => ({ id: backend.name, address: backend.address })) }],
  });
  if (!validated.ok) assert.fail(JSON.stringify(validated.issues));
  const ringlb = new Ringlb({ logger: new LogCapture().logger('warn') });
  await ringlb.start(validated.config);
  t.after(() => ringlb.close());
  const port = Number(ringlb.listenerAddress('web')!.split(':').pop());

  const prometheus = await startPrometheus(t, ringlb.adminAddress()!);

  const CONNECTIONS = 30;
  for (let wave = 0; wave < CONNECTIONS / 10; wave++) {
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const socket = await openClient({ port });
        try {
          const reply = readToEnd(socket);
          socket.end('ping');
          assert.equal((await reply).length, 2 + 4);
        } finally {
          socket.destroy();
        }
      }),
    );
  }
  await prometheus.until('sum(ringlb_backend_connections_total)', String(CONNECTIONS), 30_000);
  await prometheus.until('sum(ringlb_listener_connections_total{outcome="ok"})', String(CONNECTIONS), 10_000);
  await prometheus.until('sum(ringlb_backend_up)', '3', 10_000);
  // The scrape itself was healthy and authenticated.
  await prometheus.until('up{job="ringlb"}', '1', 10_000);

  const killed = backends[1]!;
  await killed.close();
  const waitedMs = await prometheus.until(`ringlb_backend_up{pool="web",backend="${killed.name}"}`, '0', 30_000);
  assert.ok(waitedMs <= UP_BOUND_MS, `up read 0 after ${Math.round(waitedMs)} ms; bound ${UP_BOUND_MS} ms (checks ${CHECK_BOUND_MS} ms + 2 scrapes + 3 s)`);
  // The others stay up, and the failed checks are counted.
  assert.equal((await prometheus.query('sum(ringlb_backend_up)')).data.result[0]!.value[1], '2');
  const failures = await prometheus.query(`ringlb_backend_health_check_failures_total{backend="${killed.name}"}`);
  assert.ok(Number(failures.data.result[0]!.value[1]) >= CHECK.fall, JSON.stringify(failures.data.result));
});
