/**
 * The process's one pino root logger (and one per data-plane worker thread). JSON lines on stdout,
 * one synchronous write per line, so a line logged right before `process.exit()` is never lost,
 * tests read lines as they happen, and lines of several threads never tear or interleave: each is
 * one write(2) of less than PIPE_BUF bytes to the same open file, which Linux keeps whole.
 *
 * Child loggers (per listener, per pool) are created once at start-up and reused: pino caches a
 * child's bindings as a pre-serialised string, so a log call does no per-call binding work, and a
 * disabled level is a no-op function (pino's `noop`), which is what keeps the hot path free.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from './config/types.js';

export type { Logger, DestinationStream } from 'pino';

export interface RootLoggerOptions {
  readonly level: LogLevel;
  /** Defaults to stdout (fd 1). Tests and embedders may pass another stream. */
  readonly destination?: DestinationStream;
  /** Fields on every line besides `pid` (a data-plane worker thread adds `worker`). */
  readonly base?: Readonly<Record<string, unknown>>;
}

export function createRootLogger(options: RootLoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level: options.level,
      base: { pid: process.pid, ...options.base },
      // Numeric epoch milliseconds (pino's default) are cheapest; keep them.
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * The stream `logger` writes to. An embedder's logger may write anywhere; the access log's `stdout`
 * output follows it in the main thread (runtime.ts), as access lines did when they went through it.
 */
export function destinationOf(logger: Logger): DestinationStream | undefined {
  return (logger as unknown as Record<symbol, DestinationStream | undefined>)[pino.symbols.streamSym];
}
