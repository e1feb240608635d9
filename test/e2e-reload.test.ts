/**
 * Hot reload under load, end to end: the CLI as a child process, real loopback backends and
 * clients. A client keeps 50 long-lived connections echoing and opens ~20 new ones per second
 * while backends are added and removed 20 times, alternately by rewriting the config's static
 * backends + SIGHUP and by rewriting a file source's JSON. Nothing may be dropped: removed backends
 * stay alive, so their connections drain (drainTimeoutMs is long). An invalid config in between is
 * refused and changes nothing. `--watch` reloads on an edit of the config file without a signal.
 *
 * Every wait is on a log line or a socket event; every loop is bounded in count.
 */
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { startClientLoop } from './helpers/client-loop.js';
import { connectError, openClient, readLine, whichBackend } from './helpers/clients.js';
import { AdminClient } from './helpers/admin-client.js';
import { startEchoSessions } from './helpers/echo-sessions.js';
import { RinglbProcess, TempDir, type LogLine } from './helpers/ringlb-process.js';

const temp = new TempDir();
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.remove();
});

async function backendsNamed(...names: string[]): Promise<Map<string, NamedBackend>> {
  const started = await Promise.all(names.map((name) => startNamedBackend(name)));
  for (const backend of started) cleanups.push(() => backend.close());
  return new Map(started.map((backend) => [backend.name, backend]));
}

/** Replace `path` in one step (write a sibling, rename over it): a reader never sees half a file. */
function replaceFile(path: string, value: unknown): void {
  const next = `${path}.next`;
  writeFileSync(next, JSON.stringify(value, null, 2));
  renameSync(next, path);
}

function run(args: readonly string[]): RinglbProcess {
  const ringlb = new RinglbProcess(args);
  cleanups.push(() => ringlb.kill());
  return ringlb;
}

/** A log field that lists names (an array), as a sorted copy; [] when absent. */
function names(field: unknown): string[] {
  return Array.isArray(field) ? field.map(String).sort() : [];
}

const poolUpdated = (pool: string) => (line: LogLine) => line.msg === 'pool updated' && line.pool === pool;
const is = (msg: string) => (line: LogLine) => line.msg === msg;

/** Ids of a 3-wide window starting at `start` over `ids` (wrapping). */
function window(ids: readonly string[], start: number): string[] {
  return [0, 1, 2].map((offset) => ids[(start + offset) % ids.length]!);
}

