/**
 * What each of the edge's settings (issue 10) costs per connection, side by side in one ringlb
 * process: ringlb's CPU (user + system, /proc/<pid>/stat) per short connection through listeners
 * and pools that differ in one setting each, against a plain listener and pool in the same rounds.
 *
 *   plain            no edge setting
 *   allow/deny       an allow list and a 1000-entry deny list (the client matches neither deny entry)
 *   source limits    maxConnectionsPerSource and connectionRatePerSource, set high enough never to refuse
 *   proxy v2 in+out  a PROXY v2 header read from a trusted source, and one (with UNIQUE_ID) sent upstream
 *   backend cap      maxConnectionsPerBackend above the concurrency (never reached) and responseTimeoutMs
 *   queueing         maxConnectionsPerBackend 4 under 8 concurrent clients: about half the connections
 *                    wait in the backend queue for a slot
 *
 *   connect   5000 × (connect, send [header +] 1 byte, read the echo, close), 8 concurrent
 *
 * One ringlb (workers: 1, access log off), one echo backend in its own process; this process is the
 * client. A warm-up round, then `--rounds` (default 1) rounds in rotated order; the ratio of the
 * medians to plain's is the figure.
 *
 *   npm run build && node dist/bench/edge-cost.js [--rounds 3]
 */
import { encodeProxyHeaderV2 } from '../src/proxy/proxy-protocol.js';
import { BenchRun, CONNECT_CONCURRENCY, CONNECT_COUNT, connectRate, firstJsonLine, freePort, machineLine, measureRounds, median, processCpuMicros, roundsFromArgs, withTimeout } from './loopback-load.js';

const ECHO_SOURCE = `
const net = require('node:net');
const echo = net.createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
echo.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ echo: echo.address().port }) + '\\n'));
`;

/** Documentation ranges (RFC 5737 / 3849), none of them the client's. */
function denyList(size: number): string[] {
  const list: string[] = [];
  for (let i = 0; list.length < size; i++) list.push(i % 2 === 0 ? `198.51.${(i >> 8) & 255}.${i & 255}/32` : `2001:db8::${i.toString(16)}/128`);
  return list;
}

interface Variant {
  readonly name: string;
  /** Listener settings beside name/bind/pool. */
  readonly listener: Record<string, unknown>;
  /** Pool settings beside name/backends. */
  readonly pool: Record<string, unknown>;
  /** The header the client sends before its byte. */
  readonly header?: Buffer;
}

const VARIANTS: readonly Variant[] = [
  { name: 'plain', listener: {}, pool: {} },
  { name: 'allow/deny', listener: { allow: ['127.0.0.0/8', '::1/128'], deny: denyList(1000) }, pool: {} },
  {
    name: 'source limits',
    listener: { maxConnectionsPerSource: 10_000, connectionRatePerSource: { rate: 1_000_000, burst: 1_000_000 } },
    pool: {},
  },
  {
    name: 'proxy v2 in+out',
    listener: { proxyProtocol: { accept: 'v2', trustedSources: ['127.0.0.1'] } },
    pool: { sendProxyProtocol: 'v2' },
    header: encodeProxyHeaderV2({ ip: '192.0.2.10', port: 40000 }, { ip: '198.51.100.1', port: 443 }),
  },
  { name: 'backend cap', listener: {}, pool: { maxConnectionsPerBackend: 1000, responseTimeoutMs: 5000 } },
  { name: 'queueing', listener: {}, pool: { maxConnectionsPerBackend: CONNECT_CONCURRENCY / 2, queue: { size: 64, timeoutMs: 5000 } } },
];

async function main(): Promise<void> {
  const rounds = roundsFromArgs(1);
  const run = new BenchRun();
  try {
    const backends = run.spawnNode(['-e', ECHO_SOURCE]);
    const { echo } = await firstJsonLine<{ echo: number }>(backends);
    const ports = await Promise.all(VARIANTS.map(() => freePort()));
    const ringlb = await run.startRinglb(
      {
        workers: 1,
        log: { level: 'warn' },
        listeners: VARIANTS.map((variant, i) => ({ name: `l${i}`, bind: `127.0.0.1:${ports[i]}`, pool: `p${i}`, ...variant.listener })),
        pools: VARIANTS.map((variant, i) => ({ name: `p${i}`, backends: [{ address: `127.0.0.1:${echo}` }], ...variant.pool })),
      },
      ports,
    );
    const targets: [string, { port: number; first: Buffer }][] = VARIANTS.map((variant, i) => [
      variant.name,
      { port: ports[i]!, first: variant.header === undefined ? Buffer.from('x') : Buffer.concat([variant.header, Buffer.from('x')]) },
    ]);
    const results = await measureRounds(targets, rounds, async (name, target) => {
      const before = processCpuMicros(ringlb.pid!);
      const rate = await withTimeout(connectRate(target.port, target.first), `${name} connect`);
      const cpu = (processCpuMicros(ringlb.pid!) - before) / CONNECT_COUNT;
      return { rate, cpu };
    });
    console.log(machineLine(rounds));
    const cpuOf = (name: string): number => median(results.get(name)!.map((r) => r.cpu));
    const plain = cpuOf('plain');
    console.log(`${'variant'.padEnd(18)} ${'conn/s'.padStart(7)} ${'CPU µs/conn'.padStart(12)} ${'× plain'.padStart(8)}`);
    for (const [name] of targets) {
      const rate = median(results.get(name)!.map((r) => r.rate));
      console.log(`${name.padEnd(18)} ${rate.toFixed(0).padStart(7)} ${cpuOf(name).toFixed(0).padStart(12)} ${(cpuOf(name) / plain).toFixed(2).padStart(7)}×`);
    }
  } finally {
    run.close();
  }
}

await main();
