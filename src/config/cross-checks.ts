/**
 * Rules the JSON Schema cannot express: host:port syntax and port ranges, unique names, listener →
 * pool references, backend id characters (backend-id.ts) and unique backend ids, duplicate binds, prime Maglev table sizes, table capacity,
 * at least one backend per static pool, the admin listener (loopback or a token), the discovery keys
 * (which keys apply to which source type, what each type needs, one source of truth), and the health keys (keys valid only for one check type, what
 * send_expect needs, hex and regex that parse, ordered ranges). (A ring larger than the core's cap is not an error: the core
 * scales points per weight down to fit, see docs/core.md.)
 *
 * They run on the schema-validated copy (defaults filled) even when the schema reported errors, so
 * a user sees every problem in one pass. Each check looks only at values that have the right
 * shape and skips the rest (the schema has already reported those), so one mistake does not
 * cascade into confusing follow-up errors.
 */
import { isIP } from 'node:net';
import { isLoopbackHost } from '../admin/access.js';
import { backendIdLength, MAX_BACKEND_ID_LENGTH } from '../backend.js';
import { MAX_MAGLEV_TABLE_SIZE } from '../core/options.js';
import { checkAlerts } from './alerts.js';
import { backendIdProblem } from './backend-id.js';
import { isHostPort, parseHostPort } from './host-port.js';
import { parseCidr } from '../proxy/cidr-list.js';
import { MAX_BURST_WINDOW_MS } from '../shared-state/source-limits.js';
import { appendAll, closestMatch, formatPath, isRecord, type LocatedIssue } from './issues.js';
import type { PathSegment } from './json-text.js';

export function crossCheck(config: unknown): LocatedIssue[] {
  if (!isRecord(config)) return [];
  const listeners = entries(config.listeners, 'listeners');
  const pools = entries(config.pools, 'pools');
  // Every step is linear (or n log n) in listeners, pools and backends, and results are appended
  // in loops: a file with 100,000 bad backends yields 200,000 issues, too many for a spread.
  const issues: LocatedIssue[] = [];
  appendAll(issues, checkListenerBinds(listeners));
  appendAll(issues, checkUniqueNames(listeners, 'listener'));
  appendAll(issues, checkUniqueNames(pools, 'pool'));
  appendAll(issues, checkListenerPools(listeners, pools));
  for (const pool of pools) appendAll(issues, checkPool(pool));
  for (const listener of listeners) appendAll(issues, checkListenerEdge(listener));
  appendAll(issues, checkAdmin(config.admin));
  appendAll(issues, checkAlerts(config.alerts));
  for (const pool of pools) appendAll(issues, checkDiscovery(pool, isRecord(config.admin)));
  appendAll(issues, checkOpenConnectionsInterval(config.log));
  return issues;
}

/**
 * Open-connection lines: a sweep visits every open connection each quarter interval
 * (access-log/access-log.ts); below 100 ms that is a busy loop over 10,000 connections, not a log.
 */
export const MIN_OPEN_CONNECTIONS_INTERVAL_MS = 100;

function checkOpenConnectionsInterval(log: unknown): LocatedIssue[] {
  if (!isRecord(log) || typeof log.openConnectionsIntervalMs !== 'number') return [];
  const value = log.openConnectionsIntervalMs;
  if (value === 0 || value >= MIN_OPEN_CONNECTIONS_INTERVAL_MS) return [];
  return [{ segments: ['log', 'openConnectionsIntervalMs'], message: `must be 0 (off) or at least ${MIN_OPEN_CONNECTIONS_INTERVAL_MS} ms, got ${value}` }];
}

