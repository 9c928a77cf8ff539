/**
 * Flags given to `start` or `serve`, laid over an instance's remembered settings and checked
 * against what is on disk, before anything is written.
 */
import { stat } from 'node:fs/promises';
import { badInput } from '../errors.js';
import { applyFlags, type Settings, type SettingsFlags } from '../config/settings.js';
import { decideDisk, diskBytes } from './disk.js';
import { loadSettings } from './identity.js';
import type { InstancePaths } from './paths.js';

async function checkKernelFlag(path: string | undefined): Promise<void> {
  if (path === undefined) return;
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) {
    throw badInput(`--kernel ${path}: no such file`, 'give the path of a Linux kernel image (bzImage/vmlinuz or vmlinux)');
  }
}

export interface SettledSettings {
  readonly remembered: Settings;
  readonly settings: Settings;
}

/** Throws bad-input UserErrors; a smaller --disk-size than the disk has is refused here (a disk only grows). */
export async function settingsWithFlags(paths: InstancePaths, flags: SettingsFlags): Promise<SettledSettings> {
  const remembered = await loadSettings(paths);
  const settings = applyFlags(remembered, flags);
  await checkKernelFlag(flags.kernel);
  // Decided again under the lock before launch.
  decideDisk({ currentBytes: await diskBytes(paths.disk), wantedMiB: settings.diskSizeMiB, ephemeral: settings.ephemeral, explicit: flags.diskSize !== undefined });
  return { remembered, settings };
}
