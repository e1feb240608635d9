// ringlb balancing core: one WebAssembly instance per pool; its globals are that pool.
//
// Numbers in, numbers out (AssemblyScript raw bindings). `init` allocates every capacity once with
// the stub runtime's bump allocator, which never frees: any allocation after init would grow memory
// forever, so the tests prove the hot path and rebuilds allocate nothing by watching memory size.
// All per-slot and per-table arrays are raw linear memory addressed with load/store; every index is
// bounded by construction (slots < maxBackends are checked by src/core/wasm-balancer.ts, table
// indices by the loops), so there are no bounds checks on the hot path.
//
// Algorithms, hashes, seeds and tie-breaks mirror src/core/reference-balancer.ts exactly; the
// differential test demands identical picks. See docs/core.md.

import { maglevProbeHash, ringPointHash, slowStartAdmitHash, xorshift32 } from './hash';

// Host Math.exp, so the peak-EWMA decay is bit-identical to the TypeScript reference (AS's own
// Math.exp is a separate implementation that may differ in the last ulp).
// @ts-ignore: decorator
@external("env", "exp")
declare function hostExp(x: f64): f64;

const POLICY_ROUND_ROBIN: i32 = 0;
const POLICY_RANDOM: i32 = 1;
const POLICY_LEAST_CONNECTIONS: i32 = 2;
const POLICY_LEAST_TIME: i32 = 3;
const POLICY_RING_HASH: i32 = 4;
const POLICY_MAGLEV: i32 = 5;

const TWO_POW_32: f64 = 4294967296.0;
/** Slow start: weight scales are per mille; 1000 = full weight. */
const FULL_SCALE: i32 = 1000;
/** Admission threshold of a full-scale slot: every 16-bit admit hash is below it. */
const ADMIT_ALL: u32 = 65536;
const RADIX_BUCKETS: i32 = 65536;
/**
 * Ring lookup index: entry b holds the first ring point whose position's top 16 bits are ≥ b, so a
 * lookup binary-searches only the few points of one bucket instead of the whole ring (a 400k-point
 * ring is 3.2 MB, and a full binary search over it costs a cache miss per step).
 */
const RING_INDEX_LENGTH: i32 = 65537;

// ---- configuration (set once by init) ----
let initialized = false;
let policy: i32 = 0;
let capacity: i32 = 0;
let maglevSize: u32 = 0;
let ringPointsPerWeight: u32 = 0;
let ringMaxPoints: u32 = 0;
let ringCapacity: i32 = 0;
let ringWalkLimit: i32 = 0;
let maglevProbes: i32 = 0;
let randomDraws: i32 = 0;
let defaultConnectMicros: f64 = 0;
let ewmaTauMs: f64 = 0;

// ---- per-slot state ----
let inputHi: usize = 0; // u32[capacity]: identity written by setSlot (build input)
let inputLo: usize = 0; // u32[capacity]
let inputWeight: usize = 0; // i32[capacity]: 0 = absent or never picked
let healthBits: usize = 0; // u32[(capacity + 31) / 32]: health bitmap written by the health owner
// u32[(capacity + 31) / 32]: what picks read: health bit AND weight scale > 0 (a scale of 0 acts as
// weight 0), kept in a second bitmap so `usable` stays one load and one shift.
let pickableBits: usize = 0;
let weightScale: usize = 0; // i32[capacity]: slow-start scale, per mille (FULL_SCALE = full weight)
let admitThreshold: usize = 0; // u32[capacity]: floor(scale × 65536 / 1000), ADMIT_ALL at full scale
let rampingSlots: i32 = 0; // slots whose scale is below FULL_SCALE; 0 keeps every pick on its old path
let scaledPrefix: usize = 0; // f64[capacity]: random: running Σ weight × scale over the published order
let scaledTotal: f64 = 0;
let active: usize = 0; // i32[capacity]: active connections
let activeTotal: i32 = 0; // Σ active over every slot (draining ones too): the pool's load for the bound
let spilled: usize = 0; // u32[capacity]: picks turned away from this home slot because it was full
let ewma: usize = 0; // f64[capacity]: peak-EWMA connect time in µs, -1 = never sampled
let ewmaStamp: usize = 0; // f64[capacity]: nowMs of the last sample
let swrrCurrent: usize = 0; // i64[capacity]: nginx current_weight, in weight × per-mille units
let tried: usize = 0; // i32[capacity]: scratch, the slots this connection already tried
let tiedSlots: usize = 0; // i32[capacity]: scratch, least_connections' slots tied at the minimum

// ---- double-buffered tables: table k's arrays live at base + k × stride ----
let tableHi: usize = 0; // u32[2][capacity]
let tableLo: usize = 0; // u32[2][capacity]
let tableWeight: usize = 0; // i32[2][capacity]
let tableOrder: usize = 0; // i32[2][capacity]: weighted slots sorted by identity
let tablePrefix: usize = 0; // u32[2][capacity]: running weight sums in order
let tableMaglev: usize = 0; // i32[2][maglevSize]
// Ring table k occupies 8 × ringCapacity bytes at tableRing + k × 8 × ringCapacity: first the sorted
// u32 positions (build, moved share and diagnostics only), then one u32 per point packing the low 16
// bits of its position over its 16-bit slot (maxBackends ≤ 65536). Within one top-16-bit bucket the
// low halves are sorted, so a pick searches and reads its owner in that one array: one cache line
// instead of two (positions, then slots). During a build the same bytes hold the generated
// (position << 32 | slot) u64 pairs before the radix sort scatters them back unpacked.
let tableRing: usize = 0;
let tableRingIndex: usize = 0; // i32[2][RING_INDEX_LENGTH]: first point of each 16-bit bucket
const tableCount = new StaticArray<i32>(2);
const tableTotal = new StaticArray<u32>(2);
const tableRingCount = new StaticArray<i32>(2);

