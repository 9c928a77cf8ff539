/**
 * The QEMU command line, as data: a pure function of the launch plan and the QEMU-only facts
 * (its control files, the host's TSC, the firmware).
 *
 * x86_64 boots on `microvm` (virtio-mmio, no PCI, no firmware ROMs): the PVH vmlinux is entered
 * directly, and a bzImage boots there too through qboot (slower: the guest decompresses it).
 * aarch64 guests boot on `virt` with PCI devices, natively on an aarch64 host or under TCG on an
 * x86_64 one; the machine follows the guest, not the host. Each device of the plan renders its
 * own options; paths inside option lists have their commas doubled.
 */
import type { LaunchPlan } from '../driver.js';
import type { Device } from '../devices.js';
import type { QemuFiles } from './files.js';

/** What only QEMU needs besides the plan. */
export interface QemuHost {
  readonly files: QemuFiles;
  /** Host TSC frequency, passed to microvm guests so TCG boots never hang calibrating it. */
  readonly tscKhz: number | undefined;
  /**
   * The firmware microvm runs before the PVH kernel: qboot where the host has it. QEMU 10's own
   * default for microvm (SeaBIOS) loses the ACPI tables when an initrd is loaded, and with them
   * every virtio-mmio device.
   */
  readonly firmware?: string | undefined;
  /** The virtiofsd socket of each virtio-fs share, in plan order. */
  readonly shareSockets?: readonly string[];
}

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

/**
 * True when a QEMU command line boots aarch64 virt, whose power key (gpio-keys on its device tree)
 * system_powerdown presses; microvm's guest has no listener for its ACPI power button.
 */
export function bootsPowerKeyMachine(commandLine: string): boolean {
  return /(^| )-machine virt([, ]|$)/.test(commandLine);
}

/** The QEMU program for the plan's guest: qemu-system-x86_64 or qemu-system-aarch64. */
export function qemuBinary(plan: LaunchPlan): string {
  return machineProfile(plan).binary;
}

/** A value inside a QEMU option list ("a=1,b=2"): a comma is written as two. */
export function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

export function qemuArgv(plan: LaunchPlan, host: QemuHost): string[] {
  const profile = machineProfile(plan);
  // vhost-user devices (virtiofsd) map the guest's memory: it must be a shareable memfd.
  const sharedMemory = plan.devices.some((d) => d.kind === 'share' && d.transport === 'virtiofs');
  return [
    profile.binary,
    '-name', `linux-builder-${plan.name}`,
    '-machine', sharedMemory ? `${profile.machine},memory-backend=mem` : profile.machine,
    ...(sharedMemory ? ['-object', `memory-backend-memfd,id=mem,size=${plan.memoryMiB}M,share=on`] : []),
    // vhost-user (libvhost-user) has no legacy virtio: microvm's virtio-mmio must be version 2.
    ...(sharedMemory && profile.bus === 'device' ? ['-global', 'virtio-mmio.force-legacy=false'] : []),
    '-accel', plan.accel,
    '-cpu', cpuModel(plan),
    '-smp', String(plan.cores),
    '-m', `${plan.memoryMiB}M`,
    '-nodefaults', '-no-user-config', '-display', 'none',
    // With panic=-1 a guest kernel panic reboots, and -no-reboot turns that into QEMU exiting.
    '-no-reboot',
    '-qmp', `unix:${optionValue(host.files.qmpSocket)},server=on,wait=off`,
    '-pidfile', host.files.pidFile,
    ...(profile.bus === 'device' && host.firmware !== undefined ? ['-bios', host.firmware] : []),
    '-kernel', plan.kernel.path,
    '-initrd', plan.initrd,
    '-append', kernelCommandLine(plan, profile, host),
    ...deviceArgs(plan.devices, profile, host.shareSockets ?? []),
  ];
}

