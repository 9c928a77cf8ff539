import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildFloorImage, ensureGuestImage, floorMarker } from '../../../src/guest/image.js';
import { initScript } from '../../../src/guest/init.js';
import { readyMarker } from '../../../src/guest/layout.js';
import { builderModules, diskModules } from '../../../src/guest/modules.js';
import { hostUserland } from '../../../src/guest/userland.js';
import { readNewc, syntheticElf } from './fixtures.js';

/** A modules dir with every builder module (no deps), and a cached "sshd" (any dynamic binary passes ldd). */
async function fixture(root: string): Promise<{ modulesDir: string; cacheDir: string }> {
  const modulesDir = join(root, 'modules');
  const cacheDir = join(root, 'cache');
  await mkdir(join(modulesDir, 'kernel'), { recursive: true });
  const all = [...builderModules, ...diskModules];
  await writeFile(join(modulesDir, 'modules.dep'), all.map((m) => `kernel/${m}.ko:\n`).join(''));
  for (const m of all) await writeFile(join(modulesDir, `kernel/${m}.ko`), syntheticElf({ modinfo: [`name=${m}`] }));
  await mkdir(join(cacheDir, 'sshd/1.0/usr/sbin'), { recursive: true });
  await copyFile('/usr/bin/true', join(cacheDir, 'sshd/1.0/usr/sbin/sshd'));
  return { modulesDir, cacheDir };
}

test('the guest image is built once, then found by its key; it holds init, modules, sshd and no keys', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lb-image-'));
  try {
    const { modulesDir, cacheDir } = await fixture(root);
    const logs: string[] = [];
    const request = { modulesDir, kernelVersion: '6.1.0-test', arch: 'x86_64' as const, cacheDir, userland: hostUserland(), log: (l: string) => logs.push(l) };
    const first = await ensureGuestImage(request);
    assert.equal(first.built, true);
    assert.ok(first.path.startsWith(join(cacheDir, 'images')));
    assert.equal((await stat(join(cacheDir, 'images'))).mode & 0o777, 0o700);
    const second = await ensureGuestImage(request);
    assert.deepEqual(second, { ...first, built: false });

    const entries = new Map(readNewc(await readFile(first.path)).map((e) => [e.name, e]));
    const console = entries.get('dev/console');
    assert.deepEqual([console?.rdevMajor, console?.rdevMinor], [5, 1]);
    assert.equal(entries.get('init')?.data.toString(), initScript());
    assert.equal(entries.get('bb/sh')?.data.toString(), 'busybox');
    for (const m of [...builderModules, ...diskModules]) assert.ok(entries.has(`modules/${m}.ko`), m);
    assert.ok(entries.has('opt/ssh/sshd'));
    // sshd's libraries (here those of true) travel in the image; the dynamic loader stays on /usr
    assert.ok(entries.has('opt/ssh/lib/libc.so.6'));
    assert.ok(![...entries.keys()].some((name) => name.startsWith('opt/ssh/lib/ld-linux')));
    const rc = entries.get('etc/rc.builder')?.data.toString() ?? '';
    assert.match(rc, /^load virtio_mmio$/m);
    assert.match(rc, /^ {4}load 9pnet_virtio 9p$/m);
    assert.match(rc, /^ {2}virtiofs\)\n {4}:\n/m, 'a kernel without virtiofs: nothing to load for it');
    assert.ok(entries.get('etc/udhcpc.script'), 'the DHCP hook');
    assert.match(rc, /^ {2}load virtio_pci$/m);
    assert.match(rc, /^ {2}load virtio_net$/m);
    assert.match(rc, /^load virtio_rng overlay binfmt_misc$/m);
    assert.match(entries.get('etc/rc.builder')?.data.toString() ?? '', new RegExp(readyMarker));
    assert.equal((entries.get('root')?.mode ?? 0) & 0o777, 0o700);
    for (const e of entries.values()) assert.ok(!e.data.includes('PRIVATE KEY'), `${e.name} holds a private key`);
    assert.ok(logs.some((l) => l.includes('building the guest image')));

    // another cache mode is another image
    const loose = await ensureGuestImage({ ...request, cache: 'none' });
    assert.notEqual(loose.key, first.key);
    // an image of the host's /usr never serves a guest of another userland, even with the same files
    const other = await ensureGuestImage({ ...request, userland: { ...hostUserland(), kind: 'debian', imageKey: 'debian test-tree' } });
    assert.equal(other.built, true);
    assert.notEqual(other.key, first.key);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the floor image powers off right after printing its marker', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lb-floor-'));
  try {
    const floor = await buildFloorImage({ cacheDir: root, log: () => undefined });
    assert.equal(floor.built, true);
    const init = readNewc(await readFile(floor.path)).find((e) => e.name === 'init');
    assert.ok(init?.data.toString().endsWith(`echo ${floorMarker} > /dev/console\nexec /bb/poweroff -f\n`));
    assert.equal((await buildFloorImage({ cacheDir: root, log: () => undefined })).built, false);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
