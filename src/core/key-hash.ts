/**
 * The per-connection key for hash policies (ring_hash, maglev): a u32 computed from the client's
 * address (and optionally port) with integer-only parsing, so no string ever reaches the core and
 * nothing is allocated per connection.
 *
 * Definition (pinned by golden vectors in test/core-hash.test.ts):
 *   keyHash = murmur3_x86_32(addressBytes ‖ portBytes, KEY_SEED = 0xa54ff53a)
 * where addressBytes are the 4 (IPv4) or 16 (IPv6) address bytes in network order, an IPv4-mapped
 * IPv6 address (`::ffff:1.2.3.4`) counts as its 4 IPv4 bytes (so a dual-stack listener hashes a
 * client the same whichever family it arrives on), and portBytes are the 2 port bytes big-endian,
 * present only when `includePort` is set and a port is known. An IPv6 zone (`fe80::1%eth0`) is
 * ignored. Anything unparsable hashes to 0, which is still a valid key: such clients share a backend.
 */
import { KEY_SEED, murmurFinish, murmurMixBlock, murmurMixTail } from './hash.js';

/** The 8 IPv6 groups of the address being parsed; module scratch, reused by every call. */
const groups = new Uint16Array(8);

const CHAR_0 = 48;
const CHAR_9 = 57;
const CHAR_DOT = 46;
const CHAR_COLON = 58;
const CHAR_PERCENT = 37;
const CHAR_OPEN_BRACKET = 91;
const CHAR_CLOSE_BRACKET = 93;

