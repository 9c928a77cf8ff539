/**
 * The vfkit driver (macOS, Apple Silicon): Virtualization.framework through vfkit. The guest is
 * the aarch64 one QEMU boots elsewhere; shares are virtio-fs, SSH goes over vsock through a unix
 * socket vfkit relays, the network is Virtualization.framework's NAT, and x86_64-linux runs
 * through Apple's Rosetta. Its REST API presses the guest's power button (Stop) and pulls the plug
 * (HardStop, then SIGKILL).
 *
 * vfkitPlanner is the same driver for `start --dry-run` off macOS: it renders the command line a
 * Mac would run (with Rosetta installed) and launches nothing.
 */
import { rm } from 'node:fs/promises';
import type { Driver, VmControl } from '../driver.js';
import { badInput, failed } from '../../errors.js';
import { prepareKernel } from '../qemu/kernel.js';
import { vfkitArgv } from './argv.js';
import { findVfkitProcesses, forceStopVfkit, launchVfkit, ownsVfkitProcess, pressVfkitPowerButton } from './process.js';
import { vfkitConfig, vfkitControl, vfkitFiles } from './render.js';
import { rosettaInstalled } from './rosetta.js';

/**
 * Virtualization.framework's NAT: the guest takes a lease, and builds are kept off the Mac's
 * addresses on that network. The Mac at 192.168.64.1 (its DNS proxy too) on 192.168.64.0/24 is
 * the default shared network; a Mac may use another (vmnet's Shared_Net_Address, or a conflict),
 * so the guest takes the DNS server and subnet its lease names over these.
 */
const natNetwork = { kind: 'dhcp', dns: '192.168.64.1', hostNet: '192.168.64.0/24' } as const;

async function clearControl(control: VmControl): Promise<void> {
  const files = vfkitFiles(control);
  await Promise.all([files.restSocket, files.pidFile].map((file) => rm(file, { force: true })));
}

function makeDriver(planner: boolean): Driver {
  return {
    name: 'vfkit',
    capabilities: { shares: ['virtiofs'], network: natNetwork, ssh: 'vsock-socket', rosetta: true, guestArch: 'aarch64' },
    control: vfkitControl,
    async shareSupport() {
      return { transports: ['virtiofs'], reason: "virtio-fs, Virtualization.framework's own" };
    },
    async chooseAccel(requested) {
      if (requested === 'kvm' || requested === 'tcg') {
        throw badInput(`--accel ${requested} does not apply to vfkit: Virtualization.framework always uses the Mac's hardware virtualization`, 'use --accel auto (or hvf), or --driver qemu');
      }
      return { accel: 'hvf', reason: "Virtualization.framework (the Mac's hardware virtualization)" };
    },
    prepareKernel(kernelImage, cacheDir, guestArch) {
      if (guestArch !== 'aarch64') throw badInput(`vfkit runs aarch64 guests on Apple Silicon, not ${guestArch}`, 'drop --arch (x86_64-linux builds run through Rosetta), or use --driver qemu');
      return prepareKernel(kernelImage, cacheDir, guestArch);
    },
    async commandLine(plan, control) {
      return vfkitArgv(vfkitConfig(plan, control));
    },
    async launch(plan, control) {
      if (planner) throw failed('vfkit runs on macOS only: this host can only plan its command line', 'use start --dry-run');
      return launchVfkit(vfkitConfig(plan, control), plan.processLog);
    },
    async rosettaInstalled() {
      // a plan for an Apple Silicon Mac assumes Rosetta installed (--no-rosetta plans without it)
      return planner || rosettaInstalled();
    },
    ownsProcess(pid, control) {
      return ownsVfkitProcess(pid, vfkitFiles(control).restSocket);
    },
    findProcesses(control) {
      return findVfkitProcesses(vfkitFiles(control).restSocket);
    },
    pressPowerButton(pid, control) {
      return pressVfkitPowerButton(pid, vfkitFiles(control).restSocket);
    },
    async forceStop(pid, control, timeoutMs) {
      await forceStopVfkit(pid, vfkitFiles(control).restSocket, timeoutMs);
    },
    clearControl,
  };
}

export const vfkitDriver: Driver = makeDriver(false);
export const vfkitPlanner: Driver = makeDriver(true);
