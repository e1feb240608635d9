/**
 * The status and control API end to end: the CLI as a child process with an admin token, real
 * loopback backends, clients over 127.0.x.y. The status shows what runs (connections at the
 * backend, a killed backend down with its last check, an ejection); a table's shares sum to 1 and
 * name the backend a lookup names; a PATCH drain or maint stops new connections at the backend
 * (counted there) while an open one keeps flowing; a weight override moves the traffic share, and
 * lasts through a reload that leaves its backend alone and ends with one that changes it; a
 * preview says what `ringlb diff` says; `/v1/config` shows the config in force, still after a
 * refused reload; with two worker threads a drain holds in both; a change publishes its events.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { RuntimeAdminApi } from '../src/admin/runtime-api.js';
import { validateConfig } from '../src/config/load.js';
import type { RinglbConfig } from '../src/config/types.js';
import { sourceKeyHash } from '../src/core/index.js';
import type { RinglbEventInput } from '../src/events/types.js';
import { Ringlb } from '../src/runtime.js';
import { AdminClient, adminAddress, loopbackClients, type AdminErrorBody } from './helpers/admin-client.js';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { openClient, readLine, whichBackend } from './helpers/clients.js';
import { runCli, startRinglb, TempDir, type LogLine, type RinglbProcess } from './helpers/ringlb-process.js';
import { LogCapture } from './helpers/log-capture.js';
import { startBackends, workersTest } from './helpers/workers.js';

const TOKEN = 'e2e-status-token-0123456789';
const MAGLEV_M = 65537;

const temp = new TempDir();
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.remove();
});

// --- shapes read back (api-contract.md) ---------------------------------------------------------

interface BackendStatus {
  id: string;
  address: string;
  weight: number;
  configuredWeight: number;
  state: string;
  override: { state?: string; weight?: number; at: string } | null;
  status: string;
  healthy: boolean;
  routable: boolean;
  flags: string[];
  lastCheck: { ok: boolean; at: string; durationMs: number; reason: string } | null;
  activeConnections: number;
  totalConnections: number;
  connectSeconds: unknown;
  ejections: number;
  slowStartPercent: number;
  keyShare: number | null;
}

interface PoolStatus {
  name: string;
  balance: string;
  panic: boolean;
  tableSize: number | null;
  lastRebuild: { at: string; movedShare: number } | null;
  backends: BackendStatus[];
}

interface Status {
  version: string;
  pid: number;
  startedAt: string;
  workers: number;
  config: { path: string; loadedAt: string };
  listeners: Array<{ name: string; bind: string; pool: string; activeConnections: number; connections: Record<string, number> }>;
  pools: PoolStatus[];
}

interface Run {
  start: number;
  end: number;
  backend: string;
}

interface Table {
  pool: string;
  balance: string;
  size: number;
  backends: Array<{ id: string; share: number; entries?: number; points?: number }>;
  strip?: Run[];
  ring?: Run[];
  truncated: boolean;
}

interface Preview {
  pool: string;
  balance: string;
  movedShare: number;
  backends: Array<{ id: string; before: number; after: number; gained: number; lost: number }>;
}

async function getStatus(admin: AdminClient): Promise<Status> {
  const response = await admin.request('GET', '/v1/status');
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body as Status;
}

function poolOf(status: Status, pool: string): PoolStatus {
  const found = status.pools.find((candidate) => candidate.name === pool);
  assert.ok(found !== undefined, `no pool ${pool} in the status`);
  return found;
}

function backendOf(status: Status, pool: string, id: string): BackendStatus {
  const found = poolOf(status, pool).backends.find((candidate) => candidate.id === id);
  assert.ok(found !== undefined, `no backend ${pool}/${id} in the status`);
  return found;
}

function patch(admin: AdminClient, pool: string, id: string, body: unknown) {
  return admin.request('PATCH', `/v1/pools/${encodeURIComponent(pool)}/backends/${encodeURIComponent(id)}`, { body });
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

/** The `N.NN%` of a pool's headline in `ringlb diff` output, as printed. */
function diffPercentOf(report: string, pool: string): string {
  const line = report.split('\n').find((text) => text.startsWith(`pool ${pool} (`));
  assert.ok(line !== undefined, `no line for pool ${pool} in:\n${report}`);
  const match = /(\d+(?:\.\d+)?)% of the (?:key space moves|traffic share shifts)/.exec(line);
  assert.ok(match !== null, `no moved share in ${JSON.stringify(line)}`);
  return match[1]!;
}

