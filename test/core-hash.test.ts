/** Golden vectors for every hash the core uses, in TypeScript and in the WASM core. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backendIdentity, fmix32, maglevProbeHash, murmur3, ringPointHash, slowStartAdmitHash, ADMIT_SEED, KEY_SEED, RING_SEED } from '../src/core/hash.js';
import { sourceKeyHash } from '../src/core/key-hash.js';
import { WasmBalancer } from '../src/core/wasm-balancer.js';
import { testRandom } from './helpers/core.js';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('murmur3_x86_32', () => {
  it('matches the published SMHasher vectors', () => {
    assert.equal(murmur3(utf8(''), 0), 0);
    assert.equal(murmur3(utf8(''), 1), 0x514e28b7);
    assert.equal(murmur3(utf8(''), 0xffffffff), 0x81f16f39);
    assert.equal(murmur3(utf8('hello'), 0), 0x248bfa47);
    assert.equal(murmur3(utf8('Hello, world!'), 1234), 0xfaf6cdb3);
    assert.equal(murmur3(utf8('The quick brown fox jumps over the lazy dog'), 0x9747b28c), 0x2fa826cd);
  });
});

describe('derived hashes', () => {
  it('pins the backend identity of a typical id', () => {
    assert.deepEqual(backendIdentity('127.0.0.1:9001'), { hi: 0xed5c4738, lo: 0xeb8cf762 });
  });

  it('ring point hash is murmur3 of (lo, hi, index) little-endian with RING_SEED', () => {
    const { hi, lo } = backendIdentity('127.0.0.1:9001');
    assert.equal(ringPointHash(hi, lo, 0), 0x1cfc6abf);
    assert.equal(ringPointHash(hi, lo, 159), 0xb11359ed);
    const bytes = Buffer.alloc(12);
    bytes.writeUInt32LE(lo, 0);
    bytes.writeUInt32LE(hi, 4);
    bytes.writeUInt32LE(159, 8);
    assert.equal(murmur3(bytes, RING_SEED), 0xb11359ed);
  });

  it('maglev probe hash is pinned', () => {
    assert.equal(maglevProbeHash(0, 1), 0x92ca2f0e);
    assert.equal(maglevProbeHash(0xdeadbeef, 3), 0xf2c80841);
  });

  it('slow-start admit hash is fmix32(key ^ identityLo ^ ADMIT_SEED) & 0xffff, pinned', () => {
    const { lo } = backendIdentity('127.0.0.1:9001');
    assert.equal(ADMIT_SEED, 0x510e527f);
    assert.equal(slowStartAdmitHash(0, lo), fmix32((lo ^ ADMIT_SEED) >>> 0) & 0xffff);
    assert.equal(slowStartAdmitHash(0, lo), 0xa9d8);
    assert.equal(slowStartAdmitHash(0xdeadbeef, lo), 0x5c22);
  });

  it('the WASM core computes the same ring point and probe hashes', () => {
    const core = new WasmBalancer({ policy: 'ring_hash', maxBackends: 1 }).coreHashes();
    const random = testRandom(42);
    for (let i = 0; i < 2000; i++) {
      const hi = (random() * 2 ** 32) >>> 0;
      const lo = (random() * 2 ** 32) >>> 0;
      const index = (random() * 2 ** 20) >>> 0;
      assert.equal(core.ringPoint(hi, lo, index), ringPointHash(hi, lo, index));
      assert.equal(core.maglevProbe(hi, (index & 7) + 1), maglevProbeHash(hi, (index & 7) + 1));
      assert.equal(core.slowStartAdmit(hi, lo), slowStartAdmitHash(hi, lo));
    }
  });
});

describe('sourceKeyHash', () => {
  it('pins IPv4, IPv6 and port vectors', () => {
    assert.equal(sourceKeyHash('10.0.0.1', 0, false), 0x46186a24);
    assert.equal(sourceKeyHash('10.0.0.1', 443, true), 0xae576631);
    assert.equal(sourceKeyHash('2001:db8::1', 0, false), 0xcbedd4c6);
    assert.equal(sourceKeyHash('2001:db8::1', 8080, true), 0xbff9d669);
    assert.equal(sourceKeyHash('::1', 0, false), 0xce7ae5e1);
    assert.equal(sourceKeyHash('::', 0, false), 0xd409f220);
  });

  it('is murmur3 of the network-order address bytes (+ big-endian port) with KEY_SEED', () => {
    assert.equal(sourceKeyHash('192.168.1.20', 0, false), murmur3(Uint8Array.of(192, 168, 1, 20), KEY_SEED));
    assert.equal(sourceKeyHash('192.168.1.20', 0x1f90, true), murmur3(Uint8Array.of(192, 168, 1, 20, 0x1f, 0x90), KEY_SEED));
    const v6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0xab, 0xcd);
    assert.equal(sourceKeyHash('2001:db8::1234:abcd', 0, false), murmur3(v6, KEY_SEED));
    assert.equal(sourceKeyHash('2001:0DB8:0:0:0:0:1234:ABCD', 0, false), murmur3(v6, KEY_SEED));
    assert.equal(sourceKeyHash('2001:db8::1234:abcd', 65535, true), murmur3(Uint8Array.of(...v6, 0xff, 0xff), KEY_SEED));
  });

  it('hashes IPv4-mapped IPv6 like the IPv4 address, and ignores zones and brackets', () => {
    assert.equal(sourceKeyHash('::ffff:10.0.0.1', 0, false), sourceKeyHash('10.0.0.1', 0, false));
    assert.equal(sourceKeyHash('::FFFF:10.0.0.1', 7, true), sourceKeyHash('10.0.0.1', 7, true));
    assert.equal(sourceKeyHash('0:0:0:0:0:ffff:a00:1', 0, false), sourceKeyHash('10.0.0.1', 0, false));
    assert.equal(sourceKeyHash('fe80::1%eth0', 0, false), sourceKeyHash('fe80::1', 0, false));
    assert.equal(sourceKeyHash('[2001:db8::1]', 0, false), sourceKeyHash('2001:db8::1', 0, false));
    assert.notEqual(sourceKeyHash('64:ff9b::10.0.0.1', 0, false), sourceKeyHash('10.0.0.1', 0, false));
  });

  it('ignores the port unless asked, and hashes undefined ports as absent', () => {
    assert.equal(sourceKeyHash('10.0.0.1', 443, false), sourceKeyHash('10.0.0.1', 80, false));
    assert.equal(sourceKeyHash('10.0.0.1', undefined, true), sourceKeyHash('10.0.0.1', 0, false));
  });

  it('returns 0 for anything unparsable', () => {
    for (const bad of [undefined, '', 'localhost', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', '::1:', '[::1', '1:2:3:4:5:6:7::8:9']) {
      assert.equal(sourceKeyHash(bad, 0, false), 0, String(bad));
    }
    assert.equal(sourceKeyHash('10.0.0.1', 70000, true), 0);
    assert.equal(sourceKeyHash('10.0.0.1', 1.5, true), 0);
  });
});
