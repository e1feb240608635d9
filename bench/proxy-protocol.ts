/**
 * What PROXY protocol costs per connection: ringlb's CPU (user + system, /proc/<pid>/stat) per short
 * connection through a listener that accepts a v2 header and a pool that sends one (with its
 * UNIQUE_ID), against a plain listener and pool in the same ringlb process and rounds.
 *
 *   connect   5000 × (connect, send [header +] 1 byte, read the echo, close), 8 concurrent
 *
 * One ringlb (workers: 1, access log off), one echo backend in its own process; this process is the
 * client. A warm-up round, then `--rounds` (default 1) rounds in rotated order; the ratio of the
 * medians is the figure.
 *
 *   npm run build && node dist/bench/proxy-protocol.js [--rounds 3]
 */
import { encodeProxyHeaderV2 } from '../src/proxy/proxy-protocol.js';
import { BenchRun, CONNECT_COUNT, connectRate, firstJsonLine, freePort, machineLine, measureRounds, median, processCpuMicros, roundsFromArgs, withTimeout } from './loopback-load.js';

const ECHO_SOURCE = `
const net = require('node:net');
const echo = net.createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
echo.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ echo: echo.address().port }) + '\\n'));
`;

interface Target {
  readonly port: number;
  readonly first: Buffer;
}

async function main(): Promise<void> {
  const rounds = roundsFromArgs(1);
  const run = new BenchRun();
  try {
    const backends = run.spawnNode(['-e', ECHO_SOURCE]);
    const { echo } = await firstJsonLine<{ echo: number }>(backends);
    const [plainPort, proxyPort] = [await freePort(), await freePort()];
    const ringlb = await run.startRinglb(
      {
        workers: 1,
        log: { level: 'warn' },
        listeners: [
          { name: 'plain', bind: `127.0.0.1:${plainPort}`, pool: 'plain' },
          { name: 'pp', bind: `127.0.0.1:${proxyPort}`, pool: 'pp', proxyProtocol: { accept: 'v2', trustedSources: ['127.0.0.1'] } },
        ],
        pools: [
          { name: 'plain', backends: [{ address: `127.0.0.1:${echo}` }] },
          { name: 'pp', sendProxyProtocol: 'v2', backends: [{ address: `127.0.0.1:${echo}` }] },
        ],
      },
      [plainPort, proxyPort],
    );
    const header = encodeProxyHeaderV2({ ip: '192.0.2.10', port: 40000 }, { ip: '198.51.100.1', port: 443 });
    const targets: [string, Target][] = [
      ['plain', { port: plainPort, first: Buffer.from('x') }],
      ['proxy v2 in + out', { port: proxyPort, first: Buffer.concat([header, Buffer.from('x')]) }],
    ];
    const results = await measureRounds(targets, rounds, async (name, target) => {
      const before = processCpuMicros(ringlb.pid!);
      const rate = await withTimeout(connectRate(target.port, target.first), `${name} connect`);
      const cpu = (processCpuMicros(ringlb.pid!) - before) / CONNECT_COUNT;
      return { rate, cpu };
    });
    console.log(machineLine(rounds));
    const cpuOf = (name: string): number => median(results.get(name)!.map((r) => r.cpu));
    for (const [name] of targets) {
      const list = results.get(name)!;
      console.log(`${name.padEnd(20)} ${median(list.map((r) => r.rate)).toFixed(0).padStart(6)} conn/s   ${cpuOf(name).toFixed(0).padStart(5)} µs CPU per connection`);
    }
    console.log(`ratio (proxy v2 in + out / plain), CPU per connection: ${(cpuOf('proxy v2 in + out') / cpuOf('plain')).toFixed(2)}×`);
  } finally {
    run.close();
  }
}

await main();
