/**
 * The PROXY protocol (HAProxy's doc/proxy-protocol.txt, versions 1 and 2): a header a front proxy
 * writes before the client's bytes so that the next hop learns the original client address.
 *
 * Reading: `ProxyHeaderReader` takes the connection's first reads in order and answers once the
 * header is complete, however the bytes were split; the spec forbids guessing, so anything that does
 * not match exactly — a byte out of place, a v1 line without CRLF within 107 bytes, v2 addresses or
 * TLVs running past the announced length — is invalid, and is reported as soon as it is certain (the
 * spec asks receivers to abort early so the sender notices). The bytes after the header are handed
 * back untouched. Nothing here does I/O.
 *
 * Writing: `encodeProxyHeaderV1` / `encodeProxyHeaderV2` build the header ringlb sends to a backend.
 */

export type ProxyProtocolAccept = 'v1' | 'v2' | 'any';

export interface ProxyAddress {
  readonly ip: string;
  readonly port: number;
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /**
   * Addresses of the original connection (v1 TCP4/TCP6; v2 PROXY over TCP or UDP on IPv4/IPv6), or
   * null: v2 LOCAL (the front proxy's own connection, e.g. its health check), v1 UNKNOWN, or a family
   * ringlb does not relay (AF_UNIX, UNSPEC). With null the connection's own addresses stand.
   */
  readonly source: ProxyAddress | null;
  readonly destination: ProxyAddress | null;
  /** v2 LOCAL: the front proxy's own connection (the spec: accept it, use the real endpoints). */
  readonly local: boolean;
  /** v2 PP2_TYPE_UNIQUE_ID, when sent. */
  readonly uniqueId: Buffer | null;
  /** Bytes of the header on the wire. */
  readonly length: number;
}

export type ProxyHeaderStep =
  | { readonly kind: 'more' }
  | { readonly kind: 'header'; readonly header: ProxyHeader; readonly rest: Buffer }
  | { readonly kind: 'invalid'; readonly reason: string };

/** The longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses and ports). */
export const V1_MAX_LENGTH = 107;
/**
 * The longest v2 header accepted (16-byte preamble + addresses + TLVs). The format allows 65,551;
 * buffering that much per connection for any peer is a memory lever, and real senders (HAProxy,
 * nginx, cloud balancers) send well under 1 KiB.
 */
export const V2_MAX_LENGTH = 4096;

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_PREAMBLE = 16;
const TLV_CRC32C = 0x03;
const TLV_UNIQUE_ID = 0x05;
const UNIQUE_ID_MAX = 128;
const CR = 0x0d;
const LF = 0x0a;

const MORE: ProxyHeaderStep = { kind: 'more' };
const invalid = (reason: string): ProxyHeaderStep => ({ kind: 'invalid', reason });

/**
 * One per connection that must start with a header. Feed every read to `push` until it answers
 * `header` or `invalid`; a read that completes nothing is kept (copied only when the header is split
 * across reads, which senders avoid: the spec asks them to send it at once).
 */
export class ProxyHeaderReader {
  readonly #accept: ProxyProtocolAccept;
  #pending: Buffer | null = null;
  #done = false;

  constructor(accept: ProxyProtocolAccept) {
    this.#accept = accept;
  }

