/** Worker thread entry of load-off-thread.ts: loads one config file and posts the result. */
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { OffThreadLoadResult } from './load-off-thread.js';
import { loadConfigFile } from './load.js';

/** How much lower than the main thread the loader runs (nice is -20..19; higher is nicer). */
const LOADER_NICE_INCREMENT = 10;

const { path, maxIssues } = workerData as { path: string; maxIssues: number };
// Validation is background work: on Linux a thread's nice value is its own (pid 0 = this thread),
// so this thread yields the CPU to the main thread, which also moves every proxied byte.
try {
  setPriority(LOADER_NICE_INCREMENT + getPriority());
} catch {
  // Not permitted or not supported: the load still runs, at the main thread's priority.
}
const result = loadConfigFile(path);
const answer: OffThreadLoadResult = result.ok
  ? result
  : { ok: false, issues: result.issues.slice(0, maxIssues), issueCount: result.issues.length };
parentPort!.postMessage(answer);
