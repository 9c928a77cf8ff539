/**
 * An instance's remembered settings (config.json): what `start` was told once and keeps.
 * Parsed with zod; a file that does not parse is reported, never silently replaced.
 */
import { availableParallelism, totalmem } from 'node:os';
import { z } from 'zod';
import { failed } from '../errors.js';
import { parseVersionedJson, versionedFile, type JsonRead } from '../fs/versioned-json.js';
import { archChoices, parseAccel, parseArch, parseCount, parseDurationMs, parseMirror, parseSizeMiB, parseUserland, userlandChoices } from './values.js';
import type { AccelChoice, GuestArch } from '../drivers/driver.js';
import { parseSystems } from '../platform/systems.js';
import { hostArch } from '../platform/host.js';

export const settingsVersion = 1;

export const defaultDiskMiB = 40 * 1024;
const minDiskMiB = 1024;
const maxDiskMiB = 64 * 1024 * 1024;

export const settingsSchema = z.object({
  version: z.literal(settingsVersion),
  cores: z.number().int().min(1).max(256),
  memoryMiB: z.number().int().min(256).max(16 * 1024 * 1024),
  accel: z.enum(['auto', 'kvm', 'hvf', 'tcg']),
  /** An explicit kernel image; absent: the host's or the distribution's. */
  kernel: z.string().min(1).optional(),
  /** Chosen free at the first start and kept, so an installed ssh_config stays valid. */
  sshPort: z.number().int().min(1024).max(65535).optional(),
  bootTimeoutMs: z.number().int().min(1000).max(3_600_000),
  /** The on-demand agent's loopback port, chosen at its first start; set: Nix connects through it. */
  agentPort: z.number().int().min(1024).max(65535).optional(),
  /** How long the agent keeps an unused VM running. */
  idleTimeoutMs: z.number().int().min(1000).max(7 * 24 * 3_600_000).optional(),
  /** The guest's architecture; absent: the host's. */
  arch: z.enum(archChoices).optional(),
  /** Nix systems the builder builds; absent: the defaults for the guest's architecture. */
  systems: z.array(z.string().regex(/^[a-z0-9_]+-linux$/)).min(1).optional(),
  /** The instance disk's size: the sparse file's length, grown (never shrunk) at the next start. */
  diskSizeMiB: z.number().int().min(minDiskMiB).max(maxDiskMiB).default(defaultDiskMiB),
  /** Wipe the disk at every start: nothing the guest built survives a restart. */
  ephemeral: z.boolean().default(false),
  /** Where the guest's /usr, kernel, busybox and sshd come from: the host's, Debian's packages, or auto. */
  userland: z.enum(userlandChoices).default('auto'),
  /** The Debian mirror the debian userland is fetched from; absent: the official one. */
  mirror: z.string().url().optional(),
});
export type Settings = z.infer<typeof settingsSchema>;

/** The guest's architecture: the remembered --arch, else the host's. */
export function guestArchOf(settings: Pick<Settings, 'arch'>): GuestArch {
  return settings.arch ?? hostArch();
}

export function hostLimits(): { cores: number; memoryMiB: number } {
  return { cores: availableParallelism(), memoryMiB: Math.floor(totalmem() / 1024 / 1024) };
}

export function defaultSettings(host = hostLimits()): Settings {
  return {
    version: settingsVersion,
    cores: Math.min(host.cores, 8),
    memoryMiB: Math.min(2048, Math.max(256, Math.floor(host.memoryMiB / 4))),
    accel: 'auto',
    bootTimeoutMs: 120_000,
    diskSizeMiB: defaultDiskMiB,
    ephemeral: false,
    userland: 'auto',
  };
}

/** What the user may pass to `start`, as typed. */
export interface SettingsFlags {
  cores?: string;
  memory?: string;
  accel?: string;
  kernel?: string;
  bootTimeout?: string;
  arch?: string;
  systems?: string;
  diskSize?: string;
  ephemeral?: boolean;
  userland?: string;
  mirror?: string;
}

/** Validates flags and lays them over the remembered settings. Throws bad-input UserErrors. */
export function applyFlags(base: Settings, flags: SettingsFlags, host = hostLimits()): Settings {
  const next: Settings = { ...base };
  // "auto": the default for this host again, as if never set (a declarative config can go back to it).
  const defaults = defaultSettings(host);
  if (flags.cores === 'auto') next.cores = defaults.cores;
  else if (flags.cores !== undefined) {
    next.cores = parseCount('--cores', flags.cores, { min: 1, max: host.cores, hint: `this host has ${host.cores} cores; auto takes all of them up to 8` });
  }
  if (flags.memory === 'auto') next.memoryMiB = defaults.memoryMiB;
  else if (flags.memory !== undefined) {
    next.memoryMiB = parseSizeMiB('--memory', flags.memory, {
      min: 256,
      max: host.memoryMiB,
      hint: 'the guest needs at least 256 MiB; 2G or more for real builds',
    });
  }
  if (flags.accel !== undefined) next.accel = parseAccel(flags.accel) satisfies AccelChoice;
  if (flags.kernel !== undefined) next.kernel = flags.kernel;
  if (flags.bootTimeout !== undefined) {
    next.bootTimeoutMs = parseDurationMs('--boot-timeout', flags.bootTimeout, { min: 1000, max: 3_600_000 });
  }
  if (flags.arch !== undefined) next.arch = parseArch(flags.arch);
  if (flags.systems !== undefined) next.systems = parseSystems(flags.systems, guestArchOf(next));
  if (flags.diskSize !== undefined) {
    next.diskSizeMiB = parseSizeMiB('--disk-size', flags.diskSize, {
      min: minDiskMiB,
      max: maxDiskMiB,
      hint: 'the disk is a sparse file: it takes host space only as the guest writes; 40G is the default',
    });
  }
  if (flags.ephemeral !== undefined) next.ephemeral = flags.ephemeral;
  if (flags.userland !== undefined) next.userland = parseUserland(flags.userland);
  if (flags.mirror !== undefined) next.mirror = parseMirror(flags.mirror);
  return next;
}

export const settingsFile = versionedFile(settingsSchema, settingsVersion);

/**
 * The remembered settings from a read of config.json: the defaults when there is none; a
 * damaged or newer file is a failed operation that names the file to fix or remove.
 */
export function settingsFrom(read: JsonRead<Settings>, path: string): Settings {
  switch (read.kind) {
    case 'missing':
      return defaultSettings();
    case 'ok':
      return read.value;
    case 'corrupt':
      throw failed(read.reason, `fix it, or remove it to start over with defaults: rm ${path}`);
    case 'newer':
      throw failed(read.reason, `upgrade linux-builder, or remove it to start over with defaults: rm ${path}`);
  }
}

/** Parses config.json text (see settingsFrom). */
export function parseSettings(text: string, path: string): Settings {
  return settingsFrom(parseVersionedJson(text, path, settingsFile), path);
}
