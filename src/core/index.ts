/** Public surface of the balancing core: everyone outside src/core imports from here. */
import { ReferenceBalancer } from './reference-balancer.js';
import type { Balancer, BalancerOptions } from './types.js';
import { WasmBalancer } from './wasm-balancer.js';

export * from './types.js';
export { sourceKeyHash } from './key-hash.js';
export { SlotCapacityError } from './slot-table.js';
export { xorshift32 } from './prng.js';
export { ReferenceBalancer } from './reference-balancer.js';
export { WasmBalancer, type CoreBuildFlavour } from './wasm-balancer.js';

export type BalancerImplementation = 'wasm' | 'reference';

/**
 * Creates one pool's balancer: the WASM core (release build) by default, or its plain TypeScript
 * twin (`reference`), which makes the same picks and is used by tests and benchmarks.
 */
export function createBalancer(options: BalancerOptions, implementation: BalancerImplementation = 'wasm'): Balancer {
  if (implementation === 'reference') return new ReferenceBalancer(options);
  if (implementation !== 'wasm') throw new TypeError(`balancer implementation must be 'wasm' or 'reference', got ${String(implementation)}`);
  return new WasmBalancer(options);
}
