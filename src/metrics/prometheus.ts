/**
 * `GET /metrics`: the Prometheus text exposition (0.0.4) of ringlb, rendered by prom-client from
 * the live counters at scrape time. Nothing here counts: every family is a collector that reads
 * the facts where their one writer keeps them (docs/metrics.md lists each with its writer):
 *
 * - traffic: `RuntimeTraffic` (shared counters summed over threads, runtime-traffic.ts);
 * - backend up/state/weight, panic: the pool and its health owner, read now;
 * - check failures, ejections, table rebuilds: the pool's `PoolCounters`;
 * - reloads: the runtime; event-loop delay per thread: `LoopDelayCells`;
 * - process CPU, memory, fds: prom-client's default metrics, once per process.
 *
 * Families use prom-client's registry and text format; values come from a `get()` of our own
 * (prom-client's Counter/Histogram only count what they are told, and ours are already counted,
 * histograms included).
 */
import client, { Registry, type Metric } from 'prom-client';
import { BACKEND_STATES, type Backend, type BackendState } from '../backend.js';
import type { RouteTable } from '../admin/router.js';
import { textResponse } from '../admin/router.js';
import type { ReceiverStats } from '../events/webhooks.js';
import type { BackendPool } from '../proxy/backend-pool.js';
import { SlotCell } from '../shared-state/traffic-counters.js';
import type { LoopDelayCells } from '../shared-state/loop-delay.js';
import { reportedBackends, type RuntimeTraffic } from './runtime-traffic.js';

export interface MetricsSource {
  readonly traffic: RuntimeTraffic;
  /** Config reloads so far, by result. */
  reloads(): { readonly applied: number; readonly refused: number };
  /** Row 0 is the main thread, 1 + i worker i. */
  readonly loopDelay: LoopDelayCells;
  /** Data-plane worker threads (0 when the main thread carries the connections). */
  workerCount(): number;
  /** Alert webhook receivers configured now, with their delivery counts. */
  alerts(): readonly ReceiverStats[];
  /** The admin server's connection cap at work (src/admin/connection-guard.ts); null while it is not running. */
  adminConnections?(): { readonly evicted: number; readonly refused: number } | null;
}

type Labels = Record<string, string>;
interface Sample {
  readonly labels: Labels;
  readonly value: number;
  /** `<family>_bucket`, `_sum`, `_count` for histograms; the family name otherwise. */
  readonly metricName?: string;
}

/** What one scrape reads once and every family shares. */
interface Scrape {
  readonly pools: readonly { readonly pool: BackendPool; readonly backends: ReturnType<typeof reportedBackends> }[];
}

type MetricType = 'counter' | 'gauge' | 'histogram';

/** A family whose samples are read at scrape time; prom-client renders it like its own. */
function family(name: string, help: string, type: MetricType, collect: (scrape: Scrape) => Sample[], scrapeOf: () => Scrape): Metric {
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    get: () => ({ name, help, type, aggregator: 'sum', values: collect(scrapeOf()) }),
    reset: () => undefined,
  } as unknown as Metric;
}

/**
 * prom-client's process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `process_open_fds`, `nodejs_*`): one registry per process, since they describe the process
 * and each collection starts observers of its own.
 */
let processRegistry: Registry | null = null;
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    client.collectDefaultMetrics({ register: processRegistry });
    // Gauges named `_total`, which `promtool check metrics` rejects (counters only); the same
    // counts are in nodejs_active_handles / _requests / _resources (prom-client keeps both).
    for (const name of LINT_FAILING_DEFAULTS) processRegistry.removeSingleMetric(name);
  }
  return processRegistry;
}

export class PrometheusExporter {
  readonly #registry = new Registry();
  readonly #source: MetricsSource;
  /**
   * What the last render read: every family of one render reads the same pools and backend lists.
   * prom-client's `metrics()` calls every family's `get()` before its first await, so a render
   * that starts meanwhile cannot swap it under another half way.
   */
  #scrape: Scrape | null = null;

  constructor(source: MetricsSource) {
    this.#source = source;
    processMetrics();
    this.#define();
  }

  get contentType(): string {
    return Registry.PROMETHEUS_CONTENT_TYPE;
  }

