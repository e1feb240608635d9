/**
 * What the data plane refused, as control-plane facts: the main thread reads the process-wide
 * listener counters (src/shared-state/traffic-counters.ts, every thread's row summed) once per
 * interval and turns their growth into events and into the operational log's summary lines. The
 * data plane publishes nothing and pays nothing for it: the counters it adds to exist anyway.
 *
 * Per listener and refusal outcome (the edge's, src/proxy/listener-edge.ts, and
 * `rejected_max_connections`), the same shape as `panic_entered` / `panic_left`:
 * - `refusals_started`: the first interval whose count grew (`count` in it, `total` ever);
 * - `refusals`: while they go on, at most one per `logIntervalMs` (10 s) with the count since the
 *   previous event (`count`, `total`, `intervalMs`), and the remainder just before the stop: a flood
 *   of an hour is ~360 events, not 3,600 (the bus keeps 256 for replay, and every webhook gets each);
 * - `refusals_stopped`: once `logIntervalMs` (10 s) passed without growth (`total`). Not one quiet
 *   read: a monitor outside the allow list that probes every 2 s made a started/stopped pair (and
 *   two log lines) per probe, ~43,000 events a day.
 * So the counts of one episode's `refusals_started` and `refusals` add up to its growth of
 * `ringlb_listener_connections_total{outcome}`.
 *
 * Per listener, running out of file descriptors (src/proxy/fd-exhaustion.ts):
 * - `fds_exhausted`: an accept pause or a `rejected_no_fds` refusal appeared (`count`, `total`, `pauses`);
 * - `fds_recovered`: no thread is paused any more and `logIntervalMs` (10 s) passed with neither. Not
 *   one quiet read: a process that holds its descriptors refuses again at the next burst, and an
 *   exhausted/recovered pair every 2–3 s paged like a flapping alert (a tryout saw four in 10 s).
 *
 * The log: one warning per listener and outcome per `logIntervalMs`, with the process-wide count
 * since the previous one (and the rest when the refusals stop), whatever the number of worker
 * threads, and an info line when they stop; each thread still writes the first refusal of its quiet
 * period itself, with the client (ListenerEdge.noteRefusal). Descriptor exhaustion likewise: a
 * warning when it starts, one per `logIntervalMs` while it lasts, an info line when it is over.
 *
 * Cost: per interval, (listeners × watched outcomes) sums over the thread rows; nothing when the
 * counters did not move besides those reads. Events are rare by construction: at most one per
 * listener, outcome and interval.
 */
import type { Logger } from '../log.js';
import { EDGE_REFUSALS, REFUSAL_LOG_INTERVAL_MS, REFUSAL_MESSAGES, type EdgeRefusal } from '../proxy/listener-edge.js';
import type { CountedOutcome, ListenerTrafficCounters } from '../shared-state/traffic-counters.js';
import type { EventSink } from './types.js';

/** How often the counters are read: a refusal is on the stream at most this long after it happened. */
export const EDGE_WATCH_MS = 1000;

/** Refusal outcomes with `refusals_*` events; `rejected_no_fds` has its own (`fds_*`). */
type WatchedRefusal = EdgeRefusal | 'rejected_max_connections';
const WATCHED_REFUSALS: readonly WatchedRefusal[] = [...EDGE_REFUSALS, 'rejected_max_connections'];

const SUMMARY_MESSAGES: Readonly<Record<WatchedRefusal, string>> = {
  ...REFUSAL_MESSAGES,
  rejected_max_connections: 'connections refused: listener at maxConnections',
};
const FDS_MESSAGE = 'out of file descriptors: clients refused';
const STOPPED_MESSAGE = 'connections no longer refused';
const FDS_RECOVERED_MESSAGE = 'file descriptors available again: listener accepting';

