import assert from 'node:assert/strict';
import { test } from 'node:test';
import { elfInterpreter, elfMachine, elfMachines, elfNeeded, isElf, moduleInfo, moduleInfoOfFile } from '../../../src/guest/elf.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { findBusybox } from '../../../src/guest/busybox.js';
import { hostArch } from '../../../src/platform/host.js';
import { syntheticElf } from './fixtures.js';

test('PT_INTERP is read from the program headers; none means static', () => {
  assert.equal(elfInterpreter(syntheticElf({ interp: '/lib64/ld-linux-x86-64.so.2' })), '/lib64/ld-linux-x86-64.so.2');
  assert.equal(elfInterpreter(syntheticElf({})), undefined);
});

test('.modinfo fields come back as key/value pairs', () => {
  const ko = syntheticElf({ modinfo: ['alias=fs-9p', 'depends=9pnet,netfs', 'alias=9p'] });
  assert.deepEqual(moduleInfo(ko), [
    ['alias', 'fs-9p'],
    ['depends', '9pnet,netfs'],
    ['alias', '9p'],
  ]);
});

test('.modinfo read from the file itself (a few small reads) gives the same fields; a cut file is an error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-elf-'));
  try {
    const ko = syntheticElf({ modinfo: ['alias=fs-9p', 'depends=9pnet,netfs', 'alias=9p'] });
    writeFileSync(join(dir, '9p.ko'), ko);
    assert.deepEqual(await moduleInfoOfFile(join(dir, '9p.ko')), moduleInfo(ko));
    writeFileSync(join(dir, 'plain.ko'), syntheticElf({}));
    assert.deepEqual(await moduleInfoOfFile(join(dir, 'plain.ko')), []);
    writeFileSync(join(dir, 'cut.ko'), ko.subarray(0, 80));
    await assert.rejects(moduleInfoOfFile(join(dir, 'cut.ko')), /section table/);
    writeFileSync(join(dir, 'text.ko'), '#!/bin/sh\necho not elf\n'.padEnd(64));
    await assert.rejects(moduleInfoOfFile(join(dir, 'text.ko')), /not an ELF/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file that is not ELF is recognised as such', () => {
  assert.equal(isElf(Buffer.from('#!/bin/sh\necho not elf\n'.padEnd(64))), false);
  assert.throws(() => elfInterpreter(Buffer.alloc(64)), /not an ELF/);
});

test('DT_NEEDED and e_machine of real binaries: what ldd lists first-hand, none for a static one', async () => {
  const sshd = readFileSync('/usr/bin/ssh');
  assert.equal(elfMachine(sshd), elfMachines[hostArch()]);
  const needed = elfNeeded(sshd);
  assert.ok(needed.includes('libc.so.6'), needed.join(' '));
  // every direct need is among what the loader resolves (ldd adds the transitive ones)
  const ldd = execFileSync('ldd', ['/usr/bin/ssh'], { encoding: 'utf8' });
  for (const name of needed) assert.match(ldd, new RegExp(`^\\s*${name.replaceAll('.', '\\.')} => `, 'm'));
  assert.deepEqual(elfNeeded(readFileSync(await findBusybox())), []);
});
