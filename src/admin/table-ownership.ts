/**
 * Who owns how much of a hash pool's table, read from the core's table snapshot (admin status,
 * `GET /v1/pools/{pool}/table`, and the per-backend part of a preview). Control plane only: one
 * pass over the table per request (65,537 Maglev entries, or the ring's points).
 *
 * Units: Maglev owns entries (a key lands on entry `keyHash mod M`); a ring owns arcs of the 2^32
 * key space (a key lands on the first point at or after its hash, wrapping to the first point:
 * core.md "ring_hash"), so point i owns the keys (position[i-1], position[i]] and the first point
 * also owns the keys past the last one. Both are turned into runs of consecutive units with one
 * owner, which is what a strip or a ring is drawn from and what two tables are compared by.
 */
import type { BalancePolicy, Balancer } from '../core/types.js';

/** Key hashes and ring positions are 32-bit. */
const KEY_SPACE = 2 ** 32;

/** Runs listed per table at most; a longer table says `truncated` (a drawing needs no more). */
export const MAX_TABLE_RUNS = 4096;

type TableSnapshot = ReturnType<Balancer['tableSnapshot']>;

/** A run of consecutive units with one owner, in units of the table (entries or key hashes); `end` exclusive. */
interface Run {
  readonly start: number;
  readonly end: number;
  readonly id: string;
}

export interface TableOwnership {
  /** Maglev entries (M) or ring points. */
  readonly size: number;
  /** Per backend id: entries (maglev) or points (ring) it holds, and its share of the key space. */
  readonly owners: ReadonlyMap<string, { readonly count: number; readonly share: number }>;
  /** Runs as fractions of the table (maglev) or key space (ring), adjacent runs of one owner merged. */
  readonly runs: readonly { readonly start: number; readonly end: number; readonly backend: string }[];
  readonly truncated: boolean;
}

/** Ownership of a maglev or ring_hash table; null for the policies that have none. */
export function tableOwnership(policy: BalancePolicy, snapshot: TableSnapshot, idOf: (slot: number) => string | undefined): TableOwnership | null {
  const table = runsOf(policy, snapshot, idOf);
  if (table === null) return null;
  const owners = new Map<string, { count: number; share: number }>();
  for (const [id, count] of table.counts) owners.set(id, { count, share: 0 });
  for (const run of table.runs) {
    const owner = owners.get(run.id)!;
    owner.share += (run.end - run.start) / table.units;
  }
  const listed = table.runs.length > MAX_TABLE_RUNS ? table.runs.slice(0, MAX_TABLE_RUNS) : table.runs;
  return {
    size: table.size,
    owners,
    runs: listed.map((run) => ({ start: run.start / table.units, end: run.end / table.units, backend: run.id })),
    truncated: table.runs.length > MAX_TABLE_RUNS,
  };
}

/** Per backend id: share before and after, and the shares it gained from and lost to others. */
export interface ShareTransfer {
  readonly before: number;
  readonly after: number;
  readonly gained: number;
  readonly lost: number;
}

/**
 * Compares two tables of one pool unit by unit (the same walk as the core's moved share, per
 * owner): what each backend held before and after and how much changed hands. The overall moved
 * share is not computed here: that is the planner's (config/reload-plan.ts `measureChange`), so a
 * preview and `ringlb diff` say the same; Σ gained equals it.
 */
