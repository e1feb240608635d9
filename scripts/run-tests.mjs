#!/usr/bin/env node
// Runs the compiled test files (dist/test/*.test.js) with node:test, one file at a time.
//   --unit   only the tests that need no real server, socket or child process (`npm run test:unit`)
//   --list   print the selected files instead of running them
//
// A file is a unit test unless it, or a test helper it imports, imports one of NETWORK_MODULES.
// The rule follows the code, so a new test file is classified without editing a list: a test
// that opens a loopback server or spawns the CLI imports node:net, node:http or
// node:child_process itself or through test/helpers/. Modules of src/ are not followed: the
// config tests import code that could open sockets, but never run it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const testDir = join(root, 'dist', 'test');
const benchDir = join(root, 'dist', 'bench');
const NETWORK_MODULES = new Set(['node:net', 'node:http', 'node:https', 'node:dgram', 'node:child_process', 'node:worker_threads']);

/** True when `file` or a module under dist/test/ or dist/bench/ that it imports (transitively) imports a network module. */
function usesNetwork(file, seen = new Set()) {
  if (seen.has(file)) return false;
  seen.add(file);
  const source = readFileSync(file, 'utf8');
  // TypeScript's scanner, not a regex: an import written inside a string (a test's example source) is not an import.
  for (const { fileName: specifier } of ts.preProcessFile(source, true, true).importedFiles) {
    if (NETWORK_MODULES.has(specifier) || NETWORK_MODULES.has(`node:${specifier}`)) return true;
    if (!specifier.startsWith('.')) continue;
    const target = resolve(dirname(file), specifier);
    // Text that only looks like an import (a fixture inside a string, as in module-graph.test) names no file.
    // bench/ too: a test may run a benchmark scenario (soak.test runs bench/soak.js, which opens sockets).
    if (!(target.startsWith(testDir) || target.startsWith(benchDir)) || !existsSync(target)) continue;
    if (usesNetwork(target, seen)) return true;
  }
  return false;
}

export function testFiles({ unitOnly }) {
  const files = readdirSync(testDir).filter((name) => name.endsWith('.test.js')).sort().map((name) => join(testDir, name));
  return unitOnly ? files.filter((file) => !usesNetwork(file)) : files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = testFiles({ unitOnly: process.argv.includes('--unit') });
  if (process.argv.includes('--list')) {
    for (const file of files) console.log(relative(root, file));
  } else {
    const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { cwd: root, stdio: 'inherit' });
    process.exit(result.status ?? 1);
  }
}