describe('reload under load', () => {
  test('20 reloads (config + SIGHUP, file source) under 50 long-lived and ~20/s new connections: 0 dropped, 0 failed; an invalid reload changes nothing', async (t) => {
    const staticIds = ['s0', 's1', 's2', 's3', 's4', 's5'];
    const fileIds = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5'];
    const hashIds = ['h0', 'h1', 'h2'];
    const backends = await backendsNamed(...staticIds, ...fileIds, ...hashIds);
    const entry = (id: string) => ({ id, address: backends.get(id)!.address });

    const configPath = join(temp.path, 'ringlb.json');
    const filePath = join(temp.path, 'backends.json');
    const configWith = (staticSet: readonly string[]) => ({
      listeners: [
        { name: 'static', bind: '127.0.0.1:0', pool: 'static' },
        { name: 'files', bind: '127.0.0.1:0', pool: 'files' },
        { name: 'hash', bind: '127.0.0.1:0', pool: 'hash' },
      ],
      pools: [
        { name: 'static', balance: 'round_robin', backends: staticSet.map(entry) },
        // Relative: resolved against the config file's directory.
        { name: 'files', balance: 'round_robin', discovery: { type: 'file', path: 'backends.json' } },
        { name: 'hash', balance: 'maglev', backends: hashIds.map(entry) },
      ],
      drainTimeoutMs: 60000,
      log: { level: 'info' },
    });

    let staticSet = window(staticIds, 0);
    let fileSet = window(fileIds, 0);
    replaceFile(filePath, fileSet.map(entry));
    replaceFile(configPath, configWith(staticSet));
    const ringlb = run(['run', '--config', configPath]);
    const port = {
      static: await ringlb.listenerPort('static'),
      files: await ringlb.listenerPort('files'),
      hash: await ringlb.listenerPort('hash'),
    };
    const firstFileSet = await ringlb.waitForLine(poolUpdated('files'), 5000, 'first set from the file');
    assert.equal(firstFileSet.source, 'file');
    assert.deepEqual(names(firstFileSet.added), [...fileSet].sort());

    const hashClients = Array.from({ length: 20 }, (_, index) => `127.0.9.${index + 1}`);
    const hashRouting = async (): Promise<string[]> => {
      const seen: string[] = [];
      for (const ip of hashClients) seen.push(await whichBackend({ port: port.hash, localAddress: ip }));
      return seen;
    };
    const hashBefore = await hashRouting();

    const sessions = await startEchoSessions([port.static, port.files], 50, 100);
    cleanups.push(() => sessions.destroy());
    // ~20 new connections per second over both pools, bounded to 30 s.
    const loops = [startClientLoop(port.static, 300, 100), startClientLoop(port.files, 300, 100)];
    cleanups.push(() => loops.forEach((loop) => loop.stop()));

    const reloadTimes: number[] = [];
    let invalidChecked = false;
    for (let step = 0; step < 20; step += 1) {
      if (step === 10) {
        // An invalid config: refused with every error, and nothing changes.
        const since = ringlb.lines.length;
        const invalid = configWith(window(staticIds, 5)) as { pools: Array<Record<string, unknown>>; listeners: Array<Record<string, unknown>> };
        invalid.pools[2] = { ...invalid.pools[2], balance: 'nonsense' };
        invalid.listeners.push({ name: 'orphan', bind: '127.0.0.1:0', pool: 'no-such-pool' });
        replaceFile(configPath, invalid);
        ringlb.child.kill('SIGHUP');
        const refused = await ringlb.waitForLine(is('config reload refused'), 5000, 'config reload refused', since);
        assert.equal(refused.level, 'error');
        const errors = (refused.errors as unknown[]).map(String);
        assert.ok(errors.some((e) => e.startsWith('pools[2].balance')), `errors: ${errors.join(' | ')}`);
        assert.ok(errors.some((e) => e.startsWith('listeners[3].pool')), `errors: ${errors.join(' | ')}`);
        assert.deepEqual(await hashRouting(), hashBefore, 'hash routing after a refused reload');
        for (let probe = 0; probe < 3; probe += 1) {
          assert.ok(staticSet.includes(await whichBackend({ port: port.static })));
          assert.ok(fileSet.includes(await whichBackend({ port: port.files })));
        }
        const changes = ringlb.lines.slice(since).filter((l) => l.msg === 'config reloaded' || l.msg === 'pool updated' || l.msg === 'listener ready');
        assert.deepEqual(changes, [], 'a refused reload applied something');
        invalidChecked = true;
      }

      const since = ringlb.lines.length;
      const startedAt = performance.now();
      let pool: 'static' | 'files';
      let previous: string[];
      let next: string[];
      if (step % 2 === 0) {
        pool = 'static';
        previous = staticSet;
        next = staticSet = window(staticIds, step / 2 + 1);
        replaceFile(configPath, configWith(staticSet));
        ringlb.child.kill('SIGHUP');
        const reloaded = await ringlb.waitForLine(is('config reloaded'), 5000, `config reloaded (step ${step})`, since);
        assert.deepEqual(names(reloaded.poolsChanged), ['static'], JSON.stringify(reloaded));
        assert.deepEqual(names(reloaded.poolsUnchanged), ['files', 'hash'], JSON.stringify(reloaded));
        assert.deepEqual(names(reloaded.listenersAdded), []);
        assert.deepEqual(names(reloaded.listenersRemoved), []);
      } else {
        pool = 'files';
        previous = fileSet;
        next = fileSet = window(fileIds, (step + 1) / 2);
        replaceFile(filePath, fileSet.map(entry));
      }
      const updated = await ringlb.waitForLine(poolUpdated(pool), 5000, `pool updated ${pool} (step ${step})`, since);
      reloadTimes.push(performance.now() - startedAt);
      assert.deepEqual(names(updated.added), next.filter((id) => !previous.includes(id)).sort(), JSON.stringify(updated));
      assert.deepEqual(names(updated.removed), previous.filter((id) => !next.includes(id)).sort(), JSON.stringify(updated));
      assert.equal(updated.backends, 3);
      // A tiny round_robin table: built in well under a second (logged in ms, 3 decimals).
      assert.ok(Number.isFinite(updated.buildMs) && (updated.buildMs as number) >= 0 && (updated.buildMs as number) < 1000, String(updated.buildMs));
      // Three equal weights, one backend swapped: ½(⅓ + ⅓) of the traffic share changes hands.
      assert.equal(updated.movedShare, 0.333333, JSON.stringify(updated));
      // New connections go to the new set only.
      for (let probe = 0; probe < 3; probe += 1) {
        const reached = await whichBackend({ port: pool === 'static' ? port.static : port.files });
        assert.ok(next.includes(reached), `step ${step}: a new connection reached ${reached}, not in ${next.join(',')}`);
      }
      // Pacing: let the load run across each membership a moment (not a wait for a result).
      await delay(250);
    }
    assert.ok(invalidChecked);
    assert.deepEqual(await hashRouting(), hashBefore, 'the untouched hash pool routes as before');

    for (const loop of loops) loop.stop();
    const [staticLoop, filesLoop] = await Promise.all(loops.map((loop) => loop.done));
    const results = await sessions.stop();
    const dropped = results.filter((result) => result.error !== null);
    assert.deepEqual(dropped, [], 'established connections dropped');
    assert.ok(results.every((result) => result.pings >= 5), `pings per session: ${results.map((r) => r.pings).join(',')}`);
    for (const loop of [staticLoop!, filesLoop!]) {
      assert.equal(loop.failed, 0, `failed new connections: ${JSON.stringify(loop.connections.filter((c) => c.error))}`);
    }
    const newConnections = staticLoop!.connections.length + filesLoop!.connections.length;
    assert.ok(newConnections >= 40, `only ${newConnections} new connections during the reloads`);
    // Every session's backend was removed at some point (each window moved past it): all drained.
    const finalSets = new Set([...staticSet, ...fileSet]);
    const drainedSessions = results.filter((result) => !finalSets.has(result.backend)).length;
    reloadTimes.sort((a, b) => a - b);
    t.diagnostic(
      `${results.length} sessions (${drainedSessions} on backends removed by the end), ${newConnections} new connections, ` +
        `reload → pool updated median ${reloadTimes[10]!.toFixed(1)} ms, max ${reloadTimes.at(-1)!.toFixed(1)} ms`,
    );
  });
});

