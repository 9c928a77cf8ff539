import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyDiskDecision, decideDisk, diskUsage, hostFreeMiB } from '../../../src/instance/disk.js';
import { UserError } from '../../../src/errors.js';

const GiB = 1024 ** 3;

test('no disk yet: create it at the wanted size, ephemeral or not', () => {
  for (const ephemeral of [false, true]) {
    assert.deepEqual(decideDisk({ currentBytes: undefined, wantedMiB: 4096, ephemeral, explicit: false }), { action: 'create', sizeMiB: 4096 });
  }
});

test('grow when bigger, keep when equal; ephemeral recreates at the wanted size, smaller too', () => {
  assert.deepEqual(decideDisk({ currentBytes: 4 * GiB, wantedMiB: 6144, ephemeral: false, explicit: true }), { action: 'grow', sizeMiB: 6144 });
  assert.deepEqual(decideDisk({ currentBytes: 4 * GiB, wantedMiB: 4096, ephemeral: false, explicit: true }), { action: 'keep', sizeMiB: 4096 });
  assert.deepEqual(decideDisk({ currentBytes: 4 * GiB, wantedMiB: 2048, ephemeral: true, explicit: true }), { action: 'recreate', sizeMiB: 2048 });
});

test('an explicit smaller --disk-size is bad input naming the current size; a remembered one keeps the disk', () => {
  assert.throws(
    () => decideDisk({ currentBytes: 4 * GiB, wantedMiB: 2048, ephemeral: false, explicit: true }),
    (error: unknown) =>
      error instanceof UserError && error.exitCode === 2 && /--disk-size 2G is smaller than the instance disk \(4G\)/.test(error.message) && /--ephemeral/.test(error.hint ?? ''),
  );
  assert.deepEqual(decideDisk({ currentBytes: 4 * GiB, wantedMiB: 2048, ephemeral: false, explicit: false }), { action: 'keep', sizeMiB: 4096 });
});

test('the disk file is sparse, private, grown in place and wiped on recreate', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'lb-disk-')), 'disk.img');
  await applyDiskDecision(path, { action: 'create', sizeMiB: 1024 });
  assert.equal(statSync(path).size, GiB);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.ok(statSync(path).blocks * 512 < 1024 * 1024, 'sparse');
  writeFileSync(path, 'data', { flag: 'r+' });
  await applyDiskDecision(path, { action: 'grow', sizeMiB: 2048 });
  assert.equal(statSync(path).size, 2 * GiB);
  const usage = await diskUsage(path);
  assert.equal(usage?.sizeMiB, 2048);
  assert.ok((usage?.allocatedMiB ?? 1) < 1);
  await applyDiskDecision(path, { action: 'recreate', sizeMiB: 1024 });
  assert.equal(statSync(path).size, GiB);
  assert.equal(statSync(path).blocks, 0, 'wiped');
  assert.equal(await diskUsage(join(path, '..', 'absent.img')), null);
  assert.ok((await hostFreeMiB(join(path, '..', 'not', 'yet', 'disk.img'))) > 0, 'free space of the nearest existing parent');
});
