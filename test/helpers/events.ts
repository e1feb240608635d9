/**
 * Both ends a test needs to watch ringlb's events from outside: a real alert receiver (node:http on
 * 127.0.0.1:0 that records every POST and answers as the test scripts it) and a real SSE client (an
 * HTTP GET reading text/event-stream and parsing it as the WHATWG algorithm does for the fields
 * ringlb sends). Every wait is on an arrival, bounded by a timeout.
 */
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** An event as the receiver or the stream got it (the `RinglbEvent` JSON). */
export interface ReceivedEvent {
  readonly id: number;
  readonly time: string;
  readonly type: string;
  readonly [field: string]: unknown;
}

/** What the receiver answers to one POST: a status (with headers), or `hang` (read the request, never answer). */
export type ReceiverAnswer = number | { readonly status: number; readonly headers: Readonly<Record<string, string>> } | 'hang';

export interface ReceivedPost {
  readonly event: ReceivedEvent;
  readonly headers: IncomingHttpHeaders;
  /** The status answered, or `hang`. */
  readonly answer: number | 'hang';
  /** performance.now() when the request had arrived in full. */
  readonly at: number;
}

class Waiters<T> {
  readonly items: T[] = [];
  #waiters: Array<() => void> = [];

  push(item: T): void {
    this.items.push(item);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves once `count` items satisfy `predicate` (from index `since`); rejects after `timeoutMs`. */
  async waitFor(predicate: (item: T) => boolean, what: string, timeoutMs: number, count = 1, since = 0): Promise<T[]> {
    const deadline = Date.now() + timeoutMs;
    const matching: T[] = [];
    let scanned = since;
    for (;;) {
      // Only items that arrived since the last look are tested: a wait for 20,000 items stays linear.
      for (; scanned < this.items.length; scanned++) if (predicate(this.items[scanned]!)) matching.push(this.items[scanned]!);
      if (matching.length >= count) return matching;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(this.items.slice(since)).slice(0, 2000)}`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left);
        this.#waiters.push(resolve);
      });
      clearTimeout(timer);
    }
  }
}

export class EventReceiver {
  readonly #server: Server;
  readonly #posts = new Waiters<ReceivedPost>();
  readonly #sockets = new Set<Socket>();
  readonly #hanging = new Set<ServerResponse>();
  /** Answers to the next POSTs, in order; when empty, `#fallback`. */
  readonly #script: ReceiverAnswer[];
  #fallback: ReceiverAnswer;
  address = '';

  private constructor(script: readonly ReceiverAnswer[], fallback: ReceiverAnswer) {
    this.#script = [...script];
    this.#fallback = fallback;
    this.#server = createServer((request, response) => void this.#handle(request, response));
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  /** A receiver answering `script` in order, then `fallback` (default 200) to every later POST. */
  static async start(script: readonly ReceiverAnswer[] = [], fallback: ReceiverAnswer = 200): Promise<EventReceiver> {
    const receiver = new EventReceiver(script, fallback);
    receiver.#server.listen({ host: '127.0.0.1', port: 0 });
    await once(receiver.#server, 'listening');
    receiver.address = `127.0.0.1:${(receiver.#server.address() as AddressInfo).port}`;
    return receiver;
  }

  get url(): string {
    return `http://${this.address}/alerts`;
  }

  get posts(): readonly ReceivedPost[] {
    return this.#posts.items;
  }

  /** Events answered 2xx, in arrival order. */
  delivered(): ReceivedEvent[] {
    return this.#posts.items.filter((post) => post.answer !== 'hang' && post.answer < 300).map((post) => post.event);
  }

  waitForPosts(predicate: (post: ReceivedPost) => boolean, what: string, timeoutMs: number, count = 1): Promise<ReceivedPost[]> {
    return this.#posts.waitFor(predicate, what, timeoutMs, count);
  }

  /** Connections open to the receiver now. */
  get openSockets(): number {
    return this.#sockets.size;
  }

  async close(): Promise<void> {
    for (const response of this.#hanging) response.destroy();
    for (const socket of this.#sockets) socket.destroy();
    if (this.#server.listening) {
      this.#server.close();
      await once(this.#server, 'close');
    }
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const answer = this.#script.length > 0 ? this.#script.shift()! : this.#fallback;
    const at = performance.now();
    const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ReceivedEvent;
    if (answer === 'hang') {
      this.#hanging.add(response);
      this.#posts.push({ event, headers: request.headers, answer, at });
      return;
    }
    const { status, headers } = typeof answer === 'number' ? { status: answer, headers: {} } : answer;
    response.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(String(status));
    this.#posts.push({ event, headers: request.headers, answer: status, at });
  }
}

/** One SSE message as parsed from the stream. */
export interface SseMessage {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
  readonly json: ReceivedEvent;
}

export interface SseOptions {
  readonly token?: string;
  readonly lastEventId?: string;
  /** Query string without `?`, e.g. `types=down,up`. */
  readonly query?: string;
}

export class SseReader {
  readonly #messages = new Waiters<SseMessage>();
  readonly comments: string[] = [];
  readonly response: IncomingMessage;
  #buffer = '';
  #ended = false;

  private constructor(response: IncomingMessage) {
    this.response = response;
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => this.#feed(chunk));
    response.on('end', () => {
      this.#ended = true;
      this.#messages.push(END);
    });
    response.on('error', () => undefined);
  }

  /** Opens `GET /v1/events`; resolves once the status line arrived (rejects on a non-200, with the body). */
  static async open(adminAddress: string, options: SseOptions = {}): Promise<SseReader> {
    const response = await openEvents(adminAddress, options);
    if (response.statusCode !== 200) {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      throw new Error(`GET /v1/events: ${response.statusCode} ${Buffer.concat(chunks).toString('utf8')}`);
    }
    return new SseReader(response);
  }

  get messages(): SseMessage[] {
    return this.#messages.items.filter((message) => message !== END);
  }

  get ended(): boolean {
    return this.#ended;
  }

  waitFor(predicate: (message: SseMessage) => boolean, what: string, timeoutMs: number, count = 1): Promise<SseMessage[]> {
    return this.#messages.waitFor((message) => message !== END && predicate(message), what, timeoutMs, count);
  }

  /** Resolves when the server ends the stream. */
  async waitForEnd(timeoutMs: number): Promise<void> {
    await this.#messages.waitFor((message) => message === END, 'the end of the stream', timeoutMs);
  }

  close(): void {
    this.response.destroy();
  }

  /** Splits on blank lines; `id:`, `event:`, `data:` fields and `:` comments (the parts of the SSE format ringlb uses). */
  #feed(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const end = this.#buffer.indexOf('\n\n');
      if (end < 0) return;
      const block = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      let id: string | undefined;
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
        else if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length === 0) continue;
      const text = data.join('\n');
      this.#messages.push({ id, event, data: text, json: JSON.parse(text) as ReceivedEvent });
    }
  }
}

/** A sentinel pushed when the stream ends, so a wait for the end is a wait on an arrival too. */
const END = { id: undefined, event: '', data: '', json: { id: 0, time: '', type: '' } } as SseMessage;

/** The raw response of `GET /v1/events` (any status). */
export async function openEvents(adminAddress: string, options: SseOptions = {}): Promise<IncomingMessage> {
  const [host, port] = [adminAddress.slice(0, adminAddress.lastIndexOf(':')), adminAddress.slice(adminAddress.lastIndexOf(':') + 1)];
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
  const request = httpRequest({ host, port: Number(port), path: `/v1/events${options.query === undefined ? '' : `?${options.query}`}`, headers, agent: false });
  request.end();
  const [response] = (await once(request, 'response')) as [IncomingMessage];
  return response;
}
