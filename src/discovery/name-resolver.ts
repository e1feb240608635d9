/**
 * Backend host names resolved off the hot path (nginx `server … resolve`, HAProxy `resolvers`).
 *
 * A backend written as `localhost:9001` would otherwise make every connect attempt call
 * `dns.lookup`, i.e. getaddrinfo on libuv's thread pool (4 threads by default, shared with file
 * I/O), once per connection. Instead each pool resolves its names when they enter its set (load,
 * reload, discovery) and again every `resolveIntervalMs`, and connects to the IP literal it keeps
 * per slot: Node skips the lookup for an IP literal.
 *
 * - An answer that differs from the last is logged (`from` → `to`) and applies to new connections
 *   and health checks; connections already open keep their socket.
 * - A failed resolution keeps the last good address (logged once, and once when it recovers).
 *   A name that never resolved is connected by name, as before (the connect does its own lookup
 *   and fails or succeeds like an unresolved backend always did).
 * - One lookup in flight per name at a time; a slow resolver delays only the next refresh.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from '../log.js';

/** One address a name resolved to. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Every address of a name, in the resolver's order. Rejects when the name does not resolve. */
export type ResolveHost = (name: string) => Promise<readonly ResolvedAddress[]>;

/**
 * getaddrinfo, as `net.connect` used it: /etc/hosts and the system's DNS, in the system's order
 * (`verbatim`, Node's default since v17).
 */
export const systemResolveHost: ResolveHost = async (name) => {
  const answers = await lookup(name, { all: true, verbatim: true });
  return answers.map((answer) => ({ address: answer.address, family: answer.family === 6 ? 6 : 4 }));
};

/**
 * The address a backend connects to when its name has several: the first IPv4 one, else the first
 * one. IPv4 first (HAProxy's `resolve-prefer ipv4`) because most backends bind 0.0.0.0 or
 * 127.0.0.1; write an IPv6 literal (`[::1]:9001`) to connect over IPv6.
 */
export function preferredAddress(answers: readonly ResolvedAddress[]): ResolvedAddress | undefined {
  return answers.find((answer) => answer.family === 4) ?? answers[0];
}

/** True for a host written as a name (not an IPv4 or IPv6 literal): those are resolved here. */
export function isHostName(host: string): boolean {
  return isIP(host) === 0;
}

export interface NameResolverOptions {
  readonly resolve?: ResolveHost;
  /** Re-resolution period; 0 resolves only when a name enters the set. */
  readonly intervalMs: number;
  /** The pool's child logger. */
  readonly logger: Logger;
  /** A name's address is known for the first time or changed (never called for a failure). */
  readonly onChange: (name: string, address: ResolvedAddress) => void;
}

interface NameState {
  current: ResolvedAddress | undefined;
  inFlight: Promise<void> | null;
  /** The last attempt failed (logged once per failure streak). */
  failing: boolean;
}

export class NameResolver {
  readonly #resolve: ResolveHost;
  readonly #logger: Logger;
  readonly #onChange: (name: string, address: ResolvedAddress) => void;
  readonly #names = new Map<string, NameState>();
  #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(options: NameResolverOptions) {
    this.#resolve = options.resolve ?? systemResolveHost;
    this.#logger = options.logger;
    this.#onChange = options.onChange;
    this.#intervalMs = options.intervalMs;
  }

  /** The address `name` connects to now, or undefined when it never resolved. */
  addressOf(name: string): ResolvedAddress | undefined {
    return this.#names.get(name)?.current;
  }

  /**
   * The names of the pool's current set (IP literals are ignored). New names are resolved at once;
   * names no longer used are forgotten. Resolves when every new name has an answer or failed.
   */
  track(hosts: Iterable<string>): Promise<void> {
    const wanted = new Set<string>();
    for (const host of hosts) if (isHostName(host)) wanted.add(host);
    for (const name of this.#names.keys()) if (!wanted.has(name)) this.#names.delete(name);
    const first: Promise<void>[] = [];
    for (const name of wanted) {
      if (this.#names.has(name)) continue;
      const state: NameState = { current: undefined, inFlight: null, failing: false };
      this.#names.set(name, state);
      first.push(this.#refreshName(name, state));
    }
    this.#arm();
    return Promise.all(first).then(() => undefined);
  }

  /** A reload changed the period; the next refresh follows the new one. */
  setInterval(intervalMs: number): void {
    if (intervalMs === this.#intervalMs) return;
    this.#intervalMs = intervalMs;
    this.#disarm();
    this.#arm();
  }

  /** Re-resolves every name now (the interval does this); resolves when all answered or failed. */
  refresh(): Promise<void> {
    return Promise.all([...this.#names].map(([name, state]) => this.#refreshName(name, state))).then(() => undefined);
  }

  /** Stops the timer; answers still in flight are dropped. */
  close(): void {
    this.#closed = true;
    this.#disarm();
  }

  #arm(): void {
    if (this.#timer !== null || this.#closed || this.#intervalMs <= 0 || this.#names.size === 0) return;
    this.#timer = setInterval(() => void this.refresh(), this.#intervalMs);
    // Re-resolution alone must not keep a stopping process alive.
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #refreshName(name: string, state: NameState): Promise<void> {
    state.inFlight ??= this.#resolveOnce(name, state).finally(() => {
      state.inFlight = null;
    });
    return state.inFlight;
  }

  async #resolveOnce(name: string, state: NameState): Promise<void> {
    let answer: ResolvedAddress | undefined;
    let failure: string | undefined;
    try {
      answer = preferredAddress(await this.#resolve(name));
      if (answer === undefined) failure = 'no address';
    } catch (error) {
      failure = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
    }
    // Forgotten or closed meanwhile: the answer belongs to nobody.
    if (this.#closed || this.#names.get(name) !== state) return;
    if (failure !== undefined || answer === undefined) {
      if (!state.failing) {
        state.failing = true;
        this.#logger.warn(
          { host: name, error: failure, keeping: state.current?.address ?? null },
          state.current === undefined ? 'backend name does not resolve: connecting by name' : 'backend name does not resolve: keeping the last address',
        );
      }
      return;
    }
    if (state.failing) {
      state.failing = false;
      this.#logger.info({ host: name, address: answer.address }, 'backend name resolves again');
    }
    const previous = state.current;
    if (previous !== undefined && previous.address === answer.address) return;
    state.current = answer;
    if (previous === undefined) this.#logger.info({ host: name, address: answer.address }, 'backend name resolved');
    else this.#logger.info({ host: name, from: previous.address, to: answer.address }, 'backend address changed');
    this.#onChange(name, answer);
  }
}
