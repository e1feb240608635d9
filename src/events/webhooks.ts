/**
 * Alert webhooks: every event of the types a receiver asked for is POSTed to it as JSON (the
 * `RinglbEvent`, the same text as the SSE `data:` line).
 *
 * Never in anyone's way: the bus hands an event to each receiver's queue and returns. Each receiver
 * sends one event at a time, in order, from a queue of at most `queueSize` events; when it is full
 * the oldest waiting event is dropped and counted (the newest facts matter most to an operator who
 * reads them late). Memory per receiver is therefore bounded by queueSize events, whatever the
 * receiver does.
 *
 * Retries (AWS Architecture Blog, "Exponential Backoff And Jitter": full jitter): a network error,
 * a timeout, a 5xx or a 429 is retried after a random delay up to min(30 s, 500 ms × 2^(n-1)), at
 * most `maxRetries` times; any other 4xx is the receiver refusing this event and is not retried.
 * An event that is not delivered after the last attempt counts as `failed`.
 *
 * A failing receiver is logged at most once per LOG_INTERVAL_MS (with how many failures the
 * interval held) and once when it delivers again. Headers are secrets: they are never logged; the
 * URL is logged without its query (it may carry a token).
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AlertsConfig, AlertWebhookConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { EventBus, PublishedEvent } from './bus.js';

/** First backoff ceiling; doubles per retry. */
export const BACKOFF_BASE_MS = 500;
/** Largest backoff ceiling. */
export const BACKOFF_CAP_MS = 30_000;
/** A failing receiver is logged at most this often. */
export const LOG_INTERVAL_MS = 10_000;
/** A receiver's answer body is read and thrown away, up to this much (then the socket is dropped). */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** Per receiver, for metrics (`ringlb_alerts_*_total{receiver}`): counters since the receiver was first configured. */
export interface ReceiverStats {
  readonly receiver: string;
  /** Events the receiver accepted (2xx). */
  readonly delivered: number;
  /** Events given up on: refused (4xx other than 429) or still failing after the last retry. */
  readonly failed: number;
  /** Events dropped from a full queue, or still queued when the receiver was removed or ringlb stopped. */
  readonly dropped: number;
  /** Attempts that failed and were retried. */
  readonly retries: number;
  /** Events waiting now (gauge), the one in flight included. */
  readonly queued: number;
}

interface Counters {
  delivered: number;
  failed: number;
  dropped: number;
  retries: number;
}

export interface AlertDispatcherOptions {
  readonly bus: EventBus;
  readonly logger: Logger;
  /** Backoff randomness in [0, 1); default Math.random (tests may pin it). */
  readonly random?: () => number;
}

/**
 * Every configured receiver (main thread). `configure` applies `alerts` (start and reload): an
 * unchanged receiver keeps its queue; a changed one is replaced (its queue goes to the new one);
 * a removed one stops and its queued events count as dropped. Counters live per receiver name for
 * the life of the process, so they stay monotonic across reloads.
 */
export class AlertDispatcher {
  readonly #logger: Logger;
  readonly #random: () => number;
  readonly #receivers = new Map<string, WebhookReceiver>();
  readonly #counters = new Map<string, Counters>();
  readonly #unsubscribe: () => void;
  #closed = false;

  constructor(options: AlertDispatcherOptions) {
    this.#logger = options.logger;
    this.#random = options.random ?? Math.random;
    this.#unsubscribe = options.bus.subscribe((published) => {
      for (const receiver of this.#receivers.values()) receiver.offer(published);
    });
  }

  configure(alerts: AlertsConfig | undefined): void {
    if (this.#closed) return;
    const webhooks = alerts?.webhooks ?? [];
    const wanted = new Map(webhooks.map((webhook) => [webhook.name, webhook]));
    for (const [name, receiver] of this.#receivers) {
      if (!wanted.has(name)) {
        receiver.close();
        this.#receivers.delete(name);
        this.#logger.info({ receiver: name }, 'alert webhook removed');
      }
    }
    for (const webhook of webhooks) {
      const existing = this.#receivers.get(webhook.name);
      if (existing !== undefined && sameWebhook(existing.config, webhook)) continue;
      let counters = this.#counters.get(webhook.name);
      if (counters === undefined) {
        counters = { delivered: 0, failed: 0, dropped: 0, retries: 0 };
        this.#counters.set(webhook.name, counters);
      }
      const receiver = new WebhookReceiver(webhook, counters, this.#logger.child({ receiver: webhook.name }), this.#random);
      if (existing !== undefined) receiver.adopt(existing.handOver());
      this.#receivers.set(webhook.name, receiver);
      this.#logger.info({ receiver: webhook.name, url: loggableUrl(webhook.url), events: webhook.events ?? 'all' }, existing === undefined ? 'alert webhook added' : 'alert webhook changed');
    }
  }

  /** Counters of every receiver configured now or before (a removed one keeps its last values). */
  stats(): ReceiverStats[] {
    return [...this.#counters].map(([receiver, counters]) => ({
      receiver,
      ...counters,
      queued: this.#receivers.get(receiver)?.queued ?? 0,
    }));
  }

  /**
   * Resolves once every receiver has nothing left to send, or after `timeoutMs` (a graceful stop
   * gives the last events, often the most important ones, a bounded chance to leave).
   */
  async flush(timeoutMs: number): Promise<void> {
    const busy = [...this.#receivers.values()].filter((receiver) => receiver.queued > 0);
    if (busy.length === 0 || timeoutMs <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.all(busy.map((receiver) => receiver.whenIdle())), deadline]);
    clearTimeout(timer);
  }

  /** Stops every receiver (in-flight requests are aborted; queued events count as dropped). */
  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    for (const receiver of this.#receivers.values()) receiver.close();
    this.#receivers.clear();
  }
}

