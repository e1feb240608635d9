/**
 * DNS discovery end to end: a real dnsmasq on loopback serves SRV records for
 * `_app._tcp.svc.test`; ringlb re-resolves every 300 ms. Changing the record set (dnsmasq
 * restarted with new records, the helper's only way to change SRV records) changes the pool
 * within about one interval, and a DNS outage keeps the last set routing.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { whichBackend } from './helpers/clients.js';
import { startDnsmasq, type Dnsmasq, type SrvRecord } from './helpers/dnsmasq.js';
import { startRinglb, TempDir, type LogLine } from './helpers/ringlb-process.js';

const INTERVAL_MS = 300;
const RETRY_MIN_MS = 100;
const SRV_NAME = '_app._tcp.svc.test';
const TARGET = 'backend.svc.test';

const temp = new TempDir();
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.remove();
});

const poolUpdated = (line: LogLine) => line.msg === 'pool updated' && line.pool === 'app';
const sorted = (field: unknown): string[] => (Array.isArray(field) ? field.map(String).sort() : []);

describe('dns discovery via dnsmasq', () => {
  test('a changed SRV record set changes the pool within one interval; an outage keeps the last set', async (t) => {
    const backends = await Promise.all(['a', 'b', 'c'].map((name) => startNamedBackend(name)));
    for (const backend of backends) cleanups.push(() => backend.close());
    const [a, b, c] = backends as [NamedBackend, NamedBackend, NamedBackend];
    const srv = (...set: NamedBackend[]): SrvRecord[] => set.map((backend) => ({ name: SRV_NAME, target: TARGET, port: backend.port, weight: 1 }));
    const records = (...set: NamedBackend[]) => ({ srv: srv(...set), hosts: [{ name: TARGET, addresses: ['127.0.0.1'] }] });

    const dns: Dnsmasq = await startDnsmasq(records(a, b));
    cleanups.push(() => dns.stop());
    const config = {
      listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app' }],
      pools: [
        {
          name: 'app',
          balance: 'round_robin',
          // Short retries so the outage part of the test is quick (defaults 1 s → 30 s).
          discovery: { type: 'dns', name: SRV_NAME, record: 'SRV', servers: [dns.server], intervalMs: INTERVAL_MS, retryMinMs: RETRY_MIN_MS, retryMaxMs: 500 },
        },
      ],
      drainTimeoutMs: 5000,
      log: { level: 'info' },
    };
    const { ringlb, ports } = await startRinglb(temp.writeJson(config), ['app']);
    cleanups.push(() => ringlb.kill());
    const port = ports.get('app')!;
    const first = await ringlb.waitForLine(poolUpdated, 5000, 'first DNS answer applied');
    assert.equal(first.source, 'dns');
    // DNS backends are named by their address text.
    assert.deepEqual(sorted(first.added), [a.address, b.address].sort());
    const reached = new Set<string>();
    for (let i = 0; i < 4; i += 1) reached.add(await whichBackend({ port }));
    assert.deepEqual([...reached].sort(), ['a', 'b']);

    // b leaves, c joins.
    const since = ringlb.lines.length;
    await dns.setRecords(records(a, c));
    const changedAt = Date.now();
    const updated = await ringlb.waitForLine(poolUpdated, 5000, 'pool updated after the record change', since);
    const tookMs = Number(updated.time) - changedAt;
    assert.deepEqual(sorted(updated.added), [c.address]);
    assert.deepEqual(sorted(updated.removed), [b.address]);
    assert.equal(updated.backends, 2);
    // One interval, plus the query itself and scheduling slack. dnsmasq is down for a few ms while
    // it restarts; a query that lands in that gap fails and the source retries after its backoff
    // instead of the interval, so the bound then includes one retry.
    const hitRestart = ringlb.lines.slice(since).some((l) => l.msg === 'discovery error' && l.pool === 'app');
    const boundMs = (hitRestart ? RETRY_MIN_MS : 0) + INTERVAL_MS + 200;
    assert.ok(tookMs <= boundMs, `the pool changed ${tookMs} ms after the records (interval ${INTERVAL_MS} ms${hitRestart ? ', one retry' : ''})`);
    reached.clear();
    for (let i = 0; i < 4; i += 1) reached.add(await whichBackend({ port }));
    assert.deepEqual([...reached].sort(), ['a', 'c']);

    // DNS down: the source reports an error once, the pool keeps routing on the last set.
    const sinceOutage = ringlb.lines.length;
    await dns.pause();
    const error = await ringlb.waitForLine((l) => l.msg === 'discovery error' && l.pool === 'app', 10_000, 'discovery error', sinceOutage);
    assert.equal(error.source, 'dns');
    reached.clear();
    for (let i = 0; i < 4; i += 1) reached.add(await whichBackend({ port }));
    assert.deepEqual([...reached].sort(), ['a', 'c']);
    assert.equal(ringlb.lines.slice(sinceOutage).filter(poolUpdated).length, 0, 'an outage changed the pool');

    // Back with a new set: recovered, resynced.
    const sinceBack = ringlb.lines.length;
    await dns.setRecords(records(b, c));
    await ringlb.waitForLine((l) => l.msg === 'discovery recovered' && l.pool === 'app', 5000, 'discovery recovered', sinceBack);
    const resynced = await ringlb.waitForLine(poolUpdated, 5000, 'pool updated after recovery', sinceBack);
    assert.deepEqual(sorted(resynced.added), [b.address]);
    assert.deepEqual(sorted(resynced.removed), [a.address]);
    assert.equal(ringlb.lines.slice(sinceOutage).filter((l) => l.msg === 'discovery error').length, 1, 'one error line per outage');
    t.diagnostic(`record change applied after ${tookMs} ms${hitRestart ? ' (a query hit the dnsmasq restart)' : ''}`);
  });
});
