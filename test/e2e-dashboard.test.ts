/**
 * The live dashboard (`GET /` on the admin server) in Debian's Chromium, against the real CLI:
 * real backends behind real listeners, tcp health checks, the bearer token configured.
 *
 * - The page asks for the token, keeps it in sessionStorage only, and then lists every backend.
 * - Drain clicked in the page: the backend takes no new connection (counted at the backend).
 * - The disruption preview (computed in the browser by the WASM core) shows the moved share
 *   `ringlb diff` prints for the same change, both for a weight change and for a removal.
 * - A killed backend's row reads `data-state="down"` within the check bounds plus 1 s.
 * - Without a browser: the page and its assets are served without the token with CSP, nosniff,
 *   content types and caching headers; every data route still needs the token.
 *
 * With two workers where this Node can run them (Node ≥ 22.12), one otherwise.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { adminAddress } from './helpers/admin-client.js';
import { openBrowser, type Browser } from './helpers/browser.js';
import { runCli, startRinglb, TempDir, type RinglbProcess } from './helpers/ringlb-process.js';
import { MULTI_WORKER } from './helpers/workers.js';

const TOKEN = 'dashboard-test-token-0123456789';
const CHECK = { type: 'tcp', intervalMs: 1000, timeoutMs: 1000, jitter: 0, rise: 1, fall: 2 } as const;
/**
 * A kill is noticed by `fall` failed checks in a row: at most `fall` × (interval × (1 + jitter) +
 * timeout) after it (a check may have just passed; each failure can take up to the timeout). The
 * page refreshes its status at least once a second: the row follows within 1 s more.
 */
const DOWN_BOUND_MS = CHECK.fall * (CHECK.intervalMs * (1 + CHECK.jitter) + CHECK.timeoutMs);
const PAGE_REFRESH_MS = 1000;
const CONNECTIONS = 30;

/**
 * A backend that greets with its name and counts the connections that sent a request line. Health
 * checks connect and close without sending, so `served` counts proxied clients only.
 */
interface CountingBackend {
  readonly name: string;
  readonly address: string;
  served(): number;
  close(): Promise<void>;
}

async function countingBackend(name: string): Promise<CountingBackend> {
  const sockets = new Set<Socket>();
  let served = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.write(`${name}\n`);
    socket.once('data', () => {
      served += 1;
      socket.end();
    });
  });
  server.listen({ host: '127.0.0.1', port: 0, backlog: 1024 });
  await once(server, 'listening');
  return {
    name,
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    served: () => served,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      if (server.listening) {
        server.close();
        await once(server, 'close');
      }
    },
  };
}

/** One client connection through a listener: sends a line, returns the name of the backend that greeted it. */
function oneConnection(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => socket.destroy(new Error(`no greeting through port ${port} within 5 s`)), 5000);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('hello\n'));
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const name = text.split('\n')[0];
      if (name) resolve(name);
      else reject(new Error(`connection through port ${port} closed without a greeting`));
    });
  });
}

async function connections(port: number, count: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < count; i += 1) {
    const name = await oneConnection(port);
    seen.set(name, (seen.get(name) ?? 0) + 1);
  }
  return seen;
}

interface HttpReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

