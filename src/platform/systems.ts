/**
 * Nix Linux systems ↔ QEMU user-mode architectures ↔ ELF binfmt_misc magic and mask.
 * Arch names follow nixpkgs' qemuArch; magic and mask follow QEMU's qemu-binfmt-conf
 * (checked against Debian's /usr/lib/binfmt.d/qemu-*.conf by the tests).
 */
import type { HostArch } from '../drivers/driver.js';
import { badInput } from '../errors.js';

export interface SystemInfo {
  readonly system: string;
  readonly qemuArch: string;
  /** binfmt_misc magic and mask, as hex strings of equal length. */
  readonly magic: string;
  readonly mask: string;
  /**
   * binfmt_misc flags. P keeps the program's argv[0] (multi-call binaries such as busybox pick
   * the program by that name; QEMU learns of it from AT_FLAGS), O hands QEMU the opened binary,
   * F opens QEMU itself at registration, so it runs inside Nix's sandbox, where it is not visible.
   */
  readonly binfmtFlags: string;
}

const elf = '7f454c46';
// The common masks: ignore OS/ABI bytes and the ET_EXEC/ET_DYN distinction.
const le32 = 'ffffffffffffff00fffffffffffffffffeffffff';
const be32 = 'ffffffffffffff00fffffffffffffffffffeffff';
const ppcMask = 'fffffffffffffffcfffffffffffffffffffeffff';

/** Debian's registration (/usr/lib/binfmt.d/qemu-*.conf) uses the same flags for every arch. */
const preserveArgv0 = 'POF';

function entry(system: string, qemuArch: string, magic: string, mask: string, binfmtFlags = preserveArgv0): SystemInfo {
  return { system, qemuArch, magic, mask, binfmtFlags };
}

export const systems: readonly SystemInfo[] = [
  entry('x86_64-linux', 'x86_64', `${elf}02010100000000000000000002003e00`, 'fffffffffffefe00fffffffffffffffffeffffff'),
  entry('i686-linux', 'i386', `${elf}01010100000000000000000002000300`, 'fffffffffffefe00fffffffffffffffffeffffff'),
  entry('aarch64-linux', 'aarch64', `${elf}0201010000000000000000000200b700`, le32),
  entry('armv7l-linux', 'arm', `${elf}01010100000000000000000002002800`, le32),
  entry('armv6l-linux', 'arm', `${elf}01010100000000000000000002002800`, le32),
  entry('armv5tel-linux', 'arm', `${elf}01010100000000000000000002002800`, le32),
  entry('riscv64-linux', 'riscv64', `${elf}0201010000000000000000000200f300`, le32),
  entry('riscv32-linux', 'riscv32', `${elf}0101010000000000000000000200f300`, le32),
  entry('powerpc64le-linux', 'ppc64le', `${elf}02010100000000000000000002001500`, 'fffffffffffffffcfffffffffffffffffeffff00'),
  entry('powerpc64-linux', 'ppc64', `${elf}02020100000000000000000000020015`, ppcMask),
  entry('powerpc-linux', 'ppc', `${elf}01020100000000000000000000020014`, ppcMask),
  entry('s390x-linux', 's390x', `${elf}02020100000000000000000000020016`, ppcMask),
  entry('mips64el-linux', 'mips64el', `${elf}02010100000000000000000002000800`, 'ffffffffffffff00fefffffffffffffffeffffff'),
  entry('mips64-linux', 'mips64', `${elf}02020100000000000000000000020008`, 'ffffffffffffff00fefffffffffffffffffeffff'),
  // o32 only: the e_flags byte at offset 36 tells o32 from n32 (ABI2).
  entry('mipsel-linux', 'mipsel', `${elf}01010100000000000000000002000800${'00'.repeat(17)}`, `ffffffffffffff00fefffffffffffffffeffffff${'00'.repeat(16)}20`),
  entry('mips-linux', 'mips', `${elf}01020100000000000000000000020008${'00'.repeat(20)}`, `ffffffffffffff00fefffffffffffffffffeffff${'00'.repeat(19)}20`),
  entry('loongarch64-linux', 'loongarch64', `${elf}02010100000000000000000002000201`, 'fffffffffffffffc00fffffffffffffffeffffff'),
  entry('m68k-linux', 'm68k', `${elf}01020100000000000000000000020004`, be32),
  entry('microblaze-linux', 'microblaze', `${elf}0102010000000000000000000002baab`, be32),
  entry('sparc-linux', 'sparc', `${elf}01020100000000000000000000020002`, ppcMask),
  entry('sparc64-linux', 'sparc64', `${elf}0202010000000000000000000002002b`, ppcMask),
  entry('alpha-linux', 'alpha', `${elf}02010100000000000000000002002690`, le32),
];

