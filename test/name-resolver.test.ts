/**
 * NameResolver on its own, with a scripted resolver and mocked timers: which address a name
 * connects to, when it is asked again, what is logged, and what is forgotten.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NameResolver, isHostName, preferredAddress, type ResolvedAddress } from '../src/discovery/name-resolver.js';
import { LogCapture } from './helpers/log-capture.js';

const V4: ResolvedAddress = { address: '127.0.0.1', family: 4 };
const V6: ResolvedAddress = { address: '::1', family: 6 };

/** A resolver whose answers the test sets per name, counting every question. */
function scripted(): { resolve: (name: string) => Promise<readonly ResolvedAddress[]>; answers: Map<string, readonly ResolvedAddress[] | Error>; asked: string[] } {
  const answers = new Map<string, readonly ResolvedAddress[] | Error>();
  const asked: string[] = [];
  return {
    answers,
    asked,
    resolve: async (name) => {
      asked.push(name);
      const answer = answers.get(name) ?? new Error(`no answer scripted for ${name}`);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
}

describe('name resolution helpers', () => {
  test('IPv4 first when a name has both families, else the first answer', () => {
    assert.deepEqual(preferredAddress([V6, V4]), V4);
    assert.deepEqual(preferredAddress([V6]), V6);
    assert.equal(preferredAddress([]), undefined);
  });

  test('IP literals are not names', () => {
    assert.equal(isHostName('127.0.0.1'), false);
    assert.equal(isHostName('::1'), false);
    assert.equal(isHostName('localhost'), true);
    assert.equal(isHostName('db-1.internal'), true);
  });
});

describe('NameResolver', () => {
  test('resolves new names at once, ignores IP literals, reports each first answer', async () => {
    const { resolve, answers, asked } = scripted();
    answers.set('a.test', [V4]);
    answers.set('b.test', [V6, V4]);
    const changes: string[] = [];
    const log = new LogCapture();
    const resolver = new NameResolver({ resolve, intervalMs: 0, logger: log.logger(), onChange: (name, address) => changes.push(`${name}=${address.address}`) });
    await resolver.track(['a.test', '10.0.0.1', 'b.test', 'a.test', '::1']);
    assert.deepEqual(asked.sort(), ['a.test', 'b.test']);
    assert.deepEqual(changes.sort(), ['a.test=127.0.0.1', 'b.test=127.0.0.1']);
    assert.deepEqual(resolver.addressOf('b.test'), V4);
    assert.equal(resolver.addressOf('10.0.0.1'), undefined);
    // Known names are not asked again when the set changes; interval 0 means no timer.
    await resolver.track(['a.test', 'b.test', 'c.test']);
    assert.deepEqual(asked.filter((name) => name !== 'c.test').length, 2);
    assert.equal(log.count('backend name resolved'), 2);
    assert.equal(log.count('backend name does not resolve: connecting by name'), 1, 'c.test has no answer');
    resolver.close();
  });

  test('re-resolves on the interval; a change is reported and logged old → new; a failure keeps the last address', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const { resolve, answers, asked } = scripted();
    answers.set('m.test', [V4]);
    const changes: string[] = [];
    const log = new LogCapture();
    const resolver = new NameResolver({ resolve, intervalMs: 1000, logger: log.logger(), onChange: (name, address) => changes.push(address.address) });
    await resolver.track(['m.test']);
    assert.deepEqual(changes, ['127.0.0.1']);

    t.mock.timers.tick(999);
    assert.equal(asked.length, 1, 'not before the interval');
    answers.set('m.test', [V6]);
    t.mock.timers.tick(1);
    assert.equal(asked.length, 2);
    await resolver.refresh(); // joins the lookup in flight (one per name), then settles
    assert.equal(asked.length, 2, 'a refresh during a lookup in flight joins it');
    assert.deepEqual(changes, ['127.0.0.1', '::1']);
    const changed = await log.waitFor('backend address changed', { host: 'm.test' });
    assert.deepEqual([changed.from, changed.to], ['127.0.0.1', '::1']);

    answers.set('m.test', Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }));
    await resolver.refresh();
    await resolver.refresh();
    assert.deepEqual(resolver.addressOf('m.test'), V6, 'the last good address is kept');
    assert.equal(log.count('backend name does not resolve: keeping the last address'), 1, 'logged once per failure streak');
    assert.deepEqual(changes, ['127.0.0.1', '::1'], 'a failure is not a change');

    answers.set('m.test', [V6]);
    await resolver.refresh();
    assert.equal(log.count('backend name resolves again'), 1);
    assert.deepEqual(changes, ['127.0.0.1', '::1'], 'the same answer again is not a change');

    // A name that leaves the set is forgotten, and its late answer lands nowhere.
    await resolver.track([]);
    assert.equal(resolver.addressOf('m.test'), undefined);
    const before = asked.length;
    t.mock.timers.tick(5000);
    assert.equal(asked.length, before, 'no names, no lookups');
    resolver.close();
  });
});
