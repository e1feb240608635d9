/**
 * `GET /metrics` end to end (issue 9 "Metrics"): an in-process `Ringlb` with its admin server,
 * real loopback echo backends and clients, and the scrape read over HTTP. Counts are exact: every
 * connection, byte and failure the test makes is in the totals, in one thread (`workers: 1`) and
 * in two worker threads (Node ≥ 22.12; skipped with the reason elsewhere). `promtool check
 * metrics` (Debian's prometheus package) checks a real scrape.
 *
 * Waits are on the clients' own sockets and on the scrape itself (re-read until a worker thread's
 * count for a connection the client saw close has landed, bounded), never on a sleep.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import { Ringlb } from '../src/runtime.js';
import { SlotCell } from '../src/shared-state/traffic-counters.js';
import { closedPort, startNamedBackend, startStalledBackend, type NamedBackend } from './helpers/backends.js';
import { closed, openClient, readLine, readToEnd } from './helpers/clients.js';
import { LogCapture } from './helpers/log-capture.js';
import { scrape, scrapeText, scrapeUntil, type Scrape } from './helpers/metrics.js';
import { MULTI_WORKER, NO_REUSE_PORT } from './helpers/workers.js';

const TOKEN = 'metrics-test-token-0123456789';

interface Running {
  readonly ringlb: Ringlb;
  readonly admin: string;
  port(listener: string): number;
}

async function startRuntime(t: TestContext, raw: object, options: { workers: number; trafficFlushMs?: number; token?: string | null }): Promise<Running> {
  const token = options.token === undefined ? TOKEN : options.token;
  const validated = validateConfig({ log: { level: 'warn' }, ...raw, workers: options.workers, admin: { bind: '127.0.0.1:0', ...(token === null ? {} : { token }) } });
  if (!validated.ok) assert.fail(JSON.stringify(validated.issues));
  const ringlb = new Ringlb({ logger: new LogCapture().logger('warn'), trafficFlushMs: options.trafficFlushMs });
  await ringlb.start(validated.config);
  t.after(() => ringlb.close());
  return {
    ringlb,
    admin: ringlb.adminAddress()!,
    port: (listener) => Number(ringlb.listenerAddress(listener)!.split(':').pop()),
  };
}

async function backends(t: TestContext, names: readonly string[], greet = true): Promise<NamedBackend[]> {
  const started = await Promise.all(names.map((name) => startNamedBackend(name, { greet })));
  t.after(() => Promise.all(started.map((backend) => backend.close())));
  return started;
}

/** One connection: send `payload`, half-close, read everything until the proxy's FIN. */
async function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  const socket = await openClient({ port });
  try {
    const reply = readToEnd(socket);
    socket.end(payload);
    return await reply;
  } finally {
    socket.destroy();
  }
}

/** A connection the proxy cannot serve: it is closed without data. */
async function refusedByProxy(port: number): Promise<void> {
  const socket = await openClient({ port });
  await closed(socket);
}

function modes(): { name: string; workers: number; skip: string | false }[] {
  return [
    { name: 'one thread (workers: 1)', workers: 1, skip: false },
    { name: 'two worker threads', workers: 2, skip: MULTI_WORKER ? false : NO_REUSE_PORT },
  ];
}

