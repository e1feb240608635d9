/**
 * Validation of backend entries read from a registry (a discovery file, an etcd value), with the
 * same rules as config backends (schema/ringlb.schema.json `backend`): `address` host:port,
 * `weight` integer 0..MAX_WEIGHT default 1, `state` one of BACKEND_STATES default active, `id`
 * 1..MAX_BACKEND_ID_LENGTH code points default the address text, no other properties (src/backend.ts).
 * Errors name the entry by a JSON path (`[2].weight: must be an integer 0..10000, got 1.5`) so the
 * caller can prefix its source.
 */
import {
  BACKEND_STATES,
  backendIdLength,
  MAX_BACKEND_ID_LENGTH,
  MAX_WEIGHT,
  type Backend,
  type BackendState,
} from '../backend.js';
import { backendIdProblem } from '../config/backend-id.js';
import { isHostPort, parseHostPort } from '../config/host-port.js';

const KNOWN_PROPERTIES = new Set(['address', 'weight', 'id', 'state']);

export type EntryResult = { readonly backend: Backend } | { readonly errors: readonly string[] };

/**
 * Validates one entry. `path` prefixes every message (`[2]`, or an etcd key); `defaultId`, when
 * given, replaces the address text as the default id (etcd uses the key suffix).
 */
export function parseBackendEntry(value: unknown, path: string, defaultId?: string): EntryResult {
  const at = (field: string): string => (path === '' ? field : `${path}.${field}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { errors: [`${path || 'entry'}: must be an object like {"address":"127.0.0.1:9001"}, got ${describe(value)}`] };
  }
  const record = value as Record<string, unknown>;
  const errors: string[] = [];
  for (const key of Object.keys(record)) {
    if (!KNOWN_PROPERTIES.has(key)) errors.push(`${at(key)}: unknown property (expected address, weight, id, state)`);
  }

  let address: Backend['address'] | undefined;
  if (typeof record.address !== 'string') {
    errors.push(`${at('address')}: must be a "host:port" string, got ${describe(record.address)}`);
  } else {
    const parsed = parseHostPort(record.address, { purpose: 'connect' });
    if (isHostPort(parsed)) address = parsed;
    else errors.push(`${at('address')}: ${parsed.error}`);
  }

  const weight = record.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
    errors.push(`${at('weight')}: must be an integer 0..${MAX_WEIGHT}, got ${describe(record.weight)}`);
  }

  const state = record.state ?? 'active';
  if (!BACKEND_STATES.includes(state as BackendState)) {
    errors.push(`${at('state')}: must be one of ${BACKEND_STATES.join(', ')}, got ${describe(record.state)}`);
  }

  const id = record.id ?? defaultId ?? address?.text;
  const idLengthOk = typeof record.id === 'string' && record.id !== '' && backendIdLength(record.id) <= MAX_BACKEND_ID_LENGTH;
  if (record.id !== undefined && !idLengthOk) {
    errors.push(`${at('id')}: must be a string of 1..${MAX_BACKEND_ID_LENGTH} characters, got ${describe(record.id)}`);
  } else if (typeof record.id === 'string') {
    const idProblem = backendIdProblem(record.id);
    if (idProblem !== undefined) errors.push(`${at('id')}: ${idProblem}`);
  }

  if (errors.length > 0 || address === undefined || typeof id !== 'string') return { errors };
  return { backend: { id, address, weight: weight as number, state: state as BackendState } };
}

/**
 * Validates a whole list (a discovery file). All-or-nothing: any bad entry or a duplicate id
 * refuses the list, so a half-edited file never shrinks a pool. Returns the set sorted by id.
 */
export function parseBackendList(value: unknown): { readonly backends: readonly Backend[] } | { readonly errors: readonly string[] } {
  if (!Array.isArray(value)) {
    return { errors: [`must be a JSON array of backends like [{"address":"127.0.0.1:9001"}], got ${describe(value)}`] };
  }
  const errors: string[] = [];
  const backends: Backend[] = [];
  const firstIndexById = new Map<string, number>();
  value.forEach((entry: unknown, index) => {
    const result = parseBackendEntry(entry, `[${index}]`);
    if ('errors' in result) {
      // A loop, not push(...): a file of 100,000 bad entries must not overflow the stack.
      for (const error of result.errors) errors.push(error);
      return;
    }
    const first = firstIndexById.get(result.backend.id);
    if (first !== undefined) {
      errors.push(`[${index}].id: duplicate backend id "${result.backend.id}" (also [${first}])`);
      return;
    }
    firstIndexById.set(result.backend.id, index);
    backends.push(result.backend);
  });
  if (errors.length > 0) return { errors };
  return { backends: sortById(backends) };
}

/** Sorted by id (code-unit order), the order the core builds tables in. */
export function sortById(backends: readonly Backend[]): Backend[] {
  return [...backends].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** True when two id-sorted sets hold the same backends with the same address, weight and state. */
export function sameBackendSet(a: readonly Backend[], b: readonly Backend[]): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index += 1) {
    const left = a[index];
    const right = b[index];
    if (left.id !== right.id || left.address.text !== right.address.text || left.weight !== right.weight || left.state !== right.state) {
      return false;
    }
  }
  return true;
}

/** A short, bounded rendering of a bad value for an error message. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
