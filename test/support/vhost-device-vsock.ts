/**
 * rust-vmm's vhost-device-vsock, a user-space vhost-user backend for virtio-vsock: with QEMU's
 * vhost-user-vsock device it gives a guest vsock ports that the host reaches through a unix
 * socket, as vfkit's `virtio-vsock` device does on a Mac, without the host kernel's vhost-vsock.
 * Debian ships it from forky on (it links only libc and libgcc_s, so it runs on older hosts):
 * fetched from unstable's signed index with the product's own Debian fetcher, checked against
 * the archive keys and the index's SHA256, and cached.
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { roots } from '../../src/instance/paths.js';
import { downloadVerified, fetchText } from '../../src/debian/fetch.js';
import { debianArchiveKeys, parseRelease, verifiedText } from '../../src/debian/release.js';
import { parsePackages } from '../../src/debian/packages.js';
import { compareVersions } from '../../src/debian/version.js';
import { decompressed } from '../../src/debian/decompress.js';
import { unpackDebs } from '../../src/debian/download.js';
import { aptDebianMirror } from './debian-chroot.js';

const suite = 'unstable';
const packageName = 'vhost-device-vsock';

/** Debian's name for this host's architecture. */
function hostDebianArch(): string {
  const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch as string];
  if (!arch) throw new Error(`no Debian architecture for ${process.arch}`);
  return arch;
}

/** The path of the vhost-device-vsock binary, fetched the first time. */
export async function vhostDeviceVsock(): Promise<string> {
  const arch = hostDebianArch();
  const dir = join(roots().cache, 'fixtures', `${packageName}-${arch}`);
  const binary = join(dir, 'usr', 'bin', packageName);
  if (existsSync(binary)) return binary;
  const mirror = aptDebianMirror();
  const release = parseRelease(await verifiedText(await fetchText(`${mirror}/dists/${suite}/InRelease`, `the ${suite} release file`), await debianArchiveKeys()));
  const indexPath = `main/binary-${arch}/Packages.xz`;
  const indexEntry = release.files.get(indexPath);
  if (!indexEntry) throw new Error(`${suite}'s release file lists no ${indexPath}`);
  mkdirSync(join(roots().cache, 'fixtures'), { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(roots().cache, 'fixtures', 'download-'));
  try {
    await downloadVerified(`${mirror}/dists/${suite}/${indexPath}`, join(work, 'Packages.xz'), indexEntry, `the ${suite} ${arch} package index`);
    const index = parsePackages(await text(await decompressed(join(work, 'Packages.xz'), '.xz')), compareVersions);
    const entry = index.packages.get(packageName);
    if (!entry) throw new Error(`Debian ${suite} (${arch}) has no ${packageName}`);
    const deb = join(work, `${packageName}.deb`);
    await downloadVerified(`${mirror}/${entry.filename}`, deb, entry, `${packageName} ${entry.version}`);
    await unpackDebs([deb], join(work, 'root'));
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(work, 'root'), dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!existsSync(binary)) throw new Error(`${packageName}'s package has no usr/bin/${packageName}`);
  return binary;
}
