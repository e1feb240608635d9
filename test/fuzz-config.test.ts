/**
 * Fuzzing the config loader (issue 10): random JSON, random text, and valid configs mutated in
 * value, type, key and nesting never make the loader throw; the answer is always a config or a
 * list of issues, each at a well-formed JSON path with a message. A bounded sample goes through the
 * real CLI (`ringlb check`, a child process): exit 0, or exit 2 with one `file: path: message` line
 * per issue on stderr, never another code and never a stack trace.
 *
 * Seeds are the configs the docs show (every ```json block of README.md and docs/*.md that is a
 * config or a fragment of one) plus a small config using most sections. The normal suite runs each
 * property a few seconds; `npm run fuzz` runs them longer (test/helpers/fuzz.ts).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { parseConfigText, validateConfig, type ConfigLoadResult } from '../src/config/load.js';
import { budgetMs, fuzz, runs } from './helpers/fuzz.js';
import { runCli, TempDir } from './helpers/ringlb-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A config touching most sections, so mutations reach deep into the schema and the cross-checks. */
const RICH_CONFIG = {
  admin: { bind: '127.0.0.1:0', token: '0123456789abcdef0123' },
  log: { level: 'info' },
  drainTimeoutMs: 1000,
  listeners: [
    { name: 'web', bind: '127.0.0.1:0', pool: 'web', maxConnections: 100, idleTimeoutMs: 5000 },
    { name: 'cache', bind: '[::1]:0', pool: 'cache' },
  ],
  pools: [
    {
      name: 'web',
      balance: 'least_connections',
      retries: 1,
      connectTimeoutMs: 500,
      healthCheck: { type: 'http', intervalMs: 1000, rise: 2, fall: 2, http: { path: '/health', expectStatus: [200, 299] } },
      outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 1000 },
      backends: [{ address: '127.0.0.1:9001', weight: 2 }, { address: '127.0.0.1:9002', id: 'b', state: 'drain' }],
    },
    {
      name: 'cache',
      balance: 'maglev',
      hashKey: 'source_ip_port',
      hashBalanceFactor: 125,
      healthCheck: { type: 'send_expect', send: 'PING\r\n', expect: '+PONG' },
      backends: [{ address: '[::1]:7001' }, { address: 'localhost:7002' }],
    },
  ],
};

/** Every ```json block of the README and docs/ that parses (alone, or wrapped in braces) to an object. */
function documentedConfigs(): Array<Record<string, unknown>> {
  const files = [join(ROOT, 'README.md'), ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => join(ROOT, 'docs', name))];
  const seeds: Array<Record<string, unknown>> = [];
  for (const file of files) {
    for (const match of readFileSync(file, 'utf8').matchAll(/```json\n([\s\S]*?)```/g)) {
      for (const text of [match[1]!, `{${match[1]!}}`]) {
        try {
          const value: unknown = JSON.parse(text);
          if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
            seeds.push(value as Record<string, unknown>);
            break;
          }
        } catch {
          // a fragment that is neither an object nor members of one (a log line, a response): not a seed
        }
      }
    }
  }
  return seeds;
}

const SEEDS = [RICH_CONFIG, ...documentedConfigs()];

/** `$`, or accessor-style segments as formatPath writes them: `pools[0].backends[1].address`, `["a b"]`. */
const SEGMENT = String.raw`(?:[A-Za-z_$][A-Za-z0-9_$]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])`;
const PATH_BODY = String.raw`(?:\$|${SEGMENT}(?:\.[A-Za-z_$][A-Za-z0-9_$]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])*)`;
const JSON_PATH = new RegExp(`^${PATH_BODY}$`);
/** An issue line after its `file: ` prefix: the path, then `: ` and the message (a quoted key may itself hold ": "). */
const ISSUE_AFTER_FILE = new RegExp(`^${PATH_BODY}: .`);

function assertAnswered(result: ConfigLoadResult): void {
  if (result.ok) {
    assert.ok(Array.isArray(result.config.listeners) && Array.isArray(result.config.pools), 'a valid config has listeners and pools');
    return;
  }
  assert.ok(result.issues.length > 0, 'a refused config names at least one issue');
  for (const issue of result.issues) {
    assert.match(issue.path, JSON_PATH, `issue path ${JSON.stringify(issue.path)}`);
    assert.ok(issue.message.length > 0, `empty message at ${issue.path}`);
    assert.doesNotMatch(issue.message, /\[object Object\]|\bundefined\b|\bNaN\b/, `message at ${issue.path} leaks a JS value`);
  }
}

// --- mutations -----------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type PathStep = string | number;

/** Every path to a value inside `value` (the root is `[]`). */
function allPaths(value: Json, prefix: PathStep[] = [], into: PathStep[][] = []): PathStep[][] {
  into.push(prefix);
  if (Array.isArray(value)) value.forEach((item, i) => allPaths(item, [...prefix, i], into));
  else if (value !== null && typeof value === 'object') for (const [key, item] of Object.entries(value)) allPaths(item, [...prefix, key], into);
  return into;
}

