/**
 * The launch plan rendered for vfkit: each device of the plan becomes a vfkit device, and a
 * device vfkit does not have (a 9p share, a forwarded port) is refused with what to do instead.
 * Pure; the control files (REST socket, pid file) sit in the instance's runtime dir.
 */
import { join } from 'node:path';
import { badInput } from '../../errors.js';
import type { LaunchPlan, VmControl } from '../driver.js';
import type { Device } from '../devices.js';
import { stableMac, type VfkitConfig, type VfkitDevice } from './argv.js';

export interface VfkitFiles {
  /** vfkit's REST API; also what names this instance's vfkit in process listings. */
  readonly restSocket: string;
  readonly pidFile: string;
}

export function vfkitFiles(control: Pick<VmControl, 'runtimeDir'>): VfkitFiles {
  return { restSocket: join(control.runtimeDir, 'vfkit.sock'), pidFile: join(control.runtimeDir, 'vm.pid') };
}

export function vfkitControl(runtimeDir: string): VmControl {
  return { runtimeDir, sockets: [vfkitFiles({ runtimeDir }).restSocket] };
}

function render(device: Device, plan: LaunchPlan): VfkitDevice {
  switch (device.kind) {
    case 'console':
      return { kind: 'virtio-serial', logFile: device.log };
    case 'share':
      if (device.transport !== 'virtiofs') throw badInput(`vfkit shares directories over virtio-fs only, not ${device.transport} (share ${device.tag})`);
      return { kind: 'virtio-fs', sharedDir: device.hostPath, mountTag: device.tag };
    case 'disk':
      return { kind: 'virtio-blk', path: device.path };
    case 'net':
      if (device.forwards.length > 0) {
        throw badInput("vfkit's NAT cannot forward a host port into the guest", 'the vfkit driver reaches SSH over vsock: plan a vsock device instead');
      }
      return { kind: 'virtio-net', mac: stableMac(plan.name) };
    case 'vsock':
      return { kind: 'virtio-vsock', port: device.guestPort, socket: device.socket, direction: 'connect' };
    case 'rng':
      return { kind: 'virtio-rng' };
    case 'rosetta':
      return { kind: 'rosetta', mountTag: device.tag };
  }
}

export function vfkitConfig(plan: LaunchPlan, control: Pick<VmControl, 'runtimeDir'>): VfkitConfig {
  if (plan.guestArch !== 'aarch64') throw badInput(`vfkit runs aarch64 guests on Apple Silicon, not ${plan.guestArch}`, 'drop --arch, or use --driver qemu');
  if (plan.kernel.format !== 'image') throw badInput(`vfkit boots an uncompressed arm64 Image, not a ${plan.kernel.format} (${plan.kernel.path})`);
  const files = vfkitFiles(control);
  return {
    cpus: plan.cores,
    memoryMiB: plan.memoryMiB,
    kernel: plan.kernel.path,
    initrd: plan.initrd,
    kernelArgs: plan.kernelArgs,
    devices: plan.devices.map((device) => render(device, plan)),
    restSocket: files.restSocket,
    pidFile: files.pidFile,
  };
}
