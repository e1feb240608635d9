/**
 * The config in force as JSON for `GET /v1/config`: the normalized config (defaults filled in),
 * with every `host:port` as its text, bytes as `{"hex": ...}`, and the admin token replaced by
 * `<redacted>` (the same word `ringlb diff` prints for it). Reads only.
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
  // A parsed HostPort (backend.ts): its canonical text is what the file says.
  if (typeof record.text === 'string' && typeof record.host === 'string' && typeof record.port === 'number' && Object.keys(record).length === 3) {
    return record.text;
  }
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(record)) out[key] = toJson(item);
  return out;
}
