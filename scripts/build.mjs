#!/usr/bin/env node
// Builds the WASM core (asc → build/) and the TypeScript (tsc → dist/) without ever leaving a
// half-built tree behind: everything is compiled into a temporary directory first and moved into
// place by rename, so an interrupted build (Ctrl-C during `npx ringlb`'s first call, a killed CI
// job) leaves the previous dist/ intact and the next build starts clean.
//
// `--if-stale` (used by `prepare`) skips the build when dist/ was built from exactly the current
// sources. This matters because npm runs `prepare` not only on `npm install` in a clone but also
// when `npx ringlb` runs inside the clone: npm exec links the project into its npx cache and runs
// the link target's `prepare` (npm 11, @npmcli/arborist rebuild: "links should run prepare
// scripts"). Without the check, the README's first CLI command rebuilt the whole package (~25 s).
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildDashboard } from './build-dashboard.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const STAMP = join(root, 'dist', '.build-stamp');
/** Everything the outputs are compiled from. A change to any of these makes the build stale. */
const INPUT_DIRS = ['assembly', 'src', 'test', 'bench', 'dashboard'];
const INPUT_FILES = ['tsconfig.json', 'asconfig.json', 'package-lock.json', 'scripts/build.mjs', 'scripts/build-dashboard.mjs'];
/** asc targets (asconfig.json); each writes <target>.wasm, .wat, .js and .d.ts into build/. */
const WASM_TARGETS = ['debug', 'release'];

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

/** sha256 over the path and content of every input, in a fixed order. */
function sourceHash() {
  const files = [...INPUT_DIRS.flatMap((dir) => listFiles(join(root, dir))), ...INPUT_FILES.map((file) => join(root, file))]
    .filter((file) => existsSync(file))
    .map((file) => relative(root, file))
    .sort();
  const hash = createHash('sha256');
  for (const file of files) hash.update(file).update('\0').update(readFileSync(join(root, file))).update('\0');
  return hash.digest('hex');
}

function isUpToDate(hash) {
  if (!existsSync(STAMP)) return false;
  if (readFileSync(STAMP, 'utf8').trim() !== hash) return false;
  return WASM_TARGETS.every((target) => existsSync(join(root, 'build', `${target}.wasm`)));
}

function run(script, args) {
  const result = spawnSync(process.execPath, [script, ...args], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`${relative(root, script)} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
}

/** Removes temporary directories left by builds that were interrupted (their process is gone). */
function removeAbandonedTemps() {
  for (const name of readdirSync(root)) {
    const match = /^\.build-tmp-(\d+)(?:-wasm|-dashboard)?$/.exec(name);
    if (!match) continue;
    let alive = false;
    try { process.kill(Number(match[1]), 0); alive = true; } catch { alive = false; }
    if (!alive || Number(match[1]) === process.pid) rmSync(join(root, name), { recursive: true, force: true });
  }
}

function build(hash) {
  removeAbandonedTemps();
  // Both temporaries sit beside dist/ and build/, at the same depth, so the relative paths tsc
  // writes into source maps (`../../test/x.ts`) stay right after the rename.
  const tempDist = join(root, `.build-tmp-${process.pid}`);
  const tempWasm = join(root, `.build-tmp-${process.pid}-wasm`);
  mkdirSync(tempWasm, { recursive: true });
  try {
    const asc = join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
    for (const target of WASM_TARGETS) {
      run(asc, ['assembly/index.ts', '--target', target,
        '--outFile', join(tempWasm, `${target}.wasm`), '--textFile', join(tempWasm, `${target}.wat`)]);
    }
    // One rename per file: a reader sees the old file or the new one, never a truncated one.
    mkdirSync(join(root, 'build'), { recursive: true });
    for (const file of readdirSync(tempWasm)) renameSync(join(tempWasm, file), join(root, 'build', file));

    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    run(tsc, ['-p', 'tsconfig.json', '--outDir', tempDist]);
    chmodSync(join(tempDist, 'src', 'cli.js'), 0o755);
    buildDashboard(root, tempDist, (tempOut) => run(tsc, ['-p', 'dashboard/tsconfig.json', '--outDir', tempOut]));
    writeFileSync(join(tempDist, '.build-stamp'), `${hash}\n`);

    // Swap: the old dist/ moves aside in one rename and the new one takes its place in another.
    // Between the two renames (microseconds) dist/ is absent; it is never half-written.
    const distPath = join(root, 'dist');
    const oldDist = join(tempWasm, 'old-dist');
    if (existsSync(distPath)) renameSync(distPath, oldDist);
    renameSync(tempDist, distPath);
  } finally {
    rmSync(tempDist, { recursive: true, force: true });
    rmSync(tempWasm, { recursive: true, force: true });
  }
}

const ifStale = process.argv.includes('--if-stale');
const hash = sourceHash();
if (ifStale && isUpToDate(hash)) {
  process.stderr.write('ringlb: dist/ and build/ are up to date with the sources; nothing to build\n');
} else {
  const started = Date.now();
  build(hash);
  process.stderr.write(`ringlb: built build/ and dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