export interface EdgeWatchOptions {
  readonly events: EventSink;
  readonly logger: Logger;
  /** The listeners to read, by name; asked every interval (reloads add and remove listeners). */
  readonly listeners: () => Iterable<readonly [name: string, counters: ListenerTrafficCounters]>;
  /** Default EDGE_WATCH_MS. */
  readonly intervalMs?: number;
  /** Summary lines at most this often per listener and outcome; default REFUSAL_LOG_INTERVAL_MS. */
  readonly logIntervalMs?: number;
  /** Monotonic clock (ms); default performance.now. */
  readonly now?: () => number;
}

/** One counter's episode: what was read last, and what the log has not summarised yet. */
interface Episode {
  /** The counter at the last read. */
  total: number;
  /** Inside an episode (refusals seen, no quiet interval since). */
  active: boolean;
  /** Counted since the last summary line. */
  unlogged: number;
  /** When the last summary line (or the episode's start) was. */
  loggedAt: number;
  /** Counted since the last event. */
  unpublished: number;
  /** When the last event of the episode was. */
  publishedAt: number;
  /** When the counter last grew (descriptor episodes: a refusal or a pause). */
  lastSeenAt: number;
}

/** What one listener's watch remembers between reads. */
interface ListenerWatch {
  readonly refusals: Map<WatchedRefusal, Episode>;
  readonly noFds: Episode;
  pauses: number;
}

export class EdgeWatch {
  readonly #events: EventSink;
  readonly #logger: Logger;
  readonly #listeners: EdgeWatchOptions['listeners'];
  readonly #intervalMs: number;
  readonly #logIntervalMs: number;
  readonly #now: () => number;
  readonly #watches = new Map<string, ListenerWatch>();
  #timer: NodeJS.Timeout | null = null;

