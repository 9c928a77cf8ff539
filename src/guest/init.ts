/**
 * The text of the guest's init and /etc, generated here and nowhere else. Nothing secret is
 * in it: keys arrive through the config share at boot and are copied, then the share is
 * unmounted.
 */
import { failedMarker, guestShareFiles, readyMarker, shareTags } from './layout.js';
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
  /** The instance disk: the guest's only block device. */
  diskDevice: '/dev/vda',
  sshdLog: '/run/sshd.log',
  collectorLog: '/run/gc.log',
  /** The guest's garbage collector (collector.ts). */
  collector: '/etc/collect-garbage',
  /** min-free and max-free in bytes, one line, written at boot when there is a disk. */
  gcThresholds: '/run/gc.thresholds',
  /** iproute2's ip, from /usr: busybox ip knows no uidrange. */
  ipTool: '/usr/sbin/ip',
  /** First in the PATH of SSH sessions: the nix-daemon that every remote build starts. */
  sessionBinDir: '/opt/builder/bin',
} as const;

export type NineCache = 'loose' | 'fscache' | 'mmap' | 'none';

/**
 * Kernel modules by the boot step that needs them, each group without the modules of the groups
 * before it. A group is a list of levels: the modules of one level load in parallel.
 */
export interface ModuleGroups {
  /** virtio core, the mmio transport and 9p: /usr and the config share with the keys. */
  readonly boot: readonly (readonly string[])[];
  /** The virtio PCI transport (aarch64 virt); loaded only when the guest has PCI devices. */
  readonly pci: readonly (readonly string[])[];
  /** The NIC, loaded in the background with the network. */
  readonly net: readonly (readonly string[])[];
  /** Everything else (rng, overlay, binfmt_misc, extras), loaded while sshd starts. */
  readonly late: readonly (readonly string[])[];
  /** virtio_blk, ext4 and what they need; loaded in the background only when the disk is attached. */
  readonly disk: readonly (readonly string[])[];
}

export interface InitOptions {
  readonly modules: ModuleGroups;
  /** 9p cache mode of the /usr and /nix/store shares; loose is fast but misses host paths added after boot. */
  readonly cache: NineCache;
  /** sshd -r: no re-exec per connection, saving an exec under TCG; only OpenSSH before 9.8 has it. */
  readonly sshdNoReexec?: boolean;
  /** Extra sshd_config lines, e.g. SshdSessionPath for a split OpenSSH. */
  readonly sshdExtraConfig?: readonly string[];
}

/**
 * Nix's sandbox calls pivot_root, which the kernel refuses while the root is the initramfs
 * itself (the rootfs mount has no parent): everything runs on a bind mount of it moved over /.
 */
export function initScript(): string {
  const bb = guestPaths.busyboxDir;
  return [
    `#!${bb}/sh`,
    `${bb}/mount --bind / /mnt && cd /mnt && ${bb}/mount --move . / && exec ${bb}/chroot . ${bb}/init`,
    `exec ${bb}/init`,
    '',
  ].join('\n');
}