// ---- build scratch ----
let maglevNext: usize = 0; // u32[capacity]: next preferred entry per backend
let maglevSkip: usize = 0; // u32[capacity]
let maglevTarget: usize = 0; // u64[capacity]
let ringScratch: usize = 0; // u64[ringCapacity]
let radixCounts: usize = 0; // u32[65536]

// ---- the published table (cached pointers: one flip publishes) ----
let current: i32 = 0;
let curWeight: usize = 0;
let curLo: usize = 0;
let curOrder: usize = 0;
let curPrefix: usize = 0;
let curMaglev: usize = 0;
let curRingPositions: usize = 0;
let curRingPacked: usize = 0; // u32 per point: (position & 0xffff) << 16 | slot
let curRingIndex: usize = 0;
let curCount: i32 = 0;
let curTotal: u32 = 0;
let curRingCount: i32 = 0;

// ---- bounded load (hashBalanceFactor); 0 = off ----
let balanceFactor: i32 = 0;
/** Σ weight of published slots that are pickable: the weights the bound's mean is taken over. */
let pickableWeight: i64 = 0;
/** False while an admin lookup asks what a pick would do: a question is not a spill. */
let countSpills: bool = true;
/** The full home the last pick passed over, or -1: a worker thread adds it to the process-wide count. */
let lastSpill: i32 = -1;

let builds: i32 = 0; // tables published since init: proves health flips and scale changes build nothing
let rngState: u32 = 1;

// @ts-ignore: decorator
@inline function loadI32(base: usize, index: i32): i32 { return load<i32>(base + (<usize>index << 2)); }
// @ts-ignore: decorator
@inline function storeI32(base: usize, index: i32, value: i32): void { store<i32>(base + (<usize>index << 2), value); }
// @ts-ignore: decorator
@inline function loadU32(base: usize, index: i32): u32 { return load<u32>(base + (<usize>index << 2)); }
// @ts-ignore: decorator
@inline function storeU32(base: usize, index: i32, value: u32): void { store<u32>(base + (<usize>index << 2), value); }
// @ts-ignore: decorator
@inline function loadU64(base: usize, index: i32): u64 { return load<u64>(base + (<usize>index << 3)); }
// @ts-ignore: decorator
@inline function storeU64(base: usize, index: i32, value: u64): void { store<u64>(base + (<usize>index << 3), value); }
// @ts-ignore: decorator
@inline function loadF64(base: usize, index: i32): f64 { return load<f64>(base + (<usize>index << 3)); }
// @ts-ignore: decorator
@inline function storeF64(base: usize, index: i32, value: f64): void { store<f64>(base + (<usize>index << 3), value); }

function allocate(bytes: usize): usize {
  const pointer = heap.alloc(bytes);
  memory.fill(pointer, 0, bytes);
  return pointer;
}

// @ts-ignore: decorator
@inline function tableBase(base: usize, table: i32, elementBytes: usize, length: i32): usize {
  return base + <usize>table * <usize>length * elementBytes;
}

/**
 * Control plane, once per instance right after instantiation: fixes the policy and allocates every
 * capacity. Returns 0, or -1 when called twice (capacities are immutable).
 */
export function init(
  policyCode: i32, maxBackends: i32, maglevTableSize: u32, pointsPerWeight: u32, maxRingPoints: u32,
  ringPointCapacity: i32, walkLimit: i32, probes: i32, draws: i32, seed: u32, unsampledMicros: f64, tauMs: f64,
): i32 {
  if (initialized) return -1;
  initialized = true;
  policy = policyCode;
  capacity = maxBackends;
  maglevSize = maglevTableSize;
  ringPointsPerWeight = pointsPerWeight;
  ringMaxPoints = maxRingPoints;
  ringWalkLimit = walkLimit;
  maglevProbes = probes;
  randomDraws = draws;
  rngState = seed == 0 ? 0x9e3779b9 : seed;
  defaultConnectMicros = unsampledMicros;
  ewmaTauMs = tauMs;
  const slots = <usize>maxBackends;
  inputHi = allocate(slots << 2);
  inputLo = allocate(slots << 2);
  inputWeight = allocate(slots << 2);
  healthBits = allocate(((slots + 31) >> 5) << 2);
  memory.fill(healthBits, 0xff, ((slots + 31) >> 5) << 2);
  pickableBits = allocate(((slots + 31) >> 5) << 2);
  memory.fill(pickableBits, 0xff, ((slots + 31) >> 5) << 2);
  weightScale = allocate(slots << 2);
  admitThreshold = allocate(slots << 2);
  for (let slot = 0; slot < maxBackends; slot++) {
    storeI32(weightScale, slot, FULL_SCALE);
    storeU32(admitThreshold, slot, ADMIT_ALL);
  }
  scaledPrefix = allocate(slots << 3);
  active = allocate(slots << 2);
  spilled = allocate(slots << 2);
  ewma = allocate(slots << 3);
  for (let slot = 0; slot < maxBackends; slot++) storeF64(ewma, slot, -1);
  ewmaStamp = allocate(slots << 3);
  swrrCurrent = allocate(slots << 3);
  tried = allocate(slots << 2);
  if (policy == POLICY_LEAST_CONNECTIONS) tiedSlots = allocate(slots << 2);
  tableHi = allocate(slots << 3);
  tableLo = allocate(slots << 3);
  tableWeight = allocate(slots << 3);
  tableOrder = allocate(slots << 3);
  tablePrefix = allocate(slots << 3);
  if (policy == POLICY_MAGLEV) {
    tableMaglev = allocate(<usize>maglevSize << 3);
    memory.fill(tableMaglev, 0xff, <usize>maglevSize << 3);
    maglevNext = allocate(slots << 2);
    maglevSkip = allocate(slots << 2);
    maglevTarget = allocate(slots << 3);
  }
  if (policy == POLICY_RING_HASH) {
    ringCapacity = ringPointCapacity;
    tableRing = allocate(<usize>ringPointCapacity << 4);
    tableRingIndex = allocate(<usize>RING_INDEX_LENGTH << 3);
    ringScratch = allocate(<usize>ringPointCapacity << 3);
    radixCounts = allocate(<usize>RADIX_BUCKETS << 2);
  }
  publish(0);
  return 0;
}

