/**
 * For tests of connections that wait in a listener's accept queue: read the queue from /proc and
 * make the connections from a child process (test/helpers/queued-clients.ts), so they reach the
 * kernel while the process that should accept them is blocked or stopped.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

export const HAS_PROC_NET_TCP = existsSync('/proc/net/tcp');

/** Connections waiting in the accept queues of every IPv4 LISTEN socket on `port` (a reusePort group has several); -1 when none listens. */
export function acceptQueuedOnPort(port: number): number {
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let queued = -1;
  for (const line of readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[3] === '0A' && fields[1]?.endsWith(portHex)) queued = Math.max(queued, 0) + Number.parseInt(fields[4]!.split(':')[1]!, 16);
  }
  return queued;
}

/** Runs `count` clients in a child (each connects and reads one line); resolves with outcome → count. */
export async function runQueuedClients(t: TestContext, port: number, count: number): Promise<Record<string, number>> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./queued-clients.js', import.meta.url)), String(port), String(count)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => child.kill());
  let report = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (report += chunk));
  await once(child, 'exit');
  return JSON.parse(report) as Record<string, number>;
}

/** Resolves once `acceptQueuedOnPort(port)` reaches `count` (the kernel shows no event for it: polled every 5 ms, at most `timeoutMs`). */
export async function untilQueued(port: number, count: number, timeoutMs = 10_000): Promise<void> {
  const giveUpAt = performance.now() + timeoutMs;
  let queued = acceptQueuedOnPort(port);
  while (queued < count) {
    if (performance.now() > giveUpAt) throw new Error(`${queued} of ${count} connections queued on port ${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
    queued = acceptQueuedOnPort(port);
  }
}