export function tableTransfer(
  policy: BalancePolicy,
  before: { readonly snapshot: TableSnapshot; readonly idOf: (slot: number) => string | undefined },
  after: { readonly snapshot: TableSnapshot; readonly idOf: (slot: number) => string | undefined },
): Map<string, ShareTransfer> | null {
  const old = runsOf(policy, before.snapshot, before.idOf);
  const next = runsOf(policy, after.snapshot, after.idOf);
  if (old === null || next === null) return null;
  const transfers = new Map<string, { before: number; after: number; gained: number; lost: number }>();
  const of = (id: string) => {
    let transfer = transfers.get(id);
    if (transfer === undefined) transfers.set(id, (transfer = { before: 0, after: 0, gained: 0, lost: 0 }));
    return transfer;
  };
  for (const id of old.counts.keys()) of(id);
  for (const id of next.counts.keys()) of(id);
  // An empty table owns nothing: every unit of the other one is gained (or lost).
  if (old.runs.length === 0 || next.runs.length === 0) {
    for (const run of old.runs) of(run.id).before += (run.end - run.start) / old.units;
    for (const run of old.runs) of(run.id).lost += (run.end - run.start) / old.units;
    for (const run of next.runs) of(run.id).after += (run.end - run.start) / next.units;
    for (const run of next.runs) of(run.id).gained += (run.end - run.start) / next.units;
    return transfers;
  }
  const units = next.units;
  let i = 0;
  let j = 0;
  let cursor = 0;
  while (i < old.runs.length && j < next.runs.length) {
    const a = old.runs[i]!;
    const b = next.runs[j]!;
    const end = Math.min(a.end, b.end);
    const share = (end - cursor) / units;
    of(a.id).before += share;
    of(b.id).after += share;
    if (a.id !== b.id) {
      of(a.id).lost += share;
      of(b.id).gained += share;
    }
    cursor = end;
    if (a.end === end) i++;
    if (b.end === end) j++;
  }
  return transfers;
}

interface Runs {
  /** Entries (maglev) or points (ring). */
  readonly size: number;
  /** Units the runs cover: M entries, or 2^32 key hashes. */
  readonly units: number;
  readonly runs: readonly Run[];
  /** Entries or points per owner. */
  readonly counts: ReadonlyMap<string, number>;
}

function runsOf(policy: BalancePolicy, snapshot: TableSnapshot, idOf: (slot: number) => string | undefined): Runs | null {
  if (policy === 'maglev') return maglevRuns(snapshot.slots, idOf);
  if (policy === 'ring_hash') return ringRuns(snapshot.slots, snapshot.positions, idOf);
  return null;
}

function ownerOf(slot: number, idOf: (slot: number) => string | undefined): string {
  // A table only references slots of the set it was built from; a hole would be a core bug, shown rather than hidden.
  return idOf(slot) ?? `slot ${slot}`;
}

function maglevRuns(slots: Int32Array, idOf: (slot: number) => string | undefined): Runs {
  const runs: Run[] = [];
  const counts = new Map<string, number>();
  let start = 0;
  let owner = '';
  for (let entry = 0; entry < slots.length; entry++) {
    const id = ownerOf(slots[entry]!, idOf);
    counts.set(id, (counts.get(id) ?? 0) + 1);
    if (entry > 0 && id !== owner) {
      runs.push({ start, end: entry, id: owner });
      start = entry;
    }
    owner = id;
  }
  if (slots.length > 0) runs.push({ start, end: slots.length, id: owner });
  return { size: slots.length, units: slots.length, runs, counts };
}

function ringRuns(slots: Int32Array, positions: Uint32Array, idOf: (slot: number) => string | undefined): Runs {
  const runs: Run[] = [];
  const counts = new Map<string, number>();
  const points = positions.length;
  const push = (start: number, end: number, id: string): void => {
    if (end <= start) return;
    const last = runs[runs.length - 1];
    if (last !== undefined && last.id === id && last.end === start) runs[runs.length - 1] = { start: last.start, end, id };
    else runs.push({ start, end, id });
  };
  if (points === 0) return { size: 0, units: KEY_SPACE, runs, counts };
  const first = ownerOf(slots[0]!, idOf);
  let from = 0;
  for (let point = 0; point < points; point++) {
    const id = point === 0 ? first : ownerOf(slots[point]!, idOf);
    counts.set(id, (counts.get(id) ?? 0) + 1);
    // Point `point` owns the keys after the previous point up to and including its own position.
    const to = positions[point]! + 1;
    push(from, to, id);
    from = to;
  }
  // Keys past the last point wrap to the first point.
  push(from, KEY_SPACE, first);
  return { size: points, units: KEY_SPACE, runs, counts };
}
