/**
 * Memory under peers that send and never read (issue 10): 200 clients write through ringlb as fast
 * as they may and read nothing, to 200 backend connections that also write as fast as they may and
 * read nothing. Without backpressure ringlb would read everything each side offers and buffer it
 * for the side that does not read (up to QUOTA per writer: 200 × 2 × 64 MiB = 25.6 GB offered);
 * with it, each direction stops reading once the other side's socket is full, and what ringlb holds
 * in user space is bounded per connection. The real CLI runs as a child; its RSS is read from
 * /proc/<pid>/status before the connections and once every writer is blocked.
 *
 * The bound (see PER_CONNECTION_BYTES): per direction, a write that returned false leaves at most
 * HIGH_WATER (16 KiB) plus the chunk that crossed it (one read, ≤ 64 KiB) queued in libuv; a
 * socket that has read 256 KiB reads into a 64 KiB buffer of its own (handle-socket.ts), two per
 * connection; plus the connection's objects and both sockets' handles (a few KiB). So ≤ 2 × 80 +
 * 2 × 64 + 8 = 296 KiB per connection: 200 connections, ~58 MiB. MARGIN (48 MiB) is for the heap's
 * own growth and garbage not yet collected. Kernel socket buffers are not in RSS.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { startRinglb, TempDir } from './helpers/ringlb-process.js';

const CONNECTIONS = 200;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
/**
 * Bytes a writer offers at most (bounds the test), above what the kernel can hold along one path:
 * the writer's send buffer (tcp_wmem max, 4 MiB here) + ringlb's receive buffer, which autotunes
 * because ringlb reads (tcp_rmem max, 32 MiB here) + ringlb's send buffer (4 MiB) + the
 * non-reading peer's receive buffer (stays near its 128 KiB default: it never reads) ≈ 40 MiB. At
 * 16 MiB a few paths absorbed the whole quota.
 */
const QUOTA = 64 * 1024 * 1024;
const PER_CONNECTION_BYTES = 296 * 1024;
const MARGIN_BYTES = 48 * 1024 * 1024;
/** A writer blocked for this long in a row: the buffers along its path are full. */
const QUIET_MS = 1000;

const temp = new TempDir();
after(() => temp.remove());

function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(match !== null, 'VmRSS readable');
  return Number(match[1]) * 1024;
}

/** Writes CHUNKs without ever reading, while the socket takes them, up to QUOTA; then waits for 'drain'. */
class Flooder {
  written = 0;
  blockedSince: number | null = null;
  readonly #socket: Socket;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.pause();
    socket.on('error', () => undefined);
    socket.on('drain', () => this.#pump());
    this.#pump();
  }

  #pump(): void {
    this.blockedSince = null;
    while (this.written < QUOTA && !this.#socket.destroyed) {
      this.written += CHUNK.length;
      if (!this.#socket.write(CHUNK)) {
        this.blockedSince = performance.now();
        return;
      }
    }
  }

  /** Blocked on a full socket (not merely done with its quota). */
  blockedFor(now: number): number {
    return this.blockedSince === null ? 0 : now - this.blockedSince;
  }
}

test(`${CONNECTIONS} clients and ${CONNECTIONS} backends that send without reading keep ringlb's RSS bounded`, { timeout: 120_000 }, async (t) => {
  const backendSide: Flooder[] = [];
  const sockets: Socket[] = [];
  const backend = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    backendSide.push(new Flooder(socket));
  });
  backend.listen({ host: '127.0.0.1', port: 0, backlog: 1024 });
  await once(backend, 'listening');
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    backend.close();
    await once(backend, 'close');
  });
  const file = temp.writeJson({
    listeners: [{ name: 'app', bind: '127.0.0.1:0', pool: 'app' }],
    pools: [{ name: 'app', backends: [{ address: `127.0.0.1:${(backend.address() as AddressInfo).port}` }] }],
    log: { level: 'info' },
    workers: 1,
  });
  const { ringlb, ports } = await startRinglb(file, ['app']);
  t.after(() => ringlb.kill());
  const pid = ringlb.child.pid!;
  const rssBefore = rssBytes(pid);

  const clientSide: Flooder[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const socket = connect({ host: '127.0.0.1', port: ports.get('app')!, allowHalfOpen: true });
    sockets.push(socket);
    await once(socket, 'connect');
    clientSide.push(new Flooder(socket));
  }

  // Wait (bounded) until the writers on both sides have been blocked for QUIET_MS in a row. The
  // check runs on a short tick: what it waits for is a stretch of no progress.
  const flooders = (): Flooder[] => [...clientSide, ...backendSide];
  const deadline = performance.now() + 30_000;
  let peakRss = rssBefore;
  for (;;) {
    peakRss = Math.max(peakRss, rssBytes(pid));
    const now = performance.now();
    const all = flooders();
    // 95 %, not all: under kernel memory pressure (tcp_mem; this test makes the kernel hold GBs of
    // socket buffers) a few paths keep trickling as buffers shrink and grow.
    const blocked = all.filter((flooder) => flooder.blockedFor(now) >= QUIET_MS).length;
    if (all.length === 2 * CONNECTIONS && blocked >= 0.95 * all.length) break;
    if (now > deadline) {
      const blocked = all.filter((flooder) => flooder.blockedFor(now) >= QUIET_MS).length;
      const others = all.filter((flooder) => flooder.blockedFor(now) < QUIET_MS).map((flooder) => `${flooder.written}${flooder.blockedSince === null ? ' unblocked' : ''}`);
      assert.fail(`writers not all blocked within 60 s: ${blocked} of ${all.length} (backend side ${backendSide.length}); the others wrote ${others.slice(0, 10).join(', ')}; rss ${rssBytes(pid)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const rssAfter = rssBytes(pid);
  peakRss = Math.max(peakRss, rssAfter);
  const offered = flooders().reduce((sum, flooder) => sum + flooder.written, 0);
  const bound = CONNECTIONS * PER_CONNECTION_BYTES + MARGIN_BYTES;
  const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
  t.diagnostic(`RSS before ${mib(rssBefore)} MiB, after ${mib(rssAfter)} MiB, peak ${mib(peakRss)} MiB; growth bound ${mib(bound)} MiB; bytes written into sockets by the peers ${mib(offered)} MiB`);
  const done = flooders().filter((flooder) => flooder.written >= QUOTA).length;
  assert.equal(done, 0, 'every writer was stopped by backpressure before its quota');
  assert.ok(peakRss - rssBefore <= bound, `RSS grew ${mib(peakRss - rssBefore)} MiB, bound ${mib(bound)} MiB`);
  assert.equal(ringlb.child.exitCode, null, ringlb.stderr);
});
