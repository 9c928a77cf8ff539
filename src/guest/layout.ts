/**
 * The contract between the host and the guest's init: share tags, the files of the guest config
 * share, and the kernel arguments that say what the launch plan chose. The initramfs is the same
 * for every instance; what is per instance (keys, nix.conf, binfmt entries) travels through the
 * config share of a 0700 directory, and what is per launch (share transport, network) on the
 * kernel command line.
 */
import type { GuestNetwork, ShareTransport } from '../drivers/driver.js';

export const shareTags = {
  /** The host's /usr, read-only: dash, nix, qemu-user, glibc. */
  usr: 'hostusr',
  /** The host's /nix/store, read-only: the overlay's lower layer. */
  store: 'nixstore',
  /** The instance's guest-share directory: secrets and per-instance config. */
  config: 'lbconfig',
} as const;

/** File names inside the guest config share. */
export const guestShareFiles = {
  hostKey: 'ssh_host_ed25519_key',
  hostKeyPub: 'ssh_host_ed25519_key.pub',
  authorizedKeys: 'authorized_keys',
  nixConf: 'nix.conf',
  /** One binfmt_misc register line per line, written verbatim to /proc/sys/fs/binfmt_misc/register. */
  binfmt: 'binfmt',
  hostname: 'hostname',
  /**
   * Present when the instance disk is attached: the guest puts the store's upper layer, /nix/var
   * and /tmp on it. One line: the device name (diskDevice), then min-free and max-free in bytes.
   */
  disk: 'disk',
} as const;

/** Printed on the guest console by init once sshd is listening. */
export const readyMarker = 'LINUX-BUILDER-READY';

/** Printed on the guest console by init, with a reason after ": ", when it cannot get sshd up. */
export const failedMarker = 'LINUX-BUILDER-FAILED';

/** The instance disk as the guest names it: virtio-blk's first disk, on every driver. */
export const diskDevice = 'vda';

/** What the guest's init needs to know of one launch (read from /proc/cmdline by rc.builder.sh). */
export interface GuestLaunch {
  readonly shares: ShareTransport;
  readonly network: GuestNetwork;
}

/** The lb.* kernel arguments rc.builder.sh reads. */
export function guestLaunchArgs(launch: GuestLaunch): string[] {
  const { network } = launch;
  const address = network.kind === 'static' ? [`lb.address=${network.address}`, `lb.gateway=${network.gateway}`] : ['lb.address=dhcp'];
  return [`lb.shares=${launch.shares}`, ...address, `lb.dns=${network.dns}`, `lb.hostnet=${network.hostNet}`];
}
