/**
 * What Node's socket machinery costs per proxied connection, against HAProxy: the same tiny HTTP
 * backend behind four proxies, `wrk -t1 -c4 -H 'Connection: close'` (one TCP connection per request),
 * user and system CPU of each proxy per connection from /proc/<pid>/stat:
 *
 *   raw handles   a ~60-line proxy on Node's internal `tcp_wrap` / `stream_wrap` handles (no
 *                 `net.Socket`): the floor a Node data path could reach. Not product code: it reads
 *                 `process.binding`, which Node deprecates; it exists to measure.
 *   naive pipe()  ten lines of `net` + `pipe()`
 *   ringlb        `ringlb run`, workers 1, log level warn
 *   haproxy       HAProxy `nbthread 1`, mode tcp (skipped when not installed)
 *
 * One warm-up round, then rotated rounds; medians. Needs wrk. Every process is killed in a finally.
 *
 *   npm run build && node dist/bench/socket-floor.js [--rounds 3]
 */
import { existsSync } from 'node:fs';
import {
  BenchRun,
  firstJsonLine,
  freePort,
  HTTP_BACKEND_SOURCE,
  machineLine,
  measureRounds,
  median,
  processCpuMicros,
  processUserMicros,
  roundsFromArgs,
  runTool,
} from './loopback-load.js';

const SECONDS = 3;
const HAPROXY_PATH = '/usr/sbin/haproxy';

/**
 * A proxy on libuv TCP handles, with what a proxy needs and nothing else: connect, forward with
 * backpressure (a write that went async stops reading its source until it completes), pass a FIN
 * on, close when both directions ended or on an error.
 */
const RAW_PROXY_SOURCE = `
process.removeAllListeners('warning');
const { TCP, TCPConnectWrap, constants } = process.binding('tcp_wrap');
const { WriteWrap, ShutdownWrap, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync, streamBaseState } = process.binding('stream_wrap');
const backendPort = Number(process.argv[1]);
const UV_EOF = -4095;
function noop() {}
function closeBoth(c) {
  if (c.client !== null) { c.client.close(noop); c.client = null; }
  if (c.up !== null) { c.up.close(noop); c.up = null; }
}
function onWritten() { if (this.source !== null && this.conn.client !== null) this.source.readStart(); }
function forward(from, to, arrayBuffer) {
  const nread = streamBaseState[kReadBytesOrError];
  const c = from.conn;
  if (nread > 0) {
    const req = new WriteWrap();
    const chunk = Buffer.from(arrayBuffer, streamBaseState[kArrayBufferOffset], nread);
    req.handle = to; req.oncomplete = onWritten; req.async = false; req.source = null; req.conn = c; req.buffer = chunk;
    const err = to.writeBuffer(req, chunk);
    if (err !== 0) { closeBoth(c); return; }
    if (streamBaseState[kLastWriteWasAsync] === 1) { req.source = from; from.readStop(); }
    return;
  }
  if (nread === 0) return;
  from.readStop();
  if (nread !== UV_EOF) { closeBoth(c); return; }
  const req = new ShutdownWrap(); req.handle = to; req.oncomplete = noop; to.shutdown(req);
  if (--c.open === 0) closeBoth(c);
}
function onClientRead(arrayBuffer) { if (this.conn.up !== null) forward(this, this.conn.up, arrayBuffer); }
function onUpRead(arrayBuffer) { if (this.conn.client !== null) forward(this, this.conn.client, arrayBuffer); }
function onConnect(status) {
  const c = this.conn;
  if (c.client === null) return;
  if (status < 0) { closeBoth(c); return; }
  c.client.readStart(); c.up.readStart();
}
const server = new TCP(constants.SERVER);
server.onconnection = (status, client) => {
  if (status < 0 || client === undefined) return;
  client.setNoDelay(true);
  const up = new TCP(constants.SOCKET);
  const c = { client, up, open: 2 };
  client.conn = c; up.conn = c;
  client.onread = onClientRead; up.onread = onUpRead;
  const req = new TCPConnectWrap();
  req.oncomplete = onConnect; req.conn = c;
  if (up.connect(req, '127.0.0.1', backendPort) !== 0) closeBoth(c);
  up.setNoDelay(true);
};
if (server.bind('127.0.0.1', 0) !== 0 || server.listen(511) !== 0) throw new Error('raw proxy cannot listen');
const out = {};
server.getsockname(out);
process.stdout.write(JSON.stringify({ port: out.port }) + '\\n');
`;

