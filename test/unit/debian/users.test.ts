/** Which instance holds which Debian tree, and the removal of trees none holds, against a mirror served on 127.0.0.1. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type * as openpgp from 'openpgp';
import { debianUserland, type DebianUserlandOptions } from '../../../src/debian/index.js';
import { debianCache } from '../../../src/debian/tree.js';
import { holdTreeToo } from '../../../src/debian/users.js';
import { waitForExit } from '../../../src/drivers/process.js';
import { UserError } from '../../../src/errors.js';
import { closedPort, mirrorFiles, serveMirror, sha256, testKey, type FakePackage, type Mirror } from './fixtures.js';

const packages: FakePackage[] = [
  { name: 'app', depends: 'libfoo', files: [{ name: './usr/bin/app', mode: 0o755, content: 'app' }] },
  { name: 'libfoo', files: [{ name: './usr/lib/libfoo.so.1', content: 'libfoo' }] },
  { name: 'extra', files: [{ name: './usr/bin/extra', content: 'extra' }] },
];
/** Three package sets, three trees: {app, libfoo}, {app, libfoo, extra}, {extra}. */
const sets = { app: ['app'], both: ['app', 'extra'], extra: ['extra'] } as const;

let key: { privateKey: openpgp.PrivateKey; publicKey: openpgp.PublicKey };
let scratch: string;
let mirror: Mirror;
let files: Map<string, Buffer>;

before(async () => {
  key = await testKey();
  files = await mirrorFiles(packages, key.privateKey);
  mirror = await serveMirror(files);
  scratch = await mkdtemp(join(tmpdir(), 'lb-tree-users-'));
});
after(async () => {
  await mirror.close();
  await rm(scratch, { recursive: true, force: true });
});

let made = 0;
async function place(): Promise<{ cacheDir: string; instance: (name: string) => Promise<string> }> {
  const root = join(scratch, `case-${made++}`);
  await mkdir(join(root, 'cache'), { recursive: true });
  return {
    cacheDir: join(root, 'cache'),
    // an instance is its state dir, which has its settings while the instance exists
    instance: async (name) => {
      const dir = join(root, 'state', name);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'config.json'), '{}');
      return dir;
    },
  };
}

function fetchFor(cacheDir: string, instance: string | undefined, set: keyof typeof sets, more: Partial<DebianUserlandOptions> = {}) {
  return debianUserland({
    cacheDir, arch: 'x86_64', request: { packages: [...sets[set]] }, mirror: mirror.url, keys: [key.publicKey],
    ...(instance === undefined ? {} : { instance }), ...more,
  });
}

async function trees(cacheDir: string): Promise<string[]> {
  return (await readdir(debianCache(cacheDir).trees)).sort();
}
async function debs(cacheDir: string): Promise<string[]> {
  return (await readdir(debianCache(cacheDir).debs)).sort();
}
const debOf = (name: string): string => `${sha256(files.get([...files.keys()].find((p) => p.includes(`/${name}_`)) ?? '') ?? '')}.deb`;

test('an instance that moves to another package set lets its old tree go: the tree, its request record and the packages only it used are removed', async () => {
  const { cacheDir, instance } = await place();
  const a = await instance('a');
  const lines: string[] = [];
  const first = await fetchFor(cacheDir, a, 'both');
  assert.deepEqual(await trees(cacheDir), [first.key]);
  const second = await fetchFor(cacheDir, a, 'extra', { log: (line) => lines.push(line) });
  assert.deepEqual(await trees(cacheDir), [second.key], 'the tree of the earlier set is gone');
  assert.match(lines.join('\n'), new RegExp(`removing the Debian tree ${first.key}: no instance uses it any more`));
  assert.deepEqual(await debs(cacheDir), [debOf('extra')], 'app and libfoo were only in the removed tree');
  const records = await readdir(debianCache(cacheDir).requests);
  assert.equal(records.length, 1, 'the removed tree\'s request record is gone too');
  const hold = JSON.parse(await readFile(join(debianCache(cacheDir).users, (await readdir(debianCache(cacheDir).users))[0] ?? ''), 'utf8'));
  assert.deepEqual(hold, { format: 1, instance: a, trees: [second.key] });
});

