/**
 * The one way tests read ringlb's JSON log lines, whether they come from an in-process pino
 * logger (`capture.logger(...)`) or from a child process's stdout (`capture.write(chunk)`).
 * Lines are parsed as they arrive; a wait resolves on the first matching line, already seen or
 * yet to come, and fails after a timeout or when the source ends (`close`). Never a sleep.
 */
import { visit } from 'jsonc-parser';
import { createRootLogger, type Logger } from '../../src/log.js';
import type { LogLevel } from '../../src/config/types.js';

export type LogLine = Record<string, unknown> & { msg?: string };

interface LineWaiter {
  readonly predicate: (line: LogLine) => boolean;
  readonly resolve: (line: LogLine) => void;
  readonly reject: (error: Error) => void;
}

export class LogCapture {
  readonly lines: LogLine[] = [];
  /** Text that was not a JSON line (stays empty for `ringlb run`). */
  readonly otherText: string[] = [];
  /**
   * Lines that name a field twice (pino writes a child's bindings and the call's fields side by
   * side): JSON.parse keeps the last, strict JSON tools reject or drop them. Should stay empty.
   */
  readonly duplicateKeyLines: string[] = [];
  #pending = '';
  #waiters = new Set<LineWaiter>();
  #closedReason: string | null = null;

  /** A logger, configured as ringlb's root logger, whose lines land here. */
  logger(level: LogLevel = 'info'): Logger {
    return createRootLogger({ level, destination: { write: (text: string) => this.write(text) } });
  }

  /** Feeds raw output; chunks may end mid-line. */
  write(chunk: string): void {
    this.#pending += chunk;
    let newline: number;
    while ((newline = this.#pending.indexOf('\n')) >= 0) {
      const text = this.#pending.slice(0, newline);
      this.#pending = this.#pending.slice(newline + 1);
      if (text === '') continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        this.otherText.push(text);
        continue;
      }
      if (hasDuplicateTopLevelKey(text)) this.duplicateKeyLines.push(text);
      this.lines.push(line);
      for (const waiter of this.#waiters) {
        if (waiter.predicate(line)) {
          this.#waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    }
  }

  /** No more lines will come: every pending wait fails at once with `reason`. */
  close(reason: string): void {
    this.#closedReason = reason;
    for (const waiter of this.#waiters) waiter.reject(new Error(reason));
    this.#waiters.clear();
  }

  /** The first line from index `since` on (already seen or future) matching `predicate`. */
  waitForLine(predicate: (line: LogLine) => boolean, timeoutMs = 10_000, what = 'log line', since = 0): Promise<LogLine> {
    const seen = this.lines.slice(since).find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.#closedReason !== null) return Promise.reject(new Error(`${this.#closedReason} while waiting for ${what}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter: LineWaiter = {
        predicate,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(new Error(`${error.message} while waiting for ${what}`));
        },
      };
      this.#waiters.add(waiter);
    });
  }

  /** The first line with this `msg` whose fields equal `fields`. */
  waitFor(msg: string, fields: Record<string, unknown> = {}, timeoutMs = 10_000, since = 0): Promise<LogLine> {
    const predicate = (line: LogLine): boolean => line.msg === msg && Object.entries(fields).every(([key, value]) => line[key] === value);
    return this.waitForLine(predicate, timeoutMs, `"${msg}" ${JSON.stringify(fields)}`, since);
  }

  /** Lines with this `msg` so far. */
  withMsg(msg: string): LogLine[] {
    return this.lines.filter((line) => line.msg === msg);
  }

  count(msg: string): number {
    return this.withMsg(msg).length;
  }
}

function hasDuplicateTopLevelKey(text: string): boolean {
  const seen = new Set<string>();
  let duplicate = false;
  visit(text, {
    onObjectProperty(property, _offset, _length, _line, _character, pathSupplier) {
      if (pathSupplier().length !== 0) return;
      if (seen.has(property)) duplicate = true;
      seen.add(property);
    },
  });
  return duplicate;
}
