/**
 * What the guest is told at boot, per instance: which systems it builds (binfmt entries for
 * those its kernel cannot run) and its nix.conf. Pure.
 */
import type { GuestArch } from '../drivers/driver.js';
import { binfmtEntry, defaultSystems, emulatedSystems, guestSystem, qemuUserBinary, rosettaBinfmtEntry, rosettaDir, type SystemInfo } from '../platform/systems.js';
import { buildUsers, guestPaths } from '../guest/init.js';

/** The configured systems (else the defaults for the guest's architecture), the guest's own first. */
export function instanceSystems(configured: readonly string[] | undefined, arch: GuestArch): string[] {
  if (!configured || configured.length === 0) return defaultSystems(arch);
  const own = guestSystem(arch);
  return configured.includes(own) ? [own, ...configured.filter((s) => s !== own)] : [...configured];
}

/** Rosetta runs x86_64-linux where it is shared with an aarch64 guest; it has no 32-bit mode (i686 stays with qemu-user). */
export function usesRosetta(systems: readonly string[], arch: GuestArch, rosetta: boolean): boolean {
  return rosetta && arch === 'aarch64' && systems.includes('x86_64-linux');
}

/**
 * interpreter: where the guest's userland has each emulator (the host's qemu-user-static by
 * default). rosetta: the Rosetta share is attached; x86_64-linux then goes to Rosetta.
 */
export function binfmtLines(systems: readonly string[], arch: GuestArch, interpreter: (info: SystemInfo) => string = qemuUserBinary, rosetta = false): string[] {
  const viaRosetta = usesRosetta(systems, arch, rosetta);
  const qemu = emulatedSystems(systems, arch).filter((info) => !(viaRosetta && info.system === 'x86_64-linux'));
  return [...(viaRosetta ? [rosettaBinfmtEntry()] : []), ...qemu.map((info) => binfmtEntry(info, interpreter(info)))];
}

export interface GuestNixOptions {
  readonly systems: readonly string[];
  readonly arch: GuestArch;
  readonly cores: number;
  readonly substituters: readonly string[];
  /** The Rosetta share is attached: x86_64-linux builds run through it, so the sandbox must see it. */
  readonly rosetta?: boolean;
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
    `sandbox-paths = /bin/sh=${guestPaths.busyboxDir}/busybox${usesRosetta(options.systems, options.arch, options.rosetta ?? false) ? ` ${rosettaDir}` : ''}`,
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
