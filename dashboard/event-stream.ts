/**
 * `GET /v1/events` read with fetch(), because EventSource cannot send an Authorization header.
 * The parser follows the HTML Standard's event-stream interpretation (§9.2.6): lines end in CRLF,
 * LF or CR; `:` starts a comment (the server's keepalive); a blank line dispatches; `id` sets the
 * last event id that a reconnect sends back as `Last-Event-ID`, so nothing is missed or repeated.
 */
import type { RinglbEvent } from './api-types.js';
import { Unauthorized, throwUnlessOk, type AdminClient } from './admin-client.js';

export interface SseMessage {
  readonly event: string;
  readonly data: string;
  /** The last event id in force after this message (the stream's, not only this message's). */
  readonly lastEventId: string;
}

export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];
  #lastEventId: string;
  /** The previous chunk ended in CR: an LF starting this one belongs to that line end. */
  #skipLeadingLf = false;

  constructor(lastEventId = '') {
    this.#lastEventId = lastEventId;
  }

  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** Feeds decoded text; returns the messages it completed. */
  push(text: string): SseMessage[] {
    if (this.#skipLeadingLf && text.startsWith('\n')) text = text.slice(1);
    this.#skipLeadingLf = false;
    this.#buffer += text;
    const messages: SseMessage[] = [];
    for (;;) {
      const end = this.#buffer.search(/\r\n|\r|\n/);
      if (end < 0) break;
      let after = end + 1;
      if (this.#buffer[end] === '\r') {
        if (end + 1 === this.#buffer.length) {
          // A lone CR at the end of a chunk: the line ends here, and a following LF is part of it.
          this.#skipLeadingLf = true;
        } else if (this.#buffer[end + 1] === '\n') after = end + 2;
      }
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(after);
      const message = this.#line(line);
      if (message !== null) messages.push(message);
    }
    return messages;
  }

  #line(line: string): SseMessage | null {
    if (line === '') {
      if (this.#data.length === 0) {
        this.#event = '';
        return null;
      }
      const message = { event: this.#event === '' ? 'message' : this.#event, data: this.#data.join('\n'), lastEventId: this.#lastEventId };
      this.#event = '';
      this.#data = [];
      return message;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.#lastEventId = value;
    return null;
  }
}

export type StreamState = 'connecting' | 'live' | 'reconnecting';

export interface FollowOptions {
  readonly onEvent: (event: RinglbEvent) => void;
  readonly onState: (state: StreamState, detail?: string) => void;
  readonly onUnauthorized: (error: Unauthorized) => void;
  readonly signal: AbortSignal;
}

/** Reconnect delays: quick at first, then at most every 10 s while the server stays away. */
const RETRY_MS = [500, 1000, 2000, 5000, 10_000];

/**
 * Follows the stream until `signal` aborts. The first request sends `Last-Event-ID: 0`, so the
 * server replays the events it retains (the timeline's history); a reconnect resumes after the
 * last id seen. A 401 stops following and reports it (the page asks for the token again).
 */
export async function followEvents(client: AdminClient, options: FollowOptions): Promise<void> {
  let lastEventId = '0';
  let failures = 0;
  while (!options.signal.aborted) {
    options.onState(failures === 0 ? 'connecting' : 'reconnecting');
    try {
      const response = await fetch(client.url('v1/events'), {
        headers: client.headers({ accept: 'text/event-stream', 'last-event-id': lastEventId }),
        cache: 'no-store',
        signal: options.signal,
      });
      await throwUnlessOk(response);
      if (response.body === null) throw new Error('the event stream has no body');
      options.onState('live');
      failures = 0;
      const parser = new SseParser(lastEventId);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const message of parser.push(value)) {
          lastEventId = message.lastEventId;
          let event: RinglbEvent;
          try {
            event = JSON.parse(message.data) as RinglbEvent;
          } catch {
            continue; // a malformed event costs that event only
          }
          options.onEvent(event);
        }
      }
      lastEventId = parser.lastEventId;
    } catch (error) {
      if (options.signal.aborted) return;
      if (error instanceof Unauthorized) {
        options.onUnauthorized(error);
        return;
      }
      options.onState('reconnecting', error instanceof Error ? error.message : String(error));
    }
    const delay = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]!;
    failures += 1;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delay);
      options.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }
}
