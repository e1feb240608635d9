import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { createEtcdSource, type EtcdBackendValue, type EtcdSourceOptions } from '../src/discovery/etcd-source.js';
import type { DiscoverySource } from '../src/discovery/types.js';
import { DiscoveryRecorder, describeSet } from './helpers/discovery-recorder.js';
import { startEtcd, type EtcdServer } from './helpers/etcd.js';

let etcd: EtcdServer;
/** Plays the services and the operator: writes keys under the prefixes. */
let writer: Etcd3;
const sources: DiscoverySource[] = [];
const clients: Etcd3[] = [];

before(async () => {
  etcd = await startEtcd();
  writer = new Etcd3({ hosts: etcd.endpoint });
});
after(async () => {
  await Promise.all(sources.map((source) => source.stop()));
  for (const client of [writer, ...clients]) client?.close();
  await etcd?.close();
});

function startSource(prefix: string, extra: Partial<EtcdSourceOptions> = {}): DiscoveryRecorder {
  const source = createEtcdSource({ endpoints: [etcd.endpoint], prefix, retryMinMs: 100, retryMaxMs: 400, ...extra });
  sources.push(source);
  const recorder = new DiscoveryRecorder();
  source.start(recorder);
  return recorder;
}

const value = (address: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ address, ...extra });

