import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createDnsSource, type DnsSourceOptions } from '../src/discovery/dns-source.js';
import type { DiscoverySource } from '../src/discovery/types.js';
import { DiscoveryRecorder, describeSet } from './helpers/discovery-recorder.js';
import { startDnsmasq, type DnsRecords, type Dnsmasq } from './helpers/dnsmasq.js';

const SERVICE = '_app._tcp.svc.test';

const BASE_RECORDS: DnsRecords = {
  srv: [
    { name: SERVICE, target: 'b1.svc.test', port: 9001, priority: 0, weight: 5 },
    // RFC 2782 weight 0 ("no selection to do") counts as 1; 65535 is capped at 10000.
    { name: SERVICE, target: 'b2.svc.test', port: 9002, priority: 0, weight: 0 },
    { name: SERVICE, target: 'b3.svc.test', port: 9003, priority: 0, weight: 65535 },
    // IPv6-only target: its AAAA address is used.
    { name: SERVICE, target: 'b6.svc.test', port: 9006, priority: 0, weight: 2 },
    // A target without addresses is skipped (reported), the others apply.
    { name: SERVICE, target: 'ghost.svc.test', port: 9007, priority: 0, weight: 1 },
    // Higher priority value = fallback: not used while priority 0 records exist.
    { name: SERVICE, target: 'b1.svc.test', port: 9901, priority: 1, weight: 1 },
  ],
  hosts: [
    { name: 'b1.svc.test', addresses: ['127.0.0.1'] },
    // Dual-stack: A wins, so the target is not counted twice.
    { name: 'b2.svc.test', addresses: ['127.0.0.2', '::2'] },
    { name: 'b3.svc.test', addresses: ['127.0.0.3'] },
    { name: 'b6.svc.test', addresses: ['::1'] },
    { name: 'web.svc.test', addresses: ['127.0.0.10', '127.0.0.11', '::10'] },
  ],
};

let dnsmasq: Dnsmasq;
const sources: DiscoverySource[] = [];

before(async () => {
  dnsmasq = await startDnsmasq(BASE_RECORDS);
});
after(async () => {
  await Promise.all(sources.map((source) => source.stop()));
  await dnsmasq?.stop();
});

function startSource(options: Omit<DnsSourceOptions, 'servers'>): DiscoveryRecorder {
  const source = createDnsSource({ servers: [dnsmasq.server], timeoutMs: 300, retryMinMs: 50, retryMaxMs: 200, ...options });
  sources.push(source);
  const recorder = new DiscoveryRecorder();
  source.start(recorder);
  return recorder;
}