for (const mode of modes()) {
  describe(`/metrics counts exactly, ${mode.name}`, () => {
    test('connections, outcomes, bytes both ways, connect failures by reason, retries and the connect-time histogram', { skip: mode.skip, timeout: 60_000 }, async (t) => {
      const [a, b, c] = await backends(t, ['a', 'b', 'c']);
      const dead = await closedPort();
      const deadToo = await closedPort();
      const running = await startRuntime(
        t,
        {
          listeners: [
            { name: 'web', bind: '127.0.0.1:0', pool: 'web' },
            { name: 'down', bind: '127.0.0.1:0', pool: 'down' },
            { name: 'retry', bind: '127.0.0.1:0', pool: 'retry' },
          ],
          pools: [
            { name: 'web', balance: 'round_robin', retries: 0, backends: [{ id: 'a', address: a!.address }, { id: 'b', address: b!.address }] },
            // No outlier detection: every connection tries the refused port, so failures are exact.
            { name: 'down', retries: 0, outlierDetection: { consecutiveFailures: 0 }, backends: [{ id: 'gone', address: `127.0.0.1:${dead}` }] },
            {
              name: 'retry',
              balance: 'round_robin',
              retries: 1,
              outlierDetection: { consecutiveFailures: 0 },
              backends: [{ id: 'refusing', address: `127.0.0.1:${deadToo}` }, { id: 'c', address: c!.address }],
            },
          ],
        },
        { workers: mode.workers },
      );
      const CONNECTIONS = 24;
      const PAYLOAD = 3000;
      const payload = Buffer.alloc(PAYLOAD, 0x61);
      // Sequential waves of 8 at once: both workers get some (the kernel hashes each 4-tuple).
      for (let wave = 0; wave < CONNECTIONS / 8; wave++) {
        const replies = await Promise.all(Array.from({ length: 8 }, () => roundTrip(running.port('web'), payload)));
        // Greeting `a\n` or `b\n`, then the echo.
        for (const reply of replies) assert.equal(reply.length, 2 + PAYLOAD);
      }
      const FAILED = 5;
      for (let i = 0; i < FAILED; i++) await refusedByProxy(running.port('down'));
      const RETRIED = 6;
      for (let i = 0; i < RETRIED; i++) assert.equal((await roundTrip(running.port('retry'), payload)).length, 2 + PAYLOAD);

      const metrics = await scrapeUntil(
        running.admin,
        (s) =>
          s.value('ringlb_listener_connections_total', { listener: 'web', outcome: 'ok' }) === CONNECTIONS &&
          s.value('ringlb_listener_connections_total', { listener: 'down', outcome: 'connect_failed' }) === FAILED &&
          s.value('ringlb_listener_connections_total', { listener: 'retry', outcome: 'ok' }) === RETRIED,
        'every connection ended and counted',
        { token: TOKEN },
      );
      const web = { pool: 'web' };
      assert.equal(metrics.sum('ringlb_backend_connections_total', web), CONNECTIONS);
      // Round robin over two: each gets half (per worker, so the sum is exact only in total).
      assert.equal(metrics.select('ringlb_backend_connections_total', web).length, 2);
      assert.equal(metrics.sum('ringlb_listener_connections_total', { listener: 'web' }), CONNECTIONS, 'no other outcome');
      assert.equal(metrics.value('ringlb_listener_active_connections', { listener: 'web' }), 0);
      assert.equal(metrics.sum('ringlb_backend_active_connections'), 0);
      assert.equal(metrics.sum('ringlb_backend_bytes_total', { ...web, direction: 'to_backend' }), CONNECTIONS * PAYLOAD);
      assert.equal(metrics.sum('ringlb_backend_bytes_total', { ...web, direction: 'to_client' }), CONNECTIONS * (2 + PAYLOAD));
      for (const id of ['a', 'b']) {
        const labels = { pool: 'web', backend: id };
        const connections = metrics.value('ringlb_backend_connections_total', labels)!;
        assert.ok(connections > 0, `${id} served some`);
        assert.equal(metrics.value('ringlb_backend_connect_seconds_count', labels), connections);
        assert.equal(metrics.value('ringlb_backend_connect_seconds_bucket', { ...labels, le: '+Inf' }), connections);
        assert.ok(metrics.value('ringlb_backend_connect_seconds_sum', labels)! > 0);
        // Buckets are cumulative.
        const buckets = metrics.select('ringlb_backend_connect_seconds_bucket', labels).map((sample) => sample.value);
        assert.deepEqual(buckets, [...buckets].sort((x, y) => x - y));
        assert.equal(metrics.value('ringlb_backend_up', labels), 1);
        assert.equal(metrics.value('ringlb_backend_state', { ...labels, state: 'active' }), 1);
        assert.equal(metrics.value('ringlb_backend_weight', labels), 1);
        // The same figures through the TrafficView the status API reads.
        const view = running.ringlb.traffic.backend('web', id)!;
        assert.equal(view.connections, connections);
        assert.equal(view.connectSeconds.count, connections);
      }
      const gone = { pool: 'down', backend: 'gone' };
      assert.equal(metrics.value('ringlb_backend_connect_failures_total', { ...gone, reason: 'refused' }), FAILED);
      assert.equal(metrics.value('ringlb_backend_connect_failures_total', { ...gone, reason: 'timeout' }), 0);
      assert.equal(metrics.value('ringlb_backend_connect_failures_total', { ...gone, reason: 'error' }), 0);
      assert.equal(metrics.value('ringlb_backend_connections_total', gone), 0);
      assert.equal(metrics.value('ringlb_backend_connect_seconds_count', gone), 0);
      assert.equal(metrics.value('ringlb_pool_retries_total', { pool: 'down' }), 0);
      // Every connection that met the refusing backend first tried `c` next: one retry per refusal.
      const refusals = metrics.value('ringlb_backend_connect_failures_total', { pool: 'retry', backend: 'refusing', reason: 'refused' })!;
      assert.ok(refusals > 0, 'round robin sent some first attempts to the refusing backend');
      assert.equal(metrics.value('ringlb_pool_retries_total', { pool: 'retry' }), refusals);
      assert.equal(metrics.value('ringlb_backend_connections_total', { pool: 'retry', backend: 'c' }), RETRIED);
      assert.equal(metrics.value('ringlb_pool_retries_total', web), 0);
      if (mode.workers > 1) {
        // The totals are sums over both threads' rows, and both carried connections.
        const pool = running.ringlb.pool('web')!;
        const perWorker = [0, 1].map((row) => ['a', 'b'].reduce((sum, id) => sum + pool.counters.segment.slotCellOfRow(row, pool.slotOf(id), SlotCell.CONNECTIONS), 0));
        assert.ok(perWorker.every((count) => count > 0), `connections per worker: ${JSON.stringify(perWorker)}`);
        assert.equal(perWorker[0]! + perWorker[1]!, CONNECTIONS);
      }
      // /v1/status reads the same totals (runtime.traffic).
      const status = (await adminJson(running.admin, '/v1/status')) as {
        listeners: { name: string; connections: Record<string, number> }[];
        pools: { name: string; backends: { id: string; totalConnections: number }[] }[];
      };
      for (const backend of status.pools.find((pool) => pool.name === 'web')!.backends) {
        assert.equal(backend.totalConnections, metrics.value('ringlb_backend_connections_total', { pool: 'web', backend: backend.id }), backend.id);
      }
      assert.equal(status.listeners.find((listener) => listener.name === 'web')!.connections['ok'], CONNECTIONS);
      assert.deepEqual(running.ringlb.traffic.listener('down'), {
        active: 0,
        connections: {
          ok: 0,
          no_backend: 0,
          connect_failed: FAILED,
          idle_timeout: 0,
          client_error: 0,
          upstream_error: 0,
          rejected_max_connections: 0,
          rejected_no_fds: 0,
          drained: 0,
          response_timeout: 0,
          client_fin_timeout: 0,
          server_fin_timeout: 0,
          queue_full: 0,
          queue_timeout: 0,
          denied: 0,
          rejected_source_limit: 0,
          rejected_source_rate: 0,
          proxy_untrusted: 0,
          proxy_header_invalid: 0,
          proxy_header_timeout: 0,
        },
      });
    });

    test("a long-lived connection's bytes show while it runs (flushed every trafficFlushMs)", { skip: mode.skip, timeout: 30_000 }, async (t) => {
      const [a] = await backends(t, ['a'], false);
      const running = await startRuntime(
        t,
        { listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }], pools: [{ name: 'web', backends: [{ id: 'a', address: a!.address }] }] },
        { workers: mode.workers, trafficFlushMs: 100 },
      );
      const socket: Socket = await openClient({ port: running.port('web') });
      t.after(() => socket.destroy());
      const echoed = new Promise<void>((resolve) => {
        let received = 0;
        socket.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received === 5000) resolve();
        });
      });
      socket.write(Buffer.alloc(5000, 0x62));
      await echoed;
      const labels = { pool: 'web', backend: 'a' };
      const metrics = await scrapeUntil(
        running.admin,
        (s) => s.value('ringlb_backend_bytes_total', { ...labels, direction: 'to_client' }) === 5000,
        'the open connection flushed its bytes',
        { token: TOKEN },
      );
      assert.equal(metrics.value('ringlb_backend_bytes_total', { ...labels, direction: 'to_backend' }), 5000);
      assert.equal(metrics.value('ringlb_backend_active_connections', labels), 1, 'still open');
      assert.equal(metrics.value('ringlb_listener_active_connections', { listener: 'web' }), 1);
      assert.equal(metrics.sum('ringlb_listener_connections_total', { listener: 'web' }), 0, 'not ended yet');
      assert.equal(socket.closed, false);
      // More bytes on the same connection, then its close: counted once each.
      socket.write(Buffer.alloc(1000, 0x63));
      socket.end();
      await closed(socket);
      const after = await scrapeUntil(running.admin, (s) => s.value('ringlb_listener_connections_total', { listener: 'web', outcome: 'ok' }) === 1, 'the connection ended', {
        token: TOKEN,
      });
      assert.equal(after.value('ringlb_backend_bytes_total', { ...labels, direction: 'to_backend' }), 6000);
      assert.equal(after.value('ringlb_backend_bytes_total', { ...labels, direction: 'to_client' }), 6000);
    });
  });
}

