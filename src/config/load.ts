/**
 * Loading a ringlb config: file → text → JSON → schema → cross-checks → normalized `RinglbConfig`.
 *
 * Every problem a user can cause comes back as data (`{ ok: false, issues }`), each issue naming its
 * JSON path, all of them at once and in document order; nothing here throws for bad input. The CLI
 * prints them with `formatIssues` and exits 2.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { AdminLimits } from '../admin/limits.js';
import type { BackendState, HostPort } from '../backend.js';
import type { BalancePolicy } from '../core/types.js';
import type { RinglbEventType } from '../events/types.js';
import { crossCheck } from './cross-checks.js';
import { isHostPort, parseHostPort } from './host-port.js';
import { isFileOutput } from '../access-log/settings.js';
import {
  issueFromAjvError,
  sortInDocumentOrder,
  toConfigIssues,
  withoutRepeats,
  type LocatedIssue,
} from './issues.js';
import { readJsonText } from './json-text.js';
import { configValidator } from './schema.js';
import type {
  AdminConfig,
  ConfigIssue,
  DiscoveryConfig,
  ExpectMatcher,
  HashKey,
  HealthCheckConfig,
  HealthCheckType,
  LogLevel,
  OutlierDetectionConfig,
  ProxyProtocolAcceptConfig,
  RinglbConfig,
  SourceRateConfig,
} from './types.js';

export { formatIssues } from './issues.js';
export { parseHostPort } from './host-port.js';
export { CONFIG_SCHEMA_URL } from './schema.js';

export type ConfigLoadResult = { ok: true; config: RinglbConfig } | { ok: false; issues: ConfigIssue[] };

export interface ConfigSourceOptions {
  /**
   * Directory that relative paths in the config (a `file` discovery's `path`) are resolved
   * against; default the working directory. `loadConfigFile` passes the config file's directory.
   */
  readonly baseDir?: string;
}

/** Validates an already-parsed JSON value (e.g. from a registry or an admin API body). */
export function validateConfig(raw: unknown, options: ConfigSourceOptions = {}): ConfigLoadResult {
  return validate(raw, [], options);
}

/** Parses config text; JSON syntax errors come back as an issue at `$` with line and column. */
export function parseConfigText(text: string, options: ConfigSourceOptions = {}): ConfigLoadResult {
  const json = readJsonText(text);
  if (!json.ok) {
    return fail([{ path: '$', message: `invalid JSON at line ${json.line}, column ${json.column}: ${json.message}` }]);
  }
  // JSON.parse keeps the last of two equal keys; a config must not silently drop the first one.
  const duplicateKeyIssues = json.duplicateKeys.map(
    (duplicate): LocatedIssue => ({
      segments: duplicate.path,
      message: 'key appears more than once in its object (JSON keeps only the last value)',
    }),
  );
  return validate(json.value, duplicateKeyIssues, options);
}

/** Reads and validates a config file; an unreadable file is an issue at `$` with the OS reason. */
export function loadConfigFile(path: string): ConfigLoadResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return fail([{ path: '$', message: `cannot read config file: ${reason}` }]);
  }
  // Relative paths inside a config mean "next to this file", whatever directory ringlb runs in.
  return parseConfigText(text, { baseDir: dirname(resolve(path)) });
}

function fail(issues: ConfigIssue[]): ConfigLoadResult {
  return { ok: false, issues };
}

function validate(raw: unknown, earlierIssues: readonly LocatedIssue[], options: ConfigSourceOptions): ConfigLoadResult {
  let copy: unknown;
  try {
    // ajv fills defaults in place; the caller's object stays untouched.
    copy = structuredClone(raw);
  } catch {
    return fail([{ path: '$', message: 'is not plain JSON data' }]);
  }
  const validator = configValidator();
  validator(copy);
  const schemaIssues = (validator.errors ?? []).map((error) => issueFromAjvError(error, copy));
  const issues = withoutRepeats([...earlierIssues, ...schemaIssues, ...crossCheck(copy)]);
  if (issues.length > 0) return fail(toConfigIssues(sortInDocumentOrder(issues, copy)));
  return { ok: true, config: normalize(copy as ValidatedConfig, resolve(options.baseDir ?? '.')) };
}

