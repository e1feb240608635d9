/**
 * How a moved share is written for people: `ringlb diff` (plan-report.ts) and the dashboard's
 * disruption preview print the same figure the same way, so an operator can compare them. Pure
 * (the dashboard loads it in the browser).
 */

/** 0..1 → `12.34%`; `0%` for none, `<0.01%` for a share that would print as 0.00%. */
export function formatPercent(share: number): string {
  const percent = share * 100;
  if (percent === 0) return '0%';
  if (percent < 0.01) return '<0.01%';
  return `${percent.toFixed(2)}%`;
}
