/**
 * Rules the JSON Schema cannot express: host:port syntax and port ranges, unique names, listener →
 * pool references, unique backend ids, duplicate binds, prime Maglev table sizes, table capacity,
 * and at least one backend per pool. (A ring larger than the core's cap is not an error: the core
 * scales points per weight down to fit, see docs/core.md.)
 *
 * They run on the schema-validated copy (defaults filled) even when the schema reported errors, so
 * a user sees every problem in one pass. Each check looks only at values that have the right
 * shape and skips the rest (the schema has already reported those), so one mistake does not
 * cascade into confusing follow-up errors.
 */
import { isHostPort, parseHostPort } from './host-port.js';
import { closestMatch, formatPath, isRecord, type LocatedIssue } from './issues.js';
import type { PathSegment } from './json-text.js';

export function crossCheck(config: unknown): LocatedIssue[] {
  if (!isRecord(config)) return [];
  const listeners = entries(config.listeners, 'listeners');
  const pools = entries(config.pools, 'pools');
  return [
    ...checkListenerBinds(listeners),
    ...checkUniqueNames(listeners, 'listener'),
    ...checkUniqueNames(pools, 'pool'),
    ...checkListenerPools(listeners, pools),
    ...pools.flatMap(checkPool),
  ];
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
  const firstBySocket = new Map<string, readonly PathSegment[]>();
  for (const listener of listeners) {
    const { bind } = listener.value;
    if (typeof bind !== 'string' || bind === '') continue;
    const segments = [...listener.segments, 'bind'];
    const parsed = parseHostPort(bind, { allowPortZero: true });
    if (!isHostPort(parsed)) {
      issues.push({ segments, message: parsed.error });
      continue;
    }
    // Port 0 asks the OS for a fresh port each time, so several listeners may share it.
    // Only identical host and port are caught here; overlaps such as 0.0.0.0:80 vs 127.0.0.1:80
    // are left to the OS, which refuses the second bind with EADDRINUSE.
    if (parsed.port === 0) continue;
    const socket = `${parsed.host.toLowerCase()} ${parsed.port}`;
    const first = firstBySocket.get(socket);
    if (first === undefined) firstBySocket.set(socket, listener.segments);
    else issues.push({ segments, message: `${bind} is already bound by ${formatPath(first)}` });
  }
  return issues;
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

function checkListenerPools(listeners: readonly Entry[], pools: readonly Entry[]): LocatedIssue[] {
  const poolNames = pools.map((pool) => pool.value.name);
  // A pool whose name is missing or mistyped is already reported; guessing here would only add noise.
  if (pools.length === 0 || !poolNames.every((name): name is string => typeof name === 'string')) return [];
  const issues: LocatedIssue[] = [];
  for (const listener of listeners) {
    const { pool } = listener.value;
    if (typeof pool !== 'string' || pool === '' || poolNames.includes(pool)) continue;
    const suggestion = closestMatch(pool, poolNames);
    const hint = suggestion === undefined ? '' : `; did you mean "${suggestion}"?`;
    issues.push({
      segments: [...listener.segments, 'pool'],
      message: `no pool named "${pool}" (pools: ${poolNames.join(', ')})${hint}`,
    });
  }
  return issues;
}

function checkPool(pool: Entry): LocatedIssue[] {
  const issues: LocatedIssue[] = [];
  const backends = Array.isArray(pool.value.backends) ? (pool.value.backends as unknown[]) : undefined;
  if (backends !== undefined) {
    issues.push(...checkBackends(pool.segments, backends));
    if (backends.length === 0) {
      // Phrased around the missing source so a later discovery feature can relax exactly this rule.
      issues.push({
        segments: [...pool.segments, 'backends'],
        message: 'must list at least one backend (no discovery source is configured to fill this pool)',
      });
    }
  }
  issues.push(...checkMaglev(pool, backends));
  return issues;
}

function checkBackends(poolSegments: readonly PathSegment[], backends: readonly unknown[]): LocatedIssue[] {
  const issues: LocatedIssue[] = [];
  const firstById = new Map<string, readonly PathSegment[]>();
  backends.forEach((backend: unknown, index) => {
    if (!isRecord(backend)) return;
    const backendSegments = [...poolSegments, 'backends', index];
    const { address, id } = backend;
    if (typeof address === 'string' && address !== '') {
      const parsed = parseHostPort(address, { allowPortZero: false });
      if (!isHostPort(parsed)) issues.push({ segments: [...backendSegments, 'address'], message: parsed.error });
    }
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