  push(chunk: Buffer): ProxyHeaderStep {
    if (this.#done) throw new Error('ProxyHeaderReader: push after the header was read');
    const bytes = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    const step = parseProxyHeader(bytes, this.#accept);
    if (step.kind === 'more') {
      // A copy: the caller's buffer may be reused for its next read.
      this.#pending = Buffer.from(bytes);
    } else {
      this.#pending = null;
      this.#done = true;
    }
    return step;
  }
}

/** Parses a header at the start of `bytes` (everything read so far). */
export function parseProxyHeader(bytes: Buffer, accept: ProxyProtocolAccept): ProxyHeaderStep {
  if (bytes.length === 0) return MORE;
  const first = bytes[0];
  if (first === V2_SIGNATURE[0] && accept !== 'v1') return parseV2(bytes);
  if (first === V1_PREFIX[0] && accept !== 'v2') return parseV1(bytes);
  const expected = accept === 'v1' ? 'a v1 header ("PROXY ")' : accept === 'v2' ? 'the v2 signature' : 'a PROXY protocol header';
  return invalid(`expected ${expected} at the first byte`);
}

// --- version 1 ---------------------------------------------------------------------------------

function parseV1(bytes: Buffer): ProxyHeaderStep {
  const prefix = Math.min(bytes.length, V1_PREFIX.length);
  if (bytes.compare(V1_PREFIX, 0, prefix, 0, prefix) !== 0) return invalid('v1: the line must start with "PROXY "');
  const limit = Math.min(bytes.length, V1_MAX_LENGTH);
  let end = -1;
  for (let i = 0; i < limit; i++) {
    const byte = bytes[i]!;
    if (byte === CR) {
      if (i + 2 > V1_MAX_LENGTH) return invalid('v1: no CRLF within 107 bytes');
      if (i + 1 >= bytes.length) return MORE;
      if (bytes[i + 1] !== LF) return invalid('v1: CR not followed by LF');
      end = i;
      break;
    }
    if (byte === LF) return invalid('v1: LF without CR');
    // The line is US-ASCII text: a control or 8-bit byte is never part of it.
    if (byte < 0x20 || byte > 0x7e) return invalid('v1: a byte that is not printable US-ASCII');
  }
  if (end < 0) return bytes.length >= V1_MAX_LENGTH ? invalid('v1: no CRLF within 107 bytes') : MORE;
  const line = bytes.toString('latin1', 0, end);
  const length = end + 2;
  const rest = bytes.subarray(length);
  const fields = line.split(' ');
  const protocol = fields[1];
  if (protocol === 'UNKNOWN') {
    // The spec: the receiver must ignore anything after UNKNOWN before the CRLF.
    return { kind: 'header', header: { version: 1, source: null, destination: null, local: false, uniqueId: null, length }, rest };
  }
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return invalid(`v1: unknown protocol "${protocol ?? ''}"`);
  if (fields.length !== 6) return invalid(`v1: ${protocol} needs exactly 4 fields separated by single spaces`);
  const parseAddress = protocol === 'TCP4' ? parseIpv4Text : parseIpv6Text;
  const sourceIp = parseAddress(fields[2]!);
  const destinationIp = parseAddress(fields[3]!);
  const sourcePort = parsePortText(fields[4]!);
  const destinationPort = parsePortText(fields[5]!);
  if (sourceIp === null) return invalid(`v1: bad ${protocol} source address`);
  if (destinationIp === null) return invalid(`v1: bad ${protocol} destination address`);
  if (sourcePort === null) return invalid('v1: bad source port');
  if (destinationPort === null) return invalid('v1: bad destination port');
  return {
    kind: 'header',
    header: {
      version: 1,
      source: { ip: sourceIp, port: sourcePort },
      destination: { ip: destinationIp, port: destinationPort },
      local: false,
      uniqueId: null,
      length,
    },
    rest,
  };
}

/** Dotted quad without leading zeros; null when not exactly that. */
function parseIpv4Text(text: string): string | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) return null;
  }
  return text;
}

/** Hex groups and at most one "::", exactly 128 bits; returned in canonical form. */
function parseIpv6Text(text: string): string | null {
  if (!/^[0-9A-Fa-f:]{2,39}$/.test(text)) return null;
  const bytes = ipv6TextToBytes(text);
  return bytes === null ? null : ipv6BytesToText(bytes, 0);
}

function parsePortText(text: string): number | null {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return null;
  const port = Number(text);
  return port > 65535 ? null : port;
}

// --- version 2 ---------------------------------------------------------------------------------

