/**
 * The dashboard: `GET /` on the admin server. Live from two sources: `GET /v1/status` at least
 * once a second (counters, health, connection rates from successive totals) and the event stream
 * (`GET /v1/events`, the health timeline; an event also triggers a refresh at once). With a token
 * configured the page asks for it first (admin-client.ts keeps it for this tab only).
 */
import { AdminClient, ApiError, Unauthorized } from './admin-client.js';
import type { AdminState, ConfigView, PoolTable, RinglbEvent, Status } from './api-types.js';
import { followEvents, type StreamState } from './event-stream.js';
import { el, formatClock, formatCount, formatSeconds, formatUptime, setText } from './format.js';
import { PoolView } from './pool-view.js';
import { poolConfigFrom } from './preview.js';
import { loadCoreModule } from './wasm-module.js';
import type { PoolConfig } from '../src/config/types.js';

/** The status refresh period: the contract's "≤ 1 s" (a refresh starts at most this long after the last one did). */
const STATUS_REFRESH_MS = 1000;
const MAX_EVENTS_SHOWN = 300;
const CORE_URL = new URL('../build/release.wasm', import.meta.url);

const client = new AdminClient();
const byId = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const poolTemplate = byId<HTMLTemplateElement>('pool-template');
const pools = new Map<string, PoolView>();
/** Previous total per `pool\0backend`, for connections per second between two refreshes. */
const previousTotals = new Map<string, { readonly total: number; readonly at: number }>();
const shownEvents = new Set<number>();
/**
 * The timeline item of the latest `refusals` summary per `listener\0outcome` while refusals go on:
 * the next summary replaces it, so a flood is three lines (started, the latest count, stopped), not
 * one a second pushing every health event out of the list.
 */
const latestRefusals = new Map<string, HTMLElement>();

let session: AbortController | null = null;
let wakeRefresh: (() => void) | null = null;
let configView: Promise<ConfigView | string> | null = null;
let coreLoad: Promise<void> | null = null;
let streamState: StreamState = 'connecting';
let statusOk = false;

const actions = {
  async change(pool: string, id: string, change: { state?: AdminState; weight?: number }): Promise<void> {
    try {
      await client.json('PATCH', `v1/pools/${encodeURIComponent(pool)}/backends/${encodeURIComponent(id)}`, change);
      showProblem(null, 'action');
    } catch (error) {
      reportError(error, `${pool}/${id}`);
    }
    requestRefresh();
  },
  async table(pool: string): Promise<PoolTable | null> {
    try {
      return await client.json<PoolTable>('GET', `v1/pools/${encodeURIComponent(pool)}/table`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) return null;
      throw error;
    }
  },
  async poolConfig(pool: string): Promise<PoolConfig | string> {
    coreLoad ??= loadCoreModule(CORE_URL);
    configView ??= client.json<ConfigView>('GET', 'v1/config').catch((error: unknown) => {
      configView = null; // ask again next time
      return `GET /v1/config failed: ${error instanceof Error ? error.message : String(error)}`;
    });
    const [view] = await Promise.all([configView, coreLoad.catch((error: unknown) => {
      coreLoad = null;
      throw error;
    })]);
    return typeof view === 'string' ? view : poolConfigFrom(view.config, pool);
  },
};

/**
 * One banner, two sources: the status refresh (cleared by the next good refresh) and an operator's
 * action (stays until the next action succeeds, so a refused PATCH is not wiped a second later).
 */
type ProblemSource = 'status' | 'action';
let problemSource: ProblemSource | null = null;

function showProblem(text: string | null, source: ProblemSource): void {
  if (text === null && problemSource !== source) return;
  const banner = byId('problem');
  banner.hidden = text === null;
  problemSource = text === null ? null : source;
  if (text !== null) setText(banner, text);
}

function reportError(error: unknown, what: string): void {
  if (error instanceof Unauthorized) {
    askForToken(error);
    return;
  }
  showProblem(`${what}: ${error instanceof Error ? error.message : String(error)}`, 'action');
}

function setLive(): void {
  const live = byId('live');
  const state = !statusOk ? 'offline' : streamState === 'live' ? 'live' : streamState;
  live.dataset.live = state;
  setText(live.querySelector('.live-text')!, state === 'live' ? 'live' : state === 'offline' ? 'offline' : state === 'connecting' ? 'connecting' : 'events reconnecting');
}

// --- token ---

function askForToken(error: Unauthorized | null): void {
  session?.abort();
  session = null;
  const gate = byId<HTMLFormElement>('token-gate');
  const message = byId('token-error');
  if (error !== null && error.reason === 'invalid') {
    client.forgetToken();
    message.hidden = false;
    setText(message, 'That token was not accepted. Check it and try again.');
  } else {
    message.hidden = true;
  }
  byId('overview').hidden = true;
  gate.hidden = false;
  byId<HTMLInputElement>('token-input').focus();
}

