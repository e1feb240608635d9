/**
 * The rules of `alerts` a JSON Schema cannot express (cross-checks.ts calls them): a URL that
 * parses, with an http: or https: scheme and no credentials in it; unique receiver names; no header
 * ringlb sets itself, and no header given twice in different case. Plus the one redaction every
 * view of the config uses, so a receiver's headers (secrets) never leave the process.
 */
import type { AlertsConfig } from './types.js';
import { isRecord, type LocatedIssue } from './issues.js';
import type { PathSegment } from './json-text.js';

/** Headers ringlb writes on every POST: a configured one would corrupt the request. */
const RESERVED_HEADERS: ReadonlySet<string> = new Set(['content-type', 'content-length', 'host', 'connection', 'transfer-encoding']);

/** What a secret shows as (the same word as reload-plan.ts REDACTED). */
const REDACTED_VALUE = '<redacted>';

export function checkAlerts(alerts: unknown): LocatedIssue[] {
  if (!isRecord(alerts) || !Array.isArray(alerts.webhooks)) return [];
  const issues: LocatedIssue[] = [];
  const firstByName = new Map<string, number>();
  alerts.webhooks.forEach((webhook: unknown, index) => {
    if (!isRecord(webhook)) return;
    const at: PathSegment[] = ['alerts', 'webhooks', index];
    if (typeof webhook.name === 'string') {
      const first = firstByName.get(webhook.name);
      if (first === undefined) firstByName.set(webhook.name, index);
      else issues.push({ segments: [...at, 'name'], message: `duplicate webhook name "${webhook.name}" (also alerts.webhooks[${first}].name)` });
    }
    if (typeof webhook.url === 'string' && webhook.url !== '') {
      const problem = urlProblem(webhook.url);
      if (problem !== null) issues.push({ segments: [...at, 'url'], message: problem });
    }
    if (isRecord(webhook.headers)) {
      const seen = new Map<string, string>();
      for (const name of Object.keys(webhook.headers)) {
        const lower = name.toLowerCase();
        if (RESERVED_HEADERS.has(lower)) {
          issues.push({ segments: [...at, 'headers', name], message: `"${name}" is set by ringlb and may not be configured` });
        } else if (seen.has(lower)) {
          issues.push({ segments: [...at, 'headers', name], message: `header "${name}" is also given as "${seen.get(lower)}" (header names ignore case)` });
        }
        seen.set(lower, name);
      }
    }
  });
  return issues;
}

/** null when `text` is a URL alerts may POST to; otherwise what is wrong, without echoing the URL (it may hold a secret). */
export function urlProblem(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'is not a valid URL (expected e.g. "http://127.0.0.1:9000/alerts")';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `must be an http: or https: URL, not ${url.protocol}`;
  if (url.hostname === '') return 'must name a host';
  if (url.username !== '' || url.password !== '') return 'must not carry credentials: put them in "headers" (e.g. "Authorization"), which are never logged';
  return null;
}

/** `alerts` with every header value replaced by `<redacted>`, for any view of the config (admin API, plans). */
export function redactAlerts(alerts: AlertsConfig): AlertsConfig {
  return {
    webhooks: alerts.webhooks.map((webhook) => ({
      ...webhook,
      headers: Object.fromEntries(Object.keys(webhook.headers).map((name) => [name, REDACTED_VALUE])),
    })),
  };
}

/**
 * A config value under `alerts` (as a plan shows it: plain JSON) with the values of every `headers`
 * object redacted; anything else is returned as it is.
 */
export function redactHeaderValues(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactHeaderValues);
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = key === 'headers' && isRecord(item) ? Object.fromEntries(Object.keys(item).map((name) => [name, REDACTED_VALUE])) : redactHeaderValues(item);
  }
  return out;
}
