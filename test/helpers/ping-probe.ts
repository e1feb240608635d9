/**
 * "Does the control plane stall the data plane?" measured from outside: one TCP connection through
 * a ringlb listener to an echo backend, pinged with one byte every `gapMs` while the test runs a
 * control-plane burst (a reload, hundreds of registrations). Every round trip is recorded with the
 * time it was sent, so a test can check both the worst latency and that pings really overlapped
 * the burst (a burst that ended before the first ping proves nothing).
 *
 * The echo backend and the pinging client run on a worker thread: the test's main thread is busy
 * with the burst and would otherwise add its own delays to the measurement.
 *
 * Even so, a loaded shared machine can delay any thread. Each sample therefore records how long
 * the pinged process's main thread and the probe's own thread waited for a CPU while the ping was
 * in flight (Linux schedstat), and `ownLatencyMs` subtracts it: a busy event loop is on-CPU time
 * and stays counted, time taken by unrelated processes does not. `bestOf` repeats a scenario a
 * few times for what remains (the way benchmarks take the best of several runs): a stall that
 * ringlb causes shows in every attempt.
 */
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Nice value for the process under test and for the probe's thread. On a shared 2-core machine
 * other work can take the CPU from a thread for tens of milliseconds; that is the machine's
 * latency, not ringlb's. Raised priority keeps the measurement about ringlb's own event loop (a
 * blocked loop stays blocked at any priority). Needs root (CAP_SYS_NICE); otherwise a no-op.
 */
export const PROBE_NICE = -15;

/**
 * Raises every thread of process `pid` to PROBE_NICE (Linux nice values are per thread; threads
 * created later inherit their creator's). Returns false when not permitted.
 */
export function raisePriority(pid: number): boolean {
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), PROBE_NICE);
    return true;
  } catch {
    return false;
  }
}

export interface PingSample {
  /** Epoch ms (performance.timeOrigin + now(), comparable across threads) when the ping was sent. */
  readonly sentAt: number;
  readonly rttMs: number;
  /**
   * Of `rttMs`, the time the pinged process's main thread and the probe's thread spent runnable
   * but waiting for a CPU (Linux schedstat): the machine's share of the latency, not the process's.
   */
  readonly runQueueMs: number;
}

/** A ping's latency without the time its threads waited for a CPU: what the process under test caused. */
export function ownLatencyMs(sample: PingSample): number {
  return Math.max(0, sample.rttMs - sample.runQueueMs);
}

export type PingProbeCommand =
  | { type: 'start'; listenerPort: number; gapMs: number; maxPings: number; watchedPid: number | undefined }
  /** Answer `pinged` once `count` more round trips are recorded. */
  | { type: 'notify'; count: number }
  | { type: 'stop' };
export type PingProbeMessage =
  | { type: 'ready'; backendPort: number }
  | { type: 'started' }
  | { type: 'pinged' }
  | { type: 'result'; samples: PingSample[]; failure: string | undefined };

export interface PingReport {
  readonly samples: readonly PingSample[];
  /** Why pinging ended early (connection closed, bound reached), if it did. */
  readonly failure: string | undefined;
}

export class PingProbe {
  readonly #worker: Worker;
  readonly #result: Promise<PingReport>;
  #stopped = false;

  private constructor(worker: Worker, readonly backendPort: number) {
    this.#worker = worker;
    this.#result = new Promise((resolve, reject) => {
      worker.on('message', (message: PingProbeMessage) => {
        if (message.type === 'result') resolve({ samples: message.samples, failure: message.failure });
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`ping probe worker exited (${code}) before reporting`)));
    });
    // A rejection nobody awaits yet (the test may fail before stop()) must not crash the runner.
    this.#result.catch(() => undefined);
  }

  /** Starts the worker and its echo backend; `backendPort` is the address to give ringlb. */
  static async start(): Promise<PingProbe> {
    const worker = new Worker(new URL('./ping-probe-worker.js', import.meta.url));
    const [message] = (await once(worker, 'message')) as [PingProbeMessage];
    if (message.type !== 'ready') throw new Error(`ping probe: unexpected first message ${message.type}`);
    return new PingProbe(worker, message.backendPort);
  }

  /**
   * Connects through the listener and pings every `gapMs` (at most `maxPings`); resolves once
   * connected. `watchedPid` is the process behind the listener, whose run-queue wait each sample records.
   */
  async ping(listenerPort: number, watchedPid?: number, gapMs = 2, maxPings = 50_000): Promise<void> {
    const started = once(this.#worker, 'message');
    this.#worker.postMessage({ type: 'start', listenerPort, gapMs, maxPings, watchedPid } satisfies PingProbeCommand);
    const [message] = (await Promise.race([started, this.#result.then(() => [{ type: 'result' }])])) as [PingProbeMessage];
    if (message.type !== 'started') throw new Error(`ping probe did not connect: ${(await this.#result).failure}`);
  }

  /** Resolves once `count` more round trips have completed (pings flow before a burst and after it). */
  async pings(count: number, timeoutMs = 10_000): Promise<void> {
    const done = new Promise<void>((resolve) => {
      const onMessage = (message: PingProbeMessage): void => {
        if (message.type !== 'pinged') return;
        this.#worker.off('message', onMessage);
        resolve();
      };
      this.#worker.on('message', onMessage);
    });
    this.#worker.postMessage({ type: 'notify', count } satisfies PingProbeCommand);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`fewer than ${count} pings within ${timeoutMs} ms`)), timeoutMs);
    });
    const failed = this.#result.then((report) => {
      throw new Error(`ping probe ended: ${report.failure ?? 'stopped'}`);
    });
    try {
      await Promise.race([done, timeout, failed]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops pinging, closes the echo backend and the worker; returns every round trip. */
  async stop(): Promise<PingReport> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#worker.postMessage({ type: 'stop' } satisfies PingProbeCommand);
    }
    try {
      return await this.#result;
    } finally {
      await this.#worker.terminate();
    }
  }
}

/** Runs `attempt` until it reports a worst ping under `barMs`, at most `attempts` times; returns every attempt's worst. */
export async function bestOf(attempts: number, barMs: number, attempt: () => Promise<number>): Promise<number[]> {
  const worst: number[] = [];
  for (let i = 0; i < attempts; i++) {
    worst.push(await attempt());
    if (worst.at(-1)! < barMs) break;
  }
  return worst;
}
