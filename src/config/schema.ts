/**
 * The public config contract, schema/ringlb.schema.json, loaded from the package at run time and
 * compiled once with ajv.
 *
 * Dialect: JSON Schema draft-07. The schema needs nothing newer (no composition, so no
 * `unevaluatedProperties`), draft-07 is ajv's default class, and it is the dialect editors and
 * SchemaStore support most widely — the schema is also an editing aid (`"$schema"` in a config).
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';

/** dist/src/config/schema.js → ../../../ is the package root, which ships `schema/` (package.json "files"). */
export const CONFIG_SCHEMA_URL = new URL('../../../schema/ringlb.schema.json', import.meta.url);

let compiled: ValidateFunction | undefined;

/**
 * The compiled validator. Options:
 *  - `allErrors`: report every problem at once, not the first one.
 *  - `verbose`: errors carry `data` and `parentSchema`, used to write "(got ...)" and "allowed: ...".
 *  - `useDefaults`: fill the schema's `default`s into the validated copy, so the schema is the one
 *    place defaults live (editors show the same values). Nested objects default to `{}` and then
 *    receive their own properties' defaults.
 *  - `strict`: an unknown keyword or a misplaced default in the schema is a bug; fail loudly.
 *  - `allowUnionTypes`: `send` and `expect` are text or an object (`{"hex": ...}`), written as
 *    `"type": ["string", "object"]` rather than a composition (one error, not one per branch).
 */
export function configValidator(): ValidateFunction {
  if (compiled === undefined) {
    const schema = JSON.parse(readFileSync(CONFIG_SCHEMA_URL, 'utf8')) as object;
    const ajv = new Ajv({ allErrors: true, verbose: true, useDefaults: true, strict: true, allowUnionTypes: true });
    compiled = ajv.compile(schema);
  }
  return compiled;
}
