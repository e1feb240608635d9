import type { AdminLimits } from '../admin/limits.js';
import type { Backend, HostPort } from '../backend.js';
import type { DiscoveryOptions } from '../discovery/index.js';
import type { BalancePolicy } from '../core/types.js';
import type { RinglbEventType } from '../events/types.js';

export type HashKey = 'source_ip' | 'source_ip_port';

export interface ListenerConfig {
  readonly name: string;
  readonly bind: HostPort;
  readonly pool: string;
  /** Default 10000. */
  readonly maxConnections: number;
  /** Default 3600000 (1 h, as Envoy tcp_proxy); 0 disables. */
  readonly idleTimeoutMs: number;
  /**
   * After the client's FIN the connection may stay silent at most this long (HAProxy `timeout client-fin`: inactivity, not a deadline).
   * The loader always sets it (default 30000); absent in a hand-built config: off.
   */
  readonly clientFinTimeoutMs?: number;
  /** Connections begin with a PROXY protocol header from a trusted source; absent = none expected. */
  readonly proxyProtocol?: ProxyProtocolAcceptConfig;
  /** CIDRs that may connect (absent = everyone); `deny` wins. */
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
  /** Open connections per client address, process-wide; absent = no cap. */
  readonly maxConnectionsPerSource?: number;
  /** New connections per second per client address (GCRA token bucket), process-wide; absent = no limit. */
  readonly connectionRatePerSource?: SourceRateConfig;
}

export interface ProxyProtocolAcceptConfig {
  /** Default 'any'. */
  readonly accept: 'v1' | 'v2' | 'any';
  /** CIDRs of the front proxies allowed to send a header; everyone else is refused. */
  readonly trustedSources: readonly string[];
  /** Default 3000. */
  readonly timeoutMs: number;
}

export interface SourceRateConfig {
  /** Per second. */
  readonly rate: number;
  /** Default 1. */
  readonly burst: number;
}

export type HealthCheckType = 'tcp' | 'send_expect' | 'http';

/** What a send_expect check looks for in the reply. */
export type ExpectMatcher =
  | { readonly kind: 'substring'; readonly bytes: Uint8Array }
  | { readonly kind: 'regex'; readonly source: string };

export interface HttpCheckConfig {
  /** Default `/`. */
  readonly path: string;
  /** Host header; default the backend address. */
  readonly host: string | null;
  /** Inclusive status range counted as healthy; default [200, 399]. */
  readonly expectStatus: readonly [number, number];
}

/** Active health check of every backend of a pool (absent = no active checks). */
export interface HealthCheckConfig {
  readonly type: HealthCheckType;
  /** Default 2000 (HAProxy `inter`). */
  readonly intervalMs: number;
  /** Default 1000. */
  readonly timeoutMs: number;
  /** Share of the interval added or removed at random, 0..0.5; default 0.1. */
  readonly jitter: number;
  /** Consecutive passes to become healthy; default 2 (HAProxy). */
  readonly rise: number;
  /** Consecutive failures to become unhealthy; default 3 (HAProxy). */
  readonly fall: number;
  /** Interval while the backend is down (HAProxy `downinter`); default intervalMs. */
  readonly unhealthyIntervalMs: number;
  /** Port to check instead of the traffic port; null = the backend's port. */
  readonly port: number | null;
  /** send_expect: bytes to send after connecting (text or {"hex": ...} in the config). */
  readonly send: Uint8Array | null;
  /** send_expect: what the reply must contain. */
  readonly expect: ExpectMatcher | null;
  /** http: request and accepted statuses. */
  readonly http: HttpCheckConfig | null;
  /** Default false: a new backend is "pending" and takes no traffic until its first pass. */
  readonly initialHealthy: boolean;
}

/** Passive detection from the proxy's own connect errors and timeouts (Envoy outlier detection). */
export interface OutlierDetectionConfig {
  /** Consecutive connect failures that eject a backend; default 5; 0 disables. */
  readonly consecutiveFailures: number;
  /** Ejection time = base × times ejected, capped at max (Envoy); defaults 30000 / 300000. */
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  /** Never eject more than this share of the pool, 0..100; default 50. */
  readonly maxEjectionPercent: number;
}

export interface BackendQueueConfig {
  /** Waiting connections per backend, process-wide; 0: none wait. */
  readonly size: number;
  readonly timeoutMs: number;
}

