/**
 * Closing a listening socket makes Linux reset every connection waiting in its accept queue: the
 * kernel completed those handshakes, so their clients believe they are connected (with reusePort
 * each worker's socket has its own queue; net.ipv4.tcp_migrate_req moves a closing socket's queue
 * only to another socket of the same group, and a removed listener has none left). A listener that
 * goes away therefore keeps accepting — and serving — until its queue reads empty, and closes in the
 * same turn as that reading.
 *
 * The queue length comes from /proc/net/tcp{,6}: for a LISTEN socket the `rx_queue` column is the
 * number of connections waiting to be accepted. Where /proc is not there (or the socket is not
 * found), the socket closes at once. What this cannot save: a handshake whose final ACK is still in
 * flight when the socket closes (one round trip; none on loopback), and, with clients arriving
 * without pause, one that completes between the reading and the close (microseconds).
 */
import { closeSync, openSync, readlinkSync, readSync } from 'node:fs';

const LISTEN = '0A';
const POLL_MS = 5;
const CHUNK_BYTES = 16384;

function socketInode(fd: number): string | null {
  try {
    const link = readlinkSync(`/proc/self/fd/${fd}`);
    const match = /^socket:\[(\d+)\]$/.exec(link);
    return match === null ? null : match[1]!;
  } catch {
    return null;
  }
}

/**
 * The accept queue length of the LISTEN socket `inode`, or null when it is not listed. The kernel
 * lists listening sockets first, so the read stops at the socket's line or at the first line of
 * another state: with thousands of connections open the whole table is megabytes, and connections
 * keep arriving while it is read, so the reading must be short for the close that follows to hold.
 */
function readListenQueue(path: string, inode: string, chunk: Buffer): number | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    let carry = '';
    let header = true;
    for (;;) {
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) return null;
      const lines = (carry + chunk.toString('latin1', 0, read)).split('\n');
      carry = lines.pop() ?? '';
      for (const line of lines) {
        if (header) {
          header = false;
          continue;
        }
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        const fields = line.trim().split(/\s+/);
        if (fields[3] !== LISTEN) return null;
        if (fields[9] === inode) return Number.parseInt(fields[4]?.split(':')[1] ?? '0', 16);
      }
    }
  } finally {
    closeSync(fd);
  }
}

function readAcceptQueue(inode: string, chunk: Buffer): number | null {
  return readListenQueue('/proc/net/tcp', inode, chunk) ?? readListenQueue('/proc/net/tcp6', inode, chunk);
}

/** Connections waiting in the accept queue of a listening file descriptor; null off Linux or when it is not found. */
export function acceptQueueOf(fd: number): number | null {
  const inode = socketInode(fd);
  return inode === null ? null : readAcceptQueue(inode, Buffer.allocUnsafe(CHUNK_BYTES));
}

/**
 * Calls `close` once the socket's accept queue is empty, read and closed in one turn; the event loop
 * accepts in between. At `deadlineMs` it closes anyway. Resolves with the connections still queued
 * at the close (0 unless the deadline passed; 0 when the reading is unavailable: then it closes at once).
 */
export function closeWhenAcceptQueueEmpty(fd: number, close: () => void, deadlineMs: number): Promise<number> {
  const inode = fd >= 0 ? socketInode(fd) : null;
  if (inode === null) {
    close();
    return Promise.resolve(0);
  }
  const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  const giveUpAt = performance.now() + deadlineMs;
  return new Promise((resolve) => {
    const attempt = (): void => {
      const queued = readAcceptQueue(inode, chunk);
      if (queued === null || queued === 0) {
        close();
        resolve(0);
      } else if (performance.now() >= giveUpAt) {
        close();
        resolve(queued);
      } else {
        setTimeout(attempt, POLL_MS);
      }
    };
    attempt();
  });
}
