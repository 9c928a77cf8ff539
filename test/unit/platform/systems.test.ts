import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import {
  binfmtLine,
  defaultSystems,
  emulatedSystems,
  parseSystems,
  systemInfo,
  systems,
} from '../../../src/platform/systems.js';
import { UserError } from '../../../src/errors.js';

/** "\x7fELF\x02" → bytes, as binfmt_misc decodes a register line. */
function decode(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; ) {
    if (text.startsWith('\\x', i)) {
      bytes.push(Number.parseInt(text.slice(i + 2, i + 4), 16));
      i += 4;
    } else {
      bytes.push(text.charCodeAt(i));
      i += 1;
    }
  }
  return Buffer.from(bytes);
}

const binfmtDir = '/usr/lib/binfmt.d';
const debianConfs = existsSync(binfmtDir) ? readdirSync(binfmtDir).filter((f) => /^qemu-.*\.conf$/.test(f)) : [];

test('the table matches Debian\'s binfmt.d for every arch installed here', { skip: debianConfs.length === 0 && 'qemu-user-static is not installed' }, () => {
  let compared = 0;
  for (const info of systems) {
    const file = `${binfmtDir}/qemu-${info.qemuArch}.conf`;
    if (!existsSync(file)) continue;
    const [, , , , magic, mask] = readFileSync(file, 'utf8').trim().split(':');
    assert.equal(Buffer.from(info.magic, 'hex').toString('hex'), decode(magic ?? '').toString('hex'), `${info.system} magic`);
    assert.equal(Buffer.from(info.mask, 'hex').toString('hex'), decode(mask ?? '').toString('hex'), `${info.system} mask`);
    compared++;
  }
  assert.ok(compared >= 15, `compared ${compared} arches`);
});

test('magic and mask have the same length and the magic starts with ELF', () => {
  for (const info of systems) {
    assert.equal(info.magic.length, info.mask.length, info.system);
    assert.ok(info.magic.startsWith('7f454c46'), info.system);
  }
});

test('qemu arch names follow nixpkgs', () => {
  const expected: Record<string, string> = {
    'i686-linux': 'i386',
    'armv7l-linux': 'arm',
    'armv6l-linux': 'arm',
    'aarch64-linux': 'aarch64',
    'riscv64-linux': 'riscv64',
    'powerpc64le-linux': 'ppc64le',
    's390x-linux': 's390x',
    'mips64el-linux': 'mips64el',
    'loongarch64-linux': 'loongarch64',
  };
  for (const [system, arch] of Object.entries(expected)) assert.equal(systemInfo(system)?.qemuArch, arch, system);
});

test('--systems: known systems, deduplicated, the guest\'s own first; unknown ones list the known', () => {
  assert.deepEqual(parseSystems('aarch64-linux, x86_64-linux,aarch64-linux', 'x86_64'), ['x86_64-linux', 'aarch64-linux']);
  assert.deepEqual(defaultSystems('x86_64'), ['x86_64-linux', 'i686-linux', 'aarch64-linux']);
  for (const bad of ['', ',', 'x86_64-darwin', 'aarch64', 'linux', '$(id)']) {
    assert.throws(
      () => parseSystems(bad, 'x86_64'),
      (e: unknown) => e instanceof UserError && e.exitCode === 2 && /x86_64-linux/.test(`${e.message} ${e.hint}`),
      bad,
    );
  }
});

test('only systems the guest kernel cannot run get binfmt, one per qemu arch', () => {
  const emulated = emulatedSystems(['x86_64-linux', 'i686-linux', 'aarch64-linux', 'armv7l-linux', 'armv6l-linux'], 'x86_64');
  assert.deepEqual(emulated.map((s) => s.qemuArch), ['aarch64', 'arm']);
  const aarch64 = systemInfo('aarch64-linux');
  assert.ok(aarch64);
  assert.equal(
    binfmtLine(aarch64),
    ':qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:' +
      '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64-static:F',
  );
});
