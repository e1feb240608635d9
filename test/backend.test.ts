/**
 * The backend vocabulary (src/backend.ts) is the one definition of a backend's bounds: the config
 * schema states the same numbers, and every edge that takes a backend (config, discovery entries,
 * the registration API, the balancing core) accepts exactly the ids and weights a config may hold.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  BACKEND_STATES,
  backendIdLength,
  MAX_BACKEND_ID_LENGTH,
  MAX_WEIGHT,
  type BackendSource,
} from '../src/backend.js';
import { CONFIG_SCHEMA_URL, validateConfig } from '../src/config/load.js';
import { createBalancer, type BalancerImplementation } from '../src/core/index.js';
import { parseBackendEntry } from '../src/discovery/backend-entries.js';
import { createRootLogger } from '../src/log.js';
import { Ringlb } from '../src/runtime.js';
import { AdminClient } from './helpers/admin-client.js';

interface SchemaNode {
  readonly maxLength?: number;
  readonly maximum?: number;
  readonly enum?: readonly string[];
  readonly properties?: Readonly<Record<string, SchemaNode>>;
}
const schema = JSON.parse(readFileSync(CONFIG_SCHEMA_URL, 'utf8')) as { definitions: Record<string, SchemaNode> };
const backendSchema = schema.definitions.backend.properties!;

/** Every BackendSource once; `satisfies` fails to compile when the type gains or loses a member. */
const BACKEND_SOURCES = { static: true, file: true, registration: true, dns: true, etcd: true } satisfies Record<BackendSource, true>;

/** An astral character: two UTF-16 units, one code point (what the schema's maxLength counts). */
const ASTRAL = '\u{1F600}';
const longestId = ASTRAL.repeat(MAX_BACKEND_ID_LENGTH);
const tooLongId = ASTRAL.repeat(MAX_BACKEND_ID_LENGTH + 1);

describe('backend vocabulary: the schema states the same bounds', () => {
  test('backend id maxLength, weight maximum and state enum', () => {
    assert.equal(backendSchema.id.maxLength, MAX_BACKEND_ID_LENGTH);
    assert.equal(backendSchema.weight.maximum, MAX_WEIGHT);
    assert.deepEqual(backendSchema.state.enum, BACKEND_STATES);
  });

  test('discovery types are the backend sources', () => {
    assert.deepEqual([...(schema.definitions.discovery.properties!.type.enum ?? [])].sort(), Object.keys(BACKEND_SOURCES).sort());
  });

  test('backendIdLength counts code points, as the schema does', () => {
    assert.equal(backendIdLength(''), 0);
    assert.equal(backendIdLength('web-1'), 5);
    assert.equal(backendIdLength(`a${ASTRAL}b`), 3);
    assert.equal(longestId.length, 2 * MAX_BACKEND_ID_LENGTH);
    assert.equal(backendIdLength(longestId), MAX_BACKEND_ID_LENGTH);
    // A lone surrogate is one code point, as ajv's ucs2length counts it.
    assert.equal(backendIdLength('\uD83Dx'), 2);
    assert.equal(backendIdLength('x\uD83D'), 2);
  });
});

describe('backend vocabulary: every edge accepts the longest id a config may hold, and no longer', () => {
  const configWithId = (id: string) =>
    validateConfig({
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }],
      pools: [{ name: 'app', balance: 'maglev', backends: [{ id, address: '127.0.0.1:9001' }] }],
    });

  test('config', () => {
    const accepted = configWithId(longestId);
    assert.ok(accepted.ok, JSON.stringify(!accepted.ok && accepted.issues));
    assert.equal(accepted.config.pools[0].backends[0].id, longestId);
    const refused = configWithId(tooLongId);
    assert.ok(!refused.ok);
    assert.deepEqual(refused.issues.map((issue) => issue.path), ['pools[0].backends[0].id']);
  });

  test('discovery entries', () => {
    const accepted = parseBackendEntry({ id: longestId, address: '127.0.0.1:9001' }, '[0]');
    assert.ok('backend' in accepted, JSON.stringify(accepted));
    assert.equal(accepted.backend.id, longestId);
    const refused = parseBackendEntry({ id: tooLongId, address: '127.0.0.1:9001' }, '[0]');
    assert.ok('errors' in refused && refused.errors.length === 1, JSON.stringify(refused));
    assert.ok(refused.errors[0].startsWith(`[0].id: must be a string of 1..${MAX_BACKEND_ID_LENGTH} characters, got "`), refused.errors[0]);
  });

  for (const implementation of ['wasm', 'reference'] as const satisfies readonly BalancerImplementation[]) {
    test(`balancing core (${implementation})`, () => {
      const balancer = createBalancer({ policy: 'maglev', maglevTableSize: 7, maxBackends: 4 }, implementation);
      const report = balancer.setBackends([{ id: longestId, weight: MAX_WEIGHT }]);
      assert.deepEqual(report.added, [longestId]);
      assert.equal(balancer.idOf(balancer.slotOf(longestId)), longestId);
      assert.throws(() => balancer.setBackends([{ id: tooLongId, weight: 1 }]), TypeError);
      assert.throws(() => balancer.setBackends([{ id: 'b', weight: MAX_WEIGHT + 1 }]), RangeError);
    });
  }

  test('registration API (a running ringlb, real admin HTTP)', async (t) => {
    const ringlb = new Ringlb({ logger: createRootLogger({ level: 'silent' }) });
    t.after(() => ringlb.close());
    const loaded = validateConfig({
      admin: { bind: '127.0.0.1:0' },
      listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }],
      pools: [{ name: 'app', balance: 'maglev', discovery: { type: 'registration' } }],
    });
    assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.issues));
    await ringlb.start(loaded.config);
    const admin = new AdminClient(ringlb.adminAddress()!);
    t.after(() => admin.close());

    const created = await admin.register('app', longestId, { address: '127.0.0.1:9001' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(ringlb.registrations.backends('app').map((backend) => backend.id), [longestId]);

    const refused = await admin.register('app', tooLongId, { address: '127.0.0.1:9002' });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.match((refused.body as { error: string }).error, new RegExp(`1 to ${MAX_BACKEND_ID_LENGTH} characters`));
    assert.deepEqual(ringlb.registrations.backends('app').map((backend) => backend.id), [longestId]);
  });
});
