/**
 * A request/reply backend in a child process that a test can freeze (SIGSTOP) and thaw (SIGCONT):
 * what the fault-injection probe of issue 10 found. A stopped process still has its kernel complete
 * TCP handshakes into the accept queue (backlog 511), so connects succeed and tcp checks pass, but
 * nothing is ever read or answered.
 *
 * Protocol: every chunk the client sends is answered with `<name>\n` (the client learns which
 * backend served it); the backend's FIN follows the client's (half-close kept).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';

const SERVER_SOURCE = `
const net = require('node:net');
const name = process.argv[1];
const server = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => s.destroy());
  s.on('data', () => s.write(name + '\\n'));
  s.on('end', () => s.end());
});
server.listen({ host: '127.0.0.1', port: 0, backlog: 511 }, () => process.stdout.write(server.address().port + '\\n'));
`;

export interface FreezableBackend {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  /** SIGSTOP, resolved once the kernel reports the process stopped. */
  freeze(): Promise<void>;
  /** SIGCONT. */
  thaw(): void;
  /** SIGKILL (ends a stopped process too); idempotent. */
  close(): Promise<void>;
}

export async function startFreezableBackend(name: string): Promise<FreezableBackend> {
  const child: ChildProcess = spawn(process.execPath, ['-e', SERVER_SOURCE, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  const close = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };
  try {
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
    const port = Number(chunk.toString('utf8').trim());
    return {
      name,
      port,
      address: `127.0.0.1:${port}`,
      freeze: async () => {
        child.kill('SIGSTOP');
        await waitForState(child.pid!, (state) => state === 'T' || state === 't');
      },
      thaw: () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Polls /proc until the process state matches; bounded to 2 s. */
async function waitForState(pid: number, matches: (state: string) => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (matches(state)) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} did not reach the expected state (state ${state})`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * One request through `port`: connect, send `ping\n`, read the first line (the backend's name),
 * close. Rejects with the error, or after `timeoutMs` without a reply (the socket is destroyed).
 */
export function request(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: '127.0.0.1', port });
    let received = '';
    const timer = setTimeout(() => finish(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
    const finish = (error: Error | null, line?: string): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error !== null) reject(error);
      else resolve(line!);
    };
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('ping\n'));
    socket.on('data', (chunk: string) => {
      received += chunk;
      const newline = received.indexOf('\n');
      if (newline >= 0) finish(null, received.slice(0, newline));
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new Error(`closed before a reply (${JSON.stringify(received)})`)));
  });
}
