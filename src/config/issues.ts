/**
 * Config issues: JSON paths, translation of ajv errors into messages a person can act on,
 * document-order sorting and the text the CLI prints.
 *
 * Every issue names its path in JavaScript accessor style (`pools[0].backends[1].address`), `$` for
 * the whole document, because that is what a user can search for in the file.
 */
import type { ErrorObject } from 'ajv';
import type { PathSegment } from './json-text.js';
import type { ConfigIssue } from './types.js';

/** An issue before its path is rendered; the segments are kept to sort in document order. */
export interface LocatedIssue {
  readonly segments: readonly PathSegment[];
  readonly message: string;
}

/** `['pools', 0, 'balance']` → `pools[0].balance`; `[]` → `$`; odd keys are quoted (`["a b"]`). */
export function formatPath(segments: readonly PathSegment[]): string {
  if (segments.length === 0) return '$';
  let path = '';
  for (const segment of segments) {
    if (typeof segment === 'number') path += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) path += path === '' ? segment : `.${segment}`;
    else path += `[${JSON.stringify(segment)}]`;
  }
  return path;
}

/**
 * Sorts issues in document order: by the position of each path segment among its siblings (array
 * index, or the key's order in its object). A key that is missing sorts after its existing siblings.
 * The sort is stable, so issues on one path keep the order they were found in (schema first).
 *
 * O(n log n) in the number of issues: each object's key positions are indexed once and shared by
 * every issue under it (a per-issue `Object.keys().indexOf()` made 10,000 unknown keys take 12 s).
 */
export function sortInDocumentOrder(issues: readonly LocatedIssue[], document: unknown): LocatedIssue[] {
  const keyPositions = new KeyPositions();
  const keyed = issues.map((issue) => ({ issue, order: documentOrder(issue.segments, document, keyPositions) }));
  keyed.sort((a, b) => compareOrders(a.order, b.order));
  return keyed.map(({ issue }) => issue);
}

/** Position of each key in its object, computed once per object that an issue path passes through. */
class KeyPositions {
  readonly #byObject = new Map<object, Map<string, number>>();

  /** The key's index among the object's keys; the key count when it is missing. */
  of(node: Record<string, unknown>, key: string): number {
    let positions = this.#byObject.get(node);
    if (positions === undefined) {
      positions = new Map();
      for (const existing of Object.keys(node)) positions.set(existing, positions.size);
      this.#byObject.set(node, positions);
    }
    return positions.get(key) ?? positions.size;
  }
}

function documentOrder(segments: readonly PathSegment[], document: unknown, keyPositions: KeyPositions): number[] {
  const order: number[] = [];
  let node: unknown = document;
  for (const segment of segments) {
    if (typeof segment === 'number') {
      order.push(segment);
      node = Array.isArray(node) ? (node[segment] as unknown) : undefined;
    } else if (isRecord(node)) {
      order.push(keyPositions.of(node, segment));
      node = node[segment];
    } else {
      order.push(0);
      node = undefined;
    }
  }
  return order;
}

