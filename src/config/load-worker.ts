/** Worker thread entry of load-off-thread.ts: loads one config file and posts the result. */
import { parentPort, workerData } from 'node:worker_threads';
import type { OffThreadLoadResult } from './load-off-thread.js';
import { loadConfigFile } from './load.js';

const { path, maxIssues } = workerData as { path: string; maxIssues: number };
const result = loadConfigFile(path);
const answer: OffThreadLoadResult = result.ok
  ? result
  : { ok: false, issues: result.issues.slice(0, maxIssues), issueCount: result.issues.length };
parentPort!.postMessage(answer);
