/**
 * Who may connect to one listener, and how much: PROXY protocol trust, allow/deny CIDRs and the
 * per-source limits (open connections, connection rate), compiled once per config in each thread
 * that carries the listener's connections. A listener without any of them has no `ListenerEdge`
 * (null): its connections pay one null check.
 *
 * Per connection: the CIDR lists match integers (cidr-list.ts); the per-source limits use the
 * address hash the hash policies use (core/key-hash.ts, integers only) into the process-wide
 * count-min sketch of src/shared-state/source-limits.ts, created by the main thread and attached
 * here. Refusals are counted by the listener (an access-log outcome each, a cell of the shared
 * listener counters). The operational log hears of them twice, never once per connection: the
 * first refusal of a quiet period is written at once by the thread that saw it, with the client's
 * address (`noteRefusal`); how many followed, process-wide, is the main thread's summary line
 * (src/events/edge-watch.ts, which also publishes the `refusals_*` events), so N worker threads
 * do not write N partial summaries.
 */
import type { ListenerConfig } from '../config/types.js';
import { sourceKeyHash } from '../core/key-hash.js';
import type { Logger } from '../log.js';
import { sharedClockMicros, type SourceLimits } from '../shared-state/source-limits.js';
import { CidrList } from './cidr-list.js';
import type { ProxyProtocolAccept } from './proxy-protocol.js';

/** Outcomes of connections the edge refused (access log, `ringlb_listener_connections_total`). */
export type EdgeRefusal = 'denied' | 'rejected_source_limit' | 'rejected_source_rate' | 'proxy_untrusted' | 'proxy_header_invalid' | 'proxy_header_timeout';

/** A thread writes a refusal's own line again only after a whole interval this long without one of that outcome. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** The operational log's words for each refusal (the thread's first line, the main thread's summaries). */
export const REFUSAL_MESSAGES: Readonly<Record<EdgeRefusal, string>> = {
  denied: 'connections refused: source denied (allow/deny)',
  rejected_source_limit: 'connections refused: source over maxConnectionsPerSource',
  rejected_source_rate: 'connections refused: source over connectionRatePerSource',
  proxy_untrusted: 'connections refused: PROXY protocol from an untrusted source',
  proxy_header_invalid: 'connections closed: missing or malformed PROXY protocol header',
  proxy_header_timeout: 'connections closed: PROXY protocol header not complete in time',
};
export const EDGE_REFUSALS = Object.keys(REFUSAL_MESSAGES) as EdgeRefusal[];

export interface ProxyProtocolIn {
  readonly accept: ProxyProtocolAccept;
  readonly timeoutMs: number;
  readonly trusted: CidrList;
}

/** True when the listener config sets a per-source limit (the main thread then creates its `SourceLimits`). */
export function needsSourceLimits(config: ListenerConfig): boolean {
  return config.maxConnectionsPerSource !== undefined || config.connectionRatePerSource !== undefined;
}

/** True when the config sets anything the edge enforces. */
function hasEdge(config: ListenerConfig): boolean {
  return config.proxyProtocol !== undefined || config.allow !== undefined || config.deny !== undefined || needsSourceLimits(config);
}

export class ListenerEdge {
  readonly proxyProtocol: ProxyProtocolIn | null;
  readonly #allow: CidrList | null;
  readonly #deny: CidrList | null;
  readonly #limits: SourceLimits | null;
  readonly #maxPerSource: number;
  readonly #rate: number;
  readonly #burst: number;
  /** The listener's logger: it names the listener on every line. */
  readonly #logger: Logger;
  /** Refusals since this thread's quiet-period timer last ran, per outcome (index in EDGE_REFUSALS). */
  readonly #sinceCheck = new Float64Array(EDGE_REFUSALS.length);
  /** 1 while a quiet-period timer runs for the outcome: its refusals are not written by this thread. */
  readonly #loud = new Uint8Array(EDGE_REFUSALS.length);