  constructor(options: EdgeWatchOptions) {
    this.#events = options.events;
    this.#logger = options.logger;
    this.#listeners = options.listeners;
    this.#intervalMs = options.intervalMs ?? EDGE_WATCH_MS;
    this.#logIntervalMs = options.logIntervalMs ?? REFUSAL_LOG_INTERVAL_MS;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Reads now (what was counted so far is the baseline, not news) and then every interval. */
  start(): void {
    if (this.#timer !== null) return;
    this.read(true);
    this.#timer = setInterval(() => this.read(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * One read of every listener's counters. `baseline` (start): remember them without publishing:
   * what was counted before the watch began is not news. A listener that appears later (a reload
   * added it) starts from zero, as its counters did; a rebound one keeps its name, its counters
   * and so the episode it was in.
   */
  read(baseline = false): void {
    const now = this.#now();
    const seen = new Set<string>();
    for (const [name, counters] of this.#listeners()) {
      seen.add(name);
      let watch = this.#watches.get(name);
      if (watch === undefined) {
        const at = (total: number): Episode => ({ total: baseline ? total : 0, active: false, unlogged: 0, loggedAt: now, unpublished: 0, publishedAt: now, lastSeenAt: now });
        watch = { refusals: new Map(), noFds: at(counters.ended('rejected_no_fds')), pauses: baseline ? counters.acceptPauses() : 0 };
        for (const outcome of WATCHED_REFUSALS) watch.refusals.set(outcome, at(counters.ended(outcome)));
        this.#watches.set(name, watch);
      }
      if (baseline) continue;
      for (const [outcome, episode] of watch.refusals) this.#readRefusals(name, outcome, episode, counters.ended(outcome), now);
      this.#readDescriptors(name, watch, counters, now);
    }
    // A listener removed from the config (its counters gone once drained): nothing more to say of it.
    for (const name of this.#watches.keys()) if (!seen.has(name)) this.#watches.delete(name);
  }

  #readRefusals(listener: string, outcome: WatchedRefusal, episode: Episode, total: number, now: number): void {
    const count = total - episode.total;
    episode.total = total;
    if (count > 0) {
      episode.lastSeenAt = now;
      episode.unlogged += count;
      if (!episode.active) {
        episode.active = true;
        episode.loggedAt = now;
        episode.publishedAt = now;
        this.#events.publish({ type: 'refusals_started', listener, outcome, count, total });
        return;
      }
      episode.unpublished += count;
    } else if (!episode.active) {
      return;
    } else if (now - episode.lastSeenAt >= this.#logIntervalMs) {
      // A whole quiet interval: the episode ends, with what is left of its counts.
      episode.active = false;
      if (episode.unlogged > 0) this.#summarise(listener, outcome, episode, now);
      if (episode.unpublished > 0) this.#publishProgress(listener, outcome, episode, now);
      this.#events.publish({ type: 'refusals_stopped', listener, outcome, total });
      this.#logger.info({ listener, outcome, total, processWide: true }, STOPPED_MESSAGE);
      return;
    }
    // Going on (or quiet for less than an interval): events and lines at the log's pace.
    if (episode.unpublished > 0 && now - episode.publishedAt >= this.#logIntervalMs) this.#publishProgress(listener, outcome, episode, now);
    if (episode.unlogged > 0 && now - episode.loggedAt >= this.#logIntervalMs) this.#summarise(listener, outcome, episode, now);
  }

  /** A `refusals` event for what was counted since the episode's previous event. */
  #publishProgress(listener: string, outcome: WatchedRefusal, episode: Episode, now: number): void {
    this.#events.publish({ type: 'refusals', listener, outcome, count: episode.unpublished, total: episode.total, intervalMs: Math.round(now - episode.publishedAt) });
    episode.unpublished = 0;
    episode.publishedAt = now;
  }

  /** The log's one line for `episode.unlogged` refusals, every thread's. */
  #summarise(listener: string, outcome: WatchedRefusal, episode: Episode, now: number): void {
    this.#logger.warn(
      { listener, outcome, count: episode.unlogged, total: episode.total, intervalMs: Math.round(now - episode.loggedAt), processWide: true },
      SUMMARY_MESSAGES[outcome],
    );
    episode.unlogged = 0;
    episode.loggedAt = now;
  }

  #readDescriptors(listener: string, watch: ListenerWatch, counters: ListenerTrafficCounters, now: number): void {
    const episode = watch.noFds;
    const total = counters.ended('rejected_no_fds');
    const pauses = counters.acceptPauses();
    const count = total - episode.total;
    const newPauses = pauses - watch.pauses;
    episode.total = total;
    watch.pauses = pauses;
    if (count > 0 || newPauses > 0) {
      episode.lastSeenAt = now;
      episode.unlogged += count;
      if (!episode.active) {
        episode.active = true;
        this.#events.publish({ type: 'fds_exhausted', listener, outcome: 'rejected_no_fds' satisfies CountedOutcome, count, total, pauses });
        this.#logger.warn({ listener, refused: count, total, pauses, processWide: true }, FDS_MESSAGE);
        episode.unlogged = 0;
        episode.loggedAt = now;
      } else if (now - episode.loggedAt >= this.#logIntervalMs) {
        this.#summariseDescriptors(listener, episode, pauses, now);
      }
      return;
    }
    // Quiet, but a thread may still sit out a pause of up to MAX_PAUSE_MS: not over until it
    // accepts, and until a whole log interval went by without a refusal or a pause.
    if (!episode.active || counters.pausedThreads() > 0 || now - episode.lastSeenAt < this.#logIntervalMs) return;
    episode.active = false;
    if (episode.unlogged > 0) this.#summariseDescriptors(listener, episode, pauses, now);
    this.#events.publish({ type: 'fds_recovered', listener, outcome: 'rejected_no_fds', total, pauses });
    this.#logger.info({ listener, total, pauses }, FDS_RECOVERED_MESSAGE);
  }

  /** The log's line for `episode.unlogged` descriptor refusals since the last one. */
  #summariseDescriptors(listener: string, episode: Episode, pauses: number, now: number): void {
    this.#logger.warn(
      { listener, refused: episode.unlogged, total: episode.total, pauses, intervalMs: Math.round(now - episode.loggedAt), processWide: true },
      FDS_MESSAGE,
    );
    episode.unlogged = 0;
    episode.loggedAt = now;
  }
}