byId<HTMLFormElement>('token-gate').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = byId<HTMLInputElement>('token-input');
  const token = input.value.trim();
  if (token === '') return;
  client.setToken(token);
  input.value = '';
  byId('token-gate').hidden = true;
  start();
});

// --- status ---

function requestRefresh(): void {
  wakeRefresh?.();
}

async function refreshLoop(signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const started = performance.now();
    try {
      const status = await client.json<Status>('GET', 'v1/status', undefined, signal);
      if (signal.aborted) return;
      statusOk = true;
      render(status);
      showProblem(null, 'status');
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof Unauthorized) {
        askForToken(error);
        return;
      }
      statusOk = false;
      showProblem(`admin API unreachable: ${error instanceof Error ? error.message : String(error)}`, 'status');
    }
    setLive();
    const wait = Math.max(0, STATUS_REFRESH_MS - (performance.now() - started));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      wakeRefresh = () => {
        clearTimeout(timer);
        resolve();
      };
      signal.addEventListener('abort', () => wakeRefresh?.(), { once: true });
    });
    wakeRefresh = null;
  }
}

function render(status: Status): void {
  byId('token-gate').hidden = true;
  byId('overview').hidden = false;
  const now = Date.now();
  setText(byId('version'), `v${status.version}`);
  renderProcess(status, now);
  renderListeners(status);
  const container = byId('pools');
  const names = new Set(status.pools.map((pool) => pool.name));
  for (const [name, view] of pools) {
    if (!names.has(name)) {
      view.root.remove();
      pools.delete(name);
    }
  }
  for (const pool of status.pools) {
    let view = pools.get(pool.name);
    if (view === undefined) {
      view = new PoolView(poolTemplate, pool.name, actions);
      pools.set(pool.name, view);
    }
    if (view.root.parentElement !== container || container.lastElementChild !== view.root) container.append(view.root);
    view.update(pool, ratesOf(pool.name, pool.backends, now), now);
  }
}

function ratesOf(pool: string, backends: Status['pools'][number]['backends'], now: number): Map<string, number | null> {
  const rates = new Map<string, number | null>();
  for (const backend of backends) {
    const key = `${pool}\0${backend.id}`;
    const previous = previousTotals.get(key);
    // A total that went down (a backend that left and came back) starts a new series.
    const seconds = previous === undefined ? 0 : (now - previous.at) / 1000;
    rates.set(backend.id, previous === undefined || seconds <= 0 || backend.totalConnections < previous.total ? null : (backend.totalConnections - previous.total) / seconds);
    previousTotals.set(key, { total: backend.totalConnections, at: now });
  }
  return rates;
}

function renderProcess(status: Status, now: number): void {
  const facts: [string, string, string?][] = [
    ['pid', String(status.pid)],
    ['workers', String(status.workers)],
    ['up', formatUptime(status.startedAt, now), status.startedAt],
    ['config', status.config.path === null ? 'embedded' : (status.config.path.split('/').at(-1) ?? status.config.path), status.config.path ?? undefined],
    ['loaded', formatClock(status.config.loadedAt), status.config.loadedAt],
  ];
  const list = byId('process');
  if (list.childElementCount !== facts.length) {
    list.replaceChildren(...facts.map(([term]) => {
      const group = el('div', 'fact');
      group.append(el('dt', '', term), el('dd'));
      return group;
    }));
  }
  facts.forEach(([, value, title], index) => {
    const dd = list.children[index]!.lastElementChild as HTMLElement;
    setText(dd, value);
    if (title !== undefined) dd.title = title;
  });
}

function renderListeners(status: Status): void {
  const grid = byId('listeners');
  const cards = status.listeners.map((listener) => {
    const ok = listener.connections.ok ?? 0;
    const failed = Object.entries(listener.connections).reduce((sum, [outcome, count]) => (outcome === 'ok' ? sum : sum + count), 0);
    const card = el('div', 'listener');
    card.dataset.listener = listener.name;
    const head = el('div', 'listener-head');
    head.append(el('strong', '', listener.name), el('span', 'muted', ` ${listener.bind} → ${listener.pool}`));
    const numbers = el('div', 'listener-numbers');
    const figure = (value: string, label: string, tone = ''): HTMLElement => {
      const box = el('div', `figure ${tone}`);
      box.append(el('span', 'figure-value', value), el('span', 'figure-label', label));
      return box;
    };
    numbers.append(figure(formatCount(listener.activeConnections), 'active'), figure(formatCount(ok), 'ok'), figure(formatCount(failed), 'failed', failed > 0 ? 'tone-bad' : ''));
    const outcomes = Object.entries(listener.connections).filter(([outcome, count]) => outcome !== 'ok' && count > 0);
    card.title = outcomes.length === 0 ? 'no failed connections' : outcomes.map(([outcome, count]) => `${outcome}: ${count}`).join(', ');
    card.append(head, numbers);
    return card;
  });
  grid.replaceChildren(...cards);
}

// --- events ---