  private constructor(config: ListenerConfig, limits: SourceLimits | null, logger: Logger) {
    const proxy = config.proxyProtocol;
    this.proxyProtocol = proxy === undefined ? null : { accept: proxy.accept, timeoutMs: proxy.timeoutMs, trusted: new CidrList(proxy.trustedSources) };
    this.#allow = config.allow === undefined ? null : new CidrList(config.allow);
    this.#deny = config.deny === undefined || config.deny.length === 0 ? null : new CidrList(config.deny);
    this.#maxPerSource = config.maxConnectionsPerSource ?? 0;
    this.#rate = config.connectionRatePerSource?.rate ?? 0;
    this.#burst = config.connectionRatePerSource?.burst ?? 1;
    this.#limits = this.#maxPerSource > 0 || this.#rate > 0 ? limits : null;
    if (this.#limits === null && (this.#maxPerSource > 0 || this.#rate > 0)) {
      throw new Error(`listener ${config.name}: per-source limits need the listener's shared SourceLimits`);
    }
    this.#logger = logger;
  }

  /** The edge of `config`, or null when it sets nothing the edge enforces. */
  static of(config: ListenerConfig, limits: SourceLimits | null, logger: Logger): ListenerEdge | null {
    return hasEdge(config) ? new ListenerEdge(config, limits, logger) : null;
  }

  /** True when `admit` counts an open connection per source (the caller releases it with `release`). */
  get countsOpenPerSource(): boolean {
    return this.#limits !== null && this.#maxPerSource > 0;
  }

  /** The hash per-source limits key on: the client address alone (the hash policies' `source_ip` key). */
  sourceHashOf(address: string | undefined): number {
    return sourceKeyHash(address, undefined, false);
  }

  /**
   * Per connection, before any backend work: null when the client may connect (an open connection
   * is then counted for it when `countsOpenPerSource`: `release(sourceHash)` when it closes), else
   * why not. Deny wins over allow; the rate is charged before the open count, and a connection the
   * open count refuses still spent its token (as HAProxy's src_conn_rate counts every attempt).
   */
  admit(address: string | undefined, sourceHash: number): EdgeRefusal | null {
    if (this.#deny !== null && this.#deny.matches(address)) return 'denied';
    if (this.#allow !== null && !this.#allow.matches(address)) return 'denied';
    const limits = this.#limits;
    if (limits === null) return null;
    if (this.#rate > 0 && !limits.tryRate(sourceHash, this.#rate, this.#burst, sharedClockMicros())) return 'rejected_source_rate';
    if (this.#maxPerSource > 0 && !limits.tryOpen(sourceHash, this.#maxPerSource)) return 'rejected_source_limit';
    return null;
  }

  /** A connection `admit` counted has closed. */
  release(sourceHash: number): void {
    this.#limits?.release(sourceHash);
  }

  /**
   * A refusal for the operational log: written at once when it is this thread's first of that
   * outcome after REFUSAL_LOG_INTERVAL_MS without one (the operator sees a client to look at),
   * otherwise only counted. The counts are the main thread's to summarise (edge-watch.ts). One
   * typed-array add per refusal; one timer per outcome while its refusals go on, none per connection.
   */
  noteRefusal(outcome: EdgeRefusal, address: string | undefined): void {
    const index = EDGE_REFUSALS.indexOf(outcome);
    if (this.#loud[index] === 1) {
      this.#sinceCheck[index]! += 1;
      return;
    }
    this.#loud[index] = 1;
    this.#logger.warn({ outcome, client: address ?? 'unknown', count: 1 }, REFUSAL_MESSAGES[outcome]);
    setTimeout(() => this.#checkQuiet(index), REFUSAL_LOG_INTERVAL_MS).unref();
  }

  /** An interval without a refusal of the outcome ends its loud period; otherwise one more interval. */
  #checkQuiet(index: number): void {
    if (this.#sinceCheck[index] === 0) {
      this.#loud[index] = 0;
      return;
    }
    this.#sinceCheck[index] = 0;
    setTimeout(() => this.#checkQuiet(index), REFUSAL_LOG_INTERVAL_MS).unref();
  }
}