/** Every device's options, in plan order; ids count per kind (fs0, fs1, …). */
function deviceArgs(devices: readonly Device[], profile: MachineProfile, shareSockets: readonly string[]): string[] {
  const model = (name: string): string => `virtio-${name}-${profile.bus}`;
  let shares = 0;
  let virtiofs = 0;
  let disks = 0;
  let nics = 0;
  return devices.flatMap((device): string[] => {
    switch (device.kind) {
      case 'console':
        return ['-serial', `file:${device.log}`];
      case 'share': {
        if (device.transport === 'virtiofs') {
          const index = virtiofs++;
          const socket = shareSockets[index];
          if (socket === undefined) throw new Error(`qemuArgv: no virtiofsd socket for share ${device.tag}`);
          return [
            '-chardev', `socket,id=vfs${index},path=${optionValue(socket)}`,
            '-device', `vhost-user-fs-${profile.bus},chardev=vfs${index},tag=${device.tag},queue-size=1024`,
          ];
        }
        const id = `fs${shares++}`;
        return [
          '-fsdev', `local,id=${id},path=${optionValue(device.hostPath)},security_model=none,readonly=on`,
          '-device', `${model('9p')},fsdev=${id},mount_tag=${device.tag}`,
        ];
      }
      case 'disk': {
        const id = `disk${disks++}`;
        // discard=unmap: what the guest frees (ext4 discard) becomes holes again in the sparse file.
        const cache = device.ephemeral ? 'unsafe' : 'writeback';
        return [
          '-drive', `file=${optionValue(device.path)},if=none,id=${id},format=raw,cache=${cache},discard=unmap`,
          '-device', `${model('blk')},drive=${id}`,
        ];
      }
      case 'net': {
        const id = `n${nics++}`;
        // IPv6 off: QEMU's user network would show the host's ::1 to the guest.
        const forwards = device.forwards.map((f) => `,hostfwd=tcp:${f.host.host}:${f.host.port}-:${f.guestPort}`).join('');
        // No option ROM on a PCI NIC: iPXE's POST costs 2-3 s under TCG; virtio-mmio has none.
        const rom = profile.bus === 'pci' ? ',romfile=' : '';
        return ['-netdev', `user,id=${id},ipv6=off${forwards}`, '-device', `${model('net')},netdev=${id}${rom}`];
      }
      case 'rng':
        return ['-device', model('rng')];
      case 'vsock':
      case 'rosetta':
        throw new Error(`qemuArgv: the QEMU driver has no ${device.kind} device`);
    }
  });
}

/**
 * The host's CPU where the guest runs on it; under TCG everything the emulator offers, less what
 * the emulator does slowly:
 * - an aarch64 guest on another host gets the cheap implementation-defined pointer
 *   authentication: emulating the architected QARMA cipher costs a large share of the guest's
 *   time;
 * - an x86_64 guest gets no ERMS (see {@link tcgStringArgs}).
 */
function cpuModel(plan: LaunchPlan): string {
  if (plan.accel !== 'tcg') return 'host';
  if (plan.guestArch === 'aarch64') return plan.hostArch !== 'aarch64' ? 'max,pauth-impdef=on' : 'max';
  return 'max,-erms';
}

/**
 * TCG runs x86's string instructions (`rep stos`, `rep movs`) one iteration at a time, so a
 * kernel that zeroes and copies pages with them (what it picks when the CPU says ERMS or
 * "rep good") spends most of its time there: zeroing every page a process touches, copying every
 * file page read. Without ERMS (-cpu max,-erms) and without the kernel's REP_GOOD
 * (clearcpuid=rep_good), the kernel and glibc use plain loops that TCG translates once. Measured
 * under TCG, same run: a warm aarch64 build through the agent 4.52 s → 2.94 s, the agent's boot
 * with the host store registered 24.6 s → 15.7 s (docs/BENCHMARKS.md); a bare boot is unchanged.
 */
function tcgStringArgs(plan: LaunchPlan): string[] {
  return plan.accel === 'tcg' && plan.guestArch === 'x86_64' ? ['clearcpuid=rep_good'] : [];
}

function kernelCommandLine(plan: LaunchPlan, profile: MachineProfile, host: QemuHost): string {
  const args = [`console=${profile.console}`, ...plan.kernelArgs];
  if (!args.some((arg) => arg.startsWith('panic='))) args.push('panic=-1');
  if (!args.some((arg) => arg.startsWith('clearcpuid='))) args.push(...tcgStringArgs(plan));
  if (profile.pinTsc && host.tscKhz !== undefined && !args.some((arg) => arg.startsWith('tsc_early_khz='))) {
    args.push(`tsc_early_khz=${host.tscKhz}`);
  }
  return args.join(' ');
}
