// Bit-for-bit twins of src/core/hash.ts (murmur3_x86_32 pieces and the derived hashes).
// test/core-hash.test.ts checks both against the same golden vectors.

/** Ring point positions: murmur3_32 over the words (identityLo, identityHi, pointIndex). */
export const RING_SEED: u32 = 0x3c6ef372;
/** 2^32 / φ: spreads Maglev probe numbers before fmix32. */
export const PROBE_INCREMENT: u32 = 0x9e3779b9;
/** Slow-start admission hash seed: SHA-256 initial hash word 5 (FIPS 180-4 §5.3.3). */
export const ADMIT_SEED: u32 = 0x510e527f;

const C1: u32 = 0xcc9e2d51;
const C2: u32 = 0x1b873593;

// @ts-ignore: decorator
@inline
export function fmix32(value: u32): u32 {
  let h = value;
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  h ^= h >>> 16;
  return h;
}

// @ts-ignore: decorator
@inline
function mixBlock(h: u32, k: u32): u32 {
  k *= C1;
  k = rotl<u32>(k, 15);
  k *= C2;
  h ^= k;
  h = rotl<u32>(h, 13);
  return h * 5 + 0xe6546b64;
}

/** murmur3_32 of the 12 little-endian bytes of (identityLo, identityHi, pointIndex), seed RING_SEED. */
export function ringPointHash(identityHi: u32, identityLo: u32, pointIndex: u32): u32 {
  let h = RING_SEED;
  h = mixBlock(h, identityLo);
  h = mixBlock(h, identityHi);
  h = mixBlock(h, pointIndex);
  return fmix32(h ^ 12);
}

/** Maglev re-hash for probe ≥ 1: fmix32(key + probe × 0x9e3779b9). */
// @ts-ignore: decorator
@inline
export function maglevProbeHash(keyHash: u32, probe: u32): u32 {
  return fmix32(keyHash + probe * PROBE_INCREMENT);
}

/**
 * Slow-start admission of a key by a ramping backend: fmix32(key ^ identityLo ^ ADMIT_SEED) & 0xffff.
 * Per key and per backend identity (not slot), so every process admits the same keys.
 */
// @ts-ignore: decorator
@inline
export function slowStartAdmitHash(keyHash: u32, identityLo: u32): u32 {
  return fmix32(keyHash ^ identityLo ^ ADMIT_SEED) & 0xffff;
}

/** xorshift32 (Marsaglia 2003, triple 13/17/5); the state is never 0. */
// @ts-ignore: decorator
@inline
export function xorshift32(state: u32): u32 {
  let x = state;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x;
}