/** Control plane, per added or reweighted backend before build(): identity words and weight. */
export function setSlot(slot: i32, identityHi: u32, identityLo: u32, weight: i32): void {
  storeU32(inputHi, slot, identityHi);
  storeU32(inputLo, slot, identityLo);
  storeI32(inputWeight, slot, weight);
}

/**
 * Control plane, per removed backend before build(). Counters stay: draining connections release.
 * The weight scale returns to full so a free slot never counts as ramping.
 */
export function clearSlot(slot: i32): void {
  setSlot(slot, 0, 0, 0);
  storeScale(slot, FULL_SCALE);
}

/**
 * Control plane, when a slot receives a new backend: forget the previous owner's EWMA, eligible
 * again, full weight scale.
 */
export function resetSlot(slot: i32): void {
  storeU32(spilled, slot, 0);
  storeF64(ewma, slot, -1);
  storeF64(ewmaStamp, slot, 0);
  storeScale(slot, FULL_SCALE);
  setEligible(slot, 1);
}

/**
 * Control plane, once per membership/weight change: builds the inactive table from the slot inputs,
 * measures the share of keys (or weight) that changed owner, then publishes by flipping `current`.
 * Returns the moved share (0..1). Allocates nothing.
 */
export function build(): f64 {
  const next = 1 - current;
  const hi = tableBase(tableHi, next, 4, capacity);
  const lo = tableBase(tableLo, next, 4, capacity);
  const weight = tableBase(tableWeight, next, 4, capacity);
  const order = tableBase(tableOrder, next, 4, capacity);
  const prefix = tableBase(tablePrefix, next, 4, capacity);
  let count = 0;
  for (let slot = 0; slot < capacity; slot++) {
    const w = loadI32(inputWeight, slot);
    storeU32(hi, slot, loadU32(inputHi, slot));
    storeU32(lo, slot, loadU32(inputLo, slot));
    storeI32(weight, slot, w > 0 ? w : 0);
    if (w > 0) storeI32(order, count++, slot);
  }
  // Insertion sort by identity (hi, lo): O(n²) compares, but n ≤ a few thousand and this is the
  // control plane (≈1 ms at 1000 backends); stable and allocation-free.
  for (let i = 1; i < count; i++) {
    const slot = loadI32(order, i);
    const slotHi = loadU32(hi, slot);
    const slotLo = loadU32(lo, slot);
    let j = i - 1;
    while (j >= 0) {
      const other = loadI32(order, j);
      const otherHi = loadU32(hi, other);
      if (otherHi < slotHi || (otherHi == slotHi && loadU32(lo, other) <= slotLo)) break;
      storeI32(order, j + 1, other);
      j--;
    }
    storeI32(order, j + 1, slot);
  }
  let total: u32 = 0;
  for (let i = 0; i < count; i++) {
    total += <u32>loadI32(weight, loadI32(order, i));
    storeU32(prefix, i, total);
  }
  unchecked(tableCount[next] = count);
  unchecked(tableTotal[next] = total);
  if (policy == POLICY_MAGLEV) buildMaglev(next);
  if (policy == POLICY_RING_HASH) buildRing(next);
  const moved = movedShare(current, next);
  publish(next);
  computePickableWeight();
  builds++;
  memory.fill(swrrCurrent, 0, <usize>capacity << 3);
  if (policy == POLICY_RANDOM) computeScaledPrefix();
  return moved;
}

// @ts-ignore: decorator
@inline function ringPositions(table: i32): usize { return tableBase(tableRing, table, 8, ringCapacity); }
// @ts-ignore: decorator
@inline function ringPacked(table: i32): usize { return tableBase(tableRing, table, 8, ringCapacity) + (<usize>ringCapacity << 2); }
// @ts-ignore: decorator
@inline function ringSlotAt(packed: usize, index: i32): i32 { return <i32>(loadU32(packed, index) & 0xffff); }

function publish(table: i32): void {
  current = table;
  curWeight = tableBase(tableWeight, table, 4, capacity);
  curLo = tableBase(tableLo, table, 4, capacity);
  curOrder = tableBase(tableOrder, table, 4, capacity);
  curPrefix = tableBase(tablePrefix, table, 4, capacity);
  curMaglev = tableBase(tableMaglev, table, 4, <i32>maglevSize);
  curRingPositions = ringPositions(table);
  curRingPacked = ringPacked(table);
  curRingIndex = tableBase(tableRingIndex, table, 4, RING_INDEX_LENGTH);
  curCount = unchecked(tableCount[table]);
  curTotal = unchecked(tableTotal[table]);
  curRingCount = unchecked(tableRingCount[table]);
}

/**
 * Maglev paper §3.4 listing 1, weighted as Envoy's MaglevTable: in round `iteration` a backend takes
 * a turn only when iteration × weight ≥ its target, and each turn raises the target by the largest
 * weight; every backend fills in round 1. offset = lo mod M, skip = hi mod (M − 1) + 1.
 */
function buildMaglev(table: i32): void {
  const size = maglevSize;
  const entries = tableBase(tableMaglev, table, 4, <i32>size);
  memory.fill(entries, 0xff, <usize>size << 2);
  const count = unchecked(tableCount[table]);
  if (count == 0) return;
  const hi = tableBase(tableHi, table, 4, capacity);
  const lo = tableBase(tableLo, table, 4, capacity);
  const weight = tableBase(tableWeight, table, 4, capacity);
  const order = tableBase(tableOrder, table, 4, capacity);
  let maxWeight: u64 = 0;
  for (let i = 0; i < count; i++) {
    const slot = loadI32(order, i);
    const w = <u64>loadI32(weight, slot);
    if (w > maxWeight) maxWeight = w;
    storeU32(maglevNext, i, loadU32(lo, slot) % size);
    storeU32(maglevSkip, i, loadU32(hi, slot) % (size - 1) + 1);
    storeU64(maglevTarget, i, 0);
  }
  let filled: u32 = 0;
  for (let iteration: u64 = 1; filled < size; iteration++) {
    for (let i = 0; i < count; i++) {
      if (filled == size) break;
      const slot = loadI32(order, i);
      const target = loadU64(maglevTarget, i);
      if (iteration * <u64>loadI32(weight, slot) < target) continue;
      storeU64(maglevTarget, i, target + maxWeight);
      const skip = loadU32(maglevSkip, i);
      let candidate = loadU32(maglevNext, i);
      while (loadI32(entries, <i32>candidate) != -1) {
        candidate += skip;
        if (candidate >= size) candidate -= size;
      }
      storeI32(entries, <i32>candidate, slot);
      candidate += skip;
      if (candidate >= size) candidate -= size;
      storeU32(maglevNext, i, candidate);
      filled++;
    }
  }
}

