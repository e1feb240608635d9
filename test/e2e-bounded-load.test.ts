/**
 * Bounded-load hashing end to end (issue 8 §3): the CLI as a child process, four real loopback
 * backends that greet with their name, 40 long-lived connections from one source address. With
 * `hashBalanceFactor: 125` no backend holds more than ceil(1.25 × 40 / 4) = 13; without it every
 * connection of that source goes to its one home backend. The admin view counts the spills against
 * the home, and a reload that drops the factor applies in place (no rebuild, keys go home again).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AdminClient, adminAddress } from './helpers/admin-client.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { openClient, readLine } from './helpers/clients.js';
import { startRinglb, TempDir, type RinglbProcess } from './helpers/ringlb-process.js';

const CONNECTIONS = 40;
const SOURCE = '127.0.0.77';

function tally(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

describe('bounded-load hashing over loopback (hashBalanceFactor)', () => {
  const temp = new TempDir();
  const held: Socket[] = [];
  let backends: NamedBackend[] = [];
  let ringlb: RinglbProcess | undefined;
  let admin: AdminClient | undefined;
  let ports = new Map<string, number>();
  let configPath = '';

  const configWith = (factor: number | undefined): object => {
    const pool = (name: string, balance: string, extra: object): object => ({
      name,
      balance,
      backends: backends.map((backend) => ({ id: backend.name, address: backend.address })),
      ...extra,
    });
    const bounded = factor === undefined ? {} : { hashBalanceFactor: factor };
    return {
      admin: { bind: '127.0.0.1:0' },
      listeners: ['ring_bounded', 'maglev_bounded', 'ring_plain'].map((name) => ({ name, bind: '127.0.0.1:0', pool: name })),
      pools: [pool('ring_bounded', 'ring_hash', bounded), pool('maglev_bounded', 'maglev', bounded), pool('ring_plain', 'ring_hash', {})],
      log: { level: 'info' },
    };
  };

  before(async () => {
    backends = await Promise.all(['a', 'b', 'c', 'd'].map((name) => startNamedBackend(name)));
    configPath = temp.writeJson(configWith(125));
    const started = await startRinglb(configPath, ['ring_bounded', 'maglev_bounded', 'ring_plain']);
    ringlb = started.ringlb;
    ports = started.ports;
    admin = new AdminClient(await adminAddress(ringlb));
  });

  after(async () => {
    for (const socket of held) socket.destroy();
    admin?.close();
    await ringlb?.kill();
    await Promise.all(backends.map((backend) => backend.close()));
    temp.remove();
  });

  /** Opens `count` connections from SOURCE one after another and keeps them; the greeting names each one's backend. */
  async function holdConnections(listener: string, count: number): Promise<string[]> {
    const names: string[] = [];
    for (let i = 0; i < count; i += 1) {
      const socket = await openClient({ port: ports.get(listener)!, localAddress: SOURCE });
      held.push(socket);
      names.push(await readLine(socket));
    }
    return names;
  }

  async function backendViews(pool: string): Promise<Array<{ id: string; activeConnections: number; spilled: number }>> {
    const response = await admin!.request('GET', `/v1/pools/${pool}/backends`);
    assert.equal(response.status, 200);
    return (response.body as { backends: Array<{ id: string; activeConnections: number; spilled: number }> }).backends;
  }

  it('without the factor, all 40 connections of one source go to one backend', async () => {
    const counts = tally(await holdConnections('ring_plain', CONNECTIONS));
    assert.deepEqual(Object.values(counts), [CONNECTIONS], JSON.stringify(counts));
    for (const view of await backendViews('ring_plain')) assert.equal(view.spilled, 0);
  });

  for (const pool of ['ring_bounded', 'maglev_bounded']) {
    it(`${pool}: with factor 125, no backend holds more than 13 of 40, and the spills count against the home`, async () => {
      const home = await admin!.lookup(pool, SOURCE);
      const counts = tally(await holdConnections(pool, CONNECTIONS));
      const most = Math.max(...Object.values(counts));
      assert.ok(most <= 13, `a backend holds ${most}: ${JSON.stringify(counts)}`);
      assert.equal(Object.keys(counts).length, 4, JSON.stringify(counts));
      const views = await backendViews(pool);
      const byId = new Map(views.map((view) => [view.id, view]));
      for (const [name, count] of Object.entries(counts)) assert.equal(byId.get(name)?.activeConnections, count, name);
      // Every connection that did not land on its home spilled past it.
      assert.equal(byId.get(home!)?.spilled, CONNECTIONS - counts[home!]!, JSON.stringify(views));
      for (const view of views) if (view.id !== home) assert.equal(view.spilled, 0, view.id);
    });
  }

  it('a reload that removes the factor applies in place: no table rebuild, the next connection goes home', async () => {
    // Its home is full, so with the factor a new connection would spill elsewhere now.
    const spillTarget = await admin!.lookup('ring_bounded', SOURCE);
    const since = ringlb!.lines.length;
    writeFileSync(configPath, JSON.stringify(configWith(undefined)));
    ringlb!.child.kill('SIGHUP');
    const reloaded = await ringlb!.waitForLine((l) => l.msg === 'config reloaded', 10_000, 'config reloaded', since);
    const plan = (reloaded.pools as Array<{ name: string; action: string; reason: string; settings: string[]; movedShare: number }>).find((p) => p.name === 'ring_bounded');
    assert.deepEqual(plan && [plan.action, plan.reason, plan.settings, plan.movedShare], ['update', 'applied in place', ['hashBalanceFactor'], 0], JSON.stringify(reloaded));
    const home = await admin!.lookup('ring_bounded', SOURCE);
    assert.notEqual(home, spillTarget);
    const [next] = await holdConnections('ring_bounded', 1);
    assert.equal(next, home);
  });
});
