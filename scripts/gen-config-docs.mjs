#!/usr/bin/env node
// Generates docs/config-reference.md from schema/ringlb.schema.json: one table per object in the
// config (top level, listeners[], pools[], pools[].healthCheck, ...), one row per key, the
// schema's `markdownDescription` (or `description`) as the text. The schema is the contract, so
// the reference is derived from it rather than kept beside it by hand.
//
//   node scripts/gen-config-docs.mjs           write docs/config-reference.md   (`npm run docs`)
//   node scripts/gen-config-docs.mjs --check   exit 1 when the checked-in page is out of date
//
// Any keyword the renderer does not know is still shown (as `keyword: value` in the Type
// column), so a key added to the schema never disappears from the page.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
export const SCHEMA_PATH = join(root, 'schema', 'ringlb.schema.json');
export const PAGE_PATH = join(root, 'docs', 'config-reference.md');
export const REGENERATE_COMMAND = 'npm run docs';

/** Keywords that are text or structure, not constraints: rendered elsewhere or not at all. */
const NOT_CONSTRAINTS = new Set([
  'title', 'description', 'markdownDescription', 'default', '$comment', 'examples', '$schema', '$id',
  'type', 'enum', 'const', 'properties', 'additionalProperties', 'required', 'items', '$ref', 'definitions', '$defs',
  'minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'pattern', 'oneOf', 'anyOf', 'allOf',
]);

function code(value) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** Table cells are one line; a `|` would end the cell. */
function cell(text) {
  return String(text).replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|').trim();
}

function resolveRef(schema, node) {
  if (!node || typeof node.$ref !== 'string') return node;
  const match = /^#\/(definitions|\$defs)\/(.+)$/.exec(node.$ref);
  if (!match) return node;
  const target = schema[match[1]]?.[match[2]];
  return target ? { ...target, ...Object.fromEntries(Object.entries(node).filter(([key]) => key !== '$ref')) } : node;
}

function hasProperties(node) {
  return node && typeof node === 'object' && node.properties && typeof node.properties === 'object';
}

function range(node, low, high, unit) {
  const min = node[low];
  const max = node[high];
  if (min === undefined && max === undefined) return '';
  if (min !== undefined && min === max) return `exactly ${min}${unit}`;
  if (min !== undefined && max !== undefined) return `${min}..${max}${unit}`;
  return min !== undefined ? `≥ ${min}${unit}` : `≤ ${max}${unit}`;
}

/** The Type column: type, allowed values, ranges and any other constraint keyword. */
function typeText(schema, raw, sectionOf) {
  const node = resolveRef(schema, raw);
  const parts = [];
  if (Array.isArray(node.enum)) parts.push(node.enum.map(code).join(' | '));
  else if ('const' in node) parts.push(code(node.const));
  else {
    const types = Array.isArray(node.type) ? node.type : node.type ? [node.type] : [];
    const described = types.map((type) => {
      if (type === 'array' && node.items) {
        const itemSection = sectionOf(node.items);
        const itemType = itemSection ? `[${itemSection.label}](#${itemSection.anchor})` : typeText(schema, node.items, sectionOf);
        const count = range(node, 'minItems', 'maxItems', '');
        return `array of ${itemType}${count ? ` (${count} items)` : ''}`;
      }
      if (type === 'object') {
        const section = sectionOf(raw);
        return section ? `object, see [${section.label}](#${section.anchor})` : 'object';
      }
      if (type === 'integer' || type === 'number') {
        const bounds = range(node, 'minimum', 'maximum', '');
        return bounds ? `${type} ${bounds}` : type;
      }
      if (type === 'string') {
        const length = range(node, 'minLength', 'maxLength', ' characters');
        return length ? `string, ${length}` : 'string';
      }
      return type;
    });
    if (described.length > 0) parts.push(described.join(' or '));
  }
  if (typeof node.pattern === 'string') parts.push(`matching ${code(node.pattern)}`);
  for (const keyword of ['oneOf', 'anyOf', 'allOf']) {
    if (Array.isArray(node[keyword])) {
      const joiner = keyword === 'allOf' ? ' and ' : ' or ';
      parts.push(`${keyword === 'allOf' ? 'all of' : 'one of'}: ${node[keyword].map((entry) => typeText(schema, entry, sectionOf)).join(joiner)}`);
    }
  }
  for (const [keyword, value] of Object.entries(node)) {
    if (!NOT_CONSTRAINTS.has(keyword)) parts.push(`${keyword}: ${code(value)}`);
  }
  return parts.join(', ') || 'any';
}

