/**
 * The guest's init, rc script and /etc, generated here and nowhere else: the scripts are files
 * (scripts/*.sh) rendered with the image's settings. Nothing secret is in them: keys arrive
 * through the config share at boot and are copied, then the share is unmounted.
 */
import type { ShareTransport } from '../drivers/devices.js';
import { failedMarker, guestShareFiles, readyMarker, shareTags } from './layout.js';
import { renderScript, shellAssignments } from './scripts.js';
import { rosettaDir } from '../platform/systems.js';

/** Where things sit inside the initramfs. */
export const guestPaths = {
  busyboxDir: '/bb',
  modulesDir: '/modules',
  sshDir: '/opt/ssh',
  sshLibDir: '/opt/ssh/lib',
  configMount: '/run/lbconfig',
  /** The overlay's upper layer: the instance disk's file system, or a tmpfs without one. */
  rwStore: '/nix/.rw-store',
  /** A GC root for every host path registered in the guest's database (see nix/store-sync.ts). */
  hostRoots: '/nix/var/nix/gcroots/linux-builder-host',
  sshdLog: '/run/sshd.log',
  collectorLog: '/run/gc.log',
  /** The guest's garbage collector (scripts/collect-garbage.sh). */
  collector: '/etc/collect-garbage',
  /** min-free and max-free in bytes, one line, written at boot when there is a disk. */
  gcThresholds: '/run/gc.thresholds',
  /** First in the PATH of SSH sessions: the nix-daemon that every remote build starts. */
  sessionBinDir: '/opt/builder/bin',
  /** Starts spare nix-daemons (scripts/nix-daemon-spares.sh). */
  spares: '/etc/nix-daemon-spares',
  /** The spare nix-daemons' FIFOs, and ready/ with one file (pids) per spare a connection may take. */
  sparesDir: '/run/nix-daemon-spares',
  /** udhcpc's hook (scripts/udhcpc.sh), for a network that hands out leases. */
  dhcpScript: '/etc/udhcpc.script',
  /** busybox init's shutdown action (scripts/shutdown.sh): every process ended, the disk unmounted. */
  shutdownScript: '/etc/shutdown',
  /** The power button's listener (scripts/power-button.sh). */
  powerButton: '/etc/power-button',
} as const;

/**
 * Spare nix-daemons kept waiting for build connections (daemon.ts): one per build the host may
 * start at once, up to two (each holds a loaded Nix in memory).
 */
export const spareDaemons = 2;

/** The userland's programs the guest's scripts run, as paths in the guest (its /usr). */
export interface GuestTools {
  readonly mkfsExt4: string;
  readonly resize2fs: string;
  /** iproute2's ip: busybox's knows no uidrange, which keeps builds off the host's loopback. */
  readonly iproute2: string;
  readonly nixStore: string;
  readonly nixDaemon: string;
  readonly fallocate: string;
  /** socat, the relay from the guest's vsock port to sshd (SSH over vsock: vfkit). */
  readonly socat: string;
}

export type NineCache = 'loose' | 'fscache' | 'mmap' | 'none';

/** Module load levels: the modules of one level load in parallel, the next level waits for them. */
export type LoadLevels = readonly (readonly string[])[];

/**
 * Kernel modules by the boot step that needs them, each group without the modules of the groups
 * before it.
 */
export interface ModuleGroups {
  /** virtio core and the mmio transport. */
  readonly boot: LoadLevels;
  /** What each share transport needs; the guest loads those of the transport the plan chose. */
  readonly shares: Readonly<Record<ShareTransport, LoadLevels>>;
  /** The virtio PCI transport (aarch64 virt); loaded only when the guest has PCI devices. */
  readonly pci: LoadLevels;
  /** The NIC, loaded in the background with the network. */
  readonly net: LoadLevels;
  /** Everything else (rng, overlay, binfmt_misc, extras), loaded while sshd starts. */
  readonly late: LoadLevels;
  /** virtio_blk, ext4 and what they need; loaded in the background only when the disk is attached. */
  readonly disk: LoadLevels;
  /** The virtio vsock transport; loaded only when SSH comes over vsock (lb.sshvsock). */
  readonly vsock: LoadLevels;
  /** The power key (gpio-keys) and evdev to read it; loaded only where a device tree describes the machine. */
  readonly power: LoadLevels;
}

export interface InitOptions {
  readonly modules: ModuleGroups;
  /** 9p cache mode of the /usr and /nix/store shares; loose is fast but misses host paths added after boot. */
  readonly cache: NineCache;
  readonly tools: GuestTools;
  /** sshd -r: no re-exec per connection, saving an exec under TCG; only OpenSSH before 9.8 has it. */
  readonly sshdNoReexec?: boolean;
  /** Extra sshd_config lines, e.g. SshdSessionPath for a split OpenSSH. */
  readonly sshdExtraConfig?: readonly string[];
}

export function initScript(): string {
  return renderScript('init', { BUSYBOX_DIR: guestPaths.busyboxDir });
}

/** udhcpc's hook: the lease's address and route. */
export function dhcpScript(): string {
  return renderScript('udhcpc', { BUSYBOX_DIR: guestPaths.busyboxDir });
}

export function inittab(): string {
  const bb = guestPaths.busyboxDir;
  return [
    '::sysinit:/etc/rc.builder',
    `::askfirst:-${bb}/sh`,
    `::ctrlaltdel:${bb}/reboot`,
    `::shutdown:${guestPaths.shutdownScript}`,
    '',
  ].join('\n');
}

