/**
 * One pool on the page: its backends (one row each, updated in place, carrying
 * `data-backend`/`data-state` for tests and scripts), the ownership figure, and the disruption
 * preview. Rows are keyed by backend id, so a refresh never rebuilds what the operator is using
 * (a focused button, a weight being typed).
 */
import type { AdminState, PoolTable, StatusBackend, StatusPool } from './api-types.js';
import { DASH, el, formatAgo, formatCount, formatMs, formatRate, formatSeconds, setText } from './format.js';
import { colourOf, coveredFraction, drawOwnership, drawShareBar } from './ownership.js';
import { previewChange, type ProposedChange } from './preview.js';
import { formatPercent } from '../src/config/share-text.js';
import type { PoolConfig } from '../src/config/types.js';

export interface PoolActions {
  /** PATCH the backend's state or weight; resolves when the server answered (errors are shown by the app). */
  change(pool: string, id: string, change: { state?: AdminState; weight?: number }): Promise<void>;
  /** The table ownership of the pool, or null when its policy has none (409). */
  table(pool: string): Promise<PoolTable | null>;
  /** The pool's config in force for the preview, or why there is none. */
  poolConfig(pool: string): Promise<PoolConfig | string>;
}

/** Status word → icon and label; the icon and the word carry it without colour. */
const STATUS_LOOK: Record<StatusBackend['status'], { readonly icon: string; readonly label: string }> = {
  up: { icon: '●', label: 'up' },
  down: { icon: '✕', label: 'down' },
  drain: { icon: '◐', label: 'drain' },
  maint: { icon: '■', label: 'maint' },
  pending: { icon: '…', label: 'pending' },
};

const ACTIONS: readonly { readonly state: AdminState; readonly label: string; readonly hint: string }[] = [
  { state: 'drain', label: 'Drain', hint: 'no new connections; open ones continue' },
  { state: 'maint', label: 'Maint', hint: 'no new connections, no health checks' },
  { state: 'active', label: 'Activate', hint: 'take new connections again' },
];

const MAX_WEIGHT = 10_000;

interface RowCells {
  readonly row: HTMLTableRowElement;
  readonly status: HTMLElement;
  readonly statusIcon: HTMLElement;
  readonly statusLabel: HTMLElement;
  readonly statusWhy: HTMLElement;
  readonly swatch: HTMLElement;
  readonly address: HTMLElement;
  readonly override: HTMLElement;
  readonly weight: HTMLElement;
  readonly configWeight: HTMLElement;
  readonly ramp: HTMLElement;
  readonly rampBar: HTMLElement;
  readonly active: HTMLElement;
  readonly rate: HTMLElement;
  readonly connect: HTMLElement;
  readonly share: HTMLElement;
  readonly check: HTMLElement;
  readonly buttons: Map<AdminState, HTMLButtonElement>;
}

interface PreviewRow {
  readonly row: HTMLTableRowElement;
  readonly inForce: HTMLElement;
  readonly weight: HTMLInputElement;
  readonly remove: HTMLInputElement;
}

export class PoolView {
  readonly root: HTMLElement;
  readonly #name: string;
  readonly #actions: PoolActions;
  readonly #tbody: HTMLTableSectionElement;
  readonly #rows = new Map<string, RowCells>();
  readonly #previewRows = new Map<string, PreviewRow>();
  readonly #previewBody: HTMLTableSectionElement;
  readonly #moved: HTMLOutputElement;
  readonly #measure: HTMLElement;
  readonly #note: HTMLElement;
  readonly #apply: HTMLButtonElement;
  readonly #preview: HTMLElement;
  #pool: StatusPool | null = null;
  #tableKey = '';
  #previewTimer: ReturnType<typeof setTimeout> | undefined;
  #previewGeneration = 0;

