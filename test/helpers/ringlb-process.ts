/**
 * Run the real CLI (`node dist/src/cli.js ...`) as a child process and read its JSON log lines as
 * they arrive. Waiting is event-driven: a wait resolves on the matching line and fails the test
 * after a timeout, never sleeps.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LogCapture, type LogLine } from './log-capture.js';

/** dist/test/helpers/ → dist/src/cli.js */
export const CLI_PATH = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export type { LogLine } from './log-capture.js';

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A temporary directory for config files, removed by `remove()`. */
export class TempDir {
  readonly path = mkdtempSync(join(tmpdir(), 'ringlb-test-'));
  #count = 0;

  writeJson(value: unknown): string {
    return this.writeText(JSON.stringify(value, null, 2));
  }

  writeText(text: string): string {
    this.#count += 1;
    const file = join(this.path, `config-${this.#count}.json`);
    writeFileSync(file, text);
    return file;
  }

  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

export class RinglbProcess {
  readonly child: ChildProcess;
  /** Its stdout, parsed line by line; waits end when stdout closes (after the last line). */
  readonly log = new LogCapture();
  stderr = '';
  readonly exited: Promise<ExitStatus>;

  /**
   * `env` is added to this process's environment (e.g. RINGLB_TEST_HOOKS=1 for the fault hook).
   * `launcher` runs node under another command, e.g. `['prlimit', '--nofile=96', '--']`.
   */
  constructor(args: readonly string[], env: Readonly<Record<string, string>> = {}, launcher: readonly string[] = []) {
    const command = [...launcher, process.execPath, CLI_PATH, ...args];
    this.child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => this.log.write(chunk));
    this.child.stdout!.on('close', () => this.log.close(`ringlb's stdout closed (exit ${this.child.exitCode ?? this.child.signalCode ?? '?'})`));
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => resolve({ code, signal }));
    });
  }

  get lines(): LogLine[] {
    return this.log.lines;
  }

  /** stdout text that was not JSON (should stay empty for `run`). */
  get otherStdout(): string[] {
    return this.log.otherText;
  }

  /**
   * Resolve with the first line matching `predicate`, among lines already read (from index `since`
   * on) or yet to come.
   */
  async waitForLine(predicate: (line: LogLine) => boolean, timeoutMs = 10_000, what = 'log line', since = 0): Promise<LogLine> {
    try {
      return await this.log.waitForLine(predicate, timeoutMs, what, since);
    } catch (error) {
      throw new Error(`${(error as Error).message}; stderr: ${this.stderr}`);
    }
  }

  /** Access-log lines seen so far. */
  accessLines(): LogLine[] {
    return this.lines.filter((line) => line.msg === 'connection closed');
  }

  /** Wait until `count` access-log lines have been written in total. */
  async waitForAccessLines(count: number, timeoutMs = 10_000): Promise<LogLine[]> {
    let seen = 0;
    await this.waitForLine(
      (line) => line.msg === 'connection closed' && ++seen >= count,
      timeoutMs,
      `${count} access-log lines`,
    ).catch((error: unknown) => {
      if (this.accessLines().length >= count) return;
      throw error;
    });
    return this.accessLines();
  }

  /** Port of a listener, read from its `listener ready` line. */
  async listenerPort(listener: string, timeoutMs = 10_000): Promise<number> {
    const line = await this.waitForLine(
      (l) => l.msg === 'listener ready' && l.listener === listener,
      timeoutMs,
      `listener ready ${listener}`,
    );
    const address = String(line.address);
    return Number(address.slice(address.lastIndexOf(':') + 1));
  }

  async waitForExit(timeoutMs = 10_000): Promise<ExitStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`ringlb did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** For after/finally: make sure the child is gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    const duplicates = this.log.duplicateKeyLines;
    if (duplicates.length > 0) throw new Error(`ringlb wrote ${duplicates.length} log line(s) naming a field twice, e.g. ${duplicates[0]}`);
  }
}

/** Start `ringlb run --config <file>` and wait for every named listener to be ready. */
export async function startRinglb(
  configFile: string,
  listeners: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<{ ringlb: RinglbProcess; ports: Map<string, number> }> {
  const ringlb = new RinglbProcess(['run', '--config', configFile], env);
  try {
    const ports = new Map<string, number>();
    for (const name of listeners) ports.set(name, await ringlb.listenerPort(name));
    return { ringlb, ports };
  } catch (error) {
    await ringlb.kill();
    throw error;
  }
}

/** Run the CLI to completion (for `check`, usage errors, bad configs). */
export async function runCli(
  args: readonly string[],
  timeoutMs = 10_000,
): Promise<{ status: ExitStatus; stdout: string; stderr: string }> {
  const process_ = new RinglbProcess(args);
  try {
    const status = await process_.waitForExit(timeoutMs);
    // 'exit' can precede the last stdout/stderr data; wait for the streams to end too.
    await Promise.all([streamEnded(process_.child.stdout!), streamEnded(process_.child.stderr!)]);
    const stdout = [...process_.otherStdout, ...process_.lines.map((l) => JSON.stringify(l))].join('\n');
    return { status, stdout, stderr: process_.stderr };
  } finally {
    await process_.kill();
  }
}

function streamEnded(stream: NodeJS.ReadableStream & { readableEnded?: boolean }): Promise<void> {
  if (stream.readableEnded === true) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}