/** The API file systems, mounted by one `mount -a` after devtmpfs: a process each costs under TCG. */
export function fstab(): string {
  return [
    'proc /proc proc defaults 0 0',
    'sysfs /sys sysfs defaults 0 0',
    'devpts /dev/pts devpts gid=5,mode=620,ptmxmode=666 0 0',
    'tmpfs /dev/shm tmpfs mode=1777 0 0',
    'tmpfs /run tmpfs mode=0755 0 0',
    'tmpfs /tmp tmpfs mode=1777 0 0',
    '',
  ].join('\n');
}

/** One `load` line a level. */
function loadLines(levels: LoadLevels): string[] {
  return levels.filter((level) => level.length > 0).map((level) => `load ${level.join(' ')}`);
}

/** The boot script: scripts/rc.builder.sh with this image's paths, tools and modules. */
export function rcBuilder(options: InitOptions): string {
  const { modules, tools } = options;
  const f = guestShareFiles;
  const settings = shellAssignments({
    busybox_dir: guestPaths.busyboxDir,
    modules_dir: guestPaths.modulesDir,
    ssh_dir: guestPaths.sshDir,
    sshd_flags: options.sshdNoReexec ? '-r' : '',
    sshd_log: guestPaths.sshdLog,
    config_dir: guestPaths.configMount,
    rw_store: guestPaths.rwStore,
    host_roots: guestPaths.hostRoots,
    collector: guestPaths.collector,
    spares: guestPaths.spares,
    spare_daemons: String(spareDaemons),
    gc_thresholds: guestPaths.gcThresholds,
    dhcp_script: guestPaths.dhcpScript,
    power_button: guestPaths.powerButton,
    usr_tag: shareTags.usr,
    store_tag: shareTags.store,
    config_tag: shareTags.config,
    nine_cache: `msize=512000,cache=${options.cache}`,
    host_key: f.hostKey,
    host_key_pub: f.hostKeyPub,
    authorized_keys: f.authorizedKeys,
    nix_conf: f.nixConf,
    hostname_file: f.hostname,
    binfmt_file: f.binfmt,
    rosetta_file: f.rosetta,
    rosetta_tag: shareTags.rosetta,
    rosetta_dir: rosettaDir,
    disk_file: f.disk,
    mkfs_ext4: tools.mkfsExt4,
    resize2fs: tools.resize2fs,
    iproute2: tools.iproute2,
    socat: tools.socat,
    ready_marker: readyMarker,
    failed_marker: failedMarker,
  });
  return renderScript('rc.builder', {
    BUSYBOX_DIR: guestPaths.busyboxDir,
    SETTINGS: settings,
    LOAD_BOOT: loadLines(modules.boot),
    LOAD_9P: loadLines(modules.shares['9p']),
    LOAD_VIRTIOFS: loadLines(modules.shares.virtiofs),
    LOAD_PCI: loadLines(modules.pci),
    LOAD_NET: loadLines(modules.net),
    LOAD_DISK: loadLines(modules.disk),
    LOAD_LATE: loadLines(modules.late),
    LOAD_VSOCK: loadLines(modules.vsock),
    LOAD_POWER: loadLines(modules.power),
  });
}

/** What an SSH session's PATH is: sshd's default for root, behind the guest's own wrappers. */
export const sessionPath = `${guestPaths.sessionBinDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

export function sshdConfig(extra: readonly string[] = []): string {
  return [
    'Port 22',
    `SetEnv PATH=${sessionPath}`,
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'AuthorizedKeysFile .ssh/authorized_keys',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'UseDNS no',
    '# the default post-quantum sntrup761 kex costs about 0.3 s per connection under TCG',
    'KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256',
    'PrintMotd no',
    'PidFile /run/sshd.pid',
    '# the Nix build hook keeps a master connection and opens parallel ones',
    'MaxSessions 64',
    // The agent releases every connection that waited for a boot at once: never drop one.
    'MaxStartups 200',
    ...extra,
    '',
  ].join('\n');
}

/**
 * Nix's build users, as on NixOS: group nixbld, users nixbld1… with uids from 30001. Nix runs
 * at most this many builds at once (max-jobs is capped to it).
 */
export const buildUsers = { group: 'nixbld', gid: 30000, count: 32 } as const;

function buildUserNames(): string[] {
  return Array.from({ length: buildUsers.count }, (_, i) => `${buildUsers.group}${i + 1}`);
}

/** /etc files that are the same for every instance; mode 0644 unless listed otherwise. */
export function etcFiles(): Record<string, { text: string; mode: number }> {
  const file = (text: string, mode = 0o644) => ({ text, mode });
  const builders = buildUserNames();
  return {
    passwd: file(
      [
        'root:x:0:0:root:/root:/bin/sh',
        'sshd:x:100:65534::/run/sshd:/usr/sbin/nologin',
        'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
        ...builders.map((user, i) => `${user}:x:${buildUsers.gid + i + 1}:${buildUsers.gid}:Nix build user ${i + 1}:/var/empty:/usr/sbin/nologin`),
        '',
      ].join('\n'),
    ),
    group: file(`root:x:0:\ntty:x:5:\nnogroup:x:65534:\n${buildUsers.group}:x:${buildUsers.gid}:${builders.join(',')}\n`),
    shadow: file(['root', 'sshd', 'nobody', ...builders].map((user) => `${user}:*:19000:0:99999:7:::\n`).join(''), 0o600),
    'nsswitch.conf': file('passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n'),
    hosts: file('127.0.0.1 localhost\n::1 localhost\n'),
    hostname: file('linux-builder\n'),
    shells: file('/bin/sh\n/bin/bash\n/usr/bin/bash\n/usr/bin/sh\n'),
    inittab: file(inittab()),
    fstab: file(fstab()),
  };
}
