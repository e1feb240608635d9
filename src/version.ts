/** ringlb's version, from the package.json it ships with (`ringlb --version`, the admin status). */
import { readFileSync } from 'node:fs';

let version: string | undefined;

export function ringlbVersion(): string {
  if (version !== undefined) return version;
  const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  version = packageJson.version ?? 'unknown';
  return version;
}