describe('etcd discovery against a real etcd', () => {
  test('initial read, then put/delete under the prefix change the set within 1 s; bad values are skipped naming the key', async () => {
    const prefix = '/ringlb/basic/';
    await writer.put(`${prefix}b1`).value(value('127.0.0.1:9001', { weight: 3 }));
    await writer.put(`${prefix}b2`).value(value('127.0.0.1:9002', { state: 'drain', id: 'custom' }));
    await writer.put(`${prefix}bad`).value(value('127.0.0.1:9003', { weight: 1.5 }));
    await writer.put('/ringlb/basic-other/x').value(value('127.0.0.1:9999'));

    const recorder = startSource(prefix);
    const first = await recorder.next('update');
    assert.deepEqual(describeSet(first.backends), ['b1=127.0.0.1:9001/3/active', 'custom=127.0.0.1:9002/1/drain']);
    const invalid = recorder.events.filter((event) => event.type === 'invalid');
    assert.equal(invalid.length, 1);
    assert.equal(invalid[0].type === 'invalid' && invalid[0].error.message, `etcd ${prefix}: ${prefix}bad.weight: must be an integer 0..10000, got 1.5; key skipped`);

    let changedAt = Date.now();
    await writer.put(`${prefix}b3`).value(value('[::1]:9003'));
    const added = await recorder.next('update', 1000);
    assert.ok(added.at - changedAt < 1000);
    assert.deepEqual(describeSet(added.backends), ['b1=127.0.0.1:9001/3/active', 'b3=[::1]:9003/1/active', 'custom=127.0.0.1:9002/1/drain']);

    changedAt = Date.now();
    await writer.delete().key(`${prefix}b1`);
    const removed = await recorder.next('update', 1000);
    assert.ok(removed.at - changedAt < 1000);
    assert.deepEqual(describeSet(removed.backends), ['b3=[::1]:9003/1/active', 'custom=127.0.0.1:9002/1/drain']);

    // Fixing the bad key brings it in; one transaction changing two keys is one update.
    await writer.put(`${prefix}bad`).value(value('127.0.0.1:9003', { weight: 2 }));
    assert.deepEqual(describeSet((await recorder.next('update', 1000)).backends), ['b3=[::1]:9003/1/active', 'bad=127.0.0.1:9003/2/active', 'custom=127.0.0.1:9002/1/drain']);
    await writer.stm().transact((tx) => Promise.all([tx.put(`${prefix}b4`).value(value('127.0.0.1:9004')), tx.delete().key(`${prefix}b3`)]));
    const batch = await recorder.next('update', 1000);
    assert.deepEqual(describeSet(batch.backends), ['b4=127.0.0.1:9004/1/active', 'bad=127.0.0.1:9003/2/active', 'custom=127.0.0.1:9002/1/drain']);
    assert.deepEqual(recorder.pending(), []);
    assert.equal(recorder.events.filter((event) => event.type === 'error').length, 0);
  });

  test('a lease-registered backend disappears when its process is killed (lease expiry)', async () => {
    const prefix = '/ringlb/lease/';
    await writer.put(`${prefix}static`).value(value('127.0.0.1:9001'));
    const recorder = startSource(prefix);
    await recorder.next('update');

    const service = await startLeaseService(prefix, 'svc-1', { address: '127.0.0.1:9101', weight: 2 }, 1);
    try {
      assert.deepEqual(describeSet((await recorder.next('update', 1000)).backends), ['static=127.0.0.1:9001/1/active', 'svc-1=127.0.0.1:9101/2/active']);
      // The service dies without revoking: its keepalives stop and etcd expires the lease.
      const diedAt = Date.now();
      service.kill('SIGKILL');
      await once(service, 'exit');
      const expired = await recorder.next('update', 6000);
      assert.deepEqual(describeSet(expired.backends), ['static=127.0.0.1:9001/1/active']);
      // etcd raises a 1 s TTL to its minimum (about 2 s at default election settings) and sweeps
      // expired leases every 500 ms, so the key lives on for at least the TTL after the last renewal.
      assert.ok(expired.at - diedAt >= 500, `removed ${expired.at - diedAt} ms after the kill, before the lease could expire`);
    } finally {
      if (service.exitCode === null && service.signalCode === null) service.kill('SIGKILL');
    }
  });

  test('etcd stopped: one error and no empty set; restarted: recovered, full resync, then watching again', async () => {
    const prefix = '/ringlb/outage/';
    await writer.put(`${prefix}b1`).value(value('127.0.0.1:9001'));
    await writer.put(`${prefix}b2`).value(value('127.0.0.1:9002'));
    const recorder = startSource(prefix);
    const before = await recorder.next('update');

    await etcd.stop();
    const error = await recorder.next('error', 5000);
    assert.match(error.error.message, /^etcd \/ringlb\/outage\/: cannot reach etcd \(.+\); keeping the last set$/);
    await etcd.start();
    await recorder.next('recovered', 5000);
    const resync = await recorder.next('update');
    assert.deepEqual(describeSet(resync.backends), describeSet(before.backends));
    assert.equal(recorder.events.filter((event) => event.type === 'error').length, 1, 'one error per outage, not per retry');
    assert.ok(recorder.events.every((event) => event.type !== 'update' || event.backends.length === 2), 'never an empty or partial set');

    await writer.put(`${prefix}b3`).value(value('127.0.0.1:9003'));
    const after = await recorder.next('update', 1000);
    assert.deepEqual(after.backends.map((backend) => backend.id), ['b1', 'b2', 'b3']);
  });

  test('etcd unreachable at start: an error, no update, and the set arrives once it is reachable', async () => {
    const prefix = '/ringlb/late/';
    await writer.put(`${prefix}b1`).value(value('127.0.0.1:9001'));
    await etcd.stop();
    try {
      const recorder = startSource(prefix);
      await recorder.next('error', 5000);
      await etcd.start();
      await recorder.next('recovered', 5000);
      assert.deepEqual(describeSet((await recorder.next('update')).backends), ['b1=127.0.0.1:9001/1/active']);
      assert.equal(recorder.events.filter((event) => event.type === 'update').length, 1);
    } finally {
      if (!(await reachable())) await etcd.start();
    }
  });

  test('two sources on one prefix report identical sets (what lets two ringlb route alike)', async () => {
    const prefix = '/ringlb/twins/';
    for (let index = 1; index <= 5; index += 1) await writer.put(`${prefix}b${index}`).value(value(`127.0.0.${index}:9000`, { weight: index }));
    const [left, right] = [startSource(prefix), startSource(prefix)];
    assert.deepEqual(describeSet((await left.next('update')).backends), describeSet((await right.next('update')).backends));
    await writer.delete().key(`${prefix}b3`);
    assert.deepEqual(describeSet((await left.next('update', 1000)).backends), describeSet((await right.next('update', 1000)).backends));
  });

  test('bad options are refused at construction with the reason', () => {
    const cases: ReadonlyArray<readonly [EtcdSourceOptions, RegExp]> = [
      [{ endpoints: [], prefix: '/a/' }, /endpoints must be a non-empty list/],
      [{ endpoints: ['127.0.0.1:2379'], prefix: '/a/' }, /endpoint "127\.0\.0\.1:2379" must be a URL like http:\/\/127\.0\.0\.1:2379/],
      [{ endpoints: ['http://127.0.0.1:2379'], prefix: '' }, /prefix must be a non-empty string/],
    ];
    for (const [options, message] of cases) assert.throws(() => createEtcdSource(options), message);
  });
});

async function reachable(): Promise<boolean> {
  try {
    await writer.get('/ringlb/ping');
    return true;
  } catch {
    return false;
  }
}

/**
 * A separate process playing a service: it registers with `registerWithLease` (the documented way),
 * prints "registered", and keeps its lease alive until it is killed.
 */
async function startLeaseService(prefix: string, id: string, backend: EtcdBackendValue, ttlSeconds: number): Promise<ChildProcess> {
  const moduleUrl = new URL('../src/discovery/etcd-source.js', import.meta.url).href;
  const script = [
    "import { Etcd3 } from 'etcd3';",
    `import { registerWithLease } from ${JSON.stringify(moduleUrl)};`,
    `const client = new Etcd3({ hosts: ${JSON.stringify(etcd.endpoint)} });`,
    `await registerWithLease(client, ${JSON.stringify(prefix)}, ${JSON.stringify(id)}, ${JSON.stringify(backend)}, ${ttlSeconds});`,
    "process.stdout.write('registered\\n');",
  ].join('\n');
  // cwd = the package root, so the bare 'etcd3' import resolves from its node_modules.
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout?.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the lease service did not register within 5 s')), 5000);
    child.stdout?.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('registered')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the lease service exited (${code}) before registering`));
    });
  });
  return child;
}
