/**
 * The vfkit command line, as data: a pure function of a vfkit-specific config. Each device is a
 * value that renders its own `--device` option.
 *
 * vfkit's grammar has no escaping: a `--device` value is split on every comma, and the
 * `--bootloader` value on commas outside double quotes (only `cmdline=` is unquoted again). Unix
 * socket paths go through Go's URL parser. So paths with commas, a command line with a double
 * quote, and socket paths URL parsing would change are refused here, with what to do instead.
 */
import { badInput } from '../../errors.js';
import { checkSocketPath } from '../../fs/socket-path.js';

export type VfkitDevice =
  /** A host directory the guest mounts with `mount -t virtiofs <tag>`. */
  | { readonly kind: 'virtio-fs'; readonly sharedDir: string; readonly mountTag: string }
  /** Apple's Rosetta for Linux, shared as a directory holding the `rosetta` binary. */
  | { readonly kind: 'rosetta'; readonly mountTag: string }
  /** A raw disk image. */
  | { readonly kind: 'virtio-blk'; readonly path: string }
  /** connect: vfkit listens on the unix socket and relays each connection to the guest's vsock port. */
  | { readonly kind: 'virtio-vsock'; readonly port: number; readonly socket: string; readonly direction: 'connect' | 'listen' }
  /** The guest's hvc0 console, appended to a file. */
  | { readonly kind: 'virtio-serial'; readonly logFile: string }
  | { readonly kind: 'virtio-rng' }
  /** Virtualization.framework's NAT (the guest gets an address by DHCP); a fixed MAC keeps its lease. */
  | { readonly kind: 'virtio-net'; readonly mac: string };

export interface VfkitConfig {
  readonly cpus: number;
  readonly memoryMiB: number;
  /** An uncompressed arm64 Image: vfkit refuses a compressed one. */
  readonly kernel: string;
  readonly initrd: string;
  /** Kernel arguments; console=hvc0 is added first. */
  readonly kernelArgs: readonly string[];
  readonly devices: readonly VfkitDevice[];
  /** vfkit's REST API (`GET/POST /vm/state`) listens here; it also names the VM's process. */
  readonly restSocket: string;
  readonly pidFile: string;
}

/** virtio-fs tags are at most 35 bytes (Virtualization.framework's limit); the guest mounts by tag. */
const maxMountTagBytes = 35;

/**
 * The characters a socket path may hold: Go's URL parsing (REST URI, vsock socketURL) decodes
 * %, cuts at ? and #, and escapes spaces, and a comma would split the device option.
 */
const plainSocketPath = /^\/[A-Za-z0-9/._~@+=:-]*$/;

const commaHint = (what: string): string =>
  `vfkit splits its options on commas and has no way to escape one: move the ${what} to a path without a comma`;

function checkOptionPath(what: string, path: string): string {
  if (path.includes(',')) throw badInput(`vfkit cannot take the ${what} ${JSON.stringify(path)}: it contains a comma`, commaHint(what));
  if (!path.startsWith('/')) throw badInput(`the ${what} must be an absolute path for vfkit (got ${JSON.stringify(path)})`);
  if (/[\n\r\0]/.test(path)) throw badInput(`the ${what} contains a line break or NUL: ${JSON.stringify(path)}`, 'use a plain path');
  return path;
}

export function checkVfkitSocketPath(what: string, path: string): string {
  checkSocketPath(path);
  if (!plainSocketPath.test(path)) {
    throw badInput(
      `vfkit cannot use the ${what} ${JSON.stringify(path)}: it has characters vfkit's URL parsing changes (spaces, commas, %, ?, # and the like)`,
      'set XDG_RUNTIME_DIR to a directory whose path has only letters, digits and / . _ - (the default, under $TMPDIR, has)',
    );
  }
  return path;
}

function checkMountTag(tag: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(tag) || Buffer.byteLength(tag) > maxMountTagBytes) {
    throw badInput(`bad virtio-fs mount tag ${JSON.stringify(tag)}`, `a tag is 1 to ${maxMountTagBytes} letters, digits, "_", "-" or "."`);
  }
  return tag;
}

function checkMac(mac: string): string {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) throw badInput(`bad MAC address ${JSON.stringify(mac)}`, 'six lower-case hex bytes separated by ":"');
  return mac;
}