// ---------------------------------------------------------------------------------------------
// The shape the schema guarantees once validation passed and defaults are filled.

interface ValidatedListener {
  name: string;
  bind: string;
  pool: string;
  maxConnections: number;
  idleTimeoutMs: number;
  proxyProtocol?: ProxyProtocolAcceptConfig;
  allow?: string[];
  deny?: string[];
  maxConnectionsPerSource?: number;
  connectionRatePerSource?: SourceRateConfig;
  clientFinTimeoutMs: number;
}

interface ValidatedBackend {
  address: string;
  weight: number;
  id?: string;
  state: BackendState;
}

/** Text (UTF-8) or `{"hex": ...}`; expect may also be `{"regex": ...}`. */
type ValidatedBytes = string | { hex: string };
type ValidatedExpect = ValidatedBytes | { regex: string };

interface ValidatedHealthCheck {
  type: HealthCheckType;
  intervalMs: number;
  timeoutMs: number;
  jitter: number;
  rise: number;
  fall: number;
  unhealthyIntervalMs?: number;
  port?: number;
  send?: ValidatedBytes;
  expect?: ValidatedExpect;
  http?: { path: string; host?: string; expectStatus: [number, number] };
  initialHealthy: boolean;
}

interface ValidatedPool {
  name: string;
  balance: BalancePolicy;
  hashKey: HashKey;
  connectTimeoutMs: number;
  retries: number;
  responseTimeoutMs: number;
  serverFinTimeoutMs: number;
  maxConnectionsPerBackend: number;
  queue: { size: number; timeoutMs: number };
  ringHash: { pointsPerWeight: number };
  maglev: { tableSize: number };
  hashBalanceFactor?: number;
  backends: ValidatedBackend[];
  healthCheck?: ValidatedHealthCheck;
  outlierDetection: OutlierDetectionConfig;
  panicThreshold: number;
  slowStartMs: number;
  resolveIntervalMs: number;
  discovery?: ValidatedDiscovery;
  sendProxyProtocol?: 'v1' | 'v2';
}

/** Every discovery key; cross-checks guarantee each type got only its own and the required ones. */
interface ValidatedDiscovery {
  type: DiscoveryConfig['type'];
  path?: string;
  debounceMs?: number;
  pollIntervalMs?: number;
  watch?: boolean;
  name?: string;
  record?: 'SRV' | 'A' | 'AAAA';
  port?: number;
  servers?: string[];
  intervalMs?: number;
  timeoutMs?: number;
  endpoints?: string[];
  prefix?: string;
  requestTimeoutMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
}

interface ValidatedConfig {
  listeners: ValidatedListener[];
  pools: ValidatedPool[];
  log: {
    level: LogLevel;
    access: { enabled: boolean; sample: number; output: string };
    openConnectionsIntervalMs: number;
    onConnect: boolean;
  };
  drainTimeoutMs: number;
  workers: number | 'auto';
  admin?: { bind: string; token?: string; limits: AdminLimits };
  alerts: { webhooks: ValidatedWebhook[] };
}

interface ValidatedWebhook {
  name: string;
  url: string;
  events?: RinglbEventType[];
  headers: Record<string, string>;
  timeoutMs: number;
  maxRetries: number;
  queueSize: number;
}