function parseV2(bytes: Buffer): ProxyHeaderStep {
  const signature = Math.min(bytes.length, V2_SIGNATURE.length);
  if (bytes.compare(V2_SIGNATURE, 0, signature, 0, signature) !== 0) return invalid('v2: signature mismatch');
  if (bytes.length < 13) return MORE;
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) return invalid(`v2: version ${versionCommand >> 4} (only 2 exists)`);
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid(`v2: unknown command ${command}`);
  if (bytes.length < 14) return MORE;
  const familyProtocol = bytes[13]!;
  const family = familyProtocol >> 4;
  const protocol = familyProtocol & 0x0f;
  if (family > 3) return invalid(`v2: unknown address family ${family}`);
  if (protocol > 2) return invalid(`v2: unknown transport protocol ${protocol}`);
  if (bytes.length < V2_PREAMBLE) return MORE;
  const length = V2_PREAMBLE + bytes.readUInt16BE(14);
  if (length > V2_MAX_LENGTH) return invalid(`v2: header of ${length} bytes is longer than ${V2_MAX_LENGTH}`);
  if (bytes.length < length) return MORE;

  const header = bytes.subarray(0, length);
  const rest = bytes.subarray(length);
  // Address block sizes by family; the spec: a receiver must always skip `len` bytes, never assume.
  const addressBytes = family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0;
  const local = command === 0;
  if (!local && length - V2_PREAMBLE < addressBytes) {
    return invalid(`v2: ${length - V2_PREAMBLE} bytes after the preamble cannot hold the ${addressBytes}-byte address block`);
  }
  // LOCAL: the spec says to ignore the family and addresses; the length still says where TLVs start.
  const tlvStart = V2_PREAMBLE + (local ? Math.min(addressBytes, length - V2_PREAMBLE) : addressBytes);
  let uniqueId: Buffer | null = null;
  for (let at = tlvStart; at < length; ) {
    if (length - at < 3) return invalid('v2: a TLV runs past the header');
    const type = header[at]!;
    const valueLength = header.readUInt16BE(at + 1);
    const valueStart = at + 3;
    if (valueStart + valueLength > length) return invalid(`v2: TLV 0x${type.toString(16).padStart(2, '0')} runs past the header`);
    if (type === TLV_UNIQUE_ID) {
      if (valueLength > UNIQUE_ID_MAX) return invalid(`v2: UNIQUE_ID of ${valueLength} bytes (at most ${UNIQUE_ID_MAX})`);
      uniqueId = Buffer.from(header.subarray(valueStart, valueStart + valueLength));
    } else if (type === TLV_CRC32C) {
      if (valueLength !== 4) return invalid('v2: CRC32C TLV must be 4 bytes');
      if (!crc32cMatches(header, valueStart)) return invalid('v2: CRC32C mismatch');
    }
    at = valueStart + valueLength;
  }

  let source: ProxyAddress | null = null;
  let destination: ProxyAddress | null = null;
  // Only TCP and UDP over IPv4/IPv6 carry addresses ringlb can use; other families keep the real endpoints.
  if (!local && (protocol === 1 || protocol === 2)) {
    if (family === 1) {
      source = { ip: ipv4BytesToText(header, 16), port: header.readUInt16BE(24) };
      destination = { ip: ipv4BytesToText(header, 20), port: header.readUInt16BE(26) };
    } else if (family === 2) {
      source = { ip: ipv6BytesToText(header, 16), port: header.readUInt16BE(48) };
      destination = { ip: ipv6BytesToText(header, 32), port: header.readUInt16BE(50) };
    }
  }
  return { kind: 'header', header: { version: 2, source, destination, local, uniqueId, length }, rest };
}

// --- writing -----------------------------------------------------------------------------------

/** `::ffff:a.b.c.d` is the IPv4 client of a dual-stack socket: the header names it as IPv4. */
function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

function familyOf(ip: string): 4 | 6 | 0 {
  if (parseIpv4Text(ip) !== null) return 4;
  return ipv6TextToBytes(ip) !== null ? 6 : 0;
}

/**
 * v1 line for a TCP connection from `source` to `destination`; `PROXY UNKNOWN` when their families
 * differ or an address is not an IP literal (the spec's answer when the line cannot be filled).
 */
export function encodeProxyHeaderV1(source: ProxyAddress, destination: ProxyAddress): Buffer {
  const sourceIp = unmapped(source.ip);
  const destinationIp = unmapped(destination.ip);
  const family = familyOf(sourceIp);
  if (family === 0 || family !== familyOf(destinationIp)) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const text = (ip: string): string => (family === 4 ? ip : ipv6BytesToText(ipv6TextToBytes(ip)!, 0));
  return Buffer.from(`PROXY TCP${family} ${text(sourceIp)} ${text(destinationIp)} ${source.port} ${destination.port}\r\n`, 'latin1');
}

/**
 * v2 header (command PROXY, TCP) for a connection from `source` to `destination`, with a UNIQUE_ID TLV
 * when given (at most 128 bytes). Families that differ are sent as UNSPEC with no addresses.
 */
