/**
 * `dns` discovery: re-resolve a name on an interval with node:dns's `Resolver` (c-ares, its own
 * server list, no OS cache), and report the resulting set.
 *
 * - `SRV` (RFC 2782): each record gives target, port, priority and weight. Only records of the
 *   LOWEST priority value are used (the others are RFC 2782 fallbacks; nginx Plus `service=`
 *   does the same and ringlb's health checks, not priorities, handle failure). Weight maps to
 *   ours as min(weight, 10000); weight 0 counts as 1, since RFC 2782 says 0 means "no server
 *   selection to do" rather than "never". Each target is resolved with the same resolver: its A
 *   records, or its AAAA records when it has none (so a dual-stack target is not counted twice).
 *   A target that does not exist or has no address is skipped and reported with
 *   `onInvalidEntry`; a target whose lookup fails otherwise (timeout, SERVFAIL) fails the whole
 *   round, since dropping it would shrink the pool on a transient error.
 * - `A` / `AAAA`: every address with the configured `port`, weight 1.
 * - Backends' ids are their address text (`10.0.0.7:9001`, `[fd00::7]:9001`), like config
 *   backends without an id, so every ringlb resolving the same answer builds the same tables.
 *   Records pointing at the same address and port are merged (weights added, capped).
 *
 * An empty answer (NXDOMAIN, no records, every target skipped) is treated as an ERROR, not as an
 * empty pool: a DNS mistake or a half-propagated zone must never black-hole all traffic. Like
 * every failure it keeps the last set, calls `onError` once, and retries with exponential backoff
 * (default 1 s → 30 s) instead of the interval; the first good answer after it calls
 * `onRecovered` and `onUpdate`. Otherwise an unchanged answer is no update.
 */
import { Resolver } from 'node:dns/promises';
import { isIPv6 } from 'node:net';
import { MAX_WEIGHT, type Backend } from '../backend.js';
import { isHostPort, parseHostPort } from '../config/host-port.js';
import { sameBackendSet, sortById } from './backend-entries.js';
import { Backoff } from './backoff.js';
import type { DiscoveryListener, DiscoverySource } from './types.js';

export type DnsRecordType = 'SRV' | 'A' | 'AAAA';

export interface DnsSourceOptions {
  /** The name to resolve: `_app._tcp.svc.example` for SRV, a host name for A/AAAA. */
  readonly name: string;
  readonly record: DnsRecordType;
  /** Backend port for A/AAAA (required there); not allowed for SRV, whose records carry it. */
  readonly port?: number;
  /** Name servers as `ip` or `ip:port` (`[::1]:53`); default the system's (/etc/resolv.conf). */
  readonly servers?: readonly string[];
  /** Re-resolve interval; default 5000. */
  readonly intervalMs?: number;
  /** Per-query timeout (c-ares `timeout`, each of 2 tries); default 2000. */
  readonly timeoutMs?: number;
  /** Retry backoff after a failure; defaults 1000 → 30000. */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
}

export const DEFAULT_DNS_INTERVAL_MS = 5000;
export const DEFAULT_DNS_TIMEOUT_MS = 2000;
/** c-ares tries per query: one retry covers a lost UDP datagram without doubling a real outage. */
const DNS_TRIES = 2;
/** Answers that mean "this name has nothing", as opposed to "the server could not answer". */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA']);

export function createDnsSource(options: DnsSourceOptions): DiscoverySource {
  return new DnsSource(options);
}

class DnsSource implements DiscoverySource {
  readonly kind = 'dns';
  readonly description: string;
  readonly #name: string;
  readonly #record: DnsRecordType;
  readonly #port: number | undefined;
  readonly #intervalMs: number;
  readonly #resolver: Resolver;
  readonly #backoff: Backoff;
  #listener: DiscoveryListener | null = null;
  #timer: NodeJS.Timeout | null = null;
  #resolving: Promise<void> | null = null;
  #stopped = false;
  #lastGood: readonly Backend[] | null = null;
  #failing = false;
  /** Skipped-target messages of the last round, so each is reported once, not every interval. */
  #reportedInvalid = new Set<string>();