/** CIDRs that parse (allow, deny, PROXY trusted sources) and a rate whose burst window fits the shared clock. */
function checkListenerEdge(listener: Entry): LocatedIssue[] {
  const issues: LocatedIssue[] = [];
  const checkList = (list: unknown, segments: readonly PathSegment[]): void => {
    if (!Array.isArray(list)) return;
    list.forEach((item: unknown, index) => {
      if (typeof item !== 'string' || item === '') return;
      const parsed = parseCidr(item);
      if ('error' in parsed) issues.push({ segments: [...segments, index], message: parsed.error });
    });
  };
  const { value, segments } = listener;
  checkList(value.allow, [...segments, 'allow']);
  checkList(value.deny, [...segments, 'deny']);
  if (isRecord(value.proxyProtocol)) checkList(value.proxyProtocol.trustedSources, [...segments, 'proxyProtocol', 'trustedSources']);
  const rate = value.connectionRatePerSource;
  if (isRecord(rate) && typeof rate.rate === 'number' && rate.rate > 0 && typeof rate.burst === 'number') {
    const windowMs = (rate.burst / rate.rate) * 1000;
    if (windowMs > MAX_BURST_WINDOW_MS) {
      issues.push({
        segments: [...segments, 'connectionRatePerSource', 'burst'],
        message: `burst / rate is ${Math.round(windowMs / 1000)} s; at most ${MAX_BURST_WINDOW_MS / 1000} s (the shared clock's window)`,
      });
    }
  }
  return issues;
}

/** A non-loopback admin bind without a token would expose the registration API to the network. */
function checkAdmin(admin: unknown): LocatedIssue[] {
  if (!isRecord(admin)) return [];
  const limitIssues = checkAdminLimits(admin.limits);
  if (typeof admin.bind !== 'string' || admin.bind === '') return limitIssues;
  const parsed = parseHostPort(admin.bind, { purpose: 'bind' });
  if (!isHostPort(parsed)) return [{ segments: ['admin', 'bind'], message: parsed.error }, ...limitIssues];
  if (admin.token === undefined && !isLoopbackHost(parsed.host)) {
    return [
      {
        segments: ['admin', 'token'],
        message: `is required when admin.bind (${admin.bind}) is not a loopback address: without it anyone who can reach the port could register backends`,
      },
      ...limitIssues,
    ];
  }
  return limitIssues;
}

/** Node refuses a headers deadline past the request deadline (http.createServer throws ERR_OUT_OF_RANGE). */
function checkAdminLimits(limits: unknown): LocatedIssue[] {
  if (!isRecord(limits) || typeof limits.headersTimeoutMs !== 'number' || typeof limits.requestTimeoutMs !== 'number') return [];
  if (limits.headersTimeoutMs <= limits.requestTimeoutMs) return [];
  return [
    {
      segments: ['admin', 'limits', 'headersTimeoutMs'],
      message: `must not exceed admin.limits.requestTimeoutMs (${limits.requestTimeoutMs}), got ${limits.headersTimeoutMs}: the headers are part of the request`,
    },
  ];
}

/** Keys of `discovery` and the one type that reads each (`retry*` are read by two). */
const DISCOVERY_KEYS: ReadonlyMap<string, readonly string[]> = new Map([
  ['path', ['file']],
  ['debounceMs', ['file']],
  ['pollIntervalMs', ['file']],
  ['watch', ['file']],
  ['name', ['dns']],
  ['record', ['dns']],
  ['port', ['dns']],
  ['servers', ['dns']],
  ['intervalMs', ['dns']],
  ['timeoutMs', ['dns']],
  ['endpoints', ['etcd']],
  ['prefix', ['etcd']],
  ['requestTimeoutMs', ['etcd']],
  ['retryMinMs', ['dns', 'etcd']],
  ['retryMaxMs', ['dns', 'etcd']],
]);

const REQUIRED_DISCOVERY_KEYS: Readonly<Record<string, readonly string[]>> = {
  file: ['path'],
  dns: ['name', 'record'],
  etcd: ['endpoints', 'prefix'],
};

/** etcd client URL, as the etcd source accepts it. */
const ETCD_ENDPOINT = /^https?:\/\/[^/\s]+\/?$/;

