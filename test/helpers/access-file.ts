/**
 * Reading an access-log file as ringlb writes it: waits are woken by inotify (`fs.watch` on the
 * file's directory, which also sees the file created again after a rename), never by a sleep.
 */
import { existsSync, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { LogLine } from './log-capture.js';

export interface FileLines {
  readonly lines: LogLine[];
  /** Text lines that did not parse as JSON (a torn or interleaved write). */
  readonly broken: string[];
}

/** Every line of `path` now (none when it does not exist). The last line must end in a newline to count. */
export function readFileLines(path: string): FileLines {
  const lines: LogLine[] = [];
  const broken: string[] = [];
  if (!existsSync(path)) return { lines, broken };
  const text = readFileSync(path, 'utf8');
  const whole = text.slice(0, text.lastIndexOf('\n') + 1);
  for (const raw of whole.split('\n')) {
    if (raw === '') continue;
    try {
      lines.push(JSON.parse(raw) as LogLine);
    } catch {
      broken.push(raw);
    }
  }
  return { lines, broken };
}

/** Resolves with the file's lines once `done(lines)` holds; fails after `timeoutMs`. */
export function waitForFileLines(path: string, done: (lines: LogLine[]) => boolean, timeoutMs = 10_000, what = 'access lines'): Promise<LogLine[]> {
  return new Promise((resolve, reject) => {
    const name = basename(path);
    const check = (): boolean => {
      const { lines } = readFileLines(path);
      if (!done(lines)) return false;
      finish();
      resolve(lines);
      return true;
    };
    const watcher = watch(dirname(path), (_event, changed) => {
      if (changed === null || changed.toString() === name) check();
    });
    const timer = setTimeout(() => {
      finish();
      const { lines } = readFileLines(path);
      reject(new Error(`${what}: not in ${path} within ${timeoutMs} ms (${lines.length} lines: ${JSON.stringify(lines.slice(-3))})`));
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      watcher.close();
    };
    // Lines written before the watch began.
    check();
  });
}
