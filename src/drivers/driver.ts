/**
 * What the orchestration (instance/lifecycle) needs from a hypervisor. A driver launches,
 * inspects and stops its VM and declares what it can do; it never decides policy.
 */
export type Accel = 'kvm' | 'hvf' | 'tcg';
export type AccelChoice = Accel | 'auto';
export type HostArch = 'x86_64' | 'aarch64';
/** The guest's CPU architecture (--arch): the host's by default, or one TCG emulates. */
export type GuestArch = HostArch;

export interface DriverCapabilities {
  readonly rosetta: boolean;
  readonly storeShare: '9p' | 'virtiofs';
  readonly network: 'user-hostfwd' | 'nat';
  readonly gracefulStop: boolean;
  readonly vsock: boolean;
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

/** The instance disk: a raw, sparse file the guest sees as its only block device. */
export interface Disk {
  readonly path: string;
  /** writeback honours the guest's flushes (the disk outlives the VM); unsafe skips them (wiped at every start). */
  readonly cache: 'writeback' | 'unsafe';
}

/** A read-only directory shared with the guest. */
export interface Share {
  readonly tag: string;
  readonly hostPath: string;
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
  readonly shares: readonly Share[];
  /** The instance disk, when it has one. */
  readonly disk?: Disk;
  /** Host TCP port on 127.0.0.1 forwarded to the guest's port 22. */
  readonly sshPort: number;
  /** Host TSC frequency, passed to microvm guests so TCG boots never hang calibrating it. */
  readonly tscKhz: number | undefined;
  /**
   * The firmware microvm runs before the PVH kernel: qboot where the host has it. QEMU 10's own
   * default for microvm (SeaBIOS) loses the ACPI tables when an initrd is loaded, and with them
   * every virtio-mmio device.
   */
  readonly firmware?: string;
  readonly consoleLog: string;
  /** Where the hypervisor's own stdout/stderr go. */
  readonly processLog: string;
  readonly qmpSocket: string;
  readonly pidFile: string;
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
  /** Turns a distribution kernel of the guest's architecture into what this driver boots fastest; cached under cacheDir. */
  prepareKernel(kernelImage: string, cacheDir: string, guestArch: GuestArch): Promise<BootKernel>;
  /** Spawns the VM detached from this process; does not wait for SSH. */
  launch(plan: LaunchPlan): Promise<RunningVm>;
  /** True when pid is this instance's VM process (not a recycled pid of another program). */
  ownsProcess(pid: number, plan: Pick<LaunchPlan, 'qmpSocket'>): Promise<boolean>;
  /**
   * This instance's live VM processes, found by command line: for when the state files cannot
   * say (corrupt or removed). Throws when processes cannot be listed.
   */
  findProcesses(plan: Pick<LaunchPlan, 'qmpSocket'>): Promise<number[]>;
  /** Stops hard: the hypervisor's own quit, then SIGKILL; resolves when the process is gone. */
  forceStop(pid: number, plan: Pick<LaunchPlan, 'qmpSocket'>, timeoutMs: number): Promise<void>;
}
