/**
 * The QEMU command line, as data: a pure function of the launch plan.
 *
 * x86_64 boots on `microvm` (virtio-mmio, no PCI, no firmware ROMs): the PVH vmlinux is entered
 * directly, and a bzImage boots there too through qboot (slower: the guest decompresses it).
 * aarch64 guests boot on `virt` with PCI devices, natively on an aarch64 host or under TCG on an
 * x86_64 one; the machine follows the guest, not the host. Paths inside option lists have their
 * commas doubled.
 */
import type { LaunchPlan } from '../driver.js';

interface MachineProfile {
  readonly binary: string;
  readonly machine: string;
  /** Device model suffix: virtio-mmio ("device") or PCI ("pci"). */
  readonly bus: 'device' | 'pci';
  readonly console: string;
  /** microvm has no HPET/ACPI PM timer: TSC calibration under TCG hangs ~3 boots in 4 without it. */
  readonly pinTsc: boolean;
}

function machineProfile(plan: LaunchPlan): MachineProfile {
  if (plan.guestArch === 'aarch64') {
    return {
      binary: 'qemu-system-aarch64',
      machine: plan.accel === 'tcg' ? 'virt' : 'virt,gic-version=max',
      bus: 'pci',
      console: 'ttyAMA0',
      pinTsc: false,
    };
  }
  return {
    binary: 'qemu-system-x86_64',
    machine: 'microvm,acpi=on,rtc=on',
    bus: 'device',
    console: 'ttyS0',
    pinTsc: true,
  };
}

/** A value inside a QEMU option list ("a=1,b=2"): a comma is written as two. */
export function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

export function qemuArgv(plan: LaunchPlan): string[] {
  const profile = machineProfile(plan);
  const device = (model: string): string => `virtio-${model}-${profile.bus}`;
  // No option ROM on a PCI NIC: iPXE's POST costs 2-3 s under TCG; virtio-mmio has none.
  const nicRom = profile.bus === 'pci' ? ',romfile=' : '';
  return [
    profile.binary,
    '-name', `linux-builder-${plan.name}`,
    '-machine', profile.machine,
    '-accel', plan.accel,
    '-cpu', cpuModel(plan),
    '-smp', String(plan.cores),
    '-m', `${plan.memoryMiB}M`,
    '-nodefaults', '-no-user-config', '-display', 'none',
    // With panic=-1 a guest kernel panic reboots, and -no-reboot turns that into QEMU exiting.
    '-no-reboot',
    '-serial', `file:${plan.consoleLog}`,
    '-qmp', `unix:${optionValue(plan.qmpSocket)},server=on,wait=off`,
    '-pidfile', plan.pidFile,
    ...(profile.bus === 'device' && plan.firmware !== undefined ? ['-bios', plan.firmware] : []),
    '-kernel', plan.kernel.path,
    '-initrd', plan.initrd,
    '-append', kernelCommandLine(plan, profile),
    ...plan.shares.flatMap((share, index) => [
      '-fsdev', `local,id=fs${index},path=${optionValue(share.hostPath)},security_model=none,readonly=on`,
      '-device', `${device('9p')},fsdev=fs${index},mount_tag=${share.tag}`,
    ]),
    ...(plan.disk
      ? [
          // discard=unmap: what the guest frees (ext4 discard) becomes holes again in the sparse file.
          '-drive', `file=${optionValue(plan.disk.path)},if=none,id=disk0,format=raw,cache=${plan.disk.cache},discard=unmap`,
          '-device', `${device('blk')},drive=disk0`,
        ]
      : []),
    '-netdev', `user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:${plan.sshPort}-:22`,
    '-device', `${device('net')},netdev=n0${nicRom}`,
    '-device', device('rng'),
  ];
}

/**
 * The host's CPU where the guest runs on it; under TCG everything the emulator offers, but an
 * aarch64 guest on another host gets the cheap implementation-defined pointer authentication:
 * emulating the architected QARMA cipher costs a large share of the guest's time.
 */
function cpuModel(plan: LaunchPlan): string {
  if (plan.accel !== 'tcg') return 'host';
  return plan.guestArch === 'aarch64' && plan.hostArch !== 'aarch64' ? 'max,pauth-impdef=on' : 'max';
}

function kernelCommandLine(plan: LaunchPlan, profile: MachineProfile): string {
  const args = [`console=${profile.console}`, ...plan.kernelArgs];
  if (!args.some((arg) => arg.startsWith('panic='))) args.push('panic=-1');
  if (profile.pinTsc && plan.tscKhz !== undefined && !args.some((arg) => arg.startsWith('tsc_early_khz='))) {
    args.push(`tsc_early_khz=${plan.tscKhz}`);
  }
  return args.join(' ');
}
