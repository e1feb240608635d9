/**
 * The hash functions every ringlb table is built from. The AssemblyScript core (assembly/hash.ts)
 * implements the same functions bit for bit; test/core-hash.test.ts pins both to golden vectors.
 *
 * - murmur3_x86_32 (Austin Appleby, public domain, SMHasher `MurmurHash3_x86_32`) for byte strings
 *   and for short fixed runs of 32-bit words (read little-endian, exactly as murmur3 reads bytes).
 * - Seeds are "nothing up my sleeve" numbers: the first four words of the SHA-256 initial hash value
 *   (FIPS 180-4 §5.3.3). Changing any of them reshuffles every table, so they are part of the wire
 *   contract between ringlb processes that must route identically.
 */

/** Backend identity, high word: murmur3_32(utf8(id), ID_SEED_HI). Also the Maglev skip. */
export const ID_SEED_HI = 0x6a09e667;
/** Backend identity, low word: murmur3_32(utf8(id), ID_SEED_LO). Also the Maglev offset. */
export const ID_SEED_LO = 0xbb67ae85;
/** Ring point positions: murmur3_32 over the words (identityLo, identityHi, pointIndex). */
export const RING_SEED = 0x3c6ef372;
/** Source-address key hash (see key-hash.ts). */
export const KEY_SEED = 0xa54ff53a;
/** Golden-ratio increment (2^32 / φ) used to spread Maglev probe numbers before fmix32. */
export const PROBE_INCREMENT = 0x9e3779b9;
/** Slow-start admission hash (see slowStartAdmitHash): SHA-256 initial hash word 5. */
export const ADMIT_SEED = 0x510e527f;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** murmur3 finalizer: full avalanche of a 32-bit value. */
export function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** One murmur3 body round: mixes a 32-bit block `k` into the running hash `h`. */
export function murmurMixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** Mixes the 1..3 trailing bytes (already packed little-endian into `k`) into `h`. */
export function murmurMixTail(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  return h ^ k;
}

/** murmur3 finalization: xor the byte length, then fmix32. */
export function murmurFinish(h: number, byteLength: number): number {
  return fmix32(h ^ byteLength);
}

/** murmur3_x86_32 of a byte string. Control-plane only (build time, golden tests). */
export function murmur3(bytes: Uint8Array, seed: number): number {
  const length = bytes.length;
  const blockEnd = length & ~3;
  let h = seed | 0;
  for (let i = 0; i < blockEnd; i += 4) {
    const k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    h = murmurMixBlock(h, k);
  }
  const rest = length & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= bytes[blockEnd + 2] << 16;
    if (rest >= 2) k ^= bytes[blockEnd + 1] << 8;
    k ^= bytes[blockEnd];
    h = murmurMixTail(h, k);
  }
  return murmurFinish(h, length);
}

/** 64-bit backend identity as two independent 32-bit murmur3 hashes of the UTF-8 id. */
export interface BackendIdentity {
  readonly hi: number;
  readonly lo: number;
}

const utf8 = new TextEncoder();

/** Identity of a backend id; called once per backend per membership change, never per connection. */
export function backendIdentity(id: string): BackendIdentity {
  const bytes = utf8.encode(id);
  return { hi: murmur3(bytes, ID_SEED_HI), lo: murmur3(bytes, ID_SEED_LO) };
}

/** Orders identities by (hi, lo) as unsigned integers: the order every table build uses. */
export function compareIdentity(aHi: number, aLo: number, bHi: number, bLo: number): number {
  if (aHi !== bHi) return aHi >>> 0 < bHi >>> 0 ? -1 : 1;
  if (aLo !== bLo) return aLo >>> 0 < bLo >>> 0 ? -1 : 1;
  return 0;
}

/**
 * Position of ring point `pointIndex` of a backend: murmur3_32 over the 12 bytes of the words
 * (lo, hi, pointIndex), little-endian, seed RING_SEED. Depends on identity only, never on slots.
 */
export function ringPointHash(identityHi: number, identityLo: number, pointIndex: number): number {
  let h = RING_SEED | 0;
  h = murmurMixBlock(h, identityLo);
  h = murmurMixBlock(h, identityHi);
  h = murmurMixBlock(h, pointIndex);
  return murmurFinish(h, 12);
}

/**
 * Maglev re-hash for probe `probe` ≥ 1 after the home entry was ineligible or already tried:
 * fmix32(key + probe × 0x9e3779b9). Envoy mutates the hash per retry attempt the same way in spirit
 * (MaglevTable::chooseHost, `hash ^= ~0ULL - attempt + 1`); ours avalanches so probes scatter.
 */
export function maglevProbeHash(keyHash: number, probe: number): number {
  return fmix32((keyHash + Math.imul(probe, PROBE_INCREMENT)) | 0);
}

/**
 * Slow start on ring_hash/maglev: a ramping backend admits a key whose probe lands on it only when
 * this 16-bit hash is below scale × 65536 / 1000. fmix32(key ^ identityLo ^ ADMIT_SEED) & 0xffff:
 * per key and per backend identity (never the slot), so two processes admit the same keys, and the
 * admitted set only grows as the scale grows (a fixed hash against a rising threshold).
 */
export function slowStartAdmitHash(keyHash: number, identityLo: number): number {
  return fmix32((keyHash ^ identityLo ^ ADMIT_SEED) >>> 0) & 0xffff;
}
