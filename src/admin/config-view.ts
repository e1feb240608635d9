/**
 * The config in force as JSON for `GET /v1/config`: the normalized config (every default filled
 * in) written back in the file's forms: `host:port` as text, bytes as `{"hex": ...}`, a send_expect
 * `expect` as `{"hex"}` or `{"regex"}`, settings the file left out left out (the loader holds them
 * as null). The admin token reads `<redacted>` (the word `ringlb diff` prints for it). Apart from
 * the token, the answer is a config the loader takes back, meaning the same. Reads only.
 */
import type { RinglbConfig } from '../config/types.js';
import { REDACTED } from '../config/reload-plan.js';

export function configAsJson(config: RinglbConfig): unknown {
  const plain = toJson(config) as Record<string, unknown>;
  const admin = plain.admin as Record<string, unknown> | null | undefined;
  if (admin != null && admin.token != null) plain.admin = { ...admin, token: REDACTED };
  return plain;
}

function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return { hex: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') };
  if (Array.isArray(value)) return value.map(toJson);
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  // A send_expect matcher (config/types.ts ExpectMatcher) back in the file's form.
  if (record.kind === 'substring' && record.bytes instanceof Uint8Array) return toJson(record.bytes);
  if (record.kind === 'regex' && typeof record.source === 'string') return { regex: record.source };
  // A parsed HostPort (backend.ts): its canonical text is what the file says.
  if (typeof record.text === 'string' && typeof record.host === 'string' && typeof record.port === 'number' && Object.keys(record).length === 3) {
    return record.text;
  }
  const out: Record<string, unknown> = {};
  // The loader writes null for a setting left out (healthCheck, http, port, ...); leaving it out
  // again keeps the answer a config the loader takes back, meaning the same.
  for (const [key, item] of Object.entries(record)) if (item !== null && item !== undefined) out[key] = toJson(item);
  return out;
}