function getAt(root: Json, path: readonly PathStep[]): Json {
  let value = root;
  for (const step of path) value = (value as Record<string | number, Json>)[step]!;
  return value;
}

type Mutation =
  | { kind: 'replace'; at: number; value: Json }
  | { kind: 'delete'; at: number }
  | { kind: 'addKey'; at: number; key: string; value: Json }
  | { kind: 'renameKey'; at: number; key: string }
  | { kind: 'wrapInArray'; at: number }
  | { kind: 'wrapInObject'; at: number; key: string }
  | { kind: 'duplicate'; at: number }
  | { kind: 'number'; at: number; value: number };

/** Keys the schema knows, so that added and renamed keys often land on real settings. */
const KNOWN_KEYS = ['listeners', 'pools', 'admin', 'log', 'name', 'bind', 'pool', 'backends', 'address', 'weight', 'id', 'state', 'balance', 'hashKey',
  'healthCheck', 'outlierDetection', 'discovery', 'type', 'token', 'maxConnections', 'idleTimeoutMs', 'retries', 'panicThreshold', 'slowStartMs',
  'workers', 'drainTimeoutMs', 'alerts', 'access', 'proxyProtocol', 'allow', 'deny', 'queue', 'sendProxyProtocol', '__proto__', 'constructor', ''];

const anyKey = fc.oneof(fc.constantFrom(...KNOWN_KEYS), fc.string({ maxLength: 12 }));
const anyJson = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>;
const oddNumber = fc.oneof(
  fc.constantFrom(0, -1, 1, 0.5, 65535, 65536, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, Number.MIN_VALUE, -0),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), value: anyJson }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('addKey' as const), at: fc.nat(), key: anyKey, value: anyJson }),
  fc.record({ kind: fc.constant('renameKey' as const), at: fc.nat(), key: anyKey }),
  fc.record({ kind: fc.constant('wrapInArray' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('wrapInObject' as const), at: fc.nat(), key: anyKey }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('number' as const), at: fc.nat(), value: oddNumber }),
);

/** Applies `mutations` to a deep copy of `seed`; each one picks its target among the paths of the document as it is then. */
function mutate(seed: Json, mutations: readonly Mutation[]): Json {
  let doc = structuredClone(seed);
  for (const change of mutations) {
    const paths = allPaths(doc);
    const path = paths[change.at % paths.length]!;
    const target = getAt(doc, path);
    const parentPath = path.slice(0, -1);
    const last = path[path.length - 1];
    const set = (value: Json): void => {
      if (path.length === 0) doc = value;
      else (getAt(doc, parentPath) as Record<string | number, Json>)[last!] = value;
    };
    switch (change.kind) {
      case 'replace':
        set(change.value);
        break;
      case 'number':
        set(change.value);
        break;
      case 'delete': {
        if (path.length === 0) break;
        const parent = getAt(doc, parentPath);
        if (Array.isArray(parent)) parent.splice(last as number, 1);
        else delete (parent as Record<string, Json>)[last as string];
        break;
      }
      case 'addKey':
        if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
          // defineProperty: a plain assignment of "__proto__" would set the prototype, not a key
          Object.defineProperty(target, change.key, { value: change.value, enumerable: true, writable: true, configurable: true });
        } else if (Array.isArray(target)) target.push(change.value);
        break;
      case 'renameKey': {
        const parent = path.length === 0 ? null : getAt(doc, parentPath);
        if (parent !== null && typeof parent === 'object' && !Array.isArray(parent)) {
          const value = parent[last as string]!;
          delete parent[last as string];
          Object.defineProperty(parent, change.key, { value, enumerable: true, writable: true, configurable: true });
        }
        break;
      }
      case 'wrapInArray':
        set([target]);
        break;
      case 'wrapInObject': {
        const wrapper: Record<string, Json> = {};
        Object.defineProperty(wrapper, change.key, { value: target, enumerable: true, writable: true, configurable: true });
        set(wrapper);
        break;
      }
      case 'duplicate':
        if (Array.isArray(target)) target.push(...structuredClone(target));
        break;
    }
  }
  return doc;
}

const seedIndex = fc.nat(SEEDS.length - 1);
const mutatedConfig = fc.tuple(seedIndex, fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([i, changes]) => mutate(SEEDS[i] as Json, changes));

/** Text-level damage: cut, insert, and duplicate a member (the loader must report duplicate keys). */
const damagedText = fc
  .tuple(fc.oneof(mutatedConfig, seedIndex.map((i) => SEEDS[i] as Json)), fc.nat(), fc.nat(), fc.string({ maxLength: 8 }), fc.constantFrom('cut', 'insert', 'duplicateMember', 'none'))
  .map(([doc, at, length, inserted, how]) => {
    const text = JSON.stringify(doc, null, 2);
    const cut = at % (text.length + 1);
    switch (how) {
      case 'cut':
        return text.slice(0, cut) + text.slice(cut + (length % 16));
      case 'insert':
        return text.slice(0, cut) + inserted + text.slice(cut);
      case 'duplicateMember': {
        const member = /\n\s+("[^"\n]+": [^\n{[]+?),?\n/.exec(text.slice(cut));
        return member === null ? text : text.replace(member[0], `\n${member[1]}, ${member[1]},\n`);
      }
      default:
        return text;
    }
  });