const bySystem = new Map(systems.map((s) => [s.system, s]));

export function systemInfo(system: string): SystemInfo | undefined {
  return bySystem.get(system);
}

/** The Nix system a guest of this architecture runs natively. */
export function guestSystem(arch: HostArch): string {
  return `${arch}-linux`;
}

/** Systems the guest's kernel runs without emulation (x86_64 kernels run i686 binaries). */
export function nativeSystems(arch: HostArch): readonly string[] {
  return arch === 'x86_64' ? ['x86_64-linux', 'i686-linux'] : ['aarch64-linux'];
}

export function defaultSystems(arch: HostArch): string[] {
  return arch === 'x86_64' ? ['x86_64-linux', 'i686-linux', 'aarch64-linux'] : ['aarch64-linux', 'x86_64-linux', 'i686-linux'];
}

/** "x86_64-linux,aarch64-linux" → validated, deduplicated list with the guest's own system first. */
export function parseSystems(text: string, arch: HostArch): string[] {
  const list = text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (list.length === 0) {
    throw badInput('--systems must list at least one Nix system', `for example: --systems ${defaultSystems(arch).join(',')}`);
  }
  const unknown = list.filter((s) => !bySystem.has(s));
  if (unknown.length > 0) {
    throw badInput(
      `unknown system${unknown.length > 1 ? 's' : ''} ${unknown.map((s) => JSON.stringify(s)).join(', ')} in --systems`,
      `known systems: ${systems.map((s) => s.system).join(', ')}`,
    );
  }
  const own = guestSystem(arch);
  const unique = [...new Set(list)];
  return unique.includes(own) ? [own, ...unique.filter((s) => s !== own)] : unique;
}

/** Systems that need qemu-user in the guest: everything the guest's kernel does not run natively. */
export function emulatedSystems(list: readonly string[], arch: HostArch): SystemInfo[] {
  const native = new Set(nativeSystems(arch));
  const seen = new Set<string>();
  const out: SystemInfo[] = [];
  for (const system of list) {
    const info = bySystem.get(system);
    if (!info || native.has(system) || seen.has(info.qemuArch)) continue;
    seen.add(info.qemuArch);
    out.push(info);
  }
  return out;
}

/** The emulator's path on a Debian-like host (qemu-user-static): the host userland's interpreter. */
export function qemuUserBinary(info: SystemInfo): string {
  return `/usr/bin/qemu-${info.qemuArch}-static`;
}

const escape = (hex: string): string => hex.replace(/../g, (byte) => `\\x${byte}`);

/** The line written to /proc/sys/fs/binfmt_misc/register: `:name:type:offset:magic:mask:interpreter:flags`. */
export function binfmtLine(info: SystemInfo): string {
  return binfmtEntry(info, qemuUserBinary(info));
}

/** The register line for an emulator at interpreter (a path in the guest; it depends on the userland). */
export function binfmtEntry(info: SystemInfo, interpreter: string): string {
  return `:qemu-${info.qemuArch}:M::${escape(info.magic)}:${escape(info.mask)}:${interpreter}:${info.binfmtFlags}`;
}

/**
 * Apple's Rosetta for Linux, shared by the hypervisor as a directory holding the `rosetta` binary,
 * mounted here in the guest. Nix's sandbox sees it too (sandbox-paths): Rosetta reopens itself.
 */
export const rosettaDir = '/run/rosetta';

/**
 * Rosetta runs x86_64 ELF (NixOS's magic and mask, the same as QEMU's). P keeps argv[0] for
 * multi-call binaries (Rosetta, like QEMU, takes it from AT_FLAGS); C (credentials from the
 * binary, with O) as NixOS registers it; F opens Rosetta at registration, so it runs in the sandbox.
 */
export const rosettaBinfmtFlags = 'POCF';

export function rosettaBinfmtEntry(interpreter = `${rosettaDir}/rosetta`): string {
  const x86 = bySystem.get('x86_64-linux');
  if (x86 === undefined) throw new Error('x86_64-linux is missing from the systems table');
  return `:rosetta:M::${escape(x86.magic)}:${escape(x86.mask)}:${interpreter}:${rosettaBinfmtFlags}`;
}
