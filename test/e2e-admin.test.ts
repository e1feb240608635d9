/**
 * The admin HTTP listener and the registration API end to end: the CLI as a child process with
 * `"admin": {"bind": "127.0.0.1:0", "token": ...}`, services registering over real HTTP, clients
 * over 127.0.x.y. A registration with a TTL stays while it heartbeats and is removed (drained, not
 * cut) within about one TTL after the heartbeats stop; lookups name the backend a client really
 * reaches; bad requests get 400/401/404/409 with the path of the problem.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { AdminClient, adminAddress, loopbackClients, type AdminErrorBody } from './helpers/admin-client.js';
import { startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { openClient, readLine, whichBackend } from './helpers/clients.js';
import { runCli, startRinglb, TempDir, type LogLine, type RinglbProcess } from './helpers/ringlb-process.js';

const TOKEN = 'e2e-admin-token-0123456789';
const TTL_MS = 1000;
const HEARTBEAT_MS = 300;
/** How late after the TTL the removal may be logged: the store's timer plus one rebuild, generously. */
const EXPIRY_MARGIN_MS = 500;

const temp = new TempDir();
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.remove();
});

const poolUpdated = (pool: string, predicate: (line: LogLine) => boolean) => (line: LogLine) =>
  line.msg === 'pool updated' && line.pool === pool && predicate(line);
const lists = (field: unknown, id: string): boolean => Array.isArray(field) && field.includes(id);