/**
 * Ketama-style ring: pointsPerWeight × weight points per backend (scaled to fit ringMaxPoints, each
 * weighted backend keeping ≥ 1), generated in identity order as (position << 32 | slot), then sorted
 * by position with a stable two-pass LSD radix sort, so equal positions keep identity order.
 */
function buildRing(table: i32): void {
  const ring = tableBase(tableRing, table, 8, ringCapacity);
  const count = unchecked(tableCount[table]);
  const total = <u64>unchecked(tableTotal[table]);
  const hi = tableBase(tableHi, table, 4, capacity);
  const lo = tableBase(tableLo, table, 4, capacity);
  const weight = tableBase(tableWeight, table, 4, capacity);
  const order = tableBase(tableOrder, table, 4, capacity);
  const scaled = <u64>ringPointsPerWeight * total > <u64>ringMaxPoints;
  let points = 0;
  for (let i = 0; i < count; i++) {
    const slot = loadI32(order, i);
    const w = <u64>loadI32(weight, slot);
    let slotPoints: u32;
    if (scaled) {
      slotPoints = <u32>(w * <u64>ringMaxPoints / total);
      if (slotPoints == 0) slotPoints = 1;
    } else {
      slotPoints = <u32>w * ringPointsPerWeight;
    }
    const slotHi = loadU32(hi, slot);
    const slotLo = loadU32(lo, slot);
    for (let p: u32 = 0; p < slotPoints; p++) {
      storeU64(ring, points++, (<u64>ringPointHash(slotHi, slotLo, p) << 32) | <u64>slot);
    }
  }
  radixPass(ring, ringScratch, 0, points, 32);
  radixPass(ringScratch, ringPositions(table), ringPacked(table), points, 48);
  unchecked(tableRingCount[table] = points);
  const index = tableBase(tableRingIndex, table, 4, RING_INDEX_LENGTH);
  let point = 0;
  for (let bucket = 0; bucket < RING_INDEX_LENGTH - 1; bucket++) {
    while (point < points && <i32>(loadU32(ringPositions(table), point) >>> 16) < bucket) point++;
    storeI32(index, bucket, point);
  }
  storeI32(index, RING_INDEX_LENGTH - 1, points);
}

/**
 * One stable counting-sort pass on 16 bits of each u64 starting at `shift`. Writes packed u64 to
 * `target`, or, when `targetPacked` is not 0, positions to `target` and (low 16 position bits << 16 |
 * slot) to `targetPacked`.
 */
function radixPass(source: usize, target: usize, targetPacked: usize, length: i32, shift: u64): void {
  memory.fill(radixCounts, 0, <usize>RADIX_BUCKETS << 2);
  for (let i = 0; i < length; i++) {
    const bucket = <i32>((loadU64(source, i) >> shift) & 0xffff);
    storeU32(radixCounts, bucket, loadU32(radixCounts, bucket) + 1);
  }
  let sum: u32 = 0;
  for (let bucket = 0; bucket < RADIX_BUCKETS; bucket++) {
    const n = loadU32(radixCounts, bucket);
    storeU32(radixCounts, bucket, sum);
    sum += n;
  }
  for (let i = 0; i < length; i++) {
    const value = loadU64(source, i);
    const bucket = <i32>((value >> shift) & 0xffff);
    const position = loadU32(radixCounts, bucket);
    if (targetPacked == 0) {
      storeU64(target, <i32>position, value);
    } else {
      storeU32(target, <i32>position, <u32>(value >> 32));
      storeU32(targetPacked, <i32>position, (<u32>(value >> 32) << 16) | (<u32>value & 0xffff));
    }
    storeU32(radixCounts, bucket, position + 1);
  }
}

// @ts-ignore: decorator
@inline function sameOwner(previous: i32, previousSlot: i32, next: i32, nextSlot: i32): bool {
  return previousSlot >= 0 && nextSlot >= 0
    && loadU32(tableBase(tableHi, previous, 4, capacity), previousSlot) == loadU32(tableBase(tableHi, next, 4, capacity), nextSlot)
    && loadU32(tableBase(tableLo, previous, 4, capacity), previousSlot) == loadU32(tableBase(tableLo, next, 4, capacity), nextSlot);
}

/**
 * Share of keys whose owner identity changed between two tables (hash policies), or the total
 * variation distance ½·Σ|w'/W' − w/W| between the weight distributions (other policies).
 */
function movedShare(previous: i32, next: i32): f64 {
  const previousCount = unchecked(tableCount[previous]);
  const nextCount = unchecked(tableCount[next]);
  if (previousCount == 0 || nextCount == 0) return previousCount == nextCount ? 0 : 1;
  if (policy == POLICY_MAGLEV) {
    const before = tableBase(tableMaglev, previous, 4, <i32>maglevSize);
    const after = tableBase(tableMaglev, next, 4, <i32>maglevSize);
    let moved: u32 = 0;
    for (let entry = 0; entry < <i32>maglevSize; entry++) {
      if (!sameOwner(previous, loadI32(before, entry), next, loadI32(after, entry))) moved++;
    }
    return <f64>moved / <f64>maglevSize;
  }
  if (policy == POLICY_RING_HASH) return ringMovedShare(previous, next);
  const beforeWeight = tableBase(tableWeight, previous, 4, capacity);
  const afterWeight = tableBase(tableWeight, next, 4, capacity);
  const beforeTotal = <f64>unchecked(tableTotal[previous]);
  const afterTotal = <f64>unchecked(tableTotal[next]);
  let sum: f64 = 0;
  for (let slot = 0; slot < capacity; slot++) {
    const before = <f64>loadI32(beforeWeight, slot) / beforeTotal;
    const after = <f64>loadI32(afterWeight, slot) / afterTotal;
    if (before > 0 && after > 0 && sameOwner(previous, slot, next, slot)) sum += Math.abs(after - before);
    else sum += before + after;
  }
  return sum / 2;
}

