import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import { findPayload, hasPvhNote, notesInclude, prepareKernel } from '../../../src/drivers/qemu/kernel.js';
import { fakeBzImage, fakeVmlinux } from '../../support/fake-kernel.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lb-kernel-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const xzMagic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

function xz(data: Buffer): Buffer {
  return execFileSync('xz', ['-c', '--check=crc32'], { input: data });
}

test('findPayload uses the setup header payload_offset', () => {
  const image = fakeBzImage(Buffer.concat([xzMagic, Buffer.alloc(32)]));
  const payload = findPayload(image);
  assert.equal(payload?.offset, 4 * 512 + 256);
  assert.equal(payload?.length, xzMagic.length + 32, 'payload_length from the header');
  assert.deepEqual(payload?.command, ['xz', '-dc']);
});

test('findPayload falls back to the first known magic without a setup header', () => {
  const image = Buffer.concat([Buffer.alloc(100), Buffer.from([0x1f, 0x8b, 0x08]), Buffer.alloc(10), xzMagic]);
  assert.deepEqual(findPayload(image), { offset: 100, command: ['gzip', '-dc'] });
  assert.equal(findPayload(Buffer.alloc(4096)), undefined);
});

test('notesInclude walks padded notes', () => {
  const elf = fakeVmlinux({ pvhNote: true });
  const notes = elf.subarray(0x200, 0x200 + 44);
  assert.ok(notesInclude(notes, 'Xen', 18));
  assert.ok(notesInclude(notes, 'GNU', 3));
  assert.ok(!notesInclude(notes, 'Xen', 17));
});

test('hasPvhNote: ELF with the PHYS32_ENTRY note yes, without it or non-ELF no', async () => {
  const yes = join(dir, 'pvh');
  const no = join(dir, 'nopvh');
  const junk = join(dir, 'junk');
  await writeFile(yes, fakeVmlinux({ pvhNote: true }));
  await writeFile(no, fakeVmlinux({ pvhNote: false }));
  await writeFile(junk, 'not an elf at all');
  assert.equal(await hasPvhNote(yes), true);
  assert.equal(await hasPvhNote(no), false);
  assert.equal(await hasPvhNote(junk), false);
});

for (const codec of [
  { name: 'xz', compress: xz },
  { name: 'gzip', compress: (b: Buffer) => gzipSync(b) },
]) {
  test(`prepareKernel extracts a ${codec.name} vmlinux with PVH once, despite trailing data, and caches it`, async () => {
    const cacheDir = await mkdtemp(join(dir, `cache-${codec.name}-`));
    const vmlinux = fakeVmlinux({ pvhNote: true });
    const image = join(cacheDir, 'vmlinuz');
    await writeFile(image, fakeBzImage(codec.compress(vmlinux)));
    const first = await prepareKernel(image, cacheDir, 'x86_64');
    assert.equal(first.format, 'vmlinux-pvh');
    assert.match(first.path, /\/kernels\/vmlinux-[0-9a-f]+$/);
    assert.deepEqual(await readFile(first.path), vmlinux);
    const second = await prepareKernel(image, cacheDir, 'x86_64');
    assert.deepEqual(second, first);
    assert.deepEqual(await readdir(join(cacheDir, 'kernels')), [first.path.split('/').pop()], 'no temp files left');
  });
}

/** As the kernel build packs xz and zstd payloads: the stream, then the uncompressed size (LE). */
function withSize(compressed: Buffer, size: number): Buffer {
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(size);
  return Buffer.concat([compressed, trailer]);
}

/** Runs fn with a PATH that has no decompressor on it. */
async function withoutTools<T>(fn: () => Promise<T>): Promise<T> {
  const path = process.env.PATH;
  process.env.PATH = await mkdtemp(join(dir, 'empty-path-'));
  try {
    return await fn();
  } finally {
    process.env.PATH = path;
  }
}

for (const codec of [
  { name: 'zstd', compress: (b: Buffer) => withSize(execFileSync('zstd', ['-q', '-c'], { input: b }), b.length) },
  { name: 'xz', compress: (b: Buffer) => withSize(xz(b), b.length) },
]) {
  test(`prepareKernel decompresses a ${codec.name} kernel in-process when the host has no ${codec.name} tool`, async () => {
    const cacheDir = await mkdtemp(join(dir, `cache-inprocess-${codec.name}-`));
    const vmlinux = Buffer.concat([fakeVmlinux({ pvhNote: true }), Buffer.alloc(3 << 20, 0x5a)]);
    const image = join(cacheDir, 'vmlinuz');
    await writeFile(image, fakeBzImage(codec.compress(vmlinux)));
    const prepared = await withoutTools(() => prepareKernel(image, cacheDir, 'x86_64'));
    assert.equal(prepared.format, 'vmlinux-pvh');
    assert.ok((await readFile(prepared.path)).equals(vmlinux), 'the whole vmlinux, byte for byte');
  });
}