function checkDiscovery(pool: Entry, adminConfigured: boolean): LocatedIssue[] {
  const discovery = pool.value.discovery;
  if (!isRecord(discovery) || typeof discovery.type !== 'string') return [];
  const type = discovery.type;
  const segments = [...pool.segments, 'discovery'];
  const issues: LocatedIssue[] = [];
  for (const key of Object.keys(discovery)) {
    const owners = DISCOVERY_KEYS.get(key);
    if (owners !== undefined && !owners.includes(type)) {
      const which = owners.map((owner) => `"type": "${owner}"`).join(' or ');
      issues.push({ segments: [...segments, key], message: `only applies to ${which} (this source is "${type}")` });
    }
  }
  for (const key of REQUIRED_DISCOVERY_KEYS[type] ?? []) {
    if (!(key in discovery)) issues.push({ segments: [...segments, key], message: `is required when "type" is "${type}"` });
  }
  if (type === 'dns') appendAll(issues, checkDnsDiscovery(discovery, segments));
  if (type === 'etcd' && Array.isArray(discovery.endpoints)) {
    discovery.endpoints.forEach((endpoint: unknown, index) => {
      if (typeof endpoint === 'string' && endpoint !== '' && !ETCD_ENDPOINT.test(endpoint)) {
        issues.push({ segments: [...segments, 'endpoints', index], message: `must be a URL like http://127.0.0.1:2379, got "${endpoint}"` });
      }
    });
  }
  if (type === 'etcd' || type === 'dns') {
    const { retryMinMs, retryMaxMs } = discovery;
    if (typeof retryMinMs === 'number' && typeof retryMaxMs === 'number' && retryMaxMs < retryMinMs) {
      issues.push({ segments: [...segments, 'retryMaxMs'], message: `must be at least retryMinMs (${retryMinMs}), got ${retryMaxMs}` });
    }
  }
  if (type === 'registration' && !adminConfigured) {
    issues.push({
      segments,
      message: 'registration needs the admin API: add "admin": {"bind": "127.0.0.1:9901"} (services register through it)',
    });
  }
  // One source of truth: a list next to a source would be silently replaced by it.
  const backends = pool.value.backends;
  if (type !== 'static' && Array.isArray(backends) && backends.length > 0) {
    issues.push({
      segments: [...pool.segments, 'backends'],
      message: `must be empty or absent: this pool's backends come from its "${type}" discovery source`,
    });
  }
  return issues;
}

function checkDnsDiscovery(discovery: Record<string, unknown>, segments: readonly PathSegment[]): LocatedIssue[] {
  const issues: LocatedIssue[] = [];
  const { record, port, servers } = discovery;
  if (record === 'SRV' && port !== undefined) {
    issues.push({ segments: [...segments, 'port'], message: 'is not allowed with "record": "SRV" (SRV records carry their own port)' });
  }
  if ((record === 'A' || record === 'AAAA') && port === undefined) {
    issues.push({ segments: [...segments, 'port'], message: `is required with "record": "${record}" (the records carry no port)` });
  }
  if (Array.isArray(servers)) {
    servers.forEach((server: unknown, index) => {
      if (typeof server !== 'string' || server === '' || isIP(server) !== 0) return;
      const parsed = parseHostPort(server, { purpose: 'connect' });
      if (!isHostPort(parsed) || isIP(parsed.host) === 0) {
        issues.push({
          segments: [...segments, 'servers', index],
          message: `must be an IP address, optionally with a port (127.0.0.1:5353, [::1]:53), got "${server}"`,
        });
      }
    });
  }
  return issues;
}

/** An object element of a top-level array, with its path. */
interface Entry {
  readonly segments: readonly PathSegment[];
  readonly value: Record<string, unknown>;
}

function entries(list: unknown, key: string): Entry[] {
  if (!Array.isArray(list)) return [];
  const result: Entry[] = [];
  list.forEach((value: unknown, index) => {
    if (isRecord(value)) result.push({ segments: [key, index], value });
  });
  return result;
}

