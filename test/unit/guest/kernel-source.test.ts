import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { UserError } from '../../../src/errors.js';
import { compiledCopy } from '../../support/compiled-copy.js';
import { OutOfSpace } from '../../../src/fs/files.js';
import { readDeb } from '../../../src/debian/download.js';
import { makeDeb } from '../debian/fixtures.js';
import { bzImageVersion } from '../../../src/guest/kernel-image.js';
import {
  compareKernelVersions,
  hostKernelVersions,
  kernelImageDependency,
  locateKernel,
  versionFromFileName,
  type CommandRunner,
  type LocateKernelOptions,
} from '../../../src/guest/kernel-source.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lb-kernel-source-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The start of a bzImage: setup header magic, and kernel_version pointing at a version string. */
function bzImageHeader(version: string): Buffer {
  const header = Buffer.alloc(0x4000);
  header[0x1f1] = 27;
  header.write('HdrS', 0x202, 'latin1');
  header.writeUInt16LE(0x3900 - 0x200, 0x20e);
  header.write(`${version} (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.140-1 (2025-05-22)\0`, 0x3900, 'latin1');
  return header;
}

test('bzImageVersion reads the string the setup header points to', () => {
  assert.equal(bzImageVersion(bzImageHeader('6.1.0-56-amd64')), '6.1.0-56-amd64');
  assert.equal(bzImageVersion(bzImageHeader('6.12.9+bpo-cloud-amd64')), '6.12.9+bpo-cloud-amd64');
});

test('bzImageVersion: no header, null pointer, or garbage → undefined', () => {
  assert.equal(bzImageVersion(Buffer.alloc(0x4000)), undefined);
  const nullPointer = bzImageHeader('6.1.0-56-amd64');
  nullPointer.writeUInt16LE(0, 0x20e);
  assert.equal(bzImageVersion(nullPointer), undefined);
  const outside = bzImageHeader('6.1.0-56-amd64');
  outside.writeUInt16LE(0xfff0, 0x20e);
  assert.equal(bzImageVersion(outside), undefined);
  assert.equal(bzImageVersion(bzImageHeader('not a version')), undefined);
  assert.equal(bzImageVersion(Buffer.from('HdrS')), undefined);
});

test('versionFromFileName', () => {
  assert.equal(versionFromFileName('vmlinuz-6.1.0-56-amd64'), '6.1.0-56-amd64');
  assert.equal(versionFromFileName('vmlinux-6.8.0-45-generic'), '6.8.0-45-generic');
  assert.equal(versionFromFileName('vmlinuz'), undefined);
  assert.equal(versionFromFileName('initrd.img-6.1.0-56-amd64'), undefined);
});

const order: ReadonlyArray<[string, string]> = [
  ['6.1.0-9-amd64', '6.1.0-10-amd64'],
  ['6.1.0-56-amd64', '6.12.1-1-amd64'],
  ['5.19.0-1-amd64', '6.1.0-1-amd64'],
  ['6.1.0', '6.1.0-1'],
];
for (const [older, newer] of order) {
  test(`${older} < ${newer}`, () => {
    assert.equal(compareKernelVersions(older, newer), -1);
    assert.equal(compareKernelVersions(newer, older), 1);
    assert.equal(compareKernelVersions(newer, newer), 0);
  });
}

test('hostKernelVersions: only kernels with modules, newest first', () => {
  const boot = ['config-6.1.0-9-amd64', 'vmlinuz-6.1.0-9-amd64', 'vmlinuz-6.1.0-10-amd64', 'vmlinuz-6.2.0-1-amd64', 'initrd.img-6.2.0-1-amd64', 'System.map-6.1.0-10-amd64'];
  const modules = ['6.1.0-9-amd64', '6.1.0-10-amd64', '5.10.0-1-amd64'];
  assert.deepEqual(hostKernelVersions(boot, modules), ['6.1.0-10-amd64', '6.1.0-9-amd64']);
});

