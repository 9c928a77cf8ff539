/**
 * Debian's static busybox for a Debian architecture, added to the host's Nix store: the builder
 * of the derivations the demo and the tests build for each system. Downloaded with apt-get
 * (never installed), cached. A store path is a directory holding bin/busybox, so the builder's
 * argv[0] is "busybox" (it picks applets by name).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { roots } from '../../src/instance/paths.js';

/** Debian's name for the architecture of each Nix system the tests build with busybox. */
export const debianArch = {
  'x86_64-linux': 'amd64',
  'i686-linux': 'i386',
  'aarch64-linux': 'arm64',
  'armv7l-linux': 'armhf',
} as const;

export type BusyboxSystem = keyof typeof debianArch;

export function staticBusyboxDir(system: BusyboxSystem): string {
  const arch = debianArch[system];
  const dir = join(roots().cache, 'fixtures', `busybox-${arch}`);
  const binary = join(dir, 'bin', 'busybox');
  if (existsSync(binary)) return dir;
  mkdirSync(join(roots().cache, 'fixtures'), { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(roots().cache, 'fixtures', 'download-'));
  try {
    execFileSync('apt-get', ['download', '-q', `busybox-static:${arch}`], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download busybox-static:${arch} produced no .deb`);
    execFileSync('dpkg-deb', ['-x', join(work, deb), join(work, 'root')]);
    // Where the package says it puts busybox (bin/ in Debian 12, usr/bin/ in 13), by its file list.
    const files = execFileSync('dpkg-deb', ['--fsys-tarfile', join(work, deb)], { maxBuffer: 64 << 20 });
    const listed = execFileSync('tar', ['-t'], { input: files, encoding: 'utf8' }).split('\n').find((f) => /^(\.\/)?(usr\/)?s?bin\/busybox$/.test(f));
    if (!listed) throw new Error(`busybox-static:${arch} lists no bin/busybox`);
    const shipped = join(work, 'root', listed);
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
export function staticBusyboxStorePath(system: BusyboxSystem): string {
  return execFileSync('nix-store', ['--add', staticBusyboxDir(system)], { encoding: 'utf8' }).trim();
}

/** The arm64 busybox: the builder of the aarch64-linux derivations. */
export function arm64BusyboxStorePath(): string {
  return staticBusyboxStorePath('aarch64-linux');
}
