/**
 * A child process that opens N connections at once to 127.0.0.1:<port> and reads one line from each
 * (argv: port, count). It runs apart from the test so the connections reach the kernel's accept queue
 * while the test's own event loop is blocked. Prints one JSON object of outcome → count and exits.
 */
import { connect } from 'node:net';

const port = Number(process.argv[2]);
const count = Number(process.argv[3]);

function one(): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('timeout');
    }, 10_000);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (!text.includes('\n')) return;
      clearTimeout(timer);
      socket.destroy();
      resolve('served');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code ?? error.message);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

const outcomes: Record<string, number> = {};
for (const outcome of await Promise.all(Array.from({ length: count }, one))) outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
process.stdout.write(`${JSON.stringify(outcomes)}\n`);