const EVENT_LOOK: Record<string, { readonly icon: string; readonly tone: string }> = {
  down: { icon: '✕', tone: 'bad' },
  up: { icon: '●', tone: 'good' },
  ejected: { icon: '⏏', tone: 'bad' },
  unejected: { icon: '↩', tone: 'good' },
  panic_entered: { icon: '⚠', tone: 'bad' },
  panic_left: { icon: '✓', tone: 'good' },
  backend_added: { icon: '+', tone: 'neutral' },
  backend_removed: { icon: '−', tone: 'neutral' },
  state_changed: { icon: '◐', tone: 'warn' },
  weight_changed: { icon: '⚖', tone: 'neutral' },
  reload: { icon: '↻', tone: 'neutral' },
  refusals_started: { icon: '⛔', tone: 'warn' },
  refusals: { icon: '⛔', tone: 'warn' },
  refusals_stopped: { icon: '✓', tone: 'good' },
  fds_exhausted: { icon: '⚠', tone: 'bad' },
  fds_recovered: { icon: '✓', tone: 'good' },
};

function describeEvent(event: RinglbEvent): string {
  switch (event.type) {
    case 'state_changed':
      return `state ${event.from ?? '?'} → ${event.to ?? '?'}`;
    case 'weight_changed':
      return `weight ${event.previousWeight ?? '?'} → ${event.weight ?? '?'}`;
    case 'reload':
      return `reload ${event.result ?? ''}`.trim();
    case 'panic_entered':
      return 'panic entered: health ignored';
    case 'panic_left':
      return 'panic left';
    case 'backend_added':
      return 'added';
    case 'backend_removed':
      return 'removed';
    case 'unejected':
      return 'ejection ended';
    case 'refusals_started':
      return `refusing ${event.outcome ?? ''}: ${formatCount(event.count ?? 0)}`;
    case 'refusals':
      return `refusing ${event.outcome ?? ''}: ${formatCount(event.count ?? 0)} in ${formatSeconds(event.intervalMs === undefined ? undefined : event.intervalMs / 1000)}`;
    case 'refusals_stopped':
      return `no more ${event.outcome ?? ''}`;
    case 'fds_exhausted':
      return `out of file descriptors: accepting paused, ${event.count ?? 0} refused`;
    case 'fds_recovered':
      return 'file descriptors available: accepting again';
    default:
      return event.type;
  }
}

function showEvent(event: RinglbEvent): void {
  if (shownEvents.has(event.id)) return;
  shownEvents.add(event.id);
  const look = EVENT_LOOK[event.type] ?? { icon: '•', tone: 'neutral' };
  const item = el('li', `event tone-${look.tone}`);
  item.dataset.eventType = event.type;
  item.dataset.eventId = String(event.id);
  const time = el('time', 'event-time', formatClock(event.time));
  time.dateTime = event.time;
  const icon = el('span', 'event-icon', look.icon);
  icon.setAttribute('aria-hidden', 'true');
  // Refusal and descriptor events are about a listener, not a pool.
  const subject = [event.listener === undefined ? undefined : `listener ${event.listener}`, event.pool, event.backend].filter((part) => part !== undefined).join(' / ');
  const what = el('span', 'event-what');
  if (subject !== '') what.append(el('strong', '', subject), ' ');
  what.append(describeEvent(event));
  const details = [event.cause, event.message, event.total === undefined ? undefined : `${formatCount(event.total)} in all`, event.until === undefined ? undefined : `until ${formatClock(event.until)}`, event.source === undefined ? undefined : `by ${event.source}`]
    .filter((part): part is string => part !== undefined && part !== '');
  item.append(time, icon, what);
  if (details.length > 0) item.append(el('span', 'event-detail muted', details.join(' · ')));
  const list = byId('events');
  if (event.type.startsWith('refusals')) {
    const key = `${event.listener ?? ''}\0${event.outcome ?? ''}`;
    if (event.type === 'refusals') {
      latestRefusals.get(key)?.remove();
      latestRefusals.set(key, item);
    } else latestRefusals.delete(key);
  }
  // Newest first; replayed history arrives oldest first, so each goes on top.
  list.prepend(item);
  while (list.childElementCount > MAX_EVENTS_SHOWN) list.lastElementChild!.remove();
  byId('events-empty').hidden = true;
  if (event.type === 'reload') configView = null; // the preview reads the new config
  requestRefresh();
}

// --- start ---

function start(): void {
  session?.abort();
  session = new AbortController();
  const { signal } = session;
  shownEvents.clear();
  latestRefusals.clear();
  byId('events').replaceChildren();
  byId('events-empty').hidden = false;
  void refreshLoop(signal);
  void followEvents(client, {
    signal,
    onEvent: showEvent,
    onState: (state, detail) => {
      streamState = state;
      setLive();
      if (detail !== undefined) byId('live').title = detail;
    },
    onUnauthorized: (error) => askForToken(error),
  });
}

start();
