/**
 * Worker thread of ping-probe.ts: an echo backend and a client that pings through ringlb, both on
 * this thread so that the test's own main thread (busy sending a burst) cannot delay them.
 */
import { readFileSync } from 'node:fs';
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

/**
 * Milliseconds the given threads have spent runnable but waiting for a CPU (Linux schedstat, second
 * field, ns): time a ping was delayed by the machine's other work rather than by the process under
 * test. 0 where schedstat is not available.
 */
function runQueueWaitMs(paths: readonly string[]): number {
  let ns = 0;
  for (const path of paths) {
    try {
      ns += Number(readFileSync(path, 'utf8').split(' ')[1]);
    } catch {
      // No schedstat (not Linux, or the process is gone): nothing to discount.
    }
  }
  return ns / 1e6;
}

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

function start(listenerPort: number, gapMs: number, maxPings: number, watchedPid: number | undefined): void {
  let sentAt = 0;
  let waitAtSend = 0;
  // The pinged process's main thread (its TID is its pid) and this thread (echo backend and client).
  const waitPaths = ['/proc/thread-self/schedstat', ...(watchedPid === undefined ? [] : [`/proc/${watchedPid}/task/${watchedPid}/schedstat`])];
  const ping = (): void => {
    if (stopped) return;
    if (samples.length >= maxPings) {
      failure = `stopped after ${maxPings} pings (the bound), before the test said stop`;
      finish();
      return;
    }
    waitAtSend = runQueueWaitMs(waitPaths);
    sentAt = epochNow();
    client!.write('p');
  };
  client = connect({ host: '127.0.0.1', port: listenerPort }, () => {
    post({ type: 'started' });
    ping();
  });
  client.on('data', (data) => {
    // One byte out, one byte back: each data event answers the ping in flight.
    const rttMs = epochNow() - sentAt;
    const runQueueMs = runQueueWaitMs(waitPaths) - waitAtSend;
    for (let i = 0; i < data.length; i++) record({ sentAt, rttMs, runQueueMs });
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
  if (command.type === 'start') start(command.listenerPort, command.gapMs, command.maxPings, command.watchedPid);
  else if (command.type === 'notify') notifyAt.push(samples.length + command.count);
  else finish();
});