function hexValue(code: number): number {
  if (code >= CHAR_0 && code <= CHAR_9) return code - CHAR_0;
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/** Dotted quad in [start, end) → u32 in network order (first octet in the top byte), or -1. */
function parseIPv4(text: string, start: number, end: number): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code === CHAR_DOT) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (code >= CHAR_0 && code <= CHAR_9) {
      // Leading zeros are rejected as Node's net.isIPv4 does ("01.2.3.4" is ambiguous: octal?).
      if (digits === 1 && octet === 0) return -1;
      octet = octet * 10 + (code - CHAR_0);
      if (octet > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/** IPv6 text in [start, end) → fills `groups`; returns false when it is not a valid address. */
function parseIPv6(text: string, start: number, end: number): boolean {
  let count = 0;
  let gapAt = -1;
  let i = start;
  if (i + 1 < end && text.charCodeAt(i) === CHAR_COLON) {
    if (text.charCodeAt(i + 1) !== CHAR_COLON) return false;
    gapAt = 0;
    i += 2;
  }
  while (i < end) {
    const groupStart = i;
    let value = 0;
    let digits = 0;
    while (i < end) {
      const digit = hexValue(text.charCodeAt(i));
      if (digit < 0) break;
      if (++digits > 4) return false;
      value = value * 16 + digit;
      i++;
    }
    if (i < end && text.charCodeAt(i) === CHAR_DOT) {
      // Embedded dotted quad (`::ffff:1.2.3.4`, `64:ff9b::1.2.3.4`): it fills the last two groups.
      const v4 = parseIPv4(text, groupStart, end);
      if (v4 < 0 || count > 6) return false;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (digits === 0 || count === 8) return false;
    groups[count++] = value;
    if (i === end) break;
    if (text.charCodeAt(i) !== CHAR_COLON) return false;
    i++;
    if (i < end && text.charCodeAt(i) === CHAR_COLON) {
      if (gapAt >= 0) return false;
      gapAt = count;
      i++;
    } else if (i === end) {
      return false;
    }
  }
  if (gapAt < 0) return count === 8;
  if (count > 7) return false;
  // Expand "::": move the groups after the gap to the end and zero the gap.
  const shift = 8 - count;
  for (let g = count - 1; g >= gapAt; g--) groups[g + shift] = groups[g];
  for (let g = gapAt; g < gapAt + shift; g++) groups[g] = 0;
  return true;
}

/** Two groups as the little-endian word murmur3 reads from their four network-order bytes. */
function groupsWord(high: number, low: number): number {
  return (high >>> 8) | ((high & 0xff) << 8) | ((low >>> 8) << 16) | ((low & 0xff) << 24);
}

/** Adds the optional 2-byte big-endian port tail and finalizes. */
function finishWithPort(h: number, addressBytes: number, port: number): number {
  if (port < 0) return murmurFinish(h, addressBytes);
  return murmurFinish(murmurMixTail(h, ((port & 0xff) << 8) | (port >>> 8)), addressBytes + 2);
}

/**
 * Hash of a client address (as Node reports `socket.remoteAddress`) and optionally its port.
 * Called once per accepted connection; allocation-free.
 */
export function sourceKeyHash(address: string | undefined, port: number | undefined, includePort: boolean): number {
  if (typeof address !== 'string' || address.length === 0) return 0;
  let portValue = -1;
  if (includePort && port !== undefined) {
    if (!Number.isInteger(port) || port < 0 || port > 65535) return 0;
    portValue = port;
  }
  let start = 0;
  let end = address.length;
  if (address.charCodeAt(0) === CHAR_OPEN_BRACKET) {
    if (address.charCodeAt(end - 1) !== CHAR_CLOSE_BRACKET) return 0;
    start = 1;
    end -= 1;
  }
  let isV6 = false;
  for (let i = start; i < end; i++) {
    const code = address.charCodeAt(i);
    if (code === CHAR_COLON) isV6 = true;
    else if (code === CHAR_PERCENT && isV6) {
      end = i; // zone id: routing scope, not part of the address
      break;
    }
  }
  if (!isV6) {
    if (start !== 0) return 0;
    const v4 = parseIPv4(address, start, end);
    if (v4 < 0) return 0;
    return hashIPv4(v4, portValue);
  }
  if (!parseIPv6(address, start, end)) return 0;
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return hashIPv4(groups[6] * 65536 + groups[7], portValue);
  }
  let h = KEY_SEED | 0;
  h = murmurMixBlock(h, groupsWord(groups[0], groups[1]));
  h = murmurMixBlock(h, groupsWord(groups[2], groups[3]));
  h = murmurMixBlock(h, groupsWord(groups[4], groups[5]));
  h = murmurMixBlock(h, groupsWord(groups[6], groups[7]));
  return finishWithPort(h, 16, portValue);
}

function hashIPv4(networkOrder: number, port: number): number {
  const h = murmurMixBlock(KEY_SEED | 0, groupsWord(networkOrder >>> 16, networkOrder & 0xffff));
  return finishWithPort(h, 4, port);
}

/**
 * The address as integers, for CIDR matching (src/proxy/cidr-list.ts): 4 with the IPv4 address in
 * `out[0]` (an IPv4-mapped IPv6 address counts as IPv4, as for the key hash), 6 with the 128 bits in
 * `out[0..3]` (most significant word first), 0 when it is not an address. Allocation-free.
 */
export function addressWords(address: string, out: Uint32Array): 0 | 4 | 6 {
  let end = address.length;
  let isV6 = false;
  for (let i = 0; i < end; i++) {
    const code = address.charCodeAt(i);
    if (code === CHAR_COLON) isV6 = true;
    else if (code === CHAR_PERCENT && isV6) {
      end = i;
      break;
    }
  }
  if (!isV6) {
    const v4 = parseIPv4(address, 0, end);
    if (v4 < 0) return 0;
    out[0] = v4;
    return 4;
  }
  if (!parseIPv6(address, 0, end)) return 0;
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    out[0] = groups[6] * 65536 + groups[7];
    return 4;
  }
  out[0] = groups[0] * 65536 + groups[1];
  out[1] = groups[2] * 65536 + groups[3];
  out[2] = groups[4] * 65536 + groups[5];
  out[3] = groups[6] * 65536 + groups[7];
  return 6;
}
