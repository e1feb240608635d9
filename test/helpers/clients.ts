/** Loopback clients for end-to-end tests. */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

export interface ClientOptions {
  readonly port: number;
  /** Source address; any 127.x.y.z works on Linux loopback. */
  readonly localAddress?: string;
  readonly host?: string;
}

export async function openClient(options: ClientOptions): Promise<Socket> {
  const socket = connect({
    host: options.host ?? '127.0.0.1',
    port: options.port,
    localAddress: options.localAddress,
    allowHalfOpen: true,
  });
  try {
    await once(socket, 'connect');
  } catch (error) {
    socket.destroy();
    throw error;
  }
  // A client a test holds open can be reset while nothing reads it: node:test runs `t.after`
  // hooks in the order they were added, so ringlb (stopped in an earlier hook) cuts the
  // connection before the test's own destroy runs. Without a listener that reset is an
  // uncaught 'error' that fails whichever test is running. Readers (readLine, closed, ...) add
  // their own listener and still see every error.
  socket.on('error', () => undefined);
  return socket;
}

/** Read until the first `\n`; resolves with the line (without it). Rejects on close/error first. */
export function readLine(socket: Socket, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      const newline = text.indexOf('\n');
      if (newline >= 0) {
        cleanup();
        // Anything after the newline is put back for the next reader.
        const rest = text.slice(newline + 1);
        socket.pause();
        if (rest.length > 0) socket.unshift(Buffer.from(rest, 'utf8'));
        resolve(text.slice(0, newline));
      }
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error(`socket closed before a full line (got ${JSON.stringify(text)})`));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no line within ${timeoutMs} ms (got ${JSON.stringify(text)})`));
    }, timeoutMs);
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.resume();
  });
}

/** Connect, read the backend's greeting (its name), close. */
export async function whichBackend(options: ClientOptions): Promise<string> {
  const socket = await openClient(options);
  try {
    return await readLine(socket);
  } finally {
    socket.destroy();
  }
}

/** Everything the peer sends until its FIN. */
export function readToEnd(socket: Socket, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`no end within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.resume();
  });
}

/**
 * Resolves when the peer has closed the connection (FIN or reset) and our socket is closed too.
 * Reads and drops whatever still arrives; on the peer's FIN we end our side (allowHalfOpen).
 */
export async function closed(socket: Socket, timeoutMs = 10_000): Promise<void> {
  if (socket.closed) return;
  let timer: NodeJS.Timeout | undefined;
  const onEnd = (): void => {
    socket.end();
  };
  const onError = (): void => {
    socket.destroy();
  };
  socket.on('end', onEnd);
  socket.on('error', onError);
  socket.resume();
  try {
    await Promise.race([
      // Not events.once: it rejects on 'error', and a reset (ECONNRESET) is a way to be closed too.
      new Promise<void>((resolve) => socket.once('close', () => resolve())),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`socket not closed within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    socket.removeListener('end', onEnd);
    socket.removeListener('error', onError);
  }
}

/** Try to connect; resolves with the error code when the connect fails (e.g. ECONNREFUSED). */
export async function connectError(options: ClientOptions): Promise<string | undefined> {
  try {
    const socket = await openClient(options);
    socket.destroy();
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
}