/** Walks the merged point positions; between two positions both rings have a constant owner. */
function ringMovedShare(previous: i32, next: i32): f64 {
  const before = ringPositions(previous);
  const after = ringPositions(next);
  const beforeSlots = ringPacked(previous);
  const afterSlots = ringPacked(next);
  const beforeCount = unchecked(tableRingCount[previous]);
  const afterCount = unchecked(tableRingCount[next]);
  const END: u64 = 0x1_0000_0000;
  let moved: u64 = 0;
  let i = 0;
  let j = 0;
  let segmentStart: u64 = 0;
  while (i < beforeCount || j < afterCount) {
    const a: u64 = i < beforeCount ? <u64>loadU32(before, i) : END;
    const b: u64 = j < afterCount ? <u64>loadU32(after, j) : END;
    const boundary = a < b ? a : b;
    const ownerBefore = ringSlotAt(beforeSlots, i < beforeCount ? i : 0);
    const ownerAfter = ringSlotAt(afterSlots, j < afterCount ? j : 0);
    if (!sameOwner(previous, ownerBefore, next, ownerAfter)) moved += boundary - segmentStart + 1;
    segmentStart = boundary + 1;
    while (i < beforeCount && <u64>loadU32(before, i) == boundary) i++;
    while (j < afterCount && <u64>loadU32(after, j) == boundary) j++;
  }
  if (segmentStart < END) {
    const ownerBefore = ringSlotAt(beforeSlots, 0);
    const ownerAfter = ringSlotAt(afterSlots, 0);
    if (!sameOwner(previous, ownerBefore, next, ownerAfter)) moved += END - segmentStart;
  }
  return <f64>moved / TWO_POW_32;
}

// ---------------------------------------------------------------- hot path

// @ts-ignore: decorator
@inline function bitOf(bits: usize, slot: i32): bool {
  return ((loadU32(bits, slot >> 5) >>> (<u32>slot & 31)) & 1) != 0;
}

// @ts-ignore: decorator
@inline function usable(slot: i32, triedCount: i32): bool {
  if (!bitOf(pickableBits, slot)) return false;
  for (let i = 0; i < triedCount; i++) if (loadI32(tried, i) == slot) return false;
  return true;
}

/** Deterministic fallback: first usable slot in identity order from `start`, or -1. */
function scanFrom(start: i32, triedCount: i32): i32 {
  const n = curCount;
  let index = start;
  for (let t = 0; t < n; t++) {
    const slot = loadI32(curOrder, index);
    if (usable(slot, triedCount)) return slot;
    if (++index == n) index = 0;
  }
  return -1;
}

// @ts-ignore: decorator
@inline function nextRandom(): u32 {
  rngState = xorshift32(rngState);
  return rngState;
}

/** First ring point at or clockwise after `key` (wrapping to 0); the ring must not be empty. */
function ringIndex(key: u32): i32 {
  const bucket = <i32>(key >>> 16);
  let low = loadI32(curRingIndex, bucket);
  let high = loadI32(curRingIndex, bucket + 1);
  // Within the bucket every position shares the key's top 16 bits, so "position < key" is "packed <
  // (key's low 16 bits) << 16" (the slot in the low half never reaches the next position value).
  const needle = key << 16;
  // Branch-free halving (wasm select): a bucket holds a handful of points in random order of keys,
  // so a branchy search would mispredict on most steps.
  while (low < high) {
    const middle = (low + high) >>> 1;
    const below = loadU32(curRingPacked, middle) < needle;
    low = select<i32>(middle + 1, low, below);
    high = select<i32>(high, middle, below);
  }
  return low == curRingCount ? 0 : low;
}

/**
 * Slow start on hash policies: a ramping slot admits only the keys whose per-key, per-backend admit
 * hash is below its threshold; for the others the probe goes on as if the slot were ineligible.
 * The fallback scan does not ask, so a ramping backend still serves when nothing else can.
 */
// @ts-ignore: decorator
@inline function admits(slot: i32, keyHash: u32): bool {
  if (rampingSlots == 0) return true;
  const threshold = loadU32(admitThreshold, slot);
  return threshold == ADMIT_ALL || slowStartAdmitHash(keyHash, loadU32(curLo, slot)) < threshold;
}

/**
 * Data plane, once per connection attempt: returns a usable slot (eligible, weight > 0, not among
 * the first `triedCount` entries of the tried scratch region), or -1 when none is left.
 * Allocates nothing.
 */
export function pick(keyHash: u32, triedCount: i32): i32 {
  lastSpill = -1;
  const n = curCount;
  if (n == 0) return -1;
  switch (policy) {
    case POLICY_ROUND_ROBIN: return pickRoundRobin(triedCount);
    case POLICY_RANDOM: return pickRandom(triedCount);
    case POLICY_LEAST_CONNECTIONS: return pickLeastConnections(triedCount);
    case POLICY_LEAST_TIME: return pickLeastTime(triedCount);
    case POLICY_RING_HASH: {
      const points = curRingCount;
      let index = ringIndex(keyHash);
      const walk = ringWalkLimit < points ? ringWalkLimit : points;
      let home = -1;
      for (let step = 0; step < walk; step++) {
        const slot = ringSlotAt(curRingPacked, index);
        if (usable(slot, triedCount) && admits(slot, keyHash)) {
          if (balanceFactor == 0 || withinBound(slot)) return spillFrom(home, slot);
          if (home < 0) home = slot;
        }
        if (++index == points) index = 0;
      }
      return boundedFallback(home, <i32>(keyHash % <u32>n), triedCount);
    }
    case POLICY_MAGLEV: {
      let home = -1;
      for (let probe = 0; probe < maglevProbes; probe++) {
        const hash = probe == 0 ? keyHash : maglevProbeHash(keyHash, <u32>probe);
        const slot = loadI32(curMaglev, <i32>(hash % maglevSize));
        if (usable(slot, triedCount) && admits(slot, keyHash)) {
          if (balanceFactor == 0 || withinBound(slot)) return spillFrom(home, slot);
          if (home < 0) home = slot;
        }
      }
      return boundedFallback(home, <i32>(keyHash % <u32>n), triedCount);
    }
  }
  return -1;
}

