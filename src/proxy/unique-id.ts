/**
 * UNIQUE_ID values for the PROXY v2 headers ringlb sends (PP2_TYPE_UNIQUE_ID, at most 128 bytes):
 * 16 bytes, an 8-byte prefix drawn at random once per thread (a worker thread and a restart each
 * draw their own: 2^64 values, so two threads collide with negligible probability) followed by an
 * 8-byte counter. No crypto per connection: one `randomBytes` per thread, then an add.
 */
import { randomBytes } from 'node:crypto';

const PREFIX = randomBytes(8);
let counter = 0n;

/** A fresh id per call (a new 16-byte buffer: the header copies it). */
export function nextUniqueId(): Buffer {
  const id = Buffer.allocUnsafe(16);
  PREFIX.copy(id, 0);
  counter += 1n;
  id.writeBigUInt64BE(counter, 8);
  return id;
}
