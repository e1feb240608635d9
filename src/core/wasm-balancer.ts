/**
 * The Balancer backed by the AssemblyScript core (assembly/index.ts). This is the only TypeScript
 * that touches WASM exports or memory. One WebAssembly.Module is compiled per build flavour per
 * process (wasm-module.ts); each balancer (one pool) gets its own instance, whose globals are that
 * pool.
 *
 * This file does no I/O, so it runs unchanged in a browser: the dashboard's disruption preview
 * drives the same core through it, with the module compiled by the page (dashboard/wasm-module.ts
 * stands in for wasm-module.ts there).
 */
import type { instantiate } from '../../build/release.js';
import {
  DEFAULT_CONNECT_MICROS,
  EWMA_TAU_MS,
  MAGLEV_PROBES,
  RANDOM_DRAWS,
  RING_MAX_POINTS,
  RING_WALK_LIMIT,
  checkBalanceFactor,
  checkWeightScale,
  policyCode,
  resolveBalancerOptions,
  ringCapacity,
  type ResolvedBalancerOptions,
} from './options.js';
import { SlotTable } from './slot-table.js';
import { coreModule, type CoreBuildFlavour, type CoreModule } from './wasm-module.js';
import type { BalancePolicy, Balancer, BalancerOptions, CoreBackend, RebuildReport, SlotPlacement } from './types.js';

/**
 * The slice of the WebAssembly JS API this file uses. tsconfig's lib is ES2022 without DOM, where the
 * WebAssembly global is declared, so it is typed here rather than pulling DOM types into every file.
 */
interface CoreMemory {
  readonly buffer: ArrayBuffer;
}
interface WebAssemblyApi {
  readonly Instance: new (module: CoreModule, imports: Record<string, Record<string, unknown>>) => { readonly exports: unknown };
}
const WebAssembly = (globalThis as unknown as { readonly WebAssembly: WebAssemblyApi }).WebAssembly;

/** The core's raw exports (numbers only; u32 results arrive as signed i32 and are fixed here). */
export type CoreExports = Omit<Awaited<ReturnType<typeof instantiate>>, 'memory'> & { readonly memory: CoreMemory };

export type { CoreBuildFlavour } from './wasm-module.js';

/** AssemblyScript strings: UTF-16 code units, byte length stored in the 4 bytes before the data. */
function readCoreString(memory: CoreMemory, pointer: number): string {
  if (pointer === 0) return '';
  const bytes = new Uint32Array(memory.buffer, pointer - 4, 1)[0];
  return String.fromCharCode(...new Uint16Array(memory.buffer, pointer, bytes >>> 1));
}

function instantiateCore(flavour: CoreBuildFlavour): CoreExports {
  let memory: CoreMemory | undefined;
  const instance = new WebAssembly.Instance(coreModule(flavour), {
    env: {
      abort(message: number, fileName: number, line: number, column: number): never {
        const text = memory === undefined ? 'abort' : `${readCoreString(memory, message >>> 0)} in ${readCoreString(memory, fileName >>> 0)}`;
        throw new Error(`ringlb core aborted: ${text}:${line >>> 0}:${column >>> 0}`);
      },
      // Host Math.exp keeps the peak-EWMA decay bit-identical to the TypeScript reference.
      exp: Math.exp,
    },
  });
  const exports = instance.exports as unknown as CoreExports;
  memory = exports.memory;
  return exports;
}

export class WasmBalancer implements Balancer {
  readonly policy: BalancePolicy;
  readonly options: ResolvedBalancerOptions;
  readonly #core: CoreExports;
  readonly #slots: SlotTable;
  readonly #triedPointer: number;
  #triedView: Int32Array;
  readonly #activePointer: number;
  #activeView: Int32Array;
  #ewmaViews: { readonly ewma: Float64Array; readonly stamps: Float64Array } | null = null;

