/**
 * The exact command that installs a missing host tool: apt-get on Debian and Ubuntu (through
 * sudo unless run as root), Homebrew on macOS. Every "install X" hint the CLI prints comes from here.
 */
export interface HostPackage {
  /** The Debian/Ubuntu package. */
  readonly apt: string;
  /** The Homebrew formula, where macOS has one. */
  readonly brew?: string;
  /** The command on macOS when Homebrew has no formula (Nix ships its own installer). */
  readonly macos?: string;
}

export const hostPackages = {
  qemuX86: { apt: 'qemu-system-x86', brew: 'qemu' },
  qemuArm: { apt: 'qemu-system-arm', brew: 'qemu' },
  qemuUser: { apt: 'qemu-user-static' },
  busybox: { apt: 'busybox-static' },
  iproute2: { apt: 'iproute2' },
  /** The Rust virtiofsd (Debian 13, Ubuntu 24.04); Debian 12's QEMU ships its own C one. */
  virtiofsd: { apt: 'virtiofsd' },
  nix: { apt: 'nix-bin', macos: 'sh <(curl -L https://nixos.org/nix/install)' },
} as const satisfies Record<string, HostPackage>;

export function installCommand(pkg: HostPackage, platform: NodeJS.Platform = process.platform, uid: number | undefined = process.getuid?.()): string {
  if (platform === 'darwin') {
    if (pkg.brew !== undefined) return `brew install ${pkg.brew}`;
    if (pkg.macos !== undefined) return pkg.macos;
  }
  return `${uid === 0 ? '' : 'sudo '}apt-get install ${pkg.apt}`;
}
