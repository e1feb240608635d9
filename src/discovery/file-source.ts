/**
 * `file` discovery: a JSON array of backends (`[{"address":"127.0.0.1:9001","weight":2}]`), read
 * at start and whenever it changes.
 *
 * Change detection, belt and braces:
 * - `fs.watch` on the DIRECTORY, filtered by file name. Watching the file itself breaks on an
 *   editor's atomic save (write `x.tmp`, rename over `x`): the watched inode is gone and inotify
 *   reports nothing more for the new file. The directory sees the rename.
 * - Events are debounced (default 50 ms): one save is often several events (truncate, write,
 *   rename), and reading between them would see a half-written file.
 * - A slow poll (default 2 s) compares mtime, size and inode, because fs.watch can miss events
 *   (network file systems, some container overlays; Node docs "fs.watch caveats").
 *
 * A file that cannot be read, is not JSON or holds a bad entry is refused as a whole: `onError`
 * names the problem (`backends.json: [2].weight: must be an integer 0..10000, got 1.5`) and the
 * last good set stays. The same error is reported once; a different one (the file was edited and
 * is still wrong) is reported again. Identical content is no update.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Backend } from '../backend.js';
import { parseBackendList, sameBackendSet } from './backend-entries.js';
import type { DiscoveryListener, DiscoverySource } from './types.js';

export interface FileSourceOptions {
  /** The JSON file; relative paths resolve against the process's working directory. */
  readonly path: string;
  /** Quiet time after a change event before reading; default 50. */
  readonly debounceMs?: number;
  /** Poll interval comparing mtime/size/inode, the fallback for missed events; default 2000. */
  readonly pollIntervalMs?: number;
  /** Default true; false relies on the poll alone (file systems without inotify). */
  readonly watch?: boolean;
}

export const DEFAULT_FILE_DEBOUNCE_MS = 50;
export const DEFAULT_FILE_POLL_INTERVAL_MS = 2000;

export function createFileSource(options: FileSourceOptions): DiscoverySource {
  return new FileSource(options);
}

class FileSource implements DiscoverySource {
  readonly kind = 'file';
  readonly description: string;
  readonly #path: string;
  readonly #fileName: string;
  readonly #debounceMs: number;
  readonly #pollIntervalMs: number;
  readonly #watchEnabled: boolean;
  #listener: DiscoveryListener | null = null;
  #watcher: FSWatcher | null = null;
  #debounceTimer: NodeJS.Timeout | null = null;
  #pollTimer: NodeJS.Timeout | null = null;
  #stopped = false;
  /** A read is running; a change seen meanwhile sets `#rereadPending` so it is not lost. */
  #reading: Promise<void> | null = null;
  #rereadPending = false;
  /** What the poll compares: `mtimeMs:size:ino` of the last stat, '' when never seen. */
  #lastStamp = '';
  #lastGood: readonly Backend[] | null = null;
  /** The message of the outage being reported, null while healthy. */
  #failure: string | null = null;

  constructor(options: FileSourceOptions) {
    if (typeof options.path !== 'string' || options.path === '') throw new TypeError('file discovery: path must be a non-empty string');
    this.#path = resolve(options.path);
    this.#fileName = basename(this.#path);
    this.#debounceMs = options.debounceMs ?? DEFAULT_FILE_DEBOUNCE_MS;
    this.#pollIntervalMs = options.pollIntervalMs ?? DEFAULT_FILE_POLL_INTERVAL_MS;
    this.#watchEnabled = options.watch ?? true;
    this.description = `file ${options.path}`;
  }

  start(listener: DiscoveryListener): void {
    if (this.#listener !== null) throw new Error(`${this.description}: start() called twice`);
    this.#listener = listener;
    if (this.#watchEnabled) this.#startWatcher();
    this.#schedulePoll();
    this.#read();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#debounceTimer !== null) clearTimeout(this.#debounceTimer);
    if (this.#pollTimer !== null) clearTimeout(this.#pollTimer);
    this.#debounceTimer = null;
    this.#pollTimer = null;
    await this.#reading;
  }

  #startWatcher(): void {
    try {
      this.#watcher = watch(dirname(this.#path), { persistent: false }, (_event, name) => {
        // `name` can be null on some platforms (Node docs): then any event may be ours.
        if (name === null || name === this.#fileName) this.#scheduleRead();
      });
      // A watcher error (the directory was removed) leaves the poll in charge.
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = null;
      });
    } catch {
      // The directory does not exist (yet): the poll notices when the file appears.
      this.#watcher = null;
    }
  }

  #scheduleRead(): void {
    if (this.#stopped) return;
    if (this.#debounceTimer !== null) clearTimeout(this.#debounceTimer);
    this.#debounceTimer = setTimeout(() => {
      this.#debounceTimer = null;
      this.#read();
    }, this.#debounceMs);
  }

  #schedulePoll(): void {
    if (this.#stopped) return;
    this.#pollTimer = setTimeout(() => {
      this.#pollTimer = null;
      void this.#poll();
    }, this.#pollIntervalMs);
  }

  async #poll(): Promise<void> {
    const stamp = await this.#stamp();
    if (this.#stopped) return;
    // Unchanged file (or still missing: already reported): nothing to do.
    if (stamp !== this.#lastStamp) this.#read();
    this.#schedulePoll();
  }

  async #stamp(): Promise<string> {
    try {
      const info = await stat(this.#path);
      return `${info.mtimeMs}:${info.size}:${info.ino}`;
    } catch {
      return '';
    }
  }

  /** Reads now, or right after the read in flight (which may have seen older content). */
  #read(): void {
    if (this.#stopped) return;
    if (this.#reading !== null) {
      this.#rereadPending = true;
      return;
    }
    this.#reading = this.#readOnce().finally(() => {
      this.#reading = null;
      if (this.#rereadPending) {
        this.#rereadPending = false;
        this.#read();
      }
    });
  }

  async #readOnce(): Promise<void> {
    // Stamp first: a write landing between stat and read changes the stamp again, so the next
    // poll re-reads rather than trusting a stamp newer than the content read.
    this.#lastStamp = await this.#stamp();
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      this.#fail(`${this.description}: cannot read (${code}): ${(error as Error).message}`);
      return;
    }
    if (this.#stopped) return;

    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      this.#fail(`${this.description}: not valid JSON: ${(error as Error).message}`);
      return;
    }
    const result = parseBackendList(value);
    if ('errors' in result) {
      this.#fail(`${this.description}: ${result.errors.join('; ')}`);
      return;
    }
    this.#succeed(result.backends);
  }

  #fail(message: string): void {
    if (this.#stopped || this.#failure === message) return;
    this.#failure = message;
    this.#listener?.onError(new Error(message));
  }

  #succeed(backends: readonly Backend[]): void {
    if (this.#stopped) return;
    const recovered = this.#failure !== null;
    this.#failure = null;
    if (recovered) this.#listener?.onRecovered?.();
    if (!recovered && this.#lastGood !== null && sameBackendSet(this.#lastGood, backends)) return;
    this.#lastGood = backends;
    this.#listener?.onUpdate(backends);
  }
}
