/**
 * The one rule for backend ids, wherever an id comes from: the config (`pools[].backends[].id`),
 * a discovery entry (file, etcd) or the admin API (`PUT /v1/pools/{pool}/backends/{id}`).
 *
 * An id is free text, but it ends up in log lines, metrics labels, admin URLs and the hash that
 * places the backend, so it must read as what it is and survive a URL: 1 to MAX_BACKEND_ID_LENGTH
 * code points (src/backend.ts, as the schema counts) of well-formed Unicode, no control
 * characters, no path separators (`a/b` could not be addressed as one URL segment), and none of the
 * invisible characters that make two ids look alike or reorder a log line when printed:
 * bidirectional controls (the "Trojan Source" characters, CVE-2021-42574) and zero-width characters.
 */
import { backendIdLength, MAX_BACKEND_ID_LENGTH } from '../backend.js';

/** C0 and C1 controls and DEL. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Bidi embeddings, overrides, isolates and marks (Unicode UAX #9): ALM, LRM, RLM, LRE..RLO, LRI..PDI. */
const BIDI_CONTROL = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
/** Zero-width space, non-joiner, joiner, word joiner, BOM / zero-width no-break space, soft hyphen. */
const ZERO_WIDTH = /[\u200b-\u200d\u2060\ufeff\u00ad]/;
const PATH_SEPARATOR = /[/\\]/;
/** Half of a UTF-16 pair without its other half (`String#isWellFormed` is not in the ES2022 lib). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** What is wrong with `id` as a backend id (a sentence to follow its JSON path), or undefined when it is fine. */
export function backendIdProblem(id: string): string | undefined {
  if (id.length === 0) return 'must not be empty';
  const length = backendIdLength(id);
  if (length > MAX_BACKEND_ID_LENGTH) return `must be 1 to ${MAX_BACKEND_ID_LENGTH} characters (got ${length})`;
  if (LONE_SURROGATE.test(id)) return 'must be well-formed Unicode (it holds a lone surrogate)';
  const found = (pattern: RegExp): string => {
    const char = pattern.exec(id)![0];
    return `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  };
  if (CONTROL.test(id)) return `must not contain control characters (found ${found(CONTROL)})`;
  if (PATH_SEPARATOR.test(id)) return `must not contain "/" or "\\" (an id is one URL path segment in the admin API)`;
  // URL clients collapse these segments before sending, so such a backend could be registered but never read or deleted.
  if (id === '.' || id === '..') return `must not be "." or ".." (URL clients rewrite those path segments, so the admin API could not address it)`;
  if (BIDI_CONTROL.test(id)) return `must not contain bidirectional control characters (found ${found(BIDI_CONTROL)}): they reorder how the id reads`;
  if (ZERO_WIDTH.test(id)) return `must not contain zero-width characters (found ${found(ZERO_WIDTH)}): two ids would look alike`;
  return undefined;
}