describe('--watch', () => {
  test('editing the config file reloads without a signal: a listener is added, then removed', async () => {
    const backends = await backendsNamed('wa', 'wb');
    const configPath = join(temp.path, 'watched.json');
    const base = {
      listeners: [{ name: 'main', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', balance: 'round_robin', backends: [{ id: 'wa', address: backends.get('wa')!.address }] }],
      drainTimeoutMs: 5000,
      log: { level: 'info' },
    };
    replaceFile(configPath, base);
    const ringlb = run(['run', '--config', configPath, '--watch']);
    const mainPort = await ringlb.listenerPort('main');
    assert.equal(await whichBackend({ port: mainPort }), 'wa');

    // An in-place edit, as an editor saving the file would do.
    let since = ringlb.lines.length;
    const extended = {
      ...base,
      listeners: [...base.listeners, { name: 'extra', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ ...base.pools[0]!, backends: [{ id: 'wb', address: backends.get('wb')!.address }] }],
    };
    writeFileSync(configPath, JSON.stringify(extended, null, 2));
    const reloaded = await ringlb.waitForLine(is('config reloaded'), 5000, 'config reloaded after an edit', since);
    assert.deepEqual(names(reloaded.listenersAdded), ['extra']);
    const ready = await ringlb.waitForLine((l) => l.msg === 'listener ready' && l.listener === 'extra', 5000, 'listener ready extra', since);
    const extraPort = Number(String(ready.address).split(':').at(-1));
    const updated = await ringlb.waitForLine(poolUpdated('web'), 5000, 'pool updated web', since);
    assert.deepEqual(names(updated.added), ['wb']);
    assert.deepEqual(names(updated.removed), ['wa']);
    assert.equal(await whichBackend({ port: extraPort }), 'wb');
    assert.equal(await whichBackend({ port: mainPort }), 'wb');
    const onExtra = await openClient({ port: extraPort });
    cleanups.push(() => void onExtra.destroy());
    assert.equal(await readLine(onExtra), 'wb');

    // Replaced by rename (another way editors save): the extra listener goes away.
    since = ringlb.lines.length;
    replaceFile(configPath, { ...extended, listeners: base.listeners });
    const second = await ringlb.waitForLine(is('config reloaded'), 5000, 'config reloaded after a rename', since);
    assert.deepEqual(names(second.listenersRemoved), ['extra']);
    assert.equal(await connectError({ port: extraPort }), 'ECONNREFUSED');
    // The removed listener's connection drains: it keeps flowing.
    onExtra.write('after removal\n');
    assert.equal(await readLine(onExtra), 'after removal');
    onExtra.destroy();
    assert.equal(await whichBackend({ port: mainPort }), 'wb');
    assert.equal(ringlb.lines.slice(since).filter(is('config reload refused')).length, 0);
  });
});

describe('what a reload applies', () => {
  test('policy change (rebuilt in place; old connections keep theirs), discovery change, listener rebind (remove + add, old connections drain), admin token change', async () => {
    const backends = await backendsNamed('x', 'y', 'z');
    const entry = (id: string) => ({ id, address: backends.get(id)!.address });
    writeFileSync(join(temp.path, 'list-1.json'), JSON.stringify([entry('x')]));
    writeFileSync(join(temp.path, 'list-2.json'), JSON.stringify([entry('y'), entry('z')]));
    const configPath = join(temp.path, 'kinds.json');
    const version = (n: 1 | 2) => ({
      admin: { bind: '127.0.0.1:0', token: n === 1 ? 'first-token-0123456789' : 'second-token-0123456789' },
      listeners: [
        { name: 'front', bind: '127.0.0.1:0', pool: 'web' },
        { name: 'side', bind: n === 1 ? '127.0.0.1:0' : '127.0.0.2:0', pool: 'disc' },
      ],
      pools: [
        { name: 'web', balance: n === 1 ? 'maglev' : 'ring_hash', backends: ['x', 'y', 'z'].map(entry) },
        { name: 'disc', balance: 'round_robin', discovery: { type: 'file', path: n === 1 ? 'list-1.json' : 'list-2.json' } },
      ],
      drainTimeoutMs: 30000,
      log: { level: 'info' },
    });
    replaceFile(configPath, version(1));
    const ringlb = run(['run', '--config', configPath]);
    const front = await ringlb.listenerPort('front');
    const oldSide = await ringlb.listenerPort('side');
    await ringlb.waitForLine(poolUpdated('disc'), 5000, 'first set of disc');
    const firstAdmin = new AdminClient(String((await ringlb.waitForLine(is('admin ready'), 5000, 'admin ready')).address), 'first-token-0123456789');
    cleanups.push(() => firstAdmin.close());
    const onFront = await openClient({ port: front, localAddress: '127.0.5.1' });
    cleanups.push(() => void onFront.destroy());
    const frontBackend = await readLine(onFront);
    assert.equal(frontBackend, await firstAdmin.lookup('web', '127.0.5.1'));
    const onSide = await openClient({ port: oldSide });
    cleanups.push(() => void onSide.destroy());
    assert.equal(await readLine(onSide), 'x');

    const since = ringlb.lines.length;
    replaceFile(configPath, version(2));
    ringlb.child.kill('SIGHUP');
    const reloaded = await ringlb.waitForLine(is('config reloaded'), 5000, 'config reloaded', since);
    assert.deepEqual(names(reloaded.poolsChanged), ['disc', 'web'], JSON.stringify(reloaded));
    // A rebind is a remove + add in effect (checked below through the sockets), reported on its own.
    assert.deepEqual(names(reloaded.listenersRebound), ['side'], JSON.stringify(reloaded));
    assert.deepEqual(names(reloaded.listenersAdded), [], JSON.stringify(reloaded));
    assert.deepEqual(names(reloaded.listenersRemoved), [], JSON.stringify(reloaded));
    // The config's own line for the changed pool may come first; the new source's set follows.
    const disc = await ringlb.waitForLine((l) => poolUpdated('disc')(l) && l.source === 'file', 5000, 'disc from list-2', since);
    assert.deepEqual(names(disc.added), ['y', 'z']);
    assert.deepEqual(names(disc.removed), ['x']);
    await ringlb.waitForLine(poolUpdated('web'), 5000, 'pool updated web', since);
    const sideReady = await ringlb.waitForLine((l) => l.msg === 'listener ready' && l.listener === 'side', 5000, 'side rebound', since);
    assert.match(String(sideReady.address), /^127\.0\.0\.2:\d+$/);
    const newSide = Number(String(sideReady.address).split(':').at(-1));

    // The admin server restarted with the new token (and, bound to port 0, a new port).
    const adminLine = await ringlb.waitForLine(is('admin ready'), 5000, 'admin ready again', since);
    const secondAdmin = new AdminClient(String(adminLine.address), 'second-token-0123456789');
    cleanups.push(() => secondAdmin.close());
    assert.equal((await secondAdmin.request('GET', '/v1/pools')).status, 200);
    assert.equal((await secondAdmin.request('GET', '/v1/pools', { token: 'first-token-0123456789' })).status, 401);

    // New connections: ring_hash now, as the lookup says; the new side listener serves list-2.
    for (const ip of ['127.0.5.1', '127.0.5.2', '127.0.5.3', '127.0.5.4']) {
      assert.equal(await whichBackend({ port: front, localAddress: ip }), await secondAdmin.lookup('web', ip), `client ${ip}`);
    }
    const sideBackends = new Set([await whichBackend({ host: '127.0.0.2', port: newSide }), await whichBackend({ host: '127.0.0.2', port: newSide })]);
    assert.deepEqual([...sideBackends].sort(), ['y', 'z']);
    assert.equal(await connectError({ port: oldSide }), 'ECONNREFUSED');

    // Connections opened before the reload keep flowing on their old pool and old listener.
    onFront.write('front still\n');
    assert.equal(await readLine(onFront), 'front still');
    onSide.write('side still\n');
    assert.equal(await readLine(onSide), 'side still');
    onFront.destroy();
    onSide.destroy();
  });
});

describe('health rules at start-up and on reload', () => {
  test('listeners bind after the first check round (pool warmed); a backend added by reload gets no traffic until its first passing check', async () => {
    const backends = await backendsNamed('a');
    const laterPort = await closedPort();
    const check = { intervalMs: 200, timeoutMs: 200, jitter: 0, rise: 1, fall: 1, initialHealthy: false };
    const configPath = join(temp.path, 'warming.json');
    const withBackends = (entries: ReadonlyArray<{ id: string; address: string }>) => ({
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', balance: 'round_robin', healthCheck: check, backends: entries }],
      drainTimeoutMs: 5000,
      log: { level: 'info' },
    });
    replaceFile(configPath, withBackends([{ id: 'a', address: backends.get('a')!.address }]));
    const ringlb = run(['run', '--config', configPath]);
    const port = await ringlb.listenerPort('web');
    const warmedAt = ringlb.lines.findIndex((l) => l.msg === 'pool warmed' && l.pool === 'web');
    const readyAt = ringlb.lines.findIndex((l) => l.msg === 'listener ready' && l.listener === 'web');
    assert.ok(warmedAt >= 0 && warmedAt < readyAt, 'pool warmed before listener ready');
    assert.equal(ringlb.lines[warmedAt]!.healthy, 1);
    assert.equal(ringlb.lines[warmedAt]!.routable, 1);
    assert.equal(ringlb.lines[warmedAt]!.total, 1);
    // The very first client is served (not refused with no_backend).
    assert.equal(await whichBackend({ port }), 'a');

    // b joins by reload while nothing listens at its address: pending, so no traffic.
    const since = ringlb.lines.length;
    replaceFile(configPath, withBackends([{ id: 'a', address: backends.get('a')!.address }, { id: 'b', address: `127.0.0.1:${laterPort}` }]));
    ringlb.child.kill('SIGHUP');
    const updated = await ringlb.waitForLine(poolUpdated('web'), 5000, 'pool updated +b', since);
    assert.deepEqual(names(updated.added), ['b']);
    for (let i = 0; i < 6; i += 1) assert.equal(await whichBackend({ port }), 'a', `connection ${i} after b was added`);
    // b comes alive: up after one passing check, then it gets its share.
    const b = await startNamedBackend('b', { port: laterPort });
    cleanups.push(() => b.close());
    await ringlb.waitForLine((l) => l.msg === 'backend up' && l.id === 'b', 5000, 'backend up b', since);
    const reached = new Set<string>();
    for (let i = 0; i < 4; i += 1) reached.add(await whichBackend({ port }));
    assert.deepEqual([...reached].sort(), ['a', 'b']);
    assert.equal(ringlb.accessLines().filter((l) => l.outcome !== 'ok').length, 0, 'a connection was refused or failed');
  });
});

describe('administrative state by reload', () => {
  test('a backend set to drain keeps its open connection flowing and takes no new ones; back to active, it takes traffic again', async () => {
    const backends = await backendsNamed('ra', 'rb');
    const configPath = join(temp.path, 'state.json');
    const configWith = (stateOfB: 'active' | 'drain' | 'maint') => ({
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{
        name: 'web',
        balance: 'round_robin',
        backends: [
          { id: 'ra', address: backends.get('ra')!.address },
          { id: 'rb', address: backends.get('rb')!.address, state: stateOfB },
        ],
      }],
      drainTimeoutMs: 60_000,
    });
    replaceFile(configPath, configWith('active'));
    const ringlb = run(['run', '--config', configPath]);
    const port = await ringlb.listenerPort('web');

    // Round robin over two: of two connections, one lands on rb. Hold it open.
    const first = await openClient({ port });
    const second = await openClient({ port });
    cleanups.push(() => { first.destroy(); second.destroy(); });
    const greetings = [await readLine(first), await readLine(second)];
    assert.deepEqual([...greetings].sort(), ['ra', 'rb']);
    const onB = greetings[0] === 'rb' ? first : second;

    for (const state of ['drain', 'maint'] as const) {
      const since = ringlb.lines.length;
      replaceFile(configPath, configWith(state));
      ringlb.child.kill('SIGHUP');
      await ringlb.waitForLine(is('config reloaded'), 5000, `config reloaded (${state})`, since);
      // New connections avoid rb ...
      for (let i = 0; i < 6; i += 1) assert.equal(await whichBackend({ port }), 'ra', `${state}: a new connection reached rb`);
      // ... while the one already on rb keeps echoing both ways.
      onB.write(`still flowing in ${state}\n`);
      assert.equal(await readLine(onB), `still flowing in ${state}`);
    }

    const since = ringlb.lines.length;
    replaceFile(configPath, configWith('active'));
    ringlb.child.kill('SIGHUP');
    await ringlb.waitForLine(is('config reloaded'), 5000, 'config reloaded (active)', since);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i += 1) seen.add(await whichBackend({ port }));
    assert.deepEqual([...seen].sort(), ['ra', 'rb']);
  });
});
