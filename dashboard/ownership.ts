/**
 * The table's ownership drawn in SVG: a ring for ring_hash (arcs of the hash circle, clockwise from
 * the top) and a strip for maglev (runs of consecutive table entries, left to right). One <path>
 * per backend, so a ring of 4096 arcs is a handful of DOM nodes.
 */
import type { PoolTable, TableRun } from './api-types.js';

const SVG = 'http://www.w3.org/2000/svg';

/**
 * Okabe–Ito's colour-blind-safe palette, then darker variants; a backend keeps its colour as long
 * as the sorted set of ids does not change before it.
 */
const PALETTE = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#d55e00', '#f0e442', '#7f7f7f', '#004c7a', '#a36f00', '#006b4f', '#8f4f77'];

export function colourOf(ids: readonly string[], id: string): string {
  const index = [...ids].sort().indexOf(id);
  return index < 0 ? '#999' : PALETTE[index % PALETTE.length]!;
}

function element<K extends keyof SVGElementTagNameMap>(name: K, attributes: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function byBackend(runs: readonly TableRun[]): Map<string, TableRun[]> {
  const groups = new Map<string, TableRun[]>();
  for (const run of runs) {
    let group = groups.get(run.backend);
    if (group === undefined) groups.set(run.backend, (group = []));
    group.push(run);
  }
  return groups;
}

/** A point on the circle of radius r around (c, c) at fraction f of a turn, clockwise from 12 o'clock. */
function polar(c: number, r: number, f: number): string {
  const angle = 2 * Math.PI * f - Math.PI / 2;
  return `${(c + r * Math.cos(angle)).toFixed(2)} ${(c + r * Math.sin(angle)).toFixed(2)}`;
}

/** An annulus sector from fraction a to b. */
function sector(c: number, outer: number, inner: number, a: number, b: number): string {
  // A full turn cannot be one arc (start = end); split it in two.
  if (b - a >= 0.9999) return sector(c, outer, inner, a, a + 0.5) + sector(c, outer, inner, a + 0.5, b);
  const large = b - a > 0.5 ? 1 : 0;
  return `M${polar(c, outer, a)}A${outer} ${outer} 0 ${large} 1 ${polar(c, outer, b)}L${polar(c, inner, b)}A${inner} ${inner} 0 ${large} 0 ${polar(c, inner, a)}Z`;
}

/**
 * The runs a table response lists cover its start only when it was cut at 4096 runs (`truncated`):
 * this says how far they reach, as a fraction of the table or circle.
 */
export function coveredFraction(table: PoolTable): number {
  const runs = table.ring ?? table.strip ?? [];
  return runs.length === 0 ? 0 : runs[runs.length - 1]!.end;
}

/**
 * The ring (ring_hash) or the strip (maglev). A truncated strip is drawn over the part its runs
 * cover, stretched to the full width (the caption says which entries); a truncated ring keeps true
 * positions and leaves the rest of the circle as track. The ring's inner band shows each
 * backend's share of the whole circle.
 */
export function drawOwnership(table: PoolTable, ids: readonly string[], title: string): SVGSVGElement {
  if (table.ring !== undefined) {
    const size = 200;
    const c = size / 2;
    const svg = element('svg', { viewBox: `0 0 ${size} ${size}`, class: 'ownership-ring', role: 'img', 'aria-label': title });
    svg.append(element('circle', { cx: c, cy: c, r: 80, class: 'ring-track' }));
    for (const [backend, runs] of byBackend(table.ring)) {
      const path = element('path', { d: runs.map((run) => sector(c, 96, 64, run.start, run.end)).join(''), fill: colourOf(ids, backend) });
      path.append(titleOf(backend, table));
      svg.append(path);
    }
    // Inside: each backend's share of the whole circle, contiguous (the arcs outside interleave).
    let start = 0;
    for (const entry of table.backends) {
      if (entry.share <= 0) continue;
      const path = element('path', { d: sector(c, 58, 44, start, Math.min(1, start + entry.share)), fill: colourOf(ids, entry.id), class: 'ring-share' });
      path.append(titleOf(entry.id, table));
      svg.append(path);
      start += entry.share;
    }
    return svg;
  }
  const width = 1000;
  const height = 40;
  const reach = table.truncated === true ? Math.max(coveredFraction(table), 1e-9) : 1;
  const x = (fraction: number): string => ((fraction / reach) * width).toFixed(2);
  const svg = element('svg', { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', class: 'ownership-strip', role: 'img', 'aria-label': title });
  for (const [backend, runs] of byBackend(table.strip ?? [])) {
    const d = runs.map((run) => `M${x(run.start)} 0H${x(run.end)}V${height}H${x(run.start)}Z`).join('');
    const path = element('path', { d, fill: colourOf(ids, backend) });
    path.append(titleOf(backend, table));
    svg.append(path);
  }
  return svg;
}

/** Every backend's share side by side, the whole table at a glance (the figure may show a part). */
export function drawShareBar(table: PoolTable, ids: readonly string[]): HTMLElement[] {
  return table.backends
    .filter((entry) => entry.share > 0)
    .map((entry) => {
      const segment = document.createElement('span');
      segment.className = 'share-segment';
      segment.style.flexGrow = String(entry.share);
      segment.style.background = colourOf(ids, entry.id);
      segment.title = `${entry.id}: ${(entry.share * 100).toFixed(2)}%`;
      return segment;
    });
}

function titleOf(backend: string, table: PoolTable): SVGTitleElement {
  const share = table.backends.find((entry) => entry.id === backend)?.share ?? 0;
  const title = element('title', {});
  title.textContent = `${backend}: ${(share * 100).toFixed(2)}% of the table`;
  return title;
}
