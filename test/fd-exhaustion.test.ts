/**
 * The pieces of src/proxy/fd-exhaustion.ts on their own: the growing pause, which errors mean
 * "out of descriptors", and the soft limit as a process sees it (a child under prlimit).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { AcceptBackoff, BACKOFF_RESET_MS, FIRST_PAUSE_MS, isOutOfFileDescriptors, MAX_PAUSE_MS } from '../src/proxy/fd-exhaustion.js';

test('the pause doubles from 50 ms to 2 s while exhaustion goes on, and starts over after a quiet stretch', () => {
  const backoff = new AcceptBackoff();
  const pauses: number[] = [];
  let now = 1000;
  for (let i = 0; i < 8; i++) {
    const pause = backoff.next(now);
    pauses.push(pause);
    now += pause + 1; // exhausted again right after each resume
  }
  assert.deepEqual(pauses, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
  assert.equal(pauses[0], FIRST_PAUSE_MS);
  assert.equal(Math.max(...pauses), MAX_PAUSE_MS);
  // Quiet for longer than BACKOFF_RESET_MS after the last pause ended: back to the first pause.
  assert.equal(backoff.next(now + BACKOFF_RESET_MS + MAX_PAUSE_MS + 1), FIRST_PAUSE_MS);
  // Within it: the growth goes on.
  assert.equal(backoff.next(now + BACKOFF_RESET_MS + MAX_PAUSE_MS + 2), 100);
});

test('EMFILE and ENFILE are ours; a peer refusing or resetting is not', () => {
  assert.equal(isOutOfFileDescriptors('EMFILE'), true);
  assert.equal(isOutOfFileDescriptors('ENFILE'), true);
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', undefined]) assert.equal(isOutOfFileDescriptors(code), false, String(code));
});

test('openFilesSoftLimit reads the limit a process runs under (prlimit; Node raises its soft limit to the hard one at start, so both are set)', { skip: process.platform !== 'linux' }, () => {
  const module = fileURLToPath(new URL('../src/proxy/fd-exhaustion.js', import.meta.url));
  const script = `import(${JSON.stringify(module)}).then((m) => console.log(m.openFilesSoftLimit()))`;
  const out = execFileSync('prlimit', ['--nofile=321:321', '--', process.execPath, '-e', script], { encoding: 'utf8' });
  assert.equal(out.trim(), '321');
});