  constructor(options: DnsSourceOptions) {
    this.#name = checkName(options.name);
    if (!['SRV', 'A', 'AAAA'].includes(options.record)) {
      throw new TypeError(`dns discovery: record must be SRV, A or AAAA, got ${JSON.stringify(options.record)}`);
    }
    this.#record = options.record;
    if (this.#record === 'SRV') {
      if (options.port !== undefined) throw new TypeError('dns discovery: port is only for A/AAAA records; SRV records carry their own port');
    } else if (options.port === undefined || !Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new TypeError(`dns discovery: ${this.#record} records need a port 1..65535, got ${JSON.stringify(options.port)}`);
    }
    this.#port = options.port;
    this.#intervalMs = checkPositive('intervalMs', options.intervalMs ?? DEFAULT_DNS_INTERVAL_MS);
    const timeoutMs = checkPositive('timeoutMs', options.timeoutMs ?? DEFAULT_DNS_TIMEOUT_MS);
    this.#backoff = new Backoff({ minMs: options.retryMinMs, maxMs: options.retryMaxMs });
    this.#resolver = new Resolver({ timeout: timeoutMs, tries: DNS_TRIES });
    if (options.servers !== undefined) {
      try {
        this.#resolver.setServers([...options.servers]);
      } catch (error) {
        throw new TypeError(`dns discovery: bad servers ${JSON.stringify(options.servers)}: ${(error as Error).message}`);
      }
    }
    this.description = `dns ${this.#record} ${this.#name}`;
  }

