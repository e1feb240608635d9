/** Public surface of the balancing core: everyone outside src/core imports from here. */
import { ReferenceBalancer } from './reference-balancer.js';
import type { Balancer, BalancerOptions } from './types.js';

export * from './types.js';
export { sourceKeyHash } from './key-hash.js';
export { ReferenceBalancer } from './reference-balancer.js';

export type BalancerImplementation = 'wasm' | 'reference';

/** Creates one pool's balancer. `reference` is the plain TypeScript twin used by tests and benches. */
export function createBalancer(options: BalancerOptions, implementation: BalancerImplementation = 'wasm'): Balancer {
  // TODO(core): return the WASM balancer for 'wasm' once assembly/ lands (same API, same picks).
  void implementation;
  return new ReferenceBalancer(options);
}