/** The value of one `--device` option. */
export function deviceOption(device: VfkitDevice): string {
  switch (device.kind) {
    case 'virtio-fs':
      return `virtio-fs,sharedDir=${checkOptionPath('shared directory', device.sharedDir)},mountTag=${checkMountTag(device.mountTag)}`;
    case 'rosetta':
      return `rosetta,mountTag=${checkMountTag(device.mountTag)}`;
    case 'virtio-blk':
      return `virtio-blk,path=${checkOptionPath('disk image', device.path)}`;
    case 'virtio-vsock':
      if (!Number.isInteger(device.port) || device.port < 1 || device.port > 0xffff_fffe) throw badInput(`bad vsock port ${device.port}`);
      return `virtio-vsock,port=${device.port},socketURL=${checkVfkitSocketPath('vsock socket', device.socket)},${device.direction}`;
    case 'virtio-serial':
      return `virtio-serial,logFilePath=${checkOptionPath('console log', device.logFile)}`;
    case 'virtio-rng':
      return 'virtio-rng';
    case 'virtio-net':
      return `virtio-net,nat,mac=${checkMac(device.mac)}`;
  }
}

/** `linux,kernel=…,initrd=…,cmdline="…"`: the command line is the one value vfkit lets us quote. */
export function bootloaderOption(config: Pick<VfkitConfig, 'kernel' | 'initrd' | 'kernelArgs'>): string {
  const cmdline = ['console=hvc0', ...config.kernelArgs.filter((arg) => !arg.startsWith('console='))].join(' ');
  if (/["\n\r\0]/.test(cmdline)) {
    throw badInput(`vfkit cannot pass the kernel command line ${JSON.stringify(cmdline)}: it contains a double quote or a line break`, 'vfkit quotes the command line with double quotes and cannot escape one inside it');
  }
  const kernel = checkOptionPath('kernel', config.kernel);
  const initrd = checkOptionPath('initrd', config.initrd);
  // A double quote in a path would start a quoted section of the bootloader value.
  for (const [what, path] of [['kernel', kernel], ['initrd', initrd]] as const) {
    if (path.includes('"')) throw badInput(`vfkit cannot take the ${what} ${JSON.stringify(path)}: it contains a double quote`, `move the ${what} to a plain path`);
  }
  return `linux,kernel=${kernel},initrd=${initrd},cmdline="${cmdline}"`;
}

export function vfkitArgv(config: VfkitConfig): string[] {
  if (!Number.isInteger(config.cpus) || config.cpus < 1) throw badInput(`bad CPU count ${config.cpus}`);
  if (!Number.isInteger(config.memoryMiB) || config.memoryMiB < 1) throw badInput(`bad memory size ${config.memoryMiB} MiB`);
  const consoles = config.devices.filter((d) => d.kind === 'virtio-serial').length;
  if (consoles > 1) throw badInput('vfkit takes one virtio-serial console at most');
  // vfkit creates one vsock device whatever the number of options: one port a VM.
  if (config.devices.filter((d) => d.kind === 'virtio-vsock').length > 1) throw badInput('vfkit relays one vsock port a VM');
  return [
    'vfkit',
    '--cpus', String(config.cpus),
    '--memory', String(config.memoryMiB),
    '--bootloader', bootloaderOption(config),
    ...config.devices.flatMap((device) => ['--device', deviceOption(device)]),
    '--restful-uri', `unix://${checkVfkitSocketPath('REST socket', config.restSocket)}`,
    // a flag of its own, not an option list: any absolute path will do
    '--pidfile', config.pidFile.startsWith('/') ? config.pidFile : checkOptionPath('pid file', config.pidFile),
  ];
}

/** The REST socket named in a command line, as vfkitArgv writes it. */
export function namesRestSocket(commandLine: string, restSocket: string): boolean {
  return `${commandLine} `.includes(` --restful-uri unix://${restSocket} `);
}

/** A locally administered, unicast MAC, stable for an instance name (its DHCP lease stays the same). */
export function stableMac(seed: string): string {
  let hash = 0x811c9dc5;
  const bytes = [0x02];
  for (let round = 0; round < 5; round++) {
    for (const byte of Buffer.from(`${round}:${seed}`)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    bytes.push(hash & 0xff);
  }
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
