/**
 * A real dnsmasq (Debian package `dnsmasq`) on a free loopback port, answering only the records
 * a test gives it: `--no-resolv --no-hosts --conf-file=/dev/null` (nothing from the machine),
 * `--local=/test/` (names under .test that it does not know are NXDOMAIN, not forwarded or
 * REFUSED). `setRecords` restarts it on the same port with a new record set, the simplest way
 * to change SRV records (SIGHUP re-reads hosts files but not `--srv-host`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';

export const DNSMASQ_BINARY = '/usr/sbin/dnsmasq';

export interface SrvRecord {
  /** `_app._tcp.svc.test` */
  readonly name: string;
  readonly target: string;
  readonly port: number;
  readonly priority?: number;
  readonly weight?: number;
}

export interface HostRecord {
  readonly name: string;
  /** IPv4 and/or IPv6 addresses. */
  readonly addresses: readonly string[];
}

export interface DnsRecords {
  readonly srv?: readonly SrvRecord[];
  readonly hosts?: readonly HostRecord[];
}

export interface Dnsmasq {
  readonly port: number;
  /** `127.0.0.1:port`, for `Resolver#setServers`. */
  readonly server: string;
  /** Restarts on the same port with these records; resolves once the new instance listens. */
  setRecords(records: DnsRecords): Promise<void>;
  /** Stops answering (the port goes quiet) until `setRecords`. */
  pause(): Promise<void>;
  stop(): Promise<void>;
}

const START_ATTEMPTS = 5;
const START_TIMEOUT_MS = 5000;

export async function startDnsmasq(records: DnsRecords): Promise<Dnsmasq> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt += 1) {
    const port = await freeTcpAndUdpPort();
    try {
      let child: ChildProcess | null = await launch(port, records);
      const stopChild = async (): Promise<void> => {
        const running = child;
        child = null;
        if (running !== null && running.exitCode === null && running.signalCode === null) {
          running.kill('SIGTERM');
          await once(running, 'exit');
        }
      };
      return {
        port,
        server: `127.0.0.1:${port}`,
        setRecords: async (next) => {
          await stopChild();
          child = await launch(port, next);
        },
        pause: stopChild,
        stop: stopChild,
      };
    } catch (error) {
      // Someone took the port between our probe and dnsmasq's bind: try another one.
      lastError = error as Error;
    }
  }
  throw new Error(`dnsmasq did not start after ${START_ATTEMPTS} attempts: ${lastError?.message}`);
}

function argumentsFor(port: number, records: DnsRecords): string[] {
  const args = [
    '--no-daemon',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--conf-file=/dev/null',
    '--local=/test/',
    '--log-facility=-',
    // Running as root in CI containers: stay root instead of switching to `nobody`, which may
    // not exist there; the pid file is not needed with --no-daemon.
    '--user=root',
    '--pid-file=',
  ];
  for (const srv of records.srv ?? []) {
    args.push(`--srv-host=${srv.name},${srv.target},${srv.port},${srv.priority ?? 0},${srv.weight ?? 0}`);
  }
  // One option per address: a single --host-record keeps only one address per family.
  for (const host of records.hosts ?? []) {
    for (const address of host.addresses) args.push(`--host-record=${host.name},${address}`);
  }
  return args;
}

/** Starts dnsmasq and resolves when it logs "started" (after binding), rejects if it exits. */
async function launch(port: number, records: DnsRecords): Promise<ChildProcess> {
  const child = spawn(DNSMASQ_BINARY, argumentsFor(port, records), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`dnsmasq on port ${port} did not start within ${START_TIMEOUT_MS} ms: ${log}`));
    }, START_TIMEOUT_MS);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      log += chunk;
      // dnsmasq binds its sockets before it logs "started" (dnsmasq.c main()).
      if (log.includes('started, version')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`dnsmasq exited (${code ?? signal}) before starting: ${log}`));
    });
  });
  // Keep draining stderr so a chatty dnsmasq never blocks on a full pipe.
  child.stderr?.resume();
  return child;
}

/** A loopback port free for both TCP and UDP right now (dnsmasq binds both). */
async function freeTcpAndUdpPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const server = createServer();
    server.listen({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const udp = createSocket('udp4');
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind({ address: '127.0.0.1', port, exclusive: true }, () => resolve(true));
    });
    if (udpFree) udp.close();
    server.close();
    await once(server, 'close');
    if (udpFree) return port;
  }
  throw new Error('no loopback port free for both TCP and UDP after 20 tries');
}
