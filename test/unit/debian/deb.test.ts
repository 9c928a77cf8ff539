import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { arMembers } from '../../../src/debian/ar.js';
import { PathEscape, treePath, unpackDeb, UnpackTarget } from '../../../src/debian/deb.js';
import { compress, makeDeb, type TarEntry } from './fixtures.js';

const entries: TarEntry[] = [
  { name: './', type: 'directory' },
  { name: './usr/', type: 'directory' },
  { name: './usr/bin/', type: 'directory' },
  { name: './usr/bin/tool', mode: 0o4755, content: '#!/bin/sh\necho hi\n' },
  { name: './usr/bin/alias', type: 'symlink', linkname: 'tool' },
  { name: './usr/bin/same', type: 'link', linkname: './usr/bin/tool' },
  { name: './usr/share/doc/x/copyright', mode: 0o444, content: 'free' },
  { name: './etc/', type: 'directory', mode: 0o750 },
  { name: './etc/abs-link', type: 'symlink', linkname: '/usr/bin/tool' },
];

async function unpacked(deb: Buffer, run: (root: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lb-deb-'));
  try {
    await writeFile(join(dir, 'p.deb'), deb);
    const target = new UnpackTarget(join(dir, 'root'));
    await mkdir(target.root);
    await unpackDeb(join(dir, 'p.deb'), target);
    await target.finish();
    await run(target.root);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const suffix of ['.gz', '.xz', '.zst', ''] as const) {
  const available = compress(Buffer.from('x'), suffix) !== undefined;
  test(`data.tar${suffix}: files, modes, symlinks and hardlinks as packaged`, { skip: available ? false : `no ${suffix} compressor installed to make the test package` }, async () => {
    await unpacked(await makeDeb(entries, suffix), async (root) => {
      assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho hi\n');
      assert.equal((await stat(join(root, 'usr/bin/tool'))).mode & 0o7777, 0o4755);
      assert.equal((await stat(join(root, 'usr/share/doc/x/copyright'))).mode & 0o777, 0o444);
      assert.equal(await readlink(join(root, 'usr/bin/alias')), 'tool');
      assert.equal(await readlink(join(root, 'etc/abs-link')), '/usr/bin/tool');
      assert.equal((await stat(join(root, 'usr/bin/same'))).ino, (await stat(join(root, 'usr/bin/tool'))).ino);
      assert.equal((await stat(join(root, 'etc'))).mode & 0o777, 0o750);
    });
  });
}

test('the ar members of a .deb, by name, offset and size', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-ar-'));
  try {
    await writeFile(join(dir, 'p.deb'), await makeDeb(entries));
    const members = await arMembers(join(dir, 'p.deb'));
    assert.deepEqual(members.map((m) => m.name), ['debian-binary', 'control.tar.gz', 'data.tar.gz']);
    assert.equal(members[0]?.offset, 8 + 60);
    assert.equal(members[0]?.size, 4);
    await writeFile(join(dir, 'not.deb'), 'PK\x03\x04 a zip');
    await assert.rejects(arMembers(join(dir, 'not.deb')), /not an ar archive/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('paths that leave the tree are refused', async () => {
  assert.equal(treePath('./usr/bin/x'), 'usr/bin/x');
  assert.equal(treePath('./'), '');
  assert.throws(() => treePath('/etc/passwd'), PathEscape);
  assert.throws(() => treePath('./usr/../../etc/passwd'), PathEscape);
  for (const bad of [
    [{ name: '../outside', content: 'x' }],
    [{ name: '/etc/outside', content: 'x' }],
    [{ name: './usr/', type: 'directory' }, { name: './usr/evil', type: 'link', linkname: '../../outside' }],
    [{ name: './escape', type: 'symlink', linkname: '/tmp' }, { name: './escape/file', content: 'through a symlink' }],
  ] as TarEntry[][]) {
    await assert.rejects(unpacked(await makeDeb(bad), async () => undefined), PathEscape, JSON.stringify(bad));
  }
});

test('a symlink already in the tree is not followed by a later package', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-deb-'));
  try {
    const outside = join(dir, 'outside');
    await mkdir(outside);
    await mkdir(join(dir, 'root'));
    await symlink(outside, join(dir, 'root', 'lib'));
    await writeFile(join(dir, 'p.deb'), await makeDeb([{ name: './lib/evil', content: 'x' }]));
    await assert.rejects(unpackDeb(join(dir, 'p.deb'), new UnpackTarget(join(dir, 'root'))), /a symlink where a directory is needed/);
    await assert.rejects(lstat(join(outside, 'evil')), { code: 'ENOENT' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