describe('/metrics when a worker thread dies', () => {
  test("a dead worker's finished counts stay in the totals; its open connections leave the active gauges", { skip: MULTI_WORKER ? false : NO_REUSE_PORT, timeout: 60_000 }, async (t) => {
    const [a] = await backends(t, ['a']);
    const raw = { listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }], pools: [{ name: 'web', backends: [{ id: 'a', address: a!.address }] }] };
    const validated = validateConfig({ ...raw, workers: 2, log: { level: 'warn' }, admin: { bind: '127.0.0.1:0', token: TOKEN } });
    if (!validated.ok) assert.fail(JSON.stringify(validated.issues));
    const ringlb = new Ringlb({ logger: new LogCapture().logger('warn'), testHooks: true });
    await ringlb.start(validated.config);
    t.after(() => ringlb.close());
    const admin = ringlb.adminAddress()!;
    const port = Number(ringlb.listenerAddress('web')!.split(':').pop());
    const FINISHED = 16;
    await Promise.all(Array.from({ length: FINISHED }, () => roundTrip(port, Buffer.from('done'))));
    // Held open: the kernel spreads them over both workers.
    const held = await Promise.all(Array.from({ length: 12 }, () => openClient({ port })));
    t.after(() => held.forEach((socket) => socket.destroy()));
    await Promise.all(held.map((socket) => readLine(socket)));
    const labels = { pool: 'web', backend: 'a' };
    const before = await scrapeUntil(admin, (s) => s.value('ringlb_listener_connections_total', { listener: 'web', outcome: 'ok' }) === FINISHED, 'finished connections counted', { token: TOKEN });
    assert.equal(before.value('ringlb_backend_connections_total', labels), FINISHED + held.length);
    assert.equal(before.value('ringlb_backend_active_connections', labels), held.length);
    const pool = ringlb.pool('web')!;
    const onWorker0 = pool.counters.segment.slotCellOfRow(0, pool.slotOf('a'), SlotCell.CONNECTIONS);
    assert.ok(onWorker0 > 0, 'worker 0 carried some connections');

    assert.equal(await ringlb.crashWorkerForTest(0), 0);
    const after = await scrape(admin, TOKEN);
    // Its row stays: nothing it counted leaves the totals (counters are monotonic).
    assert.equal(after.value('ringlb_backend_connections_total', labels), FINISHED + held.length);
    assert.equal(after.value('ringlb_listener_connections_total', { listener: 'web', outcome: 'ok' }), FINISHED);
    // Its open connections died with it: the ledger took them off.
    const lost = held.length - ringlb.stats()['web']!.active;
    assert.ok(lost > 0, 'worker 0 held some of the open connections');
    assert.equal(after.value('ringlb_backend_active_connections', labels), held.length - lost);
    assert.equal(after.value('ringlb_listener_active_connections', { listener: 'web' }), held.length - lost);
    // The replacement adds on to the same row.
    await Promise.all(Array.from({ length: 4 }, () => roundTrip(port, Buffer.from('more'))));
    await scrapeUntil(admin, (s) => s.value('ringlb_listener_connections_total', { listener: 'web', outcome: 'ok' }) === FINISHED + 4, 'new connections counted', { token: TOKEN });
    assert.equal((await scrape(admin, TOKEN)).value('ringlb_backend_connections_total', labels), FINISHED + held.length + 4);
  });
});