export interface PoolConfig {
  readonly name: string;
  /** Default round_robin. */
  readonly balance: BalancePolicy;
  /** Default source_ip. */
  readonly hashKey: HashKey;
  /** Default 3000. */
  readonly connectTimeoutMs: number;
  /** Extra attempts on other backends; default 2. */
  readonly retries: number;
  // The loader always sets the next four (schema defaults); absent in a hand-built config: off.
  /** Client sent bytes, backend silent this long → closed, a backend failure; default 0 (off). */
  readonly responseTimeoutMs?: number;
  /** After the backend's FIN the connection may stay silent at most this long (HAProxy `timeout server-fin`: inactivity); default 30000. */
  readonly serverFinTimeoutMs?: number;
  /** Connections each backend holds at once, process-wide (HAProxy server `maxconn`); default 0 (no limit). */
  readonly maxConnectionsPerBackend?: number;
  /** Where connections wait for a full backend (HAProxy `maxqueue`, `timeout queue`); defaults 100 and 3000. */
  readonly queue?: BackendQueueConfig;
  readonly ringHash: { readonly pointsPerWeight: number };
  readonly maglev: { readonly tableSize: number };
  /**
   * ring_hash/maglev bounded load in percent (101..10000): each backend's cap as a share of its
   * weighted mean of active connections. Absent: no bound.
   */
  readonly hashBalanceFactor?: number;
  readonly backends: readonly Backend[];
  /** null = no active checks (backends are eligible unless ejected, drained or in maint). */
  readonly healthCheck: HealthCheckConfig | null;
  readonly outlierDetection: OutlierDetectionConfig;
  /** Eligible share below which health is ignored (Envoy: 0.5); 0 disables. */
  readonly panicThreshold: number;
  /** Linear weight ramp for a backend that became eligible after start; 0 disables. */
  readonly slowStartMs: number;
  /**
   * Backend host names are resolved when they enter the set and again every this many ms
   * (default 30000); 0 resolves them only when they enter the set. IP literals are never resolved.
   */
  readonly resolveIntervalMs: number;
  /**
   * Where the backend set comes from. `static` (default): `backends` above. Any other source starts
   * the pool empty (`backends` is then empty) and fills it when the source first reports.
   * Always set by the loader; optional so hand-built configs (demo, tests) may omit it (= static).
   */
  readonly discovery?: DiscoveryConfig;
  /** A PROXY protocol header written to each backend before any client byte; absent = none. */
  readonly sendProxyProtocol?: 'v1' | 'v2';
}

/**
 * A pool's discovery source; options are exactly what src/discovery/*-source.ts take (absent
 * optional keys stay absent, so the sources apply their own documented defaults).
 */
export type DiscoveryConfig =
  | { readonly type: 'static' }
  | { readonly type: 'registration' }
  /** `path` is absolute here: a relative path in the file is resolved against the config file's directory. */
  | DiscoveryOptions;

/** The admin HTTP listener (registration API, later metrics). */
export interface AdminConfig {
  /** Default 127.0.0.1:9901; port 0 picks a free port (logged in `admin ready`). */
  readonly bind: HostPort;
  /** Bearer token every request must carry; null = no auth (loopback binds only). */
  readonly token: string | null;
  /** Always set by the loader; absent in hand-built configs = DEFAULT_ADMIN_LIMITS. Applied in place on reload. */
  readonly limits?: AdminLimits;
}

/** One alert receiver: every event of the chosen types is POSTed to `url` as JSON. */
export interface AlertWebhookConfig {
  /** Unique among webhooks; names the receiver in logs and metrics (`receiver` label). */
  readonly name: string;
  /** http: or https: URL. */
  readonly url: string;
  /** Event types sent; null = every type. */
  readonly events: readonly RinglbEventType[] | null;
  /** Extra request headers (secrets: never logged, redacted wherever config is shown). */
  readonly headers: Readonly<Record<string, string>>;
  /** One delivery attempt's deadline; default 5000. */
  readonly timeoutMs: number;
  /** Attempts after the first on network errors, timeouts, 5xx and 429; default 5. */
  readonly maxRetries: number;
  /** Events waiting per receiver; beyond it the oldest is dropped (counted); default 1000. */
  readonly queueSize: number;
}

export interface AlertsConfig {
  readonly webhooks: readonly AlertWebhookConfig[];
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** `log.access`: the access log's own stream (src/access-log/). */
export interface AccessLogConfig {
  /** Default true. */
  readonly enabled: boolean;
  /** 0..1, default 1; failures are always written. */
  readonly sample: number;
  /** `stdout` (default), `stderr`, or an absolute file path (appended, reopened on SIGUSR1). */
  readonly output: string;
}

export interface LogConfig {
  /** The operational log's level; the access log has none (read at start). */
  readonly level: LogLevel;
  /** The loader always sets the three keys below; hand-built configs may omit them (defaults). */
  readonly access?: AccessLogConfig;
  /** An access line per open connection this often (`event: "open"`); 0 (default) = never. */
  readonly openConnectionsIntervalMs?: number;
  /** An access line when the backend connection is established (`event: "connect"`); default false. */
  readonly onConnect?: boolean;
}

export interface RinglbConfig {
  readonly listeners: readonly ListenerConfig[];
  readonly pools: readonly PoolConfig[];
  readonly log: LogConfig;
  /** Default 30000. */
  readonly drainTimeoutMs: number;
  /**
   * Data-plane workers: 'auto' (default: os.availableParallelism()) or 1..256. What actually runs
   * on this Node is config/workers.ts `planWorkers`. Applies at start only.
   */
  readonly workers: number | 'auto';
  /** null = no admin listener. Always set by the loader; absent in hand-built configs = null. */
  readonly admin?: AdminConfig | null;
  /** Alert webhooks. Always set by the loader; absent in hand-built configs = none. */
  readonly alerts?: AlertsConfig;
}

/** One problem in a config, located by its JSON path (`pools[0].balance`). */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}
