/**
 * The PROXY protocol reader and writers (src/proxy/proxy-protocol.ts) against the spec
 * (HAProxy's doc/proxy-protocol.txt): valid headers of both versions, each known failure class,
 * and properties over generated headers — a header split at any byte boundaries parses the same and
 * hands back the bytes after it untouched; random or mutated input never throws. The number of
 * generated cases is small here (CI); `npm run fuzz` runs many more (FUZZ_RUNS).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { budgetMs, fuzz, runs } from './helpers/fuzz.js';
import fc from 'fast-check';
import {
  encodeProxyHeaderLocal,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  ipv6BytesToText,
  ipv6TextToBytes,
  parseProxyHeader,
  proxyHeaderCrc32c,
  ProxyHeaderReader,
  V1_MAX_LENGTH,
  type ProxyHeaderStep,
  type ProxyProtocolAccept,
} from '../src/proxy/proxy-protocol.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function v2(versionCommand: number, familyProtocol: number, body: Buffer, declaredLength = body.length): Buffer {
  const preamble = Buffer.alloc(4);
  preamble[0] = versionCommand;
  preamble[1] = familyProtocol;
  preamble.writeUInt16BE(declaredLength, 2);
  return Buffer.concat([SIGNATURE, preamble, body]);
}

function ipv4Block(source: string, destination: string, sourcePort: number, destinationPort: number): Buffer {
  const block = Buffer.alloc(12);
  source.split('.').forEach((part, i) => (block[i] = Number(part)));
  destination.split('.').forEach((part, i) => (block[4 + i] = Number(part)));
  block.writeUInt16BE(sourcePort, 8);
  block.writeUInt16BE(destinationPort, 10);
  return block;
}

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

function parsed(bytes: Buffer, accept: ProxyProtocolAccept = 'any'): Extract<ProxyHeaderStep, { kind: 'header' }> {
  const step = parseProxyHeader(bytes, accept);
  assert.equal(step.kind, 'header', JSON.stringify(step));
  return step as Extract<ProxyHeaderStep, { kind: 'header' }>;
}

function invalidReason(bytes: Buffer, accept: ProxyProtocolAccept = 'any'): string {
  const step = parseProxyHeader(bytes, accept);
  assert.equal(step.kind, 'invalid', `expected invalid, got ${JSON.stringify(step)}`);
  return (step as { reason: string }).reason;
}

describe('version 1', () => {
  test('TCP4 and TCP6 lines give the addresses; the payload after the CRLF is handed back untouched', () => {
    const four = parsed(Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET / HTTP/1.0\r\n'));
    assert.deepEqual(four.header.source, { ip: '192.0.2.1', port: 56324 });
    assert.deepEqual(four.header.destination, { ip: '198.51.100.7', port: 443 });
    assert.equal(four.rest.toString(), 'GET / HTTP/1.0\r\n');
    const six = parsed(Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 65535 0\r\n'));
    assert.deepEqual(six.header.source, { ip: '2001:db8::1', port: 65535 }, 'canonical (RFC 5952) text');
    assert.deepEqual(six.header.destination, { ip: '::1', port: 0 });
    assert.equal(six.rest.length, 0);
  });

  test('UNKNOWN (short and long form) keeps the connection\'s own addresses', () => {
    assert.equal(parsed(Buffer.from('PROXY UNKNOWN\r\n')).header.source, null);
    const long = `PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`;
    assert.equal(long.length, V1_MAX_LENGTH, 'the spec\'s worst case is 107 bytes');
    assert.equal(parsed(Buffer.from(long)).header.source, null);
  });

  test('every malformed line is refused with a reason', () => {
    const cases: Array<[string, RegExp]> = [
      ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', /LF without CR/],
      ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', /CR not followed by LF/],
      [`PROXY UNKNOWN ${'x'.repeat(120)}`, /no CRLF within 107/],
      [`PROXY UNKNOWN ${'f'.repeat(92)}\r\n`, /no CRLF within 107/],
      ['PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n', /source address/],
      ['PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n', /destination address/],
      ['PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', /source port/],
      ['PROXY TCP4 1.2.3.4 5.6.7.8 1 02\r\n', /destination port/],
      ['PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n', /exactly 4 fields/],
      ['PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', /exactly 4 fields/],
      ['PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n', /TCP6 source address/],
      ['PROXY TCP6 1::2::3 ::1 1 2\r\n', /TCP6 source address/],
      ['PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', /unknown protocol/],
      ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\t\r\n', /printable/],
      ['PROXX TCP4', /start with "PROXY "/],
      ['GET / HTTP/1.1\r\n', /first byte/],
    ];
    for (const [line, reason] of cases) assert.match(invalidReason(Buffer.from(line, 'latin1')), reason, JSON.stringify(line));
  });

  test('an incomplete line waits for more; a v1-only listener refuses v2 and the other way round', () => {
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6'), 'v1').kind, 'more');
    assert.equal(parseProxyHeader(Buffer.from('PRO'), 'any').kind, 'more');
    assert.match(invalidReason(encodeProxyHeaderV2({ ip: '1.2.3.4', port: 1 }, { ip: '5.6.7.8', port: 2 }), 'v1'), /v1 header/);
    assert.match(invalidReason(Buffer.from('PROXY UNKNOWN\r\n'), 'v2'), /v2 signature/);
  });
});

describe('version 2', () => {
  test('PROXY over TCP/IPv4 and IPv6 with a UNIQUE_ID TLV; payload in the same read handed back', () => {
    const id = Buffer.from('conn-0001');
    const four = parsed(Buffer.concat([encodeProxyHeaderV2({ ip: '10.1.2.3', port: 4000 }, { ip: '10.9.9.9', port: 80 }, id), Buffer.from('payload')]));
    assert.deepEqual(four.header.source, { ip: '10.1.2.3', port: 4000 });
    assert.deepEqual(four.header.destination, { ip: '10.9.9.9', port: 80 });
    assert.deepEqual(four.header.uniqueId, id);
    assert.equal(four.header.local, false);
    assert.equal(four.rest.toString(), 'payload');
    const six = parsed(encodeProxyHeaderV2({ ip: '2001:db8::5', port: 1 }, { ip: '::1', port: 2 }));
    assert.deepEqual([six.header.source, six.header.destination], [{ ip: '2001:db8::5', port: 1 }, { ip: '::1', port: 2 }]);
  });

  test('LOCAL (a health check from the front proxy), UNSPEC and AF_UNIX keep the real endpoints', () => {
    const local = parsed(v2(0x20, 0x00, Buffer.alloc(0)));
    assert.equal(local.header.local, true);
    assert.equal(local.header.source, null);
    const localWithAddresses = parsed(v2(0x20, 0x11, ipv4Block('1.1.1.1', '2.2.2.2', 1, 2)));
    assert.equal(localWithAddresses.header.source, null, 'LOCAL ignores the addresses it carries');
    assert.equal(parsed(v2(0x21, 0x00, Buffer.alloc(0))).header.source, null);
    assert.equal(parsed(v2(0x21, 0x31, Buffer.alloc(216))).header.source, null);
  });

  test('a valid CRC32C passes; a wrong one is refused', () => {
    const body = Buffer.concat([ipv4Block('1.2.3.4', '5.6.7.8', 10, 20), tlv(0x03, Buffer.alloc(4))]);
    const header = v2(0x21, 0x11, body);
    const valueStart = 16 + 12 + 3;
    header.writeUInt32BE(proxyHeaderCrc32c(header, valueStart), valueStart);
    assert.deepEqual(parsed(header).header.source, { ip: '1.2.3.4', port: 10 });
    header[valueStart] ^= 1;
    assert.match(invalidReason(header), /CRC32C mismatch/);
  });

  test('each known failure class is refused with a reason', () => {
    const addresses = ipv4Block('1.2.3.4', '5.6.7.8', 1, 2);
    const cases: Array<[Buffer, RegExp]> = [
      [v2(0x11, 0x11, addresses), /version 1/],
      [v2(0x22, 0x11, addresses), /unknown command/],
      [v2(0x21, 0x41, addresses), /address family/],
      [v2(0x21, 0x13, addresses), /transport protocol/],
      [v2(0x21, 0x11, addresses.subarray(0, 8)), /cannot hold the 12-byte address block/],
      [v2(0x21, 0x21, Buffer.alloc(20)), /cannot hold the 36-byte/],
      [v2(0x21, 0x11, Buffer.concat([addresses, Buffer.from([0x05, 0x00])])), /TLV runs past/],
      [v2(0x21, 0x11, Buffer.concat([addresses, Buffer.from([0x05, 0x00, 0x09, 0x41])])), /TLV 0x05 runs past/],
      [v2(0x21, 0x11, Buffer.concat([addresses, tlv(0x05, Buffer.alloc(129))])), /UNIQUE_ID of 129/],
      [v2(0x21, 0x11, Buffer.concat([addresses, tlv(0x03, Buffer.alloc(3))])), /CRC32C TLV must be 4/],
      [v2(0x21, 0x11, Buffer.alloc(0), 5000), /longer than 4096/],
      [Buffer.concat([SIGNATURE.subarray(0, 6), Buffer.from('X')]), /signature mismatch/],
    ];
    for (const [bytes, reason] of cases) assert.match(invalidReason(bytes), reason, bytes.toString('hex'));
  });

  test('a length past the bytes received waits for more (the connection\'s header timeout ends it)', () => {
    assert.equal(parseProxyHeader(v2(0x21, 0x11, ipv4Block('1.2.3.4', '5.6.7.8', 1, 2), 40), 'any').kind, 'more');
    assert.equal(parseProxyHeader(SIGNATURE.subarray(0, 5), 'v2').kind, 'more');
  });
});

describe('writing', () => {
  test('IPv4-mapped addresses are written as IPv4; mixed families become UNKNOWN / UNSPEC', () => {
    assert.equal(encodeProxyHeaderV1({ ip: '::ffff:127.0.0.1', port: 5 }, { ip: '127.0.0.2', port: 6 }).toString(), 'PROXY TCP4 127.0.0.1 127.0.0.2 5 6\r\n');
    assert.equal(encodeProxyHeaderV1({ ip: '::1', port: 5 }, { ip: '127.0.0.2', port: 6 }).toString(), 'PROXY UNKNOWN\r\n');
    const mixed = parsed(encodeProxyHeaderV2({ ip: '::1', port: 5 }, { ip: '127.0.0.2', port: 6 }));
    assert.equal(mixed.header.source, null);
    assert.throws(() => encodeProxyHeaderV2({ ip: '1.1.1.1', port: 1 }, { ip: '2.2.2.2', port: 2 }, Buffer.alloc(129)), /at most 128/);
  });

  test('IPv6 text round-trips through bytes in canonical form', () => {
    for (const [input, canonical] of [
      ['::', '::'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['2001:DB8::', '2001:db8::'],
      ['::ffff:1.2.3.4', '::ffff:102:304'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ] as const) {
      assert.equal(ipv6BytesToText(ipv6TextToBytes(input)!, 0), canonical, input);
    }
    for (const bad of ['1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', ':::', '1::2::3', '12345::', 'g::']) assert.equal(ipv6TextToBytes(bad), null, bad);
  });
});

// --- properties ----------------------------------------------------------------------------------

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join('.'));
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => ipv6BytesToText(bytes, 0));
const port = fc.nat(65535);
const endpointPair = fc.oneof(
  fc.record({ source: fc.record({ ip: ipv4, port }), destination: fc.record({ ip: ipv4, port }) }),
  fc.record({ source: fc.record({ ip: ipv6, port }), destination: fc.record({ ip: ipv6, port }) }),
);
const generatedHeader = fc.record({
  endpoints: endpointPair,
  version: fc.constantFrom(1, 2),
  uniqueId: fc.option(fc.uint8Array({ minLength: 0, maxLength: 128 }), { nil: undefined }),
});

/** Cuts `bytes` at the given positions (sorted, deduplicated) into consecutive chunks. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

describe('properties', () => {
  test('a header split at any byte boundaries parses as in one read; the bytes after it arrive untouched', () => {
    fc.assert(
      fc.property(generatedHeader, fc.uint8Array({ maxLength: 64 }), fc.array(fc.nat(), { maxLength: 12 }), ({ endpoints, version, uniqueId }, payload, cuts) => {
        const header =
          version === 1 ? encodeProxyHeaderV1(endpoints.source, endpoints.destination) : encodeProxyHeaderV2(endpoints.source, endpoints.destination, uniqueId);
        const wire = Buffer.concat([header, payload]);
        const reader = new ProxyHeaderReader('any');
        let result: ProxyHeaderStep = { kind: 'more' };
        const after: Buffer[] = [];
        for (const chunk of split(wire, cuts)) {
          if (result.kind === 'header') after.push(chunk);
          else result = reader.push(chunk);
        }
        assert.equal(result.kind, 'header', JSON.stringify(result));
        const { header: got, rest } = result as Extract<ProxyHeaderStep, { kind: 'header' }>;
        assert.deepEqual(got.source, { ip: endpoints.source.ip, port: endpoints.source.port });
        assert.deepEqual(got.destination, { ip: endpoints.destination.ip, port: endpoints.destination.port });
        assert.equal(got.length, header.length);
        if (version === 2) assert.deepEqual(got.uniqueId === null ? undefined : new Uint8Array(got.uniqueId), uniqueId === undefined ? undefined : uniqueId);
        assert.deepEqual(Buffer.concat([rest, ...after]), Buffer.from(payload));
      }),
      { numRuns: RUNS },
    );
  });

  test('random bytes, and valid headers with bytes flipped, cut or added, never throw and never read past the header', () => {
    const mutated = fc
      .tuple(generatedHeader, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }), fc.nat(), fc.uint8Array({ maxLength: 8 }))
      .map(([{ endpoints, version, uniqueId }, flips, cut, extra]) => {
        const header = version === 1 ? encodeProxyHeaderV1(endpoints.source, endpoints.destination) : encodeProxyHeaderV2(endpoints.source, endpoints.destination, uniqueId);
        const bytes = Buffer.from(header);
        for (const [at, value] of flips) bytes[at % bytes.length] = value;
        return Buffer.concat([bytes.subarray(0, cut % (bytes.length + 1)), extra]);
      });
    const input = fc.oneof(fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)), mutated);
    fc.assert(
      fc.property(input, fc.constantFrom<ProxyProtocolAccept>('v1', 'v2', 'any'), fc.array(fc.nat(), { maxLength: 6 }), (bytes, accept, cuts) => {
        const reader = new ProxyHeaderReader(accept);
        for (const chunk of split(bytes, cuts)) {
          const step = reader.push(chunk);
          if (step.kind === 'more') continue;
          if (step.kind === 'header') {
            assert.ok(step.header.length <= bytes.length);
            assert.deepEqual(step.rest, bytes.subarray(step.header.length, step.header.length + step.rest.length));
          } else {
            assert.ok(step.reason.length > 0);
          }
          return;
        }
      }),
      { numRuns: RUNS * 3 },
    );
  });
});

describe('headers without a client (health checks of a pool that sends PROXY protocol)', () => {
  test('v2 LOCAL: 16 bytes, command LOCAL, no addresses; v1: PROXY UNKNOWN', () => {
    const v2 = parseProxyHeader(encodeProxyHeaderLocal('v2'), 'v2');
    assert.equal(v2.kind, 'header');
    if (v2.kind === 'header') {
      assert.deepEqual({ local: v2.header.local, source: v2.header.source, length: v2.header.length }, { local: true, source: null, length: 16 });
    }
    assert.equal(encodeProxyHeaderLocal('v1').toString('latin1'), 'PROXY UNKNOWN\r\n');
    const v1 = parseProxyHeader(encodeProxyHeaderLocal('v1'), 'v1');
    assert.equal(v1.kind === 'header' && v1.header.source, null);
  });
});

// --- the seed classes, explicitly, under the fuzzer ------------------------------------

/** Issue 10's known failure classes, each with what the reader must answer at any split into reads. */
const SEED_CLASSES: ReadonlyArray<{ name: string; bytes: Buffer; expect: 'invalid' | 'more' | 'header'; payload?: Buffer }> = [
  { name: 'v1 without CRLF (LF only)', bytes: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET /'), expect: 'invalid' },
  { name: 'v1 without CRLF (none within 107 bytes)', bytes: Buffer.from(`PROXY TCP4 1.2.3.4 5.6.7.8 1 2${' '.repeat(100)}`), expect: 'invalid' },
  { name: 'over-long v1 (CRLF at byte 109)', bytes: Buffer.from(`PROXY UNKNOWN ${'f'.repeat(93)}\r\n`), expect: 'invalid' },
  { name: 'truncated v2 IPv4 addresses (8 of 12 bytes)', bytes: v2(0x21, 0x11, ipv4Block('1.2.3.4', '5.6.7.8', 1, 2).subarray(0, 8)), expect: 'invalid' },
  { name: 'truncated v2 IPv6 addresses (20 of 36 bytes)', bytes: v2(0x21, 0x21, Buffer.alloc(20)), expect: 'invalid' },
  { name: 'v2 length past the bytes sent (waits; the header timeout ends it)', bytes: v2(0x21, 0x11, ipv4Block('1.2.3.4', '5.6.7.8', 1, 2), 400), expect: 'more' },
  { name: 'v2 length past the 4096-byte bound', bytes: v2(0x21, 0x11, Buffer.alloc(0), 0xffff), expect: 'invalid' },
  { name: 'v2 TLV overrunning the header', bytes: v2(0x21, 0x11, Buffer.concat([ipv4Block('1.2.3.4', '5.6.7.8', 1, 2), Buffer.from([0x05, 0x00, 0x20, 0x41])])), expect: 'invalid' },
  { name: 'v2 TLV header cut by the end of the header', bytes: v2(0x21, 0x11, Buffer.concat([ipv4Block('1.2.3.4', '5.6.7.8', 1, 2), Buffer.from([0x05, 0x00])])), expect: 'invalid' },
  { name: 'v1 with payload bytes in the same read', bytes: Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1000 80\r\n'), payload: Buffer.from('GET / HTTP/1.1\r\n\r\n'), expect: 'header' },
  { name: 'v2 with payload bytes in the same read', bytes: encodeProxyHeaderV2({ ip: '192.0.2.1', port: 1000 }, { ip: '192.0.2.2', port: 80 }, Buffer.from('id')), payload: Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 1, 2, 3]), expect: 'header' },
];

