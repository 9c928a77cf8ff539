/**
 * Which accelerator QEMU gets. KVM only where it really works: on x86 a /dev/kvm without
 * vmx/svm in the CPU flags is a PVM or nested device that hangs normal kernels.
 * decideAccel is pure over the probed facts; probeAccelFacts reads them.
 */
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import type { AccelChoice, AccelDecision, GuestArch, HostArch } from '../driver.js';
import { badInput, errnoCode } from '../../errors.js';

export type KvmAccess = 'rw' | 'missing' | 'denied';

export interface AccelFacts {
  readonly platform: NodeJS.Platform;
  readonly arch: HostArch;
  /** Whether /dev/kvm can be opened read-write by us. */
  readonly kvmAccess: KvmAccess;
  /** /proc/cpuinfo, or undefined where there is none. */
  readonly cpuinfo: string | undefined;
}

const tcgHint = '--accel tcg';
const kvmGroupFix = 'join the group that owns /dev/kvm (usually kvm): sudo usermod -aG kvm $USER, then log in again';

/** guestArch: a guest of another architecture than the host's runs only under TCG. */
export function decideAccel(requested: AccelChoice, facts: AccelFacts, guestArch: GuestArch = facts.arch): AccelDecision {
  if (requested === 'tcg') return { accel: 'tcg', reason: 'TCG requested' };
  if (guestArch !== facts.arch) {
    const emulated = `the guest is ${guestArch} and the host ${facts.arch}: only TCG emulates another architecture`;
    if (requested !== 'auto') throw badInput(`--accel ${requested} cannot run an ${guestArch} guest on this ${facts.arch} host`, `use --accel tcg or auto (${emulated}), or --arch ${facts.arch}`);
    return { accel: 'tcg', reason: `${emulated}: using TCG` };
  }
  if (requested === 'hvf') {
    if (facts.platform === 'darwin') return { accel: 'hvf', reason: 'HVF requested' };
    throw badInput(`--accel hvf works only on macOS (this host is ${facts.platform})`, hintFor(facts));
  }
  if (facts.platform === 'darwin') {
    if (requested === 'kvm') throw badInput('--accel kvm works only on Linux', 'use --accel hvf or --accel auto');
    return { accel: 'hvf', reason: 'macOS: using HVF' };
  }
  const kvm = whyKvmUnusable(facts);
  if (kvm === undefined) return { accel: 'kvm', reason: '/dev/kvm is usable: using KVM' };
  if (requested === 'kvm') throw badInput(`--accel kvm cannot work here: ${kvm.problem}`, kvm.fix ?? tcgHint);
  return { accel: 'tcg', reason: `${kvm.problem}: using TCG`, ...(kvm.fix ? { fix: kvm.fix } : {}) };
}

function hintFor(facts: AccelFacts): string {
  return facts.platform === 'linux' ? 'use --accel auto, kvm or tcg' : tcgHint;
}

/** undefined when KVM works, else one phrase saying why not, and the fix when there is one. */
function whyKvmUnusable(facts: AccelFacts): { problem: string; fix?: string } | undefined {
  if (facts.platform !== 'linux') return { problem: `KVM needs Linux (this host is ${facts.platform})` };
  if (facts.kvmAccess === 'missing') return { problem: '/dev/kvm does not exist' };
  // Before access: joining the kvm group cannot help where the CPU cannot run KVM at all.
  if (facts.arch === 'x86_64' && !hasVirtualizationFlag(facts.cpuinfo ?? '')) {
    return { problem: '/dev/kvm exists but the CPU has no vmx/svm (a PVM or nested device that hangs normal kernels)' };
  }
  if (facts.kvmAccess === 'denied') return { problem: '/dev/kvm is not readable and writable by this user (join the kvm group)', fix: kvmGroupFix };
  return undefined;
}

function hasVirtualizationFlag(cpuinfo: string): boolean {
  return cpuinfo
    .split('\n')
    .filter((line) => /^flags\s*:/.test(line))
    .some((line) => /\s(vmx|svm)(\s|$)/.test(line));
}

export async function probeAccelFacts(arch: HostArch, platform: NodeJS.Platform = process.platform): Promise<AccelFacts> {
  if (platform !== 'linux') return { platform, arch, kvmAccess: 'missing', cpuinfo: undefined };
  let kvmAccess: KvmAccess = 'rw';
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (error) {
    kvmAccess = errnoCode(error) === 'ENOENT' ? 'missing' : 'denied';
  }
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => undefined);
  return { platform, arch, kvmAccess, cpuinfo };
}
