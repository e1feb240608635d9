/**
 * xorshift32 (Marsaglia, "Xorshift RNGs", J. Stat. Softw. 8(14), 2003, triple 13/17/5): the
 * generator behind `random` draws and `least_time`'s two choices, in both the WASM core and the
 * TypeScript reference, so a seeded differential test sees the same sequence in each.
 * State 0 is the generator's fixed point, so seed 0 is replaced by DEFAULT_NONZERO_SEED.
 */
export const DEFAULT_NONZERO_SEED = 0x9e3779b9;

export function normalizeSeed(seed: number): number {
  const state = seed >>> 0;
  return state === 0 ? DEFAULT_NONZERO_SEED : state;
}

/** Advances the state and returns it (u32, never 0). */
export function xorshift32(state: number): number {
  let x = state | 0;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}