describe('/metrics over the admin server', () => {
  test('needs the bearer token when one is configured, and serves the Prometheus text format', async (t) => {
    const [a] = await backends(t, ['a']);
    const running = await startRuntime(t, { listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }], pools: [{ name: 'web', backends: [{ address: a!.address }] }] }, { workers: 1 });
    await assert.rejects(scrapeText(running.admin, null), /401/);
    await assert.rejects(scrapeText(running.admin, 'wrong-token'), /401/);
    const { text, contentType } = await scrapeText(running.admin, TOKEN);
    assert.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8');
    for (const family of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'ringlb_config_reloads_total']) {
      assert.match(text, new RegExp(`^# TYPE ${family} `, 'm'), family);
    }
  });

  test('a connect that times out is counted with reason timeout', { timeout: 30_000 }, async (t) => {
    const stalled = await startStalledBackend('slow');
    t.after(() => stalled.close());
    const running = await startRuntime(
      t,
      {
        listeners: [{ name: 'slow', bind: '127.0.0.1:0', pool: 'slow' }],
        pools: [{ name: 'slow', connectTimeoutMs: 200, retries: 0, outlierDetection: { consecutiveFailures: 0 }, backends: [{ id: 'stalled', address: stalled.address }] }],
      },
      { workers: 1 },
    );
    for (let i = 0; i < 2; i++) await refusedByProxy(running.port('slow'));
    const metrics = await scrapeUntil(running.admin, (s) => s.value('ringlb_listener_connections_total', { listener: 'slow', outcome: 'connect_failed' }) === 2, 'both timed out', {
      token: TOKEN,
    });
    const labels = { pool: 'slow', backend: 'stalled' };
    assert.equal(metrics.value('ringlb_backend_connect_failures_total', { ...labels, reason: 'timeout' }), 2);
    assert.equal(metrics.value('ringlb_backend_connect_failures_total', { ...labels, reason: 'refused' }), 0);
    assert.equal(metrics.value('ringlb_backend_connections_total', labels), 0);
  });

  test('promtool check metrics accepts a real scrape (traffic, failures, a reload, event-loop delay of every thread)', { timeout: 60_000 }, async (t) => {
    const workers = MULTI_WORKER ? 2 : 1;
    const [a, b] = await backends(t, ['a', 'b']);
    const dead = await closedPort();
    const raw = {
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', balance: 'round_robin', retries: 1, backends: [{ id: 'a "quoted" id', address: a!.address }, { id: 'dead', address: `127.0.0.1:${dead}` }, { id: 'b', address: b!.address }] }],
    };
    const running = await startRuntime(t, raw, { workers });
    for (let i = 0; i < 6; i++) await roundTrip(running.port('web'), Buffer.from('hello'));
    // One refused reload (its validation failed) and one applied.
    running.ringlb.refuseReload(['$.pools[0].balance: not a policy']);
    const next = validateConfig({ ...raw, workers, log: { level: 'warn' }, admin: { bind: '127.0.0.1:0', token: TOKEN } });
    if (!next.ok) assert.fail(JSON.stringify(next.issues));
    const reloaded = await running.ringlb.reload(next.config);
    assert.equal(reloaded.ok, true);
    // Every thread's loop delay appears after its first window.
    const metrics = await scrapeUntil(running.admin, (s) => s.select('ringlb_event_loop_delay_p99_seconds').length === 1 + (workers > 1 ? workers : 0), 'a loop-delay window of every thread', {
      token: TOKEN,
      timeoutMs: 15_000,
    });
    assert.equal(metrics.value('ringlb_config_reloads_total', { result: 'applied' }), 1);
    assert.equal(metrics.value('ringlb_config_reloads_total', { result: 'refused' }), 1);
    assert.deepEqual(
      metrics.select('ringlb_event_loop_delay_max_seconds').map((sample) => sample.labels['thread']),
      workers > 1 ? ['main', 'worker-0', 'worker-1'] : ['main'],
    );
    // The id with quotes comes back as it was (escaped in the text, parsed back).
    assert.ok(metrics.value('ringlb_backend_connections_total', { pool: 'web', backend: 'a "quoted" id' })! > 0);
    const result = await promtool(['check', 'metrics'], metrics.text);
    assert.equal(result.code, 0, `promtool check metrics failed:\n${result.output}`);
  });

});

