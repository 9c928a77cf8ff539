/**
 * What the orchestration (instance/lifecycle) needs from a hypervisor. A driver launches,
 * inspects and stops its VM and declares what it can do; it never decides policy.
 */
import type { Device, ShareTransport } from './devices.js';

export type { Device, ShareTransport } from './devices.js';

export type Accel = 'kvm' | 'hvf' | 'tcg';
export type AccelChoice = Accel | 'auto';
export type HostArch = 'x86_64' | 'aarch64';
/** The guest's CPU architecture (--arch): the host's by default, or one TCG emulates. */
export type GuestArch = HostArch;

/**
 * How the guest's network card is set up inside the guest: fixed addresses the hypervisor's
 * network expects (QEMU's user network), or a lease from its DHCP server (a NAT that hands them
 * out). Either way the driver says where the host's own loopback answers the guest (builds are
 * kept off it) and which DNS server builds may still reach.
 */
export type GuestNetwork =
  | {
      readonly kind: 'static';
      /** The guest's address with its prefix length, e.g. 10.0.2.15/24. */
      readonly address: string;
      readonly gateway: string;
      readonly dns: string;
      readonly hostNet: string;
    }
  | { readonly kind: 'dhcp'; readonly dns: string; readonly hostNet: string };

/** What a driver offers; the orchestration reads it to build the launch plan and tell the guest. */
export interface DriverCapabilities {
  /** How directories reach the guest, best first. */
  readonly shares: readonly ShareTransport[];
  readonly network: GuestNetwork;
  /**
   * Where the host reaches the guest's sshd: a loopback port the hypervisor forwards to the
   * guest's port 22 (a net device forward), or a unix socket it relays to a guest vsock port
   * (a vsock device).
   */
  readonly ssh: 'forwarded-port' | 'vsock-socket';
  /** The hypervisor can share Apple's Rosetta for Linux with the guest (a rosetta device). */
  readonly rosetta: boolean;
  /** Set when the hypervisor runs guests of one architecture only (vfkit: the Mac's aarch64). */
  readonly guestArch?: GuestArch;
}

/** The share transports a driver can use on this host now, best first, and why. */
export interface ShareSupport {
  readonly transports: readonly ShareTransport[];
  /** One line: what is used and why, e.g. "virtio-fs through /usr/libexec/virtiofsd". */
  readonly reason: string;
  /** What the user can do to get the better transport, where something can be done. */
  readonly fix?: string;
}

/** A share transport failed at launch (its daemon did not start): the orchestration may plan another. */
export class ShareTransportFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShareTransportFailed';
  }
}

export interface AccelDecision {
  readonly accel: Accel;
  /** One line saying why, e.g. "/dev/kvm is not usable: the CPU has no vmx/svm". */
  readonly reason: string;
  /** What the user can do to get the faster accelerator, where something can be done. */
  readonly fix?: string;
}

/** A kernel ready to boot, as the driver prepared it (e.g. vmlinux extracted for PVH). */
export interface BootKernel {
  readonly path: string;
  readonly format: 'vmlinux-pvh' | 'bzImage' | 'image';
}

export interface LaunchPlan {
  /** Instance name; also the VM's name in process listings. */
  readonly name: string;
  readonly hostArch: HostArch;
  /** The guest's architecture: the machine, the console and the devices follow it. */
  readonly guestArch: GuestArch;
  readonly accel: Accel;
  readonly cores: number;
  readonly memoryMiB: number;
  readonly kernel: BootKernel;
  readonly initrd: string;
  /** Guest kernel arguments; the driver adds its console and machine-specific ones. */
  readonly kernelArgs: readonly string[];
  readonly devices: readonly Device[];
  /** Where the hypervisor's own stdout/stderr go. */
  readonly processLog: string;
}

/**
 * How a driver finds and controls one instance's VM (QEMU: a QMP socket and a pid file named
 * inside the instance's runtime dir). Made by the driver; the orchestration only passes it back,
 * and checks the socket paths before anything is written.
 */
export interface VmControl {
  readonly runtimeDir: string;
  /** Unix sockets the driver creates for this VM: each must stay within the 103-byte limit. */
  readonly sockets: readonly string[];
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: string | null;
}

export interface RunningVm {
  readonly pid: number;
  /** Resolves when the process exits; only for a VM this process launched. */
  readonly exited: Promise<ExitInfo>;
  /** Where the hypervisor's own stdout/stderr go. */
  readonly processLog: string;
}

export interface Driver {
  readonly name: 'qemu' | 'vfkit';
  readonly capabilities: DriverCapabilities;
  /** Decides the accelerator for a request and a guest; throws a UserError when an explicit one cannot work. */
  chooseAccel(requested: AccelChoice, guestArch: GuestArch): Promise<AccelDecision>;
  /** The share transports usable on this host now (a daemon found, run as whom), best first. */
  shareSupport(): Promise<ShareSupport>;
  /** Turns a distribution kernel of the guest's architecture into what this driver boots fastest; cached under cacheDir. */
  prepareKernel(kernelImage: string, cacheDir: string, guestArch: GuestArch): Promise<BootKernel>;
  /** The handle for this instance's VM, from the instance's runtime dir (short, private). */
  control(runtimeDir: string): VmControl;
  /** Spawns the VM detached from this process; does not wait for SSH. Throws a UserError for a device it does not have. */
  launch(plan: LaunchPlan, control: VmControl): Promise<RunningVm>;
  /** The hypervisor's command line launch would run, without running it (start --dry-run). */
  commandLine(plan: LaunchPlan, control: VmControl): Promise<string[]>;
  /** Whether Apple's Rosetta is installed for the rosetta device (false where the driver has none). */
  rosettaInstalled(): Promise<boolean>;
  /** True when pid is this instance's VM process (not a recycled pid of another program). */
  ownsProcess(pid: number, control: VmControl): Promise<boolean>;
  /**
   * This instance's live VM processes, found by command line: for when the state files cannot
   * say (corrupt or removed). Throws when processes cannot be listed.
   */
  findProcesses(control: VmControl): Promise<number[]>;
  /**
   * Presses the guest's power button through the hypervisor (the guest then powers off cleanly);
   * resolves true when the hypervisor took the press, false when it has no power button for this
   * VM, did not answer, or pid is not this VM. Does not wait for the guest.
   */
  pressPowerButton(pid: number, control: VmControl): Promise<boolean>;
  /** Stops hard: the hypervisor's own quit, then SIGKILL; resolves when the process is gone. */
  forceStop(pid: number, control: VmControl, timeoutMs: number): Promise<void>;
  /** Removes what a VM that is gone left behind (sockets, pid file); never touches a live one's. */
  clearControl(control: VmControl): Promise<void>;
}
