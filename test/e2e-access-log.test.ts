/**
 * The access log as its own stream (src/access-log/), end to end with real backends and sockets:
 * a file output reopened on SIGUSR1 after a rename (one thread, and two worker threads where this
 * Node has reusePort), sampling 0 keeping failures only, `log.level: "warn"` keeping access lines,
 * `enabled: false` keeping health lines, and the connect and periodic open lines of a long-lived
 * connection, in order, before its close line.
 */
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { Ringlb } from '../src/runtime.js';
import { validateConfig } from '../src/config/load.js';
import type { RinglbConfig } from '../src/config/types.js';
import { readFileLines, waitForFileLines } from './helpers/access-file.js';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { closed, openClient, readLine } from './helpers/clients.js';
import { LogCapture, type LogLine } from './helpers/log-capture.js';
import { RinglbProcess, startRinglb, TempDir } from './helpers/ringlb-process.js';
import { workersTest } from './helpers/workers.js';

/** One proxied connection: read the backend's greeting, close, wait until closed. Returns the client's `host:port`. */
async function shortConnection(port: number): Promise<string> {
  const socket = await openClient({ port });
  const client = `127.0.0.1:${socket.localPort}`;
  try {
    await readLine(socket);
    socket.end();
    await closed(socket);
  } finally {
    socket.destroy();
  }
  return client;
}

async function shortConnections(port: number, count: number): Promise<string[]> {
  const clients: string[] = [];
  for (let i = 0; i < count; i++) clients.push(await shortConnection(port));
  return clients;
}

function closeLinesOf(lines: readonly LogLine[], clients: readonly string[]): LogLine[] {
  const wanted = new Set(clients);
  return lines.filter((line) => line.msg === 'connection closed' && wanted.has(String(line.client)));
}

/** After exit: resolves once every line of the child's stdout has been read. */
async function stdoutClosed(ringlb: RinglbProcess): Promise<void> {
  const stdout = ringlb.child.stdout!;
  if (stdout.closed) return;
  await new Promise((resolve) => stdout.once('close', resolve));
}

async function backendFor(t: TestContext, name: string): Promise<NamedBackend> {
  const backend = await startNamedBackend(name);
  t.after(() => backend.close());
  return backend;
}

async function cli(t: TestContext, temp: TempDir, config: unknown, listeners: readonly string[]): Promise<{ ringlb: RinglbProcess; ports: Map<string, number> }> {
  const started = await startRinglb(temp.writeJson(config), listeners);
  t.after(() => started.ringlb.kill());
  return started;
}

