// `npm run test:unit` picks the test files that open no socket and start no process
// (scripts/run-tests.mjs). This pins the rule on the files it must and must not pick.
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { describe, test } from 'node:test';

interface TestSelection {
  testFiles(options: { unitOnly: boolean }): string[];
}

// dist/test/ → scripts/ at the package root.
const selection = (await import(new URL('../../scripts/run-tests.mjs', import.meta.url).href)) as TestSelection;

describe('test:unit selection', () => {
  const all = selection.testFiles({ unitOnly: false }).map((file) => basename(file));
  const unit = new Set(selection.testFiles({ unitOnly: true }).map((file) => basename(file)));

  test('end-to-end files and files that start real servers or peers are never unit tests', () => {
    const realPeers = ['soak.test.js', 'fuzz-admin.test.js', 'fuzz-config.test.js', 'admin-server.test.js', 'discovery-dns.test.js', 'discovery-etcd.test.js', 'health-checks.test.js', 'health-scheduler.test.js', 'registry-runtime.test.js'];
    for (const file of [...all.filter((name) => name.startsWith('e2e-')), ...realPeers]) {
      assert.ok(all.includes(file), `${file} exists`);
      assert.equal(unit.has(file), false, file);
    }
  });

  test('pure tests are unit tests, this file included', () => {
    for (const file of ['proxy-protocol.test.js', 'config.test.js', 'core-policies.test.js', 'core-differential.test.js', 'health-state.test.js', 'config-reference.test.js', 'test-selection.test.js']) {
      assert.equal(unit.has(file), true, file);
    }
  });
});
