/**
 * The per-instance directory shared read-only with the guest (0700): the guest's host key,
 * the client's public key, and the guest's nix.conf and binfmt lines. The client's private key
 * is never here.
 */
import { diskDevice, guestShareFiles } from '../guest/layout.js';
import type { GcThresholds } from './guest-config.js';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs/files.js';
import { ensurePrivateDir } from '../fs/private-dir.js';
import { rm } from 'node:fs/promises';

export interface GuestShareContent {
  readonly hostKey: string;
  readonly hostKeyPub: string;
  readonly authorizedKeys: string;
  readonly nixConf: string;
  readonly binfmt: readonly string[];
  readonly hostname: string;
  /** Set when the instance disk is attached (the guest mounts it under the store): when the guest collects garbage. */
  readonly disk?: GcThresholds;
}

export async function writeGuestShare(dir: string, content: GuestShareContent): Promise<void> {
  await ensurePrivateDir(dir);
  const files: [string, string][] = [
    [guestShareFiles.hostKey, content.hostKey],
    [guestShareFiles.hostKeyPub, content.hostKeyPub],
    [guestShareFiles.authorizedKeys, content.authorizedKeys],
    [guestShareFiles.nixConf, content.nixConf],
    [guestShareFiles.hostname, `${content.hostname}\n`],
  ];
  if (content.disk) files.push([guestShareFiles.disk, `${diskDevice} ${content.disk.minFreeBytes} ${content.disk.maxFreeBytes}\n`]);
  else await rm(join(dir, guestShareFiles.disk), { force: true });
  if (content.binfmt.length > 0) files.push([guestShareFiles.binfmt, `${content.binfmt.join('\n')}\n`]);
  else await rm(join(dir, guestShareFiles.binfmt), { force: true });
  await Promise.all(files.map(([name, text]) => writeFileAtomic(join(dir, name), text, 0o600)));
}