export function inittab(): string {
  const bb = guestPaths.busyboxDir;
  return [
    '::sysinit:/etc/rc.builder',
    `::askfirst:-${bb}/sh`,
    `::ctrlaltdel:${bb}/reboot`,
    `::shutdown:${bb}/sh -c 'sync; umount -a -r 2>/dev/null'`,
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

/** One `load` line a level: its modules load in parallel, the next level waits for them. */
function loadLines(levels: readonly (readonly string[])[], indent = ''): string[] {
  return levels.filter((level) => level.length > 0).map((level) => `${indent}load ${level.join(' ')}`);
}

const bootstrap = [
  'mount -t devtmpfs devtmpfs /dev 2>/dev/null',
  'mkdir -p /dev/pts /dev/shm',
  'mount -a || fail "mount -a (/etc/fstab)"',
];

/** PCI transport only where there is PCI (aarch64 virt): on microvm the kernel finds none. */
function pciLines(pci: ModuleGroups['pci']): string[] {
  if (pci.length === 0) return [];
  return ['set -- /sys/bus/pci/devices/*', 'if [ -e "$1" ]; then', ...loadLines(pci, '  '), 'fi'];
}

/** The NIC comes up as early as it can: until the guest answers, a probe of the host hangs. */
function networkLines(net: ModuleGroups['net']): string[] {
  return [
    '{',
    ...loadLines(net, '  '),
    '  ip link set lo up',
    '  ip link set eth0 up',
    '  ip addr add 10.0.2.15/24 dev eth0',
    '  ip route add default via 10.0.2.2',
    '  t network',
    '} &',
    'network=$!',
  ];
}

/**
 * The keys, copied out of the config share owned by root with tight modes: sshd's host key
 * first, so sshd can start; the rest while it starts. The names in the share are the names in
 * the guest, so one cp copies several files.
 */
function hostKeyLines(): string[] {
  const cfg = guestPaths.configMount;
  const f = guestShareFiles;
  return [
    `mkdir -p ${cfg} && mount -t 9p -o trans=virtio,version=9p2000.L,ro ${shareTags.config} ${cfg} || fail "mount ${shareTags.config}"`,
    'umask 077',
    `cp ${cfg}/${f.hostKey} ${cfg}/${f.hostKeyPub} /etc/ssh/ || fail "no ${f.hostKey} in the config share"`,
  ];
}

function restOfConfigLines(): string[] {
  const cfg = guestPaths.configMount;
  const f = guestShareFiles;
  return [
    `cp ${cfg}/${f.authorizedKeys} /root/.ssh/ || fail "no ${f.authorizedKeys} in the config share"`,
    `cp ${cfg}/${f.nixConf} /etc/nix/ 2>/dev/null`,
    `cp ${cfg}/${f.hostname} /etc/ 2>/dev/null`,
    `cp ${cfg}/${f.binfmt} /run/ 2>/dev/null`,
    `cp ${cfg}/${f.rosetta} /run/rosetta.mount 2>/dev/null`,
    'umask 022',
    `chmod 0644 /etc/ssh/${f.hostKeyPub} /etc/nix/${f.nixConf} /etc/${f.hostname} 2>/dev/null`,
    `umount ${cfg}`,
  ];
}

function sshdStartLines(noReexec: boolean): string[] {
  const sshd = `${guestPaths.sshDir}/sshd${noReexec ? ' -r' : ''} -f /etc/ssh/sshd_config -E ${guestPaths.sshdLog}`;
  return [
    'mkdir -p /run/sshd',
    '# in the background: the rest of the config, the store and binfmt are set up while sshd starts',
    `{ LD_LIBRARY_PATH=${guestPaths.sshLibDir} ${sshd} || touch /run/sshd.failed; } &`,
  ];
}

/**
 * The instance disk, set up in the background from when the config share says it is attached:
 * ext4 made on first boot (no superblock magic), grown when the device grew since the last
 * boot (the size is recorded on the disk), mounted at rwStore. Whiteouts at the top of the
 * upper layer are dropped: a host path the guest's GC deleted shows through again.
 */
function diskLines(disk: ModuleGroups['disk']): string[] {
  const rw = guestPaths.rwStore;
  const dev = guestPaths.diskDevice;
  const sectors = `/sys/block/${dev.slice('/dev/'.length)}/size`;
  return [
    `if [ -e ${guestPaths.configMount}/${guestShareFiles.disk} ]; then`,
    `  read -r _ gcmin gcmax < ${guestPaths.configMount}/${guestShareFiles.disk}`,
    '  {',
    ...loadLines(disk, '    '),
    '    t disk',
    '    n=0',
    `    while [ ! -b ${dev} ]; do n=$((n + 1)); [ $n -gt 500 ] && fail "no disk device ${dev}"; usleep 10000; done`,
    '    # mkfs.ext4 and resize2fs are the host\'s, through /usr',
    '    while [ ! -e /usr/sbin ]; do usleep 10000; done',
    `    read -r size < ${sectors}`,
    '    known=',
    `    if [ "$(hexdump -s 1080 -n 2 -e '2/1 "%02x"' ${dev})" != 53ef ]; then`,
    '      t mkfs',
    `      /usr/sbin/mkfs.ext4 -q -F -L linux-builder -E lazy_itable_init=1,lazy_journal_init=1,nodiscard ${dev} > /dev/console 2>&1 || fail "mkfs.ext4 ${dev}"`,
    '      known=$size',
    '    fi',
    `    mount -t ext4 -o noatime,discard ${dev} ${rw} || fail "mount ${dev} (ext4) on ${rw}"`,
    `    [ -z "$known" ] && [ -f ${rw}/.sectors ] && read -r known < ${rw}/.sectors`,
    '    if [ "$known" != "$size" ]; then',
    '      t resize2fs',
    `      /usr/sbin/resize2fs ${dev} > /dev/console 2>&1 || fail "resize2fs ${dev}"`,
    '    fi',
    `    echo $size > ${rw}/.sectors`,
    `    mkdir -p ${rw}/upper ${rw}/work ${rw}/var/nix ${rw}/tmp && chmod 1777 ${rw}/tmp || fail "directories on ${rw}"`,
    `    find ${rw}/upper -maxdepth 1 -type c -exec rm -f {} +`,
    '    # Nix writes its schema file without fsync: after an unclean stop (a killed VM) it can be',
    '    # empty and every build then fails; the database starts over, the host paths are registered again.',
    `    s=${rw}/var/nix/db/schema`,
    '    if [ -e $s ] && [ ! -s $s ]; then t "empty Nix database schema after an unclean stop: a fresh database"; rm -rf ${s%/schema}; fi',
    '    t disk-ready',
    '  } &',
    '  disk=$!',
    'fi',
  ];
}

/**
 * The collector (src/guest/collector.ts) runs in the background once the store is up, from the
 * thresholds the disk file gave; without a disk there is nothing to collect.
 */
function collectorLines(): string[] {
  return [
    'if [ -n "$disk" ] && [ -n "$gcmax" ]; then',
    `  echo "$gcmin $gcmax" > ${guestPaths.gcThresholds}`,
    `  ${guestPaths.collector} loop &`,
    'fi',
  ];
}

const storeLines = [
  'if [ -n "$disk" ]; then',
  '  wait $disk || exit 1',
  'else',
  `  mount -t tmpfs -o mode=0755 tmpfs ${guestPaths.rwStore}`,
  `  mkdir -p ${guestPaths.rwStore}/upper ${guestPaths.rwStore}/work`,
  'fi',
  '# the upper layer\'s mode becomes the mode of /nix/store',
  `chmod 0755 ${guestPaths.rwStore}/upper`,
  `mount -t overlay -o lowerdir=/nix/.ro-store,upperdir=${guestPaths.rwStore}/upper,workdir=${guestPaths.rwStore}/work overlay /nix/store || fail "overlay /nix/store"`,
  '# with a disk, the Nix database and the build directories live on it, never in RAM',
  'if [ -n "$disk" ]; then',
  `  mount --bind ${guestPaths.rwStore}/var/nix /nix/var/nix || fail "bind /nix/var/nix"`,
  `  mount --bind ${guestPaths.rwStore}/tmp /tmp || fail "bind /tmp"`,
  'fi',
];

/** The Rosetta share, mounted before binfmt registers its interpreter (F opens it then). */
const rosettaLines = [
  'if [ -f /run/rosetta.mount ]; then',
  '  read -r fstype options < /run/rosetta.mount',
  `  mkdir -p ${rosettaDir} && mount -t "$fstype" -o "$options" ${shareTags.rosetta} ${rosettaDir} || fail "mount the Rosetta share (${shareTags.rosetta}) on ${rosettaDir}"`,
  'fi',
];

const binfmtLines = [
  'if [ -f /run/binfmt ]; then',
  '  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc',
  '  while IFS= read -r entry; do',
  `    [ -n "$entry" ] && { printf '%s\\n' "$entry" > /proc/sys/fs/binfmt_misc/register || fail "binfmt entry: $entry"; }`,
  '  done < /run/binfmt',
  'fi',
];

/**
 * QEMU's user network shows the host's loopback to the guest as 10.0.2.2 (and every other
 * address of 10.0.2.0/24 but the DNS one, 10.0.2.3). Builds run as build users, so every user
 * but root is kept off that network: a fixed-output derivation reaches the outside through
 * QEMU's NAT, and nothing that listens on the host's loopback. Root's traffic, sshd's replies to
 * the host's forwarded port among it, is untouched. IPv6 is off in QEMU (its host alias is ::1).
 */
export const buildNetworkRules = [
  'rule add uidrange 1-4294967294 to 10.0.2.3/32 lookup main pref 100',
  'rule add uidrange 1-4294967294 to 10.0.2.0/24 prohibit pref 101',
] as const;

const buildNetworkLines = [
  `printf '%s\\n' ${buildNetworkRules.map((r) => `'${r}'`).join(' ')} | ${guestPaths.ipTool} -batch - || fail "could not keep builds off the host's loopback (ip rule)"`,
];

/** sshd daemonizes before it listens; its pid file appears once it listens. */
const waitForSshdLines = [
  'n=0',
  'while [ ! -s /run/sshd.pid ]; do',
  `  [ -e /run/sshd.failed ] && fail "sshd did not start, see ${guestPaths.sshdLog}"`,
  `  n=$((n + 1)); [ $n -gt 1000 ] && fail "sshd is not listening after 10 s, see ${guestPaths.sshdLog}"`,
  '  usleep 10000',
  'done',
];

/**
 * The boot script. sshd starts as soon as /usr and its host key are there; the ready marker is
 * printed only once everything a build needs (store overlay, binfmt) is in place too.
 */
export function rcBuilder(options: InitOptions): string {
  const nine = `trans=virtio,version=9p2000.L,msize=512000,cache=${options.cache},ro`;
  const { modules } = options;
  return [
    `#!${guestPaths.busyboxDir}/sh`,
    `export PATH=${guestPaths.busyboxDir} HOME=/root`,
    '# timing lines for boot profiling; read, not cut, so no process is spawned',
    't() { read -r up _ < /proc/uptime; echo "[rc $up] $*" > /dev/console; }',
    `fail() { t "$*"; echo "${failedMarker}: $*" > /dev/console; exit 1; }`,
    '# loads modules in parallel and waits for them (busybox insmod forks, it does not exec)',
    `load() { pids=; for m; do { insmod ${guestPaths.modulesDir}/$m.ko || t "insmod $m FAILED"; } & pids="$pids $!"; done; wait $pids; }`,
    ...bootstrap,
    't modules',
    ...loadLines(modules.boot),
    ...pciLines(modules.pci),
    ...networkLines(modules.net),
    't keys',
    `mount -t 9p -o ${nine} ${shareTags.usr} /usr &`,
    'usr=$!',
    ...hostKeyLines(),
    'disk=',
    ...diskLines(modules.disk),
    `wait $usr || fail "mount ${shareTags.usr} /usr"`,
    't sshd',
    ...sshdStartLines(options.sshdNoReexec ?? false),
    ...restOfConfigLines(),
    '# the first ssh session runs /bin/sh from /usr: page it in now, not while the host waits',
    '/bin/sh -c : &',
    ...loadLines(modules.late),
    't store',
    `mount -t 9p -o ${nine} ${shareTags.store} /nix/.ro-store || fail "mount ${shareTags.store}"`,
    ...storeLines,
    ...collectorLines(),
    't binfmt',
    ...rosettaLines,
    ...binfmtLines,
    ...buildNetworkLines,
    'hostname -F /etc/hostname',
    't wait-sshd',
    'wait $network',
    ...waitForSshdLines,
    `t ${readyMarker}`,
    `echo ${readyMarker} > /dev/console`,
    '',
  ].join('\n');
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
    'resolv.conf': file('nameserver 10.0.2.3\n'),
    hostname: file('linux-builder\n'),
    shells: file('/bin/sh\n/bin/bash\n/usr/bin/bash\n/usr/bin/sh\n'),
    inittab: file(inittab()),
    fstab: file(fstab()),
  };
}
