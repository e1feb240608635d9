import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseBackendEntry, parseBackendList, sameBackendSet } from '../src/discovery/backend-entries.js';
import { Backoff } from '../src/discovery/backoff.js';
import { createDiscoverySource, type DiscoveryOptions } from '../src/discovery/index.js';
import { describeSet } from './helpers/discovery-recorder.js';

describe('discovery entries: validated like config backends', () => {
  test('defaults: weight 1, state active, id = address text; sorted by id', () => {
    const result = parseBackendList([{ address: '127.0.0.1:9002' }, { address: '[::1]:9001', weight: 3, state: 'drain', id: 'a' }]);
    assert.ok('backends' in result);
    assert.deepEqual(describeSet(result.backends), ['127.0.0.1:9002=127.0.0.1:9002/1/active', 'a=[::1]:9001/3/drain']);
    assert.deepEqual(result.backends[1].address, { host: '::1', port: 9001, text: '[::1]:9001' });
  });

  test('an empty list is a valid (empty) set', () => {
    assert.deepEqual(parseBackendList([]), { backends: [] });
  });

  const bad: ReadonlyArray<readonly [unknown, string]> = [
    [{}, '[0]: must be a JSON array of backends'],
    [[{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2' }, { address: '127.0.0.1:3', weight: 1.5 }], '[2].weight: must be an integer 0..10000, got 1.5'],
    [[{ address: '127.0.0.1:1', weight: 10001 }], '[0].weight: must be an integer 0..10000, got 10001'],
    [[{ address: '127.0.0.1:1', weight: '2' }], '[0].weight: must be an integer 0..10000, got "2"'],
    [[{ address: '127.0.0.1' }], '[0].address: "127.0.0.1" is missing its port'],
    [[{ address: '::1:80' }], '[0].address: IPv6 addresses must be in brackets'],
    [[{ address: '127.0.0.1:0' }], '[0].address: port 0 out of range 1..65535'],
    [[{}], '[0].address: must be a "host:port" string, got nothing'],
    [[{ address: '127.0.0.1:1', state: 'down' }], '[0].state: must be one of active, drain, maint, got "down"'],
    [[{ address: '127.0.0.1:1', id: '' }], '[0].id: must be a string of 1..256 characters, got ""'],
    [[{ address: '127.0.0.1:1', id: 'a/b' }], '[0].id: must not contain "/" or "\\" (an id is one URL path segment in the admin API)'],
    [[{ address: '127.0.0.1:1', id: 'web\u200b1' }], '[0].id: must not contain zero-width characters (found U+200B): two ids would look alike'],
    [[{ address: '127.0.0.1:1', port: 2 }], '[0].port: unknown property'],
    [['127.0.0.1:1'], '[0]: must be an object like'],
    [[{ address: '127.0.0.1:1' }, { address: '127.0.0.1:1' }], '[1].id: duplicate backend id "127.0.0.1:1" (also [0])'],
    [[{ address: '127.0.0.1:1', id: 'x' }, { address: '127.0.0.1:2', id: 'x' }], '[1].id: duplicate backend id "x" (also [0])'],
  ];
  for (const [value, message] of bad) {
    test(`refused: ${message}`, () => {
      const result = parseBackendList(value);
      assert.ok('errors' in result, 'expected a refusal');
      const text = result.errors.join('; ');
      // The first case has no index: the whole value is wrong.
      assert.ok(text.includes(message.replace(/^\[0\]: must be a JSON/, 'must be a JSON')), `${text} should include ${message}`);
    });
  }

  test('every problem of an entry is reported, not only the first', () => {
    const result = parseBackendEntry({ address: 'x', weight: -1, state: 1 }, '/ringlb/app/b1');
    assert.ok('errors' in result);
    assert.equal(result.errors.length, 3);
    assert.match(result.errors[0], /^\/ringlb\/app\/b1\.address: /);
  });

  test('a default id other than the address (etcd key suffix); an explicit id wins', () => {
    const implicit = parseBackendEntry({ address: '127.0.0.1:1' }, 'k', 'b1');
    const explicit = parseBackendEntry({ address: '127.0.0.1:1', id: 'mine' }, 'k', 'b1');
    assert.ok('backend' in implicit && 'backend' in explicit);
    assert.equal(implicit.backend.id, 'b1');
    assert.equal(explicit.backend.id, 'mine');
  });

  test('sameBackendSet compares id, address, weight and state', () => {
    const parse = (value: unknown) => {
      const result = parseBackendList(value);
      assert.ok('backends' in result);
      return result.backends;
    };
    const base = parse([{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2' }]);
    assert.ok(sameBackendSet(base, parse([{ address: '127.0.0.1:2' }, { address: '127.0.0.1:1' }])));
    assert.ok(!sameBackendSet(base, parse([{ address: '127.0.0.1:2' }, { address: '127.0.0.1:1', weight: 2 }])));
    assert.ok(!sameBackendSet(base, parse([{ address: '127.0.0.1:2' }, { address: '127.0.0.1:1', state: 'drain' }])));
    assert.ok(!sameBackendSet(base, parse([{ address: '127.0.0.1:2' }])));
  });
});

describe('discovery backoff', () => {
  test('doubles from min to max and resets', () => {
    const backoff = new Backoff({ minMs: 100, maxMs: 700 });
    assert.deepEqual([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()], [100, 200, 400, 700, 700]);
    backoff.reset();
    assert.equal(backoff.next(), 100);
  });

  test('defaults 1 s → 30 s', () => {
    const backoff = new Backoff();
    const delays = Array.from({ length: 7 }, () => backoff.next());
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  });
});

describe('createDiscoverySource', () => {
  test('builds each kind with a description for logs; an unknown type is refused', async () => {
    const file = createDiscoverySource({ type: 'file', path: 'backends.json' });
    const dns = createDiscoverySource({ type: 'dns', name: '_app._tcp.svc.test', record: 'SRV', servers: ['127.0.0.1:5353'] });
    const etcd = createDiscoverySource({ type: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/ringlb/app/' });
    assert.deepEqual(
      [file, dns, etcd].map((source) => [source.kind, source.description]),
      [['file', 'file backends.json'], ['dns', 'dns SRV _app._tcp.svc.test'], ['etcd', 'etcd /ringlb/app/']],
    );
    // Never started: stop() still releases everything (the etcd client) and is idempotent.
    await Promise.all([file.stop(), dns.stop(), etcd.stop(), etcd.stop()]);
    assert.throws(() => createDiscoverySource({ type: 'consul' } as unknown as DiscoveryOptions), /unknown type "consul"; expected file, dns or etcd/);
  });
});
