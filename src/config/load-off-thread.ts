/**
 * `loadConfigFile` on a worker thread, for reloads of a running process: reading, parsing and
 * validating a config is proportional to its size (a 3 MB file with 100,000 bad backends takes
 * seconds), and on the main thread that time would freeze every connection the process proxies.
 * The worker returns the config (plain data and byte arrays survive the structured clone), or the
 * first issues and their count; the main thread only receives it.
 *
 * One worker per load: reloads are rare and a worker starts in tens of milliseconds, so a pool of
 * warm workers would be memory held for nothing.
 */
import { Worker } from 'node:worker_threads';
import type { ConfigIssue, RinglbConfig } from './types.js';

/**
 * Issues a refused load carries back (all are counted): copying 200,000 issue objects back to the
 * main thread would itself be a stall, and a log line lists only the first ones anyway.
 */
export const MAX_RETURNED_ISSUES = 100;

export type OffThreadLoadResult =
  | { readonly ok: true; readonly config: RinglbConfig }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[]; readonly issueCount: number };

/** The worker's module: this file's compiled sibling (dist/src/config/load-worker.js). */
const WORKER_URL = new URL('./load-worker.js', import.meta.url);

export function loadConfigFileOffThread(path: string): Promise<OffThreadLoadResult> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: OffThreadLoadResult): void => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const refuse = (message: string): void => settle({ ok: false, issues: [{ path: '$', message }], issueCount: 1 });
    const worker = new Worker(WORKER_URL, { workerData: { path, maxIssues: MAX_RETURNED_ISSUES } });
    worker.once('message', (result: OffThreadLoadResult) => settle(result));
    // A crash of the loader (out of memory, a bug) refuses the reload like a bad file would.
    worker.once('error', (error: Error) => refuse(`config loader failed: ${error.message}`));
    worker.once('exit', (code) => refuse(`config loader exited with code ${code} before answering`));
  });
}
