import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CONFIG_SCHEMA_URL,
  formatIssues,
  loadConfigFile,
  parseConfigText,
  validateConfig,
  type ConfigLoadResult,
} from '../src/config/load.js';
import type { ConfigIssue, RinglbConfig } from '../src/config/types.js';
import { DEFAULT_ADMIN_LIMITS } from '../src/admin/limits.js';

/** The example from the issue, verbatim. */
const ISSUE_EXAMPLE = `{
  "listeners": [
    { "name": "web", "bind": "127.0.0.1:8080", "pool": "app",
      "maxConnections": 10000, "idleTimeoutMs": 3600000 }
  ],
  "pools": [
    { "name": "app", "balance": "maglev", "hashKey": "source_ip",
      "connectTimeoutMs": 3000, "retries": 2,
      "ringHash": { "pointsPerWeight": 160 }, "maglev": { "tableSize": 65537 },
      "backends": [ { "address": "127.0.0.1:9001", "weight": 1, "id": "optional-stable-id" } ] }
  ],
  "log": { "level": "info" },
  "drainTimeoutMs": 30000
}`;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** Smallest valid config; every test gets a fresh copy to mutate. */
function minimalConfig(): JsonObject {
  return {
    listeners: [{ name: 'web', bind: '127.0.0.1:8080', pool: 'app' }],
    pools: [{ name: 'app', backends: [{ address: '127.0.0.1:9001' }] }],
  };
}

function issuesOf(result: ConfigLoadResult): ConfigIssue[] {
  assert.equal(result.ok, false, 'expected the config to be rejected');
  return result.ok ? [] : result.issues;
}

function configOf(result: ConfigLoadResult): RinglbConfig {
  if (!result.ok) assert.fail(`expected a valid config, got:\n${formatIssues(result.issues, 'config')}`);
  return result.config;
}

/** Asserts exactly one issue, at `path`, whose message matches. */
function assertSingleIssue(result: ConfigLoadResult, path: string, message: RegExp): void {
  const issues = issuesOf(result);
  assert.equal(issues.length, 1, `expected one issue, got:\n${formatIssues(issues, 'config')}`);
  assert.equal(issues[0].path, path);
  assert.match(issues[0].message, message);
}

describe('validateConfig: normalization', () => {
  test('the example from the issue normalizes, HostPort parsed and explicit id kept', () => {
    const config = configOf(parseConfigText(ISSUE_EXAMPLE));
    assert.deepEqual(config, {
      listeners: [
        {
          name: 'web',
          bind: { host: '127.0.0.1', port: 8080, text: '127.0.0.1:8080' },
          pool: 'app',
          maxConnections: 10000,
          idleTimeoutMs: 3600000,
          clientFinTimeoutMs: 30000,
        },
      ],
      pools: [
        {
          name: 'app',
          balance: 'maglev',
          hashKey: 'source_ip',
          connectTimeoutMs: 3000,
          retries: 2,
          responseTimeoutMs: 0,
          serverFinTimeoutMs: 30000,
          maxConnectionsPerBackend: 0,
          queue: { size: 100, timeoutMs: 3000 },
          ringHash: { pointsPerWeight: 160 },
          maglev: { tableSize: 65537 },
          backends: [
            {
              id: 'optional-stable-id',
              address: { host: '127.0.0.1', port: 9001, text: '127.0.0.1:9001' },
              weight: 1,
              state: 'active',
            },
          ],
          healthCheck: null,
          outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 30000, maxEjectionMs: 300000, maxEjectionPercent: 50 },
          panicThreshold: 0.5,
          slowStartMs: 0,
          resolveIntervalMs: 30000,
          discovery: { type: 'static' },
        },
      ],
      log: { level: 'info', access: { enabled: true, sample: 1, output: 'stdout' }, openConnectionsIntervalMs: 0, onConnect: false },
      drainTimeoutMs: 30000,
      workers: 'auto',
      admin: null,
      alerts: { webhooks: [] },
    } satisfies RinglbConfig);
  });

  test('a minimal config gets every default, and id defaults to the address text', () => {
    const config = configOf(validateConfig(minimalConfig()));
    assert.deepEqual(config, {
      listeners: [
        {
          name: 'web',
          bind: { host: '127.0.0.1', port: 8080, text: '127.0.0.1:8080' },
          pool: 'app',
          maxConnections: 10000,
          idleTimeoutMs: 3600000,
          clientFinTimeoutMs: 30000,
        },
      ],
      pools: [
        {
          name: 'app',
          balance: 'round_robin',
          hashKey: 'source_ip',
          connectTimeoutMs: 3000,
          retries: 2,
          responseTimeoutMs: 0,
          serverFinTimeoutMs: 30000,
          maxConnectionsPerBackend: 0,
          queue: { size: 100, timeoutMs: 3000 },
          ringHash: { pointsPerWeight: 160 },
          maglev: { tableSize: 65537 },
          backends: [
            { id: '127.0.0.1:9001', address: { host: '127.0.0.1', port: 9001, text: '127.0.0.1:9001' }, weight: 1, state: 'active' },
          ],
          healthCheck: null,
          outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 30000, maxEjectionMs: 300000, maxEjectionPercent: 50 },
          panicThreshold: 0.5,
          slowStartMs: 0,
          resolveIntervalMs: 30000,
          discovery: { type: 'static' },
        },
      ],
      log: { level: 'info', access: { enabled: true, sample: 1, output: 'stdout' }, openConnectionsIntervalMs: 0, onConnect: false },
      drainTimeoutMs: 30000,
      workers: 'auto',
      admin: null,
      alerts: { webhooks: [] },
    } satisfies RinglbConfig);
  });

  test('partial nested objects get the missing defaults', () => {
    const raw = minimalConfig();
    raw.log = {};
    (raw.pools as JsonObject[])[0].ringHash = {};
    const config = configOf(validateConfig(raw));
    assert.equal(config.log.level, 'info');
    assert.equal(config.pools[0].ringHash.pointsPerWeight, 160);
  });

  test('admin.limits: absent gets every default (the values the admin server used as constants); given keys are kept', () => {
    const raw = minimalConfig();
    raw.admin = { bind: '127.0.0.1:0' };
    assert.deepEqual(configOf(validateConfig(raw)).admin?.limits, DEFAULT_ADMIN_LIMITS);
    assert.deepEqual(DEFAULT_ADMIN_LIMITS, {
      maxConnections: 1024, headersTimeoutMs: 5000, requestTimeoutMs: 10000, keepAliveTimeoutMs: 5000, maxBodyBytes: 65536, maxHeaderBytes: 16384,
    });
    raw.admin = { bind: '127.0.0.1:0', limits: { maxConnections: 4, headersTimeoutMs: 500, maxHeaderBytes: 4096 } };
    assert.deepEqual(configOf(validateConfig(raw)).admin?.limits, { ...DEFAULT_ADMIN_LIMITS, maxConnections: 4, headersTimeoutMs: 500, maxHeaderBytes: 4096 });
    // Equal deadlines are what Node allows.
    raw.admin = { bind: '127.0.0.1:0', limits: { headersTimeoutMs: 10000 } };
    assert.equal(configOf(validateConfig(raw)).admin?.limits?.headersTimeoutMs, 10000);
  });

  test('hashBalanceFactor is carried as written; absent stays absent (no bound)', () => {
    const raw = minimalConfig();
    assert.equal('hashBalanceFactor' in configOf(validateConfig(raw)).pools[0], false);
    (raw.pools as JsonObject[])[0].balance = 'maglev';
    (raw.pools as JsonObject[])[0].hashBalanceFactor = 125;
    assert.equal(configOf(validateConfig(raw)).pools[0].hashBalanceFactor, 125);
  });

  test('workers: "auto" and counts 1..256 are carried as written', () => {
    for (const workers of ['auto', 1, 2, 256] as const) {
      const raw = minimalConfig();
      raw.workers = workers;
      assert.equal(configOf(validateConfig(raw)).workers, workers);
    }
  });

  test('accepts the $schema key, IPv6 and host names, port 0 on listeners, weight 0, zero timeouts', () => {
    const config = configOf(
      validateConfig({
        $schema: './node_modules/ringlb/schema/ringlb.schema.json',
        listeners: [
          { name: 'v6', bind: '[::1]:0', pool: 'app', idleTimeoutMs: 0 },
          { name: 'any', bind: '0.0.0.0:0', pool: 'app' },
        ],
        pools: [
          {
            name: 'app',
            balance: 'ring_hash',
            hashKey: 'source_ip_port',
            retries: 0,
            backends: [
              { address: '[::1]:9001', weight: 0 },
              { address: 'localhost:9002', weight: 10000 },
              { address: 'db-1.example.internal:5432' },
            ],
          },
        ],
        drainTimeoutMs: 0,
      }),
    );
    assert.deepEqual(config.listeners[0].bind, { host: '::1', port: 0, text: '[::1]:0' });
    assert.equal(config.listeners[0].idleTimeoutMs, 0);
    assert.deepEqual(
      config.pools[0].backends.map((backend) => [backend.id, backend.address.host, backend.address.port, backend.weight]),
      [
        ['[::1]:9001', '::1', 9001, 0],
        ['localhost:9002', 'localhost', 9002, 10000],
        ['db-1.example.internal:5432', 'db-1.example.internal', 5432, 1],
      ],
    );
    assert.equal(config.drainTimeoutMs, 0);
    assert.equal('$schema' in config, false);
  });

  test('does not modify the object it validates', () => {
    const raw = minimalConfig();
    const before = structuredClone(raw);
    configOf(validateConfig(raw));
    assert.deepEqual(raw, before);
  });
});

