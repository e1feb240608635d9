/**
 * What the worker-thread suites share: a test that needs several data-plane threads (skipped, with
 * the reason, on a Node without reusePort), and backends that close after the test.
 */
import { test, type TestContext } from 'node:test';
import { supportsReusePort } from '../../src/config/workers.js';
import { startNamedBackend, type NamedBackend } from './backends.js';

/** This Node can run more than one data-plane thread. */
export const MULTI_WORKER = supportsReusePort();

export const NO_REUSE_PORT = `Node ${process.versions.node} has no reusePort: ringlb runs one data-plane thread here`;

/** A test that needs N > 1 workers: skipped, with the reason, where this Node cannot run them. */
export function workersTest(name: string, fn: (t: TestContext) => Promise<void>, options: { timeout?: number } = {}): void {
  test(name, options, async (t) => {
    if (!MULTI_WORKER) {
      t.skip(NO_REUSE_PORT);
      return;
    }
    await fn(t);
  });
}

/** Named echo backends (`startNamedBackend`), closed after the test. */
export async function startBackends(t: TestContext, names: readonly string[]): Promise<NamedBackend[]> {
  const backends = await Promise.all(names.map((name) => startNamedBackend(name)));
  t.after(() => Promise.all(backends.map((backend) => backend.close())));
  return backends;
}