describe('seed classes under the fuzzer', () => {
  test('each seed class at any split gives its answer; mutated seeds never throw and never read past the header', async (t) => {
    const seedCase = fc.record({
      seed: fc.nat(SEED_CLASSES.length - 1),
      flips: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 3 }),
      cuts: fc.array(fc.nat(), { maxLength: 8 }),
      accept: fc.constantFrom<ProxyProtocolAccept>('any', 'v1', 'v2'),
    });
    await fuzz(
      t,
      fc.property(seedCase, ({ seed, flips, cuts, accept }) => {
        const { bytes, expect, payload, name } = SEED_CLASSES[seed]!;
        const wire = Buffer.concat([bytes, payload ?? Buffer.alloc(0)]);
        for (const [at, value] of flips) wire[at % wire.length] = value;
        const reader = new ProxyHeaderReader(accept);
        let step: ProxyHeaderStep = { kind: 'more' };
        const after: Buffer[] = [];
        for (const chunk of split(wire, cuts)) {
          if (step.kind === 'more') step = reader.push(chunk);
          else if (step.kind === 'header') after.push(chunk);
        }
        if (step.kind === 'header') {
          assert.ok(step.header.length <= wire.length, name);
          assert.deepEqual(Buffer.concat([step.rest, ...after]), wire.subarray(step.header.length), `${name}: the bytes after the header arrive untouched`);
        }
        const versionOfSeed = bytes[0] === 0x50 ? 'v1' : 'v2';
        if (flips.length === 0 && (accept === 'any' || accept === versionOfSeed)) {
          assert.equal(step.kind, expect, `${name} (${accept}): ${JSON.stringify(step.kind === 'invalid' ? step.reason : step.kind)}`);
          if (expect === 'header') assert.equal((step as Extract<ProxyHeaderStep, { kind: 'header' }>).header.length, bytes.length, name);
        }
      }),
      { numRuns: runs(1000), timeMs: budgetMs(5000), examples: SEED_CLASSES.map((_, seed): [{ seed: number; flips: Array<[number, number]>; cuts: number[]; accept: ProxyProtocolAccept }] => [{ seed, flips: [], cuts: [], accept: 'any' }]) },
    );
  });
});