export function encodeProxyHeaderV2(source: ProxyAddress, destination: ProxyAddress, uniqueId?: Uint8Array): Buffer {
  if (uniqueId !== undefined && uniqueId.length > UNIQUE_ID_MAX) throw new RangeError(`UNIQUE_ID is at most ${UNIQUE_ID_MAX} bytes`);
  const sourceIp = unmapped(source.ip);
  const destinationIp = unmapped(destination.ip);
  const family = familyOf(sourceIp);
  const sameFamily = family !== 0 && family === familyOf(destinationIp);
  const addressBytes = !sameFamily ? 0 : family === 4 ? 12 : 36;
  const tlvBytes = uniqueId === undefined ? 0 : 3 + uniqueId.length;
  const header = Buffer.alloc(V2_PREAMBLE + addressBytes + tlvBytes);
  V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21; // version 2, PROXY
  header[13] = !sameFamily ? 0x00 : family === 4 ? 0x11 : 0x21;
  header.writeUInt16BE(addressBytes + tlvBytes, 14);
  if (sameFamily && family === 4) {
    writeIpv4(header, 16, sourceIp);
    writeIpv4(header, 20, destinationIp);
    header.writeUInt16BE(source.port, 24);
    header.writeUInt16BE(destination.port, 26);
  } else if (sameFamily) {
    header.set(ipv6TextToBytes(sourceIp)!, 16);
    header.set(ipv6TextToBytes(destinationIp)!, 32);
    header.writeUInt16BE(source.port, 48);
    header.writeUInt16BE(destination.port, 50);
  }
  if (uniqueId !== undefined) {
    const at = V2_PREAMBLE + addressBytes;
    header[at] = TLV_UNIQUE_ID;
    header.writeUInt16BE(uniqueId.length, at + 1);
    header.set(uniqueId, at + 3);
  }
  return header;
}

/**
 * The header of a connection that carries no client: v2 LOCAL (the spec: the receiver uses the real
 * endpoints) or v1 `PROXY UNKNOWN`. What ringlb's health checks send to a pool with sendProxyProtocol.
 */
export function encodeProxyHeaderLocal(version: 'v1' | 'v2'): Buffer {
  if (version === 'v1') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const header = Buffer.alloc(V2_PREAMBLE);
  V2_SIGNATURE.copy(header, 0);
  header[12] = 0x20; // version 2, LOCAL
  header[13] = 0x00; // UNSPEC, no addresses
  return header;
}

// --- addresses ---------------------------------------------------------------------------------

function writeIpv4(target: Buffer, offset: number, ip: string): void {
  const parts = ip.split('.');
  for (let i = 0; i < 4; i++) target[offset + i] = Number(parts[i]);
}

function ipv4BytesToText(bytes: Buffer, offset: number): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** 16 bytes of an IPv6 address written with hex groups, at most one "::" (and an IPv4 tail); null when invalid. */
export function ipv6TextToBytes(text: string): Uint8Array | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (part: string): number[] | null => {
    if (part === '') return [];
    const groups: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        if (parseIpv4Text(piece) === null) return null;
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number];
        groups.push((a << 8) | b, (c << 8) | d);
      } else {
        if (!/^[0-9A-Fa-f]{1,4}$/.test(piece)) return null;
        groups.push(Number.parseInt(piece, 16));
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  // "::" stands for at least one zero group; without it the groups must be exactly eight.
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return bytes;
}

/** RFC 5952 text (lower case, the longest run of two or more zero groups as "::"), as Node prints addresses. */
export function ipv6BytesToText(bytes: Uint8Array, offset: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[offset + i * 2]! << 8) | bytes[offset + i * 2 + 1]!);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((group) => group.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

// --- CRC32C (RFC 4960 appendix B), for the optional PP2_TYPE_CRC32C TLV -------------------------

let crc32cTable: Uint32Array | null = null;

function crc32c(bytes: Uint8Array, skipFrom: number, skipTo: number): number {
  if (crc32cTable === null) {
    crc32cTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crc32cTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    // The checksum field counts as zeros.
    const byte = i >= skipFrom && i < skipTo ? 0 : bytes[i]!;
    crc = crc32cTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function crc32cMatches(header: Buffer, valueStart: number): boolean {
  return crc32c(header, valueStart, valueStart + 4) === header.readUInt32BE(valueStart);
}

/** For tests and senders that add the checksum: the CRC32C of a header whose 4-byte field at `valueStart` counts as zeros. */
export function proxyHeaderCrc32c(header: Uint8Array, valueStart: number): number {
  return crc32c(header, valueStart, valueStart + 4);
}