function httpGet(address: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpReply> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)), path, method, headers, agent: false, timeout: 5000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${method} ${path}: no answer within 5 s`)));
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** The `N.NN%` (or `0%`, `<0.01%`) that `ringlb diff` prints in a pool's headline. */
function diffShareText(report: string, pool: string): string {
  const line = report.split('\n').find((text) => text.startsWith(`pool ${pool} (`));
  assert.ok(line !== undefined, `no line for pool ${pool} in:\n${report}`);
  const match = /(<?\d+(?:\.\d+)?%) of the (?:key space moves|traffic share shifts)/.exec(line);
  assert.ok(match !== null, `no moved share in ${JSON.stringify(line)}`);
  return match[1]!;
}

const temp = new TempDir();
const cleanups: Array<() => Promise<void> | void> = [];
let ringlb: RinglbProcess;
let admin: string;
let webPort: number;
let configFile: string;
interface TestConfig {
  readonly pools: ReadonlyArray<{ readonly name: string; readonly backends: readonly ConfigBackend[]; readonly [setting: string]: unknown }>;
  readonly [setting: string]: unknown;
}
interface ConfigBackend {
  readonly id: string;
  readonly address: string;
  readonly weight?: number;
}
let config: TestConfig;
const backends = new Map<string, CountingBackend>();
let browser: Browser;

before(async () => {
  for (const name of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']) {
    const backend = await countingBackend(name);
    backends.set(name, backend);
    cleanups.push(() => backend.close());
  }
  const entries = (names: readonly string[]) => names.map((name) => ({ id: name, address: backends.get(name)!.address }));
  config = {
    workers: MULTI_WORKER ? 2 : 1,
    admin: { bind: '127.0.0.1:0', token: TOKEN },
    listeners: [
      { name: 'web', bind: '127.0.0.1:0', pool: 'web' },
      { name: 'cache', bind: '127.0.0.1:0', pool: 'cache' },
      { name: 'rr', bind: '127.0.0.1:0', pool: 'rr' },
    ],
    pools: [
      // source_ip_port: every test connection comes from 127.0.0.1, the port spreads them.
      { name: 'web', balance: 'maglev', hashKey: 'source_ip_port', healthCheck: CHECK, backends: entries(['a', 'b', 'c']) },
      { name: 'cache', balance: 'ring_hash', healthCheck: CHECK, backends: entries(['d', 'e', 'f']) },
      // A weighted policy: the preview measures the traffic share that shifts.
      { name: 'rr', balance: 'round_robin', healthCheck: CHECK, backends: entries(['g', 'h']) },
    ],
  };
  configFile = temp.writeJson(config);
  const started = await startRinglb(configFile, ['web', 'cache', 'rr']);
  ringlb = started.ringlb;
  cleanups.push(() => ringlb.kill());
  webPort = started.ports.get('web')!;
  admin = await adminAddress(ringlb);
  browser = await openBrowser();
  cleanups.push(() => browser.close());
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  temp.remove();
});

describe('dashboard in Chromium', () => {
  test('with a token configured the page asks for it, keeps it in sessionStorage only, then lists every backend', async () => {
    const { page } = browser;
    await page.goto(`http://${admin}/`);
    await page.locator('#token-gate').waitFor({ state: 'visible', timeout: 10_000 });
    assert.equal(await page.locator('tr[data-backend]').count(), 0, 'no data before the token');

    await page.fill('#token-input', 'not-the-token-at-all');
    await page.click('#token-gate button[type="submit"]');
    await page.locator('#token-error').waitFor({ state: 'visible', timeout: 10_000 });

    await page.fill('#token-input', TOKEN);
    await page.click('#token-gate button[type="submit"]');
    for (const pool of config.pools) {
      for (const backend of pool.backends) {
        await page.locator(`section.pool[data-pool="${pool.name}"] tr[data-backend="${backend.id}"][data-state="up"]`).waitFor({ timeout: 10_000 });
      }
    }
    // A string: this file compiles without DOM types.
    const storage = await page.evaluate("({ session: sessionStorage.getItem('ringlb.adminToken'), local: localStorage.length, cookie: document.cookie })");
    assert.deepEqual(storage, { session: TOKEN, local: 0, cookie: '' });
    // Live over the stream: replayed history is on the timeline, the indicator says live.
    await page.locator('#live[data-live="live"]').waitFor({ timeout: 10_000 });
    assert.match((await page.locator('#process').textContent()) ?? '', new RegExp(`workers\\s*${MULTI_WORKER ? 2 : 1}`));
    assert.deepEqual(browser.errors, []);
  });

  test("the page's SSE parser (run in Chromium): line ends split across chunks, comments, multi-line data, ids", async () => {
    // The module the page loaded, imported again by its URL: the same code, not a copy.
    const chunks = [': keepalive\r', '\nid: 7\r\nevent: down\r\ndata: {"a":', '1}\r', '\n\r\n', 'data: x\ndata: y\n\n', 'id: 9\nevent: up\ndata: z\r\r'];
    const result = await browser.page.evaluate(`(async () => {
      const app = document.querySelector('script[type="module"]').src;
      const { SseParser } = await import(new URL('event-stream.js', app).href);
      const parser = new SseParser('0');
      const messages = [];
      for (const chunk of ${JSON.stringify(chunks)}) messages.push(...parser.push(chunk));
      return { messages, lastEventId: parser.lastEventId };
    })()`);
    assert.deepEqual(result, {
      messages: [
        { event: 'down', data: '{"a":1}', lastEventId: '7' },
        { event: 'message', data: 'x\ny', lastEventId: '7' },
        { event: 'up', data: 'z', lastEventId: '9' },
      ],
      lastEventId: '9',
    });
  });

  test('drain clicked in the page: the backend takes no new connections (counted at the backend)', async () => {
    const { page } = browser;
    const drained = backends.get('b')!;
    const before = await connections(webPort, CONNECTIONS);
    assert.ok((before.get('b') ?? 0) > 0, `b got none of ${CONNECTIONS} connections before the drain: ${JSON.stringify([...before])}`);

    await page.click('section.pool[data-pool="web"] tr[data-backend="b"] button[data-action="drain"]');
    await page.locator('section.pool[data-pool="web"] tr[data-backend="b"][data-state="drain"]').waitFor({ timeout: 10_000 });
    const servedAtDrain = drained.served();
    const afterDrain = await connections(webPort, CONNECTIONS);
    assert.equal(afterDrain.get('b') ?? 0, 0, `clients reached b after the drain: ${JSON.stringify([...afterDrain])}`);
    assert.equal(drained.served(), servedAtDrain, 'b accepted a client connection after the drain');
    assert.equal((afterDrain.get('a') ?? 0) + (afterDrain.get('c') ?? 0), CONNECTIONS);

    // Activate from the page: b takes connections again.
    await page.click('section.pool[data-pool="web"] tr[data-backend="b"] button[data-action="active"]');
    await page.locator('section.pool[data-pool="web"] tr[data-backend="b"][data-state="up"]').waitFor({ timeout: 10_000 });
    const again = await connections(webPort, CONNECTIONS);
    assert.ok((again.get('b') ?? 0) > 0, `b got none after activate: ${JSON.stringify([...again])}`);
    assert.deepEqual(browser.errors, []);
  });

  test('the preview shows the moved share `ringlb diff` prints: a weight change (maglev, round_robin) and a removal (ring_hash)', async () => {
    const { page } = browser;
    const cases: ReadonlyArray<{ pool: string; backend: string; weight: number | 'remove' }> = [
      { pool: 'web', backend: 'a', weight: 3 },
      { pool: 'cache', backend: 'f', weight: 'remove' },
      { pool: 'rr', backend: 'g', weight: 3 },
    ];
    for (const { pool, backend, weight } of cases) {
      const section = page.locator(`section.pool[data-pool="${pool}"]`);
      await section.locator('details.preview > summary').click();
      if (weight === 'remove') await section.locator(`input[data-preview-remove="${backend}"]`).check();
      else await section.locator(`input[data-preview-weight="${backend}"]`).fill(String(weight));
      const next = () =>
        withPool(pool, (list) => (weight === 'remove' ? list.filter((b) => b.id !== backend) : list.map((b) => (b.id === backend ? { ...b, weight } : b))));
      await section.locator('.preview[data-preview-state="done"]').waitFor({ timeout: 20_000 });
      const shown = (await section.locator('.preview-moved').textContent())?.trim();

      const diff = await runCli(['diff', configFile, temp.writeJson(next())]);
      assert.equal(diff.status.code, 0, diff.stderr);
      const printed = diffShareText(diff.stdout, pool);
      assert.equal(shown, printed, `${pool}: the page shows ${shown}, ringlb diff prints ${printed}\n${diff.stdout}`);
      assert.notEqual(printed, '0%', 'the change moves something');
      await section.locator('.preview-reset').click();
    }

    // Apply: the weight edited in the preview becomes a runtime override, shown in the row.
    const web = page.locator('section.pool[data-pool="web"]');
    await web.locator('input[data-preview-weight="a"]').fill('2');
    await web.locator('.preview[data-preview-state="done"]').waitFor({ timeout: 20_000 });
    await web.locator('.preview-apply').click();
    await web.locator('tr[data-backend="a"] .chip-override', { hasText: 'admin: weight 2' }).waitFor({ timeout: 10_000 });
    assert.equal((await web.locator('tr[data-backend="a"] .weight').textContent())?.trim(), '2');
    // The preview now measures from the weight in force: proposing it again moves nothing.
    await web.locator('.preview-reset').click();
    await web.locator('.preview[data-preview-state="done"]').waitFor({ timeout: 20_000 });
    assert.equal((await web.locator('.preview-moved').textContent())?.trim(), '0%');
    assert.deepEqual(browser.errors, []);
  });

  test(`a killed backend's row turns data-state="down" within the check bounds (${DOWN_BOUND_MS} ms) plus ${PAGE_REFRESH_MS} ms`, async () => {
    const { page } = browser;
    const row = page.locator('section.pool[data-pool="web"] tr[data-backend="c"]');
    await page.locator('section.pool[data-pool="web"] tr[data-backend="c"][data-state="up"]').waitFor({ timeout: 10_000 });
    const killedAt = Date.now();
    await backends.get('c')!.close();
    await page.locator('section.pool[data-pool="web"] tr[data-backend="c"][data-state="down"]').waitFor({ timeout: DOWN_BOUND_MS + PAGE_REFRESH_MS });
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed <= DOWN_BOUND_MS + PAGE_REFRESH_MS, `down after ${elapsed} ms`);
    assert.match((await row.locator('.status-label').textContent()) ?? '', /down/);
    // The timeline shows it too (the event stream).
    await page.locator('#events li[data-event-type="down"]').filter({ hasText: 'web / c' }).first().waitFor({ timeout: 10_000 });
    assert.deepEqual(browser.errors, []);
  });
});

