/**
 * Long-lived client connections that keep talking: each reads its backend's greeting, then sends
 * `ping <n>\n` every `pingEveryMs` and expects the echo back. A session that errors, closes, or
 * misses an echo before `stop()` counts as dropped. This is the "established connections" side of
 * the reload-under-load scenario: a reload must never cut one.
 */
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { openClient, readLine } from './clients.js';

export interface EchoSessionResult {
  /** The backend that greeted the session. */
  readonly backend: string;
  readonly pings: number;
  /** Why the session failed before stop(), or null. */
  readonly error: string | null;
}

export interface EchoSessions {
  /** Which backend each session is connected to, in opening order. */
  readonly backends: readonly string[];
  /** Stop pinging; each session finishes its last round trip, then closes. */
  stop(): Promise<EchoSessionResult[]>;
  /** For after/finally: destroy every socket at once. */
  destroy(): void;
}

/**
 * Opens `count` sessions to each port in `ports` (round robin over the ports), one at a time, and
 * starts their ping loops. Every loop is bounded by `maxPings`.
 */
export async function startEchoSessions(
  ports: readonly number[],
  count: number,
  pingEveryMs = 100,
  maxPings = 2000,
): Promise<EchoSessions> {
  const sockets: Socket[] = [];
  const backends: string[] = [];
  let stopped = false;
  const loops: Array<Promise<EchoSessionResult>> = [];
  try {
    for (let index = 0; index < count; index += 1) {
      const socket = await openClient({ port: ports[index % ports.length]! });
      sockets.push(socket);
      const backend = await readLine(socket, 5000);
      backends.push(backend);
      loops.push(pingLoop(socket, backend, index, () => stopped, pingEveryMs, maxPings));
    }
  } catch (error) {
    for (const socket of sockets) socket.destroy();
    throw error;
  }
  return {
    backends,
    stop: async () => {
      stopped = true;
      const results = await Promise.all(loops);
      for (const socket of sockets) socket.destroy();
      return results;
    },
    destroy: () => {
      stopped = true;
      for (const socket of sockets) socket.destroy();
    },
  };
}

async function pingLoop(
  socket: Socket,
  backend: string,
  session: number,
  isStopped: () => boolean,
  pingEveryMs: number,
  maxPings: number,
): Promise<EchoSessionResult> {
  let pings = 0;
  try {
    // At least one round trip after stop() was asked, so a cut that happened just before counts.
    while (pings < maxPings) {
      const last = isStopped();
      const text = `ping ${session} ${pings}`;
      socket.write(`${text}\n`);
      const echoed = await readLine(socket, 5000);
      if (echoed !== text) throw new Error(`expected echo ${JSON.stringify(text)}, got ${JSON.stringify(echoed)}`);
      pings += 1;
      if (last) break;
      // Pacing between pings (a chatty long-lived client), not a wait for a result.
      await delay(pingEveryMs);
    }
    return { backend, pings, error: null };
  } catch (error) {
    return { backend, pings, error: error instanceof Error ? error.message : String(error) };
  }
}
