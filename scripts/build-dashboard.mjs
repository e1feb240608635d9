// The dashboard's build step (called by build.mjs): compiles dashboard/*.ts with its own tsconfig
// (DOM types), then writes what the admin server serves at `GET /` and under `assets/<version>/`:
//
// - dist/dashboard/*.js and style.css: the page's own code;
// - the modules of dist/src/ the page imports (the reload planner and the balancing core: the
//   same JavaScript that runs in Node), found by walking the page's import graph from app.js;
// - build/release.wasm, the core itself;
// - dist/dashboard/index.html, with the import map that puts dashboard/wasm-module.js in place of
//   src/core/wasm-module.js (the one core module that reads a file), and the asset version;
// - dist/dashboard/manifest.json: every URL the page may load → file, content type, sha256; the
//   version (a hash over all of them, so a rebuilt asset gets a new URL and may be cached forever)
//   and the import map's CSP hash.
//
// The walk fails the build when the browser graph reaches a module that is not a relative file
// (`node:fs`, a package): such a module would not load in the browser.
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import ts from 'typescript';

/** Module URL (relative to the asset root) → the module served in its place in the browser. */
const BROWSER_SUBSTITUTES = { 'src/core/wasm-module.js': 'dashboard/wasm-module.js' };
const ENTRY = 'dashboard/app.js';
const STATIC_FILES = ['dashboard/style.css'];
const WASM = 'build/release.wasm';

const CONTENT_TYPES = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.html': 'text/html; charset=utf-8',
};

/**
 * `compile(outDir)` runs tsc for dashboard/tsconfig.json into outDir. tsc also emits the src
 * modules the page imports (rootDir is the package root); those copies are dropped: the page is
 * served the ones the main build wrote to `tempDist`, byte for byte what Node runs.
 */
export function buildDashboard(root, tempDist, compile) {
  const tempOut = join(root, `.build-tmp-${process.pid}-dashboard`);
  rmSync(tempOut, { recursive: true, force: true });
  try {
    compile(tempOut);
    renameSync(join(tempOut, 'dashboard'), join(tempDist, 'dashboard'));
  } finally {
    rmSync(tempOut, { recursive: true, force: true });
  }
  for (const file of STATIC_FILES) copyFileSync(join(root, file), join(tempDist, file));

  // Asset path (as in a URL under assets/<version>/) → file on disk.
  const onDisk = (asset) => (asset.startsWith('build/') ? join(root, asset) : join(tempDist, asset));
  const modules = walkImports(ENTRY, (asset) => readFileSync(onDisk(asset), 'utf8'));
  const assets = [...modules, ...STATIC_FILES, WASM].sort();
  const files = {};
  const version = createHash('sha256');
  for (const asset of assets) {
    const bytes = readFileSync(onDisk(asset));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    version.update(asset).update('\0').update(sha256).update('\0');
    files[asset] = { file: posix.join(asset.startsWith('build/') ? '' : 'dist', asset), type: contentType(asset), sha256 };
  }
  const assetVersion = version.digest('hex').slice(0, 16);
  const base = `./assets/${assetVersion}/`;
  const importMap = JSON.stringify({
    imports: Object.fromEntries(Object.entries(BROWSER_SUBSTITUTES).map(([from, to]) => [base + from, base + to])),
  });
  const template = readFileSync(join(root, 'dashboard', 'index.html'), 'utf8');
  if (!template.includes('%IMPORT_MAP%') || !template.includes('%ASSETS%')) throw new Error('dashboard/index.html lacks %IMPORT_MAP% or %ASSETS%');
  const html = template.replace('%IMPORT_MAP%', importMap).replaceAll('%ASSETS%', base);
  writeFileSync(join(tempDist, 'dashboard', 'index.html'), html);
  const manifest = {
    version: assetVersion,
    // CSP allows the one inline script, the import map, by its hash.
    importMapHash: `sha256-${createHash('sha256').update(importMap).digest('base64')}`,
    page: { file: 'dist/dashboard/index.html', type: CONTENT_TYPES['.html'], sha256: createHash('sha256').update(html).digest('hex') },
    files,
  };
  writeFileSync(join(tempDist, 'dashboard', 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

function contentType(asset) {
  const type = CONTENT_TYPES[posix.extname(asset)];
  if (type === undefined) throw new Error(`dashboard asset ${asset}: no content type for its extension`);
  return type;
}

/** Every module the browser loads from `entry`, substitutes applied. */
function walkImports(entry, read) {
  const seen = new Set();
  const pending = [entry];
  while (pending.length > 0) {
    const asset = pending.pop();
    if (seen.has(asset)) continue;
    seen.add(asset);
    const info = ts.preProcessFile(read(asset), true, true);
    for (const { fileName: specifier } of info.importedFiles) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../')) {
        throw new Error(`the dashboard's module graph reaches "${specifier}" (imported by ${asset}); a browser cannot load it`);
      }
      let target = posix.normalize(posix.join(posix.dirname(asset), specifier));
      target = BROWSER_SUBSTITUTES[target] ?? target;
      if (target.startsWith('..')) throw new Error(`${asset} imports ${specifier}, outside the served tree`);
      pending.push(target);
    }
  }
  return [...seen];
}
