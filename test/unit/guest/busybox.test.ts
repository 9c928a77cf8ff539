import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../../src/errors.js';
import { appletsInBinary, busyboxApplets, findBusybox } from '../../../src/guest/busybox.js';
import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { syntheticElf } from './fixtures.js';
import { hostPackages, installCommand } from '../../../src/platform/install-command.js';

test('a static busybox is found; a dynamic one is refused with the package hint', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-busybox-'));
  try {
    const dynamic = join(dir, 'dynamic');
    const statik = join(dir, 'static');
    await writeFile(dynamic, syntheticElf({ interp: '/lib64/ld-linux-x86-64.so.2' }));
    await writeFile(statik, syntheticElf({}));
    assert.equal(await findBusybox([join(dir, 'absent'), dynamic, statik]), statik);
    await assert.rejects(
      findBusybox([dynamic]),
      (error: unknown) =>
        error instanceof UserError && /dynamically linked/.test(error.message) && error.hint === installCommand(hostPackages.busybox),
    );
    await assert.rejects(findBusybox([join(dir, 'absent')]), /no busybox found/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('applets are read from busybox --list, without busybox itself', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-busybox-'));
  try {
    const fake = join(dir, 'busybox');
    await writeFile(fake, '#!/bin/sh\nprintf "[\\n[[\\nbusybox\\nsh\\nmount\\n"\n');
    await chmod(fake, 0o755);
    assert.deepEqual(await busyboxApplets(fake), ['[', '[[', 'sh', 'mount']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the applet table inside the binary gives the names busybox --list gives (for a busybox that cannot run here)', async () => {
  const busybox = await findBusybox();
  const listed = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((n) => n !== '' && n !== 'busybox');
  assert.ok(listed.length > 100);
  assert.deepEqual(appletsInBinary(await readFile(busybox)), listed);
  assert.deepEqual(appletsInBinary(Buffer.from('no table here')), []);
});
