/**
 * The event bus (main thread): the one `EventSink` behind every producer. It numbers and stamps
 * each event, keeps the last `RETAINED_EVENTS` for replay (`Last-Event-ID`, the dashboard's health
 * timeline) and hands each event to its subscribers (the SSE stream, alert webhooks).
 *
 * A producer is never held up by a subscriber: `publish` serialises the event once, then calls each
 * subscriber synchronously with the stored record; subscribers only enqueue (bounded: they drop, or
 * drop their client, when full) and never do I/O inline that could wait. A subscriber that throws is
 * logged and unsubscribed, so a bug in one consumer cannot break health checks that publish.
 *
 * Events are rare (transitions, reloads), so an object and a JSON string per event cost nothing that
 * matters; the data plane never publishes.
 */
import type { Logger } from '../log.js';
import type { EventSink, RinglbEvent, RinglbEventInput } from './types.js';

/** How many events the bus keeps for replay (api-contract: "the bus keeps the last 256"). */
export const RETAINED_EVENTS = 256;

/** An event as stored and fanned out: the value, and its JSON serialised once for every consumer. */
export interface PublishedEvent {
  readonly event: RinglbEvent;
  /** `JSON.stringify(event)`. */
  readonly json: string;
}

export type EventSubscriber = (published: PublishedEvent) => void;

export interface EventBusOptions {
  readonly logger: Logger;
  /** Wall clock for the `time` stamp; default Date.now (tests inject one). */
  readonly now?: () => number;
}

export class EventBus implements EventSink {
  readonly #logger: Logger;
  readonly #now: () => number;
  /** Ring of the last RETAINED_EVENTS events; `#nextId - 1` is the newest id. */
  readonly #retained: (PublishedEvent | undefined)[] = new Array<PublishedEvent | undefined>(RETAINED_EVENTS);
  readonly #subscribers = new Set<EventSubscriber>();
  #nextId = 1;

  constructor(options: EventBusOptions) {
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
  }

  publish(input: RinglbEventInput): void {
    const id = this.#nextId++;
    // `id` and `time` first: a human reading the JSON sees the order and time before the facts.
    const event: RinglbEvent = { id, time: new Date(this.#now()).toISOString(), ...withoutUndefined(input) };
    const published: PublishedEvent = { event, json: JSON.stringify(event) };
    this.#retained[id % RETAINED_EVENTS] = published;
    for (const subscriber of this.#subscribers) {
      try {
        subscriber(published);
      } catch (error) {
        this.#subscribers.delete(subscriber);
        this.#logger.error({ err: error, eventType: event.type }, 'event subscriber failed and was removed');
      }
    }
  }

  /** Adds a subscriber for events published from now on; returns its unsubscribe function. */
  subscribe(subscriber: EventSubscriber): () => void {
    this.#subscribers.add(subscriber);
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  /** Id of the newest event (0 before the first). */
  get lastId(): number {
    return this.#nextId - 1;
  }

  /** Retained events with an id above `afterId`, oldest first (at most RETAINED_EVENTS). */
  since(afterId: number): PublishedEvent[] {
    const newest = this.#nextId - 1;
    const oldest = Math.max(1, newest - RETAINED_EVENTS + 1, Math.floor(afterId) + 1);
    const out: PublishedEvent[] = [];
    for (let id = oldest; id <= newest; id++) out.push(this.#retained[id % RETAINED_EVENTS]!);
    return out;
  }
}

/** Absent fields are omitted in JSON (types.ts); an explicit `undefined` would be too, but stays out of the object. */
function withoutUndefined(input: RinglbEventInput): RinglbEventInput {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) if (value !== undefined) out[key] = value;
  return out as unknown as RinglbEventInput;
}
