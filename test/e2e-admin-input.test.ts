/**
 * Admin API input rules over real HTTP, against the CLI as a child process: bodies are read like
 * config files (duplicate keys refused), backend ids follow the config's id rule (backend-id.ts),
 * and a bad request gets every problem at once, each with its path, with "did you mean" for
 * unknown keys. Nothing a refused request carried is registered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AdminClient, adminAddress, type AdminErrorBody } from './helpers/admin-client.js';
import { runCli, startRinglb, TempDir, type RinglbProcess } from './helpers/ringlb-process.js';

const temp = new TempDir();
let ringlb: RinglbProcess | undefined;
let admin: AdminClient;

before(async () => {
  const file = temp.writeJson({
    admin: { bind: '127.0.0.1:0' },
    listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app' }],
    pools: [{ name: 'app', balance: 'maglev', discovery: { type: 'registration' } }],
    log: { level: 'info' },
  });
  const started = await startRinglb(file, ['app']);
  ringlb = started.ringlb;
  admin = new AdminClient(await adminAddress(ringlb));
});

after(async () => {
  admin?.close();
  await ringlb?.kill();
  temp.remove();
});

async function backendIds(): Promise<string[]> {
  const listed = await admin.request('GET', '/v1/pools/app/backends');
  assert.equal(listed.status, 200);
  return (listed.body as { backends: Array<{ id: string }> }).backends.map((backend) => backend.id);
}

describe('admin API input rules', () => {
  test('duplicate keys are refused, each listed by path; nothing is registered', async () => {
    const reply = await admin.request('PUT', '/v1/pools/app/backends/dup', {
      rawBody: '{"address": "127.0.0.1:9001", "weight": 0, "weight": 5, "ttlMs": 1000, "ttlMs": 2000}',
    });
    assert.equal(reply.status, 400);
    const body = reply.body as AdminErrorBody;
    assert.deepEqual(
      body.issues?.map((issue) => [issue.path, issue.message]),
      [
        ['weight', 'key appears more than once in its object (JSON keeps only the last value)'],
        ['ttlMs', 'key appears more than once in its object (JSON keeps only the last value)'],
      ],
    );
    assert.equal(body.path, 'weight');
    assert.deepEqual(await backendIds(), []);
  });

  test('a JSON syntax error names line and column', async () => {
    const reply = await admin.request('PUT', '/v1/pools/app/backends/x', { rawBody: '{\n  "address": "127.0.0.1:9001",\n}' });
    assert.equal(reply.status, 400);
    assert.deepEqual(reply.body, {
      error: 'body is not valid JSON: line 3, column 1: unexpected "}"; expected a property name in double quotes (JSON allows no trailing comma)',
      path: '$',
    });
  });

  test('a duplicate key is reported with every other problem of the request, in document order', async () => {
    const reply = await admin.request('PUT', `/v1/pools/app/backends/${encodeURIComponent('web/1')}`, {
      rawBody: '{"address": "6380", "ttl": 1000, "weight": 20000, "weight": 3, "extra": true}',
    });
    assert.equal(reply.status, 400);
    const body = reply.body as AdminErrorBody;
    assert.deepEqual(
      body.issues?.map((issue) => issue.path),
      ['url.id', 'address', 'ttl', 'weight', 'extra'],
    );
    const messages = body.issues!.map((issue) => issue.message);
    assert.match(messages[0]!, /^backend id must not contain "\/"/);
    assert.match(messages[1]!, /^"6380" is missing its host; write 127\.0\.0\.1:6380 \(this machine\)/);
    assert.match(messages[2]!, /did you mean "ttlMs"\?/);
    assert.equal(messages[3], 'key appears more than once in its object (JSON keeps only the last value)');
    assert.match(messages[4]!, /^unknown key/);
    assert.deepEqual(await backendIds(), []);
  });

  const badIds: ReadonlyArray<readonly [what: string, id: string, message: RegExp]> = [
    ['a path separator', 'team/web-1', /^backend id must not contain "\/" or "\\"/],
    ['a backslash', 'team\\web-1', /^backend id must not contain "\/" or "\\"/],
    ['a bidi override', 'web-1\u202e', /^backend id must not contain bidirectional control characters \(found U\+202E\)/],
    ['a zero-width space', 'web\u200b-1', /^backend id must not contain zero-width characters \(found U\+200B\)/],
    ['a control character', 'web\n1', /^backend id must not contain control characters \(found U\+000A\)/],
    ['257 characters', 'x'.repeat(257), /^backend id must be 1 to 256 characters \(got 257\)$/],
    ['".." (clients rewrite it out of URLs)', '..', /^backend id must not be "\." or "\.\."/],
  ];
  for (const [what, id, message] of badIds) {
    test(`an id with ${what} is refused at url.id`, async () => {
      const reply = await admin.register('app', id, { address: '127.0.0.1:9001' });
      assert.equal(reply.status, 400);
      const body = reply.body as AdminErrorBody;
      assert.equal(body.path, 'url.id');
      assert.match(body.error, message);
      assert.deepEqual(await backendIds(), []);
    });
  }

  test('every problem at once, in document order after the id, with did-you-mean', async () => {
    const reply = await admin.request('PUT', `/v1/pools/app/backends/${encodeURIComponent('a/b')}`, {
      body: { address: '6380', ttl: 5000, weight: -1, wieght: 2 },
    });
    assert.equal(reply.status, 400);
    const body = reply.body as AdminErrorBody;
    assert.deepEqual(
      body.issues?.map((issue) => issue.path),
      ['url.id', 'address', 'ttl', 'weight', 'wieght'],
    );
    const messages = new Map(body.issues!.map((issue) => [issue.path, issue.message]));
    assert.match(messages.get('address')!, /^"6380" is missing its host; write 127\.0\.0\.1:6380/);
    assert.match(messages.get('ttl')!, /^unknown key \(did you mean "ttlMs"\? allowed: address, weight, ttlMs\)$/);
    assert.match(messages.get('weight')!, /^must be between 0 and 10000 \(got -1\)$/);
    assert.match(messages.get('wieght')!, /did you mean "weight"\?/);
    assert.deepEqual([body.path, body.error], ['url.id', body.issues![0]!.message]);
    assert.deepEqual(await backendIds(), []);
  });

  test('a valid id and body still register (the rules refuse only what they name)', async () => {
    const id = 'web-1.blue:9001 é';
    const reply = await admin.register('app', id, { address: '127.0.0.1:9001', weight: 2 });
    assert.equal(reply.status, 201);
    assert.deepEqual(await backendIds(), [id]);
    assert.equal((await admin.request('DELETE', `/v1/pools/app/backends/${encodeURIComponent(id)}`)).status, 204);
  });
});

describe('the same id rule in a config file (ringlb check)', () => {
  test('bad ids are reported by path, all at once', async () => {
    const file = temp.writeJson({
      listeners: [{ name: 'app', bind: '6380', pool: 'app' }],
      pools: [
        {
          name: 'app',
          backends: [
            { id: 'team/web-1', address: '127.0.0.1:9001' },
            { id: 'web\u200b2', address: '127.0.0.1:9002' },
            { id: 'web-3\u2066', address: '127.0.0.1:9003' },
          ],
        },
      ],
    });
    const { status, stderr } = await runCli(['check', '--config', file]);
    assert.equal(status.code, 2);
    assert.deepEqual(stderr.trimEnd().split('\n'), [
      `${file}: listeners[0].bind: "6380" is missing its host; write 127.0.0.1:6380 (this machine only), 0.0.0.0:6380 (every IPv4 address) or [::1]:6380`,
      `${file}: pools[0].backends[0].id: must not contain "/" or "\\" (an id is one URL path segment in the admin API)`,
      `${file}: pools[0].backends[1].id: must not contain zero-width characters (found U+200B): two ids would look alike`,
      `${file}: pools[0].backends[2].id: must not contain bidirectional control characters (found U+2066): they reorder how the id reads`,
      '4 errors',
    ]);
  });
});
