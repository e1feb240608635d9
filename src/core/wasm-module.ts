/**
 * Where the compiled core comes from in Node: build/<flavour>.wasm at the package root, read and
 * compiled once per flavour per process (per worker thread: each has its own module registry).
 *
 * The one module of src/core that does I/O. The dashboard serves the same balancer code to the
 * browser with dashboard/wasm-module.ts in this file's place (the page's import map): same
 * exports, the module compiled from build/release.wasm fetched over the admin API.
 */
import { readFileSync } from 'node:fs';

/** `release` (optimized, asserts off) for the CLI; `debug` (asserts on) for tests that want it. */
export type CoreBuildFlavour = 'release' | 'debug';

/** A compiled `WebAssembly.Module` (typed opaquely: tsconfig's lib has no WebAssembly declarations). */
export interface CoreModule {
  readonly kind?: 'core-module';
}

const WebAssembly = (globalThis as unknown as { readonly WebAssembly: { readonly Module: new (bytes: Uint8Array) => CoreModule } }).WebAssembly;

const compiledModules = new Map<CoreBuildFlavour, CoreModule>();

export function coreModule(flavour: CoreBuildFlavour): CoreModule {
  let module = compiledModules.get(flavour);
  if (module === undefined) {
    // dist/src/core/wasm-module.js → build/<flavour>.wasm at the package root.
    const bytes = readFileSync(new URL(`../../../build/${flavour}.wasm`, import.meta.url));
    module = new WebAssembly.Module(bytes);
    compiledModules.set(flavour, module);
  }
  return module;
}
