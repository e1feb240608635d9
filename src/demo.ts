/**
 * `ringlb demo`: three in-process echo backends behind a maglev listener, so a user can see
 * balancing with nothing but `nc`. Each backend greets with its name, then echoes.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { PoolConfig, RinglbConfig } from './config/types.js';
import type { Logger } from './log.js';
import { Ringlb } from './runtime.js';

export const DEMO_DEFAULT_PORT = 8080;
const DEMO_BACKEND_NAMES = ['alpha', 'bravo', 'charlie'] as const;

export interface Demo {
  readonly ringlb: Ringlb;
  readonly address: string;
  /** Drain time for the signal handler: short, it is a demo. */
  readonly drainTimeoutMs: number;
  /** Close the echo backends (after ringlb has drained). */
  closeBackends(): Promise<void>;
}

function startEchoBackend(name: string): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.write(`hello from backend ${name}\n`);
    socket.pipe(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      resolve({ server, port: (server.address() as AddressInfo).port, sockets });
    });
  });
}

export async function startDemo(port: number, logger: Logger): Promise<Demo> {
  const backends = await Promise.all(DEMO_BACKEND_NAMES.map(startEchoBackend));
  const pool: PoolConfig = {
    name: 'demo',
    balance: 'maglev',
    hashKey: 'source_ip',
    connectTimeoutMs: 1000,
    retries: 2,
    ringHash: { pointsPerWeight: 160 },
    maglev: { tableSize: 65537 },
    backends: backends.map((backend, index) => {
      const text = `127.0.0.1:${backend.port}`;
      return {
        id: DEMO_BACKEND_NAMES[index]!,
        weight: 1,
        state: 'active',
        address: { host: '127.0.0.1', port: backend.port, text },
      };
    }),
    // In-process backends cannot die on their own, so no active checks; outlier detection and
    // panic keep their defaults.
    healthCheck: null,
    outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
    panicThreshold: 0.5,
    slowStartMs: 0,
    // IP addresses only: nothing to resolve.
    resolveIntervalMs: 0,
  };
  const config: RinglbConfig = {
    listeners: [
      {
        name: 'demo',
        bind: { host: '127.0.0.1', port, text: `127.0.0.1:${port}` },
        pool: 'demo',
        maxConnections: 1000,
        idleTimeoutMs: 300_000,
      },
    ],
    pools: [pool],
    log: { level: 'info' },
    drainTimeoutMs: 5000,
    workers: 'auto',
  };
  const ringlb = new Ringlb({ logger });
  const closeBackends = async (): Promise<void> => {
    await Promise.all(
      backends.map(
        (backend) =>
          new Promise<void>((resolve) => {
            for (const socket of backend.sockets) socket.destroy();
            backend.server.close(() => resolve());
          }),
      ),
    );
  };
  try {
    await ringlb.start(config);
  } catch (error) {
    await closeBackends();
    throw error;
  }
  return { ringlb, address: ringlb.listenerAddress('demo')!, drainTimeoutMs: config.drainTimeoutMs, closeBackends };
}

/** What the demo prints to stderr for the human (stdout carries the JSON log). */
export function demoInstructions(address: string): string {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), address.slice(address.lastIndexOf(':') + 1)];
  return [
    `ringlb demo: maglev over backends ${DEMO_BACKEND_NAMES.join(', ')} on ${address}`,
    '',
    'Try it (each backend greets with its name, then echoes what you type):',
    `  nc ${host} ${port}`,
    '',
    'See hashing by source address (same source, same backend; Linux loopback accepts any 127.x):',
    `  for i in 1 2 3 4 5 6 7 8; do echo | nc -w1 -s 127.0.0.$i ${host} ${port}; done`,
    '',
    'Ctrl-C drains open connections and exits; a second Ctrl-C exits at once.',
    '',
  ].join('\n');
}