test('the real image package is the linux-image-<version> the metapackage depends on', async () => {
  const meta = async (depends: string) => {
    const path = join(dir, 'meta.deb');
    await writeFile(path, await makeDeb([], '.gz', { Package: 'linux-image-amd64', Version: '6.1.140-1', Depends: depends }));
    return readDeb(path);
  };
  assert.equal(kernelImageDependency(await meta('linux-image-6.1.0-56-amd64 (= 6.1.140-1)')), 'linux-image-6.1.0-56-amd64');
  assert.equal(kernelImageDependency(await meta('linux-base, linux-image-6.12.9+bpo-amd64 | linux-image-6.12.9+bpo-amd64-unsigned')), 'linux-image-6.12.9+bpo-amd64');
  assert.equal(kernelImageDependency(await meta('linux-image-virtual')), undefined);
});

// ---- the choice, over fake /boot, /lib/modules and cache trees ---------------------------

async function fakeRoot(name: string, kernels: Record<string, { modules: boolean; readable?: boolean }>): Promise<{ bootDir: string; modulesRoot: string; cacheDir: string }> {
  const root = join(dir, name);
  const bootDir = join(root, 'boot');
  const modulesRoot = join(root, 'lib', 'modules');
  await mkdir(bootDir, { recursive: true });
  await mkdir(modulesRoot, { recursive: true });
  for (const [version, { modules, readable }] of Object.entries(kernels)) {
    await writeFile(join(bootDir, `vmlinuz-${version}`), bzImageHeader(version));
    if (readable === false) await chmod(join(bootDir, `vmlinuz-${version}`), 0);
    if (modules) await mkdir(join(modulesRoot, version, 'kernel'), { recursive: true });
  }
  return { bootDir, modulesRoot, cacheDir: join(root, 'cache') };
}

interface Recorder {
  readonly run: CommandRunner;
  readonly calls: string[];
}

/** apt-get's answer for a package it cannot find. */
const unknownPackage = (name: string) => ({ code: 100, stdout: '', stderr: `E: Unable to locate package ${name}\n` });

/** A kernel image package as Debian builds it: the bzImage in boot/, its modules under lib/modules. */
function imageDeb(kernel: string): Promise<Buffer> {
  return makeDeb(
    [{ name: `./boot/vmlinuz-${kernel}`, content: bzImageHeader(kernel).toString('latin1') }, { name: `./lib/modules/${kernel}/kernel/`, type: 'directory' }],
    '.gz',
    { Package: `linux-image-${kernel}`, Version: '6.1.140-1' },
  );
}

/** Stands in for apt-get download, writing real .debs: the metapackage and the image it depends on; records what was called. */
function fakeApt(options: { knowsPackage: boolean; version?: string }): Recorder {
  const calls: string[] = [];
  const kernel = options.version ?? '6.1.0-56-amd64';
  const run: CommandRunner = async (command, args, cwd) => {
    calls.push([command, ...args].join(' '));
    if (command !== 'apt-get') return { code: null, stdout: '', stderr: `${command}: not found` };
    const name = args.at(-1) ?? '';
    if (!options.knowsPackage) return unknownPackage(name);
    if (name === 'linux-image-amd64') {
      await writeFile(join(cwd ?? '.', 'linux-image-amd64_6.1.140-1_amd64.deb'), await makeDeb([], '.gz', { Package: name, Version: '6.1.140-1', Depends: `linux-image-${kernel} (= 6.1.140-1)` }));
    } else if (name === `linux-image-${kernel}`) {
      await writeFile(join(cwd ?? '.', `${name}_6.1.140-1_amd64.deb`), await imageDeb(kernel));
    } else {
      return unknownPackage(name);
    }
    return { code: 0, stdout: '', stderr: "W: Download is performed unsandboxed as root as file '...' couldn't be accessed by user '_apt'.\n" };
  };
  return { run, calls };
}

