/**
 * Debian's static busybox for a Debian architecture, added to the host's Nix store: the builder
 * of the derivations the demo and the tests build for each system. Downloaded with the host's
 * apt (never installed) through the product's own download module, cached. A store path is a
 * directory holding bin/busybox, so the builder's argv[0] is "busybox" (it picks applets by name).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { aptDownload, AptDownloadFailed, unpackDebs } from '../../src/debian/download.js';
import { roots } from '../../src/instance/paths.js';

/** Debian's name for the architecture of each Nix system the tests build with busybox. */
export const debianArch = {
  'x86_64-linux': 'amd64',
  'i686-linux': 'i386',
  'aarch64-linux': 'arm64',
  'armv7l-linux': 'armhf',
} as const;

export type BusyboxSystem = keyof typeof debianArch;

export async function staticBusyboxDir(system: BusyboxSystem): Promise<string> {
  const arch = debianArch[system];
  const dir = join(roots().cache, 'fixtures', `busybox-${arch}`);
  const binary = join(dir, 'bin', 'busybox');
  if (existsSync(binary)) return dir;
  mkdirSync(join(roots().cache, 'fixtures'), { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(roots().cache, 'fixtures', 'download-'));
  try {
    const debs = await aptDownload([`busybox-static:${arch}`], join(work, 'debs')).catch((error: unknown) => {
      throw new Error(`apt-get download busybox-static:${arch} failed: ${error instanceof AptDownloadFailed ? error.detail : String(error)}`);
    });
    await unpackDebs(debs.map((deb) => deb.path), join(work, 'root'));
    // bin/ in Debian 12, usr/bin/ in 13
    const shipped = ['bin/busybox', 'usr/bin/busybox'].map((path) => join(work, 'root', path)).find((path) => existsSync(path));
    if (!shipped) throw new Error(`busybox-static:${arch} has no bin/busybox`);
    const staged = join(work, `busybox-${arch}`);
    mkdirSync(join(staged, 'bin'), { recursive: true });
    copyFileSync(shipped, join(staged, 'bin', 'busybox'));
    chmodSync(join(staged, 'bin', 'busybox'), 0o755);
    renameSync(staged, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dir;
}

/** The store path of the busybox directory for a system (nix-store --add is idempotent). */
export async function staticBusyboxStorePath(system: BusyboxSystem): Promise<string> {
  return execFileSync('nix-store', ['--add', await staticBusyboxDir(system)], { encoding: 'utf8' }).trim();
}

/** The arm64 busybox: the builder of the aarch64-linux derivations. */
export function arm64BusyboxStorePath(): Promise<string> {
  return staticBusyboxStorePath('aarch64-linux');
}
