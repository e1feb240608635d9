/**
 * One active health check of one backend: `tcp` (connect), `send_expect` (connect, send, read until
 * the reply matches) or `http` (GET, status in range). Used by the scheduler (scheduler.ts); the
 * result feeds the health state owner's rise/fall hysteresis.
 *
 * Guarantees, whatever the peer does:
 * - never throws or rejects: every failure is a `CheckResult` with a short reason (the errno code
 *   such as ECONNREFUSED, 'timeout', 'expect mismatch: got "..."', 'HTTP 503', 'aborted'); a
 *   send_expect peer that replied without a match by the deadline is 'expect mismatch', a silent
 *   one 'timeout';
 * - bounded by `config.timeoutMs` overall (connect + send + read), like HAProxy's `timeout check`;
 * - the socket is destroyed before the promise resolves, so no check leaves a socket behind;
 * - at most MAX_REPLY_BYTES of a reply are kept, so a chatty peer cannot grow memory.
 */
import { request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ExpectMatcher, HealthCheckConfig } from '../config/types.js';
import type { CheckResult, CheckTarget } from './types.js';

/**
 * Reply bytes kept by a send_expect check (and HTTP body bytes drained before closing). 16 KiB is
 * HAProxy's default `tune.bufsize`, the buffer its tcp-check `expect` rules match against.
 */
export const MAX_REPLY_BYTES = 16 * 1024;

/** Printable bytes of a mismatching reply shown in the reason (log lines stay one short line). */
const EXCERPT_BYTES = 40;

/** Header sent by http checks, so backends can tell checks from traffic in their access logs. */
export const HEALTH_CHECK_USER_AGENT = 'ringlb-health';

/** Runs one check against `config.port ?? target.port`. Resolves; never rejects. */
export function runHealthCheck(
  target: CheckTarget,
  config: HealthCheckConfig,
  signal?: AbortSignal,
): Promise<CheckResult> {
  const startedAt = performance.now();
  const port = config.port ?? target.port;
  return new Promise<CheckResult>((resolve) => {
    let settled = false;
    /** What the check holds open; set once it has started. */
    let running: RunningCheck | null = null;

    const finish = (ok: boolean, reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      signal?.removeEventListener('abort', onAbort);
      running?.close();
      resolve({ ok, reason, durationMs: performance.now() - startedAt });
    };
    const onAbort = (): void => finish(false, 'aborted');

    const deadline = setTimeout(() => finish(false, running?.timeoutReason() ?? 'timeout'), config.timeoutMs);
    // The socket, not this timer, keeps the process alive while a check runs.
    deadline.unref();
    if (signal?.aborted) {
      finish(false, 'aborted');
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });

    try {
      const run = config.type === 'http' ? runHttp : config.type === 'send_expect' ? runSendExpect : runTcp;
      // Read per check: the pool re-resolves backend names, and a check follows the current address.
      running = run({ connectHost: target.connectHost ?? target.host, host: target.host, proxyHeader: target.proxyHeader }, port, config, finish);
    } catch (error) {
      // E.g. a synchronous ERR_INVALID_ARG from node:net/node:http: still a result, not a throw.
      finish(false, errorReason(error));
    }
    // A check that finished synchronously (none does today) could not close what it opened yet.
    if (settled) running?.close();
  });
}

type Finish = (ok: boolean, reason: string) => void;

interface RunningCheck {
  /** Closes what the check opened (idempotent). */
  close(): void;
  /** The reason reported when the overall timeout fires. */
  timeoutReason(): string;
}

/** Starts a check; `finish` is called at most once with the verdict (later calls are ignored). */
type CheckRunner = (target: CheckEndpoint, port: number, config: HealthCheckConfig, finish: Finish) => RunningCheck;

/** Where a check connects (an IP literal once the name is resolved), the host as written (HTTP Host header), and any PROXY header to send first. */
interface CheckEndpoint {
  readonly connectHost: string;
  readonly host: string;
  readonly proxyHeader?: Uint8Array;
}

const TIMEOUT = 'timeout';

/** Connect, then close at once: the layer-4 check (HAProxy `check` with no options). */
const runTcp: CheckRunner = (target, port, _config, finish) => {
  const socket = connect({ host: target.connectHost, port });
  socket.on('error', (error) => finish(false, errorReason(error)));
  socket.on('connect', () => finish(true, 'ok'));
  return { close: () => socket.destroy(), timeoutReason: () => TIMEOUT };
};

/**
 * Connect, write `send` (if any), then accumulate the reply until `expect` matches. The peer closing
 * first, or the buffer filling up without a match, is 'expect mismatch' with an excerpt of the reply.
 */
const runSendExpect: CheckRunner = (target, port, config, finish) => {
  const socket: Socket = connect({ host: target.connectHost, port });
  const reply = Buffer.allocUnsafe(MAX_REPLY_BYTES);
  let received = 0;
  const matches = expectMatcher(config.expect);

  socket.on('error', (error) => finish(false, errorReason(error)));
  socket.on('connect', () => {
    if (target.proxyHeader !== undefined) socket.write(target.proxyHeader);
    if (config.send !== null && config.send.length > 0) socket.write(config.send);
    // No expect: the check passes once the payload is handed to the kernel (connect + send).
    if (matches === null) finish(true, 'ok');
  });
  socket.on('data', (chunk: Buffer) => {
    const searchFrom = received;
    const kept = Math.min(chunk.length, MAX_REPLY_BYTES - received);
    chunk.copy(reply, received, 0, kept);
    received += kept;
    if (matches?.(reply, received, searchFrom)) {
      finish(true, 'ok');
    } else if (received === MAX_REPLY_BYTES) {
      finish(false, `expect mismatch: no match in the first ${MAX_REPLY_BYTES} bytes, got ${excerpt(reply, received)}`);
    }
  });
  socket.on('end', () => {
    finish(false, received === 0 ? 'expect mismatch: closed without a reply' : `expect mismatch: got ${excerpt(reply, received)}`);
  });
  return {
    close: () => socket.destroy(),
    // A peer that answered something else and kept the connection open (redis answers an unknown
    // command with -ERR and waits for the next one) is a mismatch, not a silent peer.
    timeoutReason: () => (received === 0 ? TIMEOUT : `expect mismatch: got ${excerpt(reply, received)}`),
  };
};

