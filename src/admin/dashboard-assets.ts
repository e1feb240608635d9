/**
 * The dashboard's files as the admin server serves them: `GET /` (the page) and
 * `GET /assets/<version>/<path>` (its code, stylesheet and the WASM core). scripts/build-dashboard.mjs
 * writes dist/dashboard/manifest.json, the list of exactly these files with their content types and
 * hashes; nothing else under dist/ or build/ is reachable.
 *
 * They are served without the bearer token: they hold no data (every figure comes from the API
 * routes, which keep their auth), and a browser cannot attach a token to the page load itself.
 *
 * Caching: asset URLs carry the build's version (a hash over every asset), so an asset is cached
 * for a year as immutable and a rebuild changes its URL; the page itself is revalidated on every
 * load (`no-cache` + ETag → 304). The files are read and checked against their hashes once, on the
 * first request, and served from memory after that.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { AdminResponse } from './router.js';
import type { PublicFiles } from './server.js';

interface ManifestEntry {
  /** Relative to the package root. */
  readonly file: string;
  readonly type: string;
  readonly sha256: string;
}

interface Manifest {
  readonly version: string;
  readonly importMapHash: string;
  readonly page: ManifestEntry;
  readonly files: Readonly<Record<string, ManifestEntry>>;
}

interface LoadedFile {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

interface Loaded {
  readonly page: LoadedFile;
  /** `/assets/<version>/<path>` → file. */
  readonly assets: ReadonlyMap<string, LoadedFile>;
  readonly csp: string;
}

/** dist/src/admin/dashboard-assets.js → the package root. */
const PACKAGE_ROOT = new URL('../../../', import.meta.url);

const YEAR_SECONDS = 365 * 24 * 3600;

/**
 * Same origin only; the one inline script is the import map, allowed by its hash;
 * 'wasm-unsafe-eval' lets the page compile the core (CSP Level 3), nothing lets it eval JavaScript.
 */
function contentSecurityPolicy(importMapHash: string): string {
  return [
    "default-src 'none'",
    `script-src 'self' 'wasm-unsafe-eval' '${importMapHash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export class DashboardAssets implements PublicFiles {
  readonly #root: URL;
  #loaded: Promise<Loaded | Error> | null = null;

  /** `root`: the package root holding dist/ and build/ (default: where this module was built to). */
  constructor(root: URL = PACKAGE_ROOT) {
    this.#root = root;
  }

  serve(method: string, path: string, headers: IncomingHttpHeaders): Promise<AdminResponse> | undefined {
    if (method !== 'GET' && method !== 'HEAD') return undefined;
    if (path !== '/' && !path.startsWith('/assets/')) return undefined;
    return this.#respond(path, headers);
  }

  async #respond(path: string, headers: IncomingHttpHeaders): Promise<AdminResponse> {
    this.#loaded ??= this.#load().catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
    const loaded = await this.#loaded;
    if (loaded instanceof Error) {
      // Not cached: a build finished after ringlb started is served at the next request.
      this.#loaded = null;
      return errorResponse(404, `the dashboard is not available: ${loaded.message}`, path);
    }
    const file = path === '/' ? loaded.page : loaded.assets.get(path);
    if (file === undefined) return errorResponse(404, `no dashboard asset ${path}`, path);
    const common = {
      'content-type': file.type,
      etag: file.etag,
      'cache-control': file === loaded.page ? 'no-cache' : `public, max-age=${YEAR_SECONDS}, immutable`,
      'content-security-policy': loaded.csp,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      'cross-origin-resource-policy': 'same-origin',
    };
    if (etagMatches(headers['if-none-match'], file.etag)) return { status: 304, headers: common };
    return { status: 200, headers: common, body: file.body };
  }

  async #load(): Promise<Loaded> {
    const manifestUrl = new URL('dist/dashboard/manifest.json', this.#root);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(await readFile(manifestUrl, 'utf8')) as Manifest;
    } catch (error) {
      throw new Error(`cannot read ${manifestUrl.pathname} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); build it with npm run build`);
    }
    const page = await this.#read(manifest.page);
    const assets = new Map<string, LoadedFile>();
    for (const [asset, entry] of Object.entries(manifest.files)) assets.set(`/assets/${manifest.version}/${asset}`, await this.#read(entry));
    return { page, assets, csp: contentSecurityPolicy(manifest.importMapHash) };
  }

  async #read(entry: ManifestEntry): Promise<LoadedFile> {
    const body = await readFile(new URL(entry.file, this.#root));
    const sha256 = createHash('sha256').update(body).digest('hex');
    // A tree rebuilt or edited after its manifest was written: refuse rather than serve a mix.
    if (sha256 !== entry.sha256) throw new Error(`${entry.file} does not match the dashboard manifest; rebuild with npm run build`);
    return { body, type: entry.type, etag: `"${sha256.slice(0, 32)}"` };
  }
}

/** RFC 9110 §13.1.2: a list of entity tags or `*`; weak tags compare equal for If-None-Match. */
function etagMatches(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const text = Array.isArray(header) ? header.join(',') : header;
  if (text.trim() === '*') return true;
  return text.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

function errorResponse(status: number, error: string, path: string): AdminResponse {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'x-content-type-options': 'nosniff' },
    body: `${JSON.stringify({ error, path })}\n`,
  };
}
