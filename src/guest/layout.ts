/**
 * The contract between the host and the guest's init: 9p share tags and the files of the
 * guest config share. The initramfs is the same for every instance; what is per instance
 * (keys, nix.conf, binfmt entries) travels through the config share of a 0700 directory.
 */
export const shareTags = {
  /** The host's /usr, read-only: dash, nix, qemu-user, glibc. */
  usr: 'hostusr',
  /** The host's /nix/store, read-only: the overlay's lower layer. */
  store: 'nixstore',
  /** The instance's guest-share directory: secrets and per-instance config. */
  config: 'lbconfig',
  /** Apple's Rosetta for Linux (vfkit's rosetta device), or a stand-in directory on QEMU in tests. */
  rosetta: 'rosetta',
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
   * and /tmp on it. One line: the device name, then min-free and max-free in bytes.
   */
  disk: 'disk',
  /**
   * Present when the Rosetta share is attached: one line, the file system type and the mount
   * options ("virtiofs ro", or "9p trans=virtio,…" on QEMU).
   */
  rosetta: 'rosetta',
} as const;

/** Printed on the guest console by init once sshd is listening. */
export const readyMarker = 'LINUX-BUILDER-READY';

/** Printed on the guest console by init, with a reason after ": ", when it cannot get sshd up. */
export const failedMarker = 'LINUX-BUILDER-FAILED';