function compareOrders(a: readonly number[], b: readonly number[]): number {
  const shared = Math.min(a.length, b.length);
  for (let i = 0; i < shared; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** Drops exact repeats (same path and message), keeping the first. */
export function withoutRepeats(issues: readonly LocatedIssue[]): LocatedIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = `${formatPath(issue.segments)}\u0000${issue.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function toConfigIssues(issues: readonly LocatedIssue[]): ConfigIssue[] {
  return issues.map((issue) => ({ path: formatPath(issue.segments), message: issue.message }));
}

/** Most issue lines `formatIssues` prints; the rest are counted (one line per issue of a 100,000-backend file is not read by anyone). */
export const MAX_PRINTED_ISSUES = 1000;

/**
 * The text `ringlb check` and `ringlb run` print: one `<source>: <path>: <message>` line per issue,
 * in the order given (loaders return them in document order), at most `limit` of them, then how
 * many were left out and the count of all (`2 errors`). No trailing newline.
 */
export function formatIssues(issues: readonly ConfigIssue[], source: string, limit = MAX_PRINTED_ISSUES): string {
  const shown = issues.length > limit ? issues.slice(0, limit) : issues;
  const lines = shown.map((issue) => `${source}: ${issue.path}: ${issue.message}`);
  if (shown.length < issues.length) lines.push(`... and ${issues.length - shown.length} more`);
  lines.push(`${issues.length} ${issues.length === 1 ? 'error' : 'errors'}`);
  return lines.join('\n');
}

/** Appends every item of `source` to `target` (no `push(...source)`: that overflows the stack past ~100,000 items). */
export function appendAll<T>(target: T[], source: readonly T[]): void {
  for (const item of source) target.push(item);
}

// ---------------------------------------------------------------------------------------------
// ajv errors → issues

/**
 * Human descriptions of the schema's `pattern`s, so a failing name says what a name may hold
 * instead of printing a regular expression.
 */
const PATTERN_DESCRIPTIONS: Readonly<Record<string, string>> = {
  '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$':
    "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
  '^\\s*([0-9A-Fa-f]{2}\\s*)+$': 'must be pairs of hex digits (spaces between bytes allowed)',
  '^/[\\x21-\\x7e]*$': "must start with '/' and hold only visible ASCII characters (no spaces)",
  '^[\\x21-\\x7e]+$': 'must hold only visible ASCII characters (no spaces)',
  // `workers`: a count or this one word; the count's range is reported by minimum/maximum.
  '^auto$': 'must be "auto" or an integer',
};

/**
 * Translates one ajv error (compiled with `allErrors` and `verbose`, so `data` and `parentSchema`
 * are set) into an issue. `document` is the validated data, used to tell array indices from keys.
 */
export function issueFromAjvError(error: ErrorObject, document: unknown): LocatedIssue {
  const segments = segmentsFromPointer(error.instancePath, document);
  const params = error.params as Record<string, unknown>;
  const parentSchema = (error.parentSchema ?? {}) as Record<string, unknown>;
  const got = error.data;

  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = allowedKeys(parentSchema);
      const suggestion = closestMatch(key, allowed.keys);
      const hint = suggestion === undefined ? '' : `did you mean "${suggestion}"? `;
      return { segments: [...segments, key], message: `unknown key (${hint}allowed: ${allowed.text})` };
    }
    case 'required':
      return { segments: [...segments, String(params.missingProperty)], message: 'is required' };
    case 'type': {
      // A number-or-word key (`workers`: "auto" or a count) says which word, not "a string".
      const wordRule = typeof parentSchema.pattern === 'string' ? PATTERN_DESCRIPTIONS[parentSchema.pattern] : undefined;
      if (wordRule !== undefined && Array.isArray(parentSchema.type) && parentSchema.type.includes('integer')) {
        return { segments, message: `${wordRule} (got ${describeValue(got)})` };
      }
      // A union type arrives as "string,object".
      const types = String(params.type).split(',').map(withArticle).join(' or ');
      return { segments, message: `must be ${types} (got ${describeValue(got)})` };
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const suggestion = typeof got === 'string' ? closestMatch(got, allowed) : undefined;
      const hint = suggestion === undefined ? '' : `; did you mean "${suggestion}"?`;
      return { segments, message: `must be one of ${allowed.join(', ')} (got ${describeValue(got)})${hint}` };
    }
    case 'minimum':
    case 'maximum': {
      const { minimum, maximum } = parentSchema;
      const range =
        typeof minimum === 'number' && typeof maximum === 'number'
          ? `must be between ${minimum} and ${maximum}`
          : error.keyword === 'minimum'
            ? `must be at least ${String(minimum)}`
            : `must be at most ${String(maximum)}`;
      return { segments, message: `${range} (got ${describeValue(got)})` };
    }
    case 'minItems':
      return {
        segments,
        message:
          params.limit === 1
            ? 'must not be empty'
            : params.limit === parentSchema.maxItems
              ? `must have exactly ${String(params.limit)} items`
              : `must have at least ${String(params.limit)} items`,
      };
    case 'maxItems':
      return {
        segments,
        message:
          params.limit === parentSchema.minItems
            ? `must have exactly ${String(params.limit)} items`
            : `must have at most ${String(params.limit)} items`,
      };
    case 'minLength':
      return {
        segments,
        message: params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters`,
      };
    case 'maxLength':
      return {
        segments,
        message: `must be at most ${String(params.limit)} characters (got ${typeof got === 'string' ? got.length : '?'})`,
      };
    case 'pattern': {
      const description = PATTERN_DESCRIPTIONS[String(params.pattern)] ?? `must match ${String(params.pattern)}`;
      return { segments, message: `${description} (got ${describeValue(got)})` };
    }
    default:
      // Keywords the schema does not use today; ajv's own text is still better than nothing.
      return { segments, message: error.message ?? `fails ${error.keyword}` };
  }
}

