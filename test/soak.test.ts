/**
 * The soak (bench/soak.ts) as a CI test: 2 minutes (SOAK_MINUTES to change) of short connections,
 * long echo sessions and bulk transfers through the real CLI with `workers: "auto"`, while backends
 * are killed and restarted at random and the config is reloaded every 10 s. Passes when the soak
 * finds no problem: no failed connection but those on a backend killed under them, no long session
 * dropped by a reload, RSS and fds flat, no event-loop stall of ringlb's above 100 ms.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSoakResult, runSoak } from '../bench/soak.js';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 2);

test(`soak: ${MINUTES} min of mixed traffic, backend kills and reloads`, { timeout: (MINUTES * 60 + 180) * 1000 }, async (t) => {
  const result = await runSoak({ minutes: MINUTES });
  const report = formatSoakResult(result);
  for (const line of report.split('\n')) t.diagnostic(line);
  assert.ok(result.connections.short > 100 && result.connections.bulk > 10 && result.connections.sessions >= 16, `too little traffic ran:\n${report}`);
  assert.ok(result.kills > 0 && result.reloads > 0, `no chaos happened:\n${report}`);
  assert.deepEqual(result.problems, [], report);
});