  start(listener: DiscoveryListener): void {
    if (this.#listener !== null) throw new Error(`${this.description}: start() called twice`);
    this.#listener = listener;
    this.#round();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    // Queries in flight fail with ECANCELLED; #round ignores results after stop.
    this.#resolver.cancel();
    await this.#resolving;
  }

  #round(): void {
    this.#resolving = this.#resolveOnce().then(
      (delay) => this.#schedule(delay),
      // #resolveOnce reports its own failures; this only guards against a bug leaving no timer.
      () => this.#schedule(this.#backoff.next()),
    );
  }

  #schedule(delayMs: number): void {
    this.#resolving = null;
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#round();
    }, delayMs);
  }

  /** One resolution; returns the delay before the next one. */
  async #resolveOnce(): Promise<number> {
    let backends: Backend[];
    const invalid: string[] = [];
    try {
      backends = this.#record === 'SRV' ? await this.#resolveSrv(invalid) : await this.#resolveAddresses();
    } catch (error) {
      if (this.#stopped) return 0;
      this.#fail(error as Error);
      return this.#backoff.next();
    }
    if (this.#stopped) return 0;
    this.#reportInvalid(invalid);
    if (backends.length === 0) {
      this.#fail(new Error(`${this.description}: every target was skipped; keeping the last set`));
      return this.#backoff.next();
    }
    this.#succeed(sortById(backends));
    return this.#intervalMs;
  }

  async #resolveSrv(invalid: string[]): Promise<Backend[]> {
    const records = await this.#query(() => this.#resolver.resolveSrv(this.#name), 'SRV', this.#name);
    // RFC 2782: a single record with target "." means "decidedly not available"; we keep the
    // last set rather than empty the pool, like any other empty answer.
    const usable = records.filter((record) => record.name !== '' && record.name !== '.');
    if (usable.length === 0) throw new Error(`${this.description}: no usable SRV records (target "."); keeping the last set`);
    const lowestPriority = Math.min(...usable.map((record) => record.priority));
    const chosen = usable.filter((record) => record.priority === lowestPriority);
    const addressLists = await Promise.all(chosen.map((record) => this.#addressesOfTarget(record.name, invalid)));
    const merged = new Builder();
    chosen.forEach((record, index) => {
      for (const address of addressLists[index]) merged.add(address, record.port, record.weight === 0 ? 1 : record.weight);
    });
    return merged.backends();
  }

  async #resolveAddresses(): Promise<Backend[]> {
    const addresses =
      this.#record === 'A'
        ? await this.#query(() => this.#resolver.resolve4(this.#name), 'A', this.#name)
        : await this.#query(() => this.#resolver.resolve6(this.#name), 'AAAA', this.#name);
    const merged = new Builder();
    for (const address of addresses) merged.add(address, this.#port as number, 1);
    return merged.backends();
  }

  /** A, else AAAA; [] (and a note in `invalid`) when the target has neither. */
  async #addressesOfTarget(target: string, invalid: string[]): Promise<string[]> {
    const v4 = await this.#resolver.resolve4(target).catch((error: NodeJS.ErrnoException) => {
      if (NO_RECORDS.has(error.code ?? '')) return [];
      throw this.#queryError(error, 'A', target);
    });
    if (v4.length > 0) return v4;
    const v6 = await this.#resolver.resolve6(target).catch((error: NodeJS.ErrnoException) => {
      if (NO_RECORDS.has(error.code ?? '')) return [];
      throw this.#queryError(error, 'AAAA', target);
    });
    if (v6.length === 0) invalid.push(`${this.description}: SRV target ${target} has no A or AAAA record; skipped`);
    return v6;
  }

  async #query<T>(run: () => Promise<T[]>, type: string, name: string): Promise<T[]> {
    let answer: T[];
    try {
      answer = await run();
    } catch (error) {
      throw this.#queryError(error as NodeJS.ErrnoException, type, name);
    }
    if (answer.length === 0) throw new Error(`${this.description}: no ${type} records for ${name}; keeping the last set`);
    return answer;
  }

  #queryError(error: NodeJS.ErrnoException, type: string, name: string): Error {
    const code = error.code ?? 'error';
    const why = NO_RECORDS.has(code) ? `no ${type} records for ${name} (${code}); keeping the last set` : `${type} ${name} failed: ${code}`;
    return new Error(`${this.description}: ${why}`, { cause: error });
  }

  #reportInvalid(messages: readonly string[]): void {
    const current = new Set(messages);
    for (const message of current) {
      if (!this.#reportedInvalid.has(message)) this.#listener?.onInvalidEntry?.(new Error(message));
    }
    this.#reportedInvalid = current;
  }

  #fail(error: Error): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#listener?.onError(error);
  }

  #succeed(backends: readonly Backend[]): void {
    this.#backoff.reset();
    const recovered = this.#failing;
    this.#failing = false;
    if (recovered) this.#listener?.onRecovered?.();
    if (!recovered && this.#lastGood !== null && sameBackendSet(this.#lastGood, backends)) return;
    this.#lastGood = backends;
    this.#listener?.onUpdate(backends);
  }
}

/** Collects backends by address text, merging duplicates (weights added, capped at 10000). */
class Builder {
  readonly #byId = new Map<string, Backend>();

  add(ip: string, port: number, weight: number): void {
    const parsed = parseHostPort(isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`, { purpose: 'connect' });
    // c-ares returns literal addresses and ports 0..65535; port 0 is the only thing that fails.
    if (!isHostPort(parsed)) return;
    const previous = this.#byId.get(parsed.text);
    const total = Math.min(MAX_WEIGHT, (previous?.weight ?? 0) + Math.min(MAX_WEIGHT, weight));
    this.#byId.set(parsed.text, { id: parsed.text, address: parsed, weight: total, state: 'active' });
  }

  backends(): Backend[] {
    return [...this.#byId.values()];
  }
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name === '' || name.length > 253 || /\s/.test(name)) {
    throw new TypeError(`dns discovery: name must be a DNS name like _app._tcp.svc.example, got ${JSON.stringify(name)}`);
  }
  return name;
}

function checkPositive(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`dns discovery: ${field} must be a positive integer (ms), got ${JSON.stringify(value)}`);
  return value;
}
