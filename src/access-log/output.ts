/**
 * The access log's output, owned by the main thread: one file descriptor for the whole process.
 * Every thread that writes access lines (the main thread with `workers: 1`, else each worker)
 * writes to this descriptor, by number (descriptors are process-wide), one write(2) per line. The
 * file is opened with O_APPEND, so the kernel places each write at the end of the file as a whole
 * and lines of several threads never interleave.
 *
 * Reopening (SIGUSR1, for logrotate) and a new output on reload open the new descriptor first,
 * hand it to every thread, and close the old one only once every thread has answered that it
 * switched: no thread ever writes to a closed (or reused) descriptor. A worker that dies holds
 * nothing of its own to leak, and its replacement starts on the current descriptor.
 */
import { closeSync, openSync } from 'node:fs';
import { isFileOutput, type AccessLogOutput as OutputName } from './settings.js';

const STDOUT_FD = 1;
const STDERR_FD = 2;

/** A descriptor for `output`: 1, 2, or the file opened for appending (created 0644 less the umask). Throws a readable reason. */
export function openOutput(output: OutputName): number {
  if (output === 'stdout') return STDOUT_FD;
  if (output === 'stderr') return STDERR_FD;
  try {
    return openSync(output, 'a', 0o644);
  } catch (error) {
    throw new Error(`cannot open ${output} for appending: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Close a descriptor `openOutput` returned; stdout and stderr stay open (the operational log uses them). */
export function closeOutput(fd: number): void {
  if (fd === STDOUT_FD || fd === STDERR_FD) return;
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing else holds it.
  }
}

export { isFileOutput };