// The tests share one dnsmasq and run in order; each restores BASE_RECORDS if it changes them.
describe('dns discovery against a real dnsmasq', () => {
  test('SRV: lowest priority, weights mapped, targets resolved A-then-AAAA, addressless target skipped', async () => {
    const recorder = startSource({ name: SERVICE, record: 'SRV', intervalMs: 60000 });
    const update = await recorder.next('update');
    assert.deepEqual(describeSet(update.backends), [
      '127.0.0.1:9001=127.0.0.1:9001/5/active',
      '127.0.0.2:9002=127.0.0.2:9002/1/active',
      '127.0.0.3:9003=127.0.0.3:9003/10000/active',
      '[::1]:9006=[::1]:9006/2/active',
    ]);
    const invalid = recorder.events.filter((event) => event.type === 'invalid');
    assert.equal(invalid.length, 1);
    assert.match(invalid[0].type === 'invalid' ? invalid[0].error.message : '', /SRV target ghost\.svc\.test has no A or AAAA record; skipped/);
  });

  test('A and AAAA: every address with the configured port', async () => {
    const v4 = startSource({ name: 'web.svc.test', record: 'A', port: 8080, intervalMs: 60000 });
    const v6 = startSource({ name: 'web.svc.test', record: 'AAAA', port: 8080, intervalMs: 60000 });
    assert.deepEqual(describeSet((await v4.next('update')).backends), ['127.0.0.10:8080=127.0.0.10:8080/1/active', '127.0.0.11:8080=127.0.0.11:8080/1/active']);
    assert.deepEqual(describeSet((await v6.next('update')).backends), ['[::10]:8080=[::10]:8080/1/active']);
  });

  test('a changed record set changes the pool within one interval; an unchanged one is no update', async () => {
    const intervalMs = 400;
    const recorder = startSource({ name: 'web.svc.test', record: 'A', port: 80, intervalMs });
    await recorder.next('update');
    try {
      await dnsmasq.setRecords({ ...BASE_RECORDS, hosts: [...(BASE_RECORDS.hosts ?? []).filter((host) => host.name !== 'web.svc.test'), { name: 'web.svc.test', addresses: ['127.0.0.12'] }] });
      const changedAt = Date.now();
      const update = await recorder.next('update', intervalMs * 3);
      assert.ok(update.at - changedAt <= intervalMs + 250, `update came ${update.at - changedAt} ms after the change (interval ${intervalMs})`);
      assert.deepEqual(describeSet(update.backends), ['127.0.0.12:80=127.0.0.12:80/1/active']);
      // Wait two more rounds: the same answer again is no update.
      await new Promise((resolve) => setTimeout(resolve, intervalMs * 2 + 100));
      assert.deepEqual(recorder.pending(), []);
    } finally {
      await dnsmasq.setRecords(BASE_RECORDS);
    }
  });

  test('NXDOMAIN is an error, never an empty pool; the name coming back recovers', async () => {
    const recorder = startSource({ name: 'later.svc.test', record: 'A', port: 80, intervalMs: 60000 });
    const error = await recorder.next('error');
    assert.match(error.error.message, /^dns A later\.svc\.test: no A records for later\.svc\.test \(ENOTFOUND\); keeping the last set$/);
    try {
      await dnsmasq.setRecords({ ...BASE_RECORDS, hosts: [...(BASE_RECORDS.hosts ?? []), { name: 'later.svc.test', addresses: ['127.0.0.20'] }] });
      // Retried on the backoff (50 → 200 ms), not the 60 s interval.
      await recorder.next('recovered', 3000);
      assert.deepEqual(describeSet((await recorder.next('update')).backends), ['127.0.0.20:80=127.0.0.20:80/1/active']);
      assert.equal(recorder.events.filter((event) => event.type === 'error').length, 1, 'one error per outage, not per retry');
    } finally {
      await dnsmasq.setRecords(BASE_RECORDS);
    }
  });

  test('a silent server: one error, the last set kept, retries with backoff, resync when it answers', async () => {
    const recorder = startSource({ name: SERVICE, record: 'SRV', intervalMs: 100 });
    const first = await recorder.next('update');
    await dnsmasq.pause();
    try {
      const error = await recorder.next('error', 5000);
      assert.match(error.error.message, /^dns SRV _app\._tcp\.svc\.test: SRV _app\._tcp\.svc\.test failed: (ECONNREFUSED|ETIMEOUT)$/);
    } finally {
      await dnsmasq.setRecords(BASE_RECORDS);
    }
    await recorder.next('recovered', 5000);
    const resync = await recorder.next('update');
    assert.deepEqual(describeSet(resync.backends), describeSet(first.backends));
    assert.equal(recorder.events.filter((event) => event.type === 'error').length, 1);
    assert.equal(recorder.events.filter((event) => event.type === 'invalid').length, 1, 'the skipped target is reported once, not every round');
  });

  test('bad options are refused at construction with the reason', () => {
    const cases: ReadonlyArray<readonly [DnsSourceOptions, RegExp]> = [
      [{ name: '', record: 'SRV' }, /name must be a DNS name/],
      [{ name: 'x.test', record: 'MX' as 'SRV' }, /record must be SRV, A or AAAA, got "MX"/],
      [{ name: 'x.test', record: 'A' }, /A records need a port 1\.\.65535, got undefined/],
      [{ name: 'x.test', record: 'AAAA', port: 70000 }, /need a port 1\.\.65535, got 70000/],
      [{ name: SERVICE, record: 'SRV', port: 80 }, /port is only for A\/AAAA records/],
      [{ name: 'x.test', record: 'A', port: 80, intervalMs: 0 }, /intervalMs must be a positive integer/],
      [{ name: 'x.test', record: 'A', port: 80, servers: ['not an ip'] }, /bad servers/],
    ];
    for (const [options, message] of cases) assert.throws(() => createDnsSource(options), message);
  });
});