test('a kernel that cannot be decompressed here is not recorded as having no PVH entry: the next start tries again', async () => {
  const cacheDir = await mkdtemp(join(dir, 'cache-notool-'));
  const vmlinux = fakeVmlinux({ pvhNote: true });
  const image = join(cacheDir, 'vmlinuz');
  // No appended size: the in-process decoder cannot prove the output complete, so it does not count.
  await writeFile(image, fakeBzImage(execFileSync('zstd', ['-q', '-c'], { input: vmlinux })));
  assert.deepEqual(await withoutTools(() => prepareKernel(image, cacheDir, 'x86_64')), { path: image, format: 'bzImage' });
  assert.deepEqual((await readdir(join(cacheDir, 'kernels'))).filter((name) => name.endsWith('.no-pvh')), [], 'no marker');
  const withTool = await prepareKernel(image, cacheDir, 'x86_64');
  assert.equal(withTool.format, 'vmlinux-pvh', 'with zstd installed, the next start boots through PVH');
});

test('prepareKernel keeps the bzImage when the vmlinux has no PVH note', async () => {
  const cacheDir = await mkdtemp(join(dir, 'cache-nopvh-'));
  const image = join(cacheDir, 'vmlinuz');
  await writeFile(image, fakeBzImage(xz(fakeVmlinux({ pvhNote: false }))));
  assert.deepEqual(await prepareKernel(image, cacheDir, 'x86_64'), { path: image, format: 'bzImage' });
  assert.ok((await readdir(join(cacheDir, 'kernels'))).every((name) => !/^vmlinux-[0-9a-f]+$/.test(name)));
  assert.deepEqual(await prepareKernel(image, cacheDir, 'x86_64'), { path: image, format: 'bzImage' });
});

test('prepareKernel keeps the file when nothing decompresses', async () => {
  const cacheDir = await mkdtemp(join(dir, 'cache-corrupt-'));
  const image = join(cacheDir, 'vmlinuz');
  await writeFile(image, fakeBzImage(Buffer.concat([xzMagic, Buffer.alloc(200, 7)])));
  assert.deepEqual(await prepareKernel(image, cacheDir, 'x86_64'), { path: image, format: 'bzImage' });
});

/** An arm64 Image: the 64-byte boot header with "ARM\x64" at 0x38, then a body. */
function fakeArm64Image(body: Buffer): Buffer {
  const header = Buffer.alloc(64);
  header.write('MZ', 0, 'latin1');
  header.writeUInt32LE(0x644d5241, 0x38);
  return Buffer.concat([header, body]);
}

test('prepareKernel on aarch64 boots an uncompressed Image as is', async () => {
  const cacheDir = await mkdtemp(join(dir, 'cache-arm64-'));
  const image = join(cacheDir, 'vmlinuz-6.12.0-arm64');
  await writeFile(image, fakeArm64Image(Buffer.alloc(4096, 3)));
  assert.deepEqual(await prepareKernel(image, cacheDir, 'aarch64'), { path: image, format: 'image' });
  assert.deepEqual(await readdir(cacheDir), ['vmlinuz-6.12.0-arm64'], 'nothing written to the cache');
});

test('prepareKernel on aarch64 decompresses an Image.gz once into the cache', async () => {
  const cacheDir = await mkdtemp(join(dir, 'cache-arm64gz-'));
  const original = fakeArm64Image(Buffer.from('the kernel body '.repeat(1000)));
  const image = join(cacheDir, 'vmlinuz-gz');
  await writeFile(image, gzipSync(original));
  const first = await prepareKernel(image, cacheDir, 'aarch64');
  assert.equal(first.format, 'image');
  assert.match(first.path, /\/kernels\/Image-[0-9a-f]{32}$/);
  assert.deepEqual(await readFile(first.path), original, 'the uncompressed Image');
  const second = await prepareKernel(image, cacheDir, 'aarch64');
  assert.deepEqual(second, first, 'the cached Image is reused');
  assert.deepEqual(await readdir(join(cacheDir, 'kernels')), [first.path.split('/').at(-1)], 'no temporary file left');
});

test('prepareKernel on aarch64 refuses what is not an arm64 Image', async () => {
  const cacheDir = await mkdtemp(join(dir, 'cache-arm64bad-'));
  const bzImage = join(cacheDir, 'bzImage');
  await writeFile(bzImage, fakeBzImage(Buffer.alloc(64)));
  await assert.rejects(prepareKernel(bzImage, cacheDir, 'aarch64'), /neither an arm64 Image nor a gzip-compressed one/);
  const gzipped = join(cacheDir, 'other.gz');
  await writeFile(gzipped, gzipSync(Buffer.alloc(4096, 1)));
  await assert.rejects(prepareKernel(gzipped, cacheDir, 'aarch64'), /not an arm64 Image/);
});
