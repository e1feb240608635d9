#!/usr/bin/env node
// `npm run fuzz`: every fuzz target, longer than the normal suite runs them.
//   FUZZ_RUNS     cases per property (default 100000; the suite runs a few hundred to 2000)
//   FUZZ_SECONDS  time budget per property (default 120)
// Prints each target's cases and failures, and the totals; exits 1 when any target failed.
// Run `npm run build` first (the targets are the compiled tests in dist/test/).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const TARGETS = ['proxy-protocol', 'fuzz-config', 'fuzz-admin'];
const env = { ...process.env, FUZZ_RUNS: process.env.FUZZ_RUNS ?? '100000', FUZZ_SECONDS: process.env.FUZZ_SECONDS ?? '120' };
console.log(`fuzz: FUZZ_RUNS=${env.FUZZ_RUNS} FUZZ_SECONDS=${env.FUZZ_SECONDS}`);

let totalCases = 0;
let failed = 0;
for (const target of TARGETS) {
  const file = join(root, 'dist', 'test', `${target}.test.js`);
  const started = Date.now();
  const run = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { cwd: root, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const output = `${run.stdout}${run.stderr}`;
  const cases = [...output.matchAll(/# (\d+) cases, 0 failures/g)].reduce((sum, match) => sum + Number(match[1]), 0);
  const failures = Number(/^# fail (\d+)/m.exec(output)?.[1] ?? (run.status === 0 ? 0 : 1));
  totalCases += cases;
  if (run.status !== 0 || failures > 0) {
    failed += 1;
    process.stdout.write(output.slice(-20_000));
  }
  console.log(`${target}: ${cases} cases, ${failures} failed tests, ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
console.log(`total: ${totalCases} cases, ${failed === 0 ? '0 crashes' : `${failed} targets FAILED`}`);
process.exit(failed === 0 ? 0 : 1);