  constructor(options: BalancerOptions, flavour: CoreBuildFlavour = 'release') {
    this.options = resolveBalancerOptions(options);
    this.policy = this.options.policy;
    this.#slots = new SlotTable(this.options.maxBackends);
    this.#core = instantiateCore(flavour);
    const status = this.#core.init(
      policyCode(this.policy),
      this.options.maxBackends,
      this.options.maglevTableSize,
      this.options.ringPointsPerWeight,
      RING_MAX_POINTS,
      ringCapacity(this.options),
      RING_WALK_LIMIT,
      MAGLEV_PROBES,
      RANDOM_DRAWS,
      this.options.randomSeed,
      DEFAULT_CONNECT_MICROS,
      EWMA_TAU_MS,
    );
    if (status !== 0) throw new Error(`ringlb core init failed with status ${status}`);
    this.#triedPointer = this.#core.triedPointer() >>> 0;
    this.#triedView = this.#makeTriedView();
    this.#activePointer = this.#core.activePointer() >>> 0;
    this.#activeView = this.#makeActiveView();
  }

  #makeActiveView(): Int32Array {
    return new Int32Array(this.#core.memory.buffer, this.#activePointer, this.options.maxBackends);
  }

  loadActiveCounts(counts: Int32Array, total: number): void {
    let view = this.#activeView;
    if (view.buffer !== this.#core.memory.buffer) view = this.#activeView = this.#makeActiveView();
    view.set(counts.length > view.length ? counts.subarray(0, view.length) : counts);
    this.#core.loadActiveTotal(total);
  }

  lastSpilledHome(): number {
    return this.#core.lastSpilledHome();
  }

  /** Views over the core's EWMA arrays, made again only after memory growth (never per call). */
  #connectTimeViews(): { readonly ewma: Float64Array; readonly stamps: Float64Array } {
    let views = this.#ewmaViews;
    if (views === null || views.ewma.buffer !== this.#core.memory.buffer) {
      const buffer = this.#core.memory.buffer;
      views = this.#ewmaViews = {
        ewma: new Float64Array(buffer, this.#core.ewmaPointer() >>> 0, this.options.maxBackends),
        stamps: new Float64Array(buffer, this.#core.ewmaStampPointer() >>> 0, this.options.maxBackends),
      };
    }
    return views;
  }

  loadConnectTimes(ewma: Float64Array, stamps: Float64Array): void {
    const views = this.#connectTimeViews();
    const slots = Math.min(ewma.length, views.ewma.length);
    views.ewma.set(slots === ewma.length ? ewma : ewma.subarray(0, slots));
    views.stamps.set(slots === stamps.length ? stamps : stamps.subarray(0, slots));
  }

  connectTimeStamp(slot: number): number {
    this.#checkSlot(slot);
    return this.#connectTimeViews().stamps[slot]!;
  }

  #makeTriedView(): Int32Array {
    return new Int32Array(this.#core.memory.buffer, this.#triedPointer, this.options.maxBackends);
  }

  setBackends(backends: readonly CoreBackend[], placement?: SlotPlacement): RebuildReport {
    const core = this.#core;
    const change = this.#slots.apply(backends, (slot) => core.activeConnections(slot), placement);
    if (!change.changed) {
      return { changed: false, slots: change.slots, added: [], removed: [], reweighted: [], buildMs: 0, movedShare: 0 };
    }
    for (const slot of change.removedSlots) core.clearSlot(slot);
    for (const slot of change.addedSlots) core.resetSlot(slot);
    for (const slot of [...change.addedSlots, ...change.reweightedSlots]) {
      const identity = this.#slots.identityOf(slot);
      if (identity === undefined) throw new Error(`slot ${slot} has no identity after assignment`);
      core.setSlot(slot, identity.hi, identity.lo, this.#slots.weightOf(slot));
    }
    const started = performance.now();
    const movedShare = core.build();
    const buildMs = performance.now() - started;
    return { changed: true, slots: change.slots, added: change.added, removed: change.removed, reweighted: change.reweighted, buildMs, movedShare };
  }

  slotOf(id: string): number {
    return this.#slots.slotOf(id);
  }

  idOf(slot: number): string | undefined {
    return this.#slots.idOf(slot);
  }

  setEligible(slot: number, eligible: boolean): void {
    this.#checkSlot(slot);
    this.#core.setEligible(slot, eligible ? 1 : 0);
  }

  isEligible(slot: number): boolean {
    this.#checkSlot(slot);
    return this.#core.isEligible(slot) === 1;
  }

  setWeightScale(slot: number, permille: number): void {
    this.#checkSlot(slot);
    this.#core.setWeightScale(slot, checkWeightScale(permille));
  }

  weightScale(slot: number): number {
    this.#checkSlot(slot);
    return this.#core.weightScaleOf(slot);
  }

  pick(keyHash: number, tried?: ArrayLike<number>, triedCount: number = tried?.length ?? 0): number {
    if (triedCount > 0 && tried !== undefined) {
      // The scratch region holds at most maxBackends slots; more tries than slots add nothing.
      const count = Math.min(triedCount, this.options.maxBackends);
      let view = this.#triedView;
      if (view.buffer !== this.#core.memory.buffer) view = this.#triedView = this.#makeTriedView();
      for (let i = 0; i < count; i++) view[i] = tried[i];
      return this.#core.pick(keyHash, count);
    }
    return this.#core.pick(keyHash, 0);
  }

  setHashBalanceFactor(factor: number): void {
    this.#core.setBalanceFactor(checkBalanceFactor(factor));
  }

  spilledConnections(slot: number): number {
    this.#checkSlot(slot);
    return this.#core.spilledConnections(slot) >>> 0;
  }

  peek(keyHash: number): number {
    return this.#core.peek(keyHash);
  }

  acquire(slot: number): void {
    this.#checkSlot(slot);
    this.#core.acquire(slot);
  }

  release(slot: number): void {
    this.#checkSlot(slot);
    if (this.#core.release(slot) < 0) throw new RangeError(`release(${slot}) without a matching acquire`);
  }

  activeConnections(slot: number): number {
    this.#checkSlot(slot);
    return this.#core.activeConnections(slot);
  }

  observeConnectTime(slot: number, micros: number, nowMs: number): void {
    this.#checkSlot(slot);
    if (!Number.isFinite(micros) || micros < 0) throw new RangeError(`connect time must be a finite number ≥ 0, got ${micros}`);
    if (!Number.isFinite(nowMs)) throw new RangeError(`nowMs must be finite, got ${nowMs}`);
    this.#core.observeConnectTime(slot, micros, nowMs);
  }

  /** Current peak-EWMA connect time of a slot in microseconds, or -1 when never sampled. */
  connectTimeEwma(slot: number): number {
    this.#checkSlot(slot);
    return this.#core.connectTimeEwma(slot);
  }

  homeSlot(keyHash: number): number {
    return this.#core.homeSlot(keyHash);
  }

  /** Tables built since construction (tests: a health flip or a scale change builds nothing). */
  buildCount(): number {
    return this.#core.buildCount();
  }

  /** Linear memory size in bytes; flat after construction (tests and the heap-flat bench read it). */
  memoryBytes(): number {
    return this.#core.memory.buffer.byteLength;
  }

  /** Active table for tests/diagnostics: maglev entries (slot per entry) or ring points (position, slot). */
  tableSnapshot(): { readonly slots: Int32Array; readonly positions: Uint32Array } {
    const length = this.#core.tableLength();
    const slots = new Int32Array(length);
    const positions = new Uint32Array(this.policy === 'ring_hash' ? length : 0);
    for (let i = 0; i < length; i++) {
      slots[i] = this.#core.tableEntry(i);
      if (this.policy === 'ring_hash') positions[i] = this.#core.ringPointPosition(i) >>> 0;
    }
    return { slots, positions };
  }

  /** Golden-vector tests: the core's own ring point and maglev probe hashes. */
  coreHashes(): {
    ringPoint(hi: number, lo: number, index: number): number;
    maglevProbe(key: number, probe: number): number;
    slowStartAdmit(key: number, lo: number): number;
  } {
    const core = this.#core;
    return {
      ringPoint: (hi, lo, index) => core.hashRingPoint(hi, lo, index) >>> 0,
      maglevProbe: (key, probe) => core.hashMaglevProbe(key, probe) >>> 0,
      slowStartAdmit: (key, lo) => core.hashSlowStartAdmit(key, lo) >>> 0,
    };
  }

  #checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.options.maxBackends) {
      throw new RangeError(`slot must be an integer in 0..${this.options.maxBackends - 1}, got ${String(slot)}`);
    }
  }
}
