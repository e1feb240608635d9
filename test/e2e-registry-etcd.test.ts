/**
 * etcd discovery end to end: a real etcd (Debian etcd-server) on loopback, two ringlb processes
 * watching the same prefix, services written with the etcd3 client. Puts and deletes change
 * routing within 1 s; a backend registered with a lease vanishes after its registering process is
 * SIGKILLed and the lease expires; with etcd stopped the pools keep routing on the last set, and
 * after etcd returns the source resyncs. Both processes map the same 500 client addresses
 * (127.0.x.y) to the same backends for maglev and ring_hash, before and after membership changes:
 * tables depend only on backend ids and weights, so every ringlb agrees without talking to the
 * others.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { AdminClient, adminAddress, loopbackClients } from './helpers/admin-client.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { whichBackend } from './helpers/clients.js';
import { startEtcd, type EtcdServer } from './helpers/etcd.js';
import { startRinglb, TempDir, type LogLine, type RinglbProcess } from './helpers/ringlb-process.js';

const PREFIX = '/ringlb/app/';
const POOLS = ['mag', 'ring'] as const;
type PoolName = (typeof POOLS)[number];
const CLIENTS = loopbackClients(500);
/** Real connections per pool and process that confirm what the lookups say. */
const SAMPLED = 16;
/** The bound: a put or delete changes routing within 1 s. */
const CHANGE_BOUND_MS = 1000;
const LEASE_TTL_S = 2;

const temp = new TempDir();
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.remove();
});

interface Instance {
  readonly ringlb: RinglbProcess;
  readonly admin: AdminClient;
  readonly ports: Record<PoolName, number>;
}

const poolUpdated = (pool: string, predicate: (line: LogLine) => boolean = () => true) => (line: LogLine) =>
  line.msg === 'pool updated' && line.pool === pool && predicate(line);
const lists = (field: unknown, id: string): boolean => Array.isArray(field) && field.includes(id);