function options(roots: { bootDir: string; modulesRoot: string; cacheDir: string }, extra: Partial<LocateKernelOptions> = {}): LocateKernelOptions & { lines: string[] } {
  const lines: string[] = [];
  return { ...roots, hostArch: 'x86_64', log: (line) => lines.push(line), lines, run: fakeApt({ knowsPackage: false }).run, ...extra };
}

test('host: the newest /boot kernel whose modules exist', async () => {
  const roots = await fakeRoot('host', {
    '6.1.0-9-amd64': { modules: true },
    '6.1.0-10-amd64': { modules: true },
    '6.1.0-11-amd64': { modules: false },
  });
  const found = await locateKernel(options(roots));
  assert.deepEqual(found, {
    image: join(roots.bootDir, 'vmlinuz-6.1.0-10-amd64'),
    version: '6.1.0-10-amd64',
    modulesDir: join(roots.modulesRoot, '6.1.0-10-amd64'),
    source: 'host',
  });
});

/** locateKernel as an unprivileged user (root reads every file, whatever its mode). */
function locateAsNobody(roots: { bootDir: string; modulesRoot: string; cacheDir: string }): { version: string; lines: string[] } {
  // Compiled where nobody can read it: the checkout may be where nobody cannot (under /root).
  const compiled = compiledCopy(fileURLToPath(new URL('../../support/locate-kernel-as.ts', import.meta.url)));
  try {
    const out = execFileSync(process.execPath, [compiled.script, JSON.stringify(roots)], {
      uid: 65534,
      gid: 65534,
      cwd: compiled.dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: '/nonexistent' },
    });
    return JSON.parse(out) as { version: string; lines: string[] };
  } finally {
    rmSync(compiled.dir, { recursive: true, force: true });
  }
}

test('host: an unreadable kernel is skipped with a log line', async () => {
  const roots = await fakeRoot('unreadable', { '6.1.0-9-amd64': { modules: true }, '6.1.0-10-amd64': { modules: true, readable: false } });
  if (process.getuid?.() === 0) {
    await chmod(dir, 0o755); // the unprivileged user must reach the fake host
    const found = locateAsNobody(roots);
    assert.equal(found.version, '6.1.0-9-amd64');
    assert.ok(found.lines.some((l) => /not readable/.test(l)));
    return;
  }
  const opts = options(roots);
  assert.equal((await locateKernel(opts)).version, '6.1.0-9-amd64');
  assert.ok(opts.lines.some((l) => /not readable/.test(l)));
});

test('--kernel: the file given, version from its header, modules from /lib/modules', async () => {
  const roots = await fakeRoot('flag', { '6.1.0-10-amd64': { modules: true } });
  const image = join(dir, 'flag', 'my-kernel');
  await writeFile(image, bzImageHeader('6.1.0-10-amd64'));
  assert.deepEqual(await locateKernel(options(roots, { explicit: image })), {
    image,
    version: '6.1.0-10-amd64',
    modulesDir: join(roots.modulesRoot, '6.1.0-10-amd64'),
    source: 'flag',
  });
});

test('--kernel: an unpacked package tree finds its own modules; the name gives the version', async () => {
  const roots = await fakeRoot('flag-tree', {});
  const tree = join(dir, 'flag-tree', 'unpacked');
  await mkdir(join(tree, 'boot'), { recursive: true });
  await mkdir(join(tree, 'lib', 'modules', '6.3.0-1-amd64'), { recursive: true });
  const image = join(tree, 'boot', 'vmlinuz-6.3.0-1-amd64');
  await writeFile(image, 'no setup header here');
  const found = await locateKernel(options(roots, { explicit: image }));
  assert.equal(found.version, '6.3.0-1-amd64');
  assert.equal(found.modulesDir, join(tree, 'boot', '..', 'lib', 'modules', '6.3.0-1-amd64'));
});