/** Rotation as logrotate does it: lines in a file; rename; SIGUSR1; new lines in a new file, none lost. */
async function rotationRoundTrip(t: TestContext, workers: number): Promise<void> {
  const temp = new TempDir();
  t.after(() => temp.remove());
  const backend = await backendFor(t, 'a');
  const file = join(temp.path, 'access.log');
  const { ringlb, ports } = await cli(
    t,
    temp,
    {
      workers,
      log: { access: { output: 'access.log' } }, // relative: the config file's directory
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', backends: [{ address: backend.address }] }],
    },
    ['web'],
  );
  const port = ports.get('web')!;
  if (workers > 1) await ringlb.waitForLine((l) => l.msg === 'data-plane workers ready' && l.workers === workers);

  const first = await shortConnections(port, 4);
  await waitForFileLines(file, (lines) => closeLinesOf(lines, first).length === 4, 10_000, 'lines before the rename');

  // Renamed: the threads still hold the old file open, so lines keep going there until SIGUSR1.
  const rotated = `${file}.1`;
  renameSync(file, rotated);
  const beforeSignal = await shortConnections(port, 2);
  await waitForFileLines(rotated, (lines) => closeLinesOf(lines, beforeSignal).length === 2, 10_000, 'lines after the rename, before SIGUSR1');

  const since = ringlb.lines.length;
  ringlb.child.kill('SIGUSR1');
  const reopened = await ringlb.waitForLine((l) => l.msg === 'access log reopened' || l.msg === 'access log reopen failed', 10_000, 'reopen', since);
  assert.equal(reopened.msg, 'access log reopened', JSON.stringify(reopened));
  assert.equal(reopened.output, file);

  // Enough connections that the kernel's reusePort hash gives each worker some (2^-19 odds otherwise).
  const afterSignal = await shortConnections(port, workers > 1 ? 20 : 4);
  const fresh = await waitForFileLines(file, (lines) => closeLinesOf(lines, afterSignal).length === afterSignal.length, 10_000, 'lines after SIGUSR1');

  const old = readFileLines(rotated);
  const now = readFileLines(file);
  assert.deepEqual(old.broken, [], 'a torn line in the rotated file');
  assert.deepEqual(now.broken, [], 'a torn line in the new file');
  assert.equal(closeLinesOf(old.lines, [...first, ...beforeSignal]).length, 6);
  assert.equal(closeLinesOf(old.lines, afterSignal).length, 0, 'a line after SIGUSR1 went to the renamed file');
  assert.equal(closeLinesOf(fresh, [...first, ...beforeSignal]).length, 0);
  for (const line of closeLinesOf(fresh, afterSignal)) {
    assert.equal(line.event, 'close');
    assert.equal(line.outcome, 'ok');
    assert.equal(line.listener, 'web');
    assert.equal(line.pool, 'web');
    assert.equal(line.backend, backend.address);
  }
  if (workers > 1) {
    const writers = new Set(closeLinesOf(fresh, afterSignal).map((line) => line.worker));
    assert.deepEqual([...writers].sort(), [0, 1], 'every worker reopened and writes to the new file');
  }
  // Access lines went to the file only; stdout kept the operational lines.
  assert.equal(ringlb.accessLines().length, 0);
  assert.deepEqual(ringlb.otherStdout, []);
}

/** SIGHUP and its outcome line. */
async function reloadWith(ringlb: RinglbProcess, path: string, config: unknown): Promise<LogLine> {
  writeFileSync(path, JSON.stringify(config));
  const since = ringlb.lines.length;
  ringlb.child.kill('SIGHUP');
  return await ringlb.waitForLine((l) => l.msg === 'config reloaded' || l.msg === 'config reload refused', 10_000, 'reload outcome', since);
}

/** A reload moves the output to another file in every thread; one that cannot be opened is refused and changes nothing. */
async function outputReload(t: TestContext, workers: number): Promise<void> {
  const temp = new TempDir();
  t.after(() => temp.remove());
  const backend = await backendFor(t, 'a');
  const config = (output: string): unknown => ({
    workers,
    log: { access: { output } },
    listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
    pools: [{ name: 'web', backends: [{ address: backend.address }] }],
  });
  const first = join(temp.path, 'first.log');
  const second = join(temp.path, 'second.log');
  const path = temp.writeJson(config(first));
  const started = await startRinglb(path, ['web']);
  t.after(() => started.ringlb.kill());
  const { ringlb, ports } = started;
  const port = ports.get('web')!;
  const before = await shortConnections(port, 2);
  await waitForFileLines(first, (lines) => closeLinesOf(lines, before).length === 2);

  assert.equal((await reloadWith(ringlb, path, config(second))).msg, 'config reloaded');
  const moved = await shortConnections(port, workers > 1 ? 20 : 4);
  await waitForFileLines(second, (lines) => closeLinesOf(lines, moved).length === moved.length, 10_000, 'lines in the new output');
  assert.equal(closeLinesOf(readFileLines(first).lines, moved).length, 0, 'a thread still wrote to the old output');
  if (workers > 1) assert.deepEqual([...new Set(closeLinesOf(readFileLines(second).lines, moved).map((l) => l.worker))].sort(), [0, 1]);

  const refused = await reloadWith(ringlb, path, config(join(temp.path, 'missing', 'third.log')));
  assert.equal(refused.msg, 'config reload refused');
  assert.match(JSON.stringify(refused.errors), /log\.access\.output: cannot open .*missing\/third\.log for appending: ENOENT/);
  const after = await shortConnections(port, 2);
  await waitForFileLines(second, (lines) => closeLinesOf(lines, after).length === 2, 10_000, 'lines after the refused reload');
}

