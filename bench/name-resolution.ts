/**
 * Connections/s through ringlb to one echo backend written two ways, side by side in one run:
 *
 *   by-ip     pool backend `127.0.0.1:PORT`
 *   by-name   pool backend `localhost:PORT` (resolved off the hot path: issue 7)
 *
 * and, as the baseline that shows what a lookup per connection costs, a naive pipe() proxy that
 * connects by `127.0.0.1` and by `localhost` (Node then calls dns.lookup, i.e. getaddrinfo on
 * libuv's thread pool, for every connection: what ringlb did before).
 *
 * Each connection: connect, send 1 byte, read the echo, close; CONNECT_CONCURRENCY at a time.
 * Backend, naive proxy and ringlb each run in their own child process; this process is the client.
 * Rounds are interleaved and rotated; every loop is bounded in count and time.
 *
 *   npm run build && node dist/bench/name-resolution.js [--rounds 7]
 */
import {
  BenchRun,
  CONNECT_CONCURRENCY,
  CONNECT_COUNT,
  connectRate,
  firstJsonLine,
  freePort,
  machineLine,
  measureRounds,
  median,
  roundsFromArgs,
  withTimeout,
} from './loopback-load.js';

const ECHO_SOURCE = `
const net = require('node:net');
const echo = net.createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
echo.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: echo.address().port }) + '\\n'));
`;

/** Two naive pipe() proxies to the echo port: one connects by IP, one by name. */
const NAIVE_PROXY_SOURCE = `
const net = require('node:net');
const target = Number(process.argv[1]);
const out = {};
for (const [name, host] of [['ip', '127.0.0.1'], ['name', 'localhost']]) {
  const server = net.createServer((c) => {
    const u = net.connect(target, host);
    c.pipe(u); u.pipe(c);
    c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
  });
  server.listen(0, '127.0.0.1', () => { out[name] = server.address().port; if (out.ip && out.name) process.stdout.write(JSON.stringify(out) + '\\n'); });
}
`;

/** ringlb (log level warn, no access log) with one listener per way of writing the backend. */
async function startRinglb(run: BenchRun, echoPort: number): Promise<{ byIp: number; byName: number }> {
  const byIp = await freePort();
  const byName = await freePort();
  await run.startRinglb(
    {
      listeners: [
        { name: 'by-ip', bind: `127.0.0.1:${byIp}`, pool: 'by-ip' },
        { name: 'by-name', bind: `127.0.0.1:${byName}`, pool: 'by-name' },
      ],
      pools: [
        { name: 'by-ip', balance: 'round_robin', backends: [{ address: `127.0.0.1:${echoPort}` }] },
        { name: 'by-name', balance: 'round_robin', backends: [{ address: `localhost:${echoPort}` }] },
      ],
      log: { level: 'warn' },
    },
    [byIp, byName],
  );
  return { byIp, byName };
}

async function main(): Promise<void> {
  const rounds = roundsFromArgs(7);
  const run = new BenchRun();
  try {
    const { port: echoPort } = await firstJsonLine<{ port: number }>(run.spawnNode(['-e', ECHO_SOURCE]));
    const naive = await firstJsonLine<{ ip: number; name: number }>(run.spawnNode(['-e', NAIVE_PROXY_SOURCE, String(echoPort)]));
    const ringlb = await startRinglb(run, echoPort);

    const targets: Array<[string, number]> = [
      ['ringlb, backend 127.0.0.1:PORT', ringlb.byIp],
      ['ringlb, backend localhost:PORT', ringlb.byName],
      ['naive pipe(), connect 127.0.0.1', naive.ip],
      ['naive pipe(), connect localhost', naive.name],
    ];
    const results = await measureRounds(targets, rounds, (_, port) => withTimeout(connectRate(port), 'connect scenario'));
    const rate = new Map([...results].map(([name, list]) => [name, median(list)]));
    console.log(machineLine(rounds));
    console.log(`connect ${CONNECT_COUNT} × ${CONNECT_CONCURRENCY} concurrent (connect, 1 byte echoed, close)\n`);
    console.log('| target | connections/s | by name / by IP |');
    console.log('|---|---|---|');
    for (const [name, value] of rate) {
      const pairOf = name.replace('localhost:PORT', '127.0.0.1:PORT').replace('connect localhost', 'connect 127.0.0.1');
      const ratio = pairOf === name ? '' : (value / rate.get(pairOf)!).toFixed(3);
      console.log(`| ${name} | ${value.toFixed(0)} | ${ratio} |`);
    }
  } finally {
    run.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
