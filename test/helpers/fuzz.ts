/**
 * How much each fuzz target runs. The normal suite runs every target a few seconds (the defaults
 * below); `npm run fuzz` (scripts/fuzz.mjs) sets FUZZ_RUNS and FUZZ_SECONDS to run them longer.
 *
 *   FUZZ_RUNS      cases per property (a target may scale it: see `runs`)
 *   FUZZ_SECONDS   time budget per property; fast-check stops generating when it runs out and the
 *                  cases run so far count (an interrupt is not a failure)
 *
 * Each property reports the number of cases it ran as a test diagnostic (`# <n> cases, 0
 * failures`), which is what `npm run fuzz` sums up.
 */
import fc from 'fast-check';
import type { TestContext } from 'node:test';

/** Cases per property: FUZZ_RUNS, or `ciDefault` in the normal suite. */
export function runs(ciDefault: number): number {
  const fromEnv = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : ciDefault;
}

/** Time budget per property in ms: FUZZ_SECONDS, or `ciDefaultMs` in the normal suite. */
export function budgetMs(ciDefaultMs: number): number {
  const fromEnv = Number(process.env.FUZZ_SECONDS);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv * 1000 : ciDefaultMs;
}

/**
 * Runs `property` for `numRuns` cases or `timeMs`, whichever ends first; fails the test with
 * fast-check's report (seed, path and the shrunk counterexample) on the first failing case, and
 * otherwise records how many cases ran.
 */
export async function fuzz<Ts>(
  t: TestContext,
  property: fc.IProperty<Ts> | fc.IAsyncProperty<Ts>,
  options: { numRuns: number; timeMs: number; examples?: Ts[] },
): Promise<number> {
  const details = await fc.check(property as fc.IAsyncProperty<Ts>, {
    numRuns: options.numRuns,
    interruptAfterTimeLimit: options.timeMs,
    markInterruptAsFailure: false,
    includeErrorInReport: true,
    examples: options.examples ?? [],
  });
  if (details.failed) {
    // The counterexample can be megabytes (a huge request body): keep the report readable.
    const report = fc.defaultReportMessage(details) ?? 'property failed';
    throw new Error(report.length > 6000 ? `${report.slice(0, 3000)}\n…\n${report.slice(-3000)}` : report);
  }
  t.diagnostic(`${details.numRuns} cases, 0 failures`);
  return details.numRuns;
}
