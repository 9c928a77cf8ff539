import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { UserError } from '../../../src/errors.js';
import { isOutOfSpace, OutOfSpace, outOfSpace, writeFileAtomic, writingTo } from '../../../src/fs/files.js';

let dir: string;
const saved = { cache: process.env.XDG_CACHE_HOME, state: process.env.XDG_STATE_HOME };
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lb-files-'));
  process.env.XDG_CACHE_HOME = join(dir, 'cache');
  process.env.XDG_STATE_HOME = join(dir, 'state');
});
after(async () => {
  for (const [name, value] of [['XDG_CACHE_HOME', saved.cache], ['XDG_STATE_HOME', saved.state]] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await rm(dir, { recursive: true, force: true });
});

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: failed, write`), { code });

test('out of space: ENOSPC, EDQUOT, a tool saying so, and the same as a cause', () => {
  assert.ok(isOutOfSpace(errno('ENOSPC')));
  assert.ok(isOutOfSpace(errno('EDQUOT')));
  assert.ok(isOutOfSpace({ stderr: 'tar: x: Cannot write: No space left on device\ndpkg-deb: error: tar subprocess returned error exit status 2' }));
  assert.ok(isOutOfSpace({ stderr: "E: You don't have enough free space in /var/cache/." }));
  assert.ok(isOutOfSpace(new UserError('could not unpack x.deb', { cause: { code: 2, stderr: 'Disk quota exceeded' } })));
  assert.ok(!isOutOfSpace(errno('EACCES')));
  assert.ok(!isOutOfSpace(new Error('E: Failed to fetch')));
  assert.ok(!isOutOfSpace(undefined));
});

test('the error names the cache directory, what was written, the bytes needed and free, and the variable to move it', async () => {
  const cache = join(dir, 'cache', 'linux-builder');
  const error = await outOfSpace(errno('ENOSPC'), { path: join(cache, 'images', 'guest-1.cpio'), neededBytes: 20 * 2 ** 20 });
  assert.ok(error instanceof OutOfSpace && error.exitCode === 1);
  assert.match(error.message, new RegExp(`^the cache directory ${cache} is out of space: writing images/guest-1\\.cpio \\(needs 20\\.0 MiB, [\\d.]+ MiB free of [\\d.]+ MiB\\)$`));
  assert.match(error.hint ?? '', /^free space there, or point XDG_CACHE_HOME at a file system with more room/);
  assert.ok(!error.message.includes('\n'), 'one line');
});

test('a quota says so; the state directory points at XDG_STATE_HOME; elsewhere the directory itself', async () => {
  const state = join(dir, 'state', 'linux-builder');
  const quota = await outOfSpace(errno('EDQUOT'), { path: join(state, 'default', 'config.json') });
  assert.match(quota.message, new RegExp(`^the state directory ${state} is out of space: writing default/config\\.json \\(disk quota exceeded\\)$`));
  assert.match(quota.hint ?? '', /quota.*XDG_STATE_HOME/);
  const other = await outOfSpace(errno('ENOSPC'), { path: join(dir, 'elsewhere', 'file'), what: 'writing a file' });
  assert.match(other.message, new RegExp(`^the directory ${join(dir, 'elsewhere')} is out of space: writing a file \\(`));
});

test('writingTo maps only running out of space, and keeps the innermost place', async () => {
  const cache = join(dir, 'cache', 'linux-builder');
  await assert.rejects(writingTo(cache, () => Promise.reject(errno('EACCES'))), (e: unknown) => !(e instanceof UserError) && (e as NodeJS.ErrnoException).code === 'EACCES');
  const inner = () => writingTo(join(cache, 'sshd'), () => Promise.reject(errno('ENOSPC')), { what: 'unpacking sshd' });
  await assert.rejects(writingTo(cache, inner, { what: 'outer' }), (e: unknown) => e instanceof OutOfSpace && /unpacking sshd/.test(e.message));
});

test('writeFileAtomic into a full file system: the out-of-space error, nothing half-written, no temp file', { skip: process.getuid?.() === 0 ? false : 'mounting a small tmpfs needs root' }, async () => {
  const mountPoint = await mkdtemp(join(tmpdir(), 'lb-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mountPoint]);
  try {
    const target = join(mountPoint, 'state.json');
    await assert.rejects(writeFileAtomic(target, Buffer.alloc(1 << 20)), (e: unknown) => {
      assert.ok(e instanceof OutOfSpace, String(e));
      assert.match(e.message, /is out of space: writing state\.json \(needs 1\.0 MiB, [\d.]+ MiB free of 0\.1 MiB\)$/);
      return true;
    });
    assert.deepEqual(await readdir(mountPoint), [], 'neither the file nor its temp file');
  } finally {
    execFileSync('umount', [mountPoint]);
    await rm(mountPoint, { recursive: true });
  }
});