describe('etcd discovery', () => {
  let etcd: EtcdServer;
  let client: Etcd3;
  const backends = new Map<string, NamedBackend>();
  const instances: Instance[] = [];

  const put = (id: string) => client.put(`${PREFIX}${id}`).value(JSON.stringify({ address: backends.get(id)!.address, weight: 1, state: 'active' }));
  const remove = (id: string) => client.delete().key(`${PREFIX}${id}`);

  /** Waits until every instance logged `pool updated` for every pool matching `predicate` after `since[i]`; returns the latest line time. */
  async function allUpdated(since: readonly number[], predicate: (line: LogLine) => boolean, what: string, timeoutMs = 5000): Promise<number> {
    let latest = 0;
    for (const [index, instance] of instances.entries()) {
      for (const pool of POOLS) {
        const line = await instance.ringlb.waitForLine(poolUpdated(pool, predicate), timeoutMs, `${what} (ringlb ${index}, ${pool})`, since[index]);
        latest = Math.max(latest, Number(line.time));
      }
    }
    return latest;
  }

  /**
   * For each pool: both processes map all 500 clients identically (lookups), every client has a
   * backend, and a sample of real connections reaches what the lookup said. Returns the mapping.
   */
  async function assertSameRouting(expectedIds: readonly string[]): Promise<Record<PoolName, Array<string | null>>> {
    const result = {} as Record<PoolName, Array<string | null>>;
    for (const pool of POOLS) {
      const [first, second] = await Promise.all(instances.map((instance) => instance.admin.lookupAll(pool, CLIENTS)));
      const differing = CLIENTS.filter((_, index) => first![index] !== second![index]);
      assert.deepEqual(differing, [], `${pool}: clients routed differently by the two processes`);
      assert.deepEqual([...new Set(first)].sort(), [...expectedIds].sort(), `${pool}: backends used by 500 clients`);
      for (const instance of instances) {
        for (let index = 0; index < SAMPLED; index += 1) {
          // Spread the sample over the whole client list.
          const sample = Math.floor((index * CLIENTS.length) / SAMPLED);
          const reached = await whichBackend({ port: instance.ports[pool], localAddress: CLIENTS[sample] });
          assert.equal(reached, first![sample], `${pool}: client ${CLIENTS[sample]}`);
        }
      }
      result[pool] = first!;
    }
    return result;
  }

  before(async () => {
    etcd = await startEtcd();
    cleanups.push(() => etcd.close());
    client = new Etcd3({ hosts: etcd.endpoint });
    cleanups.push(() => client.close());
    for (const name of ['b1', 'b2', 'b3', 'b4', 'b5', 'leased']) {
      const backend = await startNamedBackend(name);
      backends.set(name, backend);
      cleanups.push(() => backend.close());
    }
    await Promise.all(['b1', 'b2', 'b3'].map(put));

    // Short retries so the outage test is quick (defaults 1 s → 30 s).
    const discovery = { type: 'etcd', endpoints: [etcd.endpoint], prefix: PREFIX, requestTimeoutMs: 1000, retryMinMs: 100, retryMaxMs: 500 };
    const config = {
      admin: { bind: '127.0.0.1:0' },
      listeners: POOLS.map((pool) => ({ name: pool, bind: '127.0.0.1:0', pool })),
      pools: [
        { name: 'mag', balance: 'maglev', discovery },
        { name: 'ring', balance: 'ring_hash', discovery },
      ],
      drainTimeoutMs: 5000,
      log: { level: 'info' },
    };
    const file = temp.writeJson(config);
    for (let index = 0; index < 2; index += 1) {
      const { ringlb, ports } = await startRinglb(file, [...POOLS]);
      cleanups.push(() => ringlb.kill());
      const admin = new AdminClient(await adminAddress(ringlb));
      cleanups.push(() => admin.close());
      instances.push({ ringlb, admin, ports: { mag: ports.get('mag')!, ring: ports.get('ring')! } });
    }
    await allUpdated([0, 0], (l) => l.backends === 3 && l.source === 'etcd', 'initial set');
  });

  test('two processes route 500 clients identically (maglev, ring_hash); a put and a delete change routing within 1 s, still identically', async (t) => {
    await assertSameRouting(['b1', 'b2', 'b3']);

    let since = instances.map((instance) => instance.ringlb.lines.length);
    await put('b4');
    let putAt = Date.now();
    let appliedAt = await allUpdated(since, (l) => lists(l.added, 'b4'), 'b4 added');
    const addMs = appliedAt - putAt;
    assert.ok(addMs <= CHANGE_BOUND_MS, `put applied after ${addMs} ms`);
    const withB4 = await assertSameRouting(['b1', 'b2', 'b3', 'b4']);

    since = instances.map((instance) => instance.ringlb.lines.length);
    await remove('b2');
    putAt = Date.now();
    appliedAt = await allUpdated(since, (l) => lists(l.removed, 'b2'), 'b2 removed');
    const deleteMs = appliedAt - putAt;
    assert.ok(deleteMs <= CHANGE_BOUND_MS, `delete applied after ${deleteMs} ms`);
    const withoutB2 = await assertSameRouting(['b1', 'b3', 'b4']);

    // Consistent hashing: b2's clients moved; on the ring nobody else did, with maglev a few others
    // may (its disruption is minimal only approximately, Maglev paper §3.4).
    for (const pool of POOLS) {
      const moved = CLIENTS.filter((_, index) => withB4[pool][index] !== withoutB2[pool][index]);
      const hadB2 = CLIENTS.filter((_, index) => withB4[pool][index] === 'b2');
      if (pool === 'ring') {
        assert.deepEqual(moved, hadB2, 'ring: the clients that moved are exactly b2\'s');
      } else {
        assert.ok(hadB2.every((ip) => moved.includes(ip)), 'maglev: every b2 client moved');
        assert.ok(moved.length <= hadB2.length + 0.05 * CLIENTS.length, `maglev: ${moved.length} moved, b2 had ${hadB2.length}`);
      }
    }
    t.diagnostic(`put applied in ${addMs} ms, delete in ${deleteMs} ms (both processes, both pools)`);
  });

  test('a backend registered with a lease disappears after its registering process is killed', async (t) => {
    const since = instances.map((instance) => instance.ringlb.lines.length);
    const registrar = spawn(
      process.execPath,
      ['--input-type=module', '-e', REGISTRAR_SOURCE, etcd.endpoint, PREFIX, backends.get('leased')!.address, String(LEASE_TTL_S), DISCOVERY_MODULE],
      { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let registrarErrors = '';
    registrar.stderr.setEncoding('utf8').on('data', (chunk: string) => (registrarErrors += chunk));
    cleanups.push(() => {
      if (registrar.exitCode === null && registrar.signalCode === null) registrar.kill('SIGKILL');
    });
    const [ready] = (await Promise.race([
      once(registrar.stdout, 'data'),
      once(registrar, 'exit').then(() => {
        throw new Error(`registrar exited: ${registrarErrors}`);
      }),
    ])) as [Buffer];
    assert.equal(ready.toString('utf8').trim(), 'registered');
    await allUpdated(since, (l) => lists(l.added, 'leased'), 'leased added');
    const routing = await assertSameRouting(['b1', 'b3', 'b4', 'leased']);
    assert.ok(routing.mag.includes('leased'));

    const sinceKill = instances.map((instance) => instance.ringlb.lines.length);
    const exited = once(registrar, 'exit');
    registrar.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    // etcd expires the lease at most TTL after the last keepalive (sent every TTL/3), checked by
    // its lessor about every 500 ms; etcd may round a short TTL up to its minimum.
    const goneAt = await allUpdated(sinceKill, (l) => lists(l.removed, 'leased'), 'leased removed', LEASE_TTL_S * 1000 + 5000);
    const goneMs = goneAt - killedAt;
    assert.ok(goneMs <= LEASE_TTL_S * 1000 + 2000, `removed ${goneMs} ms after the kill`);
    await assertSameRouting(['b1', 'b3', 'b4']);
    t.diagnostic(`lease backend removed ${goneMs} ms after SIGKILL (TTL ${LEASE_TTL_S} s)`);
  });

  test('etcd stopped: the pools keep routing on the last set; etcd back: resync, and a put applies again', async (t) => {
    const before = await assertSameRouting(['b1', 'b3', 'b4']);
    const since = instances.map((instance) => instance.ringlb.lines.length);
    await etcd.stop();
    for (const [index, instance] of instances.entries()) {
      for (const pool of POOLS) {
        await instance.ringlb.waitForLine(
          (l) => l.msg === 'discovery error' && l.pool === pool,
          10_000,
          `discovery error (ringlb ${index}, ${pool})`,
          since[index],
        );
      }
    }
    const during = await assertSameRouting(['b1', 'b3', 'b4']);
    assert.deepEqual(during, before, 'routing changed while etcd was down');
    for (const [index, instance] of instances.entries()) {
      assert.equal(instance.ringlb.lines.slice(since[index]).filter((l) => l.msg === 'pool updated').length, 0, 'an outage changed a pool');
    }

    const sinceBack = instances.map((instance) => instance.ringlb.lines.length);
    const restartedAt = Date.now();
    await etcd.start();
    let recoveredAt = 0;
    for (const [index, instance] of instances.entries()) {
      for (const pool of POOLS) {
        const line = await instance.ringlb.waitForLine(
          (l) => l.msg === 'discovery recovered' && l.pool === pool,
          10_000,
          `discovery recovered (ringlb ${index}, ${pool})`,
          sinceBack[index],
        );
        recoveredAt = Math.max(recoveredAt, Number(line.time));
      }
    }
    for (const [index, instance] of instances.entries()) {
      const errors = instance.ringlb.lines.slice(since[index]).filter((l) => l.msg === 'discovery error');
      assert.equal(errors.length, POOLS.length, `ringlb ${index}: one discovery error per pool per outage`);
    }
    // The resync found the same set: nothing to rebuild.
    await assertSameRouting(['b1', 'b3', 'b4']);

    const sincePut = instances.map((instance) => instance.ringlb.lines.length);
    await put('b5');
    const putAt = Date.now();
    const appliedAt = await allUpdated(sincePut, (l) => lists(l.added, 'b5'), 'b5 added after the restart');
    assert.ok(appliedAt - putAt <= CHANGE_BOUND_MS, `put after the restart applied after ${appliedAt - putAt} ms`);
    await assertSameRouting(['b1', 'b3', 'b4', 'b5']);
    t.diagnostic(`recovered ${recoveredAt - restartedAt} ms after etcd restarted; put applied in ${appliedAt - putAt} ms`);
  });
});

/** dist/test/ → the package root (its node_modules has etcd3). */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The compiled discovery module, for `registerWithLease`. */
const DISCOVERY_MODULE = new URL('../src/discovery/index.js', import.meta.url).href;

/**
 * A service registering itself with a lease, then idling (the etcd3 client keeps the lease alive)
 * until it is killed. argv: endpoint, prefix, address, ttl seconds, discovery module URL.
 */
const REGISTRAR_SOURCE = `
const [endpoint, prefix, address, ttl, discoveryModule] = process.argv.slice(1);
const { Etcd3 } = await import('etcd3');
const { registerWithLease } = await import(discoveryModule);
const client = new Etcd3({ hosts: endpoint });
await registerWithLease(client, prefix, 'leased', { address, weight: 1, state: 'active' }, Number(ttl));
process.stdout.write('registered\\n');
setInterval(() => {}, 1 << 30);
`;
