/** Picks the driver for this host. The only place outside drivers/* that knows their names. */
import type { DriverChoice } from '../config/values.js';
import { hostArch } from '../platform/host.js';
import { chooseDriver, type DriverDecision } from './choose.js';
import type { Driver } from './driver.js';
import { findOnPathSync } from './process.js';
import { qemuDriver } from './qemu/index.js';
import { vfkitDriver, vfkitPlanner } from './vfkit/index.js';

/**
 * Tests only: the vfkit on PATH is a fake (test/support/fake-vfkit.ts), and the vfkit driver runs
 * it here as if this were an Apple Silicon Mac, so start, status and stop are tested through it.
 */
export const fakeVfkitVariable = 'LINUX_BUILDER_TEST_FAKE_VFKIT';

const fakeVfkit = (): boolean => process.env[fakeVfkitVariable] === '1';

/** Which driver --driver means on this host, and why; a UserError for one that cannot run here. */
export function decideDriver(choice: DriverChoice = 'auto', options: { dryRun?: boolean } = {}): DriverDecision {
  const mac = process.platform === 'darwin' || fakeVfkit();
  const host = { platform: mac ? 'darwin' : process.platform, arch: fakeVfkit() ? 'aarch64' : hostArch(), vfkit: mac && findOnPathSync('vfkit') !== undefined } as const;
  return chooseDriver(choice, host, { dryRun: options.dryRun ?? false });
}

export function selectDriver(choice: DriverChoice = 'auto', options: { dryRun?: boolean } = {}): Driver {
  return driverNamed(decideDriver(choice, options).name);
}

/** The driver a VM was started with (state.json says which); off macOS vfkit only plans. */
export function driverNamed(name: 'qemu' | 'vfkit'): Driver {
  if (name === 'qemu') return qemuDriver;
  return process.platform === 'darwin' || fakeVfkit() ? vfkitDriver : vfkitPlanner;
}
