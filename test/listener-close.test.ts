/**
 * A listener that stops (removed by a reload, SIGTERM) loses none of the connections waiting in its
 * accept queue: Linux resets every connection still queued on a listening socket when it closes
 * (src/proxy/accept-queue.ts). The connections are made by a child process while this test's event
 * loop is blocked, so they are in the kernel's queue, unaccepted, at the moment the listener is told
 * to stop: closing at once would reset every one of them.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import { Ringlb } from '../src/runtime.js';
import { acceptQueuedOnPort, HAS_PROC_NET_TCP, runQueuedClients } from './helpers/accept-queue.js';
import { startNamedBackend } from './helpers/backends.js';
import { LogCapture } from './helpers/log-capture.js';

const QUEUED = 20;

/** Blocks this thread (no accept can run) until `port`'s accept queue holds `count`, at most 10 s. */
function blockUntilQueued(port: number, count: number): number {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const giveUpAt = performance.now() + 10_000;
  let queued = acceptQueuedOnPort(port);
  while (queued < count && performance.now() < giveUpAt) {
    Atomics.wait(pause, 0, 0, 5);
    queued = acceptQueuedOnPort(port);
  }
  return queued;
}

async function startRinglb(t: TestContext): Promise<{ ringlb: Ringlb; port: number }> {
  const backend = await startNamedBackend('a');
  t.after(() => backend.close());
  const result = validateConfig({
    workers: 1,
    listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
    pools: [{ name: 'web', backends: [{ address: `127.0.0.1:${backend.port}` }] }],
  });
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  const ringlb = new Ringlb({ logger: new LogCapture().logger() });
  await ringlb.start(result.config);
  t.after(() => ringlb.close());
  const address = ringlb.listenerAddress('web')!;
  return { ringlb, port: Number(address.slice(address.lastIndexOf(':') + 1)) };
}

test('a listener told to stop serves every connection already in its accept queue, then refuses', async (t) => {
  if (!HAS_PROC_NET_TCP) {
    t.skip('needs /proc/net/tcp (Linux)');
    return;
  }
  const { ringlb, port } = await startRinglb(t);
  const clients = runQueuedClients(t, port, QUEUED);
  assert.equal(blockUntilQueued(port, QUEUED), QUEUED, 'the child connected while this loop was blocked');
  // Same turn: nothing accepted them yet. Closing the socket now would reset all of them.
  await ringlb.stopListening();
  assert.deepEqual(await clients, { served: QUEUED });
  assert.deepEqual(await runQueuedClients(t, port, 1), { ECONNREFUSED: 1 }, 'once closed, the port refuses');
});