describe('registration API', () => {
  let ringlb: RinglbProcess;
  let admin: AdminClient;
  let appPort: number;
  let stay: NamedBackend;
  let mortal: NamedBackend;
  let fixed: NamedBackend;

  before(async () => {
    [stay, mortal, fixed] = await Promise.all([startNamedBackend('stay'), startNamedBackend('mortal'), startNamedBackend('fixed')]);
    cleanups.push(() => stay.close(), () => mortal.close(), () => fixed.close());
    const config = {
      admin: { bind: '127.0.0.1:0', token: TOKEN },
      listeners: [
        { name: 'app', bind: '127.0.0.1:0', pool: 'app' },
        { name: 'fixed', bind: '127.0.0.1:0', pool: 'fixed' },
      ],
      pools: [
        { name: 'app', balance: 'maglev', discovery: { type: 'registration' } },
        { name: 'fixed', balance: 'maglev', backends: [{ id: 'fixed', address: fixed.address }] },
      ],
      drainTimeoutMs: 30000,
      log: { level: 'info' },
    };
    const started = await startRinglb(temp.writeJson(config), ['app', 'fixed']);
    ringlb = started.ringlb;
    cleanups.push(() => ringlb.kill());
    appPort = started.ports.get('app')!;
    admin = new AdminClient(await adminAddress(ringlb), TOKEN);
    cleanups.push(() => admin.close());
  });

  test('a TTL registration gets traffic while it heartbeats; after the heartbeats stop it is removed within ~TTL and its open connection keeps flowing', async (t) => {
    let since = ringlb.lines.length;
    const first = await admin.register('app', 'stay', { address: stay.address });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    await ringlb.waitForLine(poolUpdated('app', (l) => lists(l.added, 'stay')), 5000, 'pool updated +stay', since);

    since = ringlb.lines.length;
    // The server starts a TTL when it receives a registration, somewhere between our send and its
    // reply: the lower bound below counts from the send, the upper bound from the reply.
    let lastBeatSentAt = Date.now();
    const created = await admin.register('app', 'mortal', { address: mortal.address, ttlMs: TTL_MS });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    let lastBeatAt = Date.now();
    const added = await ringlb.waitForLine(poolUpdated('app', (l) => lists(l.added, 'mortal')), 5000, 'pool updated +mortal', since);
    assert.equal(added.source, 'registration');
    assert.equal(added.backends, 2);
    assert.equal(typeof added.movedShare, 'number');

    // Heartbeats, bounded: they run until `beating` is cleared, at most 40 of them.
    let beating = true;
    const beatErrors: string[] = [];
    const heartbeats = (async () => {
      for (let beat = 0; beating && beat < 40; beat += 1) {
        await delay(HEARTBEAT_MS);
        if (!beating) break;
        const sentAt = Date.now();
        const renewed = await admin.register('app', 'mortal', { address: mortal.address, ttlMs: TTL_MS });
        lastBeatSentAt = sentAt;
        lastBeatAt = Date.now();
        if (renewed.status !== 200) beatErrors.push(`${renewed.status} ${JSON.stringify(renewed.body)}`);
      }
    })().catch((error: unknown) => void beatErrors.push(String(error)));

    // Lookups name the backend a real connection from that client address reaches.
    const ips = loopbackClients(40);
    const mapped = await admin.lookupAll('app', ips);
    assert.ok(mapped.includes('mortal') && mapped.includes('stay'), `40 clients over two backends: ${mapped.join(',')}`);
    for (const [index, ip] of ips.slice(0, 12).entries()) {
      assert.equal(await whichBackend({ port: appPort, localAddress: ip }), mapped[index], `client ${ip}`);
    }
    const mortalIp = ips[mapped.indexOf('mortal')]!;
    const held = await openClient({ port: appPort, localAddress: mortalIp });
    cleanups.push(() => void held.destroy());
    assert.equal(await readLine(held), 'mortal');

    // More than one TTL of heartbeats: still registered, still routed.
    await delay(TTL_MS + 2 * HEARTBEAT_MS);
    const view = await admin.request('GET', '/v1/pools/app/backends/mortal');
    assert.equal(view.status, 200);
    const body = view.body as { source: string; ttlRemainingMs: number; activeConnections: number; health: { healthy: boolean; routable: boolean } };
    assert.equal(body.source, 'registration');
    assert.ok(body.ttlRemainingMs > 0 && body.ttlRemainingMs <= TTL_MS, `ttlRemainingMs ${body.ttlRemainingMs}`);
    assert.equal(body.activeConnections, 1);
    assert.equal(body.health.healthy, true);
    assert.equal(body.health.routable, true);
    assert.equal(ringlb.lines.slice(since).filter(poolUpdated('app', (l) => lists(l.removed, 'mortal'))).length, 0, 'removed while heartbeating');
    assert.equal(await whichBackend({ port: appPort, localAddress: mortalIp }), 'mortal');

    // Stop heartbeating: gone within TTL + margin of the last heartbeat.
    beating = false;
    await heartbeats;
    assert.deepEqual(beatErrors, []);
    const stoppedAt = lastBeatAt;
    const lastSentAt = lastBeatSentAt;
    const removed = await ringlb.waitForLine(
      poolUpdated('app', (l) => lists(l.removed, 'mortal')),
      TTL_MS + 3000,
      'pool updated -mortal',
      since,
    );
    const removedAfterMs = Number(removed.time) - stoppedAt;
    const removedAfterSendMs = Number(removed.time) - lastSentAt;
    // 2 ms: the store times TTLs with performance.now(), the log lines carry Date.now().
    assert.ok(removedAfterSendMs >= TTL_MS - 2, `removed ${removedAfterSendMs} ms after the last heartbeat was sent: before its TTL`);
    assert.ok(removedAfterMs <= TTL_MS + EXPIRY_MARGIN_MS, `removed ${removedAfterMs} ms after the last heartbeat`);
    assert.equal(removed.backends, 1);

    // No new connection reaches it; the one opened before keeps echoing (drained, not cut).
    for (const ip of [mortalIp, ...ips.slice(0, 5)]) assert.equal(await whichBackend({ port: appPort, localAddress: ip }), 'stay');
    assert.equal(await admin.lookup('app', mortalIp), 'stay');
    held.write('still here\n');
    assert.equal(await readLine(held), 'still here');
    const gone = await admin.request('GET', '/v1/pools/app/backends/mortal');
    assert.equal(gone.status, 404);
    const list = await admin.request('GET', '/v1/pools/app/backends');
    assert.equal(list.status, 200);
    assert.deepEqual((list.body as { backends: Array<{ id: string }> }).backends.map((b) => b.id), ['stay']);
    held.destroy();
    t.diagnostic(`removed ${removedAfterMs} ms after the last heartbeat (TTL ${TTL_MS} ms)`);
  });

  test('DELETE deregisters (204, then 404); a registration without TTL never expires', async () => {
    const since = ringlb.lines.length;
    const temporary = await admin.register('app', 'temporary', { address: mortal.address, weight: 2 });
    assert.equal(temporary.status, 201);
    await ringlb.waitForLine(poolUpdated('app', (l) => lists(l.added, 'temporary')), 5000, 'pool updated +temporary', since);
    const view = await admin.request('GET', '/v1/pools/app/backends/temporary');
    assert.equal((view.body as { ttlRemainingMs: unknown }).ttlRemainingMs, null);
    assert.equal((view.body as { weight: number }).weight, 2);
    const deleted = await admin.request('DELETE', '/v1/pools/app/backends/temporary');
    assert.equal(deleted.status, 204);
    await ringlb.waitForLine(poolUpdated('app', (l) => lists(l.removed, 'temporary')), 5000, 'pool updated -temporary', since);
    const again = await admin.request('DELETE', '/v1/pools/app/backends/temporary');
    assert.equal(again.status, 404);
    assert.equal((again.body as AdminErrorBody).path, '/v1/pools/app/backends/temporary');
  });

  test('errors: 401 without or with a wrong token, 404 unknown pool/backend/route, 400 with the path of a bad field, 409 on a static pool', async () => {
    const noToken = await admin.request('GET', '/v1/pools', { token: null });
    assert.equal(noToken.status, 401);
    assert.equal(typeof (noToken.body as AdminErrorBody).error, 'string');
    assert.match(String(noToken.headers['www-authenticate']), /^Bearer/);
    const wrongToken = await admin.request('GET', '/v1/pools/app/backends', { token: 'not-the-token-at-all' });
    assert.equal(wrongToken.status, 401);
    const unauthenticatedPut = await admin.request('PUT', '/v1/pools/app/backends/x', { token: null, body: { address: stay.address } });
    assert.equal(unauthenticatedPut.status, 401);
    assert.equal((await admin.request('GET', '/v1/pools/app/backends/x')).status, 404, 'the unauthenticated PUT registered nothing');

    const unknownPool = await admin.request('GET', '/v1/pools/nope/backends');
    assert.equal(unknownPool.status, 404);
    assert.match((unknownPool.body as AdminErrorBody).error, /nope/);
    assert.equal((unknownPool.body as AdminErrorBody).path, '/v1/pools/nope/backends');
    assert.equal((await admin.register('nope', 'x', { address: stay.address })).status, 404);
    assert.equal((await admin.request('GET', '/v1/pools/app/backends/unknown-id')).status, 404);
    assert.equal((await admin.request('GET', '/v1/nothing-here')).status, 404);

    const badWeight = await admin.register('app', 'x', { address: stay.address, weight: 20000 });
    assert.equal(badWeight.status, 400);
    assert.equal((badWeight.body as AdminErrorBody).path, 'weight');
    const badTtl = await admin.request('PUT', '/v1/pools/app/backends/x', { body: { address: stay.address, ttlMs: 'soon' } });
    assert.equal(badTtl.status, 400);
    assert.equal((badTtl.body as AdminErrorBody).path, 'ttlMs');
    const badAddress = await admin.register('app', 'x', { address: 'not an address' });
    assert.equal(badAddress.status, 400);
    assert.equal((badAddress.body as AdminErrorBody).path, 'address');
    const unknownField = await admin.request('PUT', '/v1/pools/app/backends/x', { body: { address: stay.address, ttl: 5 } });
    assert.equal(unknownField.status, 400);
    const notJson = await admin.request('PUT', '/v1/pools/app/backends/x', { rawBody: '{"address": ' });
    assert.equal(notJson.status, 400);
    assert.equal((notJson.body as AdminErrorBody).path, '$');
    const badIp = await admin.request('GET', '/v1/pools/app/lookup?ip=10.1.2.300');
    assert.equal(badIp.status, 400);
    assert.equal((badIp.body as AdminErrorBody).path, 'query.ip');
    assert.equal((await admin.request('GET', '/v1/pools/app/backends/x')).status, 404, 'no bad request registered anything');

    const staticPool = await admin.register('fixed', 'x', { address: stay.address });
    assert.equal(staticPool.status, 409);
    const fixedList = await admin.request('GET', '/v1/pools/fixed/backends');
    assert.equal(fixedList.status, 200);
    const fixedBackends = (fixedList.body as { backends: Array<{ id: string; source: string; ttlRemainingMs: unknown }> }).backends;
    assert.deepEqual(fixedBackends.map((b) => [b.id, b.source, b.ttlRemainingMs]), [['fixed', 'static', null]]);
  });
});

