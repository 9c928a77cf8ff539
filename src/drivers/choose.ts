/**
 * Which hypervisor runs an instance (--driver): vfkit on an Apple Silicon Mac where it is
 * installed, QEMU everywhere else, or the one named. Pure over the host's facts.
 */
import { badInput } from '../errors.js';
import type { DriverChoice } from '../config/values.js';
import type { HostArch } from './driver.js';

export type DriverName = 'qemu' | 'vfkit';

export interface DriverHost {
  readonly platform: NodeJS.Platform;
  readonly arch: HostArch;
  /** vfkit is on PATH. */
  readonly vfkit: boolean;
}

export interface DriverDecision {
  readonly name: DriverName;
  /** One line saying why, e.g. "auto: vfkit is installed on this Apple Silicon Mac". */
  readonly reason: string;
}

export function chooseDriver(choice: DriverChoice, host: DriverHost, options: { dryRun: boolean }): DriverDecision {
  const mac = host.platform === 'darwin';
  if (choice === 'qemu') return { name: 'qemu', reason: '--driver qemu' };
  if (choice === 'vfkit') {
    if (!mac && !options.dryRun) {
      throw badInput(
        '--driver vfkit runs on macOS only (Virtualization.framework)',
        'here it goes with start --dry-run, which prepares everything and prints the vfkit command line a Mac would run',
      );
    }
    if (mac && host.arch !== 'aarch64') throw badInput('--driver vfkit needs an Apple Silicon Mac', 'on an Intel Mac use --driver qemu (HVF)');
    return { name: 'vfkit', reason: mac ? '--driver vfkit' : '--driver vfkit (planned for an Apple Silicon Mac)' };
  }
  if (mac && host.arch === 'aarch64') {
    return host.vfkit
      ? { name: 'vfkit', reason: 'auto: vfkit is installed on this Apple Silicon Mac' }
      : { name: 'qemu', reason: 'auto: vfkit is not installed (brew install vfkit), so QEMU with HVF' };
  }
  return { name: 'qemu', reason: mac ? 'auto: QEMU with HVF on an Intel Mac' : 'auto: QEMU on Linux' };
}
