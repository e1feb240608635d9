/**
 * Balancer options: defaults, validation and the tunables shared by the WASM core and the
 * TypeScript reference. The WASM core receives every tunable through `init`, so this file is the
 * single source of truth for them.
 */
import { MAX_WEIGHT } from '../backend.js';
import { BALANCE_POLICIES, type BalancePolicy, type BalancerOptions } from './types.js';

/** ketama / nginx `hash ... consistent` / Pingora: 160 points per weight unit. */
export const DEFAULT_RING_POINTS_PER_WEIGHT = 160;
export const MAX_RING_POINTS_PER_WEIGHT = 10_000;
/**
 * Upper bound on ring points (2^20 ≈ 1M, the order of magnitude Envoy allows: its maximum_ring_size
 * is 8M). When pointsPerWeight × Σweight exceeds it, every backend gets
 * max(1, floor(weight × RING_MAX_POINTS / Σweight)) points, so the total stays ≤ cap + backends.
 * Each point costs 8 bytes in each of three buffers (two tables and a sort scratch).
 */
export const RING_MAX_POINTS = 1 << 20;
/** Ring points walked clockwise past ineligible/tried backends before the fallback scan. */
export const RING_WALK_LIMIT = 256;

/** Maglev paper §5.3, Envoy and Katran default: 65537 (prime). */
export const DEFAULT_MAGLEV_TABLE_SIZE = 65_537;
/** Envoy's upper bound for maglev table_size. */
export const MAX_MAGLEV_TABLE_SIZE = 5_000_011;
/** Maglev entries tried (home + re-hashes) before the fallback scan. */
export const MAGLEV_PROBES = 8;

/** Weighted random draws before the fallback scan. */
export const RANDOM_DRAWS = 8;

export const DEFAULT_MAX_BACKENDS = 1024;
export const MAX_MAX_BACKENDS = 65_536;

/**
 * least_time: an unsampled backend costs as if its connect time were 1 ms (tower's PeakEwma also
 * starts endpoints at a configured default RTT). 1 ms is pessimistic for loopback and optimistic for
 * a WAN, so a new backend receives some connections at once but is not flooded before its first
 * connect completes (a cost of 0 would make it win every draw until then).
 */
export const DEFAULT_CONNECT_MICROS = 1000;
/** Peak-EWMA decay time constant (Finagle's and linkerd's default decay time: 10 s). */
export const EWMA_TAU_MS = 10_000;

/** Slow start: a weight scale is per mille; 1000 = full weight (the default of every slot). */
export const FULL_WEIGHT_SCALE = 1000;

/** Validates a slow-start weight scale: an integer 0..1000 (per mille). */
export function checkWeightScale(permille: number): number {
  if (typeof permille !== 'number' || !Number.isInteger(permille) || permille < 0 || permille > FULL_WEIGHT_SCALE) {
    throw new RangeError(`weight scale must be an integer per mille in 0..${FULL_WEIGHT_SCALE}, got ${String(permille)}`);
  }
  return permille;
}

/** hashBalanceFactor bounds (percent): above 100 (HAProxy), at most 10000 so the bound's products stay exact. */
export const MIN_HASH_BALANCE_FACTOR = 101;
export const MAX_HASH_BALANCE_FACTOR = 10_000;

/** Validates a hashBalanceFactor: 0 (no bound) or an integer 101..10000. */
export function checkBalanceFactor(factor: number): number {
  if (typeof factor !== 'number' || !Number.isInteger(factor) || (factor !== 0 && (factor < MIN_HASH_BALANCE_FACTOR || factor > MAX_HASH_BALANCE_FACTOR))) {
    throw new RangeError(`hash balance factor must be 0 (off) or an integer in ${MIN_HASH_BALANCE_FACTOR}..${MAX_HASH_BALANCE_FACTOR}, got ${String(factor)}`);
  }
  return factor;
}

export interface ResolvedBalancerOptions {
  readonly policy: BalancePolicy;
  readonly ringPointsPerWeight: number;
  readonly maglevTableSize: number;
  readonly maxBackends: number;
  readonly randomSeed: number;
}

export function isPrime(value: number): boolean {
  if (!Number.isInteger(value) || value < 2) return false;
  if (value % 2 === 0) return value === 2;
  for (let divisor = 3; divisor * divisor <= value; divisor += 2) {
    if (value % divisor === 0) return false;
  }
  return true;
}

function checkInteger(name: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`balancer option ${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

/** Validates options and fills defaults; throws TypeError/RangeError naming the bad option. */
export function resolveBalancerOptions(options: BalancerOptions): ResolvedBalancerOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('balancer options must be an object');
  }
  if (!(BALANCE_POLICIES as readonly string[]).includes(options.policy)) {
    throw new TypeError(`balancer option policy must be one of ${BALANCE_POLICIES.join(', ')}, got ${String(options.policy)}`);
  }
  const ringPointsPerWeight = checkInteger(
    'ringPointsPerWeight',
    options.ringPointsPerWeight ?? DEFAULT_RING_POINTS_PER_WEIGHT,
    1,
    MAX_RING_POINTS_PER_WEIGHT,
  );
  const maglevTableSize = checkInteger('maglevTableSize', options.maglevTableSize ?? DEFAULT_MAGLEV_TABLE_SIZE, 2, MAX_MAGLEV_TABLE_SIZE);
  if (!isPrime(maglevTableSize)) {
    // Envoy: "The table size of maglev must be prime number" — a composite size breaks the permutation.
    throw new RangeError(`balancer option maglevTableSize must be a prime number, got ${maglevTableSize}`);
  }
  const defaultMaxBackends = options.policy === 'maglev' ? Math.min(DEFAULT_MAX_BACKENDS, maglevTableSize) : DEFAULT_MAX_BACKENDS;
  const maxBackends = checkInteger('maxBackends', options.maxBackends ?? defaultMaxBackends, 1, MAX_MAX_BACKENDS);
  if (options.policy === 'maglev' && maxBackends > maglevTableSize) {
    // Every weighted backend owns at least one entry, so the table must have room for all of them.
    throw new RangeError(`balancer option maxBackends (${maxBackends}) must not exceed maglevTableSize (${maglevTableSize})`);
  }
  const seed = options.randomSeed ?? Math.floor(Math.random() * 0x1_0000_0000);
  const randomSeed = checkInteger('randomSeed', seed, 0, 0xffff_ffff);
  return { policy: options.policy, ringPointsPerWeight, maglevTableSize, maxBackends, randomSeed };
}

/** Ring points a build can produce: the cap (or the most the weights allow) plus one per backend. */
export function ringCapacity(options: ResolvedBalancerOptions): number {
  const mostPoints = options.ringPointsPerWeight * MAX_WEIGHT * options.maxBackends;
  return Math.min(RING_MAX_POINTS, mostPoints) + options.maxBackends;
}

/** Number 0..5 for each policy; the WASM core switches on it. Order = BALANCE_POLICIES. */
export function policyCode(policy: BalancePolicy): number {
  return BALANCE_POLICIES.indexOf(policy);
}
