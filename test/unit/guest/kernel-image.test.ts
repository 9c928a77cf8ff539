/** A kernel image's architecture and version, from its bytes; and the modules of a kernel of another architecture than the host's. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import { UserError } from '../../../src/errors.js';
import { kernelImageFacts } from '../../../src/guest/kernel-image.js';
import { checkKernelImage, locateKernel } from '../../../src/guest/kernel-source.js';
import { chooseUserland } from '../../../src/guest/userland.js';
import { hostArch } from '../../../src/platform/host.js';

/** An arm64 Image: the boot header's magic at 0x38, and the kernel's banner somewhere inside. */
function arm64Image(version: string | undefined): Buffer {
  const image = Buffer.alloc(0x2000);
  image.writeUInt32LE(0x644d5241, 0x38);
  // a banner-like string that is not the banner comes first
  image.write('Linux version %s (%s)\0', 0x400, 'latin1');
  if (version !== undefined) image.write(`Linux version ${version} (debian-kernel@lists.debian.org) (aarch64-linux-gnu-gcc-14) #1 SMP\0`, 0x1000, 'latin1');
  return image;
}

/** The start of a bzImage: the setup header's magic, and kernel_version pointing at the version. */
function bzImage(version: string): Buffer {
  const header = Buffer.alloc(0x4000);
  header.write('HdrS', 0x202, 'latin1');
  header.writeUInt16LE(0x3900 - 0x200, 0x20e);
  header.write(`${version} (debian-kernel@lists.debian.org) #1 SMP\0`, 0x3900, 'latin1');
  return header;
}

/** An ELF64 vmlinux of a machine, with a banner. */
function vmlinux(machine: number, version: string): Buffer {
  const elf = Buffer.alloc(0x2000);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2;
  elf[5] = 1;
  elf.writeUInt16LE(machine, 0x12);
  elf.write(`Linux version ${version} (builder@host) #1\0`, 0x1000, 'latin1');
  return elf;
}

test('architecture and version from the image\'s own bytes, whatever it is called', () => {
  assert.deepEqual(kernelImageFacts(bzImage('6.1.0-57-amd64')), { arch: 'x86_64', version: '6.1.0-57-amd64' });
  assert.deepEqual(kernelImageFacts(arm64Image('6.12.117+deb13-arm64')), { arch: 'aarch64', version: '6.12.117+deb13-arm64' });
  assert.deepEqual(kernelImageFacts(gzipSync(arm64Image('6.8.0-45-generic'))), { arch: 'aarch64', version: '6.8.0-45-generic' }, 'Image.gz as Ubuntu ships it');
  assert.deepEqual(kernelImageFacts(arm64Image(undefined)), { arch: 'aarch64', version: undefined });
  assert.deepEqual(kernelImageFacts(vmlinux(62, '6.12.1')), { arch: 'x86_64', version: '6.12.1' });
  assert.deepEqual(kernelImageFacts(vmlinux(183, '6.12.1-custom')), { arch: 'aarch64', version: '6.12.1-custom' });
  assert.deepEqual(kernelImageFacts(vmlinux(243, '6.12.1')), { arch: undefined, version: undefined }, 'riscv64: not a guest architecture');
  assert.deepEqual(kernelImageFacts(Buffer.from('not a kernel')), { arch: undefined, version: undefined });
  assert.deepEqual(kernelImageFacts(gzipSync(Buffer.from('gzip, but not a kernel'))), { arch: undefined, version: undefined });
});

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lb-kernel-image-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('--kernel of another architecture than the guest\'s is bad input, found before a start writes anything', async () => {
  const x86 = join(dir, 'vmlinuz-6.1.0-57-amd64');
  const arm = join(dir, 'Image');
  await writeFile(x86, bzImage('6.1.0-57-amd64'));
  await writeFile(arm, arm64Image('6.12.117+deb13-arm64'));
  const refused = (pattern: RegExp) => (error: unknown) =>
    error instanceof UserError && error.exitCode === 2 && pattern.test(error.message) && !error.message.includes('\n') && /config\.json/.test(error.hint ?? '');
  await assert.rejects(checkKernelImage(x86, 'aarch64'), refused(/^--kernel .*vmlinuz-6\.1\.0-57-amd64 is an x86_64 kernel, but the guest is aarch64$/));
  await assert.rejects(checkKernelImage(arm, 'x86_64'), refused(/^--kernel .*Image is an aarch64 kernel, but the guest is x86_64$/));
  assert.equal((await checkKernelImage(arm, 'aarch64')).version, '6.12.117+deb13-arm64');
  // the early check of start: the same refusal, from choosing the userland
  const cacheDir = join(dir, 'cache');
  await assert.rejects(chooseUserland('auto', { cacheDir, arch: 'aarch64', explicitKernel: x86 }), refused(/is an x86_64 kernel, but the guest is aarch64/));
  assert.equal((await chooseUserland('debian', { cacheDir, arch: 'aarch64', explicitKernel: arm })).kind, 'debian', 'a kernel of the guest\'s architecture passes');
});

test('a foreign kernel finds its modules beside it or in the trees it is given, never in the host\'s /lib/modules', { skip: hostArch() !== 'x86_64' && 'the foreign architecture here is aarch64 on an x86_64 host' }, async () => {
  const version = '6.12.117+deb13-arm64';
  const host = join(dir, 'host-modules');
  await mkdir(join(host, version), { recursive: true }); // an x86_64 host that happens to have the same version
  const common = { cacheDir: join(dir, 'cache'), hostArch: 'aarch64' as const, log: () => undefined, modulesRoot: host, bootDir: join(dir, 'no-boot') };

  // an unpacked kernel package: boot/Image beside lib/modules/<version>
  const tree = join(dir, 'unpacked');
  await mkdir(join(tree, 'boot'), { recursive: true });
  await mkdir(join(tree, 'lib', 'modules', version), { recursive: true });
  await writeFile(join(tree, 'boot', 'Image'), arm64Image(version));
  assert.equal((await locateKernel({ ...common, explicit: join(tree, 'boot', 'Image') })).modulesDir, join(tree, 'boot', '..', 'lib', 'modules', version));

  // alone in a directory: the modules of Debian's tree of the same version (the userland's packages)
  const alone = join(dir, 'alone');
  const debian = join(dir, 'debian-root');
  await mkdir(alone);
  await mkdir(join(debian, 'usr', 'lib', 'modules', version), { recursive: true });
  await writeFile(join(alone, 'Image'), arm64Image(version));
  assert.equal((await locateKernel({ ...common, explicit: join(alone, 'Image') })).modulesDir, undefined, 'not the host\'s modules of the same name');
  assert.equal((await locateKernel({ ...common, explicit: join(alone, 'Image'), moduleTrees: [debian] })).modulesDir, join(debian, 'usr', 'lib', 'modules', version));
});
