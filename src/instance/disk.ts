/**
 * The instance disk on the host: a sparse raw file, created, grown or wiped before launch. The
 * guest formats it (ext4) when it finds no file system and grows the file system to the file.
 */
import { open, rm, stat, statfs, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { badInput } from '../errors.js';
import { formatMiB } from '../config/values.js';

const mib = 1024 * 1024;

export type DiskAction = 'create' | 'recreate' | 'grow' | 'keep';

export interface DiskDecision {
  readonly action: DiskAction;
  /** The file's size after the action. */
  readonly sizeMiB: number;
}

/**
 * What to do with the disk before a launch. Shrinking would cut the guest's file system, so an
 * explicit smaller --disk-size is refused (bad input, nothing written); a smaller remembered
 * size (e.g. config.json removed) keeps the disk as it is.
 */
export function decideDisk(options: {
  readonly currentBytes: number | undefined;
  readonly wantedMiB: number;
  readonly ephemeral: boolean;
  readonly explicit: boolean;
}): DiskDecision {
  const { currentBytes, wantedMiB } = options;
  if (currentBytes === undefined) return { action: 'create', sizeMiB: wantedMiB };
  if (options.ephemeral) return { action: 'recreate', sizeMiB: wantedMiB };
  const currentMiB = Math.ceil(currentBytes / mib);
  if (wantedMiB > currentMiB) return { action: 'grow', sizeMiB: wantedMiB };
  if (wantedMiB < currentMiB && options.explicit) {
    throw badInput(
      `--disk-size ${formatMiB(wantedMiB)} is smaller than the instance disk (${formatMiB(currentMiB)}); a disk only grows`,
      `keep --disk-size ${formatMiB(currentMiB)} or more, or start with --ephemeral to wipe it and begin at the new size`,
    );
  }
  return { action: 'keep', sizeMiB: currentMiB };
}

export async function diskBytes(path: string): Promise<number | undefined> {
  return stat(path).then((s) => s.size, () => undefined);
}

/** Carries out a decision: a new sparse file (0600), or the old one made longer. */
export async function applyDiskDecision(path: string, decision: DiskDecision): Promise<void> {
  const bytes = decision.sizeMiB * mib;
  if (decision.action === 'keep') return;
  if (decision.action === 'grow') return truncate(path, bytes);
  if (decision.action === 'recreate') await rm(path, { force: true });
  const file = await open(path, 'wx', 0o600);
  try {
    await file.truncate(bytes);
  } finally {
    await file.close();
  }
}

export interface DiskUsage {
  readonly path: string;
  /** The file's length: what the guest sees. */
  readonly sizeMiB: number;
  /** Host blocks the sparse file holds. */
  readonly allocatedMiB: number;
}

export async function diskUsage(path: string): Promise<DiskUsage | null> {
  const s = await stat(path).catch(() => undefined);
  if (!s) return null;
  return { path, sizeMiB: Math.round(s.size / mib), allocatedMiB: Math.round((s.blocks * 512) / mib) };
}

/** Free space on the file system that holds the disk (or would hold it: the nearest existing parent), in MiB. */
export async function hostFreeMiB(path: string): Promise<number> {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const s = await statfs(dir).catch((error: unknown) => {
      if (dir === dirname(dir)) throw error;
      return undefined;
    });
    if (s) return Math.floor((s.bavail * s.bsize) / mib);
  }
}
