/**
 * Worker thread of ping-probe.ts: an echo backend and a client that pings through ringlb, both on
 * this thread so that the test's own main thread (busy sending a burst) cannot delay them.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { PROBE_NICE, type PingProbeCommand, type PingProbeMessage, type PingSample } from './ping-probe.js';

const port = parentPort!;

// Linux nice values are per thread and setpriority(pid 0) means the calling thread: this raises
// only the probe's own thread (see PROBE_NICE). Without permission the probe runs at normal priority.
try {
  setPriority(PROBE_NICE);
} catch {
  // Not permitted: measure at normal priority.
}
const post = (message: PingProbeMessage): void => port.postMessage(message);
const epochNow = (): number => performance.timeOrigin + performance.now();

const backendSockets = new Set<Socket>();
const echo = createServer((socket) => {
  backendSockets.add(socket);
  socket.on('close', () => backendSockets.delete(socket));
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});
echo.listen(0, '127.0.0.1', () => post({ type: 'ready', backendPort: (echo.address() as AddressInfo).port }));

let client: Socket | undefined;
let timer: NodeJS.Timeout | undefined;
const samples: PingSample[] = [];
let failure: string | undefined;
let stopped = false;
/** Sample counts at which to tell the test (`notify`). */
const notifyAt: number[] = [];

function record(sample: PingSample): void {
  samples.push(sample);
  for (let i = notifyAt.length - 1; i >= 0; i--) {
    if (samples.length >= notifyAt[i]!) {
      notifyAt.splice(i, 1);
      post({ type: 'pinged' });
    }
  }
}

function finish(): void {
  if (stopped) return;
  stopped = true;
  clearTimeout(timer);
  client?.destroy();
  for (const socket of backendSockets) socket.destroy();
  echo.close();
  post({ type: 'result', samples, failure });
}

function start(listenerPort: number, gapMs: number, maxPings: number): void {
  let sentAt = 0;
  const ping = (): void => {
    if (stopped) return;
    if (samples.length >= maxPings) {
      failure = `stopped after ${maxPings} pings (the bound), before the test said stop`;
      finish();
      return;
    }
    sentAt = epochNow();
    client!.write('p');
  };
  client = connect({ host: '127.0.0.1', port: listenerPort }, () => {
    post({ type: 'started' });
    ping();
  });
  client.on('data', (data) => {
    // One byte out, one byte back: each data event answers the ping in flight.
    for (let i = 0; i < data.length; i++) record({ sentAt, rttMs: epochNow() - sentAt });
    timer = setTimeout(ping, gapMs);
  });
  client.on('error', (error) => {
    failure = `ping connection failed: ${error.message}`;
    finish();
  });
  client.on('close', () => {
    if (!stopped) {
      failure = 'ping connection closed by ringlb';
      finish();
    }
  });
}

port.on('message', (command: PingProbeCommand) => {
  if (command.type === 'start') start(command.listenerPort, command.gapMs, command.maxPings);
  else if (command.type === 'notify') notifyAt.push(samples.length + command.count);
  else finish();
});