describe('config loader fuzzing', () => {
  test('seeds: the documented configs and fragments are found (the mutations start from them)', () => {
    assert.ok(SEEDS.length >= 8, `only ${SEEDS.length} seeds`);
    assertAnswered(validateConfig(RICH_CONFIG));
    assert.equal(validateConfig(RICH_CONFIG).ok, true, 'the rich seed is valid, so mutations start from a config that passes');
  });

  test('random JSON values: a config or issues at JSON paths, never a throw', async (t) => {
    await fuzz(t, fc.property(fc.jsonValue({ maxDepth: 5 }), (value) => assertAnswered(validateConfig(value))), { numRuns: runs(2000), timeMs: budgetMs(4000) });
  });

  test('valid configs mutated in values, types, keys and nesting: a config or issues at JSON paths', async (t) => {
    await fuzz(t, fc.property(mutatedConfig, (doc) => assertAnswered(validateConfig(doc))), { numRuns: runs(2000), timeMs: budgetMs(6000) });
  });

  test('config text cut, spliced and with repeated keys: issues at JSON paths (syntax errors at $ with line and column)', async (t) => {
    await fuzz(
      t,
      fc.property(fc.oneof(damagedText, fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 })), (text) => {
        const result = parseConfigText(text);
        assertAnswered(result);
        if (!result.ok && result.issues[0]!.message.startsWith('invalid JSON')) assert.match(result.issues[0]!.message, /line \d+, column \d+/);
      }),
      { numRuns: runs(2000), timeMs: budgetMs(6000) },
    );
  });
});

/** Each case a fuzz run found, pinned. */
describe('config loader: cases the fuzzer found', () => {
  test('a Maglev table size far past the maximum is one schema issue, at once (the prime search never ended on 1.3e191)', () => {
    for (const tableSize of [1.3071907363049653e191, 2 ** 53 + 2, 5_000_012, 1e12]) {
      const started = performance.now();
      const result = validateConfig({ ...RICH_CONFIG, listeners: [RICH_CONFIG.listeners[1]], pools: [{ ...RICH_CONFIG.pools[1], maglev: { tableSize } }] });
      assert.ok(performance.now() - started < 2000, `validation of tableSize ${tableSize} took ${performance.now() - started} ms`);
      assert.equal(result.ok, false);
      assert.deepEqual(!result.ok && result.issues.map((issue) => issue.path), ['pools[0].maglev.tableSize'], String(tableSize));
    }
  });
});

describe('ringlb check on fuzzed configs (child processes)', () => {
  const temp = new TempDir();
  after(() => temp.remove());

  test('exit 0, or exit 2 with a path on every issue line; never another code or a stack trace', { timeout: 180_000 }, async (t) => {
    // A child per case costs ~0.3 s on a quiet machine: a small fixed sample in CI, FUZZ_RUNS / 20 in `npm run fuzz`.
    const count = Math.max(12, Math.floor(runs(0) / 20));
    const deadline = Date.now() + budgetMs(60_000);
    const texts = fc.sample(fc.oneof({ weight: 3, arbitrary: mutatedConfig.map((doc) => JSON.stringify(doc)) }, damagedText), { numRuns: count, seed: Number(process.env.FUZZ_SEED ?? 10) });
    let ran = 0;
    for (const text of texts) {
      if (Date.now() > deadline) break;
      const file = temp.writeText(text);
      const { status, stderr } = await runCli(['check', '--config', file], 30_000);
      const context = `config ${file}:\n${text.slice(0, 2000)}\nstderr:\n${stderr.slice(0, 2000)}`;
      assert.equal(status.signal, null, context);
      assert.ok(status.code === 0 || status.code === 2, `exit ${status.code}; ${context}`);
      assert.doesNotMatch(stderr, /^\s+at .+:\d+:\d+\)?$/m, `stack trace; ${context}`);
      if (status.code === 2) {
        const lines = stderr.trimEnd().split('\n');
        assert.match(lines.at(-1)!, /^\d+ errors?$/, context);
        for (const line of lines.slice(0, -1)) {
          if (line.startsWith('... and ')) continue;
          assert.ok(line.startsWith(`${file}: `), `issue line without the file: ${line}`);
          assert.match(line.slice(file.length + 2), ISSUE_AFTER_FILE, `issue line without a JSON path: ${line}`);
        }
      }
      ran += 1;
    }
    t.diagnostic(`${ran} cases, 0 failures`);
    assert.ok(ran >= Math.min(count, 3), `only ${ran} cases ran in the time budget`);
  });
});