test('--kernel: unknown version boots without modules, saying so', async () => {
  const roots = await fakeRoot('flag-unknown', {});
  const image = join(dir, 'flag-unknown', 'kernel.bin');
  await writeFile(image, 'x');
  const opts = options(roots, { explicit: image });
  assert.deepEqual(await locateKernel(opts), { image, version: 'unknown', modulesDir: undefined, source: 'flag' });
  assert.ok(opts.lines.some((l) => /without kernel modules/.test(l)));
});

test('--kernel: a missing path or a directory is bad input', async () => {
  const roots = await fakeRoot('flag-bad', {});
  const isBadInput = (pattern: RegExp) => (e: unknown) => e instanceof UserError && e.exitCode === 2 && pattern.test(e.message) && /--kernel/.test(e.hint ?? '');
  await assert.rejects(locateKernel(options(roots, { explicit: join(dir, 'nope') })), isBadInput(/does not exist/));
  await assert.rejects(locateKernel(options(roots, { explicit: roots.bootDir })), isBadInput(/is not a file/));
});

test('download: apt resolves the package, it is unpacked into the cache, and reused without apt', async () => {
  const roots = await fakeRoot('download', { '6.1.0-10-amd64': { modules: false } });
  const apt = fakeApt({ knowsPackage: true });
  const first = await locateKernel(options(roots, { run: apt.run }));
  const tree = join(roots.cacheDir, 'kernels', 'linux-image-6.1.0-56-amd64_6.1.140-1');
  assert.deepEqual(first, {
    image: join(tree, 'boot', 'vmlinuz-6.1.0-56-amd64'),
    version: '6.1.0-56-amd64',
    modulesDir: join(tree, 'lib', 'modules', '6.1.0-56-amd64'),
    source: 'download',
  });
  assert.deepEqual(apt.calls, ['apt-get -q download linux-image-amd64', 'apt-get -q download linux-image-6.1.0-56-amd64'], 'no apt-cache, no dpkg-deb');
  assert.deepEqual(await readdir(join(roots.cacheDir, 'kernels')), ['linux-image-6.1.0-56-amd64_6.1.140-1'], 'temp dir removed');

  const again = fakeApt({ knowsPackage: true });
  assert.deepEqual(await locateKernel(options(roots, { run: again.run })), first);
  assert.deepEqual(again.calls, [], 'no apt call when a downloaded kernel exists');
});

test('download: a cached arm64 tree is not used on x86_64', async () => {
  const roots = await fakeRoot('download-arch', {});
  const foreign = join(roots.cacheDir, 'kernels', 'linux-image-6.1.0-56-arm64_6.1.140-1');
  await mkdir(join(foreign, 'boot'), { recursive: true });
  await writeFile(join(foreign, 'boot', 'vmlinuz-6.1.0-56-arm64'), 'x');
  const apt = fakeApt({ knowsPackage: true });
  assert.equal((await locateKernel(options(roots, { run: apt.run }))).version, '6.1.0-56-amd64');
  assert.equal(apt.calls.length, 2);
});

test('download: apt lists missing → says to run apt-get update', async () => {
  const roots = await fakeRoot('download-nolists', {});
  await assert.rejects(
    locateKernel(options(roots, { run: fakeApt({ knowsPackage: false }).run })),
    (e: unknown) => e instanceof UserError && e.exitCode === 1 && /linux-image-amd64/.test(e.message) && /apt-get update/.test(e.hint ?? ''),
  );
});

test('download: no apt-get at all → points to --kernel', async () => {
  const roots = await fakeRoot('download-noapt', {});
  const noApt: CommandRunner = async () => ({ code: null, stdout: '', stderr: 'not found' });
  await assert.rejects(
    locateKernel(options(roots, { run: noApt })),
    (e: unknown) => e instanceof UserError && /, and no apt-get to download one$/.test(e.message) && /--kernel/.test(e.hint ?? ''),
  );
});

