/**
 * The import graph of src/: no cycles (type-only imports included, since a type cycle is the same
 * tangle to a reader), and the backend vocabulary (src/backend.ts) imports nothing, so it can stay
 * below every other module.
 *
 * Imports are read by TypeScript's own pre-processor (`ts.preProcessFile`), which sees multi-line,
 * type-only, side-effect and `export ... from` imports that a regular expression would miss.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import ts from 'typescript';

/** dist/test/module-graph.test.js → ../../src is the source tree. */
const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const VOCABULARY_MODULE = 'backend.ts';

/** Module (path relative to the root) → the modules under the root it imports, in source order. */
type ImportGraph = ReadonlyMap<string, readonly string[]>;

/** Every module specifier a file imports or re-exports from, as written. */
function importSpecifiers(sourceText: string): string[] {
  const info = ts.preProcessFile(sourceText, /* readImportFiles */ true, /* detectJavaScriptImports */ true);
  return info.importedFiles.map((file) => file.fileName);
}

/**
 * Builds the graph of `sources` (relative path → text). A relative specifier `./x.js` names
 * `x.ts` (NodeNext ESM); one that names no module under the root is reported in `unresolved`
 * unless it leaves the root (`../../build/release.js`), so a parse that lost an edge cannot pass.
 */
function importGraph(sources: ReadonlyMap<string, string>): { graph: ImportGraph; unresolved: string[] } {
  const graph = new Map<string, string[]>();
  const unresolved: string[] = [];
  for (const [file, text] of sources) {
    const edges: string[] = [];
    for (const specifier of importSpecifiers(text)) {
      if (!specifier.startsWith('.')) continue; // node: builtins and packages
      const target = join(dirname(file), specifier.replace(/\.js$/, '.ts'));
      if (target.startsWith('..')) continue;
      if (sources.has(target)) edges.push(target);
      else unresolved.push(`${file} imports ${specifier}`);
    }
    graph.set(file, edges);
  }
  return { graph, unresolved };
}

/**
 * Every import cycle, one per strongly connected component (Tarjan), each written as a path
 * that returns to its start: `a.ts → b.ts → a.ts`. A module importing itself is a cycle too.
 */
function importCycles(graph: ImportGraph): string[] {
  const index = new Map<string, number>();
  const lowLink = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];

  const visit = (module: string): void => {
    index.set(module, index.size);
    lowLink.set(module, index.get(module) as number);
    stack.push(module);
    onStack.add(module);
    for (const target of graph.get(module) ?? []) {
      if (!index.has(target)) {
        visit(target);
        lowLink.set(module, Math.min(lowLink.get(module) as number, lowLink.get(target) as number));
      } else if (onStack.has(target)) {
        lowLink.set(module, Math.min(lowLink.get(module) as number, index.get(target) as number));
      }
    }
    if (lowLink.get(module) === index.get(module)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        component.push(member);
      } while (member !== module);
      const importsItself = (graph.get(module) ?? []).includes(module);
      if (component.length > 1 || importsItself) components.push(component);
    }
  };
  // The tree is a few dozen modules deep at most, so recursion is safe here.
  for (const module of [...graph.keys()].sort()) if (!index.has(module)) visit(module);

  return components.map((component) => cyclePath(graph, new Set(component)).join(' → '));
}

/** A shortest path from the component's first module (by name) back to itself (breadth-first). */
function cyclePath(graph: ImportGraph, component: ReadonlySet<string>): string[] {
  const start = [...component].sort()[0];
  const cameFrom = new Map<string, string>();
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const module = queue[head];
    for (const target of graph.get(module) ?? []) {
      if (!component.has(target)) continue;
      if (target === start) return [start, ...pathFrom(cameFrom, start, module), start];
      if (!cameFrom.has(target)) {
        cameFrom.set(target, module);
        queue.push(target);
      }
    }
  }
  throw new Error(`bug: no cycle through ${start}`);
}

/** The modules after `start` on the breadth-first path to `end`, in order. */
function pathFrom(cameFrom: ReadonlyMap<string, string>, start: string, end: string): string[] {
  const path: string[] = [];
  for (let at = end; at !== start; at = cameFrom.get(at) as string) path.unshift(at);
  return path;
}

function sourceTree(root: string): Map<string, string> {
  const sources = new Map<string, string>();
  const walk = (directory: string): void => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) sources.set(relative(root, path), readFileSync(path, 'utf8'));
    }
  };
  walk(root);
  return sources;
}

describe('module graph: the cycle finder', () => {
  test('sees multi-line, type-only and export-from imports, and names the cycle', () => {
    const sources = new Map([
      ['a.ts', "import {\n  b,\n  type B,\n} from './b.js';\nexport const a = b;\n"],
      ['b.ts', "import type {\n  C,\n} from './dir/c.js';\nexport const b = 1;\nexport type B = C;\n"],
      ['dir/c.ts', "export { a as C } from '../a.js';\nimport 'node:fs';\n"],
      ['d.ts', "import { a } from './a.js';\nexport const d = a;\n"],
    ]);
    const { graph, unresolved } = importGraph(sources);
    assert.deepEqual(unresolved, []);
    assert.deepEqual(graph.get('b.ts'), ['dir/c.ts']);
    assert.deepEqual(importCycles(graph), ['a.ts → b.ts → dir/c.ts → a.ts']);
  });

  test('reports a module that imports itself and each tangle once', () => {
    const sources = new Map([
      ['self.ts', "import type { X } from './self.js';\nexport type X = 1;\n"],
      ['p.ts', "import './q.js';\n"],
      ['q.ts', "import './p.js';\nimport './r.js';\n"],
      ['r.ts', "import './q.js';\n"],
    ]);
    assert.deepEqual(importCycles(importGraph(sources).graph).sort(), ['p.ts → q.ts → p.ts', 'self.ts → self.ts']);
  });

  test('an import of a missing module is reported, not dropped', () => {
    const { unresolved } = importGraph(new Map([['a.ts', "import { gone } from './gone.js';\n"]]));
    assert.deepEqual(unresolved, ['a.ts imports ./gone.js']);
  });
});

describe('module graph: src/', () => {
  const sources = sourceTree(SRC);
  const { graph, unresolved } = importGraph(sources);

  test('the tree is read (every module is found and every relative import resolves)', () => {
    assert.ok(existsSync(resolve(SRC, VOCABULARY_MODULE)), `src/${VOCABULARY_MODULE} exists`);
    assert.ok(sources.size >= 40, `found ${sources.size} modules under ${SRC}`);
    assert.deepEqual(unresolved, []);
    // A multi-line import that must be seen (src/discovery/backend-entries.ts imports the vocabulary).
    assert.ok(graph.get(join('discovery', 'backend-entries.ts'))?.includes(VOCABULARY_MODULE));
  });

  test('has no import cycles, type-only imports included', () => {
    const cycles = importCycles(graph);
    assert.deepEqual(cycles, [], `import cycles in src/:\n  ${cycles.join('\n  ')}`);
  });

  test(`src/${VOCABULARY_MODULE} imports nothing, so it can never close a cycle`, () => {
    assert.deepEqual(importSpecifiers(sources.get(VOCABULARY_MODULE) as string), []);
  });
});
