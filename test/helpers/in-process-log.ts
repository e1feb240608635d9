/**
 * Log lines of an in-process Ringlb (pino to memory), so tests wait for a line: event-driven,
 * never a sleep.
 */
import { createRootLogger, type Logger } from '../../src/log.js';

export type LogLine = Record<string, unknown> & { msg: string };

export class CapturedLog {
  readonly lines: LogLine[] = [];
  readonly logger: Logger;
  #waiters = new Set<{ predicate: (line: LogLine) => boolean; resolve: (line: LogLine) => void }>();

  constructor() {
    this.logger = createRootLogger({ level: 'info', destination: { write: (text: string) => this.#write(text) } });
  }

  #write(text: string): void {
    for (const part of text.split('\n')) {
      if (part === '') continue;
      const line = JSON.parse(part) as LogLine;
      this.lines.push(line);
      for (const waiter of this.#waiters) {
        if (waiter.predicate(line)) {
          this.#waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    }
  }

  /** The first line from `from` on (already logged or future) with this msg and these fields. */
  waitFor(msg: string, fields: Record<string, unknown> = {}, from = 0, timeoutMs = 10_000): Promise<LogLine> {
    const predicate = (line: LogLine): boolean => line.msg === msg && Object.entries(fields).every(([key, value]) => line[key] === value);
    const found = this.lines.slice(from).find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (line: LogLine) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no "${msg}" ${JSON.stringify(fields)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /** Lines with this msg so far. */
  count(msg: string): number {
    return this.lines.filter((line) => line.msg === msg).length;
  }
}