// ---------------------------------------------------------------- bounded load

/**
 * The one place the bound reads load: this instance's counts, which a worker thread refreshes
 * from the process-wide shared counts before each load-aware pick (`loadActiveTotal`).
 */
// @ts-ignore: decorator
@inline function slotLoad(slot: i32): i64 { return <i64>loadI32(active, slot); }
// @ts-ignore: decorator
@inline function poolLoad(): i64 { return <i64>activeTotal; }

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2016; HAProxy
 * `hash-balance-factor`): a slot takes one more connection while
 *   active < ceil(factor / 100 × (poolActive + 1) × weight / pickableWeight),
 * evaluated without division as active × 100 × W < factor × (poolActive + 1) × weight (for an
 * integer a, a < ceil(q) ⟺ a < q). Every term stays below 2^53, so the f64 reference agrees exactly.
 * HAProxy rounds the pool total once and deals the remainder out by cumulative weight (an order-
 * dependent split); the per-backend ceiling here depends on nothing but the backend's own weight.
 */
// @ts-ignore: decorator
@inline function withinBound(slot: i32): bool {
  return slotLoad(slot) * 100 * pickableWeight < <i64>balanceFactor * (poolLoad() + 1) * <i64>loadI32(curWeight, slot);
}

/** A pick that skipped a full home: count it against that home. */
// @ts-ignore: decorator
@inline function spillFrom(home: i32, slot: i32): i32 {
  if (home >= 0 && countSpills) {
    storeU32(spilled, home, loadU32(spilled, home) + 1);
    lastSpill = home;
  }
  return slot;
}

/**
 * After the ring walk or the Maglev probes: with every probed candidate full (`home` ≥ 0), go on in
 * identity order from `start` to the first usable slot within its bound; when every slot is full,
 * the home takes it anyway (HAProxy also ends its walk after one lap). Without a bound, or with no
 * usable candidate in the walk, the usual fallback scan.
 */
function boundedFallback(home: i32, start: i32, triedCount: i32): i32 {
  if (home < 0) return scanFrom(start, triedCount);
  const n = curCount;
  let index = start;
  for (let t = 0; t < n; t++) {
    const slot = loadI32(curOrder, index);
    if (usable(slot, triedCount) && withinBound(slot)) return spillFrom(home, slot);
    if (++index == n) index = 0;
  }
  return home;
}

/** Σ weight of pickable published slots; O(n), once per build (flips update it in O(1)). */
function computePickableWeight(): void {
  let total: i64 = 0;
  for (let i = 0; i < curCount; i++) {
    const slot = loadI32(curOrder, i);
    if (bitOf(pickableBits, slot)) total += <i64>loadI32(curWeight, slot);
  }
  pickableWeight = total;
}

/**
 * Control plane, at start and on reload (never per connection): the pool's hashBalanceFactor in
 * percent (> 100), or 0 for no bound. Rebuilds nothing, allocates nothing.
 */
export function setBalanceFactor(factor: i32): void {
  balanceFactor = factor;
}

/** Admin lookups: the pick a first attempt would get now, without counting a spill. */
export function peek(keyHash: u32): i32 {
  countSpills = false;
  const slot = pick(keyHash, 0);
  countSpills = true;
  return slot;
}

/** Admin/metrics: picks turned away from this (home) slot because it was full. */
export function spilledConnections(slot: i32): u32 {
  return loadU32(spilled, slot);
}

/** nginx's smooth weighted round robin (ngx_http_upstream_get_peer) over usable slots. */
function pickRoundRobin(triedCount: i32): i32 {
  const n = curCount;
  let best = -1;
  let bestCurrent: i64 = 0;
  let total: i64 = 0;
  for (let i = 0; i < n; i++) {
    const slot = loadI32(curOrder, i);
    if (!usable(slot, triedCount)) continue;
    // Effective weight = weight × scale (nginx's effective_weight idea), in per-mille units so a
    // weight-1 backend ramps too; multiplying every weight by 1000 leaves the sequence unchanged.
    const w = <i64>loadI32(curWeight, slot) * <i64>loadI32(weightScale, slot);
    const value = load<i64>(swrrCurrent + (<usize>slot << 3)) + w;
    store<i64>(swrrCurrent + (<usize>slot << 3), value);
    total += w;
    if (best < 0 || value > bestCurrent) {
      best = slot;
      bestCurrent = value;
    }
  }
  if (best >= 0) store<i64>(swrrCurrent + (<usize>best << 3), bestCurrent - total);
  return best;
}

/** Weighted random: draw r < Σweight, find the first prefix sum above it; redraw a few times. */
function pickRandom(triedCount: i32): i32 {
  if (rampingSlots > 0) return pickRandomScaled(triedCount);
  const n = curCount;
  let index = 0;
  for (let draw = 0; draw < randomDraws; draw++) {
    const target = nextRandom() % curTotal;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (loadU32(curPrefix, middle) > target) high = middle;
      else low = middle + 1;
    }
    index = low;
    const slot = loadI32(curOrder, index);
    if (usable(slot, triedCount)) return slot;
  }
  return scanFrom(index, triedCount);
}