function checkListenerBinds(listeners: readonly Entry[]): LocatedIssue[] {
  const issues: LocatedIssue[] = [];
  // By port, so each bind is compared only with the binds on its own port.
  const boundByPort = new Map<number, { host: string; port: number; segments: readonly PathSegment[] }[]>();
  for (const listener of listeners) {
    const { bind } = listener.value;
    if (typeof bind !== 'string' || bind === '') continue;
    const segments = [...listener.segments, 'bind'];
    const parsed = parseHostPort(bind, { purpose: 'bind' });
    if (!isHostPort(parsed)) {
      issues.push({ segments, message: parsed.error });
      continue;
    }
    // Port 0 asks the OS for a fresh port each time, so several listeners may share it.
    if (parsed.port === 0) continue;
    const host = parsed.host.toLowerCase();
    let bound = boundByPort.get(parsed.port);
    if (bound === undefined) boundByPort.set(parsed.port, (bound = []));
    const clash = bound.find((other) => bindsOverlap(other.host, host));
    if (clash === undefined) bound.push({ host, port: parsed.port, segments: listener.segments });
    else issues.push({ segments, message: `${bind} overlaps ${formatPath(clash.segments)} (${clash.host.includes(':') ? `[${clash.host}]` : clash.host}:${clash.port}): the second bind would fail with EADDRINUSE` });
  }
  return issues;
}

/**
 * Whether two listeners on the same port would collide: the same host, or a wildcard that covers
 * the other (`0.0.0.0` covers every IPv4 address; `::` is dual-stack in Node, so it covers both
 * families). Two spellings of one IPv6 address are still left to the OS.
 */
function bindsOverlap(a: string, b: string): boolean {
  if (a === b || a === '::' || b === '::') return true;
  const isIpv4OrName = (host: string): boolean => !host.includes(':');
  return (a === '0.0.0.0' && isIpv4OrName(b)) || (b === '0.0.0.0' && isIpv4OrName(a));
}

function checkUniqueNames(list: readonly Entry[], kind: 'listener' | 'pool'): LocatedIssue[] {
  const issues: LocatedIssue[] = [];
  const firstByName = new Map<string, readonly PathSegment[]>();
  for (const item of list) {
    const { name } = item.value;
    if (typeof name !== 'string') continue;
    const first = firstByName.get(name);
    if (first === undefined) firstByName.set(name, item.segments);
    else issues.push({ segments: [...item.segments, 'name'], message: `duplicate ${kind} name "${name}" (also ${formatPath(first)})` });
  }
  return issues;
}

/** Pool names an unknown-pool message lists. */
const MAX_NAMES_LISTED = 20;
/** Beyond this many pools an unknown pool gets no did-you-mean (each suggestion is O(pools)). */
const MAX_SUGGESTION_CANDIDATES = 1000;

function checkListenerPools(listeners: readonly Entry[], pools: readonly Entry[]): LocatedIssue[] {
  const poolNames = pools.map((pool) => pool.value.name);
  // A pool whose name is missing or mistyped is already reported; guessing here would only add noise.
  if (pools.length === 0 || !poolNames.every((name): name is string => typeof name === 'string')) return [];
  const knownPools = new Set<string>(poolNames);
  // Bounded per issue: a file with thousands of pools lists a few and suggests from a bounded set,
  // so thousands of bad references cost no more than thousands of short messages.
  const listed =
    poolNames.length <= MAX_NAMES_LISTED
      ? poolNames.join(', ')
      : `${poolNames.slice(0, MAX_NAMES_LISTED).join(', ')} and ${poolNames.length - MAX_NAMES_LISTED} more`;
  const candidates = poolNames.length <= MAX_SUGGESTION_CANDIDATES ? poolNames : [];
  const issues: LocatedIssue[] = [];
  for (const listener of listeners) {
    const { pool } = listener.value;
    if (typeof pool !== 'string' || pool === '' || knownPools.has(pool)) continue;
    const suggestion = closestMatch(pool, candidates);
    const hint = suggestion === undefined ? '' : `; did you mean "${suggestion}"?`;
    issues.push({
      segments: [...listener.segments, 'pool'],
      message: `no pool named "${pool}" (pools: ${listed})${hint}`,
    });
  }
  return issues;
}