/** Builds fresh objects (nothing aliases the input); `$schema` is dropped; host:port parsed once. */
function normalize(config: ValidatedConfig, baseDir: string): RinglbConfig {
  return {
    listeners: config.listeners.map((listener) => ({
      name: listener.name,
      bind: parsedHostPort(listener.bind, 'bind'),
      pool: listener.pool,
      maxConnections: listener.maxConnections,
      idleTimeoutMs: listener.idleTimeoutMs,
      // Edge settings: absent stays absent, so configs without them normalize exactly as before.
      ...(listener.proxyProtocol === undefined
        ? {}
        : { proxyProtocol: { accept: listener.proxyProtocol.accept, trustedSources: [...listener.proxyProtocol.trustedSources], timeoutMs: listener.proxyProtocol.timeoutMs } }),
      ...(listener.allow === undefined ? {} : { allow: [...listener.allow] }),
      ...(listener.deny === undefined ? {} : { deny: [...listener.deny] }),
      ...(listener.maxConnectionsPerSource === undefined ? {} : { maxConnectionsPerSource: listener.maxConnectionsPerSource }),
      ...(listener.connectionRatePerSource === undefined
        ? {}
        : { connectionRatePerSource: { rate: listener.connectionRatePerSource.rate, burst: listener.connectionRatePerSource.burst } }),
      clientFinTimeoutMs: listener.clientFinTimeoutMs,
    })),
    pools: config.pools.map((pool) => ({
      name: pool.name,
      balance: pool.balance,
      hashKey: pool.hashKey,
      connectTimeoutMs: pool.connectTimeoutMs,
      retries: pool.retries,
      responseTimeoutMs: pool.responseTimeoutMs,
      serverFinTimeoutMs: pool.serverFinTimeoutMs,
      maxConnectionsPerBackend: pool.maxConnectionsPerBackend,
      queue: { size: pool.queue.size, timeoutMs: pool.queue.timeoutMs },
      ringHash: { pointsPerWeight: pool.ringHash.pointsPerWeight },
      maglev: { tableSize: pool.maglev.tableSize },
      // Absent stays absent (no bound), so configs without it normalize exactly as before.
      ...(pool.hashBalanceFactor === undefined ? {} : { hashBalanceFactor: pool.hashBalanceFactor }),
      backends: pool.backends.map((backend) => ({
        id: backend.id ?? backend.address,
        address: parsedHostPort(backend.address, 'connect'),
        weight: backend.weight,
        state: backend.state,
      })),
      healthCheck: pool.healthCheck === undefined ? null : normalizeHealthCheck(pool.healthCheck),
      outlierDetection: {
        consecutiveFailures: pool.outlierDetection.consecutiveFailures,
        baseEjectionMs: pool.outlierDetection.baseEjectionMs,
        maxEjectionMs: pool.outlierDetection.maxEjectionMs,
        maxEjectionPercent: pool.outlierDetection.maxEjectionPercent,
      },
      panicThreshold: pool.panicThreshold,
      slowStartMs: pool.slowStartMs,
      resolveIntervalMs: pool.resolveIntervalMs,
      discovery: normalizeDiscovery(pool.discovery, baseDir),
      ...(pool.sendProxyProtocol === undefined ? {} : { sendProxyProtocol: pool.sendProxyProtocol }),
    })),
    log: {
      level: config.log.level,
      access: {
        enabled: config.log.access.enabled,
        sample: config.log.access.sample,
        // A relative file path is the config file's directory's, as a discovery file's is.
        output: isFileOutput(config.log.access.output) ? resolve(baseDir, config.log.access.output) : config.log.access.output,
      },
      openConnectionsIntervalMs: config.log.openConnectionsIntervalMs,
      onConnect: config.log.onConnect,
    },
    drainTimeoutMs: config.drainTimeoutMs,
    workers: config.workers,
    admin: normalizeAdmin(config.admin),
    alerts: {
      webhooks: config.alerts.webhooks.map((webhook) => ({
        name: webhook.name,
        url: webhook.url,
        events: webhook.events === undefined ? null : [...new Set(webhook.events)],
        headers: { ...webhook.headers },
        timeoutMs: webhook.timeoutMs,
        maxRetries: webhook.maxRetries,
        queueSize: webhook.queueSize,
      })),
    },
  };
}

