/**
 * The `workers` setting through the real CLI, as child processes: `ringlb check` prints the one
 * warning when this Node cannot run the workers asked for (no reusePort before Node 22.12) and
 * still exits 0; on a Node that can, it prints nothing. The check runs on the Node running this
 * test and, when the environment names one in NODE24 (a Node 24 binary, as .ci/run fetches), on
 * that one too. `ringlb diff` says a changed `workers` applies after a restart.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { supportsReusePort } from '../src/config/workers.js';
import { CLI_PATH, TempDir } from './helpers/ringlb-process.js';

const NODE24 = process.env.NODE24;

const temp = new TempDir();
after(() => temp.remove());

interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `<node> dist/src/cli.js <args>`; resolves once it exited and its output ended. */
function runCliOn(node: string, args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    execFile(node, [CLI_PATH, ...args], { timeout: 20_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error !== null && typeof error.code !== 'number') {
        reject(new Error(`${node} ${args.join(' ')} did not run to its end: ${error.message}\nstderr: ${stderr}`));
        return;
      }
      resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
    });
  });
}

function configFile(workers: number | 'auto'): string {
  return temp.writeJson({
    listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
    pools: [{ name: 'web', backends: [{ address: '127.0.0.1:9001' }] }],
    workers,
  });
}

const OK_LINE = /: ok \(1 listener\(s\), 1 pool\(s\), 1 backend\(s\)\)\n$/;

describe('ringlb check: workers', () => {
  test(`on this Node (${process.versions.node}), workers 4: the warning exactly when reusePort is missing, exit 0`, async () => {
    const file = configFile(4);
    const run = await runCliOn(process.execPath, ['check', '--config', file]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, OK_LINE);
    const expected = supportsReusePort(process.versions.node)
      ? ''
      : `${file}: warning: workers: 4 needs Node ≥ 22.12 for reusePort; Node ${process.versions.node} runs 1 worker (Node 24 LTS recommended)\n`;
    assert.equal(run.stderr, expected);
  });

  test('workers 1: no warning on any Node', async () => {
    const run = await runCliOn(process.execPath, ['check', '--config', configFile(1)]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, OK_LINE);
    assert.equal(run.stderr, '');
  });

  test('on the Node 24 binary named by NODE24, workers 4: no warning, exit 0', { skip: NODE24 === undefined ? 'NODE24 is not set' : false }, async () => {
    const nodeVersion = await new Promise<string>((resolve, reject) => {
      execFile(NODE24!, ['-p', 'process.versions.node'], { timeout: 20_000, encoding: 'utf8' }, (error, stdout) => (error === null ? resolve(stdout.trim()) : reject(error)));
    });
    assert.ok(supportsReusePort(nodeVersion), `NODE24 (${NODE24}) is Node ${nodeVersion}, which has no reusePort: point it at Node 24`);
    const run = await runCliOn(NODE24!, ['check', '--config', configFile(4)]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, OK_LINE);
    assert.equal(run.stderr, '');
  });
});

describe('ringlb diff: workers', () => {
  test('a changed workers is listed as applying after a restart, exit 0', async () => {
    const run = await runCliOn(process.execPath, ['diff', configFile('auto'), configFile(2)]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^config: workers: "auto" → 2 \(applies after a restart; a reload keeps the running value\)$/m);
  });
});
