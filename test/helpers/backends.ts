/**
 * Backends for end-to-end tests, all on loopback with port 0.
 *
 * - `startNamedBackend`: greets every connection with `<name>\n`, then echoes (so a client knows
 *   which backend answered), or just echoes with `greet: false` (byte-exact round trips).
 * - `closedPort`: a port that was just listening and is now closed, so connects are refused.
 * - `startStalledBackend`: a listening socket that accepts nothing and whose accept queue is full,
 *   so a new connect hangs in SYN-SENT (Linux drops a SYN when the accept queue is full:
 *   `tcp_conn_request` → `sk_acceptq_is_full` → drop). Node always accepts, so the server runs in
 *   a child process that we SIGSTOP; `resume()` SIGCONTs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface NamedBackend {
  readonly name: string;
  readonly port: number;
  /** `127.0.0.1:port`, as written in a config. */
  readonly address: string;
  /** Connections accepted so far. */
  accepted(): number;
  /** Connections open now. */
  open(): number;
  close(): Promise<void>;
}

export interface NamedBackendOptions {
  /** Default true: write `<name>\n` first. */
  readonly greet?: boolean;
  /** Default 0 (ephemeral). */
  readonly port?: number;
}

export function startNamedBackend(name: string, options: NamedBackendOptions = {}): Promise<NamedBackend> {
  const greet = options.greet ?? true;
  return serveNamed(name, { allowHalfOpen: true }, options.port ?? 0, (socket) => {
    if (greet) socket.write(`${name}\n`);
    // pipe() to itself: echo with backpressure, and our FIN follows the client's (half-close).
    socket.pipe(socket);
  });
}

/**
 * A loopback server that counts and tracks its connections and hands each one to `serve`: the
 * common body of every named backend here.
 */
async function serveNamed(
  name: string,
  serverOptions: { allowHalfOpen?: boolean },
  port: number,
  serve: (socket: Socket) => void,
): Promise<NamedBackend> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer(serverOptions, (socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    serve(socket);
  });
  // A deep accept queue: tests open up to 2000 connections through ringlb at once, and ringlb
  // connects upstream faster than one Node backend accepts. With Node's default backlog (511) the
  // kernel dropped the final ACK of handshakes it could not queue and reset them a second later,
  // which is the backend's limit, not what those tests measure.
  server.listen({ host: '127.0.0.1', port, backlog: 4096 });
  await once(server, 'listening');
  const boundPort = (server.address() as AddressInfo).port;
  return {
    name,
    port: boundPort,
    address: `127.0.0.1:${boundPort}`,
    accepted: () => accepted,
    open: () => sockets.size,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      if (server.listening) {
        server.close();
        await once(server, 'close');
      }
    },
  };
}

/** A loopback port that was bound a moment ago and is closed now: connecting to it is refused. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  server.close();
  await once(server, 'close');
  return port;
}

export interface StalledBackend {
  readonly port: number;
  readonly address: string;
  /** SIGCONT: it accepts what is queued and answers connects again (greeting with its name). */
  resume(): void;
  close(): Promise<void>;
}

/** Child process: listen with backlog 1 on 127.0.0.1:0, print the port, greet and echo. */
const STALLED_SERVER_SOURCE = `
const net = require('node:net');
const name = process.argv[1];
const server = net.createServer((s) => { s.on('error', () => s.destroy()); s.write(name + '\\n'); s.pipe(s); });
server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => process.stdout.write(server.address().port + '\\n'));
`;

/**
 * Linux keeps up to backlog+1 established connections in the accept queue (the check is
 * `ack_backlog > max_ack_backlog`), so with backlog 1 two plugs fill it.
 */
const PLUGS_TO_FILL_BACKLOG_1 = 2;