  constructor(template: HTMLTemplateElement, name: string, actions: PoolActions) {
    this.#name = name;
    this.#actions = actions;
    this.root = (template.content.firstElementChild as HTMLElement).cloneNode(true) as HTMLElement;
    this.root.dataset.pool = name;
    this.root.querySelector('.pool-name')!.textContent = name;
    this.#tbody = this.root.querySelector('table.backends tbody')!;
    this.#preview = this.root.querySelector('.preview')!;
    this.#previewBody = this.root.querySelector('.preview-table tbody')!;
    this.#moved = this.root.querySelector('.preview-moved')!;
    this.#measure = this.root.querySelector('.preview-measure')!;
    this.#note = this.root.querySelector('.preview-note')!;
    this.#apply = this.root.querySelector('.preview-apply')!;
    this.#apply.addEventListener('click', () => void this.#applyWeights());
    this.root.querySelector('.preview-reset')!.addEventListener('click', () => this.#resetPreview());
    this.#preview.dataset.previewState = 'idle';
  }

  update(pool: StatusPool, rates: ReadonlyMap<string, number | null>, now: number): void {
    this.#pool = pool;
    setText(this.root.querySelector('.pool-balance')!, pool.balance.replace('_', ' '));
    (this.root.querySelector('.chip-panic') as HTMLElement).hidden = !pool.panic;
    this.root.classList.toggle('in-panic', pool.panic);
    const facts: string[] = [`${pool.backends.length} ${pool.backends.length === 1 ? 'backend' : 'backends'}`];
    if (pool.tableSize !== null) facts.push(`table ${formatCount(pool.tableSize)} ${pool.balance === 'ring_hash' ? 'points' : 'entries'}`);
    if (pool.lastRebuild !== null) facts.push(`last rebuild ${formatAgo(pool.lastRebuild.at, now)}, moved ${formatPercent(pool.lastRebuild.movedShare)}`);
    setText(this.root.querySelector('.pool-facts')!, facts.join(' · '));

    const ids = pool.backends.map((backend) => backend.id);
    const seen = new Set<string>();
    let previous: HTMLTableRowElement | null = null;
    for (const backend of pool.backends) {
      seen.add(backend.id);
      let cells = this.#rows.get(backend.id);
      if (cells === undefined) {
        cells = this.#makeRow(backend.id);
        this.#rows.set(backend.id, cells);
      }
      // Keep the server's order (by id) without moving rows that are already in place.
      const expected: ChildNode | null = previous === null ? this.#tbody.firstChild : previous.nextSibling;
      if (expected !== cells.row) this.#tbody.insertBefore(cells.row, expected);
      previous = cells.row;
      this.#fillRow(cells, backend, colourOf(ids, backend.id), rates.get(backend.id) ?? null, now);
    }
    for (const [id, cells] of this.#rows) {
      if (!seen.has(id)) {
        cells.row.remove();
        this.#rows.delete(id);
      }
    }
    this.#updatePreviewRows(pool);
    // The figure depends on membership and weights only (tables never depend on health).
    const tableKey = `${pool.balance}|${pool.lastRebuild?.at ?? ''}|${pool.backends.map((b) => `${b.id}=${b.weight}`).join(',')}`;
    if (tableKey !== this.#tableKey) {
      this.#tableKey = tableKey;
      void this.#refreshTable(tableKey, ids);
    }
  }

  #makeRow(id: string): RowCells {
    const row = el('tr');
    row.dataset.backend = id;
    const statusCell = el('td', 'cell-status');
    statusCell.dataset.label = 'Status';
    const status = el('span', 'status');
    const statusIcon = el('span', 'status-icon');
    statusIcon.setAttribute('aria-hidden', 'true');
    const statusLabel = el('span', 'status-label');
    status.append(statusIcon, statusLabel);
    const statusWhy = el('div', 'status-why');
    statusCell.append(status, statusWhy);

    const nameCell = el('td', 'cell-backend');
    nameCell.dataset.label = 'Backend';
    const swatch = el('span', 'swatch');
    swatch.setAttribute('aria-hidden', 'true');
    const idText = el('span', 'backend-id', id);
    const override = el('span', 'chip chip-override');
    const address = el('div', 'backend-address muted');
    nameCell.append(swatch, idText, override, address);

    const weightCell = el('td', 'num');
    weightCell.dataset.label = 'Weight';
    const weight = el('div', 'weight');
    const configWeight = el('div', 'config-weight muted');
    const ramp = el('div', 'ramp');
    const rampBar = el('span', 'ramp-bar');
    ramp.append(rampBar, el('span', 'ramp-text'));
    weightCell.append(weight, configWeight, ramp);

    const numberCell = (label: string): HTMLElement => {
      const cell = el('td', 'num');
      cell.dataset.label = label;
      return cell;
    };
    const active = numberCell('Active');
    const rate = numberCell('Conn/s');
    const connect = numberCell('Connect ms p50 · p90 · p99');
    const share = numberCell('Key share');
    const check = el('td', 'cell-check');
    check.dataset.label = 'Last check';

    const actionsCell = el('td', 'cell-actions');
    const group = el('div', 'actions');
    group.setAttribute('role', 'group');
    group.setAttribute('aria-label', `state of ${id}`);
    const buttons = new Map<AdminState, HTMLButtonElement>();
    for (const action of ACTIONS) {
      const button = el('button', `action action-${action.state}`, action.label);
      button.type = 'button';
      button.dataset.action = action.state;
      button.title = `${action.label} ${id}: ${action.hint}`;
      button.addEventListener('click', () => void this.#changeState(id, action.state, button));
      buttons.set(action.state, button);
      group.append(button);
    }
    actionsCell.append(group);
    row.append(statusCell, nameCell, weightCell, active, rate, connect, share, check, actionsCell);
    return { row, status, statusIcon, statusLabel, statusWhy, swatch, address, override, weight, configWeight, ramp, rampBar, active, rate, connect, share, check, buttons };
  }

  #fillRow(cells: RowCells, backend: StatusBackend, colour: string, rate: number | null, now: number): void {
    if (cells.row.dataset.state !== backend.status) cells.row.dataset.state = backend.status;
    const look = STATUS_LOOK[backend.status] ?? { icon: '?', label: backend.status };
    cells.status.className = `status status-${backend.status}`;
    setText(cells.statusIcon, look.icon);
    setText(cells.statusLabel, look.label);
    setText(cells.statusWhy, statusReason(backend));
    cells.swatch.style.background = colour;
    setText(cells.address, backend.address);
    const overridden = backend.override !== null;
    cells.override.hidden = !overridden;
    if (overridden) {
      const parts: string[] = [];
      if (backend.override!.state !== undefined) parts.push(backend.override!.state);
      if (backend.override!.weight !== undefined) parts.push(`weight ${backend.override!.weight}`);
      setText(cells.override, `admin: ${parts.join(', ')}`);
      cells.override.title = `runtime override since ${backend.override!.at}; lasts until a reload changes this backend`;
    }
    setText(cells.weight, formatCount(backend.weight));
    cells.configWeight.hidden = backend.weight === backend.configuredWeight;
    setText(cells.configWeight, `config ${formatCount(backend.configuredWeight)}`);
    const ramping = backend.slowStartPercent < 100;
    cells.ramp.hidden = !ramping;
    if (ramping) {
      cells.rampBar.style.width = `${Math.max(0, Math.min(100, backend.slowStartPercent))}%`;
      setText(cells.ramp.lastElementChild!, `slow start ${Math.round(backend.slowStartPercent)}%`);
    }
    setText(cells.active, formatCount(backend.activeConnections));
    setText(cells.rate, formatRate(rate));
    cells.rate.title = `${formatCount(backend.totalConnections)} connections in total`;
    const times = backend.connectSeconds;
    setText(cells.connect, times === null ? DASH : `${formatMs(times.p50)} · ${formatMs(times.p90)} · ${formatMs(times.p99)}`);
    setText(cells.share, backend.keyShare === null ? DASH : formatPercent(backend.keyShare));
    const check = backend.lastCheck;
    const ejected = backend.ejections > 0 ? ` · ejected ${backend.ejections}×` : '';
    if (check === null) setText(cells.check, `${DASH}${ejected}`);
    else setText(cells.check, `${check.ok ? '✓' : '✕'} ${check.ok ? formatSeconds(check.durationMs / 1000) : (check.reason ?? 'failed')} · ${formatAgo(check.at, now)}${ejected}`);
    cells.check.classList.toggle('check-failed', check !== null && !check.ok);
    for (const [state, button] of cells.buttons) {
      const current = backend.state === state;
      button.setAttribute('aria-pressed', String(current));
      if (button.dataset.busy !== 'true') button.disabled = current;
    }
  }

