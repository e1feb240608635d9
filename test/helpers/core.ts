/** Shared fixtures for the core tests: a seeded test RNG and random backend sets. */
import { ReferenceBalancer } from '../../src/core/reference-balancer.js';
import type { Balancer, BalancerOptions, CoreBackend } from '../../src/core/types.js';
import { WasmBalancer, type CoreBuildFlavour } from '../../src/core/wasm-balancer.js';

/** mulberry32: a tiny seeded generator for test inputs (independent of the core's xorshift32). */
export function testRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomInt(random: () => number, below: number): number {
  return Math.floor(random() * below);
}

/** `count` backends with ids like 10.0.x.y:port and weights from `weight()`. */
export function makeBackends(count: number, weight: (index: number) => number, prefix = '10.0'): CoreBackend[] {
  return Array.from({ length: count }, (_, index) => ({ id: `${prefix}.${index >> 8}.${index & 255}:${9000 + (index % 7)}`, weight: weight(index) }));
}

export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = randomInt(random, i + 1);
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

/** Well-spread u32 keys: i × golden ratio, as a stand-in for hashed client addresses. */
export function spreadKey(index: number): number {
  return Math.imul(index + 1, 0x9e3779b1) >>> 0;
}

export interface BalancerPair {
  readonly wasm: WasmBalancer;
  readonly reference: ReferenceBalancer;
}

export function balancerPair(options: BalancerOptions, flavour: CoreBuildFlavour = 'release'): BalancerPair {
  return { wasm: new WasmBalancer(options, flavour), reference: new ReferenceBalancer(options) };
}

/** A balancer with the test-only views both implementations offer (build count, published table). */
export type TestableBalancer = Balancer & {
  buildCount(): number;
  tableSnapshot(): { readonly slots: Int32Array; readonly positions: Uint32Array };
};

/** Both implementations under one table of cases: the WASM core and the TypeScript reference. */
export const IMPLEMENTATIONS = {
  wasm: (options: BalancerOptions): TestableBalancer => new WasmBalancer(options),
  reference: (options: BalancerOptions): TestableBalancer => new ReferenceBalancer(options),
} as const;
