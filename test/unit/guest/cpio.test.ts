import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CpioEntry, cpioArchive, cpioMtime } from '../../../src/guest/cpio.js';
import { readNewc } from './fixtures.js';

const small: CpioEntry[] = [
  { kind: 'dir', path: 'dev', mode: 0o755 },
  { kind: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  { kind: 'file', path: 'init', mode: 0o755, data: Buffer.from('#!/bb/sh\n') },
  { kind: 'symlink', path: 'bin', target: 'usr/bin' },
];

test('the first header is byte-exact newc: magic, ino 1, dir mode, root, fixed mtime, name size', () => {
  const archive = cpioArchive(small);
  const expected =
    '070701' +
    ['1', '41ed', '0', '0', '2', cpioMtime.toString(16), '0', '0', '0', '0', '0', '4', '0']
      .map((f) => f.padStart(8, '0'))
      .join('') +
    'dev\0';
  assert.equal(archive.toString('latin1', 0, 114), expected);
  // 110 + "dev\0" = 114, padded with two NULs to 116 where the next header starts
  assert.equal(archive.toString('latin1', 114, 122), '\x00\x00070701');
});

test('a regular file is padded to 4 bytes and the archive ends with TRAILER!!!', () => {
  const archive = cpioArchive([{ kind: 'file', path: 'a', mode: 0o644, data: Buffer.from('xyz') }]);
  // header 110 + "a\0" = 112; data 3 + 1 pad; trailer header 110 + 11 + 3 pad
  assert.equal(archive.length, 112 + 4 + 124);
  assert.equal(archive.toString('latin1', 112, 116), 'xyz\0');
  assert.equal(archive.toString('latin1', 116 + 110, 116 + 120), 'TRAILER!!!');
  assert.equal(archive.length % 4, 0);
});

test('round-trip: every kind comes back with its mode, device numbers and contents', () => {
  const entries = readNewc(cpioArchive(small));
  assert.deepEqual(
    entries.map((e) => [e.name, e.mode.toString(8), e.rdevMajor, e.rdevMinor, e.data.toString()]),
    [
      ['dev', '40755', 0, 0, ''],
      ['dev/console', '20600', 5, 1, ''],
      ['init', '100755', 0, 0, '#!/bb/sh\n'],
      ['bin', '120777', 0, 0, 'usr/bin'],
    ],
  );
  assert.ok(entries.every((e) => e.uid === 0 && e.gid === 0 && e.mtime === cpioMtime));
});

test('the same entries always give the same bytes', () => {
  assert.ok(cpioArchive(small).equals(cpioArchive(small)));
});

test('an entry before its directory, an absolute path or ".." is refused', () => {
  assert.throws(() => cpioArchive([{ kind: 'file', path: 'etc/passwd', mode: 0o644, data: Buffer.alloc(0) }]), /before its directory etc/);
  assert.throws(() => cpioArchive([{ kind: 'dir', path: '/etc', mode: 0o755 }]), /bad path/);
  assert.throws(() => cpioArchive([{ kind: 'dir', path: 'a/../b', mode: 0o755 }]), /bad path/);
});