/**
 * Weighted random while some slot ramps: r / 2^32 × Σ(weight × scale), searched in the scaled
 * prefix sums (f64: exact integers up to 2^53, the same IEEE operations as the reference).
 */
function pickRandomScaled(triedCount: i32): i32 {
  const n = curCount;
  let index = 0;
  if (scaledTotal == 0) return scanFrom(0, triedCount);
  for (let draw = 0; draw < randomDraws; draw++) {
    const target = Math.floor(<f64>nextRandom() * scaledTotal / TWO_POW_32);
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (loadF64(scaledPrefix, middle) > target) high = middle;
      else low = middle + 1;
    }
    index = low;
    const slot = loadI32(curOrder, index);
    if (usable(slot, triedCount)) return slot;
  }
  return scanFrom(index, triedCount);
}

/** random: running Σ weight × scale over the published order; O(n), at build and per scale change. */
function computeScaledPrefix(): void {
  let total: f64 = 0;
  for (let i = 0; i < curCount; i++) {
    const slot = loadI32(curOrder, i);
    total += <f64>loadI32(curWeight, slot) * <f64>loadI32(weightScale, slot);
    storeF64(scaledPrefix, i, total);
  }
  scaledTotal = total;
}

/**
 * nginx least_conn (ngx_http_upstream_get_least_conn_peer): the fewest active/weight wins
 * (cross-multiplied, weight × per-mille scale); a tie is broken by smooth weighted round robin over
 * the tied slots only, so idle backends still share by weight (2,1,1 → 2:1:1). The policy is fixed
 * per instance, so the tie-break reuses round_robin's `swrrCurrent` (reset on every rebuild).
 * One O(n) pass collects the slots at the running minimum in a scratch list (restarted whenever a
 * lower one appears), then SWRR runs over that list only. A sole minimum wins outright: nginx skips
 * the SWRR step when nothing ties, and current += w − w would change nothing anyway.
 */
function pickLeastConnections(triedCount: i32): i32 {
  const n = curCount;
  let tiedCount = 0;
  let bestActive: i64 = 0;
  let bestWeight: i64 = 0;
  for (let i = 0; i < n; i++) {
    const slot = loadI32(curOrder, i);
    if (!usable(slot, triedCount)) continue;
    const slotActive = <i64>loadI32(active, slot);
    // Scaled weight in per-mille units; cross-multiplication stays exact in i64.
    const slotWeight = <i64>loadI32(curWeight, slot) * <i64>loadI32(weightScale, slot);
    const left = slotActive * bestWeight;
    const right = bestActive * slotWeight;
    if (tiedCount == 0 || left < right) {
      bestActive = slotActive;
      bestWeight = slotWeight;
      storeI32(tiedSlots, 0, slot);
      tiedCount = 1;
    } else if (left == right) {
      storeI32(tiedSlots, tiedCount++, slot);
    }
  }
  if (tiedCount <= 1) return tiedCount == 0 ? -1 : loadI32(tiedSlots, 0);
  let winner = -1;
  let winnerCurrent: i64 = 0;
  let total: i64 = 0;
  for (let i = 0; i < tiedCount; i++) {
    const slot = loadI32(tiedSlots, i);
    const slotWeight = <i64>loadI32(curWeight, slot) * <i64>loadI32(weightScale, slot);
    const value = load<i64>(swrrCurrent + (<usize>slot << 3)) + slotWeight;
    store<i64>(swrrCurrent + (<usize>slot << 3), value);
    total += slotWeight;
    if (winner < 0 || value > winnerCurrent) {
      winner = slot;
      winnerCurrent = value;
    }
  }
  store<i64>(swrrCurrent + (<usize>winner << 3), winnerCurrent - total);
  return winner;
}

// @ts-ignore: decorator
@inline function loadCost(slot: i32): f64 {
  const estimate = loadF64(ewma, slot);
  return (estimate < 0 ? defaultConnectMicros : estimate) * <f64>(loadI32(active, slot) + 1);
}

/** least_time: weight × scale / 1000 as f64 (exactly the weight at full scale). */
// @ts-ignore: decorator
@inline function scaledWeight(slot: i32): f64 {
  return <f64>loadI32(curWeight, slot) * <f64>loadI32(weightScale, slot) / <f64>FULL_SCALE;
}

/** Power of two choices on peak-EWMA × (active + 1) / weight; two distinct indices, no rejection loop. */
function pickLeastTime(triedCount: i32): i32 {
  const n = curCount;
  const first = <i32>(nextRandom() % <u32>n);
  let second = first;
  if (n > 1) {
    second = <i32>(nextRandom() % <u32>(n - 1));
    if (second >= first) second++;
  }
  const a = scanFrom(first, triedCount);
  if (a < 0) return -1;
  const b = scanFrom(second, triedCount);
  if (a == b) return a;
  const costA = loadCost(a) * scaledWeight(b);
  const costB = loadCost(b) * scaledWeight(a);
  return costB < costA ? b : a;
}

/** Diagnostics/tests: owner of the key's home maglev entry or ring point, ignoring health; -1 otherwise. */
export function homeSlot(keyHash: u32): i32 {
  if (curCount == 0) return -1;
  if (policy == POLICY_MAGLEV) return loadI32(curMaglev, <i32>(keyHash % maglevSize));
  if (policy == POLICY_RING_HASH) return ringSlotAt(curRingPacked, ringIndex(keyHash));
  return -1;
}

// ---------------------------------------------------------------- per-slot state

// @ts-ignore: decorator
@inline function storeBit(bits: usize, slot: i32, on: bool): void {
  const word = slot >> 5;
  const bit: u32 = 1 << (<u32>slot & 31);
  const value = loadU32(bits, word);
  storeU32(bits, word, on ? value | bit : value & ~bit);
}

/** Health owner, per eligibility flip: one health bit and the derived pickable bit; no table rebuild. */
export function setEligible(slot: i32, eligible: i32): void {
  storeBit(healthBits, slot, eligible != 0);
  storePickable(slot, eligible != 0 && loadI32(weightScale, slot) > 0);
}