function descriptionOf(node) {
  return node.markdownDescription ?? node.description ?? node.title ?? '';
}

/**
 * Walks the schema from the root and returns the sections in reading order: each object that has
 * properties, once (a definition used in two places is documented where it is first reached).
 */
function collectSections(schema) {
  const sections = [];
  const byNode = new Map();
  const visit = (rawNode, path) => {
    const node = resolveRef(schema, rawNode);
    if (!node || typeof node !== 'object') return;
    const identity = rawNode && typeof rawNode.$ref === 'string' ? rawNode.$ref : node;
    if (hasProperties(node)) {
      if (byNode.has(identity)) return;
      const label = path === '' ? 'top level' : path;
      const anchor = path === '' ? 'top-level' : path.replace(/\[\]/g, '').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase();
      const section = { path, label, anchor, node };
      byNode.set(identity, section);
      byNode.set(node, section);
      sections.push(section);
      for (const [key, child] of Object.entries(node.properties)) visit(child, path === '' ? key : `${path}.${key}`);
    }
    if (node.items) visit(node.items, `${path}[]`);
    for (const keyword of ['oneOf', 'anyOf', 'allOf']) {
      if (Array.isArray(node[keyword])) for (const entry of node[keyword]) visit(entry, path);
    }
  };
  visit(schema, '');
  // Definitions that no property reaches are still part of the contract.
  for (const [group, definitions] of [['definitions', schema.definitions], ['$defs', schema.$defs]]) {
    for (const name of Object.keys(definitions ?? {})) visit({ $ref: `#/${group}/${name}` }, `(${name})`);
  }
  const sectionOf = (raw) => byNode.get(raw && typeof raw.$ref === 'string' ? raw.$ref : raw) ?? null;
  return { sections, sectionOf };
}

function defaultText(node, required) {
  if (required) return 'required';
  if ('default' in node) return code(node.default);
  return '—';
}

/** The whole page as a string; pure, so the test can compare it with the checked-in file. */
export function renderConfigReference(schema) {
  const { sections, sectionOf } = collectSections(schema);
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated from schema/ringlb.schema.json by scripts/gen-config-docs.mjs.',
    `     Do not edit: change the schema's descriptions, then run \`${REGENERATE_COMMAND}\`. -->`,
    '',
    `Every key of a ringlb config file, generated from the JSON Schema that ships with the package`,
    '(`schema/ringlb.schema.json`). Keys not listed here are errors. For a first config, the',
    '`host:port` rules and the error format, see [configuration.md](configuration.md).',
    '',
  ];
  if (descriptionOf(schema)) lines.push(`> ${cell(descriptionOf(schema))}`, '');
  lines.push('Sections: ' + sections.map((section) => `[${section.label}](#${section.anchor})`).join(' · '), '');
  for (const section of sections) {
    const node = section.node;
    lines.push(`<a id="${section.anchor}"></a>`, '', `## ${section.path === '' ? 'Top level' : `\`${section.path}\``}`, '');
    if (section.path !== '' && descriptionOf(node)) lines.push(cell(descriptionOf(node)), '');
    const required = new Set(Array.isArray(node.required) ? node.required : []);
    lines.push('| Key | Type | Default | Description |', '|---|---|---|---|');
    for (const [key, rawChild] of Object.entries(node.properties)) {
      const child = resolveRef(schema, rawChild);
      const description = [child.title && descriptionOf(child) !== child.title ? `**${child.title}.**` : '', descriptionOf(child)]
        .filter(Boolean).join(' ');
      lines.push(`| ${code(key)} | ${cell(typeText(schema, rawChild, sectionOf))} | ${cell(defaultText(child, required.has(key)))} | ${cell(description)} |`);
    }
    if (node.additionalProperties === false) lines.push('', 'No other keys are allowed here.');
    lines.push('');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

export function readSchema() {
  return JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const page = renderConfigReference(readSchema());
  if (process.argv.includes('--check')) {
    let current = '';
    try { current = readFileSync(PAGE_PATH, 'utf8'); } catch { current = ''; }
    if (current !== page) {
      process.stderr.write(`docs/config-reference.md is out of date with schema/ringlb.schema.json: run \`${REGENERATE_COMMAND}\`\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(PAGE_PATH, page);
    process.stderr.write('wrote docs/config-reference.md\n');
  }
}
