/**
 * The admin server cannot be held (issue 10): against the real CLI, SLOW clients (more than the
 * admin connection cap, 1024) each send a request line and then one header byte per second,
 * never finishing their headers. Meanwhile fresh requests — /metrics and /v1/status — are all
 * answered, the cap shows its evictions in /metrics, and every slow connection is closed by
 * ringlb (evicted, or cut at the header deadline) instead of being kept.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { AdminClient, adminAddress } from './helpers/admin-client.js';
import { scrape } from './helpers/metrics.js';
import { startRinglb, TempDir } from './helpers/ringlb-process.js';

/** More than the admin connection cap (1024), so the cap must evict. */
const SLOW = 1100;
const CAP = 1024;
/** Fresh requests while the slow clients drip. */
const PROBES = 20;

const temp = new TempDir();
after(() => temp.remove());

function hostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
}

test(`slowloris: ${SLOW} clients dripping header bytes cannot hold the admin server`, { timeout: 90_000 }, async (t) => {
  const file = temp.writeJson({
    admin: { bind: '127.0.0.1:0' },
    listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app' }],
    pools: [{ name: 'app', backends: [{ address: '127.0.0.1:9' }] }],
    log: { level: 'info' },
    workers: 1,
  });
  const { ringlb } = await startRinglb(file, ['app']);
  t.after(() => ringlb.kill());
  const address = await adminAddress(ringlb);
  const { host, port } = hostPort(address);

  const slow: Socket[] = [];
  const closedAt: Array<Promise<void>> = [];
  t.after(() => {
    for (const socket of slow) socket.destroy();
  });
  await Promise.all(
    Array.from({ length: SLOW }, async () => {
      const socket = connect({ host, port });
      socket.on('error', () => undefined); // an evicted socket may read a reset
      slow.push(socket);
      closedAt.push(new Promise((resolve) => socket.once('close', () => resolve())));
      await once(socket, 'connect');
      socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    }),
  );
  // One header byte per second on every slow socket still open, until the test ends.
  const drip = setInterval(() => {
    for (const socket of slow) if (!socket.destroyed) socket.write('X');
  }, 1000);
  t.after(() => clearInterval(drip));

  const admin = new AdminClient(address, null, 1);
  t.after(() => admin.close());
  for (let i = 0; i < PROBES; i++) {
    const path = i % 2 === 0 ? '/v1/status' : '/v1/pools';
    const reply = await admin.request('GET', path, { timeoutMs: 5000 });
    assert.equal(reply.status, 200, `${path} answered while ${SLOW} slow clients drip`);
  }
  const metrics = await scrape(address);
  const evicted = metrics.sum('ringlb_admin_connections_closed_total', { reason: 'evicted' });
  assert.ok(evicted >= SLOW - CAP, `at least the slow clients past the cap were evicted (${evicted})`);
  assert.equal(metrics.sum('ringlb_admin_connections_closed_total', { reason: 'refused' }), 0, 'no fresh request was refused');
  await ringlb.waitForLine((line) => line.msg === 'admin connection cap reached: slow or idle connections evicted', 10_000, 'cap line');

  // Every slow connection is closed by ringlb: evicted, or cut at the 5 s header deadline (Node
  // sweeps every second), well within 15 s of the last one opening.
  const deadline = new Promise<never>((_, reject) => {
    const timer = setTimeout(() => reject(new Error(`slow connections still open: ${slow.filter((s) => !s.destroyed).length}`)), 15_000);
    t.after(() => clearTimeout(timer));
  });
  await Promise.race([Promise.all(closedAt), deadline]);
  assert.equal(ringlb.child.exitCode, null, ringlb.stderr);
});
