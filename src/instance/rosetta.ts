/**
 * Whether an instance gets the Rosetta share, and how the guest mounts it. On a Mac it is vfkit's
 * rosetta device (Apple's binary, where Rosetta is installed and not --no-rosetta). QEMU has no
 * Rosetta: there a directory holding a stand-in `rosetta` binary can be shared in its place, named
 * by LINUX_BUILDER_TEST_ROSETTA_DIR, so the guest's side of Rosetta is tested on any host.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput } from '../errors.js';
import type { GuestArch } from '../drivers/driver.js';

export const testRosettaVariable = 'LINUX_BUILDER_TEST_ROSETTA_DIR';

export interface RosettaShare {
  /** The directory shared under the rosetta tag; absent: the hypervisor provides Apple's (vfkit). */
  readonly hostPath?: string;
  /** The config share's line: the file system type and mount options in the guest. */
  readonly mount: string;
}

/** How the guest mounts a share of each transport, read-only. */
export function rosettaMountLine(transport: '9p' | 'virtiofs'): string {
  return transport === '9p' ? '9p trans=virtio,version=9p2000.L,ro' : 'virtiofs ro';
}

/** The stand-in directory on QEMU, when the test variable names one; checked, so a typo is not a silent qemu-user fallback. */
export async function testRosettaShare(arch: GuestArch, env: NodeJS.ProcessEnv = process.env): Promise<RosettaShare | undefined> {
  const dir = env[testRosettaVariable];
  if (dir === undefined || dir === '') return undefined;
  if (arch !== 'aarch64') throw badInput(`${testRosettaVariable} is set, but the guest is ${arch}: Rosetta runs x86_64 programs in an aarch64 guest`, `start with --arch aarch64, or unset ${testRosettaVariable}`);
  const binary = join(dir, 'rosetta');
  if (!(await access(binary, constants.X_OK).then(() => true, () => false))) {
    throw badInput(`${testRosettaVariable}=${dir} holds no executable "rosetta"`, 'put an aarch64 stand-in for Rosetta there (e.g. a static qemu-x86_64), or unset the variable');
  }
  return { hostPath: dir, mount: rosettaMountLine('9p') };
}
