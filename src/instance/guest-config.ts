/**
 * What the guest is told at boot, per instance: which systems it builds (binfmt entries for
 * those its kernel cannot run) and its nix.conf. Pure, apart from checking the emulators exist.
 */
import { access, constants } from 'node:fs/promises';
import type { HostArch } from '../drivers/driver.js';
import { badInput, failed } from '../errors.js';
import { binfmtLine, defaultSystems, emulatedSystems, guestSystem, qemuUserBinary } from '../platform/systems.js';
import { hostPackages, installCommand } from '../platform/install-command.js';
import { buildUsers, guestPaths } from '../guest/init.js';

export function instanceSystems(configured: readonly string[] | undefined, arch: HostArch): string[] {
  return configured && configured.length > 0 ? [...configured] : defaultSystems(arch);
}

/** Every emulated system needs the host's qemu-<arch>-static, which the guest sees through /usr. */
export async function checkEmulators(systems: readonly string[], arch: HostArch): Promise<void> {
  const missing: string[] = [];
  for (const info of emulatedSystems(systems, arch)) {
    const ok = await access(qemuUserBinary(info), constants.X_OK).then(() => true, () => false);
    if (!ok) missing.push(`${info.system} needs ${qemuUserBinary(info)}`);
  }
  if (missing.length > 0) {
    throw badInput(`${missing.join('; ')}`, `${installCommand(hostPackages.qemuUser)}, or leave those systems out of --systems`);
  }
}

/** iproute2's ip, through /usr: the guest keeps builds off the host's loopback with its uid rules. */
export const guestIpTool = guestPaths.ipTool;

export async function checkGuestIpTool(): Promise<void> {
  const ok = await access(guestIpTool, constants.X_OK).then(() => true, () => false);
  if (!ok) {
    throw failed(`${guestIpTool} not found: the guest needs iproute2 to keep builds off the host's loopback`, installCommand(hostPackages.iproute2));
  }
}

export function binfmtLines(systems: readonly string[], arch: HostArch): string[] {
  return emulatedSystems(systems, arch).map(binfmtLine);
}

export interface GuestNixOptions {
  readonly systems: readonly string[];
  readonly arch: HostArch;
  readonly cores: number;
  readonly substituters: readonly string[];
}

export interface GcThresholds {
  readonly minFreeBytes: number;
  readonly maxFreeBytes: number;
}

/**
 * The guest collects garbage when the disk's free space falls under min-free, until max-free is
 * free: min-free is 5% of the disk but at least 1 GiB (never over a quarter of a small disk),
 * max-free 20% but at least twice min-free (never over half). Not Nix's own min-free: its
 * collector would delete host paths the guest sees through the overlay (freeing nothing, only
 * hiding them) and, on a full disk, fail at the first one; the guest's collector deletes only
 * what is on the guest's disk (see collectorLines in src/guest/init.ts).
 */
export function gcThresholds(diskSizeMiB: number): GcThresholds {
  const mib = 1024 * 1024;
  const minFreeMiB = Math.min(Math.max(1024, Math.round(diskSizeMiB * 0.05)), Math.floor(diskSizeMiB / 4));
  const maxFreeMiB = Math.min(Math.max(Math.round(diskSizeMiB * 0.2), 2 * minFreeMiB), Math.floor(diskSizeMiB / 2));
  return { minFreeBytes: minFreeMiB * mib, maxFreeBytes: maxFreeMiB * mib };
}

/**
 * Builds run in Nix's sandbox as build users, as on NixOS: only their inputs visible, /bin/sh
 * the guest's static busybox, no network but for fixed-output derivations, and never a silent
 * fallback to an unsandboxed build. kvm is never advertised (the guest has none).
 */
export function guestNixConf(options: GuestNixOptions): string {
  const own = guestSystem(options.arch);
  const extra = options.systems.filter((s) => s !== own);
  return [
    '# written by linux-builder at every start',
    `build-users-group = ${buildUsers.group}`,
    'sandbox = true',
    'sandbox-fallback = false',
    `sandbox-paths = /bin/sh=${guestPaths.busyboxDir}/busybox`,
    'trusted-users = root',
    `max-jobs = ${Math.min(options.cores, buildUsers.count)}`,
    `cores = ${options.cores}`,
    `system = ${own}`,
    ...(extra.length > 0 ? [`extra-platforms = ${extra.join(' ')}`] : []),
    'system-features = benchmark big-parallel',
    // Only substituters the host reached; an empty list keeps offline builds from waiting.
    `substituters = ${options.substituters.join(' ')}`.trimEnd(),
    'experimental-features = nix-command',
    '',
  ].join('\n');
}
