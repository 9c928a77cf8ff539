import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { UserError } from '../../../src/errors.js';
import {
  findGuestModules,
  loadLevels,
  moduleNameOf,
  parseModuleList,
  parseModulesDep,
  readModule,
  resolveModuleOrder,
} from '../../../src/guest/modules.js';
import { syntheticElf } from './fixtures.js';

const modulesDep = [
  'kernel/drivers/virtio/virtio_ring.ko:',
  'kernel/drivers/virtio/virtio.ko:',
  'kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
  'kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
  'kernel/net/9p/9pnet.ko:',
  'kernel/fs/netfs/netfs.ko:',
  'kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko',
  'kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko',
  'kernel/fs/overlayfs/overlay.ko.xz:',
  '',
].join('\n');
const builtin = new Set(parseModuleList('kernel/fs/binfmt_misc.ko\nkernel/drivers/virtio/virtio.ko\n').map(moduleNameOf));
const table = parseModulesDep(modulesDep);
const names = (wanted: string[], optional: string[] = []) =>
  resolveModuleOrder(wanted, optional, table, builtin, '/lib/modules/x').map((m) => m.name);

test('module names: basename without .ko and compression suffix, "-" read as "_"', () => {
  assert.equal(moduleNameOf('kernel/drivers/char/hw_random/virtio-rng.ko'), 'virtio_rng');
  assert.equal(moduleNameOf('kernel/fs/overlayfs/overlay.ko.xz'), 'overlay');
  assert.equal(moduleNameOf('9pnet_virtio.ko.zst'), '9pnet_virtio');
});

const cases: Array<{ name: string; wanted: string[]; optional?: string[]; order: string[] }> = [
  { name: 'dependencies come first', wanted: ['9p'], order: ['9pnet', 'netfs', 'fscache', '9p'] },
  { name: 'built-ins are skipped', wanted: ['virtio_mmio'], order: ['virtio_ring', 'virtio_mmio'] },
  { name: 'each module once', wanted: ['virtio_mmio', 'virtio-rng', '9p', 'fscache'], order: ['virtio_ring', 'virtio_mmio', 'virtio_rng', '9pnet', 'netfs', 'fscache', '9p'] },
  { name: 'a wanted built-in is no error', wanted: ['binfmt_misc', 'overlay'], order: ['overlay'] },
  { name: 'an absent optional module is left out', wanted: ['overlay'], optional: ['ext4', 'virtio_mmio'], order: ['overlay', 'virtio_ring', 'virtio_mmio'] },
];
for (const c of cases) {
  test(`load order: ${c.name}`, () => assert.deepEqual(names(c.wanted, c.optional), c.order));
}

test('a missing module is a UserError naming it, who needs it, and the modules dir', () => {
  const broken = parseModulesDep('kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko\n');
  assert.throws(
    () => resolveModuleOrder(['9p'], [], broken, new Set(), '/lib/modules/6.1'),
    (error: unknown) =>
      error instanceof UserError && /no module 9pnet \(needed by 9p\) in \/lib\/modules\/6\.1/.test(error.message),
  );
  assert.throws(() => names(['virtio_blk']), /no module virtio_blk in \/lib\/modules\/x/);
});

test('without modules.dep, dependencies come from each module\'s .modinfo; .ko.gz is decompressed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-modules-'));
  try {
    await mkdir(join(dir, 'kernel/fs'), { recursive: true });
    await writeFile(
      join(dir, 'modules.order'),
      'kernel/fs/netfs.ko\nkernel/fs/9pnet.ko\nkernel/fs/9p.ko\nkernel/fs/unrelated.ko\n',
    );
    await writeFile(join(dir, 'modules.builtin'), 'kernel/fs/netfs.ko\n');
    await writeFile(join(dir, 'kernel/fs/9pnet.ko'), syntheticElf({ modinfo: ['license=GPL', 'depends='] }));
    // compressed on disk though modules.order says .ko, as distributions ship them
    await writeFile(join(dir, 'kernel/fs/9p.ko.gz'), gzipSync(syntheticElf({ modinfo: ['depends=9pnet,netfs'] })));
    const found = await findGuestModules(dir, ['9p']);
    assert.deepEqual(found.map((m) => m.name), ['9pnet', '9p']);
    assert.equal(found[1]?.file, join(dir, 'kernel/fs/9p.ko.gz'));
    assert.equal((await readModule(join(dir, 'kernel/fs/9p.ko.gz'))).readUInt32BE(0), 0x7f454c46);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('modules.dep wins when present, and a module file it names must exist', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-modules-'));
  try {
    await mkdir(join(dir, 'kernel/drivers/virtio'), { recursive: true });
    await writeFile(join(dir, 'modules.dep'), modulesDep);
    for (const name of ['virtio_ring', 'virtio_mmio']) await writeFile(join(dir, `kernel/drivers/virtio/${name}.ko`), 'x');
    await assert.rejects(findGuestModules(dir, ['virtio_mmio']), /virtio\.ko is missing from/);
    await writeFile(join(dir, 'kernel/drivers/virtio/virtio.ko'), 'x');
    const found = await findGuestModules(dir, ['virtio_mmio']);
    assert.deepEqual(found.map((m) => m.name), ['virtio', 'virtio_ring', 'virtio_mmio']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('each module knows the loadable modules it needs; built-ins are not among them', () => {
  const order = resolveModuleOrder(['virtio_mmio', '9p'], [], table, builtin, '/lib/modules/x');
  assert.deepEqual(order.find((m) => m.name === 'virtio_mmio')?.deps, ['virtio_ring']);
  assert.deepEqual(order.find((m) => m.name === '9p')?.deps, ['9pnet', 'fscache', 'netfs']);
});

test('load levels: a module comes a level after its deepest dep, so a level loads in parallel', () => {
  const order = resolveModuleOrder(['virtio_mmio', 'virtio-rng', '9p', 'overlay'], [], table, builtin, '/lib/modules/x');
  assert.deepEqual(loadLevels(order), [
    ['virtio_ring', '9pnet', 'netfs', 'overlay'],
    ['virtio_mmio', 'virtio_rng', 'fscache'],
    ['9p'],
  ]);
  // deps loaded by an earlier group count as loaded
  assert.deepEqual(loadLevels([{ name: '9p', deps: ['9pnet', 'netfs'] }, { name: 'overlay', deps: [] }]), [['9p', 'overlay']]);
  assert.deepEqual(loadLevels([]), []);
});
