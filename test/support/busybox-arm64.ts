/**
 * Debian's static arm64 busybox, added to the host's Nix store: the builder of the aarch64-linux
 * derivations the demo and the tests build. Downloaded with apt-get (never installed), cached.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { roots } from '../../src/instance/paths.js';

export function arm64BusyboxDir(): string {
  const dir = join(roots().cache, 'fixtures', 'busybox-arm64');
  const binary = join(dir, 'bin', 'busybox');
  if (existsSync(binary)) return dir;
  mkdirSync(join(roots().cache, 'fixtures'), { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(roots().cache, 'fixtures', 'download-'));
  try {
    execFileSync('apt-get', ['download', '-q', 'busybox-static:arm64'], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download busybox-static:arm64 produced no .deb');
    execFileSync('dpkg-deb', ['-x', join(work, deb), join(work, 'root')]);
    const staged = join(work, 'busybox-arm64');
    mkdirSync(join(staged, 'bin'), { recursive: true });
    // A directory holding bin/busybox, so the builder's argv0 is "busybox" (it picks applets by name).
    copyFileSync(join(work, 'root', 'bin', 'busybox'), join(staged, 'bin', 'busybox'));
    chmodSync(join(staged, 'bin', 'busybox'), 0o755);
    renameSync(staged, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dir;
}

/** The store path of the arm64 busybox directory (nix-store --add is idempotent). */
export function arm64BusyboxStorePath(): string {
  return execFileSync('nix-store', ['--add', arm64BusyboxDir()], { encoding: 'utf8' }).trim();
}
