/**
 * The process's one pino root logger. JSON lines on stdout, one synchronous write per line, so a
 * line logged right before `process.exit()` is never lost and tests read lines as they happen.
 *
 * Child loggers (per listener, per pool) are created once at start-up and reused: pino caches a
 * child's bindings as a pre-serialised string, so a log call does no per-call binding work, and a
 * disabled level is a no-op function (pino's `noop`), which is what keeps the hot path free.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from './config/types.js';

export type { Logger } from 'pino';

export interface RootLoggerOptions {
  readonly level: LogLevel;
  /** Defaults to stdout (fd 1). Tests and embedders may pass another stream. */
  readonly destination?: DestinationStream;
}

export function createRootLogger(options: RootLoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level: options.level,
      base: { pid: process.pid },
      // Numeric epoch milliseconds (pino's default) are cheapest; keep them.
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
