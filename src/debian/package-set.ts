/** What the guest needs from Debian, per architecture. */
import type { PackageRequest } from './resolve.js';

export type DebianArch = 'amd64' | 'arm64';

export function debianArch(arch: 'x86_64' | 'aarch64'): DebianArch {
  return arch === 'x86_64' ? 'amd64' : 'arm64';
}

/**
 * The guest's programs, beside the kernel; their libraries come as dependencies. dash is /bin/sh
 * (root's shell, so every SSH command) and coreutils what SSH commands use (registering the
 * host's store paths among them); util-linux has the collector's fallocate.
 */
export const guestPackages = ['busybox-static', 'openssh-server', 'nix-bin', 'e2fsprogs', 'iproute2', 'util-linux', 'dash', 'coreutils'] as const;

/** qemu-user is the statically linked emulators since trixie (qemu-user-static is a transitional package). */
export const emulatorPackages = ['qemu-user'] as const;

/**
 * Dependencies that only maintainer scripts, an init system or initramfs generators use: none of
 * these runs in the guest (it boots our own initramfs and runs no package scripts).
 */
export const notForTheGuest = [
  'adduser', 'debconf', 'debconf-2.0', 'init-system-helpers', 'initramfs-tools', 'linux-base',
  'linux-initramfs-tool', 'lsb-base', 'procps', 'runit-helper', 'systemd', 'systemd-standalone-sysusers',
  'systemd-sysusers', 'ucf',
] as const;

/** The kernel metapackage: it depends on the current image, which carries the modules. */
export function kernelPackage(arch: DebianArch): string {
  return `linux-image-${arch}`;
}

/** socat relays the guest's vsock port to sshd when SSH comes over vsock (vfkit). */
export const vsockRelayPackages = ['socat'] as const;

/** The guest's userland; with foreign systems, the emulators that run them; with SSH over vsock, its relay. */
export function guestPackageRequest(arch: DebianArch, options: { foreign: boolean; vsock?: boolean }): PackageRequest {
  return {
    packages: [kernelPackage(arch), ...guestPackages, ...(options.foreign ? emulatorPackages : []), ...(options.vsock === true ? vsockRelayPackages : [])],
    skip: [...notForTheGuest],
  };
}