describe('admin config rules (ringlb check)', () => {
  const listener = { name: 'app', bind: '127.0.0.1:0', pool: 'app' };
  const cases: ReadonlyArray<{ what: string; config: unknown; path: string }> = [
    {
      what: 'a non-loopback admin bind without a token',
      config: { admin: { bind: '0.0.0.0:9901' }, listeners: [listener], pools: [{ name: 'app', backends: [{ address: '127.0.0.1:9001' }] }] },
      path: 'admin.token',
    },
    {
      what: 'registration discovery without an admin listener',
      config: { listeners: [listener], pools: [{ name: 'app', discovery: { type: 'registration' } }] },
      path: 'pools[0].discovery',
    },
    {
      what: 'a discovery source and static backends in one pool',
      config: {
        admin: { bind: '127.0.0.1:0' },
        listeners: [listener],
        pools: [{ name: 'app', discovery: { type: 'registration' }, backends: [{ address: '127.0.0.1:9001' }] }],
      },
      path: 'pools[0].backends',
    },
  ];
  for (const { what, config, path } of cases) {
    test(`${what} → exit 2 naming ${path}`, async () => {
      const { status, stderr } = await runCli(['check', '--config', temp.writeJson(config)]);
      assert.equal(status.code, 2, stderr);
      assert.ok(stderr.includes(path), `stderr lacks ${path}:\n${stderr}`);
    });
  }

  test('a loopback admin bind without a token and a registration pool are valid', async () => {
    const config = { admin: { bind: '127.0.0.1:0' }, listeners: [listener], pools: [{ name: 'app', balance: 'maglev', discovery: { type: 'registration' } }] };
    const { status, stderr } = await runCli(['check', '--config', temp.writeJson(config)]);
    assert.equal(status.code, 0, stderr);
  });
});