/** Does the reply (`reply[0, length)`) match? `searchFrom` = bytes already searched before. */
type ReplyMatcher = (reply: Buffer, length: number, searchFrom: number) => boolean;

/** Compiled regexes, one per config object (configs are immutable and live as long as the pool). */
const compiledRegexes = new WeakMap<ExpectMatcher, RegExp>();

function expectMatcher(expect: ExpectMatcher | null): ReplyMatcher | null {
  if (expect === null) return null;
  if (expect.kind === 'substring') {
    const needle = expect.bytes;
    // Restart the search needle.length − 1 bytes before the new data: a match split across two
    // chunks is found, and bytes already searched are not searched again.
    return (reply, length, searchFrom) =>
      reply.subarray(0, length).indexOf(needle, Math.max(0, searchFrom - needle.length + 1)) !== -1;
  }
  let regex = compiledRegexes.get(expect);
  if (regex === undefined) {
    regex = new RegExp(expect.source);
    compiledRegexes.set(expect, regex);
  }
  const compiled = regex;
  // The whole reply so far is decoded each time (≤ 16 KiB): a UTF-8 character split across chunks
  // and a match spanning chunks are both handled. `lastIndex` is reset in case of a /g-like source.
  return (reply, length) => {
    compiled.lastIndex = 0;
    return compiled.test(reply.toString('utf8', 0, length));
  };
}

/**
 * GET `http.path` over HTTP/1.1 with `Connection: close` and no agent (a fresh connection per
 * check, as HAProxy's httpchk): healthy when the status is within `expectStatus`, inclusive. The
 * body is drained up to MAX_REPLY_BYTES and discarded; the verdict comes with the status line.
 */
const runHttp: CheckRunner = (target, port, config, finish) => {
  const http = config.http ?? { path: '/', host: null, expectStatus: [200, 399] as const };
  const req = request({
    host: target.connectHost,
    port,
    method: 'GET',
    path: http.path,
    // A pool that sends PROXY protocol: its header goes first on the check's own connection. Node
    // uses `createConnection` only without an agent (agent: false would make a fresh Agent, which
    // ignores it); either way each check has a connection of its own.
    ...(target.proxyHeader === undefined
      ? { agent: false as const }
      : { createConnection: () => withPreamble(connect({ host: target.connectHost, port }), target.proxyHeader!) }),
    headers: {
      // The name as written (`localhost:9001`), not the address it resolved to.
      host: http.host ?? hostHeader(target.host, port),
      connection: 'close',
      'user-agent': HEALTH_CHECK_USER_AGENT,
    },
  });
  req.on('error', (error) => finish(false, errorReason(error)));
  req.on('response', (res: IncomingMessage) => {
    const status = res.statusCode ?? 0;
    const [low, high] = http.expectStatus;
    const ok = status >= low && status <= high;
    const reason = ok ? 'ok' : `HTTP ${status}`;
    // Read the body to its end, so the server sees an orderly close, but not more than the cap:
    // a huge or endless body ends the check at once (close() destroys the socket).
    let drained = 0;
    res.on('data', (chunk: Buffer) => {
      drained += chunk.length;
      if (drained >= MAX_REPLY_BYTES) finish(ok, reason);
    });
    res.on('end', () => finish(ok, reason));
    res.on('error', () => finish(ok, reason));
  });
  req.end();
  return { close: () => req.destroy(), timeoutReason: () => TIMEOUT };
};

/** Writes `preamble` first (queued by net.Socket until the connect completes). */
function withPreamble(socket: Socket, preamble: Uint8Array): Socket {
  socket.write(preamble);
  return socket;
}

/** Default Host header: the target as `host:port`, IPv6 in brackets (RFC 9110 §7.2, RFC 3986). */
function hostHeader(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The errno-style code of a socket/HTTP error ('ECONNREFUSED', 'HPE_INVALID_CONSTANT', ...). */
function errorReason(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  if (error instanceof Error) return error.message;
  return 'error';
}

/** A short, quoted, printable excerpt of a reply: `"-ERR unknown\r\n"`, bytes ≥ 0x7f as \xNN. */
export function excerpt(reply: Uint8Array, length: number): string {
  let text = '';
  const shown = Math.min(length, EXCERPT_BYTES);
  for (let i = 0; i < shown; i += 1) {
    const byte = reply[i]!;
    if (byte === 0x0d) text += '\\r';
    else if (byte === 0x0a) text += '\\n';
    else if (byte === 0x09) text += '\\t';
    else if (byte === 0x22) text += '\\"';
    else if (byte === 0x5c) text += '\\\\';
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `"${text}"${length > shown ? '…' : ''}`;
}
