/**
 * A real single-member etcd (Debian `etcd-server`, /usr/bin/etcd) for tests: a temp data dir,
 * client and peer URLs on free loopback ports, ready when GET /health says `"health":"true"`.
 * `stop()` then `start()` restarts it on the same ports with the same data (keys, revisions and
 * leases survive, as in a real restart); `close()` kills it and removes the data dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_BINARY = '/usr/bin/etcd';
const READY_TIMEOUT_MS = 15000;
/** Between /health polls while etcd starts (it answers within ~0.5 s on a laptop). */
const READY_POLL_MS = 50;

export interface EtcdServer {
  /** `http://127.0.0.1:P`, for the etcd3 client's `hosts`. */
  readonly endpoint: string;
  readonly clientPort: number;
  /** (Re)starts on the same ports and data dir; resolves when healthy. */
  start(): Promise<void>;
  /** SIGTERM and wait for exit; the data dir stays. */
  stop(): Promise<void>;
  /** stop() and remove the data dir. */
  close(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ringlb-etcd-'));
  const [clientPort, peerPort] = await freePorts(2);
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'default',
    '--data-dir', dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `default=${peer}`,
    '--log-level', 'error',
    '--logger', 'zap',
  ];
  let child: ChildProcess | null = null;
  let log = '';

  const stop = async (): Promise<void> => {
    const running = child;
    child = null;
    if (running !== null && running.exitCode === null && running.signalCode === null) {
      running.kill('SIGTERM');
      await once(running, 'exit');
    }
  };

  const start = async (): Promise<void> => {
    if (child !== null) throw new Error('etcd is already running');
    log = '';
    // etcd 3.4 refuses to start on arm64 and others without this (etcd docs "Supported platforms").
    const env = process.arch === 'x64' ? process.env : { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch };
    const spawned = spawn(ETCD_BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    child = spawned;
    spawned.stderr?.setEncoding('utf8');
    spawned.stderr?.on('data', (chunk: string) => {
      if (log.length < 20000) log += chunk;
    });
    let exited = false;
    spawned.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await healthy(endpoint))) {
      if (exited) throw new Error(`etcd exited before becoming healthy: ${log}`);
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`etcd was not healthy within ${READY_TIMEOUT_MS} ms: ${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
    }
  };

  try {
    await start();
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    endpoint,
    clientPort,
    start,
    stop,
    close: async () => {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** One GET /health with a short timeout: true when etcd reports itself healthy. */
function healthy(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = get(`${endpoint}/health`, { timeout: 1000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(response.statusCode === 200 && body.includes('"health":"true"')));
      response.on('error', () => resolve(false));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

/** `count` distinct loopback TCP ports that were free a moment ago (all held at once). */
async function freePorts(count: number): Promise<number[]> {
  const servers = [];
  for (let index = 0; index < count; index += 1) {
    const server = createServer();
    server.listen({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    servers.push(server);
  }
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(
    servers.map(async (server) => {
      server.close();
      await once(server, 'close');
    }),
  );
  return ports;
}
