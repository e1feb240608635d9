/**
 * A client that opens connections at a steady rate (bounded in count), reads each backend's
 * greeting and closes: the "users" of the failover scenarios (e2e tests and bench/failover.ts).
 */
import { whichBackend } from './clients.js';

export interface ClientLoopResult {
  /** Per connection, in start order: when it started (Date.now()) and which backend greeted, or the error. */
  readonly connections: ReadonlyArray<{ readonly startedAt: number; readonly backend: string | null; readonly error: string | null }>;
  readonly failed: number;
}

export interface ClientLoop {
  /** Resolves when every connection has finished. */
  readonly done: Promise<ClientLoopResult>;
  /** Stop starting new connections (the ones in flight finish). */
  stop(): void;
}

/**
 * Starts `count` connections to `port`, one every `gapMs` (each in parallel with the others, as
 * independent users would), each reading the greeting line within `timeoutMs`.
 */
export function startClientLoop(port: number, count: number, gapMs: number, timeoutMs = 5000): ClientLoop {
  const connections: Array<{ startedAt: number; backend: string | null; error: string | null }> = [];
  const pending: Promise<void>[] = [];
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let resolveStarted!: () => void;
  const allStarted = new Promise<void>((resolve) => (resolveStarted = resolve));
  const startOne = (): void => {
    if (stopped || connections.length >= count) {
      resolveStarted();
      return;
    }
    const record = { startedAt: Date.now(), backend: null as string | null, error: null as string | null };
    connections.push(record);
    pending.push(
      withTimeout(whichBackend({ port }), timeoutMs).then(
        (name) => void (record.backend = name),
        (error: unknown) => void (record.error = error instanceof Error ? error.message : String(error)),
      ),
    );
    timer = setTimeout(startOne, gapMs);
  };
  startOne();
  const done = allStarted.then(async () => {
    await Promise.all(pending);
    return { connections, failed: connections.filter((c) => c.error !== null).length };
  });
  return {
    done,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      resolveStarted();
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no greeting within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
