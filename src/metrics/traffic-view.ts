/**
 * Process-wide traffic totals per backend and per listener, as the admin surface reads them
 * (`/metrics`, `/v1/status`, the dashboard). The counters behind them are written by whichever
 * thread holds the connection (shared memory with workers) and summed at read time: reading never
 * messages a worker.
 */
import type { ConnectFailureReason } from '../backend.js';

/** Prometheus-style histogram: `counts[i]` is cumulative (observations ≤ `bounds[i]`); the last is +Inf. */
export interface HistogramTotals {
  /** Upper bounds in seconds, ascending, without +Inf. */
  readonly bounds: readonly number[];
  /** bounds.length + 1 cumulative counts (the last is the +Inf bucket = count). */
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

export interface BackendTrafficTotals {
  /** Connections established to it, ever (while it kept its id in the pool). */
  readonly connections: number;
  readonly active: number;
  readonly connectFailures: Readonly<Record<ConnectFailureReason, number>>;
  /** Established connections the backend reset. */
  readonly resets: number;
  /** Established connections the backend left unanswered past responseTimeoutMs. */
  readonly responseTimeouts: number;
  /** Connections that waited in its queue (maxConnections reached). */
  readonly queued: number;
  /** Counted while connections run (at least every 10 s), not only at close. */
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  readonly connectSeconds: HistogramTotals;
}

export interface ListenerTrafficTotals {
  readonly active: number;
  /** Per access-log outcome (`ok`, `no_backend`, `connect_failed`, …): connections that ended so. */
  readonly connections: Readonly<Record<string, number>>;
}

export interface TrafficView {
  backend(pool: string, backendId: string): BackendTrafficTotals | undefined;
  listener(name: string): ListenerTrafficTotals | undefined;
}

/** Estimate of quantile q (0..1) from a cumulative histogram (linear within a bucket); null when empty. */
export function histogramQuantile(histogram: HistogramTotals, q: number): number | null {
  if (histogram.count === 0) return null;
  const rank = q * histogram.count;
  let lowerBound = 0;
  let below = 0;
  for (let i = 0; i < histogram.bounds.length; i++) {
    const cumulative = histogram.counts[i] ?? 0;
    const upperBound = histogram.bounds[i] ?? lowerBound;
    if (cumulative >= rank) {
      const inBucket = cumulative - below;
      return inBucket === 0 ? upperBound : lowerBound + ((upperBound - lowerBound) * (rank - below)) / inBucket;
    }
    lowerBound = upperBound;
    below = cumulative;
  }
  // Past the largest finite bound: the best estimate is that bound (Prometheus does the same).
  return histogram.bounds[histogram.bounds.length - 1] ?? null;
}