function withPool(name: string, change: (list: readonly ConfigBackend[]) => readonly ConfigBackend[]): unknown {
  return { ...config, pools: config.pools.map((pool) => (pool.name === name ? { ...pool, backends: change(pool.backends) } : pool)) };
}

describe('dashboard without a token', () => {
  test('on a loopback admin without a token the page shows the data at once, no prompt', async () => {
    const local = await countingBackend('solo');
    const file = temp.writeJson({
      workers: 1,
      admin: { bind: '127.0.0.1:0' },
      listeners: [{ name: 'solo', bind: '127.0.0.1:0', pool: 'solo' }],
      pools: [{ name: 'solo', balance: 'round_robin', backends: [{ id: 'solo', address: local.address }] }],
    });
    const started = await startRinglb(file, ['solo']).catch(async (error: unknown) => {
      await local.close();
      throw error;
    });
    const tab = await browser.context.newPage();
    const tabErrors: string[] = [];
    tab.on('pageerror', (error) => tabErrors.push(error.message));
    tab.on('console', (message) => {
      if (message.type() === 'error') tabErrors.push(message.text());
    });
    try {
      await tab.goto(`http://${await adminAddress(started.ringlb)}/`);
      await tab.locator('section.pool[data-pool="solo"] tr[data-backend="solo"][data-state="up"]').waitFor({ timeout: 10_000 });
      assert.equal(await tab.locator('#token-gate').isVisible(), false);
      // round_robin keeps no table: the page says so instead of asking for one.
      assert.match((await tab.locator('section.pool[data-pool="solo"] .ownership-caption').textContent()) ?? '', /keeps no table/);
      assert.equal(await tab.evaluate('sessionStorage.length'), 0);
    } finally {
      await tab.close();
      await started.ringlb.kill();
      await local.close();
    }
    assert.deepEqual(tabErrors, []);
  });
});