/** GET an admin JSON route with the token, on a connection of its own. */
function adminJson(address: string, path: string): Promise<unknown> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)), path, agent: false, headers: { authorization: `Bearer ${TOKEN}` } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (response.statusCode !== 200) reject(new Error(`GET ${path}: ${response.statusCode} ${text}`));
        else resolve(JSON.parse(text));
      });
      response.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A real `promtool` child process reading `input` on stdin. */
function promtool(args: readonly string[], input: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(input);
  });
}

for (const mode of modes()) {
  describe(`/metrics label sets, ${mode.name}`, () => {
    test('a removed backend leaves the output once drained; a new backend in its reused slot starts at zero; reloads never reset a kept one', { skip: mode.skip, timeout: 60_000 }, async (t) => {
      const [a, b, c] = await backends(t, ['a', 'b', 'c']);
      const config = (ids: readonly string[], balance = 'round_robin'): object => ({
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
        pools: [{ name: 'web', balance, backends: ids.map((id) => ({ id, address: { a, b, c }[id]!.address })) }],
      });
      const running = await startRuntime(t, config(['a', 'b']), { workers: mode.workers });
      const reload = async (raw: object): Promise<void> => {
        const next = validateConfig({ ...raw, workers: mode.workers, log: { level: 'warn' }, admin: { bind: '127.0.0.1:0', token: TOKEN } });
        if (!next.ok) assert.fail(JSON.stringify(next.issues));
        const result = await running.ringlb.reload(next.config);
        assert.equal(result.ok, true, JSON.stringify(result));
      };
      const ended = (count: number) => (s: Scrape): boolean => s.value('ringlb_listener_connections_total', { listener: 'web', outcome: 'ok' }) === count;
      // Round robin (each worker its own rotation): open connections until one lands on b; keep it open.
      const onA: Socket[] = [];
      let onB: Socket | undefined;
      t.after(() => [...onA, onB].forEach((socket) => socket?.destroy()));
      for (let i = 0; i < 8 && onB === undefined; i++) {
        const socket = await openClient({ port: running.port('web') });
        if ((await readLine(socket)) === 'b') onB = socket;
        else onA.push(socket);
      }
      assert.ok(onB !== undefined, 'a connection reached b');
      for (const socket of onA) {
        socket.end();
        await closed(socket);
      }
      const pool = running.ringlb.pool('web')!;
      const slotOfB = pool.slotOf('b');
      await scrapeUntil(running.admin, ended(onA.length), 'the connections to a ended', { token: TOKEN });

      // b leaves the set while its connection runs: still reported (draining), not up.
      await reload(config(['a']));
      let metrics = await scrape(running.admin, TOKEN);
      assert.equal(metrics.value('ringlb_backend_active_connections', { pool: 'web', backend: 'b' }), 1);
      assert.equal(metrics.value('ringlb_backend_connections_total', { pool: 'web', backend: 'b' }), 1);
      assert.equal(metrics.value('ringlb_backend_up', { pool: 'web', backend: 'b' }), 0);
      assert.equal(metrics.value('ringlb_backend_state', { pool: 'web', backend: 'b', state: 'active' }), undefined, 'no state for a backend out of the set');
      assert.equal(metrics.value('ringlb_backend_connections_total', { pool: 'web', backend: 'a' }), onA.length);
      onB.end();
      await closed(onB);
      metrics = await scrapeUntil(running.admin, (s) => s.select('ringlb_backend_connections_total', { backend: 'b' }).length === 0, 'b left the output once its last connection ended', {
        token: TOKEN,
      });
      assert.deepEqual(metrics.select('ringlb_backend_connections_total').map((sample) => sample.labels['backend']), ['a']);

      // With workers, a slot a backend left stays reserved for 2 s (a worker may still pick it from
      // its previous set): wait until only a holds a slot, so c surely gets b's.
      const deadline = performance.now() + 10_000;
      while (pool.freeSlots() !== pool.capacity - 1) {
        assert.ok(performance.now() < deadline, "b's slot was not free within 10 s");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // c takes b's slot: its counts start from zero although the slot's cells hold b's.
      await reload(config(['a', 'c']));
      assert.equal(pool.slotOf('c'), slotOfB, 'c reuses the slot b left');
      assert.equal(pool.counters.segment.sumSlot(slotOfB, SlotCell.CONNECTIONS), 1, "the slot's cells still hold b's connection");
      metrics = await scrape(running.admin, TOKEN);
      const cLabels = { pool: 'web', backend: 'c' };
      assert.equal(metrics.value('ringlb_backend_connections_total', cLabels), 0);
      assert.equal(metrics.value('ringlb_backend_bytes_total', { ...cLabels, direction: 'to_client' }), 0);
      assert.equal(metrics.value('ringlb_backend_connect_seconds_count', cLabels), 0);
      assert.equal(running.ringlb.traffic.backend('web', 'c')!.connections, 0);
      assert.equal(running.ringlb.traffic.backend('web', 'b'), undefined);

      // A reload that rebuilds the pool's tables (another policy) keeps every count of a and c.
      for (let i = 0; i < 4; i++) await roundTrip(running.port('web'), Buffer.from('x'));
      const before = await scrapeUntil(running.admin, ended(onA.length + 1 + 4), 'four more connections ended', { token: TOKEN });
      assert.equal(before.sum('ringlb_backend_connections_total'), onA.length + 4);
      await reload(config(['a', 'c'], 'least_connections'));
      assert.equal(pool.policy, 'least_connections');
      assert.equal(running.ringlb.pool('web'), pool, 'rebuilt in place');
      const after = await scrape(running.admin, TOKEN);
      for (const id of ['a', 'c']) {
        const labels = { pool: 'web', backend: id };
        assert.equal(after.value('ringlb_backend_connections_total', labels), before.value('ringlb_backend_connections_total', labels), `${id} kept its count`);
        assert.equal(
          after.value('ringlb_backend_bytes_total', { ...labels, direction: 'to_client' }),
          before.value('ringlb_backend_bytes_total', { ...labels, direction: 'to_client' }),
        );
      }
      assert.ok(after.value('ringlb_pool_table_rebuilds_total', { pool: 'web' })! > before.value('ringlb_pool_table_rebuilds_total', { pool: 'web' })!);
      assert.equal(after.value('ringlb_config_reloads_total', { result: 'applied' }), 3);
    });
  });
}
