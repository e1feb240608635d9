/**
 * Each balancing policy's distribution, end to end: the CLI as a child process, real loopback
 * backends that greet with their name, clients from chosen source addresses 127.0.0.x.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { closedPort, hasSynSentTo, startNamedBackend, startStalledBackend, type NamedBackend } from './helpers/backends.js';
import { openClient, readLine, whichBackend } from './helpers/clients.js';
import { configOf, type RawPool } from './helpers/config.js';
import { startRinglb, TempDir, type RinglbProcess } from './helpers/ringlb-process.js';

function tally(names: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

async function sequentialPicks(port: number, count: number, localAddress?: string): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i += 1) names.push(await whichBackend({ port, localAddress }));
  return names;
}

describe('balancing policies over loopback', () => {
  const temp = new TempDir();
  let backends: NamedBackend[] = [];
  let ringlb: RinglbProcess | undefined;
  let ports = new Map<string, number>();

  before(async () => {
    backends = await Promise.all(['a', 'b', 'c'].map((name) => startNamedBackend(name)));
    const [a, b, c] = backends as [NamedBackend, NamedBackend, NamedBackend];
    const equal = (balance: string, extra: Partial<RawPool> = {}): RawPool => ({
      name: balance,
      balance,
      backends: [a, b, c].map((backend) => ({ id: backend.name, address: backend.address })),
      ...extra,
    });
    const pools: RawPool[] = [
      {
        name: 'round_robin',
        balance: 'round_robin',
        backends: [
          { id: 'a', address: a.address, weight: 1 },
          { id: 'b', address: b.address, weight: 2 },
          { id: 'c', address: c.address, weight: 3 },
        ],
      },
      {
        name: 'random',
        balance: 'random',
        backends: [
          { id: 'a', address: a.address, weight: 1 },
          { id: 'b', address: b.address, weight: 1 },
          { id: 'c', address: c.address, weight: 2 },
        ],
      },
      equal('least_connections'),
      equal('ring_hash'),
      equal('maglev'),
    ];
    const config = configOf(pools);
    // A dual-stack listener on the maglev pool: IPv4 clients arrive as ::ffff:127.0.0.x there.
    const listeners = [...config.listeners, { name: 'maglev_dual_stack', bind: '[::]:0', pool: 'maglev' }];
    // One data-plane thread: exact shares over whole cycles are a property of one rotation. With
    // several workers each keeps its own (as Envoy's and nginx's workers do); the process-wide
    // policies over several workers are tested in e2e-workers.test.ts.
    const started = await startRinglb(
      temp.writeJson({ ...config, listeners, workers: 1 }),
      listeners.map((l) => l.name),
    );
    ringlb = started.ringlb;
    ports = started.ports;
  });

  after(async () => {
    await ringlb?.kill();
    await Promise.all(backends.map((backend) => backend.close()));
    temp.remove();
  });

  it('round_robin gives exact weighted shares over whole cycles (1:2:3)', async () => {
    const counts = tally(await sequentialPicks(ports.get('round_robin')!, 60));
    assert.deepEqual(Object.fromEntries(counts), { a: 10, b: 20, c: 30 });
  });

  it('random stays within statistical bounds of its weights (1:1:2)', async () => {
    const total = 400;
    const counts = tally(await sequentialPicks(ports.get('random')!, total));
    // Binomial: n=400, p=0.25 → sd 8.7; p=0.5 → sd 10. Five standard deviations: a flake is ~1e-6.
    for (const [name, p] of [['a', 0.25], ['b', 0.25], ['c', 0.5]] as const) {
      const expected = total * p;
      const bound = 5 * Math.sqrt(total * p * (1 - p));
      const got = counts.get(name) ?? 0;
      assert.ok(Math.abs(got - expected) <= bound, `${name}: ${got} picks, expected ${expected} ± ${bound.toFixed(1)}`);
    }
  });

  it('least_connections balances held connections and refills the emptied backend', async () => {
    const port = ports.get('least_connections')!;
    const held: Array<{ socket: Socket; backend: string }> = [];
    try {
      for (let i = 0; i < 6; i += 1) {
        const socket = await openClient({ port });
        held.push({ socket, backend: await readLine(socket) });
      }
      assert.deepEqual(Object.fromEntries(tally(held.map((h) => h.backend))), { a: 2, b: 2, c: 2 });
      // Close both connections on one backend and wait until ringlb has logged them closed.
      const before = ringlb!.accessLines().length;
      const victim = held[0]!.backend;
      for (const h of held.filter((x) => x.backend === victim)) h.socket.end();
      await ringlb!.waitForAccessLines(before + 2);
      for (let i = 0; i < 2; i += 1) {
        const socket = await openClient({ port });
        const backend = await readLine(socket);
        held.push({ socket, backend });
        assert.equal(backend, victim, 'the backend with no connections left gets the new ones');
      }
    } finally {
      for (const h of held) h.socket.destroy();
    }
  });

  for (const policy of ['ring_hash', 'maglev'] as const) {
    it(`${policy}: a source always maps to the same backend, and 50 sources spread over all`, async () => {
      const port = ports.get(policy)!;
      const owners = new Map<string, string>();
      for (let host = 10; host < 60; host += 1) {
        const localAddress = `127.0.0.${host}`;
        const [first, second, third] = await sequentialPicks(port, 3, localAddress);
        assert.equal(second, first, `${localAddress} moved between connections`);
        assert.equal(third, first, `${localAddress} moved between connections`);
        owners.set(localAddress, first!);
      }
      const counts = tally([...owners.values()]);
      assert.deepEqual([...counts.keys()].sort(), ['a', 'b', 'c'], `50 sources used only ${[...counts.keys()]}`);
      // With 3 equal backends each should own roughly a third; a backend with under 5 of 50 means a broken hash.
      for (const [name, count] of counts) assert.ok(count >= 5, `${name} owns only ${count} of 50 sources`);
    });
  }

  it('maglev: an IPv4-mapped IPv6 source hashes like the same IPv4 source', async () => {
    const v4Port = ports.get('maglev')!;
    const dualPort = ports.get('maglev_dual_stack')!;
    const backendsSeen = new Set<string>();
    for (let host = 100; host < 130; host += 1) {
      const localAddress = `127.0.0.${host}`;
      const viaV4 = await whichBackend({ port: v4Port, localAddress });
      const viaDualStack = await whichBackend({ port: dualPort, localAddress });
      assert.equal(viaDualStack, viaV4, `${localAddress} via [::] went elsewhere`);
      backendsSeen.add(viaV4);
    }
    const line = ringlb!
      .accessLines()
      .find((l) => l.listener === 'maglev_dual_stack' && String(l.client).startsWith('[::ffff:127.0.0.'));
    assert.ok(line, 'the dual-stack listener saw IPv4-mapped clients');
    assert.ok(backendsSeen.size > 1, 'the check is meaningful only if sources spread');
  });
});

describe('least_time prefers the backend that connects fast', () => {
  const temp = new TempDir();
  it('learns from one slow connect (SYN dropped by a full accept queue) and then avoids it', async (t) => {
    // The fast backend's port starts closed so the first connection must end up on the slow one.
    const fastPort = await closedPort();
    const slow = await startStalledBackend('slow');
    t.after(() => slow.close());
    const pool: RawPool = {
      name: 'least_time',
      balance: 'least_time',
      connectTimeoutMs: 10_000,
      retries: 1,
      backends: [
        { id: 'fast', address: `127.0.0.1:${fastPort}` },
        { id: 'slow', address: slow.address },
      ],
    };
    const { ringlb, ports } = await startRinglb(temp.writeJson(configOf([pool])), ['least_time']);
    t.after(() => ringlb.kill());
    const port = ports.get('least_time')!;

    const first = await openClient({ port });
    t.after(() => first.destroy());
    // Wait (bounded, polling /proc) until ringlb's connect to the slow backend is stuck in SYN-SENT,
    // then let the backend drain its queue: the SYN is resent after the 1 s initial RTO, so the
    // connect takes about a second.
    const deadline = Date.now() + 5000;
    while (!(await hasSynSentTo(slow.port))) {
      assert.ok(Date.now() < deadline, 'ringlb never tried the slow backend');
      await new Promise((resolve) => setImmediate(resolve));
    }
    slow.resume();
    assert.equal(await readLine(first), 'slow');
    first.destroy();

    const fast = await startNamedBackend('fast', { port: fastPort });
    t.after(() => fast.close());
    const counts = tally(await sequentialPicks(port, 30));
    assert.ok((counts.get('fast') ?? 0) >= 27, `fast got ${counts.get('fast') ?? 0} of 30: ${[...counts]}`);
  });
  after(() => temp.remove());
});