test('download: a failed download names the package and cleans up', async () => {
  const roots = await fakeRoot('download-fail', {});
  const apt = fakeApt({ knowsPackage: true });
  const failing: CommandRunner = async (command, args, cwd) =>
    args.at(-1) === 'linux-image-amd64'
      ? apt.run(command, args, cwd)
      : { code: 100, stdout: '', stderr: 'E: Failed to fetch http://deb.debian.org/...  Temporary failure resolving\n' };
  await assert.rejects(
    locateKernel(options(roots, { run: failing })),
    (e: unknown) => e instanceof UserError && /could not download linux-image-6.1.0-56-amd64: E: Failed to fetch/.test(e.message) && /apt-get update/.test(e.hint ?? ''),
  );
  assert.deepEqual(await readdir(join(roots.cacheDir, 'kernels')), []);
});

/** Runs body with $XDG_CACHE_HOME set, so the cache is the one users know ($XDG_CACHE_HOME/linux-builder). */
async function withCacheHome<T>(home: string, body: () => Promise<T>): Promise<T> {
  const saved = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = home;
  try {
    return await body();
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  }
}

const outOfSpaceInKernels = (cacheDir: string) => (e: unknown) => {
  assert.ok(e instanceof OutOfSpace, String(e));
  assert.match(e.message, new RegExp(`^the cache directory ${cacheDir} is out of space: downloading and unpacking the kernel package into kernels/`));
  assert.match(e.hint ?? '', /XDG_CACHE_HOME/);
  return true;
};

test('download: a full cache while unpacking is one out-of-space error naming the cache, and nothing is left', { skip: process.getuid?.() === 0 ? false : 'mounting a small tmpfs needs root' }, async () => {
  const roots = await fakeRoot('download-full', {});
  const home = await mkdtemp(join(tmpdir(), 'lb-full-cache-'));
  // room for the downloaded package (its module does not compress), not for it unpacked as well
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=640k', 'tmpfs', home]);
  try {
    const cacheDir = join(home, 'linux-builder');
    const apt = fakeApt({ knowsPackage: true });
    const big: CommandRunner = async (command, args, cwd) => {
      if (args.at(-1) !== 'linux-image-6.1.0-56-amd64') return apt.run(command, args, cwd);
      const module = { name: './lib/modules/6.1.0-56-amd64/kernel/fs/xfs/xfs.ko', content: randomBytes(384 * 1024).toString('latin1') };
      const deb = await makeDeb([{ name: './boot/vmlinuz-6.1.0-56-amd64', content: 'k' }, module], '.gz', { Package: 'linux-image-6.1.0-56-amd64', Version: '6.1.140-1' });
      await writeFile(join(cwd ?? '.', 'linux-image-6.1.0-56-amd64_6.1.140-1_amd64.deb'), deb);
      return { code: 0, stdout: '', stderr: '' };
    };
    await withCacheHome(home, () => assert.rejects(locateKernel(options({ ...roots, cacheDir }, { run: big })), outOfSpaceInKernels(cacheDir)));
    assert.deepEqual(await readdir(join(cacheDir, 'kernels')), [], 'the half-unpacked tree and the download are removed');
  } finally {
    execFileSync('umount', [home]);
    await rm(home, { recursive: true });
  }
});

test('download: apt\'s own free-space check failing is the same out-of-space error', async () => {
  const roots = await fakeRoot('download-apt-full', {});
  const cacheDir = join(dirname(roots.cacheDir), 'linux-builder');
  const noRoom: CommandRunner = async () => ({ code: 100, stdout: '', stderr: "E: You don't have enough free space in /cache/kernels/.download-x/.\n" });
  await withCacheHome(dirname(roots.cacheDir), () => assert.rejects(locateKernel(options({ ...roots, cacheDir }, { run: noRoom })), outOfSpaceInKernels(cacheDir)));
  assert.deepEqual(await readdir(join(cacheDir, 'kernels')), []);
});