describe('dashboard timeline: a listener refusing a flood', () => {
  test('started, one latest count that each summary replaces, stopped; all under "listener edge"', async () => {
    const local = await countingBackend('solo');
    const file = temp.writeJson({
      workers: 1,
      admin: { bind: '127.0.0.1:0' },
      listeners: [{ name: 'edge', bind: '127.0.0.1:0', pool: 'solo', deny: ['127.0.0.1/32'] }],
      pools: [{ name: 'solo', balance: 'round_robin', backends: [{ id: 'solo', address: local.address }] }],
    });
    const started = await startRinglb(file, ['edge']).catch(async (error: unknown) => {
      await local.close();
      throw error;
    });
    const port = started.ports.get('edge')!;
    const tab = await browser.context.newPage();
    const tabErrors: string[] = [];
    tab.on('pageerror', (error) => tabErrors.push(error.message));
    let flooding = true;
    let flood: Promise<void> = Promise.resolve();
    try {
      await tab.goto(`http://${await adminAddress(started.ringlb)}/`);
      await tab.locator('#live[data-live="live"]').waitFor({ timeout: 10_000 });
      // Denied clients, one after another, until the page shows the first summary (10 s in), then
      // 20 more and the flood stops: the rest comes as a second summary (published at the stop),
      // which must replace the first.
      let afterSummary = Number.POSITIVE_INFINITY;
      flood = (async () => {
        while (flooding && afterSummary-- > 0) {
          const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
          socket.on('error', () => undefined);
          socket.on('end', () => socket.destroy());
          await once(socket, 'close');
        }
      })();
      const summaries = tab.locator('#events li[data-event-type="refusals"]');
      await tab.locator('#events li[data-event-type="refusals_started"]').filter({ hasText: 'listener edge' }).first().waitFor({ timeout: 15_000 });
      await summaries.first().waitFor({ timeout: 25_000 });
      const firstId = await summaries.first().getAttribute('data-event-id');
      afterSummary = 20;
      await flood;
      await tab.locator(`#events li[data-event-type="refusals"]:not([data-event-id="${firstId}"])`).waitFor({ timeout: 15_000 });
      assert.equal(await summaries.count(), 1, 'one line for the latest count, not one per summary');
      assert.match((await summaries.first().textContent()) ?? '', /listener edge refusing denied: [\d,]+ in /);
      // The stop comes after 10 s without a refusal.
      await tab.locator('#events li[data-event-type="refusals_stopped"]').filter({ hasText: 'listener edge' }).waitFor({ timeout: 25_000 });
      assert.equal(await summaries.count(), 1, 'the latest count stays beside the stop');
    } finally {
      flooding = false;
      await flood;
      await tab.close();
      await started.ringlb.kill();
      await local.close();
    }
    assert.deepEqual(tabErrors, []);
  });
});

