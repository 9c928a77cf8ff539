/**
 * virtiofsd: the choice (which one, for whom), its command line as data, and the real C one that
 * Debian 12's QEMU ships, started on a read-only bind mount and stopped with nothing left.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ShareTransportFailed } from '../../../src/drivers/driver.js';
import { isAlive, spawnDetached, killHard } from '../../../src/drivers/process.js';
import { standInArgv } from '../../support/stand-in.js';
import {
  findVirtiofsd,
  findVirtiofsds,
  shareSocket,
  startVirtiofsd,
  stopVirtiofsds,
  virtiofsdArgv,
  virtiofsdFromHelp,
  virtiofsSupport,
  type Virtiofsd,
} from '../../../src/drivers/qemu/virtiofsd.js';

let dir: string;
before(async () => {
  dir = await mkdtemp('/tmp/lbvfs-');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const rust: Virtiofsd = { path: '/usr/libexec/virtiofsd', flavour: 'rust', readonlyOption: true };
const oldRust: Virtiofsd = { path: '/usr/lib/virtiofsd', flavour: 'rust', readonlyOption: false };
const c: Virtiofsd = { path: '/usr/lib/qemu/virtiofsd', flavour: 'c', readonlyOption: false };
const share = { source: '/nix/store', socket: '/run/lb/x/fs1.sock' };

test('the flavour is read from --help: the Rust one names --shared-dir (and --readonly in newer releases)', () => {
  assert.deepEqual(virtiofsdFromHelp('/a', 'Usage: virtiofsd [OPTIONS]\n      --shared-dir <SHARED_DIR>\n      --readonly\n      --socket-path <PATH>'), { path: '/a', flavour: 'rust', readonlyOption: true });
  assert.deepEqual(virtiofsdFromHelp('/b', '      --shared-dir <SHARED_DIR>\n      --socket-path <PATH>'), { path: '/b', flavour: 'rust', readonlyOption: false });
  assert.deepEqual(virtiofsdFromHelp('/c', '    -o source=PATH             shared directory tree\n    --socket-path=PATH'), { path: '/c', flavour: 'c', readonlyOption: false });
});

test('command lines: Rust with --readonly as it is; the C one and an old Rust one on a read-only bind mount in a mount namespace', () => {
  assert.deepEqual(virtiofsdArgv(rust, share, { root: true, unshare: '/usr/bin/unshare' }), [
    '/usr/libexec/virtiofsd', '--socket-path=/run/lb/x/fs1.sock', '--shared-dir=/nix/store', '--cache=auto', '--sandbox=namespace', '--readonly',
  ]);
  assert.ok(virtiofsdArgv(rust, share, { root: false, unshare: '/usr/bin/unshare' }).includes('--sandbox=none'), 'no namespaces without root');
  const wrapped = virtiofsdArgv(c, share, { root: true, unshare: '/usr/bin/unshare' });
  assert.deepEqual(wrapped.slice(0, 6), ['/usr/bin/unshare', '--mount', '--propagation', 'private', '--', '/bin/sh']);
  assert.equal(wrapped[7], 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"');
  assert.deepEqual(wrapped.slice(8), ['virtiofsd-ro', '/nix/store', '/usr/lib/qemu/virtiofsd', '--socket-path=/run/lb/x/fs1.sock', '-o', 'source=/nix/store', '-o', 'cache=auto']);
  assert.deepEqual(virtiofsdArgv(oldRust, share, { root: true, unshare: '/u' }).slice(0, 2), ['/u', '--mount']);
  assert.equal(shareSocket('/run/lb/x', 1), '/run/lb/x/fs1.sock');
  assert.equal(shareSocket('/r', 0).length - '/r/'.length, 'qmp.sock'.length, 'as long as qmp.sock, whose path length is checked');
});

test('the cache follows what the share holds: pages kept where files never change, names of an append-only store for a second', () => {
  const host = { root: true, unshare: '/usr/bin/unshare' };
  const tail = (argv: string[]) => argv.slice(argv.indexOf('/usr/lib/qemu/virtiofsd'));
  const cache = (argv: string[]) => argv.filter((arg) => arg.startsWith('--cache='));
  assert.deepEqual(tail(virtiofsdArgv(c, { ...share, contents: 'mutable' }, host)).slice(-2), ['-o', 'cache=auto']);
  assert.deepEqual(tail(virtiofsdArgv(c, { ...share, contents: 'append-only' }, host)).slice(-4), ['-o', 'cache=always', '-o', 'timeout=1']);
  assert.deepEqual(tail(virtiofsdArgv(c, { ...share, source: '/usr', contents: 'fixed' }, host)).slice(-2), ['-o', 'cache=always']);
  // The Rust virtiofsd has no metadata timeout: a store stays on auto, so new paths show up.
  assert.deepEqual(cache(virtiofsdArgv(rust, { ...share, contents: 'append-only' }, host)), ['--cache=auto']);
  assert.deepEqual(cache(virtiofsdArgv(rust, { ...share, source: '/usr', contents: 'fixed' }, host)), ['--cache=always']);
  assert.deepEqual(cache(virtiofsdArgv(rust, share, host)), ['--cache=auto'], 'mutable unless said otherwise');
});

test('virtio-fs where a virtiofsd can share read-only for this user; 9p otherwise, saying why and how to get it', () => {
  assert.deepEqual(virtiofsSupport(rust, 1000).transports, ['virtiofs', '9p']);
  assert.match(virtiofsSupport(rust, 1000).reason, /^virtio-fs through \/usr\/libexec\/virtiofsd \(--readonly; 9p if it fails\)$/);
  assert.deepEqual(virtiofsSupport(c, 0).transports, ['virtiofs', '9p']);
  assert.match(virtiofsSupport(c, 0).reason, /on a read-only bind mount/);
  const cAsUser = virtiofsSupport(c, 1000);
  assert.deepEqual(cAsUser.transports, ['9p']);
  assert.match(cAsUser.reason, /^9p: \/usr\/lib\/qemu\/virtiofsd \(QEMU's C virtiofsd\) shares read-only only as root$/);
  assert.match(cAsUser.fix ?? '', /sudo apt-get install virtiofsd/);
  assert.deepEqual(virtiofsSupport(oldRust, 1000).transports, ['9p']);
  const none = virtiofsSupport(undefined, 0);
  assert.deepEqual(none.transports, ['9p']);
  assert.match(none.reason, /no virtiofsd .*\/usr\/libexec\/virtiofsd, \/usr\/lib\/virtiofsd, \/usr\/lib\/qemu\/virtiofsd/);
  assert.match(none.fix ?? '', /^for virtio-fs: apt-get install virtiofsd$/);
});

test('leftover virtiofsds of a runtime dir are found by their socket, stopped, their sockets and pid files removed; others are left alone', async () => {
  const runtime = join(dir, 'leftover');
  await mkdir(runtime, { recursive: true });
  const ours = await spawnDetached(standInArgv(`--socket-path=${shareSocket(runtime, 0)}`), join(dir, 'ours.log'));
  const other = await spawnDetached(standInArgv(`--socket-path=${join(runtime, 'fsx.sock')}`), join(dir, 'other.log'));
  await writeFile(shareSocket(runtime, 0), '');
  // the Rust virtiofsd's pid file beside its socket, which it leaves when its QEMU is killed
  await writeFile(`${shareSocket(runtime, 0)}.pid`, `${ours.pid}\n`);
  await writeFile(join(runtime, 'qmp.sock'), '');
  try {
    assert.deepEqual(await findVirtiofsds(runtime), [ours.pid]);
    await stopVirtiofsds(runtime);
    assert.equal(await isAlive(ours.pid), false);
    assert.equal(await isAlive(other.pid), true);
    assert.deepEqual(await readdir(runtime), ['qmp.sock'], 'only what is not a virtiofsd\'s');
  } finally {
    killHard(ours.pid);
    killHard(other.pid);
  }
});

test('a virtiofsd that exits at once fails the share (ShareTransportFailed, with its last words), leaving nothing', async () => {
  const socket = join(dir, 'fs0.sock');
  const log = join(dir, 'dies.log');
  await assert.rejects(
    startVirtiofsd(['sh', '-c', 'echo "no such option --bogus" >&2; exit 1', 'sh', `--socket-path=${socket}`], { source: '/nix/store', socket }, log),
    (error: unknown) => error instanceof ShareTransportFailed && /virtiofsd for \/nix\/store exited: no such option --bogus/.test(error.message),
  );
  assert.deepEqual(await findVirtiofsds(dir), []);
});

test('the real virtiofsd (as root) listens, serves its directory read-only, and is stopped with nothing left', async (t) => {
  const found = await findVirtiofsd();
  if (found === undefined || process.getuid?.() !== 0) {
    t.skip('needs a virtiofsd and root');
    return;
  }
  const runtime = join(dir, 'real');
  const source = join(dir, 'source');
  await mkdir(runtime, { recursive: true });
  await mkdir(source, { recursive: true });
  await writeFile(join(source, 'file'), 'shared\n');
  const served = { source, socket: shareSocket(runtime, 0) };
  const pid = await startVirtiofsd(virtiofsdArgv(found, served, { root: true, unshare: 'unshare' }), served, join(dir, 'real.log'));
  try {
    assert.ok((await stat(served.socket)).isSocket());
    assert.ok((await findVirtiofsds(runtime)).includes(pid));
    // The read-only bind mount is the daemon's alone: the host's directory stays writable.
    await writeFile(join(source, 'host-writes'), 'yes');
  } finally {
    await stopVirtiofsds(runtime);
  }
  assert.deepEqual(await findVirtiofsds(runtime), []);
  assert.equal(await isAlive(pid), false);
  assert.equal(existsSync(served.socket), false);
  assert.deepEqual(await readdir(runtime), [], 'nothing of the daemon is left in the runtime dir');
  assert.equal(await readFile(join(source, 'file'), 'utf8'), 'shared\n');
});