function checkPool(pool: Entry): LocatedIssue[] {
  const issues: LocatedIssue[] = [];
  const backends = Array.isArray(pool.value.backends) ? (pool.value.backends as unknown[]) : undefined;
  if (backends !== undefined) {
    appendAll(issues, checkBackends(pool.segments, backends));
    if (backends.length === 0 && isStaticPool(pool)) {
      issues.push({
        segments: [...pool.segments, 'backends'],
        message: 'must list at least one backend (no discovery source is configured to fill this pool)',
      });
    }
  }
  appendAll(issues, checkMaglev(pool, backends));
  appendAll(issues, checkHealthCheck(pool));
  appendAll(issues, checkOutlierDetection(pool));
  return issues;
}

/** No `discovery`, or `"type": "static"`: the pool's backends are the config's list. */
function isStaticPool(pool: Entry): boolean {
  const discovery = pool.value.discovery;
  // A bad or missing type is reported by the schema; the backend rule then stays quiet.
  return !isRecord(discovery) || discovery.type === 'static';
}

/** Keys that only one check type reads: a key another type would silently ignore is an error. */
const TYPE_SPECIFIC_KEYS: ReadonlyArray<readonly [key: string, type: string]> = [
  ['send', 'send_expect'],
  ['expect', 'send_expect'],
  ['http', 'http'],
];

function checkHealthCheck(pool: Entry): LocatedIssue[] {
  const check = pool.value.healthCheck;
  if (!isRecord(check)) return [];
  const segments = [...pool.segments, 'healthCheck'];
  const issues: LocatedIssue[] = [];
  const type = check.type;
  if (typeof type === 'string') {
    for (const [key, owner] of TYPE_SPECIFIC_KEYS) {
      if (key in check && type !== owner) {
        issues.push({ segments: [...segments, key], message: `only applies to "type": "${owner}" (this check is "${type}")` });
      }
    }
    // send is optional (a protocol may greet first, e.g. SMTP), but without expect there is nothing to check.
    if (type === 'send_expect' && !('expect' in check)) {
      issues.push({ segments: [...segments, 'expect'], message: 'is required when "type" is "send_expect"' });
    }
  }
  issues.push(...checkBytesSpec(check.send, [...segments, 'send'], false));
  issues.push(...checkBytesSpec(check.expect, [...segments, 'expect'], true));
  const http = check.http;
  if (isRecord(http) && Array.isArray(http.expectStatus) && http.expectStatus.length === 2) {
    const [lowest, highest] = http.expectStatus as unknown[];
    if (typeof lowest === 'number' && typeof highest === 'number' && lowest > highest) {
      issues.push({
        segments: [...segments, 'http', 'expectStatus'],
        message: `the lowest status comes first: [${highest}, ${lowest}], not [${lowest}, ${highest}]`,
      });
    }
  }
  return issues;
}

/** `send` / `expect` objects: exactly one form, and a regex that compiles. */
function checkBytesSpec(spec: unknown, segments: readonly PathSegment[], regexAllowed: boolean): LocatedIssue[] {
  if (!isRecord(spec)) return [];
  const forms = regexAllowed ? ['hex', 'regex'] : ['hex'];
  const present = forms.filter((form) => form in spec);
  // An empty `send` object is already reported by the schema (`hex` is required there).
  if (regexAllowed && present.length === 0 && Object.keys(spec).length === 0) {
    return [{ segments, message: `must be text or an object with ${forms.map((f) => `"${f}"`).join(' or ')}` }];
  }
  if (present.length > 1) return [{ segments, message: 'give either "hex" or "regex", not both' }];
  if (typeof spec.regex === 'string' && spec.regex !== '') {
    try {
      new RegExp(spec.regex);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return [{ segments: [...segments, 'regex'], message: `is not a valid regular expression: ${reason}` }];
    }
  }
  return [];
}

function checkOutlierDetection(pool: Entry): LocatedIssue[] {
  const outlier = pool.value.outlierDetection;
  if (!isRecord(outlier)) return [];
  const { baseEjectionMs, maxEjectionMs } = outlier;
  if (typeof baseEjectionMs === 'number' && typeof maxEjectionMs === 'number' && maxEjectionMs < baseEjectionMs) {
    return [
      {
        segments: [...pool.segments, 'outlierDetection', 'maxEjectionMs'],
        message: `must be at least baseEjectionMs (${baseEjectionMs}), got ${maxEjectionMs}`,
      },
    ];
  }
  return [];
}