/** Diagnostics: 1 when the slot's health bit is set. */
export function isEligible(slot: i32): i32 {
  return bitOf(healthBits, slot) ? 1 : 0;
}

function storeScale(slot: i32, permille: i32): void {
  const previous = loadI32(weightScale, slot);
  if (previous < FULL_SCALE) rampingSlots--;
  if (permille < FULL_SCALE) rampingSlots++;
  storeI32(weightScale, slot, permille);
  storeU32(admitThreshold, slot, permille >= FULL_SCALE ? ADMIT_ALL : <u32>(<u64>permille * 65536 / <u64>FULL_SCALE));
  storePickable(slot, bitOf(healthBits, slot) && permille > 0);
}

/**
 * The pickable bit, and the bound's Σ pickable weight with it (O(1): a panic that flips every slot
 * stays O(n)). Between builds the sum is Σ published weight over pickable slots; build recomputes it.
 */
function storePickable(slot: i32, on: bool): void {
  if (bitOf(pickableBits, slot) != on) {
    const weight = <i64>loadI32(curWeight, slot);
    pickableWeight += on ? weight : -weight;
  }
  storeBit(pickableBits, slot, on);
}

/**
 * Health owner (slow start), a few times per second per ramping backend, never per connection:
 * the slot's weight scale in per mille (0..1000, validated by the wrapper). Rebuilds no table and
 * allocates nothing; random recomputes its O(n) scaled prefix sums.
 */
export function setWeightScale(slot: i32, permille: i32): void {
  storeScale(slot, permille);
  if (policy == POLICY_RANDOM) computeScaledPrefix();
}

/** Diagnostics: the slot's weight scale in per mille. */
export function weightScaleOf(slot: i32): i32 {
  return loadI32(weightScale, slot);
}

/** Data plane, per established connection: returns the new active count. */
export function acquire(slot: i32): i32 {
  const value = loadI32(active, slot) + 1;
  storeI32(active, slot, value);
  activeTotal++;
  return value;
}

/** Data plane, per closed connection: returns the new active count, or -1 when it was already 0. */
export function release(slot: i32): i32 {
  const value = loadI32(active, slot);
  if (value == 0) return -1;
  storeI32(active, slot, value - 1);
  activeTotal--;
  return value - 1;
}

/**
 * Worker threads, before a load-aware pick: the wrapper has just copied the process-wide per-slot
 * counts over this instance's `active` array (`activePointer`); this sets their sum to match.
 */
export function loadActiveTotal(total: i32): void {
  activeTotal = total;
}

/** Wrapper, once after init: address of the i32 per-slot active counts. */
export function activePointer(): usize {
  return active;
}

/** Worker threads, after a pick: the full home it passed over (bounded load), or -1. */
export function lastSpilledHome(): i32 {
  return lastSpill;
}

/** Data plane / metrics: active connections of a slot. */
export function activeConnections(slot: i32): i32 {
  return loadI32(active, slot);
}

/**
 * Data plane, per successful connect: peak EWMA (Finagle/linkerd). A sample above the estimate
 * replaces it; otherwise the estimate decays toward the sample with weight exp(-Δt/τ).
 */
export function observeConnectTime(slot: i32, micros: f64, nowMs: f64): void {
  const estimate = loadF64(ewma, slot);
  if (estimate < 0) {
    storeF64(ewma, slot, micros);
    storeF64(ewmaStamp, slot, nowMs);
    return;
  }
  let elapsed = nowMs - loadF64(ewmaStamp, slot);
  if (elapsed < 0) elapsed = 0;
  storeF64(ewmaStamp, slot, nowMs);
  if (micros > estimate) {
    storeF64(ewma, slot, micros);
  } else {
    const decay = hostExp(-elapsed / ewmaTauMs);
    storeF64(ewma, slot, estimate * decay + micros * (1 - decay));
  }
}

/** Wrapper, once after init: address of the f64 per-slot peak-EWMA connect times (worker threads share them). */
export function ewmaPointer(): usize {
  return ewma;
}

/** Wrapper, once after init: address of the f64 per-slot time of the last connect-time sample. */
export function ewmaStampPointer(): usize {
  return ewmaStamp;
}

/** Diagnostics: the slot's peak-EWMA connect time in µs, or -1 when never sampled. */
export function connectTimeEwma(slot: i32): f64 {
  return loadF64(ewma, slot);
}

/** Wrapper, once after init: address of the Int32 scratch region holding the tried slots. */
export function triedPointer(): usize {
  return tried;
}

/** Tests/diagnostics: number of table builds since init. */
export function buildCount(): i32 {
  return builds;
}

/** Tests: linear memory size in bytes (must stay flat after init). */
export function memoryBytes(): i32 {
  return memory.size() << 16;
}

/** Tests/diagnostics: the active maglev table entry `index`, or the slot of ring point `index`. */
export function tableEntry(index: i32): i32 {
  if (policy == POLICY_MAGLEV) return loadI32(curMaglev, index);
  if (policy == POLICY_RING_HASH) return ringSlotAt(curRingPacked, index);
  return -1;
}

/** Tests/diagnostics: position of ring point `index` in the active ring. */
export function ringPointPosition(index: i32): u32 {
  return loadU32(curRingPositions, index);
}

/** Tests/diagnostics: number of entries (maglev: M, ring: points) in the active table. */
export function tableLength(): i32 {
  if (policy == POLICY_MAGLEV) return curCount > 0 ? <i32>maglevSize : 0;
  if (policy == POLICY_RING_HASH) return curRingCount;
  return 0;
}

/** Golden-vector tests: the hash twins of src/core/hash.ts. */
export function hashRingPoint(identityHi: u32, identityLo: u32, pointIndex: u32): u32 {
  return ringPointHash(identityHi, identityLo, pointIndex);
}

export function hashMaglevProbe(keyHash: u32, probe: u32): u32 {
  return maglevProbeHash(keyHash, probe);
}

export function hashSlowStartAdmit(keyHash: u32, identityLo: u32): u32 {
  return slowStartAdmitHash(keyHash, identityLo);
}