const NAIVE_PROXY_SOURCE = `
const net = require('node:net');
const backendPort = Number(process.argv[1]);
const server = net.createServer({ noDelay: true }, (c) => {
  const u = net.connect({ port: backendPort, host: '127.0.0.1', noDelay: true });
  c.pipe(u); u.pipe(c);
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
`;

interface Target {
  readonly port: number;
  readonly pid: number;
}

interface Sample {
  readonly perSecond: number;
  readonly userMicros: number;
  readonly systemMicros: number;
}

/** utime and stime of a process in µs (all threads). */
function cpuSplit(pid: number): { user: number; system: number } {
  const user = processUserMicros(pid);
  return { user, system: processCpuMicros(pid) - user };
}

async function measure(target: Target): Promise<Sample> {
  const before = cpuSplit(target.pid);
  const output = await runTool('wrk', ['-t1', '-c4', `-d${SECONDS}s`, '-H', 'Connection: close', `http://127.0.0.1:${target.port}/`], SECONDS * 1000 + 20_000);
  const after = cpuSplit(target.pid);
  const requests = Number(/(\d+) requests in/.exec(output)?.[1]);
  const errors = /Socket errors: (.*)/.exec(output);
  if (!(requests > 0)) throw new Error(`unreadable wrk output:\n${output}`);
  if (errors !== null) throw new Error(`wrk saw errors through port ${target.port}: ${errors[1]}`);
  return { perSecond: requests / SECONDS, userMicros: (after.user - before.user) / requests, systemMicros: (after.system - before.system) / requests };
}

async function main(): Promise<void> {
  const rounds = roundsFromArgs(3);
  const run = new BenchRun();
  try {
    const { http } = await firstJsonLine<{ http: number }>(run.spawnNode(['-e', HTTP_BACKEND_SOURCE]));
    const raw = run.spawnNode(['-e', RAW_PROXY_SOURCE, String(http)]);
    const naive = run.spawnNode(['-e', NAIVE_PROXY_SOURCE, String(http)]);
    const targets: Array<[string, Target]> = [
      ['raw handles', { port: (await firstJsonLine<{ port: number }>(raw)).port, pid: raw.pid! }],
      ['naive pipe()', { port: (await firstJsonLine<{ port: number }>(naive)).port, pid: naive.pid! }],
    ];
    const ringlbPort = await freePort();
    const ringlb = await run.startRinglb(
      { workers: 1, log: { level: 'warn' }, listeners: [{ name: 'l', bind: `127.0.0.1:${ringlbPort}`, pool: 'p' }], pools: [{ name: 'p', backends: [{ address: `127.0.0.1:${http}` }] }] },
      [ringlbPort],
    );
    targets.push(['ringlb workers 1', { port: ringlbPort, pid: ringlb.pid! }]);
    if (existsSync(HAPROXY_PATH)) {
      const haproxyPort = await freePort();
      const config = ['global', '  nbthread 1', 'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 60s', '  timeout server 60s', 'listen l', `  bind 127.0.0.1:${haproxyPort}`, `  server s 127.0.0.1:${http}`].join('\n');
      const haproxy = await run.startProcess(HAPROXY_PATH, ['-f'], 'haproxy.cfg', `${config}\n`, [haproxyPort]);
      targets.push(['haproxy nbthread 1', { port: haproxyPort, pid: haproxy.pid! }]);
    }
    const results = await measureRounds(targets, rounds, (_name, target) => measure(target));
    console.log(machineLine(rounds));
    console.log(`wrk -t1 -c4 -d${SECONDS}s -H 'Connection: close'; CPU = user + sys of the proxy process (/proc), per connection`);
    const haproxy = results.get('haproxy nbthread 1');
    const haproxyTotal = haproxy === undefined ? undefined : median(haproxy.map((s) => s.userMicros + s.systemMicros));
    console.log('| proxy | connections/s | user µs/conn | sys µs/conn | CPU µs/conn | vs HAProxy |');
    console.log('|---|---|---|---|---|---|');
    for (const [name, samples] of results) {
      const total = median(samples.map((s) => s.userMicros + s.systemMicros));
      const ratio = haproxyTotal === undefined ? '–' : `${(total / haproxyTotal).toFixed(2)}×`;
      console.log(`| ${name} | ${median(samples.map((s) => s.perSecond)).toFixed(0)} | ${median(samples.map((s) => s.userMicros)).toFixed(1)} | ${median(samples.map((s) => s.systemMicros)).toFixed(1)} | ${total.toFixed(1)} | ${ratio} |`);
    }
  } finally {
    run.close();
  }
}

await main();