function checkBackends(poolSegments: readonly PathSegment[], backends: readonly unknown[]): LocatedIssue[] {
  const issues: LocatedIssue[] = [];
  const firstById = new Map<string, readonly PathSegment[]>();
  backends.forEach((backend: unknown, index) => {
    if (!isRecord(backend)) return;
    const backendSegments = [...poolSegments, 'backends', index];
    const { address, id } = backend;
    if (typeof address === 'string' && address !== '') {
      const parsed = parseHostPort(address, { purpose: 'connect' });
      if (!isHostPort(parsed)) issues.push({ segments: [...backendSegments, 'address'], message: parsed.error });
    }
    // Length is the schema's to report; the characters are checked here, by the rule the admin API shares.
    const idProblem = typeof id === 'string' && id !== '' && backendIdLength(id) <= MAX_BACKEND_ID_LENGTH ? backendIdProblem(id) : undefined;
    if (idProblem !== undefined) issues.push({ segments: [...backendSegments, 'id'], message: idProblem });
    // The id defaults to the address text, so two backends with one address collide as well.
    const explicitId = typeof id === 'string';
    const effectiveId = explicitId ? id : address;
    if (typeof effectiveId !== 'string' || effectiveId === '') return;
    const first = firstById.get(effectiveId);
    if (first === undefined) {
      firstById.set(effectiveId, backendSegments);
    } else if (explicitId) {
      issues.push({
        segments: [...backendSegments, 'id'],
        message: `duplicate backend id "${effectiveId}" (also ${formatPath(first)})`,
      });
    } else {
      issues.push({
        segments: [...backendSegments, 'address'],
        message: `backend id "${effectiveId}" (the address, as no id is given) is already used by ${formatPath(first)}; list a backend once, or give each an explicit "id"`,
      });
    }
  });
  return issues;
}

function checkMaglev(pool: Entry, backends: readonly unknown[] | undefined): LocatedIssue[] {
  const maglev = pool.value.maglev;
  if (!isRecord(maglev) || !Number.isInteger(maglev.tableSize)) return [];
  const tableSize = maglev.tableSize as number;
  // Past the maximum the schema already says so; and the prime search below would never end on a
  // size like 1e191, where n - 1 === n (found by test/fuzz-config.test.ts: `ringlb check` hung).
  if (tableSize > MAX_MAGLEV_TABLE_SIZE) return [];
  const segments = [...pool.segments, 'maglev', 'tableSize'];
  // Checked even when another policy is chosen: the value is in the file, and switching `balance`
  // later should not uncover an old mistake. Envoy: "The table size of maglev must be prime number".
  if (tableSize >= 2 && !isPrime(tableSize)) {
    const below = previousPrime(tableSize);
    const above = nextPrime(tableSize);
    return [{ segments, message: `must be a prime number (65537 is the usual choice; nearest primes: ${below}, ${above})` }];
  }
  // Every backend needs at least one table entry (Envoy guarantees one per host); that needs M >= N.
  if (pool.value.balance === 'maglev' && backends !== undefined && tableSize < backends.length) {
    return [
      {
        segments,
        message: `${tableSize} entries cannot hold ${backends.length} backends; use a prime of at least ${backends.length} (about 100 x backends keeps shares within 1%, Maglev paper)`,
      },
    ];
  }
  return [];
}

/** Trial division: table sizes are at most 5,000,011, so at most ~1,100 odd divisors. */
export function isPrime(n: number): boolean {
  if (n < 2 || !Number.isInteger(n)) return false;
  if (n % 2 === 0) return n === 2;
  for (let divisor = 3; divisor * divisor <= n; divisor += 2) {
    if (n % divisor === 0) return false;
  }
  return true;
}

function previousPrime(n: number): number {
  let candidate = n - 1;
  while (candidate > 2 && !isPrime(candidate)) candidate--;
  return candidate;
}

function nextPrime(n: number): number {
  let candidate = n + 1;
  while (!isPrime(candidate)) candidate++;
  return candidate;
}