const allowedKeysBySchema = new WeakMap<object, { readonly keys: readonly string[]; readonly text: string }>();

/** The keys an object schema allows, listed once per schema (10,000 unknown keys share one list). */
function allowedKeys(schema: Record<string, unknown>): { readonly keys: readonly string[]; readonly text: string } {
  let allowed = allowedKeysBySchema.get(schema);
  if (allowed === undefined) {
    const keys = Object.keys((schema.properties ?? {}) as Record<string, unknown>);
    allowed = { keys, text: keys.join(', ') };
    allowedKeysBySchema.set(schema, allowed);
  }
  return allowed;
}

/** ajv's instancePath is a JSON Pointer (RFC 6901): `/pools/0/balance`. */
function segmentsFromPointer(pointer: string, document: unknown): PathSegment[] {
  if (pointer === '') return [];
  const segments: PathSegment[] = [];
  let node: unknown = document;
  for (const escaped of pointer.slice(1).split('/')) {
    const key = escaped.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(node)) {
      const index = Number(key);
      segments.push(index);
      node = node[index] as unknown;
    } else {
      segments.push(key);
      node = isRecord(node) ? node[key] : undefined;
    }
  }
  return segments;
}

function withArticle(jsonType: string): string {
  return /^[aeiou]/.test(jsonType) ? `an ${jsonType}` : `a ${jsonType}`;
}

/** Short description of a JSON value for "(got ...)": scalars verbatim, containers by kind. */
function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

/**
 * The candidate closest to `word` when it is a likely typo (case slip or at most 2 edits), else
 * the one candidate that `word` is the start of when the rest is a unit or a word (`ttl` →
 * `ttlMs`, `interval` → `intervalMs`), else undefined.
 */
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  const tolerance = Math.min(2, Math.floor(word.length / 3));
  const lowerWord = word.toLowerCase();
  const extensions: string[] = [];
  for (const candidate of candidates) {
    const lowerCandidate = candidate.toLowerCase();
    // A camelCase continuation after the whole word: `ttl` + `Ms`, not `a` + `ddress`.
    if (word.length >= 3 && lowerCandidate.startsWith(lowerWord) && /^[A-Z]/.test(candidate.slice(word.length))) {
      extensions.push(candidate);
    }
    // The distance is at least the length difference: skip what cannot be a typo without computing it.
    if (Math.abs(candidate.length - word.length) > tolerance) continue;
    const distance = lowerCandidate === lowerWord ? 0 : editDistance(lowerWord, lowerCandidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (bestDistance <= tolerance) return best;
  return extensions.length === 1 ? extensions[0] : undefined;
}

/** Levenshtein distance; words here are config keys and enum values, a few dozen characters at most. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
