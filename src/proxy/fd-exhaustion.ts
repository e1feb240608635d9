/**
 * Running out of file descriptors: how a listener tells it happened and how long it stops accepting.
 *
 * What Node and libuv do on their own (deps/uv/src/unix/stream.c, `uv__server_io`): when accept()
 * fails with EMFILE or ENFILE, libuv closes a reserve descriptor it keeps per loop, accepts and
 * closes every connection waiting in the queue, and reopens the reserve ("the EMFILE trick"). Node
 * hears nothing of it: those clients were connected and closed at once, silently, and libuv keeps
 * the listening socket readable, so it does it again on the next connection. Only when the reserve
 * is gone too does the error reach `net.Server`'s 'error' event (or our handle server's callback).
 *
 * What ringlb does instead: the first sign that descriptors ran out — an upstream connect failing
 * with EMFILE/ENFILE (socket() is where a busy proxy hits the limit first: every accepted client
 * asks for its upstream socket in the same turn), or libuv reporting the accept error — closes that
 * listener's socket for a short interval that grows while exhaustion goes on
 * (`AcceptBackoff`). Closing is the only way to stop libuv accepting: it has no "stop listening"
 * short of closing the handle. While it is closed the kernel refuses new clients (or, with
 * several workers, hands them to a worker still listening), the connections already held keep
 * being served, and closing frees the listening descriptor itself. Clients waiting in the closed
 * socket's accept queue are reset by the kernel: the listener reads how many first and counts them
 * (outcome `rejected_no_fds`), with the client whose upstream could not be opened.
 *
 * Waiting for an error is not enough: libuv's trick runs *instead of* reporting EMFILE, so once the
 * last descriptor went to an upstream socket, every later client would be closed silently and
 * nothing would tell us. Hence a watermark, checked at every accept for the price of reading an
 * integer: Linux hands out the lowest free descriptor, so a client that got descriptor `fd` proves
 * that every descriptor below `fd` is in use. When `fd` comes within CONTROL_PLANE_RESERVE of the
 * soft limit, the client is refused (counted, logged) and the listener pauses. That also keeps a
 * few descriptors for the control plane: the admin server (so /metrics still answers), health
 * checks, a reload's config file. The watermark can miss exhaustion when closed connections left
 * holes low in the table (then a later descriptor lands low); the EMFILE on the upstream connect,
 * one accept later, catches that case.
 */
import { readFileSync } from 'node:fs';

/**
 * EMFILE: this process reached its descriptor limit (RLIMIT_NOFILE, `ulimit -n`); ENFILE: the
 * system did. Either way the failure is ours, not the peer's: it says nothing about a backend's
 * health and must not feed outlier detection.
 */
export function isOutOfFileDescriptors(code: string | undefined): boolean {
  return code === 'EMFILE' || code === 'ENFILE';
}

/** First pause: short, a burst that ran out often recovers within one round trip of closes. */
export const FIRST_PAUSE_MS = 50;
/** Doubling stops here: a listener that cannot get descriptors retries at least this often. */
export const MAX_PAUSE_MS = 2000;
/** Exhaustion that returns within this after a resume continues the growth; later starts over. */
export const BACKOFF_RESET_MS = 10_000;

/** The growing pause: 50, 100, 200 … 2000 ms, back to 50 after BACKOFF_RESET_MS without exhaustion. */
export class AcceptBackoff {
  #nextMs = FIRST_PAUSE_MS;
  #lastPauseAt = Number.NEGATIVE_INFINITY;

  /** The pause to take now (ms); the next one is twice as long, up to MAX_PAUSE_MS. */
  next(nowMs: number): number {
    if (nowMs - this.#lastPauseAt > BACKOFF_RESET_MS + this.#nextMs) this.#nextMs = FIRST_PAUSE_MS;
    this.#lastPauseAt = nowMs;
    const pauseMs = this.#nextMs;
    this.#nextMs = Math.min(MAX_PAUSE_MS, this.#nextMs * 2);
    return pauseMs;
  }
}

/**
 * Descriptors the data plane leaves to the rest of the process: the admin listener and its
 * requests, health checks, reading a config on reload, log files.
 */
export const CONTROL_PLANE_RESERVE = 16;

/**
 * The soft RLIMIT_NOFILE (`ulimit -n`) from /proc/self/limits, read when a listener is created
 * (prlimit can change it later; a listener created after that reads the new one); Infinity where
 * it is unlimited or cannot be read (not Linux): then only the errors tell.
 */
export function openFilesSoftLimit(): number {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return match === null || match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** The descriptor number from which an accepted client is refused (see the module comment). */
export function acceptWatermark(softLimit: number): number {
  return softLimit - CONTROL_PLANE_RESERVE;
}