describe('validateConfig: health keys', () => {
  test('an empty healthCheck is a tcp check with every default; unhealthyIntervalMs follows intervalMs', () => {
    const raw = minimalConfig();
    pool(raw).healthCheck = {};
    const check = configOf(validateConfig(raw)).pools[0].healthCheck;
    assert.deepEqual(check, {
      type: 'tcp',
      intervalMs: 2000,
      timeoutMs: 1000,
      jitter: 0.1,
      rise: 2,
      fall: 3,
      unhealthyIntervalMs: 2000,
      port: null,
      send: null,
      expect: null,
      http: null,
      initialHealthy: false,
    });
    pool(raw).healthCheck = { intervalMs: 150 };
    assert.equal(configOf(validateConfig(raw)).pools[0].healthCheck?.unhealthyIntervalMs, 150);
  });

  test('the issue example: send_expect with text, every key given', () => {
    const raw = minimalConfig();
    pool(raw).healthCheck = {
      type: 'send_expect', intervalMs: 2000, timeoutMs: 1000, jitter: 0.1, rise: 2, fall: 3,
      unhealthyIntervalMs: 5000, port: 9001, send: 'PING\r\n', expect: '+PONG', initialHealthy: true,
    };
    const check = configOf(validateConfig(raw)).pools[0].healthCheck!;
    assert.equal(check.unhealthyIntervalMs, 5000);
    assert.equal(check.port, 9001);
    assert.deepEqual(check.send, new TextEncoder().encode('PING\r\n'));
    assert.deepEqual(check.expect, { kind: 'substring', bytes: new TextEncoder().encode('+PONG') });
    assert.equal(check.initialHealthy, true);
  });

  test('hex bytes (spaces allowed) and a regex', () => {
    const raw = minimalConfig();
    pool(raw).healthCheck = { type: 'send_expect', send: { hex: '50 49 4e 47 0D 0a' }, expect: { regex: '^\\+PONG' } };
    const check = configOf(validateConfig(raw)).pools[0].healthCheck!;
    assert.deepEqual(check.send, Uint8Array.from([0x50, 0x49, 0x4e, 0x47, 0x0d, 0x0a]));
    assert.deepEqual(check.expect, { kind: 'regex', source: '^\\+PONG' });
    pool(raw).healthCheck = { type: 'send_expect', expect: { hex: '2b504f4e47' } };
    assert.deepEqual(configOf(validateConfig(raw)).pools[0].healthCheck!.expect, {
      kind: 'substring',
      bytes: new TextEncoder().encode('+PONG'),
    });
  });

  test('an http check gets http defaults even without an http object; host stays null unless given', () => {
    const raw = minimalConfig();
    pool(raw).healthCheck = { type: 'http' };
    assert.deepEqual(configOf(validateConfig(raw)).pools[0].healthCheck!.http, { path: '/', host: null, expectStatus: [200, 399] });
    pool(raw).healthCheck = { type: 'http', http: { path: '/healthz', host: 'svc', expectStatus: [200, 200] } };
    assert.deepEqual(configOf(validateConfig(raw)).pools[0].healthCheck!.http, { path: '/healthz', host: 'svc', expectStatus: [200, 200] });
  });

  test('outlier detection, panic, slow start, name re-resolution and backend state keep given values', () => {
    const raw = minimalConfig();
    Object.assign(pool(raw), {
      outlierDetection: { consecutiveFailures: 0, baseEjectionMs: 100, maxEjectionMs: 100, maxEjectionPercent: 100 },
      panicThreshold: 0,
      slowStartMs: 10000,
      resolveIntervalMs: 0,
    });
    backends(raw).push({ address: '127.0.0.1:9002', state: 'drain' }, { address: '127.0.0.1:9003', state: 'maint' });
    const config = configOf(validateConfig(raw)).pools[0];
    assert.deepEqual(config.outlierDetection, { consecutiveFailures: 0, baseEjectionMs: 100, maxEjectionMs: 100, maxEjectionPercent: 100 });
    assert.equal(config.panicThreshold, 0);
    assert.equal(config.slowStartMs, 10000);
    assert.equal(config.resolveIntervalMs, 0);
    assert.deepEqual(config.backends.map((b) => b.state), ['active', 'drain', 'maint']);
  });
});

