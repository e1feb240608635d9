/**
 * DashboardAssets, the admin server's public files, over a package root built in a temp dir: what
 * is served (only the manifest's files, under the current version), with which headers, 304 on a
 * matching ETag, and what happens when the tree is not built or does not match its manifest.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { DashboardAssets } from '../src/admin/dashboard-assets.js';

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');

/** A package root with a page, one script and a wasm file; returns its URL and a writer for files. */
function packageRoot(): { url: URL; write(file: string, content: string | Buffer): void; writeManifest(overrides?: Record<string, string>): void } {
  const root = mkdtempSync(join(tmpdir(), 'ringlb-assets-'));
  roots.push(root);
  const contents = new Map<string, string | Buffer>();
  const write = (file: string, content: string | Buffer): void => {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), content);
    contents.set(file, content);
  };
  write('dist/dashboard/index.html', '<!doctype html><title>ringlb</title>');
  write('dist/dashboard/app.js', 'export {};\n');
  write('build/release.wasm', Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  const writeManifest = (overrides: Record<string, string> = {}): void => {
    const entry = (file: string, type: string) => ({ file, type, sha256: overrides[file] ?? sha256(contents.get(file)!) });
    const manifest = {
      version: 'v1',
      importMapHash: 'sha256-AAAA',
      page: entry('dist/dashboard/index.html', 'text/html; charset=utf-8'),
      files: {
        'dashboard/app.js': entry('dist/dashboard/app.js', 'text/javascript; charset=utf-8'),
        'build/release.wasm': entry('build/release.wasm', 'application/wasm'),
      },
    };
    mkdirSync(join(root, 'dist/dashboard'), { recursive: true });
    writeFileSync(join(root, 'dist/dashboard/manifest.json'), JSON.stringify(manifest));
  };
  return { url: pathToFileURL(`${root}/`), write, writeManifest };
}

describe('dashboard assets', () => {
  test('serves the page and the manifest files with their types, CSP, nosniff and caching; nothing else', async () => {
    const root = packageRoot();
    root.writeManifest();
    const assets = new DashboardAssets(root.url);
    const page = await assets.serve('GET', '/', {});
    assert.equal(page?.status, 200);
    assert.equal(page.headers?.['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers?.['cache-control'], 'no-cache');
    assert.equal(page.headers?.['x-content-type-options'], 'nosniff');
    assert.match(page.headers?.['content-security-policy'] ?? '', /script-src 'self' 'wasm-unsafe-eval' 'sha256-AAAA'/);
    assert.equal(String(page.body), '<!doctype html><title>ringlb</title>');

    const wasm = await assets.serve('HEAD', '/assets/v1/build/release.wasm', {});
    assert.equal(wasm?.status, 200);
    assert.equal(wasm.headers?.['content-type'], 'application/wasm');
    assert.equal(wasm.headers?.['cache-control'], 'public, max-age=31536000, immutable');

    // Revalidation: the ETag itself, weak, or in a list; another tag gets the body.
    const etag = page.headers!.etag!;
    for (const header of [etag, `W/${etag}`, `"nope", ${etag}`, '*']) assert.equal((await assets.serve('GET', '/', { 'if-none-match': header }))?.status, 304, header);
    assert.equal((await assets.serve('GET', '/', { 'if-none-match': '"nope"' }))?.status, 200);

    for (const path of ['/assets/v2/dashboard/app.js', '/assets/v1/dashboard/manifest.json', '/assets/v1/../../package.json', '/assets/v1/dist/dashboard/app.js']) {
      assert.equal((await assets.serve('GET', path, {}))?.status, 404, path);
    }
    // Not public: other methods, other paths (auth and routing apply to them).
    assert.equal(assets.serve('POST', '/', {}), undefined);
    assert.equal(assets.serve('GET', '/v1/status', {}), undefined);
    assert.equal(assets.serve('GET', '/healthz', {}), undefined);
  });

  test('not built yet: 404 naming the build; once built, served without a restart', async () => {
    const root = packageRoot();
    const assets = new DashboardAssets(root.url);
    const missing = await assets.serve('GET', '/', {});
    assert.equal(missing?.status, 404);
    assert.match(String(missing.body), /manifest\.json.*npm run build/);
    root.writeManifest();
    assert.equal((await assets.serve('GET', '/', {}))?.status, 200);
  });

  test('a file that does not match its manifest hash is refused, not served', async () => {
    const root = packageRoot();
    root.writeManifest({ 'dist/dashboard/app.js': sha256('something else') });
    const reply = await new DashboardAssets(root.url).serve('GET', '/', {});
    assert.equal(reply?.status, 404);
    assert.match(String(reply.body), /dist\/dashboard\/app\.js does not match the dashboard manifest/);
  });
});
