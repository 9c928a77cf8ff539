/** The one reader of versioned JSON files, and what each file's owner makes of its outcomes. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { defaultSettings, parseSettings } from '../../../src/config/settings.js';
import { readManifest, readRequest } from '../../../src/debian/tree.js';
import { UserError } from '../../../src/errors.js';
import { parseVersionedJson, readVersionedJson, versionedFile, writeVersionedJson } from '../../../src/fs/versioned-json.js';
import { readLastExit } from '../../../src/instance/last-exit.js';
import { instancePaths } from '../../../src/instance/paths.js';
import { readRunState } from '../../../src/instance/state.js';
import { uninstall } from '../../../src/nix/registration.js';

const pointFile = versionedFile(z.object({ version: z.literal(2), x: z.number(), label: z.string().default('none') }), 2);
const cacheFile = versionedFile(z.object({ format: z.literal(1), key: z.string() }), 1, 'format');

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lb-versioned-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('missing, ok, corrupt and newer are four distinct outcomes, and reading never throws', async () => {
  assert.deepEqual(await readVersionedJson(join(dir, 'absent.json'), pointFile), { kind: 'missing' });
  const cases: [string, string, RegExp][] = [
    ['{"version":2,"x":', 'corrupt', /^\/f\.json is not valid JSON$/],
    ['[]', 'corrupt', /^\/f\.json is invalid \(the whole file: /],
    ['{"version":2,"x":"one"}', 'corrupt', /^\/f\.json is invalid \(x: /],
    ['{"version":1,"x":1}', 'corrupt', /^\/f\.json is invalid \(version: /],
    ['{"x":1}', 'corrupt', /^\/f\.json is invalid \(version: /],
    ['{"version":3,"y":[]}', 'newer', /^\/f\.json was written by a newer linux-builder \(version 3; this one reads 2\)$/],
  ];
  for (const [text, kind, reason] of cases) {
    const read = parseVersionedJson(text, '/f.json', pointFile);
    assert.equal(read.kind, kind, text);
    assert.ok(read.kind === 'corrupt' || read.kind === 'newer');
    assert.match(read.reason, reason, text);
  }
  assert.deepEqual(parseVersionedJson('{"version":2,"x":1}', '/f.json', pointFile), { kind: 'ok', value: { version: 2, x: 1, label: 'none' } });
  assert.equal(parseVersionedJson('{"format":2,"key":"k"}', '/c.json', cacheFile).kind, 'newer', 'cache metadata carries its version as "format"');
});

test('an unreadable file is corrupt, naming the file and why', async () => {
  // a directory in the file's place: unreadable even for root
  const path = join(dir, 'a-directory.json');
  await mkdir(path);
  const read = await readVersionedJson(path, pointFile);
  assert.equal(read.kind, 'corrupt');
  assert.match(read.kind === 'corrupt' ? read.reason : '', /^cannot read .*a-directory\.json: EISDIR/);
});

test('a write is atomic, in the schema\'s layout, with the mode asked for', async () => {
  const path = join(dir, 'written.json');
  await writeVersionedJson(path, pointFile, { version: 2, x: 7, label: 'seven' }, 0o644);
  assert.equal(await readFile(path, 'utf8'), '{\n  "version": 2,\n  "x": 7,\n  "label": "seven"\n}\n');
  assert.equal((await stat(path)).mode & 0o777, 0o644);
  assert.deepEqual(await readVersionedJson(path, pointFile), { kind: 'ok', value: { version: 2, x: 7, label: 'seven' } });
  await assert.rejects(writeVersionedJson(path, pointFile, { version: 2, x: Number.NaN, label: '' }), 'a value the schema refuses is never written');
});

test('config.json: damaged and newer both fail naming the file, with the advice for each', () => {
  const path = '/state/default/config.json';
  const outcome = (text: string): UserError => {
    try {
      parseSettings(text, path);
    } catch (error) {
      assert.ok(error instanceof UserError && error.exitCode === 1);
      return error;
    }
    throw new Error(`parsed: ${text}`);
  };
  const damaged = outcome('{"version":1,"cores":');
  assert.equal(damaged.message, `${path} is not valid JSON`);
  assert.equal(damaged.hint, `fix it, or remove it to start over with defaults: rm ${path}`);
  const newer = outcome(JSON.stringify({ ...defaultSettings(), version: 2 }));
  assert.equal(newer.message, `${path} was written by a newer linux-builder (version 2; this one reads 1)`);
  assert.equal(newer.hint, `upgrade linux-builder, or remove it to start over with defaults: rm ${path}`);
});

test('state.json of a newer linux-builder is reported as unusable, with that reason', async () => {
  const path = join(dir, 'state.json');
  await writeFile(path, JSON.stringify({ version: 2, vm: {} }));
  assert.deepEqual(await readRunState(path), { kind: 'corrupt', reason: `${path} was written by a newer linux-builder (version 2; this one reads 1)` });
});

test('files that only inform or cache read as absent when damaged or newer', async () => {
  const exit = join(dir, 'last-exit.json');
  await writeFile(exit, JSON.stringify({ version: 2, pid: 1, at: 'now', requested: true, reason: 'x' }));
  assert.equal(await readLastExit(exit), null);
  const tree = join(dir, 'tree');
  await mkdir(tree);
  await writeFile(join(tree, 'manifest.json'), JSON.stringify({ format: 2, packages: 'elsewhere' }));
  assert.equal(await readManifest(tree), undefined, 'a tree of another format is fetched again, never misread');
  await writeFile(join(tree, 'manifest.json'), JSON.stringify({ format: 1, suite: 'trixie', arch: 'amd64', packages: [{ name: 'a', version: '1', sha256: 'f'.repeat(64) }] }));
  assert.equal((await readManifest(tree))?.packages[0]?.name, 'a');
  const request = join(dir, 'request.json');
  await writeFile(request, JSON.stringify({ format: 1, tree: '../../etc', mirror: 'm', released: 'r' }));
  assert.equal(await readRequest(request), undefined, 'a record must name a tree by its key');
});

test('installed.json: damaged and newer both stop an uninstall, each saying what to do by hand', async () => {
  const paths = instancePaths('nixcfg', { state: join(dir, 'nix-state'), cache: join(dir, 'nix-cache'), runtime: join(dir, 'nix-run') });
  await mkdir(paths.stateDir, { recursive: true });
  await writeFile(paths.installed, '{"version":1,"files":[');
  await assert.rejects(uninstall(paths), (error: unknown) =>
    error instanceof UserError && error.message === `${paths.installed} is corrupt` && /by hand, then: rm /.test(error.hint ?? ''));
  await writeFile(paths.installed, JSON.stringify({ version: 2, files: {} }));
  await assert.rejects(uninstall(paths), (error: unknown) =>
    error instanceof UserError && /was written by a newer linux-builder \(version 2; this one reads 1\)$/.test(error.message) && /by hand, then: rm /.test(error.hint ?? ''));
});