describe('access log: file output and SIGUSR1 (CLI)', () => {
  test('one thread: lines in the file; after a rename and SIGUSR1, new lines in a new file', async (t) => {
    await rotationRoundTrip(t, 1);
  });

  workersTest('workers 2: every worker reopens; whole lines from both workers in the new file', async (t) => {
    await rotationRoundTrip(t, 2);
  });

  test('one thread: a reload moves the output to another file; an output that cannot be opened refuses the reload', async (t) => {
    await outputReload(t, 1);
  });

  workersTest('workers 2: a reload moves every worker to the new file; a refused one changes nothing', async (t) => {
    await outputReload(t, 2);
  });

  test('a file that cannot be opened refuses the start, with the JSON path', async (t) => {
    const temp = new TempDir();
    t.after(() => temp.remove());
    const config = temp.writeJson({
      workers: 1,
      log: { access: { output: join(temp.path, 'no-such-dir', 'access.log') } },
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', backends: [{ address: '127.0.0.1:9' }] }],
    });
    const ringlb = new RinglbProcess(['run', '--config', config]);
    t.after(() => ringlb.kill());
    const line = await ringlb.waitForLine((l) => l.msg === 'start failed');
    assert.match(String(line.error), /^log\.access\.output: cannot open .*no-such-dir\/access\.log for appending: ENOENT/);
    assert.notEqual((await ringlb.waitForExit()).code, 0);
  });
});

describe('access log: sampling, reload (CLI)', () => {
  test('sample 0 keeps failures only: a refused backend\'s connect_failed and a limit\'s rejection are logged, ok connections are not', async (t) => {
    const temp = new TempDir();
    t.after(() => temp.remove());
    const backend = await backendFor(t, 'a');
    const refused = await closedPort();
    const { ringlb, ports } = await cli(
      t,
      temp,
      {
        workers: 1,
        log: { access: { sample: 0 } },
        listeners: [
          { name: 'good', bind: '127.0.0.1:0', pool: 'good' },
          { name: 'bad', bind: '127.0.0.1:0', pool: 'bad' },
          { name: 'one', bind: '127.0.0.1:0', pool: 'good', maxConnections: 1 },
        ],
        pools: [
          { name: 'good', backends: [{ address: backend.address }] },
          { name: 'bad', retries: 0, backends: [{ address: `127.0.0.1:${refused}` }] },
        ],
      },
      ['good', 'bad', 'one'],
    );
    const ok = await shortConnections(ports.get('good')!, 10);
    // Over a listener's limit: refused by the listener itself (its own line, a failure too).
    const holder = await openClient({ port: ports.get('one')! });
    t.after(() => holder.destroy());
    assert.equal(await readLine(holder), 'a');
    const over = await openClient({ port: ports.get('one')! });
    const overClient = `127.0.0.1:${over.localPort}`;
    await closed(over);
    const rejected = await ringlb.waitForLine((l) => l.msg === 'connection closed' && l.client === overClient);
    assert.equal(rejected.outcome, 'rejected_max_connections');
    assert.equal(rejected.event, 'close');
    holder.end();
    await closed(holder);
    const failing = await openClient({ port: ports.get('bad')! });
    const failingClient = `127.0.0.1:${failing.localPort}`;
    await closed(failing);
    const failed = await ringlb.waitForLine((l) => l.msg === 'connection closed' && l.client === failingClient);
    assert.equal(failed.outcome, 'connect_failed');
    assert.equal(failed.event, 'close');
    assert.equal(failed.backend, `127.0.0.1:${refused}`);
    // Every line is out once the process has exited: then the absence of ok lines is a fact.
    ringlb.child.kill('SIGTERM');
    assert.equal((await ringlb.waitForExit()).code, 0);
    await stdoutClosed(ringlb);
    assert.equal(closeLinesOf(ringlb.lines, ok).length, 0, 'an ok connection was logged at sample 0');
    assert.deepEqual(ringlb.accessLines().map((l) => l.outcome), ['rejected_max_connections', 'connect_failed']);
  });

  test('reload moving a listener to another pool: lines name the pool each connection uses', async (t) => {
    const temp = new TempDir();
    t.after(() => temp.remove());
    const [first, second] = [await backendFor(t, 'a'), await backendFor(t, 'b')];
    const config = (pool: string): unknown => ({
      workers: 1,
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool }],
      pools: [
        { name: 'a', backends: [{ address: first.address }] },
        { name: 'b', backends: [{ address: second.address }] },
      ],
    });
    const path = temp.writeJson(config('a'));
    const started = await startRinglb(path, ['web']);
    t.after(() => started.ringlb.kill());
    const { ringlb, ports } = started;
    const held = await openClient({ port: ports.get('web')! });
    t.after(() => held.destroy());
    const heldClient = `127.0.0.1:${held.localPort}`;
    assert.equal(await readLine(held), 'a');

    assert.equal((await reloadWith(ringlb, path, config('b'))).msg, 'config reloaded');
    const [fresh] = await shortConnections(ports.get('web')!, 1);
    const freshLine = await ringlb.waitForLine((l) => l.msg === 'connection closed' && l.client === fresh);
    assert.equal(freshLine.pool, 'b');
    assert.equal(freshLine.backend, second.address);

    held.end();
    await closed(held);
    const heldLine = await ringlb.waitForLine((l) => l.msg === 'connection closed' && l.client === heldClient);
    assert.equal(heldLine.pool, 'a', 'the held connection kept pool a and its line says so');
    assert.equal(heldLine.backend, first.address);
  });

  test('reload: sample 1 → 0 stops ok lines without a restart', async (t) => {
    const temp = new TempDir();
    t.after(() => temp.remove());
    const backend = await backendFor(t, 'a');
    const config = (sample: number): unknown => ({
      workers: 1,
      log: { access: { sample } },
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', backends: [{ address: backend.address }] }],
    });
    const path = temp.writeJson(config(1));
    const started = await startRinglb(path, ['web']);
    t.after(() => started.ringlb.kill());
    const { ringlb, ports } = started;
    const before = await shortConnections(ports.get('web')!, 3);
    await ringlb.waitForLine(() => closeLinesOf(ringlb.lines, before).length === 3);

    const reloaded = await reloadWith(ringlb, path, config(0));
    assert.equal(reloaded.msg, 'config reloaded', JSON.stringify(reloaded));

    const afterReload = await shortConnections(ports.get('web')!, 5);
    ringlb.child.kill('SIGTERM');
    assert.equal((await ringlb.waitForExit()).code, 0);
    await stdoutClosed(ringlb);
    assert.equal(closeLinesOf(ringlb.lines, afterReload).length, 0);
  });
});

