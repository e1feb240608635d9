/**
 * The browser's stand-in for src/core/wasm-module.ts (the page's import map puts it in that
 * module's place): the same `coreModule(flavour)`, backed by build/release.wasm as served by the
 * admin server and compiled once by `loadCoreModule` before the first balancer is built. Everything
 * else of the core (wasm-balancer.ts, the reload planner) is the JavaScript Node runs.
 */
import type { CoreBuildFlavour, CoreModule } from '../src/core/wasm-module.js';

let compiled: WebAssembly.Module | null = null;

/** Fetches and compiles the core (served as application/wasm, so it compiles while it streams). */
export async function loadCoreModule(url: URL): Promise<void> {
  if (compiled !== null) return;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url.pathname}: HTTP ${response.status}`);
  compiled = await WebAssembly.compileStreaming(response);
}

export function coreModule(flavour: CoreBuildFlavour): CoreModule {
  // The page serves the release build only (what `ringlb run` uses).
  if (flavour !== 'release') throw new Error(`the dashboard has the release core only, not ${flavour}`);
  if (compiled === null) throw new Error('the core is not loaded yet (loadCoreModule first)');
  return compiled as unknown as CoreModule;
}
