/**
 * Failover scenario (issue 3): the CLI as a child process over three loopback backends, a client
 * opening 20 connections per second for 10 s; one backend is killed at 3 s and restarted at 6 s.
 * Prints failed/total client connections, detection time (kill → ringlb marks it down or ejects
 * it), the last new connection attempt that still reached the dead backend, and the time from the
 * restart to its first connection again.
 *
 * Two variants: active checks plus outlier detection (the default pairing), and active checks
 * alone (outlier detection off), to show what each detector contributes.
 *
 * Run: npm run build && node dist/bench/failover.js
 */
import { setTimeout as delay } from 'node:timers/promises';
import { startNamedBackend, type NamedBackend } from '../test/helpers/backends.js';
import { startClientLoop } from '../test/helpers/client-loop.js';
import { configOf, type RawPool } from '../test/helpers/config.js';
import { startRinglb, TempDir, type LogLine } from '../test/helpers/ringlb-process.js';

const RATE_PER_SECOND = 20;
const DURATION_MS = 10_000;
const KILL_AT_MS = 3_000;
const RESTART_AT_MS = 6_000;

interface Variant {
  readonly name: string;
  readonly pool: Omit<RawPool, 'name' | 'backends'>;
}

const CHECK = { intervalMs: 200, timeoutMs: 200, rise: 2, fall: 3 } as const;

const VARIANTS: readonly Variant[] = [
  { name: 'tcp check 200 ms (rise 2, fall 3) + outlier detection (5 failures)', pool: { healthCheck: CHECK } },
  {
    name: 'tcp check 200 ms (rise 2, fall 3), outlier detection off',
    pool: { healthCheck: CHECK, outlierDetection: { consecutiveFailures: 0 } },
  },
];

async function runVariant(variant: Variant, temp: TempDir): Promise<void> {
  const backends: NamedBackend[] = await Promise.all(['a', 'b', 'c'].map((name) => startNamedBackend(name)));
  let restarted: NamedBackend | undefined;
  const pool: RawPool = {
    name: 'web',
    balance: 'round_robin',
    backends: backends.map((b) => ({ id: b.name, address: b.address })),
    ...variant.pool,
  };
  const { ringlb, ports } = await startRinglb(temp.writeJson(configOf([pool], { log: { level: 'info' } })), ['web']);
  try {
    for (const id of ['a', 'b', 'c']) {
      await ringlb.waitForLine((l) => l.msg === 'backend up' && l.id === id, 5000, `backend up ${id}`);
    }
    const victim = backends[1]!;
    const startedAt = Date.now();
    const loop = startClientLoop(ports.get('web')!, (RATE_PER_SECOND * DURATION_MS) / 1000, 1000 / RATE_PER_SECOND);
    await delay(KILL_AT_MS);
    const killedAt = Date.now();
    await victim.close();
    await delay(RESTART_AT_MS - (Date.now() - startedAt));
    const restartedAt = Date.now();
    restarted = await startNamedBackend(victim.name, { port: victim.port });
    const result = await loop.done;

    const detected = ringlb.lines.find(
      (l) => (l.msg === 'backend down' || l.msg === 'backend ejected') && l.id === 'b' && Number(l.time) >= killedAt,
    );
    const access = ringlb.accessLines();
    const startOf = (l: LogLine): number => Number(l.time) - Number(l.durationMs);
    const retried = access.filter((l) => Number(l.attempts) > 1 && startOf(l) >= killedAt && startOf(l) < restartedAt);
    const lastAttemptOnDead = retried.length === 0 ? null : Math.max(...retried.map(startOf)) - killedAt;
    const back = access.find((l) => l.backend === victim.address && l.outcome === 'ok' && startOf(l) >= restartedAt);
    const line = (label: string, value: string): void => void process.stdout.write(`  ${label.padEnd(48)} ${value}\n`);
    process.stdout.write(`${variant.name}\n`);
    line('failed / total client connections', `${result.failed} / ${result.connections.length}`);
    line('kill → marked down or ejected', detected ? `${Number(detected.time) - killedAt} ms (${String(detected.msg)})` : 'never');
    line('kill → last new connection trying the dead one', lastAttemptOnDead === null ? 'none' : `${Math.round(lastAttemptOnDead)} ms`);
    line('connections retried off the dead backend', String(retried.length));
    line('restart → first connection to it again', back ? `${Math.round(startOf(back) - restartedAt)} ms` : 'never');
  } finally {
    await ringlb.kill();
    await Promise.all([...backends, ...(restarted ? [restarted] : [])].map((b) => b.close()));
  }
}

const temp = new TempDir();
try {
  process.stdout.write(
    `failover: 3 backends, round_robin, ${RATE_PER_SECOND} conn/s for ${DURATION_MS / 1000} s, kill at ${KILL_AT_MS / 1000} s, restart at ${RESTART_AT_MS / 1000} s\n`,
  );
  for (const variant of VARIANTS) await runVariant(variant, temp);
} finally {
  temp.remove();
}