describe('access log: long-lived connections (CLI)', () => {
  test('onConnect and open lines appear while the connection lives, with bytes so far, before its close line', async (t) => {
    await longLived(t, 1);
  });

  workersTest('workers 2: the worker holding the connection writes its connect and open lines', async (t) => {
    await longLived(t, 2);
  });
});

/** A connection held open: its connect line, two open lines with bytes so far, then its close line. */
async function longLived(t: TestContext, workers: number): Promise<void> {
  const temp = new TempDir();
  t.after(() => temp.remove());
  const backend = await backendFor(t, 'a');
  const { ringlb, ports } = await cli(
    t,
    temp,
    {
      workers,
      log: { onConnect: true, openConnectionsIntervalMs: 200 },
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
      pools: [{ name: 'web', backends: [{ address: backend.address }] }],
    },
    ['web'],
  );
  const socket = await openClient({ port: ports.get('web')! });
  t.after(() => socket.destroy());
  const client = `127.0.0.1:${socket.localPort}`;
  assert.equal(await readLine(socket), 'a');

  const connect = await ringlb.waitForLine((l) => l.client === client && l.event === 'connect');
  assert.equal(connect.msg, 'connection established');
  assert.equal(connect.backend, backend.address);
  assert.equal(connect.attempts, 1);
  assert.equal(typeof connect.connectMs, 'number');

  const firstOpen = await ringlb.waitForLine((l) => l.client === client && l.event === 'open');
  assert.equal(firstOpen.msg, 'connection open');
  assert.ok(Number(firstOpen.durationMs) >= 200, JSON.stringify(firstOpen));
  assert.equal(firstOpen.bytesOut, 2); // the greeting

  // Bytes moved after the first open line show in the next one.
  socket.write('hello\n');
  assert.equal(await readLine(socket), 'hello');
  const from = ringlb.lines.indexOf(firstOpen) + 1;
  const secondOpen = await ringlb.waitForLine((l) => l.client === client && l.event === 'open', 10_000, 'second open line', from);
  assert.equal(secondOpen.bytesIn, 6);
  assert.equal(secondOpen.bytesOut, 8);
  assert.ok(Number(secondOpen.durationMs) - Number(firstOpen.durationMs) >= 200, `${firstOpen.durationMs} → ${secondOpen.durationMs}`);

  socket.end();
  await closed(socket);
  const close = await ringlb.waitForLine((l) => l.client === client && l.msg === 'connection closed');
  assert.equal(close.event, 'close');
  assert.equal(close.outcome, 'ok');
  const events = ringlb.lines.filter((l) => l.client === client).map((l) => l.event);
  assert.equal(events[0], 'connect');
  assert.equal(events.at(-1), 'close');
  assert.ok(events.filter((e) => e === 'open').length >= 2, events.join(','));
  // One worker holds the connection and writes every line of it.
  assert.equal(new Set(ringlb.lines.filter((l) => l.client === client).map((l) => l.worker)).size, 1);
}