/** One receiver: a bounded FIFO and one delivery at a time. */
class WebhookReceiver {
  readonly config: AlertWebhookConfig;
  readonly #counters: Counters;
  readonly #logger: Logger;
  readonly #random: () => number;
  readonly #url: URL;
  readonly #types: ReadonlySet<string> | null;
  readonly #agent: HttpAgent;
  readonly #headers: Record<string, string>;
  /** Waiting events, oldest first; the one in flight is `#current`. */
  #queue: PublishedEvent[] = [];
  #current: PublishedEvent | null = null;
  #attempt = 0;
  #request: ClientRequest | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** `flush` callers waiting for the queue to empty. */
  #idleWaiters: Array<() => void> = [];
  // Rate-limited failure logging.
  #failing = false;
  #lastLoggedAt = Number.NEGATIVE_INFINITY;
  #unloggedFailures = 0;
  #droppedSinceLog = 0;

  constructor(config: AlertWebhookConfig, counters: Counters, logger: Logger, random: () => number) {
    this.config = config;
    this.#counters = counters;
    this.#logger = logger;
    this.#random = random;
    this.#url = new URL(config.url);
    this.#types = config.events === null ? null : new Set(config.events);
    // One socket, kept alive: deliveries are sequential, and a dead receiver holds one socket at most.
    this.#agent = this.#url.protocol === 'https:' ? new HttpsAgent({ keepAlive: true, maxSockets: 1 }) : new HttpAgent({ keepAlive: true, maxSockets: 1 });
    // A configured User-Agent (any case) replaces ours; content-type and content-length are ours (config refuses them).
    const ownAgent = Object.keys(config.headers).some((name) => name.toLowerCase() === 'user-agent');
    this.#headers = { ...(ownAgent ? {} : { 'user-agent': 'ringlb' }), ...config.headers, 'content-type': 'application/json' };
  }

  get queued(): number {
    return this.#queue.length + (this.#current === null ? 0 : 1);
  }

