/**
 * Config keys of issue 4: `admin` (bind, token, the loopback rule) and per-pool `discovery`
 * (per-type keys, required keys, one source of truth, registration needs admin, relative file
 * paths resolve against the config file's directory).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { formatIssues, loadConfigFile, validateConfig, type ConfigLoadResult } from '../src/config/load.js';
import type { ConfigIssue, RinglbConfig } from '../src/config/types.js';
import { DEFAULT_ADMIN_LIMITS } from '../src/admin/limits.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const TOKEN = 'a-token-of-24-characters';

function discoveryConfig(discovery: JsonObject, extra: JsonObject = {}): JsonObject {
  return {
    listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }],
    pools: [{ name: 'app', balance: 'maglev', discovery }],
    ...extra,
  };
}

function configOf(result: ConfigLoadResult): RinglbConfig {
  if (!result.ok) assert.fail(`expected a valid config, got:\n${formatIssues(result.issues, 'config')}`);
  return result.config;
}

function issuesOf(result: ConfigLoadResult): ConfigIssue[] {
  assert.equal(result.ok, false, 'expected the config to be rejected');
  return result.ok ? [] : result.issues;
}

function assertSingleIssue(result: ConfigLoadResult, path: string, message: RegExp): void {
  const issues = issuesOf(result);
  assert.equal(issues.length, 1, `expected one issue, got:\n${formatIssues(issues, 'config')}`);
  assert.equal(issues[0].path, path);
  assert.match(issues[0].message, message);
}

describe('config: admin', () => {
  test('absent admin is null; present admin defaults to 127.0.0.1:9901 without a token', () => {
    assert.equal(configOf(validateConfig(discoveryConfig({ type: 'static' }, { pools: [{ name: 'app', backends: [{ address: '127.0.0.1:9001' }] }] }))).admin, null);
    const config = configOf(
      validateConfig({ ...discoveryConfig({ type: 'registration' }), admin: {} }),
    );
    assert.deepEqual(config.admin, { bind: { host: '127.0.0.1', port: 9901, text: '127.0.0.1:9901' }, token: null, limits: DEFAULT_ADMIN_LIMITS });
  });

  test('port 0 and a token are accepted', () => {
    const config = configOf(validateConfig({ ...discoveryConfig({ type: 'registration' }), admin: { bind: '127.0.0.1:0', token: TOKEN } }));
    assert.equal(config.admin?.bind.port, 0);
    assert.equal(config.admin?.token, TOKEN);
  });

  test('a non-loopback bind needs a token (error at admin.token)', () => {
    assertSingleIssue(
      validateConfig({ ...discoveryConfig({ type: 'registration' }), admin: { bind: '0.0.0.0:9901' } }),
      'admin.token',
      /^is required when admin\.bind \(0\.0\.0\.0:9901\) is not a loopback address/,
    );
    assert.equal(validateConfig({ ...discoveryConfig({ type: 'registration' }), admin: { bind: '0.0.0.0:9901', token: TOKEN } }).ok, true);
    for (const bind of ['[::1]:9901', 'localhost:9901', '127.3.2.1:9901']) {
      assert.equal(validateConfig({ ...discoveryConfig({ type: 'registration' }), admin: { bind } }).ok, true, bind);
    }
  });

  test('short tokens, tokens with spaces, bad binds and unknown keys are refused', () => {
    assertSingleIssue(validateConfig({ ...discoveryConfig({ type: 'registration' }), admin: { token: 'short' } }), 'admin.token', /16/);
    assertSingleIssue(validateConfig({ ...discoveryConfig({ type: 'registration' }), admin: { token: 'has a space in it, sadly' } }), 'admin.token', /visible ASCII/);
    assertSingleIssue(validateConfig({ ...discoveryConfig({ type: 'registration' }), admin: { bind: '127.0.0.1' } }), 'admin.bind', /port/);
    assertSingleIssue(validateConfig({ ...discoveryConfig({ type: 'registration' }), admin: { port: 1 } }), 'admin.port', /unknown|not allowed/);
  });
});

describe('config: discovery', () => {
  test('static is the default and keeps the backend list', () => {
    const config = configOf(validateConfig({ listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'app' }], pools: [{ name: 'app', backends: [{ address: '127.0.0.1:9001' }] }] }));
    assert.deepEqual(config.pools[0].discovery, { type: 'static' });
    assert.equal(config.pools[0].backends.length, 1);
  });

  test('a non-static pool may have no backends; only the given options are kept', () => {
    const dns = configOf(validateConfig(discoveryConfig({ type: 'dns', name: '_app._tcp.svc.test', record: 'SRV', servers: ['127.0.0.1:5353'], intervalMs: 500 })));
    assert.deepEqual(dns.pools[0].discovery, { type: 'dns', name: '_app._tcp.svc.test', record: 'SRV', servers: ['127.0.0.1:5353'], intervalMs: 500 });
    assert.deepEqual(dns.pools[0].backends, []);
    const etcd = configOf(validateConfig(discoveryConfig({ type: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/ringlb/app/', requestTimeoutMs: 1000 })));
    assert.deepEqual(etcd.pools[0].discovery, { type: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/ringlb/app/', requestTimeoutMs: 1000 });
    const a = configOf(validateConfig(discoveryConfig({ type: 'dns', name: 'svc.test', record: 'A', port: 9001 })));
    assert.deepEqual(a.pools[0].discovery, { type: 'dns', name: 'svc.test', record: 'A', port: 9001 });
  });

  test('a relative file path resolves against the config file directory', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ringlb-config-discovery-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'ringlb.json');
    writeFileSync(file, JSON.stringify(discoveryConfig({ type: 'file', path: 'backends.json', debounceMs: 10 })));
    const config = configOf(loadConfigFile(file));
    assert.deepEqual(config.pools[0].discovery, { type: 'file', path: join(dir, 'backends.json'), debounceMs: 10 });
  });

  const cases: ReadonlyArray<readonly [string, JsonObject, string, RegExp]> = [
    ['type missing', {}, 'pools[0].discovery.type', /required/],
    ['unknown type', { type: 'consul' }, 'pools[0].discovery.type', /static, file, registration, dns, etcd|must be one of/],
    ['file without path', { type: 'file' }, 'pools[0].discovery.path', /^is required when "type" is "file"$/],
    ['dns key on a file source', { type: 'file', path: 'b.json', intervalMs: 5 }, 'pools[0].discovery.intervalMs', /^only applies to "type": "dns" \(this source is "file"\)$/],
    ['dns without record', { type: 'dns', name: 'svc.test' }, 'pools[0].discovery.record', /^is required when "type" is "dns"$/],
    ['SRV with a port', { type: 'dns', name: 'svc.test', record: 'SRV', port: 80 }, 'pools[0].discovery.port', /SRV records carry their own port/],
    ['A without a port', { type: 'dns', name: 'svc.test', record: 'A' }, 'pools[0].discovery.port', /^is required with "record": "A"/],
    ['bad dns server', { type: 'dns', name: 'svc.test', record: 'SRV', servers: ['ns.example:53'] }, 'pools[0].discovery.servers[0]', /IP address/],
    ['etcd without prefix', { type: 'etcd', endpoints: ['http://127.0.0.1:2379'] }, 'pools[0].discovery.prefix', /^is required/],
    ['bad etcd endpoint', { type: 'etcd', endpoints: ['127.0.0.1:2379'], prefix: '/a/' }, 'pools[0].discovery.endpoints[0]', /URL like http/],
    ['retryMaxMs below retryMinMs', { type: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/a/', retryMinMs: 500, retryMaxMs: 100 }, 'pools[0].discovery.retryMaxMs', /at least retryMinMs/],
    ['registration without admin', { type: 'registration' }, 'pools[0].discovery', /needs the admin API/],
  ];
  for (const [name, discovery, path, message] of cases) {
    test(`refused: ${name}`, () => assertSingleIssue(validateConfig(discoveryConfig(discovery)), path, message));
  }

  test('one source of truth: a discovery pool with backends is refused at backends', () => {
    const raw = discoveryConfig({ type: 'file', path: 'b.json' });
    (raw.pools as JsonObject[])[0].backends = [{ address: '127.0.0.1:9001' }];
    assertSingleIssue(validateConfig(raw), 'pools[0].backends', /^must be empty or absent: this pool's backends come from its "file" discovery source$/);
    (raw.pools as JsonObject[])[0].backends = [];
    assert.equal(validateConfig(raw).ok, true);
  });

  test('a file key on a static source is refused', () => {
    const raw = discoveryConfig({ type: 'static', path: 'b.json' });
    (raw.pools as JsonObject[])[0].backends = [{ address: '127.0.0.1:9001' }];
    assertSingleIssue(validateConfig(raw), 'pools[0].discovery.path', /^only applies to "type": "file" \(this source is "static"\)$/);
  });

  test('a static pool still needs a backend', () => {
    const raw = discoveryConfig({ type: 'static' });
    assertSingleIssue(validateConfig(raw), 'pools[0].backends', /^must list at least one backend/);
  });
});