/** The same share as `ringlb diff` prints it (plan-report.ts formatPercent, above 0.01%). */
function asDiffPercent(share: number): string {
  return (share * 100).toFixed(2);
}

/** Opens `count` connections one after the other from `ips` (cycled) and returns whose greeting each got. */
async function greetings(port: number, ips: readonly string[], count: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i++) names.push(await whichBackend({ port, localAddress: ips[i % ips.length] }));
  return names;
}

describe('status and control API (one data-plane thread)', () => {
  let ringlb: RinglbProcess;
  let admin: AdminClient;
  let configFile: string;
  let ports: Map<string, number>;
  const servers = new Map<string, NamedBackend>();
  let deadPort: number;
  // The config file's content, edited by the reload tests.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let config: any;

  const server = (name: string): NamedBackend => servers.get(name)!;
  const reloadTo = async (next: unknown, outcome: 'config reloaded' | 'config reload refused', text?: string): Promise<LogLine> => {
    const since = ringlb.lines.length;
    writeFileSync(configFile, text ?? JSON.stringify(next, null, 2));
    ringlb.child.kill('SIGHUP');
    return ringlb.waitForLine((line) => line.msg === 'config reloaded' || line.msg === 'config reload refused', 15_000, outcome, since).then((line) => {
      assert.equal(line.msg, outcome, JSON.stringify(line));
      return line;
    });
  };

  before(async () => {
    for (const name of ['a', 'b', 'c', 'd1', 'd2', 'e1']) {
      const backend = await startNamedBackend(name);
      servers.set(name, backend);
      cleanups.push(() => backend.close());
    }
    deadPort = await closedPort();
    const abc = ['a', 'b', 'c'].map((id) => ({ id, address: server(id).address }));
    config = {
      admin: { bind: '127.0.0.1:0', token: TOKEN },
      workers: 1,
      listeners: ['web', 'ring', 'rr', 'hc', 'ej', 'reg'].map((name) => ({ name, bind: '127.0.0.1:0', pool: name })),
      pools: [
        { name: 'web', balance: 'maglev', backends: abc },
        { name: 'ring', balance: 'ring_hash', backends: abc },
        { name: 'rr', balance: 'round_robin', backends: abc.slice(0, 2) },
        {
          name: 'hc',
          balance: 'round_robin',
          panicThreshold: 0,
          healthCheck: { intervalMs: 100, timeoutMs: 1000, jitter: 0, rise: 1, fall: 1 },
          backends: ['d1', 'd2'].map((id) => ({ id, address: server(id).address })),
        },
        {
          name: 'ej',
          balance: 'round_robin',
          retries: 2,
          panicThreshold: 0,
          outlierDetection: { consecutiveFailures: 1, baseEjectionMs: 600_000, maxEjectionMs: 600_000, maxEjectionPercent: 100 },
          backends: [
            { id: 'e1', address: server('e1').address },
            { id: 'e2', address: `127.0.0.1:${deadPort}` },
          ],
        },
        { name: 'reg', balance: 'maglev', discovery: { type: 'registration' } },
      ],
      drainTimeoutMs: 30_000,
      log: { level: 'info' },
    };
    configFile = temp.writeJson(config);
    const started = await startRinglb(configFile, ['web', 'ring', 'rr', 'hc', 'ej', 'reg']);
    ringlb = started.ringlb;
    ports = started.ports;
    cleanups.push(() => ringlb.kill());
    admin = new AdminClient(await adminAddress(ringlb), TOKEN);
    cleanups.push(() => admin.close());
  });

  test('status: process, config, listeners, pools and backends; an open connection counts at its backend', async () => {
    const socket = await openClient({ port: ports.get('web')!, localAddress: '127.0.5.1' });
    try {
      const greeted = await readLine(socket);
      const status = await getStatus(admin);
      assert.equal(status.pid, ringlb.child.pid);
      assert.match(status.version, /^\d+\.\d+\.\d+/);
      assert.equal(status.workers, 1);
      assert.equal(status.config.path, configFile);
      assert.ok(!Number.isNaN(Date.parse(status.startedAt)) && !Number.isNaN(Date.parse(status.config.loadedAt)));
      const web = status.listeners.find((listener) => listener.name === 'web')!;
      assert.equal(web.pool, 'web');
      assert.equal(web.bind, `127.0.0.1:${ports.get('web')}`);
      assert.equal(web.activeConnections, 1);

      const pool = poolOf(status, 'web');
      assert.equal(pool.balance, 'maglev');
      assert.equal(pool.tableSize, MAGLEV_M);
      assert.equal(pool.panic, false);
      assert.equal(pool.lastRebuild, null, 'no change since start');
      assert.deepEqual(pool.backends.map((backend) => backend.id).sort(), ['a', 'b', 'c']);
      for (const backend of pool.backends) {
        assert.equal(backend.address, server(backend.id).address);
        assert.equal(backend.status, 'up');
        assert.equal(backend.state, 'active');
        assert.equal(backend.override, null);
        assert.equal(backend.weight, 1);
        assert.equal(backend.configuredWeight, 1);
        assert.equal(backend.healthy, true);
        assert.equal(backend.routable, true);
        assert.deepEqual(backend.flags, []);
        assert.equal(backend.lastCheck, null, 'web has no active checks');
        assert.equal(backend.slowStartPercent, 100);
        assert.equal(backend.ejections, 0);
        assert.equal(backend.activeConnections, backend.id === greeted ? 1 : 0);
      }
      assert.ok(Math.abs(sum(pool.backends.map((backend) => backend.keyShare!)) - 1) < 1e-9);
      // Without a hash table there is no key share.
      assert.ok(poolOf(status, 'rr').backends.every((backend) => backend.keyShare === null));
      assert.equal(poolOf(status, 'rr').tableSize, null);
      assert.equal(poolOf(status, 'ring').tableSize, 3 * 160, 'ring_hash: 160 points per weight unit');
    } finally {
      socket.destroy();
    }
  });

  test('table: shares sum to 1, counts fill the table, runs tile it, and every lookup lands on the run that names its backend', async () => {
    const clients = loopbackClients(300);
    for (const [pool, unit] of [['web', 'entries'], ['ring', 'points']] as const) {
      const response = await admin.request('GET', `/v1/pools/${pool}/table`);
      assert.equal(response.status, 200, JSON.stringify(response.body));
      const table = response.body as Table;
      assert.equal(table.pool, pool);
      assert.ok(Math.abs(sum(table.backends.map((backend) => backend.share)) - 1) < 1e-9, `${pool}: shares sum to 1`);
      assert.equal(sum(table.backends.map((backend) => backend[unit]!)), table.size);
      const runs = (pool === 'web' ? table.strip : table.ring)!;
      assert.ok(runs.length > 0 && runs.length <= 4096);
      assert.equal(runs[0]!.start, 0);
      for (let i = 1; i < runs.length; i++) {
        assert.equal(runs[i]!.start, runs[i - 1]!.end, `${pool}: runs are contiguous`);
        assert.notEqual(runs[i]!.backend, runs[i - 1]!.backend, `${pool}: adjacent runs of one backend are merged`);
      }
      if (!table.truncated) assert.equal(runs[runs.length - 1]!.end, 1);
      // The status's keyShare is the table's share.
      const status = await getStatus(admin);
      for (const backend of table.backends) assert.equal(backendOf(status, pool, backend.id).keyShare, backend.share);

      const looked = await admin.lookupAll(pool, clients);
      let checked = 0;
      clients.forEach((ip, index) => {
        const key = sourceKeyHash(ip, 0, false);
        // maglev: entry key mod M as a fraction of M; ring: the key as a fraction of 2^32.
        const at = pool === 'web' ? (key % MAGLEV_M) / MAGLEV_M : key / 2 ** 32;
        const run = runs.find((candidate) => candidate.start <= at && at < candidate.end);
        if (run === undefined) return; // past the listed runs of a truncated strip
        checked += 1;
        assert.equal(run.backend, looked[index], `${pool}: client ${ip}`);
      });
      assert.ok(checked >= (table.truncated ? 10 : clients.length), `${pool}: ${checked} lookups checked`);
    }
    const refused = await admin.request('GET', '/v1/pools/rr/table');
    assert.equal(refused.status, 409);
    assert.match((refused.body as AdminErrorBody).error, /round_robin/);
  });

  test('preview: the moved share is what `ringlb diff` prints for the same change; per backend the shares add up', async () => {
    const next = structuredClone(config);
    for (const pool of next.pools.filter((p: { name: string }) => p.name === 'web' || p.name === 'ring')) {
      pool.backends = pool.backends.filter((backend: { id: string }) => backend.id !== 'c').map((backend: { id: string }) => (backend.id === 'a' ? { ...backend, weight: 5 } : backend));
    }
    next.pools.find((p: { name: string }) => p.name === 'rr').backends[0].weight = 3;
    const diff = await runCli(['diff', configFile, temp.writeJson(next)]);
    assert.equal(diff.status.code, 0, diff.stderr);

    for (const pool of ['web', 'ring', 'rr']) {
      const body = pool === 'rr' ? { weights: { a: 3 } } : { weights: { a: 5 }, remove: ['c'] };
      const response = await admin.request('POST', `/v1/pools/${pool}/preview`, { body });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      const preview = response.body as Preview;
      assert.equal(preview.pool, pool);
      assert.ok(preview.movedShare > 0);
      assert.equal(asDiffPercent(preview.movedShare), diffPercentOf(diff.stdout, pool), `${pool}: preview ${preview.movedShare} vs diff`);
      const gained = sum(preview.backends.map((backend) => backend.gained));
      const lost = sum(preview.backends.map((backend) => backend.lost));
      assert.ok(Math.abs(gained - preview.movedShare) < 1e-6, `${pool}: Σ gained ${gained} = moved ${preview.movedShare}`);
      assert.ok(Math.abs(lost - preview.movedShare) < 1e-6, `${pool}: Σ lost ${lost}`);
      assert.ok(Math.abs(sum(preview.backends.map((backend) => backend.before)) - 1) < 1e-9);
      assert.ok(Math.abs(sum(preview.backends.map((backend) => backend.after)) - 1) < 1e-9);
      if (pool !== 'rr') {
        const c = preview.backends.find((backend) => backend.id === 'c')!;
        assert.equal(c.after, 0);
        assert.equal(c.lost, c.before);
        // The whole proposed set says the same as the changes.
        const set = await admin.request('POST', `/v1/pools/${pool}/preview`, {
          body: { backends: [{ id: 'a', address: server('a').address, weight: 5 }, { id: 'b', address: server('b').address }] },
        });
        assert.equal(set.status, 200, JSON.stringify(set.body));
        assert.deepEqual(set.body, preview);
      }
    }
    // Nothing was applied.
    const status = await getStatus(admin);
    assert.equal(poolOf(status, 'web').backends.length, 3);
    assert.equal(poolOf(status, 'web').lastRebuild, null);
  });

  test('bad bodies are 400 with the path of every problem; unknown pools and backends are 404', async () => {
    const cases: Array<[string, string, unknown, string, RegExp?]> = [
      ['PATCH', '/v1/pools/web/backends/a', { state: 'draining' }, 'state', /active, drain, maint|allowed/],
      ['PATCH', '/v1/pools/web/backends/a', { weigth: 3 }, 'weigth', /weight/],
      ['PATCH', '/v1/pools/web/backends/a', {}, '$', /is empty; expected "state"/],
      ['PATCH', '/v1/pools/web/backends/a', { weight: 1.5 }, 'weight'],
      ['PATCH', '/v1/pools/web/backends/a', { weight: 10001 }, 'weight'],
      ['PATCH', '/v1/pools/web/backends/a', [], '$'],
      ['POST', '/v1/pools/web/preview', { weights: { zz: 1 } }, 'weights.zz', /no backend "zz"/],
      ['POST', '/v1/pools/web/preview', { remove: ['a', 'nope'] }, 'remove[1]'],
      ['POST', '/v1/pools/web/preview', { remove: ['a', 'b', 'a'] }, 'remove[2]', /"a" is listed twice \(also remove\[0\]\)/],
      ['POST', '/v1/pools/web/preview', { backends: [{ address: 'nope' }] }, 'backends[0].address'],
      ['POST', '/v1/pools/web/preview', { backends: [{ address: '127.0.0.1:1', wieght: 2 }] }, 'backends[0].wieght'],
      ['POST', '/v1/pools/web/preview', { backends: [], weights: {} }, 'weights', /combined/],
      ['POST', '/v1/pools/web/preview', { weights: { a: -1 } }, 'weights.a'],
      ['POST', '/v1/pools/web/preview', {}, '$', /is empty; expected "backends"/],
    ];
    for (const [method, path, body, at, message] of cases) {
      const response = await admin.request(method, path, { body });
      assert.equal(response.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(response.body)}`);
      const error = response.body as AdminErrorBody;
      assert.equal(error.path, at, JSON.stringify(error));
      assert.ok(error.issues !== undefined && error.issues.length >= 1);
      if (message !== undefined) assert.match(error.error, message);
    }
    const duplicate = await admin.request('PATCH', '/v1/pools/web/backends/a', { rawBody: '{"state": "drain", "state": "active"}' });
    assert.equal(duplicate.status, 400);
    assert.equal((duplicate.body as AdminErrorBody).path, 'state');

    for (const [method, path, body] of [
      ['PATCH', '/v1/pools/nope/backends/a', { state: 'drain' }],
      ['PATCH', '/v1/pools/web/backends/nope', { state: 'drain' }],
      ['POST', '/v1/pools/nope/preview', { weights: {} }],
      ['GET', '/v1/pools/nope/table', undefined],
    ] as const) {
      const response = await admin.request(method, path, { body });
      assert.equal(response.status, 404, `${method} ${path}: ${JSON.stringify(response.body)}`);
    }
    // Nothing changed on the way.
    const status = await getStatus(admin);
    assert.ok(poolOf(status, 'web').backends.every((backend) => backend.override === null && backend.state === 'active'));
  });

  for (const state of ['drain', 'maint'] as const) {
    test(`PATCH ${state}: no new connection reaches the backend (counted there) while an open one keeps flowing; active again on PATCH active`, async () => {
      const id = state === 'drain' ? 'a' : 'b';
      const backend = server(id);
      const clients = loopbackClients(64);
      const homes = await admin.lookupAll('web', clients);
      const homeClient = clients[homes.indexOf(id)]!;
      const port = ports.get('web')!;
      const open = await openClient({ port, localAddress: homeClient });
      try {
        assert.equal(await readLine(open), id);

        const response = await patch(admin, 'web', id, { state });
        assert.equal(response.status, 200, JSON.stringify(response.body));
        const changed = response.body as BackendStatus;
        assert.equal(changed.id, id);
        assert.equal(changed.state, state);
        assert.equal(changed.status, state);
        assert.equal(changed.override?.state, state);
        assert.ok(changed.flags.includes(state));
        assert.equal(changed.routable, false);
        assert.equal(changed.activeConnections, 1, 'the open connection stays');
        const line = await ringlb.waitForLine((l) => l.msg === 'backend changed by admin' && l.id === id && (l.state as { to?: string }).to === state, 5000, 'admin change logged');
        assert.deepEqual(line.state, { from: 'active', to: state });
        assert.equal(line.source, 'admin');
        assert.equal(line.remote, '127.0.0.1');

        const acceptedBefore = backend.accepted();
        const names = await greetings(port, [homeClient, ...clients.slice(0, 15)], 24);
        assert.ok(!names.includes(id), `no new connection to ${id}: ${names.join(' ')}`);
        assert.equal(backend.accepted(), acceptedBefore, `${id} accepted nothing new`);
        // The open connection still flows both ways.
        open.write('still here\n');
        assert.equal(await readLine(open), 'still here');

        const back = await patch(admin, 'web', id, { state: 'active' });
        assert.equal(back.status, 200, JSON.stringify(back.body));
        assert.equal((back.body as BackendStatus).override, null, 'active is what the config says: no override left');
        assert.equal((back.body as BackendStatus).status, 'up');
        assert.equal(await whichBackend({ port, localAddress: homeClient }), id, 'its keys come home');
      } finally {
        open.destroy();
      }
    });
  }

  test('PATCH weight moves the traffic share and shows in status; the override lasts through an unrelated reload and ends with a reload that changes the backend', async () => {
    const port = ports.get('rr')!;
    const response = await patch(admin, 'rr', 'a', { weight: 3 });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const changed = response.body as BackendStatus;
    assert.equal(changed.weight, 3);
    assert.equal(changed.configuredWeight, 1);
    assert.equal(changed.override?.weight, 3);
    assert.equal(changed.override?.state, undefined);

    let names = await greetings(port, ['127.0.6.1'], 40);
    const share = names.filter((name) => name === 'a').length;
    assert.ok(share >= 29 && share <= 31, `a got ${share} of 40 at weight 3:1`);
    let status = await getStatus(admin);
    const rebuilt = poolOf(status, 'rr').lastRebuild;
    assert.ok(rebuilt !== null, 'the weight change rebuilt the pool');
    assert.ok(Math.abs(rebuilt.movedShare - 0.25) < 1e-9, `½·Σ|Δ share| of 1:1 → 3:1 is 0.25, got ${rebuilt.movedShare}`);
    assert.equal(backendOf(status, 'rr', 'a').weight, 3);

    // A second override on another pool, which no reload below touches.
    assert.equal((await patch(admin, 'web', 'b', { state: 'drain' })).status, 200);

    const unrelated = structuredClone(config);
    unrelated.drainTimeoutMs = 20_000;
    await reloadTo(unrelated, 'config reloaded');
    status = await getStatus(admin);
    assert.equal(backendOf(status, 'rr', 'a').weight, 3, 'an unrelated reload keeps the override');
    assert.equal(backendOf(status, 'rr', 'a').override?.weight, 3);
    assert.equal(backendOf(status, 'web', 'b').state, 'drain');
    names = await greetings(port, ['127.0.6.1'], 8);
    assert.equal(names.filter((name) => name === 'a').length, 6);

    const changesA = structuredClone(unrelated);
    changesA.pools.find((p: { name: string }) => p.name === 'rr').backends[0].weight = 2;
    const since = ringlb.lines.length;
    await reloadTo(changesA, 'config reloaded');
    await ringlb.waitForLine((line) => line.msg === 'admin override ended: the config or discovery changed the backend' && line.id === 'a' && line.pool === 'rr', 5000, 'override ended', since);
    status = await getStatus(admin);
    const a = backendOf(status, 'rr', 'a');
    assert.equal(a.weight, 2, 'the reload that changes the backend replaces the override');
    assert.equal(a.configuredWeight, 2);
    assert.equal(a.override, null);
    assert.equal(backendOf(status, 'web', 'b').state, 'drain', 'web/b was not changed by the config: its override stays');
    config = changesA;
    assert.equal((await patch(admin, 'web', 'b', { state: 'active' })).status, 200);
  });

  test('a registered backend takes an override too; a renewal that changes nothing keeps it, one with a new weight ends it', async () => {
    const body = { address: server('a').address, weight: 1 };
    assert.equal((await admin.register('reg', 'r1', body)).status, 201);
    assert.equal((await admin.register('reg', 'r2', { address: server('b').address })).status, 201);
    const drained = await patch(admin, 'reg', 'r1', { state: 'drain' });
    assert.equal(drained.status, 200, JSON.stringify(drained.body));
    assert.equal((drained.body as BackendStatus).status, 'drain');
    // The registration's own view reads the state in force as well.
    const listed = await admin.request('GET', '/v1/pools/reg/backends/r1');
    assert.equal((listed.body as { state: string }).state, 'drain');

    assert.equal((await admin.register('reg', 'r1', body)).status, 200, 'renewed');
    let status = await getStatus(admin);
    assert.equal(backendOf(status, 'reg', 'r1').state, 'drain', 'a renewal that changes nothing keeps the override');
    assert.equal(await whichBackend({ port: ports.get('reg')!, localAddress: '127.0.8.1' }), 'b');

    const since = ringlb.lines.length;
    assert.equal((await admin.register('reg', 'r1', { ...body, weight: 4 })).status, 200);
    await ringlb.waitForLine((line) => line.msg === 'admin override ended: the config or discovery changed the backend' && line.id === 'r1', 5000, 'override ended', since);
    status = await getStatus(admin);
    const r1 = backendOf(status, 'reg', 'r1');
    assert.deepEqual([r1.state, r1.weight, r1.override], ['active', 4, null]);
  });

  test('/v1/config: the config in force with the token redacted; after a refused reload it still shows the old one', async () => {
    const response = await admin.request('GET', '/v1/config');
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const view = response.body as { path: string; loadedAt: string; config: Record<string, any> };
    assert.equal(view.path, configFile);
    assert.ok(!Number.isNaN(Date.parse(view.loadedAt)));
    assert.equal(view.config.admin.token, '<redacted>');
    assert.ok(!JSON.stringify(view.config).includes(TOKEN), 'the token appears nowhere');
    assert.equal(view.config.admin.bind, '127.0.0.1:0');
    assert.equal(view.config.drainTimeoutMs, config.drainTimeoutMs);
    const rr = view.config.pools.find((pool: { name: string }) => pool.name === 'rr');
    assert.deepEqual(rr.backends.map((backend: { id: string; address: string; weight: number }) => [backend.id, backend.address, backend.weight]), [
      ['a', server('a').address, 2],
      ['b', server('b').address, 1],
    ]);

    await reloadTo(undefined, 'config reload refused', '{"listeners": [], "pools": [ {"name": "x", "balance": "nope"} ]}');
    const after = await admin.request('GET', '/v1/config');
    assert.deepEqual(after.body, view, 'a refused reload changes nothing');
    assert.equal((await getStatus(admin)).config.loadedAt, view.loadedAt);
    // Put the file back so nothing later reads a broken config.
    writeFileSync(configFile, JSON.stringify(config, null, 2));
  });

  test('status after failures: a killed backend is down with its last check; an outlier ejection is counted', async () => {
    let status = await getStatus(admin);
    for (const id of ['d1', 'd2']) {
      const backend = backendOf(status, 'hc', id);
      if (backend.lastCheck === null) {
        await ringlb.waitForLine((line) => line.msg === 'backend up' && line.id === id, 5000, `${id} up`);
        status = await getStatus(admin);
      }
    }
    const d2 = backendOf(status, 'hc', 'd2');
    assert.equal(d2.status, 'up');
    assert.equal(d2.lastCheck?.ok, true);
    assert.equal(d2.lastCheck?.reason, 'ok');
    assert.ok(d2.lastCheck!.durationMs >= 0);

    const since = ringlb.lines.length;
    await server('d2').close();
    await ringlb.waitForLine((line) => line.msg === 'backend down' && line.id === 'd2', 10_000, 'd2 down', since);
    status = await getStatus(admin);
    const down = backendOf(status, 'hc', 'd2');
    assert.equal(down.status, 'down');
    assert.equal(down.healthy, false);
    assert.equal(down.routable, false);
    assert.deepEqual(down.flags, ['failed_active_check']);
    assert.equal(down.lastCheck?.ok, false);
    assert.match(down.lastCheck!.reason, /ECONNREFUSED/);
    assert.ok(Date.parse(down.lastCheck!.at) >= Date.parse(d2.lastCheck!.at));
    assert.equal(backendOf(status, 'hc', 'd1').status, 'up');

    // Round robin sends one of the first two connections to the dead e2: refused, ejected, retried on e1.
    const ejectedSince = ringlb.lines.length;
    const names = await greetings(ports.get('ej')!, ['127.0.7.1'], 2);
    assert.deepEqual(names, ['e1', 'e1']);
    await ringlb.waitForLine((line) => line.msg === 'backend ejected' && line.id === 'e2', 5000, 'e2 ejected', ejectedSince);
    status = await getStatus(admin);
    const e2 = backendOf(status, 'ej', 'e2');
    assert.equal(e2.ejections, 1);
    assert.equal(e2.status, 'down');
    assert.ok(e2.flags.includes('ejected_outlier'));
    assert.equal(backendOf(status, 'ej', 'e1').ejections, 0);
  });
});

describe('status and control API with two worker threads', () => {
  workersTest('PATCH drain holds in every worker: no new connection reaches the drained backend, whichever thread accepts it', async (t) => {
    const [a, b] = await startBackends(t, ['a', 'b']);
    const configFile = temp.writeJson({
      admin: { bind: '127.0.0.1:0', token: TOKEN },
      workers: 2,
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', balance: 'maglev', backends: [{ id: 'a', address: a!.address }, { id: 'b', address: b!.address }] }],
      log: { level: 'info' },
    });
    const { ringlb, ports } = await startRinglb(configFile, ['web']);
    t.after(() => ringlb.kill());
    const admin = new AdminClient(await adminAddress(ringlb), TOKEN);
    t.after(() => admin.close());
    const port = ports.get('web')!;
    const clients = loopbackClients(64);
    const homes = await admin.lookupAll('web', clients);
    const toA = clients.filter((_, index) => homes[index] === 'a');
    assert.ok(toA.length > 5);
    const open = await openClient({ port, localAddress: toA[0] });
    t.after(() => open.destroy());
    assert.equal(await readLine(open), 'a');

    const response = await patch(admin, 'web', 'a', { state: 'drain' });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal((await getStatus(admin)).workers, 2);
    const acceptedBefore = a!.accepted();
    const accessBefore = ringlb.accessLines().length;
    // Every connection from a client whose home is a: each worker that accepts one must route it to b.
    const names = await greetings(port, toA, 40);
    assert.deepEqual(new Set(names), new Set(['b']));
    assert.equal(a!.accepted(), acceptedBefore);
    const access = (await ringlb.waitForAccessLines(accessBefore + names.length)).slice(accessBefore);
    const workers = new Set(access.map((line) => line.worker));
    assert.ok(workers.size >= 2, `connections were accepted by ${[...workers].join(', ')}: both threads took part`);
    open.write('flowing\n');
    assert.equal(await readLine(open), 'flowing');
  });
});

describe('runtime weight override with two worker threads (in process)', () => {
  workersTest('every worker runs the overridden weight: its table equals the main thread\'s', async (t) => {
    const ringlb = new Ringlb({ logger: new LogCapture().logger() });
    t.after(() => ringlb.close());
    const result = validateConfig({
      workers: 2,
      listeners: [{ name: 'p', bind: '127.0.0.1:0', pool: 'p' }],
      pools: [{ name: 'p', balance: 'maglev', backends: ['a', 'b', 'c'].map((id, i) => ({ id, address: `127.0.0.1:${9001 + i}` })) }],
      log: { level: 'info' },
    });
    if (!result.ok) assert.fail(JSON.stringify(result.issues));
    await ringlb.start(result.config as RinglbConfig);
    const pool = ringlb.pool('p')!;
    const before = pool.tableSnapshot().slots;
    assert.equal(await ringlb.changeBackend('p', 'a', { weight: 5 }, { remoteAddress: '127.0.0.1' }), true);
    const main = pool.tableSnapshot().slots;
    assert.notDeepEqual(main, before, 'the weight rebuilt the table');
    for (let index = 0; index < 2; index++) {
      const table = await ringlb.workers!.tableOf(index, pool);
      assert.deepEqual(table.slots, main, `worker ${index} runs the new table`);
    }
  });
});

describe('runtime override events (in process)', () => {
  const log = new LogCapture();
  const events: RinglbEventInput[] = [];
  const ringlb = new Ringlb({ logger: log.logger(), events: { publish: (event) => events.push(event) } });
  after(() => ringlb.close());

  test('a PATCH publishes state_changed and weight_changed from source admin, once in force', async () => {
    const result = validateConfig({
      workers: 1,
      listeners: [{ name: 'p', bind: '127.0.0.1:0', pool: 'p' }],
      pools: [{ name: 'p', balance: 'maglev', slowStartMs: 600_000, backends: [{ id: 'a', address: '127.0.0.1:9001' }, { id: 'b', address: '127.0.0.1:9002' }] }],
      log: { level: 'info' },
    });
    if (!result.ok) assert.fail(JSON.stringify(result.issues));
    await ringlb.start(result.config as RinglbConfig);
    const api = new RuntimeAdminApi(ringlb.adminView());
    const keyShareOfA = () => api.status().pools[0]!.backends.find((b) => b.id === 'a')!.keyShare!;
    assert.ok(Math.abs(keyShareOfA() - 0.5) < 0.01);
    assert.equal(await ringlb.changeBackend('p', 'a', { state: 'drain', weight: 3 }, { remoteAddress: '127.0.0.1' }), true);
    assert.ok(Math.abs(keyShareOfA() - 0.75) < 0.01, `a owns 3/4 of the table at weight 3:1, got ${keyShareOfA()}`);
    assert.deepEqual(events, [
      { type: 'state_changed', pool: 'p', backend: 'a', address: '127.0.0.1:9001', source: 'admin', from: 'active', to: 'drain' },
      { type: 'weight_changed', pool: 'p', backend: 'a', address: '127.0.0.1:9001', source: 'admin', weight: 3, previousWeight: 1 },
    ]);
    const pool = ringlb.pool('p')!;
    assert.equal(pool.backends.find((b) => b.id === 'a')!.weight, 3, 'the pool runs the override');
    assert.equal(pool.isRoutable(pool.slotOf('a')), false);
    // A change to what is in force already publishes nothing.
    events.length = 0;
    assert.equal(await ringlb.changeBackend('p', 'a', { weight: 3 }, { remoteAddress: '127.0.0.1' }), true);
    assert.deepEqual(events, []);
    // Back to active: it ramps up from 10% (slow start), and the status says so.
    assert.equal(await ringlb.changeBackend('p', 'a', { state: 'active' }, { remoteAddress: '127.0.0.1' }), true);
    const ramp = api.status().pools[0]!.backends.find((b) => b.id === 'a')!.slowStartPercent;
    assert.ok(ramp >= 10 && ramp < 20, `slow start ramps from 10%, got ${ramp}`);
    assert.equal(api.status().pools[0]!.backends.find((b) => b.id === 'b')!.slowStartPercent, 100);
    assert.equal(await ringlb.changeBackend('p', 'zz', { weight: 3 }, { remoteAddress: '127.0.0.1' }), false);
    assert.equal(await ringlb.changeBackend('nope', 'a', { weight: 3 }, { remoteAddress: '127.0.0.1' }), false);
  });
});