  /** From the bus: never waits. */
  offer(published: PublishedEvent): void {
    if (this.#closed || (this.#types !== null && !this.#types.has(published.event.type))) return;
    if (this.#queue.length >= this.config.queueSize) {
      // Events are rare and queues small, so shift() (O(n)) costs nothing that matters here.
      this.#queue.shift();
      this.#counters.dropped += 1;
      this.#droppedSinceLog += 1;
      this.#logFailure(null);
    }
    this.#queue.push(published);
    if (this.#current === null) this.#next();
  }

  /** Events still to send, for the receiver that replaces this one (a reload changed its settings). */
  handOver(): PublishedEvent[] {
    const pending = this.#current === null ? this.#queue : [this.#current, ...this.#queue];
    this.#queue = [];
    this.#current = null;
    this.close();
    return pending;
  }

  adopt(pending: readonly PublishedEvent[]): void {
    for (const published of pending) this.offer(published);
  }

  /** Resolves when nothing is queued or in flight (or the receiver is closed). */
  whenIdle(): Promise<void> {
    if (this.#closed || this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeIdleWaiters();
    const dropped = this.queued;
    this.#counters.dropped += dropped;
    this.#queue = [];
    this.#current = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#request?.destroy();
    this.#request = null;
    this.#agent.destroy();
  }

  #next(): void {
    if (this.#closed) return;
    const published = this.#queue.shift();
    this.#current = published ?? null;
    this.#attempt = 0;
    if (published !== undefined) this.#send(published);
    else this.#wakeIdleWaiters();
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #send(published: PublishedEvent): void {
    const body = Buffer.from(published.json, 'utf8');
    const send = this.#url.protocol === 'https:' ? httpsRequest : httpRequest;
    let settled = false;
    const finish = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      this.#request = null;
      this.#settle(published, outcome);
    };
    const request = send(this.#url, {
      method: 'POST',
      agent: this.#agent,
      headers: { ...this.#headers, 'content-length': String(body.length) },
    });
    this.#request = request;
    // One deadline for the whole attempt (connect, send, status line): a receiver that accepts and never answers is a failure.
    const deadline = setTimeout(() => {
      finish({ kind: 'retry', reason: `timeout after ${this.config.timeoutMs} ms` });
      request.destroy();
    }, this.config.timeoutMs);
    deadline.unref();
    request.on('error', (error: NodeJS.ErrnoException) => finish({ kind: 'retry', reason: error.code ?? error.message }));
    request.on('response', (response: IncomingMessage) => {
      const status = response.statusCode ?? 0;
      // Drain the body (so the socket can be reused), bounded: a receiver that streams forever is dropped.
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MAX_RESPONSE_BYTES) response.destroy();
      });
      response.on('error', () => undefined);
      response.resume();
      if (status >= 200 && status < 300) finish({ kind: 'delivered' });
      else if (status === 429 || status >= 500) finish({ kind: 'retry', reason: `HTTP ${status}`, retryAfterMs: retryAfterMs(response.headers['retry-after']) });
      else finish({ kind: 'refused', reason: `HTTP ${status}` });
    });
    request.end(body);
  }

  #settle(published: PublishedEvent, outcome: Outcome): void {
    if (this.#closed || this.#current !== published) return;
    if (outcome.kind === 'delivered') {
      this.#counters.delivered += 1;
      if (this.#failing) {
        this.#failing = false;
        this.#logger.info({ url: loggableUrl(this.config.url), unloggedFailures: this.#unloggedFailures, dropped: this.#droppedSinceLog }, 'alert webhook delivering again');
        this.#unloggedFailures = 0;
        this.#droppedSinceLog = 0;
        this.#lastLoggedAt = Number.NEGATIVE_INFINITY;
      }
      this.#next();
      return;
    }
    if (outcome.kind === 'retry' && this.#attempt < this.config.maxRetries) {
      this.#attempt += 1;
      this.#counters.retries += 1;
      this.#logFailure({ eventId: published.event.id, reason: outcome.reason, attempt: this.#attempt, givenUp: false });
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (this.#attempt - 1));
      // A receiver that says when to come back (429/503 Retry-After, RFC 9110 §10.2.3) is believed, up to the cap.
      const delayMs = Math.max(Math.floor(this.#random() * ceiling), Math.min(BACKOFF_CAP_MS, outcome.retryAfterMs ?? 0));
      this.#timer = setTimeout(() => {
        this.#timer = null;
        if (this.#current === published) this.#send(published);
      }, delayMs);
      this.#timer.unref();
      return;
    }
    this.#counters.failed += 1;
    this.#logFailure({ eventId: published.event.id, reason: outcome.reason, attempt: this.#attempt, givenUp: true });
    this.#next();
  }

  /** At most one warning per LOG_INTERVAL_MS; the rest are counted into the next one. */
  #logFailure(failure: { eventId: number; reason: string; attempt: number; givenUp: boolean } | null): void {
    this.#failing = true;
    const now = performance.now();
    if (now - this.#lastLoggedAt < LOG_INTERVAL_MS) {
      if (failure !== null) this.#unloggedFailures += 1;
      return;
    }
    this.#lastLoggedAt = now;
    this.#logger.warn(
      {
        url: loggableUrl(this.config.url),
        ...(failure ?? { reason: 'queue full' }),
        unloggedFailures: this.#unloggedFailures,
        dropped: this.#counters.dropped,
        failed: this.#counters.failed,
        queued: this.queued,
      },
      'alert webhook failing',
    );
    this.#unloggedFailures = 0;
  }
}

type Outcome =
  | { readonly kind: 'delivered' }
  | { readonly kind: 'retry'; readonly reason: string; readonly retryAfterMs?: number }
  | { readonly kind: 'refused'; readonly reason: string };

/** `Retry-After` in seconds (the HTTP-date form is ignored: receivers of alerts send seconds); undefined when absent or malformed. */
function retryAfterMs(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d{1,6}$/.test(header.trim())) return undefined;
  return Number(header.trim()) * 1000;
}

function sameWebhook(a: AlertWebhookConfig, b: AlertWebhookConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The URL as logs show it: scheme, host, port and path; the query and fragment may hold a secret. */
export function loggableUrl(text: string): string {
  try {
    const url = new URL(text);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return '<invalid url>';
  }
}
