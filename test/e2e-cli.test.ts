/**
 * The CLI as users run it: `check`, bad configs through `run` and `check`, usage errors, and the
 * signal protocol (first SIGTERM drains, a second one exits at once, the drain deadline cuts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { closed, connectError, openClient, readLine } from './helpers/clients.js';
import { configOf } from './helpers/config.js';
import { runCli, startRinglb, TempDir } from './helpers/ringlb-process.js';

/** A Node stack frame line, which a user error must never print. */
const STACK_FRAME = /^\s+at .+\(.*:\d+:\d+\)$/m;

describe('ringlb CLI', () => {
  const temp = new TempDir();
  let backend: NamedBackend;

  before(async () => {
    backend = await startNamedBackend('one');
  });

  after(async () => {
    await backend?.close();
    temp.remove();
  });

  const goodConfig = (extra: Record<string, unknown> = {}): string =>
    temp.writeJson(configOf([{ name: 'web', backends: [{ address: backend.address }] }], extra));

  it('check: exit 0 with a one-line summary for a valid config', async () => {
    const file = goodConfig();
    const { status, stdout, stderr } = await runCli(['check', '--config', file]);
    assert.equal(status.code, 0, stderr);
    assert.match(stdout, /ok \(1 listener\(s\), 1 pool\(s\), 1 backend\(s\)\)/);
  });

  const badConfigs: Array<{ what: string; text: string; paths: string[] }> = [
    {
      what: 'an unknown policy and a bad weight',
      text: JSON.stringify({
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
        pools: [{ name: 'web', balance: 'fastest', backends: [{ address: '127.0.0.1:9', weight: -1 }] }],
      }),
      paths: ['pools[0].balance', 'pools[0].backends[0].weight'],
    },
    {
      what: 'a listener pointing at a missing pool',
      text: JSON.stringify({
        listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'nope' }],
        pools: [{ name: 'web', backends: [{ address: '127.0.0.1:9' }] }],
      }),
      paths: ['listeners[0].pool'],
    },
  ];

  for (const bad of badConfigs) {
    for (const command of ['check', 'run']) {
      it(`${command}: ${bad.what} → exit 2, every path named, no stack trace`, async () => {
        const file = temp.writeText(bad.text);
        const { status, stderr } = await runCli([command, '--config', file]);
        assert.equal(status.code, 2, stderr);
        for (const path of bad.paths) assert.ok(stderr.includes(path), `stderr lacks ${path}:\n${stderr}`);
        assert.doesNotMatch(stderr, STACK_FRAME);
      });
    }
  }

  it('run: invalid JSON and a missing file → exit 2 without a stack trace', async () => {
    for (const file of [temp.writeText('{ "listeners": [ }'), `${temp.path}/missing.json`]) {
      const { status, stderr } = await runCli(['run', '--config', file]);
      assert.equal(status.code, 2, stderr);
      assert.ok(stderr.length > 0);
      assert.doesNotMatch(stderr, STACK_FRAME);
    }
  });

  it('usage errors → exit 2 with usage on stderr', async () => {
    for (const args of [[], ['frobnicate'], ['run'], ['run', '--config'], ['check', '--bogus', 'x'], ['demo', '--port', 'http']]) {
      const { status, stderr } = await runCli(args);
      assert.equal(status.code, 2, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, /Usage:/);
      assert.doesNotMatch(stderr, STACK_FRAME);
    }
  });

  it('--help and --version exit 0', async () => {
    const help = await runCli(['--help']);
    assert.equal(help.status.code, 0);
    assert.match(help.stdout, /ringlb run --config/);
    const version = await runCli(['--version']);
    assert.equal(version.status.code, 0);
    assert.match(version.stdout, /^ringlb \d+\.\d+\.\d+/);
  });

  it('run: a port already in use → exit 1 with a message, no stack trace', async () => {
    const file = temp.writeJson({
      listeners: [{ name: 'web', bind: backend.address, pool: 'web' }],
      pools: [{ name: 'web', backends: [{ address: backend.address }] }],
    });
    const { status, stderr } = await runCli(['run', '--config', file]);
    assert.equal(status.code, 1, stderr);
    assert.match(stderr, /EADDRINUSE|in use/);
    assert.doesNotMatch(stderr, STACK_FRAME);
  });

  it('SIGTERM: refuses new connections at once, lets the open one finish, exits 0', async (t) => {
    const { ringlb, ports } = await startRinglb(goodConfig({ drainTimeoutMs: 20_000 }), ['web']);
    t.after(() => ringlb.kill());
    const port = ports.get('web')!;
    const open = await openClient({ port });
    t.after(() => open.destroy());
    assert.equal(await readLine(open), 'one');

    ringlb.child.kill('SIGTERM');
    await ringlb.waitForLine((l) => l.msg === 'draining');
    assert.equal(await connectError({ port }), 'ECONNREFUSED');
    // The open connection still works both ways.
    open.write('still here\n');
    assert.equal(await readLine(open), 'still here');
    assert.equal(ringlb.child.exitCode, null, 'must wait for the open connection');
    open.end();
    await closed(open);
    const status = await ringlb.waitForExit();
    assert.deepEqual(status, { code: 0, signal: null });
    const drained = await ringlb.waitForLine((l) => l.msg === 'drained, exiting');
    assert.equal(drained.forced, 0);
  });

  it('SIGTERM: cuts connections still open at drainTimeoutMs, exits 0', async (t) => {
    const { ringlb, ports } = await startRinglb(goodConfig({ drainTimeoutMs: 200 }), ['web']);
    t.after(() => ringlb.kill());
    const open = await openClient({ port: ports.get('web')! });
    t.after(() => open.destroy());
    assert.equal(await readLine(open), 'one');
    let resetCode: string | undefined;
    open.on('error', (error: NodeJS.ErrnoException) => (resetCode = error.code));
    ringlb.child.kill('SIGTERM');
    await closed(open);
    // Cut with a reset, so a client that only writes or half-closed learns at once.
    assert.equal(resetCode, 'ECONNRESET');
    const status = await ringlb.waitForExit();
    assert.deepEqual(status, { code: 0, signal: null });
    assert.equal((await ringlb.waitForLine((l) => l.msg === 'drained, exiting')).forced, 1);
    const access = await ringlb.waitForLine((l) => l.msg === 'connection closed');
    assert.equal(access.outcome, 'drained');
  });

  it('a second signal exits at once without waiting for the drain', async (t) => {
    const { ringlb, ports } = await startRinglb(goodConfig({ drainTimeoutMs: 60_000 }), ['web']);
    t.after(() => ringlb.kill());
    const open = await openClient({ port: ports.get('web')! });
    t.after(() => open.destroy());
    assert.equal(await readLine(open), 'one');
    ringlb.child.kill('SIGTERM');
    await ringlb.waitForLine((l) => l.msg === 'draining');
    ringlb.child.kill('SIGINT');
    const status = await ringlb.waitForExit(5000);
    assert.deepEqual(status, { code: 1, signal: null });
  });
});
