/**
 * Fault detection and failover end to end: the CLI as a child process, real loopback backends
 * (named echo servers, redis-server, node:http), clients over 127.0.0.x. Every wait is on a log line
 * or a socket event; every loop is bounded in count. Intervals are 100 ms so each scenario takes a
 * few seconds.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { closedPort, startNamedBackend, type NamedBackend } from './helpers/backends.js';
import { startClientLoop } from './helpers/client-loop.js';
import { closed, openClient, readLine, whichBackend } from './helpers/clients.js';
import { configOf, type RawHealthCheck, type RawPool } from './helpers/config.js';
import { startRinglb, TempDir, type LogLine, type RinglbProcess } from './helpers/ringlb-process.js';

const INTERVAL_MS = 100;
const FAST_CHECK: RawHealthCheck = { intervalMs: INTERVAL_MS, timeoutMs: 100, jitter: 0, rise: 2, fall: 2 };

const temp = new TempDir();
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.remove();
});

async function backendsNamed(...names: string[]): Promise<NamedBackend[]> {
  const started = await Promise.all(names.map((name) => startNamedBackend(name)));
  for (const backend of started) cleanups.push(() => backend.close());
  return started;
}

/** Restart a closed named backend on its old port (the address in ringlb's config). */
async function restart(backend: NamedBackend): Promise<NamedBackend> {
  const again = await startNamedBackend(backend.name, { port: backend.port });
  cleanups.push(() => again.close());
  return again;
}

async function run(pools: RawPool[]): Promise<{ ringlb: RinglbProcess; port: (name: string) => number }> {
  const { ringlb, ports } = await startRinglb(
    temp.writeJson(configOf(pools)),
    pools.map((pool) => pool.name),
  );
  cleanups.push(() => ringlb.kill());
  return { ringlb, port: (name) => ports.get(name)! };
}

const is = (msg: string, id?: string) => (line: LogLine) => line.msg === msg && (id === undefined || line.id === id);

/** Waits for `msg` about backend `id` among lines written after index `since`. */
function waitFor(ringlb: RinglbProcess, msg: string, id: string | undefined, since: number, timeoutMs = 5000): Promise<LogLine> {
  return ringlb.waitForLine(is(msg, id), timeoutMs, `"${msg}"${id ? ` for ${id}` : ''}`, since);
}

async function allUp(ringlb: RinglbProcess, ids: readonly string[]): Promise<void> {
  for (const id of ids) await waitFor(ringlb, 'backend up', id, 0);
}

describe('failover with a continuous client', () => {
  test('a killed backend costs 0 client connections, is detected within fall × interval + timeout, and gets traffic within rise × interval of its return', async (t) => {
    const [a, b, c] = (await backendsNamed('a', 'b', 'c')) as [NamedBackend, NamedBackend, NamedBackend];
    const { ringlb, port } = await run([
      { name: 'web', balance: 'round_robin', healthCheck: FAST_CHECK, backends: [a, b, c].map((x) => ({ id: x.name, address: x.address })) },
    ]);
    await allUp(ringlb, ['a', 'b', 'c']);
    // 20 connections per second for at most 6 s.
    const loop = startClientLoop(port('web'), 120, 50);
    // Scenario pacing, not a wait for a result: let the client run a while before the kill.
    await delay(1000);
    const since = ringlb.lines.length;
    const killedAt = Date.now();
    await b.close();
    const detected = await ringlb.waitForLine(
      (l) => (l.msg === 'backend down' || l.msg === 'backend ejected') && l.id === 'b',
      5000,
      'b detected',
      since,
    );
    const detectionMs = Number(detected.time) - killedAt;
    await delay(1500);
    const sinceReturn = ringlb.lines.length;
    const returnedAt = Date.now();
    await restart(b);
    await waitFor(ringlb, 'backend up', 'b', sinceReturn);
    const firstBack = await ringlb.waitForLine(
      (l) => l.msg === 'connection closed' && l.backend === b.address && l.outcome === 'ok' && Number(l.time) > returnedAt,
      5000,
      'traffic to b again',
      sinceReturn,
    );
    const backMs = Number(firstBack.time) - Number(firstBack.durationMs) - returnedAt;
    await delay(500); // traffic keeps flowing over all three for a moment
    loop.stop();
    const result = await loop.done;

    assert.equal(result.failed, 0, `failed connections: ${JSON.stringify(result.connections.filter((x) => x.error))}`);
    assert.ok(result.connections.length >= 50, `only ${result.connections.length} connections`);
    // fall × interval + timeout, plus one interval of scheduling slack.
    assert.ok(detectionMs <= 2 * INTERVAL_MS + 100 + INTERVAL_MS, `detection took ${detectionMs} ms`);
    // No connection that started after the detection line tried the dead backend (attempts = 1).
    const detectedAt = Number(detected.time);
    const retriedLate = ringlb
      .accessLines()
      .filter((l) => Number(l.time) - Number(l.durationMs) > detectedAt + 5 && Number(l.time) < returnedAt && Number(l.attempts) > 1);
    assert.deepEqual(retriedLate, []);
    // rise × interval, plus one interval of slack and three client gaps (round robin over three).
    assert.ok(backMs <= 2 * INTERVAL_MS + INTERVAL_MS + 3 * 50 + 100, `traffic again after ${backMs} ms`);
    t.diagnostic(`${result.connections.length} connections, detection ${detectionMs} ms, traffic again after ${backMs} ms`);
  });
});