test('a tree another instance holds stays; it goes once that instance is removed', async () => {
  const { cacheDir, instance } = await place();
  const [a, b] = [await instance('a'), await instance('b')];
  const shared = await fetchFor(cacheDir, a, 'app');
  assert.equal((await fetchFor(cacheDir, b, 'app')).key, shared.key, 'one tree for the same request');
  const own = await fetchFor(cacheDir, a, 'extra');
  assert.deepEqual(await trees(cacheDir), [own.key, shared.key].sort(), 'b still holds the shared tree');
  await rm(b, { recursive: true });
  await fetchFor(cacheDir, a, 'extra');
  assert.deepEqual(await trees(cacheDir), [own.key], 'b is gone: nobody holds the shared tree');
});

test('a tree a process names on its command line (a running VM) is kept, and removed at a later start once that process has ended', async () => {
  const { cacheDir, instance } = await place();
  const a = await instance('a');
  const old = await fetchFor(cacheDir, a, 'app');
  // stands for a VM sharing the tree as its /usr: a process whose command line names it
  const vm = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', join(old.root, 'usr')], { stdio: 'ignore' });
  await once(vm, 'spawn');
  try {
    const lines: string[] = [];
    await fetchFor(cacheDir, a, 'extra', { log: (line) => lines.push(line) });
    assert.ok((await trees(cacheDir)).includes(old.key), 'kept while the process runs');
    assert.match(lines.join('\n'), new RegExp(`keeping the Debian tree ${old.key}: process ${vm.pid} uses it`));
  } finally {
    vm.kill('SIGKILL');
    await waitForExit(vm.pid ?? 0, 10_000);
  }
  await fetchFor(cacheDir, a, 'extra');
  assert.ok(!(await trees(cacheDir)).includes(old.key), 'tried again at the next start, and removed');
});

test('a tree nobody ever held (fetched by an earlier version) is never removed', async () => {
  const { cacheDir, instance } = await place();
  const earlier = await fetchFor(cacheDir, undefined, 'app');
  const a = await instance('a');
  await fetchFor(cacheDir, a, 'both');
  await fetchFor(cacheDir, a, 'extra');
  assert.ok((await trees(cacheDir)).includes(earlier.key));
});

test('a failed fetch of a new set keeps the tree that worked, offline as well', async () => {
  const { cacheDir, instance } = await place();
  const a = await instance('a');
  const worked = await fetchFor(cacheDir, a, 'app');
  const path = [...files.keys()].find((p) => p.includes('/extra_')) ?? '';
  mirror.cutOff.add(path);
  try {
    await assert.rejects(fetchFor(cacheDir, a, 'both'), UserError);
  } finally {
    mirror.cutOff.delete(path);
  }
  assert.deepEqual(await trees(cacheDir), [worked.key]);
  const offline = await fetchFor(cacheDir, a, 'app', { mirror: `http://127.0.0.1:${await closedPort()}/debian` });
  assert.equal(offline.key, worked.key, 'reused without the network');
});

test('while a fetch is under way, no cached package is removed (it may need any of them)', async () => {
  const { cacheDir, instance } = await place();
  const [a, b] = [await instance('a'), await instance('b')];
  const old = await fetchFor(cacheDir, a, 'app');
  // b resolved a set and holds its tree-to-be; its packages are being downloaded
  await holdTreeToo(debianCache(cacheDir), b, 'f'.repeat(32));
  await fetchFor(cacheDir, a, 'extra');
  assert.ok(!(await trees(cacheDir)).includes(old.key), 'the tree goes');
  assert.ok((await debs(cacheDir)).includes(debOf('libfoo')), 'its packages stay for the fetch under way');
});

test('starts of many instances at once, moving between sets: every tree an instance holds is whole, and no tree is left that nobody holds', async () => {
  const { cacheDir, instance } = await place();
  const instances = await Promise.all(Array.from({ length: 8 }, (_, i) => instance(`i${i}`)));
  const order: (keyof typeof sets)[] = ['app', 'both', 'extra'];
  for (let round = 0; round < 3; round++) {
    const got = await Promise.all(instances.map((dir, i) => fetchFor(cacheDir, dir, order[(i + round) % 3] ?? 'app')));
    for (const tree of got) assert.equal(await readFile(join(tree.root, tree.packages.some((p) => p.name === 'app') ? 'usr/bin/app' : 'usr/bin/extra'), 'utf8') !== '', true);
  }
  const users = debianCache(cacheDir).users;
  const held = new Set<string>();
  for (const name of await readdir(users)) for (const tree of JSON.parse(await readFile(join(users, name), 'utf8')).trees as string[]) held.add(tree);
  assert.deepEqual(await trees(cacheDir), [...held].sort());
});
