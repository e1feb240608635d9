// docs/config-reference.md is generated from the schema; this test fails when a schema change
// was not followed by `npm run docs`, and checks that the generator covers every key.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

interface ConfigDocsGenerator {
  renderConfigReference(schema: unknown): string;
  readSchema(): SchemaNode;
  PAGE_PATH: string;
  REGENERATE_COMMAND: string;
}

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  $ref?: string;
  definitions?: Record<string, SchemaNode>;
  [keyword: string]: unknown;
}

// dist/test/ → scripts/ at the package root (the generator runs without a build).
const generator = (await import(new URL('../../scripts/gen-config-docs.mjs', import.meta.url).href)) as ConfigDocsGenerator;

/** Every property name in the schema with the section it belongs to, following $refs. */
function allKeys(schema: SchemaNode): Set<string> {
  const keys = new Set<string>();
  const seen = new Set<SchemaNode>();
  const visit = (node: SchemaNode | undefined): void => {
    if (!node || seen.has(node)) return;
    seen.add(node);
    const resolved = node.$ref ? schema.definitions?.[node.$ref.replace('#/definitions/', '')] : node;
    if (!resolved) return;
    for (const [key, child] of Object.entries(resolved.properties ?? {})) {
      keys.add(key);
      visit(child);
    }
    visit(resolved.items);
  };
  visit(schema);
  return keys;
}

describe('docs/config-reference.md', () => {
  test('is up to date with schema/ringlb.schema.json', () => {
    const expected = generator.renderConfigReference(generator.readSchema());
    const actual = readFileSync(generator.PAGE_PATH, 'utf8');
    assert.ok(actual === expected,
      `docs/config-reference.md is out of date with schema/ringlb.schema.json: run \`${generator.REGENERATE_COMMAND}\` and commit the result`);
  });

  test('has a row for every key of the schema, with its default', () => {
    const schema = generator.readSchema();
    const page = generator.renderConfigReference(schema);
    for (const key of allKeys(schema)) assert.match(page, new RegExp(`^\\| \`${key.replace(/\$/g, '\\$')}\` \\|`, 'm'), `no row for ${key}`);
    assert.match(page, /^\| `drainTimeoutMs` \| integer 0\.\.2147483647 \| `30000` \|/m);
    assert.match(page, /^\| `balance` \| `round_robin` \\\| `random` .* \| `round_robin` \|/m);
  });

  test('a key added to the schema, with a keyword the generator does not know, still gets a row', () => {
    const schema = generator.readSchema() as SchemaNode & { properties: Record<string, SchemaNode> };
    schema.properties.futureKey = { type: 'string', format: 'hostname', description: 'Added | later.', default: 'x' };
    const page = generator.renderConfigReference(schema);
    assert.match(page, /^\| `futureKey` \| string, format: `hostname` \| `x` \| Added \\\| later\. \|$/m);
  });
});