export async function startStalledBackend(name: string): Promise<StalledBackend> {
  const child: ChildProcess = spawn(process.execPath, ['-e', STALLED_SERVER_SOURCE, name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const plugs: Socket[] = [];
  const close = async (): Promise<void> => {
    for (const plug of plugs) plug.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL'); // SIGKILL also ends a stopped process; SIGTERM would wait for SIGCONT
      await exited;
    }
  };
  try {
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
    const port = Number(chunk.toString('utf8').trim());
    child.kill('SIGSTOP');
    // Wait until the kernel reports the child stopped, so no plug can be accepted by it.
    await waitForStopped(child.pid!);
    for (let i = 0; i < PLUGS_TO_FILL_BACKLOG_1; i += 1) {
      const plug = connect({ host: '127.0.0.1', port });
      plug.on('error', () => plug.destroy());
      plugs.push(plug);
      await once(plug, 'connect');
    }
    return {
      port,
      address: `127.0.0.1:${port}`,
      resume: () => {
        child.kill('SIGCONT');
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Poll /proc until the process state is T (stopped); bounded to 2 s. */
async function waitForStopped(pid: number): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const deadline = Date.now() + 2000;
  for (;;) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'T' || state === 't') return;
    if (Date.now() > deadline) throw new Error(`process ${pid} did not stop (state ${state})`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Is some socket of ours in SYN-SENT towards 127.0.0.1:port? (/proc/net/tcp state 02). */
export async function hasSynSentTo(port: number): Promise<boolean> {
  const { readFile } = await import('node:fs/promises');
  const table = await readFile('/proc/net/tcp', 'utf8');
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  // rem_address is field 3 ("0100007F:1F90"), st is field 4.
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length > 3 && fields[2]!.endsWith(portHex) && fields[3] === '02') return true;
  }
  return false;
}

export interface HalfClosingBackend {
  readonly port: number;
  readonly address: string;
  /** Everything received on the first connection, once the client's FIN arrived. */
  readonly received: Promise<Buffer>;
  /** How the first connection ended: the client's FIN, or a reset. */
  readonly ended: Promise<'fin' | 'reset'>;
  close(): Promise<void>;
}

/**
 * Writes `<name>\n` and closes its sending side at once (FIN first), then keeps reading until the
 * client's FIN: proves the proxy carries bytes client→backend after backend→client has ended.
 */
export async function startHalfClosingBackend(name: string): Promise<HalfClosingBackend> {
  const sockets = new Set<Socket>();
  let resolveReceived!: (data: Buffer) => void;
  const received = new Promise<Buffer>((resolve) => {
    resolveReceived = resolve;
  });
  let resolveEnded!: (how: 'fin' | 'reset') => void;
  const ended = new Promise<'fin' | 'reset'>((resolve) => {
    resolveEnded = resolve;
  });
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET') resolveEnded('reset');
      socket.destroy();
    });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      resolveEnded('fin');
      resolveReceived(Buffer.concat(chunks));
    });
    socket.end(`${name}\n`);
  });
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    received,
    ended,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/**
 * Greets with `<name>\n`, then answers the first byte it receives with a TCP reset (RST): the
 * upstream failing mid-connection.
 */
export function startResettingBackend(name: string): Promise<NamedBackend> {
  return serveNamed(name, {}, 0, (socket) => {
    socket.write(`${name}\n`);
    socket.once('data', () => socket.resetAndDestroy());
  });
}

/** How a peer ended a connection, as the other end saw it. */
export type PeerEnding = 'reset' | 'fin';

export interface EndingRecordingBackend extends NamedBackend {
  /** How the n-th accepted connection (0-based) was ended by its client: a reset or a FIN. */
  endingOf(connection: number): Promise<PeerEnding>;
}

/**
 * Greets with `<name>\n`, then reads and records how the client ended each connection: a TCP reset
 * (ECONNRESET) or a FIN. Proves what a proxy passes on when its own client goes away.
 */
export async function startEndingRecordingBackend(name: string): Promise<EndingRecordingBackend> {
  const endings: Array<Promise<PeerEnding>> = [];
  const backend = await serveNamed(name, { allowHalfOpen: true }, 0, (socket) => {
    endings.push(
      new Promise<PeerEnding>((resolve) => {
        socket.on('error', (error: NodeJS.ErrnoException) => {
          if (error.code === 'ECONNRESET') resolve('reset');
        });
        socket.on('end', () => {
          resolve('fin');
          socket.end();
        });
      }),
    );
    socket.write(`${name}\n`);
    socket.resume();
  });
  return {
    ...backend,
    endingOf: async (connection) => {
      // Accepted by the time the client read the greeting; the ending itself is awaited.
      const ending = endings[connection];
      if (ending === undefined) throw new Error(`${name}: no connection #${connection} accepted (${endings.length} so far)`);
      return await ending;
    },
  };
}