  async #changeState(id: string, state: AdminState, button: HTMLButtonElement): Promise<void> {
    button.dataset.busy = 'true';
    button.disabled = true;
    try {
      await this.#actions.change(this.#name, id, { state });
    } finally {
      delete button.dataset.busy;
      button.disabled = false;
    }
  }

  async #refreshTable(key: string, ids: readonly string[]): Promise<void> {
    const figure = this.root.querySelector('.ownership-figure')!;
    const legend = this.root.querySelector('.legend')!;
    let table: PoolTable | null = null;
    try {
      // Policies without a table say so in the status (tableSize null): nothing to fetch.
      if (this.#pool?.tableSize !== null) table = await this.#actions.table(this.#name);
    } catch (error) {
      if (key !== this.#tableKey) return;
      figure.replaceChildren(el('p', 'muted', `table unavailable: ${error instanceof Error ? error.message : String(error)}`));
      this.#tableKey = ''; // try again on the next refresh
      return;
    }
    if (key !== this.#tableKey) return; // a newer refresh is on its way
    if (table === null) {
      figure.replaceChildren();
      this.root.querySelector('.share-bar')!.replaceChildren();
      this.root.querySelector('.ownership-caption')!.textContent = `${(this.#pool?.balance ?? 'this policy').replace('_', ' ')} keeps no table: connections follow weights, not keys.`;
      legend.replaceChildren();
      return;
    }
    const kind = table.ring !== undefined ? 'ring' : 'strip';
    figure.replaceChildren(drawOwnership(table, ids, `${this.#name}: ownership of the ${kind === 'ring' ? 'hash ring' : 'Maglev table'}`));
    this.root.querySelector('.share-bar')!.replaceChildren(...drawShareBar(table, ids));
    this.root.classList.toggle('has-ring', kind === 'ring');
    const caption = this.root.querySelector('.ownership-caption')!;
    const covered = coveredFraction(table);
    if (kind === 'ring') {
      caption.textContent = table.truncated === true
        ? `Outside: the hash circle clockwise from the top, its first ${table.ring!.length} arcs (${formatPercent(covered)} of the circle). Inside: every backend's share.`
        : `Outside: the hash circle clockwise from the top, ${formatCount(table.size)} points. Inside: every backend's share.`;
    } else {
      const last = Math.round(covered * table.size);
      caption.textContent = table.truncated === true
        ? `Above: every backend's share. Strip: entries 0–${formatCount(last)} of ${formatCount(table.size)} in table order (first ${table.strip!.length} runs).`
        : `Above: every backend's share. Strip: all ${formatCount(table.size)} entries in table order.`;
    }
    const items = table.backends.map((entry) => {
      const item = el('li');
      const swatch = el('span', 'swatch');
      swatch.style.background = colourOf(ids, entry.id);
      item.append(swatch, el('span', 'legend-id', entry.id), el('span', 'legend-share num', formatPercent(entry.share)));
      return item;
    });
    legend.replaceChildren(...items);
  }

  // --- disruption preview ---

  #updatePreviewRows(pool: StatusPool): void {
    const seen = new Set<string>();
    let changed = false;
    for (const backend of pool.backends) {
      seen.add(backend.id);
      let row = this.#previewRows.get(backend.id);
      if (row === undefined) {
        row = this.#makePreviewRow(backend);
        this.#previewRows.set(backend.id, row);
        this.#previewBody.append(row.row);
        changed = true;
      }
      const inForce = String(backend.weight);
      if (row.inForce.textContent !== inForce) {
        row.inForce.textContent = inForce;
        changed = true;
        if (row.weight.dataset.dirty !== 'true') row.weight.value = inForce;
      }
    }
    for (const [id, row] of this.#previewRows) {
      if (!seen.has(id)) {
        row.row.remove();
        this.#previewRows.delete(id);
        changed = true;
      }
    }
    if (changed) this.#schedulePreview();
  }

  #makePreviewRow(backend: StatusBackend): PreviewRow {
    const row = el('tr');
    row.dataset.previewBackend = backend.id;
    const inForce = el('td', 'num', String(backend.weight));
    const weight = el('input', 'preview-weight');
    weight.type = 'number';
    weight.min = '0';
    weight.max = String(MAX_WEIGHT);
    weight.step = '1';
    weight.inputMode = 'numeric';
    weight.value = String(backend.weight);
    weight.dataset.previewWeight = backend.id;
    weight.setAttribute('aria-label', `new weight of ${backend.id}`);
    weight.addEventListener('input', () => {
      weight.dataset.dirty = 'true';
      this.#schedulePreview();
    });
    const remove = el('input', 'preview-remove');
    remove.type = 'checkbox';
    remove.dataset.previewRemove = backend.id;
    remove.setAttribute('aria-label', `remove ${backend.id}`);
    remove.addEventListener('change', () => {
      row.classList.toggle('removed', remove.checked);
      weight.disabled = remove.checked;
      this.#schedulePreview();
    });
    const weightCell = el('td');
    weightCell.append(weight);
    const removeCell = el('td');
    removeCell.append(remove);
    row.append(el('td', 'backend-id', backend.id), inForce, weightCell, removeCell);
    return { row, inForce, weight, remove };
  }

  /** The proposal in the inputs, or the first problem with it. */
  #proposal(): ProposedChange | string {
    const weights = new Map<string, number>();
    const removed = new Set<string>();
    for (const [id, row] of this.#previewRows) {
      if (row.remove.checked) {
        removed.add(id);
        continue;
      }
      const text = row.weight.value.trim();
      const value = Number(text);
      const ok = text !== '' && Number.isInteger(value) && value >= 0 && value <= MAX_WEIGHT;
      row.weight.setAttribute('aria-invalid', String(!ok));
      if (!ok) return `weight of ${id} must be an integer 0..${MAX_WEIGHT}`;
      if (value !== Number(row.inForce.textContent)) weights.set(id, value);
    }
    return { weights, removed };
  }

  #schedulePreview(): void {
    // Marked at once, computed a moment later: typing "150" builds one table, not three.
    this.#preview.dataset.previewState = 'pending';
    clearTimeout(this.#previewTimer);
    this.#previewTimer = setTimeout(() => void this.#computePreview(), 120);
  }

  async #computePreview(): Promise<void> {
    const generation = ++this.#previewGeneration;
    const pool = this.#pool;
    if (pool === null) return;
    const proposal = this.#proposal();
    if (typeof proposal === 'string') {
      this.#showPreview('error', proposal);
      return;
    }
    let config: PoolConfig | string;
    try {
      config = await this.#actions.poolConfig(this.#name);
    } catch (error) {
      // The core could not be fetched or compiled: say so; the next edit tries again.
      config = `the core did not load: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (generation !== this.#previewGeneration) return;
    if (typeof config === 'string') {
      this.#showPreview('error', `preview unavailable: ${config}`);
      return;
    }
    let outcome;
    try {
      outcome = previewChange(config, pool.backends, proposal);
    } catch (error) {
      this.#showPreview('error', `preview failed: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    this.#moved.value = formatPercent(outcome.movedShare);
    this.#moved.dataset.movedShare = String(outcome.movedShare);
    setText(this.#measure, outcome.measure === 'keys' ? 'of the key space moves' : 'of the traffic share shifts');
    const notes: string[] = [];
    if (!outcome.changed) notes.push('No change from the set in force.');
    else notes.push(`Computed in this browser by ringlb's core, as \`ringlb diff\` computes it. Nothing is applied until you press Apply.`);
    if (proposal.removed.size > 0) notes.push('Removing a backend is a config or discovery change: edit the config and reload (ringlb diff shows the same figure).');
    this.#apply.disabled = proposal.weights.size === 0;
    this.#note.textContent = notes.join(' ');
    this.#preview.dataset.previewState = 'done';
  }

  #showPreview(state: 'error', note: string): void {
    this.#moved.value = DASH;
    delete this.#moved.dataset.movedShare;
    this.#note.textContent = note;
    this.#apply.disabled = true;
    this.#preview.dataset.previewState = state;
  }

  async #applyWeights(): Promise<void> {
    const proposal = this.#proposal();
    if (typeof proposal === 'string') return;
    this.#apply.disabled = true;
    for (const [id, weight] of proposal.weights) {
      await this.#actions.change(this.#name, id, { weight });
      const row = this.#previewRows.get(id);
      if (row !== undefined) delete row.weight.dataset.dirty;
    }
  }

  #resetPreview(): void {
    for (const row of this.#previewRows.values()) {
      delete row.weight.dataset.dirty;
      row.weight.value = row.inForce.textContent ?? '';
      row.weight.disabled = false;
      row.remove.checked = false;
      row.row.classList.remove('removed');
    }
    this.#schedulePreview();
  }
}

/** Why a backend is not plainly up: the failed check's reason, or its flags. */
function statusReason(backend: StatusBackend): string {
  if (backend.status === 'up') return backend.routable ? '' : 'not routable';
  if (backend.status === 'down' && backend.lastCheck !== null && !backend.lastCheck.ok && backend.lastCheck.reason) return backend.lastCheck.reason;
  const flags = backend.flags.filter((flag) => flag !== backend.status);
  const text = flags.map((flag) => flag.replaceAll('_', ' ')).join(', ');
  if (backend.routable && backend.status !== 'drain' && backend.status !== 'maint' && backend.status !== 'pending') return text === '' ? 'routable (panic)' : `${text}; routable (panic)`;
  return text;
}