function normalizeAdmin(admin: ValidatedConfig['admin']): AdminConfig | null {
  if (admin === undefined) return null;
  const { limits } = admin;
  return {
    bind: parsedHostPort(admin.bind, 'bind'),
    token: admin.token ?? null,
    limits: {
      maxConnections: limits.maxConnections,
      headersTimeoutMs: limits.headersTimeoutMs,
      requestTimeoutMs: limits.requestTimeoutMs,
      keepAliveTimeoutMs: limits.keepAliveTimeoutMs,
      maxBodyBytes: limits.maxBodyBytes,
      maxHeaderBytes: limits.maxHeaderBytes,
    },
  };
}

/** Only the keys given are copied (absent stays absent: the source applies its own default). */
function normalizeDiscovery(discovery: ValidatedDiscovery | undefined, baseDir: string): DiscoveryConfig {
  if (discovery === undefined) return { type: 'static' };
  const given = <K extends keyof ValidatedDiscovery>(key: K): Pick<ValidatedDiscovery, K> =>
    (discovery[key] === undefined ? {} : { [key]: discovery[key] }) as Pick<ValidatedDiscovery, K>;
  switch (discovery.type) {
    case 'static':
    case 'registration':
      return { type: discovery.type };
    case 'file':
      return {
        type: 'file',
        path: resolve(baseDir, discovery.path!),
        ...given('debounceMs'),
        ...given('pollIntervalMs'),
        ...given('watch'),
      };
    case 'dns':
      return {
        type: 'dns',
        name: discovery.name!,
        record: discovery.record!,
        ...given('port'),
        ...(discovery.servers === undefined ? {} : { servers: [...discovery.servers] }),
        ...given('intervalMs'),
        ...given('timeoutMs'),
        ...given('retryMinMs'),
        ...given('retryMaxMs'),
      };
    case 'etcd':
      return {
        type: 'etcd',
        endpoints: [...discovery.endpoints!],
        prefix: discovery.prefix!,
        ...given('requestTimeoutMs'),
        ...given('retryMinMs'),
        ...given('retryMaxMs'),
      };
  }
}

/** Defaults that depend on other keys or on the type are filled here (the schema cannot express them). */
function normalizeHealthCheck(check: ValidatedHealthCheck): HealthCheckConfig {
  const http = check.type === 'http' ? (check.http ?? { path: '/', expectStatus: [200, 399] }) : undefined;
  return {
    type: check.type,
    intervalMs: check.intervalMs,
    timeoutMs: check.timeoutMs,
    jitter: check.jitter,
    rise: check.rise,
    fall: check.fall,
    // HAProxy's downinter also defaults to inter.
    unhealthyIntervalMs: check.unhealthyIntervalMs ?? check.intervalMs,
    port: check.port ?? null,
    send: check.send === undefined ? null : bytesOf(check.send),
    expect: check.expect === undefined ? null : expectOf(check.expect),
    http:
      http === undefined
        ? null
        : { path: http.path, host: http.host ?? null, expectStatus: [http.expectStatus[0], http.expectStatus[1]] },
    initialHealthy: check.initialHealthy,
  };
}

function bytesOf(spec: ValidatedBytes): Uint8Array {
  if (typeof spec === 'string') return new TextEncoder().encode(spec);
  return Uint8Array.from(Buffer.from(spec.hex.replace(/\s+/g, ''), 'hex'));
}

function expectOf(spec: ValidatedExpect): ExpectMatcher {
  if (typeof spec === 'object' && 'regex' in spec) return { kind: 'regex', source: spec.regex };
  return { kind: 'substring', bytes: bytesOf(spec) };
}

/** Cross-checks already rejected every address that does not parse. */
function parsedHostPort(text: string, purpose: 'bind' | 'connect'): HostPort {
  const parsed = parseHostPort(text, { purpose });
  if (!isHostPort(parsed)) throw new Error(`bug: "${text}" passed the cross-checks but does not parse: ${parsed.error}`);
  return parsed;
}
