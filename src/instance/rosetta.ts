/**
 * Whether an instance gets Rosetta for x86_64-linux. On a Mac it is the hypervisor's rosetta
 * device (vfkit), where Rosetta is installed and not --no-rosetta. QEMU has none: there a
 * directory holding a stand-in `rosetta` binary can be shared in its place, named by
 * LINUX_BUILDER_TEST_ROSETTA_DIR, so the guest's side of Rosetta is tested on any host.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput } from '../errors.js';
import type { Driver, GuestArch } from '../drivers/driver.js';

export const testRosettaVariable = 'LINUX_BUILDER_TEST_ROSETTA_DIR';

export const rosettaInstallCommand = 'softwareupdate --install-rosetta --agree-to-license';

/** hostPath: a stand-in directory shared under the rosetta tag; absent: the hypervisor's own. */
export interface RosettaPlan {
  readonly hostPath?: string;
}

export interface RosettaDecision {
  readonly rosetta: RosettaPlan | undefined;
  /** One line for the user: what runs x86_64-linux and why. */
  readonly note: string | undefined;
}

export async function decideRosetta(
  driver: Pick<Driver, 'capabilities' | 'rosettaInstalled'>,
  options: { wanted: boolean; arch: GuestArch; systems: readonly string[] },
  env: NodeJS.ProcessEnv = process.env,
): Promise<RosettaDecision> {
  const standIn = env[testRosettaVariable];
  if (standIn !== undefined && standIn !== '') return { rosetta: await checkStandIn(standIn, options.arch), note: `a stand-in for Rosetta from ${standIn} runs x86_64-linux (${testRosettaVariable})` };
  if (!driver.capabilities.rosetta || options.arch !== 'aarch64' || !options.systems.includes('x86_64-linux')) return { rosetta: undefined, note: undefined };
  if (!options.wanted) return { rosetta: undefined, note: 'x86_64-linux runs under qemu-user (--no-rosetta)' };
  if (!(await driver.rosettaInstalled())) {
    return { rosetta: undefined, note: `Rosetta is not installed, so x86_64-linux runs under qemu-user, many times slower: ${rosettaInstallCommand}` };
  }
  return { rosetta: {}, note: 'x86_64-linux runs through Rosetta' };
}

/** Checked, so a typo is not a silent qemu-user fallback. */
async function checkStandIn(dir: string, arch: GuestArch): Promise<RosettaPlan> {
  if (arch !== 'aarch64') throw badInput(`${testRosettaVariable} is set, but the guest is ${arch}: Rosetta runs x86_64 programs in an aarch64 guest`, `start with --arch aarch64, or unset ${testRosettaVariable}`);
  if (!(await access(join(dir, 'rosetta'), constants.X_OK).then(() => true, () => false))) {
    throw badInput(`${testRosettaVariable}=${dir} holds no executable "rosetta"`, 'put an aarch64 stand-in for Rosetta there (e.g. a static qemu-x86_64), or unset the variable');
  }
  return { hostPath: dir };
}
