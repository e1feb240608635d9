/**
 * The soak (bench/soak.ts) as a CI test: SOAK_MINUTES minutes (CI: 2, .ci/run) of short connections,
 * long echo sessions and bulk transfers through the real CLI with `workers: "auto"`, while backends
 * are killed and restarted at random and the config is reloaded every 10 s. Passes when the soak
 * finds no problem: no failed connection but those on a backend killed under them, no long session
 * dropped by a reload, RSS and fds flat, no event-loop stall of ringlb's above 100 ms.
 * Only with SOAK_MINUTES set: two minutes in every `npm test` on both Nodes took a quarter of the
 * suite's time, so CI runs it once, after both suites (Node 24, worker threads).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSoakResult, runSoak } from '../bench/soak.js';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 0);

test(`soak: ${MINUTES > 0 ? `${MINUTES} min` : 'SOAK_MINUTES'} of mixed traffic, backend kills and reloads`, { timeout: (MINUTES * 60 + 180) * 1000 }, async (t) => {
  if (!(MINUTES > 0)) {
    t.skip('set SOAK_MINUTES (CI: 2) to run it; .ci/run runs it once after the suites');
    return;
  }
  const result = await runSoak({ minutes: MINUTES });
  const report = formatSoakResult(result);
  for (const line of report.split('\n')) t.diagnostic(line);
  assert.ok(result.connections.short > 100 && result.connections.bulk > 10 && result.connections.sessions >= 16, `too little traffic ran:\n${report}`);
  assert.ok(result.kills > 0 && result.reloads > 0, `no chaos happened:\n${report}`);
  assert.deepEqual(result.problems, [], report);
});