  /** The whole exposition, read now. */
  async render(): Promise<string> {
    const traffic = this.#source.traffic;
    this.#scrape = { pools: traffic.pools().map((pool) => ({ pool, backends: reportedBackends(pool) })) };
    return (await this.#registry.metrics()) + (await processMetrics().metrics());
  }

  #define(): void {
    const scrape = (): Scrape => this.#scrape ?? { pools: [] };
    const add = (name: string, help: string, type: MetricType, collect: (scrape: Scrape) => Sample[]): void => {
      this.#registry.registerMetric(family(name, help, type, collect, scrape));
    };
    const perBackend = (read: (pool: BackendPool, slot: number, id: string, member: Backend | null) => number | null) => (s: Scrape): Sample[] => {
      const samples: Sample[] = [];
      for (const { pool, backends } of s.pools) {
        for (const backend of backends) {
          const value = read(pool, backend.slot, backend.id, backend.member);
          if (value !== null) samples.push({ labels: { pool: pool.name, backend: backend.id }, value });
        }
      }
      return samples;
    };
    const perPool = (read: (pool: BackendPool) => number | null) => (s: Scrape): Sample[] =>
      s.pools.flatMap(({ pool }) => {
        const value = read(pool);
        return value === null ? [] : [{ labels: { pool: pool.name }, value }];
      });

    add('ringlb_listener_connections_total', 'Connections that ended, by access-log outcome.', 'counter', () =>
      this.#source.traffic.listeners().flatMap(({ name, totals }) =>
        Object.entries(totals.connections).map(([outcome, value]) => ({ labels: { listener: name, outcome }, value })),
      ),
    );
    add('ringlb_listener_accept_pauses_total', 'Times a thread stopped accepting on the listener for lack of file descriptors (a pause of 50 ms to 2 s).', 'counter', () =>
      this.#source.traffic.listenerAcceptPauses().map(({ name, pauses }) => ({ labels: { listener: name }, value: pauses })),
    );
    add('ringlb_listener_active_connections', 'Connections open now.', 'gauge', () =>
      this.#source.traffic.listeners().map(({ name, totals }) => ({ labels: { listener: name }, value: totals.active })),
    );
    add('ringlb_backend_connections_total', 'Connections established to the backend.', 'counter', perBackend((pool, slot) => pool.counters.count(slot, SlotCell.CONNECTIONS)));
    add('ringlb_backend_active_connections', 'Connections holding the backend now (connecting or established).', 'gauge', perBackend((pool, slot) => pool.activeConnections(slot)));
    add('ringlb_backend_connect_failures_total', 'Failed connect attempts, by reason (timeout, refused, error).', 'counter', (s) => {
      const samples: Sample[] = [];
      for (const { pool, backends } of s.pools) {
        for (const backend of backends) {
          for (const reason of ['timeout', 'refused', 'error'] as const) {
            samples.push({ labels: { pool: pool.name, backend: backend.id, reason }, value: pool.counters.connectFailures(backend.slot, reason) });
          }
        }
      }
      return samples;
    });
    add('ringlb_backend_resets_total', 'Established connections the backend reset (counted by outlier detection).', 'counter', perBackend((pool, slot) => pool.counters.count(slot, SlotCell.RESETS)));
    add(
      'ringlb_backend_response_timeouts_total',
      'Connections closed because the backend sent nothing within the pool responseTimeoutMs after the client sent bytes (counted by outlier detection).',
      'counter',
      perBackend((pool, slot) => pool.counters.count(slot, SlotCell.RESPONSE_TIMEOUTS)),
    );
    add('ringlb_backend_queue_depth', 'Connections waiting now for a place on the backend (maxConnectionsPerBackend reached), in every thread.', 'gauge', perBackend((pool, slot) => pool.queueDepth(slot)));
    add('ringlb_backend_queued_total', 'Connections that waited in the backend queue (backend at its maxConnections).', 'counter', perBackend((pool, slot) => pool.counters.count(slot, SlotCell.QUEUED)));
    add('ringlb_backend_bytes_total', 'Bytes forwarded, by direction (to_backend, to_client); open connections count at least every few seconds.', 'counter', (s) => {
      const samples: Sample[] = [];
      for (const { pool, backends } of s.pools) {
        for (const backend of backends) {
          const labels = { pool: pool.name, backend: backend.id };
          samples.push({ labels: { ...labels, direction: 'to_backend' }, value: pool.counters.count(backend.slot, SlotCell.BYTES_TO_BACKEND) });
          samples.push({ labels: { ...labels, direction: 'to_client' }, value: pool.counters.count(backend.slot, SlotCell.BYTES_TO_CLIENT) });
        }
      }
      return samples;
    });
    add('ringlb_backend_connect_seconds', 'Time to establish a connection to the backend.', 'histogram', (s) => {
      const samples: Sample[] = [];
      for (const { pool, backends } of s.pools) {
        for (const backend of backends) {
          const labels = { pool: pool.name, backend: backend.id };
          const histogram = pool.counters.connectSeconds(backend.slot);
          histogram.bounds.forEach((bound, index) => {
            samples.push({ metricName: 'ringlb_backend_connect_seconds_bucket', labels: { ...labels, le: String(bound) }, value: histogram.counts[index]! });
          });
          samples.push({ metricName: 'ringlb_backend_connect_seconds_bucket', labels: { ...labels, le: '+Inf' }, value: histogram.count });
          samples.push({ metricName: 'ringlb_backend_connect_seconds_sum', labels, value: histogram.sum });
          samples.push({ metricName: 'ringlb_backend_connect_seconds_count', labels, value: histogram.count });
        }
      }
      return samples;
    });
    add('ringlb_backend_up', '1 when new connections may go to the backend (healthy, or routed to by panic), else 0.', 'gauge', perBackend((pool, slot, _id, member) => (member !== null && pool.isRoutable(slot) ? 1 : 0)));
    add('ringlb_backend_state', 'Administrative state in force: 1 for the current one of active, drain, maint.', 'gauge', (s) => {
      const samples: Sample[] = [];
      for (const { pool, backends } of s.pools) {
        for (const backend of backends) {
          if (backend.member === null) continue;
          const current = stateOf(pool, backend.id);
          for (const state of BACKEND_STATES) samples.push({ labels: { pool: pool.name, backend: backend.id, state }, value: state === current ? 1 : 0 });
        }
      }
      return samples;
    });
    add('ringlb_backend_weight', 'Weight in the pool (before slow start scales it).', 'gauge', perBackend((_pool, _slot, _id, member) => member?.weight ?? null));
    add('ringlb_backend_health_check_failures_total', 'Active health checks that failed.', 'counter', perBackend((pool, slot) => pool.counters.checkFailuresOf(slot)));
    add('ringlb_backend_ejections_total', 'Times outlier detection ejected the backend.', 'counter', perBackend((pool, slot) => pool.counters.ejectionsOf(slot)));
    add('ringlb_pool_panic', '1 while the pool is in panic mode (routes to unhealthy backends too).', 'gauge', perPool((pool) => (pool.health.panic ? 1 : 0)));
    add('ringlb_pool_retries_total', 'Connect attempts after a failed one (another backend tried).', 'counter', perPool((pool) => pool.counters.retries()));
    add('ringlb_pool_table_rebuilds_total', 'Table changes after the first build (membership or weight changes, reload rebuilds).', 'counter', perPool((pool) => pool.counters.rebuilds()));
    add('ringlb_pool_last_moved_ratio', 'Share (0..1) of keys (hash policies) or weight (others) the last table change moved; 0 before any.', 'gauge', perPool((pool) => pool.lastRebuild?.movedShare ?? 0));
    add('ringlb_config_reloads_total', 'Config reloads, by result (applied, refused).', 'counter', () => {
      const reloads = this.#source.reloads();
      return [
        { labels: { result: 'applied' }, value: reloads.applied },
        { labels: { result: 'refused' }, value: reloads.refused },
      ];
    });
    add('ringlb_admin_connections_closed_total', 'Admin connections closed by the connection cap: evicted (held no complete request) or refused (every open one was busy).', 'counter', () => {
      const counts = this.#source.adminConnections?.() ?? null;
      if (counts === null) return [];
      return [
        { labels: { reason: 'evicted' }, value: counts.evicted },
        { labels: { reason: 'refused' }, value: counts.refused },
      ];
    });
    const perReceiver = (read: (stats: ReceiverStats) => number) => (): Sample[] =>
      this.#source.alerts().map((stats) => ({ labels: { receiver: stats.receiver }, value: read(stats) }));
    add('ringlb_alerts_delivered_total', 'Events an alert webhook receiver accepted (2xx).', 'counter', perReceiver((stats) => stats.delivered));
    add('ringlb_alerts_failed_total', 'Events given up on: refused by the receiver (4xx other than 429) or still failing after the last retry.', 'counter', perReceiver((stats) => stats.failed));
    add('ringlb_alerts_dropped_total', 'Events dropped from a full queue, or still queued when the receiver was removed or ringlb stopped.', 'counter', perReceiver((stats) => stats.dropped));
    add('ringlb_alerts_retries_total', 'Deliveries that failed and were retried.', 'counter', perReceiver((stats) => stats.retries));
    add('ringlb_alerts_queued', 'Events waiting for the receiver now, the one in flight included.', 'gauge', perReceiver((stats) => stats.queued));
    const loopDelay = (name: string, help: string, read: (window: { p50Seconds: number; p99Seconds: number; maxSeconds: number }) => number): void =>
      add(name, help, 'gauge', () => {
        const samples: Sample[] = [];
        const threads = 1 + this.#source.workerCount();
        for (let row = 0; row < threads; row++) {
          const window = this.#source.loopDelay.read(row);
          if (window !== null) samples.push({ labels: { thread: row === 0 ? 'main' : `worker-${row - 1}` }, value: read(window) });
        }
        return samples;
      });
    loopDelay('ringlb_event_loop_delay_p50_seconds', 'Median event-loop delay of the thread over the last window (5 s).', (w) => w.p50Seconds);
    loopDelay('ringlb_event_loop_delay_p99_seconds', '99th percentile event-loop delay of the thread over the last window (5 s).', (w) => w.p99Seconds);
    loopDelay('ringlb_event_loop_delay_max_seconds', 'Longest event-loop delay of the thread over the last window (5 s).', (w) => w.maxSeconds);
  }
}

/** The administrative state in force (an admin override included): the health owner's admin flags. */
function stateOf(pool: BackendPool, id: string): BackendState {
  const flags = pool.health.backendStatus(id)?.flags ?? [];
  if (flags.includes('maint')) return 'maint';
  if (flags.includes('drain')) return 'drain';
  return 'active';
}

/** `GET /metrics` on the admin server (auth as every admin route). */
export function installMetricsRoute(routes: RouteTable, exporter: PrometheusExporter): void {
  routes.route('GET', '/metrics', async () => textResponse(200, exporter.contentType, await exporter.render()));
}