describe('access log: independent of the operational log (runtime in this process)', () => {
  const running: Ringlb[] = [];
  after(async () => {
    for (const ringlb of running) await ringlb.close();
  });

  function configOf(raw: unknown): RinglbConfig {
    const result = validateConfig(raw);
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    return result.config;
  }

  test('log.level warn: operational info lines are filtered, access lines are all written', async (t) => {
    const backend = await backendFor(t, 'a');
    const operational = new LogCapture();
    const access = new LogCapture();
    const ringlb = new Ringlb({ logger: operational.logger('warn'), accessLogDestination: { write: (line: string) => access.write(line) } });
    running.push(ringlb);
    await ringlb.start(
      configOf({
        workers: 1,
        log: { level: 'warn' },
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
        pools: [{ name: 'web', backends: [{ address: backend.address }] }],
      }),
    );
    const port = Number(ringlb.listenerAddress('web')!.split(':').at(-1));
    const clients = await shortConnections(port, 5);
    await access.waitForLine(() => closeLinesOf(access.lines, clients).length === 5);
    for (const line of closeLinesOf(access.lines, clients)) assert.equal(line.outcome, 'ok');
    assert.equal(operational.lines.filter((l) => l.msg === 'listener ready').length, 0, 'info lines should be filtered at warn');
    assert.equal(operational.lines.filter((l) => l.msg === 'connection closed').length, 0);
    await ringlb.close();
  });

  test('log.access.enabled false: no access line, and a backend going down is still logged', async (t) => {
    const backend = await startNamedBackend('a');
    t.after(() => backend.close());
    const operational = new LogCapture();
    const access = new LogCapture();
    const ringlb = new Ringlb({ logger: operational.logger('info'), accessLogDestination: { write: (line: string) => access.write(line) } });
    running.push(ringlb);
    await ringlb.start(
      configOf({
        workers: 1,
        log: { access: { enabled: false } },
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
        pools: [
          {
            name: 'web',
            healthCheck: { type: 'tcp', intervalMs: 100, timeoutMs: 100, rise: 1, fall: 1, initialHealthy: true },
            backends: [{ address: backend.address }],
          },
        ],
      }),
    );
    const port = Number(ringlb.listenerAddress('web')!.split(':').at(-1));
    await shortConnections(port, 3);
    await backend.close();
    const down = await operational.waitForLine((l) => l.msg === 'backend down', 10_000, 'backend down');
    assert.equal(down.pool, 'web');
    // close() waits for every connection: nothing is left to be written after it.
    await ringlb.close();
    assert.deepEqual(access.lines, []);
    assert.deepEqual(access.otherText, []);
  });
});