describe('dashboard files over HTTP', () => {
  test('page and assets without the token (CSP, nosniff, types, caching); data routes still need it', async () => {
    const page = await httpGet(admin, '/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['cache-control'], 'no-cache');
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval' 'sha256-[A-Za-z0-9+/=]+'/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|https?:/);
    const html = page.body.toString('utf8');
    assert.doesNotMatch(html, /(?:src|href)=["']?(?:https?:)?\/\//, 'nothing loaded from elsewhere');

    const revalidated = await httpGet(admin, '/', { 'if-none-match': String(page.headers.etag) });
    assert.equal(revalidated.status, 304);

    const base = /href="\.\/(assets\/[0-9a-f]+\/)dashboard\/style\.css"/.exec(html)?.[1];
    assert.ok(base !== undefined, html);
    const expected: Array<[string, string]> = [
      ['dashboard/app.js', 'text/javascript; charset=utf-8'],
      ['dashboard/style.css', 'text/css; charset=utf-8'],
      ['build/release.wasm', 'application/wasm'],
      ['src/core/wasm-balancer.js', 'text/javascript; charset=utf-8'],
    ];
    for (const [asset, type] of expected) {
      const reply = await httpGet(admin, `/${base}${asset}`);
      assert.equal(reply.status, 200, asset);
      assert.equal(reply.headers['content-type'], type, asset);
      assert.equal(reply.headers['cache-control'], 'public, max-age=31536000, immutable', asset);
      assert.equal(reply.headers['x-content-type-options'], 'nosniff', asset);
    }
    const wasm = await httpGet(admin, `/${base}build/release.wasm`);
    assert.deepEqual([...wasm.body.subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d], 'a WebAssembly module');
    // HEAD answers like GET, without a body.
    const head = await httpGet(admin, `/${base}dashboard/app.js`, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);

    // Only the files the page loads: not the rest of dist/ (its Node-only core module included), not another version.
    for (const path of [`/${base}src/core/wasm-module.js`, `/${base}src/config/load.js`, `/${base}../src/cli.js`, `/${base}dashboard/manifest.json`, '/assets/0000000000000000/dashboard/app.js', '/assets/']) {
      assert.equal((await httpGet(admin, path)).status, 404, path);
    }
    // Every data route keeps its auth; other methods on / are not public either.
    for (const path of ['/v1/status', '/v1/events', '/v1/config', '/v1/pools/web/table', '/healthz']) {
      assert.equal((await httpGet(admin, path)).status, 401, path);
    }
    assert.equal((await httpGet(admin, '/', {}, 'POST')).status, 401);
    assert.equal((await httpGet(admin, '/v1/status', { authorization: `Bearer ${TOKEN}` })).status, 200);
  });
});
