import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createFileSource, type FileSourceOptions } from '../src/discovery/file-source.js';
import type { DiscoverySource } from '../src/discovery/types.js';
import { DiscoveryRecorder, describeSet } from './helpers/discovery-recorder.js';

let directory = '';
const sources: DiscoverySource[] = [];

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'ringlb-discovery-file-'));
});
after(async () => {
  await Promise.all(sources.map((source) => source.stop()));
  await rm(directory, { recursive: true, force: true });
});

let fileCounter = 0;
function freshPath(): string {
  fileCounter += 1;
  return join(directory, `backends-${fileCounter}.json`);
}

function startSource(options: FileSourceOptions): DiscoveryRecorder {
  const source = createFileSource(options);
  sources.push(source);
  const recorder = new DiscoveryRecorder();
  source.start(recorder);
  return recorder;
}

const list = (...ports: number[]): string => JSON.stringify(ports.map((port) => ({ address: `127.0.0.1:${port}` })));

describe('file discovery', () => {
  test('reads at start, then every write and every atomic replace (editor save)', async () => {
    const path = freshPath();
    await writeFile(path, JSON.stringify([{ address: '127.0.0.1:9002', weight: 2 }, { address: '127.0.0.1:9001', id: 'b1', state: 'drain' }]));
    const recorder = startSource({ path });
    const first = await recorder.next('update');
    assert.deepEqual(describeSet(first.backends), ['127.0.0.1:9002=127.0.0.1:9002/2/active', 'b1=127.0.0.1:9001/1/drain']);

    await writeFile(path, list(9003));
    assert.deepEqual(describeSet((await recorder.next('update')).backends), ['127.0.0.1:9003=127.0.0.1:9003/1/active']);

    // Atomic replace twice: the directory watch survives the old inode going away.
    for (const port of [9004, 9005]) {
      await writeFile(`${path}.tmp`, list(port, 9001));
      await rename(`${path}.tmp`, path);
      const update = await recorder.next('update');
      assert.deepEqual(update.backends.map((backend) => backend.address.port), [9001, port]);
    }
    assert.equal(recorder.events.filter((event) => event.type === 'error').length, 0);
  });

  test('identical content is no update', async () => {
    const path = freshPath();
    await writeFile(path, list(9001));
    const recorder = startSource({ path });
    await recorder.next('update');
    // Same set in another order and spelling, then a real change: the next update is the change.
    await writeFile(path, JSON.stringify([{ address: '127.0.0.1:9001', weight: 1, state: 'active' }]));
    await writeFile(path, list(9001));
    await writeFile(path, list(9001, 9002));
    const update = await recorder.next('update');
    assert.deepEqual(update.backends.map((backend) => backend.address.port), [9001, 9002]);
    assert.deepEqual(recorder.pending(), []);
  });

  test('a bad file is refused naming the entry; the last good set stays; a fix recovers', async () => {
    const path = freshPath();
    await writeFile(path, list(9001, 9002));
    const recorder = startSource({ path });
    await recorder.next('update');

    await writeFile(path, JSON.stringify([{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2' }, { address: '127.0.0.1:3', weight: 1.5 }]));
    const error = await recorder.next('error');
    assert.equal(error.error.message, `file ${path}: [2].weight: must be an integer 0..10000, got 1.5`);

    await writeFile(path, '[{"address": "127.0.0.1:9001"');
    const syntax = await recorder.next('error');
    assert.match(syntax.error.message, new RegExp(`^file ${path}: not valid JSON: `));

    await writeFile(path, list(9003));
    await recorder.next('recovered');
    const update = await recorder.next('update');
    assert.deepEqual(update.backends.map((backend) => backend.address.port), [9003]);
    // No update was ever sent for the bad contents.
    assert.equal(recorder.events.filter((event) => event.type === 'update').length, 2);
  });

  test('the same error is reported once; a missing file at start recovers when it appears', async () => {
    const path = freshPath();
    const recorder = startSource({ path, pollIntervalMs: 30 });
    const error = await recorder.next('error');
    assert.match(error.error.message, /cannot read \(ENOENT\)/);
    await writeFile(path, list(9001));
    await recorder.next('recovered');
    await recorder.next('update');
    assert.equal(recorder.events.filter((event) => event.type === 'error').length, 1, 'polls while missing must not repeat the error');

    await rm(path);
    assert.match((await recorder.next('error')).error.message, /ENOENT/);
  });

  test('without fs.watch the poll alone notices changes (mtime, size, inode)', async () => {
    const path = freshPath();
    await writeFile(path, list(9001));
    const recorder = startSource({ path, watch: false, pollIntervalMs: 40 });
    await recorder.next('update');
    await writeFile(`${path}.tmp`, list(9002));
    await rename(`${path}.tmp`, path);
    const update = await recorder.next('update', 2000);
    assert.deepEqual(update.backends.map((backend) => backend.address.port), [9002]);
  });

  test('stop() is idempotent and nothing is reported after it', async () => {
    const path = freshPath();
    await writeFile(path, list(9001));
    const source = createFileSource({ path, pollIntervalMs: 20 });
    const recorder = new DiscoveryRecorder();
    source.start(recorder);
    await recorder.next('update');
    await source.stop();
    await source.stop();
    await writeFile(path, list(9002));
    // Wait long enough for a debounce (50 ms) and several polls (20 ms) to have fired if alive.
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.deepEqual(recorder.pending(), []);
  });

  test('bad options are refused at construction', () => {
    assert.throws(() => createFileSource({ path: '' }), /path must be a non-empty string/);
  });
});
