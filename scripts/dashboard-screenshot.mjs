#!/usr/bin/env node
// Takes docs/dashboard.png (1280×800) and docs/dashboard-narrow.png (390 wide) of the live
// dashboard with real traffic: `node scripts/dashboard-screenshot.mjs` after `npm run build`.
// Everything runs on 127.0.0.1 and stops at the end: named echo backends, `ringlb run` with a
// token, a bounded client loop (at most 20 s, a few hundred connections), held connections, one
// killed backend, one drained, one with an admin weight, one recovering in slow start, then
// Debian's Chromium (playwright-core) enters the token and opens a disruption preview.
import { once } from 'node:events';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';

const dist = new URL('../dist/test/helpers/', import.meta.url);
const { startNamedBackend } = await import(new URL('backends.js', dist).href);
const { startRinglb, TempDir } = await import(new URL('ringlb-process.js', dist).href);
const { adminAddress, AdminClient } = await import(new URL('admin-client.js', dist).href);
const { openBrowser } = await import(new URL('browser.js', dist).href);

const TOKEN = 'screenshot-token-0123456789abcdef';
const docs = (name) => fileURLToPath(new URL(`../docs/${name}`, import.meta.url));
const CHECK = { type: 'tcp', intervalMs: 500, timeoutMs: 500, rise: 2, fall: 2 };

const cleanups = [];
const held = [];
try {
  const backends = new Map();
  for (const name of ['web-1', 'web-2', 'web-3', 'web-4', 'cache-1', 'cache-2', 'cache-3', 'api-1', 'api-2']) {
    const backend = await startNamedBackend(name);
    backends.set(name, backend);
    cleanups.push(() => backend.close());
  }
  const entries = (names, weight = 100) => names.map((id) => ({ id, address: backends.get(id).address, weight }));
  const temp = new TempDir();
  cleanups.push(() => temp.remove());
  const config = {
    admin: { bind: '127.0.0.1:0', token: TOKEN },
    listeners: [
      { name: 'web', bind: '127.0.0.1:0', pool: 'web' },
      { name: 'cache', bind: '127.0.0.1:0', pool: 'cache' },
      { name: 'api', bind: '127.0.0.1:0', pool: 'api' },
    ],
    pools: [
      { name: 'web', balance: 'maglev', hashKey: 'source_ip_port', healthCheck: CHECK, backends: entries(['web-1', 'web-2', 'web-3', 'web-4']) },
      // ketama-style small weights: 160 points per unit, the whole ring fits the table route's 4096 arcs.
      { name: 'cache', balance: 'ring_hash', hashKey: 'source_ip_port', healthCheck: CHECK, backends: entries(['cache-1', 'cache-2', 'cache-3'], 2) },
      { name: 'api', balance: 'least_connections', slowStartMs: 60_000, healthCheck: CHECK, backends: entries(['api-1', 'api-2'], 10) },
    ],
  };
  const { ringlb, ports } = await startRinglb(temp.writeJson(config), ['web', 'cache', 'api']);
  cleanups.push(() => ringlb.kill());
  const admin = await adminAddress(ringlb);
  const api = new AdminClient(admin, TOKEN);
  cleanups.push(() => api.close());

  const once_ = (port) =>
    new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.on('data', () => socket.end());
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
    });
  const hold = async (port, count) => {
    for (let i = 0; i < count; i += 1) {
      const socket = connect({ host: '127.0.0.1', port });
      socket.on('error', () => socket.destroy());
      held.push(socket);
      await once(socket, 'data');
    }
  };
  // A bounded loop: at most `count` connections, stopping at `untilMs` whatever happens.
  const traffic = async (count, untilMs) => {
    const deadline = Date.now() + untilMs;
    for (let i = 0; i < count && Date.now() < deadline; i += 1) {
      await Promise.all([once_(ports.get('web')), once_(ports.get('cache')), i % 3 === 0 ? once_(ports.get('api')) : null]);
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
  };

  await hold(ports.get('web'), 24);
  await hold(ports.get('cache'), 9);
  await hold(ports.get('api'), 5);
  await traffic(150, 6000);
  // A backend dies, one is drained, one carries an admin weight, one recovers into slow start.
  await backends.get('web-4').close();
  await api.request('PATCH', '/v1/pools/cache/backends/cache-2', { body: { state: 'drain' } });
  await api.request('PATCH', '/v1/pools/web/backends/web-2', { body: { weight: 150 } });
  const api2 = backends.get('api-2');
  await api2.close();
  await ringlb.waitForLine((line) => line.msg === 'backend down' && line.id === 'api-2', 10_000);
  const revived = await startNamedBackend('api-2', { port: api2.port });
  cleanups.push(() => revived.close());
  await ringlb.waitForLine((line) => line.msg === 'backend down' && line.id === 'web-4', 10_000);

  const browser = await openBrowser({ width: 1280, height: 800 });
  cleanups.push(() => browser.close());
  const { page } = browser;
  await page.goto(`http://${admin}/`);
  await page.fill('#token-input', TOKEN);
  await page.click('#token-gate button[type="submit"]');
  await page.locator('tr[data-backend="web-4"][data-state="down"]').waitFor({ timeout: 10_000 });
  await page.locator('tr[data-backend="api-2"][data-state="up"]').waitFor({ timeout: 10_000 });
  // Rates need two refreshes with traffic between them.
  await traffic(400, 5000);
  const web = page.locator('section.pool[data-pool="web"]');
  await web.locator('details.preview > summary').click();
  await web.locator('input[data-preview-weight="web-1"]').fill('200');
  await web.locator('.preview[data-preview-state="done"]').waitFor({ timeout: 20_000 });
  await page.screenshot({ path: docs('dashboard.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300); // layout settles after the resize (a picture, not a test)
  await page.screenshot({ path: docs('dashboard-narrow.png'), fullPage: false });
  if (browser.errors.length > 0) throw new Error(`the page reported errors: ${browser.errors.join('; ')}`);
  process.stdout.write(`wrote ${docs('dashboard.png')} and dashboard-narrow.png\n`);
} finally {
  for (const socket of held) socket.destroy();
  for (const cleanup of cleanups.reverse()) await cleanup();
}