/** One rule each: [name, mutation of the minimal config, expected path, expected message]. */
const RULE_CASES: ReadonlyArray<readonly [string, (config: JsonObject) => void, string, RegExp]> = [
  // --- shape (schema) ---
  ['listeners missing', (c) => { delete c.listeners; }, 'listeners', /^is required$/],
  ['listeners empty', (c) => { c.listeners = []; }, 'listeners', /^must not be empty$/],
  ['pools not an array', (c) => { c.pools = {}; }, 'pools', /^must be an array \(got an object\)$/],
  ['listener pool missing', (c) => { delete listener(c).pool; }, 'listeners[0].pool', /^is required$/],
  ['backend address missing', (c) => { delete backend(c).address; }, 'pools[0].backends[0].address', /^is required$/],
  ['balance unknown', (c) => { pool(c).balance = 'least_conn'; }, 'pools[0].balance',
    /^must be one of round_robin, random, least_connections, least_time, ring_hash, maglev \(got "least_conn"\)/],
  ['balance typo gets a suggestion', (c) => { pool(c).balance = 'magelv'; }, 'pools[0].balance', /did you mean "maglev"\?$/],
  ['hashKey unknown', (c) => { pool(c).hashKey = 'source_port'; }, 'pools[0].hashKey', /^must be one of source_ip, source_ip_port/],
  ['log level unknown', (c) => { c.log = { level: 'verbose' }; }, 'log.level', /^must be one of fatal, error, warn, info, debug, trace, silent/],
  ['access sample above 1', (c) => { c.log = { access: { sample: 1.5 } }; }, 'log.access.sample', /^must be between 0 and 1 \(got 1\.5\)$/],
  ['access output empty', (c) => { c.log = { access: { output: '' } }; }, 'log.access.output', /^must not be empty/],
  ['open-connection lines more often than every 100 ms', (c) => { c.log = { openConnectionsIntervalMs: 50 }; }, 'log.openConnectionsIntervalMs',
    /^must be 0 \(off\) or at least 100 ms, got 50$/],
  ['weight above 10000', (c) => { backend(c).weight = 10001; }, 'pools[0].backends[0].weight', /^must be between 0 and 10000 \(got 10001\)$/],
  ['unknown key with a unit suffix missing gets a suggestion', (c) => { pool(c).connectTimeout = 100; }, 'pools[0].connectTimeout',
    /^unknown key \(did you mean "connectTimeoutMs"\? allowed: /],
  ['backend id with a path separator', (c) => { backend(c).id = 'team/web-1'; }, 'pools[0].backends[0].id', /^must not contain "\/" or "\\"/],
  ['backend id with a bidi control', (c) => { backend(c).id = 'web\u202e1'; }, 'pools[0].backends[0].id', /^must not contain bidirectional control characters \(found U\+202E\)/],
  ['backend id with a zero-width joiner', (c) => { backend(c).id = 'web\u200d1'; }, 'pools[0].backends[0].id', /^must not contain zero-width characters \(found U\+200D\)/],
  ['backend id ".." (a URL path segment clients rewrite)', (c) => { backend(c).id = '..'; }, 'pools[0].backends[0].id', /^must not be "\." or "\.\."/],
  ['backend id with a lone surrogate', (c) => { backend(c).id = 'web\ud8001'; }, 'pools[0].backends[0].id', /^must be well-formed Unicode/],
  ['listener bind without its host', (c) => { listener(c).bind = '6380'; }, 'listeners[0].bind', /^"6380" is missing its host; write 127\.0\.0\.1:6380/],
  ['weight negative', (c) => { backend(c).weight = -1; }, 'pools[0].backends[0].weight', /^must be between 0 and 10000 \(got -1\)$/],
  ['weight fractional', (c) => { backend(c).weight = 1.5; }, 'pools[0].backends[0].weight', /^must be an integer \(got 1\.5\)$/],
  ['weight as string', (c) => { backend(c).weight = '2'; }, 'pools[0].backends[0].weight', /^must be an integer \(got "2"\)$/],
  ['retries above 10', (c) => { pool(c).retries = 11; }, 'pools[0].retries', /^must be between 0 and 10 \(got 11\)$/],
  ['hashBalanceFactor 100 (no headroom: every backend at the mean would be full)', (c) => { pool(c).hashBalanceFactor = 100; }, 'pools[0].hashBalanceFactor', /^must be between 101 and 10000 \(got 100\)$/],
  ['hashBalanceFactor fractional', (c) => { pool(c).hashBalanceFactor = 125.5; }, 'pools[0].hashBalanceFactor', /^must be an integer \(got 125\.5\)$/],
  ['connectTimeoutMs 0', (c) => { pool(c).connectTimeoutMs = 0; }, 'pools[0].connectTimeoutMs', /^must be between 1 and 2147483647 \(got 0\)$/],
  ['idleTimeoutMs beyond a Node timer', (c) => { listener(c).idleTimeoutMs = 2147483648; }, 'listeners[0].idleTimeoutMs', /^must be between 0 and 2147483647/],
  ['maxConnections 0', (c) => { listener(c).maxConnections = 0; }, 'listeners[0].maxConnections', /^must be between 1 and 1000000 \(got 0\)$/],
  ['workers 0', (c) => { c.workers = 0; }, 'workers', /^must be between 1 and 256 \(got 0\)$/],
  ['workers negative', (c) => { c.workers = -1; }, 'workers', /^must be between 1 and 256 \(got -1\)$/],
  ['workers above 256', (c) => { c.workers = 1000; }, 'workers', /^must be between 1 and 256 \(got 1000\)$/],
  ['workers fractional', (c) => { c.workers = 2.5; }, 'workers', /^must be "auto" or an integer \(got 2\.5\)$/],
  ['workers an unknown word', (c) => { c.workers = 'many'; }, 'workers', /^must be "auto" or an integer \(got "many"\)$/],
  ['workers a count written as text', (c) => { c.workers = '4'; }, 'workers', /^must be "auto" or an integer \(got "4"\)$/],
  ['workers null', (c) => { c.workers = null; }, 'workers', /^must be "auto" or an integer \(got null\)$/],
  ['drainTimeoutMs negative', (c) => { c.drainTimeoutMs = -5; }, 'drainTimeoutMs', /^must be between 0 and 2147483647 \(got -5\)$/],
  ['pointsPerWeight 0', (c) => { pool(c).ringHash = { pointsPerWeight: 0 }; }, 'pools[0].ringHash.pointsPerWeight', /^must be between 1 and 1000/],
  ['maglev table above Envoy\'s maximum', (c) => { pool(c).maglev = { tableSize: 5000077 }; }, 'pools[0].maglev.tableSize', /^must be between 2 and 5000011/],
  ['listener name with a space', (c) => { listener(c).name = 'my web'; }, 'listeners[0].name', /^must be 1 to 64 letters, digits.*\(got "my web"\)$/],
  ['empty backend id', (c) => { backend(c).id = ''; }, 'pools[0].backends[0].id', /^must not be empty$/],
  ['empty bind', (c) => { listener(c).bind = ''; }, 'listeners[0].bind', /^must not be empty$/],
  // --- health (schema) ---
  ['check type unknown', (c) => { pool(c).healthCheck = { type: 'udp' }; }, 'pools[0].healthCheck.type', /^must be one of tcp, send_expect, http \(got "udp"\)$/],
  ['check interval 0', (c) => { pool(c).healthCheck = { intervalMs: 0 }; }, 'pools[0].healthCheck.intervalMs', /^must be between 1 and 2147483647 \(got 0\)$/],
  ['jitter above 0.5', (c) => { pool(c).healthCheck = { jitter: 0.6 }; }, 'pools[0].healthCheck.jitter', /^must be between 0 and 0\.5 \(got 0\.6\)$/],
  ['rise 0', (c) => { pool(c).healthCheck = { rise: 0 }; }, 'pools[0].healthCheck.rise', /^must be between 1 and 100 \(got 0\)$/],
  ['check port 0', (c) => { pool(c).healthCheck = { port: 0 }; }, 'pools[0].healthCheck.port', /^must be between 1 and 65535 \(got 0\)$/],
  ['send as a number', (c) => { pool(c).healthCheck = { type: 'send_expect', send: 5, expect: 'x' }; }, 'pools[0].healthCheck.send',
    /^must be a string or an object \(got 5\)$/],
  ['send hex with an odd digit', (c) => { pool(c).healthCheck = { type: 'send_expect', send: { hex: '50494' }, expect: 'x' }; },
    'pools[0].healthCheck.send.hex', /^must be pairs of hex digits/],
  ['send object without hex', (c) => { pool(c).healthCheck = { type: 'send_expect', send: {}, expect: 'x' }; }, 'pools[0].healthCheck.send.hex', /^is required$/],
  ['empty expect text', (c) => { pool(c).healthCheck = { type: 'send_expect', expect: '' }; }, 'pools[0].healthCheck.expect', /^must not be empty$/],
  ['http path without a slash', (c) => { pool(c).healthCheck = { type: 'http', http: { path: 'healthz' } }; }, 'pools[0].healthCheck.http.path',
    /^must start with '\/'/],
  ['http status range of one item', (c) => { pool(c).healthCheck = { type: 'http', http: { expectStatus: [200] } }; },
    'pools[0].healthCheck.http.expectStatus', /^must have exactly 2 items$/],
  ['http status out of range', (c) => { pool(c).healthCheck = { type: 'http', http: { expectStatus: [200, 600] } }; },
    'pools[0].healthCheck.http.expectStatus[1]', /^must be between 100 and 599 \(got 600\)$/],
  ['consecutiveFailures negative', (c) => { pool(c).outlierDetection = { consecutiveFailures: -1 }; }, 'pools[0].outlierDetection.consecutiveFailures',
    /^must be between 0 and 1000 \(got -1\)$/],
  ['maxEjectionPercent above 100', (c) => { pool(c).outlierDetection = { maxEjectionPercent: 101 }; }, 'pools[0].outlierDetection.maxEjectionPercent',
    /^must be between 0 and 100 \(got 101\)$/],
  ['panicThreshold above 1', (c) => { pool(c).panicThreshold = 1.5; }, 'pools[0].panicThreshold', /^must be between 0 and 1 \(got 1\.5\)$/],
  ['slowStartMs negative', (c) => { pool(c).slowStartMs = -1; }, 'pools[0].slowStartMs', /^must be between 0 and 2147483647 \(got -1\)$/],
  ['resolveIntervalMs not an integer', (c) => { pool(c).resolveIntervalMs = 1.5; }, 'pools[0].resolveIntervalMs', /^must be an integer \(got 1\.5\)$/],
  ['resolveIntervalMs negative', (c) => { pool(c).resolveIntervalMs = -1; }, 'pools[0].resolveIntervalMs', /^must be between 0 and 2147483647 \(got -1\)$/],
  ['backend state unknown', (c) => { backend(c).state = 'drained'; }, 'pools[0].backends[0].state',
    /^must be one of active, drain, maint \(got "drained"\); did you mean "drain"\?$/],
  // --- health (cross-checks) ---
  ['http settings on a tcp check', (c) => { pool(c).healthCheck = { http: { path: '/' } }; }, 'pools[0].healthCheck.http',
    /^only applies to "type": "http" \(this check is "tcp"\)$/],
  ['send on an http check', (c) => { pool(c).healthCheck = { type: 'http', send: 'x' }; }, 'pools[0].healthCheck.send',
    /^only applies to "type": "send_expect" \(this check is "http"\)$/],
  ['expect on a tcp check', (c) => { pool(c).healthCheck = { type: 'tcp', expect: '+PONG' }; }, 'pools[0].healthCheck.expect',
    /^only applies to "type": "send_expect"/],
  ['send_expect without expect', (c) => { pool(c).healthCheck = { type: 'send_expect', send: 'PING\r\n' }; }, 'pools[0].healthCheck.expect',
    /^is required when "type" is "send_expect"$/],
  ['expect regex that does not compile', (c) => { pool(c).healthCheck = { type: 'send_expect', expect: { regex: '+PONG(' } }; },
    'pools[0].healthCheck.expect.regex', /^is not a valid regular expression: /],
  ['expect with both hex and regex', (c) => { pool(c).healthCheck = { type: 'send_expect', expect: { hex: '2b', regex: 'x' } }; },
    'pools[0].healthCheck.expect', /^give either "hex" or "regex", not both$/],
  ['expect as an empty object', (c) => { pool(c).healthCheck = { type: 'send_expect', expect: {} }; },
    'pools[0].healthCheck.expect', /^must be text or an object with "hex" or "regex"$/],
  ['http status range reversed', (c) => { pool(c).healthCheck = { type: 'http', http: { expectStatus: [399, 200] } }; },
    'pools[0].healthCheck.http.expectStatus', /^the lowest status comes first: \[200, 399\], not \[399, 200\]$/],
  ['maxEjectionMs below baseEjectionMs', (c) => { pool(c).outlierDetection = { baseEjectionMs: 600000 }; },
    'pools[0].outlierDetection.maxEjectionMs', /^must be at least baseEjectionMs \(600000\), got 300000$/],
  // --- cross-checks ---
  ['listener refers to a missing pool', (c) => { listener(c).pool = 'ap'; }, 'listeners[0].pool', /^no pool named "ap" \(pools: app\)$/],
  ['missing pool with a close name', (c) => { listener(c).pool = 'App'; }, 'listeners[0].pool', /did you mean "app"\?$/],
  ['duplicate listener names', (c) => { listeners(c).push({ name: 'web', bind: '127.0.0.1:8081', pool: 'app' }); },
    'listeners[1].name', /^duplicate listener name "web" \(also listeners\[0\]\)$/],
  ['duplicate pool names', (c) => { pools(c).push({ name: 'app', backends: [{ address: '127.0.0.1:9002' }] }); },
    'pools[1].name', /^duplicate pool name "app" \(also pools\[0\]\)$/],
  ['duplicate listener binds', (c) => { listeners(c).push({ name: 'web2', bind: '127.0.0.1:8080', pool: 'app' }); },
    'listeners[1].bind', /^127\.0\.0\.1:8080 overlaps listeners\[0\] \(127\.0\.0\.1:8080\): the second bind would fail with EADDRINUSE$/],
  ['an IPv4 wildcard overlapping a listener on the same port', (c) => { listeners(c).push({ name: 'any', bind: '0.0.0.0:8080', pool: 'app' }); },
    'listeners[1].bind', /^0\.0\.0\.0:8080 overlaps listeners\[0\] \(127\.0\.0\.1:8080\)/],
  ['the dual-stack wildcard overlapping a listener on the same port', (c) => { listeners(c).push({ name: 'any6', bind: '[::]:8080', pool: 'app' }); },
    'listeners[1].bind', /^\[::\]:8080 overlaps listeners\[0\]/],
  ['duplicate explicit backend ids', (c) => { backends(c).push({ address: '127.0.0.1:9002', id: 'a' }, { address: '127.0.0.1:9003', id: 'a' }); },
    'pools[0].backends[2].id', /^duplicate backend id "a" \(also pools\[0\]\.backends\[1\]\)$/],
  ['the same address twice (ids default to it)', (c) => { backends(c).push({ address: '127.0.0.1:9001' }); },
    'pools[0].backends[1].address', /already used by pools\[0\]\.backends\[0\]; list a backend once, or give each an explicit "id"$/],
  ['backend port out of range', (c) => { backend(c).address = '127.0.0.1:70000'; }, 'pools[0].backends[0].address', /^port 70000 out of range 1\.\.65535$/],
  ['backend port 0', (c) => { backend(c).address = '127.0.0.1:0'; }, 'pools[0].backends[0].address', /^port 0 out of range 1\.\.65535$/],
  ['listener port out of range', (c) => { listener(c).bind = '127.0.0.1:65536'; }, 'listeners[0].bind', /^port 65536 out of range 0\.\.65535$/],
  ['bare IPv6 address', (c) => { backend(c).address = '::1:9001'; }, 'pools[0].backends[0].address',
    /^IPv6 addresses must be in brackets: write \[::1\]:9001 instead of ::1:9001$/],
  ['address without port', (c) => { backend(c).address = 'localhost'; }, 'pools[0].backends[0].address', /missing its port/],
  ['bad IPv4 address', (c) => { backend(c).address = '10.0.0.256:80'; }, 'pools[0].backends[0].address', /^"10\.0\.0\.256" is not a valid IPv4 address$/],
  ['maglev table size not prime', (c) => { pool(c).maglev = { tableSize: 65536 }; }, 'pools[0].maglev.tableSize',
    /^must be a prime number \(65537 is the usual choice; nearest primes: 65521, 65537\)$/],
  ['maglev table smaller than the backend set', (c) => {
    pool(c).balance = 'maglev';
    pool(c).maglev = { tableSize: 2 };
    backends(c).push({ address: '127.0.0.1:9002' }, { address: '127.0.0.1:9003' });
  }, 'pools[0].maglev.tableSize', /^2 entries cannot hold 3 backends/],
  ['pool without backends', (c) => { pool(c).backends = []; }, 'pools[0].backends', /^must list at least one backend \(no discovery source/],
  ['pool with backends omitted', (c) => { delete pool(c).backends; }, 'pools[0].backends', /^must list at least one backend/],
  // --- admin limits ---
  ['admin headers deadline past the request deadline (Node refuses it)', (c) => { c.admin = { limits: { headersTimeoutMs: 20000 } }; },
    'admin.limits.headersTimeoutMs', /^must not exceed admin\.limits\.requestTimeoutMs \(10000\), got 20000: the headers are part of the request$/],
  ['admin headers deadline past an explicit request deadline', (c) => { c.admin = { limits: { headersTimeoutMs: 3000, requestTimeoutMs: 2000 } }; },
    'admin.limits.headersTimeoutMs', /^must not exceed admin\.limits\.requestTimeoutMs \(2000\), got 3000/],
  ['admin connection cap 0', (c) => { c.admin = { limits: { maxConnections: 0 } }; }, 'admin.limits.maxConnections', /^must be between 1 and 65536 \(got 0\)$/],
  ['admin headers deadline below 100 ms', (c) => { c.admin = { limits: { headersTimeoutMs: 10 } }; }, 'admin.limits.headersTimeoutMs',
    /^must be between 100 and 300000 \(got 10\)$/],
  ['admin keep-alive timeout 0 (node would then never close an idle socket)', (c) => { c.admin = { limits: { keepAliveTimeoutMs: 0 } }; },
    'admin.limits.keepAliveTimeoutMs', /^must be between 100 and 600000 \(got 0\)$/],
  ['admin body limit fractional', (c) => { c.admin = { limits: { maxBodyBytes: 2048.5 } }; }, 'admin.limits.maxBodyBytes', /^must be an integer \(got 2048\.5\)$/],
  ['admin header limit below 2 KiB', (c) => { c.admin = { limits: { maxHeaderBytes: 512 } }; }, 'admin.limits.maxHeaderBytes',
    /^must be between 2048 and 1048576 \(got 512\)$/],
];

describe('validateConfig: one failing case per rule, with exact path and message', () => {
  for (const [name, mutate, path, message] of RULE_CASES) {
    test(name, () => {
      const raw = minimalConfig();
      mutate(raw);
      assertSingleIssue(validateConfig(raw), path, message);
    });
  }

  test('two listeners may both bind port 0', () => {
    const raw = minimalConfig();
    listener(raw).bind = '127.0.0.1:0';
    listeners(raw).push({ name: 'web2', bind: '127.0.0.1:0', pool: 'app' });
    configOf(validateConfig(raw));
  });

  test('a non-prime table size is reported even when maglev is not the policy', () => {
    const raw = minimalConfig();
    pool(raw).maglev = { tableSize: 100 };
    assertSingleIssue(validateConfig(raw), 'pools[0].maglev.tableSize', /must be a prime number/);
  });

  test('a top-level array is rejected at $', () => {
    assertSingleIssue(validateConfig([]), '$', /^must be an object \(got an array\)$/);
  });

  test('values that are not JSON data are rejected, not thrown', () => {
    assertSingleIssue(validateConfig({ listeners: () => 1 }), '$', /is not plain JSON data/);
  });
});

describe('validateConfig: unknown keys at every level', () => {
  const levels: ReadonlyArray<readonly [string, (config: JsonObject) => JsonObject, string, string]> = [
    ['root', (c) => c, 'foo', '$schema, listeners, pools, log, drainTimeoutMs, workers, admin, alerts'],
    ['listener', (c) => listener(c), 'listeners[0].foo', 'name, bind, pool, maxConnections, idleTimeoutMs, proxyProtocol, allow, deny, maxConnectionsPerSource, connectionRatePerSource, clientFinTimeoutMs'],
    ['proxyProtocol', (c) => ((listener(c).proxyProtocol = { trustedSources: ['127.0.0.1'] }) as JsonObject), 'listeners[0].proxyProtocol.foo',
      'accept, trustedSources, timeoutMs'],
    ['connectionRatePerSource', (c) => ((listener(c).connectionRatePerSource = { rate: 1 }) as JsonObject), 'listeners[0].connectionRatePerSource.foo',
      'rate, burst'],
    ['pool', (c) => pool(c), 'pools[0].foo', 'name, balance, hashKey, connectTimeoutMs, retries, responseTimeoutMs, serverFinTimeoutMs, maxConnectionsPerBackend, queue, ringHash, hashBalanceFactor, maglev, backends, healthCheck, outlierDetection, panicThreshold, slowStartMs, resolveIntervalMs, sendProxyProtocol, discovery'],
    ['healthCheck', (c) => ((pool(c).healthCheck = {}) as JsonObject), 'pools[0].healthCheck.foo',
      'type, intervalMs, timeoutMs, jitter, rise, fall, unhealthyIntervalMs, port, send, expect, http, initialHealthy'],
    ['http check', (c) => ((pool(c).healthCheck = { type: 'http', http: {} }) as { http: JsonObject }).http, 'pools[0].healthCheck.http.foo',
      'path, host, expectStatus'],
    ['outlierDetection', (c) => ((pool(c).outlierDetection = {}) as JsonObject), 'pools[0].outlierDetection.foo',
      'consecutiveFailures, baseEjectionMs, maxEjectionMs, maxEjectionPercent'],
    ['ringHash', (c) => ((pool(c).ringHash = {}) as JsonObject), 'pools[0].ringHash.foo', 'pointsPerWeight'],
    ['maglev', (c) => ((pool(c).maglev = {}) as JsonObject), 'pools[0].maglev.foo', 'tableSize'],
    ['backend', (c) => backend(c), 'pools[0].backends[0].foo', 'address, weight, id, state'],
    ['log', (c) => ((c.log = {}) as JsonObject), 'log.foo', 'level, access, openConnectionsIntervalMs, onConnect'],
    ['log.access', (c) => ((c.log = { access: {} }) as JsonObject).access as JsonObject, 'log.access.foo', 'enabled, sample, output'],
    ['admin', (c) => ((c.admin = {}) as JsonObject), 'admin.foo', 'bind, token, limits'],
    ['admin.limits', (c) => ((c.admin = { limits: {} }) as JsonObject).limits as JsonObject, 'admin.limits.foo',
      'maxConnections, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, maxBodyBytes, maxHeaderBytes'],
  ];
  for (const [level, objectAt, path, allowed] of levels) {
    test(level, () => {
      const raw = minimalConfig();
      objectAt(raw).foo = 1;
      assertSingleIssue(validateConfig(raw), path, new RegExp(`^unknown key \\(allowed: ${escapeRegExp(allowed)}\\)$`));
    });
  }

  test('a misspelt key names the key it probably meant', () => {
    const raw = minimalConfig();
    pool(raw).balanse = 'maglev';
    assertSingleIssue(validateConfig(raw), 'pools[0].balanse', /^unknown key \(did you mean "balance"\? allowed: name, balance/);
  });

  test('keys that are not identifiers are quoted in the path', () => {
    const raw = minimalConfig();
    listener(raw)['max connections'] = 5;
    assertSingleIssue(validateConfig(raw), 'listeners[0]["max connections"]', /^unknown key/);
  });
});

describe('validateConfig: many errors at once, in document order', () => {
  test('reports schema errors and cross-check errors together, sorted as they appear in the file', () => {
    const result = parseConfigText(`{
      "listeners": [
        { "name": "web", "bind": "::1:8080", "pool": "missing", "colour": "blue" },
        { "name": "web", "bind": "127.0.0.1:8081" }
      ],
      "pools": [
        { "name": "app", "balance": "fastest", "retries": 99, "maglev": { "tableSize": 1000 },
          "backends": [ { "address": "127.0.0.1:70000", "weight": 1.5 }, { "address": "localhost:9002" } ] },
        { "name": "empty", "retries": 1, "retries": 2 }
      ],
      "log": { "level": "loud" },
      "drainTimeoutMs": -1,
      "extra": true
    }`);
    assert.deepEqual(
      issuesOf(result).map((issue) => issue.path),
      [
        'listeners[0].bind',
        'listeners[0].pool',
        'listeners[0].colour',
        'listeners[1].name',
        'listeners[1].pool',
        'pools[0].balance',
        'pools[0].retries',
        'pools[0].maglev.tableSize',
        'pools[0].backends[0].address',
        'pools[0].backends[0].weight',
        'pools[1].retries',
        'pools[1].backends',
        'log.level',
        'drainTimeoutMs',
        'extra',
      ],
    );
    assert.match(issuesOf(result)[10].message, /^key appears more than once in its object/);
  });

  test('a pool name of the wrong type does not cascade into "no pool named" errors', () => {
    const raw = minimalConfig();
    pool(raw).name = 7;
    assertSingleIssue(validateConfig(raw), 'pools[0].name', /^must be a string \(got 7\)$/);
  });
});

describe('parseConfigText: JSON syntax', () => {
  const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
    ['missing value', '{\n  "listeners": ,\n}', /^invalid JSON at line 2, column 16: unexpected ","; expected a value/],
    ['trailing comma', '{\n  "a": 1,\n}', /^invalid JSON at line 3, column 1: .*JSON allows no trailing comma/],
    ['single quotes', "{'a': 1}", /^invalid JSON at line 1, column 2: .*JSON strings use double quotes/],
    ['unterminated string', '{\n"a": "x\n}', /^invalid JSON at line 2, column 8: the line ends inside a string \(missing closing "\)$/],
    ['never closed', '{"a": [1, 2', /^invalid JSON at line 1, column 12: unexpected end of file/],
    ['comment', '{\n  // web\n}', /^invalid JSON at line 2, column 3: comments are not allowed in JSON$/],
    ['empty file', '', /^invalid JSON at line 1, column 1: the file is empty/],
    ['leading zero', '{"a": 08}', /^invalid JSON at line 1, column 8: invalid number/],
    ['trailing text', '{} {}', /^invalid JSON at line 1, column 4: unexpected "\{" after the end of the JSON value$/],
  ];
  for (const [name, text, message] of cases) {
    test(name, () => assertSingleIssue(parseConfigText(text), '$', message));
  }

  test('a UTF-8 byte order mark is accepted', () => {
    configOf(parseConfigText(`\uFEFF${JSON.stringify(minimalConfig())}`));
  });

  test('escapes in strings are fine', () => {
    // A send_expect text takes any characters (an id may not hold "\\" or controls: backend-id.ts).
    const text = 'quote " slash \\ tab \t é \u00e9';
    const raw = minimalConfig();
    (raw.pools as Array<Record<string, unknown>>)[0].healthCheck = { type: 'send_expect', send: text, expect: 'ok' };
    const config = configOf(parseConfigText(JSON.stringify(raw)));
    assert.deepEqual(config.pools[0].healthCheck?.send, new TextEncoder().encode(text));
  });
});

describe('loadConfigFile', () => {
  let directory = '';
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'ringlb-config-test-'));
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  test('loads a valid file', async () => {
    const path = join(directory, 'valid.json');
    await writeFile(path, ISSUE_EXAMPLE);
    assert.equal(configOf(loadConfigFile(path)).pools[0].balance, 'maglev');
  });

  test('reports every error of an invalid file', async () => {
    const path = join(directory, 'invalid.json');
    const raw = minimalConfig();
    pool(raw).balance = 'nope';
    backend(raw).weight = -1;
    await writeFile(path, JSON.stringify(raw, null, 2));
    assert.deepEqual(
      issuesOf(loadConfigFile(path)).map((issue) => issue.path),
      // `balance` was added after `backends`, so it comes later in the file too.
      ['pools[0].backends[0].weight', 'pools[0].balance'],
    );
  });

  test('a relative access-log file is the config file directory\'s; stdout and stderr stay names', async () => {
    const path = join(directory, 'access.json');
    const raw = minimalConfig();
    raw.log = { access: { output: 'logs/access.log' } };
    await writeFile(path, JSON.stringify(raw));
    assert.equal(configOf(loadConfigFile(path)).log.access?.output, join(directory, 'logs/access.log'));
    raw.log = { access: { output: 'stderr' } };
    await writeFile(path, JSON.stringify(raw));
    assert.equal(configOf(loadConfigFile(path)).log.access?.output, 'stderr');
  });

  test('a missing file is an issue at $ with the OS reason', () => {
    const path = join(directory, 'does-not-exist.json');
    assertSingleIssue(loadConfigFile(path), '$', /^cannot read config file: ENOENT: no such file or directory/);
  });

  test('a directory is an issue at $ with the OS reason', async () => {
    const path = join(directory, 'a-directory');
    await mkdir(path);
    assertSingleIssue(loadConfigFile(path), '$', /^cannot read config file: EISDIR/);
  });

  test('a syntax error in a file names line and column', async () => {
    const path = join(directory, 'syntax.json');
    await writeFile(path, '{\n  "listeners": [\n    { "name": "web" }\n    { "name": "api" }\n  ]\n}\n');
    assertSingleIssue(loadConfigFile(path), '$', /^invalid JSON at line 4, column 5: unexpected "\{"; expected ',' or '\]'/);
  });
});

describe('formatIssues', () => {
  test('one "<source>: <path>: <message>" line per issue, then the count', () => {
    const issues: ConfigIssue[] = [
      { path: 'pools[0].balance', message: 'must be one of round_robin, random' },
      { path: '$', message: 'cannot read config file: EACCES' },
    ];
    assert.equal(
      formatIssues(issues, 'ringlb.json'),
      'ringlb.json: pools[0].balance: must be one of round_robin, random\nringlb.json: $: cannot read config file: EACCES\n2 errors',
    );
  });

  test('singular count', () => {
    assert.equal(formatIssues([{ path: '$', message: 'x' }], 'c.json'), 'c.json: $: x\n1 error');
  });
});

/**
 * Optional properties without a constant default, by full schema path (as `visitSchema` names
 * them), each with the reason. By path, not by key name: `healthCheck.timeoutMs` must declare its
 * default even though the discovery key `timeoutMs` is exempt.
 */
const DEFAULTS_NOT_CONSTANT = new Map<string, string>([
  ['#.$schema', 'an editor hint, ignored by ringlb'],
  ['#.admin', 'absent means no admin listener'],
  ['#.admin.token', 'absent means no auth (loopback binds only)'],
  ['#/definitions/pool.healthCheck', 'absent means no active checks'],
  ['#/definitions/pool.discovery', 'absent means static discovery'],
  ['#/definitions/pool.hashBalanceFactor', 'absent means no bound on hash policies'],
  ['#/definitions/pool.sendProxyProtocol', 'absent means no PROXY header to backends'],
  ['#/definitions/listener.proxyProtocol', 'absent means no PROXY header expected'],
  ['#/definitions/listener.allow', 'absent means every source may connect'],
  ['#/definitions/listener.deny', 'absent means no source is denied'],
  ['#/definitions/listener.maxConnectionsPerSource', 'absent means no per-source cap'],
  ['#/definitions/listener.connectionRatePerSource', 'absent means no per-source rate limit'],
  ['#/definitions/backend.id', 'defaults to the address text'],
  ['#/definitions/webhook.events', 'absent means every event type'],
  ['#/definitions/healthCheck.unhealthyIntervalMs', 'defaults to intervalMs'],
  ['#/definitions/healthCheck.port', 'defaults to the traffic port'],
  ['#/definitions/healthCheck.send', 'send_expect only, and optional there'],
  ['#/definitions/healthCheck.expect', 'send_expect only, and required there'],
  ['#/definitions/healthCheck.http', 'http only; its defaults are filled by normalization'],
  ['#/definitions/healthCheck.expect.hex', 'an alternative form of expect'],
  ['#/definitions/healthCheck.expect.regex', 'an alternative form of expect'],
  ['#/definitions/healthCheck.http.host', 'defaults to the backend address'],
  // Discovery keys apply to one source type each, so a schema default would land on every type;
  // each source applies its own documented default (src/discovery/*-source.ts).
  ...['path', 'debounceMs', 'pollIntervalMs', 'watch', 'name', 'record', 'port', 'servers', 'intervalMs', 'timeoutMs',
    'endpoints', 'prefix', 'requestTimeoutMs', 'retryMinMs', 'retryMaxMs'].map(
    (key): [string, string] => [`#/definitions/discovery.${key}`, 'one source type only; the source applies its default'],
  ),
]);

describe('the schema file', () => {
  const schema = JSON.parse(readFileSync(CONFIG_SCHEMA_URL, 'utf8')) as JsonObject;

  test('every property has a title and a description, every object forbids unknown keys', () => {
    const problems: string[] = [];
    visitSchema(schema, '#', (node, where) => {
      // A map (webhook headers) has free keys by design; `propertyNames` is what checks them.
      const isMap = node.propertyNames !== undefined && typeof node.additionalProperties === 'object';
      if (node.type === 'object' && node.additionalProperties !== false && !isMap) problems.push(`${where}: additionalProperties`);
      const properties = (node.properties ?? {}) as Record<string, JsonObject>;
      for (const [key, property] of Object.entries(properties)) {
        if (typeof property.$ref === 'string') continue;
        if (typeof property.title !== 'string') problems.push(`${where}.${key}: title`);
        if (typeof property.description !== 'string') problems.push(`${where}.${key}: description`);
      }
    });
    assert.deepEqual(problems, []);
  });

  test('every optional scalar property declares its default', () => {
    const missing: string[] = [];
    visitSchema(schema, '#', (node, where) => {
      const required = new Set((node.required ?? []) as string[]);
      const properties = (node.properties ?? {}) as Record<string, JsonObject>;
      for (const [key, property] of Object.entries(properties)) {
        const optionalWithoutDefault = !required.has(key) && !('default' in property);
        if (optionalWithoutDefault && !DEFAULTS_NOT_CONSTANT.has(`${where}.${key}`)) missing.push(`${where}.${key}`);
      }
    });
    assert.deepEqual(missing, []);
  });

  test('every exemption from the defaults rule names an optional property that has no default', () => {
    const withoutDefault = new Set<string>();
    visitSchema(schema, '#', (node, where) => {
      const required = new Set((node.required ?? []) as string[]);
      for (const [key, property] of Object.entries((node.properties ?? {}) as Record<string, JsonObject>)) {
        if (!required.has(key) && !('default' in property)) withoutDefault.add(`${where}.${key}`);
      }
    });
    assert.deepEqual([...DEFAULTS_NOT_CONSTANT.keys()].filter((path) => !withoutDefault.has(path)), [], 'stale exemptions');
  });

  test('exemptions are by path: keys that share a name with an exempt key still need their default', () => {
    for (const path of ['#/definitions/healthCheck.intervalMs', '#/definitions/healthCheck.timeoutMs', '#/definitions/healthCheck.http.path']) {
      assert.equal(DEFAULTS_NOT_CONSTANT.has(path), false, path);
    }
    const healthCheck = (schema.definitions as Record<string, JsonObject>).healthCheck.properties as Record<string, JsonObject>;
    assert.equal(healthCheck.intervalMs.default, 2000);
    assert.equal(healthCheck.timeoutMs.default, 1000);
    assert.equal((healthCheck.http.properties as Record<string, JsonObject>).path.default, '/');
  });
});

// --- helpers ---------------------------------------------------------------------------------

function listeners(config: JsonObject): JsonObject[] {
  return config.listeners as JsonObject[];
}
function listener(config: JsonObject): JsonObject {
  return listeners(config)[0];
}
function pools(config: JsonObject): JsonObject[] {
  return config.pools as JsonObject[];
}
function pool(config: JsonObject): JsonObject {
  return pools(config)[0];
}
function backends(config: JsonObject): JsonObject[] {
  return pool(config).backends as JsonObject[];
}
function backend(config: JsonObject): JsonObject {
  return backends(config)[0];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function visitSchema(node: JsonObject, where: string, visit: (node: JsonObject, where: string) => void): void {
  visit(node, where);
  for (const [key, child] of Object.entries((node.properties ?? {}) as Record<string, JsonObject>)) {
    visitSchema(child, `${where}.${key}`, visit);
  }
  for (const [key, child] of Object.entries((node.definitions ?? {}) as Record<string, JsonObject>)) {
    visitSchema(child, `${where}/definitions/${key}`, visit);
  }
}
