/**
 * A DiscoveryListener that records every call, so tests wait for an event instead of sleeping:
 * `await recorder.next('update')` resolves with the first update after the previous `next`.
 */
import type { Backend } from '../../src/backend.js';
import type { DiscoveryListener } from '../../src/discovery/types.js';

export type DiscoveryEvent =
  | { readonly type: 'update'; readonly backends: readonly Backend[]; readonly at: number }
  | { readonly type: 'error'; readonly error: Error; readonly at: number }
  | { readonly type: 'recovered'; readonly at: number }
  | { readonly type: 'invalid'; readonly error: Error; readonly at: number };

type EventOf<T extends DiscoveryEvent['type']> = Extract<DiscoveryEvent, { type: T }>;

export class DiscoveryRecorder implements DiscoveryListener {
  readonly events: DiscoveryEvent[] = [];
  /** Index of the first event `next` has not consumed yet. */
  #cursor = 0;
  #wake: (() => void) | null = null;

  onUpdate(backends: readonly Backend[]): void {
    this.#push({ type: 'update', backends, at: Date.now() });
  }
  onError(error: Error): void {
    this.#push({ type: 'error', error, at: Date.now() });
  }
  onRecovered(): void {
    this.#push({ type: 'recovered', at: Date.now() });
  }
  onInvalidEntry(error: Error): void {
    this.#push({ type: 'invalid', error, at: Date.now() });
  }

  /** Events not consumed by `next` yet. */
  pending(): readonly DiscoveryEvent[] {
    return this.events.slice(this.#cursor);
  }

  /** Marks every event so far as seen. */
  skipAll(): void {
    this.#cursor = this.events.length;
  }

  /**
   * The next event of `type` (events of other types before it are consumed too) that satisfies
   * `accept`; rejects after `timeoutMs` listing what did arrive.
   */
  async next<T extends DiscoveryEvent['type']>(type: T, timeoutMs = 5000, accept: (event: EventOf<T>) => boolean = () => true): Promise<EventOf<T>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#cursor < this.events.length) {
        const event = this.events[this.#cursor];
        this.#cursor += 1;
        if (event.type === type && accept(event as EventOf<T>)) return event as EventOf<T>;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no ${type} event within ${timeoutMs} ms; saw ${JSON.stringify(this.events.map(summarize))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  #push(event: DiscoveryEvent): void {
    this.events.push(event);
    this.#wake?.();
  }
}

/** `id=address/weight/state` lines, the shape tests compare sets in. */
export function describeSet(backends: readonly Backend[]): string[] {
  return backends.map((backend) => `${backend.id}=${backend.address.text}/${backend.weight}/${backend.state}`);
}

function summarize(event: DiscoveryEvent): string {
  if (event.type === 'update') return `update ${describeSet(event.backends).join(',')}`;
  if (event.type === 'error' || event.type === 'invalid') return `${event.type} ${event.error.message}`;
  return event.type;
}
